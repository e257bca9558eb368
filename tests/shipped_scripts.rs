//! Every shipped script (`scripts/*.rhai`, `scripts/variants/*.rhai`) run end to end as a
//! user runs it — by an installed binary (a copy outside the build tree, working in another
//! folder, the stdlib built in) — at a tiny budget: the synthetic task (`--set kind=math`) and
//! a policy trained from scratch with a few thousand parameters, so each script takes seconds.
//! The first run is the base; the others `--reuse` its stages, so each computes only what it
//! changes. `eval_batch` evaluates the embedded default model on ECQA and GSM8K.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::cli::stdout;
use common::tiny::{TINY, sets};

const DEFAULT_MODEL: &str = "data/models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The binary copied out of the build tree, as `cargo install` would place it.
struct Installed {
    _dir: tempfile::TempDir,
    bin: PathBuf,
    cwd: PathBuf,
}

impl Installed {
    fn new() -> Installed {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin/rlmec");
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_rlmec"), &bin).unwrap();
        let cwd = dir.path().join("elsewhere");
        std::fs::create_dir_all(&cwd).unwrap();
        Installed {
            _dir: dir,
            bin,
            cwd,
        }
    }

    /// `rlmec SCRIPT --out OUT ARGS` from the other folder, the script named by its path in
    /// the repository.
    fn run(&self, script: &Path, out: &Path, args: &[String]) -> Output {
        let mut command = Command::new(&self.bin);
        command
            .arg(script)
            .arg("--out")
            .arg(out)
            .args(args)
            .current_dir(&self.cwd)
            .env("RLMEC_TORCH_THREADS", "1")
            .env_remove("RLMEC_STDLIB")
            .env_remove("RLMEC_HOME")
            .env_remove("RUST_LOG");
        // A test copying its binary while another test forks: the fork inherits the copy's
        // write descriptor until it execs, and exec of the copy fails with "text file busy"
        // meanwhile. It passes within moments.
        let mut attempts = 0;
        let output = loop {
            match command.output() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                result => break result.expect("rlmec runs"),
            }
        };
        assert!(
            output.status.success(),
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The accuracy table's rows as (model, task, n).
fn table_rows(out: &str) -> Vec<(String, String, String)> {
    out.lines()
        .filter(|l| l.contains('%') && l.contains('['))
        .map(|l| {
            let cells: Vec<_> = l.split_whitespace().collect();
            let n = cells[cells.len() - 1];
            (cells[0].into(), cells[1].into(), n.into())
        })
        .collect()
}

fn shipped_scripts(dir: &str) -> Vec<PathBuf> {
    let mut scripts: Vec<_> = std::fs::read_dir(repo(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    scripts.sort();
    scripts
}

#[test]
fn every_shipped_script_runs_end_to_end_from_an_installed_binary() {
    let installed = Installed::new();
    let runs = tempfile::tempdir().unwrap();
    let tiny = sets(TINY);

    // qa_full, the README's first command, is the base: the whole procedure, steps 1-8.
    let base = runs.path().join("qa_full");
    let o = installed.run(&repo("scripts/qa_full.rhai"), &base, &tiny);
    let rows: Vec<_> = table_rows(&stdout(&o))
        .into_iter()
        .map(|(model, task, n)| format!("{model} {task} {n}"))
        .collect();
    assert_eq!(
        rows,
        ["start synthetic 8", "rlmec synthetic 8"],
        "{}",
        stdout(&o)
    );
    for stage in [
        "pretrain",
        "samples",
        "teacher_edits",
        "grm_data",
        "grm",
        "grm_edits",
        "rewards",
        "policy",
        "eval_start",
        "eval_rlmec",
    ] {
        assert!(
            base.join("stages").join(format!("{stage}.json")).is_file(),
            "qa_full made no stage {stage}"
        );
    }
    assert!(base.join("report.html").is_file());

    let mut scripts = vec![repo("scripts/math_full.rhai")];
    scripts.extend(shipped_scripts("scripts/variants"));
    assert!(scripts.len() >= 10, "{scripts:?}");
    let reuse = ["--reuse".to_string(), base.to_string_lossy().into_owned()];
    for script in &scripts {
        let name = script.file_stem().unwrap().to_string_lossy();
        let out = runs.path().join(&*name);
        let o = installed.run(script, &out, &[&tiny[..], &reuse[..]].concat());
        let rows = table_rows(&stdout(&o));
        // Each compares its own policy with the starting one, on the 8 test problems.
        assert!(
            rows.len() >= 2 && rows[0].0 == "start" && rows.iter().all(|(_, _, n)| n == "8"),
            "{name}: {}",
            stdout(&o)
        );
        assert!(out.join("accuracy.csv").is_file(), "{name}");
    }
}

#[test]
fn eval_batch_evaluates_the_default_model_from_an_installed_binary() {
    if !rlmec::testing::input_present(&repo(DEFAULT_MODEL), "run `make setup`") {
        return;
    }
    let installed = Installed::new();
    let runs = tempfile::tempdir().unwrap();
    let out = runs.path().join("eval");
    // The default model (`data/models/...` in the project) and the datasets: found from
    // elsewhere.
    let args = sets(&[
        "tasks=ecqa,gsm8k",
        "n_test=2",
        "evaluation.max_new_tokens=8",
    ]);
    let o = installed.run(&repo("scripts/eval_batch.rhai"), &out, &args);
    let tasks: Vec<_> = table_rows(&stdout(&o))
        .into_iter()
        .filter(|(model, _, n)| model.ends_with(DEFAULT_MODEL) && n == "2")
        .map(|(_, task, _)| task)
        .collect();
    assert_eq!(tasks, ["ecqa", "gsm8k"], "{}", stdout(&o));
    let csv = std::fs::read_to_string(out.join("accuracy.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
}
