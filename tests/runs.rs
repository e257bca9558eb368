//! Runs end to end through the binary: stages that run once and resume where a killed run
//! stopped (to the same files), inputs that change, a moved run folder, reuse of another
//! run's stages.

mod common;

use std::path::Path;
use std::process::Command;

use common::cli::{rlmec, rlmec_command, stderr, stdout};

/// SFT records for the kill test: enough steps that the run is still going when killed.
const TRAIN_SCRIPT: &str = r#"
let out = run_current().dir;
let m = model_load("tests/fixtures/model/tiny-llama");
let data = [];
for i in 0..40 {
    data.push(#{input: `${i} + ${i} =`, output: ` ${i + i}. That is the sum of ${i} and ${i}.`});
}
let s = m.train(data, #{objective: "sft", epochs: 30, lr: 1e-3, batch_size: 4, grad_accum: 2,
                        checkpoint_every: 5, out: `${out}/policy`});
print(`done ${s.steps} resumed_from ${s.resumed_from ?? "none"}`);
"#;

#[test]
fn a_killed_run_resumes_to_the_same_curve() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("train.rhai");
    std::fs::write(&script, TRAIN_SCRIPT).unwrap();
    let run = |out: &Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rlmec"));
        command
            .arg(&script)
            .arg("--out")
            .arg(out)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("RLMEC_TORCH_THREADS", "1")
            .env_remove("RUST_LOG");
        command
    };
    let (whole, killed) = (dir.path().join("whole"), dir.path().join("killed"));
    let o = run(&whole).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("done 150 resumed_from none"),
        "{}",
        stdout(&o)
    );

    // Kill -9 once a few checkpoints exist, mid-run.
    let mut child = run(&killed)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let third = killed.join("policy/checkpoints/step-00000015/state.json");
    let start = std::time::Instant::now();
    while !third.exists() && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let lines_at_kill = std::fs::read_to_string(killed.join("policy/metrics.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(
        (15..150).contains(&lines_at_kill),
        "killed mid-run ({lines_at_kill} steps logged)"
    );

    let o = run(&killed).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("done 150 resumed_from 15") || out.contains("done 150 resumed_from 20"),
        "{out}"
    );
    let read = |p: &Path| std::fs::read_to_string(p.join("policy/metrics.jsonl")).unwrap();
    let strip = |text: String| -> Vec<String> {
        // tokens_per_s is a timing; everything else must be identical.
        text.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("tokens_per_s");
                v.to_string()
            })
            .collect()
    };
    assert_eq!(strip(read(&whole)), strip(read(&killed)));
    let weights = |p: &Path| std::fs::read(p.join("policy/model.safetensors")).unwrap();
    assert!(
        weights(&whole) == weights(&killed),
        "the same final weights"
    );
}

#[test]
fn stages_run_once_rerun_on_new_inputs_and_never_look_finished_when_they_failed() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("stages.rhai");
    let run_dir = dir.path().join("run");
    std::fs::write(
        &script,
        r#"
let cfg = apply_overrides(#{dir: "", n: 3, fail: false});
let run = run_open(cfg.dir);
let xs = run.stage("xs", #{n: cfg.n}, || {
    print("computing xs");
    let out = [];
    for i in 0..cfg.n { out.push(i); }
    out
});
let ys = run.stage("ys", #{xs: xs}, || { if cfg.fail { throw "killed mid-stage"; } xs.map(|x| x * 10) });
print(`ys = ${ys}`);
"#,
    )
    .unwrap();
    let go = |extra: &[&str]| {
        let mut args = vec![
            script.to_str().unwrap().to_string(),
            "--set".into(),
            format!("dir={}", run_dir.display()),
        ];
        for e in extra {
            args.push("--set".into());
            args.push(e.to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        rlmec(&args)
    };
    let o = go(&["fail=true"]);
    assert!(!o.status.success());
    assert!(
        run_dir.join("stages/xs.json").is_file(),
        "the finished stage is kept"
    );
    assert!(
        !run_dir.join("stages/ys.json").exists(),
        "the failed one is not marked finished"
    );
    let o = go(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        "ys = [0, 10, 20]",
        "xs reused, not recomputed: {}",
        stderr(&o)
    );
    let o = go(&["n=4"]);
    assert_eq!(
        stdout(&o).trim(),
        "computing xs\nys = [0, 10, 20, 30]",
        "new inputs run again"
    );
}

/// Every file of a run that a rerun must reproduce: each stage's result (not its timing) and
/// each model's weights, by relative path.
fn run_outputs(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("stages")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            // Models are named by path: the same file in another run directory.
            let result = v["result"]
                .to_string()
                .replace(dir.to_str().unwrap(), "RUN");
            out.insert(
                path.file_name().unwrap().to_string_lossy().into_owned(),
                result.into_bytes(),
            );
        }
    }
    for model in ["grm", "policy"] {
        let weights = dir.join(model).join("model.safetensors");
        out.insert(
            format!("{model}/model.safetensors"),
            std::fs::read(weights).unwrap(),
        );
    }
    out
}

