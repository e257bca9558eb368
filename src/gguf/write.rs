//! The writer: GGUF version 3 — header, metadata, tensor table, then each tensor's bytes at
//! an offset aligned to `general.alignment` (32 unless the metadata says otherwise), the
//! layout [`super::GgufFile`] and llama.cpp read.
//!
//! The table follows from the tensors' names, shapes and types alone, so it is written first
//! and each tensor's bytes are asked for when their turn comes: no buffer holds the whole
//! model. The file is written to `<path>.tmp` and renamed over `path` once complete, so a
//! killed save never leaves a half-written file under the real name.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use super::parse::{DEFAULT_ALIGNMENT, MAGIC, tensor_size};
use super::{GgmlType, GgufValue, GgufValueType, GgufWriteError};

/// The format version written.
const VERSION: u32 = 3;
/// ggml keeps a tensor's name in 64 bytes, NUL included.
const MAX_NAME_BYTES: usize = 63;
/// ggml tensors have at most four dimensions.
const MAX_DIMS: usize = 4;

type Result<T, E = GgufWriteError> = std::result::Result<T, E>;

/// A tensor's entry in the table: everything about it but its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// The name llama.cpp looks it up by, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Row-major shape (as [`super::TensorInfo::shape`]); the file stores it reversed.
    pub shape: Vec<usize>,
    pub ggml_type: GgmlType,
}

/// A [`TensorSpec`] checked and placed: its GGUF dims, size and offset in the data section.
struct Placed<'a> {
    spec: &'a TensorSpec,
    dims: Vec<u64>,
    n_bytes: usize,
    offset: u64,
}

/// Write a GGUF file: `metadata` in the order given, then the table of `tensors`, then each
/// tensor's bytes as `data(spec)` returns them (in the file's byte order, of the size its
/// type and shape imply). Returns the size of the file.
pub fn write(
    path: &Path,
    metadata: &[(String, GgufValue)],
    tensors: &[TensorSpec],
    mut data: impl FnMut(&TensorSpec) -> std::result::Result<Vec<u8>, String>,
) -> Result<u64> {
    let alignment = alignment(path, metadata)?;
    let placed = place(path, tensors, alignment)?;
    let mut head = Vec::new();
    head.extend(MAGIC);
    head.extend(VERSION.to_le_bytes());
    head.extend((tensors.len() as u64).to_le_bytes());
    head.extend((metadata.len() as u64).to_le_bytes());
    let mut keys = std::collections::HashSet::new();
    for (key, value) in metadata {
        if !keys.insert(key.as_str()) {
            return Err(bad_value(path, key, "given twice".into()));
        }
        put_str(&mut head, key);
        head.extend(GgufValueType::of(value).id().to_le_bytes());
        put_value(&mut head, value).map_err(|reason| bad_value(path, key, reason))?;
    }
    for p in &placed {
        put_str(&mut head, &p.spec.name);
        head.extend((p.dims.len() as u32).to_le_bytes());
        for d in &p.dims {
            head.extend(d.to_le_bytes());
        }
        head.extend(p.spec.ggml_type.id().to_le_bytes());
        head.extend(p.offset.to_le_bytes());
    }
    head.resize(head.len().next_multiple_of(alignment), 0);

    let tmp = crate::files::temp_beside(path);
    let written = write_file(&tmp, &head, &placed, &mut data)
        .map_err(|e| e.named(path))
        .and_then(|len| {
            fs::rename(&tmp, path)
                .map(|()| len)
                .map_err(|source| io_error(path, source))
        });
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Why writing the temporary file failed, before it is said of the real path.
enum FileFailure {
    Io(std::io::Error),
    Tensor { name: String, reason: String },
}

impl FileFailure {
    fn named(self, path: &Path) -> GgufWriteError {
        match self {
            Self::Io(source) => io_error(path, source),
            Self::Tensor { name, reason } => bad_tensor(path, &name, reason),
        }
    }
}

impl From<std::io::Error> for FileFailure {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

fn write_file(
    tmp: &Path,
    head: &[u8],
    placed: &[Placed],
    data: &mut impl FnMut(&TensorSpec) -> std::result::Result<Vec<u8>, String>,
) -> std::result::Result<u64, FileFailure> {
    let mut out = BufWriter::with_capacity(1 << 22, File::create(tmp)?);
    out.write_all(head)?;
    let mut at = 0u64;
    for p in placed {
        let name = || p.spec.name.clone();
        out.write_all(&vec![0u8; (p.offset - at) as usize])?;
        let bytes = data(p.spec).map_err(|reason| FileFailure::Tensor {
            name: name(),
            reason,
        })?;
        if bytes.len() != p.n_bytes {
            return Err(FileFailure::Tensor {
                name: name(),
                reason: format!(
                    "{} bytes given, its shape and type take {}",
                    bytes.len(),
                    p.n_bytes
                ),
            });
        }
        out.write_all(&bytes)?;
        at = p.offset + p.n_bytes as u64;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(head.len() as u64 + at)
}

/// `general.alignment` when the metadata sets it (a U32 power of two, as llama.cpp reads
/// it), else the format's default.
fn alignment(path: &Path, metadata: &[(String, GgufValue)]) -> Result<usize> {
    let key = "general.alignment";
    match metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v) {
        None => Ok(DEFAULT_ALIGNMENT as usize),
        Some(&GgufValue::U32(a)) if a.is_power_of_two() => Ok(a as usize),
        Some(other) => Err(bad_value(
            path,
            key,
            format!("{other:?} is not a U32 power of two"),
        )),
    }
}

/// Checks every tensor (name, shape, size) and gives each its aligned offset.
fn place<'a>(path: &Path, tensors: &'a [TensorSpec], alignment: usize) -> Result<Vec<Placed<'a>>> {
    let mut names = std::collections::HashSet::new();
    let mut offset = 0u64;
    let mut placed = Vec::with_capacity(tensors.len());
    for spec in tensors {
        let bad = |reason: String| bad_tensor(path, &spec.name, reason);
        if !names.insert(spec.name.as_str()) {
            return Err(bad("given twice".into()));
        }
        if spec.name.len() > MAX_NAME_BYTES {
            return Err(bad(format!(
                "the name is longer than ggml's {MAX_NAME_BYTES} bytes"
            )));
        }
        if spec.shape.is_empty() || spec.shape.len() > MAX_DIMS {
            return Err(bad(format!(
                "shape {:?} has {} dimensions (ggml takes 1 to {MAX_DIMS})",
                spec.shape,
                spec.shape.len()
            )));
        }
        let dims: Vec<u64> = spec.shape.iter().rev().map(|&d| d as u64).collect();
        let (_, n_bytes) = tensor_size(&dims, spec.ggml_type).ok_or_else(|| {
            bad(format!(
                "shape {:?} is not whole {} blocks of {}",
                spec.shape,
                spec.ggml_type,
                spec.ggml_type.block_size()
            ))
        })?;
        offset = offset.next_multiple_of(alignment as u64);
        placed.push(Placed {
            spec,
            dims,
            n_bytes,
            offset,
        });
        offset += n_bytes as u64;
    }
    Ok(placed)
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend((s.len() as u64).to_le_bytes());
    buf.extend(s.as_bytes());
}

