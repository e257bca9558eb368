//! Tests against gguf-py / transformers references in `tests/fixtures/gguf` (regenerate with
//! `tests/fixtures/gguf/make_gguf_fixtures.py`). Tests on the real model read `RLMEC_DEFAULT_GGUF`
//! and are skipped, with a note, when the file is absent.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::Value;

use super::*;

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
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipping: model {} not found", path.display());
        None
    }
}

fn f32s(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_f64().expect("number") as f32)
        .collect()
}

fn usizes(value: &Value) -> Vec<usize> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_u64().expect("integer") as usize)
        .collect()
}

/// Bit-exact comparison (so -0.0 vs 0.0 and the last ulp both count).
fn assert_bits_eq(actual: &[f32], expected: &[f32], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(a.to_bits(), e.to_bits(), "{what}[{i}]: {a} != {e}");
    }
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    let tol = 1e-9 * expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= tol,
        "{what}: {actual} != {expected}"
    );
}

// ------------------------------------------------------------------ synthetic fixture

#[test]
fn reads_synthetic_header_and_tensor_table() {
    let reference = fixture_json("types.json");
    let file = GgufFile::open(fixture("types.gguf")).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.alignment(), 64);
    assert_eq!(
        file.data_start() as u64,
        reference["data_offset"].as_u64().unwrap()
    );
    let expected = reference["tensors"].as_object().unwrap();
    assert_eq!(file.tensors().len(), expected.len());
    for (name, entry) in expected {
        let info = file.tensor_info(name).unwrap();
        assert_eq!(
            info.ggml_type().to_string(),
            entry["type"].as_str().unwrap()
        );
        assert_eq!(info.shape(), usizes(&entry["shape"]), "{name}");
        assert_eq!(info.offset(), entry["offset"].as_u64().unwrap(), "{name}");
    }
}

#[test]
fn reads_every_metadata_value_type() {
    let file = GgufFile::open(fixture("types.gguf")).unwrap();
    let get = |key: &str| file.get(key).unwrap().clone();
    assert_eq!(get("test.u8"), GgufValue::U8(200));
    assert_eq!(get("test.i8"), GgufValue::I8(-100));
    assert_eq!(get("test.u16"), GgufValue::U16(60000));
    assert_eq!(get("test.i16"), GgufValue::I16(-30000));
    assert_eq!(get("test.u32"), GgufValue::U32(4_000_000_000));
    assert_eq!(get("test.i32"), GgufValue::I32(-2_000_000_000));
    assert_eq!(get("test.u64"), GgufValue::U64((1 << 63) + 5));
    assert_eq!(get("test.i64"), GgufValue::I64(-(1 << 62)));
    assert_eq!(get("test.f32"), GgufValue::F32(0.25));
    assert_eq!(get("test.f64"), GgufValue::F64(-1.0e-300));
    assert_eq!(get("test.bool_true"), GgufValue::Bool(true));
    assert_eq!(get("test.bool_false"), GgufValue::Bool(false));
    assert_eq!(get("test.string"), GgufValue::String("héllo ✓".into()));
    assert_eq!(
        get("general.architecture"),
        GgufValue::String("test".into())
    );
    let nested = GgufValue::Array(
        GgufValueType::Array,
        vec![
            GgufValue::Array(
                GgufValueType::I32,
                vec![GgufValue::I32(1), GgufValue::I32(2)],
            ),
            GgufValue::Array(GgufValueType::I32, vec![GgufValue::I32(3)]),
        ],
    );
    assert_eq!(get("test.nested"), nested);
}

