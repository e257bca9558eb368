//! File natives: the JSON and JSONL that every stage reads and writes.

use rhai::plugin::*;

use super::engine::Domain;

pub const DOMAIN: Domain = Domain {
    name: "io",
    module: || exported_module!(io_api),
    extra: |_| {},
};

use super::json::{from_json, to_json};

/// A script array of records as `T`s; an element that does not fit names its index
/// (`what`: the call, `item`: what an element is, e.g. "record").
pub fn from_array<T: serde::de::DeserializeOwned>(
    what: &str,
    item: &str,
    array: &rhai::Array,
) -> Result<Vec<T>, Box<EvalAltResult>> {
    // Through JSON: its checks (no NaN, no closure), and serde_json's plain messages
    // ("missing field `solution`", which rhai's own deserialiser calls a syntax error) with
    // the field they are about.
    (array.iter().enumerate())
        .map(|(i, v)| {
            let at = format!("{what}: {item} {i}");
            let json = to_json(v, &at)?;
            serde_path_to_error::deserialize::<_, T>(json).map_err(|e| {
                match e.path().to_string().as_str() {
                    "." => format!("{at}: {}", e.inner()),
                    field => format!("{at}: field `{field}`: {}", e.inner()),
                }
                .into()
            })
        })
        .collect()
}

/// A stage's records as a script array (`what` names the stage in errors).
pub fn to_array(
    what: &str,
    records: &[serde_json::Value],
) -> Result<rhai::Array, Box<EvalAltResult>> {
    records
        .iter()
        .map(|v| from_json(v).map_err(|e| format!("{what}: {e}").into()))
        .collect()
}

/// The option `out` of the natives that make a stage's records: a JSONL file to write them
/// to as well; none when empty.
#[derive(Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordsOut {
    out: String,
}

impl RecordsOut {
    /// Write `records` (anything serialisable, one a line) atomically, then return them as
    /// a script array (`what` names the native in errors).
    pub fn write<T: serde::Serialize>(
        &self,
        what: &str,
        records: &[T],
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        let json: Vec<serde_json::Value> = records
            .iter()
            .map(|r| serde_json::to_value(r).map_err(|e| format!("{what}: {e}")))
            .collect::<Result<_, _>>()?;
        if !self.out.is_empty() {
            crate::files::write_jsonl(std::path::Path::new(&self.out), &json)
                .map_err(|e| format!("{what}: {e}"))?;
        }
        to_array(what, &json)
    }
}

/// Reading and writing JSON and JSONL files. Writes are atomic (temp file, then rename),
/// and a malformed line is an error naming the file and the line number.
#[export_module]
pub mod io_api {
    use std::path::Path;

    use rhai::Array;

    use super::{from_json, to_json};
    use crate::files;

    /// Every record of a JSONL file (blank lines skipped), as an array of maps.
    ///
    /// ```rhai
    /// let recs = read_jsonl("data/qa/ecqa/test.jsonl");
    /// print(recs[0].answer);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn read_jsonl(path: &str) -> Result<Array, Box<EvalAltResult>> {
        let records = files::read_jsonl(Path::new(path)).map_err(|e| e.to_string())?;
        records.iter().map(from_json).collect()
    }

    /// Write `records` to `path`, one JSON value per line, atomically (parents created).
    ///
    /// ```rhai
    /// write_jsonl("/tmp/rlmec-doc/out.jsonl", [#{id: 1}, #{id: 2}]);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn write_jsonl(path: &str, records: Array) -> Result<(), Box<EvalAltResult>> {
        let values = records
            .iter()
            .enumerate()
            .map(|(i, r)| to_json(r, &format!("write_jsonl: {path}: record {i}")))
            .collect::<Result<Vec<_>, _>>()?;
        files::write_jsonl(Path::new(path), &values).map_err(|e| e.to_string().into())
    }

    /// The value in a JSON file.
    ///
    /// ```rhai
    /// write_json("/tmp/rlmec-doc/cfg.json", #{lr: 5e-6});
    /// print(read_json("/tmp/rlmec-doc/cfg.json").lr);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn read_json(path: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        from_json(&files::read_json(Path::new(path)).map_err(|e| e.to_string())?)
    }

    /// Write `value` as pretty-printed JSON, atomically (parents created).
    ///
    /// ```rhai
    /// write_json("/tmp/rlmec-doc/summary.json", #{accuracy: 0.5, n: 100});
    /// ```
    #[rhai_fn(return_raw)]
    pub fn write_json(path: &str, value: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let json = to_json(&value, &format!("write_json: {path}"))?;
        files::write_json(Path::new(path), &json).map_err(|e| e.to_string().into())
    }

    /// Write `text` to a file as is (a CSV table, a report), atomically (parents created).
    ///
    /// ```rhai
    /// write_text("/tmp/rlmec-doc/table.csv", "model,accuracy\nstart,0.25\n");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn write_text(path: &str, text: &str) -> Result<(), Box<EvalAltResult>> {
        files::write_atomic(Path::new(path), text.as_bytes()).map_err(|e| e.to_string().into())
    }

    /// Whether `path` exists (file or folder).
    ///
    /// ```rhai
    /// if !file_exists("data/models/SmolLM2-135M-Instruct.Q4_1.gguf") { print("run `make setup`"); }
    /// ```
    pub fn file_exists(path: &str) -> bool {
        Path::new(path).exists()
    }

    /// A file the project ships, named by its path in the project (`data/qa/ecqa`): found
    /// from the working directory, under `$RLMEC_HOME`, or beside the running script and
    /// above it — so an installed `rlmec` runs the shipped scripts from any folder. Found
    /// nowhere, the path comes back as given.
    ///
    /// ```rhai
    /// let ecqa = shipped("data/qa/ecqa");
    /// if !file_exists(`${ecqa}/test.jsonl`) { throw "no ECQA"; }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn shipped(ctx: NativeCallContext, path: &str) -> Result<String, Box<EvalAltResult>> {
        let sc = crate::script::ScriptContext::of(&ctx)?;
        let found = crate::shipped::locate(Path::new(path), sc.script());
        Ok(found.to_string_lossy().into_owned())
    }
}
