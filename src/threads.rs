//! Torch's intra-op thread count, checked before it is set: libtorch throws on a count that
//! is not positive (tch then panics), and OpenMP starts every thread asked for, so a mistyped
//! count would start millions.

/// The most threads a script or `--threads` may ask for.
pub const MAX_THREADS: i64 = 1024;

/// Set torch's intra-op thread count to `n` (1 ..= [`MAX_THREADS`]).
pub fn set_threads(n: i64) -> Result<(), String> {
    if !(1..=MAX_THREADS).contains(&n) {
        return Err(format!(
            "{n} threads: need at least 1 and at most {MAX_THREADS}"
        ));
    }
    tch::set_num_threads(n as i32);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_outside_the_range_are_refused_and_change_nothing() {
        let before = tch::get_num_threads();
        for n in [0, -1, MAX_THREADS + 1, i64::MAX, i64::from(i32::MAX) + 2] {
            let err = set_threads(n).unwrap_err();
            assert!(
                err.starts_with(&format!("{n} threads: need at least 1")),
                "{err}"
            );
        }
        assert_eq!(tch::get_num_threads(), before);
    }
}
