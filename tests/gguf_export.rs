//! Saving as GGUF (`Model::save_gguf`) and loading the file back (`Model::load`): in f32 every
//! parameter comes back bit for bit, the tokenizer encodes alike with the same special ids,
//! and greedy generation is the same; in f16/bf16 the weights come back rounded once to that
//! type. The file follows llama.cpp's conventions: names, types, Q/K permutation (none for
//! Qwen2), tied heads, LoRA merged — and for the embedded default model, every key it had
//! keeps its type and, for the tokenizer and hyper-parameters, its value.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rlmec::generate::{GenerateOptions, Request, generate};
use rlmec::gguf::{GgmlType, GgufFile, GgufValue};
use rlmec::model::config::ModelConfig;
use rlmec::model::qk_permute::permute_weights;
use rlmec::model::to_gguf::{GgufDtype, GgufOptions};
use rlmec::model::{LoadOptions, Model};
use tch::{Kind, Tensor};

use common::model_fixture;

const DEFAULT_MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/models/SmolLM2-135M-Instruct.Q4_1.gguf"
);

/// Digits, runs of spaces, non-ASCII text, special tokens.
const TRICKY: [&str; 8] = [
    "Hello, world!",
    "x  1 22 333 4444",
    "12345 + 678 = 99",
    "héllo wörld ✓ 日本語 🙂",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|><|endoftext|>",
    "a\n\n\tb",
    "  leading and trailing  ",
];

