//! Log-probabilities of given continuation tokens after given prompts: batched, no grad,
//! and only the continuation positions go through the vocabulary projection.

use tch::{Kind, Tensor};

use super::GenerateError;
use crate::model::Model;
use crate::model::batch::Batch;

/// The most bytes of f32 logits ([rows, vocab]) one output-head chunk makes. glibc serves
/// blocks below its mmap threshold (which adapts up to 32 MiB) from the heap and reuses their
/// pages; larger ones are mapped afresh and page-faulted on every chunk. SmolLM2 (vocab
/// 49152), 2 threads, tokens/s over 2 runs each: 128-row chunks (24 MiB) 551 and 557, 160
/// rows 562 and 550, 256 rows (48 MiB) 484 and 483, 512 rows 481–484.
const HEAD_CHUNK_BYTES: i64 = 24 << 20;

/// Positions pushed through the output head at once.
fn head_chunk_rows(vocab: i64) -> i64 {
    (HEAD_CHUNK_BYTES / (vocab * 4)).max(16)
}

/// `score_batch`'s options: the pairs scored together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoreOptions {
    pub batch_size: usize,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self { batch_size: 8 }
    }
}

/// For each (prompt, continuation), `log p(continuation[t] | prompt, continuation[..t])`.
pub fn score(
    model: &Model,
    pairs: &[(Vec<i64>, Vec<i64>)],
    batch_size: usize,
) -> Result<Vec<Vec<f32>>, GenerateError> {
    if batch_size == 0 {
        return Err(GenerateError::Invalid(
            "batch_size must be at least 1".into(),
        ));
    }
    if let Some(i) = pairs.iter().position(|(p, _)| p.is_empty()) {
        return Err(GenerateError::Invalid(format!(
            "pair {i}: the prompt is empty, so the first continuation token has no context"
        )));
    }
    for (i, (prompt, continuation)) in pairs.iter().enumerate() {
        let vocab = model.config.vocab_size;
        super::check_ids(&format!("pair {i}: prompt"), prompt, vocab)?;
        super::check_ids(&format!("pair {i}: continuation"), continuation, vocab)?;
    }
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(pairs[i].0.len() + pairs[i].1.len()));
    let mut out = vec![Vec::new(); pairs.len()];
    let bar = crate::progress::bar(pairs.len() as u64, "score");
    let streams = Streams::new(model.device());
    for chunk in order.chunks(batch_size) {
        let scored = crate::oom::catch(|| streams.run(model, pairs, chunk)).map_err(|oom| {
            let (p, c) = &pairs[chunk[0]];
            GenerateError::OutOfMemory(format!(
                "{oom} scoring {} pairs (the longest {} tokens); what helps: a smaller \
                 `batch_size` (now {batch_size})",
                chunk.len(),
                p.len() + c.len()
            ))
        })??;
        for (&i, lp) in chunk.iter().zip(scored) {
            out[i] = lp;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let lengths = pairs.iter().map(|(p, c)| p.len() + c.len());
    super::warn_past_context("score", lengths, model.config.max_position_embeddings);
    Ok(out)
}

/// Sets torch's thread count back when dropped.
struct RestoreThreads(i32);

impl Drop for RestoreThreads {
    fn drop(&mut self) {
        tch::set_num_threads(self.0);
    }
}

/// On a CPU with two or more torch threads, a batch is scored as two halves side by side, each
/// with half the threads (on two cores: one each), rather than as one batch whose every op is
/// split between all of them: the halves share no per-op barrier (measured: docs/results.md).
struct Streams {
    split: bool,
    before: i32,
}

impl Streams {
    fn new(device: tch::Device) -> Self {
        let before = tch::get_num_threads();
        Self {
            split: device == tch::Device::Cpu && before >= 2,
            before,
        }
    }

    fn run(
        &self,
        model: &Model,
        pairs: &[(Vec<i64>, Vec<i64>)],
        chunk: &[usize],
    ) -> Result<Vec<Vec<f32>>, GenerateError> {
        if !self.split || chunk.len() < 2 {
            return crate::grad::no_grad(|| score_batch(model, pairs, chunk));
        }
        // `chunk` is sorted longest first: alternate rows so both halves get similar work.
        let a: Vec<usize> = chunk.iter().copied().step_by(2).collect();
        let b: Vec<usize> = chunk.iter().copied().skip(1).step_by(2).collect();
        let half = (self.before / 2).max(1);
        tch::set_num_threads(half);
        // Restored however the halves end: a panic (out of memory) unwinds through here.
        let _restore = RestoreThreads(self.before);
        let shared = SharedModel(model);
        let (ra, rb) = std::thread::scope(|s| {
            let other = s.spawn(|| {
                tch::set_num_threads(half);
                let model = &shared;
                crate::grad::no_grad(|| score_batch(model.0, pairs, &b))
            });
            let mine = crate::grad::no_grad(|| score_batch(model, pairs, &a));
            // The other half's panic goes on as its own (an out-of-memory stays one).
            let theirs = other
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (mine, theirs)
        });
        let (ra, rb) = (ra?, rb?);
        let (mut ra, mut rb) = (ra.into_iter(), rb.into_iter());
        Ok((0..chunk.len())
            .map(|k| if k % 2 == 0 { ra.next() } else { rb.next() }.expect("one result per row"))
            .collect())
    }
}

/// A model read by two scoring threads at once.
struct SharedModel<'a>(&'a Model);

