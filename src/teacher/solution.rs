//! A solution's steps: its lines, step `k` being line `k` (docs/method.md, "Data shapes").
//! (The *procedure's* steps, 1–8, are stdlib/steps.rhai.)

/// The steps of `text`: its lines.
pub fn steps(text: &str) -> Vec<&str> {
    text.split('\n').collect()
}

/// The steps numbered `[k] ` at the start of each line, as the locate question shows them.
pub fn numbered(text: &str) -> String {
    steps(text)
        .iter()
        .enumerate()
        .map(|(k, s)| format!("[{k}] {s}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The prefill's prefix: the steps before `k`, each stripped, joined by newlines.
pub fn prefix(text: &str, k: usize) -> String {
    steps(text)
        .iter()
        .take(k)
        .map(|s| s.trim())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The reply to the locate question for the first wrong step, if any: `[k]` or `correct`.
pub fn locate_reply(first_error: Option<usize>) -> String {
    match first_error {
        Some(k) => format!("[{k}]"),
        None => "correct".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_and_prefix() {
        assert_eq!(numbered("a\nb"), "[0] a\n[1] b");
        assert_eq!(prefix(" a \n b\nc", 2), "a\nb");
        assert_eq!(prefix("a\nb", 0), "");
    }
}
