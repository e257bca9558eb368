//! What the engine seam costs: step 1's sampling through llama.cpp's server by rlmec's
//! remote engine, against the same requests sent by the server's own kind of client, and
//! natively, in one run: `make bench-engine`.
//!
//! The work: the first 16 ECQA test problems in the policy prompt (corrected fidelity), 4
//! samples each, temperature 0.7, top-p 0.95, at most 48 new tokens, stopped at
//! `STOP_MARKERS`, seed 7 — the requests and options `tasks::sample::sample` builds, given
//! to `Engine::generate` (whose `Generation`s hold the ids the token counts need; `sample`
//! keeps only texts). 48 tokens keep the bench near 10 minutes on 2 busy cores (the server
//! makes ~35 tokens/s there, with one thread or two); a short answer is the seam's worst
//! case, its cost being per request.
//!
//! The embedded default is loaded natively and saved with `save_gguf` as F32 in a temporary
//! folder; one llama-cpp-python server (`.deps/llama-venv`, `make llama-setup`) serves that
//! file with as many threads (`--n_threads`, `--n_threads_batch`) as torch gets natively.
//! Three paths, each timed `RLMEC_BENCH_REPEATS` times after a warm-up on the first
//! problem (the median run is reported):
//!
//! - **native**: `Engine::generate` on the loaded model, all 64 requests in one call
//!   (batches of 16, as `sample`).
//! - **engine path**: `Engine::generate` on a `RemoteModel` connected to the server — a
//!   fresh one each run (connecting, untimed, probes the server), so its in-memory request
//!   cache is empty and every request is sent.
//! - **own client**: the bodies the engine sends (built with its `plan` and
//!   `generation_body`, the same seeds) posted by `benches/peer_openai_client.py` with
//!   urllib, at the same concurrency (`RLMEC_BENCH_CONCURRENCY`, default 1: the server
//!   answers one request at a time, so more only queues; docs/engines.md).
//!
//! The two server paths take turns problem by problem (one `generate` call per problem, so
//! the engine pays its per-call cost 16 times), the first of each pair alternating, so the
//! load other processes put on the machine falls on both alike. Before each turn an
//! untimed one-token request for an unrelated prompt clears the server's reuse of the last
//! prompt's KV cache: otherwise whichever path went second would find its prompt already
//! evaluated.
//!
//! The engine asks for no log-probabilities here (`RemoteOptions::logprobs` false:
//! sampling keeps none): llama-cpp-python computes them in Python over the whole
//! vocabulary, 2.7x slower on this work, which would take the bench to ~25 minutes.
//! `RLMEC_BENCH_LOGPROBS=1` sends the engine's default bodies, which ask for them.
//!
//! Tokens are counted as the server counts them (`usage.completion_tokens`: no EOS, the
//! token that completed a stop string included) for both server paths: the engine returns
//! texts and our ids, not the server's count, so each of its turns is credited with the
//! paired own-client turn's count, and the bench reports how many of the 64 texts the two
//! got alike. Natively they are the generated ids without the EOS (the tokens of a stop
//! string included, as the server counts them).
//!
//! Environment: as every bench (`benches/common`), plus `RLMEC_BENCH_CONCURRENCY` and
//! `RLMEC_BENCH_LOGPROBS`; `RLMEC_BENCH_PYTHON` runs the peer (default the llama venv's
//! python: the peer needs only the standard library).

mod common;

use std::cell::Cell;
use std::path::Path;
use std::time::Instant;

use common::{MODEL, Settings, cpu_model, median, run_peer};
use rlmec::engine::Engine;
use rlmec::engine::remote::completions::{Ask, generation_body};
use rlmec::engine::remote::generate::plan;
use rlmec::engine::remote::{RemoteModel, RemoteOptions};
use rlmec::generate::sampler::SamplingParams;
use rlmec::generate::{Finish, GenerateOptions, Generation, Request};
use rlmec::model::to_gguf::{GgufDtype, GgufOptions};
use rlmec::model::{LoadOptions, Model};
use rlmec::serve::{ServeInputs, ServeOptions, ServedModel, Template};
use rlmec::tasks::load::{FieldMap, load};
use rlmec::tasks::prompt::policy_prompt;
use rlmec::tasks::sample::STOP_MARKERS;
use rlmec::tasks::{Fidelity, TaskKind};
use serde_json::{Value, json};

