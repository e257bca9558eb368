//! Padded batches of token sequences: ids, the mask of real tokens, and positions.
//!
//! Left padding (generation: every row's next token lands in the same column) numbers the
//! real tokens of each row from 0, as transformers' `generate` does; right padding
//! (scoring, training) numbers every column from 0.

use tch::{Device, Tensor};

#[derive(Debug)]
pub struct Batch {
    /// [B, T] token ids (padding filled with `pad_id`).
    pub ids: Tensor,
    /// [B, T] 1 for real tokens, 0 for padding.
    pub mask: Tensor,
    /// [B, T] RoPE positions.
    pub positions: Tensor,
    /// Real length of each row.
    pub lens: Vec<i64>,
    /// Padded length T.
    pub width: i64,
    pub left: bool,
}

impl Batch {
    pub fn left_padded(seqs: &[Vec<i64>], pad_id: i64, device: Device) -> Self {
        Self::build(seqs, pad_id, device, true)
    }

    pub fn right_padded(seqs: &[Vec<i64>], pad_id: i64, device: Device) -> Self {
        Self::build(seqs, pad_id, device, false)
    }

    fn build(seqs: &[Vec<i64>], pad_id: i64, device: Device, left: bool) -> Self {
        let width = seqs.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let b = seqs.len();
        let mut ids = vec![pad_id; b * width];
        let mut mask = vec![0i64; b * width];
        let mut positions = vec![0i64; b * width];
        for (row, seq) in seqs.iter().enumerate() {
            let offset = if left { width - seq.len() } else { 0 };
            for (j, &id) in seq.iter().enumerate() {
                let at = row * width + offset + j;
                ids[at] = id;
                mask[at] = 1;
                positions[at] = j as i64;
            }
            if !left {
                // Padding after the sequence continues the numbering (never attended to).
                for j in seq.len()..width {
                    positions[row * width + j] = j as i64;
                }
            }
        }
        let shape = [b as i64, width as i64];
        let tensor = |v: &[i64]| Tensor::from_slice(v).view(shape).to_device(device);
        Self {
            ids: tensor(&ids),
            mask: tensor(&mask),
            positions: tensor(&positions),
            lens: seqs.iter().map(|s| s.len() as i64).collect(),
            width: width as i64,
            left,
        }
    }

    /// The column of row `row`'s token `j` (0-based among its real tokens).
    pub fn column(&self, row: usize, j: i64) -> i64 {
        if self.left {
            self.width - self.lens[row] + j
        } else {
            j
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_padding_numbers_real_tokens_from_zero() {
        let b = Batch::left_padded(&[vec![5, 6], vec![7, 8, 9]], 0, Device::Cpu);
        assert_eq!(
            Vec::<i64>::try_from(b.ids.flatten(0, -1)).unwrap(),
            [0, 5, 6, 7, 8, 9]
        );
        assert_eq!(
            Vec::<i64>::try_from(b.mask.flatten(0, -1)).unwrap(),
            [0, 1, 1, 1, 1, 1]
        );
        assert_eq!(
            Vec::<i64>::try_from(b.positions.flatten(0, -1)).unwrap(),
            [0, 0, 1, 0, 1, 2]
        );
        assert_eq!(b.column(0, 0), 1);
    }

    #[test]
    fn right_padding_numbers_columns() {
        let b = Batch::right_padded(&[vec![5, 6], vec![7, 8, 9]], 0, Device::Cpu);
        assert_eq!(
            Vec::<i64>::try_from(b.positions.flatten(0, -1)).unwrap(),
            [0, 1, 2, 0, 1, 2]
        );
        assert_eq!(
            Vec::<i64>::try_from(b.mask.flatten(0, -1)).unwrap(),
            [1, 1, 0, 1, 1, 1]
        );
        assert_eq!(b.column(0, 1), 1);
    }
}
