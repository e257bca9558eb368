//! JSON APIs over HTTP, asked in batches: the teachers behind APIs ([`crate::teacher::http`])
//! and models behind inference servers ([`crate::engine::remote`]).
//!
//! A batch's requests go out concurrently up to a bound (the server batches concurrent
//! requests), each with a timeout; 429, 529, 5xx, timeouts and connection failures are
//! retried with exponential backoff and jitter, honouring `Retry-After`; other 4xx fail at
//! once. Every answer is cached ([`cache`]) as soon as it arrives, so a request answered once
//! is never sent again — not by a rerun after a failure, nor by the next run. Keys travel in
//! headers only: never logged, cached or written.

pub mod cache;
mod send;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use cache::Cache;

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
}

/// What to keep of a successful response body: the value cached and returned, or why the
/// body is not an answer (not retried: the server said something else).
pub type Parse = Arc<dyn Fn(&Value) -> Result<Value, String> + Send + Sync>;

/// A batch's answers in request order (each what [`Parse`] kept, or why it failed for good),
/// with how many were sent and how many came from the cache.
#[derive(Debug)]
pub struct Outcome {
    pub answers: Vec<Result<Value, String>>,
    pub sent: usize,
    pub cached: usize,
}

impl Outcome {
    /// Every answer, or the first failure with how many of the batch are missing (the others
    /// are cached: a rerun asks only for the missing ones).
    pub fn all(self) -> Result<Vec<Value>, String> {
        let missing = self.answers.iter().filter(|a| a.is_err()).count();
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
    /// each answer as it arrives, and return them all in order. `label` names the progress
    /// bar.
    pub fn run(
        &self,
        exchanges: &[Exchange],
        cache: &Arc<Cache>,
        parse: &Parse,
        label: &str,
    ) -> Outcome {
        let mut answers: Vec<Option<Result<Value, String>>> = exchanges
            .iter()
            .map(|e| cache.get(&e.key).map(Ok))
            .collect();
        let missing: Vec<usize> = (0..answers.len())
            .filter(|&i| answers[i].is_none())
            .collect();
        let cached = exchanges.len() - missing.len();
        if !missing.is_empty() {
            tracing::info!(
                "{}: {} request(s), {cached} from the cache",
                self.name,
                exchanges.len()
            );
            let bar = crate::progress::bar(missing.len() as u64, label);
            let done = self.runtime.block_on(async {
                let gate = Arc::new(tokio::sync::Semaphore::new(
                    self.transport.concurrency.max(1),
                ));
                let mut tasks = tokio::task::JoinSet::new();
                for &i in &missing {
                    let (gate, client, cache, parse) = (
                        gate.clone(),
                        self.client.clone(),
                        cache.clone(),
                        parse.clone(),
                    );
                    let (exchange, transport, name) = (
                        exchanges[i].clone(),
                        self.transport.clone(),
                        self.name.clone(),
                    );
                    tasks.spawn(async move {
                        let _permit = gate
                            .acquire_owned()
                            .await
                            .expect("the semaphore is never closed");
                        let reply =
                            send::with_retries(&client, &name, &exchange, &transport, &parse).await;
                        if let Ok(answer) = &reply
                            && let Err(e) = cache.put(&exchange.key, answer)
                        {
                            tracing::warn!("request cache: {e}");
                        }
                        (i, reply)
                    });
                }
                let mut done = Vec::new();
                while let Some(joined) = tasks.join_next().await {
                    bar.inc(1);
                    match joined {
                        Ok(result) => done.push(result),
                        Err(e) => tracing::error!("{}: a request task failed: {e}", self.name),
                    }
                }
                done
            });
            bar.finish_and_clear();
            for (i, reply) in done {
                answers[i] = Some(reply);
            }
        }
        Outcome {
            answers: answers
                .into_iter()
                .map(|a| a.unwrap_or_else(|| Err("the request was lost".to_string())))
                .collect(),
            sent: missing.len(),
            cached,
        }
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
