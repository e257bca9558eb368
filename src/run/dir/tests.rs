use super::*;

#[test]
fn a_stage_is_finished_only_after_finish_and_resumes_only_with_the_same_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir::create(tmp.path()).unwrap();
    assert_eq!(run.begin("train", "aaa").unwrap(), Start::Fresh);
    std::fs::create_dir_all(run.work_dir("train")).unwrap();
    std::fs::write(run.work_dir("train").join("ckpt"), b"x").unwrap();
    assert!(run.finished("train").unwrap().is_none());
    let err = run.result("train").unwrap_err().to_string();
    assert!(err.contains("stage `train` has no output"), "{err}");

    // Killed (marker left behind): same inputs resume, other inputs start afresh.
    assert_eq!(run.begin("train", "aaa").unwrap(), Start::Resume);
    assert!(run.work_dir("train").join("ckpt").is_file());
    assert_eq!(run.begin("train", "bbb").unwrap(), Start::Fresh);
    assert!(!run.work_dir("train").exists());

    let parts = crate::run::input_parts(&json!({"lr": 0.1}));
    run.finish("train", "bbb", &parts, 1.5, &json!({"loss": 0.25}), None)
        .unwrap();
    let done = run.finished("train").unwrap().unwrap();
    assert_eq!(done.fingerprint, "bbb");
    assert_eq!(done.parts, parts);
    assert_eq!(run.result("train").unwrap(), json!({"loss": 0.25}));
    let stages = run.stages().unwrap();
    assert_eq!(stages.len(), 1);
    assert!(matches!(stages[0].1, StageState::Done { seconds, .. } if seconds == 1.5));
}

#[test]
fn a_marker_of_a_dead_process_reads_as_interrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir::create(tmp.path()).unwrap();
    files::write_json(
        &run.marker_file("sample"),
        &json!({"fingerprint": "f", "pid": u32::MAX - 1, "since": 10.0}),
    )
    .unwrap();
    // A stage this process began and never finished (its body failed) is interrupted
    // too, as the end-of-run report sees it; another live process's stage is running.
    run.begin("score", "g").unwrap();
    files::write_json(
        &run.marker_file("train"),
        &json!({"fingerprint": "h", "pid": 1, "since": 20.0}),
    )
    .unwrap();
    let stages = run.stages().unwrap();
    assert_eq!(
        stages[0],
        ("sample".into(), StageState::Interrupted { since: 10.0 })
    );
    assert!(matches!(stages[1], (ref n, StageState::Running { pid: 1, .. }) if n == "train"));
    assert!(matches!(stages[2], (ref n, StageState::Interrupted { .. }) if n == "score"));
}
