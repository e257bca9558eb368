//! Every native function, called with the values a user can get wrong, answers with a result
//! or an error a user can read: never a panic ("internal error in native code"), never
//! libtorch's message with its C++ frames, never a Rust `Debug` dump, never a hang.
//!
//! How: each native has one valid call in [`VALID_CALLS`] (a new native fails the test until
//! it has one, so it is audited too). The call is varied one argument at a time through the
//! wrong values of that argument's type — numbers out of range, NaN, empty and ragged arrays,
//! token ids outside the vocabulary, tensors of other shapes, paths that are folders or do not
//! exist — and, for a map or an array of maps, each field removed or set to a value of every
//! kind, including every option the API documentation lists for that native. Every error seen
//! is written to `target/bad-values.txt`, one per call, for reading.

use std::collections::BTreeSet;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use rhai::{Dynamic, Engine, Scope};
use rlmec::script::api::{FunctionApi, api};
use rlmec::script::context::RunTarget;
use rlmec::script::defaults::TABLE;
use rlmec::script::{ScriptContext, build_engine};

/// Set up once; the calls below use these names. `m` is shared by every call that only reads
/// a model; a call that changes its model (training, merging) loads its own.
const PRELUDE: &str = r#"
let tiny = `${FIX}/model/tiny-llama`;
let m = model_load(tiny);
let adapted = model_load(tiny, #{adapter: `${FIX}/lora/peft-adapter`});
write_json(`${TMP}/data.json`, #{a: 1});
write_jsonl(`${TMP}/data.jsonl`, [#{problem: "1 + 1?", solution: "1 + 1 = 2\nThe answer is 2", answer: "2"}]);
let bar = progress_bar(3, "bar");
let remote = model_remote(VLLM, #{tokenizer: tiny, backoff_s: 0.01, timeout_s: 5.0});
m.save(`${TMP}/tiny-copy`);
let long = ""; for i in 0..300 { long += "a "; }
let long_ids = []; long_ids.pad(300, 5);
let run = run_open(`${TMP}/run`);
run.stage("answer", #{}, || 42);
let problems = task_synthetic(#{n_train: 1, n_test: 0, seed: 3, max_steps: 2, ops: ["+"]}).train;
let edit = #{question: "1 + 1?", solution: "1 + 1 = 2\nThe answer is 2",
             prediction: "1 + 1 = 3\nThe answer is 3", error_step: 0,
             fix_pred: "1 + 1 = 2\nThe answer is 2", is_correct: true};
let n = m.encode(" 2").len() + 1;
let reward = []; reward.pad(n, 0.2);
let ref_prob = []; ref_prob.pad(n, -1.5);
let weight = []; weight.pad(n, 0.5);
let rl = #{input: "Q: 1 + 1?", output: " 2", regular: " 2",
           reward: reward, ref_prob: ref_prob, weight_regular: weight};
let t = tensor([[0.1, 0.9], [0.7, 0.3]]);
"#;

/// One valid call of every native, by its signature in `docs/api.md`: the arguments as
/// script expressions over the names [`PRELUDE`] defines.
const VALID_CALLS: &[(&str, &[&str])] = &[
    // config
    (
        "apply_overrides(defaults: map) -> map",
        &["#{n: 1, lr: 0.5, name: \"x\", xs: [1]}"],
    ),
    ("config_overrides() -> map", &[]),
    // io
    ("file_exists(path: string) -> bool", &["`${TMP}/data.json`"]),
    ("read_json(path: string) -> any", &["`${TMP}/data.json`"]),
    (
        "read_jsonl(path: string) -> array",
        &["`${TMP}/data.jsonl`"],
    ),
    ("shipped(path: string) -> string", &["\"data/qa/ecqa\""]),
    (
        "write_json(path: string, value: any)",
        &["`${TMP}/out.json`", "#{a: 1}"],
    ),
    (
        "write_jsonl(path: string, records: array)",
        &["`${TMP}/out.jsonl`", "[#{a: 1}]"],
    ),
    (
        "write_text(path: string, text: string)",
        &["`${TMP}/out.txt`", "\"x\""],
    ),
    // progress
    ("finish(bar: Progress)", &["progress_bar(1, \"x\")"]),
    ("bar.position -> i64", &["bar"]),
    (
        "inc(bar: Progress, n: i64)",
        &["progress_bar(3, \"x\")", "1"],
    ),
    (
        "progress(items: array, label: string) -> ProgressIter",
        &["[1, 2]", "\"items\""],
    ),
    (
        "progress(range: range, label: string) -> ProgressIter",
        &["0..2", "\"range\""],
    ),
    (
        "progress_bar(total: i64, label: string) -> Progress",
        &["3", "\"x\""],
    ),
    (
        "set_message(bar: Progress, message: string)",
        &["bar", "\"loss 0.4\""],
    ),
    // torch
    ("device_available(device: string) -> bool", &["\"cpu\""]),
    ("manual_seed(seed: i64)", &["0"]),
    ("set_threads(n: i64)", &["1"]),
    ("torch_info() -> map", &[]),
    // model
    (
        "decode(model: Model, ids: array) -> string",
        &["m", "[1, 2]"],
    ),
    (
        "encode(model: Model, text: string) -> array",
        &["m", "\"Hello\""],
    ),
    ("model.config -> any", &["m"]),
    ("model.info -> map", &["m"]),
    (
        "merge_lora(model: Model) -> bool",
        &["model_load(tiny, #{adapter: `${FIX}/lora/peft-adapter`})"],
    ),
    ("model_load(path: string) -> Model", &["tiny"]),
    (
        "model_load(path: string, options: map) -> Model",
        &["tiny", "#{dtype: \"f32\", device: \"cpu\", pack: true}"],
    ),
    (
        "model_new(config: map, texts: array) -> Model",
        &[
            "#{vocab_size: 280, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, seed: 1}",
            "[\"1 + 1 = 2\", \"2 + 3 = 5\"]",
        ],
    ),
    ("save(model: Model, dir: string)", &["m", "`${TMP}/saved`"]),
    (
        "save_adapter(model: Model, dir: string)",
        &["adapted", "`${TMP}/adapter`"],
    ),
    (
        "save_gguf(model: Model, path: string)",
        &["m", "`${TMP}/m.gguf`"],
    ),
    (
        "save_gguf(model: Model, path: string, options: map)",
        &["m", "`${TMP}/m16.gguf`", "#{dtype: \"f16\"}"],
    ),
    // generate
    (
        "generate(model: Model, prompts: array) -> array",
        &[
            "m",
            "[\"Q:\", [1, 2], #{prompt: \"A:\", max_new_tokens: 2}]",
        ],
    ),
    (
        "generate(model: Model, prompts: array, options: map) -> array",
        &[
            "m",
            "[\"Q:\", [1, 2]]",
            "#{max_new_tokens: 3, temperature: 0.7, top_p: 0.9, top_k: 5, seed: 1, stop: [\"\\n\"]}",
        ],
    ),
    (
        "score(model: Model, prompt: any, continuation: any) -> array",
        &["m", "\"Q:\"", "\" yes\""],
    ),
    (
        "score_batch(model: Model, prompts: array, continuations: array, options: map) -> array",
        &[
            "m",
            "[\"Q: a\", [1, 2]]",
            "[\" yes\", [3, 4]]",
            "#{batch_size: 2}",
        ],
    ),
    (
        "model_remote(spec: string, options: map) -> Model",
        &[
            "VLLM",
            "#{tokenizer: tiny, backoff_s: 0.01, timeout_s: 5.0}",
        ],
    ),
    // tensor
    ("*(a: Tensor, b: any) -> Tensor", &["t", "2.0"]),
    ("*(a: any, b: Tensor) -> Tensor", &["2.0", "t"]),
    ("+(a: Tensor, b: any) -> Tensor", &["t", "t"]),
    ("+(a: any, b: Tensor) -> Tensor", &["1", "t"]),
    ("-(a: Tensor) -> Tensor", &["t"]),
    ("-(a: Tensor, b: any) -> Tensor", &["t", "0.5"]),
    ("-(a: any, b: Tensor) -> Tensor", &["1.0", "t"]),
    ("/(a: Tensor, b: any) -> Tensor", &["t", "4"]),
    ("/(a: any, b: Tensor) -> Tensor", &["1", "t"]),
    ("abs(t: Tensor) -> Tensor", &["t"]),
    (
        "clamp(t: Tensor, lo: f64, hi: f64) -> Tensor",
        &["t", "0.2", "0.8"],
    ),
    ("detach(t: Tensor) -> Tensor", &["t"]),
    ("eq(t: Tensor, x: any) -> Tensor", &["t", "0.9"]),
    ("exp(t: Tensor) -> Tensor", &["t"]),
    (
        "gather(t: Tensor, dim: i64, index: Tensor) -> Tensor",
        &["t", "1", "tensor([[1.0], [0.0]])"],
    ),
    ("t.shape -> array", &["t"]),
    ("gt(t: Tensor, x: any) -> Tensor", &["t", "0.5"]),
    ("item(t: Tensor) -> f64", &["t.sum()"]),
    ("log(t: Tensor) -> Tensor", &["t"]),
    ("lt(t: Tensor, x: any) -> Tensor", &["t", "0.5"]),
    ("max(a: Tensor, b: any) -> Tensor", &["t", "0.5"]),
    ("mean(t: Tensor) -> Tensor", &["t"]),
    ("mean(t: Tensor, dim: i64) -> Tensor", &["t", "1"]),
    ("min(a: Tensor, b: any) -> Tensor", &["t", "t"]),
    ("ne(t: Tensor, x: any) -> Tensor", &["t", "0.0"]),
    ("ones_like(t: Tensor) -> Tensor", &["t"]),
    ("pow(t: Tensor, exponent: f64) -> Tensor", &["t", "2.0"]),
    (
        "select(mask: Tensor, a: any, b: any) -> Tensor",
        &["t.gt(0.5)", "1.0", "t"],
    ),
    ("sqrt(t: Tensor) -> Tensor", &["t"]),
    ("sum(t: Tensor) -> Tensor", &["t"]),
    ("sum(t: Tensor, dim: i64) -> Tensor", &["t", "-1"]),
    ("tensor(values: array) -> Tensor", &["[[1.0, 2.0], [3, 4]]"]),
    ("to_array(t: Tensor) -> array", &["t"]),
    ("to_debug(t: Tensor) -> string", &["t"]),
    ("to_string(t: Tensor) -> string", &["t"]),
    ("unsqueeze(t: Tensor, dim: i64) -> Tensor", &["t", "0"]),
    ("zeros_like(t: Tensor) -> Tensor", &["t"]),
    // train
    ("rlmec_loss(model: Model, record: map) -> map", &["m", "rl"]),
    (
        "rlmec_loss(model: Model, record: map, options: map) -> map",
        &["m", "rl", "#{clip_eps: 0.2, reg_weight: 0.5}"],
    ),
    (
        "train(model: Model, records: array, options: map) -> map",
        &[
            "model_load(tiny)",
            "[rl, rl]",
            "#{objective: \"rlmec\", epochs: 1, lr: 1e-3, batch_size: 2, grad_accum: 1, max_len: 64, \
               lora: #{r: 2, alpha: 4.0, dropout: 0.1, targets: [\"q_proj\"]}}",
        ],
    ),
    (
        "train(model: Model, records: array, options: map) -> map",
        &[
            "model_load(tiny)",
            "[#{input: \"2 + 2 =\", output: \" 4\"}]",
            "#{objective: |b| (b.ce * b.mask).sum() / max(b.mask.sum(), 1.0), epochs: 1, lr: 1e-3}",
        ],
    ),
    // align
    (
        "align_edits(a: array, b: array, mode: string) -> array",
        &["[5, 6, 9, 7]", "[5, 6, 7]", "\"paper\""],
    ),
    // tasks
    ("accuracy(outcomes: array) -> map", &["[true, false, true]"]),
    (
        "extract_answer(text: string) -> any",
        &["\"so\\nThe answer is 3\""],
    ),
    (
        "is_correct(kind: string, prediction: string, gold: string) -> bool",
        &["\"math\"", "\"The answer is 3\"", "\"3\""],
    ),
    (
        "is_correct(kind: string, prediction: string, gold: string, options: map) -> bool",
        &[
            "\"qa\"",
            "\"The answer is fridge\"",
            "\"fridge\"",
            "#{fidelity: \"paper\"}",
        ],
    ),
    (
        "policy_prompt(kind: string, problem: string) -> string",
        &["\"qa\"", "\"Where?\\nOptions:\\nfridge\\noven\""],
    ),
    (
        "policy_prompt(kind: string, problem: string, options: map) -> string",
        &["\"math\"", "\"2 + 2?\"", "#{fidelity: \"paper\"}"],
    ),
    (
        "sample(model: Model, kind: string, problems: array, options: map) -> array",
        &[
            "m",
            "\"math\"",
            "problems",
            "#{n: 2, max_new_tokens: 4, batch_size: 2}",
        ],
    ),
    ("task_load(path: string) -> array", &["`${TMP}/data.jsonl`"]),
    (
        "task_load(path: string, fields: map) -> array",
        &[
            "`${TMP}/data.jsonl`",
            "#{problem: \"problem\", answer: \"answer\"}",
        ],
    ),
    (
        "task_synthetic(options: map) -> map",
        &["#{n_train: 2, n_test: 1, seed: 1, max_steps: 2}"],
    ),
    // teacher
    (
        "arith_first_wrong_step(problem: string, text: string) -> i64",
        &[
            "\"Lena has 15 apples. Then she triples them.\"",
            "\"She has 15 * 3 = 55 apples.\\nThe answer is 55\"",
        ],
    ),
    ("grm_data(records: array) -> array", &["[edit]"]),
    (
        "grm_data(records: array, options: map) -> array",
        &["[edit]", "#{seed: 1}"],
    ),
    (
        "grm_vs_teacher(edits: array, grm_edits: array) -> map",
        &["[edit]", "[edit]"],
    ),
    (
        "minimum_edit(teacher: any, kind: string, samples: array) -> array",
        &[
            "\"arith\"",
            "\"math\"",
            "[#{problem: problems[0].problem, solution: problems[0].solution, answer: problems[0].answer, prediction: \"x\\nThe answer is 1\"}]",
        ],
    ),
    (
        "minimum_edit(teacher: any, kind: string, samples: array, options: map) -> array",
        &[
            "m",
            "\"math\"",
            "[#{problem: \"1 + 1?\", solution: \"1 + 1 = 2\\nThe answer is 2\", prediction: \"1 + 1 = 3\\nThe answer is 3\"}]",
            "#{max_new_tokens: 4, batch_size: 1}",
        ],
    ),
    (
        "minimum_edit(teacher: any, kind: string, samples: array, options: map) -> array",
        &[
            "\"reference\"",
            "\"math\"",
            "[#{problem: \"1 + 1?\", solution: \"1 + 1 = 2\\nThe answer is 2\", prediction: \"1 + 1 = 3\\nThe answer is 3\"}]",
            "#{fidelity: \"paper\"}",
        ],
    ),
    (
        "minimum_edit(teacher: any, kind: string, samples: array, options: map) -> array",
        &[
            "VLLM",
            "\"math\"",
            "[#{problem: \"1 + 1?\", solution: \"1 + 1 = 2\\nThe answer is 2\", prediction: \"1 + 1 = 3\\nThe answer is 3\"}]",
            "#{retries: 0, timeout_s: 1, cache: `${TMP}/teacher-cache`}",
        ],
    ),
    ("teacher_revision(spec: string) -> string", &["\"arith\""]),
    // rewards
    (
        "token_rewards(policy: Model, grm: Model, kind: string, records: array, options: map) -> array",
        &["m", "m", "\"math\"", "[edit]", "#{}"],
    ),
    (
        "token_rewards(policy: Model, judge: string, kind: string, records: array, options: map) -> array",
        &["m", "\"teacher_edit\"", "\"math\"", "[edit]", "#{}"],
    ),
    // run
    ("fingerprint(value: any) -> string", &["#{a: 1}"]),
    (
        "fingerprint(run: Run, value: any) -> string",
        &["run", "#{a: `${TMP}/data.json`}"],
    ),
    ("run.dir -> string", &["run"]),
    (
        "result(run: Run, name: string) -> any",
        &["run", "\"answer\""],
    ),
    ("run_current() -> Run", &[]),
    ("run_open(dir: string) -> Run", &["`${TMP}/run2`"]),
    // A run of its own for each call (`CALL` counts them): a stage finished by an earlier
    // call would be reused, its body not called.
    (
        "stage(run: Run, name: string, inputs: any, body: Fn) -> any",
        &[
            "run_open(`${TMP}/stage-runs/${CALL}`)",
            "\"squares\"",
            "#{n: 3}",
            "|| [0, 1, 4]",
        ],
    ),
    (
        "stage_dir(run: Run, name: string) -> string",
        &["run", "\"policy\""],
    ),
];

/// Calls that cannot succeed here: the server command fails. They show that options are
/// checked and that a server which does not start is said so, quickly.
const FAILING_CALLS: &[(&str, &[&str])] = &[(
    "model_serve(path: string, options: map) -> Model",
    &[
        "`${TMP}/tiny-copy`",
        "#{serve: \"false {port}\", startup_timeout_s: 5}",
    ],
)];

const NAN: &str = "(0.0 / 0.0)";

/// Wrong values of each type a signature names.
fn wrong_values(ty: &str) -> &'static [&'static str] {
    match ty {
        "i64" => &["0", "-1", "-9223372036854775807", "9223372036854775807"],
        "f64" => &["0.0", "-1.0", "1e308", "-1e308", NAN],
        "string" => &[
            "\"\"",
            "\"no/such/file\"",
            "\"../outside\"",
            "\"\\x00\"",
            "TMP",
            "\"x y:z\"",
        ],
        "array" => &[
            "[]",
            "[[]]",
            "[()]",
            "[\"\"]",
            "[-1]",
            "[9223372036854775807]",
            "[1e308]",
            "[\"x\"]",
            "[#{}]",
            "[[1], [1, 2]]",
            "[long]",
            "[long_ids]",
        ],
        "map" => &["#{}", "#{no_such_key: 1}"],
        "any" => &["()", "-1", "1e308", "\"\"", "[]", "#{}", "[()]"],
        "Tensor" => &[
            "tensor([])",
            "tensor([1.0, 2.0, 3.0])",
            "tensor([[1.0], [2.0]])",
            "tensor([1.0]).sum()",
            "tensor([0.0]) / 0.0",
        ],
        "Model" => &["remote"],
        "Fn" => &["|| throw \"the body failed\"", "|x| x", "|a, b| a"],
        _ => &[],
    }
}

/// Values a field of a map (an option, a record's field) is set to. No huge integers: a
/// count such as `epochs: 1e18` is well formed and asks for endless work, which is not an
/// error (`a_huge_budget_reserves_no_memory_up_front` checks the one that allocated).
const FIELD_VALUES: &[&str] = &[
    "()", "|| 1", "|b| b.ce", "-1", "0", "-0.5", NAN, "1e308", "\"\"", "\"x\"", "[]", "[\"x\"]",
    "#{}",
];

/// Libtorch's and Rust's internals: none may reach a user.
const INTERNALS: &[&str] = &[
    "internal error",
    "frame #",
    "Exception raised from",
    "c10::",
    "Torch(",
    "unwrap()",
    "RUST_BACKTRACE",
    "Os {",
    "Custom {",
    "kind: ",
];

/// A call running longer than this has hung.
const HANG: Duration = Duration::from_secs(60);

struct Call {
    signature: String,
    source: String,
}

/// The call of `f` with `args` as script source: operators infix, properties as `x.name`.
fn call_source(f: &FunctionApi, args: &[String]) -> String {
    let is_operator = !f
        .name
        .starts_with(|c: char| c.is_alphanumeric() || c == '_');
    match (f.name.strip_prefix("get$"), args) {
        (Some(prop), [this]) => format!("({this}).{prop}"),
        _ if is_operator && args.len() == 2 => format!("({}) {} ({})", args[0], f.name, args[1]),
        _ if is_operator => format!("{}({})", f.name, args[0]),
        _ => format!("{}({})", f.name, args.join(", ")),
    }
}

/// The option names the API documentation lists for native `name`.
fn documented_options(name: &str) -> BTreeSet<String> {
    TABLE
        .iter()
        .filter(|d| d.natives.contains(&name))
        .flat_map(|d| (d.shown)().into_iter().map(|s| s.name))
        .collect()
}

/// `base` with field `key` of the map it evaluates to (or of its first element, for an array
/// of maps) set to `value`, or removed where `value` is `None`.
fn with_field(base: &str, at_first: bool, key: &str, value: Option<&str>) -> String {
    let target = if at_first { "v[0]" } else { "v" };
    let key = format!("{key:?}");
    match value {
        Some(value) => format!("{{ let v = {base}; {target}[{key}] = {value}; v }}"),
        None => format!("{{ let v = {base}; {target}.remove({key}); v }}"),
    }
}

/// Every variation of the valid call `args` of `f`: one argument wrong at a time.
fn variations(f: &FunctionApi, args: &[&str], engine: &Engine, scope: &Scope) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut push = |i: usize, arg: String| {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all[i] = arg;
        calls.push(Call {
            signature: f.signature.clone(),
            source: call_source(f, &all),
        });
    };
    for (i, param) in f.params.iter().enumerate() {
        if f.name.starts_with("get$") {
            break; // a property of a wrong type is not a call rhai can make
        }
        for value in wrong_values(&param.ty) {
            push(i, value.to_string());
        }
        // Fields of the map (or of the first map of the array) the valid call passes.
        let valid = engine
            .eval_with_scope::<Dynamic>(&mut scope.clone(), args[i])
            .unwrap_or_else(|e| panic!("{}: argument {} = {}: {e}", f.signature, i + 1, args[i]));
        let (map, at_first) = match valid.clone().try_cast::<rhai::Array>() {
            Some(items) => match items
                .first()
                .and_then(|x| x.clone().try_cast::<rhai::Map>())
            {
                Some(first) => (Some(first), true),
                None => (None, false),
            },
            None => (valid.try_cast::<rhai::Map>(), false),
        };
        let Some(map) = map else { continue };
        let mut keys: BTreeSet<String> = map.keys().map(|k| k.to_string()).collect();
        // Options get every documented option (records' fields are only the given ones).
        if ["options", "config", "fields"].contains(&param.name.as_str()) {
            keys.extend(documented_options(&f.name));
        }
        for key in keys {
            if map.contains_key(key.as_str()) {
                push(i, with_field(args[i], at_first, &key, None));
            }
            for value in FIELD_VALUES {
                push(i, with_field(args[i], at_first, &key, Some(value)));
            }
            // A nested map's fields (`lora` of the training options).
            if let Some(inner) = map
                .get(key.as_str())
                .and_then(|v| v.clone().try_cast::<rhai::Map>())
            {
                let nested = format!("{}[{key:?}]", if at_first { "v[0]" } else { "v" });
                for inner_key in inner.keys() {
                    for value in FIELD_VALUES {
                        push(
                            i,
                            format!(
                                "{{ let v = {}; {nested}[{:?}] = {value}; v }}",
                                args[i],
                                inner_key.as_str()
                            ),
                        );
                    }
                }
            }
        }
    }
    calls
}

/// How a call ended: its value's type, or the error a user would read.
enum Outcome {
    Value,
    Error(String),
    Panic(String),
}

/// Call `source` in a copy of `scope` where `CALL` is `number`.
fn run_call(engine: &Engine, scope: &Scope, number: usize, source: &str) -> Outcome {
    let mut scope = scope.clone();
    scope.push("CALL", number as i64);
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        engine.eval_with_scope::<Dynamic>(&mut scope, source)
    }));
    match result {
        Ok(Ok(_)) => Outcome::Value,
        Ok(Err(e)) => Outcome::Error(e.to_string()),
        Err(payload) => Outcome::Panic(
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        ),
    }
}

