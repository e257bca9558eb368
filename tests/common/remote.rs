//! Mock inference servers on loopback for the remote engine's tests: a wiremock server with
//! vLLM-like and llama-cpp-python-like answers, and a raw one that drops connections.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;

use rlmec::engine::remote::probe::PROBE;
use rlmec::engine::remote::{RemoteModel, RemoteOptions};
use rlmec::tokenize::TextTokenizer;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, ResponseTemplate};

use super::mock_api::MockApi;

pub const MODEL: &str = "tiny";

pub fn tokenizer_path() -> PathBuf {
    super::model_fixture("tiny-llama")
}

pub fn tokenizer() -> TextTokenizer {
    TextTokenizer::of_model(&tokenizer_path()).unwrap()
}

/// Options for fast tests: the fixture's tokenizer, short timeouts and backoff.
pub fn options() -> RemoteOptions {
    RemoteOptions {
        tokenizer: Some(tokenizer_path()),
        timeout_s: 5.0,
        backoff_s: 0.01,
        ..RemoteOptions::default()
    }
}

pub fn body(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap_or(Value::Null)
}

/// Whether a request is one of the engine's probes: a completion of the probe text, or the
/// scoring of its ids.
pub fn is_probe(request: &Request) -> bool {
    static PROBE_IDS: OnceLock<Value> = OnceLock::new();
    let ids = PROBE_IDS.get_or_init(|| json!(tokenizer().encode(PROBE).unwrap()));
    let prompt = &body(request)["prompt"];
    prompt.as_str().is_some_and(|p| p.starts_with(PROBE)) || prompt == ids
}

/// A vLLM-like answer to a completion request: `n` choices, choice `i` the text
/// ` s{seed} c{i}` (so tests see which seed and slot produced it), with its ids and
/// log-probabilities, stopped by length.
pub fn vllm_completion(tok: &TextTokenizer, request: &Request) -> ResponseTemplate {
    let body = body(request);
    let n = body["n"].as_u64().unwrap_or(1);
    let seed = body["seed"]
        .as_u64()
        .map_or("-".to_string(), |s| s.to_string());
    let choices: Vec<Value> = (0..n)
        .map(|i| {
            let text = format!(" s{seed} c{i}");
            let ids = tok.encode(&text).unwrap();
            json!({
                "index": i, "text": text, "finish_reason": "length", "stop_reason": null,
                "token_ids": ids,
                "logprobs": {
                    "tokens": ids.iter().map(|id| format!("token_id:{id}")).collect::<Vec<_>>(),
                    "token_logprobs": ids.iter().map(|_| -0.5).collect::<Vec<_>>(),
                },
            })
        })
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({"model": MODEL, "choices": choices}))
}

/// A llama-cpp-python-like answer: one choice whatever `n`, no ids, no `stop_reason`.
pub fn llama_cpp_completion(request: &Request) -> ResponseTemplate {
    let seed = body(request)["seed"].as_u64().unwrap_or(0);
    ResponseTemplate::new(200).set_body_json(json!({"choices": [
        {"index": 0, "text": format!(" s{seed}"), "finish_reason": "stop", "logprobs": null}
    ]}))
}

pub struct Server(MockApi);

impl std::ops::Deref for Server {
    type Target = MockApi;

    fn deref(&self) -> &MockApi {
        &self.0
    }
}

impl Server {
    /// A server listing the model; no tokenize endpoint and no completions yet.
    pub fn start() -> Self {
        let s = Self(MockApi::start());
        s.mount(
            Mock::given(method("GET"))
                .and(path("/v1/models"))
                .respond_with(ResponseTemplate::new(200).set_body_json(
                    json!({"object": "list", "data": [{"id": MODEL, "owned_by": "vllm"}]}),
                )),
        );
        s
    }

    /// A vLLM-like server: `/tokenize` as our tokenizer, completions with `n` and ids.
    pub fn vllm() -> Self {
        let s = Self::start();
        let tok = tokenizer();
        s.mount(
            Mock::given(method("POST"))
                .and(path("/tokenize"))
                .respond_with(move |r: &Request| {
                    let ids = tok.encode(body(r)["prompt"].as_str().unwrap()).unwrap();
                    ResponseTemplate::new(200).set_body_json(json!({"tokens": ids}))
                }),
        );
        s.mount_vllm_completions();
        s
    }

    /// Completions answered as vLLM would, with the fixture's tokenizer (loaded once).
    pub fn mount_vllm_completions(&self) {
        let tok = tokenizer();
        self.mount_completions(move |r: &Request| vllm_completion(&tok, r));
    }

    pub fn mount_completions(
        &self,
        respond: impl Fn(&Request) -> ResponseTemplate + Send + Sync + 'static,
    ) {
        self.mount(
            Mock::given(method("POST"))
                .and(path("/v1/completions"))
                .respond_with(respond),
        );
    }

    pub fn spec(&self) -> String {
        format!("openai:{MODEL}@{}", self.server.uri())
    }

    pub fn connect(&self, opts: &RemoteOptions) -> RemoteModel {
        RemoteModel::connect(&self.spec(), opts).unwrap()
    }

    /// The bodies of the completion requests received, probes left out.
    pub fn completions(&self) -> Vec<Value> {
        self.received()
            .iter()
            .filter(|r| r.url.path() == "/v1/completions" && !is_probe(r))
            .map(body)
            .collect()
    }
}

/// A server on a raw socket that answers like vLLM but closes the connection, unanswered,
/// on every completion request whose prompt contains `drop`; `/tokenize` is absent.
pub fn dropping_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer_or_drop(stream));
        }
    });
    url
}

fn answer_or_drop(mut stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut raw = vec![0; length];
    reader.read_exact(&mut raw).unwrap();
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let (status, answer) = if request_line.starts_with("GET /v1/models") {
        (200, json!({"data": [{"id": MODEL}]}))
    } else if request_line.starts_with("POST /v1/completions") {
        if body["prompt"].as_str().unwrap_or("").contains("drop") {
            return; // the stream closes unanswered
        }
        let n = body["n"].as_u64().unwrap_or(1);
        let choices: Vec<Value> = (0..n)
            .map(|i| json!({"index": i, "text": " ok", "finish_reason": "length"}))
            .collect();
        (200, json!({"choices": choices}))
    } else {
        (404, json!({"detail": "Not Found"}))
    };
    let text = answer.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}
