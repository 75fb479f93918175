//! Hugging Face folder → GGUF (F32, F16 or Q8_0) with the metadata llama.cpp needs: the
//! architecture's hyperparameters, the vocabulary with its types, scores or merges and
//! pre-tokenizer, the special tokens and the chat template.

use std::path::Path;

use candle_core::quantized::gguf_file::Value as GgufValue;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Tensor};
use serde_json::Value;

use super::family::{gguf_name, Family};
use super::{check_destination, vocab, GgufType};
use crate::hf_folder::{read_config, weight_files, TensorSource};
use crate::{Error, ErrorKind, Result};

/// Write the Hugging Face folder `src` (Llama/Mistral or Gemma 3; safetensors or a PyTorch
/// checkpoint, any float dtype) as a GGUF whose 2-D tensors are of type `to`; 1-D tensors
/// (norms) stay F32 as llama.cpp's quantizer keeps them.
pub fn hf_to_gguf(src: &Path, dst: &Path, to: GgufType) -> Result<()> {
    check_destination(dst)?;
    let dir = crate::format::model_dir(src);
    let config = read_config(&dir)?;
    let architecture = config
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(Value::as_str)
        .unwrap_or("(undeclared)");
    let Some(family) = Family::of_hf(architecture) else {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "converting the {architecture} architecture of {} to GGUF is not supported yet; \
                 uml converts LlamaForCausalLM, MistralForCausalLM and Gemma3ForCausalLM",
                dir.display()
            ),
        ));
    };
    let hp = Hyper::read(&config, &dir)?;
    let files = weight_files(&dir)?;
    let source = TensorSource::open(&files)?;

    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mut n_rows = None;
    for name in source.names() {
        let Some(gguf) = gguf_name(family, &name) else {
            if name.ends_with("rotary_emb.inv_freq") {
                continue; // derived from rope_theta by every runtime
            }
            return Err(Error::invalid_model(format!(
                "{}: tensor {name} is not part of a {architecture}; the weights may belong to \
                 another model than config.json describes",
                dir.display()
            )));
        };
        let mut t = source
            .get(&name)?
            .to_dtype(DType::F32)
            .map_err(|e| Error::invalid_model(format!("tensor {name}: {e}")))?;
        let dims = t.dims().to_vec();
        let shape_err = |e: candle_core::Error| {
            Error::invalid_model(format!(
                "{}: tensor {name} has shape {dims:?}, which does not fit config.json ({e})",
                dir.display()
            ))
        };
        match family {
            Family::Llama if gguf.ends_with("attn_q.weight") => {
                t = permute_rotary(&t, hp.n_head).map_err(shape_err)?;
            }
            Family::Llama if gguf.ends_with("attn_k.weight") => {
                t = permute_rotary(&t, hp.n_head_kv).map_err(shape_err)?;
            }
            // llama.cpp's Gemma graph multiplies by the norm weight itself: fold HF's `1 +` in.
            Family::Gemma3 if gguf.ends_with("norm.weight") => {
                t = (t + 1.0).map_err(shape_err)?;
            }
            _ => {}
        }
        if gguf == "token_embd.weight" {
            n_rows = Some(t.dims()[0]);
        }
        let target = if t.dims().len() < 2 {
            GgmlDType::F32
        } else {
            to.ggml()
        };
        let q = QTensor::quantize(&t, target).map_err(|e| {
            Error::invalid_argument(format!("tensor {name} cannot be stored as {target:?}: {e}"))
        })?;
        tensors.push((gguf, q));
    }
    let n_rows = n_rows.ok_or_else(|| {
        Error::invalid_model(format!(
            "{}: no model.embed_tokens.weight among the weights",
            dir.display()
        ))
    })?;

    let mut metadata: Vec<(String, GgufValue)> = vec![
        (
            "general.architecture".into(),
            GgufValue::String(family.gguf_arch().into()),
        ),
        ("general.name".into(), GgufValue::String(model_name(&dir))),
        ("general.file_type".into(), GgufValue::U32(to.file_type())),
        ("general.quantization_version".into(), GgufValue::U32(2)),
    ];
    metadata.extend(hp.metadata(family, &config, &dir)?);
    metadata.extend(vocab::gguf_vocab(&dir, &config, n_rows)?);

    let md_refs: Vec<(&str, &GgufValue)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    super::write_gguf(dst, &md_refs, &tensors)
}

fn model_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

/// The hyperparameters llama.cpp reads, from config.json.
pub(super) struct Hyper {
    n_embd: u32,
    pub(super) n_head: usize,
    pub(super) n_head_kv: usize,
    head_dim: u32,
}

fn cfg_u32(config: &Value, key: &str) -> Option<u32> {
    config
        .get(key)
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
}

fn cfg_f32(config: &Value, key: &str) -> Option<f32> {
    config.get(key).and_then(Value::as_f64).map(|v| v as f32)
}

impl Hyper {
    pub(super) fn read(config: &Value, dir: &Path) -> Result<Hyper> {
        let need = |key: &str| {
            cfg_u32(config, key).ok_or_else(|| {
                Error::invalid_model(format!(
                    "{}: config.json has no {key}",
                    dir.join("config.json").display()
                ))
            })
        };
        let n_embd = need("hidden_size")?;
        let n_head = need("num_attention_heads")?;
        if n_head == 0 {
            return Err(Error::invalid_model(format!(
                "{}: num_attention_heads is 0",
                dir.display()
            )));
        }
        let n_head_kv = cfg_u32(config, "num_key_value_heads").unwrap_or(n_head);
        let head_dim = cfg_u32(config, "head_dim").unwrap_or(n_embd / n_head);
        Ok(Hyper {
            n_embd,
            n_head: n_head as usize,
            n_head_kv: n_head_kv as usize,
            head_dim,
        })
    }

