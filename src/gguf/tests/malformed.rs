//! Malformed files, built byte by byte: each is an error naming what is wrong, never a panic.

use super::{GgufBuilder, fixture, open_bytes};
use crate::gguf::{GgufError, GgufFile};

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
                    | GgufError::ImpossibleTensorCount { .. }
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
fn tensors_sharing_bytes_are_refused() {
    // Two 4-float tensors, the second starting inside the first.
    let bytes = GgufBuilder::new()
        .str_kv("general.architecture", "x")
        .tensor("a", &[8], 0, 0)
        .tensor("b", &[4], 0, 0)
        .build(&1.5f32.to_le_bytes().repeat(8));
    let err = open_bytes(&bytes).unwrap_err();
    assert!(
        matches!(&err, GgufError::TensorsOverlap { first, second, .. } if first == "a" && second == "b"),
        "{err:?}"
    );
    assert!(err.to_string().contains("share bytes"), "{err}");
}

#[test]
fn a_corrupt_tensor_count_is_not_called_a_truncation() {
    let mut bytes = std::fs::read(fixture("types.gguf")).unwrap();
    // The tensor count follows the magic and the version; flip a high bit of it.
    bytes[8 + 4] ^= 0x10;
    let err = open_bytes(&bytes).unwrap_err();
    assert!(
        matches!(err, GgufError::ImpossibleTensorCount { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("corrupt header"), "{err}");
}
