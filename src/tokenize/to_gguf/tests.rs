//! A tokenizer written as GGUF metadata and rebuilt from it (`gguf.rs`) encodes as it did:
//! a Hugging Face `tokenizer.json` and a tokenizer read from GGUF; and what the metadata says
//! where the vocabulary is silent (pre-tokenizer, BOS/EOS framing, padding ids).

use std::path::{Path, PathBuf};

use super::{FramingIds, gguf_metadata};
use crate::gguf::tests::fixture;
use crate::gguf::{GgufFile, GgufValue};
use crate::tokenize::gguf::GgufTokenizer;
use crate::tokenize::{TextTokenizer, TokenizeError, TokenizerMeta};

/// Digits, runs of spaces, non-ASCII text, special tokens.
const TRICKY: [&str; 9] = [
    "Hello, world!",
    "x  1 22",
    "12345 + 678 = 99",
    "héllo wörld ✓ 日本語 🙂",
    "<|im_start|>user\nhi<|im_end|>",
    "<|endoftext|><|endoftext|>",
    "a\n\n\tb",
    "  leading and trailing  ",
    "",
];

fn tiny_llama_json() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/model/tiny-llama/tokenizer.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn tokenizer_of(json: &serde_json::Value) -> TextTokenizer {
    TextTokenizer::new(json.to_string().parse().unwrap())
}

fn value<'a>(metadata: &'a [(String, GgufValue)], key: &str) -> &'a GgufValue {
    &metadata
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("{key} missing"))
        .1
}

fn strings(value: &GgufValue) -> Vec<&str> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

fn ints(value: &GgufValue) -> Vec<i64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

/// The metadata in a file of its own, read back by the GGUF tokenizer builder.
fn reread(metadata: &[(String, GgufValue)]) -> (GgufTokenizer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("tok.gguf");
    crate::gguf::write(&path, metadata, &[], |_| Ok(Vec::new())).unwrap();
    let tok = GgufTokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    (tok, dir)
}

fn assert_encodes_alike(ours: &TextTokenizer, rebuilt: &GgufTokenizer, texts: &[&str]) {
    let rebuilt = TextTokenizer::new(rebuilt.tokenizer.clone());
    for text in texts {
        let ids = ours.encode(text).unwrap();
        assert_eq!(rebuilt.encode(text).unwrap(), ids, "encode {text:?}");
        assert_eq!(
            rebuilt.decode(&ids).unwrap(),
            ours.decode(&ids).unwrap(),
            "decode {text:?}"
        );
    }
}

#[test]
fn a_hugging_face_tokenizer_encodes_alike_from_gguf() {
    let json = tiny_llama_json();
    let tokenizer = tokenizer_of(&json);
    let ids = FramingIds {
        bos: Some(1),
        eos: Some(2),
    };
    let meta = TokenizerMeta {
        padding_id: Some(0),
        chat_template: Some("{{ messages }}".into()),
        ..TokenizerMeta::default()
    };
    let metadata = gguf_metadata(&tokenizer, &meta, ids, 384).unwrap();

    assert_eq!(
        value(&metadata, "tokenizer.ggml.model").as_str(),
        Some("gpt2")
    );
    assert_eq!(
        value(&metadata, "tokenizer.ggml.pre").as_str(),
        Some("gpt-2")
    );
    let tokens = strings(value(&metadata, "tokenizer.ggml.tokens"));
    assert_eq!(tokens.len(), 384);
    assert_eq!(tokens[..3], ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]);
    // Each token at its id, spelled as the vocabulary spells it (`Ġ` for a space).
    for (token, id) in json["model"]["vocab"].as_object().unwrap() {
        assert_eq!(tokens[id.as_u64().unwrap() as usize], token);
    }
    assert!(tokens.iter().any(|t| t.starts_with('Ġ')));
    let types = ints(value(&metadata, "tokenizer.ggml.token_type"));
    assert_eq!(types[..4], [3, 3, 3, 1]);
    assert!(types[3..].iter().all(|&t| t == 1));
    let merges = strings(value(&metadata, "tokenizer.ggml.merges"));
    assert_eq!(merges.len(), 125);
    assert!(
        merges.iter().all(|m| m.split(' ').count() == 2),
        "{merges:?}"
    );
    assert_eq!(
        value(&metadata, "tokenizer.ggml.bos_token_id"),
        &GgufValue::U32(1)
    );
    assert_eq!(
        value(&metadata, "tokenizer.ggml.eos_token_id"),
        &GgufValue::U32(2)
    );
    assert_eq!(
        value(&metadata, "tokenizer.ggml.padding_token_id"),
        &GgufValue::U32(0)
    );
    assert!(
        !metadata
            .iter()
            .any(|(k, _)| k == "tokenizer.ggml.unknown_token_id")
    );
    // The ByteLevel post-processor adds nothing: llama.cpp must not either.
    assert_eq!(
        value(&metadata, "tokenizer.ggml.add_bos_token"),
        &GgufValue::Bool(false)
    );
    assert_eq!(
        value(&metadata, "tokenizer.ggml.add_eos_token"),
        &GgufValue::Bool(false)
    );
    assert_eq!(
        value(&metadata, "tokenizer.chat_template").as_str(),
        Some("{{ messages }}")
    );

    let (rebuilt, _dir) = reread(&metadata);
    assert_eq!((rebuilt.bos_id, rebuilt.eos_id), (Some(1), Some(2)));
    assert_eq!(rebuilt.meta.padding_id, Some(0));
    assert_encodes_alike(&tokenizer, &rebuilt, &TRICKY);
}

