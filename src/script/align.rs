//! Alignment natives: which tokens of a fix the minimum edit changed.

use rhai::plugin::*;

use super::engine::Domain;

/// A token as the alignment compares it.
#[derive(PartialEq)]
enum Token {
    Int(i64),
    Text(String),
}

pub const DOMAIN: Domain = Domain {
    name: "align",
    module: || exported_module!(align_api),
    extra: |_| {},
};

/// Token-level edit-distance alignment (docs/method.md, "The alignment that defines minimum
/// edit"): the flags that make the 1.0 imitation weights of step 6.
#[export_module]
pub mod align_api {
    use rhai::Array;

    use super::Token;
    use crate::align::{Mode, align};

    /// One 0/1 per token of `b` (the fix): 1 where the minimum edit from `a` (the
    /// prediction) changed it. `mode` `"paper"` reproduces the public code's table filling,
    /// tie-breaking and walk back exactly (a deleted prediction token flags the fix token at
    /// its column; fix tokens before the first prediction token are never flagged);
    /// `"optimal"` flags exactly the inserted and substituted tokens of one minimal
    /// alignment. Tokens are compared as values: ids, strings, anything comparable.
    ///
    /// ```rhai
    /// let flags = align_edits([5, 6, 9, 7], [5, 6, 7], "paper");     // [0, 1, 0]
    /// let flags = align_edits([5, 6, 9, 7], [5, 6, 7], "optimal");   // [0, 0, 0]
    /// let flags = align_edits([5, 9, 7], [5, 6, 7], "paper");        // [0, 1, 0]
    /// ```
    #[rhai_fn(return_raw)]
    pub fn align_edits(a: Array, b: Array, mode: &str) -> Result<Array, Box<EvalAltResult>> {
        let mode: Mode = mode
            .parse()
            .map_err(|e: String| format!("align_edits: {e}"))?;
        let key = |v: &Dynamic| -> Result<Token, Box<EvalAltResult>> {
            if let Ok(i) = v.as_int() {
                Ok(Token::Int(i))
            } else if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
                Ok(Token::Text(s.to_string()))
            } else {
                Err(format!(
                    "align_edits: tokens must be integers (ids) or strings, got {}",
                    v.type_name()
                )
                .into())
            }
        };
        let a: Vec<Token> = a.iter().map(key).collect::<Result<_, _>>()?;
        let b: Vec<Token> = b.iter().map(key).collect::<Result<_, _>>()?;
        Ok(align(&a, &b, mode)
            .flags
            .into_iter()
            .map(|f| Dynamic::from_int(i64::from(f)))
            .collect())
    }
}
