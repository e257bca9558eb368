//! Which teacher a string names, and running the protocol with it.
//!
//! Scripts and configs name a teacher with one string: `arith` and `reference` (the offline
//! rule teachers), `model:<path>` (a local model: the trained GRM of step 5),
//! `anthropic:<model>` and `openai:<model>@<base_url>` (HTTP APIs; `#chat` at the end for
//! `/v1/chat/completions`). [`TeacherSpec`] is that grammar; [`judge_named`] runs the
//! minimum-edit protocol with the teacher a spec names and [`judge_with_model`] with a model
//! already loaded, both as [`TeacherOptions`] say.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::budget::{Budget, Price};
use super::http::backend::Backend;
use super::http::{HttpOptions, HttpTeacher};
use super::minimum_edit::{EditRecord, Sample, judge_all, records};
use super::model::ModelTeacher;
use super::{Teacher, TeacherError, arith, reference};
use crate::engine::Engine;
use crate::http::{Cache, Transport};
use crate::model::{LoadOptions, Model};
use crate::tasks::{Fidelity, TaskKind};

/// Every form a teacher's name takes, as errors list them.
pub const FORMS: &str =
    "arith, reference, model:<path>, anthropic:<model> or openai:<model>@<base_url>";

/// A teacher as a string names it.
#[derive(Debug, Clone, PartialEq)]
pub enum TeacherSpec {
    Arith,
    Reference,
    /// A model directory or GGUF file, loaded as [`TeacherOptions::load`] says.
    Model(PathBuf),
    Http(Backend),
}

impl FromStr for TeacherSpec {
    type Err = TeacherError;

    fn from_str(s: &str) -> Result<Self, TeacherError> {
        match s {
            "arith" => Ok(Self::Arith),
            "reference" => Ok(Self::Reference),
            _ if s.starts_with("anthropic:") || s.starts_with("openai:") => Backend::parse(s)
                .map(Self::Http)
                .map_err(|message| TeacherError::Failed {
                    teacher: s.to_string(),
                    message,
                }),
            _ => match s.strip_prefix("model:") {
                Some(path) if !path.is_empty() => Ok(Self::Model(path.into())),
                _ => Err(TeacherError::Unknown(s.to_string())),
            },
        }
    }
}

impl fmt::Display for TeacherSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Arith => f.write_str("arith"),
            Self::Reference => f.write_str("reference"),
            Self::Model(path) => write!(f, "model:{}", path.display()),
            Self::Http(backend) => f.write_str(&backend.name()),
        }
    }
}

impl TeacherSpec {
    /// The rule teacher this names, which answers without a model or a network.
    pub fn offline(&self) -> Option<Box<dyn Teacher + Send + Sync>> {
        match self {
            Self::Arith => Some(Box::new(arith::Arith)),
            Self::Reference => Some(Box::new(reference::Reference)),
            Self::Model(_) | Self::Http(_) => None,
        }
    }
}

/// The new tokens a model teacher may write when `max_new_tokens` is unset: what the paper
/// allows.
pub const MODEL_TEACHER_MAX_NEW_TOKENS: usize = 2048;

/// The variable that names the HTTP teachers' cache when `cache` is not given.
pub const CACHE_ENV: &str = "RLMEC_TEACHER_CACHE";

/// The HTTP teachers' cache when neither `cache` nor [`CACHE_ENV`] names one.
pub const DEFAULT_CACHE: &str = "runs/teacher-cache.jsonl";

/// How a teacher answers (`minimum_edit`'s options besides `out`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TeacherOptions {
    pub fidelity: Fidelity,
    /// New tokens per answer; unset, a model teacher may write
    /// [`MODEL_TEACHER_MAX_NEW_TOKENS`] (what the paper allows) and an HTTP teacher
    /// `HttpOptions::default().max_tokens` (the public teacher's limit).
    pub max_new_tokens: Option<usize>,
    /// Questions a model teacher answers together.
    pub batch_size: usize,
    /// Where an HTTP teacher keeps every answer, so that no request is made twice.
    pub cache: PathBuf,
    /// HTTP requests in flight at once.
    pub concurrency: usize,
    pub timeout_s: f64,
    /// HTTP retries after the first attempt.
    pub retries: u32,
    /// An HTTP teacher's price, for the cost of its answers.
    pub teacher_price: Price,
    /// What an HTTP teacher's answers may take in all, cached ones included.
    pub teacher_budget: Budget,
    /// How a `model:<path>` teacher is loaded.
    #[serde(flatten)]
    pub load: LoadOptions,
}

impl Default for TeacherOptions {
    fn default() -> Self {
        let http = HttpOptions::default();
        Self {
            fidelity: Fidelity::Corrected,
            max_new_tokens: None,
            batch_size: 16,
            cache: std::env::var(CACHE_ENV)
                .unwrap_or_else(|_| DEFAULT_CACHE.into())
                .into(),
            concurrency: http.transport.concurrency,
            timeout_s: http.transport.timeout.as_secs_f64(),
            retries: http.transport.retries,
            teacher_price: http.price,
            teacher_budget: http.budget,
            load: LoadOptions::default(),
        }
    }
}

impl TeacherOptions {
    /// Checked whatever the teacher, so that a wrong value is found before it matters.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("batch_size", self.batch_size),
            ("concurrency", self.concurrency),
        ] {
            if value == 0 {
                return Err(format!("`{name}` must be at least 1"));
            }
        }
        self.teacher_price.validate()?;
        self.teacher_budget.validate(&self.teacher_price)?;
        self.http().map(|_| ())
    }

    fn http(&self) -> Result<HttpOptions, String> {
        let defaults = HttpOptions::default();
        Ok(HttpOptions {
            transport: Transport {
                concurrency: self.concurrency,
                timeout: crate::options::seconds(self.timeout_s, false)
                    .map_err(|e| format!("`timeout_s` {e}"))?,
                retries: self.retries,
                ..defaults.transport
            },
            max_tokens: self.max_new_tokens.unwrap_or(defaults.max_tokens),
            price: self.teacher_price,
            budget: self.teacher_budget,
            ..defaults
        })
    }
}