const LLAMA_PYTHON: &str = ".deps/llama-venv/bin/python";
const PEER: &str = "benches/peer_openai_client.py";
const PROBLEMS: usize = 16;
const SAMPLES: usize = 4;
const MAX_NEW_TOKENS: usize = 48;
const SEED: u64 = 7;

/// Each problem's policy prompt `SAMPLES` times in a row, as `sample` asks.
fn requests(model: &Model) -> Vec<Request> {
    let problems = load(Path::new("data/qa/ecqa/test.jsonl"), &FieldMap::default())
        .expect("data/qa/ecqa/test.jsonl");
    problems[..PROBLEMS]
        .iter()
        .flat_map(|p| {
            let text = policy_prompt(TaskKind::Qa, &p.problem, Fidelity::Corrected);
            let prompt = model.tokenizer.encode(&text).unwrap();
            (0..SAMPLES).map(move |_| Request {
                prompt: prompt.clone(),
                max_new_tokens: MAX_NEW_TOKENS,
            })
        })
        .collect()
}

/// Step 1's options (`SampleOptions`' defaults) with this bench's seed.
fn options() -> GenerateOptions {
    GenerateOptions {
        sampling: SamplingParams {
            temperature: 0.7,
            top_p: 0.95,
            top_k: 0,
        },
        min_new_tokens: 0,
        stop: STOP_MARKERS.iter().map(|s| s.to_string()).collect(),
        seed: SEED,
        batch_size: 16,
    }
}

/// The `/v1/completions` bodies `remote` sends for `requests`, in the order it sends them:
/// its own plan (one request per sample on llama.cpp, which ignores `n`) and bodies.
fn bodies(
    remote: &RemoteModel,
    served: &str,
    requests: &[Request],
    opts: &GenerateOptions,
) -> Vec<Value> {
    let tokenizer = remote.tokenizer();
    let features = remote.features();
    plan(requests, opts.sampling.is_greedy(), features.n, opts.seed)
        .iter()
        .map(|p| {
            let request = &requests[p.first()];
            let prompt = tokenizer.decode(&request.prompt).unwrap();
            let ask = Ask {
                prompt: &prompt,
                max_tokens: request.max_new_tokens,
                n: p.n,
                seed: p.seed,
            };
            generation_body(
                served,
                &ask,
                opts,
                tokenizer.vocab_size(),
                features.logprobs,
            )
        })
        .collect()
}

/// Generated tokens as the server counts them: without the EOS.
fn tokens_without_eos(generations: &[Generation]) -> usize {
    generations
        .iter()
        .map(|g| g.ids.len() - usize::from(g.finish == Finish::Eos))
        .sum()
}

/// The seconds `f` took, and what it returned.
fn timed<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed().as_secs_f64(), out)
}

/// One run of the peer over `bodies`: its seconds, completion tokens and texts.
fn own_client(settings: &Settings, url: &str, bodies: &[Value], concurrency: usize) -> Value {
    let input = json!({"url": url, "bodies": bodies, "concurrency": concurrency});
    let out = run_peer(settings, PEER, "engine", &input)
        .expect("the own-client peer must run: it counts the server's tokens for both paths");
    out["runs"][0].clone()
}

/// Untimed one-token requests for prompts that share nothing with the policy prompt, so
/// that every timed turn starts with none of its prompt in the server's KV cache.
struct Reset {
    sent: Cell<usize>,
    greedy: GenerateOptions,
}

impl Reset {
    fn new() -> Self {
        Self {
            sent: Cell::new(0),
            greedy: GenerateOptions {
                sampling: SamplingParams::greedy(),
                ..GenerateOptions::default()
            },
        }
    }

    /// One request through `remote`; each prompt is new, so its request cache never
    /// answers in the server's place.
    fn send(&self, remote: &RemoteModel) {
        let n = self.sent.get();
        self.sent.set(n + 1);
        let prompt = remote.tokenizer().encode(&format!("{n}")).unwrap();
        let request = Request {
            prompt,
            max_new_tokens: 1,
        };
        drop(remote.generate(&[request], &self.greedy).unwrap());
    }
}

/// One path's runs: tokens and seconds per run.
#[derive(Default)]
struct Runs {
    tokens: Vec<f64>,
    seconds: Vec<f64>,
}

