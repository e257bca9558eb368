//! Reader for GGUF model files (llama.cpp's format, versions 2 and 3).
//!
//! The file is memory-mapped, so opening it only parses the header, the metadata and the tensor
//! table; tensor bytes stay in the page cache until [`GgufFile::dequantize`] turns one into `f32`.
//! Shapes are reported both in GGUF's order ([`TensorInfo::dims`], fastest-varying first, as
//! ggml's `ne`) and in row-major order ([`TensorInfo::shape`]), which is what a tensor library
//! wants for the dequantised `Vec<f32>`.

mod dequant;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

/// `GGUF` as a little-endian u32 at the start of every file.
const MAGIC: [u8; 4] = *b"GGUF";
/// Data-section alignment when `general.alignment` is absent.
const DEFAULT_ALIGNMENT: u64 = 32;
/// Arrays nested deeper than this are treated as a corrupt file rather than recursed into.
const MAX_ARRAY_DEPTH: usize = 8;

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
    #[error(
        "cannot reverse the Q/K permutation of a {rows}x{cols} matrix holding {len} values \
         with {n_head} heads (rows must split into 2 halves per head)"
    )]
    PermuteShape {
        rows: usize,
        cols: usize,
        len: usize,
        n_head: usize,
    },
}

pub type Result<T, E = GgufError> = std::result::Result<T, E>;

/// The type tag of a metadata value, as stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl GgufValueType {
    /// Maps GGUF's numeric tag (0..=12) to the type; `None` for tags the format does not define.
    fn from_id(id: u32) -> Option<Self> {
        use GgufValueType::*;
        const ALL: [GgufValueType; 13] = [
            U8, I8, U16, I16, U32, I32, F32, Bool, String, Array, U64, I64, F64,
        ];
        ALL.get(usize::try_from(id).ok()?).copied()
    }
}

/// One metadata value. Arrays keep their declared item type so that empty arrays stay typed.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(GgufValueType, Vec<GgufValue>),
}

