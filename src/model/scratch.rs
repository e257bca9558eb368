//! A llama made from scratch: a byte-level BPE tokenizer trained on the given texts and
//! randomly initialised parameters, reproducible from a seed — a small model to train on a
//! synthetic task.

use std::path::Path;

use super::config::{Architecture, ConfigError, ModelConfig, TokenIds};
use super::{LoadOptions, Model, ModelError, SpecialTokens};
use crate::tokenize::train::{EOS_ID, train_bpe};

/// What `origin` says of a model made here.
pub const ORIGIN: &str = "<model_new>";

/// The shape of a new llama, by its Hugging Face `config.json` names, and the seed of its
/// initial parameters. The defaults make a tiny model (about 3.3M parameters).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScratchConfig {
    /// The most tokens the tokenizer may have (EOS and the 256 bytes included); the model
    /// gets the tokenizer's real size, smaller when the texts allow fewer merges.
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// `None`: as many as `num_attention_heads`.
    pub num_key_value_heads: Option<usize>,
    pub max_position_embeddings: usize,
    pub rope_theta: f64,
    pub tie_word_embeddings: bool,
    pub rms_norm_eps: f64,
    /// Standard deviation of the initial weights.
    pub initializer_range: f64,
    pub seed: i64,
}

impl Default for ScratchConfig {
    fn default() -> Self {
        Self {
            vocab_size: 512,
            hidden_size: 256,
            intermediate_size: 688,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            num_key_value_heads: None,
            max_position_embeddings: 512,
            rope_theta: 10_000.0,
            tie_word_embeddings: true,
            rms_norm_eps: 1e-5,
            initializer_range: 0.02,
            seed: 0,
        }
    }
}

impl ScratchConfig {
    /// The model config for a tokenizer of `vocab_size` tokens whose EOS is [`EOS_ID`].
    pub fn model_config(&self, vocab_size: usize) -> ModelConfig {
        ModelConfig {
            model_type: Architecture::Llama,
            vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            num_key_value_heads: Some(self.num_key_value_heads.unwrap_or(self.num_attention_heads)),
            head_dim: None,
            rms_norm_eps: self.rms_norm_eps,
            rope_theta: Some(self.rope_theta),
            rope_scaling: None,
            rope_parameters: None,
            max_position_embeddings: self.max_position_embeddings,
            tie_word_embeddings: self.tie_word_embeddings,
            attention_bias: false,
            mlp_bias: false,
            bos_token_id: None,
            eos_token_id: Some(TokenIds::One(EOS_ID)),
            pad_token_id: None,
            initializer_range: self.initializer_range,
            extra: serde_json::Map::new(),
        }
    }

    /// Checks what `ModelConfig::validate` leaves to the checkpoint: sizes that make no
    /// model at zero and numbers that must be positive.
    fn validate(&self) -> Result<(), ConfigError> {
        let sizes = [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("num_key_value_heads", self.num_key_value_heads.unwrap_or(1)),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, n)| *n == 0) {
            return Err(ConfigError(format!("{name} must be positive")));
        }
        let positive = [
            ("rope_theta", self.rope_theta),
            ("rms_norm_eps", self.rms_norm_eps),
            ("initializer_range", self.initializer_range),
        ];
        if let Some((name, x)) = positive.iter().find(|(_, x)| !(x.is_finite() && *x > 0.0)) {
            return Err(ConfigError(format!("{name} must be positive, got {x}")));
        }
        self.model_config(self.vocab_size).validate()
    }
}

/// Train a tokenizer on `texts` (at most `cfg.vocab_size` tokens) and build a llama over it
/// with parameters drawn from `cfg.seed`; EOS is `<|endoftext|>`, id 0, and there is no BOS.
pub fn from_texts(
    cfg: &ScratchConfig,
    texts: &[String],
    opts: LoadOptions,
) -> Result<Model, ModelError> {
    let origin = Path::new(ORIGIN);
    cfg.validate().map_err(|source| ModelError::InvalidConfig {
        path: origin.to_path_buf(),
        source,
    })?;
    let tokenizer = train_bpe(texts, cfg.vocab_size)?;
    let config = cfg.model_config(tokenizer.vocab_size());
    let special = SpecialTokens {
        bos: None,
        eos: vec![EOS_ID],
    };
    Model::new_seeded(config, tokenizer, special, opts, origin, cfg.seed)
}
