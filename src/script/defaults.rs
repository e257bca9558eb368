//! The option defaults the API documentation shows, generated from the option structs.
//!
//! A native's `///` doc says what each option means and writes `{defaults:NAME}` where the
//! values belong (e.g. `Defaults: {defaults:train}.`); `rlmec api` (and so `docs/api.md`)
//! replaces the marker with the defaults of the options [`TABLE`] names NAME: the struct's
//! `Default` serialised through serde, as [`crate::options`] reads option maps, each value
//! written as a script writes it — `` `epochs` 3, `lr` 5e-6, `schedule` `"cosine"`,
//! `out` unset ``. So a default is written once, in Rust, and the doc cannot restate a stale
//! one. A marker naming no entry is left in place (a test fails on it).

use serde::Serialize;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::engine::remote::RemoteOptions;
use crate::engine::served::ServeModelOptions;
use crate::generate::score::ScoreOptions;
use crate::generate::{Budget, GenerateOptions};
use crate::model::LoadOptions;
use crate::model::lora::LoraConfig;
use crate::model::scratch::ScratchConfig;
use crate::model::to_gguf::GgufOptions;
use crate::rewards::RewardOptions;
use crate::serve::ServeOptions;
use crate::tasks::load::FieldMap;
use crate::tasks::sample::SampleOptions;
use crate::tasks::synthetic::SyntheticOptions;
use crate::tasks::{FidelityOption, TaskKind};
use crate::teacher::TeacherOptions;
use crate::teacher::grm_data::GrmDataOptions;
use crate::teacher::http::HttpOptions;
use crate::teacher::spec::{CACHE_ENV, DEFAULT_CACHE, MODEL_TEACHER_MAX_NEW_TOKENS};
use crate::train::TrainOptions;
use crate::train::objective::RlmecParams;

/// The defaults one marker stands for.
pub struct Defaults {
    /// The `NAME` of `{defaults:NAME}`.
    pub name: &'static str,
    /// The natives that read these options: one overload of each shows the marker.
    pub natives: &'static [&'static str],
    /// The options in declaration order, as the doc shows them.
    pub shown: fn() -> Vec<Shown>,
}

/// Every marker a doc may use: the option structs of the natives, by marker name.
pub const TABLE: &[Defaults] = &[
    Defaults {
        name: "train",
        natives: &["train"],
        shown: || fields(&TrainOptions::default()),
    },
    Defaults {
        name: "lora",
        natives: &["train"],
        shown: || fields(&LoraConfig::default()),
    },
    Defaults {
        name: "rlmec",
        natives: &["rlmec_loss"],
        shown: || fields(&RlmecParams::default()),
    },
    Defaults {
        name: "load",
        natives: &["model_load", "model_new"],
        shown: || fields(&LoadOptions::default()),
    },
    Defaults {
        name: "gguf",
        natives: &["save_gguf"],
        shown: || fields(&GgufOptions::default()),
    },
    Defaults {
        name: "scratch",
        natives: &["model_new"],
        shown: || fields(&ScratchConfig::default()),
    },
    Defaults {
        name: "generate",
        natives: &["generate"],
        shown: || {
            let mut shown = fields(&Budget::default());
            shown.extend(fields(&GenerateOptions::default()));
            shown
        },
    },
    Defaults {
        name: "remote",
        natives: &["model_remote"],
        shown: || fields(&RemoteOptions::default()),
    },
    Defaults {
        name: "serve",
        natives: &["model_serve"],
        shown: || {
            let mut shown = fields(&ServeModelOptions::default());
            shown.extend(fields(&ServeOptions::default()));
            shown
        },
    },
    Defaults {
        name: "score",
        natives: &["score_batch"],
        shown: || fields(&ScoreOptions::default()),
    },
    Defaults {
        name: "sample",
        natives: &["sample"],
        shown: || fields(&SampleOptions::default()),
    },
    Defaults {
        name: "synthetic",
        natives: &["task_synthetic"],
        shown: || fields(&SyntheticOptions::default()),
    },
    Defaults {
        name: "fields",
        natives: &["task_load"],
        shown: || fields(&FieldMap::default()),
    },
    Defaults {
        name: "fidelity",
        natives: &["policy_prompt", "is_correct"],
        shown: || fields(&FidelityOption::default()),
    },
    Defaults {
        name: "teacher",
        natives: &["minimum_edit"],
        shown: teacher,
    },
    Defaults {
        name: "grm_data",
        natives: &["grm_data"],
        shown: || fields(&GrmDataOptions::default()),
    },
    Defaults {
        name: "rewards",
        natives: &["token_rewards"],
        shown: rewards,
    },
];

