//! Scoring through a server: each (prompt, continuation) sent as token ids — the exact
//! tokens matter, and a text prompt would be tokenized afresh — with the prompt echoed back
//! with its log-probabilities ([`completions::score_body`]); the continuation's positions
//! are its scores. Servers that give no prompt log-probabilities cannot score (llama.cpp's:
//! llama-cpp-python needs `logits_all`, which crashed it): the error says so and points to
//! native scoring.

use std::sync::Arc;

use super::RemoteModel;
use super::completions;
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
    let parse: Parse = Arc::new(completions::score_answer);
    let answers = remote.ask(bodies, &parse, "score").map_err(|e| match e {
        // A refusal of the scoring request itself (llama.cpp's server refuses `echo`).
        GenerateError::Server(m) if m.contains("HTTP 4") => {
            GenerateError::Server(format!("{m}; {}", completions::SCORING_NEEDS))
        }
        other => other,
    })?;
    let mut out = vec![Vec::new(); pairs.len()];
    for ((&i, ids), answer) in asked.iter().zip(&sequences).zip(answers) {
        let all = completions::prompt_logprobs(&answer, ids)
            .map_err(|e| GenerateError::Server(format!("{}: pair {i}: {e}", remote.name())))?;
        out[i] = all[pairs[i].0.len()..].to_vec();
    }
    Ok(out)
}
