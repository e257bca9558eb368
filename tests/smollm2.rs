//! The embedded default model (SmolLM2-135M-Instruct, GGUF Q4_1, dequantised to f32)
//! against transformers' GGUF loader on the same file: tokenizer ids, last-position logits,
//! greedy continuations token for token, log-probabilities and scoring.
//!
//! Needs `make setup` (the model is not committed); skipped with a note without it.

mod common;

use std::path::Path;

use rlmec::generate::score::score;
use rlmec::generate::{Finish, GenerateOptions, Request, generate};
use rlmec::model::batch::Batch;
use rlmec::model::{LoadOptions, Model};
use tch::Kind;

use common::{floats, ids, model_fixture, read_json};

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/models/SmolLM2-135M-Instruct.Q4_1.gguf"
);
const LOGPROB_TOL: f64 = 2e-3;
/// Below this top-2 logit gap, f32 rounding may legitimately flip the greedy choice.
const FRAGILE_MARGIN: f64 = 1e-3;

#[test]
fn smollm2_gguf_matches_transformers_token_for_token() {
    if !rlmec::testing::input_present(Path::new(MODEL), "run `make setup`") {
        return;
    }
    tch::set_num_threads(1);
    let r = read_json(&model_fixture("smollm2_reference.json"));
    let model = Model::load(Path::new(MODEL), LoadOptions::default()).unwrap();
    assert_eq!(model.special.eos, vec![2]);
    assert_eq!(model.special.bos, Some(1));

    let prompts: Vec<Vec<i64>> = r["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| ids(&p["ids"]))
        .collect();
    for (p, prompt) in r["prompts"].as_array().unwrap().iter().zip(&prompts) {
        let text = p["text"].as_str().unwrap();
        assert_eq!(&model.tokenizer.encode(text).unwrap(), prompt, "{text:?}");
        assert_eq!(model.tokenizer.decode(prompt).unwrap(), text);
    }

    // Last-position logits of each prompt.
    for (i, prompt) in prompts.iter().enumerate() {
        let batch = Batch::right_padded(std::slice::from_ref(prompt), 0, model.device());
        let hidden = model.hidden(&batch).select(1, prompt.len() as i64 - 1);
        let logits = model
            .net()
            .logits(&hidden)
            .to_kind(Kind::Float)
            .squeeze_dim(0);
        let want = &r["last_logits"][i];
        let first: Vec<f32> = Vec::try_from(logits.narrow(0, 0, 32)).unwrap();
        for (g, w) in first.iter().zip(floats(&want["first32"])) {
            assert!((*g as f64 - w).abs() < 1e-3, "prompt {i}: logit {g} vs {w}");
        }
        assert_eq!(
            logits.argmax(0, false).int64_value(&[]),
            want["argmax"].as_i64().unwrap()
        );
        let lse = logits.logsumexp([0i64].as_slice(), false).double_value(&[]);
        assert!(
            (lse - want["logsumexp"].as_f64().unwrap()).abs() < 1e-3,
            "prompt {i}: logsumexp {lse}"
        );
    }

    // Greedy, batched, EOS allowed: identical ids up to the first fragile step.
    let reqs: Vec<Request> = prompts
        .iter()
        .map(|p| Request {
            prompt: p.clone(),
            max_new_tokens: 32,
        })
        .collect();
    let outs = generate(&model, &reqs, &GenerateOptions::default()).unwrap();
    for (i, out) in outs.iter().enumerate() {
        let want = ids(&r["greedy"]["ids"][i]);
        let margins = floats(&r["greedy"]["top2_margins"][i]);
        let robust = margins
            .iter()
            .position(|&m| m < FRAGILE_MARGIN)
            .unwrap_or(want.len());
        assert!(
            robust >= 24,
            "fixture prompt {i} has a fragile step at {robust}"
        );
        assert_eq!(&out.ids[..robust], &want[..robust], "prompt {i}");
        let want_lp = floats(&r["greedy"]["logprobs"][i]);
        for (t, (got, want)) in out.logprobs.iter().zip(&want_lp).take(robust).enumerate() {
            let diff = (*got as f64 - want).abs();
            assert!(diff < LOGPROB_TOL, "prompt {i} token {t}: Δlogprob {diff}");
        }
        if r["greedy"]["stopped_at_eos"][i].as_bool().unwrap() {
            assert_eq!(out.finish, Finish::Eos, "prompt {i}");
            assert_eq!(
                out.text,
                r["greedy"]["text"][i]
                    .as_str()
                    .unwrap()
                    .trim_end_matches("<|im_end|>")
            );
        }
    }

    // Scoring the first 16 greedy tokens (teacher forcing).
    let pairs: Vec<_> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| (p.clone(), ids(&r["greedy"]["ids"][i])[..16].to_vec()))
        .collect();
    for (i, lp) in score(&model, &pairs, 4).unwrap().iter().enumerate() {
        for (t, (g, w)) in lp
            .iter()
            .zip(floats(&r["score"]["logprobs"][i]))
            .enumerate()
        {
            assert!(
                (*g as f64 - w).abs() < LOGPROB_TOL,
                "score {i}[{t}]: {g} vs {w}"
            );
        }
    }
}
