//! The llama-family transformer (Llama, SmolLM2, TinyLlama, Mistral, Qwen2): grouped-query
//! attention, RoPE, RMSNorm, SwiGLU, tied or untied embeddings — numerically the same
//! operations as transformers' `modeling_llama.py`, in the same order.
//!
//! One forward serves every use: all positions of a padded batch (scoring, training), a
//! prompt prefill into a KV cache, and one-token decode steps. Parameters live in a tch
//! `VarStore` under Hugging Face names (`model.layers.0.self_attn.q_proj.weight`), so loading,
//! saving and the optimiser all speak the checkpoint's language.

use tch::nn::{self, Init};
use tch::{Kind, Tensor};

use super::config::ModelConfig;
use super::gemv;
use super::kv_cache::KvCache;
use super::onednn::PackedWeight;
use super::rope::Rope;

/// `x·Wᵀ + b`, weights in `[out, in]` as in PyTorch.
#[derive(Debug)]
struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    /// oneDNN's copy of `weight` for inference on many rows.
    packed: PackedWeight,
}

/// A `[rows, cols]` parameter stored column-major (its transpose is contiguous).
///
/// The shape, the name and every value are the checkpoint's; only the memory order differs.
/// For `x·Wᵀ` with few rows of `x` (decoding), MKL streams a column-major `W` about twice as
/// fast as a row-major one, and decoding is bound by exactly that stream (measured here:
/// 11.8 → 19 GB/s for a layer's weights at batch 1, 9.9 → 4.6 ms for SmolLM2's output head).
fn column_major(p: &nn::Path, name: &str, rows: i64, cols: i64, std: f64) -> Tensor {
    let storage = Tensor::randn([cols, rows], (Kind::Float, p.device())) * std;
    p.add(name, storage.tr(), true)
}

impl Linear {
    fn new(p: nn::Path, in_dim: i64, out_dim: i64, bias: bool, std: f64, pack: bool) -> Self {
        let weight = column_major(&p, "weight", out_dim, in_dim, std);
        let bias = bias.then(|| p.var("bias", &[out_dim], Init::Const(0.0)));
        Self {
            weight,
            bias,
            packed: PackedWeight::new(pack),
        }
    }

    /// `decoding`: inference with a KV cache, where the streaming kernel may serve a few
    /// rows; other inference goes to oneDNN's packed product, training to torch.
    fn forward(&self, x: &Tensor, decoding: bool) -> Tensor {
        let bias = self.bias.as_ref();
        decoding
            .then(|| gemv::linear(x, &self.weight, bias))
            .flatten()
            .or_else(|| self.packed.linear(x, &self.weight, bias))
            .unwrap_or_else(|| x.linear(&self.weight, bias))
    }
}

/// RMSNorm computed in f32 whatever the model dtype, as transformers does.
#[derive(Debug)]
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn new(p: nn::Path, dim: i64, eps: f64) -> Self {
        Self {
            weight: p.var("weight", &[dim], Init::Const(1.0)),
            eps,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let x32 = x.to_kind(Kind::Float);
        let variance = x32.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        let normed = x32 * (variance + self.eps).rsqrt();
        &self.weight * normed.to_kind(kind)
    }
}

#[derive(Debug)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    n_heads: i64,
    n_kv_heads: i64,
    head_dim: i64,
}

impl Attention {
    fn new(p: nn::Path, cfg: &ModelConfig, pack: bool) -> Self {
        let (h, kv, d) = (
            cfg.num_attention_heads as i64,
            cfg.num_kv_heads() as i64,
            cfg.head_dim() as i64,
        );
        let hidden = cfg.hidden_size as i64;
        let std = cfg.initializer_range;
        Self {
            q_proj: Linear::new(&p / "q_proj", hidden, h * d, cfg.qkv_bias(), std, pack),
            k_proj: Linear::new(&p / "k_proj", hidden, kv * d, cfg.qkv_bias(), std, pack),
            v_proj: Linear::new(&p / "v_proj", hidden, kv * d, cfg.qkv_bias(), std, pack),
            o_proj: Linear::new(&p / "o_proj", h * d, hidden, cfg.o_bias(), std, pack),
            n_heads: h,
            n_kv_heads: kv,
            head_dim: d,
        }
    }

