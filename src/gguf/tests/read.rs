//! Reading well-formed files: the header, the tensor table and every metadata value type of
//! the synthetic fixture, both format versions, and the real model's metadata.

use super::{default_model, fixture, fixture_json, usizes};
use crate::gguf::{GgmlType, GgufError, GgufFile, GgufValue, GgufValueType};

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
fn reads_version_2() {
    let file = GgufFile::open(fixture("types_v2.gguf")).unwrap();
    assert_eq!(file.version(), 2);
    assert_eq!(file.get_u32("test.u16").unwrap(), 60000);
}

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
