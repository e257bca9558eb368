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
//! (`f32` or `bf16`), `RLMEC_BENCH_SKIP_PEER=1` to time rlmec alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rlmec::generate::sampler::SamplingParams;
use rlmec::generate::score::score;
use rlmec::generate::{GenerateOptions, Request, generate};
use rlmec::model::{Dtype, LoadOptions, Model};
use serde_json::{Value, json};

const MODEL: &str = "data/models/SmolLM2-135M-Instruct.Q4_1.gguf";

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Median seconds of `repeats` runs of `f` after one warm-up run.
fn time(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..repeats)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

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
    let threads: i32 = std::env::var("RLMEC_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let repeats: usize = std::env::var("RLMEC_BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dtype: Dtype = std::env::var("RLMEC_BENCH_DTYPE")
        .unwrap_or_else(|_| "f32".into())
        .parse()
        .unwrap();
    tch::set_num_threads(threads);
    let opts = LoadOptions {
        dtype,
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
        "peak_rss_mb": peak_rss_mb(),
    });
    let peer = if std::env::var_os("RLMEC_BENCH_SKIP_PEER").is_some() {
        None
    } else {
        run_peer(&input, threads, repeats, dtype)
    };
    report(&ours, peer.as_ref(), threads, dtype);
}

fn run_peer(input: &Value, threads: i32, repeats: usize, dtype: Dtype) -> Option<Value> {
    let dir = PathBuf::from("target/bench");
    std::fs::create_dir_all(&dir).ok()?;
    let input_path = dir.join("inputs.json");
    let output_path = dir.join("peer.json");
    std::fs::write(&input_path, input.to_string()).ok()?;
    let python = std::env::var("RLMEC_BENCH_PYTHON")
        .unwrap_or_else(|_| ".deps/bench-venv/bin/python".into());
    let status = Command::new(&python)
        .args(["benches/peer_transformers.py", MODEL])
        .arg(&input_path)
        .arg(&output_path)
        .args([
            "--threads",
            &threads.to_string(),
            "--repeats",
            &repeats.to_string(),
            "--dtype",
            dtype.hf_name(),
        ])
        .status();
    match status {
        Ok(s) if s.success() => {
            serde_json::from_str(&std::fs::read_to_string(&output_path).ok()?).ok()
        }
        other => {
            eprintln!("peer did not run ({python}: {other:?}); run `make bench-setup` first");
            None
        }
    }
}

fn report(ours: &Value, peer: Option<&Value>, threads: i32, dtype: Dtype) {
    println!(
        "\nSmolLM2-135M, {}, {threads} threads (medians)\n",
        dtype.hf_name()
    );
    println!("| metric | rlmec | transformers | rlmec / transformers |");
    println!("| --- | --- | --- | --- |");
    let rows = [
        ("load (s, lower is better)", "load_s"),
        ("greedy batch 1 (tokens/s)", "greedy_b1_tok_s"),
        ("sampling batch 16 (tokens/s)", "sample_b16_tok_s"),
        ("scoring 8 x (64+256) (tokens/s)", "score_tok_s"),
        ("peak RSS (MB, lower is better)", "peak_rss_mb"),
    ];
    for (label, key) in rows {
        let a = ours[key].as_f64().unwrap_or(f64::NAN);
        let b = peer.and_then(|p| p[key].as_f64());
        // rlmec / transformers: above 1 is better for rates, below 1 for time and memory.
        let ratio = b.map(|b| a / b);
        println!(
            "| {label} | {a:.2} | {} | {} |",
            b.map_or("-".into(), |b| format!("{b:.2}")),
            ratio.map_or("-".into(), |r| format!("{r:.2}x"))
        );
    }
    let out = json!({"rlmec": ours, "transformers": peer});
    let _ = std::fs::write(
        "target/bench/model.json",
        serde_json::to_string_pretty(&out).unwrap(),
    );
}