    fn metadata(
        &self,
        family: Family,
        config: &Value,
        dir: &Path,
    ) -> Result<Vec<(String, GgufValue)>> {
        let arch = family.gguf_arch();
        let key = |k: &str| format!("{arch}.{k}");
        let need = |k: &str| {
            cfg_u32(config, k).ok_or_else(|| {
                Error::invalid_model(format!(
                    "{}: config.json has no {k}",
                    dir.join("config.json").display()
                ))
            })
        };
        let unsupported = |what: String| {
            Error::new(
                ErrorKind::Unsupported,
                format!("{}: {what}", dir.join("config.json").display()),
            )
        };
        let mut md = vec![
            (
                key("context_length"),
                GgufValue::U32(need("max_position_embeddings")?),
            ),
            (key("embedding_length"), GgufValue::U32(self.n_embd)),
            (
                key("block_count"),
                GgufValue::U32(need("num_hidden_layers")?),
            ),
            (
                key("feed_forward_length"),
                GgufValue::U32(need("intermediate_size")?),
            ),
            (
                key("attention.head_count"),
                GgufValue::U32(self.n_head as u32),
            ),
            (
                key("attention.head_count_kv"),
                GgufValue::U32(self.n_head_kv as u32),
            ),
            (key("attention.key_length"), GgufValue::U32(self.head_dim)),
            (key("attention.value_length"), GgufValue::U32(self.head_dim)),
            (
                key("attention.layer_norm_rms_epsilon"),
                GgufValue::F32(cfg_f32(config, "rms_norm_eps").unwrap_or(1e-6)),
            ),
        ];
        match config.get("rope_scaling") {
            None | Some(Value::Null) => {}
            Some(s) => {
                let kind = s
                    .get("rope_type")
                    .or_else(|| s.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let factor = s.get("factor").and_then(Value::as_f64);
                match (kind, factor) {
                    ("linear", Some(f)) => {
                        md.push((key("rope.scaling.type"), GgufValue::String("linear".into())));
                        md.push((key("rope.scaling.factor"), GgufValue::F32(f as f32)));
                    }
                    _ => {
                        return Err(unsupported(format!(
                            "rope_scaling {s} is not converted yet (linear scaling is)"
                        )))
                    }
                }
            }
        }
        match family {
            Family::Llama => {
                md.push((key("rope.dimension_count"), GgufValue::U32(self.head_dim)));
                md.push((
                    key("rope.freq_base"),
                    GgufValue::F32(cfg_f32(config, "rope_theta").unwrap_or(10_000.0)),
                ));
                if let Some(act) = config.get("hidden_act").and_then(Value::as_str) {
                    if act != "silu" {
                        return Err(unsupported(format!(
                            "hidden_act {act}: llama.cpp's llama graph uses SiLU"
                        )));
                    }
                }
            }
            Family::Gemma3 => {
                // llama.cpp's Gemma 3 graph hard-codes these; a model that differs would run
                // wrong rather than fail, so refuse it here.
                let local_base = cfg_f32(config, "rope_local_base_freq").unwrap_or(10_000.0);
                if local_base != 10_000.0 {
                    return Err(unsupported(format!(
                        "rope_local_base_freq {local_base}: llama.cpp's Gemma 3 uses 10000"
                    )));
                }
                if let Some(p) = cfg_u32(config, "sliding_window_pattern") {
                    if p != 6 {
                        return Err(unsupported(format!(
                            "sliding_window_pattern {p}: llama.cpp's Gemma 3 uses 6"
                        )));
                    }
                }
                if let Some(act) = config.get("hidden_activation").and_then(Value::as_str) {
                    if act != "gelu_pytorch_tanh" {
                        return Err(unsupported(format!(
                            "hidden_activation {act}: llama.cpp's Gemma 3 uses tanh GELU"
                        )));
                    }
                }
                md.push((
                    key("rope.freq_base"),
                    GgufValue::F32(cfg_f32(config, "rope_theta").unwrap_or(1_000_000.0)),
                ));
                md.push((
                    key("attention.sliding_window"),
                    GgufValue::U32(cfg_u32(config, "sliding_window").unwrap_or(512)),
                ));
            }
        }
        Ok(md)
    }
}

/// llama.cpp's converter interleaves the two rotary halves of each head's Q and K rows
/// (`permute` in convert_hf_to_gguf.py): HF row `h*hd + a*hd/2 + b` becomes GGUF row
/// `h*hd + 2b + a`. The inverse of `to_hf::unpermute_rotary`.
pub(super) fn permute_rotary(t: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let (n_out, n_in) = t.dims2()?;
    if n_head == 0 || n_out % (2 * n_head) != 0 {
        candle_core::bail!("{n_out} rows do not split into {n_head} rotary heads");
    }
    let hd = n_out / n_head;
    // (head, a, b, in) -> (head, b, a, in)
    t.reshape((n_head, 2, hd / 2, n_in))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((n_out, n_in))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn rotary_permutation_round_trips() {
        let t = Tensor::arange(0f32, 64.0 * 3.0, &Device::Cpu)
            .unwrap()
            .reshape((64, 3))
            .unwrap();
        let there = permute_rotary(&t, 4).unwrap();
        assert_ne!(there.to_vec2::<f32>().unwrap(), t.to_vec2::<f32>().unwrap());
        let back = super::super::to_hf::unpermute_rotary(&there, 4).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), t.to_vec2::<f32>().unwrap());
        // Row h*hd + a*hd/2 + b of HF goes to h*hd + 2b + a: head 0, a = 1, b = 0 -> row 1.
        assert_eq!(
            there.get(1).unwrap().to_vec1::<f32>().unwrap(),
            [24.0, 25.0, 26.0]
        );
    }
}
