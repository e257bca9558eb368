//! The `rlmec` binary end to end: run, `--set`, `check`, `api`, errors.

mod common;

use std::path::Path;

use common::cli::{rlmec, stderr, stdout};
#[test]
fn runs_a_script_with_its_defaults() {
    let o = rlmec(&["tests/scripts/hello.rhai"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        "hello world: n=3 total=3 lr=0.00001 tags=[] eps=0.3"
    );
}

#[test]
fn set_overrides_reach_the_script() {
    let o = rlmec(&[
        "tests/scripts/hello.rhai",
        "--set",
        "name=rlmec",
        "--set",
        "n=5",
        "--set",
        "lr=2",
        "--set",
        "tags=a,b",
        "--set",
        "rl.eps=0.2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        r#"hello rlmec: n=5 total=10 lr=2.0 tags=["a", "b"] eps=0.2"#
    );
}

#[test]
fn bad_set_values_are_clear_errors() {
    let o = rlmec(&["tests/scripts/hello.rhai", "--set", "n=many"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(
            "tests/scripts/hello.rhai:2:11: --set n=many: `n` expects an integer (default 3), got a string many"
        ),
        "{}",
        stderr(&o)
    );

    let o = rlmec(&["tests/scripts/hello.rhai", "--set", "nmae=x"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown config key `nmae` (did you mean `name`?)"),
        "{}",
        stderr(&o)
    );

    let o = rlmec(&["tests/scripts/hello.rhai", "--set", "n"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--set n: expected KEY=VALUE"),
        "{}",
        stderr(&o)
    );

    let o = rlmec(&["tests/scripts/hello.rhai", "--device", "tpu"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown device `tpu`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn runtime_errors_name_file_line_and_the_call_stack() {
    let o = rlmec(&["tests/scripts/nested_error.rhai"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let expected = "error: tests/scripts/lib/inner.rhai:2:7: Division by zero: 2 / 0
    `divide` called from tests/scripts/lib/outer.rhai:4:12
    `run` called from tests/scripts/nested_error.rhai:3:8";
    assert!(err.contains(expected), "{err}");
}

#[test]
fn syntax_errors_name_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("broken.rhai");
    std::fs::write(&script, "let x = 1;\nlet y = (x + ;\n").unwrap();
    let o = rlmec(&[script.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("{}:2:14:", script.display())),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_missing_script_is_named() {
    let o = rlmec(&["tests/scripts/nope.rhai"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("tests/scripts/nope.rhai: No such file"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn check_finds_a_misspelt_function_at_its_line() {
    let o = rlmec(&[
        "check",
        "tests/scripts/misspelt.rhai",
        "tests/scripts/hello.rhai",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("tests/scripts/misspelt.rhai:6:7: unknown function `torch_inf`"),
        "{err}"
    );
    assert!(err.contains("did you mean `torch_info`?"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains(".rhai:")).count(),
        1,
        "{err}"
    );
}

#[test]
fn check_passes_every_shipped_script_and_module() {
    let mut files = Vec::new();
    for dir in ["scripts", "stdlib"] {
        collect_rhai(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).as_path(),
            &mut files,
        );
    }
    assert!(!files.is_empty());
    let mut args = vec!["check".to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = rlmec(&args);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn collect_rhai(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rhai(&path, out);
        } else if path.extension().is_some_and(|e| e == "rhai") {
            out.push(path);
        }
    }
}

#[test]
fn api_lists_functions_with_their_docs() {
    let o = rlmec(&["api"]);
    assert!(o.status.success());
    let md = stdout(&o);
    assert!(
        md.contains("### `apply_overrides(defaults: map) -> map`"),
        "{md}"
    );
    assert!(md.contains("The script's defaults with the command line's overrides applied"));
    assert!(md.contains("### type `Progress`"));

    let o = rlmec(&["api", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let domains = json.as_array().unwrap();
    let config = domains.iter().find(|d| d["name"] == "config").unwrap();
    let f = config["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "apply_overrides")
        .unwrap();
    assert_eq!(f["num_params"], 1);
    assert!(f["doc"].as_str().unwrap().contains("did you mean"));
}

#[test]
fn version_and_help_teach_the_tool() {
    let o = rlmec(&["--version"]);
    assert!(
        stdout(&o).starts_with("rlmec 0.1.0 (libtorch 2.13.0"),
        "{}",
        stdout(&o)
    );
    let o = rlmec(&["--help"]);
    let help = stdout(&o);
    for needle in [
        "--set <KEY=VALUE>",
        "--device",
        "check",
        "api",
        "scripts/qa_full.rhai",
    ] {
        assert!(help.contains(needle), "missing {needle} in\n{help}");
    }
}

#[test]
fn print_goes_to_stdout_and_logs_to_stderr() {
    let o = rlmec(&["-v", "tests/scripts/hello.rhai"]);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("hello world"));
    assert!(!stdout(&o).contains("DEBUG"));
    assert!(stderr(&o).contains("DEBUG"), "{}", stderr(&o));
    let o = rlmec(&["-qq", "tests/scripts/hello.rhai"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "");
}

#[test]
fn script_objectives_equal_the_built_in_one() {
    let o = rlmec(&["tests/scripts/train_objectives.rhai"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for line in [
        "rlmec: same",
        "eps 0.2, lambda 0.5: same",
        "no regularisation: same",
        "sft: same",
        "rlmec_loss: same",
    ] {
        assert!(out.contains(line), "{out}");
    }
    assert!(
        out.contains("no clipping: 4 steps; sequence reward: 4 steps"),
        "{out}"
    );
}

#[test]
fn an_import_cycle_is_an_error_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("objectives.rhai");
    std::fs::write(&script, "import \"objectives\" as obj;\nprint(1);\n").unwrap();
    let o = rlmec(&[script.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("import cycle"), "{}", stderr(&o));
}

#[test]
fn the_data_stages_run_offline_from_a_script() {
    let o = rlmec(&["tests/scripts/data_pipeline.rhai"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for line in [
        "teacher: 12 records, 6 fixed",
        "grm edits: 6 of 6",
        "model:<path> edits: 6 of 6",
        "rewards: 12 records",
        "policy: 3 steps, loss true",
    ] {
        assert!(out.contains(line), "{out}");
    }
}

#[test]
fn thread_counts_outside_1_to_1024_are_refused() {
    for args in [
        &["tests/scripts/hello.rhai", "--threads", "0"][..],
        &["tests/scripts/hello.rhai", "--threads=-2"][..],
        &["tests/scripts/hello.rhai", "--threads", "1025"][..],
        &[
            "tests/scripts/hello.rhai",
            "--threads",
            "9223372036854775807",
        ][..],
    ] {
        let o = rlmec(args);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(
            err.contains("--threads") && err.contains("1..=1024"),
            "{err}"
        );
    }
}

#[test]
fn token_ids_outside_the_vocabulary_are_named_not_a_libtorch_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "let m = model_load(\"tests/fixtures/model/tiny-llama\"); m.generate([[1, 100000]]);",
            "prompt 0: token id 100000 at position 1 is outside the vocabulary",
        ),
        (
            "let m = model_load(\"tests/fixtures/model/tiny-llama\"); m.score(\"Hi\", [-1]);",
            "pair 0: continuation: token id -1 at position 0 is outside the vocabulary",
        ),
    ];
    for (i, (script, want)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("bad_ids_{i}.rhai"));
        std::fs::write(&path, script).unwrap();
        let o = rlmec(&[path.to_str().unwrap()]);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(err.contains(want), "{err}");
        assert!(
            !err.contains("internal error") && !err.contains("frame #"),
            "{err}"
        );
    }
}

#[test]
fn a_missing_gpu_fails_before_the_run_folder_is_made() {
    if tch::Cuda::is_available() {
        eprintln!("skipping: this machine has CUDA");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = rlmec(&[
        "tests/scripts/hello.rhai",
        "--device",
        "cuda",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("--device") && err.contains("CUDA is not available"),
        "{err}"
    );
    assert!(!out.exists(), "a run folder was made");
}
