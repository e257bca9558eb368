//! Builds a `tokenizers::Tokenizer` from the `tokenizer.ggml.*` metadata of a GGUF file, so a
//! model can be run from the single `.gguf` without its `tokenizer.json`.
//!
//! Only byte-level BPE (`tokenizer.ggml.model = "gpt2"`) is supported. The construction mirrors
//! transformers' GGUF tokenizer builder (vocabulary spelled in the byte alphabet, merges as
//! given, control tokens as special added tokens, user-defined tokens as plain added tokens,
//! byte-level decoder, no normalizer and no post-processor), with one deliberate difference:
//! the pre-tokenizer follows `tokenizer.ggml.pre` the way llama.cpp does. For `smollm` that
//! means digits are isolated before GPT-2's split regex (SmolLM2's own `tokenizer.json`), while
//! transformers (5.x) ignores `smollm` and uses the plain GPT-2 split, which differs on e.g.
//! `"x  1"` (two spaces before a digit) and non-ASCII numerals.

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use super::TokenizerMeta;
use crate::gguf::{GgufError, GgufFile};

/// llama.cpp's token type for control tokens (`<|im_start|>`, ...): special added tokens.
pub(super) const TOKEN_TYPE_CONTROL: i32 = 3;
/// llama.cpp's token type for user-defined tokens: plain (non-special) added tokens.
pub(super) const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// `tokenizer.ggml.pre` values whose split is `\p{N}` isolated, then GPT-2's regex
/// (llama.cpp `llama-vocab.cpp`, the STARCODER/SMOLLM group).
const DIGIT_SPLIT_PRES: [&str; 6] = [
    "smollm",
    "starcoder",
    "refact",
    "command-r",
    "codeshell",
    "exaone",
];
/// `tokenizer.ggml.pre` values whose split is GPT-2's regex alone.
const GPT2_SPLIT_PRES: [&str; 4] = ["gpt-2", "mpt", "olmo", "jais"];

#[derive(Debug, thiserror::Error)]
pub enum GgufTokenizerError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("{path}: tokenizer model `{model}` is not supported (only byte-level BPE `gpt2`)")]
    UnsupportedModel { path: PathBuf, model: String },
    #[error("{path}: pre-tokenizer `{pre}` is not supported (known: {known})")]
    UnsupportedPre {
        path: PathBuf,
        pre: String,
        known: String,
    },
    #[error("{path}: merge {index} `{merge}` is not two space-separated tokens")]
    BadMerge {
        path: PathBuf,
        index: usize,
        merge: String,
    },
    #[error("{path}: `{key}` has {found} entries but the vocabulary has {expected}")]
    LengthMismatch {
        path: PathBuf,
        key: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("{path}: `{key}` = {id} is outside the vocabulary of {vocab_size} tokens")]
    TokenIdOutOfRange {
        path: PathBuf,
        key: &'static str,
        id: u32,
        vocab_size: usize,
    },
    #[error("{path}: building the tokenizer failed: {message}")]
    Build { path: PathBuf, message: String },
}

type Result<T, E = GgufTokenizerError> = std::result::Result<T, E>;

/// A tokenizer rebuilt from GGUF metadata, plus the metadata a generation loop needs.
#[derive(Debug, Clone)]
pub struct GgufTokenizer {
    /// Encodes without adding BOS/EOS (no post-processor); prepend `bos_id` when `meta.add_bos`.
    pub tokenizer: Tokenizer,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    /// The rest of the file's tokenizer metadata (`tokenizer.ggml.pre`, `add_bos_token`,
    /// `add_eos_token`, unknown and padding ids, `tokenizer.chat_template`), kept for saving.
    pub meta: TokenizerMeta,
}