#[test]
fn a_run_killed_in_any_stage_reruns_to_the_same_files_without_redoing_finished_stages() {
    let dir = tempfile::tempdir().unwrap();
    let start = |out: &Path| {
        let mut command = rlmec_command(&["tests/scripts/stages.rhai", "--out"]);
        command.arg(out);
        command
    };
    let whole = dir.path().join("whole");
    let o = start(&whole).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("stages: 48 samples"), "{}", stdout(&o));
    let reference = run_outputs(&whole);

    let kinds = [
        "samples",       // sampling
        "teacher_edits", // the teacher
        "grm",           // training
        "grm_edits",     // generation by a trained model
        "rewards",       // scoring
        "policy",        // RL training
        "eval_rlmec",    // evaluation
    ];
    let mut interrupted = 0;
    for (i, stage) in kinds.iter().enumerate() {
        let killed = dir.path().join(format!("killed-{stage}"));
        let mut child = start(&killed)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let marker = killed.join("stages").join(format!("{stage}.running"));
        let t = std::time::Instant::now();
        while !marker.exists() && t.elapsed().as_secs() < 60 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // A stage of a few milliseconds (the arith teacher) may end between the marker
        // appearing and the kill; the rerun must be right either way.
        if marker.exists() {
            interrupted += 1;
            let status = rlmec(&["status", killed.to_str().unwrap()]);
            assert!(
                stdout(&status).contains(&format!("{stage:<24} interrupted")),
                "{}",
                stdout(&status)
            );
        } else {
            assert!(
                killed
                    .join("stages")
                    .join(format!("{stage}.json"))
                    .is_file()
            );
        }
        let finished_before: Vec<(String, std::time::SystemTime)> = kinds[..i]
            .iter()
            .map(|s| {
                let p = killed.join("stages").join(format!("{s}.json"));
                (
                    s.to_string(),
                    std::fs::metadata(&p).unwrap().modified().unwrap(),
                )
            })
            .collect();

        let o = start(&killed).output().unwrap();
        assert!(o.status.success(), "{stage}: {}", stderr(&o));
        for (s, modified) in finished_before {
            let p = killed.join("stages").join(format!("{s}.json"));
            assert_eq!(
                std::fs::metadata(&p).unwrap().modified().unwrap(),
                modified,
                "killed in {stage}: finished stage {s} was recomputed"
            );
            assert!(
                stderr(&o).contains(&format!("stage `{s}`: finished before")),
                "{}",
                stderr(&o)
            );
        }
        let rerun = run_outputs(&killed);
        let differ: Vec<&String> = reference
            .keys()
            .filter(|k| rerun.get(*k) != reference.get(*k))
            .collect();
        assert!(
            differ.is_empty() && rerun.len() == reference.len(),
            "killed in {stage}: the rerun's files differ from an uninterrupted run: {differ:?}"
        );
    }
    assert!(
        interrupted >= 4,
        "only {interrupted} of 7 kills landed inside their stage"
    );
}

#[test]
fn a_stage_whose_inputs_changed_runs_again_and_config_is_saved() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s.rhai");
    std::fs::write(
        &script,
        r#"let cfg = apply_overrides(#{n: 3, label: "a"});
let run = run_current();
let squares = run.stage("squares", #{n: cfg.n}, || {
    print("computing");
    let out = [];
    for i in 0..cfg.n { out.push(i * i); }
    out
});
print(`squares ${squares}`);
print(run.result("squares").len());
run.result("cubes");
"#,
    )
    .unwrap();
    let out = dir.path().join("run");
    let go = |extra: &[&str]| {
        let mut args = vec![script.to_str().unwrap(), "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        rlmec(&args)
    };
    let o = go(&[]);
    assert!(
        stdout(&o).contains("computing\nsquares [0, 1, 4]\n3\n"),
        "{}",
        stdout(&o)
    );
    // A missing stage output is named, with the stages that did finish.
    assert!(
        stderr(&o).contains("stage `cubes` has no output")
            && stderr(&o).contains("(finished: squares)"),
        "{}",
        stderr(&o)
    );
    let o = go(&[]);
    assert!(!stdout(&o).contains("computing"), "reused: {}", stdout(&o));
    let o = go(&["--set", "n=4"]);
    assert!(
        stdout(&o).contains("computing\nsquares [0, 1, 4, 9]"),
        "{}",
        stdout(&o)
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config, serde_json::json!({"n": 4, "label": "a"}));
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["starts"].as_array().unwrap().len(), 3);
    assert!(
        std::fs::read_to_string(out.join("log.txt"))
            .unwrap()
            .contains("squares [0, 1, 4, 9]")
    );
    // A typo in a --set key lists the known keys.
    let o = go(&["--set", "nn=4"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown config key `nn`"),
        "{}",
        stderr(&o)
    );
    let listing = rlmec(&["runs", dir.path().to_str().unwrap()]);
    assert!(stdout(&listing).contains("1 done"), "{}", stdout(&listing));
}

