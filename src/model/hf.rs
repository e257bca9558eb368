//! Hugging Face directories: `config.json`, `model.safetensors` or sharded
//! `model-*.safetensors` with their index, `tokenizer.json`, and where present
//! `generation_config.json`, `tokenizer_config.json` and `chat_template.jinja`. Saving writes
//! the same layout (the chat template and `tokenizer_config.json`'s flags are kept for GGUF
//! only).

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use safetensors::{Dtype as StDtype, SafeTensors};
use serde_json::{Value, json};
use tch::{Kind, Tensor};

use super::config::{ModelConfig, TokenIds};
use super::safetensors_writer::{self, FileSum};
use super::weights::Filler;
use super::{LoadOptions, Model, ModelError, SpecialTokens};
use crate::files;
use crate::tokenize::{TextTokenizer, TokenizerMeta};

pub fn load(dir: &Path, opts: LoadOptions) -> Result<Model, ModelError> {
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(ModelError::NotAModel(dir.to_path_buf()));
    }
    let config: ModelConfig = parse_json_as(&config_path)?;
    let (tokenizer, special, tokenizer_meta) = tokenizer_with_config(dir, &config)?;
    let mut model = Model::unfilled(config, tokenizer, special, opts, dir)?;
    model.tokenizer_meta = tokenizer_meta;
    reload_weights(&model, dir)?;
    Ok(model.finish_load())
}

/// The tokenizer and special tokens of the model in `dir`, without its weights.
pub fn tokenizer(dir: &Path) -> Result<(TextTokenizer, SpecialTokens), ModelError> {
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(ModelError::NotAModel(dir.to_path_buf()));
    }
    let (tokenizer, special, _) = tokenizer_with_config(dir, &parse_json_as(&config_path)?)?;
    Ok((tokenizer, special))
}

/// The tokenizer, its special tokens, and what `tokenizer_config.json` adds for GGUF.
fn tokenizer_with_config(
    dir: &Path,
    config: &ModelConfig,
) -> Result<(TextTokenizer, SpecialTokens, TokenizerMeta), ModelError> {
    let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
    let tok_config: Option<Value> = optional_json(&dir.join("tokenizer_config.json"))?;
    let special = special_tokens(dir, config, &tokenizer, tok_config.as_ref())?;
    let meta = tokenizer_meta(dir, config, &tokenizer, tok_config.as_ref())?;
    Ok((tokenizer, special, meta))
}

/// Overwrite `model`'s parameters with the weights saved in `dir` (a checkpoint of the same
/// architecture); every parameter must be there.
pub fn reload_weights(model: &Model, dir: &Path) -> Result<(), ModelError> {
    let vars = model.vs.variables();
    let mut filler = Filler::new(&vars, dir);
    for file in weight_files(dir)? {
        read_safetensors(&file, |name, tensor| filler.put(name, &tensor))?;
    }
    filler.finish()
}

/// Parse a JSON file into `T`; a missing field or a wrong type names the file.
fn parse_json_as<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ModelError> {
    let text = fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// `model.safetensors`, or the shards an index names.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index_path = dir.join("model.safetensors.index.json");
    if !index_path.is_file() {
        return Err(ModelError::NoWeights(dir.to_path_buf()));
    }
    let index: Value = parse_json_as(&index_path)?;
    let map = index["weight_map"]
        .as_object()
        .ok_or_else(|| ModelError::Config {
            path: index_path.clone(),
            message: "missing field `weight_map`".into(),
        })?;
    let shards: BTreeSet<&str> = map.values().filter_map(Value::as_str).collect();
    Ok(shards.into_iter().map(|s| dir.join(s)).collect())
}

/// Why a safetensors file cannot be read, in words (the crate's names, such as
/// `MetadataIncompleteBuffer`, say little to a user).
fn unreadable(e: &safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::HeaderTooSmall | E::HeaderTooLarge | E::InvalidHeaderLength => {
            format!("truncated or not a safetensors file (its header length is wrong: {e:?})")
        }
        E::MetadataIncompleteBuffer | E::InvalidOffset(_) => {
            format!(
                "truncated or not a safetensors file (the tensors it lists run past its end: {e:?})"
            )
        }
        E::InvalidHeader | E::InvalidHeaderStart | E::InvalidHeaderDeserialization => {
            format!("not a safetensors file (its header is not the JSON table it should be: {e:?})")
        }
        other => format!("unreadable safetensors file: {other:?}"),
    }
}