#[test]
fn typed_accessors_convert_losslessly() {
    let file = GgufFile::open(fixture("types.gguf")).unwrap();
    assert_eq!(file.get_u32("test.u8").unwrap(), 200);
    assert_eq!(file.get_u32("test.u32").unwrap(), 4_000_000_000);
    assert_eq!(file.get_u64("test.u64").unwrap(), (1 << 63) + 5);
    assert_eq!(file.get_i32("test.i16").unwrap(), -30000);
    assert_eq!(file.get_i64("test.u32").unwrap(), 4_000_000_000);
    assert_eq!(file.get_f32("test.f32").unwrap(), 0.25);
    assert_eq!(file.get_f64("test.f64").unwrap(), -1.0e-300);
    assert!(file.get_bool("test.bool_true").unwrap());
    assert_eq!(file.get_str("test.string").unwrap(), "héllo ✓");
    assert_eq!(
        file.get_str_array("test.str_array").unwrap(),
        ["a", "bb", "", "ü"]
    );
    assert_eq!(file.get_i32_array("test.i32_array").unwrap(), [1, -2, 3]);
    assert_eq!(file.get_f32_array("test.f32_array").unwrap(), [0.5, -1.5]);
    assert_eq!(file.get_array("test.nested").unwrap().len(), 2);
    assert_eq!(
        file.optional("test.u8", GgufFile::get_u32).unwrap(),
        Some(200)
    );
    assert_eq!(file.optional("absent", GgufFile::get_u32).unwrap(), None);
}

#[test]
fn typed_accessor_errors_name_key_and_file() {
    let path = fixture("types.gguf");
    let file = GgufFile::open(&path).unwrap();
    let cases = [
        file.get_u32("test.u64").unwrap_err(), // does not fit
        file.get_u32("test.i8").unwrap_err(),  // negative
        file.get_str("test.u8").unwrap_err(),
        file.get_str_array("test.i32_array").unwrap_err(),
        file.get_f32("nope.missing").unwrap_err(),
        file.optional("test.string", GgufFile::get_bool)
            .unwrap_err(),
    ];
    for err in cases {
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(
            message.contains("`test.") || message.contains("`nope."),
            "{message}"
        );
        assert!(
            matches!(
                err,
                GgufError::WrongType { .. } | GgufError::MissingKey { .. }
            ),
            "{err:?}"
        );
    }
    assert!(
        file.get_str("test.u8")
            .unwrap_err()
            .to_string()
            .contains("is U8, expected string")
    );
}

#[test]
fn dequantizes_every_supported_type_bit_exactly() {
    let reference = fixture_json("types.json");
    for name in ["types.gguf", "types_v2.gguf"] {
        let file = GgufFile::open(fixture(name)).unwrap();
        for (tensor, entry) in reference["tensors"].as_object().unwrap() {
            let Some(values) = entry.get("values") else {
                continue;
            };
            let out = file.dequantize(tensor).unwrap();
            assert_eq!(out.shape, usizes(&entry["shape"]));
            assert_bits_eq(&out.data, &f32s(values), &format!("{name}:{tensor}"));
        }
    }
}

#[test]
fn reads_version_2() {
    let file = GgufFile::open(fixture("types_v2.gguf")).unwrap();
    assert_eq!(file.version(), 2);
    assert_eq!(file.get_u32("test.u16").unwrap(), 60000);
}

#[test]
fn unsupported_dequant_names_tensor_and_type() {
    let file = GgufFile::open(fixture("types.gguf")).unwrap();
    let err = file.dequantize("t.q5_0_unsupported").unwrap_err();
    let message = err.to_string();
    assert!(matches!(
        err,
        GgufError::UnsupportedDequant {
            ggml_type: GgmlType::Q5_0,
            ..
        }
    ));
    assert!(
        message.contains("t.q5_0_unsupported") && message.contains("Q5_0"),
        "{message}"
    );
    assert!(message.contains("types.gguf"), "{message}");
    // The raw bytes are still reachable for a caller with its own kernel.
    assert_eq!(file.tensor_bytes("t.q5_0_unsupported").unwrap().len(), 22);
    assert!(matches!(
        file.dequantize("nope").unwrap_err(),
        GgufError::MissingTensor { .. }
    ));
}

// ------------------------------------------------------------------ malformed files

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

