//! Step 6: token rewards and imitation weights, fed straight into the RLMEC trainer.

mod common;

use rlmec::align::{Mode, align};
use rlmec::generate::score::score;
use rlmec::model::{LoadOptions, Model};
use rlmec::rewards::{RewardOptions, TokenJudge, token_rewards};
use rlmec::tasks::TaskKind;
use rlmec::teacher::minimum_edit::EditRecord;
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

    let a = ids_with_eos(&m, &fixed.prediction);
    let b = ids_with_eos(&m, &fixed.fix_pred);
    let r = &out[0];
    let reward = common::floats(&r["reward"]);
    assert_eq!(reward.len(), a.len());
    assert!(reward.iter().all(|&x| (-0.1..=0.0).contains(&x)));
    let weights = common::floats(&r["weight_regular"]);
    let flags = align(&a, &b, Mode::Paper).flags;
    assert_eq!(
        weights,
        flags
            .iter()
            .map(|&f| if f { 1.0 } else { 0.5 })
            .collect::<Vec<_>>()
    );
    assert!(weights.contains(&1.0));
    let prompt = m.tokenizer.encode(r["input"].as_str().unwrap()).unwrap();
    let want = score(&m, &[(prompt, a.clone())], 1).unwrap();
    let got = common::floats(&r["ref_prob"]);
    assert!(
        got.iter()
            .zip(&want[0])
            .all(|(g, w)| (g - f64::from(*w)).abs() < 1e-6)
    );

    let c = &out[1];
    assert_eq!(c["regular"], correct.prediction);
    assert!(
        common::floats(&c["reward"])
            .iter()
            .all(|&x| (0.0..=0.5).contains(&x))
    );
    assert!(
        common::floats(&c["weight_regular"])
            .iter()
            .all(|&w| w == 0.5)
    );

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
    let a = ids_with_eos(&m, &fixed.prediction);
    let b = ids_with_eos(&m, &fixed.fix_pred);
    // Changed = flagged on the prediction's side of the alignment (fix → prediction).
    let changed = align(&b, &a, Mode::Paper).flags;
    let want: Vec<f64> = changed
        .iter()
        .map(|&c| if c { -0.1 } else { 0.0 })
        .collect();
    assert_eq!(common::floats(&out[0]["reward"]), want);
    assert!(want.contains(&-0.1));
    // A correct prediction is kept whole: the largest positive reward on every token.
    assert!(common::floats(&out[1]["reward"]).iter().all(|&r| r == 0.5));
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
    let scaled: Vec<f64> = want.iter().map(|&r| r * 5.0).collect();
    assert_eq!(common::floats(&out[0]["reward"]), scaled);
    assert!(common::floats(&out[1]["reward"]).iter().all(|&r| r == 0.25));
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
