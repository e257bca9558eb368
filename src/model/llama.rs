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
use super::linear::{Linear, ParamInit, Pass, column_major};
use super::onednn::PackedWeight;
use super::rope::Rope;

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
    fn new(p: nn::Path, cfg: &ModelConfig, init: ParamInit) -> Self {
        let (h, kv, d) = (
            cfg.num_attention_heads as i64,
            cfg.num_kv_heads() as i64,
            cfg.head_dim() as i64,
        );
        let hidden = cfg.hidden_size as i64;
        Self {
            q_proj: Linear::new(&p / "q_proj", (hidden, h * d), cfg.qkv_bias(), init, 0),
            k_proj: Linear::new(&p / "k_proj", (hidden, kv * d), cfg.qkv_bias(), init, 1),
            v_proj: Linear::new(&p / "v_proj", (hidden, kv * d), cfg.qkv_bias(), init, 2),
            o_proj: Linear::new(&p / "o_proj", (h * d, hidden), cfg.o_bias(), init, 3),
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
        pass: Pass,
    ) -> Tensor {
        let (b, t, _) = x.size3().expect("attention input is [B, T, hidden]");
        let pass = Pass::of(pass, cache.is_some());
        let heads = |proj: &Linear, n: i64| {
            proj.forward(x, pass)
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
        self.o_proj.forward(&y, pass)
    }
}

#[derive(Debug)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn new(p: nn::Path, cfg: &ModelConfig, init: ParamInit) -> Self {
        let (hidden, inter) = (cfg.hidden_size as i64, cfg.intermediate_size as i64);
        let bias = cfg.mlp_bias;
        Self {
            gate_proj: Linear::new(&p / "gate_proj", (hidden, inter), bias, init, 4),
            up_proj: Linear::new(&p / "up_proj", (hidden, inter), bias, init, 5),
            down_proj: Linear::new(&p / "down_proj", (inter, hidden), bias, init, 6),
        }
    }

    fn forward(&self, x: &Tensor, pass: Pass) -> Tensor {
        let gated = self.gate_proj.forward(x, pass).silu() * self.up_proj.forward(x, pass);
        self.down_proj.forward(&gated, pass)
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
    fn new(p: nn::Path, cfg: &ModelConfig, init: ParamInit) -> Self {
        let (hidden, eps) = (cfg.hidden_size as i64, cfg.rms_norm_eps);
        Self {
            input_layernorm: RmsNorm::new(&p / "input_layernorm", hidden, eps),
            self_attn: Attention::new(&p / "self_attn", cfg, init),
            post_attention_layernorm: RmsNorm::new(&p / "post_attention_layernorm", hidden, eps),
            mlp: Mlp::new(&p / "mlp", cfg, init),
        }
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: (&Tensor, &Tensor),
        mask: Option<&Tensor>,
        cache: Option<(&mut KvCache, usize)>,
        pass: Pass,
    ) -> Tensor {
        let pass = Pass::of(pass, cache.is_some());
        let h =
            x + self
                .self_attn
                .forward(&self.input_layernorm.forward(x), rope, mask, cache, pass);
        &h + self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&h), pass)
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
    /// Create the parameters under HF names, drawn or left for a loader to fill ([`ParamInit`]).
    pub fn new(root: &nn::Path, cfg: &ModelConfig, init: ParamInit) -> Self {
        let (vocab, hidden) = (cfg.vocab_size as i64, cfg.hidden_size as i64);
        let model = root / "model";
        // Column-major too: with tied embeddings this is the output head, the largest read
        // of every decoding step; the lookup only gathers a few strided rows.
        let embed_tokens = column_major(&(&model / "embed_tokens"), "weight", vocab, hidden, init);
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Block::new(&model / "layers" / i, cfg, init))
            .collect();
        let norm = RmsNorm::new(&model / "norm", hidden, cfg.rms_norm_eps);
        let lm_head = (!cfg.tie_word_embeddings)
            .then(|| column_major(&(root / "lm_head"), "weight", vocab, hidden, init));
        Self {
            embed_tokens,
            layers,
            norm,
            lm_head,
            head_packed: PackedWeight::new(init.pack),
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
        let inputs = LayerInputs::new(self, ids, positions, key_mask);
        let mut x = self.embed(ids);
        for (i, layer) in self.layers.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| (c, i));
            x = layer.forward(&x, inputs.rope(), inputs.mask(), layer_cache, Pass::Infer);
        }
        if let Some(cache) = cache {
            cache.advance(ids.size()[1]);
        }
        self.norm.forward(&x)
    }

    /// [`Self::forward_hidden`] for training (no cache; gradients recorded; adapters' dropout
    /// on). With `opts.checkpoint`, the decoder layers run without recording and keep only
    /// their inputs: the returned [`Replay`] recomputes each layer in the backward pass
    /// ([`Replay::backward`], after the loss's own `backward`).
    pub fn forward_train(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        key_mask: Option<&Tensor>,
        opts: TrainPass,
    ) -> (Tensor, Option<Replay>) {
        let inputs = LayerInputs::new(self, ids, positions, key_mask);
        if !opts.checkpoint {
            let mut x = self.embed(ids);
            for (i, layer) in self.layers.iter().enumerate() {
                x = layer.forward(&x, inputs.rope(), inputs.mask(), None, opts.layer(i));
            }
            return (self.norm.forward(&x), None);
        }
        let mut saved = Vec::with_capacity(self.layers.len());
        let top = crate::grad::no_grad(|| {
            let mut x = self.embed(ids);
            for (i, layer) in self.layers.iter().enumerate() {
                let next = layer.forward(&x, inputs.rope(), inputs.mask(), None, opts.layer(i));
                saved.push(x);
                x = next;
            }
            x
        });
        let top = top.set_requires_grad(true);
        let hidden = self.norm.forward(&top);
        let replay = Replay {
            ids: ids.shallow_clone(),
            saved,
            top,
            inputs,
            opts,
        };
        (hidden, Some(replay))
    }

    fn embed(&self, ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.embed_tokens, ids, -1, false, false)
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

    /// Every linear layer of the decoder with its Hugging Face module name
    /// (`model.layers.0.self_attn.q_proj`) and its short name (`q_proj`), to attach, fill or
    /// merge adapters.
    pub fn linears_mut(&mut self) -> Vec<(String, &'static str, &mut Linear)> {
        let mut out = Vec::new();
        for (i, block) in self.layers.iter_mut().enumerate() {
            let (a, m) = (&mut block.self_attn, &mut block.mlp);
            let attn = [
                ("q_proj", &mut a.q_proj),
                ("k_proj", &mut a.k_proj),
                ("v_proj", &mut a.v_proj),
                ("o_proj", &mut a.o_proj),
            ];
            let mlp = [
                ("gate_proj", &mut m.gate_proj),
                ("up_proj", &mut m.up_proj),
                ("down_proj", &mut m.down_proj),
            ];
            for (short, l) in attn {
                out.push((format!("model.layers.{i}.self_attn.{short}"), short, l));
            }
            for (short, l) in mlp {
                out.push((format!("model.layers.{i}.mlp.{short}"), short, l));
            }
        }
        out
    }
}

