//! Step 6: token rewards and imitation weights, fed straight into the RLMEC trainer.

mod common;

use rlmec::model::{LoadOptions, Model};
use rlmec::rewards::{RewardOptions, TokenJudge, token_rewards};
use rlmec::tasks::TaskKind;
use rlmec::teacher::minimum_edit::EditRecord;
use rlmec::teacher::prompts::grm_rewrite;
use rlmec::train::objective::{Rlmec, RlmecParams};
use rlmec::train::{TrainOptions, train};

fn tiny() -> Model {
    tch::set_num_threads(1);
    Model::load(&common::model_fixture("tiny-llama"), LoadOptions::default()).unwrap()
}

fn record(question: &str, prediction: &str, fix: &str, error_step: i64) -> EditRecord {
    EditRecord {
        question: question.into(),
        solution: "Ann has 2 + 3 = 5 pens.\nThe answer is 5".into(),
        prediction: prediction.into(),
        error_step,
        fix_pred: fix.into(),
        is_correct: true,
    }
}

fn ids_with_eos(m: &Model, text: &str) -> Vec<i64> {
    let mut ids = m.tokenizer.encode(text).unwrap();
    ids.push(m.special.eos[0]);
    ids
}

/// A wrong prediction with its minimum-edit fix, and a correct prediction.
fn fixed_and_correct() -> (EditRecord, EditRecord) {
    let fixed = record(
        "Q1",
        "Ann has 2 + 3 = 6 pens.\nThe answer is 6",
        "Ann has 2 + 3 = 5 pens.\nThe answer is 5",
        0,
    );
    let correct = record("Q2", "Ann has 2 + 3 = 5 pens.\nThe answer is 5", "", -1);
    (fixed, correct)
}

/// Log-probabilities of `seq` after `prompt` from one plain forward pass over the whole
/// sequence (no batching, no cache, no padding: not the scoring path under test).
fn plain_logprobs(m: &Model, prompt: &[i64], seq: &[i64]) -> Vec<f64> {
    let all: Vec<i64> = prompt.iter().chain(seq).copied().collect();
    let n = all.len() as i64;
    let ids = tch::Tensor::from_slice(&all).view([1, n]);
    let positions = tch::Tensor::arange(n, (tch::Kind::Int64, tch::Device::Cpu)).view([1, n]);
    let logp = tch::no_grad(|| {
        let hidden = m.net().forward_hidden(&ids, &positions, None, None);
        m.net()
            .logits(&hidden)
            .to_kind(tch::Kind::Double)
            .log_softmax(-1, tch::Kind::Double)
    });
    seq.iter()
        .enumerate()
        .map(|(t, &id)| logp.double_value(&[0, (prompt.len() + t - 1) as i64, id]))
        .collect()
}

/// 1.0 on the tokens of `ids` whose text holds `digit` (the edited number), else `other`.
fn on_digit(m: &Model, ids: &[i64], digit: char, hit: f64, other: f64) -> Vec<f64> {
    ids.iter()
        .map(|&id| {
            let text = m.tokenizer.decode(&[id]).unwrap();
            if text.contains(digit) { hit } else { other }
        })
        .collect()
}

fn assert_all_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (t, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() < tol, "{what}[{t}]: {g} vs {w}");
    }
}