/// A run's `stages/<name>.json`.
fn stage_file(run: &Path, name: &str) -> serde_json::Value {
    let path = run.join("stages").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_moved_run_folder_resumes_its_interrupted_stage_and_reads_back_the_finished_ones() {
    let dir = tempfile::tempdir().unwrap();
    let go = |out: &Path| {
        let o = rlmec(&["tests/scripts/stages.rhai", "--out", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        stderr(&o)
    };
    // Killed while the trained GRM rewrites (step 5: it loads the GRM of step 4 by the
    // path stored in that stage's result), then moved.
    let first = dir.path().join("first");
    let mut child = rlmec_command(&["tests/scripts/stages.rhai", "--out"])
        .arg(&first)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let marker = first.join("stages").join("grm_edits.running");
    let t = std::time::Instant::now();
    while !marker.exists() && t.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(marker.exists(), "not killed during the GRM's rewriting");
    let moved = dir.path().join("elsewhere").join("moved");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&first, &moved).unwrap();

    let log = go(&moved);
    for stage in ["samples", "teacher_edits", "grm_data", "grm"] {
        assert!(
            log.contains(&format!("stage `{stage}`: finished before")),
            "{stage} not read back: {log}"
        );
    }
    assert!(
        log.contains("stage `grm_edits`: resuming after an interruption"),
        "{log}"
    );
    // Moved once more, finished: nothing runs, and results name the files where they are.
    let again = dir.path().join("again");
    std::fs::rename(&moved, &again).unwrap();
    let log = go(&again);
    assert!(
        !log.contains("started") && !log.contains("resuming"),
        "{log}"
    );
    let policy = stage_file(&again, "policy");
    assert_eq!(policy["result"]["path"], "policy", "stored relative");
    let status = stdout(&rlmec(&["status", again.to_str().unwrap()]));
    assert!(
        status.contains(&format!("{:<24} done", "policy")),
        "{status}"
    );
}

#[test]
fn a_run_reuses_another_runs_stages_with_the_same_inputs_and_reruns_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let go = |out: &Path, extra: &[&str]| {
        let mut args = vec!["tests/scripts/stages.rhai", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = rlmec(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        o
    };
    let base = dir.path().join("base");
    go(&base, &[]);
    // The λ = 0 ablation: only step 7 and the evaluation of its policy depend on λ.
    let ablation = ["--set", "rl.reg_weight=0.0"];
    let reusing = dir.path().join("reusing");
    let o = go(
        &reusing,
        &[&ablation[..], &["--reuse", base.to_str().unwrap()]].concat(),
    );
    let log = stderr(&o);
    for stage in [
        "samples",
        "teacher_edits",
        "grm_data",
        "grm",
        "grm_edits",
        "rewards",
    ] {
        assert!(
            log.contains(&format!("stage `{stage}`: finished in {}", base.display())),
            "{stage} not reused: {log}"
        );
        assert_eq!(
            stage_file(&reusing, stage)["reused_from"],
            base.to_str().unwrap()
        );
    }
    for stage in ["policy", "eval_rlmec"] {
        assert!(log.contains(&format!("stage `{stage}`: started")), "{log}");
    }
    assert!(
        !reusing.join("grm").exists(),
        "a reused model is not copied"
    );
    let status = stdout(&rlmec(&["status", reusing.to_str().unwrap()]));
    assert!(
        status.contains(&format!("{:<24} reused", "grm")) && status.contains("policy "),
        "{status}"
    );

    // The other run reruns a stage with other inputs: a resume here no longer trusts it.
    go(&base, &["--set", "rewards.clip_wrong=[-0.2, 0.0]"]);
    let o = go(
        &reusing,
        &[&ablation[..], &["--reuse", base.to_str().unwrap()]].concat(),
    );
    let log = stderr(&o);
    assert!(
        log.contains("stage `rewards`: reused from")
            && log.contains("no longer has it with these inputs; running it again"),
        "{log}"
    );
    assert!(log.contains("stage `grm`: reused from"), "{log}");
    let rewards = stage_file(&reusing, "rewards");
    assert!(rewards.get("reused_from").is_none(), "computed here now");

    // The same ablation computed from nothing: the same policy, bit for bit.
    let alone = dir.path().join("alone");
    go(&alone, &ablation);
    let weights = |run: &Path| std::fs::read(run.join("policy").join("model.safetensors")).unwrap();
    assert!(weights(&reusing) == weights(&alone));
    let accuracy = |run: &Path| stage_file(run, "eval_rlmec")["result"]["accuracy"].clone();
    assert_eq!(accuracy(&reusing), accuracy(&alone));

    // A mistyped --reuse is named before anything runs.
    let o = rlmec(&["tests/scripts/stages.rhai", "--reuse", "runs/no-such-run"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--reuse: runs/no-such-run: not a run directory"),
        "{}",
        stderr(&o)
    );
}
