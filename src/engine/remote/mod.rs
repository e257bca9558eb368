//! A model behind an OpenAI-compatible server (vLLM, SGLang, llama.cpp's servers) as an
//! [`Engine`]: `openai:<name>@<base_url>` with the tokenizer its model shares.
//!
//! Requests travel through [`crate::http`]: concurrently up to `concurrency` (servers batch
//! concurrent requests, so this is the batch size), each with a timeout, retried on 429, 5xx
//! and dropped connections (honouring `Retry-After`), every answer cached as it arrives. A
//! call whose requests partly fail returns an error saying how many are missing; the answers
//! it got are cached, so a rerun (a resumed stage) asks only for the rest. The cache is keyed
//! by the served model's name, the caller's `identity` and the request body — not by the
//! URL, so a model served again on another port (as a stage's server is) still finds its
//! answers, and a model retrained under the same name does not (its identity changes).
//!
//! Connecting checks the server once ([`probe`]): that it answers at `/v1/models`, that it
//! tokenizes like our tokenizer, what its completions support.
//!
//! Generation ([`generate`], bodies in [`completions`]) takes and returns what the native
//! engine's does, with these differences:
//! - Prompts travel as text (our ids decoded, special tokens kept), as every server accepts.
//! - `ids` are the server's own where it returns them (vLLM), else our encoding of the
//!   returned text; either way with the EOS that ended the completion. Where a stop string
//!   ended it, the server's ids include the tokens that completed it, as native ids do, but
//!   our encoding of the text (which the server cuts before the stop string) does not.
//! - `logprobs` are the server's for the sampled tokens where they cover exactly those ids,
//!   else empty: when the server gives none (llama-cpp-python without `logits_all`, or the
//!   `logprobs: false` option) or its tokens do not spell the text. vLLM reports the raw
//!   model's (`--logprobs-mode raw_logprobs`, its default), the native engine's quantity;
//!   other servers may report them after temperature and filtering.
//! - `finish` is `stop` when the server names the stop string that ended a completion
//!   (vLLM's `stop_reason`) or, as llama.cpp's servers name none, when the tokens it reports
//!   (with `logprobs`) go on past the text; otherwise a `stop` is `eos`.
//! - Sampling follows the server's generator: the same seed gives other samples than
//!   natively (but the same ones on every rerun against the same server).
//! - `batch_size` has no effect (`concurrency` bounds the requests in flight); nor has
//!   `min_new_tokens` on llama-cpp-python, which ignores `min_tokens`.
//!
//! Scoring ([`score`]) needs the server's prompt log-probabilities (vLLM's); others are
//! refused with an error pointing to native scoring.

pub mod completions;
pub mod generate;
pub mod probe;
pub mod score;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::Engine;
use crate::generate::{GenerateError, GenerateOptions, Generation, Request};
use crate::http::{Cache, Client, Exchange, Parse, Transport, cache};
use crate::teacher::http::backend::Backend;
use crate::tokenize::TextTokenizer;

/// How to reach and use a model behind a server.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteOptions {
    /// The model folder or GGUF file whose tokenizer the served model shares (required).
    pub tokenizer: Option<PathBuf>,
    /// A JSONL file of answered requests (created if absent); unset: kept in memory only.
    pub cache: Option<PathBuf>,
    /// Mixed into every cache key: what makes the served model this model (e.g. the
    /// fingerprint of the training that made it), so a model served again under the same
    /// name after retraining never gets the old model's answers.
    pub identity: String,
    /// Requests in flight at once (the server batches them).
    pub concurrency: usize,
    /// Seconds one request may take.
    pub timeout_s: f64,
    /// Retries of a request after its first attempt.
    pub retries: u32,
    /// Seconds before the first retry (doubled for each next one), unless the server says
    /// when (`Retry-After`).
    pub backoff_s: f64,
    /// Check once that the server tokenizes like `tokenizer`.
    pub check_tokenizer: bool,
    /// Ask for the sampled tokens' log-probabilities.
    pub logprobs: bool,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            tokenizer: None,
            cache: None,
            identity: String::new(),
            concurrency: 32,
            timeout_s: 600.0,
            retries: 6,
            backoff_s: 1.0,
            check_tokenizer: true,
            logprobs: true,
        }
    }
}

