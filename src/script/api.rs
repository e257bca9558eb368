//! `rlmec api`: every native type and function the runtime registers, with the signature
//! and the doc comment it was registered with, grouped by domain. `docs/api.md` is this
//! output (a test fails when it is stale), and every `rhai` example in it is run by a test.
//! A doc's `{defaults:NAME}` markers become the option defaults they name ([`super::defaults`]).

use rhai::Engine;
use serde::{Deserialize, Serialize};

use super::DOMAINS;
use super::defaults;

/// One domain's section of the API.
#[derive(Debug, Serialize)]
pub struct DomainApi {
    pub name: String,
    pub doc: String,
    pub types: Vec<TypeApi>,
    pub functions: Vec<FunctionApi>,
}

#[derive(Debug, Serialize)]
pub struct TypeApi {
    pub name: String,
    pub doc: String,
}

#[derive(Debug, Serialize)]
pub struct FunctionApi {
    pub name: String,
    pub signature: String,
    pub num_params: usize,
    /// The parameters, named and typed as the signature shows them.
    pub params: Vec<ParamApi>,
    pub doc: String,
}

#[derive(Debug, Serialize)]
pub struct ParamApi {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
}

/// The slice of rhai's metadata JSON that we read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    #[serde(default)]
    doc: String,
    #[serde(default)]
    custom_types: Vec<TypeMeta>,
    #[serde(default)]
    functions: Vec<FnMeta>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    type_name: String,
    display_name: String,
    #[serde(default)]
    doc_comments: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FnMeta {
    pub name: String,
    pub num_params: usize,
    #[serde(default)]
    params: Vec<ParamMeta>,
    #[serde(default)]
    return_type: String,
    #[serde(default)]
    doc_comments: Vec<String>,
}

#[derive(Deserialize)]
struct ParamMeta {
    #[serde(default)]
    name: String,
    #[serde(rename = "type", default)]
    typ: String,
}

impl FnMeta {
    /// The signature in script terms: `progress_bar(total: i64, label: string) -> Progress`,
    /// properties as `bar.position -> i64`; `names` maps the Rust names of the registered
    /// types to the names scripts know them by.
    fn signature(&self, names: &TypeNames) -> String {
        let params: Vec<_> = self
            .params
            .iter()
            .map(|p| format!("{}: {}", p.name, script_type(&p.typ, names)))
            .collect();
        let ret = match script_type(&self.return_type, names).as_str() {
            "" | "()" => String::new(),
            t => format!(" -> {t}"),
        };
        match (self.name.strip_prefix("get$"), self.params.first()) {
            (Some(prop), Some(this)) => format!("{}.{prop}{ret}", this.name),
            _ => format!("{}({}){ret}", self.name, params.join(", ")),
        }
    }
}

/// The types every script has without registering anything, as signatures name them.
pub const BUILT_IN_TYPES: &[&str] = &[
    "string", "array", "map", "any", "i64", "f64", "bool", "range", "Fn", "()",
];

/// Rust type name (last path segment) -> the name a script knows the type by.
type TypeNames = std::collections::HashMap<String, String>;

/// The names of the types every domain registers (a domain's functions take other domains'
/// types: `train` takes a `Model`).
fn all_type_names() -> TypeNames {
    let mut engine = Engine::new_raw();
    for domain in DOMAINS {
        domain.register(&mut engine);
    }
    metadata(&engine, false)
        .custom_types
        .iter()
        .map(|t| {
            (
                last_segment(&t.type_name).to_string(),
                t.display_name.clone(),
            )
        })
        .collect()
}

fn last_segment(path: &str) -> &str {
    path.rsplit("::").next().unwrap_or(path).trim()
}

/// A Rust parameter or return type as a script author sees it: references and the
/// `Result` wrapper (under any alias) dropped, paths cut to their last segment, Rust's names
/// for script values and registered types replaced by the script's.
fn script_type(rust: &str, names: &TypeNames) -> String {
    let t = rust.trim();
    let t = t
        .strip_prefix("&mut ")
        .or_else(|| t.strip_prefix('&'))
        .unwrap_or(t)
        .trim();
    if t.contains("Range<") {
        return "range".into();
    }
    if let Some((outer, inner)) = t.split_once('<') {
        // `Result<T, E>`, `RhaiResultOf<T>`, a local `Res<T>`: a fallible `T`.
        if last_segment(outer).contains("Res") {
            let inner = inner.strip_suffix('>').unwrap_or(inner);
            let ok = first_generic_argument(inner);
            return script_type(ok, names);
        }
    }
    match last_segment(t) {
        "str" | "String" | "ImmutableString" => "string".into(),
        "Array" => "array".into(),
        "Map" => "map".into(),
        "Dynamic" => "any".into(),
        "INT" | "i64" => "i64".into(),
        "FLOAT" | "f64" => "f64".into(),
        "FnPtr" => "Fn".into(),
        other => names
            .get(other)
            .cloned()
            .unwrap_or_else(|| other.to_string()),
    }
}