/// An engine with [`PRELUDE`] run in its scope, files in a temporary folder of its own.
struct Setup {
    engine: Engine,
    scope: Scope<'static>,
    tmp: tempfile::TempDir,
    _vllm: common::remote::Server,
}

fn setup() -> Setup {
    tch::set_num_threads(1);
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let tmp = tempfile::tempdir().unwrap();
    let target = RunTarget {
        dir: tmp.path().join("current-run"),
        script: "bad-values.rhai".into(),
        args: vec![],
        reuse: vec![],
    };
    let engine = build_engine(ScriptContext::with_run(vec![], target));
    let mut scope = Scope::new();
    scope.push("FIX", fixtures.to_string());
    scope.push("TMP", tmp.path().display().to_string());
    scope.push("CALL", 0_i64);
    // A vLLM-like server on loopback: the remote model of `model_remote`.
    let vllm = common::remote::Server::vllm();
    scope.push("VLLM", vllm.spec());
    engine
        .run_with_scope(&mut scope, PRELUDE)
        .unwrap_or_else(|e| panic!("the prelude fails: {e}"));
    Setup {
        engine,
        scope,
        tmp,
        _vllm: vllm,
    }
}

/// A budget far beyond what a row uses: the KV cache grows with the rows, so generation
/// ends at EOS as usual instead of asking for 2^40 positions up front.
#[test]
fn a_huge_budget_reserves_no_memory_up_front() {
    let Setup {
        engine,
        scope,
        tmp: _tmp,
        _vllm,
    } = setup();
    // Greedily, the fixture ends this prompt with EOS after 105 tokens.
    let out: rhai::Map = engine
        .eval_with_scope(
            &mut scope.clone(),
            "m.generate([\"Options:\"], #{max_new_tokens: 1099511627776})[0]",
        )
        .unwrap();
    assert_eq!(out["finish"].to_string(), "eos");
    assert_eq!(out["ids"].clone().into_array().unwrap().len(), 105);
}