impl RemoteOptions {
    fn transport(&self) -> Result<Transport, RemoteError> {
        let seconds = |option: &'static str, value: f64| {
            crate::options::seconds(value, false)
                .map_err(|message| RemoteError::Option { option, message })
        };
        if self.concurrency == 0 {
            return Err(RemoteError::Option {
                option: "concurrency",
                message: "must be at least 1".into(),
            });
        }
        Ok(Transport {
            concurrency: self.concurrency,
            timeout: seconds("timeout_s", self.timeout_s)?,
            retries: self.retries,
            backoff: seconds("backoff_s", self.backoff_s)?,
            ..Transport::default()
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("`{spec}`: {message}")]
    Spec { spec: String, message: String },
    #[error(
        "`{spec}`: option `tokenizer` is required: the model folder or GGUF file whose tokenizer the served model shares"
    )]
    NoTokenizer { spec: String },
    #[error("option `{option}`: {message}")]
    Option {
        option: &'static str,
        message: String,
    },
    #[error("option `tokenizer`: {0}")]
    Tokenizer(#[from] crate::model::ModelError),
    #[error("option `cache`: {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Client(String),
    #[error("{spec}: no OpenAI-compatible server answers: {message}")]
    Unreachable { spec: String, message: String },
    #[error("{spec}: the server refused a one-token completion: {message}")]
    Refused { spec: String, message: String },
    #[error(transparent)]
    TokenizerMismatch(Box<TokenizerMismatch>),
}

/// A server that tokenizes the probe ([`probe::check_tokenizer`]) otherwise than we do.
#[derive(Debug, thiserror::Error)]
#[error(
    "{spec} tokenizes differently from {}: the probe {probe:?} is, from token {}:\n  ours:   {} of {} tokens\n  server: {} of {} tokens\nfirst difference at token {at}. Give `tokenizer` the served model's folder or GGUF file, or set `check_tokenizer: false` to use the server unchecked",
    tokenizer.display(), shown_from(*at), around(ours, *at), ours.len(), around(theirs, *at), theirs.len()
)]
pub struct TokenizerMismatch {
    pub spec: String,
    pub tokenizer: PathBuf,
    pub probe: String,
    pub ours: Vec<i64>,
    pub theirs: Vec<i64>,
    /// The first position where they differ.
    pub at: usize,
}

/// Where the ids shown in a message start: a few before the first difference.
fn shown_from(at: usize) -> usize {
    at.saturating_sub(5)
}

/// At most 20 ids of a list from [`shown_from`] `at`, for messages.
fn around(ids: &[i64], at: usize) -> String {
    const SHOWN: usize = 20;
    let start = shown_from(at).min(ids.len());
    let end = (start + SHOWN).min(ids.len());
    let shown: Vec<String> = ids[start..end].iter().map(i64::to_string).collect();
    let before = if start > 0 { "…, " } else { "" };
    let after = if end < ids.len() { ", …" } else { "" };
    format!("[{before}{}{after}]", shown.join(", "))
}

/// What the server's completions support ([`probe::features`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// Several completions per request (`n`).
    pub n: bool,
    /// The sampled tokens' log-probabilities (asked for, and given).
    pub logprobs: bool,
}

/// A model behind an OpenAI-compatible server.
pub struct RemoteModel {
    backend: Backend,
    tokenizer: TextTokenizer,
    eos: Vec<i64>,
    client: Client,
    cache: Arc<Cache>,
    /// The cache keys' first part: the served model and the caller's identity of it.
    cache_identity: String,
    /// `OPENAI_API_KEY`, when set (sent as a header only: never logged or cached).
    key: Option<String>,
    features: Features,
    /// Whether the server scores, once a call has asked ([`score`]).
    scoring: std::sync::OnceLock<Result<(), String>>,
}

impl RemoteModel {
    /// The model `spec` (`openai:<name>@<base_url>`) names, checked as [`probe`] says.
    pub fn connect(spec: &str, opts: &RemoteOptions) -> Result<Self, RemoteError> {
        let backend = engine_backend(spec)?;
        let path = opts
            .tokenizer
            .as_ref()
            .ok_or_else(|| RemoteError::NoTokenizer {
                spec: spec.to_string(),
            })?;
        let (tokenizer, special) = crate::model::tokenizer_of(path)?;
        // Options checked before the cache file is made: a refused call leaves nothing.
        let transport = opts.transport()?;
        let cache = match &opts.cache {
            Some(path) => Cache::open(path).map_err(|source| RemoteError::Cache {
                path: path.clone(),
                source,
            })?,
            None => Cache::in_memory(),
        };
        let client = Client::new(&backend.name(), transport).map_err(RemoteError::Client)?;
        let mut remote = Self {
            cache_identity: format!("openai:{}\u{0}{}", backend.model(), opts.identity),
            key: backend.key(),
            backend,
            tokenizer,
            eos: special.eos,
            client,
            cache: Arc::new(cache),
            features: Features {
                n: false,
                logprobs: false,
            },
            scoring: std::sync::OnceLock::new(),
        };
        probe::served_models(&remote)?;
        if opts.check_tokenizer {
            probe::check_tokenizer(&remote, path, special.bos)?;
        }
        remote.features = probe::features(&remote, opts.logprobs)?;
        tracing::info!(
            "{}: connected (n > 1: {}, log-probabilities: {})",
            remote.name(),
            remote.features.n,
            remote.features.logprobs
        );
        Ok(remote)
    }

    /// What the server's completions support.
    pub fn features(&self) -> Features {
        self.features
    }

