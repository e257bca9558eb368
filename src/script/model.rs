//! Model natives: load or make from scratch, tokenize, save (Hugging Face layout or GGUF),
//! LoRA adapters; the handle that
//! the other domains' natives (generate, train, teacher, rewards) take a model by.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use rhai::Array;
use rhai::plugin::*;

use super::engine::Domain;
use crate::engine::Engine;
use crate::model::Model;

pub const DOMAIN: Domain = Domain {
    name: "model",
    module: || exported_module!(model_api),
    extra: |_| {},
};

/// A model as scripts hold it: loaded in this process (`model_load`), or behind an inference
/// server (`model_remote`), which generates and scores but cannot be trained or saved. Every
/// script value that refers to one shares it.
#[derive(Clone)]
pub enum ModelHandle {
    Native(Arc<Mutex<Model>>),
    Remote(Arc<dyn Engine + Send + Sync>),
}

/// A model handle's engine while it is borrowed: the native model locked, or the remote one.
pub enum EngineRef<'a> {
    Native(MutexGuard<'a, Model>),
    Remote(&'a (dyn Engine + Send + Sync)),
}

impl<'a> std::ops::Deref for EngineRef<'a> {
    type Target = dyn Engine + 'a;

    fn deref(&self) -> &Self::Target {
        match self {
            Self::Native(model) => &**model,
            Self::Remote(engine) => *engine,
        }
    }
}

impl ModelHandle {
    pub fn new(model: Model) -> Self {
        Self::Native(Arc::new(Mutex::new(model)))
    }

    pub fn remote(engine: impl Engine + Send + Sync + 'static) -> Self {
        Self::Remote(Arc::new(engine))
    }

    /// Whether both handles hold the same model.
    pub fn same_as(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Native(a), Self::Native(b)) => Arc::ptr_eq(a, b),
            (Self::Remote(a), Self::Remote(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The engine that generates and scores with this model.
    pub fn engine(&self) -> EngineRef<'_> {
        match self {
            Self::Native(model) => EngineRef::Native(lock(model)),
            Self::Remote(engine) => EngineRef::Remote(engine.as_ref()),
        }
    }

    /// The model itself, for what only a model loaded here can do (`what`: train, save, ...).
    pub fn native(&self, what: &str) -> Result<MutexGuard<'_, Model>, String> {
        match self {
            Self::Native(model) => Ok(lock(model)),
            Self::Remote(engine) => Err(format!(
                "{what}: `{}` is a model behind a server, which generates and scores; {what} needs the model itself (model_load)",
                engine.name()
            )),
        }
    }
}

/// The model (a panic elsewhere while it was held does not make it unusable).
fn lock(model: &Mutex<Model>) -> MutexGuard<'_, Model> {
    model.lock().unwrap_or_else(|e| e.into_inner())
}

type Res<T> = Result<T, Box<EvalAltResult>>;

/// `model_load`'s `adapter`: a PEFT LoRA adapter folder to attach.
#[derive(Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct AdapterOption {
    adapter: Option<PathBuf>,
}

/// Token ids from a script array, naming the offending element.
fn ids_of(what: &str, arr: &Array) -> Res<Vec<i64>> {
    arr.iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_int().map_err(|_| {
                format!(
                    "{what}[{i}]: expected a token id (integer), got {}",
                    v.type_name()
                )
                .into()
            })
        })
        .collect()
}

/// Text (encoded) or token ids.
pub(super) fn tokens_of(engine: &dyn Engine, what: &str, value: &Dynamic) -> Res<Vec<i64>> {
    if let Some(text) = value.read_lock::<rhai::ImmutableString>() {
        return engine
            .tokenizer()
            .encode(&text)
            .map_err(|e| format!("{what}: {e}").into());
    }
    match value.read_lock::<Array>() {
        Some(arr) => ids_of(what, &arr),
        None => Err(format!(
            "{what}: expected a string or an array of token ids, got {}",
            value.type_name()
        )
        .into()),
    }
}

pub(super) fn int_array<T: Copy + Into<Dynamic>>(values: &[T]) -> Array {
    values.iter().map(|&v| v.into()).collect()
}

