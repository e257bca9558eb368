//! Teachers behind HTTP APIs: `anthropic:<model>` (Messages API, key from
//! `ANTHROPIC_API_KEY`) and `openai:<model>@<base_url>` (any OpenAI-compatible server: vLLM,
//! SGLang, llama.cpp, Ollama; key from `OPENAI_API_KEY` if set).
//!
//! Requests travel through [`crate::http`] (bounded concurrency, retries honouring
//! `Retry-After`, every answer cached before it is used, so no paid request is ever made
//! twice). Keys are read from the environment only and never logged, cached or written.
//!
//! Every batch's requests, cached answers, tokens and (with a [`Price`]) dollars go to the
//! process's [`crate::spend`] ledger; a [`Budget`] holds requests back before they are sent
//! (see [`super::budget`]) and the teacher then fails saying how far it got.

pub mod backend;
mod examples;

use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::budget::{Budget, Price};
use super::prompts::{LOCATE_INSTRUCTION, REWRITE_INSTRUCTION};
use super::solution::numbered;
use super::{Case, Teacher, TeacherError};
use crate::http::{Cache, Client, Exchange, Limit, Parse, Tally, Transport, Usage, cache};
use crate::spend::{self, Spend};
use crate::tasks::TaskKind;
use backend::{Backend, Chat};

#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub transport: Transport,
    /// docs/method.md, step 2: the public teacher used temperature 0 and at most 350 tokens.
    pub max_tokens: usize,
    pub temperature: f64,
    pub price: Price,
    /// What this teacher's answers may take in all (cached ones included).
    pub budget: Budget,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            transport: Transport::default(),
            max_tokens: 350,
            temperature: 0.0,
            price: Price::default(),
            budget: Budget::default(),
        }
    }
}

pub struct HttpTeacher {
    backend: Backend,
    kind: TaskKind,
    opts: HttpOptions,
    cache: Arc<Cache>,
    client: Client,
    key: Option<String>,
    /// The answers this teacher has given so far (cached ones included), which its budget
    /// bounds.
    answered: Mutex<Tally>,
}

/// The locate question (step 2a), exactly as docs/method.md ("Exact strings") gives it.
pub fn locate_prompt(case: &Case) -> String {
    format!(
        "{LOCATE_INSTRUCTION}\n\nProblem: {}\n\nCorrect solution: {}\n\nPrediction: {}\n\nWhich step of prediction is error? Only write down the label of the first wrong step. If the prediction is correct, you need to write down correct. You should not write down any other words.",
        case.problem,
        numbered(&case.solution),
        numbered(&case.prediction)
    )
}

/// The rewrite question (step 2b): solution and prediction not numbered.
pub fn rewrite_prompt(problem: &str, solution: &str, prediction: &str) -> String {
    format!(
        "{REWRITE_INSTRUCTION}\nProblem: {problem}\nCorrect solution: {solution}\nPrediction: {prediction}"
    )
}

impl HttpTeacher {
    /// The teacher `spec` names: `anthropic:<model>` or `openai:<model>@<base_url>`.
    pub fn new(
        spec: &str,
        kind: TaskKind,
        cache: Cache,
        opts: HttpOptions,
    ) -> Result<Self, TeacherError> {
        let backend = Backend::parse(spec).map_err(|message| TeacherError::Failed {
            teacher: spec.to_string(),
            message,
        })?;
        Self::with_backend(backend, kind, cache, opts)
    }

    /// The teacher behind `backend`; the key comes from the backend's environment variable.
    pub fn with_backend(
        backend: Backend,
        kind: TaskKind,
        cache: Cache,
        opts: HttpOptions,
    ) -> Result<Self, TeacherError> {
        let key = Self::key_for(&backend)?;
        Self::with_key(backend, kind, cache, opts, key)
    }

    /// The key `backend` is asked with, from its environment variable: none for an
    /// OpenAI-compatible server that needs none, an error for Anthropic's API (checked
    /// before anything is made for the teacher, its cache file included).
    pub fn key_for(backend: &Backend) -> Result<Option<String>, TeacherError> {
        let key = backend.key();
        if key.is_none() && matches!(backend, Backend::Anthropic { .. }) {
            return Err(TeacherError::Failed {
                teacher: backend.name(),
                message: format!("{} is not set", backend.key_variable()),
            });
        }
        Ok(key)
    }

