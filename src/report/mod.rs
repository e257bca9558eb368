//! The run report: what a run did, readable at a glance.
//!
//! `rlmec report RUN_DIR` — and the end of every run — reads the run directory and writes
//! `report.html` (self-contained: inline CSS and SVG, no script, no network), `report.md`
//! (the summary), the JSONL behind every figure under `report/`, and TensorBoard event
//! files under `tensorboard/<stage>/` (so `tensorboard --logdir runs/` shows every run's
//! training curves). `rlmec report A B` compares two runs.
//!
//! The report knows a stage by the shape of its result, not by the script that made it: a
//! training stage returns `{path, steps, ...}` and leaves a `metrics.jsonl`; an evaluation
//! returns `{n, correct, accuracy, low, high}`; token rewards are records with `reward` and
//! `ref_prob`. Only the teacher–GRM comparison relies on the stdlib's stage names
//! (`teacher_edits`, `grm_edits`). What a stage spent on an HTTP teacher is in its record
//! (`spend`, see [`crate::spend`]).

mod charts;
mod collect;
mod compare;
mod edits;
mod html;
mod markdown;
mod tensorboard;
mod tokens;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use compare::compare;
pub use edits::{EditComparison, compare_edits};

use crate::files::{self, FileError};
use crate::run::RunDirError;
use crate::spend::{Spend, dollars};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Run(#[from] RunDirError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    File(#[from] FileError),
    #[error("chart \"{title}\" not drawn: {message}")]
    Chart { title: String, message: String },
}

/// What `write` produced.
#[derive(Debug)]
pub struct Written {
    pub html: PathBuf,
    pub markdown: PathBuf,
    /// The markdown's text (`rlmec report` prints it).
    pub summary: String,
}

/// Write the report of the run in `dir` (its files are listed in the module docs).
pub fn write(dir: &Path) -> Result<Written, ReportError> {
    let run = collect::RunData::read(dir)?;
    let report = Report::build(&run);
    let data = dir.join("report");
    let accuracy: Vec<Value> = report.evaluations.iter().map(|e| e.to_json()).collect();
    files::write_jsonl(&data.join("accuracy.jsonl"), &accuracy)?;
    if let Some(e) = &report.edits {
        files::write_jsonl(&data.join("edits.jsonl"), &e.rows)?;
    }
    files::write_jsonl(&data.join("tokens.jsonl"), &report.samples.to_json())?;
    tensorboard::write(dir, &report.trainings)?;
    let written = Written {
        html: dir.join("report.html"),
        markdown: dir.join("report.md"),
        summary: markdown::summary(&report),
    };
    write_text(&written.html, &html::page(&report))?;
    write_text(&written.markdown, &written.summary)?;
    Ok(written)
}

/// Everything the HTML and markdown views show, computed once.
pub(crate) struct Report {
    /// The run directory's name, and its path as given.
    pub title: String,
    pub dir: String,
    pub script: Option<String>,
    /// Every config knob as `dotted.key = JSON value`.
    pub config: Vec<(String, String)>,
    pub stages: Vec<collect::StageRow>,
    pub trainings: Vec<collect::Training>,
    pub evaluations: Vec<collect::Evaluation>,
    pub edits: Option<EditComparison>,
    pub samples: tokens::Samples,
    /// What the stages that asked a paid API spent, in run order.
    pub spends: Vec<collect::StageSpend>,
}

impl Report {
    fn build(run: &collect::RunData) -> Self {
        let tokenizer = run.tokenizer();
        Self {
            title: run.name(),
            dir: run.dir.display().to_string(),
            script: run.script.clone(),
            config: run.config.as_ref().map(flatten).unwrap_or_default(),
            stages: run.stage_rows(),
            trainings: run.trainings(),
            evaluations: run.evaluations(),
            edits: run.edit_comparison(tokenizer.as_ref()),
            samples: tokens::Samples::pick(run, tokenizer.as_ref()),
            spends: run.spends.clone(),
        }
    }

    /// What every stage spent together.
    pub fn spend_total(&self) -> Spend {
        self.spends
            .iter()
            .fold(Spend::NONE, |total, s| total + s.spend)
    }
}

/// A cost as a table cell: dollars, or `-` when the price is unknown.
pub(crate) fn cost_text(spend: &Spend) -> String {
    spend.cost.map_or("-".into(), dollars)
}

/// `0.4321` as `43.2`.
pub(crate) fn pct(x: f64) -> String {
    format!("{:.1}", x * 100.0)
}

/// `{"a": {"b": 1}}` as `[("a.b", "1")]`, keys in order.
pub(crate) fn flatten(value: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_text(path: &Path, text: &str) -> Result<(), ReportError> {
    Ok(files::write_atomic(path, text.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_flattens_to_dotted_keys() {
        let flat = flatten(&json!({"rl": {"lr": 2e-5, "eps": 0.3}, "task": "ecqa", "x": {}}));
        assert_eq!(
            flat,
            [
                ("rl.eps".to_string(), "0.3".to_string()),
                ("rl.lr".to_string(), "0.00002".to_string()),
                ("task".to_string(), "\"ecqa\"".to_string()),
                ("x".to_string(), "{}".to_string()),
            ]
        );
    }
}
