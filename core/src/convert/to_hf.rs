//! GGUF → Hugging Face folder: dequantized F32 safetensors under the HF tensor names,
//! config.json, tokenizer.json, tokenizer_config.json (with the chat template) and
//! generation_config.json, for the families the candle backend runs.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value as GgufValue};
use candle_core::{Device, Tensor};
use serde_json::{json, Value};

use super::family::{hf_name, Family};
use super::{candle_err, check_destination, read_gguf, vocab, write_json};
use crate::{Error, ErrorKind, Result};

/// Metadata lookups under the architecture's prefix, with errors naming the file and key.
struct Meta<'a> {
    content: &'a Content,
    arch: &'a str,
    src: &'a Path,
}

impl Meta<'_> {
    fn get(&self, key: &str) -> Option<&GgufValue> {
        self.content.metadata.get(key)
    }
    fn u32(&self, key: &str) -> Result<u32> {
        let full = format!("{}.{key}", self.arch);
        self.get(&full)
            .and_then(|v| v.to_u32().ok())
            .ok_or_else(|| {
                Error::invalid_model(format!("{}: {full} is missing", self.src.display()))
            })
    }
    fn f32_or(&self, key: &str, default: f32) -> f32 {
        self.get(&format!("{}.{key}", self.arch))
            .and_then(|v| v.to_f32().ok())
            .unwrap_or(default)
    }
    fn id(&self, key: &str) -> Option<u32> {
        self.get(key).and_then(|v| v.to_u32().ok())
    }
    fn token_text(&self, key: &str) -> Option<String> {
        let id = self.id(key)? as usize;
        match self.get("tokenizer.ggml.tokens")? {
            GgufValue::Array(a) => a.get(id)?.to_string().ok().cloned(),
            _ => None,
        }
    }
    fn n_vocab(&self) -> Result<usize> {
        match self.get("tokenizer.ggml.tokens") {
            Some(GgufValue::Array(a)) => Ok(a.len()),
            _ => Err(Error::invalid_model(format!(
                "{}: no tokenizer.ggml.tokens",
                self.src.display()
            ))),
        }
    }
}

/// Write the GGUF `src` (llama or gemma3 architecture, any ggml type) as a Hugging Face folder
/// `dst` holding F32 weights, so the candle backend runs the same numbers llama.cpp does.
pub fn gguf_to_hf(src: &Path, dst: &Path) -> Result<()> {
    check_destination(dst)?;
    let (content, mut reader) = read_gguf(src)?;
    let arch = super::gguf_architecture(&content);
    let Some(family) = Family::of_gguf(&arch) else {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "converting a '{arch}' GGUF to a Hugging Face folder is not supported yet; uml \
                 converts the llama architecture (Llama, SmolLM2, TinyLlama, Mistral v0.1) and \
                 gemma3"
            ),
        ));
    };
    let meta = Meta {
        content: &content,
        arch: &arch,
        src,
    };
    let n_embd = meta.u32("embedding_length")?;
    let n_head = meta.u32("attention.head_count")?;
    let n_head_kv = meta.u32("attention.head_count_kv").unwrap_or(n_head);
    let head_dim = meta.u32("attention.key_length").unwrap_or(n_embd / n_head);
    if let Ok(rot) = meta.u32("rope.dimension_count") {
        if rot != head_dim {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{}: partial rotary embeddings ({rot} of {head_dim}) are not supported",
                    src.display()
                ),
            ));
        }
    }
    // Build the tokenizer first: it is the part most likely to be refused, and nothing should
    // be written for a model that cannot be converted.
    let tokenizer = vocab::tokenizer_json(&content, src)?;

    std::fs::create_dir_all(dst).map_err(|e| Error::io(dst, e))?;
    let mut weights: HashMap<String, Tensor> = HashMap::new();
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let Some(hf) = hf_name(family, name) else {
            // rope_freqs and similar derived tables are recomputed by every runtime.
            continue;
        };
        let q = content
            .tensor(&mut reader, name, &Device::Cpu)
            .map_err(candle_err(&format!("tensor {name} of"), src))?;
        let mut t = q
            .dequantize(&Device::Cpu)
            .map_err(candle_err("cannot dequantize", src))?;
        match family {
            Family::Llama => {
                let heads = if name.ends_with("attn_q.weight") {
                    Some(n_head)
                } else if name.ends_with("attn_k.weight") {
                    Some(n_head_kv)
                } else {
                    None
                };
                if let Some(h) = heads {
                    t = unpermute_rotary(&t, h as usize)
                        .map_err(candle_err("cannot reorder", src))?;
                }
            }
            Family::Gemma3 => {
                // llama.cpp's converter adds Gemma's `1 +` into every RMSNorm weight; HF keeps
                // it in the model code.
                if name.ends_with("norm.weight") {
                    t = (t - 1.0).map_err(candle_err("cannot shift the norms of", src))?;
                }
            }
        }
        weights.insert(hf, t);
    }
    let tied = !weights.contains_key("lm_head.weight");
    let st = dst.join("model.safetensors");
    candle_core::safetensors::save(&weights, &st)
        .map_err(|e| Error::new(ErrorKind::Io, format!("writing {}: {e}", st.display())))?;

    let config = match family {
        Family::Llama => llama_config(&meta, tied)?,
        Family::Gemma3 => gemma3_config(&meta, head_dim)?,
    };
    let tok_path = dst.join("tokenizer.json");
    write_json(&tok_path, &tokenizer)?;
    let add_bos = meta
        .get("tokenizer.ggml.add_bos_token")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(false);
    let n_ctx = meta.u32("context_length").unwrap_or(4096);
    let tokenizer_config = json!({
        "bos_token": meta.token_text("tokenizer.ggml.bos_token_id"),
        "eos_token": meta.token_text("tokenizer.ggml.eos_token_id"),
        "add_bos_token": add_bos,
        "add_eos_token": false,
        "model_max_length": n_ctx,
        "chat_template": meta.get("tokenizer.chat_template").and_then(|v| v.to_string().ok()),
    });
    let generation_config = json!({
        "bos_token_id": meta.id("tokenizer.ggml.bos_token_id"),
        "eos_token_id": meta.id("tokenizer.ggml.eos_token_id"),
    });
    write_json(&dst.join("config.json"), &config)?;
    write_json(&dst.join("tokenizer_config.json"), &tokenizer_config)?;
    write_json(&dst.join("generation_config.json"), &generation_config)?;
    Ok(())
}

