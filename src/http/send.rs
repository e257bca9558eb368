//! One request on the wire: an attempt, and the retries around it.

use std::time::Duration;

use rand::Rng;
use serde_json::Value;

use super::cache::Answer;
use super::{Exchange, Parse, Transport, Usage};

/// Why an attempt failed.
enum Failure {
    /// Worth another attempt, after the server's `Retry-After` when it gave one.
    Retryable(String, Option<Duration>),
    Fatal(String),
}

/// `exchange` sent until it is answered, fails for good, or the retries are spent: what
/// `parse` kept of the answer, and the tokens it took.
pub(super) async fn with_retries(
    client: &reqwest::Client,
    name: &str,
    exchange: &Exchange,
    transport: &Transport,
    parse: &Parse,
) -> Result<Answer, String> {
    let mut attempt = 0;
    loop {
        match attempt_once(client, exchange, parse).await {
            Ok(answer) => return Ok(answer),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retryable(e, retry_after)) => {
                if attempt >= transport.retries {
                    return Err(format!("{e} (after {} attempts)", attempt + 1));
                }
                let backoff = transport.backoff.as_secs_f64() * 2f64.powi(attempt as i32);
                let jittered = backoff * rand::thread_rng().gen_range(0.5..1.5);
                // A huge backoff after many retries is capped, not a panic.
                let wait = retry_after
                    .or(Duration::try_from_secs_f64(jittered).ok())
                    .unwrap_or(transport.max_backoff)
                    .min(transport.max_backoff);
                tracing::debug!("{name}: {e}; retrying in {:.1}s", wait.as_secs_f64());
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// `exchange` sent once: its answer, or why it failed.
pub(super) async fn once(
    client: &reqwest::Client,
    exchange: &Exchange,
    parse: &Parse,
) -> Result<Value, String> {
    attempt_once(client, exchange, parse)
        .await
        .map(|answer| answer.reply)
        .map_err(|failure| match failure {
            Failure::Retryable(e, _) | Failure::Fatal(e) => e,
        })
}

async fn attempt_once(
    client: &reqwest::Client,
    exchange: &Exchange,
    parse: &Parse,
) -> Result<Answer, Failure> {
    let mut request = client.post(&exchange.url).json(&exchange.body);
    for (name, value) in &exchange.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.map_err(|e| {
        let what = if e.is_timeout() {
            "timed out"
        } else {
            "connection failed"
        };
        Failure::Retryable(format!("request {what}"), None)
    })?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        // What the server says is not trusted: a negative or absurd value is ignored.
        .and_then(|s| Duration::try_from_secs_f64(s).ok());
    let text = response
        .text()
        .await
        .map_err(|_| Failure::Retryable("reading the response failed".into(), None))?;
    let excerpt = excerpt(&text, &exchange.headers);
    match status.as_u16() {
        // A truncated body (a proxy or an overloaded server cutting it) is worth another try.
        200..=299 => {
            let value: Value = serde_json::from_str(&text).map_err(|_| {
                Failure::Retryable(format!("malformed JSON in the response: {excerpt}"), None)
            })?;
            let reply = parse(&value).map_err(Failure::Fatal)?;
            Ok(Answer {
                reply,
                usage: Usage::of(&value),
            })
        }
        429 | 529 | 500..=599 => Err(Failure::Retryable(
            format!("HTTP {status}: {excerpt}"),
            retry_after,
        )),
        _ => Err(Failure::Fatal(format!("HTTP {status}: {excerpt}"))),
    }
}

/// One `GET`, its JSON body when the status is 2xx.
pub(super) async fn get(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
) -> Result<Value, String> {
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !status.is_success() {
        let excerpt = excerpt(&text, headers);
        return Err(format!("GET {url}: HTTP {status}: {excerpt}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("GET {url}: malformed JSON: {e}"))
}

/// The start of a response body for an error message, without the secrets the request
/// carried in its headers: a server may echo the key it refused.
fn excerpt(body: &str, headers: &[(String, String)]) -> String {
    let mut shown = body.to_string();
    for (_, value) in headers {
        let secret = value.strip_prefix("Bearer ").unwrap_or(value);
        // Short values (`anthropic-version`) are not secrets, and replacing them would only
        // blur the message.
        if secret.len() >= 8 {
            shown = shown.replace(secret, "[redacted]");
        }
    }
    shown.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echoed_key_is_redacted() {
        let headers = [
            (
                "authorization".to_string(),
                "Bearer sk-secret-123".to_string(),
            ),
            ("x-api-key".to_string(), "ak-other-4567".to_string()),
            ("anthropic-version".to_string(), "2023".to_string()),
        ];
        let body = "invalid key sk-secret-123 (also ak-other-4567) for version 2023";
        assert_eq!(
            excerpt(body, &headers),
            "invalid key [redacted] (also [redacted]) for version 2023"
        );
        assert_eq!(excerpt(&"x".repeat(300), &[]).len(), 200);
    }
}
