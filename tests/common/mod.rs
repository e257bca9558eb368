//! Helpers shared by the model tests: fixture paths and reading the JSON references.
#![allow(dead_code)] // each test crate uses its own subset

pub mod cli;
pub mod mock_api;
pub mod remote;
pub mod teacher_server;
pub mod tiny;
pub mod training;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// `tests/fixtures/model/<name>`.
pub fn model_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/model")
        .join(name)
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A JSON array of token ids.
pub fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .expect("an array of ids")
        .iter()
        .map(|x| x.as_i64().expect("an id"))
        .collect()
}

/// A JSON array of numbers.
pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

/// Each of `got` within `tol` of `want`, naming `what` and the position that is not.
pub fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (t, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((*g as f64 - w).abs() < tol, "{what}[{t}]: {g} vs {w}");
    }
}

/// A model reference's scoring inputs: (prompt, continuation) token ids.
pub fn score_pairs(r: &Value) -> Vec<(Vec<i64>, Vec<i64>)> {
    r["prompts"]
        .as_array()
        .expect("prompts")
        .iter()
        .zip(
            r["score"]["continuations"]
                .as_array()
                .expect("continuations"),
        )
        .map(|(p, c)| (ids(p), ids(c)))
        .collect()
}
