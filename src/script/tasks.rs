//! Task natives: load datasets, generate the synthetic arithmetic task, build the policy
//! prompt, extract and score answers, accuracy with a confidence interval.

use rhai::plugin::*;

use super::engine::Domain;
use crate::tasks::Problem;

pub const DOMAIN: Domain = Domain {
    name: "tasks",
    module: || exported_module!(tasks_api),
    extra: |_| {},
};

type Res<T> = Result<T, Box<EvalAltResult>>;

fn problems_array(problems: Vec<Problem>) -> rhai::Array {
    problems
        .into_iter()
        .map(|p| {
            let mut m = rhai::Map::new();
            m.insert("problem".into(), p.problem.into());
            m.insert("solution".into(), p.solution.into());
            m.insert("answer".into(), p.answer.into());
            m.into()
        })
        .collect()
}

fn parse<T: std::str::FromStr<Err = String>>(what: &str, s: &str) -> Res<T> {
    s.parse().map_err(|e: String| format!("{what}: {e}").into())
}

/// Tasks: `{problem, solution, answer}` records from the shipped datasets (ECQA,
/// OpenBookQA, GSM8K normalised, SVAMP) or your own JSONL, the synthetic arithmetic task,
/// the policy prompt, answer extraction and scoring (docs/method.md, "Data shapes").
#[export_module]
pub mod tasks_api {
    use std::path::Path;

    use super::{Res, parse, problems_array};
    use crate::script::io::{RecordsOut, from_array};
    use crate::script::model::ModelHandle;
    use crate::script::options::Options;
    use crate::tasks::answer::{self, accuracy as wilson};
    use crate::tasks::load::{FieldMap, load};
    use crate::tasks::prompt::policy_prompt as prompt_of;
    use crate::tasks::sample::{SampleOptions, sample as run_sample};
    use crate::tasks::synthetic::{SyntheticOptions, splits};
    use crate::tasks::{FidelityOption, Problem, TaskKind};