    /// x: [B, T, hidden]; mask: [B, 1, T, L] (true = may attend), or `None` for plain
    /// causal attention over these T tokens; cos/sin: [B, 1, T, D].
    fn forward(
        &self,
        x: &Tensor,
        rope: (&Tensor, &Tensor),
        mask: Option<&Tensor>,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Tensor {
        let (b, t, _) = x.size3().expect("attention input is [B, T, hidden]");
        let decoding = cache.is_some();
        let heads = |proj: &Linear, n: i64| {
            proj.forward(x, decoding)
                .view([b, t, n, self.head_dim])
                .transpose(1, 2)
        };
        let q = Rope::apply(&heads(&self.q_proj, self.n_heads), rope);
        let k = Rope::apply(&heads(&self.k_proj, self.n_kv_heads), rope);
        let v = heads(&self.v_proj, self.n_kv_heads);
        // [B, KV, L, D]: the cached keys/values followed by these T.
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, &k, &v),
            None => (k, v),
        };
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let y = Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            mask,
            0.0,
            mask.is_none(),
            scale,
            true,
        );
        // [B, H, T, D] -> [B, T, H*D]
        let y = y
            .transpose(1, 2)
            .reshape([b, t, self.n_heads * self.head_dim]);
        self.o_proj.forward(&y, decoding)
    }
}

#[derive(Debug)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn new(p: nn::Path, cfg: &ModelConfig, pack: bool) -> Self {
        let (hidden, inter) = (cfg.hidden_size as i64, cfg.intermediate_size as i64);
        let (bias, std) = (cfg.mlp_bias, cfg.initializer_range);
        Self {
            gate_proj: Linear::new(&p / "gate_proj", hidden, inter, bias, std, pack),
            up_proj: Linear::new(&p / "up_proj", hidden, inter, bias, std, pack),
            down_proj: Linear::new(&p / "down_proj", inter, hidden, bias, std, pack),
        }
    }

    fn forward(&self, x: &Tensor, decoding: bool) -> Tensor {
        let gated = self.gate_proj.forward(x, decoding).silu() * self.up_proj.forward(x, decoding);
        self.down_proj.forward(&gated, decoding)
    }
}

#[derive(Debug)]
struct Block {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl Block {
    fn new(p: nn::Path, cfg: &ModelConfig, pack: bool) -> Self {
        let (hidden, eps) = (cfg.hidden_size as i64, cfg.rms_norm_eps);
        Self {
            input_layernorm: RmsNorm::new(&p / "input_layernorm", hidden, eps),
            self_attn: Attention::new(&p / "self_attn", cfg, pack),
            post_attention_layernorm: RmsNorm::new(&p / "post_attention_layernorm", hidden, eps),
            mlp: Mlp::new(&p / "mlp", cfg, pack),
        }
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: (&Tensor, &Tensor),
        mask: Option<&Tensor>,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Tensor {
        let decoding = cache.is_some();
        let h = x + self
            .self_attn
            .forward(&self.input_layernorm.forward(x), rope, mask, cache);
        &h + self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&h), decoding)
    }
}

/// The decoder stack and its output head.
#[derive(Debug)]
pub struct Llama {
    embed_tokens: Tensor,
    layers: Vec<Block>,
    norm: RmsNorm,
    /// `None` when tied to the embeddings.
    lm_head: Option<Tensor>,
    /// oneDNN's copy of the output head for inference on many rows.
    head_packed: PackedWeight,
    rope: Rope,
}

