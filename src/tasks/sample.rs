//! Step 1 of RLMEC: sample `n` solutions per problem from the policy with the paper's
//! settings, cut at the stop markers, identical predictions of one problem kept once.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::prompt::policy_prompt;
use super::{Fidelity, Problem, TaskKind};
use crate::engine::Engine;
use crate::generate::sampler::SamplingParams;
use crate::generate::{GenerateError, GenerateOptions, Request};

/// Where a sample ends (besides EOS): the next turn or problem the model starts writing.
pub const STOP_MARKERS: [&str; 4] = [
    "Problem:",
    "Human:",
    "Assistant:",
    "Below is an instruction",
];

/// One sampled prediction of a problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    pub question: String,
    pub solution: String,
    pub answer: String,
    pub prediction: String,
}

/// Step 1's settings (`sample`'s options).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SampleOptions {
    pub n: usize,
    #[serde(flatten)]
    pub sampling: SamplingParams,
    pub max_new_tokens: usize,
    pub seed: u64,
    pub batch_size: usize,
    pub fidelity: Fidelity,
}

impl Default for SampleOptions {
    /// docs/method.md, step 1: 5 samples, temperature 0.7, top-p 0.95, 512 new tokens.
    fn default() -> Self {
        Self {
            n: 5,
            sampling: SamplingParams {
                temperature: 0.7,
                top_p: 0.95,
                top_k: 0,
            },
            max_new_tokens: 512,
            seed: 0,
            batch_size: 16,
            fidelity: Fidelity::Corrected,
        }
    }
}

/// Sample every problem `opts.n` times (request `i·n + j` has its own seeded stream, so the
/// result does not depend on batching).
pub fn sample(
    engine: &dyn Engine,
    kind: TaskKind,
    problems: &[Problem],
    opts: &SampleOptions,
) -> Result<Vec<SampleRecord>, GenerateError> {
    if opts.n == 0 {
        return Err(GenerateError::Invalid(
            "n must be at least 1 (samples per problem)".into(),
        ));
    }
    let Some(total) = problems.len().checked_mul(opts.n) else {
        return Err(GenerateError::Invalid(format!(
            "n = {} samples for each of {} problems is more than can be counted",
            opts.n,
            problems.len()
        )));
    };
    // Reserved fallibly: an allocation that fails would abort the process, not return.
    let mut requests = Vec::new();
    requests.try_reserve_exact(total).map_err(|_| {
        GenerateError::Invalid(format!(
            "n = {} samples for each of {} problems do not fit in memory",
            opts.n,
            problems.len()
        ))
    })?;
    for p in problems {
        let prompt = engine
            .tokenizer()
            .encode(&policy_prompt(kind, &p.problem, opts.fidelity))?;
        for _ in 0..opts.n {
            requests.push(Request {
                prompt: prompt.clone(),
                max_new_tokens: opts.max_new_tokens,
            });
        }
    }
    let generate_opts = GenerateOptions {
        sampling: opts.sampling.clone(),
        min_new_tokens: 0,
        stop: STOP_MARKERS.iter().map(|s| s.to_string()).collect(),
        seed: opts.seed,
        batch_size: opts.batch_size,
    };
    let outs = engine.generate(&requests, &generate_opts)?;
    let mut records = Vec::new();
    for (p, group) in problems.iter().zip(outs.chunks(opts.n)) {
        let mut seen = HashSet::new();
        for g in group {
            let prediction = g.text.trim().to_string();
            if seen.insert(prediction.clone()) {
                records.push(SampleRecord {
                    question: p.problem.clone(),
                    solution: p.solution.clone(),
                    answer: p.answer.clone(),
                    prediction,
                });
            }
        }
    }
    Ok(records)
}
