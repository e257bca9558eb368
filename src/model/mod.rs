//! Language models: llama-family transformers in tch, loaded from a Hugging Face directory
//! (`config.json`, safetensors, `tokenizer.json`) or a GGUF file, saved in Hugging Face
//! layout so transformers, vLLM and lm-eval-harness read our checkpoints, or as one GGUF
//! file for llama.cpp, Ollama and LM Studio ([`to_gguf`]).

pub mod adapters;
pub mod batch;
pub mod config;
pub mod from_gguf;
pub mod gemv;
pub mod gguf_names;
pub mod hf;
pub mod kv_cache;
pub mod linear;
pub mod llama;
pub mod lora;
pub mod onednn;
pub mod peft;
pub mod qk_permute;
pub mod rope;
pub mod safetensors_writer;
pub mod scratch;
pub mod to_gguf;
pub mod weights;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tch::{Device, Kind, nn};

use crate::device::{CudaUnavailable, DeviceSpec};
use crate::tokenize::{TextTokenizer, TokenizeError, TokenizerMeta};
use config::{ConfigError, ModelConfig};
use llama::Llama;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{0}: not a model: expected a .gguf file or a Hugging Face directory with config.json (for the embedded default, run `make setup`)"
    )]
    NotAModel(PathBuf),
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    InvalidConfig { path: PathBuf, source: ConfigError },
    #[error("{0}: no weights (model.safetensors or model.safetensors.index.json)")]
    NoWeights(PathBuf),
    #[error("{path}: cannot read weights: {message}")]
    Weights { path: PathBuf, message: String },
    #[error("{path}: architecture `{arch}` is not supported (llama, mistral, qwen2)")]
    UnsupportedArchitecture { path: PathBuf, arch: String },
    #[error("{path}: tensor `{tensor}` has shape {found:?}, the config implies {expected:?}")]
    ShapeMismatch {
        path: PathBuf,
        tensor: String,
        expected: Vec<i64>,
        found: Vec<i64>,
    },
    #[error("{path}: {count} parameter(s) missing from the checkpoint: {names}")]
    MissingTensors {
        path: PathBuf,
        count: usize,
        names: String,
    },
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    #[error(transparent)]
    GgufWrite(#[from] crate::gguf::GgufWriteError),
    #[error(transparent)]
    PermuteShape(#[from] qk_permute::PermuteShape),
    #[error(transparent)]
    Tokenizer(#[from] TokenizeError),
    #[error(transparent)]
    Device(#[from] CudaUnavailable),
    #[error("{path}: cannot save: {message}")]
    Save { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    OutOfMemory { path: PathBuf, message: String },
    #[error(
        "{path}: tensor `{tensor}` belongs to no adapter of this model (other targets or another architecture?)"
    )]
    UnexpectedTensor { path: PathBuf, tensor: String },
    #[error("{path}: LoRA: {message}")]
    Lora { path: PathBuf, message: String },
    #[error("torch: {0}")]
    Torch(String),
}

impl ModelError {
    pub fn torch(e: tch::TchError) -> Self {
        Self::Torch(e.to_string())
    }
}

/// Compute precision of the weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    Bf16,
}

impl Dtype {
    pub fn kind(self) -> Kind {
        match self {
            Self::F32 => Kind::Float,
            Self::Bf16 => Kind::BFloat16,
        }
    }

    /// The name transformers writes as `torch_dtype` / `dtype`.
    pub fn hf_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::Bf16 => "bfloat16",
        }
    }
}

impl FromStr for Dtype {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" | "float32" => Ok(Self::F32),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            other => Err(format!("unknown dtype `{other}`: expected f32 or bf16")),
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        })
    }
}

crate::serde_by_name!(Dtype);

/// How to load: precision and device (`model_load`'s options `dtype`, `device`, `pack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadOptions {
    pub dtype: Dtype,
    pub device: DeviceSpec,
    /// Keep a oneDNN-packed copy of each f32 weight for inference on the CPU: scoring and
    /// prefill faster (1.9x on a Zen 5 CPU; the gain depends on the CPU's
    /// AVX-512), at one more copy of the weights in memory ([`onednn`]).
    pub pack: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            dtype: Dtype::F32,
            device: DeviceSpec::Cpu,
            pack: true,
        }
    }
}

