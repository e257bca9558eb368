//! Log-probabilities of given continuation tokens after given prompts: batched, no grad,
//! and only the continuation positions go through the vocabulary projection.

use tch::{Kind, Tensor};

use super::GenerateError;
use crate::model::Model;
use crate::model::batch::Batch;

/// Positions pushed through the output head at once (bounds the [N, vocab] buffer).
const HEAD_CHUNK: i64 = 512;

/// For each (prompt, continuation), `log p(continuation[t] | prompt, continuation[..t])`.
pub fn score(
    model: &Model,
    pairs: &[(Vec<i64>, Vec<i64>)],
    batch_size: usize,
) -> Result<Vec<Vec<f32>>, GenerateError> {
    if let Some(i) = pairs.iter().position(|(p, _)| p.is_empty()) {
        return Err(GenerateError::Invalid(format!(
            "pair {i}: the prompt is empty, so the first continuation token has no context"
        )));
    }
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(pairs[i].0.len() + pairs[i].1.len()));
    let mut out = vec![Vec::new(); pairs.len()];
    let bar = crate::progress::bar(pairs.len() as u64, "score");
    let streams = Streams::new(model.device());
    for chunk in order.chunks(batch_size.max(1)) {
        let scored = streams.run(model, pairs, chunk)?;
        for (&i, lp) in chunk.iter().zip(scored) {
            out[i] = lp;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// On a CPU with two or more torch threads, a batch is scored as two halves side by side, each
/// with half the threads (on two cores: one each), rather than as one batch whose every op is
/// split between all of them: the halves share no barrier and no packed GEMM panel
/// (measured: see README).
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
            return tch::no_grad(|| score_batch(model, pairs, chunk));
        }
        // `chunk` is sorted longest first: alternate rows so both halves get similar work.
        let a: Vec<usize> = chunk.iter().copied().step_by(2).collect();
        let b: Vec<usize> = chunk.iter().copied().skip(1).step_by(2).collect();
        let half = (self.before / 2).max(1);
        tch::set_num_threads(half);
        let shared = SharedModel(model);
        let (ra, rb) = std::thread::scope(|s| {
            let other = s.spawn(|| {
                tch::set_num_threads(half);
                let model = &shared;
                tch::no_grad(|| score_batch(model.0, pairs, &b))
            });
            let mine = tch::no_grad(|| score_batch(model, pairs, &a));
            (mine, other.join().expect("scoring thread panicked"))
        });
        tch::set_num_threads(self.before);
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
    let n = targets.len() as i64;
    let to_dev = |v: &[i64]| Tensor::from_slice(v).to_device(device);
    let picked = hidden.index(&[Some(to_dev(&rows)), Some(to_dev(&cols))]);
    let targets = to_dev(&targets);
    let mut logps = Vec::with_capacity(n as usize);
    let mut start = 0;
    while start < n {
        let len = HEAD_CHUNK.min(n - start);
        let logits = model
            .net()
            .logits(&picked.narrow(0, start, len))
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
    let mut out = Vec::with_capacity(chunk.len());
    let mut at = 0;
    for &i in chunk {
        let len = pairs[i].1.len();
        out.push(logps[at..at + len].to_vec());
        at += len;
    }
    Ok(out)
}
