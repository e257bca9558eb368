//! A LoRA step at scale on this machine: a SmolLM2-1.7B-shaped llama (random weights, bf16;
//! SmolLM2's tokenizer and vocabulary) trained with LoRA (r 16, all seven projections) and
//! gradient checkpointing, 2 rows × 512 tokens per step — does it fit in the machine's memory,
//! how fast is it, and what full fine-tuning would need instead. Also times writing the
//! 1.7B model (`m.save`), the checkpoint writer's throughput. `make bench-lora-scale`.
//!
//! Environment: `RLMEC_BENCH_THREADS` (2), `RLMEC_BENCH_REPEATS` (3 timed steps after one
//! warm-up), `RLMEC_BENCH_CHECKPOINT` (1; 0 keeps every layer's activations).

mod common;

use std::path::Path;
use std::time::Instant;

use common::{MODEL, Settings, median};
use rlmec::model::lora::LoraConfig;
use rlmec::model::{Dtype, LoadOptions, Model};
use rlmec::train::examples::Example;
use rlmec::train::objective::Sft;
use rlmec::train::{TrainOptions, memory, train_examples};

const ROWS: usize = 2;
const PROMPT: usize = 64;
const OUTPUT: usize = 448;

fn main() {
    let settings = Settings::from_env();
    let checkpoint = std::env::var("RLMEC_BENCH_CHECKPOINT").map_or(true, |v| v != "0");
    let small = Model::load(Path::new(MODEL), LoadOptions::default()).unwrap();
    let mut config = small.config.clone();
    config.hidden_size = 2048;
    config.intermediate_size = 8192;
    config.num_hidden_layers = 24;
    config.num_attention_heads = 32;
    config.num_key_value_heads = Some(32);
    config.head_dim = None;
    config.max_position_embeddings = 8192;
    config.tie_word_embeddings = true;
    let opts = LoadOptions {
        dtype: Dtype::Bf16,
        pack: false,
        ..LoadOptions::default()
    };
    let start = Instant::now();
    let mut model = Model::new_seeded(
        config,
        small.tokenizer.clone(),
        small.special.clone(),
        opts,
        Path::new("random-1.7b"),
        0,
    )
    .unwrap();
    println!(
        "made a {:.2}B-parameter bf16 llama in {:.1}s",
        model.num_parameters() as f64 / 1e9,
        start.elapsed().as_secs_f64()
    );
    drop(small);

    let dir = tempfile::tempdir_in("target").unwrap();
    let save = Instant::now();
    model.save(&dir.path().join("m")).unwrap();
    let seconds = save.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(dir.path().join("m/model.safetensors"))
        .unwrap()
        .len();
    println!(
        "m.save: {:.2} GB in {seconds:.1}s = {:.2} GB/s (streamed, fsync included)",
        bytes as f64 / 1e9,
        bytes as f64 / 1e9 / seconds
    );
    drop(dir);

    let steps = settings.repeats + 1;
    let examples: Vec<Example> = (0..ROWS * steps)
        .map(|i| Example {
            prompt: (0..PROMPT)
                .map(|j| 100 + ((i * 31 + j * 7) % 40000) as i64)
                .collect(),
            seq: (0..OUTPUT)
                .map(|j| 100 + ((i * 17 + j * 13) % 40000) as i64)
                .collect(),
            rl: None,
            reg: None,
        })
        .collect();
    let train_opts = TrainOptions {
        epochs: 1,
        lr: 1e-4,
        batch_size: ROWS,
        grad_accum: 1,
        warmup_ratio: 0.0,
        max_len: PROMPT + OUTPUT,
        lora: Some(LoraConfig::default()),
        grad_checkpoint: checkpoint,
        ..TrainOptions::default()
    };
    let lengths = vec![PROMPT + OUTPUT; examples.len()];
    let full = TrainOptions {
        lora: None,
        ..train_opts.clone()
    };
    let full_estimate = memory::estimate(&model, &full, &lengths);
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = common::peak_rss_mb();
    let report = train_examples(&mut model, examples, &mut Sft, &train_opts).unwrap();
    let lora_estimate = memory::estimate(&model, &train_opts, &lengths);
    let rates: Vec<f64> = report.history[1..]
        .iter()
        .map(|l| l["tokens_per_s"].as_f64().unwrap())
        .collect();
    println!(
        "\nSmolLM2-1.7B-shaped llama, bf16, {} threads, {ROWS} × {} tokens, LoRA r 16 on all seven projections{}",
        settings.threads,
        PROMPT + OUTPUT,
        if checkpoint {
            ", gradient checkpointing"
        } else {
            ""
        }
    );
    println!("\n| | value |\n| --- | --- |");
    println!("| LoRA step (tokens/s, median) | {:.1} |", median(rates));
    println!(
        "| peak RSS of the process (GB) | {:.2} (at the start of training: {:.2}) |",
        common::peak_rss_mb() / 1024.0,
        rss_before / 1024.0
    );
    println!("| estimate, this run | {lora_estimate} |");
    println!("| estimate, full fine-tuning | {full_estimate} |");
}
