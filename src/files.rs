//! Reading and writing the JSON/JSONL artifacts every stage produces.
//!
//! Writes are atomic (a temp file beside the target, then a rename) so a killed run never
//! leaves a half-written file that a rerun would trust; read errors name the file and line.

use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: {source}", shown(path))]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}:{line}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
}

/// A path as an error shows it: an empty one would print as nothing.
fn shown(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        "(an empty path)".into()
    } else {
        path.display().to_string()
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The temporary file a write of `path` goes to before it is renamed into place: beside it
/// (one file system), hidden, and named after this process (two processes never share it).
pub fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Write `bytes` to `path` atomically, creating parent folders.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let tmp = temp_beside(path);
    let written = fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    written
        .and_then(|()| fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
        .map_err(io_err(path))
}

/// One JSON value per non-blank line; an error names the line.
pub fn read_jsonl(path: &Path) -> Result<Vec<serde_json::Value>, FileError> {
    Ok(read_jsonl_numbered(path)?
        .into_iter()
        .map(|(_, v)| v)
        .collect())
}

/// [`read_jsonl`] with each value's 1-based line number, for errors about its content.
pub fn read_jsonl_numbered(path: &Path) -> Result<Vec<(usize, serde_json::Value)>, FileError> {
    let file = fs::File::open(path).map_err(io_err(path))?;
    let mut records = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io_err(path))?;
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(&line).map_err(|source| FileError::Json {
            path: path.to_path_buf(),
            line: i + 1,
            source,
        })?;
        records.push((i + 1, value));
    }
    Ok(records)
}

/// Write one compact JSON value per line, atomically.
pub fn write_jsonl(path: &Path, records: &[serde_json::Value]) -> Result<(), FileError> {
    let mut buf = Vec::new();
    for r in records {
        // Serialising an in-memory `Value` cannot fail.
        serde_json::to_writer(&mut buf, r).expect("serialising a JSON value");
        buf.push(b'\n');
    }
    write_atomic(path, &buf)
}

pub fn read_json(path: &Path) -> Result<serde_json::Value, FileError> {
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    serde_json::from_str(&text).map_err(|source| FileError::Json {
        path: path.to_path_buf(),
        line: source.line(),
        source,
    })
}

/// Pretty-printed JSON, atomically.
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), FileError> {
    let mut text = serde_json::to_string_pretty(value).expect("serialising a JSON value");
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jsonl_round_trips_and_skips_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.jsonl");
        let recs = vec![json!({"a": 1}), json!({"b": [1, 2]})];
        write_jsonl(&path, &recs).unwrap();
        fs::write(&path, fs::read_to_string(&path).unwrap() + "\n  \n").unwrap();
        assert_eq!(read_jsonl(&path).unwrap(), recs);
        assert_eq!(
            fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn malformed_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl");
        fs::write(&path, "{\"a\": 1}\n{\"a\": \n").unwrap();
        let err = read_jsonl(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}:2: invalid JSON", path.display())),
            "{err}"
        );
    }

    #[test]
    fn missing_file_is_named() {
        let err = read_json(Path::new("/nonexistent/x.json"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/nonexistent/x.json: "), "{err}");
    }
}
