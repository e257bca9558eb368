//! Training records, tokenised: `{input, output}` for supervised fine-tuning and the public
//! trainer's `{input, output, regular, reward, ref_prob, weight_regular}` for RLMEC.
//!
//! The prompt is `encode(input)`, the scored sequence `encode(output)` + EOS, the imitation
//! sequence `encode(regular)` + EOS; no BOS (docs/method.md, steps 6–7: prompt and sequence are
//! tokenised apart and concatenated, as when the rewards were computed). Per-token arrays
//! must match their sequence's length exactly: a mismatch names the record, never truncates.

use serde_json::Value;

use crate::model::Model;

#[derive(Debug, thiserror::Error)]
#[error("record {index}: {message}")]
pub struct RecordError {
    pub index: usize,
    pub message: String,
}

/// What the RL term needs per token of the scored sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct RlTargets {
    pub reward: Vec<f32>,
    /// Log-probabilities under the reference policy (the public field is `ref_prob`).
    pub ref_logp: Vec<f32>,
}

/// The imitation sequence and its per-token weights.
#[derive(Debug, Clone, PartialEq)]
pub struct RegTarget {
    pub ids: Vec<i64>,
    pub weight: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub prompt: Vec<i64>,
    /// The scored sequence: SFT's target, RLMEC's prediction (EOS-terminated).
    pub seq: Vec<i64>,
    pub rl: Option<RlTargets>,
    pub reg: Option<RegTarget>,
}

/// Which record shape a set of records has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Sft,
    Rlmec,
}

impl RecordKind {
    /// RLMEC records carry `reward`; everything else is read as `{input, output}`.
    pub fn of(records: &[Value]) -> Self {
        if records.first().is_some_and(|r| r.get("reward").is_some()) {
            Self::Rlmec
        } else {
            Self::Sft
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sft => "sft",
            Self::Rlmec => "rlmec",
        }
    }
}

struct Reader<'a> {
    index: usize,
    record: &'a Value,
}

impl Reader<'_> {
    fn error(&self, message: String) -> RecordError {
        RecordError {
            index: self.index,
            message,
        }
    }

    fn text(&self, field: &str) -> Result<&str, RecordError> {
        match self.record.get(field) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(self.error(format!(
                "field `{field}` must be a string, got {}",
                json_type(other)
            ))),
            None => Err(self.error(format!("missing field `{field}`"))),
        }
    }

    /// A per-token array of `len` numbers (`len` tokens of `of`).
    fn values(&self, field: &str, len: usize, of: &str) -> Result<Vec<f32>, RecordError> {
        let arr = match self.record.get(field) {
            Some(Value::Array(a)) => a,
            Some(other) => {
                return Err(self.error(format!(
                    "field `{field}` must be an array of numbers, got {}",
                    json_type(other)
                )));
            }
            None => return Err(self.error(format!("missing field `{field}`"))),
        };
        if arr.len() != len {
            return Err(self.error(format!(
                "field `{field}` has {} values but `{of}` + EOS has {len} tokens",
                arr.len()
            )));
        }
        arr.iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_f64().map(|x| x as f32).ok_or_else(|| {
                    self.error(format!(
                        "field `{field}`[{i}] must be a number, got {}",
                        json_type(v)
                    ))
                })
            })
            .collect()
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a map",
    }
}

/// Tokenise `records` of `kind` for `model`.
pub fn tokenize(
    model: &Model,
    records: &[Value],
    kind: RecordKind,
) -> Result<Vec<Example>, RecordError> {
    let eos = *model.special.eos.first().ok_or_else(|| RecordError {
        index: 0,
        message: "the model has no end-of-sequence token to end sequences with".into(),
    })?;
    let bar = crate::progress::bar(records.len() as u64, "tokenize");
    let examples = records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            bar.inc(1);
            let r = Reader { index, record };
            let encode = |field: &str| -> Result<Vec<i64>, RecordError> {
                let text = r.text(field)?;
                model
                    .tokenizer
                    .encode(text)
                    .map_err(|e| r.error(format!("field `{field}`: {e}")))
            };
            let with_eos = |mut ids: Vec<i64>| {
                ids.push(eos);
                ids
            };
            let prompt = encode("input")?;
            let seq = with_eos(encode("output")?);
            let (rl, reg) = match kind {
                RecordKind::Sft => (None, None),
                RecordKind::Rlmec => {
                    let rl = RlTargets {
                        reward: r.values("reward", seq.len(), "output")?,
                        ref_logp: r.values("ref_prob", seq.len(), "output")?,
                    };
                    let ids = with_eos(encode("regular")?);
                    let weight = r.values("weight_regular", ids.len(), "regular")?;
                    (Some(rl), Some(RegTarget { ids, weight }))
                }
            };
            Ok(Example {
                prompt,
                seq,
                rl,
                reg,
            })
        })
        .collect();
    bar.finish_and_clear();
    examples
}

impl Example {
    /// Tokens of the longest row this example puts in a batch.
    pub fn len(&self) -> usize {
        self.prompt.len()
            + self
                .seq
                .len()
                .max(self.reg.as_ref().map_or(0, |r| r.ids.len()))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cut the sequences so that prompt + sequence fits `max_len`; `None` when the prompt
    /// alone leaves no room for a scored token.
    pub fn truncated(mut self, max_len: usize) -> Option<Self> {
        let room = max_len.checked_sub(self.prompt.len()).filter(|&r| r > 0)?;
        self.seq.truncate(room);
        if let Some(rl) = self.rl.as_mut() {
            rl.reward.truncate(room);
            rl.ref_logp.truncate(room);
        }
        if let Some(reg) = self.reg.as_mut() {
            reg.ids.truncate(room);
            reg.weight.truncate(room);
        }
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(prompt: usize, seq: usize) -> Example {
        Example {
            prompt: vec![1; prompt],
            seq: vec![2; seq],
            rl: Some(RlTargets {
                reward: vec![0.5; seq],
                ref_logp: vec![-1.0; seq],
            }),
            reg: Some(RegTarget {
                ids: vec![3; seq + 2],
                weight: vec![1.0; seq + 2],
            }),
        }
    }

    #[test]
    fn truncation_keeps_values_aligned_with_tokens() {
        let e = example(3, 6).truncated(5).unwrap();
        assert_eq!(e.seq.len(), 2);
        assert_eq!(e.rl.as_ref().unwrap().reward.len(), 2);
        assert_eq!(e.reg.as_ref().unwrap().weight.len(), 2);
        assert!(
            example(5, 6).truncated(5).is_none(),
            "no room after the prompt"
        );
        assert_eq!(example(3, 6).truncated(100).unwrap(), example(3, 6));
    }

    #[test]
    fn kind_follows_the_fields() {
        let sft = [serde_json::json!({"input": "a", "output": "b"})];
        let rl = [serde_json::json!({"input": "a", "output": "b", "reward": []})];
        assert_eq!(RecordKind::of(&sft), RecordKind::Sft);
        assert_eq!(RecordKind::of(&rl), RecordKind::Rlmec);
    }
}
