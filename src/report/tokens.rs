//! Token rewards made visible: a sample of step 6's records, each prediction split into its
//! tokens with the reward each one got, and the fix's tokens with the ones the minimum edit
//! changed (imitation weight 1.0) marked.

use serde_json::{Value, json};

use super::collect::RunData;
use crate::tokenize::TextTokenizer;

/// At most this many fixed (wrong) and correct predictions are shown.
const FIXED_SHOWN: usize = 8;
const CORRECT_SHOWN: usize = 4;

/// One token of a prediction or a fix: its text and the values attached to it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub text: String,
    /// Prediction: the reward. Fix: the imitation weight.
    pub value: f64,
    /// Prediction only: the reference policy's log-probability.
    pub ref_logprob: Option<f64>,
}

/// One record of step 6, ready to show.
pub(crate) struct Sample {
    /// Index of the record in the rewards stage's result.
    pub index: usize,
    pub question: String,
    pub solution: String,
    /// Whether the prediction was wrong and fixed (else it was correct and kept).
    pub fixed: bool,
    pub prediction: Vec<Token>,
    pub fix: Vec<Token>,
}

/// The shown samples, or why there are none.
pub(crate) struct Samples {
    pub stage: Option<String>,
    pub items: Vec<Sample>,
    pub note: Option<String>,
    /// Over all of the stage's records, not only those shown.
    pub totals: Option<RewardTotals>,
}

/// Where the reward mass of step 6 lies: how much blame the wrong predictions carry against
/// the credit of the correct ones (the clip ranges make them asymmetric).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RewardTotals {
    pub fixed: usize,
    pub correct: usize,
    /// Σ −r over negative rewards, and Σ r over positive ones.
    pub negative_mass: f64,
    pub positive_mass: f64,
    /// Tokens with a negative reward, per fixed prediction.
    pub blamed_per_fixed: f64,
}

impl RewardTotals {
    pub fn of(records: &[Value]) -> Self {
        let (mut fixed, mut correct, mut blamed) = (0, 0, 0);
        let (mut negative_mass, mut positive_mass) = (0.0, 0.0);
        for r in records {
            let rewards = r["reward"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let values = rewards.iter().filter_map(Value::as_f64);
            if r["output"] != r["regular"] {
                fixed += 1;
                blamed += values.clone().filter(|&x| x < 0.0).count();
            } else {
                correct += 1;
            }
            for x in values {
                if x < 0.0 {
                    negative_mass -= x;
                } else {
                    positive_mass += x;
                }
            }
        }
        Self {
            fixed,
            correct,
            negative_mass,
            positive_mass,
            blamed_per_fixed: blamed as f64 / fixed.max(1) as f64,
        }
    }

    /// The negative share of all reward mass.
    pub fn negative_share(&self) -> f64 {
        let total = self.negative_mass + self.positive_mass;
        if total > 0.0 {
            self.negative_mass / total
        } else {
            0.0
        }
    }
}

impl Samples {
    /// Up to [`FIXED_SHOWN`] fixed and [`CORRECT_SHOWN`] correct records, evenly spread
    /// over the rewards stage's result so the choice is the same on every report.
    pub fn pick(run: &RunData, tokenizer: Option<&TextTokenizer>) -> Self {
        let none = |note: &str| Samples {
            stage: None,
            items: Vec::new(),
            note: Some(note.into()),
            totals: None,
        };
        let Some((stage, records)) = run.reward_records() else {
            return none("no stage of this run made token rewards (RLMEC step 6)");
        };
        let totals = Some(RewardTotals::of(records));
        let Some(tokenizer) = tokenizer else {
            return Samples {
                stage: Some(stage.to_string()),
                totals,
                ..none("the run's tokenizer was not found (no tokenizer.json in its models)")
            };
        };
        let gold = run.gold_by_prediction();
        let is_fixed = |r: &Value| r["output"] != r["regular"];
        let mut items = Vec::new();
        let mut mismatched = 0;
        for (want_fixed, count) in [(true, FIXED_SHOWN), (false, CORRECT_SHOWN)] {
            let of_kind: Vec<usize> = (0..records.len())
                .filter(|&i| is_fixed(&records[i]) == want_fixed)
                .collect();
            for i in spread(of_kind.len(), count).map(|k| of_kind[k]) {
                let r = &records[i];
                let output = r["output"].as_str().unwrap_or("");
                let (question, solution) = gold.get(output).copied().unwrap_or(("", ""));
                match sample(tokenizer, r, i, want_fixed, question, solution) {
                    Some(s) => items.push(s),
                    None => mismatched += 1,
                }
            }
        }
        let note = (mismatched > 0).then(|| {
            format!(
                "{mismatched} record(s) not shown: their per-token arrays (reward, ref_prob, \
                 weight_regular) do not match their text under the run's tokenizer"
            )
        });
        Samples {
            stage: Some(stage.to_string()),
            items,
            note,
            totals,
        }
    }

