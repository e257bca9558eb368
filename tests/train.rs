//! Training: the losses against hand computations and finite differences, the trainer
//! learning, resumption reproducing an uninterrupted run, damaged checkpoints refused.

mod common;

use rlmec::generate::score::score;
use rlmec::model::{LoadOptions, Model};
use rlmec::train::examples::{self, Example, RecordKind};
use rlmec::train::objective::{self, Objective, RlmecParams};
use rlmec::train::{TrainOptions, tokens, train};
use serde_json::{Value, json};
use tch::Tensor;

use common::training::{records, rl_record, tiny};

fn tokenized(m: &Model, records: &[Value]) -> Vec<Example> {
    examples::tokenize(m, records, RecordKind::of(records)).unwrap()
}

/// Each example's (prompt, sequence) for `score`.
fn score_inputs(ex: &[Example]) -> Vec<(Vec<i64>, Vec<i64>)> {
    ex.iter()
        .map(|e| (e.prompt.clone(), e.seq.clone()))
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    common::floats(v)
}

/// docs/method.md, "The objective", by hand in f64 from per-token log-probabilities.
fn by_hand(m: &Model, recs: &[Value], p: RlmecParams) -> (f64, f64, f64) {
    let pairs: Vec<(Vec<i64>, Vec<i64>)> = recs
        .iter()
        .flat_map(|r| {
            let enc = |f: &str| m.tokenizer.encode(r[f].as_str().unwrap()).unwrap();
            let eos = m.special.eos[0];
            let with_eos = |mut v: Vec<i64>| {
                v.push(eos);
                v
            };
            [
                (enc("input"), with_eos(enc("output"))),
                (enc("input"), with_eos(enc("regular"))),
            ]
        })
        .collect();
    let lp = score(m, &pairs, 8).unwrap();
    let (mut rl_sum, mut rl_n, mut reg_sum, mut reg_n) = (0.0, 0usize, 0.0, 0usize);
    for (i, r) in recs.iter().enumerate() {
        let (seq_lp, reg_lp) = (&lp[2 * i], &lp[2 * i + 1]);
        let (reward, ref_lp, c) = (
            floats(&r["reward"]),
            floats(&r["ref_prob"]),
            floats(&r["weight_regular"]),
        );
        for t in 0..seq_lp.len() {
            let logp = f64::from(seq_lp[t]);
            let rho = (logp - ref_lp[t]).exp();
            let w =
                (rho * reward[t]).min(rho.clamp(1.0 - p.clip_eps, 1.0 + p.clip_eps) * reward[t]);
            rl_sum -= w * logp;
            rl_n += usize::from(reward[t] != 0.0);
        }
        for t in 0..reg_lp.len() {
            reg_sum += c[t] * -f64::from(reg_lp[t]);
            reg_n += usize::from(c[t] != 0.0);
        }
    }
    let rl = if rl_n == 0 { 0.0 } else { rl_sum / rl_n as f64 };
    let reg = if reg_n == 0 {
        0.0
    } else {
        reg_sum / reg_n as f64
    };
    (rl + p.reg_weight * reg, rl, reg)
}

