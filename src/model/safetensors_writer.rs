//! Writing safetensors files one tensor at a time.
//!
//! The header (names, dtypes, shapes, offsets) follows from the tensors' metadata alone, so it
//! is written first and each tensor's bytes follow straight from its (CPU, contiguous) memory:
//! no buffer holds the whole model, which at 1.7B parameters with optimiser state would be a
//! 26 GB copy. The CRC-32 of the bytes is computed as they are written, so a checkpoint's
//! manifest needs no second read of the file.

use std::collections::BTreeMap;
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

/// Write `names` (in this order) to `path`, each tensor produced by `tensor(name)` when its
/// turn comes (on any device; copied to the CPU one at a time), with the `{"format": "pt"}`
/// metadata transformers expects. `tensor` is called twice per name: once for the header
/// (only its shape and dtype are read), once for the bytes.
pub fn write(
    path: &Path,
    names: &[String],
    tensor: impl Fn(&str) -> Tensor,
) -> Result<FileSum, String> {
    // Written by hand in the reference writer's layout (`__metadata__` first, then each tensor
    // as `{"dtype", "shape", "data_offsets"}`), so our files are byte-identical to its.
    let mut header = String::from(r#"{"__metadata__":{"format":"pt"}"#);
    let mut offset = 0usize;
    for name in names {
        let t = tensor(name);
        let (dtype, elem) = dtype_name(t.kind())
            .ok_or_else(|| format!("tensor `{name}` has unsupported kind {:?}", t.kind()))?;
        let end = offset + t.numel() * elem;
        let shape: Vec<String> = t.size().iter().map(i64::to_string).collect();
        header += &format!(
            r#",{}:{{"dtype":"{dtype}","shape":[{}],"data_offsets":[{offset},{end}]}}"#,
            Value::String(name.clone()),
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
    for name in names {
        let t = tensor(name).to_device(Device::Cpu).contiguous();
        let (_, elem) = dtype_name(t.kind()).expect("checked in the header pass");
        let len = t.numel() * elem;
        if len > 0 {
            // SAFETY: `t` is a live, contiguous CPU tensor of `numel` elements of `elem`
            // bytes; the slice is read before `t` is dropped.
            let bytes = unsafe { std::slice::from_raw_parts(t.data_ptr() as *const u8, len) };
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

/// [`write`] for a map of tensors, in name order.
pub fn write_map(path: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<FileSum, String> {
    let names: Vec<String> = tensors.keys().cloned().collect();
    write(path, &names, |name| tensors[name].shallow_clone())
}
