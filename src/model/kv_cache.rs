//! A preallocated key/value cache: prefill writes the prompt's keys once, each decode step
//! writes one slot, and nothing is concatenated or reallocated per token. It starts with the
//! room its caller expects to use and doubles when full, never beyond its limit (the
//! longest the rows can get), so a generous budget reserves no memory a row never uses.

use tch::{Device, Kind, Tensor};

#[derive(Debug)]
pub struct KvCache {
    /// Per layer, [B, KV, capacity, D].
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    len: i64,
    /// The most positions it will ever hold.
    limit: i64,
}

impl KvCache {
    /// For each of `layers` layers, room of `[batch, kv_heads, capacity, head_dim]` at first,
    /// growing up to `limit` positions.
    pub fn new(layers: usize, shape: [i64; 4], limit: i64, kind: Kind, device: Device) -> Self {
        let make = || Tensor::zeros(shape, (kind, device));
        Self {
            keys: (0..layers).map(|_| make()).collect(),
            values: (0..layers).map(|_| make()).collect(),
            len: 0,
            limit: limit.max(shape[2]),
        }
    }

    /// Write `k`, `v` [B, KV, T, D] after the filled positions of `layer`; returns the
    /// keys and values of every filled position including these.
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
        let t = k.size()[2];
        let capacity = self.keys[layer].size()[2];
        if self.len + t > capacity {
            let doubled = (capacity * 2).min(self.limit);
            self.grow(layer, (self.len + t).max(doubled));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn room(cache: &KvCache) -> i64 {
        cache.keys[0].size()[2]
    }

    #[test]
    fn room_doubles_when_full_but_never_past_the_limit() {
        let mut cache = KvCache::new(1, [1, 1, 4, 2], 10, Kind::Float, Device::Cpu);
        let step = Tensor::ones([1, 1, 1, 2], (Kind::Float, Device::Cpu));
        let mut rooms = Vec::new();
        for i in 0..10 {
            let (k, _) = cache.append(0, &(&step * i as f64), &step);
            cache.advance(1);
            rooms.push(room(&cache));
            // What was written survives every growth.
            let written: Vec<f32> = Vec::try_from(k.select(3, 0).flatten(0, -1)).unwrap();
            assert_eq!(written, (0..=i).map(|x| x as f32).collect::<Vec<_>>());
        }
        assert_eq!(rooms, [4, 4, 4, 4, 8, 8, 8, 8, 10, 10]);
    }
}
