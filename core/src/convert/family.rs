//! The model families uml converts in both directions, and how their tensors are named in
//! GGUF and in Hugging Face folders.

/// A family of causal LMs whose GGUF and HF layouts differ only in the ways listed here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// Llama, SmolLM2, TinyLlama, Mistral v0.1: Q/K rows interleaved by llama.cpp's converter.
    Llama,
    /// Gemma 3 text models: norm weights stored with HF's `1 +` already added.
    Gemma3,
}

impl Family {
    pub(super) fn of_gguf(arch: &str) -> Option<Family> {
        match arch {
            "llama" => Some(Family::Llama),
            "gemma3" => Some(Family::Gemma3),
            _ => None,
        }
    }

    /// From config.json's `architectures` entry.
    pub(super) fn of_hf(architecture: &str) -> Option<Family> {
        match architecture {
            "LlamaForCausalLM" | "MistralForCausalLM" => Some(Family::Llama),
            "Gemma3ForCausalLM" => Some(Family::Gemma3),
            _ => None,
        }
    }

    pub(super) fn gguf_arch(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::Gemma3 => "gemma3",
        }
    }
}

const TOP_LEVEL: &[(&str, &str)] = &[
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// Per-layer names: (GGUF suffix after `blk.N.`, HF suffix after `model.layers.N.`).
fn layer_table(family: Family) -> &'static [(&'static str, &'static str)] {
    match family {
        Family::Llama => &[
            ("attn_q.weight", "self_attn.q_proj.weight"),
            ("attn_k.weight", "self_attn.k_proj.weight"),
            ("attn_v.weight", "self_attn.v_proj.weight"),
            ("attn_output.weight", "self_attn.o_proj.weight"),
            ("ffn_gate.weight", "mlp.gate_proj.weight"),
            ("ffn_up.weight", "mlp.up_proj.weight"),
            ("ffn_down.weight", "mlp.down_proj.weight"),
            ("attn_norm.weight", "input_layernorm.weight"),
            ("ffn_norm.weight", "post_attention_layernorm.weight"),
        ],
        Family::Gemma3 => &[
            ("attn_q.weight", "self_attn.q_proj.weight"),
            ("attn_k.weight", "self_attn.k_proj.weight"),
            ("attn_v.weight", "self_attn.v_proj.weight"),
            ("attn_output.weight", "self_attn.o_proj.weight"),
            ("attn_q_norm.weight", "self_attn.q_norm.weight"),
            ("attn_k_norm.weight", "self_attn.k_norm.weight"),
            ("ffn_gate.weight", "mlp.gate_proj.weight"),
            ("ffn_up.weight", "mlp.up_proj.weight"),
            ("ffn_down.weight", "mlp.down_proj.weight"),
            ("attn_norm.weight", "input_layernorm.weight"),
            (
                "post_attention_norm.weight",
                "post_attention_layernorm.weight",
            ),
            ("ffn_norm.weight", "pre_feedforward_layernorm.weight"),
            ("post_ffw_norm.weight", "post_feedforward_layernorm.weight"),
        ],
    }
}

/// The Hugging Face name of a GGUF tensor, or None for tables runtimes derive themselves
/// (rope_freqs and the like).
pub(super) fn hf_name(family: Family, gguf: &str) -> Option<String> {
    if let Some((_, hf)) = TOP_LEVEL.iter().find(|(g, _)| *g == gguf) {
        return Some(hf.to_string());
    }
    let (layer, part) = gguf.strip_prefix("blk.")?.split_once('.')?;
    let (_, hf) = layer_table(family).iter().find(|(g, _)| *g == part)?;
    Some(format!("model.layers.{layer}.{hf}"))
}

/// The GGUF name of a Hugging Face tensor, or None for one llama.cpp does not use (rotary
/// tables some checkpoints carry).
pub(super) fn gguf_name(family: Family, hf: &str) -> Option<String> {
    if let Some((g, _)) = TOP_LEVEL.iter().find(|(_, h)| *h == hf) {
        return Some(g.to_string());
    }
    let (layer, part) = hf.strip_prefix("model.layers.")?.split_once('.')?;
    layer.parse::<u32>().ok()?;
    let (g, _) = layer_table(family).iter().find(|(_, h)| *h == part)?;
    Some(format!("blk.{layer}.{g}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_both_ways() {
        for family in [Family::Llama, Family::Gemma3] {
            for gguf in [
                "token_embd.weight",
                "output.weight",
                "blk.3.attn_q.weight",
                "blk.17.ffn_norm.weight",
            ] {
                let hf = hf_name(family, gguf).unwrap();
                assert_eq!(
                    gguf_name(family, &hf).as_deref(),
                    Some(gguf),
                    "{family:?} {hf}"
                );
            }
        }
        assert_eq!(
            hf_name(Family::Gemma3, "blk.0.ffn_norm.weight").as_deref(),
            Some("model.layers.0.pre_feedforward_layernorm.weight")
        );
        assert_eq!(
            hf_name(Family::Llama, "blk.0.ffn_norm.weight").as_deref(),
            Some("model.layers.0.post_attention_layernorm.weight")
        );
        assert_eq!(hf_name(Family::Llama, "rope_freqs.weight"), None);
        assert_eq!(
            gguf_name(
                Family::Llama,
                "model.layers.0.self_attn.rotary_emb.inv_freq"
            ),
            None
        );
    }
}