/// Log-probabilities as a script array of floats.
pub(super) fn float_array(values: &[f32]) -> Array {
    values
        .iter()
        .map(|&x| Dynamic::from_float(f64::from(x)))
        .collect()
}

/// Language models: load a GGUF file or a Hugging Face directory, or make one from scratch;
/// tokenize, attach and merge LoRA adapters, save in Hugging Face layout or as GGUF.
#[export_module]
pub mod model_api {
    use std::path::Path;

    use super::{AdapterOption, ModelHandle, ids_of, int_array};
    use crate::model::scratch::{ScratchConfig, from_texts};
    use crate::model::to_gguf::GgufOptions;
    use crate::model::{LoadOptions, Model as NativeModel};
    use crate::script::options::Options;

    /// A loaded language model (`model_load`).
    pub type Model = ModelHandle;

    /// Load a model: a `.gguf` file (the embedded default is
    /// `data/models/SmolLM2-135M-Instruct.Q4_1.gguf`) or a Hugging Face directory
    /// (`config.json`, `model.safetensors` or shards, `tokenizer.json`), with the default
    /// options of `model_load(path, options)`.
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama");
    /// print(m.info.parameters);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn model_load(path: &str) -> Result<Model, Box<EvalAltResult>> {
        model_load_with(path, rhai::Map::new())
    }

    /// Load a model with options: `dtype` (`"f32"` or `"bf16"`: the precision of the
    /// weights), `device` (`"cpu"`, `"cuda"` or `"cuda:N"`), `pack` (`true` or `false`) and
    /// `adapter` (a folder). `adapter` attaches a PEFT LoRA adapter (ours or one PEFT saved);
    /// a `path` that is itself an adapter folder loads the base its config names with the
    /// adapter attached. `pack` keeps a oneDNN-packed copy of the f32 weights
    /// for inference on the CPU — scoring and prompt prefill faster (1.9x on a Zen 5 CPU; it
    /// depends on the CPU's AVX-512), packed on first use (1–3 s for SmolLM2) — at the cost of
    /// a second copy of the weights in memory; `pack: false` saves that memory.
    /// Defaults: {defaults:load}; no `adapter`.
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama", #{dtype: "f32", device: "cpu"});
    /// let lean = model_load("tests/fixtures/model/tiny-llama", #{pack: false});
    /// ```
    #[rhai_fn(name = "model_load", return_raw)]
    pub fn model_load_with(path: &str, options: rhai::Map) -> Result<Model, Box<EvalAltResult>> {
        let mut o = Options::new("model_load", options);
        let load: LoadOptions = o.parse()?;
        let adapter: AdapterOption = o.parse()?;
        o.finish()?;
        let mut model = NativeModel::load(Path::new(path), load).map_err(|e| e.to_string())?;
        if let Some(dir) = adapter.adapter {
            model.load_adapter(&dir).map_err(|e| e.to_string())?;
        }
        Ok(ModelHandle::new(model))
    }

    /// Make a llama from scratch to train: a byte-level BPE tokenizer trained on `texts`
    /// (strings) and randomly initialised parameters. `config` takes Hugging Face
    /// `config.json` names — `vocab_size` (the most tokens, EOS and the 256 bytes included;
    /// the model gets the tokenizer's real size, smaller on little text), `hidden_size`,
    /// `intermediate_size`, `num_hidden_layers`, `num_attention_heads`,
    /// `num_key_value_heads` (unset: as many as the attention heads),
    /// `max_position_embeddings`, `rope_theta`, `tie_word_embeddings`, `rms_norm_eps`,
    /// `initializer_range` (the standard deviation of the initial weights) — and `seed` (the
    /// same seed, config and device give the same parameters; torch's generator is reseeded
    /// with it), and `dtype`, `device` and `pack` as for `model_load`. EOS is
    /// `<|endoftext|>`, id 0; there is no BOS.
    ///
    /// Defaults (a tiny model): {defaults:scratch}; {defaults:load}.
    ///
    /// ```rhai
    /// let texts = ["12 + 7 = 19", "3 + 45 = 48", "20 + 22 = 42"];
    /// let m = model_new(#{vocab_size: 300, hidden_size: 32, intermediate_size: 64,
    ///                     num_hidden_layers: 2, num_attention_heads: 2, seed: 1}, texts);
    /// print(`${m.info.parameters} parameters, ${m.config.vocab_size} tokens`);
    /// print(m.decode(m.encode("12 + 7 = 19")));
    /// ```
    #[rhai_fn(return_raw)]
    pub fn model_new(config: rhai::Map, texts: rhai::Array) -> Result<Model, Box<EvalAltResult>> {
        let mut o = Options::new("model_new", config);
        let cfg: ScratchConfig = o.parse()?;
        let load: LoadOptions = o.parse()?;
        o.finish()?;
        let texts = texts
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let type_name = t.type_name();
                t.into_string().map_err(|_| {
                    format!("model_new: texts[{i}]: expected a string, got {type_name}")
                })
            })
            .collect::<Result<Vec<String>, _>>()?;
        let model = from_texts(&cfg, &texts, load).map_err(|e| format!("model_new: {e}"))?;
        Ok(ModelHandle::new(model))
    }

    /// Token ids of `text`; no special tokens are added.
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama");
    /// print(m.encode("Hello, world!"));
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn encode(model: &mut Model, text: &str) -> Result<rhai::Array, Box<EvalAltResult>> {
        let ids = model
            .engine()
            .tokenizer()
            .encode(text)
            .map_err(|e| e.to_string())?;
        Ok(int_array(&ids))
    }

    /// Text of token ids (special tokens kept).
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama");
    /// print(m.decode(m.encode("Hello")));
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn decode(model: &mut Model, ids: rhai::Array) -> Result<String, Box<EvalAltResult>> {
        let ids = ids_of("decode", &ids)?;
        model
            .engine()
            .tokenizer()
            .decode(&ids)
            .map_err(|e| e.to_string().into())
    }

    /// Save in Hugging Face layout (`config.json`, `model.safetensors`, `tokenizer.json`,
    /// `generation_config.json`); the directory is replaced atomically.
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama");
    /// m.save("/tmp/rlmec-doc/tiny-copy");
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn save(model: &mut Model, dir: &str) -> Result<(), Box<EvalAltResult>> {
        model
            .native("save")?
            .save(Path::new(dir))
            .map_err(|e| e.to_string().into())
    }

    /// Save as one GGUF file, which llama.cpp, Ollama and LM Studio load (and `model_load`),
    /// with the default options of `save_gguf(path, options)`.
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama");
    /// m.save_gguf("/tmp/rlmec-doc/tiny.gguf");
    /// let again = model_load("/tmp/rlmec-doc/tiny.gguf");
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn save_gguf(model: &mut Model, path: &str) -> Result<(), Box<EvalAltResult>> {
        save_gguf_with(model, path, rhai::Map::new())
    }

    /// Save as one GGUF file in llama.cpp's conventions, which llama.cpp, Ollama and LM
    /// Studio load: the config as `llama.*` keys (`qwen2.*` for a Qwen2 model), the tokenizer
    /// with its chat template, the weights under llama.cpp's names. `dtype` (`"f32"`,
    /// `"f16"` or `"bf16"`) is the type of the matrices; norms and biases stay f32. With
    /// LoRA adapters attached, the weights are written merged (the model keeps its adapters).
    /// The file is written beside `path` under a temporary name and renamed when complete.
    /// Defaults: {defaults:gguf}.
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama");
    /// m.save_gguf("/tmp/rlmec-doc/tiny-f16.gguf", #{dtype: "f16"});
    /// ```
    #[rhai_fn(name = "save_gguf", pure, return_raw)]
    pub fn save_gguf_with(
        model: &mut Model,
        path: &str,
        options: rhai::Map,
    ) -> Result<(), Box<EvalAltResult>> {
        let mut o = Options::new("save_gguf", options);
        let opts: GgufOptions = o.parse()?;
        o.finish()?;
        model
            .native("save_gguf")?
            .save_gguf(Path::new(path), &opts)
            .map_err(|e| format!("save_gguf: {e}").into())
    }

    /// Save the model's LoRA adapters to `dir` in PEFT's layout (`adapter_config.json`,
    /// `adapter_model.safetensors` with PEFT's tensor names), which
    /// `peft.PeftModel.from_pretrained`, vLLM's `--enable-lora` and `model_load(dir)` read;
    /// the config's `base_model_name_or_path` is the model the adapters sit on. An error if
    /// no adapters are attached (`m.train(records, #{lora: ...})` attaches them).
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama");
    /// m.train([#{input: "1 + 1 =", output: " 2"}], #{objective: "sft", epochs: 1, lr: 1e-3, lora: #{r: 4}});
    /// m.save_adapter("/tmp/rlmec-doc/tiny-adapter");
    /// let again = model_load("/tmp/rlmec-doc/tiny-adapter");   // the base with the adapter
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn save_adapter(model: &mut Model, dir: &str) -> Result<(), Box<EvalAltResult>> {
        model
            .native("save_adapter")?
            .save_adapter(Path::new(dir))
            .map_err(|e| e.to_string().into())
    }

    /// Fold the attached LoRA adapters into the weights (`W + alpha/r · B A`): decoding then
    /// runs at the speed of a model without adapters, and every weight is trainable again.
    /// Returns whether there were adapters.
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama", #{adapter: "tests/fixtures/lora/peft-adapter"});
    /// let merged = m.merge_lora();
    /// print(m.info.lora);   // ()
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn merge_lora(model: &mut Model) -> Result<bool, Box<EvalAltResult>> {
        Ok(model.native("merge_lora")?.merge_lora())
    }

    /// The model's config, as in its Hugging Face `config.json`.
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama");
    /// print(m.config.num_hidden_layers);
    /// ```
    #[rhai_fn(get = "config", pure, return_raw)]
    pub fn config(model: &mut Model) -> Result<Dynamic, Box<EvalAltResult>> {
        rhai::serde::to_dynamic(model.native("config")?.config.to_hf_json())
    }

    /// Where the model came from and how it runs:
    /// `#{engine, origin, dtype, device, parameters, bos_id, eos_ids, lora}`; `engine` is
    /// `"native"`, or `"remote"` for a model behind a server (`model_remote`), whose info has
    /// only `engine`, `origin` (its `openai:<name>@<url>`) and `eos_ids`; `lora` is `()` or
    /// the attached adapters' `#{r, alpha, dropout, targets, parameters}`.
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama");
    /// print(`${m.info.parameters} parameters on ${m.info.device}`);
    /// ```
    #[rhai_fn(get = "info", pure)]
    pub fn info(model: &mut Model) -> rhai::Map {
        let mut info = rhai::Map::new();
        let Ok(m) = model.native("info") else {
            let engine = model.engine();
            info.insert("engine".into(), "remote".into());
            info.insert("origin".into(), engine.name().into());
            info.insert("eos_ids".into(), int_array(engine.eos()).into());
            return info;
        };
        info.insert("engine".into(), "native".into());
        info.insert("origin".into(), m.origin.display().to_string().into());
        info.insert("dtype".into(), m.dtype.hf_name().into());
        info.insert(
            "device".into(),
            format!("{:?}", m.device()).to_lowercase().into(),
        );
        info.insert("parameters".into(), m.num_parameters().into());
        info.insert(
            "bos_id".into(),
            m.special.bos.map_or(Dynamic::UNIT, Dynamic::from_int),
        );
        info.insert("eos_ids".into(), int_array(&m.special.eos).into());
        let lora = m.lora().map_or(Dynamic::UNIT, |a| {
            let mut l = rhai::serde::to_dynamic(&a.config).unwrap_or_default();
            if let Some(mut map) = l.write_lock::<rhai::Map>() {
                map.insert("parameters".into(), a.num_parameters().into());
            }
            l
        });
        info.insert("lora".into(), lora);
        info
    }
}
