//! Writing safetensors files one tensor at a time.
//!
//! The header (names, dtypes, shapes, offsets) follows from the tensors' metadata alone, so it
//! is written first and each tensor's bytes follow straight from its (CPU, contiguous) memory:
//! no buffer holds the whole model, which at 1.7B parameters with optimiser state would be a
//! 26 GB copy. The CRC-32 of the bytes is computed as they are written, so a checkpoint's
//! manifest needs no second read of the file.

use std::collections::HashMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde_json::Value;
use tch::{Device, Kind, Tensor};

/// Size and CRC-32 of a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileSum {
    pub bytes: u64,
    pub crc32: u32,
}

fn dtype_name(kind: Kind) -> Option<(&'static str, usize)> {
    match kind {
        Kind::Float => Some(("F32", 4)),
        Kind::BFloat16 => Some(("BF16", 2)),
        Kind::Half => Some(("F16", 2)),
        Kind::Double => Some(("F64", 8)),
        _ => None,
    }
}

/// Counts and checksums what passes through.
struct Summing<W: Write> {
    inner: W,
    hasher: crc32fast::Hasher,
    bytes: u64,
}

impl<W: Write> Write for Summing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Write the tensors `names` to `path`, each produced by `tensor(name)` when its turn comes
/// (on any device; copied to the CPU one at a time), with the `{"format": "pt"}` metadata
/// transformers expects. `meta(name)` gives each one's dtype and shape beforehand, for the
/// header. As the reference writer does, the data is laid out by element size (largest
/// first, so every tensor stays aligned), then by name.
pub fn write(
    path: &Path,
    names: &[String],
    meta: impl Fn(&str) -> (Kind, Vec<i64>),
    tensor: impl Fn(&str) -> Tensor,
) -> Result<FileSum, String> {
    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        let (kind, shape) = meta(name);
        let (dtype, elem) = dtype_name(kind)
            .ok_or_else(|| format!("tensor `{name}` has unsupported kind {kind:?}"))?;
        let numel: i64 = shape.iter().product();
        entries.push((name, dtype, elem, shape, numel as usize * elem));
    }
    entries.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(b.0)));
    // Written by hand in the reference writer's layout (`__metadata__` first, then each tensor
    // as `{"dtype", "shape", "data_offsets"}`), so our files are byte-identical to its.
    let mut header = String::from(r#"{"__metadata__":{"format":"pt"}"#);
    let mut offset = 0usize;
    for (name, dtype, _, shape, len) in &entries {
        let end = offset + len;
        let shape: Vec<String> = shape.iter().map(i64::to_string).collect();
        header += &format!(
            r#",{}:{{"dtype":"{dtype}","shape":[{}],"data_offsets":[{offset},{end}]}}"#,
            Value::String(name.to_string()),
            shape.join(",")
        );
        offset = end;
    }
    header.push('}');
    let mut header = header.into_bytes();
    // The data that follows starts 8-byte aligned, as the reference writer pads it.
    header.resize(header.len().next_multiple_of(8), b' ');

    let file = fs::File::create(path).map_err(|e| e.to_string())?;
    let mut out = Summing {
        inner: BufWriter::with_capacity(1 << 22, file),
        hasher: crc32fast::Hasher::new(),
        bytes: 0,
    };
    let io = |e: std::io::Error| e.to_string();
    out.write_all(&(header.len() as u64).to_le_bytes())
        .map_err(io)?;
    out.write_all(&header).map_err(io)?;
    for (name, _, elem, shape, len) in &entries {
        let t = tensor(name).to_device(Device::Cpu).contiguous();
        if t.size() != *shape || dtype_name(t.kind()).map(|d| d.1) != Some(*elem) {
            return Err(format!(
                "tensor `{name}` changed while being written ({:?} {:?}, the header says {shape:?})",
                t.kind(),
                t.size()
            ));
        }
        if *len > 0 {
            // SAFETY: `t` is a live, contiguous CPU tensor of `len` bytes (checked above); the
            // slice is read before `t` is dropped.
            let bytes = unsafe { std::slice::from_raw_parts(t.data_ptr() as *const u8, *len) };
            out.write_all(bytes).map_err(io)?;
        }
    }
    let sum = FileSum {
        bytes: out.bytes,
        crc32: out.hasher.clone().finalize(),
    };
    let file = out.inner.into_inner().map_err(|e| e.to_string())?;
    file.sync_all().map_err(io)?;
    Ok(sum)
}

/// [`write`] for tensors at hand.
pub fn write_all(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<FileSum, String> {
    let names: Vec<String> = tensors.keys().cloned().collect();
    write(
        path,
        &names,
        |name| (tensors[name].kind(), tensors[name].size()),
        |name| tensors[name].shallow_clone(),
    )
}
