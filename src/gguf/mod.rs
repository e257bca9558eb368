//! Reader and writer for GGUF model files (llama.cpp's format; reads versions 2 and 3,
//! writes 3).
//!
//! The file is memory-mapped, so opening it only parses the header, the metadata and the tensor
//! table; tensor bytes stay in the page cache until [`GgufFile::dequantize`] turns one into `f32`.
//! Shapes are reported both in GGUF's order ([`TensorInfo::dims`], fastest-varying first, as
//! ggml's `ne`) and in row-major order ([`TensorInfo::shape`]), which is what a tensor library
//! wants for the dequantised `Vec<f32>`.
//!
//! Reader and writer know nothing of any tensor library or model architecture: [`crate::model`]
//! turns the dequantised values into tch tensors and undoes llama.cpp's Q/K row permutation
//! ([`crate::model::from_gguf`]), and [`crate::tokenize`] builds a tokenizer from the
//! `tokenizer.ggml.*` metadata. Here, the file API ([`GgufFile`], [`TensorInfo`]) sits on
//! the parser (`parse.rs`), the metadata values ([`GgufValue`]), ggml's type table
//! ([`GgmlType`]), the dequantisation kernels (`dequant.rs`) and the errors ([`GgufError`]).
//! The writer (`write.rs`: [`write`], [`TensorSpec`]) takes metadata values and tensor bytes
//! already in a ggml type; [`crate::model::to_gguf`] makes them from a model.

mod dequant;
mod error;
mod ggml_type;
mod parse;
#[cfg(test)]
pub(crate) mod tests;
mod value;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

pub use error::{GgufError, GgufWriteError, Result};
pub use ggml_type::GgmlType;
use parse::Parser;
pub use value::{GgufValue, GgufValueType};
pub use write::{TensorSpec, write};

/// One entry of the tensor table. Sizes are validated against the file when it is opened.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    name: String,
    dims: Vec<u64>,
    ggml_type: GgmlType,
    offset: u64,
    n_elements: usize,
    n_bytes: usize,
}

impl TensorInfo {
    /// Tensor name as in the file, e.g. `blk.0.attn_q.weight`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Dimensions in GGUF/ggml order: `dims[0]` is the contiguous (column) dimension.
    pub fn dims(&self) -> &[u64] {
        &self.dims
    }

    /// Row-major shape (GGUF dims reversed), matching the layout of [`GgufFile::dequantize`].
    pub fn shape(&self) -> Vec<usize> {
        // Every dim fits in usize: their product was checked to when the table was read.
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// Storage type of the tensor's data.
    pub fn ggml_type(&self) -> GgmlType {
        self.ggml_type
    }

    /// Byte offset of the tensor's data relative to the start of the data section.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of values (product of the dims).
    pub fn n_elements(&self) -> usize {
        self.n_elements
    }

    /// Size of the tensor's data in the file.
    pub fn n_bytes(&self) -> usize {
        self.n_bytes
    }
}

/// A dequantised tensor: row-major `f32` values and their shape.
#[derive(Debug, Clone, PartialEq)]
pub struct F32Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// An opened, memory-mapped GGUF file.
pub struct GgufFile {
    path: PathBuf,
    mmap: Mmap,
    version: u32,
    metadata: BTreeMap<String, GgufValue>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_start: usize,
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .field("data_start", &self.data_start)
            .finish()
    }
}

