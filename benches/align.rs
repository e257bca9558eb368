//! Alignment speed against a straight Python port of the public code: `make bench-align`.
//!
//! 1,000 seeded pairs of 300–2,000 tokens (a prediction and a fix that edits it in 1–50
//! places); rlmec aligns all of them in `paper` mode (median of `RLMEC_BENCH_REPEATS`
//! passes). The Python port fills the same tables cell by cell at a few million cells per
//! second — all 1,000 pairs would take it many minutes — so it aligns the first
//! `RLMEC_BENCH_ALIGN_PEER_PAIRS` (default 40) and the ratio is of table cells per second.
//! Its flags must equal ours on those pairs.

mod common;

use common::{Settings, median, run_peer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rlmec::align::{Mode, align};
use serde_json::json;
use std::time::Instant;

fn pairs() -> Vec<(Vec<i64>, Vec<i64>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    (0..1000)
        .map(|_| {
            let len = rng.gen_range(300..=2000);
            let a: Vec<i64> = (0..len).map(|_| rng.gen_range(0..49152)).collect();
            let mut b = a.clone();
            for _ in 0..rng.gen_range(1..=50) {
                let at = rng.gen_range(0..b.len());
                match rng.gen_range(0..3) {
                    0 => b.insert(at, rng.gen_range(0..49152)),
                    1 => {
                        b.remove(at);
                    }
                    _ => b[at] = rng.gen_range(0..49152),
                }
            }
            (a, b)
        })
        .collect()
}

fn main() {
    let settings = Settings::from_env();
    let pairs = pairs();
    let cells: usize = pairs
        .iter()
        .map(|(a, b)| (a.len() + 1) * (b.len() + 1))
        .sum();
    let mut flags = Vec::new();
    let runs: Vec<f64> = (0..settings.repeats.max(1))
        .map(|_| {
            let start = Instant::now();
            flags = pairs
                .iter()
                .map(|(a, b)| align(a, b, Mode::Paper).flags)
                .collect();
            start.elapsed().as_secs_f64()
        })
        .collect();
    let seconds = median(runs);
    let peer_pairs: usize = std::env::var("RLMEC_BENCH_ALIGN_PEER_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let input = json!({
        "pairs": pairs[..peer_pairs].iter().map(|(a, b)| json!({"a": a, "b": b})).collect::<Vec<_>>(),
        "peer_pairs": peer_pairs,
    });
    println!(
        "\nalignment, paper mode: 1000 pairs, {:.2e} cells in {seconds:.2} s ({:.0} M cells/s)",
        cells as f64,
        cells as f64 / seconds / 1e6
    );
    let Some(peer) = run_peer(&settings, "benches/peer_align.py", "align", &input) else {
        return;
    };
    let peer_rate = peer["cells"].as_f64().unwrap() / peer["seconds"].as_f64().unwrap();
    let same = peer["flags"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&flags)
        .all(|(p, ours)| {
            p.as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_i64() == Some(1))
                .collect::<Vec<_>>()
                == *ours
        });
    println!(
        "Python port: {peer_pairs} pairs at {:.2} M cells/s (1000 pairs would take ~{:.0} s); flags {}",
        peer_rate / 1e6,
        cells as f64 / peer_rate,
        if same { "identical" } else { "DIFFER" }
    );
    println!(
        "| alignment (table cells/s) | {:.0} M | {:.2} M | **{:.0}x** |",
        cells as f64 / seconds / 1e6,
        peer_rate / 1e6,
        cells as f64 / seconds / peer_rate
    );
    assert!(same, "the Python port's flags differ from ours");
}