impl GgufTokenizer {
    /// Reads the tokenizer metadata of `file` and builds the tokenizer it describes.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let model = file.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(GgufTokenizerError::UnsupportedModel {
                path: file.path().to_path_buf(),
                model: model.to_owned(),
            });
        }
        let tokens = file.get_str_array("tokenizer.ggml.tokens")?;
        let token_types = token_types(file, tokens.len())?;
        let bos_id = special_id(file, "tokenizer.ggml.bos_token_id", tokens.len())?;
        let eos_id = special_id(file, "tokenizer.ggml.eos_token_id", tokens.len())?;
        let mut tokenizer = Tokenizer::new(bpe_model(file, &tokens)?);
        tokenizer.with_pre_tokenizer(Some(pre_tokenizer(file)?));
        tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
        let specials = special_tokens(file, &tokens, &token_types)?;
        tokenizer
            .add_special_tokens(specials)
            .map_err(|e| build_error(file, e))?;
        let user_defined = user_defined_tokens(&tokenizer, &tokens, &token_types);
        tokenizer
            .add_tokens(user_defined)
            .map_err(|e| build_error(file, e))?;
        let id = |key| special_id(file, key, tokens.len()).map(|id| id.map(i64::from));
        let meta = TokenizerMeta {
            gguf_pre: Some(file.get_str("tokenizer.ggml.pre")?.to_owned()),
            chat_template: file
                .optional("tokenizer.chat_template", GgufFile::get_str)?
                .map(str::to_owned),
            add_bos: file.optional("tokenizer.ggml.add_bos_token", GgufFile::get_bool)?,
            add_eos: file.optional("tokenizer.ggml.add_eos_token", GgufFile::get_bool)?,
            unknown_id: id("tokenizer.ggml.unknown_token_id")?,
            padding_id: id("tokenizer.ggml.padding_token_id")?,
        };
        Ok(Self {
            tokenizer,
            bos_id,
            eos_id,
            meta,
        })
    }
}

fn build_error(file: &GgufFile, err: impl std::fmt::Display) -> GgufTokenizerError {
    GgufTokenizerError::Build {
        path: file.path().to_path_buf(),
        message: err.to_string(),
    }
}

/// `tokenizer.ggml.token_type`, one per token; absent means "all normal".
fn token_types(file: &GgufFile, n_tokens: usize) -> Result<Vec<i32>> {
    let key = "tokenizer.ggml.token_type";
    let Some(types) = file.optional(key, GgufFile::get_i32_array)? else {
        return Ok(Vec::new());
    };
    if types.len() != n_tokens {
        return Err(GgufTokenizerError::LengthMismatch {
            path: file.path().to_path_buf(),
            key,
            found: types.len(),
            expected: n_tokens,
        });
    }
    Ok(types)
}

/// An optional special-token id, checked to be inside the vocabulary.
fn special_id(file: &GgufFile, key: &'static str, vocab_size: usize) -> Result<Option<u32>> {
    let Some(id) = file.optional(key, GgufFile::get_u32)? else {
        return Ok(None);
    };
    if id as usize >= vocab_size {
        return Err(GgufTokenizerError::TokenIdOutOfRange {
            path: file.path().to_path_buf(),
            key,
            id,
            vocab_size,
        });
    }
    Ok(Some(id))
}

/// BPE over the vocabulary (respelled into the byte alphabet where needed) and the merges.
fn bpe_model(file: &GgufFile, tokens: &[&str]) -> Result<BPE> {
    let byte_chars = byte_chars();
    let vocab: Vocab = tokens
        .iter()
        .zip(0u32..)
        .map(|(token, id)| (byte_level_spelling(token, &byte_chars), id))
        .collect();
    BPE::builder()
        .vocab_and_merges(vocab, merges(file)?)
        .build()
        .map_err(|e| build_error(file, e))
}

fn merges(file: &GgufFile) -> Result<Merges> {
    let merges = file.get_str_array("tokenizer.ggml.merges")?;
    merges
        .iter()
        .enumerate()
        .map(|(index, merge)| {
            merge
                .split_once(' ')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| GgufTokenizerError::BadMerge {
                    path: file.path().to_path_buf(),
                    index,
                    merge: (*merge).to_owned(),
                })
        })
        .collect()
}

