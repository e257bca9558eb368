//! The transformer against transformers' own outputs on the same weights
//! (`tests/fixtures/model/make_model_fixtures.py`): tiny random Llama, Qwen2 and Mistral
//! checkpoints in Hugging Face layout, one of them sharded, one with the minimal layout.

use std::path::{Path, PathBuf};

use rlmec::model::batch::Batch;
use rlmec::model::{LoadOptions, Model};
use serde_json::Value;
use tch::{Kind, Tensor};

const TOL: f64 = 1e-4;

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/model")
        .join(name)
}

fn reference(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_dir(name).join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn matrix(v: &Value) -> Tensor {
    let rows: Vec<Vec<f64>> = v.as_array().unwrap().iter().map(floats).collect();
    let flat: Vec<f64> = rows.concat();
    Tensor::from_slice(&flat)
        .view([rows.len() as i64, -1])
        .to_kind(Kind::Float)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn load(name: &str) -> Model {
    tch::set_num_threads(1);
    Model::load(&fixture_dir(name), LoadOptions::default()).unwrap()
}

/// Logits of every position of each unpadded prompt equal transformers'.
fn check_forward(model: &Model, r: &Value) {
    let prompts: Vec<Vec<i64>> = r["prompts"].as_array().unwrap().iter().map(ids).collect();
    for (i, prompt) in prompts.iter().enumerate() {
        let batch = Batch::right_padded(std::slice::from_ref(prompt), 0, model.device());
        let logits = model.net().logits(&model.hidden(&batch)).squeeze_dim(0);
        let expected = matrix(&r["forward"]["logits"][i]);
        let diff = max_abs_diff(&logits, &expected);
        assert!(diff < TOL, "prompt {i}: max |Δlogit| = {diff}");
    }
    // The same prompts left-padded into one batch: real positions are unchanged.
    let batch = Batch::left_padded(&prompts, 0, model.device());
    let logits = model.net().logits(&model.hidden(&batch));
    for (i, prompt) in prompts.iter().enumerate() {
        let real = logits
            .get(i as i64)
            .narrow(0, batch.column(i, 0), prompt.len() as i64);
        let expected = matrix(&r["padded_forward"]["logits"][i]);
        let diff = max_abs_diff(&real, &expected);
        assert!(diff < TOL, "padded prompt {i}: max |Δlogit| = {diff}");
    }
}

#[test]
fn tiny_llama_with_llama3_rope_matches_transformers() {
    check_forward(&load("tiny-llama"), &reference("tiny-llama"));
}

#[test]
fn sharded_checkpoint_in_the_transformers_4_layout_loads_the_same_model() {
    check_forward(&load("tiny-llama-sharded"), &reference("tiny-llama"));
}

#[test]
fn tiny_qwen2_with_qkv_bias_and_tied_embeddings_matches_transformers() {
    let model = load("tiny-qwen2");
    assert!(model.config.tie_word_embeddings);
    check_forward(&model, &reference("tiny-qwen2"));
}

#[test]
fn tiny_mistral_from_the_minimal_layout_matches_transformers() {
    let model = load("tiny-mistral");
    assert_eq!(
        model.special.eos,
        vec![2],
        "EOS from config.json when there is no generation_config.json"
    );
    check_forward(&model, &reference("tiny-mistral"));
}

#[test]
fn tokenizer_json_matches_transformers() {
    let model = load("tiny-llama");
    for case in reference("tiny-llama")["tokenizer"]["cases"]
        .as_array()
        .unwrap()
    {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            model.tokenizer.encode(text).unwrap(),
            ids(&case["ids"]),
            "{text:?}"
        );
        assert_eq!(model.tokenizer.decode(&ids(&case["ids"])).unwrap(), text);
    }
}