/// A teacher's options. Two defaults depend on more than the struct: the cache's path on the
/// environment (the doc must not), and an unset `max_new_tokens` on the kind of teacher.
fn teacher() -> Vec<Shown> {
    let mut shown = fields(&TeacherOptions::default());
    for s in &mut shown {
        match s.name.as_str() {
            "cache" => {
                let cache = Value::from(DEFAULT_CACHE);
                s.written = format!("`{}`", literal(&cache));
                s.value = Some(cache);
                s.note = format!("`${CACHE_ENV}` when set");
            }
            "max_new_tokens" => {
                s.note = format!(
                    "a model teacher {MODEL_TEACHER_MAX_NEW_TOKENS}, an HTTP teacher {}",
                    HttpOptions::default().max_tokens
                );
            }
            _ => {}
        }
    }
    shown
}

/// Step 6's options have no `Default`: the paper's depend on the task. Shown for QA, with
/// math's value beside each that differs.
fn rewards() -> Vec<Shown> {
    let math = fields(&RewardOptions::paper(TaskKind::Math));
    let mut shown = fields(&RewardOptions::paper(TaskKind::Qa));
    for (s, m) in shown.iter_mut().zip(math) {
        assert_eq!(s.name, m.name, "the same struct lists the same options");
        if s.value != m.value {
            s.note = format!("math: {}", m.written);
        }
    }
    shown
}

/// One option's default as a doc shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    pub name: String,
    /// The default when `written` is its literal (a script writing it gets this value);
    /// `None` when it is unset or described in words.
    pub value: Option<Value>,
    /// The value as a script writes it (backquoted unless a number or a boolean), or
    /// `unset`.
    pub written: String,
    /// Said after the value in parentheses, when not empty.
    pub note: String,
}

impl Shown {
    fn text(&self) -> String {
        let mut text = format!("`{}` {}", self.name, self.written);
        if !self.note.is_empty() {
            text.push_str(&format!(" ({})", self.note));
        }
        text
    }
}

/// The options of `defaults`' struct with their values, in declaration order (flattened
/// structs' fields where they are flattened).
pub fn fields<T: Serialize>(defaults: &T) -> Vec<Shown> {
    let json = serde_json::to_string(defaults).expect("an options struct serialises");
    let Ordered(fields) = serde_json::from_str(&json).expect("an options struct is an object");
    fields
        .into_iter()
        .map(|(name, value)| match &value {
            Value::Null => Shown {
                name,
                value: None,
                written: "unset".into(),
                note: String::new(),
            },
            Value::Bool(_) | Value::Number(_) => Shown {
                name,
                written: literal(&value),
                value: Some(value),
                note: String::new(),
            },
            _ => Shown {
                name,
                written: format!("`{}`", literal(&value)),
                value: Some(value),
                note: String::new(),
            },
        })
        .collect()
}

/// A JSON object's entries in the order they were written (serde_json's own map sorts them).
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Ordered(entries))
            }
        }
        d.deserialize_map(Entries)
    }
}

/// A value as a Rhai literal: `5e-6`, `"cosine"`, `["q_proj", "k_proj"]`, `#{r: 16}`, `()`.
pub fn literal(value: &Value) -> String {
    let list = |items: Vec<String>| items.join(", ");
    match value {
        Value::Null => "()".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            // 1e-5 rather than 0.00001; serde's `1.0` rather than Rust's `1` otherwise.
            Some(x) if n.is_f64() && x != 0.0 && !(1e-3..1e16).contains(&x.abs()) => {
                format!("{x:e}")
            }
            _ => n.to_string(),
        },
        Value::String(s) => serde_json::to_string(s).expect("a string serialises"),
        Value::Array(items) => format!("[{}]", list(items.iter().map(literal).collect())),
        Value::Object(map) => format!(
            "#{{{}}}",
            list(
                map.iter()
                    .map(|(k, v)| format!("{k}: {}", literal(v)))
                    .collect()
            )
        ),
    }
}