    /// The model name requests give.
    fn served_model(&self) -> &str {
        self.backend.model()
    }

    fn base_url(&self) -> &str {
        match &self.backend {
            Backend::OpenAi { base_url, .. } | Backend::Anthropic { base_url, .. } => base_url,
        }
    }

    fn headers(&self) -> Vec<(String, String)> {
        self.backend.headers(self.key.as_deref())
    }

    /// A request to `url` (the completions endpoint when `None`) with this engine's headers;
    /// `key` caches its answer (empty: a probe, not cached). Engines bound nothing.
    fn exchange(&self, url: Option<String>, body: Value, key: String) -> Exchange {
        Exchange {
            url: url.unwrap_or_else(|| self.backend.url()),
            headers: self.headers(),
            body,
            key,
            bound: Default::default(),
        }
    }

    /// One `/v1/completions` request per body, through the cache; each answer is what
    /// `parse` keeps of it.
    fn ask(
        &self,
        bodies: Vec<Value>,
        parse: &Parse,
        label: &str,
    ) -> Result<Vec<Value>, GenerateError> {
        let exchanges: Vec<Exchange> = bodies
            .into_iter()
            .map(|body| {
                let key = cache::key(&self.cache_identity, self.served_model(), &body);
                self.exchange(None, body, key)
            })
            .collect();
        self.client
            .run(&exchanges, &self.cache, parse, None, label)
            .all()
            .map_err(|e| GenerateError::Server(format!("{}: {label}: {e}", self.name())))
    }
}

/// The backend of an engine spec: `openai:<name>@<base_url>` only (an engine needs
/// `/v1/completions`: token-level prompts and answers, which chat APIs do not give).
fn engine_backend(spec: &str) -> Result<Backend, RemoteError> {
    let refuse = |message: &str| RemoteError::Spec {
        spec: spec.to_string(),
        message: message.to_string(),
    };
    match Backend::parse(spec) {
        Ok(backend @ Backend::OpenAi { chat: false, .. }) => Ok(backend),
        Ok(Backend::OpenAi { chat: true, .. }) => Err(refuse(
            "an engine needs `/v1/completions` (prompts as they are, not chat turns): drop `#chat`",
        )),
        Ok(Backend::Anthropic { .. }) => Err(refuse(
            "Anthropic's API serves chat, not a model's completions: an engine needs `openai:<name>@<base_url>`",
        )),
        Err(_) => Err(refuse("expected `openai:<name>@<base_url>`")),
    }
}

impl Engine for RemoteModel {
    fn name(&self) -> String {
        self.backend.name()
    }

    fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    fn eos(&self) -> &[i64] {
        &self.eos
    }

    fn generate(
        &self,
        requests: &[Request],
        opts: &GenerateOptions,
    ) -> Result<Vec<Generation>, GenerateError> {
        generate::generate(self, requests, opts)
    }

    /// `batch_size` has no effect: `concurrency` bounds the requests in flight.
    fn score(
        &self,
        pairs: &[(Vec<i64>, Vec<i64>)],
        _batch_size: usize,
    ) -> Result<Vec<Vec<f32>>, GenerateError> {
        score::score(self, pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_specs_are_openai_completions_only() {
        assert!(engine_backend("openai:m@http://h:1/").is_ok());
        for (spec, says) in [
            ("openai:m@http://h#chat", "#chat"),
            ("anthropic:claude", "openai:<name>@<base_url>"),
            ("openai:m", "expected"),
        ] {
            let err = engine_backend(spec).err().unwrap().to_string();
            assert!(err.contains(spec) && err.contains(says), "{err}");
        }
    }

    #[test]
    fn options_are_checked_and_name_themselves() {
        let err = RemoteModel::connect("openai:m@http://127.0.0.1:9", &RemoteOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("option `tokenizer` is required"), "{err}");
        let bad = RemoteOptions {
            timeout_s: 0.0,
            ..RemoteOptions::default()
        };
        assert!(
            bad.transport()
                .unwrap_err()
                .to_string()
                .contains("`timeout_s`")
        );
        let bad = RemoteOptions {
            concurrency: 0,
            ..RemoteOptions::default()
        };
        assert!(
            bad.transport()
                .unwrap_err()
                .to_string()
                .contains("`concurrency`")
        );
    }

    #[test]
    fn a_remote_model_is_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<RemoteModel>();
    }

    #[test]
    fn long_id_lists_are_cut_around_the_difference_for_messages() {
        assert_eq!(around(&[1, 2], 1), "[1, 2]");
        let long: Vec<i64> = (0..40).collect();
        let first_20: Vec<String> = (0..20).map(|i: i64| i.to_string()).collect();
        assert_eq!(around(&long, 3), format!("[{}, …]", first_20.join(", ")));
        assert!(around(&long, 30).starts_with("[…, 25, 26"));
        assert!(around(&long, 30).ends_with(", 39]"));
    }
}
