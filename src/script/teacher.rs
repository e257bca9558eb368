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
    use std::path::Path;

    use crate::script::model::ModelHandle;
    use crate::script::options::Options;
    use crate::tasks::answer::extract_answer;
    use crate::tasks::{Fidelity, TaskKind};
    use crate::teacher::grm_data::grm_examples;
    use crate::teacher::http::cache::Cache;
    use crate::teacher::http::{HttpOptions, HttpTeacher};
    use crate::teacher::minimum_edit::{EditRecord, Outcome, Sample, judge_all};
    use crate::teacher::model::ModelTeacher;
    use crate::teacher::{Case, Teacher, by_name};

    /// Run the minimum-edit protocol with `teacher` — an offline teacher's name (`"arith"`,
    /// `"reference"`), a model (the trained GRM, step 5), `"model:<path>"`,
    /// `"anthropic:<model>"` (key from `ANTHROPIC_API_KEY`) or `"openai:<model>@<base_url>"`
    /// (any OpenAI-compatible server; `#chat` at the end for `/v1/chat/completions`) — on
    /// `samples` (maps with `problem` (or
    /// `question`), `solution`, `prediction`, and `answer` — taken from the solution's answer
    /// line when absent) of task `kind` (`"qa"` or `"math"`). Returns the public code's
    /// records `{question, solution, prediction, error_step, fix_pred, is_correct}`; a
    /// correct prediction short-circuits. Options: `fidelity` (`"corrected"` | `"paper"`),
    /// `out` (write the records there as JSONL, atomically); for a model teacher
    /// `max_new_tokens` (2048) and `batch_size` (16) — it answers greedily with the GRM
    /// templates, every question of the batch together — and for `"model:<path>"` `dtype`,
    /// `device` and `pack` as `model_load` takes them; for an HTTP teacher
    /// `max_new_tokens` (350), `concurrency` (4), `timeout_s` (120), `retries` (6) and
    /// `cache` (`$RLMEC_TEACHER_CACHE` or `runs/teacher-cache.jsonl`: every answer is kept
    /// there, so no request is ever made twice).
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

    /// [`minimum_edit`] with `#{fidelity, out}`.
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
        let fidelity: Fidelity = o
            .string("fidelity", "corrected")?
            .parse()
            .map_err(|e: String| format!("minimum_edit: {e}"))?;
        let out = o.string("out", "")?;
        let max_new_tokens = o.optional_count("max_new_tokens")?;
        let batch_size = o.count("batch_size", 16)?;
        let cache_path = o.string(
            "cache",
            &std::env::var("RLMEC_TEACHER_CACHE")
                .unwrap_or_else(|_| "runs/teacher-cache.jsonl".into()),
        )?;
        let concurrency = o.count("concurrency", 4)?;
        let timeout_s = o.float("timeout_s", 120.0)?;
        let retries = o.count("retries", 6)?;
        let load = crate::script::model::load_options(&mut o)?;
        o.finish()?;
        let kind: TaskKind = kind
            .parse()
            .map_err(|e: String| format!("minimum_edit: {e}"))?;
        let mut parsed = Vec::with_capacity(samples.len());
        for (i, s) in samples.iter().enumerate() {
            let map = s.read_lock::<rhai::Map>().ok_or_else(|| {
                format!("minimum_edit: sample {i} is {}, not a map", s.type_name())
            })?;
            let field = |names: &[&str]| -> Option<String> {
                names
                    .iter()
                    .find_map(|n| map.get(*n).and_then(|v| v.clone().into_string().ok()))
            };
            let need = |names: &[&str]| {
                field(names).ok_or_else(|| {
                    format!("minimum_edit: sample {i}: missing field `{}`", names[0])
                })
            };
            let case = Case {
                problem: need(&["problem", "question"])?,
                solution: need(&["solution"])?,
                prediction: need(&["prediction"])?,
            };
            let answer = field(&["answer"])
                .or_else(|| extract_answer(&case.solution))
                .ok_or_else(|| {
                    format!(
                        "minimum_edit: sample {i}: no `answer` and no answer line in `solution`"
                    )
                })?;
            parsed.push(Sample { case, answer });
        }
        // A model (the trained GRM), a `model:<path>`, or an offline teacher's name.
        let handle = match teacher.clone().try_cast::<ModelHandle>() {
            Some(h) => h,
            None => {
                let name = teacher.into_string().map_err(|t| {
                    format!("minimum_edit: the teacher must be a name or a model, got {t}")
                })?;
                match name.strip_prefix("model:") {
                    Some(path) => ModelHandle::new(
                        crate::model::Model::load(Path::new(path), load)
                            .map_err(|e| format!("minimum_edit: {e}"))?,
                    ),
                    None if name.starts_with("anthropic:") || name.starts_with("openai:") => {
                        let cache = Cache::open(Path::new(&cache_path)).map_err(|e| {
                            format!("minimum_edit: teacher cache {cache_path}: {e}")
                        })?;
                        let opts = HttpOptions {
                            concurrency,
                            timeout: std::time::Duration::from_secs_f64(timeout_s),
                            retries: retries as u32,
                            max_tokens: max_new_tokens.unwrap_or(350),
                            ..HttpOptions::default()
                        };
                        let t = HttpTeacher::new(&name, kind, cache, opts)
                            .map_err(|e| format!("minimum_edit: {e}"))?;
                        return finish(judge_all(&t, kind, &parsed, fidelity), t.name(), &out);
                    }
                    None => {
                        let t = by_name(&name).map_err(|e| format!("minimum_edit: {e}"))?;
                        return finish(
                            judge_all(t.as_ref(), kind, &parsed, fidelity),
                            t.name(),
                            &out,
                        );
                    }
                }
            }
        };
        let model = handle.lock();
        let t = ModelTeacher {
            model: &model,
            max_new_tokens: max_new_tokens.unwrap_or(2048),
            batch_size,
            fidelity,
        };
        finish(judge_all(&t, kind, &parsed, fidelity), t.name(), &out)
    }

    /// Log, write and return the protocol's outcomes. (Teachers that take time show their
    /// own progress: a model's generation bar, the HTTP requests' bar.)
    fn finish(
        outcomes: Result<Vec<Outcome>, crate::teacher::TeacherError>,
        teacher: String,
        out: &str,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        let outcomes = outcomes.map_err(|e| format!("minimum_edit: {e}"))?;
        let mut records = Vec::new();
        let mut dropped = 0;
        for (i, o) in outcomes.into_iter().enumerate() {
            match o {
                Outcome::Record(r) => records.push(r),
                Outcome::Dropped { reply } => {
                    dropped += 1;
                    tracing::debug!(
                        "minimum_edit: sample {i} dropped: the teacher named no usable step twice (last reply {reply:?})"
                    );
                }
            }
        }
        tracing::info!(
            "minimum_edit ({teacher}): {} records, {dropped} dropped (no usable step named twice; -v lists them)",
            records.len()
        );
        let json: Vec<serde_json::Value> = records
            .iter()
            .map(|r| serde_json::to_value(r).expect("records serialise"))
            .collect();
        crate::script::io::write_records("minimum_edit", out, &json)?;
        crate::script::io::to_array("minimum_edit", &json)
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
        match by_name(spec) {
            Ok(t) => format!("{}@{}", t.name(), t.revision()),
            Err(_) => spec.to_string(),
        }
    }

    /// GRM training examples (docs/method.md, step 3) from teacher records: `{input, output}` in
    /// the GRM template — locate and rewrite for each fixed record, and each correct
    /// prediction as a rewrite of itself with probability (fixed) / (all records), drawn
    /// with `seed`. Train the GRM on them with `m.train(examples, #{objective: "sft"})`.
    ///
    /// ```rhai
    /// let recs = [#{question: "Q", solution: "s\nThe answer is 1", prediction: "p\nThe answer is 2",
    ///               error_step: 0, fix_pred: "s\nThe answer is 1", is_correct: true}];
    /// let examples = grm_data(recs, 0);
    /// print(examples[0].output);   // The first error step is [0]
    /// ```
    #[rhai_fn(return_raw)]
    pub fn grm_data(records: rhai::Array, seed: i64) -> Result<rhai::Array, Box<EvalAltResult>> {
        let records: Vec<EditRecord> =
            crate::script::io::from_array("grm_data", "record", &records)?;
        crate::script::io::to_array("grm_data", &grm_examples(&records, seed as u64))
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
        let read = |a: &rhai::Array| {
            crate::script::io::from_array::<serde_json::Value>("grm_vs_teacher", "record", a)
        };
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
