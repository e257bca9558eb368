//! Fine-grained supervision (docs/method.md, step 6): token-level rewards from the GRM, reference
//! log-probabilities from the policy, and imitation weights from the minimum-edit alignment,
//! as the public trainer's `{input, output, regular, reward, ref_prob, weight_regular}`.
//!
//! For each usable record (its fix is correct), with the prediction + EOS and the fix + EOS
//! tokenised apart from their prompts (no BOS):
//! - `ref_prob[t]`: log-probability of prediction token `t` under the policy, after the
//!   policy prompt;
//! - `p[t]`: probability of the same token under the GRM when the prediction is forced as
//!   its rewrite (rewrite prompt, response `Correct prediction:`);
//! - reward: `clip(p − 0.5, 0, 0.5)` for a correct prediction, `clip(p − 0.5, −0.1, 0)`
//!   for a fixed one (the paper's ranges; [`RewardOptions`] can widen or narrow them);
//! - imitation target: the prediction itself with weight 0.5 (correct), or the fix with 0.5
//!   and 1.0 on the tokens the alignment flags (fixed).
//!
//! Correct predictions are de-duplicated per problem on a normalised form (spaces, newlines
//! and periods removed) and at most 2 per problem kept, chosen with a seeded stream (math
//! keeps all). Pairs whose prompt + sequence + EOS + 1 exceed `max_len` are skipped.

use std::collections::{BTreeMap, HashSet};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::align::{Mode, align};
use crate::engine::Engine;
use crate::generate::GenerateError;
use crate::tasks::answer::{extract_answer, is_correct};
use crate::tasks::prompt::policy_prompt;
use crate::tasks::{Fidelity, TaskKind};
use crate::teacher::minimum_edit::EditRecord;
use crate::teacher::prompts::grm_rewrite;

/// Step 6's settings (`token_rewards`' options). They have no `Default`: how many correct
/// predictions a problem keeps depends on the task ([`RewardOptions::paper`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardOptions {
    pub fidelity: Fidelity,
    pub alignment: Mode,
    /// Prompt + sequence + EOS + 1 must not exceed this.
    pub max_len: usize,
    /// Correct predictions kept per problem (QA); `None` keeps all (`per_problem: 0`).
    #[serde(rename = "per_problem", with = "zero_is_all")]
    pub correct_per_problem: Option<usize>,
    pub seed: u64,
    pub batch_size: usize,
    /// `[lo, hi]` that `p − 0.5` is clipped to on a correct prediction (paper: 0, 0.5).
    pub clip_correct: (f64, f64),
    /// The same on a fixed (wrong) prediction (paper: −0.1, 0): with the paper's ranges a
    /// blamed token weighs a fifth of a kept one.
    pub clip_wrong: (f64, f64),
}

impl RewardOptions {
    pub fn paper(kind: TaskKind) -> Self {
        Self {
            fidelity: Fidelity::Corrected,
            alignment: Mode::Paper,
            max_len: 2000,
            correct_per_problem: (kind == TaskKind::Qa).then_some(2),
            seed: 0,
            batch_size: 8,
            clip_correct: (0.0, 0.5),
            clip_wrong: (-0.1, 0.0),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        for (name, (lo, hi)) in [
            ("clip_correct", self.clip_correct),
            ("clip_wrong", self.clip_wrong),
        ] {
            if lo > hi {
                return Err(format!(
                    "{name} must be a range [lo, hi] with lo <= hi, got [{lo}, {hi}]"
                ));
            }
        }
        Ok(())
    }
}

/// `per_problem` as scripts write it: a count, 0 for all.
mod zero_is_all {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(cap: &Option<usize>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(cap.unwrap_or(0) as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
        usize::deserialize(d).map(|n| (n > 0).then_some(n))
    }
}

/// Whether a record's prediction counts as correct: by its answer (corrected) or by
/// `error_step == -1` (the public code).
fn prediction_correct(kind: TaskKind, r: &EditRecord, fidelity: Fidelity) -> bool {
    match fidelity {
        Fidelity::Paper => r.error_step == -1,
        Fidelity::Corrected => extract_answer(&r.solution)
            .is_some_and(|gold| is_correct(kind, &r.prediction, &gold, fidelity)),
    }
}

fn normalised(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, ' ' | '\n' | '.'))
        .collect()
}

/// Who gives `p[t]`, the probability that prediction token `t` is kept.
#[derive(Clone, Copy)]
pub enum TokenJudge<'a> {
    /// The trained GRM (the method).
    Grm(&'a dyn Engine),
    /// The record's own minimum edit: 1 for a token the fix keeps, 0 for one it changes
    /// (the paper's ablation without a GRM: rewards straight from the teacher's edits).
    TeacherEdit,
}

