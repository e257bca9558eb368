//! Models behind inference servers: connect to a running one, or start one for a model.

use rhai::plugin::*;

use super::engine::Domain;

pub const DOMAIN: Domain = Domain {
    name: "serve",
    module: || exported_module!(serve_api),
    extra: |_| {},
};

/// Models behind OpenAI-compatible inference servers (vLLM, SGLang, llama.cpp): the handle
/// they give generates (`generate`, `sample`, `minimum_edit`) and scores (`score_batch`,
/// where the server returns prompt log-probabilities) like a loaded model, with requests
/// batched by the server, retried, and cached.
#[export_module]
pub mod serve_api {
    use std::path::Path;

    use crate::engine::remote::{RemoteModel, RemoteOptions};
    use crate::engine::served::{ServeModelOptions, serve};
    use crate::script::model::ModelHandle;
    use crate::script::options::Options;
    use crate::serve::ServeOptions;

    // The type is documented once, by the model domain.
    type Model = ModelHandle;

    /// A model behind a running OpenAI-compatible server, `spec` = `"openai:<name>@<url>"`
    /// (`<name>`: the model as the server serves it; the key from `OPENAI_API_KEY` if set).
    /// `tokenizer` (required): a model folder or GGUF file whose tokenizer the served model
    /// shares; the server's own tokenizer (`/tokenize`, `/extras/tokenize`) is checked
    /// against it once, and a mismatch refused.
    ///
    /// Options: `tokenizer`, `cache` (a JSONL file keeping every answer, so a rerun never
    /// asks twice), `identity` (mixed into the cache keys: what distinguishes this model
    /// from another served under the same name), `concurrency` (requests in flight; the
    /// server batches them), `timeout_s`, `retries` (429 and 5xx, honouring `Retry-After`),
    /// `backoff_s`, `check_tokenizer`, `logprobs` (ask for the sampled tokens'
    /// log-probabilities). Defaults: {defaults:remote}.
    ///
    /// `generate` sends prompts as text and maps `n` (identical prompts in a row),
    /// `temperature`, `top_p`, `top_k`, `max_new_tokens`, `stop`, `seed`; results are
    /// `#{text, ids, logprobs, finish}` as a loaded model's, `ids` being the server's ids or
    /// our encoding of the text (with EOS when it ended there). `score_batch` sends token ids
    /// and reads the server's prompt log-probabilities (vLLM); a server without them is an
    /// error (score with a loaded model instead).
    ///
    /// ```rhai
    /// // with a server running: vllm serve HuggingFaceTB/SmolLM2-135M-Instruct --port 8000
    /// fn remote_sample(url) {
    ///     let m = model_remote(`openai:HuggingFaceTB/SmolLM2-135M-Instruct@${url}`,
    ///                          #{tokenizer: "data/models/SmolLM2-135M-Instruct.Q4_1.gguf"});
    ///     m.generate(["Question: 2 + 2 = ?\nAnswer:"], #{max_new_tokens: 8})[0].text
    /// }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn model_remote(spec: &str, options: rhai::Map) -> Result<Model, Box<EvalAltResult>> {
        let mut o = Options::new("model_remote", options);
        let opts: RemoteOptions = o.parse()?;
        o.finish()?;
        let remote = RemoteModel::connect(spec, &opts).map_err(|e| format!("model_remote: {e}"))?;
        Ok(ModelHandle::remote(remote))
    }

    /// Start an inference server for the model at `path` (a GGUF file or a model folder)
    /// from the command template `serve`, and connect to it: the handle is a
    /// `model_remote` one, and the server stops when the last value holding it is dropped
    /// (a stage's engine: when the stage ends), when rlmec ends, or is killed.
    ///
    /// The template's placeholders: `{model}` (the path), `{gguf}` (the model as one GGUF
    /// file: itself, or saved beside the log in `gguf_dtype`), `{port}` (a free loopback
    /// port), `{host}` (`127.0.0.1`), `{name}` (the served name, option `name`). The server
    /// is ready when `/v1/models` answers; if it exits first or stays silent for
    /// `startup_timeout_s`, the error shows its last log lines. Options: `serve`, `name`,
    /// `log` (the server's output; default `serve.log` beside the model), `gguf_dtype`,
    /// `startup_timeout_s`, `poll_interval_s`, `stop_timeout_s` (SIGTERM, then SIGKILL to
    /// its process group), and every option of `model_remote` (`tokenizer` defaults to the
    /// model). Defaults: {defaults:serve}.
    ///
    /// ```rhai
    /// fn llama_cpp(path) {
    ///     model_serve(path, #{serve: "python3 -m llama_cpp.server --model {gguf} --host {host} --port {port}",
    ///                         log: "/tmp/rlmec-doc/serve.log"})
    /// }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn model_serve(path: &str, options: rhai::Map) -> Result<Model, Box<EvalAltResult>> {
        let mut o = Options::new("model_serve", options);
        let opts: ServeModelOptions = o.parse()?;
        let server: ServeOptions = o.parse()?;
        let remote: RemoteOptions = o.parse()?;
        o.finish()?;
        let served = serve(Path::new(path), &opts, &server, remote)
            .map_err(|e| format!("model_serve {path}: {e}"))?;
        Ok(ModelHandle::remote(served))
    }
}
