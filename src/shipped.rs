//! Where the files the project ships (`data/`: the datasets and, after `make setup`, the
//! default model) are found when a script names them by their path in the project
//! (`data/qa/ecqa`), so an installed `rlmec` runs the shipped scripts from any folder.
//!
//! A relative path is looked up, in order: from the working directory (a run started in the
//! project folder, as the README does it); under `$RLMEC_HOME`; beside the running script
//! and in each folder above it (`rlmec ~/rlmec/scripts/qa_full.rhai` from elsewhere finds
//! `~/rlmec/data`). Found nowhere, it is returned as given, so the error that follows names
//! the path the script wrote.

use std::path::{Path, PathBuf};

/// `path` as found by the rules above.
pub fn locate(path: &Path, script: Option<&Path>) -> PathBuf {
    candidates(path, script)
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| path.to_path_buf())
}

fn candidates(path: &Path, script: Option<&Path>) -> Vec<PathBuf> {
    if path.is_absolute() {
        return vec![path.to_path_buf()];
    }
    let mut out = vec![path.to_path_buf()];
    out.extend(std::env::var_os("RLMEC_HOME").map(|home| PathBuf::from(home).join(path)));
    if let Some(dir) = script.and_then(|s| std::path::absolute(s).ok()) {
        out.extend(dir.ancestors().skip(1).map(|a| a.join(path)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shipped_path_is_found_above_the_script_when_not_here() {
        let tmp = tempfile::tempdir().unwrap();
        let project = tmp.path().join("project");
        // A path the working directory (the crate, in tests) does not have.
        let shipped = Path::new("data/only-in-this-test/ecqa");
        std::fs::create_dir_all(project.join(shipped)).unwrap();
        std::fs::create_dir_all(project.join("scripts/variants")).unwrap();
        let script = project.join("scripts/variants/sft.rhai");
        assert_eq!(locate(shipped, Some(&script)), project.join(shipped));
        // Nowhere: as given.
        let missing = Path::new("data/only-in-this-test/nope");
        assert_eq!(locate(missing, Some(&script)), missing);
        assert_eq!(locate(shipped, None), shipped);
    }
}
