//! The API documentation is the registered doc comments: `docs/api.md` must match
//! `rlmec api`, every native function must document itself with an example, and every
//! example must run.

use rlmec::script::api::{BUILT_IN_TYPES, api, api_markdown};
use rlmec::script::context::RunTarget;
use rlmec::script::{ScriptContext, build_engine};

#[test]
fn docs_api_md_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == api_markdown(),
        "docs/api.md is stale: run `make docs` (it writes `rlmec api` into docs/api.md)"
    );
}

/// A doc's `{defaults:NAME}` marker becomes the defaults of the options it names (the
/// table in src/script/defaults.rs); none may reach the documentation.
#[test]
fn every_defaults_marker_is_replaced() {
    let md = api_markdown();
    assert!(
        !md.contains("{defaults:"),
        "a marker names no defaults: {}",
        md.lines().find(|l| l.contains("{defaults:")).unwrap_or("")
    );
    let json = rlmec::script::api::api_json();
    assert!(
        !json.contains("{defaults:"),
        "`rlmec api --json` shows markers"
    );
}

/// The fenced ```rhai blocks of a doc comment.
fn examples(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim()) {
            (None, "```rhai") => current = Some(String::new()),
            (Some(code), "```") => {
                out.push(std::mem::take(code));
                current = None;
            }
            (Some(code), _) => {
                code.push_str(line);
                code.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

#[test]
fn every_native_function_documents_itself_with_an_example() {
    for domain in api() {
        assert!(
            !domain.doc.is_empty(),
            "domain {} has no module doc",
            domain.name
        );
        for f in &domain.functions {
            assert!(!f.doc.is_empty(), "{} has no doc comment", f.signature);
            assert!(
                !examples(&f.doc).is_empty(),
                "{} has no ```rhai example",
                f.signature
            );
        }
        for t in &domain.types {
            assert!(!t.doc.is_empty(), "type {} has no doc comment", t.name);
        }
    }
}

#[test]
fn every_example_runs() {
    tch::set_num_threads(1);
    let runs = tempfile::tempdir().unwrap();
    let target = RunTarget {
        dir: runs.path().join("doc-run"),
        script: "doc.rhai".into(),
        args: vec![],
        reuse: vec![],
    };
    let engine = build_engine(ScriptContext::with_run(vec![], target));
    let mut ran = 0;
    for domain in api() {
        for f in &domain.functions {
            for code in examples(&f.doc) {
                if let Err(e) = engine.run(&code) {
                    panic!("example of {} fails: {e}\n{code}", f.signature);
                }
                ran += 1;
            }
        }
    }
    assert!(ran >= 10, "only {ran} examples ran");
}

/// The types a signature names: `f(a: T, b: U) -> R` gives T, U, R; `x.prop -> R` gives R.
fn types_in(signature: &str) -> Vec<String> {
    let (call, ret) = match signature.rsplit_once(" -> ") {
        Some((call, ret)) => (call, Some(ret)),
        None => (signature, None),
    };
    let params = call
        .rfind(')')
        .and_then(|close| call[..close].split_once('(').map(|(_, p)| p))
        .unwrap_or("");
    params
        .split(", ")
        .filter_map(|p| p.split_once(": ").map(|(_, t)| t))
        .chain(ret)
        .map(str::to_string)
        .collect()
}

#[test]
fn signatures_name_only_script_types() {
    let domains = api();
    let documented: Vec<&str> = domains
        .iter()
        .flat_map(|d| d.types.iter().map(|t| t.name.as_str()))
        .collect();
    let mut checked = 0;
    for f in domains.iter().flat_map(|d| &d.functions) {
        for t in types_in(&f.signature) {
            assert!(
                !t.contains(['<', '>']),
                "{}: the type {t} is Rust's, not the script's",
                f.signature
            );
            assert!(
                BUILT_IN_TYPES.contains(&t.as_str()) || documented.contains(&t.as_str()),
                "{}: the type {t} is neither built in ({BUILT_IN_TYPES:?}) nor documented \
                 ({documented:?})",
                f.signature
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} types checked");
    assert_eq!(
        types_in("score(m: Model, ids: array) -> f64"),
        ["Model", "array", "f64"]
    );
    assert_eq!(types_in("bar.position -> i64"), ["i64"]);
}
