//! Token-level edit-distance alignment: which tokens of a fix the minimum edit changed
//! (docs/method.md, "The alignment that defines minimum edit").
//!
//! Both modes fill the same Levenshtein table (unit insert, delete and substitute costs,
//! free matches) over the sequences with a sentinel prepended. They differ in the walk back:
//!
//! - [`Mode::Paper`] reproduces the public code: each cell remembers the move it was filled
//!   with — a match on equal tokens, else a deletion, then an insertion, then a
//!   substitution, each only if strictly cheaper than the one before — and the walk from the
//!   last cell to the first row or column flags `b[j]` at every cell whose two tokens
//!   differ. So a deleted prediction token flags the fix token at its column, and fix tokens
//!   inserted before the first prediction token are never flagged.
//! - [`Mode::Optimal`] walks one minimal alignment (matches, then substitutions, then
//!   insertions, then deletions) and flags exactly the inserted and substituted tokens of
//!   `b`, including those before the first token of `a`.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Paper,
    Optimal,
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "paper" => Ok(Self::Paper),
            "optimal" => Ok(Self::Optimal),
            other => Err(format!(
                "unknown alignment mode `{other}`: expected \"paper\" or \"optimal\""
            )),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Paper => "paper",
            Self::Optimal => "optimal",
        })
    }
}

crate::serde_by_name!(Mode);

/// The move a cell was filled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Move {
    Match,
    Delete,
    Insert,
    Substitute,
}

/// The alignment of `a` (prediction) and `b` (fix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alignment {
    /// One flag per token of `b`: true where the edit changed it.
    pub flags: Vec<bool>,
    /// The Levenshtein distance between `a` and `b`.
    pub distance: usize,
}