#[test]
fn rewards_weights_and_reference_log_probs() {
    let mut m = tiny();
    let (fixed, correct) = fixed_and_correct();
    let out = token_rewards(
        &m,
        TokenJudge::Grm(&m),
        TaskKind::Math,
        &[fixed.clone(), correct.clone()],
        &RewardOptions::paper(TaskKind::Math),
    )
    .unwrap();
    assert_eq!(out.len(), 2);

    // The fixed prediction: reward clip(p - 0.5, -0.1, 0), p the GRM's probability of each
    // prediction token forced as its rewrite (the GRM here is the tiny model itself).
    let a = ids_with_eos(&m, &fixed.prediction);
    let b = ids_with_eos(&m, &fixed.fix_pred);
    let r = &out[0];
    let grm_prompt = m
        .tokenizer
        .encode(&grm_rewrite(
            &fixed.question,
            &fixed.solution,
            &fixed.prediction,
        ))
        .unwrap();
    let want: Vec<f64> = plain_logprobs(&m, &grm_prompt, &a)
        .iter()
        .map(|lp| (lp.exp() - 0.5).clamp(-0.1, 0.0))
        .collect();
    assert_all_close(&common::floats(&r["reward"]), &want, 1e-5, "reward");
    // Imitation weights on the fix: 1.0 on the tokens that changed (the two 5s, where the
    // prediction has 6s), 0.5 elsewhere.
    let weights = on_digit(&m, &b, '5', 1.0, 0.5);
    assert_eq!(common::floats(&r["weight_regular"]), weights);
    assert!(weights.contains(&1.0) && weights.contains(&0.5));
    // The reference: the policy's log-probabilities after the policy prompt.
    let prompt = m.tokenizer.encode(r["input"].as_str().unwrap()).unwrap();
    let want = plain_logprobs(&m, &prompt, &a);
    assert_all_close(&common::floats(&r["ref_prob"]), &want, 1e-5, "ref_prob");

    // The correct prediction: clip(p - 0.5, 0, 0.5), itself as the target with weight 0.5.
    let c = &out[1];
    assert_eq!(c["regular"], correct.prediction);
    let a = ids_with_eos(&m, &correct.prediction);
    let grm_prompt = m
        .tokenizer
        .encode(&grm_rewrite(
            &correct.question,
            &correct.solution,
            &correct.prediction,
        ))
        .unwrap();
    let want: Vec<f64> = plain_logprobs(&m, &grm_prompt, &a)
        .iter()
        .map(|lp| (lp.exp() - 0.5).clamp(0.0, 0.5))
        .collect();
    assert_all_close(&common::floats(&c["reward"]), &want, 1e-5, "correct reward");
    assert_eq!(common::floats(&c["weight_regular"]), vec![0.5; a.len()]);

    // The tiny model's p is small, so the paper's ranges clip most of it away; with ranges
    // that clip nothing, the reward is p - 0.5 itself on every token.
    let unclipped = RewardOptions {
        clip_correct: (-0.5, 0.5),
        clip_wrong: (-0.5, 0.5),
        ..RewardOptions::paper(TaskKind::Math)
    };
    let records = [fixed.clone(), correct.clone()];
    let out = token_rewards(
        &m,
        TokenJudge::Grm(&m),
        TaskKind::Math,
        &records,
        &unclipped,
    )
    .unwrap();
    for (r, got) in records.iter().zip(&out) {
        let a = ids_with_eos(&m, &r.prediction);
        let prompt = grm_rewrite(&r.question, &r.solution, &r.prediction);
        let want: Vec<f64> = plain_logprobs(&m, &m.tokenizer.encode(&prompt).unwrap(), &a)
            .iter()
            .map(|lp| lp.exp() - 0.5)
            .collect();
        assert_all_close(&common::floats(&got["reward"]), &want, 1e-5, &r.question);
    }

    // The records are what the trainer reads.
    let opts = TrainOptions {
        epochs: 1,
        lr: 1e-3,
        batch_size: 2,
        grad_accum: 1,
        ..TrainOptions::default()
    };
    let report = train(&mut m, &out, &mut Rlmec(RlmecParams::default()), &opts).unwrap();
    assert!(report.history[0]["loss"].as_f64().unwrap().is_finite());
}

