//! Batched generation with a KV cache, and scoring of given continuations.
//!
//! Prompts are sorted by length and left-padded into batches; each batch is prefilled once,
//! then decoded one token per step, with only the last position's logits computed. A row
//! that ends (EOS, a stop string, its own `max_new_tokens`) leaves the batch and the cache,
//! so it stops costing compute. Each step makes one small host transfer (the chosen ids and
//! their log-probabilities).

pub mod sampler;
pub mod score;
pub mod stop;

use std::time::Instant;

use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use crate::model::Model;
use crate::model::batch::Batch;
use crate::model::gemv;
use crate::model::kv_cache::KvCache;
use crate::model::llama::target_logprobs;
use crate::tokenize::TokenizeError;
use sampler::SamplingParams;
use stop::StopStrings;

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Tokenize(#[from] TokenizeError),
    #[error("torch: {0}")]
    Torch(String),
    #[error("{0}")]
    OutOfMemory(String),
    /// A model behind a server failed to answer (after retries) or answered unusably.
    #[error("{0}")]
    Server(String),
}

/// One prompt and how many tokens it may get.
#[derive(Debug, Clone)]
pub struct Request {
    pub prompt: Vec<i64>,
    pub max_new_tokens: usize,
}

/// How to decode (`generate`'s options besides the budget).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateOptions {
    #[serde(flatten)]
    pub sampling: SamplingParams,
    /// EOS is not allowed before this many new tokens.
    pub min_new_tokens: usize,
    pub stop: Vec<String>,
    pub seed: u64,
    /// Rows decoded together.
    pub batch_size: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            sampling: SamplingParams::greedy(),
            min_new_tokens: 0,
            stop: Vec::new(),
            seed: 0,
            batch_size: 16,
        }
    }
}

/// The new tokens a prompt may get when it does not say (`max_new_tokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Budget {
    pub max_new_tokens: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            max_new_tokens: 512,
        }
    }
}

/// Why a row stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Eos,
    Stop,
    Length,
}

impl Finish {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eos => "eos",
            Self::Stop => "stop",
            Self::Length => "length",
        }
    }
}

/// A finished row. `ids` and `logprobs` cover every generated token (the EOS that ended it,
/// or the token that completed a stop string, included); `text` is the decoded text without
/// EOS, cut before the first stop string. `logprobs` are the model's own log-probabilities
/// (temperature 1, unfiltered), the quantity RLMEC's reference policy needs.
#[derive(Debug, Clone)]
pub struct Generation {
    pub text: String,
    pub ids: Vec<i64>,
    pub logprobs: Vec<f32>,
    pub finish: Finish,
}

/// What every engine refuses before generating: bad sampling settings, an empty prompt.
pub fn validate(requests: &[Request], opts: &GenerateOptions) -> Result<(), GenerateError> {
    opts.sampling.validate().map_err(GenerateError::Invalid)?;
    if opts.batch_size == 0 {
        return Err(GenerateError::Invalid(
            "batch_size must be at least 1".into(),
        ));
    }
    match requests.iter().position(|r| r.prompt.is_empty()) {
        Some(i) => Err(GenerateError::Invalid(format!(
            "prompt {i} is empty: nothing to continue"
        ))),
        None => Ok(()),
    }
}

/// Token ids a model of `vocab` tokens can look up: the first one outside it is named with
/// its position (libtorch would fail deep inside the embedding with a backtrace).
pub fn check_ids(what: &str, ids: &[i64], vocab: usize) -> Result<(), GenerateError> {
    match ids.iter().position(|&id| id < 0 || id as usize >= vocab) {
        Some(at) => Err(GenerateError::Invalid(format!(
            "{what}: token id {} at position {at} is outside the vocabulary (0..{vocab})",
            ids[at]
        ))),
        None => Ok(()),
    }
}

