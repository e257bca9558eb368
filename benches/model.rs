//! Model speed against transformers, side by side in one run: `make bench`.
//!
//! Measures, on the embedded default (SmolLM2-135M, f32, the same thread count on both
//! sides): load time, greedy decoding at batch 1 (64 new tokens), sampling at batch 16 (64
//! new tokens), scoring 8 × (64 prompt + 256 continuation) tokens, and peak memory. The
//! inputs (token ids) are written to a JSON file that the peer script
//! (`benches/peer_transformers.py`) reads, so both sides see exactly the same work. Each
//! timing is the median of `RLMEC_BENCH_REPEATS` runs (default 3) after one warm-up.
//!
//! Environment: `RLMEC_BENCH_PYTHON` (the interpreter with torch + transformers; default
//! `.deps/bench-venv/bin/python`), `RLMEC_BENCH_THREADS` (default 2), `RLMEC_BENCH_DTYPE`
//! (`f32` or `bf16`), `RLMEC_BENCH_PACK=0` (no oneDNN-packed weights), `RLMEC_BENCH_SKIP_PEER=1`
//! to time rlmec alone.

mod common;

use std::path::Path;

use common::{MODEL, Settings, report, run_peer, time};
use rlmec::generate::sampler::SamplingParams;
use rlmec::generate::score::score;
use rlmec::generate::{GenerateOptions, Request, generate};
use rlmec::model::{LoadOptions, Model};
use serde_json::{Value, json};

/// The benchmark's inputs: Alpaca prompts over ECQA test problems, and scoring pairs cut
/// from ECQA training rationales.
fn inputs(model: &Model) -> Value {
    let read = |p: &str| rlmec::files::read_jsonl(Path::new(p)).expect("ECQA data");
    let test = read("data/qa/ecqa/test.jsonl");
    let prompt = |r: &Value| {
        format!(
            "Below is an instruction that describes a task. Write a response that appropriately \
             completes the request.\n\n### Instruction:\n{}\n\n### Response: Let's think step by step.\n",
            r["problem"].as_str().unwrap()
        )
    };
    let prompts: Vec<Vec<i64>> = test[..16]
        .iter()
        .map(|r| model.tokenizer.encode(&prompt(r)).unwrap())
        .collect();
    let text: String = read("data/qa/ecqa/train.jsonl")[..400]
        .iter()
        .map(|r| r["solution"].as_str().unwrap().to_string() + "\n")
        .collect();
    let stream = model.tokenizer.encode(&text).unwrap();
    let pairs: Vec<Value> = (0..8)
        .map(|i| {
            let at = i * 320;
            json!({"prompt": &stream[at..at + 64], "continuation": &stream[at + 64..at + 320]})
        })
        .collect();
    json!({"prompts": prompts, "score_pairs": pairs, "new_tokens": 64})
}

fn main() {
    let settings = Settings::from_env();
    let (repeats, dtype) = (settings.repeats, settings.dtype);
    let opts = LoadOptions {
        dtype,
        pack: settings.pack,
        ..LoadOptions::default()
    };

    let load_s = time(repeats, || {
        drop(Model::load(Path::new(MODEL), opts).unwrap())
    });
    let model = Model::load(Path::new(MODEL), opts).unwrap();
    let input = inputs(&model);
    let ids = |v: &Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect()
    };
    let prompts: Vec<Vec<i64>> = input["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(ids)
        .collect();
    let new = 64;
    let fixed = |sampling, batch_size| GenerateOptions {
        sampling,
        min_new_tokens: new, // every row decodes exactly `new` tokens, as on the peer side
        batch_size,
        ..GenerateOptions::default()
    };
    let req = |p: &Vec<i64>| Request {
        prompt: p.clone(),
        max_new_tokens: new,
    };

    let greedy = fixed(SamplingParams::greedy(), 1);
    let greedy_s = time(repeats, || {
        drop(generate(&model, &[req(&prompts[0])], &greedy).unwrap())
    });
    let sampled = fixed(
        SamplingParams {
            temperature: 0.7,
            top_p: 0.95,
            top_k: 0,
        },
        16,
    );
    let batch: Vec<Request> = prompts.iter().map(req).collect();
    let sample_s = time(repeats, || {
        drop(generate(&model, &batch, &sampled).unwrap())
    });
    let pairs: Vec<(Vec<i64>, Vec<i64>)> = input["score_pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (ids(&p["prompt"]), ids(&p["continuation"])))
        .collect();
    let score_s = time(repeats, || drop(score(&model, &pairs, 8).unwrap()));

    let ours = json!({
        "load_s": load_s,
        "greedy_b1_tok_s": new as f64 / greedy_s,
        "sample_b16_tok_s": (16 * new) as f64 / sample_s,
        "score_tok_s": (8 * 256) as f64 / score_s,
        "peak_rss_mb": common::peak_rss_mb(),
    });
    let peer = run_peer(&settings, "benches/peer_transformers.py", "model", &input);
    let rows = [
        ("load (s, lower is better)", "load_s"),
        ("greedy batch 1 (tokens/s)", "greedy_b1_tok_s"),
        ("sampling batch 16 (tokens/s)", "sample_b16_tok_s"),
        ("scoring 8 x (64+256) (tokens/s)", "score_tok_s"),
        ("peak RSS (MB, lower is better)", "peak_rss_mb"),
    ];
    report(&settings, "model", &rows, &ours, peer.as_ref());
}
