//! Converting models between the two engines' formats: a GGUF (any ggml type, dequantized by
//! candle's reference kernels) to a Hugging Face folder that the candle backend runs, and a
//! GGUF to a GGUF of another type (F32, F16, Q8_0) that llama.cpp runs. Together they give both
//! backends the very same weights, which is how their outputs are compared.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value as GgufValue};
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use serde_json::json;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;

use crate::{Error, ErrorKind, Result};

/// Element types `gguf_to_gguf` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufType {
    F32,
    F16,
    Q8_0,
}

impl GgufType {
    /// Parse "f32", "f16" or "q8_0".
    pub fn parse(s: &str) -> Result<GgufType> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(GgufType::F32),
            "f16" => Ok(GgufType::F16),
            "q8_0" => Ok(GgufType::Q8_0),
            other => Err(Error::invalid_argument(format!(
                "GGUF type '{other}' is not one uml writes; use f32, f16 or q8_0"
            ))),
        }
    }

    fn ggml(self) -> GgmlDType {
        match self {
            GgufType::F32 => GgmlDType::F32,
            GgufType::F16 => GgmlDType::F16,
            GgufType::Q8_0 => GgmlDType::Q8_0,
        }
    }
}

fn candle_err<'p>(what: &str, path: &'p Path) -> impl Fn(candle_core::Error) -> Error + 'p {
    let what = what.to_string();
    move |e| Error::invalid_model(format!("{what} {}: {e}", path.display()))
}

fn read_gguf(path: &Path) -> Result<(gguf_file::Content, BufReader<File>)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::new(file);
    let content = gguf_file::Content::read(&mut reader).map_err(candle_err("cannot read", path))?;
    Ok((content, reader))
}

/// Refuse to write into a folder or file that already holds something: conversion never
/// overwrites a user's files.
fn check_destination(dst: &Path) -> Result<()> {
    let occupied = if dst.is_dir() {
        std::fs::read_dir(dst)
            .map_err(|e| Error::io(dst, e))?
            .next()
            .is_some()
    } else {
        dst.exists()
    };
    if occupied {
        return Err(Error::invalid_argument(format!(
            "{} already exists; choose a new destination (uml does not overwrite files)",
            dst.display()
        )));
    }
    Ok(())
}

/// Write `src` as a GGUF whose tensors are all of type `to` (1-D tensors such as norms stay
/// F32, as llama.cpp's own quantizer keeps them), with every metadata key copied.
pub fn gguf_to_gguf(src: &Path, dst: &Path, to: GgufType) -> Result<()> {
    check_destination(dst)?;
    let (content, mut reader) = read_gguf(src)?;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let q = content
            .tensor(&mut reader, name, &Device::Cpu)
            .map_err(candle_err(&format!("tensor {name} of"), src))?;
        let f = q
            .dequantize(&Device::Cpu)
            .map_err(candle_err("cannot dequantize", src))?;
        let target = if f.dims().len() < 2 {
            GgmlDType::F32
        } else {
            to.ggml()
        };
        let out = QTensor::quantize(&f, target).map_err(|e| {
            Error::invalid_argument(format!("tensor {name} cannot be stored as {target:?}: {e}"))
        })?;
        tensors.push((name.clone(), out));
    }
    let mut metadata: Vec<(&str, &GgufValue)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    metadata.sort_by_key(|(k, _)| *k);
    let file_type = GgufValue::U32(match to {
        GgufType::F32 => 0,
        GgufType::F16 => 1,
        GgufType::Q8_0 => 7,
    });
    metadata.retain(|(k, _)| *k != "general.file_type");
    metadata.push(("general.file_type", &file_type));
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let partial = dst.with_extension("gguf.part");
    let mut out = File::create(&partial).map_err(|e| Error::io(&partial, e))?;
    gguf_file::write(&mut out, &metadata, &refs)
        .map_err(|e| Error::new(ErrorKind::Io, format!("writing {}: {e}", partial.display())))?;
    drop(out);
    std::fs::rename(&partial, dst).map_err(|e| Error::io(dst, e))
}

