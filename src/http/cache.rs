//! The request cache: every answered request, keyed by SHA-256 of (backend, model, full
//! prompt, parameters), appended to a JSONL file and flushed, so that no paid request is
//! made twice and a killed run loses at most the requests in flight. A torn last line (a
//! kill mid-write) is skipped on load; keys never hold secrets (the API key is not part of
//! a request's identity). A reply is any JSON value (a teacher's is its text, a remote
//! engine's the completion with its tokens and log-probabilities); beside it, the tokens the
//! answer took ([`Usage`]), so that what a reused answer cost is known. Entries written before
//! usage was kept load with none.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Usage;

/// A cached answer: the reply kept, and the tokens it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub reply: Value,
    pub usage: Usage,
}

type Entries = (HashMap<String, Answer>, Option<File>);

pub struct Cache {
    entries: Mutex<Entries>,
}

/// The identity of a request: backend, model, the request body (prompt and parameters).
pub fn key(backend: &str, model: &str, body: &Value) -> String {
    let mut h = Sha256::new();
    h.update(backend.as_bytes());
    h.update([0]);
    h.update(model.as_bytes());
    h.update([0]);
    h.update(body.to_string().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl Cache {
    /// A cache without a file (tests, throw-away runs).
    pub fn in_memory() -> Self {
        Self {
            entries: Mutex::new((HashMap::new(), None)),
        }
    }

    /// The cache stored at `path` (created if absent).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let mut map = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            match serde_json::from_str::<Value>(line) {
                Ok(v) => {
                    if let (Some(k), Some(reply)) = (v["key"].as_str(), v.get("reply")) {
                        let usage = serde_json::from_value(v["usage"].clone()).unwrap_or_default();
                        let reply = reply.clone();
                        map.insert(k.to_string(), Answer { reply, usage });
                    }
                }
                Err(_) => {
                    tracing::warn!("{}:{}: skipping a torn cache line", path.display(), i + 1)
                }
            }
        }
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        // A torn last line must not glue onto the next entry.
        if !text.is_empty() && !text.ends_with('\n') {
            file.write_all(b"\n")?;
        }
        Ok(Self {
            entries: Mutex::new((map, Some(file))),
        })
    }

    pub fn get(&self, key: &str) -> Option<Answer> {
        self.lock().0.get(key).cloned()
    }

    pub fn put(&self, key: &str, answer: &Answer) -> std::io::Result<()> {
        let mut guard = self.lock();
        let (map, file) = &mut *guard;
        if let Some(file) = file {
            let entry = json!({"key": key, "reply": answer.reply, "usage": answer.usage});
            writeln!(file, "{entry}")?;
            file.flush()?;
        }
        map.insert(key.to_string(), answer.clone());
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.lock().0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(reply: Value, input_tokens: u64, output_tokens: u64) -> Answer {
        Answer {
            reply,
            usage: Usage {
                input_tokens,
                output_tokens,
            },
        }
    }

    #[test]
    fn survives_a_torn_last_line_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.jsonl");
        let c = Cache::open(&path).unwrap();
        let k = key("anthropic", "m", &json!({"prompt": "p"}));
        c.put(&k, &answer(json!("reply one"), 9, 2)).unwrap();
        drop(c);
        // A kill mid-write leaves half a line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"key\": \"abc\", \"rep").unwrap();
        drop(f);
        let c = Cache::open(&path).unwrap();
        assert_eq!(c.get(&k), Some(answer(json!("reply one"), 9, 2)));
        assert_eq!(c.len(), 1);
        let two = answer(json!({"text": "two", "ids": [1, 2]}), 0, 0);
        c.put("k2", &two).unwrap();
        drop(c);
        let c = Cache::open(&path).unwrap();
        assert_eq!(c.get("k2"), Some(two));
    }

    #[test]
    fn an_entry_without_usage_loads_with_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.jsonl");
        std::fs::write(&path, "{\"key\": \"old\", \"reply\": \"kept\"}\n").unwrap();
        let c = Cache::open(&path).unwrap();
        assert_eq!(c.get("old"), Some(answer(json!("kept"), 0, 0)));
    }

    #[test]
    fn keys_depend_on_every_part() {
        let body = json!({"prompt": "p", "temperature": 0});
        let k = key("a", "m", &body);
        assert_ne!(k, key("b", "m", &body));
        assert_ne!(k, key("a", "n", &body));
        assert_ne!(k, key("a", "m", &json!({"prompt": "q", "temperature": 0})));
        assert_eq!(k.len(), 64);
    }
}
