//! A preallocated key/value cache: prefill writes the prompt's keys once, each decode step
//! writes one slot, and nothing is concatenated or reallocated per token.

use tch::{Device, Kind, Tensor};

#[derive(Debug)]
pub struct KvCache {
    /// Per layer, [B, KV, capacity, D].
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    len: i64,
}

impl KvCache {
    /// For each of `layers` layers, room of `[batch, kv_heads, capacity, head_dim]`.
    pub fn new(layers: usize, shape: [i64; 4], kind: Kind, device: Device) -> Self {
        let make = || Tensor::zeros(shape, (kind, device));
        Self {
            keys: (0..layers).map(|_| make()).collect(),
            values: (0..layers).map(|_| make()).collect(),
            len: 0,
        }
    }

    /// Write `k`, `v` [B, KV, T, D] after the filled positions of `layer`; returns the
    /// keys and values of every filled position including these.
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
        let t = k.size()[2];
        let capacity = self.keys[layer].size()[2];
        if self.len + t > capacity {
            self.grow(layer, (self.len + t).max(capacity * 2));
        }
        self.keys[layer].narrow(2, self.len, t).copy_(k);
        self.values[layer].narrow(2, self.len, t).copy_(v);
        (
            self.keys[layer].narrow(2, 0, self.len + t),
            self.values[layer].narrow(2, 0, self.len + t),
        )
    }

    /// Called once per forward, after every layer appended.
    pub fn advance(&mut self, t: i64) {
        self.len += t;
    }

    /// Keep only the batch rows `rows` (finished rows stop costing compute).
    pub fn keep_rows(&mut self, rows: &Tensor) {
        for t in self.keys.iter_mut().chain(self.values.iter_mut()) {
            *t = t.index_select(0, rows);
        }
    }

    fn grow(&mut self, layer: usize, capacity: i64) {
        for t in [&mut self.keys[layer], &mut self.values[layer]] {
            let mut size = t.size();
            size[2] = capacity;
            let bigger = Tensor::zeros(size.as_slice(), (t.kind(), t.device()));
            bigger
                .narrow(2, 0, self.len)
                .copy_(&t.narrow(2, 0, self.len));
            *t = bigger;
        }
    }
}
