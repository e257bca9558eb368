//! The remote engine against mock servers on loopback: request bodies, answers as
//! generations, `n` and seeds, the cache, retries, failures mid-stage and their reruns, the
//! connection probes, and scoring from prompt log-probabilities.

mod common;

use std::time::{Duration, Instant};

use common::remote::{
    MODEL, Server, body, dropping_server, llama_cpp_completion, options, tokenizer, tokenizer_path,
};
use rlmec::engine::Engine;
use rlmec::engine::remote::{RemoteModel, RemoteOptions};
use rlmec::generate::sampler::SamplingParams;
use rlmec::generate::{Finish, GenerateOptions, Request};
use serde_json::json;
use wiremock::matchers::{body_partial_json, body_string_contains, method, path};
use wiremock::{Mock, Request as Received, ResponseTemplate};

fn request(text: &str, budget: usize) -> Request {
    Request {
        prompt: tokenizer().encode(text).unwrap(),
        max_new_tokens: budget,
    }
}

fn sampled(seed: u64) -> GenerateOptions {
    GenerateOptions {
        sampling: SamplingParams {
            temperature: 0.8,
            top_p: 0.9,
            top_k: 20,
        },
        seed,
        ..GenerateOptions::default()
    }
}

#[test]
fn a_request_carries_the_prompt_text_and_every_option() {
    let s = Server::vllm();
    let remote = s.connect(&options());
    let opts = GenerateOptions {
        min_new_tokens: 2,
        stop: vec!["\n\n".into()],
        ..sampled(3)
    };
    let prompt = "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n";
    remote.generate(&[request(prompt, 7)], &opts).unwrap();
    let sent = s.completions();
    assert_eq!(sent.len(), 1);
    let b = &sent[0];
    assert_eq!(b["model"], MODEL);
    assert_eq!(b["prompt"], prompt, "special tokens stay in the text");
    assert_eq!(b["max_tokens"], 7);
    assert_eq!(b["n"], 1);
    assert_eq!(
        (b["temperature"].as_f64(), b["top_p"].as_f64()),
        (Some(0.8), Some(0.9))
    );
    assert_eq!(b["top_k"], 20);
    assert_eq!(b["stop"], json!(["\n\n"]));
    assert_eq!(b["min_tokens"], 2);
    assert_eq!(b["logprobs"], 1);
    assert!(b["seed"].is_u64());
    assert_eq!(b["add_special_tokens"], false);
    // What switches llama.cpp's own sampling defaults off, and asks vLLM for its ids.
    assert_eq!(
        (b["min_p"].as_f64(), b["repeat_penalty"].as_f64()),
        (Some(0.0), Some(1.0))
    );
    assert_eq!(b["skip_special_tokens"], false);
    assert_eq!(b["return_token_ids"], true);
}

#[test]
fn answers_become_generations_like_native_ones() {
    let s = Server::start();
    let tok = tokenizer();
    let (stop_ids, eos_text) = (vec![300, 301], "The answer is 4");
    let eos_ids = tok.encode(eos_text).unwrap();
    let answer = json!({"choices": [
        // vLLM: its own ids (the stop string's tokens among them) and log-probabilities.
        {"index": 0, "text": " a", "finish_reason": "stop", "stop_reason": "\n\n",
         "token_ids": stop_ids, "logprobs": {"token_logprobs": [-0.25, -0.5]}},
    ]});
    let plain = json!({"choices": [
        // llama.cpp: only the text, ended by EOS.
        {"index": 0, "text": eos_text, "finish_reason": "stop", "logprobs": null},
    ]});
    s.mount_completions(move |r: &Received| {
        let prompt = body(r)["prompt"].as_str().unwrap_or("").to_string();
        let answer = if prompt.contains("first") {
            &answer
        } else {
            &plain
        };
        ResponseTemplate::new(200).set_body_json(answer.clone())
    });
    let remote = s.connect(&options());
    let outs = remote
        .generate(
            &[request("first", 5), request("second", 30)],
            &GenerateOptions::default(),
        )
        .unwrap();
    assert_eq!(outs[0].text, " a");
    assert_eq!(
        (outs[0].ids.clone(), outs[0].finish),
        (stop_ids, Finish::Stop)
    );
    assert_eq!(outs[0].logprobs, [-0.25, -0.5]);
    assert_eq!(outs[1].text, eos_text);
    assert_eq!(outs[1].finish, Finish::Eos);
    assert_eq!(outs[1].ids, [eos_ids, remote.eos().to_vec()].concat());
    assert!(outs[1].logprobs.is_empty());
}

