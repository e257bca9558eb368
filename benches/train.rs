//! Training speed against PyTorch + transformers, side by side in one run:
//! `make bench-train`.
//!
//! The step of the benchmark: a micro-batch of 8 rows of 256 tokens (64 prompt +
//! 192 output), supervised loss on the output tokens, backward, gradient clipping, AdamW —
//! on the embedded default model, the same token ids, dtype and thread count on both sides
//! (`benches/peer_train.py`). Reports the median step's tokens/s after one warm-up step, and
//! the peak RSS of training (reset after loading on both sides). Environment as in
//! `benches/model.rs` (`RLMEC_BENCH_REPEATS` steps are timed); `RLMEC_BENCH_LORA=16` trains
//! LoRA adapters of that rank beside all seven projections instead (PEFT on the peer's side):
//! `make bench-lora`.

mod common;

use std::path::Path;

use common::{MODEL, Settings, median, report, run_peer};
use rlmec::model::lora::LoraConfig;
use rlmec::model::{LoadOptions, Model};
use rlmec::train::examples::Example;
use rlmec::train::objective::Sft;
use rlmec::train::{TrainOptions, train_examples};
use serde_json::json;

const ROWS: usize = 8;
const PROMPT: usize = 64;
const OUTPUT: usize = 192;
const LR: f64 = 5e-6;

fn main() {
    let settings = Settings::from_env();
    let opts = LoadOptions {
        dtype: settings.dtype,
        ..LoadOptions::default()
    };
    let mut model = Model::load(Path::new(MODEL), opts).unwrap();
    let text: String = rlmec::files::read_jsonl(Path::new("data/qa/ecqa/train.jsonl"))
        .expect("ECQA data")
        .iter()
        .take(2000)
        .map(|r| r["solution"].as_str().unwrap().to_string() + "\n")
        .collect();
    let stream = model.tokenizer.encode(&text).unwrap();
    let steps = settings.repeats + 1;
    let examples: Vec<Example> = (0..ROWS * steps)
        .map(|i| {
            let at = i * (PROMPT + OUTPUT);
            Example {
                prompt: stream[at..at + PROMPT].to_vec(),
                seq: stream[at + PROMPT..at + PROMPT + OUTPUT].to_vec(),
                rl: None,
                reg: None,
            }
        })
        .collect();
    // The peer sees the batches in the order rlmec's trainer will visit them.
    let order =
        rlmec::train::batching::epoch_batches(&vec![PROMPT + OUTPUT; examples.len()], ROWS, 0, 0);
    let batches: Vec<Vec<serde_json::Value>> = order
        .iter()
        .map(|b| {
            b.iter()
                .map(|&i| json!({"prompt": examples[i].prompt, "output": examples[i].seq}))
                .collect()
        })
        .collect();
    let lora_r: usize = std::env::var("RLMEC_BENCH_LORA")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let lora = (lora_r > 0).then(|| LoraConfig {
        r: lora_r,
        alpha: 2.0 * lora_r as f64,
        ..LoraConfig::default()
    });
    let input = json!({"batches": batches, "lr": LR, "lora": lora});

    // Peak memory of training only, as on the peer side.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let train_opts = TrainOptions {
        epochs: 1,
        lr: LR,
        batch_size: ROWS,
        grad_accum: 1,
        warmup_ratio: 0.0,
        max_len: PROMPT + OUTPUT,
        lora,
        ..TrainOptions::default()
    };
    let report_ = train_examples(&mut model, examples, &mut Sft, &train_opts).unwrap();
    let step_rates: Vec<f64> = report_.history[1..]
        .iter()
        .map(|l| l["tokens_per_s"].as_f64().unwrap())
        .collect();
    let ours = json!({
        "train_tok_s": median(step_rates),
        "peak_rss_mb": common::peak_rss_mb(),
    });
    let peer = run_peer(
        &settings,
        "benches/peer_train.py",
        if lora_r > 0 { "train-lora" } else { "train" },
        &input,
    );
    let rows = [
        (
            if lora_r > 0 {
                "LoRA training step, 8 x 256 tokens (tokens/s)"
            } else {
                "training step, 8 x 256 tokens (tokens/s)"
            },
            "train_tok_s",
        ),
        ("peak RSS of training (MB, lower is better)", "peak_rss_mb"),
    ];
    let name = if lora_r > 0 { "train-lora" } else { "train" };
    report(&settings, name, &rows, &ours, peer.as_ref());
}
