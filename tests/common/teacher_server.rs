//! A mock OpenAI-compatible server on loopback for the HTTP teacher tests.

use std::time::Duration;

use rlmec::http::{Cache, Transport};
use rlmec::tasks::TaskKind;
use rlmec::teacher::http::{HttpOptions, HttpTeacher};
use wiremock::ResponseTemplate;

use super::mock_api::MockApi;

pub struct Server(MockApi);

impl std::ops::Deref for Server {
    type Target = MockApi;

    fn deref(&self) -> &MockApi {
        &self.0
    }
}

impl Server {
    pub fn start() -> Self {
        Self(MockApi::start())
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.received().len()
    }

    /// The teacher spec that names this server: `openai:tiny@http://127.0.0.1:PORT`.
    pub fn spec(&self) -> String {
        format!("openai:tiny@{}", self.server.uri())
    }

    pub fn teacher(&self, opts: HttpOptions, cache: Cache) -> HttpTeacher {
        HttpTeacher::new(&self.spec(), TaskKind::Math, cache, opts).unwrap()
    }
}

/// Options with short backoffs and timeouts.
pub fn fast() -> HttpOptions {
    HttpOptions {
        transport: Transport {
            backoff: Duration::from_millis(10),
            timeout: Duration::from_secs(5),
            ..Transport::default()
        },
        ..HttpOptions::default()
    }
}

/// A `/v1/completions` answer without `usage`.
pub fn completion(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({"choices": [{"text": text}]}))
}

/// A `/v1/completions` answer that took `prompt_tokens` and `completion_tokens`.
pub fn completion_with_usage(
    text: &str,
    prompt_tokens: u64,
    completion_tokens: u64,
) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "choices": [{"text": text}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }))
}