#[test]
fn identical_requests_share_one_request_with_n_and_copies_get_their_own_seeds() {
    let asked = [
        request("same", 4),
        request("same", 4),
        request("same", 4),
        request("other", 4),
    ];
    // vLLM: one request with n = 3 for the run.
    let s = Server::vllm();
    let remote = s.connect(&options());
    assert!(remote.features().n);
    let outs = remote.generate(&asked, &sampled(9)).unwrap();
    // Requests travel concurrently: in any order.
    let mut sent = s.completions();
    sent.sort_by_key(|b| b["prompt"] != "same");
    let ns: Vec<u64> = sent.iter().map(|b| b["n"].as_u64().unwrap()).collect();
    assert_eq!(ns, [3, 1]);
    let seed = sent[0]["seed"].as_u64().unwrap();
    let texts: Vec<&str> = outs.iter().map(|g| g.text.as_str()).collect();
    assert_eq!(texts[..3], [0, 1, 2].map(|i| format!(" s{seed} c{i}")));
    assert_ne!(sent[1]["seed"], sent[0]["seed"]);

    // llama-cpp-python ignores n: one request per copy, each with its own seed.
    let s = Server::start();
    s.mount_completions(llama_cpp_completion);
    let remote = s.connect(&options());
    assert!(!remote.features().n);
    let outs = remote.generate(&asked, &sampled(9)).unwrap();
    let sent = s.completions();
    assert_eq!(sent.len(), 4);
    let seeds: std::collections::HashSet<u64> =
        sent.iter().map(|b| b["seed"].as_u64().unwrap()).collect();
    assert_eq!(seeds.len(), 4, "{sent:?}");
    assert_ne!(outs[0].text, outs[1].text);

    // Greedy: one request for the run, its completion copied.
    let s = Server::vllm();
    let remote = s.connect(&options());
    let outs = remote
        .generate(&asked, &GenerateOptions::default())
        .unwrap();
    let sent = s.completions();
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|b| b["n"] == 1 && b.get("seed").is_none()));
    assert_eq!(outs[0].ids, outs[2].ids);
}

#[test]
fn a_rerun_is_answered_from_the_cache_file_unless_the_identity_changed() {
    let dir = tempfile::tempdir().unwrap();
    let opts = RemoteOptions {
        cache: Some(dir.path().join("remote.jsonl")),
        identity: "trained-a".into(),
        ..options()
    };
    let asked = [request("one", 4), request("two", 4)];
    let s = Server::vllm();
    let first = s.connect(&opts).generate(&asked, &sampled(1)).unwrap();
    assert_eq!(s.completions().len(), 2);
    // A new engine on the same file: nothing sent, the same generations.
    let again = s.connect(&opts).generate(&asked, &sampled(1)).unwrap();
    assert_eq!(s.completions().len(), 2);
    let ids =
        |g: &[rlmec::generate::Generation]| g.iter().map(|g| g.ids.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&first), ids(&again));
    // A retrained model served under the same name is asked afresh.
    let retrained = RemoteOptions {
        identity: "trained-b".into(),
        ..opts
    };
    s.connect(&retrained).generate(&asked, &sampled(1)).unwrap();
    assert_eq!(s.completions().len(), 4);
}

