//! Scoring through a server: each (prompt, continuation) sent as token ids — the exact
//! tokens matter, and a text prompt would be tokenized afresh — with the prompt echoed back
//! with its log-probabilities ([`completions::score_body`]); the continuation's positions
//! are its scores. Servers that give no prompt log-probabilities cannot score (llama.cpp's:
//! its server refuses `echo`, llama-cpp-python token-id prompts): the first call finds out
//! with one request, sent once, so such a server is not sent every pair to refuse each
//! (retried: llama-cpp-python reports its refusal as HTTP 500), and the error points to
//! native scoring.

use std::sync::Arc;

use super::{RemoteModel, completions, probe};
use crate::engine::Engine;
use crate::generate::GenerateError;
use crate::http::Parse;

/// [`crate::engine::Engine::score`] through `remote`'s server. Pairs without a continuation
/// need no request.
pub fn score(
    remote: &RemoteModel,
    pairs: &[(Vec<i64>, Vec<i64>)],
) -> Result<Vec<Vec<f32>>, GenerateError> {
    if let Some(i) = pairs.iter().position(|(p, _)| p.is_empty()) {
        return Err(GenerateError::Invalid(format!(
            "pair {i}: the prompt is empty, so the first continuation token has no context"
        )));
    }
    let asked: Vec<usize> = (0..pairs.len())
        .filter(|&i| !pairs[i].1.is_empty())
        .collect();
    let sequences: Vec<Vec<i64>> = asked
        .iter()
        .map(|&i| [pairs[i].0.as_slice(), &pairs[i].1].concat())
        .collect();
    let bodies = sequences
        .iter()
        .map(|ids| completions::score_body(remote.served_model(), ids))
        .collect();
    if !asked.is_empty() {
        check_scoring(remote)?;
    }
    let parse: Parse = Arc::new(completions::score_answer);
    let answers = remote.ask(bodies, &parse, "score")?;
    let mut out = vec![Vec::new(); pairs.len()];
    for ((&i, ids), answer) in asked.iter().zip(&sequences).zip(answers) {
        let all = completions::prompt_logprobs(&answer, ids)
            .map_err(|e| GenerateError::Server(format!("{}: pair {i}: {e}", remote.name())))?;
        out[i] = all[pairs[i].0.len()..].to_vec();
    }
    Ok(out)
}

/// What a server must give to score, and what to do without one.
const SCORING_NEEDS: &str = "scoring needs the prompt's log-probabilities, which vLLM gives; without them, score with a native model (`model_load`)";

/// Whether the server scores: one scoring of the probe text, asked once per engine.
fn check_scoring(remote: &RemoteModel) -> Result<(), GenerateError> {
    let verdict = remote.scoring.get_or_init(|| {
        let ids = remote
            .tokenizer
            .encode(probe::PROBE)
            .map_err(|e| e.to_string())?;
        let body = completions::score_body(remote.served_model(), &ids);
        let exchange = remote.exchange(None, body, String::new());
        let parse: Parse = Arc::new(completions::score_answer);
        let answer = remote.client.post_once(&exchange, &parse)?;
        completions::prompt_logprobs(&answer, &ids).map(|_| ())
    });
    verdict.clone().map_err(|e| {
        GenerateError::Server(format!(
            "{}: cannot score ({e}); {}",
            remote.name(),
            SCORING_NEEDS
        ))
    })
}