fn loss_of(m: &Model, ex: &[Example], p: RlmecParams) -> (f64, f64, f64) {
    let refs: Vec<&Example> = ex.iter().collect();
    let loss = tch::no_grad(|| objective::rlmec_loss(&tokens::forward(m, &refs), p)).unwrap();
    let part = |name: &str| {
        loss.parts
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
            .double_value(&[])
    };
    (
        loss.total.double_value(&[]),
        part("loss_rl"),
        part("loss_reg"),
    )
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn rlmec_loss_matches_a_hand_computation() {
    let m = tiny();
    let recs = records(&m);
    let ex = tokenized(&m, &recs);
    let p = RlmecParams::default();
    for (name, slice) in [
        ("correct", &recs[..1]),
        ("fixed", &recs[1..]),
        ("both", &recs[..]),
    ] {
        let want = by_hand(&m, slice, p);
        let got = loss_of(&m, &tokenized(&m, slice), p);
        for (g, w) in [(got.0, want.0), (got.1, want.1), (got.2, want.2)] {
            assert!(close(g, w, 1e-5), "{name}: {got:?} vs by hand {want:?}");
        }
    }
    // Other ε and λ.
    let p = RlmecParams {
        clip_eps: 0.1,
        reg_weight: 0.25,
    };
    let (want, got) = (by_hand(&m, &recs, p), loss_of(&m, &ex, p));
    assert!(close(got.0, want.0, 1e-5), "{got:?} vs {want:?}");
}

#[test]
fn a_batch_without_rewards_has_no_rl_term() {
    let m = tiny();
    let recs = vec![rl_record(
        &m,
        ("Q: 1 + 1?\n", " 2", " 2"),
        |_| 0.0,
        |_| -1.0,
        |_| 0.5,
    )];
    let (total, rl, reg) = loss_of(&m, &tokenized(&m, &recs), RlmecParams::default());
    assert_eq!(rl, 0.0);
    assert!(total.is_finite() && close(total, reg, 1e-7));
    // And no imitation weights either: a zero loss, not 0/0.
    let none = vec![rl_record(
        &m,
        ("Q\n", " a", " a"),
        |_| 0.0,
        |_| -1.0,
        |_| 0.0,
    )];
    let (total, _, _) = loss_of(&m, &tokenized(&m, &none), RlmecParams::default());
    assert_eq!(total, 0.0);
}

#[test]
fn per_token_arrays_must_match_their_tokens() {
    let m = tiny();
    let mut recs = records(&m);
    recs[1]["reward"].as_array_mut().unwrap().pop();
    let err = examples::tokenize(&m, &recs, RecordKind::Rlmec)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("record 1: field `reward` has"), "{err}");
    assert!(err.contains("`output` + EOS"), "{err}");
    let mut recs = records(&m);
    recs[0]["weight_regular"] = json!([0.5]);
    let err = examples::tokenize(&m, &recs, RecordKind::Rlmec)
        .unwrap_err()
        .to_string();
    assert!(err.contains("record 0: field `weight_regular`"), "{err}");
    let mut recs = records(&m);
    recs[0].as_object_mut().unwrap().remove("ref_prob");
    let err = examples::tokenize(&m, &recs, RecordKind::Rlmec)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "record 0: missing field `ref_prob`");
}

