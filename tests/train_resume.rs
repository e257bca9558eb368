//! Training that stops and goes on: a halted run resumes to the uninterrupted curve, a resume
//! with other options or data is refused, damaged checkpoints are never loaded, a failing
//! objective keeps the steps done.

mod common;

use std::path::Path;

use rlmec::model::{LoadOptions, Model};
use rlmec::train::checkpoint;
use rlmec::train::objective::{self, Objective, RlmecParams};
use rlmec::train::schedule::Schedule;
use rlmec::train::{TrainOptions, tokens, train};
use serde_json::{Value, json};

use common::training::{records, tiny};

fn rl_opts(out: &Path) -> TrainOptions {
    TrainOptions {
        epochs: 4,
        lr: 1e-3,
        batch_size: 1,
        grad_accum: 2,
        schedule: Schedule::Cosine,
        warmup_ratio: 0.2,
        out: Some(out.to_path_buf()),
        checkpoint_every: 3,
        ..TrainOptions::default()
    }
}

fn metrics(out: &Path) -> Vec<Value> {
    rlmec::files::read_jsonl(&out.join("metrics.jsonl")).unwrap()
}

fn same_curve(a: &[Value], b: &[Value]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        for key in [
            "step",
            "epoch",
            "loss",
            "loss_rl",
            "loss_reg",
            "lr",
            "grad_norm",
            "tokens",
        ] {
            assert_eq!(x[key], y[key], "{key} at step {}", x["step"]);
        }
    }
}

#[test]
fn a_halted_run_resumes_to_the_uninterrupted_curve() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let mut recs = records(&tiny());
    recs.extend(records(&tiny()));
    recs.push(recs[0].clone());
    let mut rl = objective::Rlmec(RlmecParams::default());

    let whole = train(&mut tiny(), &recs, &mut rl, &rl_opts(&a)).unwrap();
    assert_eq!(whole.total_steps, 12); // 5 examples → 5 micro-batches → 3 steps × 4 epochs

    let halted = TrainOptions {
        halt_at_step: Some(7),
        ..rl_opts(&b)
    };
    let first = train(&mut tiny(), &recs, &mut rl, &halted).unwrap();
    assert!(first.halted && first.steps == 7);
    assert!(
        !b.join("model.safetensors").exists(),
        "no final model when halted"
    );
    assert_eq!(metrics(&b).len(), 7);

    let resumed = train(&mut tiny(), &recs, &mut rl, &rl_opts(&b)).unwrap();
    assert_eq!(resumed.resumed_from, Some(6), "the newest checkpoint");
    same_curve(&metrics(&a), &metrics(&b));
    same_curve(&whole.history, &resumed.history);
    let (wa, wb) = (
        Model::load(&a, LoadOptions::default()).unwrap(),
        Model::load(&b, LoadOptions::default()).unwrap(),
    );
    for (name, t) in wa.var_store().variables() {
        assert!(t.equal(&wb.var_store().variables()[&name]), "{name}");
    }

    // A finished run resumed again does nothing more.
    let again = train(&mut tiny(), &recs, &mut rl, &rl_opts(&b)).unwrap();
    assert_eq!(
        (again.resumed_from, again.steps, again.tokens),
        (Some(12), 12, 0)
    );
}

#[test]
fn resuming_with_other_options_or_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let recs = records(&tiny());
    let mut rl = objective::Rlmec(RlmecParams::default());
    let opts = TrainOptions {
        halt_at_step: Some(3),
        ..rl_opts(&out)
    };
    train(&mut tiny(), &recs, &mut rl, &opts).unwrap();
    let other_lr = TrainOptions {
        lr: 2e-3,
        ..rl_opts(&out)
    };
    let err = train(&mut tiny(), &recs, &mut rl, &other_lr)
        .unwrap_err()
        .to_string();
    assert!(err.contains("lr (checkpoint 0.001, now 0.002)"), "{err}");
    let err = train(&mut tiny(), &recs[..1], &mut rl, &rl_opts(&out))
        .unwrap_err()
        .to_string();
    assert!(err.contains("other records"), "{err}");
    let fresh = TrainOptions {
        resume: false,
        ..rl_opts(&out)
    };
    assert_eq!(
        train(&mut tiny(), &recs, &mut rl, &fresh)
            .unwrap()
            .resumed_from,
        None
    );
}

#[test]
fn damaged_checkpoints_are_detected_and_never_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let recs = records(&tiny());
    let mut rl = objective::Rlmec(RlmecParams::default());
    let opts = TrainOptions {
        checkpoint_every: 1,
        halt_at_step: Some(3),
        ..rl_opts(&out)
    };
    train(&mut tiny(), &recs, &mut rl, &opts).unwrap();
    let root = out.join("checkpoints");
    let (newest, older) = (root.join("step-00000003"), root.join("step-00000002"));
    assert!(newest.is_dir() && older.is_dir() && !root.join("step-00000001").exists());

    // A flipped byte in the newest: reported, and the one before it is used.
    let file = newest.join("optimizer.safetensors");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    let err = checkpoint::verify(&newest).unwrap_err().to_string();
    assert!(
        err.contains("optimizer.safetensors: checksum mismatch"),
        "{err}"
    );
    let (found, state) = checkpoint::newest(&root).unwrap().unwrap();
    assert_eq!((found, state.position.step), (older.clone(), 2));

    // Truncated weights and a missing state: both refused.
    let weights = older.join("model/model.safetensors");
    let len = std::fs::metadata(&weights).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&weights)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let err = checkpoint::verify(&older).unwrap_err().to_string();
    assert!(
        err.contains("model/model.safetensors") && err.contains("truncated"),
        "{err}"
    );
    std::fs::remove_file(newest.join("state.json")).unwrap();
    assert!(
        checkpoint::verify(&newest)
            .unwrap_err()
            .to_string()
            .contains("incomplete")
    );

    // Nothing usable left: resuming is an error, not a silent fresh start.
    let err = train(&mut tiny(), &recs, &mut rl, &rl_opts(&out))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("truncated") || err.contains("incomplete"),
        "{err}"
    );
}

/// An objective that fails mid-run loses nothing already done: the steps before it are
/// checkpointed, and the error names the step.
#[test]
fn a_failing_objective_keeps_the_steps_done() {
    struct FailsAtThirdStep(usize);
    impl Objective for FailsAtThirdStep {
        fn loss(&mut self, b: &tokens::TokenBatch) -> Result<objective::Loss, String> {
            self.0 += 1;
            if self.0 == 3 {
                return Err("boom".into());
            }
            Ok(objective::sft_loss(b))
        }
        fn name(&self) -> String {
            "fails".into()
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let recs: Vec<Value> = (0..4)
        .map(|i| json!({"input": format!("{i}"), "output": " x"}))
        .collect();
    let opts = TrainOptions {
        epochs: 2,
        batch_size: 1,
        grad_accum: 1,
        checkpoint_every: 0,
        out: Some(out.clone()),
        ..TrainOptions::default()
    };
    let err = train(&mut tiny(), &recs, &mut FailsAtThirdStep(0), &opts)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "train: step 3: objective: boom");
    let (_, state) = checkpoint::newest(&out.join("checkpoints"))
        .unwrap()
        .unwrap();
    assert_eq!(state.position.step, 2);
    assert_eq!(metrics(&out).len(), 2);
}
