//! Training a byte-level BPE tokenizer from text, for a model made from scratch: GPT-2's
//! scheme (bytes mapped to printable characters, its split regex, no prefix space), with all
//! 256 bytes in the base vocabulary so any text encodes and decodes back exactly, and
//! `<|endoftext|>` as token 0, the end of sequence.

use std::collections::HashSet;

use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer, TokenizerBuilder, TokenizerImpl};

use super::{TextTokenizer, TokenizeError};

/// The end-of-sequence token, id [`EOS_ID`] of every tokenizer trained here.
pub const EOS_TOKEN: &str = "<|endoftext|>";
pub const EOS_ID: i64 = 0;

/// The smallest vocabulary worth training: EOS, the 256 bytes and one merge.
pub const MIN_VOCAB_SIZE: usize = 1 + 256 + 1;

/// A pair of tokens becomes a merge only if it occurs at least this often.
const MIN_FREQUENCY: u64 = 2;

type ByteLevelTokenizer = TokenizerImpl<BPE, NormalizerWrapper, ByteLevel, ByteLevel, ByteLevel>;

/// Train a byte-level BPE tokenizer of at most `vocab_size` tokens (EOS included) on `texts`.
///
/// The vocabulary can come out smaller when the texts have fewer pairs occurring twice or
/// more; [`TextTokenizer::vocab_size`] tells the real size. The same texts and size give the
/// same tokenizer, whatever their order.
pub fn train_bpe(texts: &[String], vocab_size: usize) -> Result<TextTokenizer, TokenizeError> {
    let train_error = |message: String| TokenizeError::Train(message);
    if vocab_size < MIN_VOCAB_SIZE {
        return Err(train_error(format!(
            "vocab_size {vocab_size} is too small: a byte-level BPE vocabulary needs at least \
             {MIN_VOCAB_SIZE} tokens (EOS, 256 bytes and one merge)"
        )));
    }
    if texts.iter().all(|t| t.is_empty()) {
        return Err(train_error("no text to train on".into()));
    }
    let byte_level = ByteLevel::new(false, false, true);
    let mut tokenizer: ByteLevelTokenizer = TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_normalizer(None)
        .with_pre_tokenizer(Some(byte_level))
        .with_post_processor(Some(byte_level))
        .with_decoder(Some(byte_level))
        .build()
        .map_err(|e| train_error(e.to_string()))?;
    let alphabet: HashSet<char> = ByteLevel::alphabet().into_iter().collect();
    let mut trainer = BpeTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(MIN_FREQUENCY)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(EOS_TOKEN, true)])
        .initial_alphabet(alphabet)
        .build();
    // EOS in a text is one token when encoding, and the pieces around it are pre-tokenised
    // apart: train on those pieces, so no merge is spent spelling EOS out.
    let pieces = texts.iter().flat_map(|t| t.split(EOS_TOKEN));
    // The trainer counts words into a map, so the order of the texts does not matter; its
    // ties between equally frequent pairs go to the smaller ids, which are assigned in a
    // fixed order (EOS, the sorted alphabet, then merges as made).
    tokenizer
        .train(&mut trainer, pieces)
        .map_err(|e| train_error(e.to_string()))?;
    let tokenizer: Tokenizer = tokenizer.into();
    debug_assert_eq!(tokenizer.token_to_id(EOS_TOKEN), Some(EOS_ID as u32));
    Ok(TextTokenizer::new(tokenizer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rejects_too_small_a_vocabulary_and_no_text() {
        let t = texts(&["1 + 1 = 2"]);
        let e = train_bpe(&t, 257).unwrap_err().to_string();
        assert!(e.contains("at least 258"), "{e}");
        let e = train_bpe(&[], 300).unwrap_err().to_string();
        assert!(e.contains("no text"), "{e}");
        let e = train_bpe(&texts(&["", ""]), 300).unwrap_err().to_string();
        assert!(e.contains("no text"), "{e}");
    }

    #[test]
    fn eos_is_token_zero_and_round_trips() {
        let docs = [
            "12 + 34 = 46<|endoftext|>",
            "12 + 35 = 47<|endoftext|>12 + 1 = 13",
        ];
        let tok = train_bpe(&texts(&docs), 300).unwrap();
        let vocab = tok.inner.get_vocab(true);
        assert!(
            !vocab
                .keys()
                .any(|k| k != EOS_TOKEN && (k.contains("end") || k.contains("<|"))),
            "EOS spelt out by merges"
        );
        assert_eq!(tok.token_id(EOS_TOKEN), Some(EOS_ID));
        let ids = tok.encode("12 + 34 = 46<|endoftext|>").unwrap();
        assert_eq!(ids.last(), Some(&EOS_ID));
        assert_eq!(tok.decode(&ids).unwrap(), "12 + 34 = 46<|endoftext|>");
    }
}
