//! What HTTP teachers spend, and the budget that bounds it, against a mock server: each
//! answer's tokens kept in the cache and counted per batch, a cached rerun that sends
//! nothing, budgets on requests and on cost that stop before going over and go on when
//! raised, and a run whose stage records its spend (across a stop at the budget) and whose
//! report shows it.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::cli::{rlmec_command, stderr};
use common::teacher_server::{Server, completion_with_usage, fast};
use rlmec::http::{Cache, Client, Exchange, Parse, Usage, cache};
use rlmec::tasks::TaskKind;
use rlmec::teacher::budget::{Budget, Price};
use rlmec::teacher::http::backend::Chat;
use rlmec::teacher::http::{HttpOptions, HttpTeacher};
use serde_json::{Value, json};
use wiremock::Mock;
use wiremock::matchers::method;

fn chats(n: usize) -> Vec<Chat> {
    (0..n)
        .map(|i| Chat {
            turns: vec![format!("question {i}")],
            prefill: String::new(),
        })
        .collect()
}

fn within(budget: Budget) -> HttpOptions {
    HttpOptions { budget, ..fast() }
}

#[test]
fn each_answer_keeps_its_usage_and_a_cached_rerun_sends_nothing() {
    let s = Server::start();
    s.mount(Mock::given(method("POST")).respond_with(completion_with_usage("ok", 20, 7)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.jsonl");
    let client = Client::new("mock", fast().transport).unwrap();
    let exchanges: Vec<Exchange> = (0..3)
        .map(|i| {
            let body = json!({"prompt": format!("question {i}")});
            Exchange {
                url: format!("{}/v1/completions", s.server.uri()),
                headers: Vec::new(),
                key: cache::key("mock", "tiny", &body),
                body,
                bound: Usage::default(),
            }
        })
        .collect();
    let parse: Parse = Arc::new(|v: &Value| Ok(v["choices"][0]["text"].clone()));
    let all = Usage {
        input_tokens: 60,
        output_tokens: 21,
    };

    let first = client.run(
        &exchanges,
        &Arc::new(Cache::open(&path).unwrap()),
        &parse,
        None,
        "test",
    );
    assert_eq!((first.sent, first.cached, first.held), (3, 0, 0));
    assert_eq!((first.sent_usage, first.used_usage), (all, all));
    assert_eq!(first.all().unwrap(), vec![json!("ok"); 3]);

    // A rerun on the cache file: every answer with what it took, nothing sent.
    let again = client.run(
        &exchanges,
        &Arc::new(Cache::open(&path).unwrap()),
        &parse,
        None,
        "test",
    );
    assert_eq!((again.sent, again.cached), (0, 3));
    assert_eq!(
        (again.sent_usage, again.used_usage),
        (Usage::default(), all)
    );
    assert_eq!(s.requests(), 3);
}

#[test]
fn a_requests_budget_stops_after_it_and_a_larger_one_sends_only_the_rest() {
    let s = Server::start();
    s.mount(Mock::given(method("POST")).respond_with(completion_with_usage("ok", 20, 7)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.jsonl");
    let ask = |requests| {
        let budget = Budget {
            requests,
            cost: 0.0,
        };
        s.teacher(within(budget), Cache::open(&path).unwrap())
            .complete_all(&chats(5))
    };
    let e = ask(3).unwrap_err().to_string();
    assert!(
        e.contains("teacher budget reached: 3 of 5 requests answered (3 allowed)")
            && e.contains("raise teacher_budget.requests to continue"),
        "{e}"
    );
    assert_eq!(s.requests(), 3);
    assert_eq!(Cache::open(&path).unwrap().len(), 3);
    // At the same budget the cached answers fill it: nothing more is sent.
    assert!(ask(3).is_err());
    assert_eq!(s.requests(), 3);
    assert_eq!(ask(5).unwrap(), vec!["ok"; 5]);
    assert_eq!(s.requests(), 5);
}

#[test]
fn the_budget_bounds_every_batch_of_a_teacher_together() {
    let s = Server::start();
    s.mount(Mock::given(method("POST")).respond_with(completion_with_usage("ok", 20, 7)));
    let budget = Budget {
        requests: 4,
        cost: 0.0,
    };
    let t = s.teacher(within(budget), Cache::in_memory());
    assert_eq!(t.complete_all(&chats(3)).unwrap().len(), 3);
    let more: Vec<Chat> = chats(6).split_off(3);
    let e = t.complete_all(&more).unwrap_err().to_string();
    assert!(e.contains("4 of 6 requests answered"), "{e}");
    assert_eq!(s.requests(), 4);
}

#[test]
fn a_cost_budget_stops_before_going_over_and_needs_a_price() {
    let s = Server::start();
    s.mount(Mock::given(method("POST")).respond_with(completion_with_usage("ok", 20, 10)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.jsonl");
    // $1000 per million tokens each way: an answer (20 + 10 tokens) costs $0.03.
    let price = Price {
        input: 1000.0,
        output: 1000.0,
    };
    let ask = |cost| {
        let opts = HttpOptions {
            max_tokens: 10,
            price,
            ..within(Budget { requests: 0, cost })
        };
        s.teacher(opts, Cache::open(&path).unwrap())
            .complete_all(&chats(10))
    };
    // $0.25 pays for 8 answers ($0.24); a ninth would make $0.27.
    let e = ask(0.25).unwrap_err().to_string();
    assert!(
        e.contains("8 of 10 requests answered (cost $0.2400 of $0.2500)")
            && e.contains("raise teacher_budget.cost to continue"),
        "{e}"
    );
    assert_eq!(s.requests(), 8);
    assert_eq!(ask(0.31).unwrap().len(), 10);
    assert_eq!(s.requests(), 10);

    let unpriced = within(Budget {
        requests: 0,
        cost: 1.0,
    });
    let e = HttpTeacher::new(&s.spec(), TaskKind::Math, Cache::in_memory(), unpriced)
        .err()
        .expect("a cost budget without a price is refused")
        .to_string();
    assert!(e.contains("set `teacher_price`"), "{e}");
}

/// Step 2 over two wrong predictions (a locate and a rewrite each) as a stage of a run.
const STAGE_SCRIPT: &str = r#"
let cfg = apply_overrides(#{teacher: "", cache: "", requests: 0});
let samples = [
    #{problem: "Tom has 2 apples. Then he doubles them.",
      solution: "He has 2 * 2 = 4 apples.\nThe answer is 4",
      prediction: "He has 2 * 2 = 5 apples.\nThe answer is 5"},
    #{problem: "Ann has 3 pens. Then she doubles them.",
      solution: "She has 3 * 2 = 6 pens.\nThe answer is 6",
      prediction: "She has 3 * 2 = 7 pens.\nThe answer is 7"},
];
let edits = run_current().stage("teacher_edits", #{samples: samples}, || {
    minimum_edit(cfg.teacher, "math", samples, #{cache: cfg.cache,
        teacher_price: #{input: 3.0, output: 15.0}, teacher_budget: #{requests: cfg.requests}})
});
print(`records ${edits.len()}`);
"#;

fn stage_file(run: &Path, file: &str) -> Value {
    let text = std::fs::read_to_string(run.join("stages").join(file)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_run_records_what_its_stage_spent_across_a_stop_at_the_budget_and_reports_it() {
    let s = Server::start();
    s.mount(Mock::given(method("POST")).respond_with(completion_with_usage("[0]", 20, 7)));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("spend.rhai");
    std::fs::write(&script, STAGE_SCRIPT).unwrap();
    let cache = dir.path().join("cache.jsonl");
    let go = |run: &Path, requests: usize| {
        rlmec_command(&[
            script.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--set",
            &format!("teacher={}", s.spec()),
            "--set",
            &format!("cache={}", cache.display()),
            "--set",
            &format!("requests={requests}"),
        ])
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap()
    };
    let cost = |input: f64, output: f64| (input * 3.0 + output * 15.0) / 1e6;
    let run = dir.path().join("run");

    // Two locates fit the budget of 3, then one of the two rewrites.
    let o = go(&run, 3);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("teacher budget reached: 3 of 4 requests answered (3 allowed, cost $0.0005)")
            && err.contains("raise teacher_budget.requests to continue"),
        "{err}"
    );
    let stopped = &stage_file(&run, "teacher_edits.running")["spend"];
    assert_eq!(
        (
            &stopped["requests"],
            &stopped["cached"],
            &stopped["input_tokens"]
        ),
        (&json!(3), &json!(0), &json!(60))
    );
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("| teacher_edits | 3 | 0 | 60 | 21 | $0.0005 |"),
        "{report}"
    );

    // A larger budget goes on: one request more, three answers from the cache.
    let o = go(&run, 10);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s.requests(), 4);
    let spend = &stage_file(&run, "teacher_edits.json")["spend"];
    assert_eq!(
        (
            &spend["requests"],
            &spend["cached"],
            &spend["input_tokens"],
            &spend["output_tokens"]
        ),
        (&json!(4), &json!(3), &json!(80), &json!(28))
    );
    let dollars = spend["cost"].as_f64().unwrap();
    assert!((dollars - cost(80.0, 28.0)).abs() < 1e-12, "{dollars}");
    let log = std::fs::read_to_string(run.join("log.txt")).unwrap();
    assert!(
        log.contains("stage `teacher_edits`: spent 4 requests (3 answers from the cache), 80 input + 28 output tokens, $0.0007"),
        "{log}"
    );

    // Another run over the same cache sends nothing and spends no token.
    let other = dir.path().join("other");
    let o = go(&other, 0);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s.requests(), 4);
    let spend = &stage_file(&other, "teacher_edits.json")["spend"];
    assert_eq!(
        spend,
        &json!({"requests": 0, "cached": 4, "input_tokens": 0, "output_tokens": 0, "cost": 0.0})
    );
    let report = std::fs::read_to_string(other.join("report.md")).unwrap();
    assert!(report.contains("## Teacher spend"), "{report}");
    assert!(
        report.contains("| **total** | 0 | 4 | 0 | 0 | $0.0000 |"),
        "{report}"
    );
    let html = std::fs::read_to_string(other.join("report.html")).unwrap();
    assert!(html.contains("<tr data-spend=\"teacher_edits\"><td>teacher_edits</td>"));
}
