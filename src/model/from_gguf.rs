//! A model from a single GGUF file: the config from `{arch}.*` metadata, the tokenizer from
//! `tokenizer.ggml.*`, and the weights dequantised to f32 under Hugging Face names
//! ([`super::gguf_names`]), with llama.cpp's Q/K row permutation undone exactly as
//! transformers' GGUF loader does ([`super::qk_permute`]).

use std::path::Path;

use tch::Tensor;

use super::config::{Architecture, ModelConfig, RopeParameters, TokenIds};
use super::gguf_names::{ROPE_SCALING_KEY, hf_name};
use super::qk_permute::{permuted_heads, reverse_permute_weights};
use super::weights::Filler;
use super::{LoadOptions, Model, ModelError, SpecialTokens};
use crate::gguf::GgufFile;
use crate::tokenize::gguf::GgufTokenizer;
use crate::tokenize::{TextTokenizer, TokenizerMeta};

pub fn load(path: &Path, opts: LoadOptions) -> Result<Model, ModelError> {
    let file = GgufFile::open(path)?;
    let config = config(&file)?;
    let (tokenizer, special, meta) = tokenizer_of(&file)?;
    let mut model = Model::unfilled(config, tokenizer, special, opts, path)?;
    model.tokenizer_meta = meta;
    let vars = model.var_store().variables();
    let mut filler = Filler::new(&vars, path);
    for info in file.tensors() {
        let Some(hf_name) = hf_name(info.name()) else {
            tracing::debug!("{}: ignoring tensor {}", path.display(), info.name());
            continue;
        };
        let t = file.dequantize(info.name())?;
        let data = match (
            permuted_heads(info.name(), &model.config),
            t.shape.as_slice(),
        ) {
            (Some(h), &[rows, cols]) => reverse_permute_weights(&t.data, rows, cols, h)?,
            (Some(h), &[rows]) => reverse_permute_weights(&t.data, rows, 1, h)?,
            _ => t.data,
        };
        let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
        filler.put(&hf_name, &Tensor::from_slice(&data).view(shape.as_slice()))?;
    }
    filler.finish()?;
    Ok(model.finish_load())
}

/// The tokenizer and special tokens of the GGUF file at `path`, without its weights.
pub fn tokenizer(path: &Path) -> Result<(TextTokenizer, SpecialTokens), ModelError> {
    let (tokenizer, special, _) = tokenizer_of(&GgufFile::open(path)?)?;
    Ok((tokenizer, special))
}

/// The tokenizer, its special tokens, and what the metadata says beyond the vocabulary.
fn tokenizer_of(
    file: &GgufFile,
) -> Result<(TextTokenizer, SpecialTokens, TokenizerMeta), ModelError> {
    let tok = GgufTokenizer::from_gguf(file).map_err(crate::tokenize::TokenizeError::from)?;
    let special = SpecialTokens {
        bos: tok.bos_id.map(i64::from),
        eos: tok.eos_id.map(i64::from).into_iter().collect(),
    };
    Ok((TextTokenizer::new(tok.tokenizer), special, tok.meta))
}

/// The HF config a GGUF file's metadata describes.
fn config(file: &GgufFile) -> Result<ModelConfig, ModelError> {
    let arch_name = file.get_str("general.architecture")?;
    let model_type = match arch_name {
        "llama" => Architecture::Llama,
        "mistral" => Architecture::Mistral,
        "qwen2" => Architecture::Qwen2,
        other => {
            return Err(ModelError::UnsupportedArchitecture {
                path: file.path().to_path_buf(),
                arch: other.to_string(),
            });
        }
    };
    let key = |k: &str| format!("{arch_name}.{k}");
    let usize_of = |k: &str| file.get_u64(&key(k)).map(|v| v as usize);
    let vocab_size = match file.get_u64(&key("vocab_size")) {
        Ok(v) => v as usize,
        Err(_) => file.get_str_array("tokenizer.ggml.tokens")?.len(),
    };
    let num_attention_heads = usize_of("attention.head_count")?;
    let hidden_size = usize_of("embedding_length")?;
    let head_dim = file
        .optional(&key("attention.key_length"), GgufFile::get_u64)?
        .map(|d| d as usize)
        .filter(|&d| d != hidden_size / num_attention_heads);
    let rope_type = file.optional(&key("rope.scaling.type"), GgufFile::get_str)?;
    let rope_scaling = match file.optional(ROPE_SCALING_KEY, GgufFile::get_str)? {
        // Written by rlmec: the scaling exactly as the config had it.
        Some(json) => Some(serde_json::from_str(json).map_err(|e| ModelError::Config {
            path: file.path().to_path_buf(),
            message: format!("metadata key `{ROPE_SCALING_KEY}`: {e}"),
        })?),
        None => match rope_type {
            Some("linear") => Some(RopeParameters {
                rope_type: Some("linear".into()),
                factor: file.optional(&key("rope.scaling.factor"), GgufFile::get_f64)?,
                ..Default::default()
            }),
            _ => None,
        },
    };
    let has = |name: &str| file.tensor_info(name).is_ok();
    let token_id = |k: &str| -> Result<Option<TokenIds>, ModelError> {
        Ok(file
            .optional(k, GgufFile::get_u64)?
            .map(|id| TokenIds::One(id as i64)))
    };
    Ok(ModelConfig {
        model_type,
        vocab_size,
        hidden_size,
        intermediate_size: usize_of("feed_forward_length")?,
        num_hidden_layers: usize_of("block_count")?,
        num_attention_heads,
        num_key_value_heads: Some(
            file.optional(&key("attention.head_count_kv"), GgufFile::get_u64)?
                .map_or(num_attention_heads, |v| v as usize),
        ),
        head_dim,
        rms_norm_eps: file.get_f64(&key("attention.layer_norm_rms_epsilon"))?,
        rope_theta: Some(
            file.optional(&key("rope.freq_base"), GgufFile::get_f64)?
                .unwrap_or(10_000.0),
        ),
        rope_scaling,
        rope_parameters: None,
        max_position_embeddings: usize_of("context_length")?,
        tie_word_embeddings: !has("output.weight"),
        attention_bias: model_type != Architecture::Qwen2 && has("blk.0.attn_q.bias"),
        mlp_bias: false,
        bos_token_id: token_id("tokenizer.ggml.bos_token_id")?,
        eos_token_id: token_id("tokenizer.ggml.eos_token_id")?,
        pad_token_id: None,
        initializer_range: 0.02,
        extra: serde_json::Map::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::load;
    use crate::gguf::tests::{GgufBuilder, write_temp};
    use crate::model::LoadOptions;

    #[test]
    fn an_unknown_architecture_is_named_with_the_file() {
        let file = write_temp(
            &GgufBuilder::new()
                .str_kv("general.architecture", "gemma")
                .build(&[]),
        );
        let err = load(file.path(), LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("architecture `gemma` is not supported"),
            "{err}"
        );
        assert!(err.starts_with(&file.path().display().to_string()), "{err}");
    }

    #[test]
    fn a_missing_metadata_key_is_named() {
        let file = write_temp(
            &GgufBuilder::new()
                .str_kv("general.architecture", "llama")
                .build(&[]),
        );
        let err = load(file.path(), LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("metadata key") && err.contains("is missing"),
            "{err}"
        );
    }
}
