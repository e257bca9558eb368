//! For tests that need an input the repository does not commit (the default model, which
//! `make setup` unpacks): without it they are skipped with the reason printed, so `cargo test`
//! works on a bare checkout — except under CI (`CI` set to `true` or `1`), where a skipped
//! check would pass without checking anything, so it fails instead.

use std::path::Path;

/// Whether `path` exists; when it does not, prints why the test is skipped (`how` says how
/// to get it), or panics under CI.
pub fn input_present(path: &Path, how: &str) -> bool {
    if path.exists() {
        return true;
    }
    let why = format!("{} is missing ({how})", path.display());
    assert!(!under_ci(), "{why}: under CI a test that needs it fails");
    eprintln!("skipping: {why}");
    false
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_present_input_is_present() {
        assert!(input_present(Path::new("Cargo.toml"), "it is committed"));
    }
}
