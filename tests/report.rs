//! The run report: a tiny run of the stdlib's steps writes report.html / report.md /
//! report/*.jsonl / TensorBoard events at its end; the page is parsed (well-formed XHTML)
//! and its numbers are checked against the run's own stage files.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn rlmec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlmec"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RLMEC_TORCH_THREADS", "1")
        .output()
        .expect("run rlmec")
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "rlmec failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Parse as XML: a stricter check than an HTML parser's (every tag closed, every entity
/// known); the page's `<!DOCTYPE html>` is allowed.
fn parse(html: &str) -> roxmltree::Document<'_> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(html, options).expect("well-formed XHTML")
}

fn stage(dir: &Path, name: &str) -> Value {
    let text = std::fs::read_to_string(dir.join("stages").join(format!("{name}.json"))).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["result"].clone()
}

/// Elements with `attr` = `value`.
fn with_attr<'a, 'i>(
    doc: &'a roxmltree::Document<'i>,
    attr: &str,
    value: &str,
) -> Vec<roxmltree::Node<'a, 'i>> {
    doc.descendants()
        .filter(|n| n.attribute(attr) == Some(value))
        .collect()
}

fn text_of(node: roxmltree::Node) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect()
}

/// `text` as the page can hold it: XML has no other control characters than tab and line
/// breaks, so the page shows U+FFFD for them (a tiny random model can write any byte).
fn as_the_page_shows(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 => '\u{FFFD}',
            c => c,
        })
        .collect()
}

fn has_class(node: &roxmltree::Node, class: &str) -> bool {
    node.attribute("class")
        .is_some_and(|c| c.split(' ').any(|x| x == class))
}

/// The events of a TensorBoard file: checks the TFRecord framing and returns the payloads.
fn tfrecords(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
        at += 12; // length + its masked CRC
        out.push(&bytes[at..at + len]);
        at += len + 4; // payload + its masked CRC
    }
    assert_eq!(at, bytes.len(), "the file ends on a record boundary");
    out
}