/// The minimum-edit protocol (steps 2 and 5) on `samples` of task `kind`, with the teacher
/// `spec` names: its records (the dropped samples logged).
pub fn judge_named(
    spec: &TeacherSpec,
    kind: TaskKind,
    samples: &[Sample],
    opts: &TeacherOptions,
) -> Result<Vec<EditRecord>, TeacherError> {
    let failed = |message: String| TeacherError::Failed {
        teacher: spec.to_string(),
        message,
    };
    opts.validate().map_err(failed)?;
    match spec {
        TeacherSpec::Model(path) => {
            let model = Model::load(path, opts.load).map_err(|e| failed(e.to_string()))?;
            judge_with_model(&model, kind, samples, opts)
        }
        TeacherSpec::Http(backend) => {
            // No key, no cache file: a run that cannot ask leaves nothing behind.
            let key = HttpTeacher::key_for(backend)?;
            let cache = Cache::open(&opts.cache)
                .map_err(|e| failed(format!("teacher cache {}: {e}", opts.cache.display())))?;
            let teacher = HttpTeacher::with_key(
                backend.clone(),
                kind,
                cache,
                opts.http().map_err(failed)?,
                key,
            )?;
            judge(&teacher, kind, samples, opts.fidelity)
        }
        TeacherSpec::Arith | TeacherSpec::Reference => {
            let teacher = spec.offline().expect("a rule teacher");
            judge(teacher.as_ref(), kind, samples, opts.fidelity)
        }
    }
}

/// [`judge_named`] with `model` as the teacher (the trained GRM): greedy answers with the
/// GRM templates, `opts.batch_size` questions together.
pub fn judge_with_model(
    model: &dyn Engine,
    kind: TaskKind,
    samples: &[Sample],
    opts: &TeacherOptions,
) -> Result<Vec<EditRecord>, TeacherError> {
    opts.validate().map_err(|message| TeacherError::Failed {
        teacher: model.name(),
        message,
    })?;
    let teacher = ModelTeacher {
        model,
        max_new_tokens: opts.max_new_tokens.unwrap_or(MODEL_TEACHER_MAX_NEW_TOKENS),
        batch_size: opts.batch_size,
        fidelity: opts.fidelity,
    };
    judge(&teacher, kind, samples, opts.fidelity)
}

fn judge(
    teacher: &dyn Teacher,
    kind: TaskKind,
    samples: &[Sample],
    fidelity: Fidelity,
) -> Result<Vec<EditRecord>, TeacherError> {
    let outcomes = judge_all(teacher, kind, samples, fidelity)?;
    Ok(records(&teacher.name(), outcomes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::teacher::Case;

    #[test]
    fn every_form_parses_and_prints_back() {
        for s in [
            "arith",
            "reference",
            "model:runs/x/grm",
            "anthropic:claude-test",
            "openai:qwen@http://localhost:8000",
            "openai:qwen@http://localhost:8000#chat",
        ] {
            let spec: TeacherSpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
        }
        assert_eq!(
            "model:runs/grm".parse::<TeacherSpec>().unwrap(),
            TeacherSpec::Model("runs/grm".into())
        );
        assert!("arith".parse::<TeacherSpec>().unwrap().offline().is_some());
        assert!(
            "model:m"
                .parse::<TeacherSpec>()
                .unwrap()
                .offline()
                .is_none()
        );
    }

    #[test]
    fn an_unknown_name_lists_every_form() {
        for bad in ["gemini:x", "model:", "Arith", ""] {
            let e = bad.parse::<TeacherSpec>().unwrap_err().to_string();
            assert_eq!(e, format!("unknown teacher `{bad}`: expected {FORMS}"));
        }
        let e = "openai:qwen"
            .parse::<TeacherSpec>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected openai:<model>@<base_url>"), "{e}");
    }

    #[test]
    fn a_named_rule_teacher_fixes_a_wrong_prediction() {
        let sample = Sample {
            case: Case {
                problem: "Ann has 5 pens. Then she doubles them.".into(),
                solution: "She has 5 * 2 = 10 pens.\nThe answer is 10".into(),
                prediction: "She has 5 * 2 = 12 pens.\nThe answer is 12".into(),
            },
            answer: "10".into(),
        };
        let records = judge_named(
            &TeacherSpec::Arith,
            TaskKind::Math,
            &[sample],
            &TeacherOptions::default(),
        )
        .unwrap();
        assert_eq!((records[0].error_step, records[0].is_correct), (0, true));
    }

    #[test]
    fn a_missing_anthropic_key_leaves_no_cache_file() {
        if std::env::var_os("ANTHROPIC_API_KEY").is_some() {
            eprintln!("skipping: ANTHROPIC_API_KEY is set here");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let opts = TeacherOptions {
            cache: dir.path().join("cache.jsonl"),
            ..TeacherOptions::default()
        };
        let spec: TeacherSpec = "anthropic:claude-test".parse().unwrap();
        let err = judge_named(&spec, TaskKind::Math, &[], &opts).unwrap_err();
        assert!(
            err.to_string().contains("ANTHROPIC_API_KEY is not set"),
            "{err}"
        );
        assert!(!opts.cache.exists(), "a cache file was made");
    }

    #[test]
    fn http_options_default_to_the_public_teachers() {
        let opts = TeacherOptions::default().http().unwrap();
        assert_eq!((opts.max_tokens, opts.transport.retries), (350, 6));
    }
}
