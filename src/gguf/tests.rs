//! Tests against gguf-py / transformers references in `tests/fixtures/gguf` (regenerate with
//! `tests/fixtures/gguf/make_gguf_fixtures.py`). Tests on the real model read `RLMEC_DEFAULT_GGUF`
//! and are skipped, with a note, when the file is absent.
//!
//! This module holds what the tests share (fixtures, the real model, comparisons, a builder of
//! GGUF bytes by hand), also used by the GGUF tests of [`crate::model`] and
//! [`crate::tokenize`]; the tests themselves are by topic: reading well-formed files
//! (`tests/read.rs`), rejecting malformed ones (`tests/malformed.rs`), dequantising
//! (`tests/dequant.rs`) and writing files the reader reads back (`tests/write.rs`).

mod dequant;
mod malformed;
mod read;
mod write;

use std::path::PathBuf;

use serde_json::Value;

use super::{GgufFile, Result};

pub(crate) fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gguf")
        .join(name)
}

pub(crate) fn fixture_json(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name)).expect("fixture json readable");
    serde_json::from_str(&text).expect("fixture json valid")
}

/// The real default model, or `None` (after printing why) so the caller can skip.
pub(crate) fn default_model() -> Option<PathBuf> {
    let path = std::env::var_os("RLMEC_DEFAULT_GGUF").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/data/models/SmolLM2-135M-Instruct.Q4_1.gguf"
            ))
        },
        PathBuf::from,
    );
    crate::testing::input_present(&path, "run `make setup`").then_some(path)
}

pub(crate) fn f32s(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_f64().expect("number") as f32)
        .collect()
}

pub(crate) fn usizes(value: &Value) -> Vec<usize> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_u64().expect("integer") as usize)
        .collect()
}

/// Bit-exact comparison (so -0.0 vs 0.0 and the last ulp both count).
pub(crate) fn assert_bits_eq(actual: &[f32], expected: &[f32], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(a.to_bits(), e.to_bits(), "{what}[{i}]: {a} != {e}");
    }
}

pub(crate) fn assert_close(actual: f64, expected: f64, what: &str) {
    let tol = 1e-9 * expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= tol,
        "{what}: {actual} != {expected}"
    );
}

/// Builds GGUF bytes by hand for the error cases the Python writer refuses to produce.
#[derive(Default)]
pub(crate) struct GgufBuilder {
    version: u32,
    kvs: Vec<u8>,
    n_kv: u64,
    tensors: Vec<u8>,
    n_tensors: u64,
}

impl GgufBuilder {
    pub(crate) fn new() -> Self {
        Self {
            version: 3,
            ..Self::default()
        }
    }

    fn put_str(buf: &mut Vec<u8>, s: &str) {
        buf.extend((s.len() as u64).to_le_bytes());
        buf.extend(s.as_bytes());
    }

    /// A key with a raw type id and already-encoded payload.
    pub(crate) fn raw_kv(mut self, key: &str, type_id: u32, payload: &[u8]) -> Self {
        Self::put_str(&mut self.kvs, key);
        self.kvs.extend(type_id.to_le_bytes());
        self.kvs.extend(payload);
        self.n_kv += 1;
        self
    }

    pub(crate) fn str_kv(self, key: &str, value: &str) -> Self {
        let mut payload = Vec::new();
        Self::put_str(&mut payload, value);
        self.raw_kv(key, 8, &payload)
    }

    pub(crate) fn str_array_kv(self, key: &str, values: &[&str]) -> Self {
        let mut payload = Vec::new();
        payload.extend(8u32.to_le_bytes());
        payload.extend((values.len() as u64).to_le_bytes());
        for value in values {
            Self::put_str(&mut payload, value);
        }
        self.raw_kv(key, 9, &payload)
    }

    fn tensor(mut self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> Self {
        Self::put_str(&mut self.tensors, name);
        self.tensors.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.tensors.extend(d.to_le_bytes());
        }
        self.tensors.extend(type_id.to_le_bytes());
        self.tensors.extend(offset.to_le_bytes());
        self.n_tensors += 1;
        self
    }

    /// Header, metadata, tensor table, padding to 32 and then `data`.
    pub(crate) fn build(&self, data: &[u8]) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend(self.n_tensors.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kvs);
        out.extend(&self.tensors);
        out.resize(out.len().next_multiple_of(32), 0);
        out.extend(data);
        out
    }
}

pub(crate) fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    file
}

fn open_bytes(bytes: &[u8]) -> Result<GgufFile> {
    let file = write_temp(bytes);
    GgufFile::open(file.path())
}