/// The records of step 6 for `records` (steps 2/5's output), in record order.
pub fn token_rewards(
    policy: &dyn Engine,
    judge: TokenJudge,
    kind: TaskKind,
    records: &[EditRecord],
    opts: &RewardOptions,
) -> Result<Vec<Value>, GenerateError> {
    opts.validate().map_err(GenerateError::Invalid)?;
    let eos = *policy
        .eos()
        .first()
        .ok_or_else(|| GenerateError::Invalid("the policy has no end-of-sequence token".into()))?;
    let with_eos = |text: &str| -> Result<Vec<i64>, GenerateError> {
        let mut ids = policy.tokenizer().encode(text)?;
        ids.push(eos);
        Ok(ids)
    };

    // Which records: usable fixes; correct predictions de-duplicated and capped per problem.
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    // Ordered by problem, so that the seeded draw does not depend on hashing.
    let mut correct_by_problem: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut chosen = Vec::new();
    for (i, r) in records.iter().enumerate().filter(|(_, r)| r.is_correct) {
        if prediction_correct(kind, r, opts.fidelity) {
            correct_by_problem.entry(&r.question).or_default().push(i);
        } else {
            chosen.push((i, false));
        }
    }
    for indices in correct_by_problem.values() {
        let mut seen = HashSet::new();
        let mut unique: Vec<usize> = indices
            .iter()
            .copied()
            .filter(|&i| seen.insert(normalised(&records[i].prediction)))
            .collect();
        if let Some(cap) = opts.correct_per_problem {
            unique.shuffle(&mut rng);
            unique.truncate(cap);
        }
        chosen.extend(unique.into_iter().map(|i| (i, true)));
    }
    chosen.sort_unstable();

    struct Item {
        record: usize,
        correct: bool,
        prompt: String,
        prompt_ids: Vec<i64>,
        prediction: Vec<i64>,
        target: Vec<i64>,
    }
    let mut items = Vec::new();
    for (i, correct) in chosen {
        let r = &records[i];
        let prompt = policy_prompt(kind, &r.question, opts.fidelity);
        let prompt_ids = policy.tokenizer().encode(&prompt)?;
        let prediction = with_eos(&r.prediction)?;
        let target = if correct {
            prediction.clone()
        } else {
            with_eos(&r.fix_pred)?
        };
        if prompt_ids.len() + prediction.len().max(target.len()) + 1 > opts.max_len {
            tracing::debug!("step 6: record {i} skipped: longer than {}", opts.max_len);
            continue;
        }
        items.push(Item {
            record: i,
            correct,
            prompt,
            prompt_ids,
            prediction,
            target,
        });
    }

    let ref_pairs: Vec<(Vec<i64>, Vec<i64>)> = items
        .iter()
        .map(|it| (it.prompt_ids.clone(), it.prediction.clone()))
        .collect();
    let ref_logp = policy.score(&ref_pairs, opts.batch_size)?;
    let keep_prob: Vec<Vec<f64>> = match judge {
        TokenJudge::Grm(grm) => {
            let grm_pairs: Vec<(Vec<i64>, Vec<i64>)> = items
                .iter()
                .map(|it| {
                    let r = &records[it.record];
                    let prompt = grm_rewrite(&r.question, &r.solution, &r.prediction);
                    Ok((grm.tokenizer().encode(&prompt)?, it.prediction.clone()))
                })
                .collect::<Result<_, GenerateError>>()?;
            grm.score(&grm_pairs, opts.batch_size)?
                .iter()
                .map(|lp| lp.iter().map(|&l| f64::from(l).exp()).collect())
                .collect()
        }
        TokenJudge::TeacherEdit => items
            .iter()
            .map(|it| {
                // Flags on the prediction's tokens: those the fix does not keep.
                align(&it.target, &it.prediction, opts.alignment)
                    .flags
                    .iter()
                    .map(|&changed| if changed { 0.0 } else { 1.0 })
                    .collect()
            })
            .collect(),
    };

    Ok(items
        .iter()
        .zip(ref_logp.iter().zip(&keep_prob))
        .map(|(it, (ref_lp, keep))| {
            let r = &records[it.record];
            let (lo, hi) = if it.correct {
                opts.clip_correct
            } else {
                opts.clip_wrong
            };
            let reward: Vec<f64> = keep.iter().map(|&p| (p - 0.5).clamp(lo, hi)).collect();
            let weights: Vec<f64> = if it.correct {
                vec![0.5; it.target.len()]
            } else {
                align(&it.prediction, &it.target, opts.alignment)
                    .flags
                    .iter()
                    .map(|&f| if f { 1.0 } else { 0.5 })
                    .collect()
            };
            json!({
                "input": it.prompt,
                "output": r.prediction,
                "regular": if it.correct { &r.prediction } else { &r.fix_pred },
                "reward": reward,
                "ref_prob": ref_lp,
                "weight_regular": weights,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_problem_zero_keeps_all_and_clip_ranges_are_ordered() {
        let mut o = serde_json::to_value(RewardOptions::paper(TaskKind::Qa)).unwrap();
        assert_eq!(o["per_problem"], 2);
        o["per_problem"] = 0.into();
        let read: RewardOptions = serde_json::from_value(o).unwrap();
        assert_eq!(read.correct_per_problem, None);
        assert!(read.validate().is_ok());
        let flipped = RewardOptions {
            clip_wrong: (0.0, -0.1),
            ..read
        };
        let e = flipped.validate().unwrap_err();
        assert_eq!(
            e,
            "clip_wrong must be a range [lo, hi] with lo <= hi, got [0, -0.1]"
        );
    }
}