const MARKER: &str = "{defaults:";

/// A space that [`wrap`] does not break at.
const GLUE: &str = "\u{a0}";

/// Docs lines are wrapped at this width where a marker made them longer.
const WIDTH: usize = 88;

/// The names of the markers in `doc`, in order.
pub fn markers(doc: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = doc;
    while let Some(start) = rest.find(MARKER) {
        let after = &rest[start + MARKER.len()..];
        match after.find('}') {
            Some(end) => {
                names.push(&after[..end]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    names
}

/// `doc` with each `{defaults:NAME}` of a known NAME replaced by its options' defaults, and
/// the lines that held one wrapped.
pub fn expand(doc: &str) -> String {
    if !doc.contains(MARKER) {
        return doc.to_string();
    }
    let lines: Vec<String> = doc
        .lines()
        .map(|line| {
            let mut out = line.to_string();
            for name in markers(line) {
                if let Some(d) = TABLE.iter().find(|d| d.name == name) {
                    // The space after the option's name is glued: a wrap does not part them.
                    let text: Vec<String> = (d.shown)()
                        .iter()
                        .map(|s| s.text().replacen(' ', GLUE, 1))
                        .collect();
                    let marker = format!("{MARKER}{name}}}");
                    out = out.replacen(&marker, &text.join(", "), 1);
                }
            }
            if out == line { out } else { wrap(&out) }
        })
        .collect();
    lines.join("\n")
}

/// `line` broken at spaces into lines of at most [`WIDTH`] characters, each indented as
/// `line` is (a longer word stays whole; markdown reads a line break in a code span as a
/// space), [`GLUE`] made a space.
fn wrap(line: &str) -> String {
    let indent = &line[..line.len() - line.trim_start().len()];
    let mut out = String::new();
    let mut width = 0;
    for word in line.split(' ').filter(|w| !w.is_empty()) {
        let word = word.replace(GLUE, " ");
        let len = word.chars().count();
        if width == 0 {
            out.push_str(indent);
            width = indent.len();
        } else if width + 1 + len > WIDTH {
            out.push('\n');
            out.push_str(indent);
            width = indent.len();
        } else {
            out.push(' ');
            width += 1;
        }
        out.push_str(&word);
        width += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_declaration_order_and_write_values_as_scripts_do() {
        let shown = fields(&TrainOptions::default());
        let names: Vec<&str> = shown.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(&names[..3], ["epochs", "lr", "batch_size"]);
        let text: Vec<String> = shown.iter().map(Shown::text).collect();
        assert!(text.contains(&"`lr` 5e-6".to_string()), "{text:?}");
        assert!(
            text.contains(&"`warmup_ratio` 0.03".to_string()),
            "{text:?}"
        );
        assert!(
            text.contains(&"`schedule` `\"cosine\"`".to_string()),
            "{text:?}"
        );
        assert!(text.contains(&"`lora` unset".to_string()), "{text:?}");
        let lora: Vec<String> = fields(&LoraConfig::default())
            .iter()
            .map(Shown::text)
            .collect();
        assert_eq!(lora[0], "`r` 16");
        assert!(lora[3].starts_with("`targets` `[\"q_proj\", \"k_proj\", "));
    }

    #[test]
    fn every_option_struct_is_shown_whole() {
        let names = |shown: Vec<Shown>| {
            let mut n: Vec<String> = shown.into_iter().map(|s| s.name).collect();
            n.sort();
            n
        };
        use crate::options::names as options;
        assert_eq!(
            names(fields(&TrainOptions::default())),
            options(&TrainOptions::default())
        );
        assert_eq!(names(teacher()), options(&TeacherOptions::default()));
        let paper = RewardOptions::paper(TaskKind::Math);
        assert_eq!(names(rewards()), options(&paper));
    }

    /// Each value shown as a literal is that value when a script writes it.
    #[test]
    fn written_values_read_back_as_the_defaults() {
        let engine = rhai::Engine::new();
        let mut checked = 0;
        for d in TABLE {
            for s in (d.shown)() {
                let Some(value) = &s.value else {
                    continue;
                };
                let code = s.written.trim_matches('`');
                let read: rhai::Dynamic = engine.eval(code).unwrap();
                let read: Value = rhai::serde::from_dynamic(&read).unwrap();
                assert_eq!(&read, value, "{}: `{}` {}", d.name, s.name, s.written);
                checked += 1;
            }
        }
        assert!(checked > 50, "only {checked} values checked");
    }

    #[test]
    fn rewards_show_qa_and_where_math_differs() {
        let per_problem = rewards()
            .into_iter()
            .find(|s| s.name == "per_problem")
            .unwrap();
        assert_eq!(per_problem.text(), "`per_problem` 2 (math: 0)");
        assert!(rewards().iter().filter(|s| !s.note.is_empty()).count() == 1);
    }

    #[test]
    fn the_teacher_cache_does_not_depend_on_the_environment() {
        let cache = teacher().into_iter().find(|s| s.name == "cache").unwrap();
        assert_eq!(
            cache.text(),
            "`cache` `\"runs/teacher-cache.jsonl\"` (`$RLMEC_TEACHER_CACHE` when set)"
        );
    }

    #[test]
    fn markers_expand_and_unknown_ones_stay() {
        let doc = "Options: `batch_size` pairs.\nDefaults: {defaults:score}.\n{defaults:nope}";
        assert_eq!(markers(doc), ["score", "nope"]);
        assert_eq!(
            expand(doc),
            "Options: `batch_size` pairs.\nDefaults: `batch_size` 8.\n{defaults:nope}"
        );
    }

    #[test]
    fn long_lines_wrap_between_options_and_keep_their_indent() {
        let expanded = expand("Defaults: {defaults:train}.");
        assert!(expanded.lines().count() > 3, "{expanded}");
        for line in expanded.lines() {
            assert!(line.chars().count() <= WIDTH, "{line}");
            assert!(
                !line.starts_with(|c: char| c.is_ascii_digit()),
                "parted: {line}"
            );
        }
        assert_eq!(
            expanded.split_whitespace().collect::<Vec<_>>(),
            format!(
                "Defaults: {}.",
                fields(&TrainOptions::default())
                    .iter()
                    .map(Shown::text)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
            .split_whitespace()
            .collect::<Vec<_>>()
        );
        let item = expand("  and {defaults:train}.");
        assert!(
            item.lines()
                .all(|l| l.starts_with("  ") && !l.starts_with("   "))
        );
    }

    /// The natives' doc comments as written: (native, doc) of every function.
    fn documented() -> Vec<(String, String)> {
        crate::script::api::documented()
            .into_iter()
            .flat_map(|d| d.functions)
            .map(|f| (f.name, f.doc))
            .collect()
    }

    #[test]
    fn every_marker_names_an_entry_and_each_entry_its_natives() {
        let docs = documented();
        for (native, doc) in &docs {
            for name in markers(doc) {
                let entry = TABLE.iter().find(|d| d.name == name);
                assert!(entry.is_some(), "{native}: no defaults named `{name}`");
                assert!(
                    entry.unwrap().natives.contains(&native.as_str()),
                    "{native} shows {{defaults:{name}}} but the table does not list it"
                );
            }
        }
        for d in TABLE {
            for native in d.natives {
                assert!(
                    docs.iter()
                        .any(|(n, doc)| n == native && markers(doc).contains(&d.name)),
                    "no overload of {native} shows {{defaults:{}}}",
                    d.name
                );
            }
        }
    }

    /// The defaults are generated; what each option means is not: a doc that shows an
    /// option's default must also say what it is.
    #[test]
    fn every_option_shown_is_explained_in_the_prose() {
        let (mut checked, mut unexplained) = (0, Vec::new());
        for (native, doc) in documented() {
            let mut prose = doc.clone();
            for name in markers(&doc) {
                prose = prose.replace(&format!("{MARKER}{name}}}"), "");
            }
            for name in markers(&doc) {
                let d = TABLE.iter().find(|d| d.name == name).unwrap();
                for s in (d.shown)() {
                    if !prose.contains(&format!("`{}`", s.name)) {
                        unexplained.push(format!("{native}: `{}` ({{defaults:{name}}})", s.name));
                    }
                    checked += 1;
                }
            }
        }
        assert!(
            unexplained.is_empty(),
            "docs that show these options' defaults do not say what they are: {unexplained:#?}"
        );
        assert!(checked > 80, "only {checked} options checked");
    }
}
