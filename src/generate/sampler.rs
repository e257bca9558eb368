//! Choosing the next token of every row at once: greedy, or temperature → top-k → top-p
//! sampling (transformers' order of logits warpers), on the device. Each request draws from
//! its own seeded generator, so a request samples the same tokens whatever batch it is in.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

/// How to pick tokens.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingParams {
    /// 0 = greedy.
    pub temperature: f64,
    /// 1.0 = off.
    pub top_p: f64,
    /// 0 = off.
    pub top_k: i64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self::greedy()
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(format!(
                "temperature must be >= 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if self.top_k < 0 {
            return Err(format!("top_k must be >= 0, got {}", self.top_k));
        }
        Ok(())
    }
}

/// The generator of request `index` under `seed`.
pub fn request_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    rng
}

/// Next tokens [B] (int64, on the logits' device) for `logits` [B, V] (f32), one uniform
/// draw per row from `rngs` when sampling.
pub fn choose(logits: &Tensor, params: &SamplingParams, rngs: &mut [&mut ChaCha8Rng]) -> Tensor {
    if params.is_greedy() {
        return logits.argmax(-1, false);
    }
    let mut scaled = logits / params.temperature;
    let vocab = scaled.size()[1];
    if params.top_k > 0 && params.top_k < vocab {
        let (top, _) = scaled.topk(params.top_k, -1, true, true);
        let kth = top.narrow(1, params.top_k - 1, 1);
        scaled = scaled.masked_fill(&scaled.lt_tensor(&kth), f64::NEG_INFINITY);
    }
    // Candidates in descending order with their probabilities, and the mass to keep.
    let (probs, order) = if params.top_p < 1.0 {
        nucleus(&scaled, params.top_p)
    } else {
        (scaled.softmax(-1, Kind::Float), None)
    };
    // Inverse-CDF sampling: one uniform per row, searched in the cumulative mass.
    let cdf = probs.cumsum(-1, Kind::Float);
    let n = cdf.size()[1];
    let total = cdf.narrow(1, n - 1, 1);
    let uniforms: Vec<f32> = rngs.iter_mut().map(|r| r.r#gen::<f32>()).collect();
    let u = Tensor::from_slice(&uniforms)
        .to_device(logits.device())
        .view([-1, 1])
        * total;
    let pos = u
        .searchsorted(&cdf, false, false, "left", None::<Tensor>)
        .clamp_max(n - 1);
    match order {
        Some(order) => order.gather(1, &pos, false).squeeze_dim(1),
        None => pos.squeeze_dim(1),
    }
}

/// Tokens a nucleus sample may draw under `top_p` (the smallest prefix of the tokens by
/// descending probability whose mass reaches `top_p`; the first always), as probabilities
/// (zero for the rest) and their vocabulary ids.
///
/// Sorting the whole vocabulary every step is the expensive part, so the most likely
/// `NUCLEUS_CANDIDATES` are tried first; the result is exact whenever they hold `top_p` of
/// every row's mass, which is the usual case, and falls back to the full sort otherwise.
fn nucleus(scaled: &Tensor, top_p: f64) -> (Tensor, Option<Tensor>) {
    let vocab = scaled.size()[1];
    let lse = scaled.logsumexp([-1i64].as_slice(), true);
    let probs_of = |values: Tensor| (values - &lse).exp();
    let mut candidates = None;
    for k in NUCLEUS_CANDIDATES.iter().map(|&k| k.min(vocab)) {
        let (values, order) = scaled.topk(k, -1, true, true);
        let sorted = probs_of(values);
        let covered = sorted
            .sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)
            .min()
            .double_value(&[]);
        if covered >= top_p || k == vocab {
            candidates = Some((sorted, order));
            break;
        }
    }
    let (sorted, order) = candidates.unwrap_or_else(|| {
        let (values, order) = scaled.sort(-1, true);
        (probs_of(values), order)
    });
    let mass_before = sorted.cumsum(-1, Kind::Float) - &sorted;
    let kept = sorted.where_self(&mass_before.lt(top_p), &sorted.zeros_like());
    (kept, Some(order))
}

