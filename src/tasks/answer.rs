//! Answers: the text after the last `The answer is`, compared with the gold answer as text
//! (QA) or as a number (math), and accuracy with a 95% confidence interval.

use super::{Fidelity, TaskKind};

/// What precedes the answer on a solution's last line.
pub const ANSWER_MARKER: &str = "The answer is";

/// The text after the last `The answer is`, trimmed (a final `.` dropped for QA in
/// corrected fidelity); `None` when the marker is absent.
pub fn extract_answer(text: &str) -> Option<String> {
    let at = text.rfind(ANSWER_MARKER)?;
    let rest = text[at + ANSWER_MARKER.len()..].trim_start_matches(':');
    Some(rest.trim().to_string())
}

/// The first number in `text`, commas removed and a trailing `.` dropped (`"$1,234."` →
/// `"1234"`).
pub fn extract_number(text: &str) -> Option<String> {
    let cleaned: String = text.chars().filter(|&c| c != ',').collect();
    let bytes = cleaned.as_bytes();
    let start = (0..bytes.len()).find(|&i| {
        bytes[i].is_ascii_digit()
            || (bytes[i] == b'-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
    })?;
    let mut end = start + 1;
    while end < bytes.len() && (bytes[end].is_ascii_digit() || bytes[end] == b'.') {
        end += 1;
    }
    Some(cleaned[start..end].trim_end_matches('.').to_string())
}

/// Whether `prediction` (a whole model output) answers `gold`.
///
/// QA: case-insensitive, trimmed, a final `.` ignored (`paper`: only the prediction is
/// lower-cased, as the public code, so capitalised golds never match). Math: the numbers
/// agree within 1e-4 (`paper`: the extracted number strings are equal).
pub fn is_correct(kind: TaskKind, prediction: &str, gold: &str, fidelity: Fidelity) -> bool {
    let Some(answer) = extract_answer(prediction) else {
        return false;
    };
    match (kind, fidelity) {
        (TaskKind::Qa, Fidelity::Corrected) => {
            let norm = |s: &str| s.trim().trim_end_matches('.').trim().to_lowercase();
            norm(&answer) == norm(gold)
        }
        (TaskKind::Qa, Fidelity::Paper) => answer.to_lowercase() == gold,
        (TaskKind::Math, Fidelity::Corrected) => {
            let num = |s: &str| extract_number(s).and_then(|n| n.parse::<f64>().ok());
            match (num(&answer), num(gold)) {
                (Some(a), Some(g)) => (a - g).abs() <= 1e-4,
                _ => false,
            }
        }
        (TaskKind::Math, Fidelity::Paper) => {
            extract_number(&answer).is_some() && extract_number(&answer) == extract_number(gold)
        }
    }
}

/// Accuracy of `correct` outcomes with its 95% Wilson score interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accuracy {
    pub n: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub low: f64,
    pub high: f64,
}

pub fn accuracy(correct: &[bool]) -> Accuracy {
    let n = correct.len();
    let k = correct.iter().filter(|&&c| c).count();
    if n == 0 {
        return Accuracy {
            n,
            correct: k,
            accuracy: 0.0,
            low: 0.0,
            high: 1.0,
        };
    }
    let (nf, p) = (n as f64, k as f64 / n as f64);
    let z = 1.959_963_984_540_054_f64;
    let denom = 1.0 + z * z / nf;
    let centre = (p + z * z / (2.0 * nf)) / denom;
    let half = z * (p * (1.0 - p) / nf + z * z / (4.0 * nf * nf)).sqrt() / denom;
    Accuracy {
        n,
        correct: k,
        accuracy: p,
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_after_the_last_marker() {
        assert_eq!(
            extract_answer("The answer is a\nNo wait.\nThe answer is bedroom").as_deref(),
            Some("bedroom")
        );
        assert_eq!(extract_answer("no marker"), None);
        assert_eq!(extract_number("$1,234.").as_deref(), Some("1234"));
        assert_eq!(extract_number("about -3.5 apples").as_deref(), Some("-3.5"));
        assert_eq!(extract_number("none"), None);
    }

    #[test]
    fn qa_comparison_in_both_fidelities() {
        let c = Fidelity::Corrected;
        assert!(is_correct(
            TaskKind::Qa,
            "x\nThe answer is Bedroom.",
            "bedroom",
            c
        ));
        assert!(is_correct(
            TaskKind::Qa,
            "The answer is bedroom",
            "Bedroom",
            c
        ));
        let p = Fidelity::Paper;
        assert!(is_correct(
            TaskKind::Qa,
            "The answer is Bedroom",
            "bedroom",
            p
        ));
        assert!(
            !is_correct(TaskKind::Qa, "The answer is bedroom", "Bedroom", p),
            "the public code's quirk"
        );
    }

    #[test]
    fn math_comparison_in_both_fidelities() {
        let c = Fidelity::Corrected;
        assert!(is_correct(
            TaskKind::Math,
            "so The answer is 1,234.",
            "1234",
            c
        ));
        assert!(is_correct(
            TaskKind::Math,
            "The answer is 18.00001",
            "18",
            c
        ));
        assert!(!is_correct(TaskKind::Math, "The answer is 18.01", "18", c));
        let p = Fidelity::Paper;
        assert!(is_correct(TaskKind::Math, "The answer is $18.", "18", p));
        assert!(!is_correct(TaskKind::Math, "The answer is 18.0", "18", p));
    }

    #[test]
    fn wilson_interval() {
        let a = accuracy(&[true, true, false, true]);
        assert_eq!((a.n, a.correct), (4, 3));
        assert!((a.accuracy - 0.75).abs() < 1e-12);
        assert!(
            (a.low - 0.3006).abs() < 1e-3 && (a.high - 0.9544).abs() < 1e-3,
            "{a:?}"
        );
        let all = accuracy(&[true; 10]);
        assert!((all.high - 1.0).abs() < 1e-9 && all.low > 0.69, "{all:?}");
    }
}
