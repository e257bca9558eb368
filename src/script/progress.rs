//! Progress natives: the same bars the native loops draw, for a script's own loops.

use rhai::plugin::*;

use super::engine::Domain;

pub const DOMAIN: Domain = Domain {
    name: "progress",
    module: || exported_module!(progress_api),
    extra: |engine| {
        engine.register_iterator::<progress_api::ProgressIter>();
    },
};

/// Progress bars for a script's long loops. They draw on a terminal only (never in logs or
/// CI) and stay below log lines.
#[export_module]
pub mod progress_api {
    use rhai::Array;

    use crate::progress;

    /// A progress bar (`progress_bar(total, label)`).
    pub type Progress = indicatif::ProgressBar;

    /// An array walked with a progress bar (`progress(items, label)`), for `for` loops.
    pub type ProgressIter = Walk;

    #[derive(Clone)]
    pub struct Walk {
        items: Array,
        bar: indicatif::ProgressBar,
    }

    impl IntoIterator for Walk {
        type Item = Dynamic;
        type IntoIter = Box<dyn Iterator<Item = Dynamic> + Send + Sync>;

        fn into_iter(self) -> Self::IntoIter {
            let bar = self.bar;
            let done = bar.clone();
            // The bar advances as each item is handed out and finishes with the loop.
            let items = self.items.into_iter().inspect(move |_| bar.inc(1));
            Box::new(items.chain(std::iter::from_fn(move || {
                done.finish();
                None
            })))
        }
    }

    /// Iterate over `items` with a bar labelled `label`.
    ///
    /// ```rhai
    /// let total = 0;
    /// for x in progress([1, 2, 3], "adding") { total += x; }
    /// print(total);
    /// ```
    pub fn progress(items: Array, label: &str) -> ProgressIter {
        let bar = progress::bar(items.len() as u64, label);
        Walk { items, bar }
    }

    /// Iterate over the integers of `range` with a bar labelled `label`.
    ///
    /// ```rhai
    /// for step in progress(0..5, "steps") { }
    /// ```
    #[rhai_fn(name = "progress")]
    pub fn progress_range(range: std::ops::Range<rhai::INT>, label: &str) -> ProgressIter {
        progress(range.map(Dynamic::from_int).collect(), label)
    }

    /// A bar over `total` steps; advance it with `inc`, end it with `finish`.
    ///
    /// ```rhai
    /// let bar = progress_bar(10, "steps");
    /// for i in 0..10 { bar.inc(1); }
    /// bar.finish();
    /// ```
    #[rhai_fn(return_raw)]
    pub fn progress_bar(total: i64, label: &str) -> Result<Progress, Box<EvalAltResult>> {
        let total =
            u64::try_from(total).map_err(|_| format!("progress_bar: total {total} is negative"))?;
        Ok(progress::bar(total, label))
    }

    /// Advance the bar by `n`.
    ///
    /// ```rhai
    /// let bar = progress_bar(2, "x");
    /// bar.inc(2);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn inc(bar: &mut Progress, n: i64) -> Result<(), Box<EvalAltResult>> {
        let n = u64::try_from(n).map_err(|_| format!("inc: {n} is negative"))?;
        bar.inc(n);
        Ok(())
    }

    /// Show `message` after the bar (e.g. the current loss).
    ///
    /// ```rhai
    /// let bar = progress_bar(1, "train");
    /// bar.set_message("loss 0.42");
    /// ```
    pub fn set_message(bar: &mut Progress, message: &str) {
        bar.set_message(message.to_string());
    }

    /// Steps done so far.
    ///
    /// ```rhai
    /// let bar = progress_bar(5, "x");
    /// bar.inc(3);
    /// print(bar.position);
    /// ```
    #[rhai_fn(get = "position", pure)]
    pub fn position(bar: &mut Progress) -> i64 {
        bar.position() as i64
    }

    /// Mark the bar done (it stays on screen).
    ///
    /// ```rhai
    /// let bar = progress_bar(1, "x");
    /// bar.finish();
    /// ```
    pub fn finish(bar: &mut Progress) {
        bar.finish();
    }
}