/// Wrong values of each kind the audit found, with what their error must say.
#[test]
fn errors_say_what_is_wrong() {
    // `_tmp` and `_vllm` live to the end of the test (`..` would drop them at once).
    let Setup {
        engine,
        scope,
        tmp: _tmp,
        _vllm,
    } = setup();
    let cases = [
        // A save replaces its folder: never one holding other files.
        ("m.save(TMP)", "holds files that are not a saved model"),
        (
            "set_threads(2000)",
            "2000 threads: need at least 1 and at most 1024",
        ),
        (
            "tensor([1.0]) * 1e308",
            "*: 1e308 does not fit a Float tensor",
        ),
        (
            "tensor([1.0]).clamp(0.0, 1e308)",
            "clamp: 1e308 does not fit",
        ),
        ("tensor([1.0]).mean(3)", "mean: Dimension out of range"),
        (
            "train(model_load(tiny), [rl], #{adam_beta1: 1.5})",
            "`adam_beta1` must be within [0, 1), got 1.5",
        ),
        (
            "train(model_load(tiny), [rl], #{out: \"\"})",
            "`out` is empty",
        ),
        (
            "train(model_load(tiny), [rl], #{out: || 1})",
            "train: option `out`: a closure is not data",
        ),
        (
            "train(model_load(tiny), [rl], #{objective: || 1})",
            "the objective closure takes the wrong number of parameters: write it as `|b| ...`",
        ),
        (
            "rlmec_loss(m, rl, #{clip_eps: 2.0})",
            "`clip_eps` must be within [0, 1), got 2.0",
        ),
        (
            "rlmec_loss(m, rl, #{reg_weight: -1.0})",
            "`reg_weight` must be a non-negative number, got -1.0",
        ),
        (
            "write_json(`${TMP}/x.json`, #{a: [1.0, 0.0 / 0.0]})",
            "x.json: NaN at `a[1]` is not a finite number",
        ),
        (
            "run.stage(\"s\", #{}, |x| x)",
            "stage `s`: the body takes the wrong number of parameters: write it as `|| ...`",
        ),
        (
            "m.generate([\"Q\"], #{batch_size: 0})",
            "batch_size must be at least 1",
        ),
        (
            "m.score_batch([\"Q\"], [\" a\"], #{batch_size: 0})",
            "batch_size must be at least 1",
        ),
        (
            "m.sample(\"math\", problems, #{n: 0})",
            "n must be at least 1",
        ),
        (
            "minimum_edit(\"reference\", \"math\", [edit], #{timeout_s: -1.0})",
            "`timeout_s` must be a number of seconds, above 0, got -1.0",
        ),
        (
            "minimum_edit(\"reference\", \"math\", [edit], #{concurrency: 0})",
            "`concurrency` must be at least 1",
        ),
        (
            "minimum_edit(\"arith\", \"math\", [#{problem: [1], solution: \"s\", prediction: \"p\"}])",
            "minimum_edit: sample 0: field `problem`: invalid type: sequence, expected a string",
        ),
        (
            "model_remote(VLLM, #{tokenizer: tiny, timeout_s: 1e308})",
            "option `timeout_s`: must be a number of seconds, above 0, got 1e308",
        ),
        ("run_open(\"\")", "the run folder's path is empty"),
        (
            "progress_bar(-1, \"x\")",
            "progress_bar: total -1 is negative",
        ),
        ("read_json(\"\")", "(an empty path): No such file"),
        (
            "minimum_edit(\"reference\", \"math\", [edit], #{teacher_price: 3})",
            "expected a map #{input, output} of dollars per million tokens",
        ),
        (
            "m.sample(\"math\", problems, #{n: 1000000000000000})",
            "samples for each of 1 problems do not fit in memory",
        ),
        // Weights no memory holds: the embedding alone would be 1.3e15 bytes.
        (
            "model_new(#{vocab_size: 300, hidden_size: 1099511627776, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2}, [\"1 + 1 = 2\"])",
            "the CPU ran out of memory",
        ),
    ];
    for (call, expected) in cases {
        let err = match engine.eval_with_scope::<Dynamic>(&mut scope.clone(), call) {
            Ok(_) => panic!("{call}: accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(expected),
            "{call}:\n  {err}\n  should say: {expected}"
        );
        assert!(!INTERNALS.iter().any(|i| err.contains(i)), "{call}: {err}");
    }
}

#[test]
fn every_native_answers_wrong_values_with_a_readable_error() {
    let Setup {
        engine,
        scope,
        tmp,
        _vllm,
    } = setup();
    // Relative paths among the wrong values ("../outside" too) land in the temporary folder
    // (the other tests of this binary, running beside it, use absolute paths only).
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::env::set_current_dir(&work).unwrap();

    let functions: Vec<FunctionApi> = api().into_iter().flat_map(|d| d.functions).collect();
    let missing: Vec<&str> = (functions.iter())
        .map(|f| f.signature.as_str())
        .filter(|s| !VALID_CALLS.iter().any(|(sig, _)| sig == s))
        .filter(|s| !FAILING_CALLS.iter().any(|(sig, _)| sig == s))
        .collect();
    assert!(
        missing.is_empty(),
        "natives without a valid call in VALID_CALLS: {missing:#?}"
    );

    // A hang is reported with the call that hangs (the test cannot stop a native function).
    let current: Arc<Mutex<Option<(String, Instant)>>> = Arc::default();
    let watched = current.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let now = watched.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((source, since)) = now.as_ref()
                && since.elapsed() > HANG
            {
                // Past the test harness's capture of `eprintln!`, which exiting would lose.
                let line = format!("hangs (over {HANG:?}): {source}\n");
                let _ = std::io::stderr().write_all(line.as_bytes());
                std::process::exit(101);
            }
        }
    });

    let log_path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/bad-values.txt");
    let mut log = std::io::BufWriter::new(std::fs::File::create(log_path).unwrap());
    let mut failures = Vec::new();
    let mut slowest: Vec<(Duration, String)> = Vec::new();
    let (mut calls_made, mut errors) = (0, 0);
    let entries =
        (VALID_CALLS.iter().map(|c| (c, true))).chain(FAILING_CALLS.iter().map(|c| (c, false)));
    for ((signature, args), succeeds) in entries {
        let Some(f) = functions.iter().find(|f| f.signature == *signature) else {
            panic!("{signature}: no such native (renamed?)");
        };
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let valid = Call {
            signature: f.signature.clone(),
            source: call_source(f, &args),
        };
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let calls = std::iter::once(valid).chain(variations(f, &arg_refs, &engine, &scope));
        for (n, call) in calls.enumerate() {
            *current.lock().unwrap() = Some((call.source.clone(), Instant::now()));
            let started = Instant::now();
            let outcome = run_call(&engine, &scope, calls_made, &call.source);
            slowest.push((started.elapsed(), call.source.clone()));
            *current.lock().unwrap() = None;
            calls_made += 1;
            match outcome {
                Outcome::Value if n == 0 && !succeeds => failures.push(format!(
                    "{}: expected to fail here: {}",
                    call.signature, call.source
                )),
                Outcome::Value if n > 0 => {
                    writeln!(log, "{}\n  {}\n  -> accepted", call.signature, call.source).unwrap()
                }
                Outcome::Value => {}
                Outcome::Error(e) if n == 0 && succeeds => failures.push(format!(
                    "{}: the valid call fails: {}\n  {e}",
                    call.signature, call.source
                )),
                Outcome::Error(e) => {
                    errors += 1;
                    writeln!(
                        log,
                        "{}\n  {}\n  -> {}",
                        call.signature,
                        call.source,
                        e.replace('\n', "\n     ")
                    )
                    .unwrap();
                    if let Some(internal) = INTERNALS.iter().find(|p| e.contains(**p)) {
                        failures.push(format!(
                            "{}: {}\n  shows {internal:?}: {e}",
                            call.signature, call.source
                        ));
                    }
                }
                Outcome::Panic(p) => failures.push(format!(
                    "{}: {}\n  panics: {p}",
                    call.signature, call.source
                )),
            }
        }
    }
    log.flush().unwrap();
    slowest.sort_by_key(|(took, _)| std::cmp::Reverse(*took));
    eprintln!("{calls_made} calls, {errors} errors (in {log_path}); slowest:");
    for (took, source) in slowest.iter().take(5) {
        eprintln!("  {took:.2?}  {source}");
    }
    assert!(calls_made > 2000, "only {calls_made} calls");
    let failures: Vec<String> = (failures.iter())
        .map(|f| f.chars().take(400).collect())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {calls_made} calls fail badly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
