//! What a remote engine asks its server once, before any work: that it serves the model,
//! that it tokenizes like our tokenizer, and what its completions support.
//!
//! The tokenizer check matters because prompts travel as text and come back as text: a
//! server whose model splits text differently would answer about other tokens than the ones
//! we record. Servers expose tokenization at different places — vLLM and llama.cpp's server
//! at `/tokenize`, llama-cpp-python at `/extras/tokenize` — each reading its own field for
//! the text, so one body carries all three; a server with neither is used unchecked, with a
//! warning.
//!
//! Support is found by asking, because servers fail differently on what they lack:
//! llama-cpp-python answers `n` > 1 with one completion and log-probabilities (without
//! `logits_all`) with HTTP 500, llama.cpp's server refuses `n` > 1. Each probe is a
//! one-token completion, sent once (a refusal is an answer, not a hiccup to retry).

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use super::completions::{self, Ask};
use super::{Features, RemoteError, RemoteModel, TokenizerMismatch};
use crate::engine::Engine;
use crate::generate::GenerateOptions;
use crate::generate::sampler::SamplingParams;
use crate::http::Parse;

/// The text probed: spaces, digits, punctuation, a newline run, accents and an emoji, the
/// places where tokenizers of one family still differ. [`probe_text`] adds a special token.
pub const PROBE: &str = "Question: 12 + 7 = 19?\n\n  Answer:\tcafé, naïve 😀 (x_1)";

/// [`PROBE`] followed by the text of the first EOS token (special tokens appear in prompts
/// through chat templates, and a server must read them as one token, as we do).
pub fn probe_text(remote: &RemoteModel) -> String {
    let eos = remote
        .eos
        .first()
        .and_then(|&id| remote.tokenizer.decode(&[id]).ok())
        .unwrap_or_default();
    format!("{PROBE}{eos}")
}

/// `GET /v1/models`: an error naming the URL when no server answers there, a warning when
/// the model is not among those it serves.
pub fn served_models(remote: &RemoteModel) -> Result<(), RemoteError> {
    let url = format!("{}/v1/models", remote.base_url());
    let listed = remote
        .client
        .get(&url, &remote.headers())
        .map_err(|message| RemoteError::Unreachable {
            spec: remote.name(),
            message,
        })?;
    let served: Vec<&str> = listed["data"]
        .as_array()
        .map(|models| models.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    if !served.contains(&remote.served_model()) {
        tracing::warn!(
            "{}: the server lists {served:?}, not `{}`; requests name it anyway",
            remote.name(),
            remote.served_model()
        );
    }
    Ok(())
}

/// How the server's tokenization of the probe compares with ours.
#[derive(Debug, Clone, PartialEq)]
pub enum Agreement {
    Same,
    /// The same after a BOS the server puts first (into prompts as well).
    ServerAddsBos,
    /// They differ first at this position.
    Differs(usize),
}

/// How `theirs` (the server's ids of the probe) compares with `ours`; `bos` is the BOS id,
/// when the model has one.
pub fn compare(ours: &[i64], theirs: &[i64], bos: Option<i64>) -> Agreement {
    if ours == theirs {
        return Agreement::Same;
    }
    if bos.is_some() && theirs.first() == bos.as_ref() && &theirs[1..] == ours {
        return Agreement::ServerAddsBos;
    }
    let at = ours
        .iter()
        .zip(theirs)
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(theirs.len()));
    Agreement::Differs(at)
}

/// Refuse a server that tokenizes the probe differently from `tokenizer` (the path given);
/// warn when it adds BOS, or when it has no tokenize endpoint to ask.
pub fn check_tokenizer(
    remote: &RemoteModel,
    tokenizer: &Path,
    bos: Option<i64>,
) -> Result<(), RemoteError> {
    let probe = probe_text(remote);
    let ours = remote
        .tokenizer
        .encode(&probe)
        .map_err(|e| RemoteError::Client(format!("encoding the tokenizer probe: {e}")))?;
    let parse: Parse = Arc::new(|v: &Value| {
        v["tokens"]
            .as_array()
            .filter(|t| t.iter().all(Value::is_i64))
            .map(|t| Value::Array(t.clone()))
            .ok_or_else(|| format!("no `tokens` ids in the answer: {v}"))
    });
    let mut failures = Vec::new();
    for endpoint in ["/tokenize", "/extras/tokenize"] {
        // vLLM reads `prompt`, llama.cpp `content`, llama-cpp-python `input`. Each is asked to
        // tokenize as its completions do: vLLM with nothing added (as we ask of its
        // completions), llama.cpp with the special tokens its completions add.
        let body = json!({
            "model": remote.served_model(),
            "prompt": probe, "content": probe, "input": probe,
            "add_special_tokens": false, "add_special": true,
        });
        let url = format!("{}{endpoint}", remote.base_url());
        let exchange = remote.exchange(Some(url), body, String::new());
        let theirs: Vec<i64> = match remote.client.post_once(&exchange, &parse) {
            Ok(tokens) => serde_json::from_value(tokens).unwrap_or_default(),
            Err(e) => {
                failures.push(format!("{}: {e}", exchange.url));
                continue;
            }
        };
        return match compare(&ours, &theirs, bos) {
            Agreement::Same => Ok(()),
            Agreement::ServerAddsBos => {
                tracing::warn!(
                    "{}: the server puts BOS before every prompt (the native engine never adds it): its log-probabilities are of prompts with BOS",
                    remote.name()
                );
                Ok(())
            }
            Agreement::Differs(at) => Err(RemoteError::TokenizerMismatch(Box::new(
                TokenizerMismatch {
                    spec: remote.name(),
                    tokenizer: tokenizer.to_path_buf(),
                    probe,
                    ours,
                    theirs,
                    at,
                },
            ))),
        };
    }
    tracing::warn!(
        "{}: cannot check that the server tokenizes like {} ({}); continuing unchecked",
        remote.name(),
        tokenizer.display(),
        failures.join("; ")
    );
    Ok(())
}

