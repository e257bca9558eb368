//! Task loading on the shipped datasets, and bad input named by file, line and field.

use std::path::Path;

use rlmec::tasks::answer::is_correct;
use rlmec::tasks::load::{FieldMap, load};
use rlmec::tasks::{Fidelity, TaskKind};

fn data(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(rel)
}

#[test]
fn shipped_datasets_load_with_their_sizes() {
    let f = FieldMap::default();
    for (rel, n) in [
        ("qa/ecqa/train.jsonl", 7598),
        ("qa/ecqa/validation.jsonl", 1090),
        ("qa/ecqa/test.jsonl", 2194),
        ("qa/openbookqa/test.jsonl", 500),
        ("math/gsm8k_test.jsonl", 1319),
        ("math/svamp.json", 1000),
    ] {
        let problems = load(&data(rel), &f).unwrap();
        assert_eq!(problems.len(), n, "{rel}");
        for p in &problems {
            assert!(
                !p.problem.is_empty() && !p.answer.is_empty(),
                "{rel}: {p:?}"
            );
        }
    }
}

#[test]
fn gold_solutions_score_as_correct() {
    // Every gold solution ends with its answer line, so scoring it must say correct.
    let f = FieldMap::default();
    for (rel, kind) in [
        ("qa/ecqa/test.jsonl", TaskKind::Qa),
        ("math/gsm8k_test.jsonl", TaskKind::Math),
        ("math/svamp.json", TaskKind::Math),
    ] {
        let problems = load(&data(rel), &f).unwrap();
        let wrong: Vec<_> = problems
            .iter()
            .filter(|p| !is_correct(kind, &p.solution, &p.answer, Fidelity::Corrected))
            .take(3)
            .collect();
        assert!(wrong.is_empty(), "{rel}: {wrong:?}");
    }
    let gsm = load(&data("math/gsm8k_test.jsonl"), &f).unwrap();
    assert!(!gsm[0].solution.contains("<<"));
    assert!(gsm[0].solution.ends_with("The answer is 18"));
}

#[test]
fn bad_records_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.jsonl");
    std::fs::write(
        &path,
        "{\"problem\": \"a\", \"solution\": \"b\", \"answer\": \"c\"}\n\n{\"problem\": \"a\", \"answer\": \"c\"}\n",
    )
    .unwrap();
    let err = load(&path, &FieldMap::default()).unwrap_err().to_string();
    assert!(
        err.ends_with("mine.jsonl:3: missing field `solution`"),
        "{err}"
    );
    std::fs::write(&path, "{\"problem\": \"a\"\n").unwrap();
    let err = load(&path, &FieldMap::default()).unwrap_err().to_string();
    assert!(err.contains("mine.jsonl:1: invalid JSON"), "{err}");
    // Renamed fields.
    std::fs::write(&path, "{\"q\": \"a\", \"r\": \"b\", \"gold\": 7}\n").unwrap();
    let fields = FieldMap {
        problem: "q".into(),
        solution: "r".into(),
        answer: "gold".into(),
    };
    let p = load(&path, &fields).unwrap();
    assert_eq!((p[0].problem.as_str(), p[0].answer.as_str()), ("a", "7"));
}