/// `T` of `T, Box<E>`: the text up to the first comma outside angle brackets.
fn first_generic_argument(args: &str) -> &str {
    let mut depth = 0usize;
    for (i, c) in args.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => return args[..i].trim(),
            _ => {}
        }
    }
    args.trim()
}

fn metadata(engine: &Engine, include_standard: bool) -> Metadata {
    let json = engine
        .gen_fn_metadata_to_json(include_standard)
        .expect("rhai metadata serialises");
    serde_json::from_str(&json).expect("rhai metadata has the documented shape")
}

/// Every function an engine can call by name (standard packages included).
pub(crate) fn callable_functions(engine: &Engine) -> Vec<FnMeta> {
    metadata(engine, true).functions
}

/// `///` doc comments as plain markdown.
fn doc_text(lines: &[String]) -> String {
    let mut out = Vec::new();
    for block in lines {
        for line in block.lines() {
            let line = line.trim_start();
            let line = line
                .strip_prefix("///")
                .or_else(|| line.strip_prefix("//!"))
                .unwrap_or(line);
            out.push(line.strip_prefix(' ').unwrap_or(line));
        }
    }
    out.join("\n").trim().to_string()
}

/// The API of every domain, each documented from an engine holding that domain alone, with
/// the defaults markers replaced by the defaults they name.
pub fn api() -> Vec<DomainApi> {
    let mut api = documented();
    for d in &mut api {
        d.doc = defaults::expand(&d.doc);
        for t in &mut d.types {
            t.doc = defaults::expand(&t.doc);
        }
        for f in &mut d.functions {
            f.doc = defaults::expand(&f.doc);
        }
    }
    api
}

/// The API as its doc comments write it (markers unexpanded).
pub(crate) fn documented() -> Vec<DomainApi> {
    let names = all_type_names();
    DOMAINS
        .iter()
        .map(|domain| {
            let mut engine = Engine::new_raw();
            domain.register(&mut engine);
            let mut meta = metadata(&engine, false);
            // rhai orders by name and arity only; overloads need a stable order too.
            meta.functions
                .sort_by_cached_key(|f| (f.name.clone(), f.num_params, f.signature(&names)));
            DomainApi {
                name: domain.name.to_string(),
                doc: doc_text(&[meta.doc]),
                types: meta
                    .custom_types
                    .into_iter()
                    .map(|t| TypeApi {
                        name: t.display_name,
                        doc: doc_text(&t.doc_comments),
                    })
                    .collect(),
                functions: meta
                    .functions
                    .into_iter()
                    .map(|f| FunctionApi {
                        doc: doc_text(&f.doc_comments),
                        signature: f.signature(&names),
                        params: (f.params.iter())
                            .map(|p| ParamApi {
                                name: p.name.clone(),
                                ty: script_type(&p.typ, &names),
                            })
                            .collect(),
                        num_params: f.num_params,
                        name: f.name,
                    })
                    .collect(),
            }
        })
        .collect()
}

pub fn api_json() -> String {
    serde_json::to_string_pretty(&api()).expect("API serialises") + "\n"
}

/// The API as the markdown of `docs/api.md`.
pub fn api_markdown() -> String {
    let mut md = String::from(
        "# rlmec native API\n\n\
         Generated by `rlmec api` from the doc comments the functions are registered with; \
         do not edit by hand (`make docs` regenerates it, and a test fails when it is stale).\n",
    );
    for d in api() {
        md.push_str(&format!("\n## {}\n\n{}\n", d.name, d.doc));
        for t in &d.types {
            md.push_str(&format!("\n### type `{}`\n\n{}\n", t.name, t.doc));
        }
        for f in &d.functions {
            md.push_str(&format!("\n### `{}`\n\n{}\n", f.signature, f.doc));
        }
    }
    md
}
