//! JSON APIs over HTTP, asked in batches: the teachers behind APIs ([`crate::teacher::http`])
//! and models behind inference servers ([`crate::engine::remote`]).
//!
//! A batch's requests go out concurrently up to a bound (the server batches concurrent
//! requests), each with a timeout; 429, 529, 5xx, timeouts and connection failures are
//! retried with exponential backoff and jitter, honouring `Retry-After`; other 4xx fail at
//! once. Every answer is cached ([`cache`]) as soon as it arrives, so a request answered once
//! is never sent again — not by a rerun after a failure, nor by the next run. Keys travel in
//! headers only: never logged, cached or written. Each answer's tokens (the API's `usage`)
//! are kept beside it and counted per batch; a [`Limit`] (a teacher's budget) can hold
//! requests back before they are sent.

mod batch;
pub mod cache;
mod send;
mod usage;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use cache::Cache;
pub use usage::{Tally, Usage};

/// How requests travel: concurrency, time limits, retries.
#[derive(Debug, Clone)]
pub struct Transport {
    /// Requests in flight at once.
    pub concurrency: usize,
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// First backoff; doubled per retry (with ±50% jitter), capped at `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Transport {
    fn default() -> Self {
        Self {
            concurrency: 4,
            timeout: Duration::from_secs(120),
            retries: 6,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// One request of a batch: where it goes, its headers (the key among them), its body, and
/// its identity in the cache ([`cache::key`]).
#[derive(Debug, Clone)]
pub struct Exchange {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub key: String,
    /// The most tokens the request can take (e.g. its body's bytes and its `max_tokens`): a
    /// limit counts this for a request until an answer of its batch shows what one takes.
    pub bound: Usage,
}

/// What to keep of a successful response body: the value cached and returned, or why the
/// body is not an answer (not retried: the server said something else).
pub type Parse = Arc<dyn Fn(&Value) -> Result<Value, String> + Send + Sync>;

/// Whether a batch may take this much: its answers so far (cached and received), the
/// requests in flight and the next one, each unanswered request counted at an estimate
/// ([`batch`]). A request goes out only when the limit says yes.
pub type Limit = dyn Fn(&Tally) -> bool;

/// A batch's answers in request order (each what [`Parse`] kept, or why it failed for good),
/// with how many were sent, came from the cache or were held back by the batch's limit, and
/// the tokens they took.
#[derive(Debug)]
pub struct Outcome {
    pub answers: Vec<Result<Value, String>>,
    /// Requests sent, answered or not.
    pub sent: usize,
    pub cached: usize,
    /// Requests not sent because the limit said no (their answers are errors saying so).
    pub held: usize,
    /// The tokens of the answers to the requests sent.
    pub sent_usage: Usage,
    /// The tokens of every answer: sent and cached.
    pub used_usage: Usage,
}

impl Outcome {
    /// How many requests have an answer (sent or cached).
    pub fn answered(&self) -> usize {
        self.answers.iter().filter(|a| a.is_ok()).count()
    }

    /// Every answer, or the first failure with how many of the batch are missing (the others
    /// are cached: a rerun asks only for the missing ones).
    pub fn all(self) -> Result<Vec<Value>, String> {
        let missing = self.answers.len() - self.answered();
        let total = self.answers.len();
        let mut out = Vec::with_capacity(total);
        for answer in self.answers {
            match answer {
                Ok(v) => out.push(v),
                Err(e) => {
                    return Err(format!(
                        "{e} ({missing} of {total} requests unanswered; the answers received are cached, a rerun asks only for the rest)"
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// A client for one API: a connection pool and the runtime its requests run on.
pub struct Client {
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    transport: Transport,
    /// Who is asked, for logs and errors (`openai:qwen@http://…`).
    name: String,
}

impl Client {
    pub fn new(name: &str, transport: Transport) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(transport.timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            runtime,
            transport,
            name: name.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Send every exchange not in `cache` (concurrently, retried as the module says), cache
    /// each answer as it arrives, and return them all in order. With a `limit`, a request
    /// goes out only while the limit allows what the batch's answers would then take
    /// ([`batch`]); the rest are held back. `label` names the progress bar.
    pub fn run(
        &self,
        exchanges: &[Exchange],
        cache: &Arc<Cache>,
        parse: &Parse,
        limit: Option<&Limit>,
        label: &str,
    ) -> Outcome {
        batch::run(self, exchanges, cache, parse, limit, label)
    }

    /// One request, one attempt, not cached: a probe of what a server supports, whose
    /// caller decides what a failure means (retrying a refusal that a server reports as a
    /// 5xx, as llama-cpp-python does, would only delay the answer).
    pub fn post_once(&self, exchange: &Exchange, parse: &Parse) -> Result<Value, String> {
        self.runtime
            .block_on(send::once(&self.client, exchange, parse))
    }

    /// `GET url` with `headers`: the JSON body of a 2xx answer (one attempt: callers poll).
    pub fn get(&self, url: &str, headers: &[(String, String)]) -> Result<Value, String> {
        self.runtime.block_on(send::get(&self.client, url, headers))
    }
}