    /// The shown samples as JSONL rows (`report/tokens.jsonl`).
    pub fn to_json(&self) -> Vec<Value> {
        let tokens = |ts: &[Token], key: &str| -> Vec<Value> {
            ts.iter()
                .map(|t| {
                    let mut v = json!({"text": t.text, key: t.value});
                    if let Some(lp) = t.ref_logprob {
                        v["ref_logprob"] = json!(lp);
                    }
                    v
                })
                .collect()
        };
        self.items
            .iter()
            .map(|s| {
                json!({"stage": self.stage, "index": s.index, "fixed": s.fixed,
                       "question": s.question, "solution": s.solution,
                       "prediction": tokens(&s.prediction, "reward"),
                       "fix": tokens(&s.fix, "weight")})
            })
            .collect()
    }
}

/// `count` indices evenly spread over `0..len` (all of them when `len <= count`).
fn spread(len: usize, count: usize) -> impl Iterator<Item = usize> {
    let shown = len.min(count);
    (0..shown).map(move |k| k * len / shown.max(1))
}

/// A record's prediction and fix as tokens with their values, or `None` when the record's
/// per-token arrays do not match the tokenizer (text tokens + EOS).
fn sample(
    tokenizer: &TextTokenizer,
    r: &Value,
    index: usize,
    fixed: bool,
    question: &str,
    solution: &str,
) -> Option<Sample> {
    // JSON has no NaN: serde writes it as null, which stays a (NaN) position here.
    let numbers = |key: &str| -> Vec<f64> {
        r[key]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect())
            .unwrap_or_default()
    };
    let rewards = numbers("reward");
    let ref_logprobs = numbers("ref_prob");
    let weights = numbers("weight_regular");
    if ref_logprobs.len() != rewards.len() {
        return None;
    }
    let prediction = token_texts(tokenizer, r["output"].as_str()?, rewards.len())?
        .into_iter()
        .zip(rewards.iter().zip(&ref_logprobs))
        .map(|(text, (&value, &lp))| Token {
            text,
            value,
            ref_logprob: Some(lp),
        })
        .collect();
    let fix = token_texts(tokenizer, r["regular"].as_str()?, weights.len())?
        .into_iter()
        .zip(&weights)
        .map(|(text, &value)| Token {
            text,
            value,
            ref_logprob: None,
        })
        .collect();
    Some(Sample {
        index,
        question: question.into(),
        solution: solution.into(),
        fixed,
        prediction,
        fix,
    })
}

/// The text of each of `text`'s tokens followed by the EOS that step 6 appends, when that
/// makes `expected` tokens. The pieces concatenate to `text` exactly: a gap between two
/// tokens' offsets joins the later token, and a token inside an earlier one's bytes (a
/// character split over byte-level tokens) shows as empty.
fn token_texts(tokenizer: &TextTokenizer, text: &str, expected: usize) -> Option<Vec<String>> {
    let tokens = tokenizer.encode_with_offsets(text).ok()?;
    if tokens.len() + 1 != expected {
        return None;
    }
    let boundary = |mut i: usize| {
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i += 1;
        }
        i
    };
    let mut pieces = Vec::with_capacity(expected);
    let mut at = 0;
    for (k, (_, range)) in tokens.iter().enumerate() {
        let end = if k + 1 == tokens.len() {
            text.len()
        } else {
            boundary(range.end).max(at)
        };
        pieces.push(text[at..end].to_string());
        at = end;
    }
    pieces.push("⟨eos⟩".into());
    Some(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> TextTokenizer {
        let texts: Vec<String> = (0..50)
            .map(|i| format!("Tom has {i} apples. 3 + {i} = {} é😀\n", i + 3))
            .collect();
        crate::tokenize::train::train_bpe(&texts, 300).unwrap()
    }

    #[test]
    fn token_pieces_rebuild_the_text_and_add_eos() {
        let t = tokenizer();
        for text in ["Tom has 12 apples.\n3 + 12 = 15", "é😀  x\t\ty", ""] {
            let n = t.encode(text).unwrap().len();
            let pieces = token_texts(&t, text, n + 1).unwrap();
            assert_eq!(pieces.len(), n + 1);
            assert_eq!(pieces[..n].concat(), text);
            assert_eq!(pieces[n], "⟨eos⟩");
            assert!(
                token_texts(&t, text, n).is_none(),
                "a count mismatch is refused"
            );
        }
    }

    #[test]
    fn reward_totals_split_blame_from_credit() {
        let records = [
            json!({"output": "a", "regular": "b", "reward": [0.0, -0.1, -0.05]}),
            json!({"output": "c", "regular": "c", "reward": [0.5, 0.25, 0.0]}),
        ];
        let t = RewardTotals::of(&records);
        assert_eq!((t.fixed, t.correct), (1, 1));
        assert!((t.negative_mass - 0.15).abs() < 1e-12);
        assert!((t.positive_mass - 0.75).abs() < 1e-12);
        assert_eq!(t.blamed_per_fixed, 2.0);
        assert!((t.negative_share() - 0.15 / 0.9).abs() < 1e-12);
    }

    #[test]
    fn spread_is_even_and_bounded() {
        assert_eq!(spread(10, 4).collect::<Vec<_>>(), [0, 2, 5, 7]);
        assert_eq!(spread(3, 8).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(spread(0, 8).count(), 0);
    }
}