#[test]
fn teacher_edit_rewards_blame_exactly_the_changed_prediction_tokens() {
    let m = tiny();
    let (fixed, correct) = fixed_and_correct();
    let opts = RewardOptions::paper(TaskKind::Math);
    let out = token_rewards(
        &m,
        TokenJudge::TeacherEdit,
        TaskKind::Math,
        &[fixed.clone(), correct],
        &opts,
    )
    .unwrap();
    // p is 0 on a token the fix changes (the 6s) and 1 on one it keeps: clip(p - 0.5,
    // -0.1, 0) gives -0.1 and 0.
    let a = ids_with_eos(&m, &fixed.prediction);
    let want = on_digit(&m, &a, '6', -0.1, 0.0);
    assert_eq!(common::floats(&out[0]["reward"]), want);
    assert!(want.contains(&-0.1) && want.contains(&0.0));
    // A correct prediction is kept whole: clip(1 - 0.5, 0, 0.5) on every token.
    let reward = common::floats(&out[1]["reward"]);
    assert!(!reward.is_empty() && reward.iter().all(|&r| r == 0.5));
    // Everything else is as with a GRM.
    let with_grm = token_rewards(
        &m,
        TokenJudge::Grm(&m),
        TaskKind::Math,
        std::slice::from_ref(&fixed),
        &opts,
    )
    .unwrap();
    for key in ["input", "output", "regular", "ref_prob", "weight_regular"] {
        assert_eq!(out[0][key], with_grm[0][key], "{key}");
    }
    // Other clip ranges: the changed tokens get the wider blame, a correct one the new cap.
    let wide = RewardOptions {
        clip_wrong: (-0.5, 0.0),
        clip_correct: (0.0, 0.25),
        ..opts
    };
    let correct = fixed_and_correct().1;
    let out = token_rewards(
        &m,
        TokenJudge::TeacherEdit,
        TaskKind::Math,
        &[fixed, correct],
        &wide,
    )
    .unwrap();
    assert_eq!(
        common::floats(&out[0]["reward"]),
        on_digit(&m, &a, '6', -0.5, 0.0)
    );
    let reward = common::floats(&out[1]["reward"]);
    assert!(!reward.is_empty() && reward.iter().all(|&r| r == 0.25));
}

#[test]
fn correct_predictions_are_deduplicated_and_capped_per_problem() {
    let m = tiny();
    let right = |p: &str| record("Q", p, "", -1);
    let records = vec![
        right("Ann has 2 + 3 = 5 pens.\nThe answer is 5"),
        right("Ann has 2 + 3 = 5 pens. \nThe answer is 5."), // the same once normalised
        right("2 + 3 = 5.\nThe answer is 5"),
        right("She has 2 + 3 = 5.\nThe answer is 5"),
    ];
    let qa = RewardOptions {
        correct_per_problem: Some(2),
        ..RewardOptions::paper(TaskKind::Qa)
    };
    let math = RewardOptions::paper(TaskKind::Math);
    let kept = |o: &RewardOptions| {
        token_rewards(&m, TokenJudge::Grm(&m), TaskKind::Math, &records, o)
            .unwrap()
            .len()
    };
    assert_eq!(kept(&qa), 2, "at most 2 per problem");
    assert_eq!(kept(&math), 3, "math keeps every distinct one");
}

#[test]
fn the_capped_choice_is_the_same_for_a_seed() {
    let m = tiny();
    let records: Vec<EditRecord> = ["Q1", "Q2", "Q3"]
        .iter()
        .flat_map(|q| {
            (0..4).map(move |i| record(q, &format!("{i} + 5 = 5.\nThe answer is 5"), "", -1))
        })
        .collect();
    let opts = RewardOptions {
        correct_per_problem: Some(2),
        ..RewardOptions::paper(TaskKind::Math)
    };
    let chosen = || {
        token_rewards(&m, TokenJudge::Grm(&m), TaskKind::Math, &records, &opts)
            .unwrap()
            .iter()
            .map(|r| r["output"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let first = chosen();
    assert_eq!(first.len(), 6);
    for _ in 0..4 {
        assert_eq!(chosen(), first);
    }
}
