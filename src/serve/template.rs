//! The serve command template: `vllm serve {model} --port {port}` with its placeholders
//! checked when it is read, and filled in (values shell-quoted) once the port is known.
//!
//! `{{` and `}}` stand for literal braces. The template must contain `{port}`: rlmec picks
//! the port, and a server listening elsewhere could never be found. It must not begin with
//! a variable assignment (`CUDA_VISIBLE_DEVICES=1 vllm ...`): the command runs as
//! `exec COMMAND`, where the shell would take the assignment for the program; `env VAR=1
//! vllm ...` says the same.

use std::fmt;

/// A value the runtime fills into the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// The model's path (a folder of safetensors, or a GGUF file, as the run has it).
    Model,
    /// A GGUF file of the model, made only when the template asks for it.
    Gguf,
    /// The loopback port rlmec picked.
    Port,
    /// The address to listen on: always `127.0.0.1`.
    Host,
    /// The name the model is served under (what `openai:<name>@<url>` names).
    Name,
}

impl Placeholder {
    const ALL: [Placeholder; 5] = [
        Placeholder::Model,
        Placeholder::Gguf,
        Placeholder::Port,
        Placeholder::Host,
        Placeholder::Name,
    ];

    fn word(self) -> &'static str {
        match self {
            Placeholder::Model => "model",
            Placeholder::Gguf => "gguf",
            Placeholder::Port => "port",
            Placeholder::Host => "host",
            Placeholder::Name => "name",
        }
    }

    fn from_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.word() == word)
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}}}", self.word())
    }
}

/// `{model}, {gguf}, {port}, {host}, {name}`, for error messages.
fn known() -> String {
    Placeholder::ALL.map(|p| p.to_string()).join(", ")
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    #[error("the serve command is empty")]
    Empty,
    #[error("serve command `{template}`: unknown placeholder `{{{word}}}` (known: {known})", known = known())]
    Unknown { template: String, word: String },
    #[error(
        "serve command `{template}`: the `{{` at character {at} is not closed (write `{{{{` for a literal brace; placeholders: {known})",
        known = known()
    )]
    Unclosed { template: String, at: usize },
    #[error(
        "serve command `{template}`: the `}}` at character {at} closes nothing (write `}}}}` for a literal brace; placeholders: {known})",
        known = known()
    )]
    Unopened { template: String, at: usize },
    #[error(
        "serve command `{template}` has no {{port}}: rlmec picks the port the server must listen on"
    )]
    NoPort { template: String },
    #[error(
        "serve command `{template}` begins with the assignment `{word}`, which `exec` would take for the program: write `env {word} ...`"
    )]
    Assignment { template: String, word: String },
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Value(Placeholder),
}

/// A checked serve command template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        if source.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let template = || source.to_string();
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = source.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.next_if(|&(_, c)| c == '{').is_some() => text.push('{'),
                '}' if chars.next_if(|&(_, c)| c == '}').is_some() => text.push('}'),
                '}' => {
                    return Err(TemplateError::Unopened {
                        template: template(),
                        at: char_number(source, at),
                    });
                }
                '{' => {
                    let rest = &source[at + 1..];
                    let Some(len) = rest
                        .find(['}', '{'])
                        .filter(|&i| rest[i..].starts_with('}'))
                    else {
                        return Err(TemplateError::Unclosed {
                            template: template(),
                            at: char_number(source, at),
                        });
                    };
                    let word = &rest[..len];
                    let placeholder =
                        Placeholder::from_word(word).ok_or_else(|| TemplateError::Unknown {
                            template: template(),
                            word: word.to_string(),
                        })?;
                    // Skip the word and its closing brace.
                    while chars.next_if(|&(i, _)| i <= at + 1 + len).is_some() {}
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Value(placeholder));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        let parsed = Self {
            source: source.to_string(),
            pieces,
        };
        if !parsed.uses(Placeholder::Port) {
            return Err(TemplateError::NoPort {
                template: template(),
            });
        }
        if let Some(word) = source
            .split_whitespace()
            .next()
            .filter(|w| is_assignment(w))
        {
            return Err(TemplateError::Assignment {
                template: template(),
                word: word.to_string(),
            });
        }
        Ok(parsed)
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn uses(&self, placeholder: Placeholder) -> bool {
        self.pieces.contains(&Piece::Value(placeholder))
    }

    /// The command with every placeholder replaced by `value(placeholder)`, shell-quoted.
    pub fn render(&self, value: impl Fn(Placeholder) -> String) -> String {
        self.pieces
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.clone(),
                Piece::Value(p) => shell_quoted(&value(*p)),
            })
            .collect()
    }
}

/// Whether a shell word sets a variable (`NAME=value`).
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// 1-based position of the character at byte `at`, as a reader counts.
fn char_number(source: &str, at: usize) -> usize {
    source[..at].chars().count() + 1
}