    /// The teacher behind `backend`, asked with `key`.
    pub fn with_key(
        backend: Backend,
        kind: TaskKind,
        cache: Cache,
        opts: HttpOptions,
        key: Option<String>,
    ) -> Result<Self, TeacherError> {
        let failed = |message: String| TeacherError::Failed {
            teacher: backend.name(),
            message,
        };
        opts.price.validate().map_err(failed)?;
        opts.budget.validate(&opts.price).map_err(failed)?;
        let client = Client::new(&backend.name(), opts.transport.clone()).map_err(failed)?;
        Ok(Self {
            backend,
            kind,
            opts,
            cache: Arc::new(cache),
            client,
            key,
            answered: Mutex::new(Tally::default()),
        })
    }

    /// The request that asks `chat`.
    fn exchange(&self, chat: &Chat) -> Exchange {
        let body = self
            .backend
            .body(chat, self.opts.max_tokens, self.opts.temperature);
        // A token takes at least a byte of the body.
        let bound = Usage {
            input_tokens: body.to_string().len() as u64,
            output_tokens: self.opts.max_tokens as u64,
        };
        Exchange {
            url: self.backend.url(),
            headers: self.backend.headers(self.key.as_deref()),
            key: cache::key(&self.backend.name(), self.backend.model(), &body),
            body,
            bound,
        }
    }

    /// Complete every chat (cached ones from the cache), in order, within the budget; what
    /// the batch took goes to the [`spend`] ledger.
    pub fn complete_all(&self, chats: &[Chat]) -> Result<Vec<String>, TeacherError> {
        let exchanges: Vec<Exchange> = chats.iter().map(|c| self.exchange(c)).collect();
        let backend = self.backend.clone();
        let parse: Parse = Arc::new(move |v: &Value| backend.text(v).map(Value::String));
        let (budget, price) = (self.opts.budget, self.opts.price);
        // Held for the batch: batches of one teacher count against its budget in turn.
        let mut answered = self.answered.lock().unwrap_or_else(|e| e.into_inner());
        let before = *answered;
        let within = move |batch: &Tally| budget.allows(&(before + *batch), &price);
        let limit = budget.limited().then_some(&within as &Limit);
        let outcome = self
            .client
            .run(&exchanges, &self.cache, &parse, limit, "teacher");
        *answered = before
            + Tally {
                answers: outcome.answered(),
                usage: outcome.used_usage,
            };
        spend::record(&Spend {
            requests: outcome.sent as u64,
            cached: outcome.cached as u64,
            input_tokens: outcome.sent_usage.input_tokens,
            output_tokens: outcome.sent_usage.output_tokens,
            cost: price.cost_if_known(outcome.sent_usage),
        });
        let failed = |message: String| TeacherError::Failed {
            teacher: self.backend.name(),
            message,
        };
        if outcome.held > 0 {
            let asked = before.answers + chats.len();
            return Err(failed(budget.reached(asked, &answered, &price)));
        }
        let answers = outcome.all().map_err(failed)?;
        Ok(answers
            .into_iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect())
    }
}

impl Teacher for HttpTeacher {
    fn locate(&self, case: &Case) -> Result<String, TeacherError> {
        Ok(self.locate_all(&[case])?.remove(0))
    }

    fn rewrite(&self, case: &Case, k: usize, prefix: &str) -> Result<String, TeacherError> {
        Ok(self.rewrite_all(&[(case, k, prefix)])?.remove(0))
    }

    fn name(&self) -> String {
        self.backend.name()
    }

    fn locate_all(&self, cases: &[&Case]) -> Result<Vec<String>, TeacherError> {
        let chats: Vec<Chat> = cases
            .iter()
            .map(|c| Chat {
                turns: vec![locate_prompt(c)],
                prefill: String::new(),
            })
            .collect();
        self.complete_all(&chats)
    }

    fn rewrite_all(&self, asks: &[(&Case, usize, &str)]) -> Result<Vec<String>, TeacherError> {
        let example = examples::worked_example(self.kind);
        let chats: Vec<Chat> = asks
            .iter()
            .map(|(c, _, prefix)| Chat {
                turns: vec![
                    rewrite_prompt(example.problem, example.solution, example.prediction),
                    format!("Correct prediction: {}", example.correction),
                    rewrite_prompt(&c.problem, &c.solution, &c.prediction),
                ],
                prefill: format!("Correct prediction: {prefix}").trim().to_string(),
            })
            .collect();
        self.complete_all(&chats)
    }
}
