//! Teachers behind HTTP APIs: `anthropic:<model>` (Messages API, key from
//! `ANTHROPIC_API_KEY`) and `openai:<model>@<base_url>` (any OpenAI-compatible server: vLLM,
//! SGLang, llama.cpp, Ollama; key from `OPENAI_API_KEY` if set).
//!
//! Requests go out concurrently up to a bound, each with a timeout; 429, 529, 5xx, timeouts
//! and connection failures are retried with exponential backoff and jitter, honouring
//! `Retry-After`; other 4xx fail at once. Every answer is cached ([`cache`]) before it is
//! used, so no paid request is ever made twice. Keys are read from the environment only and
//! never logged, cached or written.

pub mod backend;
pub mod cache;
mod examples;

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde_json::Value;

use super::prompts::{LOCATE_INSTRUCTION, REWRITE_INSTRUCTION};
use super::solution::numbered;
use super::{Case, Teacher, TeacherError};
use crate::tasks::TaskKind;
use backend::{Backend, Chat};
use cache::Cache;

#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Requests in flight at once.
    pub concurrency: usize,
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// First backoff; doubled per retry (with ±50% jitter), capped at `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// docs/method.md, step 2: the public teacher used temperature 0 and at most 350 tokens.
    pub max_tokens: usize,
    pub temperature: f64,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            timeout: Duration::from_secs(120),
            retries: 6,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_tokens: 350,
            temperature: 0.0,
        }
    }
}

pub struct HttpTeacher {
    backend: Backend,
    kind: TaskKind,
    opts: HttpOptions,
    cache: Arc<Cache>,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    key: Option<String>,
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

/// Why one request failed for good.
enum Failure {
    Retryable(String, Option<Duration>),
    Fatal(String),
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
        let failed = |message: String| TeacherError::Failed {
            teacher: backend.name(),
            message,
        };
        let key = std::env::var(backend.key_variable())
            .ok()
            .filter(|k| !k.is_empty());
        if key.is_none() && matches!(backend, Backend::Anthropic { .. }) {
            return Err(failed(format!("{} is not set", backend.key_variable())));
        }
        let client = reqwest::Client::builder()
            .timeout(opts.timeout)
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| failed(e.to_string()))?;
        Ok(Self {
            backend,
            kind,
            opts,
            cache: Arc::new(cache),
            client,
            runtime,
            key,
        })
    }

    /// Complete every chat (cached ones from the cache), in order.
    pub fn complete_all(&self, chats: &[Chat]) -> Result<Vec<String>, TeacherError> {
        let failed = |message: String| TeacherError::Failed {
            teacher: self.backend.name(),
            message,
        };
        let bodies: Vec<Value> = chats
            .iter()
            .map(|c| {
                self.backend
                    .body(c, self.opts.max_tokens, self.opts.temperature)
            })
            .collect();
        let keys: Vec<String> = bodies
            .iter()
            .map(|b| cache::key(&self.backend.name(), self.backend.model(), b))
            .collect();
        let mut out: Vec<Option<String>> = keys.iter().map(|k| self.cache.get(k)).collect();
        let missing: Vec<usize> = (0..out.len()).filter(|&i| out[i].is_none()).collect();
        if missing.is_empty() {
            return Ok(out.into_iter().map(|o| o.expect("cached")).collect());
        }
        tracing::info!(
            "{}: {} request(s), {} from the cache",
            self.backend.name(),
            chats.len(),
            chats.len() - missing.len()
        );
        let bar = crate::progress::bar(missing.len() as u64, "teacher");
        let results: Vec<(usize, Result<String, String>)> = self.runtime.block_on(async {
            let gate = Arc::new(tokio::sync::Semaphore::new(self.opts.concurrency.max(1)));
            let mut tasks = tokio::task::JoinSet::new();
            for &i in &missing {
                let (gate, client, cache) = (gate.clone(), self.client.clone(), self.cache.clone());
                let (backend, opts, key) =
                    (self.backend.clone(), self.opts.clone(), self.key.clone());
                let (body, cache_key) = (bodies[i].clone(), keys[i].clone());
                tasks.spawn(async move {
                    let _permit = gate
                        .acquire_owned()
                        .await
                        .expect("the semaphore is never closed");
                    let reply = send(&client, &backend, key.as_deref(), &body, &opts).await;
                    if let Ok(text) = &reply
                        && let Err(e) = cache.put(&cache_key, text)
                    {
                        tracing::warn!("teacher cache: {e}");
                    }
                    (i, reply)
                });
            }
            let mut done = Vec::new();
            while let Some(joined) = tasks.join_next().await {
                bar.inc(1);
                done.push(joined.unwrap_or_else(|e| (usize::MAX, Err(e.to_string()))));
            }
            done
        });
        bar.finish_and_clear();
        let mut first_error = None;
        for (i, r) in results {
            match r {
                Ok(text) if i < out.len() => out[i] = Some(text),
                Ok(_) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        // Answers that did arrive are cached: a rerun asks only for the failed ones.
        if let Some(e) = first_error {
            return Err(failed(e));
        }
        Ok(out
            .into_iter()
            .map(|o| o.expect("every request answered"))
            .collect())
    }
}

async fn send(
    client: &reqwest::Client,
    backend: &Backend,
    key: Option<&str>,
    body: &Value,
    opts: &HttpOptions,
) -> Result<String, String> {
    let mut attempt = 0;
    loop {
        match attempt_once(client, backend, key, body).await {
            Ok(text) => return Ok(text),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retryable(e, retry_after)) => {
                if attempt >= opts.retries {
                    return Err(format!("{e} (after {} attempts)", attempt + 1));
                }
                let backoff = opts.backoff.as_secs_f64() * 2f64.powi(attempt as i32);
                let jittered = backoff * rand::thread_rng().gen_range(0.5..1.5);
                let wait = retry_after
                    .unwrap_or(Duration::from_secs_f64(jittered))
                    .min(opts.max_backoff);
                tracing::debug!(
                    "{}: {e}; retrying in {:.1}s",
                    backend.name(),
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

async fn attempt_once(
    client: &reqwest::Client,
    backend: &Backend,
    key: Option<&str>,
    body: &Value,
) -> Result<String, Failure> {
    let mut request = client.post(backend.url()).json(body);
    request = match backend {
        Backend::Anthropic { .. } => request
            .header("x-api-key", key.unwrap_or_default())
            .header("anthropic-version", "2023-06-01"),
        Backend::OpenAi { .. } => match key {
            Some(k) => request.bearer_auth(k),
            None => request,
        },
    };
    let response = request.send().await.map_err(|e| {
        let what = if e.is_timeout() {
            "timed out"
        } else {
            "connection failed"
        };
        Failure::Retryable(format!("request {what}"), None)
    })?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(Duration::from_secs_f64);
    let text = response
        .text()
        .await
        .map_err(|_| Failure::Retryable("reading the response failed".into(), None))?;
    let excerpt: String = text.chars().take(200).collect();
    match status.as_u16() {
        200..=299 => {
            let value: Value = serde_json::from_str(&text).map_err(|_| {
                Failure::Fatal(format!("malformed JSON in the response: {excerpt}"))
            })?;
            backend.text(&value).map_err(Failure::Fatal)
        }
        429 | 529 | 500..=599 => Err(Failure::Retryable(
            format!("HTTP {status}: {excerpt}"),
            retry_after,
        )),
        _ => Err(Failure::Fatal(format!("HTTP {status}: {excerpt}"))),
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