/// What the server's completions support, found by one-token completions of the probe:
/// log-probabilities (when `logprobs` asks for them; a refusal naming them turns them off,
/// with a warning) and `n` > 1. Any other refusal is an error: every request would meet it.
pub fn features(remote: &RemoteModel, logprobs: bool) -> Result<Features, RemoteError> {
    let probe = probe_text(remote);
    let sampled = GenerateOptions {
        sampling: SamplingParams {
            temperature: 1.0,
            ..SamplingParams::greedy()
        },
        ..GenerateOptions::default()
    };
    let parse: Parse = Arc::new(|v| completions::choices(v).map(|choices| json!(choices.len())));
    let complete = |n: usize, logprobs: bool| {
        let ask = Ask {
            prompt: &probe,
            max_tokens: 1,
            n,
            seed: Some(0),
        };
        let body = completions::generation_body(
            remote.served_model(),
            &ask,
            &sampled,
            remote.tokenizer.vocab_size(),
            logprobs,
        );
        let exchange = remote.exchange(None, body, String::new());
        remote
            .client
            .post_once(&exchange, &parse)
            .map(|count| count.as_u64().unwrap_or(0) as usize)
    };
    let refused = |message: String| RemoteError::Refused {
        spec: remote.name(),
        message,
    };
    let logprobs = match complete(1, logprobs) {
        Ok(_) => logprobs,
        Err(e) if logprobs && names_logprobs(&e) => {
            tracing::warn!(
                "{}: the server gives no log-probabilities ({e}); generations come without them",
                remote.name()
            );
            complete(1, false).map_err(refused)?;
            false
        }
        Err(e) => return Err(refused(e)),
    };
    let n = match complete(2, logprobs) {
        Ok(count) => count == 2,
        Err(e) => {
            tracing::debug!("{}: n = 2 refused: {e}", remote.name());
            false
        }
    };
    if !n {
        tracing::info!(
            "{}: the server gives one completion per request: each sample is its own request",
            remote.name()
        );
    }
    Ok(Features { n, logprobs })
}

/// Whether a refusal is about log-probabilities (vLLM's limit on them, llama-cpp-python's
/// "logprobs is not supported for models created with logits_all=False").
fn names_logprobs(message: &str) -> bool {
    let lower = message.to_lowercase();
    lower.contains("logprob") || lower.contains("logits_all")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_token_lists() {
        assert_eq!(compare(&[5, 6, 7], &[5, 6, 7], Some(1)), Agreement::Same);
        assert_eq!(
            compare(&[5, 6, 7], &[1, 5, 6, 7], Some(1)),
            Agreement::ServerAddsBos
        );
        assert_eq!(
            compare(&[5, 6, 7], &[1, 5, 6, 7], None),
            Agreement::Differs(0)
        );
        assert_eq!(
            compare(&[5, 6, 7], &[5, 8, 7], Some(1)),
            Agreement::Differs(1)
        );
        assert_eq!(compare(&[5, 6, 7], &[5, 6], Some(1)), Agreement::Differs(2));
    }

    #[test]
    fn refusals_about_logprobs_are_recognised() {
        assert!(names_logprobs(
            "HTTP 500: {\"error\": \"logprobs is not supported for models created with logits_all=False\"}"
        ));
        assert!(names_logprobs(
            "HTTP 400: Requested sample logprobs of 1, which is greater than max allowed: 0"
        ));
        assert!(!names_logprobs("HTTP 400: max_tokens is too large"));
    }
}