/// The ids generation and training need: BOS (never added by rlmec, recorded for saving)
/// and the end-of-sequence ids.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpecialTokens {
    pub bos: Option<i64>,
    pub eos: Vec<i64>,
}

/// Held while a model draws its initial parameters from torch's global generator, so that a
/// seeded initialisation (`Model::new_seeded`) is never interleaved with another one's draws.
static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn init_lock() -> std::sync::MutexGuard<'static, ()> {
    INIT.lock().unwrap_or_else(|e| e.into_inner())
}

/// A loaded model: config, tokenizer, parameters and the network over them.
pub struct Model {
    pub config: ModelConfig,
    pub tokenizer: TextTokenizer,
    pub special: SpecialTokens,
    /// What the source files said about the tokenizer beyond its vocabulary (chat template,
    /// llama.cpp's pre-tokenizer name, ...), for saving as GGUF.
    pub tokenizer_meta: TokenizerMeta,
    pub dtype: Dtype,
    /// Where it was loaded from.
    pub origin: PathBuf,
    vs: nn::VarStore,
    net: Llama,
    /// LoRA adapters beside the linear layers, when attached.
    lora: Option<adapters::Adapters>,
    /// The weights were changed in memory (trained in full, adapters merged): they no longer
    /// equal the files at `origin`, so an adapter trained on them cannot name it as its base.
    edited: bool,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("origin", &self.origin)
            .field("dtype", &self.dtype)
            .field("device", &self.device())
            .finish_non_exhaustive()
    }
}

/// The tokenizer and special tokens of the model at `path` (a Hugging Face directory or a
/// GGUF file) without its weights, read as [`Model::load`] reads them: what a model behind a
/// server needs of the model it serves.
pub fn tokenizer_of(path: &Path) -> Result<(TextTokenizer, SpecialTokens), ModelError> {
    match Layout::of(path)? {
        Layout::HuggingFace => hf::tokenizer(path),
        Layout::Gguf => from_gguf::tokenizer(path),
    }
}

/// How the model at a path is stored.
enum Layout {
    HuggingFace,
    Gguf,
}

impl Layout {
    fn of(path: &Path) -> Result<Self, ModelError> {
        if path.is_dir() {
            Ok(Self::HuggingFace)
        } else if path.extension().is_some_and(|e| e == "gguf") && path.is_file() {
            Ok(Self::Gguf)
        } else {
            Err(ModelError::NotAModel(path.to_path_buf()))
        }
    }
}

impl Model {
    /// Load a GGUF file, a Hugging Face directory, or a PEFT adapter directory (its base model,
    /// named by `base_model_name_or_path`, with the adapter attached).
    pub fn load(path: &Path, opts: LoadOptions) -> Result<Self, ModelError> {
        if peft::is_adapter_dir(path) {
            return Self::load_with_adapter_dir(path, opts);
        }
        let start = std::time::Instant::now();
        let model = match Layout::of(path)? {
            Layout::HuggingFace => hf::load(path, opts)?,
            Layout::Gguf => from_gguf::load(path, opts)?,
        };
        tracing::info!(
            "loaded {} ({} parameters, {}, {}) in {:.2}s",
            path.display(),
            model.num_parameters(),
            opts.dtype.hf_name(),
            opts.device,
            start.elapsed().as_secs_f64()
        );
        Ok(model)
    }

    /// A model whose parameters a loader fills next (every one: the loaders check), made in
    /// `opts.dtype` without drawing values.
    pub fn unfilled(
        config: ModelConfig,
        tokenizer: TextTokenizer,
        special: SpecialTokens,
        opts: LoadOptions,
        origin: &Path,
    ) -> Result<Self, ModelError> {
        Self::build(config, tokenizer, special, opts, origin, false)
    }

