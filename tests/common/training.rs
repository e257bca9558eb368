//! The tiny model and RLMEC records the training tests share.

use rlmec::model::{LoadOptions, Model};
use serde_json::{Value, json};

pub fn tiny() -> Model {
    tch::set_num_threads(1);
    Model::load(&super::model_fixture("tiny-llama"), LoadOptions::default()).unwrap()
}

/// Token count of `text` + EOS under the tiny model's tokenizer.
pub fn len_with_eos(m: &Model, text: &str) -> usize {
    m.tokenizer.encode(text).unwrap().len() + 1
}

/// An RLMEC record with per-token values from the given generators.
pub fn rl_record(
    m: &Model,
    (input, output, regular): (&str, &str, &str),
    reward: impl Fn(usize) -> f64,
    ref_logp: impl Fn(usize) -> f64,
    weight: impl Fn(usize) -> f64,
) -> Value {
    let n = len_with_eos(m, output);
    let k = len_with_eos(m, regular);
    json!({
        "input": input, "output": output, "regular": regular,
        "reward": (0..n).map(&reward).collect::<Vec<_>>(),
        "ref_prob": (0..n).map(&ref_logp).collect::<Vec<_>>(),
        "weight_regular": (0..k).map(&weight).collect::<Vec<_>>(),
    })
}

/// A correct prediction (rewards ≥ 0, weight 0.5 on its own tokens) and a fixed one
/// (rewards ≤ 0, weights 1.0 on the edited tokens of the fix).
pub fn records(m: &Model) -> Vec<Value> {
    vec![
        rl_record(
            m,
            (
                "Q: 2 + 2?\n",
                " 2 + 2 = 4. The answer is 4",
                " 2 + 2 = 4. The answer is 4",
            ),
            |t| [0.0, 0.3, 0.5, 0.1][t % 4],
            |t| -0.5 - 0.37 * t as f64,
            |_| 0.5,
        ),
        rl_record(
            m,
            (
                "Q: 3 + 4?\n",
                " 3 + 4 = 8. The answer is 8",
                " 3 + 4 = 7. The answer is 7",
            ),
            |t| [-0.1, 0.0, -0.05, -0.02][t % 4],
            |t| -3.0 + 0.21 * t as f64,
            |t| if t % 5 == 3 { 1.0 } else { 0.5 },
        ),
    ]
}