#[test]
fn retries_429_after_retry_after_and_5xx_then_succeeds() {
    let s = Server::vllm();
    let remote = s.connect(&options());
    s.reset();
    s.fail_first([
        ResponseTemplate::new(429).insert_header("retry-after", "0.3"),
        ResponseTemplate::new(503),
    ]);
    s.mount_vllm_completions();
    let start = Instant::now();
    let outs = remote
        .generate(&[request("q", 3)], &GenerateOptions::default())
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "Retry-After honoured"
    );
    assert_eq!(outs[0].text, " s- c0");
    assert_eq!(s.completions().len(), 3);
}

/// What a server says is not trusted: a Retry-After no `Duration` holds is ignored (the
/// client's own backoff applies), not a panic.
#[test]
fn an_absurd_retry_after_is_ignored() {
    let s = Server::vllm();
    let remote = s.connect(&options());
    s.reset();
    s.fail_first(
        ["-1", "1e308", "NaN"]
            .map(|wait| ResponseTemplate::new(429).insert_header("retry-after", wait)),
    );
    s.mount_vllm_completions();
    let outs = remote
        .generate(&[request("q", 3)], &GenerateOptions::default())
        .unwrap();
    assert_eq!(outs[0].text, " s- c0");
    assert_eq!(s.completions().len(), 4);
}

#[test]
fn malformed_json_fails_clearly_and_a_rerun_asks_only_for_it() {
    let s = Server::vllm();
    let remote = s.connect(&options());
    s.reset();
    s.mount(
        Mock::given(method("POST"))
            .and(body_string_contains("broken"))
            .respond_with(ResponseTemplate::new(200).set_body_string("{\"choices\": [")),
    );
    s.mount_vllm_completions();
    let asked = [
        request("fine", 3),
        request("broken", 3),
        request("also fine", 3),
    ];
    let err = remote
        .generate(&asked, &GenerateOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("malformed JSON") && err.contains("1 of 3 requests unanswered"),
        "{err}"
    );
    s.reset();
    s.mount_vllm_completions();
    let outs = remote
        .generate(&asked, &GenerateOptions::default())
        .unwrap();
    assert_eq!(outs.len(), 3);
    let sent = s.completions();
    assert_eq!(sent.len(), 1);
    assert!(sent[0]["prompt"].as_str().unwrap().contains("broken"));
}

#[test]
fn dropped_connections_fail_the_stage_and_a_rerun_elsewhere_sends_only_the_missing() {
    let dir = tempfile::tempdir().unwrap();
    let opts = RemoteOptions {
        cache: Some(dir.path().join("remote.jsonl")),
        retries: 1,
        ..options()
    };
    let asked: Vec<Request> = ["keep 0", "drop 1", "keep 2", "drop 3", "keep 4"]
        .iter()
        .map(|t| request(t, 3))
        .collect();
    let flaky =
        RemoteModel::connect(&format!("openai:{MODEL}@{}", dropping_server()), &opts).unwrap();
    let err = flaky
        .generate(&asked, &GenerateOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("connection failed") && err.contains("2 of 5 requests unanswered"),
        "{err}"
    );
    // The stage resumes against a healthy server (another port): only the two are sent.
    let s = Server::vllm();
    let outs = s
        .connect(&opts)
        .generate(&asked, &GenerateOptions::default())
        .unwrap();
    let sent: Vec<String> = s
        .completions()
        .iter()
        .map(|b| b["prompt"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|p| p.contains("drop")), "{sent:?}");
    assert_eq!(outs[0].text, " ok");
    assert_eq!(outs[1].text, " s- c0");
}