fn load(path: &Path) -> Model {
    tch::set_num_threads(1);
    Model::load(path, LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// `model` saved as GGUF in `dtype`, in a temporary folder.
fn saved(model: &Model, dtype: GgufDtype) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    model.save_gguf(&path, &GgufOptions { dtype }).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
    (dir, path)
}

/// Same names, shapes and bits (so -0.0 and NaN payloads count too).
fn assert_bit_identical(got: &Model, want: &Model, what: &str) {
    let (got, want) = (got.var_store().variables(), want.var_store().variables());
    let names = |vars: &std::collections::HashMap<String, Tensor>| {
        vars.keys().cloned().collect::<BTreeSet<_>>()
    };
    assert_eq!(names(&got), names(&want), "{what}: parameter names");
    for (name, w) in &want {
        let g = &got[name];
        assert_eq!(g.size(), w.size(), "{what}: {name} shape");
        assert!(
            g.view_dtype(Kind::Int).equal(&w.view_dtype(Kind::Int)),
            "{what}: {name} differs"
        );
    }
}

fn assert_same_tokenizer(got: &Model, want: &Model) {
    assert_eq!(got.special, want.special);
    for text in TRICKY {
        let ids = want.tokenizer.encode(text).unwrap();
        assert_eq!(got.tokenizer.encode(text).unwrap(), ids, "encode {text:?}");
        assert_eq!(
            got.tokenizer.decode(&ids).unwrap(),
            want.tokenizer.decode(&ids).unwrap()
        );
    }
}

fn greedy(model: &Model, tokens: usize) -> Vec<Vec<i64>> {
    let requests: Vec<Request> = TRICKY[..4]
        .iter()
        .map(|text| Request {
            prompt: model.tokenizer.encode(text).unwrap(),
            max_new_tokens: tokens,
        })
        .collect();
    let options = GenerateOptions {
        min_new_tokens: tokens,
        ..GenerateOptions::default()
    };
    generate(model, &requests, &options)
        .unwrap()
        .into_iter()
        .map(|g| g.ids)
        .collect()
}

/// The config's numbers the network runs on (a GGUF file does not keep every field of a
/// `config.json`, nor f64 precision for its floats).
fn assert_same_shape(got: &ModelConfig, want: &ModelConfig) {
    let numbers = |c: &ModelConfig| {
        let mut rope = c.rope();
        // `default` is what no type means.
        rope.rope_type = rope.rope_type.filter(|t| t != "default");
        (
            c.vocab_size,
            c.hidden_size,
            c.intermediate_size,
            c.num_hidden_layers,
            c.num_attention_heads,
            c.num_kv_heads(),
            c.head_dim(),
            c.max_position_embeddings,
            c.tie_word_embeddings,
            c.qkv_bias(),
            c.o_bias(),
            rope,
        )
    };
    assert_eq!(numbers(got), numbers(want));
    assert_eq!(got.rms_norm_eps as f32, want.rms_norm_eps as f32);
}

fn assert_round_trip(original: &Model, what: &str) -> (tempfile::TempDir, PathBuf) {
    let (dir, path) = saved(original, GgufDtype::F32);
    let back = load(&path);
    assert_bit_identical(&back, original, what);
    assert_same_shape(&back.config, &original.config);
    assert_same_tokenizer(&back, original);
    assert_eq!(greedy(&back, 6), greedy(original, 6), "{what}: greedy ids");
    (dir, path)
}

fn tensor_f32(file: &GgufFile, name: &str) -> Vec<f32> {
    file.dequantize(name).unwrap().data
}

fn param_f32(model: &Model, name: &str) -> Vec<f32> {
    let t = &model.var_store().variables()[name];
    Vec::<f32>::try_from(t.to_kind(Kind::Float).contiguous().flatten(0, -1)).unwrap()
}

#[test]
fn tiny_llama_round_trips_exactly_in_llama_cpps_layout() {
    let original = load(&model_fixture("tiny-llama"));
    let (_dir, path) = assert_round_trip(&original, "tiny-llama");

    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(file.get_str("general.name").unwrap(), "tiny-llama");
    assert_eq!(file.get("general.file_type"), Some(&GgufValue::U32(0)));
    assert_eq!(file.get_u32("llama.attention.head_count_kv").unwrap(), 2);
    // Untied: the output head has a tensor of its own. Every tensor is F32.
    assert!(file.tensor_info("output.weight").is_ok());
    assert!(
        file.tensors()
            .iter()
            .all(|t| t.ggml_type() == GgmlType::F32)
    );
    // Q and K rows are in llama.cpp's order, V's as they were.
    let q = "model.layers.1.self_attn.q_proj.weight";
    let k = "model.layers.1.self_attn.k_proj.weight";
    let v = "model.layers.1.self_attn.v_proj.weight";
    let want_q = permute_weights(&param_f32(&original, q), 64, 64, 4).unwrap();
    let want_k = permute_weights(&param_f32(&original, k), 32, 64, 2).unwrap();
    assert_eq!(tensor_f32(&file, "blk.1.attn_q.weight"), want_q);
    assert_eq!(tensor_f32(&file, "blk.1.attn_k.weight"), want_k);
    assert_ne!(want_q, param_f32(&original, q));
    assert_eq!(
        tensor_f32(&file, "blk.1.attn_v.weight"),
        param_f32(&original, v)
    );
    // llama3 RoPE: llama.cpp's factors tensor, 1 for the fastest frequency, 8 for the slowest.
    let factors = tensor_f32(&file, "rope_freqs.weight");
    assert_eq!((factors.len(), factors[0], factors[7]), (8, 1.0, 8.0));
    assert!(
        file.get_str("rlmec.rope_scaling")
            .unwrap()
            .contains("llama3")
    );
    // tokenizer_config.json's pad token; no post-processor adds BOS or EOS.
    assert_eq!(file.get_u32("tokenizer.ggml.padding_token_id").unwrap(), 0);
    assert!(!file.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    assert!(!file.get_bool("tokenizer.ggml.add_eos_token").unwrap());
    assert_eq!(file.get_str("tokenizer.ggml.pre").unwrap(), "gpt-2");
}

/// A Hugging Face folder's chat template: `chat_template.jinja` (transformers 5), else
/// `tokenizer_config.json`'s, with its BOS/EOS flags.
#[test]
fn a_hugging_face_chat_template_and_flags_are_carried() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(model_fixture("tiny-llama")).unwrap() {
        let from = entry.unwrap().path();
        std::fs::copy(&from, dir.path().join(from.file_name().unwrap())).unwrap();
    }
    let config_path = dir.path().join("tokenizer_config.json");
    let mut config = common::read_json(&config_path);
    config["chat_template"] = "{{ bos_token }}{{ messages }}".into();
    config["add_bos_token"] = true.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    let template_of = |model: &Model| {
        let (_out, path) = saved(model, GgufDtype::F32);
        let file = GgufFile::open(&path).unwrap();
        assert!(file.get_bool("tokenizer.ggml.add_bos_token").unwrap());
        file.get_str("tokenizer.chat_template").unwrap().to_owned()
    };
    assert_eq!(
        template_of(&load(dir.path())),
        "{{ bos_token }}{{ messages }}"
    );
    std::fs::write(dir.path().join("chat_template.jinja"), "{{ messages }}\n").unwrap();
    assert_eq!(template_of(&load(dir.path())), "{{ messages }}\n");
}

#[test]
fn qwen2_keeps_its_biases_and_layout_and_ties_the_head() {
    let original = load(&model_fixture("tiny-qwen2"));
    let (_dir, path) = assert_round_trip(&original, "tiny-qwen2");
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.get_str("general.architecture").unwrap(), "qwen2");
    assert_eq!(file.get_u32("qwen2.block_count").unwrap(), 2);
    // Tied embeddings: llama.cpp reads the head from token_embd.
    assert!(file.tensor_info("output.weight").is_err());
    // Hugging Face's RoPE layout: nothing permuted.
    let q = "model.layers.0.self_attn.q_proj";
    assert_eq!(
        tensor_f32(&file, "blk.0.attn_q.weight"),
        param_f32(&original, &format!("{q}.weight"))
    );
    let bias = file.tensor_info("blk.0.attn_q.bias").unwrap();
    assert_eq!((bias.ggml_type(), bias.shape()), (GgmlType::F32, vec![64]));
    assert_eq!(
        tensor_f32(&file, "blk.0.attn_q.bias"),
        param_f32(&original, &format!("{q}.bias"))
    );
}