/// A value's payload (its type tag is written by the caller: arrays tag their items once).
fn put_value(buf: &mut Vec<u8>, value: &GgufValue) -> std::result::Result<(), String> {
    match value {
        GgufValue::U8(v) => buf.push(*v),
        GgufValue::I8(v) => buf.extend(v.to_le_bytes()),
        GgufValue::U16(v) => buf.extend(v.to_le_bytes()),
        GgufValue::I16(v) => buf.extend(v.to_le_bytes()),
        GgufValue::U32(v) => buf.extend(v.to_le_bytes()),
        GgufValue::I32(v) => buf.extend(v.to_le_bytes()),
        GgufValue::U64(v) => buf.extend(v.to_le_bytes()),
        GgufValue::I64(v) => buf.extend(v.to_le_bytes()),
        GgufValue::F32(v) => buf.extend(v.to_le_bytes()),
        GgufValue::F64(v) => buf.extend(v.to_le_bytes()),
        GgufValue::Bool(v) => buf.push(u8::from(*v)),
        GgufValue::String(v) => put_str(buf, v),
        GgufValue::Array(item_type, items) => {
            buf.extend(item_type.id().to_le_bytes());
            buf.extend((items.len() as u64).to_le_bytes());
            for (i, item) in items.iter().enumerate() {
                // The file tags the items once: one of another type would be read as garbage.
                if GgufValueType::of(item) != *item_type {
                    return Err(format!(
                        "item {i} is {}, the array holds {item_type:?}",
                        item.describe()
                    ));
                }
                put_value(buf, item).map_err(|reason| format!("item {i}: {reason}"))?;
            }
        }
    }
    Ok(())
}

fn io_error(path: &Path, source: std::io::Error) -> GgufWriteError {
    GgufWriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn bad_value(path: &Path, key: &str, reason: String) -> GgufWriteError {
    GgufWriteError::BadValue {
        path: path.to_path_buf(),
        key: key.to_owned(),
        reason,
    }
}

fn bad_tensor(path: &Path, tensor: &str, reason: String) -> GgufWriteError {
    GgufWriteError::BadTensor {
        path: path.to_path_buf(),
        tensor: tensor.to_owned(),
        reason,
    }
}