// SAFETY: scoring only reads the weights (no grad, no in-place op), libtorch's tensor
// reference counts are atomic, and the one thing a forward writes, a layer's packed oneDNN
// copy, sits behind a mutex, so concurrent forwards over the same weights are safe.
unsafe impl Sync for SharedModel<'_> {}

fn score_batch(
    model: &Model,
    pairs: &[(Vec<i64>, Vec<i64>)],
    chunk: &[usize],
) -> Result<Vec<Vec<f32>>, GenerateError> {
    let device = model.device();
    let seqs: Vec<Vec<i64>> = chunk
        .iter()
        .map(|&i| [pairs[i].0.as_slice(), &pairs[i].1].concat())
        .collect();
    let batch = Batch::right_padded(&seqs, model.pad_id(), device);
    let hidden = model.hidden(&batch);
    // The hidden state at position t predicts token t + 1.
    let (mut rows, mut cols, mut targets) = (Vec::new(), Vec::new(), Vec::new());
    for (r, &i) in chunk.iter().enumerate() {
        let (prompt, cont) = &pairs[i];
        for (t, &tok) in cont.iter().enumerate() {
            rows.push(r as i64);
            cols.push((prompt.len() + t - 1) as i64);
            targets.push(tok);
        }
    }
    let to_dev = |v: &[i64]| Tensor::from_slice(v).to_device(device);
    let picked = hidden.index(&[Some(to_dev(&rows)), Some(to_dev(&cols))]);
    let targets = to_dev(&targets);
    let rows_per_chunk = head_chunk_rows(model.config.vocab_size as i64);
    let logps = head_logprobs(model, &picked, &targets, rows_per_chunk)?;
    let mut out = Vec::with_capacity(chunk.len());
    let mut at = 0;
    for &i in chunk {
        let len = pairs[i].1.len();
        out.push(logps[at..at + len].to_vec());
        at += len;
    }
    Ok(out)
}

/// log p(`targets[i]`) after hidden state `hidden[i]` ([N, hidden], [N] -> N values), through
/// the output head `rows_per_chunk` rows at a time.
fn head_logprobs(
    model: &Model,
    hidden: &Tensor,
    targets: &Tensor,
    rows_per_chunk: i64,
) -> Result<Vec<f32>, GenerateError> {
    let n = targets.size()[0];
    let mut logps = Vec::with_capacity(n as usize);
    let mut start = 0;
    while start < n {
        let len = rows_per_chunk.min(n - start);
        let logits = model
            .net()
            .logits(&hidden.narrow(0, start, len))
            .to_kind(Kind::Float);
        // Without grad, the fused log_softmax is the faster of the two formulas
        // (`target_logprobs`' logsumexp is several passes): 55 vs 73–97 ms per chunk here.
        let lp = logits
            .log_softmax(-1, Kind::Float)
            .gather(1, &targets.narrow(0, start, len).unsqueeze(1), false)
            .squeeze_dim(1);
        logps.extend(Vec::<f32>::try_from(lp).map_err(|e| GenerateError::Torch(e.to_string()))?);
        start += len;
    }
    Ok(logps)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::model::LoadOptions;

    #[test]
    fn head_chunks_hold_24_mib_of_logits_and_do_not_change_the_result() {
        tch::set_num_threads(1);
        assert_eq!(head_chunk_rows(49152), 128);
        assert_eq!(head_chunk_rows(10_000_000), 16);
        let model = Model::load(
            Path::new("tests/fixtures/model/tiny-llama"),
            LoadOptions::default(),
        )
        .unwrap();
        let hidden_size = model.config.hidden_size as i64;
        let vocab = model.config.vocab_size as i64;
        let hidden = Tensor::randn([37, hidden_size], (Kind::Float, tch::Device::Cpu));
        let targets = Tensor::randint(vocab, [37], (Kind::Int64, tch::Device::Cpu));
        let whole =
            crate::grad::no_grad(|| head_logprobs(&model, &hidden, &targets, 1000)).unwrap();
        let chunked = crate::grad::no_grad(|| head_logprobs(&model, &hidden, &targets, 5)).unwrap();
        assert_eq!(whole.len(), 37);
        for (a, b) in whole.iter().zip(&chunked) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
