//! The server's log file: its stdout and stderr, appended to what earlier servers of the
//! stage wrote, and read back (this server's part only) when it fails.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Lines of the server's output that an error shows.
pub const TAIL_LINES: usize = 20;

/// Bytes read back for the tail: enough for [`TAIL_LINES`] long lines.
const TAIL_BYTES: u64 = 64 * 1024;

pub struct ServerLog {
    path: PathBuf,
    /// Where this server's output begins in the file.
    start: u64,
}

impl ServerLog {
    /// Opens `path` for appending (creating its folder) and writes a line saying which
    /// command's output follows; the file handle is for the server's stdout and stderr.
    pub fn open(path: &Path, command: &str) -> io::Result<(Self, File)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        writeln!(file, "== rlmec serve: {command}")?;
        let start = file.metadata()?.len();
        let log = Self {
            path: path.to_path_buf(),
            start,
        };
        Ok((log, file))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last [`TAIL_LINES`] lines this server wrote; what cannot be read is said instead.
    pub fn tail(&self) -> String {
        match self.read_tail() {
            Ok(text) if text.trim().is_empty() => "(it wrote nothing)".to_string(),
            Ok(text) => text,
            Err(e) => format!("(unreadable: {e})"),
        }
    }

    fn read_tail(&self) -> io::Result<String> {
        let mut file = File::open(&self.path)?;
        let end = file.metadata()?.len();
        let from = self.start.max(end.saturating_sub(TAIL_BYTES));
        file.seek(SeekFrom::Start(from))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.trim_end().lines().collect();
        Ok(lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_this_servers_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stage/serve.log");
        let (_, mut first) = ServerLog::open(&path, "old").unwrap();
        writeln!(first, "an earlier server's line").unwrap();
        let (log, mut file) = ServerLog::open(&path, "srv --port 1").unwrap();
        assert_eq!(log.tail(), "(it wrote nothing)");
        for i in 0..30 {
            writeln!(file, "line {i}").unwrap();
        }
        let tail = log.tail();
        let lines: Vec<&str> = tail.lines().collect();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines[0], "line 10");
        assert_eq!(lines[TAIL_LINES - 1], "line 29");
        let whole = fs::read_to_string(&path).unwrap();
        assert!(whole.starts_with("== rlmec serve: old\nan earlier server's line\n== rlmec serve: srv --port 1\nline 0\n"), "{whole}");
    }

    #[test]
    fn a_short_output_is_shown_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (log, mut file) = ServerLog::open(&dir.path().join("serve.log"), "srv").unwrap();
        write!(file, "one\ntwo\n\n").unwrap();
        assert_eq!(log.tail(), "one\ntwo");
    }
}
