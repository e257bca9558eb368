//! The model config, mirroring Hugging Face `config.json` for the llama family (Llama,
//! SmolLM2, TinyLlama, Mistral, Qwen2), so a checkpoint's own file deserialises directly and
//! ours is read back by transformers and vLLM.

use serde::{Deserialize, Serialize};

/// Which member of the family: decides biases and how GGUF weights are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    Llama,
    Mistral,
    Qwen2,
}

impl Architecture {
    pub fn hf_class(self) -> &'static str {
        match self {
            Self::Llama => "LlamaForCausalLM",
            Self::Mistral => "MistralForCausalLM",
            Self::Qwen2 => "Qwen2ForCausalLM",
        }
    }
}

/// One id or several (`eos_token_id` is a list in some configs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(i64),
    Many(Vec<i64>),
}

impl TokenIds {
    pub fn ids(&self) -> Vec<i64> {
        match self {
            Self::One(id) => vec![*id],
            Self::Many(ids) => ids.clone(),
        }
    }
}

/// `rope_scaling` (transformers 4) or `rope_parameters` (transformers 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RopeParameters {
    #[serde(default, alias = "type", skip_serializing_if = "Option::is_none")]
    pub rope_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_freq_factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_freq_factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_max_position_embeddings: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub model_type: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<RopeParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<RopeParameters>,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Llama: bias on q/k/v/o. (Qwen2 always has q/k/v bias.)
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<TokenIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<TokenIds>,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    /// Everything else the file had (kept so a saved config loses nothing).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_rms_eps() -> f64 {
    1e-6
}

fn default_max_positions() -> usize {
    2048
}

fn default_init_range() -> f64 {
    0.02
}

/// A config whose numbers do not make a model.
#[derive(Debug, thiserror::Error)]
#[error("invalid model config: {0}")]
pub struct ConfigError(pub String);

impl ModelConfig {
    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Bias on the q/k/v projections.
    pub fn qkv_bias(&self) -> bool {
        self.model_type == Architecture::Qwen2 || self.attention_bias
    }

    /// Bias on the output projection.
    pub fn o_bias(&self) -> bool {
        self.model_type != Architecture::Qwen2 && self.attention_bias
    }

    /// The RoPE settings, wherever this transformers version put them.
    pub fn rope(&self) -> RopeParameters {
        let mut rope = self
            .rope_parameters
            .clone()
            .or_else(|| self.rope_scaling.clone())
            .unwrap_or_default();
        if rope.rope_theta.is_none() {
            rope.rope_theta = Some(self.rope_theta.unwrap_or(10_000.0));
        }
        rope
    }

    /// Checks the shapes agree before any tensor is made.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.num_attention_heads == 0 || self.num_hidden_layers == 0 || self.vocab_size == 0 {
            return err(
                "num_attention_heads, num_hidden_layers and vocab_size must be positive".into(),
            );
        }
        if !self.num_attention_heads.is_multiple_of(self.num_kv_heads()) {
            return err(format!(
                "num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
                self.num_attention_heads,
                self.num_kv_heads()
            ));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return err(format!(
                "hidden_size ({}) is not a multiple of num_attention_heads ({})",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return err(format!(
                "head_dim ({}) must be even for RoPE",
                self.head_dim()
            ));
        }
        match self.rope().rope_type.as_deref() {
            None | Some("default") | Some("linear") | Some("llama3") => Ok(()),
            Some(other) => err(format!(
                "rope type `{other}` is not supported (supported: default, linear, llama3)"
            )),
        }
    }

    /// The config as transformers writes it (`architectures` filled in).
    pub fn to_hf_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("config serialises");
        if let Some(obj) = value.as_object_mut() {
            obj.insert(
                "architectures".into(),
                serde_json::json!([self.model_type.hf_class()]),
            );
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_transformers_4_and_5_rope_layouts() {
        let v4: ModelConfig = serde_json::from_str(
            r#"{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":16,
                "num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,
                "rope_theta":500000.0,"rope_scaling":{"rope_type":"llama3","factor":8.0,
                "low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192},
                "eos_token_id":[1,2],"architectures":["LlamaForCausalLM"],"torch_dtype":"bfloat16"}"#,
        )
        .unwrap();
        assert_eq!(v4.rope().rope_theta, Some(500000.0));
        assert_eq!(v4.rope().rope_type.as_deref(), Some("llama3"));
        assert_eq!(v4.eos_token_id.as_ref().unwrap().ids(), vec![1, 2]);
        assert_eq!(v4.head_dim(), 4);
        assert_eq!(v4.extra["torch_dtype"], "bfloat16");
        v4.validate().unwrap();

        let v5: ModelConfig = serde_json::from_str(
            r#"{"model_type":"qwen2","vocab_size":10,"hidden_size":8,"intermediate_size":16,
                "num_hidden_layers":1,"num_attention_heads":2,
                "rope_parameters":{"rope_type":"default","rope_theta":1000000.0}}"#,
        )
        .unwrap();
        assert_eq!(v5.rope().rope_theta, Some(1e6));
        assert!(v5.qkv_bias() && !v5.o_bias());
        assert_eq!(v5.num_kv_heads(), 2);
    }

    #[test]
    fn rejects_inconsistent_shapes() {
        let mut c: ModelConfig = serde_json::from_str(
            r#"{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":16,
                "num_hidden_layers":1,"num_attention_heads":3}"#,
        )
        .unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("hidden_size (8)")
        );
        c.num_attention_heads = 2;
        c.num_key_value_heads = Some(3);
        assert!(c.validate().is_err());
    }
}
