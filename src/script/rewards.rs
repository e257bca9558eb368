//! Step 6 natives: token-level rewards and imitation weights from the GRM and the policy.

use rhai::plugin::*;

use super::engine::Domain;
use super::model::ModelHandle;

pub const DOMAIN: Domain = Domain {
    name: "rewards",
    module: || exported_module!(rewards_api),
    extra: |_| {},
};

/// Fine-grained supervision (docs/method.md, step 6): per-token rewards from the GRM's
/// probabilities of keeping each prediction token, reference log-probabilities from the
/// policy, imitation weights from the minimum-edit alignment.
#[export_module]
pub mod rewards_api {
    use super::{ModelHandle, rewards_with};

    /// The RLMEC training records `{input, output, regular, reward, ref_prob,
    /// weight_regular}` for `records` (steps 2/5: `{question, solution, prediction,
    /// error_step, fix_pred, is_correct}`), scored by `policy` (the reference) and `grm`.
    /// Options: `fidelity` (`"corrected"`: a prediction is correct by its answer; `"paper"`:
    /// by `error_step == -1`), `alignment` (`"paper"` | `"optimal"`, as `align_edits` takes
    /// it), `max_len` (a record whose prompt + sequence + EOS + 1 tokens exceed it is
    /// skipped), `per_problem` (correct predictions kept per problem, drawn with `seed`;
    /// 0: all), `batch_size` (sequences scored together), `clip_correct` and `clip_wrong`
    /// (the `[lo, hi]` that `p − 0.5` is clipped to on correct and on fixed predictions),
    /// `out` (also write the records there as JSONL, atomically).
    /// Defaults (the paper's, for `kind` `"qa"`): {defaults:rewards}.
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama");
    /// let recs = [#{question: "1 + 1?", solution: "1 + 1 = 2\nThe answer is 2",
    ///               prediction: "1 + 1 = 3\nThe answer is 3", error_step: 0,
    ///               fix_pred: "1 + 1 = 2\nThe answer is 2", is_correct: true}];
    /// let data = token_rewards(m, m, "math", recs, #{});
    /// print(data[0].reward);          // one value in [-0.1, 0] per token of output + EOS
    /// print(data[0].weight_regular);  // 1.0 where the fix changed the prediction
    /// ```
    #[rhai_fn(return_raw)]
    pub fn token_rewards(
        policy: ModelHandle,
        grm: ModelHandle,
        kind: &str,
        records: rhai::Array,
        options: rhai::Map,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        rewards_with(policy, Some(grm), kind, records, options)
    }

    /// [`token_rewards`] without a GRM (`judge` = `"teacher_edit"`): each prediction token
    /// counts as kept (p = 1) or changed (p = 0) by the record's own minimum edit — the
    /// ablation that takes token rewards straight from the teacher's edits.
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama");
    /// let recs = [#{question: "1 + 1?", solution: "1 + 1 = 2\nThe answer is 2",
    ///               prediction: "1 + 1 = 3\nThe answer is 3", error_step: 0,
    ///               fix_pred: "1 + 1 = 2\nThe answer is 2", is_correct: true}];
    /// let data = token_rewards(m, "teacher_edit", "math", recs, #{});
    /// print(data[0].reward);          // -0.1 on the changed tokens, 0 elsewhere
    /// ```
    #[rhai_fn(name = "token_rewards", return_raw)]
    pub fn token_rewards_from_edits(
        policy: ModelHandle,
        judge: &str,
        kind: &str,
        records: rhai::Array,
        options: rhai::Map,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        if judge != "teacher_edit" {
            return Err(format!(
                "token_rewards: the judge is a GRM model or \"teacher_edit\", not \"{judge}\""
            )
            .into());
        }
        rewards_with(policy, None, kind, records, options)
    }
}

/// Step 6 with the GRM's keep-probabilities (`Some`) or the records' own edits (`None`).
fn rewards_with(
    policy: ModelHandle,
    grm: Option<ModelHandle>,
    kind: &str,
    records: rhai::Array,
    options: rhai::Map,
) -> Result<rhai::Array, Box<EvalAltResult>> {
    use crate::rewards::{RewardOptions, TokenJudge, token_rewards as run};
    use crate::script::io::{RecordsOut, from_array};
    use crate::script::options::Options;
    use crate::tasks::TaskKind;
    use crate::teacher::minimum_edit::EditRecord;
    let kind: TaskKind = kind
        .parse()
        .map_err(|e: String| format!("token_rewards: {e}"))?;
    let mut o = Options::new("token_rewards", options);
    let opts = o.parse_over(RewardOptions::paper(kind))?;
    let out: RecordsOut = o.parse()?;
    o.finish()?;
    let records: Vec<EditRecord> = from_array("token_rewards", "record", &records)?;
    let policy_engine = policy.engine();
    // The policy as its own GRM (the same handle twice) must not be locked twice.
    let grm_engine = grm
        .as_ref()
        .filter(|g| !policy.same_as(g))
        .map(|g| g.engine());
    let judge = match (&grm, &grm_engine) {
        (None, _) => TokenJudge::TeacherEdit,
        (Some(_), Some(grm)) => TokenJudge::Grm(&**grm),
        (Some(_), None) => TokenJudge::Grm(&*policy_engine),
    };
    let rewards = run(&*policy_engine, judge, kind, &records, &opts)
        .map_err(|e| format!("token_rewards: {e}"))?;
    out.write("token_rewards", &rewards)
}
