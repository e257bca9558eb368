//! Dequantisation, bit for bit against gguf-py: every supported type of the synthetic
//! fixture, the error for a type without a kernel, and every tensor of the real model.

use std::time::Instant;

use super::{assert_bits_eq, assert_close, default_model, f32s, fixture, fixture_json, usizes};
use crate::gguf::{GgmlType, GgufError, GgufFile};

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
