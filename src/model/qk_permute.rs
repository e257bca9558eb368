//! llama.cpp's Q/K row permutation and its inverse.
//!
//! Hugging Face checkpoints rotate each attention head's first half of dimensions against
//! its second half; llama.cpp rotates interleaved pairs, so its converter reorders each
//! head's rows of `q_proj` and `k_proj` (weights and biases) from "first half / second half"
//! to interleaved pairs. [`permute_weights`] does that when a model is written as GGUF
//! ([`super::to_gguf`]); [`reverse_permute_weights`] undoes it when one is read
//! ([`super::from_gguf`]), exactly as transformers' GGUF loader does; [`permuted_heads`]
//! says which tensors are permuted, by how many heads.

use super::config::{Architecture, ModelConfig};

/// The head count llama.cpp permutes the rows of the GGUF tensor `gguf_name` by: the
/// attention heads for `attn_q`, the KV heads for `attn_k` (weight and bias); `None` for the
/// other tensors, and for Qwen2, which llama.cpp runs in Hugging Face's layout.
pub fn permuted_heads(gguf_name: &str, cfg: &ModelConfig) -> Option<usize> {
    if cfg.model_type == Architecture::Qwen2 {
        return None;
    }
    let (stem, _param) = gguf_name.rsplit_once('.')?;
    if stem.ends_with("attn_q") {
        Some(cfg.num_attention_heads)
    } else if stem.ends_with("attn_k") {
        Some(cfg.num_kv_heads())
    } else {
        None
    }
}

/// A matrix that cannot be (un)permuted: its values do not make `rows` x `cols`, or its rows
/// do not split into two halves per head.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot apply or undo llama.cpp's Q/K permutation on a {rows}x{cols} matrix holding \
     {len} values with {n_head} heads (rows must split into 2 halves per head)"
)]
pub struct PermuteShape {
    pub rows: usize,
    pub cols: usize,
    pub len: usize,
    pub n_head: usize,
}

/// Reorders a row-major `[rows, cols]` matrix (a bias is `cols` = 1) from Hugging Face's
/// layout to llama.cpp's, as llama.cpp's `convert_hf_to_gguf.py` does: within each head,
/// row `j * half + i` moves to row `2 * i + j` (j in 0..2, i in 0..half). Pass `n_head` =
/// attention heads for `q_proj`, and the KV-head count for `k_proj`.
pub fn permute_weights(
    data: &[f32],
    rows: usize,
    cols: usize,
    n_head: usize,
) -> Result<Vec<f32>, PermuteShape> {
    // Each head's rows, seen as [2][half], are transposed to [half][2].
    transpose_head_rows(data, rows, cols, n_head, false)
}

/// Undoes [`permute_weights`], exactly like transformers'
/// `LlamaTensorProcessor._reverse_permute_weights`: within each head, row `2 * i + j` moves
/// back to row `j * half + i`. `data` is a row-major `[rows, cols]` matrix (as returned by
/// [`crate::gguf::GgufFile::dequantize`]; a bias is `cols` = 1).
pub fn reverse_permute_weights(
    data: &[f32],
    rows: usize,
    cols: usize,
    n_head: usize,
) -> Result<Vec<f32>, PermuteShape> {
    // Each head's rows, seen as [half][2], are transposed to [2][half].
    transpose_head_rows(data, rows, cols, n_head, true)
}

/// Within each of `n_head` blocks of rows, sees the block as a `[2][half]` grid of rows
/// (`pairs_first`: `[half][2]`) and writes it transposed.
fn transpose_head_rows(
    data: &[f32],
    rows: usize,
    cols: usize,
    n_head: usize,
    pairs_first: bool,
) -> Result<Vec<f32>, PermuteShape> {
    let sized = rows.checked_mul(cols) == Some(data.len());
    if !sized || n_head == 0 || !rows.is_multiple_of(2 * n_head) {
        return Err(PermuteShape {
            rows,
            cols,
            len: data.len(),
            n_head,
        });
    }
    let half = rows / n_head / 2;
    let (outer, inner) = if pairs_first { (2, half) } else { (half, 2) };
    let mut out = Vec::with_capacity(data.len());
    // Output row (h, a, b) is input row (h, b, a), the input's grid being [inner][outer].
    for h in 0..n_head {
        for a in 0..outer {
            for b in 0..inner {
                let src = (h * 2 * half + b * outer + a) * cols;
                out.extend_from_slice(&data[src..src + cols]);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{PermuteShape, permute_weights, permuted_heads, reverse_permute_weights};
    use crate::gguf::GgufFile;
    use crate::gguf::tests::{
        assert_bits_eq, assert_close, default_model, f32s, fixture_json, usizes,
    };
    use crate::model::config::{Architecture, ModelConfig};

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
        assert!(permute_weights(&data, 8, 1, 3).is_err());
    }

    #[test]
    fn q_and_k_are_permuted_by_their_head_counts_except_in_qwen2() {
        let mut cfg: ModelConfig = serde_json::from_str(
            r#"{"model_type":"llama","vocab_size":8,"hidden_size":64,"intermediate_size":8,
                "num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2}"#,
        )
        .unwrap();
        assert_eq!(permuted_heads("blk.0.attn_q.weight", &cfg), Some(4));
        assert_eq!(permuted_heads("blk.3.attn_k.bias", &cfg), Some(2));
        assert_eq!(permuted_heads("blk.0.attn_v.weight", &cfg), None);
        assert_eq!(permuted_heads("blk.0.attn_output.weight", &cfg), None);
        cfg.model_type = Architecture::Qwen2;
        assert_eq!(permuted_heads("blk.0.attn_q.weight", &cfg), None);
    }

    #[test]
    fn permute_interleaves_each_heads_halves() {
        // One head of 6 rows: halves [0 1 2] and [3 4 5] become pairs (0 3) (1 4) (2 5).
        let data: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let out = permute_weights(&data, 6, 2, 1).unwrap();
        assert_eq!(out, [0., 1., 6., 7., 2., 3., 8., 9., 4., 5., 10., 11.]);
    }

    #[test]
    fn permute_and_reverse_are_inverses_on_random_data() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        for (rows, cols, n_head) in [(576, 7, 9), (192, 5, 3), (64, 1, 4), (16, 16, 2)] {
            let data: Vec<f32> = (0..rows * cols).map(|_| random()).collect();
            let permuted = permute_weights(&data, rows, cols, n_head).unwrap();
            assert_ne!(permuted, data, "{rows}x{cols}/{n_head} moved nothing");
            let back = reverse_permute_weights(&permuted, rows, cols, n_head).unwrap();
            assert_bits_eq(&back, &data, "reverse(permute(x))");
            let forth = permute_weights(
                &reverse_permute_weights(&data, rows, cols, n_head).unwrap(),
                rows,
                cols,
                n_head,
            )
            .unwrap();
            assert_bits_eq(&forth, &data, "permute(reverse(x))");
        }
    }

    /// `sum(v[i] * (i % 1009 + 1))`, the position-sensitive checksum of the fixture script.
    fn position_checksum(values: &[f32]) -> f64 {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| f64::from(v) * ((i % 1009) + 1) as f64)
            .sum()
    }

    /// transformers' un-permuted rows of the real model (`smollm2_permute.json`) are what
    /// ours gives, and permuting them again gives back the file's rows bit for bit.
    #[test]
    fn real_model_permutation_matches_transformers_both_ways() {
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
            let again = permute_weights(&out, rows, cols, n_head).unwrap();
            assert_bits_eq(&again, &tensor.data, &format!("{name} permuted back"));
        }
    }
}
