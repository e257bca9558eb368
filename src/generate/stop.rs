//! Stop strings, checked incrementally: after each new token only the tail that could hold
//! a newly completed stop string is decoded, and the text is cut at the first stop string.

use crate::tokenize::{TextTokenizer, TokenizeError};

#[derive(Debug, Clone, Default)]
pub struct StopStrings {
    stops: Vec<String>,
    /// Tokens to decode so the window surely spans the longest stop string plus the newest
    /// token (every token decodes to at least one character).
    window: usize,
}

impl StopStrings {
    pub fn new(stops: Vec<String>) -> Self {
        let stops: Vec<String> = stops.into_iter().filter(|s| !s.is_empty()).collect();
        let longest = stops.iter().map(|s| s.chars().count()).max().unwrap_or(0);
        Self {
            stops,
            window: longest + 4,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.stops.is_empty()
    }

    /// Whether the tokens `generated` (the newest last) now contain a stop string.
    pub fn hit(&self, tokenizer: &TextTokenizer, generated: &[i64]) -> Result<bool, TokenizeError> {
        if self.stops.is_empty() {
            return Ok(false);
        }
        let tail = &generated[generated.len().saturating_sub(self.window)..];
        let text = tokenizer.decode(tail)?;
        Ok(self.stops.iter().any(|s| text.contains(s.as_str())))
    }

    /// `text` cut before the first occurrence of any stop string.
    pub fn cut<'a>(&self, text: &'a str) -> &'a str {
        let first = self
            .stops
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min();
        &text[..first.unwrap_or(text.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_the_earliest_stop_string() {
        let stops = StopStrings::new(vec!["Problem:".into(), "\n\n".into(), String::new()]);
        assert_eq!(stops.cut("a b\n\nProblem: x"), "a b");
        assert_eq!(stops.cut("a Problem: b\n\n"), "a ");
        assert_eq!(stops.cut("nothing"), "nothing");
        assert!(StopStrings::new(vec![String::new()]).is_empty());
    }
}