/// The split llama.cpp applies for this `tokenizer.ggml.pre`, followed by the byte-level map.
fn pre_tokenizer(file: &GgufFile) -> Result<PreTokenizerWrapper> {
    let pre = file.get_str("tokenizer.ggml.pre")?;
    // add_prefix_space=false: GGUF byte-level vocabularies never prepend a space.
    let byte_level = ByteLevel::new(false, true, true);
    if DIGIT_SPLIT_PRES.contains(&pre) {
        Ok(PreTokenizerWrapper::Sequence(Sequence::new(vec![
            PreTokenizerWrapper::Digits(Digits::new(true)),
            PreTokenizerWrapper::ByteLevel(byte_level),
        ])))
    } else if GPT2_SPLIT_PRES.contains(&pre) {
        Ok(PreTokenizerWrapper::ByteLevel(byte_level))
    } else {
        Err(GgufTokenizerError::UnsupportedPre {
            path: file.path().to_path_buf(),
            pre: pre.to_owned(),
            known: [DIGIT_SPLIT_PRES.as_slice(), GPT2_SPLIT_PRES.as_slice()]
                .concat()
                .join(", "),
        })
    }
}

/// Control tokens plus the tokens named by the bos/eos/unk/pad ids, all matched whole and
/// unnormalised. Like transformers, a control token spelled outside the byte alphabet is a
/// llama.cpp mislabel and is skipped.
fn special_tokens(file: &GgufFile, tokens: &[&str], types: &[i32]) -> Result<Vec<AddedToken>> {
    let in_alphabet = |token: &str| token.chars().all(in_byte_alphabet);
    let mut ids: Vec<usize> = types
        .iter()
        .enumerate()
        .filter(|&(i, &t)| t == TOKEN_TYPE_CONTROL && in_alphabet(tokens[i]))
        .map(|(i, _)| i)
        .collect();
    for key in [
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id",
        "tokenizer.ggml.padding_token_id",
    ] {
        ids.extend(special_id(file, key, tokens.len())?.map(|id| id as usize));
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids
        .into_iter()
        .map(|i| AddedToken::from(tokens[i], true).normalized(false))
        .collect())
}

/// User-defined tokens that exist in the vocabulary, added so they are matched whole.
fn user_defined_tokens(tokenizer: &Tokenizer, tokens: &[&str], types: &[i32]) -> Vec<AddedToken> {
    tokens
        .iter()
        .zip(types)
        .filter(|&(token, &t)| {
            t == TOKEN_TYPE_USER_DEFINED && tokenizer.token_to_id(token).is_some()
        })
        .map(|(token, _)| AddedToken::from(*token, false).normalized(false))
        .collect()
}

/// GPT-2's `bytes_to_unicode` keeps these bytes as their Latin-1 character.
fn is_printable_byte(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// GPT-2's `bytes_to_unicode`: printable bytes map to themselves, the other 68 bytes to
/// U+0100..U+0143 in byte order, so every byte has a visible, non-space character.
fn byte_chars() -> [char; 256] {
    let mut extra = '\u{100}'..;
    std::array::from_fn(|i| {
        let b = i as u8;
        if is_printable_byte(b) {
            char::from(b)
        } else {
            extra.next().unwrap_or(char::REPLACEMENT_CHARACTER)
        }
    })
}

/// Whether `c` is one of the 256 characters of [`byte_chars`].
fn in_byte_alphabet(c: char) -> bool {
    let code = u32::from(c);
    match u8::try_from(code) {
        Ok(b) => is_printable_byte(b),
        Err(_) => (0x100..0x144).contains(&code),
    }
}

/// A vocabulary entry as the byte-level BPE looks it up: unchanged if already in the byte
/// alphabet, otherwise its UTF-8 bytes respelled (what transformers does for such entries).
fn byte_level_spelling(token: &str, byte_chars: &[char; 256]) -> String {
    if token.chars().all(in_byte_alphabet) {
        token.to_owned()
    } else {
        token.bytes().map(|b| byte_chars[usize::from(b)]).collect()
    }
}