    /// Records of a dataset file as `{problem, solution, answer}`: JSONL (ECQA, OpenBookQA,
    /// your own; GSM8K's `{question, answer}` with `<<…>>` and `#### N` is normalised to a
    /// final `The answer is N` line) or a JSON array (SVAMP). A bad line is an error naming
    /// the file, line and field.
    ///
    /// ```rhai
    /// let test = task_load("data/qa/ecqa/test.jsonl");
    /// print(`${test.len()} problems; first answer: ${test[0].answer}`);
    /// let gsm = task_load("data/math/gsm8k_test.jsonl");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn task_load(path: &str) -> Res<rhai::Array> {
        task_load_with(path, rhai::Map::new())
    }

    /// [`task_load`] with options `problem`, `solution` and `answer`: the names of those
    /// fields in your records. Defaults: {defaults:fields}.
    ///
    /// ```rhai
    /// let test = task_load("data/qa/ecqa/test.jsonl", #{problem: "problem", answer: "answer"});
    /// ```
    #[rhai_fn(name = "task_load", return_raw)]
    pub fn task_load_with(path: &str, fields: rhai::Map) -> Res<rhai::Array> {
        let mut o = Options::new("task_load", fields);
        let fields: FieldMap = o.parse()?;
        o.finish()?;
        let problems = load(Path::new(path), &fields).map_err(|e| format!("task_load: {e}"))?;
        Ok(problems_array(problems))
    }

    /// The synthetic arithmetic task: `#{train: [...], test: [...]}` of multi-step word
    /// problems, one `a op b = c` step per solution line. Options: `n_train` and `n_test`
    /// problems, made from `seed`, each with `min_steps` to `max_steps` steps drawn from
    /// `ops` (any of `"+"`, `"-"`, `"*"`); the start value and the operands of `+` and `-`
    /// are at most `max_operand`. Deterministic for a seed; the splits share no problem.
    /// Defaults: {defaults:synthetic}.
    ///
    /// ```rhai
    /// let task = task_synthetic(#{n_train: 20, n_test: 5, seed: 1, max_steps: 3});
    /// print(task.train[0].problem);
    /// print(task.train[0].solution);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn task_synthetic(options: rhai::Map) -> Res<rhai::Map> {
        let mut o = Options::new("task_synthetic", options);
        let opts: SyntheticOptions = o.parse()?;
        o.finish()?;
        opts.difficulty
            .validate()
            .map_err(|e| format!("task_synthetic: {e}"))?;
        let (train, test) = splits(opts.n_train, opts.n_test, opts.seed, &opts.difficulty);
        let mut m = rhai::Map::new();
        m.insert("train".into(), problems_array(train).into());
        m.insert("test".into(), problems_array(test).into());
        Ok(m)
    }

    /// The policy prompt for `kind` (`"qa"` or `"math"`): the Alpaca header, the problem,
    /// `### Response: Let's think step by step.` + newline (QA) or `### Response:` (math).
    ///
    /// ```rhai
    /// let p = policy_prompt("qa", "Where do you keep milk?\nOptions:\nfridge\noven");
    /// ```
    #[rhai_fn(return_raw)]
    pub fn policy_prompt(kind: &str, problem: &str) -> Res<String> {
        policy_prompt_with(kind, problem, rhai::Map::new())
    }

    /// [`policy_prompt`] with option `fidelity`: `"paper"` keeps the public code's single
    /// newline before `### Instruction:` in math prompts, `"corrected"` does not.
    /// Defaults: {defaults:fidelity}.
    ///
    /// ```rhai
    /// let p = policy_prompt("math", "2 + 2?", #{fidelity: "paper"});
    /// ```
    #[rhai_fn(name = "policy_prompt", return_raw)]
    pub fn policy_prompt_with(kind: &str, problem: &str, options: rhai::Map) -> Res<String> {
        let kind: TaskKind = parse("policy_prompt", kind)?;
        let mut o = Options::new("policy_prompt", options);
        let opts: FidelityOption = o.parse()?;
        o.finish()?;
        Ok(prompt_of(kind, problem, opts.fidelity))
    }

    /// The text after the last `The answer is`, trimmed; `()` when there is none.
    ///
    /// ```rhai
    /// print(extract_answer("Milk goes in the fridge.\nThe answer is fridge"));   // fridge
    /// ```
    pub fn extract_answer(text: &str) -> Dynamic {
        answer::extract_answer(text).map_or(Dynamic::UNIT, Dynamic::from)
    }

    /// Whether a model output answers `gold`: QA case-insensitively, math numerically
    /// (within 1e-4, commas and a final `.` dropped).
    ///
    /// ```rhai
    /// print(is_correct("qa", "The answer is Fridge", "fridge"));        // true
    /// print(is_correct("math", "The answer is 1,018.", "1018"));        // true
    /// ```
    #[rhai_fn(return_raw)]
    pub fn is_correct(kind: &str, prediction: &str, gold: &str) -> Res<bool> {
        is_correct_with(kind, prediction, gold, rhai::Map::new())
    }

    /// [`is_correct`] with option `fidelity`: `"paper"` lower-cases only the prediction (QA) and
    /// compares extracted number strings exactly (math), as the public code; `"corrected"`
    /// compares as [`is_correct`] says. Defaults: {defaults:fidelity}.
    ///
    /// ```rhai
    /// print(is_correct("qa", "The answer is fridge", "Fridge", #{fidelity: "paper"}));   // false
    /// ```
    #[rhai_fn(name = "is_correct", return_raw)]
    pub fn is_correct_with(
        kind: &str,
        prediction: &str,
        gold: &str,
        options: rhai::Map,
    ) -> Res<bool> {
        let kind: TaskKind = parse("is_correct", kind)?;
        let mut o = Options::new("is_correct", options);
        let opts: FidelityOption = o.parse()?;
        o.finish()?;
        Ok(answer::is_correct(kind, prediction, gold, opts.fidelity))
    }

    /// Step 1: sample `n` solutions per problem from `m` with the policy prompt of `kind`,
    /// cut at the stop markers (`Problem:`, `Human:`, `Assistant:`, `Below is an
    /// instruction`, EOS), identical predictions of a problem kept once. Options: `n`
    /// samples per problem; `temperature`, `top_p`, `top_k`, `max_new_tokens`, `seed` and
    /// `batch_size` as `generate` takes them (each sample has its own seeded stream);
    /// `fidelity` of the policy prompt, as `policy_prompt` takes it; `out` (also write the
    /// records there as JSONL, atomically). Returns `{question, solution, answer,
    /// prediction}` records; deterministic for a seed, whatever the batch size.
    /// Defaults (the paper's): {defaults:sample}.
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama");
    /// let task = task_synthetic(#{n_train: 2, n_test: 0});
    /// let samples = m.sample("math", task.train, #{n: 2, max_new_tokens: 8});
    /// print(samples.len());
    /// ```
    #[rhai_fn(return_raw)]
    pub fn sample(
        model: &mut ModelHandle,
        kind: &str,
        problems: rhai::Array,
        options: rhai::Map,
    ) -> Res<rhai::Array> {
        let kind: TaskKind = parse("sample", kind)?;
        let mut o = Options::new("sample", options);
        let opts: SampleOptions = o.parse()?;
        let out: RecordsOut = o.parse()?;
        o.finish()?;
        let problems: Vec<Problem> = from_array("sample", "problem", &problems)?;
        let records = run_sample(&*model.engine(), kind, &problems, &opts)
            .map_err(|e| format!("sample: {e}"))?;
        out.write("sample", &records)
    }

    /// Accuracy of an array of booleans with its 95% Wilson interval:
    /// `#{n, correct, accuracy, low, high}`.
    ///
    /// ```rhai
    /// let a = accuracy([true, false, true, true]);
    /// print(`${a.accuracy} [${a.low}, ${a.high}]`);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn accuracy(outcomes: rhai::Array) -> Res<rhai::Map> {
        let flags = outcomes
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_bool().map_err(|_| {
                    format!("accuracy: element {i} is {}, not a boolean", v.type_name())
                })
            })
            .collect::<Result<Vec<bool>, _>>()?;
        if flags.is_empty() {
            return Err("accuracy: no outcomes: nothing was evaluated (an empty test set?)".into());
        }
        let a = wilson(&flags);
        let mut m = rhai::Map::new();
        m.insert("n".into(), (a.n as i64).into());
        m.insert("correct".into(), (a.correct as i64).into());
        m.insert("accuracy".into(), a.accuracy.into());
        m.insert("low".into(), a.low.into());
        m.insert("high".into(), a.high.into());
        Ok(m)
    }
}