    /// A model with fresh random parameters drawn right after seeding torch with `seed`, in
    /// `opts.dtype`: the same config, seed and device give the same parameters. Torch's
    /// generator is global, so this reseeds it for whatever draws next.
    pub fn new_seeded(
        config: ModelConfig,
        tokenizer: TextTokenizer,
        special: SpecialTokens,
        opts: LoadOptions,
        origin: &Path,
        seed: i64,
    ) -> Result<Self, ModelError> {
        let _init = init_lock();
        tch::manual_seed(seed);
        Ok(Self::build(config, tokenizer, special, opts, origin, true)?.finish_load())
    }

    fn build(
        config: ModelConfig,
        tokenizer: TextTokenizer,
        special: SpecialTokens,
        opts: LoadOptions,
        origin: &Path,
        random: bool,
    ) -> Result<Self, ModelError> {
        config
            .validate()
            .map_err(|source| ModelError::InvalidConfig {
                path: origin.to_path_buf(),
                source,
            })?;
        let device = opts.device.to_tch()?;
        let vs = nn::VarStore::new(device);
        let init = linear::ParamInit {
            random,
            std: config.initializer_range,
            kind: opts.dtype.kind(),
            pack: opts.pack,
        };
        // A config whose weights do not fit (a wrong size in config.json, a model too big for
        // the device) is an error naming the device and the sizes, not a libtorch panic.
        let net = crate::oom::catch(|| Llama::new(&vs.root(), &config, init)).map_err(|oom| {
            let bf16 = if opts.dtype == Dtype::F32 {
                "`dtype: \"bf16\"`, "
            } else {
                ""
            };
            ModelError::OutOfMemory {
                path: origin.to_path_buf(),
                message: format!(
                    "{oom} making the model (hidden_size {}, {} layers, vocab_size {}, {}); \
                     what helps: {bf16}a smaller model, another device",
                    config.hidden_size,
                    config.num_hidden_layers,
                    config.vocab_size,
                    opts.dtype.hf_name()
                ),
            }
        })?;
        Ok(Self {
            config,
            tokenizer,
            special,
            tokenizer_meta: TokenizerMeta::default(),
            dtype: opts.dtype,
            origin: origin.to_path_buf(),
            vs,
            net,
            lora: None,
            edited: false,
        })
    }

    /// Convert the parameters still in f32 (norms, biases) to the requested dtype.
    fn finish_load(mut self) -> Self {
        if self.dtype != Dtype::F32 {
            self.vs.set_kind(self.dtype.kind());
        }
        self
    }

    pub fn net(&self) -> &Llama {
        &self.net
    }

    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Final hidden states [B, T, hidden] of a padded batch (no cache).
    pub fn hidden(&self, batch: &batch::Batch) -> tch::Tensor {
        // Right padding needs no mask: real tokens never attend to later positions.
        let mask = batch.left.then_some(&batch.mask);
        self.net
            .forward_hidden(&batch.ids, &batch.positions, mask, None)
    }

    /// [`Self::hidden`] for training: see [`Llama::forward_train`].
    pub fn hidden_train(
        &self,
        batch: &batch::Batch,
        pass: llama::TrainPass,
    ) -> (tch::Tensor, Option<llama::Replay>) {
        let mask = batch.left.then_some(&batch.mask);
        self.net
            .forward_train(&batch.ids, &batch.positions, mask, pass)
    }

    /// The id used to fill padding (never attended to): the first EOS, else 0.
    pub fn pad_id(&self) -> i64 {
        self.special.eos.first().copied().unwrap_or(0)
    }

    pub fn num_parameters(&self) -> i64 {
        // Every weight, frozen or not (adapters not counted).
        self.vs.variables().values().map(|t| t.numel() as i64).sum()
    }

    /// Save in Hugging Face layout (atomically: the directory appears complete or not at all);
    /// attached adapters are written merged into the weights.
    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        hf::save(self, dir)
    }

    /// Save as one GGUF file in llama.cpp's conventions ([`to_gguf`]); attached adapters are
    /// written merged into the weights.
    pub fn save_gguf(&self, path: &Path, opts: &to_gguf::GgufOptions) -> Result<(), ModelError> {
        to_gguf::save(self, path, opts)
    }

    /// Save the attached adapters in PEFT's layout ([`peft`]).
    pub fn save_adapter(&self, dir: &Path) -> Result<(), ModelError> {
        peft::save_adapter(self, dir)
    }
}
