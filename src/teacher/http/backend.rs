//! The wire formats: Anthropic's Messages API (the prefill as the final assistant turn) and
//! OpenAI-compatible servers (`/v1/completions` with the turns rendered as the old
//! `\n\nHuman:` / `\n\nAssistant:` text and the prefill appended; `/v1/chat/completions` for
//! servers without it, the prefill as a final assistant message that the server continues).

use serde_json::{Value, json};

/// A conversation to complete: alternating user / assistant turns, the last one from the
/// user, then the text the answer must start with.
#[derive(Debug, Clone, PartialEq)]
pub struct Chat {
    pub turns: Vec<String>,
    pub prefill: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    Anthropic {
        model: String,
        base_url: String,
    },
    OpenAi {
        model: String,
        base_url: String,
        chat: bool,
    },
}

impl Backend {
    /// `anthropic:<model>` or `openai:<model>@<base_url>` (append `#chat` to use
    /// `/v1/chat/completions`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        if let Some(model) = spec.strip_prefix("anthropic:") {
            return Ok(Self::Anthropic {
                model: model.to_string(),
                base_url: std::env::var("ANTHROPIC_BASE_URL")
                    .unwrap_or_else(|_| "https://api.anthropic.com".into()),
            });
        }
        if let Some(rest) = spec.strip_prefix("openai:") {
            let (model, url) = rest
                .split_once('@')
                .ok_or_else(|| format!("`{spec}`: expected openai:<model>@<base_url>"))?;
            let (url, chat) = match url.strip_suffix("#chat") {
                Some(u) => (u, true),
                None => (url, false),
            };
            return Ok(Self::OpenAi {
                model: model.to_string(),
                base_url: url.trim_end_matches('/').to_string(),
                chat,
            });
        }
        Err(format!(
            "unknown teacher `{spec}`: expected {}",
            crate::teacher::spec::FORMS
        ))
    }

    pub fn name(&self) -> String {
        match self {
            Self::Anthropic { model, .. } => format!("anthropic:{model}"),
            Self::OpenAi {
                model,
                base_url,
                chat,
            } => {
                format!(
                    "openai:{model}@{base_url}{}",
                    if *chat { "#chat" } else { "" }
                )
            }
        }
    }

    pub fn model(&self) -> &str {
        match self {
            Self::Anthropic { model, .. } | Self::OpenAi { model, .. } => model,
        }
    }

    /// The environment variable holding the key (never logged or cached).
    pub fn key_variable(&self) -> &'static str {
        match self {
            Self::Anthropic { .. } => "ANTHROPIC_API_KEY",
            Self::OpenAi { .. } => "OPENAI_API_KEY",
        }
    }

    /// The API key from the environment (`key_variable`), if set and not empty.
    pub fn key(&self) -> Option<String> {
        std::env::var(self.key_variable())
            .ok()
            .filter(|k| !k.is_empty())
    }

    pub fn url(&self) -> String {
        match self {
            Self::Anthropic { base_url, .. } => format!("{base_url}/v1/messages"),
            Self::OpenAi {
                base_url,
                chat: false,
                ..
            } => format!("{base_url}/v1/completions"),
            Self::OpenAi {
                base_url,
                chat: true,
                ..
            } => format!("{base_url}/v1/chat/completions"),
        }
    }

    /// The headers of a request: the key (when there is one) as the API expects it.
    pub fn headers(&self, key: Option<&str>) -> Vec<(String, String)> {
        match (self, key) {
            (Self::Anthropic { .. }, key) => vec![
                ("x-api-key".into(), key.unwrap_or_default().into()),
                ("anthropic-version".into(), "2023-06-01".into()),
            ],
            (Self::OpenAi { .. }, Some(key)) => {
                vec![("authorization".into(), format!("Bearer {key}"))]
            }
            (Self::OpenAi { .. }, None) => Vec::new(),
        }
    }

    /// The request body (what the cache key is made of, with the backend and model).
    pub fn body(&self, chat: &Chat, max_tokens: usize, temperature: f64) -> Value {
        let messages = |prefill: bool| -> Vec<Value> {
            let mut m: Vec<Value> = chat
                .turns
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": t})
                })
                .collect();
            if prefill && !chat.prefill.is_empty() {
                m.push(json!({"role": "assistant", "content": chat.prefill}));
            }
            m
        };
        match self {
            Self::Anthropic { model, .. } => json!({
                "model": model, "max_tokens": max_tokens, "temperature": temperature,
                "messages": messages(true),
            }),
            Self::OpenAi {
                model, chat: false, ..
            } => {
                let mut prompt = String::new();
                for (i, t) in chat.turns.iter().enumerate() {
                    let who = if i % 2 == 0 { "Human" } else { "Assistant" };
                    prompt.push_str(&format!("\n\n{who}: {t}"));
                }
                prompt.push_str(&format!("\n\nAssistant: {}", chat.prefill));
                json!({"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": temperature})
            }
            Self::OpenAi {
                model, chat: true, ..
            } => json!({
                "model": model, "max_tokens": max_tokens, "temperature": temperature,
                "messages": messages(true),
                // vLLM / SGLang: continue the prefilled assistant message.
                "continue_final_message": !chat.prefill.is_empty(),
                "add_generation_prompt": chat.prefill.is_empty(),
            }),
        }
    }

    /// The completion text of a response body.
    pub fn text(&self, response: &Value) -> Result<String, String> {
        let text = match self {
            Self::Anthropic { .. } => response["content"].as_array().map(|blocks| {
                blocks
                    .iter()
                    .filter_map(|b| b["text"].as_str())
                    .collect::<String>()
            }),
            Self::OpenAi { chat: false, .. } => {
                response["choices"][0]["text"].as_str().map(str::to_string)
            }
            Self::OpenAi { chat: true, .. } => response["choices"][0]["message"]["content"]
                .as_str()
                .map(str::to_string),
        };
        text.ok_or_else(|| {
            let shown: String = response.to_string().chars().take(200).collect();
            format!("unexpected response shape: {shown}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat() -> Chat {
        Chat {
            turns: vec![
                "example Q".into(),
                "Correct prediction: ex".into(),
                "Q".into(),
            ],
            prefill: "Correct prediction: step 0".into(),
        }
    }

    #[test]
    fn parses_specs() {
        assert_eq!(
            Backend::parse("openai:qwen@http://localhost:8000/").unwrap(),
            Backend::OpenAi {
                model: "qwen".into(),
                base_url: "http://localhost:8000".into(),
                chat: false
            }
        );
        assert!(Backend::parse("openai:qwen").is_err());
        assert!(Backend::parse("gemini:x").is_err());
    }

    #[test]
    fn prefill_is_the_last_assistant_turn_or_the_prompt_tail() {
        let a = Backend::Anthropic {
            model: "m".into(),
            base_url: "u".into(),
        };
        let body = a.body(&chat(), 350, 0.0);
        let msgs = body["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 4);
        assert_eq!(
            msgs[3],
            json!({"role": "assistant", "content": "Correct prediction: step 0"})
        );
        let o = Backend::parse("openai:m@http://h").unwrap();
        let prompt = o.body(&chat(), 350, 0.0)["prompt"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            prompt,
            "\n\nHuman: example Q\n\nAssistant: Correct prediction: ex\n\nHuman: Q\n\nAssistant: Correct prediction: step 0"
        );
        assert_eq!(
            o.text(&json!({"choices": [{"text": " rest"}]})).unwrap(),
            " rest"
        );
        assert!(o.text(&json!({"error": "x"})).is_err());
    }
}