/// How a training forward runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrainPass {
    /// Keep only each decoder layer's input and recompute the layer in the backward pass.
    pub checkpoint: bool,
    /// Adapters' dropout masks are a function of this seed, the layer and the module (no
    /// global generator): a recomputed layer draws the masks of its first pass, a resumed run
    /// those an uninterrupted one would. `None`: no dropout.
    pub dropout_seed: Option<i64>,
}

impl TrainPass {
    fn layer(&self, layer: usize) -> Pass {
        Pass::Train {
            dropout_seed: self.dropout_seed.map(|s| super::lora::mix(s, layer as i64)),
        }
    }
}

/// What every decoder layer of one forward shares: RoPE's cos/sin and the attention mask.
struct LayerInputs {
    cos: Tensor,
    sin: Tensor,
    mask: Option<Tensor>,
}

impl LayerInputs {
    fn new(net: &Llama, ids: &Tensor, positions: &Tensor, key_mask: Option<&Tensor>) -> Self {
        let (cos, sin) = net.rope.cos_sin(positions, net.embed_tokens.kind());
        let mask = key_mask.map(|m| attention_mask(m, ids.size()[1]));
        Self { cos, sin, mask }
    }

    fn rope(&self) -> (&Tensor, &Tensor) {
        (&self.cos, &self.sin)
    }

    fn mask(&self) -> Option<&Tensor> {
        self.mask.as_ref()
    }
}

/// A checkpointed forward's layer inputs, to recompute the layers in the backward pass
/// (what `torch.utils.checkpoint` does per decoder layer in transformers).
pub struct Replay {
    ids: Tensor,
    /// The input of each decoder layer, recorded without gradient.
    saved: Vec<Tensor>,
    /// The last layer's output as a leaf: the loss's backward leaves its gradient here.
    top: Tensor,
    inputs: LayerInputs,
    opts: TrainPass,
}

impl Replay {
    /// Carry the gradient that the loss's backward left on the top of the stack down
    /// through every layer, last to first: each is recomputed from its saved input with
    /// gradients on, and `Σ output · grad` is differentiated, which accumulates the layer's
    /// parameter gradients and yields the gradient of its input.
    pub fn backward(self, net: &Llama) {
        let mut grad = self.top.grad();
        if !grad.defined() {
            return; // the loss did not depend on the hidden states
        }
        for (i, (layer, input)) in net.layers.iter().zip(&self.saved).enumerate().rev() {
            let x = input.detach().set_requires_grad(true);
            let y = layer.forward(
                &x,
                self.inputs.rope(),
                self.inputs.mask(),
                None,
                self.opts.layer(i),
            );
            (y * &grad).sum(Kind::Float).backward();
            grad = x.grad();
        }
        if net.embed_tokens.requires_grad() {
            (net.embed(&self.ids) * &grad).sum(Kind::Float).backward();
        }
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
