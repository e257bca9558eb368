//! The CUDA path against the CPU (tests/scripts/cuda_checks.rhai: scoring, greedy decoding,
//! SFT, RLMEC and LoRA steps, with and without gradient checkpointing) and `math_full` end to
//! end with `--device cuda`, where CUDA is present; skipped with the reason elsewhere, so
//! `make test` stays CPU-only.

use std::path::Path;
use std::process::Command;

fn cuda_present() -> bool {
    if tch::Cuda::is_available() {
        return true;
    }
    eprintln!(
        "skipped: no CUDA device visible to this build (libtorch variant `{}`, {} GPU(s)); the CUDA checks run where one is",
        rlmec::LIBTORCH_VARIANT,
        tch::Cuda::device_count()
    );
    false
}

fn rlmec(args: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_rlmec"))
        .args(args)
        .current_dir(root)
        .output()
        .expect("the binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "rlmec {args:?} failed:\n{text}");
}

#[test]
fn cuda_computes_what_the_cpu_does() {
    if cuda_present() {
        rlmec(&["tests/scripts/cuda_checks.rhai"]);
    }
}

#[test]
fn math_full_runs_end_to_end_on_cuda() {
    if !cuda_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    rlmec(&[
        "scripts/math_full.rhai",
        "--device",
        "cuda",
        "--out",
        out.to_str().unwrap(),
        "--set",
        "n_train=40",
        "--set",
        "n_test=40",
        "--set",
        "synthetic.n_pretrain=400",
    ]);
    assert!(out.join("accuracy.csv").is_file());
}