impl GgufValue {
    /// Any integer value that fits in `u64`; files disagree on the width of counts and ids.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => Some(v),
            Self::I8(v) => u64::try_from(v).ok(),
            Self::I16(v) => u64::try_from(v).ok(),
            Self::I32(v) => u64::try_from(v).ok(),
            Self::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer value that fits in `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::I8(v) => Some(v.into()),
            Self::I16(v) => Some(v.into()),
            Self::I32(v) => Some(v.into()),
            Self::I64(v) => Some(v),
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Either float width; hyper-parameters are normally F32 but some writers use F64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => Some(v.into()),
            Self::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The value of a BOOL.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The text of a STRING.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(v) => Some(v),
            _ => None,
        }
    }

    /// The items of an ARRAY.
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            Self::Array(_, items) => Some(items),
            _ => None,
        }
    }

    /// Short description for "wrong type" errors, e.g. `u32` or `array of string`.
    fn describe(&self) -> String {
        match self {
            Self::Array(item, _) => format!("array of {item:?}"),
            other => format!("{:?}", GgufValueType::of(other)),
        }
    }
}

impl GgufValueType {
    fn of(value: &GgufValue) -> Self {
        match value {
            GgufValue::U8(_) => Self::U8,
            GgufValue::I8(_) => Self::I8,
            GgufValue::U16(_) => Self::U16,
            GgufValue::I16(_) => Self::I16,
            GgufValue::U32(_) => Self::U32,
            GgufValue::I32(_) => Self::I32,
            GgufValue::U64(_) => Self::U64,
            GgufValue::I64(_) => Self::I64,
            GgufValue::F32(_) => Self::F32,
            GgufValue::F64(_) => Self::F64,
            GgufValue::Bool(_) => Self::Bool,
            GgufValue::String(_) => Self::String,
            GgufValue::Array(..) => Self::Array,
        }
    }
}

/// ggml tensor types, with the block geometry needed to size any of them even when this
/// reader cannot dequantise it.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
}

/// `(ggml id, type, elements per block, bytes per block)`, from ggml's `type_traits`, in the
/// declaration order of [`GgmlType`] so a variant indexes its own row.
const GGML_TYPES: [(u32, GgmlType, usize, usize); 32] = [
    (0, GgmlType::F32, 1, 4),
    (1, GgmlType::F16, 1, 2),
    (2, GgmlType::Q4_0, 32, 18),
    (3, GgmlType::Q4_1, 32, 20),
    (6, GgmlType::Q5_0, 32, 22),
    (7, GgmlType::Q5_1, 32, 24),
    (8, GgmlType::Q8_0, 32, 34),
    (9, GgmlType::Q8_1, 32, 40),
    (10, GgmlType::Q2_K, 256, 84),
    (11, GgmlType::Q3_K, 256, 110),
    (12, GgmlType::Q4_K, 256, 144),
    (13, GgmlType::Q5_K, 256, 176),
    (14, GgmlType::Q6_K, 256, 210),
    (15, GgmlType::Q8_K, 256, 292),
    (16, GgmlType::IQ2_XXS, 256, 66),
    (17, GgmlType::IQ2_XS, 256, 74),
    (18, GgmlType::IQ3_XXS, 256, 98),
    (19, GgmlType::IQ1_S, 256, 50),
    (20, GgmlType::IQ4_NL, 32, 18),
    (21, GgmlType::IQ3_S, 256, 110),
    (22, GgmlType::IQ2_S, 256, 82),
    (23, GgmlType::IQ4_XS, 256, 136),
    (24, GgmlType::I8, 1, 1),
    (25, GgmlType::I16, 1, 2),
    (26, GgmlType::I32, 1, 4),
    (27, GgmlType::I64, 1, 8),
    (28, GgmlType::F64, 1, 8),
    (29, GgmlType::IQ1_M, 256, 56),
    (30, GgmlType::BF16, 1, 2),
    (34, GgmlType::TQ1_0, 256, 54),
    (35, GgmlType::TQ2_0, 256, 66),
    (39, GgmlType::MXFP4, 32, 17),
];

impl GgmlType {
    fn from_id(id: u32) -> Option<Self> {
        GGML_TYPES
            .iter()
            .find(|entry| entry.0 == id)
            .map(|entry| entry.1)
    }

    /// The table row of this type; `GGML_TYPES` lists the variants in declaration order.
    fn traits(self) -> (u32, GgmlType, usize, usize) {
        GGML_TYPES[self as usize]
    }

    /// ggml's numeric id for the type, as stored in the tensor table.
    pub fn id(self) -> u32 {
        self.traits().0
    }

    /// Elements per quantisation block (1 for plain float/int types).
    pub fn block_size(self) -> usize {
        self.traits().2
    }

    /// Bytes per quantisation block.
    pub fn block_bytes(self) -> usize {
        self.traits().3
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

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

/// Undoes llama.cpp's Q/K row permutation, exactly like transformers'
/// `LlamaTensorProcessor._reverse_permute_weights`.
///
/// llama.cpp's converter reorders each head's rows from HF's "first half / second half" RoPE
/// layout to interleaved pairs; models written for HF's layout need them back. `data` is a
/// row-major `[rows, cols]` matrix (as returned by [`GgufFile::dequantize`]). Pass
/// `n_head` = attention heads for `attn_q`, and the KV-head count for `attn_k`.
pub fn reverse_permute_weights(
    data: &[f32],
    rows: usize,
    cols: usize,
    n_head: usize,
) -> Result<Vec<f32>> {
    let shape_err = || GgufError::PermuteShape {
        rows,
        cols,
        len: data.len(),
        n_head,
    };
    let sized = rows.checked_mul(cols) == Some(data.len());
    if !sized || n_head == 0 || !rows.is_multiple_of(2 * n_head) {
        return Err(shape_err());
    }
    let half = rows / n_head / 2;
    let mut out = Vec::with_capacity(data.len());
    // Output row (h, j, i) is input row (h, i, j) for j in 0..2, i in 0..half.
    for h in 0..n_head {
        for j in 0..2 {
            for i in 0..half {
                let src = (h * 2 * half + 2 * i + j) * cols;
                out.extend_from_slice(&data[src..src + cols]);
            }
        }
    }
    Ok(out)
}

/// Header, metadata and tensor table, before the tensor ranges are checked against the map.
struct Parsed {
    version: u32,
    metadata: BTreeMap<String, GgufValue>,
    tensors: Vec<TensorInfo>,
    alignment: u64,
    data_start: usize,
}

/// Little-endian cursor over the mapped bytes; every read is bounds-checked so a truncated
/// file gives [`GgufError::Truncated`] instead of a panic.
struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Parser<'a> {
    fn new(bytes: &'a [u8], path: &'a Path) -> Self {
        Self {
            bytes,
            pos: 0,
            path,
        }
    }

    fn parse(mut self) -> Result<Parsed> {
        let version = self.header()?;
        let tensor_count = self.u64("tensor count")?;
        let kv_count = self.u64("metadata count")?;
        let metadata = self.metadata(kv_count)?;
        let alignment = self.alignment(&metadata)?;
        let tensors = self.tensor_table(tensor_count)?;
        let data_start = self.pos.next_multiple_of(alignment as usize);
        Ok(Parsed {
            version,
            metadata,
            tensors,
            alignment,
            data_start,
        })
    }

    fn header(&mut self) -> Result<u32> {
        let magic = self.take(4, "magic")?;
        if magic != MAGIC {
            let mut found = [0u8; 4];
            found.copy_from_slice(magic);
            return Err(GgufError::BadMagic {
                path: self.path.to_path_buf(),
                found,
            });
        }
        let version = self.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion {
                path: self.path.to_path_buf(),
                version,
            });
        }
        Ok(version)
    }

    fn metadata(&mut self, count: u64) -> Result<BTreeMap<String, GgufValue>> {
        let mut metadata = BTreeMap::new();
        for _ in 0..count {
            let key_at = self.pos;
            let key = self.string("metadata key")?;
            let type_id = self.u32("metadata value type")?;
            let value = self.value(&key, self.value_type(&key, type_id)?, 0)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(self.malformed(key_at, format!("duplicate metadata key `{key}`")));
            }
        }
        Ok(metadata)
    }

    /// `general.alignment` if present; ggml requires a non-zero power of two.
    fn alignment(&self, metadata: &BTreeMap<String, GgufValue>) -> Result<u64> {
        let Some(value) = metadata.get("general.alignment") else {
            return Ok(DEFAULT_ALIGNMENT);
        };
        match value.as_u64() {
            Some(a) if a.is_power_of_two() && usize::try_from(a).is_ok() => Ok(a),
            _ => Err(self.malformed(
                self.pos,
                format!("general.alignment {value:?} is not a power of two"),
            )),
        }
    }

    fn value_type(&self, key: &str, type_id: u32) -> Result<GgufValueType> {
        GgufValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
            path: self.path.to_path_buf(),
            key: key.to_owned(),
            type_id,
        })
    }

    fn value(&mut self, key: &str, ty: GgufValueType, depth: usize) -> Result<GgufValue> {
        Ok(match ty {
            GgufValueType::U8 => GgufValue::U8(self.array::<1>("u8")?[0]),
            GgufValueType::I8 => GgufValue::I8(i8::from_le_bytes(self.array("i8")?)),
            GgufValueType::U16 => GgufValue::U16(u16::from_le_bytes(self.array("u16")?)),
            GgufValueType::I16 => GgufValue::I16(i16::from_le_bytes(self.array("i16")?)),
            GgufValueType::U32 => GgufValue::U32(self.u32("u32")?),
            GgufValueType::I32 => GgufValue::I32(i32::from_le_bytes(self.array("i32")?)),
            GgufValueType::U64 => GgufValue::U64(self.u64("u64")?),
            GgufValueType::I64 => GgufValue::I64(i64::from_le_bytes(self.array("i64")?)),
            GgufValueType::F32 => GgufValue::F32(f32::from_le_bytes(self.array("f32")?)),
            GgufValueType::F64 => GgufValue::F64(f64::from_le_bytes(self.array("f64")?)),
            GgufValueType::Bool => GgufValue::Bool(self.array::<1>("bool")?[0] != 0),
            GgufValueType::String => GgufValue::String(self.string("string value")?),
            GgufValueType::Array => self.array_value(key, depth)?,
        })
    }

    fn array_value(&mut self, key: &str, depth: usize) -> Result<GgufValue> {
        let start = self.pos;
        if depth >= MAX_ARRAY_DEPTH {
            return Err(self.malformed(start, format!("arrays in `{key}` nested too deeply")));
        }
        let item_id = self.u32("array item type")?;
        let item_type = self.value_type(key, item_id)?;
        let count = self.u64("array length")?;
        // Every item takes at least one byte, so a count beyond the remaining bytes is corrupt;
        // checking first avoids a huge allocation from a bad length.
        if count > self.remaining() as u64 {
            return Err(self.truncated("array items"));
        }
        let mut items = Vec::with_capacity(count as usize);
        for _ in 0..count {
            items.push(self.value(key, item_type, depth + 1)?);
        }
        Ok(GgufValue::Array(item_type, items))
    }

    fn tensor_table(&mut self, count: u64) -> Result<Vec<TensorInfo>> {
        // A tensor entry is at least 24 bytes; reject impossible counts before allocating.
        if count > (self.remaining() / 24) as u64 {
            return Err(self.truncated("tensor table"));
        }
        let mut tensors = Vec::with_capacity(count as usize);
        let mut seen = HashMap::new();
        for i in 0..count {
            let at = self.pos;
            let info = self.tensor_info()?;
            if seen.insert(info.name.clone(), i).is_some() {
                return Err(self.malformed(at, format!("duplicate tensor `{}`", info.name)));
            }
            tensors.push(info);
        }
        Ok(tensors)
    }

    fn tensor_info(&mut self) -> Result<TensorInfo> {
        let at = self.pos;
        let name = self.string("tensor name")?;
        let n_dims = self.u32("tensor dimension count")?;
        if n_dims > 8 {
            return Err(self.malformed(at, format!("tensor `{name}` has {n_dims} dimensions")));
        }
        let dims = (0..n_dims)
            .map(|_| self.u64("tensor dimension"))
            .collect::<Result<Vec<_>>>()?;
        let type_id = self.u32("tensor type")?;
        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownTensorType {
            path: self.path.to_path_buf(),
            tensor: name.clone(),
            type_id,
        })?;
        let offset = self.u64("tensor offset")?;
        let (n_elements, n_bytes) = tensor_size(&dims, ggml_type)
            .ok_or_else(|| self.malformed(at, bad_shape_reason(&name, &dims, ggml_type)))?;
        Ok(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            n_elements,
            n_bytes,
        })
    }

    fn string(&mut self, what: &'static str) -> Result<String> {
        let len = self.u64(what)?;
        let len = usize::try_from(len).map_err(|_| self.truncated(what))?;
        let at = self.pos;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| self.malformed(at, format!("{what} is not UTF-8: {e}")))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.truncated(what));
        }
        let bytes = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn truncated(&self, what: &'static str) -> GgufError {
        GgufError::Truncated {
            path: self.path.to_path_buf(),
            offset: self.pos,
            what,
        }
    }

    fn malformed(&self, offset: usize, reason: String) -> GgufError {
        GgufError::Malformed {
            path: self.path.to_path_buf(),
            offset,
            reason,
        }
    }
}

/// `(elements, bytes)` of a tensor, or `None` if the row length is not a whole number of
/// blocks or the size overflows `usize`.
fn tensor_size(dims: &[u64], ty: GgmlType) -> Option<(usize, usize)> {
    let row = usize::try_from(*dims.first().unwrap_or(&1)).ok()?;
    if !row.is_multiple_of(ty.block_size()) {
        return None;
    }
    let n_elements = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))?;
    let n_bytes = (n_elements / ty.block_size()).checked_mul(ty.block_bytes())?;
    Some((n_elements, n_bytes))
}

fn bad_shape_reason(name: &str, dims: &[u64], ty: GgmlType) -> String {
    format!(
        "tensor `{name}` with dims {dims:?} does not fit {ty} blocks of {} or overflows",
        ty.block_size()
    )
}
