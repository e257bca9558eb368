//! Writing: what the writer puts in a file the reader reads back exactly — every metadata
//! value kind, F32/F16/BF16 tensors, the layout of a file gguf-py wrote — and a failed write
//! leaves nothing under the real name.

use std::path::Path;

use super::fixture;
use crate::gguf::{
    GgmlType, GgufFile, GgufValue, GgufValueType, GgufWriteError, TensorSpec, write,
};

fn spec(name: &str, shape: &[usize], ggml_type: GgmlType) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        shape: shape.to_vec(),
        ggml_type,
    }
}

fn le_bytes<const N: usize, T>(values: &[T], to_le: impl Fn(&T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(to_le).collect()
}

/// A metadata value of every kind, arrays of strings, integers, floats, nested and empty.
fn every_value_kind() -> Vec<(String, GgufValue)> {
    use GgufValue as V;
    let strings = ["a", "", "héllo ✓", "Ġt he"];
    [
        ("general.architecture", V::String("llama".into())),
        ("k.u8", V::U8(200)),
        ("k.i8", V::I8(-100)),
        ("k.u16", V::U16(60000)),
        ("k.i16", V::I16(-30000)),
        ("k.u32", V::U32(4_000_000_000)),
        ("k.i32", V::I32(-2_000_000_000)),
        ("k.u64", V::U64((1 << 63) + 5)),
        ("k.i64", V::I64(-(1 << 62))),
        ("k.f32", V::F32(1e-5)),
        ("k.f64", V::F64(-1.0e-300)),
        ("k.true", V::Bool(true)),
        ("k.false", V::Bool(false)),
        ("k.empty_string", V::String(String::new())),
        (
            "k.strings",
            V::Array(
                GgufValueType::String,
                strings.iter().map(|s| V::String((*s).into())).collect(),
            ),
        ),
        (
            "k.i32s",
            V::Array(GgufValueType::I32, vec![V::I32(1), V::I32(-2), V::I32(3)]),
        ),
        (
            "k.f32s",
            V::Array(GgufValueType::F32, vec![V::F32(0.5), V::F32(-1.5)]),
        ),
        ("k.empty", V::Array(GgufValueType::U32, vec![])),
        (
            "k.nested",
            V::Array(
                GgufValueType::Array,
                vec![
                    V::Array(GgufValueType::I32, vec![V::I32(1), V::I32(2)]),
                    V::Array(GgufValueType::String, vec![V::String("x".into())]),
                ],
            ),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[test]
fn every_key_and_tensor_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let metadata = every_value_kind();
    let f32s: Vec<f32> = (0..15).map(|i| i as f32 * 0.37 - 2.0).collect();
    let f16s: Vec<u16> = (0..24).map(|i| 0x3c00 + i * 97).collect();
    let bf16s: Vec<u16> = (0..7).map(|i| 0xbf80 - i * 3).collect();
    let tensors = [
        (
            spec("t.f32", &[3, 5], GgmlType::F32),
            le_bytes(&f32s, |x| x.to_le_bytes()),
        ),
        (
            spec("t.f16", &[2, 3, 4], GgmlType::F16),
            le_bytes(&f16s, |x| x.to_le_bytes()),
        ),
        (
            spec("t.bf16", &[7], GgmlType::BF16),
            le_bytes(&bf16s, |x| x.to_le_bytes()),
        ),
    ];
    let specs: Vec<TensorSpec> = tensors.iter().map(|(s, _)| s.clone()).collect();
    let size = write(&path, &metadata, &specs, |s| {
        Ok(tensors.iter().find(|(t, _)| t == s).unwrap().1.clone())
    })
    .unwrap();

    assert_eq!(size, std::fs::metadata(&path).unwrap().len());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
    let file = GgufFile::open(&path).unwrap();
    assert_eq!((file.version(), file.alignment()), (3, 32));
    assert_eq!(file.metadata().len(), metadata.len());
    for (key, value) in &metadata {
        assert_eq!(file.get(key), Some(value), "{key}");
    }
    for (i, (spec, bytes)) in tensors.iter().enumerate() {
        let info = &file.tensors()[i];
        assert_eq!(info.name(), spec.name);
        assert_eq!(
            (info.shape(), info.ggml_type()),
            (spec.shape.clone(), spec.ggml_type)
        );
        assert_eq!(info.offset() % 32, 0, "{}", spec.name);
        assert_eq!(file.tensor_bytes(&spec.name).unwrap(), &bytes[..]);
    }
    assert_eq!(file.dequantize("t.f32").unwrap().data, f32s);
    assert_eq!(file.dequantize("t.f16").unwrap().data[0], 1.0);
    assert_eq!(file.dequantize("t.bf16").unwrap().data[0], -1.0);
}

/// gguf-py wrote `types.gguf` (alignment 64, quantised tensors too): rewriting what the
/// reader read gives the same table, layout and bytes.
#[test]
fn rewriting_a_gguf_py_file_keeps_its_layout() {
    let original = GgufFile::open(fixture("types.gguf")).unwrap();
    let metadata: Vec<(String, GgufValue)> = original
        .metadata()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let specs: Vec<TensorSpec> = original
        .tensors()
        .iter()
        .map(|t| spec(t.name(), &t.shape(), t.ggml_type()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("types.gguf");
    write(&path, &metadata, &specs, |s| {
        Ok(original.tensor_bytes(&s.name).unwrap().to_vec())
    })
    .unwrap();

    let copy = GgufFile::open(&path).unwrap();
    assert_eq!(copy.alignment(), 64);
    assert_eq!(copy.metadata(), original.metadata());
    assert_eq!(copy.tensors(), original.tensors());
    assert_eq!(copy.data_start(), original.data_start());
    for t in original.tensors() {
        assert_eq!(
            copy.tensor_bytes(t.name()).unwrap(),
            original.tensor_bytes(t.name()).unwrap()
        );
    }
}

fn write_one(
    path: &Path,
    metadata: &[(String, GgufValue)],
    bytes: Vec<u8>,
) -> Result<u64, GgufWriteError> {
    let specs = [spec("t", &[2], GgmlType::F32)];
    write(path, metadata, &specs, |_| Ok(bytes.clone()))
}

#[test]
fn a_failed_write_names_the_file_and_leaves_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, b"the previous file").unwrap();
    let unchanged = |err: GgufWriteError, expect: &str| {
        let message = err.to_string();
        assert!(
            message.starts_with(&path.display().to_string()),
            "{message}"
        );
        assert!(message.contains(expect), "{message}");
        assert_eq!(std::fs::read(&path).unwrap(), b"the previous file");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    };

    let err = write_one(&path, &[], vec![0; 7]).unwrap_err();
    unchanged(err, "tensor `t`: 7 bytes given, its shape and type take 8");
    let specs = [spec("t", &[2], GgmlType::F32)];
    let err = write(&path, &[], &specs, |_| Err("the device is gone".into())).unwrap_err();
    unchanged(err, "tensor `t`: the device is gone");
    let mixed = GgufValue::Array(
        GgufValueType::I32,
        vec![GgufValue::I32(1), GgufValue::U8(2)],
    );
    let err = write_one(&path, &[("k.mixed".into(), mixed)], vec![0; 8]).unwrap_err();
    unchanged(
        err,
        "metadata key `k.mixed`: item 1 is U8, the array holds I32",
    );
    let twice = [
        ("k".into(), GgufValue::U8(1)),
        ("k".into(), GgufValue::U8(2)),
    ];
    unchanged(
        write_one(&path, &twice, vec![0; 8]).unwrap_err(),
        "`k`: given twice",
    );
    let odd = [("general.alignment".into(), GgufValue::U32(24))];
    unchanged(
        write_one(&path, &odd, vec![0; 8]).unwrap_err(),
        "not a U32 power of two",
    );
    let q4 = [spec("q", &[2, 30], GgmlType::Q4_0)];
    let err = write(&path, &[], &q4, |_| Ok(vec![])).unwrap_err();
    unchanged(
        err,
        "tensor `q`: shape [2, 30] is not whole Q4_0 blocks of 32",
    );
    let long = [spec(&"x".repeat(64), &[1], GgmlType::F32)];
    let err = write(&path, &[], &long, |_| Ok(vec![0; 4])).unwrap_err();
    unchanged(err, "longer than ggml's 63 bytes");

    let missing = dir.path().join("no/such/dir/m.gguf");
    let err = write_one(&missing, &[], vec![0; 8])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&missing.display().to_string()) && err.contains("cannot write"),
        "{err}"
    );
}

#[test]
fn value_type_ids_are_the_formats() {
    for id in 0..13 {
        let ty = GgufValueType::from_id(id).unwrap();
        assert_eq!(ty.id(), id, "{ty:?}");
    }
    assert_eq!(GgufValueType::Array.id(), 9);
    assert_eq!(GgufValueType::F64.id(), 12);
}
