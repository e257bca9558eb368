//! A model from a single GGUF file: the config from `{arch}.*` metadata, the tokenizer from
//! `tokenizer.ggml.*`, and the weights dequantised to f32 under Hugging Face names, with
//! llama.cpp's Q/K row permutation undone exactly as transformers' GGUF loader does.

use std::path::Path;

use tch::Tensor;

use super::config::{Architecture, ModelConfig, RopeParameters, TokenIds};
use super::weights::Filler;
use super::{LoadOptions, Model, ModelError, SpecialTokens};
use crate::gguf::GgufFile;
use crate::tokenize::TextTokenizer;
use crate::tokenize::gguf::GgufTokenizer;

pub fn load(path: &Path, opts: LoadOptions) -> Result<Model, ModelError> {
    let file = GgufFile::open(path)?;
    let config = config(&file)?;
    let (tokenizer, special) = tokenizer_of(&file)?;
    let model = Model::unfilled(config, tokenizer, special, opts, path)?;
    let vars = model.var_store().variables();
    let mut filler = Filler::new(&vars, path);
    let permute = model.config.model_type != Architecture::Qwen2;
    let (n_head, n_kv) = (
        model.config.num_attention_heads,
        model.config.num_kv_heads(),
    );
    for info in file.tensors() {
        let Some(hf_name) = hf_name(info.name()) else {
            tracing::debug!("{}: ignoring tensor {}", path.display(), info.name());
            continue;
        };
        let t = file.dequantize(info.name())?;
        let heads = match info.name().rsplit_once('.') {
            Some((stem, "weight")) if permute && stem.ends_with("attn_q") => Some(n_head),
            Some((stem, "weight")) if permute && stem.ends_with("attn_k") => Some(n_kv),
            _ => None,
        };
        let data = match (heads, t.shape.as_slice()) {
            (Some(h), &[rows, cols]) => reverse_permute_weights(&t.data, rows, cols, h)?,
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
    tokenizer_of(&GgufFile::open(path)?)
}

fn tokenizer_of(file: &GgufFile) -> Result<(TextTokenizer, SpecialTokens), ModelError> {
    let tok = GgufTokenizer::from_gguf(file).map_err(crate::tokenize::TokenizeError::from)?;
    let special = SpecialTokens {
        bos: tok.bos_id.map(i64::from),
        eos: tok.eos_id.map(i64::from).into_iter().collect(),
    };
    Ok((TextTokenizer::new(tok.tokenizer), special))
}

/// The Hugging Face name of a GGUF tensor (`blk.3.attn_q.weight` →
/// `model.layers.3.self_attn.q_proj.weight`).
pub fn hf_name(gguf: &str) -> Option<String> {
    match gguf {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        "output.weight" => return Some("lm_head.weight".into()),
        _ => {}
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (part, param) = rest.rsplit_once('.')?;
    let hf = match part {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{param}"))
}

/// A matrix that [`reverse_permute_weights`] cannot un-permute: its values do not make
/// `rows` x `cols`, or its rows do not split into two halves per head.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot reverse the Q/K permutation of a {rows}x{cols} matrix holding {len} values \
     with {n_head} heads (rows must split into 2 halves per head)"
)]
pub struct PermuteShape {
    pub rows: usize,
    pub cols: usize,
    pub len: usize,
    pub n_head: usize,
}

/// Undoes llama.cpp's Q/K row permutation, exactly like transformers'
/// `LlamaTensorProcessor._reverse_permute_weights`.
///
/// llama.cpp's converter reorders each head's rows from HF's "first half / second half" RoPE
/// layout to interleaved pairs; models written for HF's layout need them back. `data` is a
/// row-major `[rows, cols]` matrix (as returned by [`GgufFile::dequantize`]). Pass
/// `n_head` = attention heads for `attn_q`, and the KV-head count for `attn_k`.
pub fn reverse_permute_weights(
    data: &[f32],
    rows: usize,
    cols: usize,
    n_head: usize,
) -> Result<Vec<f32>, PermuteShape> {
    let shape_err = || PermuteShape {
        rows,
        cols,
        len: data.len(),
        n_head,
    };
    let sized = rows.checked_mul(cols) == Some(data.len());
    if !sized || n_head == 0 || !rows.is_multiple_of(2 * n_head) {
        return Err(shape_err());
    }
    let half = rows / n_head / 2;
    let mut out = Vec::with_capacity(data.len());
    // Output row (h, j, i) is input row (h, i, j) for j in 0..2, i in 0..half.
    for h in 0..n_head {
        for j in 0..2 {
            for i in 0..half {
                let src = (h * 2 * half + 2 * i + j) * cols;
                out.extend_from_slice(&data[src..src + cols]);
            }
        }
    }
    Ok(out)
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
    let rope_scaling = match rope_type {
        Some("linear") => Some(RopeParameters {
            rope_type: Some("linear".into()),
            factor: file.optional(&key("rope.scaling.factor"), GgufFile::get_f64)?,
            ..Default::default()
        }),
        _ => None,
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
    use super::{PermuteShape, hf_name, load, reverse_permute_weights};
    use crate::gguf::GgufFile;
    use crate::gguf::tests::{
        GgufBuilder, assert_bits_eq, assert_close, default_model, f32s, fixture_json, usizes,
        write_temp,
    };
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

    #[test]
    fn maps_gguf_names_to_hf_names() {
        assert_eq!(
            hf_name("token_embd.weight").unwrap(),
            "model.embed_tokens.weight"
        );
        assert_eq!(
            hf_name("blk.12.attn_q.bias").unwrap(),
            "model.layers.12.self_attn.q_proj.bias"
        );
        assert_eq!(
            hf_name("blk.0.ffn_down.weight").unwrap(),
            "model.layers.0.mlp.down_proj.weight"
        );
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }

    #[test]
    fn reverse_permute_swaps_rows_within_each_head() {
        // 2 heads x 4 rows, 1 column: head rows [0 1 2 3] come back as [0 2 1 3].
        let data: Vec<f32> = (0..8).map(|i| i as f32).collect();
        let out = reverse_permute_weights(&data, 8, 1, 2).unwrap();
        assert_eq!(out, [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
        assert!(matches!(
            reverse_permute_weights(&data, 8, 1, 3).unwrap_err(),
            PermuteShape { n_head: 3, .. }
        ));
        assert!(reverse_permute_weights(&data, 4, 1, 1).is_err());
        assert!(reverse_permute_weights(&data, 8, 1, 0).is_err());
    }

    /// `sum(v[i] * (i % 1009 + 1))`, the position-sensitive checksum of the fixture script.
    fn position_checksum(values: &[f32]) -> f64 {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| f64::from(v) * ((i % 1009) + 1) as f64)
            .sum()
    }

    #[test]
    fn real_model_reverse_permute_matches_transformers() {
        let Some(path) = default_model() else { return };
        let reference = fixture_json("smollm2_permute.json");
        let file = GgufFile::open(path).unwrap();
        let heads = [("blk.0.attn_q.weight", 9), ("blk.0.attn_k.weight", 3)];
        for (name, n_head) in heads {
            let entry = &reference["tensors"][name];
            let tensor = file.dequantize(name).unwrap();
            let [rows, cols] = tensor.shape[..] else {
                panic!("2-D")
            };
            assert_close(
                position_checksum(&tensor.data),
                entry["checksum_unpermuted_input"].as_f64().unwrap(),
                "input",
            );
            let out = reverse_permute_weights(&tensor.data, rows, cols, n_head).unwrap();
            assert_eq!(vec![rows, cols], usizes(&entry["shape"]));
            for (row, expected) in entry["rows"].as_object().unwrap() {
                let r: usize = row.parse().unwrap();
                assert_bits_eq(
                    &out[r * cols..r * cols + 64],
                    &f32s(expected),
                    &format!("{name} row {r}"),
                );
            }
            assert_close(
                position_checksum(&out),
                entry["checksum"].as_f64().unwrap(),
                name,
            );
        }
    }
}