#[test]
fn mistral_is_written_as_llama() {
    let original = load(&model_fixture("tiny-mistral"));
    let (_dir, path) = assert_round_trip(&original, "tiny-mistral");
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.get_str("general.architecture").unwrap(), "llama");
}

/// llama.cpp permutes the Q and K biases of a llama with `attention_bias` like their weights;
/// reading the file back undoes both.
#[test]
fn llama_attention_biases_round_trip() {
    tch::set_num_threads(1);
    let base = load(&model_fixture("tiny-llama"));
    let mut config = base.config.clone();
    config.attention_bias = true;
    let original = Model::new_seeded(
        config,
        base.tokenizer.clone(),
        base.special.clone(),
        LoadOptions::default(),
        &model_fixture("tiny-llama"),
        7,
    )
    .unwrap();
    assert!(
        original
            .var_store()
            .variables()
            .contains_key("model.layers.0.self_attn.k_proj.bias")
    );
    let (_dir, path) = assert_round_trip(&original, "llama with biases");
    let file = GgufFile::open(&path).unwrap();
    let k = param_f32(&original, "model.layers.0.self_attn.k_proj.bias");
    assert_eq!(
        tensor_f32(&file, "blk.0.attn_k.bias"),
        permute_weights(&k, 32, 1, 2).unwrap()
    );
}

#[test]
fn f16_and_bf16_hold_the_f32_weights_rounded_once() {
    let original = load(&model_fixture("tiny-llama"));
    for (dtype, kind, ggml, file_type) in [
        (GgufDtype::F16, Kind::Half, GgmlType::F16, 1),
        (GgufDtype::Bf16, Kind::BFloat16, GgmlType::BF16, 32),
    ] {
        let (_dir, path) = saved(&original, dtype);
        let file = GgufFile::open(&path).unwrap();
        assert_eq!(
            file.get("general.file_type"),
            Some(&GgufValue::U32(file_type))
        );
        for t in file.tensors() {
            // Norms (and the RoPE factors) stay F32, as llama.cpp keeps them.
            let want = if t.shape().len() == 1 {
                GgmlType::F32
            } else {
                ggml
            };
            assert_eq!(t.ggml_type(), want, "{dtype}: {}", t.name());
        }
        let back = load(&path);
        for (name, w) in original.var_store().variables() {
            let rounded = if w.dim() == 1 {
                w.shallow_clone()
            } else {
                w.to_kind(kind).to_kind(Kind::Float)
            };
            let g = &back.var_store().variables()[&name];
            assert!(
                g.view_dtype(Kind::Int)
                    .equal(&rounded.view_dtype(Kind::Int)),
                "{dtype}: {name} is not the f32 weight rounded once"
            );
        }
        assert_same_tokenizer(&back, &original);
    }
}

