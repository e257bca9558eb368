//! The parser: header, metadata and tensor table, read from the mapped bytes with every read
//! bounds-checked, so that a truncated or corrupt file is an error, never a panic.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::{GgmlType, GgufError, GgufValue, GgufValueType, Result, TensorInfo};

/// `GGUF` as a little-endian u32 at the start of every file.
pub(super) const MAGIC: [u8; 4] = *b"GGUF";
/// Data-section alignment when `general.alignment` is absent.
pub(super) const DEFAULT_ALIGNMENT: u64 = 32;
/// Arrays nested deeper than this are treated as a corrupt file rather than recursed into.
const MAX_ARRAY_DEPTH: usize = 8;

/// Header, metadata and tensor table, before the tensor ranges are checked against the map.
pub(super) struct Parsed {
    pub(super) version: u32,
    pub(super) metadata: BTreeMap<String, GgufValue>,
    pub(super) tensors: Vec<TensorInfo>,
    pub(super) alignment: u64,
    pub(super) data_start: usize,
}

/// Little-endian cursor over the mapped bytes; every read is bounds-checked so a truncated
/// file gives [`GgufError::Truncated`] instead of a panic.
pub(super) struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Parser<'a> {
    pub(super) fn new(bytes: &'a [u8], path: &'a Path) -> Self {
        Self {
            bytes,
            pos: 0,
            path,
        }
    }

    pub(super) fn parse(mut self) -> Result<Parsed> {
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
            return Err(GgufError::ImpossibleTensorCount {
                path: self.path.to_path_buf(),
                count,
                needed: u128::from(count) * 24,
                remaining: self.remaining(),
            });
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
pub(super) fn tensor_size(dims: &[u64], ty: GgmlType) -> Option<(usize, usize)> {
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