/// Generate for every request; results in request order.
pub fn generate(
    model: &Model,
    requests: &[Request],
    opts: &GenerateOptions,
) -> Result<Vec<Generation>, GenerateError> {
    validate(requests, opts)?;
    for (i, r) in requests.iter().enumerate() {
        check_ids(&format!("prompt {i}"), &r.prompt, model.config.vocab_size)?;
    }
    let stops = StopStrings::new(opts.stop.clone());
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(requests[i].prompt.len()));
    let mut results: Vec<Option<Generation>> = vec![None; requests.len()];
    let bar = crate::progress::bar(requests.len() as u64, "generate");
    for (batch_no, chunk) in order.chunks(opts.batch_size).enumerate() {
        let span = tracing::info_span!("generate_batch", batch = batch_no, rows = chunk.len());
        let _enter = span.enter();
        let start = Instant::now();
        let done = crate::oom::catch(|| {
            crate::grad::no_grad(|| generate_batch(model, requests, chunk, opts, &stops))
        })
        .map_err(|oom| {
            let longest = chunk
                .iter()
                .map(|&i| requests[i].prompt.len())
                .max()
                .unwrap_or(0);
            let budget = chunk
                .iter()
                .map(|&i| requests[i].max_new_tokens)
                .max()
                .unwrap_or(0);
            GenerateError::OutOfMemory(format!(
                "{oom} generating {} prompts (the longest {longest} tokens, up to {budget} new); \
                 what helps: a smaller `batch_size` (now {}) or `max_new_tokens`",
                chunk.len(),
                opts.batch_size
            ))
        })??;
        let new_tokens: usize = done.iter().map(|g| g.ids.len()).sum();
        let secs = start.elapsed().as_secs_f64();
        tracing::debug!(
            "{} rows, {new_tokens} new tokens in {secs:.2}s ({:.1} tokens/s)",
            chunk.len(),
            new_tokens as f64 / secs.max(1e-9)
        );
        for (&i, g) in chunk.iter().zip(done) {
            results[i] = Some(g);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let results: Vec<Generation> = (results.into_iter())
        .map(|g| g.expect("every request generated"))
        .collect();
    let lengths = (requests.iter().zip(&results)).map(|(r, g)| r.prompt.len() + g.ids.len());
    warn_past_context("generate", lengths, model.config.max_position_embeddings);
    Ok(results)
}

/// Sequences longer than the positions the model was trained on still run (RoPE is computed
/// for any position), but what the model does there is untested: say so once per call.
pub fn warn_past_context(what: &str, lengths: impl Iterator<Item = usize>, context: usize) {
    let (mut past, mut longest) = (0, 0);
    for len in lengths.filter(|&len| len > context) {
        past += 1;
        longest = longest.max(len);
    }
    if past > 0 {
        tracing::warn!(
            "{what}: {past} sequence(s) ran past the model's context of {context} positions \
             (max_position_embeddings), the longest to {longest}: quality degrades there"
        );
    }
}

/// New tokens the KV cache has room for from the start (it doubles when full, up to the
/// longest a row can get).
const INITIAL_ROOM: usize = 1024;

/// The state of one row while it decodes.
struct Row {
    request: usize,
    ids: Vec<i64>,
    logprobs: Vec<f32>,
    finish: Option<Finish>,
    rng: ChaCha8Rng,
}

fn generate_batch(
    model: &Model,
    requests: &[Request],
    chunk: &[usize],
    opts: &GenerateOptions,
    stops: &StopStrings,
) -> Result<Vec<Generation>, GenerateError> {
    let net = model.net();
    let device = model.device();
    let prompts: Vec<Vec<i64>> = chunk.iter().map(|&i| requests[i].prompt.clone()).collect();
    let max_new = chunk
        .iter()
        .map(|&i| requests[i].max_new_tokens)
        .max()
        .unwrap_or(0);
    let mut rows: Vec<Row> = chunk
        .iter()
        .map(|&i| Row {
            request: i,
            ids: Vec::new(),
            logprobs: Vec::new(),
            finish: (requests[i].max_new_tokens == 0).then_some(Finish::Length),
            rng: sampler::request_rng(opts.seed, i),
        })
        .collect();
    if max_new == 0 {
        return finish_rows(model, rows, stops);
    }

    let batch = Batch::left_padded(&prompts, model.pad_id(), device);
    let cfg = &model.config;
    let mut cache = KvCache::new(
        net.num_layers(),
        [
            chunk.len() as i64,
            cfg.num_kv_heads() as i64,
            // Room for the first tokens only: the cache grows as rows really get longer, so a
            // generous `max_new_tokens` does not reserve memory no row may ever use.
            batch.width + max_new.min(INITIAL_ROOM) as i64,
            cfg.head_dim() as i64,
        ],
        batch
            .width
            .saturating_add(i64::try_from(max_new).unwrap_or(i64::MAX)),
        model.dtype.kind(),
        device,
    );
    let mut key_mask = batch.mask.shallow_clone();
    let hidden = net.forward_hidden(
        &batch.ids,
        &batch.positions,
        Some(&key_mask),
        Some(&mut cache),
    );
    let mut logits = net
        .decode_logits(&hidden.select(1, batch.width - 1))
        .to_kind(Kind::Float);
    let mut next_pos = Tensor::from_slice(&batch.lens).to_device(device);
    // Rows still decoding, in batch order.
    let mut live: Vec<usize> = (0..rows.len())
        .filter(|&r| rows[r].finish.is_none())
        .collect();
    let eos = Tensor::from_slice(&model.special.eos).to_device(device);
    let threads = gemv::DecodeThreads::new(device);

    for step in 0..max_new {
        // The choice may not end the row yet; the reported log-probabilities stay the model's.
        let allowed = if step < opts.min_new_tokens && eos.numel() > 0 {
            logits.index_fill(1, &eos, f64::NEG_INFINITY)
        } else {
            logits.shallow_clone()
        };
        let mut rngs: Vec<&mut ChaCha8Rng> = rows
            .iter_mut()
            .filter(|row| row.finish.is_none())
            .map(|row| &mut row.rng)
            .collect();
        let next = sampler::choose(&allowed, &opts.sampling, &mut rngs);
        let logp = target_logprobs(&logits, &next);
        let next_ids =
            Vec::<i64>::try_from(&next).map_err(|e| GenerateError::Torch(e.to_string()))?;
        let next_logp =
            Vec::<f32>::try_from(logp).map_err(|e| GenerateError::Torch(e.to_string()))?;

        let mut keep = Vec::with_capacity(live.len());
        for (slot, &r) in live.iter().enumerate() {
            let row = &mut rows[r];
            let (id, lp) = (next_ids[slot], next_logp[slot]);
            row.ids.push(id);
            row.logprobs.push(lp);
            row.finish = if model.special.eos.contains(&id) && step >= opts.min_new_tokens {
                Some(Finish::Eos)
            } else if stops.hit(&model.tokenizer, &row.ids)? {
                Some(Finish::Stop)
            } else if row.ids.len() >= requests[row.request].max_new_tokens {
                Some(Finish::Length)
            } else {
                None
            };
            if row.finish.is_none() {
                keep.push(slot as i64);
            }
        }
        if keep.is_empty() {
            break;
        }
        let mut tokens = next;
        if keep.len() < live.len() {
            let idx = Tensor::from_slice(&keep).to_device(device);
            cache.keep_rows(&idx);
            key_mask = key_mask.index_select(0, &idx);
            next_pos = next_pos.index_select(0, &idx);
            tokens = tokens.index_select(0, &idx);
            live = keep.iter().map(|&s| live[s as usize]).collect();
        }
        let b = live.len() as i64;
        threads.set_rows(live.len());
        let new_key = Tensor::ones([b, 1], (key_mask.kind(), device));
        key_mask = Tensor::cat(&[&key_mask, &new_key], 1);
        let hidden = net.forward_hidden(
            &tokens.view([b, 1]),
            &next_pos.view([b, 1]),
            Some(&key_mask),
            Some(&mut cache),
        );
        logits = net
            .decode_logits(&hidden.squeeze_dim(1))
            .to_kind(Kind::Float);
        next_pos += 1;
    }
    finish_rows(model, rows, stops)
}

fn finish_rows(
    model: &Model,
    rows: Vec<Row>,
    stops: &StopStrings,
) -> Result<Vec<Generation>, GenerateError> {
    rows.into_iter()
        .map(|row| {
            let finish = row.finish.unwrap_or(Finish::Length);
            let visible = match finish {
                Finish::Eos => &row.ids[..row.ids.len() - 1],
                _ => &row.ids[..],
            };
            let text = model.tokenizer.decode(visible)?;
            let text = if finish == Finish::Stop {
                stops.cut(&text).to_string()
            } else {
                text
            };
            Ok(Generation {
                text,
                ids: row.ids,
                logprobs: row.logprobs,
                finish,
            })
        })
        .collect()
}
