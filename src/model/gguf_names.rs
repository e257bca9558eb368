//! What a GGUF file calls things: llama.cpp's tensor names for our (Hugging Face) parameter
//! names, both ways, shared by [`super::from_gguf`] and [`super::to_gguf`]; and the one
//! metadata key of rlmec's own.

/// Where rlmec keeps the Hugging Face `rope_scaling` (JSON) of a model whose RoPE scaling
/// llama.cpp stores only as computed factors (`llama3`: the `rope_freqs.weight` tensor), so
/// that reading the file back gives the same config. llama.cpp ignores keys it does not know.
pub const ROPE_SCALING_KEY: &str = "rlmec.rope_scaling";

/// Parameters outside the layers: (GGUF name, Hugging Face name).
const GLOBAL: [(&str, &str); 3] = [
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// The parts of layer N: (GGUF `blk.N.` part, Hugging Face `model.layers.N.` part).
const LAYER_PARTS: [(&str, &str); 9] = [
    ("attn_norm", "input_layernorm"),
    ("ffn_norm", "post_attention_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

/// The Hugging Face name of a GGUF tensor (`blk.3.attn_q.weight` →
/// `model.layers.3.self_attn.q_proj.weight`); `None` for tensors rlmec has no parameter for.
pub fn hf_name(gguf: &str) -> Option<String> {
    translate(gguf, "blk.", "model.layers.", |(g, h)| (g, h))
}

/// The GGUF name of a Hugging Face parameter (`model.layers.3.mlp.up_proj.bias` →
/// `blk.3.ffn_up.bias`); `None` for names llama.cpp has no tensor for.
pub fn gguf_name(hf: &str) -> Option<String> {
    translate(hf, "model.layers.", "blk.", |(g, h)| (h, g))
}

/// `name` in the other naming, given which side of the tables it is on (`side` picks
/// (from, to) from a (GGUF, HF) pair) and the layer prefixes (from, to).
fn translate(
    name: &str,
    layer_from: &str,
    layer_to: &str,
    side: impl Fn((&'static str, &'static str)) -> (&'static str, &'static str),
) -> Option<String> {
    if let Some((_, to)) = GLOBAL
        .iter()
        .map(|&pair| side(pair))
        .find(|(f, _)| *f == name)
    {
        return Some(to.to_owned());
    }
    let rest = name.strip_prefix(layer_from)?;
    let (layer, rest) = rest.split_once('.')?;
    layer.parse::<usize>().ok()?;
    let (part, param) = rest.rsplit_once('.')?;
    let (_, to) = LAYER_PARTS
        .iter()
        .map(|&pair| side(pair))
        .find(|(f, _)| *f == part)?;
    Some(format!("{layer_to}{layer}.{to}.{param}"))
}

#[cfg(test)]
mod tests {
    use super::{GLOBAL, LAYER_PARTS, gguf_name, hf_name};

    #[test]
    fn maps_gguf_names_to_hf_names() {
        assert_eq!(
            hf_name("token_embd.weight").unwrap(),
            "model.embed_tokens.weight"
        );
        assert_eq!(
            hf_name("blk.12.attn_q.bias").unwrap(),
            "model.layers.12.self_attn.q_proj.bias"
        );
        assert_eq!(
            hf_name("blk.0.ffn_down.weight").unwrap(),
            "model.layers.0.mlp.down_proj.weight"
        );
        assert_eq!(hf_name("rope_freqs.weight"), None);
        assert_eq!(hf_name("blk.x.attn_q.weight"), None);
    }

    #[test]
    fn gguf_names_are_the_inverse() {
        assert_eq!(
            gguf_name("model.layers.3.post_attention_layernorm.weight").unwrap(),
            "blk.3.ffn_norm.weight"
        );
        assert_eq!(gguf_name("lm_head.weight").unwrap(), "output.weight");
        assert_eq!(gguf_name("model.layers.0.self_attn.rotary.weight"), None);
        let layer = LAYER_PARTS
            .iter()
            .flat_map(|(g, _)| ["weight", "bias"].map(|p| format!("blk.17.{g}.{p}")));
        for gguf in GLOBAL.iter().map(|(g, _)| g.to_string()).chain(layer) {
            let hf = hf_name(&gguf).unwrap();
            assert_eq!(gguf_name(&hf).as_deref(), Some(gguf.as_str()), "{hf}");
        }
    }
}
