//! A model served for one stage: an inference server started from the `serve` template
//! ([`crate::serve`]) and the remote engine that talks to it ([`super::remote`]). Dropping it
//! stops the server, so a stage's server lives exactly as long as the stage holds its
//! engine.
//!
//! `{gguf}` in the template is the model as one GGUF file: a `.gguf` model is its own file;
//! a Hugging Face folder (a model the run trained) is loaded and saved as GGUF beside the
//! server's log, in `gguf_dtype`, only when the template asks for it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Engine;
use super::remote::{RemoteError, RemoteModel, RemoteOptions};
use crate::generate::{GenerateError, GenerateOptions, Generation, Request};
use crate::model::to_gguf::{GgufDtype, GgufOptions};
use crate::model::{LoadOptions, Model};
use crate::serve::{ServeError, ServeInputs, ServeOptions, ServedModel, Template, TemplateError};
use crate::tokenize::TextTokenizer;

/// What `model_serve` starts, besides the server's timing ([`ServeOptions`]) and the remote
/// engine's options ([`RemoteOptions`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeModelOptions {
    /// The command that starts a server (`{model}`, `{gguf}`, `{port}`, `{host}`, `{name}`).
    pub serve: String,
    /// The name the server is asked to serve the model under (`{name}`).
    pub name: String,
    /// The server's log file; by default `serve.log` beside the model.
    pub log: Option<PathBuf>,
    /// The type of the matrices in the `{gguf}` file.
    pub gguf_dtype: GgufDtype,
}

impl Default for ServeModelOptions {
    fn default() -> Self {
        Self {
            serve: String::new(),
            name: "rlmec".into(),
            log: None,
            gguf_dtype: GgufDtype::F32,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServedError {
    #[error(
        "option `serve` is empty: give the command that starts a server, e.g. \"vllm serve {{model}} --port {{port}}\""
    )]
    NoTemplate,
    #[error("option `serve`: {0}")]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

/// A model behind a server this process started.
pub struct ServedEngine {
    // Dropped first: no request is in flight once the server is told to stop.
    remote: RemoteModel,
    _server: ServedModel,
    model: PathBuf,
}

/// Serve `model` (a GGUF file or a model folder) as `opts` say and connect to it.
pub fn serve(
    model: &Path,
    opts: &ServeModelOptions,
    server: &ServeOptions,
    mut remote: RemoteOptions,
) -> Result<ServedEngine, ServedError> {
    if opts.serve.trim().is_empty() {
        return Err(ServedError::NoTemplate);
    }
    let template = Template::parse(&opts.serve)?;
    let log = opts
        .log
        .clone()
        .unwrap_or_else(|| beside(model, "serve.log"));
    let gguf_path = log.with_file_name("model.gguf");
    let (source, dtype) = (model.to_path_buf(), opts.gguf_dtype);
    let inputs = ServeInputs {
        model: model.to_path_buf(),
        name: opts.name.clone(),
        gguf: Some(Box::new(move || as_gguf(&source, &gguf_path, dtype))),
        log,
    };
    let started = ServedModel::start(&template, inputs, server)?;
    let served_as = started.model_id().unwrap_or(&opts.name).to_string();
    let spec = format!("openai:{served_as}@{}", started.base_url());
    remote.tokenizer.get_or_insert_with(|| model.to_path_buf());
    Ok(ServedEngine {
        remote: RemoteModel::connect(&spec, &remote)?,
        _server: started,
        model: model.to_path_buf(),
    })
}

/// `name` in the folder a model is (a folder) or is in (a file).
fn beside(model: &Path, name: &str) -> PathBuf {
    if model.is_dir() {
        model.join(name)
    } else {
        model.with_file_name(name)
    }
}

/// The model as a GGUF file: itself when it is one, else saved at `path`.
fn as_gguf(model: &Path, path: &Path, dtype: GgufDtype) -> Result<PathBuf, String> {
    if model.is_file() && model.extension().is_some_and(|e| e == "gguf") {
        return Ok(model.to_path_buf());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let loaded = Model::load(model, LoadOptions::default()).map_err(|e| e.to_string())?;
    loaded
        .save_gguf(path, &GgufOptions { dtype })
        .map_err(|e| e.to_string())?;
    Ok(path.to_path_buf())
}

impl Engine for ServedEngine {
    /// The model's path, as a native engine names it: records do not depend on the port.
    fn name(&self) -> String {
        self.model.display().to_string()
    }

    fn tokenizer(&self) -> &TextTokenizer {
        self.remote.tokenizer()
    }

    fn eos(&self) -> &[i64] {
        self.remote.eos()
    }

    fn generate(
        &self,
        requests: &[Request],
        opts: &GenerateOptions,
    ) -> Result<Vec<Generation>, GenerateError> {
        self.remote.generate(requests, opts)
    }

    fn score(
        &self,
        pairs: &[(Vec<i64>, Vec<i64>)],
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>, GenerateError> {
        self.remote.score(pairs, batch_size)
    }
}
