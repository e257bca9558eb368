//! What every side-by-side benchmark shares: settings from the environment, timing, peak
//! memory, running the Python peer on the same inputs, and the markdown report.
#![allow(dead_code)] // each bench uses its own subset

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use rlmec::model::Dtype;
use serde_json::{Value, json};

/// The embedded default model both sides load.
pub const MODEL: &str = "data/models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// `RLMEC_BENCH_THREADS` (2), `RLMEC_BENCH_REPEATS` (3), `RLMEC_BENCH_DTYPE` (f32),
/// `RLMEC_BENCH_PACK` (1; 0 times rlmec without oneDNN-packed weights),
/// `RLMEC_BENCH_SKIP_PEER`, `RLMEC_BENCH_PYTHON` (`.deps/bench-venv/bin/python`).
#[derive(Clone)]
pub struct Settings {
    pub threads: i32,
    pub repeats: usize,
    pub dtype: Dtype,
    pub pack: bool,
    pub skip_peer: bool,
    pub python: String,
}

impl Settings {
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok();
        let s = Self {
            threads: var("RLMEC_BENCH_THREADS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(2),
            repeats: var("RLMEC_BENCH_REPEATS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(3),
            dtype: var("RLMEC_BENCH_DTYPE")
                .unwrap_or_else(|| "f32".into())
                .parse()
                .unwrap(),
            pack: var("RLMEC_BENCH_PACK").is_none_or(|v| v != "0"),
            skip_peer: var("RLMEC_BENCH_SKIP_PEER").is_some(),
            python: var("RLMEC_BENCH_PYTHON")
                .unwrap_or_else(|| ".deps/bench-venv/bin/python".into()),
        };
        tch::set_num_threads(s.threads);
        s
    }
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Median seconds of `repeats` runs of `f` after one warm-up run.
pub fn time(repeats: usize, mut f: impl FnMut()) -> f64 {
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

/// The machine the numbers were measured on, as `lscpu` names it: the model name, the CPU
/// family (which tells AMD's generations apart where the name is only "AMD EPYC") and the
/// count of CPUs; "unknown CPU" where lscpu does not answer.
pub fn cpu_model() -> String {
    let Ok(out) = Command::new("lscpu").output() else {
        return "unknown CPU".into();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    };
    match (field("Model name"), field("CPU family"), field("CPU(s)")) {
        (Some(name), family, cpus) => format!(
            "{name}{}{}",
            family.map_or(String::new(), |f| format!(", family {f}")),
            cpus.map_or(String::new(), |c| format!(", {c} CPUs"))
        ),
        (None, ..) => "unknown CPU".into(),
    }
}

pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Runs `script` (a Python peer) on `input`, written to `target/bench/<name>-inputs.json`;
/// its JSON result, or `None` (with a note) when it could not run.
pub fn run_peer(s: &Settings, script: &str, name: &str, input: &Value) -> Option<Value> {
    if s.skip_peer {
        return None;
    }
    let dir = PathBuf::from("target/bench");
    std::fs::create_dir_all(&dir).ok()?;
    let input_path = dir.join(format!("{name}-inputs.json"));
    let output_path = dir.join(format!("{name}-peer.json"));
    std::fs::write(&input_path, input.to_string()).ok()?;
    let status = Command::new(&s.python)
        .args([script, MODEL])
        .arg(&input_path)
        .arg(&output_path)
        .args(["--threads", &s.threads.to_string()])
        .args(["--repeats", &s.repeats.to_string()])
        .args(["--dtype", s.dtype.hf_name()])
        .status();
    match status {
        Ok(st) if st.success() => {
            serde_json::from_str(&std::fs::read_to_string(&output_path).ok()?).ok()
        }
        other => {
            eprintln!(
                "peer did not run ({}: {other:?}); run `make bench-setup` first",
                s.python
            );
            None
        }
    }
}

/// A markdown table of `rows` (label, key) with the ratio rlmec / transformers, and the raw
/// numbers in `target/bench/<name>.json`.
pub fn report(s: &Settings, name: &str, rows: &[(&str, &str)], ours: &Value, peer: Option<&Value>) {
    println!(
        "\nSmolLM2-135M, {}, {} threads{} (medians)\n",
        s.dtype.hf_name(),
        s.threads,
        if s.pack {
            ""
        } else {
            ", rlmec without packed weights"
        }
    );
    println!("| metric | rlmec | transformers | rlmec / transformers |");
    println!("| --- | --- | --- | --- |");
    for (label, key) in rows {
        let a = ours[key].as_f64().unwrap_or(f64::NAN);
        let b = peer.and_then(|p| p[key].as_f64());
        // Above 1 is better for rates, below 1 for time and memory.
        let ratio = b.map(|b| a / b);
        println!(
            "| {label} | {a:.2} | {} | {} |",
            b.map_or("-".into(), |b| format!("{b:.2}")),
            ratio.map_or("-".into(), |r| format!("{r:.2}x"))
        );
    }
    let out = json!({"rlmec": ours, "transformers": peer});
    let _ = std::fs::write(
        format!("target/bench/{name}.json"),
        serde_json::to_string_pretty(&out).unwrap(),
    );
}