/// `value` as one shell word: as it is when it has no character the shell treats specially,
/// else in single quotes (a `'` inside written `'\''`).
fn shell_quoted(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:@%+=,".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(p: Placeholder) -> String {
        match p {
            Placeholder::Model => "/runs/x/sft/model".into(),
            Placeholder::Gguf => "/runs/x/sft/model.gguf".into(),
            Placeholder::Port => "41234".into(),
            Placeholder::Host => "127.0.0.1".into(),
            Placeholder::Name => "policy".into(),
        }
    }

    #[test]
    fn fills_every_placeholder() {
        let t = Template::parse(
            "vllm serve {model} --host {host} --port {port} --served-model-name {name} # {gguf}",
        )
        .unwrap();
        assert_eq!(
            t.render(values),
            "vllm serve /runs/x/sft/model --host 127.0.0.1 --port 41234 --served-model-name policy # /runs/x/sft/model.gguf"
        );
    }

    #[test]
    fn says_which_placeholders_it_uses() {
        let t = Template::parse("llama-server -m {gguf} --port {port}").unwrap();
        assert!(t.uses(Placeholder::Gguf));
        assert!(t.uses(Placeholder::Port));
        assert!(!t.uses(Placeholder::Model));
        assert!(!t.uses(Placeholder::Name));
    }

    #[test]
    fn doubled_braces_are_literal() {
        let t = Template::parse(r#"srv --port {port} --json '{{"a": {{"b": 1}}}}'"#).unwrap();
        assert_eq!(
            t.render(values),
            r#"srv --port 41234 --json '{"a": {"b": 1}}'"#
        );
        assert!(!t.uses(Placeholder::Model));
    }

    #[test]
    fn values_with_shell_characters_are_quoted() {
        let t = Template::parse("srv {model} {name} --port {port}").unwrap();
        let command = t.render(|p| match p {
            Placeholder::Model => "/runs/my run/it's here".into(),
            Placeholder::Name => "a;b$(c)".into(),
            other => values(other),
        });
        assert_eq!(
            command,
            r"srv '/runs/my run/it'\''s here' 'a;b$(c)' --port 41234"
        );
    }

    #[test]
    fn an_empty_value_is_still_one_word() {
        assert_eq!(shell_quoted(""), "''");
        assert_eq!(shell_quoted("a-b_c/d.e:1"), "a-b_c/d.e:1");
    }

    #[test]
    fn an_unknown_placeholder_is_named_with_the_known_ones() {
        let err = Template::parse("vllm serve {modle} --port {port}").unwrap_err();
        assert_eq!(
            err,
            TemplateError::Unknown {
                template: "vllm serve {modle} --port {port}".into(),
                word: "modle".into()
            }
        );
        let message = err.to_string();
        assert!(message.contains("`{modle}`"), "{message}");
        assert!(
            message.contains("{model}, {gguf}, {port}, {host}, {name}"),
            "{message}"
        );
    }

    #[test]
    fn an_unclosed_brace_is_located() {
        let err = Template::parse("srv --port {port} {model").unwrap_err();
        assert!(
            matches!(err, TemplateError::Unclosed { at: 19, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("character 19"), "{err}");
        // A brace opened again before it closes is the unclosed one.
        let err = Template::parse("srv {mo{port}").unwrap_err();
        assert!(
            matches!(err, TemplateError::Unclosed { at: 5, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_lone_closing_brace_is_located() {
        let err = Template::parse("srv --port {port} model}").unwrap_err();
        assert!(
            matches!(err, TemplateError::Unopened { at: 24, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("write `}}`"), "{err}");
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let err = Template::parse("é {port} }").unwrap_err();
        assert!(
            matches!(err, TemplateError::Unopened { at: 10, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_leading_assignment_is_refused_with_the_fix() {
        let err =
            Template::parse("CUDA_VISIBLE_DEVICES=1 vllm serve {model} --port {port}").unwrap_err();
        assert!(
            matches!(&err, TemplateError::Assignment { word, .. } if word == "CUDA_VISIBLE_DEVICES=1"),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("`env CUDA_VISIBLE_DEVICES=1 ...`"),
            "{err}"
        );
        // Later `=` signs are the program's arguments.
        assert!(
            Template::parse("env CUDA_VISIBLE_DEVICES=1 vllm serve {model} --port={port}").is_ok()
        );
        assert!(Template::parse("./=x --port {port}").is_ok());
    }

    #[test]
    fn the_port_is_required() {
        let err = Template::parse("vllm serve {model}").unwrap_err();
        assert!(matches!(err, TemplateError::NoPort { .. }));
        assert!(err.to_string().contains("{port}"), "{err}");
        assert_eq!(Template::parse("  "), Err(TemplateError::Empty));
    }
}
