//! Reading a run directory for the report: its config, its stages with their results and
//! what they spent on paid APIs, the metrics of its training stages, its evaluations, and
//! the tokenizer its models share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::ReportError;
use super::edits::{EditComparison, compare_edits};
use crate::files;
use crate::run::{RunDir, StageState};
use crate::spend::Spend;
use crate::tokenize::TextTokenizer;

/// A run directory, read once.
pub(crate) struct RunData {
    pub dir: PathBuf,
    pub script: Option<String>,
    pub config: Option<Value>,
    /// Every stage that started, in the order they started.
    pub states: Vec<(String, StageState)>,
    /// The results of the finished stages.
    pub results: BTreeMap<String, Value>,
    /// What the stages that asked a paid API spent in this run, in run order.
    pub spends: Vec<StageSpend>,
}

/// What one stage spent on paid APIs (a teacher behind an HTTP API).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StageSpend {
    pub stage: String,
    pub spend: Spend,
}

/// One line of the stage table.
pub(crate) struct StageRow {
    pub name: String,
    pub state: String,
    pub seconds: Option<f64>,
}

/// A training stage's per-step metrics (`metrics.jsonl`), as numeric columns by step.
pub(crate) struct Training {
    pub stage: String,
    /// The metrics file, relative to the run directory where it lies inside it.
    pub metrics: PathBuf,
    pub steps: Vec<f64>,
    /// Column name → one value per step (NaN where a step did not log it).
    pub columns: BTreeMap<String, Vec<f64>>,
    /// `done`, `running` or `interrupted`.
    pub state: &'static str,
    /// Lines of the metrics file that could not be read (a torn last line after a kill).
    pub unreadable: usize,
    /// When the stage finished, or started if it has not (names the TensorBoard file).
    pub last_event: f64,
}

/// One evaluation stage's accuracy with its 95% Wilson interval.
pub(crate) struct Evaluation {
    pub stage: String,
    pub n: u64,
    pub correct: u64,
    pub accuracy: f64,
    pub low: f64,
    pub high: f64,
}

impl Evaluation {
    pub fn to_json(&self) -> Value {
        json!({"stage": self.stage, "model": self.model(), "n": self.n, "correct": self.correct,
               "accuracy": self.accuracy, "low": self.low, "high": self.high})
    }

    /// `[6.5, 13.2]`: the interval in percent.
    pub fn ci_text(&self) -> String {
        format!("[{}, {}]", super::pct(self.low), super::pct(self.high))
    }

    /// The evaluated model's label: the stage name without `eval_`.
    pub fn model(&self) -> &str {
        self.stage.strip_prefix("eval_").unwrap_or(&self.stage)
    }
}