/// Write the llama-architecture GGUF `src` as a Hugging Face folder `dst`: F32 safetensors
/// under the HF tensor names (Q/K rows in HF's rotary layout), config.json, tokenizer.json
/// (byte-level BPE vocabularies), tokenizer_config.json with the chat template, and
/// generation_config.json.
pub fn gguf_to_hf(src: &Path, dst: &Path) -> Result<()> {
    check_destination(dst)?;
    let (content, mut reader) = read_gguf(src)?;
    let md = &content.metadata;
    let arch = md
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_default();
    if arch != "llama" {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "converting a '{arch}' GGUF to a Hugging Face folder is not supported yet; uml \
                 converts llama-architecture models (Llama, SmolLM2, TinyLlama, Mistral v0.1)"
            ),
        ));
    }
    let get_u32 = |key: &str| -> Result<u32> {
        md.get(&format!("llama.{key}"))
            .and_then(|v| v.to_u32().ok())
            .ok_or_else(|| {
                Error::invalid_model(format!("{}: llama.{key} is missing", src.display()))
            })
    };
    let get_f32 = |key: &str, default: f32| -> f32 {
        md.get(&format!("llama.{key}"))
            .and_then(|v| v.to_f32().ok())
            .unwrap_or(default)
    };
    let n_embd = get_u32("embedding_length")?;
    let n_head = get_u32("attention.head_count")?;
    let n_head_kv = get_u32("attention.head_count_kv").unwrap_or(n_head);
    let n_layer = get_u32("block_count")?;
    let tokens = match md.get("tokenizer.ggml.tokens") {
        Some(GgufValue::Array(a)) => a.len(),
        _ => {
            return Err(Error::invalid_model(format!(
                "{}: no tokenizer.ggml.tokens",
                src.display()
            )))
        }
    };
    if let Ok(rot) = get_u32("rope.dimension_count") {
        if rot != n_embd / n_head {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{}: partial rotary embeddings ({rot} of {}) are not supported",
                    src.display(),
                    n_embd / n_head
                ),
            ));
        }
    }

    std::fs::create_dir_all(dst).map_err(|e| Error::io(dst, e))?;
    let mut weights: HashMap<String, Tensor> = HashMap::new();
    let mut tied = true;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let Some(hf) = hf_name(name) else {
            // rope_freqs and similar derived tables are recomputed by every runtime.
            continue;
        };
        if hf == "lm_head.weight" {
            tied = false;
        }
        let q = content
            .tensor(&mut reader, name, &Device::Cpu)
            .map_err(candle_err(&format!("tensor {name} of"), src))?;
        let mut t = q
            .dequantize(&Device::Cpu)
            .map_err(candle_err("cannot dequantize", src))?;
        let heads = if name.ends_with("attn_q.weight") {
            Some(n_head)
        } else if name.ends_with("attn_k.weight") {
            Some(n_head_kv)
        } else {
            None
        };
        if let Some(h) = heads {
            t = unpermute_rotary(&t, h as usize).map_err(candle_err("cannot reorder", src))?;
        }
        weights.insert(hf, t);
    }
    let st = dst.join("model.safetensors");
    candle_core::safetensors::save(&weights, &st)
        .map_err(|e| Error::new(ErrorKind::Io, format!("writing {}: {e}", st.display())))?;

    let token_text = |key: &str| -> Option<String> {
        let id = md.get(key)?.to_u32().ok()? as usize;
        match md.get("tokenizer.ggml.tokens")? {
            GgufValue::Array(a) => a.get(id)?.to_string().ok().cloned(),
            _ => None,
        }
    };
    let id = |key: &str| md.get(key).and_then(|v| v.to_u32().ok());
    let config = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": n_embd,
        "intermediate_size": get_u32("feed_forward_length")?,
        "num_hidden_layers": n_layer,
        "num_attention_heads": n_head,
        "num_key_value_heads": n_head_kv,
        "max_position_embeddings": get_u32("context_length").unwrap_or(4096),
        "rms_norm_eps": get_f32("attention.layer_norm_rms_epsilon", 1e-5),
        "rope_theta": get_f32("rope.freq_base", 10_000.0),
        "vocab_size": tokens,
        "bos_token_id": id("tokenizer.ggml.bos_token_id"),
        "eos_token_id": id("tokenizer.ggml.eos_token_id"),
        "tie_word_embeddings": tied,
        "hidden_act": "silu",
        "torch_dtype": "float32",
    });
    let tokenizer = tokenizers::Tokenizer::from_gguf(&content).map_err(|e| {
        Error::new(
            ErrorKind::Unsupported,
            format!(
                "{}: its vocabulary cannot be written as tokenizer.json ({e}); byte-level BPE \
                 (gpt2-style) vocabularies are supported",
                src.display()
            ),
        )
    })?;
    let mut tokenizer = tokenizer;
    // candle's GGUF reader knows a few pre-tokenizers and otherwise adds GPT-2's prefix space,
    // which llama.cpp never does. Match llama.cpp's splitting for the common families.
    let pre = md
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .map(String::as_str)
        .unwrap_or("default");
    let byte_level = ByteLevel::new(false, true, true);
    match pre {
        "qwen2" | "llama3" | "smaug-bpe" | "lfm2" => {}
        // SmolLM / StarCoder: every digit alone, then GPT-2's split.
        "smollm" | "starcoder" | "refact" => {
            tokenizer.with_pre_tokenizer(Some(PreSequence::new(vec![
                Digits::new(true).into(),
                byte_level.into(),
            ])));
        }
        _ => {
            tokenizer.with_pre_tokenizer(Some(byte_level));
        }
    }
    let tok_path = dst.join("tokenizer.json");
    tokenizer.save(&tok_path, true).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("writing {}: {e}", tok_path.display()),
        )
    })?;
    let add_bos = md
        .get("tokenizer.ggml.add_bos_token")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(false);
    let tokenizer_config = json!({
        "bos_token": token_text("tokenizer.ggml.bos_token_id"),
        "eos_token": token_text("tokenizer.ggml.eos_token_id"),
        "add_bos_token": add_bos,
        "add_eos_token": false,
        "model_max_length": get_u32("context_length").unwrap_or(4096),
        "chat_template": md.get("tokenizer.chat_template").and_then(|v| v.to_string().ok()),
    });
    let generation_config = json!({
        "bos_token_id": id("tokenizer.ggml.bos_token_id"),
        "eos_token_id": id("tokenizer.ggml.eos_token_id"),
    });
    for (name, value) in [
        ("config.json", &config),
        ("tokenizer_config.json", &tokenizer_config),
        ("generation_config.json", &generation_config),
    ] {
        let p = dst.join(name);
        let text = serde_json::to_string_pretty(value)?;
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
    }
    Ok(())
}

/// The Hugging Face name of a llama GGUF tensor.
fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let hf = match part {
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        "attn_norm.weight" => "input_layernorm.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}"))
}

/// llama.cpp's converter interleaves the two rotary halves of each head's Q and K rows
/// (`permute` in convert_hf_to_gguf.py: row `h*hd + 2b + a` holds HF row `h*hd + a*hd/2 + b`);
/// this restores HF's layout.
fn unpermute_rotary(t: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let (n_out, n_in) = t.dims2()?;
    let hd = n_out / n_head;
    // (head, b, a, in) -> (head, a, b, in)
    t.reshape((n_head, hd / 2, 2, n_in))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((n_out, n_in))
}