/// The gradient of the RLMEC loss is that of its surrogate `−Σ w·logπ/n + λ·L_reg` with the
/// weights `w` held at their values (they carry no gradient): compared with central
/// differences of that surrogate along single parameters.
#[test]
fn gradients_equal_finite_differences() {
    let m = tiny();
    let recs = records(&m);
    let ex = tokenized(&m, &recs);
    let refs: Vec<&Example> = ex.iter().collect();
    let p = RlmecParams::default();
    let batch = tokens::forward(&m, &refs);
    let reward = batch.reward.as_ref().unwrap() * &batch.mask;
    let ratio = (batch.logp.detach() - batch.ref_logp.as_ref().unwrap()).exp();
    let w0 = (&ratio * &reward).minimum(&(ratio.clamp(0.7, 1.3) * &reward));
    let n_rl = reward.ne(0.0).sum(tch::Kind::Float).double_value(&[]);
    let c = batch.reg_weight.as_ref().unwrap() * batch.reg_mask.as_ref().unwrap();
    let n_reg = c.ne(0.0).sum(tch::Kind::Float).double_value(&[]);
    let surrogate = |m: &Model| -> f64 {
        tch::no_grad(|| {
            let b = tokens::forward(m, &refs);
            let rl = -(&w0 * &b.logp).sum(tch::Kind::Float).double_value(&[]) / n_rl;
            let reg = -(b.reg_logp.as_ref().unwrap() * &c)
                .sum(tch::Kind::Float)
                .double_value(&[])
                / n_reg;
            rl + p.reg_weight * reg
        })
    };
    objective::rlmec_loss(&batch, p).unwrap().total.backward();

    let vars = m.var_store().variables();
    let mut checked = 0;
    for name in [
        "model.embed_tokens.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.1.mlp.down_proj.weight",
        "model.norm.weight",
    ] {
        let v = &vars[name];
        // Weights may be stored column-major: address elements by (row, column).
        let cols = *v.size().last().unwrap();
        let at = |i: i64| -> Tensor {
            if v.dim() == 2 {
                v.get(i / cols).get(i % cols)
            } else {
                v.get(i)
            }
        };
        let grad = v.grad().reshape(-1);
        // The largest-gradient entries: where a wrong gradient would show.
        let picks = Vec::<i64>::try_from(grad.abs().topk(3, 0, true, true).1).unwrap();
        for i in picks {
            let analytic = grad.double_value(&[i]);
            let x = at(i).double_value(&[]);
            let h = 1e-2 * (1.0 + x.abs());
            let set = |value: f64| {
                let _ = tch::no_grad(|| at(i).fill_(value));
            };
            set(x + h);
            let up = surrogate(&m);
            set(x - h);
            let down = surrogate(&m);
            set(x);
            let numeric = (up - down) / (2.0 * h);
            assert!(
                (numeric - analytic).abs() <= 2e-3 + 2e-2 * analytic.abs(),
                "{name}[{i}]: finite difference {numeric}, gradient {analytic}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

#[test]
fn sft_masks_the_prompt_and_averages_output_tokens() {
    let m = tiny();
    let recs = vec![
        json!({"input": "The capital of France is", "output": " Paris"}),
        json!({"input": "Q", "output": " a much longer answer than the other one"}),
    ];
    let ex = tokenized(&m, &recs);
    let refs: Vec<&Example> = ex.iter().collect();
    let got = tch::no_grad(|| objective::sft_loss(&tokens::forward(&m, &refs)))
        .total
        .double_value(&[]);
    let lp = score(&m, &score_inputs(&ex), 8).unwrap();
    let all: Vec<f64> = lp.concat().iter().map(|&x| -f64::from(x)).collect();
    let want = all.iter().sum::<f64>() / all.len() as f64;
    assert!(close(got, want, 1e-5), "{got} vs {want}");
    // The prompt is not scored: changing it changes the loss only through the context.
    assert_eq!(all.len(), ex[0].seq.len() + ex[1].seq.len());
}

#[test]
fn sft_fits_a_tiny_dataset() {
    let mut m = tiny();
    let recs: Vec<Value> = [
        ("2 + 2 =", " 4"),
        ("3 + 5 =", " 8"),
        ("the cat", " sat on the mat"),
        ("ab", " ba"),
    ]
    .iter()
    .map(|(i, o)| json!({"input": i, "output": o}))
    .collect();
    let opts = TrainOptions {
        epochs: 200,
        lr: 3e-3,
        batch_size: 2,
        grad_accum: 2,
        warmup_ratio: 0.05,
        ..TrainOptions::default()
    };
    let report = train(&mut m, &recs, &mut objective::Sft, &opts).unwrap();
    assert_eq!(report.steps, 200);
    let first = report.history[0]["loss"].as_f64().unwrap();
    let last = report.history.last().unwrap()["loss"].as_f64().unwrap();
    assert!(first > 3.0 && last < 0.05, "loss {first} -> {last}");
}

/// A script objective's value is used as is: a closure-free check that the trait carries
/// parts into the metrics.
#[test]
fn objective_parts_reach_the_metrics() {
    struct Doubled;
    impl Objective for Doubled {
        fn loss(&mut self, b: &tokens::TokenBatch) -> Result<objective::Loss, String> {
            let l = objective::sft_loss(b);
            Ok(objective::Loss {
                parts: vec![("half".into(), l.total.detach())],
                total: l.total * 2.0,
            })
        }
        fn name(&self) -> String {
            "doubled".into()
        }
    }
    let mut m = tiny();
    let recs = vec![json!({"input": "a", "output": " b"})];
    let opts = TrainOptions {
        epochs: 1,
        ..TrainOptions::default()
    };
    let r = train(&mut m, &recs, &mut Doubled, &opts).unwrap();
    let line = &r.history[0];
    assert!(close(
        line["loss"].as_f64().unwrap(),
        2.0 * line["half"].as_f64().unwrap(),
        1e-7
    ));
}

/// Scoring keeps oneDNN-packed copies of the weights; after training the same model object,
/// its scores must come from the trained weights, not from copies packed before.
#[test]
fn scoring_after_training_uses_the_trained_weights() {
    let mut m = tiny();
    let recs: Vec<Value> = [("2 + 2 =", " 4"), ("the cat", " sat on the mat")]
        .iter()
        .map(|(i, o)| json!({"input": i, "output": o}))
        .collect();
    let pairs = score_inputs(&tokenized(&m, &recs));
    let before = score(&m, &pairs, 8).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let opts = TrainOptions {
        epochs: 3,
        lr: 3e-3,
        batch_size: 2,
        out: Some(dir.path().to_path_buf()),
        ..TrainOptions::default()
    };
    train(&mut m, &recs, &mut objective::Sft, &opts).unwrap();
    let after = score(&m, &pairs, 8).unwrap();

    let unpacked = LoadOptions {
        pack: false,
        ..LoadOptions::default()
    };
    let trained = score(&Model::load(dir.path(), unpacked).unwrap(), &pairs, 8).unwrap();
    let gain: f32 = after.concat().iter().sum::<f32>() - before.concat().iter().sum::<f32>();
    assert!(
        gain > 1.0,
        "training raised the log-likelihood by only {gain}"
    );
    let trained: Vec<f64> = trained.concat().iter().map(|&x| f64::from(x)).collect();
    common::assert_close(
        &after.concat(),
        &trained,
        1e-4,
        "same object vs reloaded unpacked",
    );
}
