//! A tokenizer as GGUF metadata: the `tokenizer.ggml.*` keys (and `tokenizer.chat_template`)
//! llama.cpp builds its tokenizer from, as its `convert_hf_to_gguf.py` writes them for a
//! byte-level BPE vocabulary — the inverse of `gguf.rs`.
//!
//! Everything is read from the tokenizer's own serialisation (the `tokenizer.json` it would
//! save), so a Hugging Face tokenizer, one rebuilt from GGUF and one trained by rlmec are
//! written alike: tokens by id in their byte-level spelling (added tokens as their text),
//! token types (normal, control for special added tokens, user-defined for the other added
//! tokens, unused for ids past the tokenizer that the model's embeddings still have), merges
//! in rank order. What the vocabulary does not say comes from [`TokenizerMeta`]; where that
//! is unset, llama.cpp's pre-tokenizer name is derived from the pre-tokenizer and whether to
//! add BOS/EOS from the post-processor.

use serde_json::Value;

use super::gguf::{TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED};
use super::{TextTokenizer, TokenizeError, TokenizerMeta};
use crate::gguf::{GgufValue, GgufValueType};

/// llama.cpp's token type for ordinary vocabulary entries.
const TOKEN_TYPE_NORMAL: i32 = 1;
/// llama.cpp's token type for ids no token has (embedding rows past the tokenizer).
const TOKEN_TYPE_UNUSED: i32 = 5;
/// The pre-tokenizer name written when none is known: GPT-2's split, which `gguf.rs` reads.
const FALLBACK_PRE: &str = "gpt-2";

/// The ids llama.cpp needs beside the vocabulary: the model's BOS and (first) EOS.
#[derive(Debug, Clone, Copy, Default)]
pub struct FramingIds {
    pub bos: Option<i64>,
    pub eos: Option<i64>,
}

/// The tokenizer metadata of a GGUF file for a model with `n_vocab` embedding rows.
pub fn gguf_metadata(
    tokenizer: &TextTokenizer,
    meta: &TokenizerMeta,
    ids: FramingIds,
    n_vocab: usize,
) -> Result<Vec<(String, GgufValue)>, TokenizeError> {
    let err = TokenizeError::ToGguf;
    let text = tokenizer
        .inner
        .to_string(false)
        .map_err(|e| err(e.to_string()))?;
    let json: Value = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
    let model_type = json["model"]["type"].as_str().unwrap_or("unknown");
    if model_type != "BPE" || json["decoder"]["type"] != "ByteLevel" {
        return Err(err(format!(
            "only a byte-level BPE tokenizer (llama.cpp's `gpt2`) can be written, not {model_type} \
             with a {} decoder",
            json["decoder"]["type"]
        )));
    }
    let (tokens, types) = tokens_and_types(&json, n_vocab)?;
    let pre = meta.gguf_pre.clone().unwrap_or_else(|| derived_pre(&json));
    let (template_bos, template_eos) = template_framing(&json["post_processor"]);

    let string = |s: &str| GgufValue::String(s.to_owned());
    let mut out = vec![
        ("tokenizer.ggml.model".to_owned(), string("gpt2")),
        ("tokenizer.ggml.pre".to_owned(), string(&pre)),
        (
            "tokenizer.ggml.tokens".to_owned(),
            GgufValue::Array(
                GgufValueType::String,
                tokens.into_iter().map(GgufValue::String).collect(),
            ),
        ),
        (
            "tokenizer.ggml.token_type".to_owned(),
            GgufValue::Array(
                GgufValueType::I32,
                types.into_iter().map(GgufValue::I32).collect(),
            ),
        ),
        ("tokenizer.ggml.merges".to_owned(), merges(&json)?),
    ];
    let special = [
        ("tokenizer.ggml.bos_token_id", ids.bos),
        ("tokenizer.ggml.eos_token_id", ids.eos),
        ("tokenizer.ggml.unknown_token_id", meta.unknown_id),
        ("tokenizer.ggml.padding_token_id", meta.padding_id),
    ];
    for (key, id) in special {
        if let Some(id) = id {
            let id = u32::try_from(id)
                .ok()
                .filter(|&i| (i as usize) < n_vocab)
                .ok_or_else(|| err(format!("`{key}` {id} is outside the {n_vocab} tokens")))?;
            out.push((key.to_owned(), GgufValue::U32(id)));
        }
    }
    let add_bos = meta.add_bos.unwrap_or(template_bos);
    let add_eos = meta.add_eos.unwrap_or(template_eos);
    out.push((
        "tokenizer.ggml.add_bos_token".to_owned(),
        GgufValue::Bool(add_bos),
    ));
    out.push((
        "tokenizer.ggml.add_eos_token".to_owned(),
        GgufValue::Bool(add_eos),
    ));
    if let Some(template) = &meta.chat_template {
        out.push(("tokenizer.chat_template".to_owned(), string(template)));
    }
    Ok(out)
}

