//! The standard library (`stdlib/*.rhai`, the paper's procedure), built into the binary, so
//! an `rlmec` copied or installed anywhere runs the shipped scripts. `--stdlib DIR` (or
//! `$RLMEC_STDLIB`) loads the modules from a folder instead: a researcher editing the
//! procedure sees the edit without rebuilding.
//!
//! A built-in module is named `stdlib/NAME.rhai (built in)` wherever a file path would
//! stand (errors, `rlmec check`), and its own imports resolve among the built-in modules.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod built_in {
    // `MODULES: &[(name, source)]`, written by build.rs from stdlib/.
    include!(concat!(env!("OUT_DIR"), "/stdlib.rs"));
}

static FOLDER: OnceLock<PathBuf> = OnceLock::new();

const SUFFIX: &str = ".rhai (built in)";

/// Load the stdlib from `dir` for the rest of the process (`--stdlib`); the first call wins.
pub fn use_folder(dir: PathBuf) {
    let _ = FOLDER.set(dir);
}

/// The folder the stdlib is loaded from, if not the built-in copy: `--stdlib`, else
/// `$RLMEC_STDLIB`.
pub fn folder() -> Option<PathBuf> {
    FOLDER
        .get()
        .cloned()
        .or_else(|| std::env::var_os("RLMEC_STDLIB").map(PathBuf::from))
}

/// The file (or built-in module's name) `import "name"` loads from the stdlib.
pub fn find(name: &str) -> Option<PathBuf> {
    match folder() {
        Some(dir) => {
            let mut file = dir.join(name);
            file.set_extension("rhai");
            file.is_file().then_some(file)
        }
        None => built_in::MODULES
            .iter()
            .any(|(n, _)| *n == name)
            .then(|| PathBuf::from(format!("stdlib/{name}{SUFFIX}"))),
    }
}

/// The source of a built-in module by the name [`find`] gave it; `None` for a file.
pub fn built_in_source(path: &Path) -> Option<&'static str> {
    let name = path
        .to_str()?
        .strip_prefix("stdlib/")?
        .strip_suffix(SUFFIX)?;
    built_in::MODULES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, source)| *source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stdlib_file_is_built_in_with_its_text() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("stdlib");
        let mut on_disk = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            let label = PathBuf::from(format!("stdlib/{name}{SUFFIX}"));
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(built_in_source(&label), Some(text.as_str()), "{name}");
            on_disk += 1;
        }
        assert_eq!(built_in::MODULES.len(), on_disk);
        assert!(built_in_source(Path::new("stdlib/config.rhai")).is_none());
    }
}
