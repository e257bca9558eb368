//! The parts of a GGUF export that need no model: the options, the hyper-parameter keys in
//! llama.cpp's types, the tensor order. Whole models are saved and read back in
//! `tests/gguf_export.rs`.

use super::{GgufDtype, GgufOptions, file_order, hyper_parameters};
use crate::gguf::GgufValue;
use crate::model::config::ModelConfig;
use crate::model::gguf_names::ROPE_SCALING_KEY;

#[test]
fn dtype_names_parse_and_an_unknown_one_names_the_option() {
    for (name, dtype, file_type) in [
        ("f32", GgufDtype::F32, 0),
        ("f16", GgufDtype::F16, 1),
        ("bf16", GgufDtype::Bf16, 32),
    ] {
        assert_eq!(name.parse::<GgufDtype>().unwrap(), dtype);
        assert_eq!(dtype.to_string(), name);
        assert_eq!(dtype.file_type(), file_type);
    }
    assert_eq!(GgufOptions::default().dtype, GgufDtype::F32);
    let given = serde_json::json!({"dtype": "q4_0"});
    let err = crate::options::apply(&GgufOptions::default(), given.as_object().unwrap().clone())
        .unwrap_err();
    assert_eq!(
        err,
        "option `dtype`: unknown dtype `q4_0`: expected f32, f16 or bf16"
    );
}

fn config(json: serde_json::Value) -> ModelConfig {
    let mut base = serde_json::json!({
        "model_type": "llama", "vocab_size": 384, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5, "max_position_embeddings": 256
    });
    base.as_object_mut()
        .unwrap()
        .extend(json.as_object().unwrap().clone());
    serde_json::from_value(base).unwrap()
}

fn get<'a>(keys: &'a [(String, GgufValue)], key: &str) -> Option<&'a GgufValue> {
    keys.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

#[test]
fn hyper_parameters_use_llama_cpps_keys_and_types() {
    let keys = hyper_parameters(
        &config(serde_json::json!({"rope_theta": 100000.0})),
        "llama",
    )
    .unwrap();
    let at = |k: &str| get(&keys, k).cloned();
    assert_eq!(at("llama.context_length"), Some(GgufValue::U32(256)));
    assert_eq!(at("llama.embedding_length"), Some(GgufValue::U32(64)));
    assert_eq!(at("llama.block_count"), Some(GgufValue::U32(2)));
    assert_eq!(at("llama.feed_forward_length"), Some(GgufValue::U32(128)));
    assert_eq!(at("llama.attention.head_count"), Some(GgufValue::U32(4)));
    assert_eq!(at("llama.attention.head_count_kv"), Some(GgufValue::U32(2)));
    assert_eq!(at("llama.vocab_size"), Some(GgufValue::U32(384)));
    assert_eq!(at("llama.rope.dimension_count"), Some(GgufValue::U32(16)));
    assert_eq!(at("llama.rope.freq_base"), Some(GgufValue::F32(100000.0)));
    assert_eq!(
        at("llama.attention.layer_norm_rms_epsilon"),
        Some(GgufValue::F32(1e-5))
    );
    assert_eq!(keys.len(), 10, "no scaling and no key length: {keys:?}");

    let linear = config(
        serde_json::json!({"rope_scaling": {"type": "linear", "factor": 4.0}, "head_dim": 32}),
    );
    let keys = hyper_parameters(&linear, "qwen2").unwrap();
    assert_eq!(
        get(&keys, "qwen2.rope.scaling.type"),
        Some(&GgufValue::String("linear".into()))
    );
    assert_eq!(
        get(&keys, "qwen2.rope.scaling.factor"),
        Some(&GgufValue::F32(4.0))
    );
    assert_eq!(
        get(&keys, "qwen2.attention.key_length"),
        Some(&GgufValue::U32(32))
    );
    assert_eq!(
        get(&keys, "qwen2.attention.value_length"),
        Some(&GgufValue::U32(32))
    );

    let llama3 = config(
        serde_json::json!({"rope_scaling": {"rope_type": "llama3", "factor": 8.0,
        "original_max_position_embeddings": 64}}),
    );
    let keys = hyper_parameters(&llama3, "llama").unwrap();
    // llama.cpp knows no `llama3` scaling type: the factors go in `rope_freqs.weight`.
    assert!(
        !keys.iter().any(|(k, _)| k.contains("rope.scaling")),
        "{keys:?}"
    );
    let json = get(&keys, ROPE_SCALING_KEY).unwrap().as_str().unwrap();
    let back: crate::model::config::RopeParameters = serde_json::from_str(json).unwrap();
    assert_eq!(back, llama3.rope());
}

#[test]
fn tensors_go_globals_first_then_layer_by_layer() {
    let mut names = vec![
        "output.weight",
        "blk.10.attn_q.weight",
        "blk.2.ffn_up.weight",
        "output_norm.weight",
        "token_embd.weight",
        "blk.2.attn_k.weight",
        "rope_freqs.weight",
    ];
    names.sort_by_key(|n| file_order(n));
    assert_eq!(
        names,
        [
            "rope_freqs.weight",
            "token_embd.weight",
            "blk.2.attn_k.weight",
            "blk.2.ffn_up.weight",
            "blk.10.attn_q.weight",
            "output.weight",
            "output_norm.weight",
        ]
    );
}
