//! A real inference server behind the engine seam: llama.cpp's server (llama-cpp-python,
//! built by `make test` into `.deps/llama-venv` for a portable x86-64 target) serving the
//! embedded default saved by `save_gguf` as F32, on a loopback port.
//!
//! - Greedy evaluation of 10 ECQA test problems through the server gives the native
//!   engine's tokens.
//! - `qa_full` with `engine=openai` runs every generation step through servers it starts
//!   from the `serve` template (the models it trains saved as GGUF on demand), and leaves no
//!   server behind.
//!
//! Without the venv or the default model the tests are skipped with the reason (they fail
//! under CI, where `make test` provides both).

mod common;

use std::path::{Path, PathBuf};

use common::cli::{rlmec_command, stderr, stdout};
use common::tiny::{TINY, sets};
use rlmec::engine::Engine;
use rlmec::engine::remote::RemoteOptions;
use rlmec::engine::served::{ServeModelOptions, serve};
use rlmec::generate::{GenerateOptions, Request};
use rlmec::model::to_gguf::GgufOptions;
use rlmec::model::{LoadOptions, Model};
use rlmec::serve::ServeOptions;
use rlmec::tasks::load::{FieldMap, load};
use rlmec::tasks::prompt::policy_prompt;
use rlmec::tasks::sample::STOP_MARKERS;
use rlmec::tasks::{Fidelity, TaskKind};
use rlmec::testing::input_present;

const DEFAULT_MODEL: &str = "data/models/SmolLM2-135M-Instruct.Q4_1.gguf";
const VENV_PYTHON: &str = ".deps/llama-venv/bin/python";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The server command as a user writes it in `serve`: one thread, a context that holds a
/// prompt and its answer, plain greedy decoding unless a request says otherwise.
fn llama_cpp_template() -> String {
    format!(
        "{} -m llama_cpp.server --model {{gguf}} --host {{host}} --port {{port}} --n_ctx 2048 --n_threads 1",
        repo(VENV_PYTHON).display()
    )
}

fn inputs_present() -> bool {
    input_present(&repo(DEFAULT_MODEL), "make setup unpacks it")
        && input_present(&repo(VENV_PYTHON), "make test builds it (make llama-setup)")
}

/// Where two greedy continuations part, the native model's log-probabilities of the two
/// tokens chosen there: equal up to float error means a near-tie that a different
/// summation order may break either way.
fn near_tie(model: &Model, prompt: &[i64], native: &[i64], served: &[i64]) -> Option<f32> {
    let at = native.iter().zip(served).position(|(a, b)| a != b)?;
    let mut context = prompt.to_vec();
    context.extend(&native[..at]);
    let lp = model
        .score(
            &[
                (context.clone(), vec![native[at]]),
                (context, vec![served[at]]),
            ],
            2,
        )
        .unwrap();
    Some((lp[0][0] - lp[1][0]).abs())
}

#[test]
fn greedy_evaluation_through_llama_cpp_gives_the_native_tokens() {
    if !inputs_present() {
        return;
    }
    tch::set_num_threads(1);
    let model = Model::load(&repo(DEFAULT_MODEL), LoadOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("smollm2-f32.gguf");
    model.save_gguf(&gguf, &GgufOptions::default()).unwrap();

    let problems = load(&repo("data/qa/ecqa/test.jsonl"), &FieldMap::default()).unwrap();
    let requests: Vec<Request> = problems[..10]
        .iter()
        .map(|p| Request {
            prompt: model
                .tokenizer
                .encode(&policy_prompt(
                    TaskKind::Qa,
                    &p.problem,
                    Fidelity::Corrected,
                ))
                .unwrap(),
            max_new_tokens: 48,
        })
        .collect();
    let opts = GenerateOptions {
        stop: STOP_MARKERS.iter().map(|s| s.to_string()).collect(),
        ..GenerateOptions::default()
    };
    let native = model.generate(&requests, &opts).unwrap();

    let served = serve(
        &gguf,
        &ServeModelOptions {
            serve: llama_cpp_template(),
            log: Some(dir.path().join("serve.log")),
            ..ServeModelOptions::default()
        },
        &ServeOptions::default(),
        RemoteOptions {
            concurrency: 2,
            ..RemoteOptions::default()
        },
    )
    .unwrap();
    let remote = served.generate(&requests, &opts).unwrap();
    drop(served);

    let mut identical = 0;
    for (i, (n, r)) in native.iter().zip(&remote).enumerate() {
        // A stop string: the server cuts it, with the tokens that completed it; compare the
        // tokens of what both kept.
        let (n_ids, r_ids) = (
            model.tokenizer.encode(&n.text).unwrap(),
            model.tokenizer.encode(&r.text).unwrap(),
        );
        if n_ids == r_ids {
            identical += 1;
            continue;
        }
        let gap = near_tie(&model, &requests[i].prompt, &n_ids, &r_ids);
        assert!(
            gap.is_some_and(|g| g < 1e-3),
            "problem {i}: native {:?} vs server {:?} (gap {gap:?})",
            n.text,
            r.text
        );
    }
    eprintln!("{identical} of 10 greedy continuations identical, the rest parted at a near-tie");
    assert!(identical >= 8, "only {identical} of 10 identical");
}

/// The processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) && cmdline.contains("llama_cpp.server") {
                found.push(cmdline);
            }
        }
    }
    found
}

#[test]
fn qa_full_generates_through_servers_it_starts_and_stops() {
    if !inputs_present() {
        return;
    }
    let runs = tempfile::tempdir().unwrap();
    let out = runs.path().join("qa_engine");
    // The whole procedure in seconds (the synthetic task, a policy of a few thousand
    // parameters trained from scratch, which llama.cpp serves like any llama), every
    // generation step through a server.
    let mut args = vec![
        "scripts/qa_full.rhai".to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    args.extend(sets(TINY));
    args.extend(sets(&[
        "engine=openai",
        &format!("serve={}", llama_cpp_template()),
        "engine_options.startup_timeout_s=120",
    ]));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = rlmec_command(&args).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // The line a server's start logs (src/serve), seen here so that its absence below means
    // something.
    let started = |log: &str| {
        log.lines()
            .any(|l| l.contains("server ") && l.contains(" started: "))
    };
    assert!(started(&stderr(&o)), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("rlmec") && l.contains("synthetic")),
        "{table}"
    );

    // Every generation step went through a server the run started, with its log kept.
    for stage in ["samples", "grm_edits", "eval_start", "eval_rlmec"] {
        let log = out.join(stage).join("serve.log");
        let text =
            std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        assert!(
            text.contains("Uvicorn running"),
            "{}: {text}",
            log.display()
        );
        assert!(
            out.join(stage).join("requests.jsonl").exists(),
            "{stage}: no request cache"
        );
    }
    // Models the run trained (all of them here) were saved as GGUF for the server.
    for stage in ["samples", "grm_edits", "eval_rlmec"] {
        assert!(out.join(stage).join("model.gguf").exists(), "{stage}");
    }
    let samples = std::fs::read_to_string(out.join("stages/samples.json")).unwrap();
    assert!(samples.contains("prediction"), "{samples}");
    assert!(
        processes_mentioning(&out.display().to_string()).is_empty(),
        "a server outlived the run"
    );

    // A rerun reuses every stage: no server starts.
    let o = rlmec_command(&args).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!started(&stderr(&o)), "{}", stderr(&o));
}
