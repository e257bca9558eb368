//! Asking a loopback server for `/v1/models`: one plain HTTP/1.0 GET over `std::net`.
//!
//! The crate's HTTP client is async (reqwest on tokio); a readiness poll is a loop of
//! single requests to 127.0.0.1, for which a runtime would be more machinery than the
//! request. HTTP/1.0 with `Connection: close` keeps the answer simple to read: no chunked
//! body (a server answers a 1.0 request with `Content-Length` or by closing), no keep-alive.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// Answers larger than this are not a model list; reading stops there.
const MAX_ANSWER: usize = 1 << 20;

/// A server's answer: its status code and body.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// `GET /v1/models` on `127.0.0.1:port`, each of connecting and reading limited to `timeout`.
pub fn models(port: u16, timeout: Duration) -> io::Result<Answer> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /v1/models HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk)?;
        raw.extend_from_slice(&chunk[..n]);
        if n == 0 || raw.len() >= MAX_ANSWER || complete(&raw) {
            break;
        }
    }
    parse(&raw)
}

/// The first model id of a `/v1/models` body (`{"data": [{"id": ...}]}`).
pub fn first_model_id(body: &str) -> Option<String> {
    let list: serde_json::Value = serde_json::from_str(body).ok()?;
    list["data"][0]["id"].as_str().map(String::from)
}

fn head_end(raw: &[u8]) -> Option<usize> {
    raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// The header's `Content-Length`, if it has one.
fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

/// Whether `raw` holds the whole answer by its `Content-Length` (a server that keeps the
/// connection open despite `Connection: close` is then not waited for).
fn complete(raw: &[u8]) -> bool {
    head_end(raw).is_some_and(|end| {
        content_length(&String::from_utf8_lossy(&raw[..end]))
            .is_some_and(|length| raw.len() - end >= length)
    })
}

fn parse(raw: &[u8]) -> io::Result<Answer> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let end = head_end(raw).ok_or_else(|| bad("an answer without a complete header"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("HTTP/"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad("an answer without an HTTP status line"))?;
    let mut body = &raw[end..];
    if let Some(length) = content_length(&head) {
        body = &body[..length.min(body.len())];
    }
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn reads_status_and_body() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}extra";
        let answer = parse(raw).unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, "{\"a\":1}");
        assert!(complete(raw));
        assert!(!complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{\"a\":1}"
        ));
    }

    #[test]
    fn without_a_length_the_body_runs_to_the_end() {
        let answer = parse(b"HTTP/1.0 503 Service Unavailable\r\n\r\nloading").unwrap();
        assert_eq!(answer.status, 503);
        assert_eq!(answer.body, "loading");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
    }

    #[test]
    fn the_first_model_id() {
        let body = r#"{"object":"list","data":[{"id":"policy","object":"model"},{"id":"b"}]}"#;
        assert_eq!(first_model_id(body).as_deref(), Some("policy"));
        assert_eq!(first_model_id(r#"{"data":[]}"#), None);
        assert_eq!(first_model_id("not json"), None);
    }

    #[test]
    fn asks_a_loopback_server() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (answered, hold) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let n = conn.read(&mut request).unwrap();
            let body = r#"{"data":[{"id":"m"}]}"#;
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            // Keeps the connection open, as a keep-alive server might, until the client
            // has its answer (or long past the client's timeout).
            let _ = hold.recv_timeout(Duration::from_secs(10));
            String::from_utf8_lossy(&request[..n]).into_owned()
        });
        let asked = std::time::Instant::now();
        let answer = models(port, Duration::from_secs(5)).unwrap();
        assert!(
            asked.elapsed() < Duration::from_secs(4),
            "waited for the close"
        );
        answered.send(()).unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(first_model_id(&answer.body).as_deref(), Some("m"));
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /v1/models HTTP/1.0\r\n"),
            "{request}"
        );
    }

    #[test]
    fn nothing_listening_is_an_error() {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(models(port, Duration::from_secs(1)).is_err());
    }
}