fn llama_config(meta: &Meta, tied: bool) -> Result<Value> {
    let n_head = meta.u32("attention.head_count")?;
    Ok(json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": meta.u32("embedding_length")?,
        "intermediate_size": meta.u32("feed_forward_length")?,
        "num_hidden_layers": meta.u32("block_count")?,
        "num_attention_heads": n_head,
        "num_key_value_heads": meta.u32("attention.head_count_kv").unwrap_or(n_head),
        "max_position_embeddings": meta.u32("context_length").unwrap_or(4096),
        "rms_norm_eps": meta.f32_or("attention.layer_norm_rms_epsilon", 1e-5),
        "rope_theta": meta.f32_or("rope.freq_base", 10_000.0),
        "vocab_size": meta.n_vocab()?,
        "bos_token_id": meta.id("tokenizer.ggml.bos_token_id"),
        "eos_token_id": meta.id("tokenizer.ggml.eos_token_id"),
        "tie_word_embeddings": tied,
        "hidden_act": "silu",
        "torch_dtype": "float32",
    }))
}

/// Gemma 3's text config. llama.cpp hard-codes what its GGUF does not carry: local layers use
/// rope base 10 000, one layer in six is global, and the FFN uses tanh-approximated GELU.
fn gemma3_config(meta: &Meta, head_dim: u32) -> Result<Value> {
    let n_head = meta.u32("attention.head_count")?;
    if meta
        .get("gemma3.rope.scaling.type")
        .and_then(|v| v.to_string().ok())
        .is_some_and(|t| t != "none")
    {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{}: Gemma 3 with rope scaling (the 4B and larger models) is not converted yet; \
                 the 270M and 1B models are",
                meta.src.display()
            ),
        ));
    }
    Ok(json!({
        "architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text",
        "hidden_size": meta.u32("embedding_length")?,
        "intermediate_size": meta.u32("feed_forward_length")?,
        "num_hidden_layers": meta.u32("block_count")?,
        "num_attention_heads": n_head,
        "num_key_value_heads": meta.u32("attention.head_count_kv").unwrap_or(n_head),
        "head_dim": head_dim,
        "query_pre_attn_scalar": head_dim,
        "hidden_activation": "gelu_pytorch_tanh",
        "max_position_embeddings": meta.u32("context_length").unwrap_or(32768),
        "rms_norm_eps": meta.f32_or("attention.layer_norm_rms_epsilon", 1e-6),
        "rope_theta": meta.f32_or("rope.freq_base", 1_000_000.0),
        "rope_local_base_freq": 10_000.0,
        "sliding_window": meta.u32("attention.sliding_window").unwrap_or(512),
        "sliding_window_pattern": 6,
        "attention_bias": false,
        "final_logit_softcapping": meta.get("gemma3.final_logit_softcapping").and_then(|v| v.to_f32().ok()),
        "attn_logit_softcapping": meta.get("gemma3.attn_logit_softcapping").and_then(|v| v.to_f32().ok()),
        "vocab_size": meta.n_vocab()?,
        "bos_token_id": meta.id("tokenizer.ggml.bos_token_id"),
        "eos_token_id": meta.id("tokenizer.ggml.eos_token_id"),
        "pad_token_id": meta.id("tokenizer.ggml.padding_token_id"),
        "tie_word_embeddings": true,
        "torch_dtype": "float32",
    }))
}

/// llama.cpp's converter interleaves the two rotary halves of each head's Q and K rows
/// (`permute` in convert_hf_to_gguf.py: row `h*hd + 2b + a` holds HF row `h*hd + a*hd/2 + b`);
/// this restores HF's layout.
pub(super) fn unpermute_rotary(t: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let (n_out, n_in) = t.dims2()?;
    let hd = n_out / n_head;
    // (head, b, a, in) -> (head, a, b, in)
    t.reshape((n_head, hd / 2, 2, n_in))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((n_out, n_in))
}