impl GgufFile {
    /// Maps the file and parses header, metadata and tensor table, validating every tensor's
    /// byte range so later reads cannot go out of bounds.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let io_err = |source| GgufError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io_err)?;
        // SAFETY: the map is read-only and private to this struct; like every mmap-based model
        // loader we rely on the file not being truncated or rewritten while it is open.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io_err)?;
        let parsed = Parser::new(&mmap, &path).parse()?;
        let file = Self {
            path,
            mmap,
            version: parsed.version,
            metadata: parsed.metadata,
            tensor_index: index_tensors(&parsed.tensors),
            tensors: parsed.tensors,
            alignment: parsed.alignment,
            data_start: parsed.data_start,
        };
        file.check_tensor_ranges()?;
        Ok(file)
    }

    /// The file this was opened from; every error names it too.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Alignment of the data section and of each tensor in it.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute file offset where the data section (tensor offset 0) starts.
    pub fn data_start(&self) -> usize {
        self.data_start
    }

    /// All metadata, sorted by key.
    pub fn metadata(&self) -> &BTreeMap<String, GgufValue> {
        &self.metadata
    }

    /// Raw metadata value, for keys without a typed getter or of optional type.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// Tensor table in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// Table entry of the named tensor; errors name the tensor and the file.
    pub fn tensor_info(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor_index
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| GgufError::MissingTensor {
                path: self.path.clone(),
                tensor: name.to_owned(),
            })
    }

    /// The tensor's raw bytes, straight from the map.
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8]> {
        let info = self.tensor_info(name)?;
        Ok(&self.mmap[self.byte_range(info)])
    }

    /// Dequantises a tensor to row-major `f32` (shape = [`TensorInfo::shape`]).
    pub fn dequantize(&self, name: &str) -> Result<F32Tensor> {
        let info = self.tensor_info(name)?;
        let mut data = vec![0.0f32; info.n_elements];
        let src = &self.mmap[self.byte_range(info)];
        if !dequant::dequantize(info.ggml_type, src, &mut data) {
            return Err(GgufError::UnsupportedDequant {
                path: self.path.clone(),
                tensor: info.name.clone(),
                ggml_type: info.ggml_type,
            });
        }
        Ok(F32Tensor {
            shape: info.shape(),
            data,
        })
    }

    /// Calls `get` only when `key` is present, for keys a file may legitimately omit:
    /// `file.optional("tokenizer.chat_template", GgufFile::get_str)?`.
    pub fn optional<'a, T>(
        &'a self,
        key: &str,
        get: impl FnOnce(&'a Self, &str) -> Result<T>,
    ) -> Result<Option<T>> {
        if self.metadata.contains_key(key) {
            get(self, key).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Any integer value that fits in `u32` (writers disagree on the width of counts).
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.typed(key, "u32", |v| v.as_u64().and_then(|n| n.try_into().ok()))
    }

    /// Any non-negative integer value.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.typed(key, "u64", GgufValue::as_u64)
    }

    /// Any integer value that fits in `i32`.
    pub fn get_i32(&self, key: &str) -> Result<i32> {
        self.typed(key, "i32", |v| v.as_i64().and_then(|n| n.try_into().ok()))
    }

    /// Any integer value that fits in `i64`.
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        self.typed(key, "i64", GgufValue::as_i64)
    }

    /// Accepts F32 or F64 (narrowed), since both appear for hyper-parameters in the wild.
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.typed(key, "f32", |v| v.as_f64().map(|x| x as f32))
    }

    /// F32 (widened) or F64.
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        self.typed(key, "f64", GgufValue::as_f64)
    }

    /// A BOOL value (any non-zero byte reads as true).
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        self.typed(key, "bool", GgufValue::as_bool)
    }

    /// A STRING value, borrowed from the parsed metadata.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.typed(key, "string", GgufValue::as_str)
    }

    /// An ARRAY of any item type, for nested or mixed-width arrays.
    pub fn get_array(&self, key: &str) -> Result<&[GgufValue]> {
        self.typed(key, "array", GgufValue::as_array)
    }

    /// An ARRAY of STRING, e.g. `tokenizer.ggml.tokens`.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        self.typed(key, "array of string", |v| {
            v.as_array()?.iter().map(GgufValue::as_str).collect()
        })
    }

    /// Integer array (any integer item type) whose items all fit in `i32`.
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        self.typed(key, "array of i32", |v| {
            v.as_array()?
                .iter()
                .map(|x| x.as_i64().and_then(|n| n.try_into().ok()))
                .collect()
        })
    }

    /// An ARRAY of F32 or F64, narrowed to `f32`.
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        self.typed(key, "array of f32", |v| {
            v.as_array()?
                .iter()
                .map(|x| x.as_f64().map(|f| f as f32))
                .collect()
        })
    }

    /// Shared body of the typed getters: missing key and failed conversion become errors
    /// naming the key and the file.
    fn typed<'a, T>(
        &'a self,
        key: &str,
        expected: &'static str,
        convert: impl FnOnce(&'a GgufValue) -> Option<T>,
    ) -> Result<T> {
        let value = self
            .metadata
            .get(key)
            .ok_or_else(|| GgufError::MissingKey {
                path: self.path.clone(),
                key: key.to_owned(),
            })?;
        convert(value).ok_or_else(|| GgufError::WrongType {
            path: self.path.clone(),
            key: key.to_owned(),
            expected,
            found: value.describe(),
        })
    }

    /// Absolute byte range of a tensor; valid because [`Self::check_tensor_ranges`] passed.
    fn byte_range(&self, info: &TensorInfo) -> std::ops::Range<usize> {
        let start = self.data_start + info.offset as usize;
        start..start + info.n_bytes
    }

    /// Every tensor's data inside the file, aligned, and no two sharing bytes (as llama.cpp's
    /// loader checks): one flipped bit in a tensor's type changes its size, and its data
    /// would run into the next tensor's.
    fn check_tensor_ranges(&self) -> Result<()> {
        for info in &self.tensors {
            let start = (self.data_start as u64).checked_add(info.offset);
            let end = start.and_then(|s| s.checked_add(info.n_bytes as u64));
            let fits = end.is_some_and(|e| e <= self.mmap.len() as u64);
            if !fits || !info.offset.is_multiple_of(self.alignment) {
                return Err(GgufError::TensorOutOfRange {
                    path: self.path.clone(),
                    tensor: info.name.clone(),
                    start: start.unwrap_or(u64::MAX),
                    end: end.unwrap_or(u64::MAX),
                    file_len: self.mmap.len(),
                    alignment: self.alignment,
                });
            }
        }
        let mut by_offset: Vec<&TensorInfo> = self.tensors.iter().collect();
        by_offset.sort_by_key(|t| t.offset);
        for pair in by_offset.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if a.offset + a.n_bytes as u64 > b.offset && a.n_bytes > 0 && b.n_bytes > 0 {
                return Err(GgufError::TensorsOverlap {
                    path: self.path.clone(),
                    first: a.name.clone(),
                    second: b.name.clone(),
                    first_start: self.data_start as u64 + a.offset,
                    first_end: self.data_start as u64 + a.offset + a.n_bytes as u64,
                    second_start: self.data_start as u64 + b.offset,
                });
            }
        }
        Ok(())
    }
}

fn index_tensors(tensors: &[TensorInfo]) -> HashMap<String, usize> {
    tensors
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect()
}
