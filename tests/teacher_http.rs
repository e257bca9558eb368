//! The HTTP teachers against a mock server on loopback: answers, the prefill, retries
//! (Retry-After, 5xx), fatal errors, timeouts, the concurrency bound and the cache.

mod common;

use std::time::{Duration, Instant};

use common::teacher_server::{Server, completion, fast};
use rlmec::http::Cache;
use rlmec::tasks::TaskKind;
use rlmec::teacher::http::HttpTeacher;
use rlmec::teacher::http::backend::{Backend, Chat};
use rlmec::teacher::{Case, Teacher};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, ResponseTemplate};

fn case() -> Case {
    Case {
        problem: "Tom has 2 + 2 apples?".into(),
        solution: "2 + 2 = 4\nThe answer is 4".into(),
        prediction: "2 + 2 = 5\nThe answer is 5".into(),
    }
}

#[test]
fn answers_and_assembles_the_prefill() {
    let s = Server::start();
    s.mount(
        Mock::given(method("POST"))
            .and(path("/v1/completions"))
            .and(body_string_contains("Which step of prediction is error?"))
            .respond_with(completion("[0]")),
    );
    s.mount(
        Mock::given(method("POST"))
            .and(path("/v1/completions"))
            // The worked example turn, then the question, then the prefill.
            .and(body_string_contains("\\n\\nAssistant: Correct prediction: Ann has 5 * 4 = 20 pens."))
            .and(body_string_contains("Prediction: 2 + 2 = 5\\nThe answer is 5\\n\\nAssistant: Correct prediction: first step"))
            .respond_with(completion("\n2 + 2 = 4\nThe answer is 4")),
    );
    let t = s.teacher(fast(), Cache::in_memory());
    assert_eq!(t.locate(&case()).unwrap(), "[0]");
    assert_eq!(
        t.rewrite(&case(), 1, "first step").unwrap(),
        "\n2 + 2 = 4\nThe answer is 4"
    );
}

#[test]
fn retries_429_with_retry_after_and_500_then_succeeds() {
    let s = Server::start();
    s.fail_first([
        ResponseTemplate::new(429).insert_header("retry-after", "0.3"),
        ResponseTemplate::new(500),
    ]);
    s.mount(Mock::given(method("POST")).respond_with(completion("ok")));
    let start = Instant::now();
    let t = s.teacher(fast(), Cache::in_memory());
    assert_eq!(t.locate(&case()).unwrap(), "ok");
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "Retry-After honoured"
    );
    assert_eq!(s.requests(), 3);
}

#[test]
fn malformed_json_is_retried_and_client_errors_are_not() {
    // A body cut short once, then whole: the teacher answers.
    let s = Server::start();
    s.fail_first([ResponseTemplate::new(200).set_body_string("{\"choices\": [{\"te")]);
    s.mount(Mock::given(method("POST")).respond_with(completion("[2]")));
    let t = s.teacher(fast(), Cache::in_memory());
    assert_eq!(t.locate(&case()).unwrap(), "[2]");
    assert_eq!(s.requests(), 2);

    // Always cut: reported after the retries.
    let s = Server::start();
    s.mount(
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_string("{not json")),
    );
    let t = s.teacher(fast(), Cache::in_memory());
    let err = t.locate(&case()).unwrap_err().to_string();
    assert!(
        err.contains("malformed JSON") && err.contains("after 7 attempts"),
        "{err}"
    );
    assert_eq!(s.requests(), 7);

    let s = Server::start();
    s.mount(
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_string("bad model")),
    );
    let err = s
        .teacher(fast(), Cache::in_memory())
        .locate(&case())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HTTP 400") && err.contains("bad model"),
        "{err}"
    );
    assert_eq!(s.requests(), 1);
}

#[test]
fn a_timeout_is_retried_then_reported() {
    let s = Server::start();
    s.mount(
        Mock::given(method("POST"))
            .respond_with(completion("late").set_delay(Duration::from_secs(2))),
    );
    let mut opts = fast();
    opts.transport.timeout = Duration::from_millis(200);
    opts.transport.retries = 1;
    let err = s
        .teacher(opts, Cache::in_memory())
        .locate(&case())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("timed out") && err.contains("after 2 attempts"),
        "{err}"
    );
}

#[test]
fn the_concurrency_bound_is_respected() {
    let s = Server::start();
    s.mount(
        Mock::given(method("POST"))
            .respond_with(completion("x").set_delay(Duration::from_millis(250))),
    );
    let mut opts = fast();
    opts.transport.concurrency = 2;
    let t = s.teacher(opts, Cache::in_memory());
    let chats: Vec<Chat> = (0..8)
        .map(|i| Chat {
            turns: vec![format!("question {i}")],
            prefill: String::new(),
        })
        .collect();
    let start = Instant::now();
    assert_eq!(t.complete_all(&chats).unwrap().len(), 8);
    let took = start.elapsed();
    // 8 requests, 2 at a time, 250 ms each: at least 4 rounds.
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    assert!(
        took < Duration::from_millis(1900),
        "not one at a time: {took:?}"
    );
}

#[test]
fn a_cached_answer_makes_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.jsonl");
    let s = Server::start();
    s.mount(Mock::given(method("POST")).respond_with(completion("[1]")));
    let t = s.teacher(fast(), Cache::open(&path).unwrap());
    assert_eq!(t.locate(&case()).unwrap(), "[1]");
    drop(t);
    // A new teacher (a rerun) on the same cache file: no second request.
    let t = s.teacher(fast(), Cache::open(&path).unwrap());
    assert_eq!(t.locate(&case()).unwrap(), "[1]");
    assert_eq!(s.requests(), 1);
    // The key is not in the cache file.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("Bearer"));
}

#[test]
fn anthropic_sends_the_key_header_and_the_prefill_turn() {
    let s = Server::start();
    s.mount(
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .and(header("x-api-key", "test-key"))
            .and(header("anthropic-version", "2023-06-01"))
            .and(body_string_contains(
                r#"{"content":"Correct prediction: first step","role":"assistant"}"#,
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"content": [{"type": "text", "text": "\nrest"}]}),
            )),
    );
    // SAFETY: only this test reads these variables, and it sets them before any thread of
    // its own starts.
    unsafe {
        std::env::set_var("ANTHROPIC_API_KEY", "test-key");
        std::env::set_var("ANTHROPIC_BASE_URL", s.server.uri());
    }
    let t = HttpTeacher::new(
        "anthropic:claude-test",
        TaskKind::Math,
        Cache::in_memory(),
        fast(),
    )
    .unwrap();
    assert_eq!(t.rewrite(&case(), 1, "first step").unwrap(), "\nrest");
}

#[test]
fn a_refusal_that_echoes_the_key_does_not_show_it() {
    let s = Server::start();
    s.mount(
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .respond_with(
                ResponseTemplate::new(401)
                    .set_body_string(r#"{"error": "invalid x-api-key: sk-ant-echoed-secret"}"#),
            ),
    );
    let backend = Backend::Anthropic {
        model: "claude-test".into(),
        base_url: s.server.uri(),
    };
    let t = HttpTeacher::with_key(
        backend,
        TaskKind::Math,
        Cache::in_memory(),
        fast(),
        Some("sk-ant-echoed-secret".into()),
    )
    .unwrap();
    let err = t.locate(&case()).unwrap_err().to_string();
    assert!(
        err.contains("HTTP 401") && err.contains("[redacted]") && !err.contains("echoed-secret"),
        "{err}"
    );
}