/// Hand every tensor of a safetensors file to `put`, memory-mapped (one copy per tensor).
pub fn read_safetensors(
    path: &Path,
    mut put: impl FnMut(&str, Tensor) -> Result<(), ModelError>,
) -> Result<(), ModelError> {
    let weights_error = |message: String| ModelError::Weights {
        path: path.to_path_buf(),
        message,
    };
    let file = fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // SAFETY: the file is only read; a concurrent writer could change the bytes under us,
    // which at worst yields wrong weights, as reading it would.
    let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| weights_error(e.to_string()))?;
    let st = SafeTensors::deserialize(&mmap).map_err(|e| weights_error(unreadable(&e)))?;
    for (name, view) in st.tensors() {
        let kind = match view.dtype() {
            StDtype::F32 => Kind::Float,
            StDtype::F16 => Kind::Half,
            StDtype::BF16 => Kind::BFloat16,
            StDtype::F64 => Kind::Double,
            other => {
                return Err(weights_error(format!(
                    "tensor `{name}` has unsupported dtype {other:?}"
                )));
            }
        };
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let tensor = Tensor::f_from_data_size(view.data(), &shape, kind)
            .map_err(|e| weights_error(format!("tensor `{name}`: {e}")))?;
        put(&name, tensor)?;
    }
    Ok(())
}

/// BOS/EOS from `generation_config.json`, else `config.json`, else `tokenizer_config.json`.
fn special_tokens(
    dir: &Path,
    config: &ModelConfig,
    tokenizer: &TextTokenizer,
    tok_config: Option<&Value>,
) -> Result<SpecialTokens, ModelError> {
    let generation: Option<Value> = optional_json(&dir.join("generation_config.json"))?;
    let from_generation = |key: &str| {
        generation
            .as_ref()
            .and_then(|g| serde_json::from_value::<TokenIds>(g[key].clone()).ok())
    };
    let from_tokenizer =
        |key: &str| configured_token(tok_config, key, tokenizer).map(TokenIds::One);
    let pick = |key: &str, from_config: &Option<TokenIds>| {
        from_generation(&format!("{key}_token_id"))
            .or_else(|| from_config.clone())
            .or_else(|| from_tokenizer(&format!("{key}_token")))
    };
    Ok(SpecialTokens {
        bos: pick("bos", &config.bos_token_id).and_then(|ids| ids.ids().first().copied()),
        eos: pick("eos", &config.eos_token_id)
            .map(|ids| ids.ids())
            .unwrap_or_default(),
    })
}

/// The id of the token `tokenizer_config.json` names under `key` (its text, or an object
/// with its `content`).
fn configured_token(
    tok_config: Option<&Value>,
    key: &str,
    tokenizer: &TextTokenizer,
) -> Option<i64> {
    let entry = &tok_config?[key];
    let text = entry.as_str().or_else(|| entry["content"].as_str())?;
    tokenizer.token_id(text)
}

/// What the folder says about the tokenizer beyond `tokenizer.json`, for saving as GGUF:
/// `tokenizer_config.json`'s flags and tokens, and the chat template (in
/// `chat_template.jinja`, where transformers 5 keeps it, else in `tokenizer_config.json`).
fn tokenizer_meta(
    dir: &Path,
    config: &ModelConfig,
    tokenizer: &TextTokenizer,
    tok_config: Option<&Value>,
) -> Result<TokenizerMeta, ModelError> {
    let template_file = dir.join("chat_template.jinja");
    let chat_template = if template_file.is_file() {
        Some(
            fs::read_to_string(&template_file).map_err(|source| ModelError::Io {
                path: template_file,
                source,
            })?,
        )
    } else {
        tok_config
            .and_then(|t| t["chat_template"].as_str())
            .map(str::to_owned)
    };
    let flag = |key: &str| tok_config.and_then(|t| t[key].as_bool());
    let config_pad = config
        .pad_token_id
        .as_ref()
        .and_then(|ids| ids.ids().first().copied());
    Ok(TokenizerMeta {
        gguf_pre: None,
        chat_template,
        add_bos: flag("add_bos_token"),
        add_eos: flag("add_eos_token"),
        unknown_id: configured_token(tok_config, "unk_token", tokenizer),
        padding_id: config_pad.or_else(|| configured_token(tok_config, "pad_token", tokenizer)),
    })
}

fn optional_json(path: &Path) -> Result<Option<Value>, ModelError> {
    if path.is_file() {
        parse_json_as(path).map(Some)
    } else {
        Ok(None)
    }
}

/// The error for a failed save of `path`, from a message.
fn save_error(path: &Path) -> impl Fn(String) -> ModelError + '_ {
    move |message| ModelError::Save {
        path: path.to_path_buf(),
        message,
    }
}

/// Write `model` to `dir` in Hugging Face layout (with adapters attached, the merged weights).
/// The files are written into a sibling temporary directory that replaces `dir` only once
/// complete.
pub fn save(model: &Model, dir: &Path) -> Result<(), ModelError> {
    write_dir_atomically(dir, |tmp| write_model_files(model, tmp).map(|_| ()))
}