#[test]
fn a_run_writes_a_report_whose_numbers_are_the_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("tiny");
    let run_s = run.to_str().unwrap();
    ok(rlmec(&["-q", "tests/scripts/stages.rhai", "--out", run_s]));
    for f in [
        "report.html",
        "report.md",
        "report/accuracy.jsonl",
        "report/edits.jsonl",
        "report/tokens.jsonl",
    ] {
        assert!(run.join(f).is_file(), "{f} written at the end of the run");
    }

    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    let doc = parse(&html);
    for section in [
        "accuracy",
        "training",
        "grm-vs-teacher",
        "tokens",
        "stages",
        "config",
    ] {
        assert_eq!(with_attr(&doc, "id", section).len(), 1, "section {section}");
    }
    for fetch in [" src=", "<link", "<script", "url("] {
        assert!(!html.contains(fetch), "self-contained: no {fetch}");
    }

    // Accuracy: the evaluation stage's numbers.
    let eval = stage(&run, "eval_rlmec");
    let row = with_attr(&doc, "data-stage", "eval_rlmec");
    let cells: Vec<String> = row[0]
        .children()
        .filter(|n| n.has_tag_name("td"))
        .map(text_of)
        .collect();
    assert_eq!(
        cells[1],
        format!("{:.1}", eval["accuracy"].as_f64().unwrap() * 100.0)
    );
    assert_eq!(
        cells[2],
        format!(
            "[{:.1}, {:.1}]",
            eval["low"].as_f64().unwrap() * 100.0,
            eval["high"].as_f64().unwrap() * 100.0
        )
    );
    assert_eq!(cells[4], eval["n"].to_string());

    // Training curves: loss (with its RL and imitation parts), lr, grad norm, tokens/s.
    for training in ["grm", "policy"] {
        let heading = with_attr(&doc, "id", &format!("training-{training}"));
        assert_eq!(heading.len(), 1, "{training} curves");
        let charts = heading[0]
            .next_sibling_element()
            .and_then(|p| p.next_sibling_element())
            .unwrap();
        let svgs = charts
            .children()
            .filter(|n| n.tag_name().name() == "svg")
            .count();
        assert_eq!(svgs, 4, "{training}: four charts");
    }
    let policy_loss = text_of(
        with_attr(&doc, "id", "training-policy")[0]
            .next_sibling_element()
            .unwrap()
            .next_sibling_element()
            .unwrap(),
    );
    for legend in [
        "loss_rl",
        "loss_reg",
        "policy: learning rate",
        "policy: tokens/s",
    ] {
        assert!(policy_loss.contains(legend), "policy charts show {legend}");
    }

    // The GRM beside the teacher: counts from the stage files.
    let fixed = |name: &str| {
        stage(&run, name)
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["is_correct"] == true && r["error_step"] != -1)
            .count()
    };
    let fixed_row: Vec<String> = with_attr(&doc, "id", "edits-fixed")[0]
        .children()
        .filter(|n| n.has_tag_name("td"))
        .map(text_of)
        .collect();
    assert_eq!(fixed_row[1], fixed("teacher_edits").to_string());
    assert_eq!(fixed_row[2], fixed("grm_edits").to_string());
    // Same first wrong step: over the GRM's records whose sample the teacher fixed.
    let teacher = stage(&run, "teacher_edits");
    let key = |r: &Value| (r["question"].to_string(), r["prediction"].to_string());
    let teacher_fixed: std::collections::HashMap<_, _> = teacher
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["is_correct"] == true && r["error_step"] != -1)
        .map(|r| (key(r), r["error_step"].clone()))
        .collect();
    let grm_records = stage(&run, "grm_edits");
    let matched: Vec<bool> = grm_records
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| {
            teacher_fixed
                .get(&key(g))
                .map(|step| *step == g["error_step"])
        })
        .collect();
    let same = text_of(with_attr(&doc, "id", "edits-same")[0]);
    let expected = format!(
        "{} of {} teacher-fixed",
        matched.iter().filter(|m| **m).count(),
        matched.len()
    );
    assert!(same.contains(&expected), "{same} / {expected}");

    // Token rewards: each shown prediction's tokens carry its record's rewards, in order,
    // and spell its output; the fix marks exactly the tokens of weight 1.0.
    let records = stage(&run, "rewards");
    let samples: Vec<_> = doc
        .descendants()
        .filter(|n| has_class(n, "sample"))
        .collect();
    assert!(!samples.is_empty(), "token samples shown");
    for s in &samples {
        let index: usize = s.attribute("data-index").unwrap().parse().unwrap();
        let record = &records[index];
        let part = |class: &str| {
            s.descendants()
                .find(|n| has_class(n, class))
                .unwrap()
                .children()
                .filter(|n| n.is_element())
                .collect::<Vec<_>>()
        };
        let tokens = part("prediction");
        let rewards: Vec<f64> = tokens
            .iter()
            .map(|t| t.attribute("data-reward").unwrap().parse().unwrap())
            .collect();
        let expected: Vec<f64> = record["reward"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(rewards, expected, "sample {index}: rewards");
        let spelled: String = tokens[..tokens.len() - 1]
            .iter()
            .map(|t| text_of(*t))
            .collect();
        assert_eq!(
            spelled,
            as_the_page_shows(record["output"].as_str().unwrap())
        );
        let marked: Vec<bool> = part("fix").iter().map(|t| has_class(t, "edit")).collect();
        let weights: Vec<bool> = record["weight_regular"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_f64().unwrap() >= 1.0)
            .collect();
        assert_eq!(marked, weights, "sample {index}: minimum-edit tokens");
        // The problem and gold solution shown are those of the sample the record came from.
        let source = teacher
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["prediction"] == record["output"])
            .expect("the record's sample");
        let shown = |class: &str| text_of(s.descendants().find(|n| has_class(n, class)).unwrap());
        assert_eq!(shown("problem"), source["question"].as_str().unwrap());
        assert_eq!(shown("gold"), source["solution"].as_str().unwrap());
    }
    let n_fixed = records
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["output"] != r["regular"])
        .count();
    let totals = text_of(with_attr(&doc, "id", "reward-totals")[0]);
    let expected = format!(
        "All {} records: {n_fixed} wrong and fixed",
        records.as_array().unwrap().len()
    );
    assert!(totals.contains(&expected), "{totals}");
    let jsonl = std::fs::read_to_string(run.join("report/tokens.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), samples.len());

    // The summary.
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("| rlmec (eval_rlmec) |"), "{md}");
    let steps = stage(&run, "policy")["steps"].clone();
    assert!(md.contains(&format!("| policy | {steps} |")), "{md}");
    // Every row of a markdown table has its header's cells.
    let cells = |line: &str| line.matches('|').count();
    for table in md.split("\n\n").filter(|b| b.starts_with('|')) {
        let header = cells(table.lines().next().unwrap());
        for row in table.lines() {
            assert_eq!(cells(row), header, "{row:?} in\n{table}");
        }
    }

    // TensorBoard: one event per logged scalar, after the file-version event.
    let metrics: Vec<Value> = std::fs::read_to_string(run.join("policy/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let scalars: usize = metrics
        .iter()
        .map(|m| {
            m.as_object()
                .unwrap()
                .iter()
                .filter(|(k, v)| *k != "step" && v.is_number())
                .count()
        })
        .sum();
    let tb = run.join("tensorboard/policy");
    let files: Vec<_> = std::fs::read_dir(&tb)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert!(
        files[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .contains("tfevents")
    );
    let bytes = std::fs::read(&files[0]).unwrap();
    let events = tfrecords(&bytes);
    assert_eq!(events.len(), 1 + scalars);
    assert!(events.iter().any(|e| e.windows(7).any(|w| w == b"loss_rl")));

    // Rewriting the report replaces the event file instead of adding one.
    ok(rlmec(&["report", run_s]));
    assert_eq!(std::fs::read_dir(&tb).unwrap().count(), 1);
}

#[test]
fn two_runs_compare_side_by_side_and_a_non_run_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let a_s = a.to_str().unwrap();
    ok(rlmec(&["-q", "tests/scripts/stages.rhai", "--out", a_s]));
    // The same run with another seed in its config and another accuracy.
    let b = tmp.path().join("b");
    let copied = Command::new("cp")
        .args(["-r", a_s, b.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(copied.success());
    let edit = |file: &Path, f: &dyn Fn(&mut Value)| {
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(file, v.to_string()).unwrap();
    };
    edit(&b.join("config.json"), &|v| v["seed"] = 7.into());
    edit(&b.join("stages/eval_rlmec.json"), &|v| {
        v["result"]["accuracy"] = 0.5.into();
    });

    let out = ok(rlmec(&["report", a_s, b.to_str().unwrap()]));
    let md = String::from_utf8_lossy(&out.stdout).into_owned();
    let seed_row = md.lines().find(|l| l.starts_with("| seed |")).expect(&md);
    assert!(seed_row.contains("| 7 |"), "{seed_row}");
    assert!(!md.contains("| rl.lr |"), "equal knobs are not listed");
    let acc_row = md
        .lines()
        .find(|l| l.starts_with("| eval_rlmec |"))
        .expect(&md);
    assert!(acc_row.contains("50.0%"), "{acc_row}");
    let html = std::fs::read_to_string(a.join("compare-a-vs-b.html")).unwrap();
    parse(&html);

    let not_a_run = rlmec(&["report", tmp.path().to_str().unwrap()]);
    assert!(!not_a_run.status.success());
    let err = String::from_utf8_lossy(&not_a_run.stderr);
    assert!(err.contains(tmp.path().to_str().unwrap()), "{err}");
}

#[test]
fn a_failed_run_still_gets_its_report_with_the_failed_stage_interrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("fails.rhai");
    std::fs::write(
        &script,
        "let run = run_current();\n\
         run.stage(\"first\", #{}, || 1);\n\
         run.stage(\"boom\", #{}, || { throw \"deliberate\"; });\n",
    )
    .unwrap();
    let run = tmp.path().join("run");
    let o = rlmec(&[script.to_str().unwrap(), "--out", run.to_str().unwrap()]);
    assert!(!o.status.success(), "the script fails");
    let html = std::fs::read_to_string(run.join("report.html")).expect("a report anyway");
    let doc = parse(&html);
    let state = |name: &str| {
        let row = with_attr(&doc, "data-stage", name);
        text_of(
            row[0]
                .children()
                .filter(|n| n.has_tag_name("td"))
                .nth(1)
                .unwrap(),
        )
    };
    assert_eq!(state("first"), "done");
    assert_eq!(state("boom"), "interrupted");
}