impl Runs {
    fn push(&mut self, tokens: f64, seconds: f64) {
        self.tokens.push(tokens);
        self.seconds.push(seconds);
    }

    fn rates(&self) -> Vec<f64> {
        self.tokens
            .iter()
            .zip(&self.seconds)
            .map(|(t, s)| t / s)
            .collect()
    }

    fn rate(&self) -> f64 {
        median(self.rates())
    }

    /// Each run's tokens/s over `other`'s run of the same index.
    fn over(&self, other: &Runs) -> Vec<f64> {
        self.rates()
            .iter()
            .zip(other.rates())
            .map(|(a, b)| a / b)
            .collect()
    }

    fn row(&self, label: &str) -> String {
        format!(
            "| {label} | {:.0} | {:.1} | **{:.1}** ({}) |",
            median(self.tokens.clone()),
            median(self.seconds.clone()),
            self.rate(),
            listed(&self.rates(), 1)
        )
    }

    fn json(&self) -> Value {
        json!({"tokens": self.tokens, "seconds": self.seconds, "tokens_per_s": self.rate()})
    }
}

/// `xs` with `digits` decimals, comma-separated.
fn listed(xs: &[f64], digits: usize) -> String {
    let each: Vec<String> = xs.iter().map(|x| format!("{x:.digits$}")).collect();
    each.join(", ")
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let python = std::env::var("RLMEC_BENCH_PYTHON").unwrap_or_else(|_| LLAMA_PYTHON.into());
    let settings = Settings {
        python,
        ..Settings::from_env()
    };
    // The peer runs once per turn.
    let once = Settings {
        repeats: 1,
        ..settings.clone()
    };
    let concurrency: usize = env_or("RLMEC_BENCH_CONCURRENCY", 1);
    let logprobs = env_or("RLMEC_BENCH_LOGPROBS", 0) == 1;
    let (repeats, threads) = (settings.repeats.max(1), settings.threads);
    assert!(
        Path::new(LLAMA_PYTHON).exists(),
        "{LLAMA_PYTHON} is missing: `make llama-setup` builds it"
    );

    let model = Model::load(
        Path::new(MODEL),
        LoadOptions {
            dtype: settings.dtype,
            pack: settings.pack,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let requests = requests(&model);
    let opts = options();
    std::fs::create_dir_all("target/bench").unwrap();
    let dir = tempfile::tempdir_in("target/bench").unwrap();
    let gguf = dir.path().join("smollm2-f32.gguf");
    model
        .save_gguf(
            &gguf,
            &GgufOptions {
                dtype: GgufDtype::F32,
            },
        )
        .unwrap();
    let template = Template::parse(&format!(
        "{LLAMA_PYTHON} -m llama_cpp.server --model {{model}} --host {{host}} --port {{port}} \
         --n_ctx 2048 --n_threads {threads} --n_threads_batch {threads} --seed 0 --verbose false"
    ))
    .unwrap();
    let server = ServedModel::start(
        &template,
        ServeInputs {
            model: gguf.clone(),
            name: "rlmec".into(),
            gguf: None,
            log: dir.path().join("serve.log"),
        },
        &ServeOptions::default(),
    )
    .unwrap();
    let served = server.model_id().unwrap_or("rlmec").to_string();
    let url = server.base_url();
    let spec = format!("openai:{served}@{url}");
    let remote_opts = RemoteOptions {
        tokenizer: Some(gguf),
        concurrency,
        logprobs,
        ..RemoteOptions::default()
    };
    let connect = || RemoteModel::connect(&spec, &remote_opts).unwrap();
    let reset = Reset::new();

    // The problems' turns: their requests and the bodies the engine sends for them.
    let remote = connect();
    let turns: Vec<(&[Request], Vec<Value>)> = requests
        .chunks(SAMPLES)
        .map(|chunk| (chunk, bodies(&remote, &served, chunk, &opts)))
        .collect();
    let engine_turn = |remote: &RemoteModel, chunk: &[Request]| {
        reset.send(remote);
        timed(|| remote.generate(chunk, &opts).unwrap())
    };
    let own_turn = |remote: &RemoteModel, bodies: &[Value]| {
        reset.send(remote);
        own_client(&once, &url, bodies, concurrency)
    };

    eprintln!("warm-up on the first problem: native, engine path, own client");
    drop(model.generate(turns[0].0, &opts).unwrap());
    drop(engine_turn(&remote, turns[0].0));
    own_turn(&remote, &turns[0].1);
    drop(remote);

    let (mut native, mut engine, mut own) = (Runs::default(), Runs::default(), Runs::default());
    let mut same_texts = Vec::new();
    // Each run's (engine path, own client) seconds per problem, for a look at the scatter.
    let mut turn_seconds = Vec::new();
    let bar = rlmec::progress::bar((repeats * turns.len()) as u64, "engine bench");
    for run in 1..=repeats {
        let (seconds, generations) = timed(|| model.generate(&requests, &opts).unwrap());
        native.push(tokens_without_eos(&generations) as f64, seconds);

        let remote = connect();
        let (mut engine_s, mut own_s, mut tokens, mut same) = (0.0, 0.0, 0.0, 0);
        for (k, (chunk, bodies)) in turns.iter().enumerate() {
            // Who goes first alternates: neither path always follows the other.
            let ((seconds, generations), peer) = if k % 2 == 0 {
                let e = engine_turn(&remote, chunk);
                (e, own_turn(&remote, bodies))
            } else {
                let p = own_turn(&remote, bodies);
                (engine_turn(&remote, chunk), p)
            };
            let peer_s = peer["seconds"].as_f64().unwrap();
            engine_s += seconds;
            own_s += peer_s;
            turn_seconds.push([seconds, peer_s]);
            tokens += peer["completion_tokens"].as_f64().unwrap();
            same += peer["texts"]
                .as_array()
                .unwrap()
                .iter()
                .zip(&generations)
                .filter(|(text, g)| text.as_str() == Some(g.text.as_str()))
                .count();
            bar.inc(1);
        }
        eprintln!(
            "run {run}: native {:.1} s, engine path {engine_s:.1} s, own client {own_s:.1} s \
             ({tokens} tokens, {same} of {} texts alike)",
            native.seconds[run - 1],
            requests.len()
        );
        engine.push(tokens, engine_s);
        own.push(tokens, own_s);
        same_texts.push(same);
    }
    bar.finish_and_clear();
    drop(server);

    let seam = median(engine.over(&own));
    let vs_native = median(engine.over(&native));
    let cpu = cpu_model();
    println!(
        "\nSmolLM2-135M-Instruct, {} natively, F32 GGUF served by llama-cpp-python; \
         {PROBLEMS} ECQA problems x {SAMPLES} samples, <= {MAX_NEW_TOKENS} new tokens, \
         temperature 0.7, top-p 0.95, seed {SEED}; {threads} threads each side; \
         concurrency {concurrency}; log-probabilities {}; {cpu} (medians of {repeats})\n",
        settings.dtype.hf_name(),
        if logprobs { "asked" } else { "not asked" },
    );
    println!("| path | tokens | seconds | tokens/s (per run) |");
    println!("| --- | --- | --- | --- |");
    println!("{}", native.row("native (`generate`, batches of 16)"));
    println!(
        "{}",
        engine.row("engine path (`RemoteModel`, llama.cpp server)")
    );
    println!(
        "{}",
        own.row("server's own client (urllib, the same bodies)")
    );
    println!(
        "\nengine path / own client: **{seam:.3}x** (per run: {}): the seam adds {:+.1}% to the time",
        listed(&engine.over(&own), 3),
        (1.0 / seam - 1.0) * 100.0
    );
    println!(
        "engine path / native: **{vs_native:.2}x** (per run: {})",
        listed(&engine.over(&native), 2)
    );
    println!(
        "texts alike on both server paths, per run: {same_texts:?} of {}",
        requests.len()
    );
    let out = json!({
        "cpu": cpu,
        "threads": threads,
        "concurrency": concurrency,
        "logprobs": logprobs,
        "max_new_tokens": MAX_NEW_TOKENS,
        "native": native.json(),
        "engine_path": engine.json(),
        "own_client": own.json(),
        "engine_over_own_client": seam,
        "engine_over_native": vs_native,
        "same_texts": same_texts,
        "turn_seconds": turn_seconds.chunks(turns.len()).collect::<Vec<_>>(),
    });
    std::fs::write(
        "target/bench/engine.json",
        serde_json::to_string_pretty(&out).unwrap(),
    )
    .unwrap();
}