/// Every id's token and type: the vocabulary's spelling, then the added tokens over it (as
/// llama.cpp's converter does), and a placeholder for ids no token has.
fn tokens_and_types(
    json: &Value,
    n_vocab: usize,
) -> Result<(Vec<String>, Vec<i32>), TokenizeError> {
    let mut slots: Vec<Option<(String, i32)>> = vec![None; n_vocab];
    let mut place = |id: Option<u64>, token: &str, kind: i32| -> Result<(), TokenizeError> {
        let slot = id
            .and_then(|id| slots.get_mut(usize::try_from(id).ok()?))
            .ok_or_else(|| {
                TokenizeError::ToGguf(format!(
                    "token `{token}` has id {id:?}, outside the model's {n_vocab} embeddings"
                ))
            })?;
        *slot = Some((token.to_owned(), kind));
        Ok(())
    };
    let vocab = json["model"]["vocab"].as_object().into_iter().flatten();
    for (token, id) in vocab {
        place(id.as_u64(), token, TOKEN_TYPE_NORMAL)?;
    }
    let added = json["added_tokens"].as_array().into_iter().flatten();
    for token in added {
        let kind = if token["special"] == true {
            TOKEN_TYPE_CONTROL
        } else {
            TOKEN_TYPE_USER_DEFINED
        };
        place(
            token["id"].as_u64(),
            token["content"].as_str().unwrap_or_default(),
            kind,
        )?;
    }
    Ok(slots
        .into_iter()
        .enumerate()
        .map(|(id, slot)| slot.unwrap_or_else(|| (format!("[PAD{id}]"), TOKEN_TYPE_UNUSED)))
        .unzip())
}

/// The merges in rank order as `"a b"` (tokenizers writes them as pairs or as such strings).
fn merges(json: &Value) -> Result<GgufValue, TokenizeError> {
    let merges = json["model"]["merges"].as_array().into_iter().flatten();
    let items = merges
        .enumerate()
        .map(|(i, merge)| {
            let text = match merge {
                Value::String(s) => Some(s.clone()),
                Value::Array(pair) => match pair.as_slice() {
                    [Value::String(a), Value::String(b)] => Some(format!("{a} {b}")),
                    _ => None,
                },
                _ => None,
            };
            text.map(GgufValue::String).ok_or_else(|| {
                TokenizeError::ToGguf(format!("merge {i} is not a pair of tokens: {merge}"))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(GgufValue::Array(GgufValueType::String, items))
}

/// llama.cpp's name for the split the pre-tokenizer makes, among those `gguf.rs` reads back:
/// GPT-2's regex alone (`gpt-2`), or digits isolated first (`smollm`, SmolLM2's). Any other
/// falls back to `gpt-2` with a warning: llama.cpp will split some text differently.
fn derived_pre(json: &Value) -> String {
    let pre = &json["pre_tokenizer"];
    let gpt2_split = |p: &Value| {
        p["type"] == "ByteLevel" && p["use_regex"] == true && p["add_prefix_space"] != true
    };
    let name = match pre["type"].as_str() {
        Some("ByteLevel") if gpt2_split(pre) => Some("gpt-2"),
        Some("Sequence") => match pre["pretokenizers"].as_array().map(Vec::as_slice) {
            Some([digits, byte_level])
                if digits["type"] == "Digits"
                    && digits["individual_digits"] == true
                    && gpt2_split(byte_level) =>
            {
                Some("smollm")
            }
            _ => None,
        },
        _ => None,
    };
    name.unwrap_or_else(|| {
        tracing::warn!(
            "GGUF: no llama.cpp pre-tokenizer name known for {pre}; writing `{FALLBACK_PRE}`, \
             so llama.cpp may split some text differently from this tokenizer"
        );
        FALLBACK_PRE
    })
    .to_owned()
}

/// Whether the post-processor puts a special token before (BOS) and after (EOS) a single
/// sequence: a `TemplateProcessing`, alone or in a `Sequence`.
fn template_framing(post: &Value) -> (bool, bool) {
    let template = match post["type"].as_str() {
        Some("TemplateProcessing") => Some(post),
        Some("Sequence") => post["processors"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["type"] == "TemplateProcessing")),
        _ => None,
    };
    let single = template
        .and_then(|t| t["single"].as_array())
        .map_or(&[][..], Vec::as_slice);
    let special = |piece: Option<&Value>| piece.is_some_and(|p| p.get("SpecialToken").is_some());
    (special(single.first()), special(single.last()))
}

#[cfg(test)]
mod tests;
