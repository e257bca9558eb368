//! Text ⇄ token ids: a Hugging Face `tokenizer.json`, or one rebuilt from a GGUF file's
//! vocabulary (`gguf.rs`), and written back as GGUF metadata (`to_gguf.rs`). Encoding never
//! adds BOS/EOS (RLMEC tokenises prompt and output apart and adds EOS itself); decoding keeps
//! special tokens, as transformers' `decode` does by default.

pub mod gguf;
pub mod to_gguf;
pub mod train;

use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    #[error("{path}: cannot load tokenizer: {message}")]
    Load { path: PathBuf, message: String },
    #[error(transparent)]
    Gguf(#[from] gguf::GgufTokenizerError),
    #[error("encoding failed: {0}")]
    Encode(String),
    #[error("decoding failed: {0}")]
    Decode(String),
    #[error("token id {id} is outside the vocabulary of {vocab} tokens")]
    IdOutOfRange { id: i64, vocab: usize },
    #[error("{path}: cannot save tokenizer: {message}")]
    Save { path: PathBuf, message: String },
    #[error("cannot train tokenizer: {0}")]
    Train(String),
    #[error("cannot write the tokenizer as GGUF metadata: {0}")]
    ToGguf(String),
}

/// What a model's files say about its tokenizer beyond the vocabulary: how llama.cpp should
/// split and frame text, and the chat template. rlmec's own encoding ignores it; it is kept
/// so that a model saved as GGUF says it too ([`to_gguf`]). Unset fields are derived from the
/// tokenizer when saving.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenizerMeta {
    /// llama.cpp's pre-tokenizer name (`tokenizer.ggml.pre`) of a GGUF source.
    pub gguf_pre: Option<String>,
    /// The Jinja chat template (`tokenizer.chat_template`, or a Hugging Face folder's).
    pub chat_template: Option<String>,
    /// Whether llama.cpp should prepend BOS to a prompt (`add_bos_token`).
    pub add_bos: Option<bool>,
    /// Whether llama.cpp should append EOS to a prompt (`add_eos_token`).
    pub add_eos: Option<bool>,
    pub unknown_id: Option<i64>,
    pub padding_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
}

impl TextTokenizer {
    pub fn new(inner: Tokenizer) -> Self {
        Self { inner }
    }

    /// Load a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self, TokenizeError> {
        Tokenizer::from_file(path)
            .map(Self::new)
            .map_err(|e| TokenizeError::Load {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
    }

    /// The tokenizer of a model: a folder's `tokenizer.json`, or one rebuilt from a GGUF
    /// file's vocabulary.
    pub fn of_model(path: &Path) -> Result<Self, TokenizeError> {
        if path.extension().is_some_and(|e| e == "gguf") && path.is_file() {
            let file = crate::gguf::GgufFile::open(path).map_err(|e| TokenizeError::Load {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            return Ok(Self::new(gguf::GgufTokenizer::from_gguf(&file)?.tokenizer));
        }
        Self::from_file(&path.join("tokenizer.json"))
    }

    /// Ids of `text`, no special tokens added.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>, TokenizeError> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| TokenizeError::Encode(e.to_string()))?;
        Ok(enc.get_ids().iter().map(|&id| id as i64).collect())
    }

    /// Ids of `text` with each token's byte range in `text` (no special tokens added).
    pub fn encode_with_offsets(
        &self,
        text: &str,
    ) -> Result<Vec<(i64, std::ops::Range<usize>)>, TokenizeError> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| TokenizeError::Encode(e.to_string()))?;
        Ok(enc
            .get_ids()
            .iter()
            .zip(enc.get_offsets())
            .map(|(&id, &(start, end))| (id as i64, start..end))
            .collect())
    }

    /// Text of `ids`, special tokens included.
    pub fn decode(&self, ids: &[i64]) -> Result<String, TokenizeError> {
        let vocab = self.vocab_size();
        let ids = ids
            .iter()
            .map(|&id| {
                u32::try_from(id)
                    .ok()
                    .filter(|&u| (u as usize) < vocab)
                    .ok_or(TokenizeError::IdOutOfRange { id, vocab })
            })
            .collect::<Result<Vec<u32>, _>>()?;
        self.inner
            .decode(&ids, false)
            .map_err(|e| TokenizeError::Decode(e.to_string()))
    }

    /// The id of a token spelled exactly `token` (e.g. `<|im_end|>`).
    pub fn token_id(&self, token: &str) -> Option<i64> {
        self.inner.token_to_id(token).map(i64::from)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Write `tokenizer.json` (atomically).
    pub fn save(&self, path: &Path) -> Result<(), TokenizeError> {
        let save_error = |message: String| TokenizeError::Save {
            path: path.to_path_buf(),
            message,
        };
        let json = self
            .inner
            .to_string(false)
            .map_err(|e| save_error(e.to_string()))?;
        crate::files::write_atomic(path, json.as_bytes()).map_err(|e| save_error(e.to_string()))
    }
}
