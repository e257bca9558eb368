//! Tests against transformers' GGUF tokenizer (see `tests/fixtures/gguf/make_gguf_fixtures.py`).
//! Expected ids use llama.cpp's `smollm` split; where transformers' own GGUF loader differs
//! the fixture records it as `transformers_gguf_ids`.

use serde_json::Value;

use super::*;
use crate::gguf::tests::{GgufBuilder, default_model, fixture, fixture_json, write_temp};

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_u64().expect("id") as u32)
        .collect()
}

/// Encodes and decodes every case of a reference file, comparing ids and both decodes.
fn check_cases(tok: &GgufTokenizer, reference: &Value) {
    assert_eq!(
        tok.tokenizer.get_vocab_size(true) as u64,
        reference["vocab_size"].as_u64().unwrap()
    );
    assert_eq!(tok.bos_id.map(u64::from), reference["bos_id"].as_u64());
    assert_eq!(tok.eos_id.map(u64::from), reference["eos_id"].as_u64());
    for case in reference["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let expected = ids(&case["ids"]);
        let encoding = tok.tokenizer.encode(text, false).unwrap();
        assert_eq!(encoding.get_ids(), expected, "encode {text:?}");
        // No post-processor: asking for special tokens adds nothing.
        let with_specials = tok.tokenizer.encode(text, true).unwrap();
        assert_eq!(
            with_specials.get_ids(),
            expected,
            "encode+specials {text:?}"
        );
        let decoded = tok.tokenizer.decode(&expected, false).unwrap();
        assert_eq!(
            decoded,
            case["decoded"].as_str().unwrap(),
            "decode {text:?}"
        );
        let skipped = tok.tokenizer.decode(&expected, true).unwrap();
        assert_eq!(
            skipped,
            case["decoded_skip_special"].as_str().unwrap(),
            "decode skipping specials {text:?}"
        );
    }
}

#[test]
fn tiny_vocabulary_matches_transformers() {
    let file = GgufFile::open(fixture("tiny_tokenizer.gguf")).unwrap();
    let tok = GgufTokenizer::from_gguf(&file).unwrap();
    assert_eq!(tok.meta.add_bos, Some(true));
    assert_eq!(tok.meta.chat_template, None);
    assert_eq!(tok.meta.gguf_pre.as_deref(), Some("smollm"));
    check_cases(&tok, &fixture_json("tiny_tokenizer.json"));
    // "a b" has a literal space, so it is stored respelled and not added whole.
    assert_eq!(tok.tokenizer.token_to_id("a\u{120}b"), Some(270));
    assert_eq!(tok.tokenizer.token_to_id("<think>"), Some(268));
}

#[test]
fn smollm2_matches_transformers() {
    let Some(path) = default_model() else { return };
    let reference = fixture_json("smollm2_tokenizer.json");
    let file = GgufFile::open(path).unwrap();
    let tok = GgufTokenizer::from_gguf(&file).unwrap();
    assert_eq!(tok.meta.add_bos, Some(false));
    assert_eq!(
        tok.meta.chat_template.as_deref(),
        reference["chat_template"].as_str()
    );
    assert_eq!(
        (tok.meta.unknown_id, tok.meta.padding_id),
        (Some(0), Some(2))
    );
    check_cases(&tok, &reference);
    let specials = tok.tokenizer.get_added_tokens_decoder();
    assert_eq!(specials.len(), 17);
    assert!(specials.values().all(|t| t.special && !t.normalized));
}

#[test]
fn byte_alphabet_is_gpt2s() {
    let chars = byte_chars();
    assert_eq!(chars[usize::from(b' ')], '\u{120}');
    assert_eq!(chars[usize::from(b'\n')], '\u{10a}');
    assert_eq!(chars[usize::from(b'a')], 'a');
    assert_eq!(chars[0xff], '\u{ff}');
    assert!(chars.iter().all(|&c| in_byte_alphabet(c)));
    let distinct: std::collections::HashSet<char> = chars.iter().copied().collect();
    assert_eq!(distinct.len(), 256);
    assert!(!in_byte_alphabet(' ') && !in_byte_alphabet('\u{144}'));
}

fn tokenizer_file(model: &str, pre: &str, merges: &[&str]) -> GgufBuilder {
    GgufBuilder::new()
        .str_kv("tokenizer.ggml.model", model)
        .str_kv("tokenizer.ggml.pre", pre)
        .str_array_kv("tokenizer.ggml.tokens", &["a", "b", "ab"])
        .str_array_kv("tokenizer.ggml.merges", merges)
}

fn build_err(builder: GgufBuilder) -> GgufTokenizerError {
    let tmp = write_temp(&builder.build(&[]));
    let file = GgufFile::open(tmp.path()).unwrap();
    GgufTokenizer::from_gguf(&file).unwrap_err()
}

#[test]
fn rejects_what_it_cannot_build() {
    let ok = tokenizer_file("gpt2", "gpt-2", &["a b"]);
    let tmp = write_temp(&ok.build(&[]));
    let file = GgufFile::open(tmp.path()).unwrap();
    let tok = GgufTokenizer::from_gguf(&file).unwrap();
    assert_eq!(tok.tokenizer.encode("ab", false).unwrap().get_ids(), [2]);
    assert_eq!(
        (tok.bos_id, tok.eos_id, tok.meta.add_bos),
        (None, None, None)
    );

    let err = build_err(tokenizer_file("llama", "gpt-2", &[]));
    assert!(
        matches!(err, GgufTokenizerError::UnsupportedModel { .. }),
        "{err}"
    );
    let err = build_err(tokenizer_file("gpt2", "qwen2", &[]));
    assert!(
        err.to_string().contains("`qwen2`") && err.to_string().contains("smollm"),
        "{err}"
    );
    let err = build_err(tokenizer_file("gpt2", "smollm", &["ab"]));
    assert!(
        matches!(err, GgufTokenizerError::BadMerge { index: 0, .. }),
        "{err}"
    );
    let err = build_err(tokenizer_file("gpt2", "smollm", &[]).raw_kv(
        "tokenizer.ggml.bos_token_id",
        4,
        &3u32.to_le_bytes(),
    ));
    assert!(
        matches!(err, GgufTokenizerError::TokenIdOutOfRange { id: 3, .. }),
        "{err}"
    );
    let types = [
        5u32.to_le_bytes().as_slice(),
        &1u64.to_le_bytes(),
        &1i32.to_le_bytes(),
    ]
    .concat();
    let err = build_err(tokenizer_file("gpt2", "smollm", &[]).raw_kv(
        "tokenizer.ggml.token_type",
        9,
        &types,
    ));
    assert!(
        matches!(
            err,
            GgufTokenizerError::LengthMismatch {
                found: 1,
                expected: 3,
                ..
            }
        ),
        "{err}"
    );
    let err = build_err(GgufBuilder::new().str_kv("tokenizer.ggml.model", "gpt2"));
    assert!(
        err.to_string()
            .contains("`tokenizer.ggml.tokens` is missing"),
        "{err}"
    );
}