impl RunData {
    pub fn read(dir: &Path) -> Result<Self, ReportError> {
        let run = RunDir::existing(dir)?;
        let states = run.stages()?;
        let mut results = BTreeMap::new();
        let mut spends = Vec::new();
        for (name, state) in &states {
            if matches!(state, StageState::Done { .. }) {
                results.insert(name.clone(), run.result(name)?);
            }
            if let Some(spend) = run.spend(name)? {
                spends.push(StageSpend {
                    stage: name.clone(),
                    spend,
                });
            }
        }
        let config_path = dir.join("config.json");
        let config = if config_path.is_file() {
            Some(files::read_json(&config_path)?)
        } else {
            None
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            script: run.script(),
            config,
            states,
            results,
            spends,
        })
    }

    /// The run directory's own name (`math_full-seed0`).
    pub fn name(&self) -> String {
        // The name as given (a symlinked run keeps its own name); `.` and `..` resolved.
        let named = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        named(&self.dir)
            .or_else(|| named(&self.dir.canonicalize().ok()?))
            .unwrap_or_else(|| self.dir.display().to_string())
    }

    pub fn stage_rows(&self) -> Vec<StageRow> {
        self.states
            .iter()
            .map(|(name, state)| {
                // A reused stage took no time in this run.
                let (label, seconds) = match state {
                    StageState::Done {
                        reused_from: Some(origin),
                        ..
                    } => (format!("reused from {origin}"), None),
                    StageState::Done { seconds, .. } => (state.label().into(), Some(*seconds)),
                    _ => (state.label().into(), None),
                };
                StageRow {
                    name: name.clone(),
                    state: label,
                    seconds,
                }
            })
            .collect()
    }

    /// The training stages with their metrics: a finished one (a result with `path` and
    /// `steps`) from its folder in this run, else where the result says the model is; an
    /// unfinished one from its folder, so a failed or killed run shows how far it got.
    pub fn trainings(&self) -> Vec<Training> {
        let mut out = Vec::new();
        for (name, state) in &self.states {
            let result = self.results.get(name);
            if result.is_some_and(|r| r.get("steps").is_none()) {
                continue;
            }
            let own = self.dir.join(name).join("metrics.jsonl");
            let elsewhere = result
                .and_then(|r| r["path"].as_str())
                .map(|p| Path::new(p).join("metrics.jsonl"));
            let Some(path) = std::iter::once(own).chain(elsewhere).find(|p| p.is_file()) else {
                continue;
            };
            let Some(Metrics {
                steps,
                columns,
                unreadable,
            }) = read_metrics(&path)
            else {
                continue;
            };
            out.push(Training {
                stage: name.clone(),
                state: state.label(),
                metrics: path.strip_prefix(&self.dir).unwrap_or(&path).to_path_buf(),
                steps,
                columns,
                unreadable,
                last_event: state.last_event(),
            });
        }
        out
    }

    /// Every finished evaluation stage (a result with n, correct, accuracy and its interval).
    pub fn evaluations(&self) -> Vec<Evaluation> {
        let mut out = Vec::new();
        for (name, _) in &self.states {
            let Some(r) = self.results.get(name) else {
                continue;
            };
            let number = |k: &str| r.get(k).and_then(Value::as_f64);
            if let (Some(n), Some(correct), Some(accuracy), Some(low), Some(high)) = (
                number("n"),
                number("correct"),
                number("accuracy"),
                number("low"),
                number("high"),
            ) {
                out.push(Evaluation {
                    stage: name.clone(),
                    n: n as u64,
                    correct: correct as u64,
                    accuracy,
                    low,
                    high,
                });
            }
        }
        out
    }

    /// The teacher's and the GRM's edits of the same samples (stages `teacher_edits` and
    /// `grm_edits`), compared; distances in `tokenizer`'s tokens where there is one.
    pub fn edit_comparison(&self, tokenizer: Option<&TextTokenizer>) -> Option<EditComparison> {
        let teacher = self.results.get("teacher_edits")?.as_array()?;
        let grm = self.results.get("grm_edits")?.as_array()?;
        let math = self.config.as_ref().is_some_and(|c| c["kind"] == "math");
        Some(compare_edits(teacher, grm, tokenizer, math))
    }

    /// The first finished stage (in run order) whose result is token-level records
    /// (`reward`, `ref_prob`).
    pub fn reward_records(&self) -> Option<(&str, &Vec<Value>)> {
        self.states.iter().find_map(|(name, _)| {
            let records = self.results.get(name)?.as_array()?;
            let first = records.first()?;
            (first.get("reward").is_some() && first.get("ref_prob").is_some())
                .then_some((name.as_str(), records))
        })
    }

    /// Prediction text → its problem and gold solution, from every stage holding samples.
    pub fn gold_by_prediction(&self) -> BTreeMap<&str, (&str, &str)> {
        let mut map = BTreeMap::new();
        for result in self.results.values() {
            for r in result.as_array().into_iter().flatten() {
                if let (Some(p), Some(q), Some(s)) = (
                    r["prediction"].as_str(),
                    r["question"].as_str(),
                    r["solution"].as_str(),
                ) {
                    map.entry(p).or_insert((q, s));
                }
            }
        }
        map
    }

    /// The tokenizer of the run's models: the `tokenizer.json` of a model a training stage
    /// wrote (the policy's first), else of the config's `policy` (a folder or a GGUF file).
    pub fn tokenizer(&self) -> Option<TextTokenizer> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        let trained = ["policy", "grm"]
            .into_iter()
            .chain(self.results.keys().map(String::as_str));
        for name in trained {
            if let Some(p) = self.results.get(name).and_then(|r| r["path"].as_str()) {
                candidates.push(self.dir.join(name));
                candidates.push(PathBuf::from(p));
            }
        }
        let policy = self.config.as_ref().and_then(|c| c["policy"].as_str());
        candidates.extend(policy.map(PathBuf::from));
        candidates
            .iter()
            .find_map(|p| TextTokenizer::of_model(p).ok())
    }
}

/// What [`read_metrics`] finds (the fields of [`Training`] of the same names).
struct Metrics {
    steps: Vec<f64>,
    columns: BTreeMap<String, Vec<f64>>,
    unreadable: usize,
}

/// A `metrics.jsonl` as steps and numeric columns (NaN where a step did not log a column),
/// with the count of lines that could not be read (a line torn by a kill is not fatal);
/// `None` when the file cannot be read or holds no step.
fn read_metrics(path: &Path) -> Option<Metrics> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut steps = Vec::new();
    let mut columns: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut unreadable = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(Value::Object(row)) = serde_json::from_str::<Value>(line) else {
            unreadable += 1;
            continue;
        };
        let i = steps.len();
        let step = row.get("step").and_then(Value::as_f64);
        steps.push(step.unwrap_or((i + 1) as f64));
        for (key, value) in row.iter().filter(|(k, _)| *k != "step") {
            if let Some(v) = value.as_f64() {
                let column = columns.entry(key.clone()).or_default();
                column.resize(i, f64::NAN);
                column.push(v);
            }
        }
    }
    for column in columns.values_mut() {
        column.resize(steps.len(), f64::NAN);
    }
    (!steps.is_empty()).then_some(Metrics {
        steps,
        columns,
        unreadable,
    })
}