#[test]
fn the_tokenizer_probe_accepts_matches_and_bos_and_refuses_mismatches() {
    let tok = tokenizer();
    let serve_tokens = |s: &Server, endpoint: &str, edit: fn(Vec<i64>) -> Vec<i64>| {
        let tok = tok.clone();
        s.mount(
            Mock::given(method("POST"))
                .and(path(endpoint.to_string()))
                .respond_with(move |r: &Received| {
                    let b = body(r);
                    // llama-cpp-python reads `input`.
                    let ids = tok.encode(b["input"].as_str().unwrap()).unwrap();
                    ResponseTemplate::new(200).set_body_json(json!({"tokens": edit(ids)}))
                }),
        );
        s.mount_completions(llama_cpp_completion);
    };
    // At /extras/tokenize (llama-cpp-python), with BOS first: accepted.
    let s = Server::start();
    serve_tokens(&s, "/extras/tokenize", |ids| [vec![1], ids].concat());
    assert!(RemoteModel::connect(&s.spec(), &options()).is_ok());

    // One token differs: refused, saying where and how to fix it.
    let s = Server::start();
    serve_tokens(&s, "/tokenize", |mut ids| {
        ids[3] += 1;
        ids
    });
    let err = RemoteModel::connect(&s.spec(), &options())
        .err()
        .unwrap()
        .to_string();
    for says in [
        "tokenizes differently",
        "first difference at token 3",
        "Question: 12",
        "check_tokenizer: false",
    ] {
        assert!(err.contains(says), "{says}: {err}");
    }
    let unchecked = RemoteOptions {
        check_tokenizer: false,
        ..options()
    };
    assert!(RemoteModel::connect(&s.spec(), &unchecked).is_ok());

    // No tokenize endpoint (404 everywhere): used unchecked.
    let s = Server::start();
    s.mount_completions(llama_cpp_completion);
    assert!(RemoteModel::connect(&s.spec(), &options()).is_ok());
}

#[test]
fn logprobs_refused_at_connection_are_turned_off() {
    let s = Server::start();
    s.mount(
        Mock::given(method("POST"))
            .and(path("/v1/completions"))
            .and(body_partial_json(json!({"logprobs": 1})))
            .respond_with(ResponseTemplate::new(500).set_body_json(json!({"error": {
                "message": "logprobs is not supported for models created with logits_all=False",
                "type": "internal_server_error"}})))
            .with_priority(1),
    );
    s.mount_completions(llama_cpp_completion);
    let remote = s.connect(&options());
    assert!(!remote.features().logprobs);
    let refused = s
        .received()
        .iter()
        .filter(|r| body(r)["logprobs"] == 1)
        .count();
    assert_eq!(refused, 1, "a refusal is an answer: not retried");
    let outs = remote
        .generate(&[request("q", 3)], &GenerateOptions::default())
        .unwrap();
    assert!(outs[0].logprobs.is_empty());
    assert!(s.completions()[0].get("logprobs").is_none());
}

#[test]
fn no_server_is_an_error_naming_the_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spec = format!("openai:{MODEL}@http://127.0.0.1:{port}");
    let err = RemoteModel::connect(&spec, &options())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains(&format!("http://127.0.0.1:{port}/v1/models")),
        "{err}"
    );
}

/// Prompt [5, 6], continuation [7, 8]: the sequence sent is [5, 6, 7, 8], and the
/// continuation's scores are the log-probabilities at positions 2 and 3. The mock server
/// gives token `id` the log-probability `-id / 4`: -1.75 and -2.
const PAIR: ([i64; 2], [i64; 2]) = ([5, 6], [7, 8]);

fn logprob(id: &serde_json::Value) -> f64 {
    -(id.as_i64().unwrap() as f64) / 4.0
}

/// vLLM's shape: per position, the actual token's entry (and a likelier one beside it).
fn vllm_prompt_logprobs(r: &Received) -> ResponseTemplate {
    let b = body(r);
    let positions: Vec<serde_json::Value> = b["prompt"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, id)| match i {
            0 => serde_json::Value::Null,
            _ => json!({
                id.to_string(): {"logprob": logprob(id), "rank": 2, "decoded_token": "x"},
                "99999": {"logprob": -0.01, "rank": 1, "decoded_token": "y"},
            }),
        })
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({"choices": [{"index": 0, "text": "!",
        "finish_reason": "length", "prompt_logprobs": positions}]}))
}

