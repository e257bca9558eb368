//! GRM training data (docs/method.md, step 3): from the teacher's records, supervised examples
//! `{input, output}` in the GRM template.
//!
//! Each fixed record (`is_correct`, `error_step` ≠ −1) gives a *locate* example (target
//! `The first error step is [k]`) and a *rewrite* example (target: the fix, stripped). So
//! that the GRM also learns to leave correct solutions alone, each already-correct prediction
//! (`is_correct`, `error_step` = −1) becomes a rewrite example whose target is itself, kept
//! with probability (fixed records) / (all records), drawn from a seeded stream.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::minimum_edit::EditRecord;
use super::prompts::{grm_locate, grm_locate_target, grm_rewrite};

/// `grm_data`'s options: the seed of the stream that keeps correct predictions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrmDataOptions {
    pub seed: u64,
}

/// The examples for `records`, in record order.
pub fn grm_examples(records: &[EditRecord], seed: u64) -> Vec<Value> {
    let fixed = records
        .iter()
        .filter(|r| r.is_correct && r.error_step != -1)
        .count();
    let keep_correct = if records.is_empty() {
        0.0
    } else {
        fixed as f64 / records.len() as f64
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for r in records.iter().filter(|r| r.is_correct) {
        let rewrite = grm_rewrite(&r.question, &r.solution, &r.prediction);
        if r.error_step != -1 {
            out.push(json!({
                "input": grm_locate(&r.question, &r.solution, &r.prediction),
                "output": grm_locate_target(r.error_step),
            }));
            out.push(json!({"input": rewrite, "output": r.fix_pred.trim()}));
        } else if rng.gen_bool(keep_correct.clamp(0.0, 1.0)) {
            out.push(json!({"input": rewrite, "output": r.prediction.trim()}));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(error_step: i64, is_correct: bool) -> EditRecord {
        EditRecord {
            question: "Q".into(),
            solution: "s\nThe answer is 1".into(),
            prediction: "p\nThe answer is 2".into(),
            error_step,
            fix_pred: " s\nThe answer is 1 ".into(),
            is_correct,
        }
    }

    #[test]
    fn fixed_records_give_two_examples_and_wrong_fixes_none() {
        let ex = grm_examples(&[record(1, true), record(0, false)], 0);
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0]["output"], "The first error step is [1]");
        assert!(
            ex[0]["input"]
                .as_str()
                .unwrap()
                .ends_with("### Response:\n")
        );
        assert_eq!(ex[1]["output"], "s\nThe answer is 1");
        assert!(
            ex[1]["input"]
                .as_str()
                .unwrap()
                .ends_with("Correct prediction:")
        );
    }

    #[test]
    fn correct_predictions_are_kept_at_the_fixed_share() {
        // 1 fixed of 4 records: each correct one kept with probability 1/4.
        let mut records = vec![record(2, true)];
        records.extend((0..3).map(|_| record(-1, true)));
        let many: Vec<EditRecord> = (0..1000).flat_map(|_| records.clone()).collect();
        let ex = grm_examples(&many, 7);
        let unchanged = ex
            .iter()
            .filter(|e| e["output"] == "p\nThe answer is 2")
            .count();
        assert!(
            (650..850).contains(&unchanged),
            "{unchanged} of 3000 at 1/4"
        );
        assert_eq!(grm_examples(&many, 7), ex, "seeded");
    }
}