/// The filled table: the moves (row-major, `(n + 1) × (m + 1)`) and the distance.
fn fill<T: PartialEq>(a: &[T], b: &[T]) -> (Vec<Move>, usize) {
    let (n, m) = (a.len(), b.len());
    let width = m + 1;
    let mut moves = vec![Move::Match; (n + 1) * width];
    // Two rows of costs: the previous and the current.
    let mut prev: Vec<u32> = (0..=m as u32).collect();
    let mut cur = vec![0u32; width];
    for i in 1..=n {
        cur[0] = i as u32;
        let row = &mut moves[i * width..(i + 1) * width];
        row[0] = Move::Delete;
        let ai = &a[i - 1];
        for j in 1..=m {
            let diag = prev[j - 1];
            // The public code's preference: a free match, then each move only if strictly
            // cheaper than the best so far. A match is never beaten (neighbours differ by
            // at most 1), so equal tokens always match.
            let (cost, mv) = if *ai == b[j - 1] {
                (diag, Move::Match)
            } else {
                let mut best = (prev[j] + 1, Move::Delete);
                if cur[j - 1] + 1 < best.0 {
                    best = (cur[j - 1] + 1, Move::Insert);
                }
                if diag + 1 < best.0 {
                    best = (diag + 1, Move::Substitute);
                }
                best
            };
            cur[j] = cost;
            row[j] = mv;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    for mv in &mut moves[1..width] {
        *mv = Move::Insert;
    }
    (moves, prev[m] as usize)
}

/// Align prediction `a` with fix `b` in `mode`.
pub fn align<T: PartialEq>(a: &[T], b: &[T], mode: Mode) -> Alignment {
    match mode {
        Mode::Paper => paper(a, b),
        Mode::Optimal => optimal(a, b),
    }
}

fn paper<T: PartialEq>(a: &[T], b: &[T]) -> Alignment {
    let (moves, distance) = fill(a, b);
    let width = b.len() + 1;
    let mut flags = vec![false; b.len()];
    let (mut i, mut j) = (a.len(), b.len());
    while i > 0 && j > 0 {
        if a[i - 1] != b[j - 1] {
            flags[j - 1] = true;
        }
        match moves[i * width + j] {
            Move::Match | Move::Substitute => (i, j) = (i - 1, j - 1),
            Move::Delete => i -= 1,
            Move::Insert => j -= 1,
        }
    }
    Alignment { flags, distance }
}

fn optimal<T: PartialEq>(a: &[T], b: &[T]) -> Alignment {
    let (n, m) = (a.len(), b.len());
    let width = m + 1;
    // The full cost table, so the walk can choose among every optimal move.
    let mut cost = vec![0u32; (n + 1) * width];
    for (j, c) in cost[..width].iter_mut().enumerate() {
        *c = j as u32;
    }
    for i in 1..=n {
        cost[i * width] = i as u32;
        for j in 1..=m {
            let diag = cost[(i - 1) * width + j - 1] + u32::from(a[i - 1] != b[j - 1]);
            let up = cost[(i - 1) * width + j] + 1;
            let left = cost[i * width + j - 1] + 1;
            cost[i * width + j] = diag.min(up).min(left);
        }
    }
    let mut flags = vec![false; m];
    let (mut i, mut j) = (n, m);
    while i > 0 || j > 0 {
        let here = cost[i * width + j];
        if i > 0 && j > 0 {
            let same = a[i - 1] == b[j - 1];
            if cost[(i - 1) * width + j - 1] + u32::from(!same) == here {
                flags[j - 1] = !same;
                (i, j) = (i - 1, j - 1);
                continue;
            }
        }
        if j > 0 && cost[i * width + j - 1] + 1 == here {
            flags[j - 1] = true;
            j -= 1;
        } else {
            i -= 1;
        }
    }
    Alignment {
        flags,
        distance: cost[n * width + m] as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(a: &str, b: &str, mode: Mode) -> String {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        let al = align(&a, &b, mode);
        b.iter()
            .zip(&al.flags)
            .map(|(c, &f)| if f { c.to_ascii_uppercase() } else { *c })
            .collect()
    }

    /// Levenshtein distance, the textbook way.
    fn levenshtein(a: &[u8], b: &[u8]) -> usize {
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for i in 1..=a.len() {
            let mut cur = vec![i; b.len() + 1];
            for j in 1..=b.len() {
                cur[j] = (prev[j - 1] + usize::from(a[i - 1] != b[j - 1]))
                    .min(prev[j] + 1)
                    .min(cur[j - 1] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    }

    #[test]
    fn identical_sequences_flag_nothing() {
        for mode in [Mode::Paper, Mode::Optimal] {
            assert_eq!(flags("abcde", "abcde", mode), "abcde");
            assert_eq!(align::<u8>(&[], &[], mode).distance, 0);
        }
    }

    #[test]
    fn paper_deletion_flags_the_fix_token_at_its_column() {
        // docs/method.md, "The alignment that defines minimum edit": pred `a b X c`,
        // fix `a b c` flags `b`.
        assert_eq!(flags("abxc", "abc", Mode::Paper), "aBc");
        assert_eq!(
            flags("abxc", "abc", Mode::Optimal),
            "abc",
            "a deletion edits no fix token"
        );
    }

    #[test]
    fn paper_never_flags_insertions_before_the_first_prediction_token() {
        assert_eq!(flags("cd", "abcd", Mode::Paper), "abcd");
        assert_eq!(flags("cd", "abcd", Mode::Optimal), "ABcd");
    }

    #[test]
    fn substitutions_and_insertions() {
        // Substitution: the fix token at the differing cell.
        assert_eq!(flags("abxd", "abcd", Mode::Paper), "abCd");
        assert_eq!(flags("abxd", "abcd", Mode::Optimal), "abCd");
        // Insertion inside the sequence.
        assert_eq!(flags("abd", "abcd", Mode::Paper), "abCd");
        assert_eq!(flags("abd", "abcd", Mode::Optimal), "abCd");
    }

    #[test]
    fn paper_prefers_deletion_then_insertion_then_substitution_on_ties() {
        // At the last cell of "ab" vs "ba" every move costs 2: deletion wins, the walk goes
        // up to (a, ba)... and flags what it passes.
        assert_eq!(flags("ab", "ba", Mode::Paper), "bA");
        // Deletion is not cheaper here, insertion is: "a" vs "ab" ends with an insertion.
        assert_eq!(flags("a", "ab", Mode::Paper), "aB");
        // Only a substitution is strictly cheaper than deleting or inserting.
        assert_eq!(flags("xy", "xz", Mode::Paper), "xZ");
    }

    #[test]
    fn both_modes_measure_the_levenshtein_distance() {
        // A seeded pseudo-random sweep over small alphabets (many ties).
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..500 {
            let (la, lb) = ((next() % 12) as usize, (next() % 12) as usize);
            let a: Vec<u8> = (0..la).map(|_| (next() % 3) as u8).collect();
            let b: Vec<u8> = (0..lb).map(|_| (next() % 3) as u8).collect();
            let want = levenshtein(&a, &b);
            for mode in [Mode::Paper, Mode::Optimal] {
                assert_eq!(align(&a, &b, mode).distance, want, "{a:?} {b:?} {mode:?}");
            }
            // The optimal walk's edits of b, plus a's deletions, make up the distance:
            // flagged ≤ distance, and flagged ≥ the length difference when b is longer.
            let opt = align(&a, &b, Mode::Optimal);
            let flagged = opt.flags.iter().filter(|&&f| f).count();
            assert!(
                flagged <= want && flagged >= lb.saturating_sub(la),
                "{a:?} {b:?}"
            );
        }
    }
}