#[test]
fn a_tokenizer_read_from_gguf_is_written_back() {
    let file = GgufFile::open(fixture("tiny_tokenizer.gguf")).unwrap();
    let original = GgufTokenizer::from_gguf(&file).unwrap();
    let tokenizer = TextTokenizer::new(original.tokenizer.clone());
    let ids = FramingIds {
        bos: original.bos_id.map(i64::from),
        eos: original.eos_id.map(i64::from),
    };
    let metadata = gguf_metadata(&tokenizer, &original.meta, ids, 271).unwrap();

    // The file's pre-tokenizer and BOS flag are kept, not re-derived.
    assert_eq!(
        value(&metadata, "tokenizer.ggml.pre").as_str(),
        Some("smollm")
    );
    assert_eq!(
        value(&metadata, "tokenizer.ggml.add_bos_token"),
        &GgufValue::Bool(true)
    );
    let tokens = strings(value(&metadata, "tokenizer.ggml.tokens"));
    let types = ints(value(&metadata, "tokenizer.ggml.token_type"));
    let file_tokens = file.get_str_array("tokenizer.ggml.tokens").unwrap();
    let file_types = file.get_i32_array("tokenizer.ggml.token_type").unwrap();
    for id in 0..271 {
        if id == 270 {
            // "a b" (user-defined, with a space) never matched whole: it is a vocabulary
            // entry in its byte-level spelling, as the rebuilt tokenizer holds it.
            assert_eq!((tokens[id], types[id]), ("a\u{120}b", 1));
        } else {
            assert_eq!(
                (tokens[id], types[id] as i32),
                (file_tokens[id], file_types[id]),
                "id {id}"
            );
        }
    }
    assert_eq!(
        strings(value(&metadata, "tokenizer.ggml.merges")),
        file.get_str_array("tokenizer.ggml.merges").unwrap()
    );

    let (rebuilt, _dir) = reread(&metadata);
    let reference = crate::gguf::tests::fixture_json("tiny_tokenizer.json");
    let cases: Vec<&str> = reference["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_encodes_alike(&tokenizer, &rebuilt, &cases);
    assert_encodes_alike(&tokenizer, &rebuilt, &TRICKY);
}

#[test]
fn ids_past_the_tokenizer_are_unused_and_ids_past_the_model_are_refused() {
    let tokenizer = tokenizer_of(&tiny_llama_json());
    let metadata = gguf_metadata(
        &tokenizer,
        &TokenizerMeta::default(),
        FramingIds::default(),
        386,
    )
    .unwrap();
    let tokens = strings(value(&metadata, "tokenizer.ggml.tokens"));
    let types = ints(value(&metadata, "tokenizer.ggml.token_type"));
    assert_eq!((tokens[384], types[384]), ("[PAD384]", 5));
    assert_eq!((tokens[385], types[385]), ("[PAD385]", 5));

    let err = gguf_metadata(
        &tokenizer,
        &TokenizerMeta::default(),
        FramingIds::default(),
        300,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("outside the model's 300 embeddings"), "{err}");
    let eos = FramingIds {
        bos: None,
        eos: Some(384),
    };
    let err = gguf_metadata(&tokenizer, &TokenizerMeta::default(), eos, 384)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`tokenizer.ggml.eos_token_id` 384 is outside"),
        "{err}"
    );
}

#[test]
fn the_pre_tokenizer_name_and_bos_eos_follow_the_tokenizer() {
    let pre_of = |pre: serde_json::Value, post: serde_json::Value| {
        let mut json = tiny_llama_json();
        json["pre_tokenizer"] = pre;
        json["post_processor"] = post;
        let metadata = gguf_metadata(
            &tokenizer_of(&json),
            &TokenizerMeta::default(),
            FramingIds::default(),
            384,
        )
        .unwrap();
        let flag = |key| value(&metadata, key).as_bool().unwrap();
        (
            value(&metadata, "tokenizer.ggml.pre")
                .as_str()
                .unwrap()
                .to_owned(),
            flag("tokenizer.ggml.add_bos_token"),
            flag("tokenizer.ggml.add_eos_token"),
        )
    };
    let byte_level = serde_json::json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    let smollm = serde_json::json!({"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": true}, byte_level.clone()]});
    let template = serde_json::json!({"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [1], "tokens": ["<|im_start|>"]}}});
    let both = serde_json::json!({"type": "Sequence", "processors": [byte_level.clone(), {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "<|im_end|>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {
            "<|im_start|>": {"id": "<|im_start|>", "ids": [1], "tokens": ["<|im_start|>"]},
            "<|im_end|>": {"id": "<|im_end|>", "ids": [2], "tokens": ["<|im_end|>"]}}}]});

    assert_eq!(
        pre_of(byte_level.clone(), serde_json::Value::Null),
        ("gpt-2".into(), false, false)
    );
    assert_eq!(pre_of(smollm, template), ("smollm".into(), true, false));
    assert_eq!(pre_of(byte_level, both), ("gpt-2".into(), true, true));
    // No known llama.cpp name: the GPT-2 split, with a warning.
    let whitespace = serde_json::json!({"type": "Whitespace"});
    assert_eq!(
        pre_of(whitespace, serde_json::Value::Null),
        ("gpt-2".into(), false, false)
    );
}

#[test]
fn only_byte_level_bpe_is_written() {
    let mut json = tiny_llama_json();
    json["decoder"] = serde_json::json!({"type": "Fuse"});
    let err = gguf_metadata(
        &tokenizer_of(&json),
        &TokenizerMeta::default(),
        FramingIds::default(),
        384,
    )
    .unwrap_err();
    assert!(matches!(err, TokenizeError::ToGguf(_)), "{err:?}");
    assert!(
        err.to_string().contains("only a byte-level BPE tokenizer"),
        "{err}"
    );
}
