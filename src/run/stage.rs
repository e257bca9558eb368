//! A stage of a run, run once: the decision between reading a finished stage back, taking
//! it from a reused run, resuming it after an interruption, and running it afresh; and what
//! it spent on paid APIs (the [`crate::spend`] ledger's growth while its body ran, added to
//! an interrupted attempt's when it resumes), kept in its record.

use serde_json::{Value, json};

use super::{RunDir, RunDirError, Start, changed_parts, fingerprint, finished_in, input_parts};
use crate::spend::{self, Spend};

/// Why a stage gave no result: its name, the run directory, or its body.
#[derive(Debug, thiserror::Error)]
pub enum StageError<E> {
    #[error(
        "stage name `{0}`: use letters, digits, `_`, `-` and `.` (it names files; `stages` is taken)"
    )]
    Name(String),
    #[error("stage `{stage}`: {source}")]
    Store { stage: String, source: RunDirError },
    /// The body's own error, passed on unchanged.
    #[error("{0}")]
    Body(E),
}

/// Stage names become file names: keep them plain.
pub fn check_name<E>(name: &str) -> Result<(), StageError<E>> {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.')
        && name != "stages";
    if plain {
        Ok(())
    } else {
        Err(StageError::Name(name.into()))
    }
}

/// The fingerprint of `value` with the paths inside the run (or a run it reuses) taken
/// relative to it ([`super::paths`]): the same wherever the run folder lies.
pub fn fingerprint_in(run: &RunDir, value: &Value) -> String {
    fingerprint(&super::paths::relativize(value, &run.roots()).0)
}

