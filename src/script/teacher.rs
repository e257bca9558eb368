//! Teacher natives: the minimum-edit protocol of steps 2 and 5 over a named teacher.

use rhai::plugin::*;

use super::engine::Domain;

pub const DOMAIN: Domain = Domain {
    name: "teacher",
    module: || exported_module!(teacher_api),
    extra: |_| {},
};

/// Teachers locate the first wrong step of a prediction and rewrite it with the fewest
/// edits (docs/method.md, step 2). Offline: `arith` (exact, arithmetic) and `reference` (QA, from
/// the gold rationale).
#[export_module]
pub mod teacher_api {
    use crate::script::io::{RecordsOut, from_array, to_array};
    use crate::script::model::ModelHandle;
    use crate::script::options::Options;
    use crate::tasks::TaskKind;
    use crate::teacher::grm_data::{GrmDataOptions, grm_examples};
    use crate::teacher::minimum_edit::{EditRecord, Sample};
    use crate::teacher::spec::{judge_named, judge_with_model};
    use crate::teacher::{TeacherOptions, TeacherSpec};

    /// Run the minimum-edit protocol with `teacher` — an offline teacher's name (`"arith"`,
    /// `"reference"`), a model (the trained GRM, step 5), `"model:<path>"`,
    /// `"anthropic:<model>"` (key from `ANTHROPIC_API_KEY`) or `"openai:<model>@<base_url>"`
    /// (any OpenAI-compatible server; `#chat` at the end for `/v1/chat/completions`) — on
    /// `samples` (maps with `problem` (or
    /// `question`), `solution`, `prediction`, and `answer` — taken from the solution's answer
    /// line when absent) of task `kind` (`"qa"` or `"math"`). Returns the public code's
    /// records `{question, solution, prediction, error_step, fix_pred, is_correct}`; a
    /// correct prediction short-circuits. The options are the defaults of
    /// `minimum_edit(teacher, kind, samples, options)`.
    ///
    /// ```rhai
    /// let task = task_synthetic(#{n_train: 1, n_test: 0, seed: 3, max_steps: 2, ops: ["+"]});
    /// let p = task.train[0];
    /// let wrong = p.solution;
    /// wrong.replace(" = ", " = 1");                     // every result off,
    /// wrong.replace("answer is ", "answer is 1");       // the answer too
    /// let recs = minimum_edit("arith", "math", [#{problem: p.problem, solution: p.solution,
    ///                                              answer: p.answer, prediction: wrong}]);
    /// print(`step ${recs[0].error_step}: ${recs[0].fix_pred} (${recs[0].is_correct})`);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn minimum_edit(
        teacher: Dynamic,
        kind: &str,
        samples: rhai::Array,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        minimum_edit_with(teacher, kind, samples, rhai::Map::new())
    }

    /// [`minimum_edit`] with options: `fidelity` (`"corrected"` | `"paper"`: the public
    /// code's reading of the teacher's replies), `out` (also write the records there as
    /// JSONL, atomically); for a model teacher `max_new_tokens` per answer and `batch_size`
    /// (it answers greedily with the GRM templates, `batch_size` questions together), and
    /// for `"model:<path>"` `dtype`, `device` and `pack` as `model_load` takes them; for an
    /// HTTP teacher `max_new_tokens` per answer, `concurrency` (requests in flight at once),
    /// `timeout_s` (per request), `retries` (after the first attempt), `cache` (the JSONL
    /// file that keeps every answer, so that no request is ever made twice),
    /// `teacher_price` (`#{input, output}`: dollars per million input and output tokens, for
    /// the cost of the answers; 0: unknown) and `teacher_budget` (`#{requests, cost}`: the
    /// most the call's answers may take, those from the cache included; 0: no limit). A
    /// request that would go over the budget is not sent: the call fails saying how far it
    /// got, every answer received is cached, and a rerun with a larger budget goes on from
    /// there. A run's stage records what its teacher spent (requests, cached answers, tokens,
    /// cost) and the run report shows it.
    /// Defaults: {defaults:teacher}.
    ///
    /// ```rhai
    /// let recs = minimum_edit("reference", "qa", [#{
    ///     problem: "Where is milk kept cold?\nOptions:\nfridge\noven",
    ///     solution: "A fridge keeps things cold.\nThe answer is fridge",
    ///     prediction: "Ovens are warm.\nThe answer is oven"}], #{fidelity: "paper"});
    /// ```
    #[rhai_fn(name = "minimum_edit", return_raw)]
    pub fn minimum_edit_with(
        teacher: Dynamic,
        kind: &str,
        samples: rhai::Array,
        options: rhai::Map,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        let mut o = Options::new("minimum_edit", options);
        let opts: TeacherOptions = o.parse()?;
        let out: RecordsOut = o.parse()?;
        o.finish()?;
        let kind: TaskKind = kind
            .parse()
            .map_err(|e: String| format!("minimum_edit: {e}"))?;
        let samples: Vec<Sample> = from_array("minimum_edit", "sample", &samples)?;
        let records = match teacher.clone().try_cast::<ModelHandle>() {
            Some(model) => judge_with_model(&*model.engine(), kind, &samples, &opts),
            None => {
                let spec: TeacherSpec = teacher
                    .into_string()
                    .map_err(|t| {
                        format!("minimum_edit: the teacher must be a name or a model, got {t}")
                    })?
                    .parse()
                    .map_err(|e| format!("minimum_edit: {e}"))?;
                judge_named(&spec, kind, &samples, &opts)
            }
        }
        .map_err(|e| format!("minimum_edit: {e}"))?;
        out.write("minimum_edit", &records)
    }

    /// The teacher `spec` as a stage input: an offline teacher's name with its rule's
    /// revision (`"arith@2"`), so that a run made with an older rule reruns the teacher
    /// instead of reusing its records; any other spec (a model, an HTTP teacher) unchanged.
    ///
    /// ```rhai
    /// print(teacher_revision("arith"));              // arith@2
    /// print(teacher_revision("anthropic:claude"));   // anthropic:claude
    /// ```
    pub fn teacher_revision(spec: &str) -> String {
        match spec.parse().ok().and_then(|s: TeacherSpec| s.offline()) {
            Some(t) => format!("{}@{}", t.name(), t.revision()),
            None => spec.to_string(),
        }
    }

    /// GRM training examples (docs/method.md, step 3) from teacher records: `{input, output}` in
    /// the GRM template — locate and rewrite for each fixed record, and each correct
    /// prediction as a rewrite of itself with probability (fixed) / (all records), drawn
    /// from a seeded stream (the default `seed` of `grm_data(records, options)`, which takes
    /// another). Train the GRM on them with `m.train(examples, #{objective: "sft"})`.
    ///
    /// ```rhai
    /// let recs = [#{question: "Q", solution: "s\nThe answer is 1", prediction: "p\nThe answer is 2",
    ///               error_step: 0, fix_pred: "s\nThe answer is 1", is_correct: true}];
    /// let examples = grm_data(recs);
    /// print(examples[0].output);   // The first error step is [0]
    /// ```
    #[rhai_fn(return_raw)]
    pub fn grm_data(records: rhai::Array) -> Result<rhai::Array, Box<EvalAltResult>> {
        grm_data_with(records, rhai::Map::new())
    }

    /// [`grm_data`] with option `seed`: the seed of the stream that keeps correct predictions.
    /// Defaults: {defaults:grm_data}.
    ///
    /// ```rhai
    /// let recs = [#{question: "Q", solution: "s\nThe answer is 1", prediction: "s\nThe answer is 1",
    ///               error_step: -1, fix_pred: "s\nThe answer is 1", is_correct: true}];
    /// let examples = grm_data(recs, #{seed: 1});
    /// ```
    #[rhai_fn(name = "grm_data", return_raw)]
    pub fn grm_data_with(
        records: rhai::Array,
        options: rhai::Map,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        let mut o = Options::new("grm_data", options);
        let opts: GrmDataOptions = o.parse()?;
        o.finish()?;
        let records: Vec<EditRecord> = from_array("grm_data", "record", &records)?;
        to_array("grm_data", &grm_examples(&records, opts.seed))
    }

    /// The GRM beside the teacher on the same samples (steps 2 and 5): how many wrong
    /// predictions each turned into a correct fix, and of the teacher-fixed ones how often
    /// the GRM named the same first wrong step. Returns `#{teacher_fixed, grm_fixed,
    /// compared, same_first_error, line}` (`line`: the counts as one sentence). The run
    /// report (`rlmec report`) shows the same counts with edit distances.
    ///
    /// ```rhai
    /// let t = [#{question: "Q", prediction: "p", error_step: 0, fix_pred: "s", is_correct: true}];
    /// let g = [#{question: "Q", prediction: "p", error_step: 0, fix_pred: "s", is_correct: true}];
    /// print(grm_vs_teacher(t, g).line);   // same first wrong step on 1 of 1 ...
    /// ```
    #[rhai_fn(return_raw)]
    pub fn grm_vs_teacher(
        edits: rhai::Array,
        grm_edits: rhai::Array,
    ) -> Result<rhai::Map, Box<EvalAltResult>> {
        let read = |a: &rhai::Array| from_array::<serde_json::Value>("grm_vs_teacher", "record", a);
        let c = crate::report::compare_edits(&read(&edits)?, &read(&grm_edits)?, None, false);
        let mut map = rhai::Map::new();
        for (k, v) in [
            ("teacher_fixed", c.teacher_fixed),
            ("grm_fixed", c.grm_fixed),
            ("compared", c.compared),
            ("same_first_error", c.same_first_error),
        ] {
            map.insert(k.into(), (v as i64).into());
        }
        map.insert("line".into(), c.line().into());
        Ok(map)
    }

    /// The first step of `text` (a solution of `problem`, one step per line) whose
    /// arithmetic the `arith` teacher rejects — a result that is not `a op b`, an operand
    /// from nowhere, an answer line disagreeing with the last result — or -1 when every
    /// calculation checks out. A fix can reach the gold answer through a wrong calculation;
    /// this tells them apart (`scripts/variants/verified_fixes.rhai`).
    ///
    /// ```rhai
    /// let q = "Lena has 15 apples. Then she triples them. Then she doubles them.";
    /// print(arith_first_wrong_step(q, "She has 15 * 3 = 55 apples.\nShe has 55 * 2 = 90 apples.\nThe answer is 90"));  // 0
    /// print(arith_first_wrong_step(q, "She has 15 * 3 = 45 apples.\nShe has 45 * 2 = 90 apples.\nThe answer is 90"));  // -1
    /// ```
    pub fn arith_first_wrong_step(problem: &str, text: &str) -> i64 {
        crate::teacher::arith::first_wrong_step(problem, text).map_or(-1, |k| k as i64)
    }
}
