//! Progress bars for every long loop (sampling, teacher batches, training, evaluation).
//!
//! All bars hang off one [`MultiProgress`] so that log lines written through
//! [`crate::logging`] appear above the bars instead of tearing them. Bars draw only when
//! stderr is a terminal (and not under `--quiet`); in CI and in log files they are silent,
//! and the loops report through `tracing` instead.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

static MULTI: OnceLock<MultiProgress> = OnceLock::new();
static HIDDEN: AtomicBool = AtomicBool::new(false);

/// The process-wide bar container; log output suspends it while writing.
pub fn multi() -> &'static MultiProgress {
    MULTI.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// Hide every bar from now on (`--quiet`).
pub fn hide_all() {
    HIDDEN.store(true, Ordering::Relaxed);
    multi().set_draw_target(ProgressDrawTarget::hidden());
}

/// A bar over `total` items labelled `label`, with rate and ETA.
pub fn bar(total: u64, label: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{prefix:>12.cyan.bold} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    add(ProgressBar::new(total).with_style(style), label)
}

fn add(pb: ProgressBar, label: &str) -> ProgressBar {
    let pb = pb.with_prefix(label.to_string());
    if HIDDEN.load(Ordering::Relaxed) {
        pb.set_draw_target(ProgressDrawTarget::hidden());
        return pb;
    }
    multi().add(pb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_count_and_finish() {
        let pb = bar(3, "test");
        pb.inc(2);
        assert_eq!(pb.position(), 2);
        pb.finish();
        assert!(pb.is_finished());
    }
}
