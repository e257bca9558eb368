//! The order in which an epoch visits the examples: shuffled, then grouped by length so
//! that a micro-batch wastes little padding.
//!
//! The indices are shuffled with a stream seeded by (seed, epoch); each run of
//! [`POOL_BATCHES`] micro-batches' worth is sorted by length and cut into micro-batches;
//! the micro-batches are shuffled again so that the lengths of consecutive batches vary.
//! The order is a pure function of the seed and the epoch, so a resumed run recomputes it
//! instead of storing it.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Micro-batches per length-sorted pool (transformers' `group_by_length` uses 50).
const POOL_BATCHES: usize = 50;

/// The micro-batches (example indices) of `epoch`, for examples of the given lengths.
pub fn epoch_batches(
    lengths: &[usize],
    batch_size: usize,
    seed: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let batch_size = batch_size.max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.shuffle(&mut rng);
    let mut batches: Vec<Vec<usize>> = Vec::with_capacity(lengths.len().div_ceil(batch_size));
    for pool in order.chunks_mut(batch_size * POOL_BATCHES) {
        // Stable: equal lengths keep their shuffled order.
        pool.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        batches.extend(pool.chunks(batch_size).map(<[usize]>::to_vec));
    }
    batches.shuffle(&mut rng);
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_once_per_epoch_and_reproducible() {
        let lengths: Vec<usize> = (0..1000).map(|i| (i * 37) % 300 + 1).collect();
        let a = epoch_batches(&lengths, 8, 7, 0);
        assert_eq!(a, epoch_batches(&lengths, 8, 7, 0));
        assert_ne!(
            a,
            epoch_batches(&lengths, 8, 7, 1),
            "each epoch its own order"
        );
        assert_ne!(
            a,
            epoch_batches(&lengths, 8, 8, 0),
            "each seed its own order"
        );
        let mut seen: Vec<usize> = a.concat();
        seen.sort();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        assert_eq!(a.len(), 125);
    }

    #[test]
    fn batches_hold_similar_lengths() {
        let lengths: Vec<usize> = (0..400).map(|i| (i * 7919) % 500 + 1).collect();
        let padded = |batches: &[Vec<usize>]| -> usize {
            batches
                .iter()
                .map(|b| {
                    let max = b.iter().map(|&i| lengths[i]).max().unwrap();
                    b.iter().map(|&i| max - lengths[i]).sum::<usize>()
                })
                .sum()
        };
        let grouped = epoch_batches(&lengths, 8, 0, 0);
        let random: Vec<Vec<usize>> = (0..400)
            .collect::<Vec<_>>()
            .chunks(8)
            .map(<[usize]>::to_vec)
            .collect();
        assert!(
            padded(&grouped) * 10 < padded(&random),
            "{} vs {}",
            padded(&grouped),
            padded(&random)
        );
    }
}