impl Llama {
    /// Create the parameters under HF names (randomly initialised; loaders overwrite them).
    /// `pack`: keep oneDNN-packed copies of the weights for inference ([`PackedWeight`]).
    pub fn new(root: &nn::Path, cfg: &ModelConfig, pack: bool) -> Self {
        let (vocab, hidden) = (cfg.vocab_size as i64, cfg.hidden_size as i64);
        let std = cfg.initializer_range;
        let model = root / "model";
        // Column-major too: with tied embeddings this is the output head, the largest read
        // of every decoding step; the lookup only gathers a few strided rows.
        let embed_tokens = column_major(&(&model / "embed_tokens"), "weight", vocab, hidden, std);
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Block::new(&model / "layers" / i, cfg, pack))
            .collect();
        let norm = RmsNorm::new(&model / "norm", hidden, cfg.rms_norm_eps);
        let lm_head = (!cfg.tie_word_embeddings)
            .then(|| column_major(&(root / "lm_head"), "weight", vocab, hidden, std));
        Self {
            embed_tokens,
            layers,
            norm,
            lm_head,
            head_packed: PackedWeight::new(pack),
            rope: Rope::new(cfg, root.device()),
        }
    }

    /// Final hidden states [B, T, hidden] for `ids` [B, T] at `positions` [B, T].
    ///
    /// `key_mask` [B, L] marks the real (non-padding) keys among the L = cached + T keys;
    /// each query attends to real keys at or before itself. `None` means plain causal
    /// attention, which is exact for unpadded and right-padded batches without a cache (a
    /// real token never looks right, where the padding is) and lets torch use its fused
    /// kernel. With a cache, these T tokens' keys and values are appended to it.
    pub fn forward_hidden(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        key_mask: Option<&Tensor>,
        mut cache: Option<&mut KvCache>,
    ) -> Tensor {
        let kind = self.embed_tokens.kind();
        let mut x = Tensor::embedding(&self.embed_tokens, ids, -1, false, false);
        let (cos, sin) = self.rope.cos_sin(positions, kind);
        let mask = key_mask.map(|m| attention_mask(m, ids.size()[1]));
        for (i, layer) in self.layers.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| (c, i));
            x = layer.forward(&x, (&cos, &sin), mask.as_ref(), layer_cache);
        }
        if let Some(cache) = cache {
            cache.advance(ids.size()[1]);
        }
        self.norm.forward(&x)
    }

    /// Vocabulary logits for hidden states [..., hidden].
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        self.head_packed
            .linear(hidden, self.head(), None)
            .unwrap_or_else(|| hidden.linear::<Tensor>(self.head(), None))
    }

    /// Logits for decoding (inference only): the streaming kernel serves a few rows.
    pub fn decode_logits(&self, hidden: &Tensor) -> Tensor {
        gemv::linear(hidden, self.head(), None).unwrap_or_else(|| self.logits(hidden))
    }

    fn head(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }
}

/// log p(`ids[i]`) under row `i` of `logits` ([N, vocab], [N] -> [N]), as
/// `logit[id] − logsumexp(logits)` (training's and decoding's formula; scoring, with no
/// grad and thousands of rows, takes the fused log_softmax instead).
pub fn target_logprobs(logits: &Tensor, ids: &Tensor) -> Tensor {
    (logits.gather(1, &ids.unsqueeze(1), false) - logits.logsumexp([-1i64].as_slice(), true))
        .squeeze_dim(1)
}

/// [B, 1, T, L] boolean mask for T queries that follow L - T cached keys. A query on a
/// padding position would see no key at all (and softmax to NaN); it is let see itself.
fn attention_mask(key_mask: &Tensor, t: i64) -> Tensor {
    let l = key_mask.size()[1];
    let device = key_mask.device();
    let q_pos = Tensor::arange_start(l - t, l, (Kind::Int64, device)).unsqueeze(1);
    let k_pos = Tensor::arange(l, (Kind::Int64, device)).unsqueeze(0);
    let causal = k_pos.le_tensor(&q_pos);
    let own = k_pos.eq_tensor(&q_pos);
    let real = key_mask.to_kind(Kind::Bool).unsqueeze(1);
    causal
        .unsqueeze(0)
        .logical_and(&real)
        .logical_or(&own.unsqueeze(0))
        .unsqueeze(1)
}
