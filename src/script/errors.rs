//! Script errors as researchers need them: `file:line:col: message`, then the call stack
//! through functions and imported modules, innermost first.

use std::fmt;

use rhai::{EvalAltResult, Position};

/// A place in a script file.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub file: String,
    pub line: Option<usize>,
    pub col: Option<usize>,
}

impl Location {
    fn new(file: &str, pos: Position) -> Self {
        Self {
            file: file.to_string(),
            line: pos.line(),
            col: pos.position(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.col {
                write!(f, ":{col}")?;
            }
        }
        Ok(())
    }
}

/// One step of the call stack: what was called or imported, and from where.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub what: String,
    pub from: Location,
}

/// A compile or runtime error of a script, located.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptError {
    pub at: Location,
    pub message: String,
    /// Innermost call first.
    pub stack: Vec<Frame>,
}

impl std::error::Error for ScriptError {}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)?;
        for frame in &self.stack {
            write!(f, "\n    {} from {}", frame.what, frame.from)?;
        }
        Ok(())
    }
}

impl ScriptError {
    /// Unwind rhai's nested error into the failing location and the stack that led there.
    /// `file` is the script the error surfaced in (the top-level script).
    pub fn from_rhai(err: &EvalAltResult, file: &str) -> Self {
        let mut stack = Vec::new();
        let mut file = file.to_string();
        let mut err = err;
        loop {
            match err {
                // `source` is where the called function is defined; `pos` is the call site.
                EvalAltResult::ErrorInFunctionCall(name, source, inner, pos) => {
                    stack.push(Frame {
                        what: format!("`{name}` called"),
                        from: Location::new(&file, *pos),
                    });
                    if !source.is_empty() {
                        file = source.clone();
                    }
                    err = inner;
                }
                EvalAltResult::ErrorInModule(path, inner, pos) => {
                    stack.push(Frame {
                        what: format!("module `{path}` imported"),
                        from: Location::new(&file, *pos),
                    });
                    file = path.clone();
                    err = inner;
                }
                leaf => {
                    let pos = leaf.position();
                    // rhai appends " (line L, position C)"; the location is printed apart.
                    let text = match leaf {
                        // A native function's error message, without rhai's "Runtime error: ".
                        EvalAltResult::ErrorRuntime(value, _) => value.to_string(),
                        other => other.to_string(),
                    };
                    let suffix = format!(" ({pos})");
                    let message = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
                    stack.reverse();
                    return Self {
                        at: Location::new(&file, pos),
                        message,
                        stack,
                    };
                }
            }
        }
    }

    /// A parse error of `file`.
    pub fn from_parse(err: &rhai::ParseError, file: &str) -> Self {
        Self {
            at: Location::new(file, err.position()),
            message: err.err_type().to_string(),
            stack: Vec::new(),
        }
    }
}

/// What a native's error says, without rhai's "Runtime error: " and position: for an error
/// passed on inside another native's message.
pub fn message(err: &EvalAltResult) -> String {
    match err {
        EvalAltResult::ErrorRuntime(value, _) => value.to_string(),
        other => {
            let text = other.to_string();
            let suffix = format!(" ({})", other.position());
            text.strip_suffix(&suffix).unwrap_or(&text).to_string()
        }
    }
}

/// A closure a native calls with a fixed number of arguments, given one that takes another
/// number: rhai reports only "Function not found: anon$3f2a… ()". Say what was expected
/// (`what`: "stage `x`: the body", `expected`: "`|| ...`"); other errors pass through.
pub fn closure_arity(
    err: Box<EvalAltResult>,
    closure: &rhai::FnPtr,
    what: &str,
    expected: &str,
) -> Box<EvalAltResult> {
    match *err {
        EvalAltResult::ErrorFunctionNotFound(ref signature, _)
            if signature.starts_with(closure.fn_name()) =>
        {
            format!("{what} takes the wrong number of parameters: write it as {expected}").into()
        }
        _ => err,
    }
}