/// Stage `name` of `run` with `inputs`: its result read back when it finished before with
/// the same inputs (here, or in a run `run` reuses), else computed by `body` — in its work
/// folder as an interrupted attempt with the same inputs left it, or emptied — and stored.
pub fn run<E>(
    run: &RunDir,
    name: &str,
    inputs: &Value,
    body: impl FnOnce() -> Result<Value, E>,
) -> Result<Value, StageError<E>> {
    check_name(name)?;
    let what = format!("stage `{name}`");
    let store = |source| StageError::Store {
        stage: name.into(),
        source,
    };
    let relative = super::paths::relativize(inputs, &run.roots()).0;
    let print = fingerprint(&json!({"stage": name, "inputs": relative}));
    let parts = input_parts(&relative);
    let local = run.finished(name).map_err(store)?;
    if let Some(done) = local.as_ref().filter(|d| d.fingerprint == print) {
        match &done.reused_from {
            // A reused stage's files live in the run that computed it: if that run has
            // since rerun the stage with other inputs, they are not these any more.
            Some(origin) if !finished_in(origin, name, &print) => tracing::warn!(
                "{what}: reused from {origin}, which no longer has it with these inputs; running it again"
            ),
            Some(origin) => {
                tracing::info!("{what}: reused from {origin} before, reused");
                return Ok(done.result.clone());
            }
            None => {
                tracing::info!("{what}: finished before ({:.1}s), reused", done.seconds);
                return Ok(done.result.clone());
            }
        }
    }
    if let Some((origin, done)) = run.reusable(name, &print).map_err(store)? {
        run.adopt(name, &origin, &done).map_err(store)?;
        tracing::info!(
            "{what}: finished in {origin} with the same inputs ({:.1}s there), reused",
            done.seconds
        );
        return Ok(done.result);
    }
    if let Some(done) = local.filter(|d| d.fingerprint != print) {
        tracing::info!(
            "{what}: its inputs changed since it finished ({}); running it again",
            changed_parts(&done.parts, &parts).join(", ")
        );
    }
    match run.begin(name, &print).map_err(store)? {
        Start::Resume => tracing::info!("{what}: resuming after an interruption"),
        Start::Fresh => tracing::info!("{what}: started"),
    }
    let earlier = run.spend(name).map_err(store)?.unwrap_or_default();
    let (started, ledger) = (std::time::Instant::now(), spend::total());
    let outcome = body();
    let seconds = started.elapsed().as_secs_f64();
    let spent = Some(earlier + spend::total().since(&ledger)).filter(Spend::asked);
    let result = match outcome {
        Ok(result) => result,
        Err(e) => {
            if let Some(spent) = &spent
                && let Err(kept) = run.keep_spend(name, spent)
            {
                tracing::warn!("{what}: what it spent is not recorded: {kept}");
            }
            return Err(StageError::Body(e));
        }
    };
    run.finish(name, &print, &parts, seconds, &result, spent.as_ref())
        .map_err(store)?;
    tracing::info!("{what}: done in {seconds:.1}s");
    if let Some(spent) = spent {
        tracing::info!("{what}: spent {}", spent.line());
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::path::Path;

    use super::*;

    type Out = Result<Value, StageError<String>>;

    /// The stage `train` of the run at `dir`: its model folder is the result, and the model
    /// it starts from (the run's `start` stage) an input. Counts how often the body ran.
    fn train(dir: &Path, lr: f64, ran: &Cell<u32>) -> Out {
        let at = RunDir::create(dir).unwrap();
        let base = format!("{}/start", dir.display());
        let out = at.work_dir("train");
        run(&at, "train", &json!({"base": base, "lr": lr}), || {
            ran.set(ran.get() + 1);
            std::fs::create_dir_all(&out).unwrap();
            Ok(json!({"path": out.display().to_string(), "lr": lr}))
        })
    }

    #[test]
    fn a_stage_runs_once_per_inputs() {
        let tmp = tempfile::tempdir().unwrap();
        let ran = Cell::new(0);
        let first = train(tmp.path(), 0.1, &ran).unwrap();
        assert_eq!(train(tmp.path(), 0.1, &ran).unwrap(), first);
        assert_eq!(ran.get(), 1);
        train(tmp.path(), 0.2, &ran).unwrap();
        assert_eq!(ran.get(), 2);
    }

    #[test]
    fn a_moved_run_reads_its_stages_back_with_their_paths_where_the_run_is_now() {
        let tmp = tempfile::tempdir().unwrap();
        let (old, new) = (tmp.path().join("old"), tmp.path().join("runs/new"));
        let ran = Cell::new(0);
        train(&old, 0.1, &ran).unwrap();
        std::fs::create_dir_all(new.parent().unwrap()).unwrap();
        std::fs::rename(&old, &new).unwrap();
        let back = train(&new, 0.1, &ran).unwrap();
        assert_eq!(ran.get(), 1, "the moved run ran its finished stage again");
        let path = back["path"].as_str().unwrap();
        assert_eq!(Path::new(path), new.join("train"));
        assert!(Path::new(path).is_dir());
    }

    #[test]
    fn a_reused_run_is_taken_with_its_paths_and_a_body_error_is_passed_on() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        let ran = Cell::new(0);
        train(&a, 0.1, &ran).unwrap();
        let run_b = RunDir::create(&b)
            .unwrap()
            .reusing(std::slice::from_ref(&a))
            .unwrap();
        // The same inputs as in `a` (its `start` stage is an input by path): reused as is.
        let inputs = json!({"base": format!("{}/start", a.display()), "lr": 0.1});
        let fail = || -> Result<Value, String> { Err("ran".into()) };
        let got = run(&run_b, "train", &inputs, fail).unwrap();
        assert_eq!(Path::new(got["path"].as_str().unwrap()), a.join("train"));
        let again = run(&run_b, "train", &inputs, fail).unwrap();
        assert_eq!(again, got);
        assert!(
            run_b
                .finished("train")
                .unwrap()
                .unwrap()
                .reused_from
                .is_some()
        );

        let other = json!({"lr": 0.3});
        match run(&run_b, "train", &other, fail) {
            Err(StageError::Body(e)) => assert_eq!(e, "ran"),
            other => panic!("{other:?}"),
        }
        let err = run(&run_b, "../x", &other, fail).unwrap_err().to_string();
        assert!(err.contains("stage name `../x`"), "{err}");
    }

    #[test]
    fn a_stage_records_what_it_spent_across_a_failed_attempt_and_no_other_does() {
        let tmp = tempfile::tempdir().unwrap();
        let at = RunDir::create(tmp.path()).unwrap();
        let asked = |requests, cached| Spend {
            requests,
            cached,
            input_tokens: 100 * requests,
            output_tokens: 10 * requests,
            cost: Some(0.5 * requests as f64),
        };
        let inputs = json!({"n": 5});
        let fails = run(&at, "ask", &inputs, || -> Result<Value, String> {
            spend::record(&asked(3, 0));
            Err("teacher budget reached".into())
        });
        assert!(matches!(fails, Err(StageError::Body(_))));
        assert_eq!(at.spend("ask").unwrap(), Some(asked(3, 0)));
        run(&at, "ask", &inputs, || -> Result<Value, String> {
            spend::record(&asked(2, 3));
            Ok(json!("answers"))
        })
        .unwrap();
        // Both attempts: 5 requests sent, 3 answers taken from the cache.
        let both = asked(3, 0) + asked(2, 3);
        assert_eq!(at.spend("ask").unwrap(), Some(both));
        assert_eq!(both.requests, 5);

        run(&at, "offline", &inputs, || -> Result<Value, String> {
            Ok(json!(1))
        })
        .unwrap();
        assert_eq!(at.spend("offline").unwrap(), None);
    }
}
