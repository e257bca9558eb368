//! Errors of the GGUF reader and writer; every variant names the file it concerns.

use std::path::PathBuf;

use super::GgmlType;

/// Everything that can go wrong reading a GGUF file; each variant names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: file truncated at byte {offset} while reading {what}")]
    Truncated {
        path: PathBuf,
        offset: usize,
        what: &'static str,
    },
    #[error("{path}: not a GGUF file (magic {found:?}, expected \"GGUF\")")]
    BadMagic { path: PathBuf, found: [u8; 4] },
    #[error("{path}: unsupported GGUF version {version} (supported: 2, 3)")]
    UnsupportedVersion { path: PathBuf, version: u32 },
    #[error("{path}: metadata key `{key}` has unknown value type {type_id}")]
    UnknownValueType {
        path: PathBuf,
        key: String,
        type_id: u32,
    },
    #[error("{path}: tensor `{tensor}` has unknown ggml type {type_id}")]
    UnknownTensorType {
        path: PathBuf,
        tensor: String,
        type_id: u32,
    },
    #[error("{path}: malformed file at byte {offset}: {reason}")]
    Malformed {
        path: PathBuf,
        offset: usize,
        reason: String,
    },
    #[error(
        "{path}: tensor `{tensor}` data [{start}, {end}) lies outside the file ({file_len} bytes) \
         or is not aligned to {alignment}"
    )]
    TensorOutOfRange {
        path: PathBuf,
        tensor: String,
        start: u64,
        end: u64,
        file_len: usize,
        alignment: u64,
    },
    #[error(
        "{path}: the tensor count {count} cannot be right: a table of that many tensors needs \
         at least {needed} bytes and {remaining} remain (a corrupt header, or a truncated file)"
    )]
    ImpossibleTensorCount {
        path: PathBuf,
        count: u64,
        needed: u128,
        remaining: usize,
    },
    #[error(
        "{path}: tensors `{first}` and `{second}` share bytes (data [{first_start}, {first_end}) \
         and [{second_start}, ...)): a corrupt tensor type, shape or offset"
    )]
    TensorsOverlap {
        path: PathBuf,
        first: String,
        second: String,
        first_start: u64,
        first_end: u64,
        second_start: u64,
    },
    #[error("{path}: metadata key `{key}` is missing")]
    MissingKey { path: PathBuf, key: String },
    #[error("{path}: metadata key `{key}` is {found}, expected {expected}")]
    WrongType {
        path: PathBuf,
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("{path}: no tensor named `{tensor}`")]
    MissingTensor { path: PathBuf, tensor: String },
    #[error("{path}: tensor `{tensor}` has type {ggml_type}, which cannot be dequantised")]
    UnsupportedDequant {
        path: PathBuf,
        tensor: String,
        ggml_type: GgmlType,
    },
}

/// Everything that can go wrong writing a GGUF file; each variant names the file (the real
/// one, not the temporary file written first).
#[derive(Debug, thiserror::Error)]
pub enum GgufWriteError {
    #[error("{path}: cannot write: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: metadata key `{key}`: {reason}")]
    BadValue {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("{path}: tensor `{tensor}`: {reason}")]
    BadTensor {
        path: PathBuf,
        tensor: String,
        reason: String,
    },
}

pub type Result<T, E = GgufError> = std::result::Result<T, E>;
