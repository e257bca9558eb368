//! The transformer against transformers' own outputs on the same weights
//! (`tests/fixtures/model/make_model_fixtures.py`): tiny random Llama, Qwen2 and Mistral
//! checkpoints in Hugging Face layout, one of them sharded, one with the minimal layout.

mod common;

use rlmec::generate::sampler::SamplingParams;
use rlmec::generate::score::score;
use rlmec::generate::{Finish, GenerateOptions, Request, generate};
use rlmec::model::batch::Batch;
use rlmec::model::{LoadOptions, Model};
use serde_json::Value;
use tch::{Kind, Tensor};

use common::{assert_close, floats, ids, model_fixture, read_json, score_pairs};

const TOL: f64 = 1e-4;

fn reference(name: &str) -> Value {
    read_json(&model_fixture(name).join("reference.json"))
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
    Model::load(&model_fixture(name), LoadOptions::default()).unwrap()
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

fn requests(r: &Value, max_new_tokens: usize) -> Vec<Request> {
    r["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Request {
            prompt: ids(p),
            max_new_tokens,
        })
        .collect()
}

/// transformers ran 20 greedy steps with EOS disabled.
fn greedy_20() -> GenerateOptions {
    GenerateOptions {
        min_new_tokens: 20,
        ..GenerateOptions::default()
    }
}

#[test]
fn greedy_generation_and_scoring_match_transformers() {
    for name in ["tiny-llama", "tiny-qwen2", "tiny-mistral"] {
        let model = load(name);
        let r = reference(name);
        let outs = generate(&model, &requests(&r, 20), &greedy_20()).unwrap();
        for (i, out) in outs.iter().enumerate() {
            assert_eq!(out.ids, ids(&r["greedy"]["ids"][i]), "{name} prompt {i}");
            assert_close(
                &out.logprobs,
                &floats(&r["greedy"]["logprobs"][i]),
                TOL,
                name,
            );
        }
        for (i, lp) in score(&model, &score_pairs(&r), 8)
            .unwrap()
            .iter()
            .enumerate()
        {
            assert_close(lp, &floats(&r["score"]["logprobs"][i]), TOL, name);
        }
    }
}

#[test]
fn kv_cache_decoding_equals_recomputing_the_full_sequence() {
    let model = load("tiny-llama");
    let reqs = requests(&reference("tiny-llama"), 20);
    let outs = generate(&model, &reqs, &greedy_20()).unwrap();
    let pairs: Vec<_> = reqs
        .iter()
        .zip(&outs)
        .map(|(r, o)| (r.prompt.clone(), o.ids.clone()))
        .collect();
    for (out, full) in outs.iter().zip(score(&model, &pairs, 1).unwrap()) {
        let full: Vec<f64> = full.iter().map(|&x| x as f64).collect();
        assert_close(&out.logprobs, &full, 1e-5, "cache vs recompute");
    }
}

#[test]
fn batched_generation_with_padding_equals_one_by_one() {
    let model = load("tiny-qwen2");
    let mut reqs = requests(&reference("tiny-qwen2"), 12);
    reqs[0].max_new_tokens = 5; // rows leave the batch at different steps
    let sampled = GenerateOptions {
        sampling: SamplingParams {
            temperature: 0.9,
            top_p: 0.95,
            top_k: 50,
        },
        seed: 3,
        ..GenerateOptions::default()
    };
    for opts in [greedy_20(), sampled] {
        let together = generate(&model, &reqs, &opts).unwrap();
        for (i, req) in reqs.iter().enumerate() {
            // One at a time, keeping the request's index (its sampling stream).
            let mut alone = vec![
                Request {
                    prompt: vec![3],
                    max_new_tokens: 0
                };
                i
            ];
            alone.push(req.clone());
            let alone = generate(
                &model,
                &alone,
                &GenerateOptions {
                    batch_size: 1,
                    ..opts.clone()
                },
            )
            .unwrap();
            assert_eq!(
                together[i].ids, alone[i].ids,
                "request {i} with {:?}",
                opts.sampling
            );
            assert!(together[i].ids.len() <= req.max_new_tokens);
        }
        assert_eq!(together[0].ids.len(), 5);
        assert_eq!(together[0].finish, Finish::Length);
    }
}

#[test]
fn eos_and_stop_strings_end_rows_and_cut_the_text() {
    let model = load("tiny-llama");
    let reqs = requests(&reference("tiny-llama"), 20);
    let free = generate(&model, &reqs, &greedy_20()).unwrap();
    // Stop on the text of the 4th generated token: the text is cut before it.
    let stop_token = model.tokenizer.decode(&free[0].ids[3..4]).unwrap();
    let opts = GenerateOptions {
        stop: vec![stop_token.clone()],
        ..GenerateOptions::default()
    };
    let stopped = &generate(&model, &reqs[..1], &opts).unwrap()[0];
    assert_eq!(stopped.finish, Finish::Stop);
    assert!(stopped.ids.len() <= 4);
    assert!(
        !stopped.text.contains(&stop_token),
        "{:?} in {:?}",
        stop_token,
        stopped.text
    );
    let full_text = model.tokenizer.decode(&free[0].ids).unwrap();
    assert!(full_text.starts_with(&stopped.text));
}