/// How many of the most likely tokens the nucleus tries, in turn, before sorting the whole
/// vocabulary (a full sort of 16 × 49152 logits costs ~28 ms here, a top-256 ~1.4 ms).
const NUCLEUS_CANDIDATES: [i64; 2] = [256, 4096];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_argmax() {
        let logits = Tensor::from_slice(&[0.1f32, 2.0, -1.0, 0.5, 0.4, 3.0]).view([2, 3]);
        let t = choose(&logits, &SamplingParams::greedy(), &mut []);
        assert_eq!(Vec::<i64>::try_from(t).unwrap(), [1, 2]);
    }

    #[test]
    fn top_k_one_and_tiny_top_p_are_greedy() {
        let logits = Tensor::from_slice(&[0.1f32, 2.0, -1.0, 0.5, 0.4, 3.0]).view([2, 3]);
        let mut a = request_rng(0, 0);
        let mut b = request_rng(0, 1);
        for params in [
            SamplingParams {
                temperature: 1.0,
                top_p: 1.0,
                top_k: 1,
            },
            SamplingParams {
                temperature: 1.0,
                top_p: 1e-6,
                top_k: 0,
            },
        ] {
            let t = choose(&logits, &params, &mut [&mut a, &mut b]);
            assert_eq!(Vec::<i64>::try_from(t).unwrap(), [1, 2], "{params:?}");
        }
    }

    #[test]
    fn sampling_follows_the_distribution_and_the_seed() {
        // p = softmax([0, ln 3]) = [0.25, 0.75]
        let logits = Tensor::from_slice(&[0.0f32, 3f32.ln()]).view([1, 2]);
        let params = SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
        };
        let draw = |seed| {
            let mut rng = request_rng(seed, 0);
            (0..4000)
                .map(|_| i64::try_from(choose(&logits, &params, &mut [&mut rng])).unwrap())
                .collect::<Vec<_>>()
        };
        let ones = draw(7).iter().filter(|&&t| t == 1).count() as f64 / 4000.0;
        assert!((ones - 0.75).abs() < 0.03, "{ones}");
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn a_flat_distribution_falls_back_to_the_full_sort() {
        // 1000 equal tokens: the top 256 hold 25.6% < top_p, so all are ranked; the nucleus
        // of 0.5 is any 500 of them, and every draw must be a valid id.
        let logits = Tensor::zeros([1, 1000], (Kind::Float, tch::Device::Cpu));
        let params = SamplingParams {
            temperature: 1.0,
            top_p: 0.5,
            top_k: 0,
        };
        let mut rng = request_rng(2, 0);
        let draws: std::collections::HashSet<i64> = (0..3000)
            .map(|_| i64::try_from(choose(&logits, &params, &mut [&mut rng])).unwrap())
            .collect();
        assert!(draws.len() > 300 && draws.len() <= 500, "{}", draws.len());
        assert!(draws.iter().all(|&t| (0..1000).contains(&t)));
    }

    #[test]
    fn top_p_keeps_the_smallest_prefix_reaching_p() {
        // p = [0.5, 0.3, 0.2]: top_p 0.7 keeps tokens 0 and 1, never 2.
        let logits = Tensor::from_slice(&[0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()]).view([1, 3]);
        let params = SamplingParams {
            temperature: 1.0,
            top_p: 0.7,
            top_k: 0,
        };
        let mut rng = request_rng(1, 0);
        let draws: Vec<i64> = (0..2000)
            .map(|_| i64::try_from(choose(&logits, &params, &mut [&mut rng])).unwrap())
            .collect();
        assert!(!draws.contains(&2));
        let zeros = draws.iter().filter(|&&t| t == 0).count() as f64 / 2000.0;
        assert!((zeros - 0.625).abs() < 0.04, "{zeros}");
    }
}