#[test]
fn lora_adapters_are_written_merged_and_stay_attached() {
    let adapter = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lora/peft-adapter");
    let mut with_adapter = load(&model_fixture("tiny-llama"));
    with_adapter.load_adapter(&adapter).unwrap();
    let (_dir, path) = saved(&with_adapter, GgufDtype::F32);
    assert!(
        with_adapter.lora().is_some(),
        "saving kept the adapters attached"
    );

    let mut merged = load(&model_fixture("tiny-llama"));
    merged.load_adapter(&adapter).unwrap();
    assert!(merged.merge_lora());
    let unmerged = load(&model_fixture("tiny-llama"));
    let name = "model.layers.0.self_attn.q_proj.weight";
    assert_ne!(param_f32(&merged, name), param_f32(&unmerged, name));
    assert_bit_identical(&load(&path), &merged, "merged adapters");
}

#[test]
fn an_unwritable_path_is_named() {
    let model = load(&model_fixture("tiny-llama"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-folder/model.gguf");
    let err = model
        .save_gguf(&path, &GgufOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&path.display().to_string()) && err.contains("cannot write"),
        "{err}"
    );
}

/// Keys of the source file rlmec does not carry over: its descriptive `general.*` ones
/// (`general.name` is the file's stem) and `add_space_prefix`, which llama.cpp reads for
/// SentencePiece vocabularies only.
const NOT_CARRIED: [&str; 7] = [
    "general.organization",
    "general.finetune",
    "general.basename",
    "general.size_label",
    "general.license",
    "general.languages",
    "tokenizer.ggml.add_space_prefix",
];

/// The type of a value, arrays with their item type.
fn value_type(value: &GgufValue) -> String {
    match value {
        GgufValue::Array(item, _) => format!("array of {item:?}"),
        other => format!("{:?}", std::mem::discriminant(other)),
    }
}

#[test]
fn the_default_model_round_trips_with_its_keys_and_tokenizer() {
    if !rlmec::testing::input_present(Path::new(DEFAULT_MODEL), "run `make setup`") {
        return;
    }
    let original = load(Path::new(DEFAULT_MODEL));
    let start = Instant::now();
    let (_dir, path) = saved(&original, GgufDtype::F32);
    eprintln!(
        "saved the default model as f32 GGUF ({} bytes) in {:.2}s",
        std::fs::metadata(&path).unwrap().len(),
        start.elapsed().as_secs_f64()
    );
    let back = load(&path);
    assert_bit_identical(&back, &original, "SmolLM2");
    assert_same_shape(&back.config, &original.config);
    assert_same_tokenizer(&back, &original);
    assert_eq!(greedy(&back, 8), greedy(&original, 8), "SmolLM2 greedy ids");

    let source = GgufFile::open(DEFAULT_MODEL).unwrap();
    let ours = GgufFile::open(&path).unwrap();
    for (key, value) in source.metadata() {
        if NOT_CARRIED.contains(&key.as_str()) {
            assert!(ours.get(key).is_none(), "{key}");
            continue;
        }
        let mine = ours
            .get(key)
            .unwrap_or_else(|| panic!("{key} is not written"));
        assert_eq!(value_type(mine), value_type(value), "{key}: type");
        let same_value = key.starts_with("tokenizer.")
            || key.starts_with("llama.")
            || key == "general.architecture"
            || key == "general.quantization_version";
        if same_value {
            assert!(mine == value, "{key}: value");
        }
    }
    assert_eq!(ours.get("general.file_type"), Some(&GgufValue::U32(0)));
    // SmolLM2 ties its head: no output.weight, as in the source.
    assert!(ours.tensor_info("output.weight").is_err());
    let names = |f: &GgufFile| {
        f.tensors()
            .iter()
            .map(|t| t.name().to_owned())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(names(&ours), names(&source));
}