/// Make `dir` hold what `write` puts into an empty folder, all at once: the files are written
/// into a sibling temporary directory that replaces `dir` only once `write` succeeded.
pub fn write_dir_atomically(
    dir: &Path,
    write: impl FnOnce(&Path) -> Result<(), ModelError>,
) -> Result<(), ModelError> {
    let save_error = save_error(dir);
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| save_error(e.to_string()))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    replaceable(dir).map_err(&save_error)?;
    let tmp = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| save_error(e.to_string()))?;

    let written = write(&tmp).and_then(|()| {
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        if dir.exists() {
            fs::rename(dir, &old).map_err(|e| save_error(e.to_string()))?;
        }
        fs::rename(&tmp, dir).map_err(|e| save_error(e.to_string()))?;
        let _ = fs::remove_dir_all(&old);
        Ok(())
    });
    if written.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    written
}

/// Whether a save may replace `dir`: it is new, empty, or holds nothing but a saved model or
/// adapter. A save replaces the whole folder, so a mistyped path (`m.save("data")`) must not
/// take the user's other files with it.
fn replaceable(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        return Err("a file is there, not a folder".into());
    }
    let entries = fs::read_dir(dir).map_err(|e| e.to_string())?;
    let mut foreign = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir || !is_model_file(&name) {
            foreign.push(if is_dir { format!("{name}/") } else { name });
        }
    }
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    let more = foreign.len().saturating_sub(5);
    foreign.truncate(5);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    Err(format!(
        "the folder holds files that are not a saved model ({}{more}); a save replaces the \
         whole folder, so save into a new or empty one",
        foreign.join(", ")
    ))
}

/// A file a model or adapter save writes (or a sharded Hugging Face checkpoint holds).
fn is_model_file(name: &str) -> bool {
    const FILES: &[&str] = &[
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "chat_template.jinja",
        "model.safetensors",
        "model.safetensors.index.json",
        super::peft::CONFIG_FILE,
        super::peft::WEIGHTS_FILE,
    ];
    FILES.contains(&name) || (name.starts_with("model-") && name.ends_with(".safetensors"))
}

/// Put the files `write` makes in an empty folder into the existing `dir`, each replacing its
/// namesake atomically, leaving `dir`'s other contents alone.
pub fn write_into_dir(
    dir: &Path,
    write: impl FnOnce(&Path) -> Result<(), ModelError>,
) -> Result<(), ModelError> {
    let save_error = save_error(dir);
    let tmp = dir.join(format!(".model.partial-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| save_error(e.to_string()))?;
    let written = write(&tmp).and_then(|()| {
        for entry in fs::read_dir(&tmp).map_err(|e| save_error(e.to_string()))? {
            let from = entry.map_err(|e| save_error(e.to_string()))?.path();
            let to = dir.join(from.file_name().expect("a directory entry has a name"));
            fs::rename(&from, &to).map_err(|e| save_error(e.to_string()))?;
        }
        Ok(())
    });
    let _ = fs::remove_dir_all(&tmp);
    written
}

/// Write `model`'s Hugging Face files into the existing `dir`; the size and CRC-32 of
/// `model.safetensors`.
pub fn write_model_files(model: &Model, dir: &Path) -> Result<FileSum, ModelError> {
    let save_error = save_error(dir);
    let mut config = model.config.to_hf_json();
    if let Some(obj) = config.as_object_mut() {
        // transformers 5 reads `dtype`, 4.x `torch_dtype`.
        obj.insert("dtype".into(), json!(model.dtype.hf_name()));
        obj.insert("torch_dtype".into(), json!(model.dtype.hf_name()));
        if let Some(bos) = model.special.bos {
            obj.insert("bos_token_id".into(), json!(bos));
        }
        if !model.special.eos.is_empty() {
            obj.insert("eos_token_id".into(), eos_json(&model.special.eos));
        }
    }
    let write_json = |file: &str, value: &Value| {
        files::write_json(&dir.join(file), value).map_err(|e| save_error(e.to_string()))
    };
    write_json("config.json", &config)?;
    let mut generation = json!({});
    if let Some(bos) = model.special.bos {
        generation["bos_token_id"] = json!(bos);
    }
    if !model.special.eos.is_empty() {
        generation["eos_token_id"] = eos_json(&model.special.eos);
    }
    write_json("generation_config.json", &generation)?;
    model.tokenizer.save(&dir.join("tokenizer.json"))?;
    // With adapters attached, each targeted weight is written merged, one at a time.
    let vars = model.vs.variables();
    let mut names: Vec<String> = vars.keys().cloned().collect();
    names.sort();
    let path = dir.join("model.safetensors");
    let meta = |name: &str| (vars[name].kind(), vars[name].size());
    safetensors_writer::write(&path, &names, meta, |name| {
        model.saved_weight(name, &vars[name])
    })
    .map_err(|message| ModelError::Save { path, message })
}

fn eos_json(eos: &[i64]) -> Value {
    match eos {
        [one] => json!(one),
        many => json!(many),
    }
}

/// Every tensor of `vars`, by name, with the `{"format": "pt"}` metadata transformers
/// expects, streamed one tensor at a time ([`safetensors_writer`]).
pub fn write_safetensors(
    vars: &HashMap<String, Tensor>,
    path: &Path,
) -> Result<FileSum, ModelError> {
    safetensors_writer::write_all(path, vars).map_err(save_error(path))
}