/// OpenAI's legacy shape: the echoed prompt's `token_logprobs`, then the generated token's.
fn echoed_logprobs(r: &Received) -> ResponseTemplate {
    let b = body(r);
    let ids = b["prompt"].as_array().unwrap();
    let mut lp: Vec<serde_json::Value> = ids.iter().map(|id| json!(logprob(id))).collect();
    lp[0] = serde_json::Value::Null;
    lp.push(json!(-0.75));
    ResponseTemplate::new(200).set_body_json(json!({"choices": [{"index": 0, "text": "!",
        "finish_reason": "length", "logprobs": {"token_logprobs": lp}}]}))
}

fn score_with(
    respond: impl Fn(&Received) -> ResponseTemplate + Send + Sync + 'static,
) -> (Server, Result<Vec<Vec<f32>>, String>) {
    let s = Server::vllm();
    let remote = s.connect(&options());
    s.reset();
    s.mount_completions(respond);
    let pairs = vec![(PAIR.0.to_vec(), PAIR.1.to_vec()), (vec![5], vec![])];
    let scored = remote.score(&pairs, 8).map_err(|e| e.to_string());
    (s, scored)
}

#[test]
fn scores_come_from_vllm_prompt_logprobs() {
    let (s, scored) = score_with(vllm_prompt_logprobs);
    assert_eq!(scored.unwrap(), [vec![-1.75, -2.0], vec![]]);
    let sent = s.completions();
    assert_eq!(sent.len(), 1, "an empty continuation needs no request");
    assert_eq!(sent[0]["prompt"], json!([5, 6, 7, 8]));
    assert_eq!(sent[0]["echo"], true);
    assert_eq!(sent[0]["prompt_logprobs"], 0);
    assert_eq!(sent[0]["max_tokens"], 1);
}

#[test]
fn scores_come_from_echoed_logprobs_otherwise() {
    let (_, scored) = score_with(echoed_logprobs);
    assert_eq!(scored.unwrap(), [vec![-1.75, -2.0], vec![]]);
}

#[test]
fn a_server_without_prompt_logprobs_cannot_score_and_is_asked_once() {
    let plain = |_: &Received| {
        ResponseTemplate::new(200).set_body_json(json!({"choices": [{"index": 0, "text": "!",
            "finish_reason": "length", "logprobs": null}]}))
    };
    let (s, scored) = score_with(plain);
    let err = scored.unwrap_err();
    assert!(
        err.contains("no prompt log-probabilities") && err.contains("model_load"),
        "{err}"
    );
    assert_eq!(s.received().len(), 1, "only the probe was sent");
    // llama.cpp's server refuses `echo` outright (llama-cpp-python answers 500 to token
    // ids): not retried.
    let (s, scored) = score_with(|_: &Received| {
        ResponseTemplate::new(500).set_body_string("Only no echo is supported")
    });
    let err = scored.unwrap_err();
    assert!(
        err.contains("HTTP 500") && err.contains("echo") && err.contains("model_load"),
        "{err}"
    );
    assert_eq!(s.received().len(), 1, "asked once");
}

#[test]
fn a_model_folder_or_gguf_gives_the_tokenizer_and_eos() {
    let (tok, special) = rlmec::model::tokenizer_of(&tokenizer_path()).unwrap();
    assert_eq!((special.bos, special.eos), (Some(1), vec![2]));
    assert_eq!(tok.vocab_size(), 384);
    let gguf = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gguf/tiny_tokenizer.gguf");
    let (_, special) = rlmec::model::tokenizer_of(&gguf).unwrap();
    assert_eq!((special.bos, special.eos), (Some(1), vec![2]));
    assert!(rlmec::model::tokenizer_of(std::path::Path::new("nowhere.bin")).is_err());
}