#[test]
fn minimal_built_file_opens() {
    let bytes = GgufBuilder::new()
        .str_kv("general.architecture", "x")
        .tensor("w", &[4], 0, 0)
        .build(&1.5f32.to_le_bytes().repeat(4));
    let file = open_bytes(&bytes).unwrap();
    assert_eq!(file.dequantize("w").unwrap().data, [1.5; 4]);
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = std::fs::read(fixture("types.gguf")).unwrap();
    let file = GgufFile::open(fixture("types.gguf")).unwrap();
    // Past the last tensor's data there is only padding, which a file may lack.
    let data_end = file
        .tensors()
        .iter()
        .map(|t| file.data_start() + t.offset() as usize + t.n_bytes())
        .max()
        .unwrap();
    assert!(open_bytes(&bytes[..data_end]).is_ok());
    for len in 0..data_end {
        let err = open_bytes(&bytes[..len]).unwrap_err();
        assert!(
            matches!(
                err,
                GgufError::Truncated { .. }
                    | GgufError::BadMagic { .. }
                    | GgufError::TensorOutOfRange { .. }
            ),
            "len {len}: {err:?}"
        );
    }
}

#[test]
fn rejects_bad_magic_and_versions() {
    let mut bytes = std::fs::read(fixture("types.gguf")).unwrap();
    bytes[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert!(matches!(
        open_bytes(&bytes).unwrap_err(),
        GgufError::UnsupportedVersion { version: 1, .. }
    ));
    bytes[4..8].copy_from_slice(&4u32.to_le_bytes());
    assert!(matches!(
        open_bytes(&bytes).unwrap_err(),
        GgufError::UnsupportedVersion { version: 4, .. }
    ));
    bytes[0] = b'X';
    let err = open_bytes(&bytes).unwrap_err();
    assert!(matches!(err, GgufError::BadMagic { found, .. } if &found == b"XGUF"));
    let missing = GgufFile::open("/nonexistent/model.gguf").unwrap_err();
    assert!(missing.to_string().contains("/nonexistent/model.gguf"));
}

#[test]
fn rejects_unknown_value_and_tensor_types() {
    let bytes = GgufBuilder::new().raw_kv("k.bad", 13, &[]).build(&[]);
    assert!(matches!(
        open_bytes(&bytes).unwrap_err(),
        GgufError::UnknownValueType { type_id: 13, ref key, .. } if key == "k.bad"
    ));
    let bad_item = [99u32.to_le_bytes().as_slice(), &0u64.to_le_bytes()].concat();
    let bytes = GgufBuilder::new().raw_kv("k.arr", 9, &bad_item).build(&[]);
    assert!(matches!(
        open_bytes(&bytes).unwrap_err(),
        GgufError::UnknownValueType { type_id: 99, .. }
    ));
    let bytes = GgufBuilder::new().tensor("w", &[32], 4, 0).build(&[0; 64]);
    let err = open_bytes(&bytes).unwrap_err();
    assert!(matches!(
        err,
        GgufError::UnknownTensorType { type_id: 4, .. }
    ));
    assert!(err.to_string().contains("`w`"));
}

#[test]
fn rejects_tensors_outside_the_file_or_misaligned() {
    let data = [0u8; 64];
    for (dims, offset) in [(&[16u64][..], 8u64), (&[16], 32), (&[17], 0), (&[4, 5], 0)] {
        let bytes = GgufBuilder::new().tensor("w", dims, 0, offset).build(&data);
        assert!(
            matches!(
                open_bytes(&bytes).unwrap_err(),
                GgufError::TensorOutOfRange { ref tensor, .. } if tensor == "w"
            ),
            "{dims:?} @ {offset}"
        );
    }
    let huge = GgufBuilder::new()
        .tensor("w", &[u64::MAX, 2], 0, 0)
        .build(&data);
    assert!(matches!(
        open_bytes(&huge).unwrap_err(),
        GgufError::Malformed { .. }
    ));
    // A Q4_0 row must hold whole 32-element blocks.
    let ragged = GgufBuilder::new().tensor("w", &[40], 2, 0).build(&data);
    assert!(matches!(
        open_bytes(&ragged).unwrap_err(),
        GgufError::Malformed { .. }
    ));
}

#[test]
fn rejects_bad_alignment_duplicates_and_deep_nesting() {
    let bytes = GgufBuilder::new()
        .raw_kv("general.alignment", 4, &48u32.to_le_bytes())
        .build(&[]);
    assert!(matches!(
        open_bytes(&bytes).unwrap_err(),
        GgufError::Malformed { .. }
    ));
    let bytes = GgufBuilder::new()
        .str_kv("a", "1")
        .str_kv("a", "2")
        .build(&[]);
    assert!(matches!(
        open_bytes(&bytes).unwrap_err(),
        GgufError::Malformed { .. }
    ));
    let bytes = GgufBuilder::new()
        .tensor("w", &[1], 0, 0)
        .tensor("w", &[1], 0, 32)
        .build(&[0; 64]);
    assert!(matches!(
        open_bytes(&bytes).unwrap_err(),
        GgufError::Malformed { .. }
    ));
    // 20 levels of "array of array, length 1".
    let level = [9u32.to_le_bytes().as_slice(), &1u64.to_le_bytes()].concat();
    let bytes = GgufBuilder::new()
        .raw_kv("deep", 9, &level.repeat(20))
        .build(&[]);
    assert!(matches!(
        open_bytes(&bytes).unwrap_err(),
        GgufError::Malformed { .. }
    ));
}

#[test]
fn custom_alignment_moves_the_data_section() {
    let bytes = GgufBuilder::new()
        .raw_kv("general.alignment", 4, &64u32.to_le_bytes())
        .tensor("w", &[1], 0, 0)
        .build(&[]);
    let header_len = bytes.len();
    let mut padded = bytes;
    padded.resize(header_len.next_multiple_of(64) + 4, 0);
    let file = open_bytes(&padded).unwrap();
    assert_eq!(file.alignment(), 64);
    assert_eq!(file.data_start(), header_len.next_multiple_of(64));
}

#[test]
fn reverse_permute_swaps_rows_within_each_head() {
    // 2 heads x 4 rows, 1 column: head rows [0 1 2 3] come back as [0 2 1 3].
    let data: Vec<f32> = (0..8).map(|i| i as f32).collect();
    let out = reverse_permute_weights(&data, 8, 1, 2).unwrap();
    assert_eq!(out, [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
    assert!(matches!(
        reverse_permute_weights(&data, 8, 1, 3).unwrap_err(),
        GgufError::PermuteShape { .. }
    ));
    assert!(reverse_permute_weights(&data, 4, 1, 1).is_err());
    assert!(reverse_permute_weights(&data, 8, 1, 0).is_err());
}

// ------------------------------------------------------------------ real model

#[test]
fn real_model_metadata_and_table() {
    let Some(path) = default_model() else { return };
    let reference = fixture_json("smollm2_tensors.json");
    let file = GgufFile::open(path).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.alignment(), 32);
    assert_eq!(
        file.data_start() as u64,
        reference["data_offset"].as_u64().unwrap()
    );
    assert_eq!(file.tensors().len(), 272);
    assert_eq!(file.metadata().len(), 33);
    assert_eq!(file.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(file.get_u32("llama.attention.head_count").unwrap(), 9);
    assert_eq!(file.get_u32("llama.attention.head_count_kv").unwrap(), 3);
    assert_eq!(file.get_u32("llama.embedding_length").unwrap(), 576);
    assert_eq!(file.get_f32("llama.rope.freq_base").unwrap(), 100000.0);
    assert_eq!(
        file.get_str_array("tokenizer.ggml.tokens").unwrap().len(),
        49152
    );
    let q = file.tensor_info("blk.0.attn_q.weight").unwrap();
    assert_eq!(
        (q.ggml_type(), q.dims(), q.shape()),
        (GgmlType::Q4_1, &[576u64, 576][..], vec![576, 576])
    );
    let embd = file.tensor_info("token_embd.weight").unwrap();
    assert_eq!(
        (embd.ggml_type(), embd.shape()),
        (GgmlType::Q8_0, vec![49152, 576])
    );
}

#[test]
fn real_model_dequant_matches_gguf_py() {
    let Some(path) = default_model() else { return };
    let reference = fixture_json("smollm2_tensors.json");
    let file = GgufFile::open(path).unwrap();
    for (name, entry) in reference["tensors"].as_object().unwrap() {
        let out = file.dequantize(name).unwrap();
        assert_eq!(
            file.tensor_info(name).unwrap().ggml_type().to_string(),
            entry["type"].as_str().unwrap()
        );
        assert_eq!(out.shape, usizes(&entry["shape"]), "{name}");
        assert_bits_eq(&out.data[..64], &f32s(&entry["first64"]), name);
        let sum: f64 = out.data.iter().map(|&v| f64::from(v)).sum();
        let sum_sq: f64 = out.data.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        assert_close(sum, entry["sum"].as_f64().unwrap(), &format!("{name} sum"));
        assert_close(
            sum_sq,
            entry["sum_sq"].as_f64().unwrap(),
            &format!("{name} sum_sq"),
        );
    }
}

/// `sum(v[i] * (i % 1009 + 1))`, the position-sensitive checksum of the fixture script.
fn position_checksum(values: &[f32]) -> f64 {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| f64::from(v) * ((i % 1009) + 1) as f64)
        .sum()
}

#[test]
fn real_model_reverse_permute_matches_transformers() {
    let Some(path) = default_model() else { return };
    let reference = fixture_json("smollm2_permute.json");
    let file = GgufFile::open(path).unwrap();
    let heads = [("blk.0.attn_q.weight", 9), ("blk.0.attn_k.weight", 3)];
    for (name, n_head) in heads {
        let entry = &reference["tensors"][name];
        let tensor = file.dequantize(name).unwrap();
        let [rows, cols] = tensor.shape[..] else {
            panic!("2-D")
        };
        assert_close(
            position_checksum(&tensor.data),
            entry["checksum_unpermuted_input"].as_f64().unwrap(),
            "input",
        );
        let out = reverse_permute_weights(&tensor.data, rows, cols, n_head).unwrap();
        assert_eq!(vec![rows, cols], usizes(&entry["shape"]));
        for (row, expected) in entry["rows"].as_object().unwrap() {
            let r: usize = row.parse().unwrap();
            assert_bits_eq(
                &out[r * cols..r * cols + 64],
                &f32s(expected),
                &format!("{name} row {r}"),
            );
        }
        assert_close(
            position_checksum(&out),
            entry["checksum"].as_f64().unwrap(),
            name,
        );
    }
}

#[test]
fn real_model_every_tensor_dequantizes() {
    let Some(path) = default_model() else { return };
    let file = GgufFile::open(path).unwrap();
    let mut elapsed = std::time::Duration::ZERO;
    let mut n_values = 0usize;
    for info in file.tensors() {
        let start = Instant::now();
        let out = file.dequantize(info.name()).unwrap();
        elapsed += start.elapsed();
        assert_eq!(out.data.len(), info.n_elements());
        assert!(out.data.iter().all(|v| v.is_finite()), "{}", info.name());
        n_values += out.data.len();
    }
    eprintln!(
        "dequantised {} tensors, {n_values} values in {:.3}s",
        file.tensors().len(),
        elapsed.as_secs_f64()
    );
}

#[test]
fn ggml_type_table_matches_declaration_order() {
    for (index, &(id, ty, ..)) in GGML_TYPES.iter().enumerate() {
        assert_eq!(ty as usize, index, "{ty}");
        assert_eq!(GgmlType::from_id(id), Some(ty));
        assert_eq!(ty.id(), id);
    }
    assert_eq!(
        (GgmlType::Q4_1.block_size(), GgmlType::Q4_1.block_bytes()),
        (32, 20)
    );
    assert_eq!(
        (GgmlType::Q6_K.block_size(), GgmlType::Q6_K.block_bytes()),
        (256, 210)
    );
}
