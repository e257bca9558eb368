//! `metrics.jsonl`: one line per optimiser step, appended and flushed as the run goes, so a
//! killed run keeps its curve. On resume the lines after the checkpoint's step are dropped:
//! the resumed run writes them again, and the file reads as one uninterrupted run.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::files::{self, FileError};

pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Open `path` for appending, keeping only lines with `step` ≤ `through_step`; returns
    /// the log and the lines kept.
    pub fn open(path: &Path, through_step: usize) -> Result<(Self, Vec<Value>), FileError> {
        let kept: Vec<Value> = if path.is_file() {
            files::read_jsonl(path)?
                .into_iter()
                .filter(|line| {
                    line["step"]
                        .as_u64()
                        .is_some_and(|s| s as usize <= through_step)
                })
                .collect()
        } else {
            Vec::new()
        };
        files::write_jsonl(path, &kept)?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|source| FileError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok((
            Self {
                path: path.to_path_buf(),
                file,
            },
            kept,
        ))
    }

    pub fn append(&mut self, line: &Value) -> Result<(), FileError> {
        writeln!(self.file, "{line}")
            .and_then(|()| self.file.flush())
            .map_err(|source| FileError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resuming_drops_the_steps_after_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let (mut log, kept) = MetricsLog::open(&path, 0).unwrap();
        assert!(kept.is_empty());
        for step in 1..=5 {
            log.append(&json!({"step": step, "loss": 1.0 / step as f64}))
                .unwrap();
        }
        drop(log);
        let (mut log, kept) = MetricsLog::open(&path, 3).unwrap();
        assert_eq!(kept.len(), 3);
        log.append(&json!({"step": 4, "loss": 0.0})).unwrap();
        let lines = files::read_jsonl(&path).unwrap();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[3]["loss"], 0.0);
    }
}
