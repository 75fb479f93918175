//! Hugging Face PEFT LoRA adapters (a folder with adapter_config.json and
//! adapter_model.safetensors or .bin) → GGUF LoRA adapters, as llama.cpp's
//! convert_lora_to_gguf.py writes them. For each adapted linear layer `W` ([out, in] in HF),
//! `lora_A` ([r, in]) becomes `X.lora_a` and `lora_B` ([out, r]) `X.lora_b`, with the same
//! memory layout (GGUF lists dimensions innermost first), except that a Llama's Q and K rows
//! are interleaved as the model's own were (`permute_rotary`), so `B·A` keeps matching `W`.
//!
//! PEFT scales each layer's `B·A` by `lora_alpha / r` (`/ sqrt(r)` with rsLoRA, with per-layer
//! `alpha_pattern` overrides); llama.cpp by the file's one `adapter.lora.alpha` over each
//! tensor's rank. Where one alpha expresses every layer's scale it is written as that alpha;
//! otherwise the file's alpha is 0 (llama.cpp then applies the user's scale alone) and each
//! layer's scale is folded into its `lora_b`. convert_lora_to_gguf.py writes `lora_alpha` as
//! it is, which mis-scales rsLoRA and pattern adapters.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::quantized::gguf_file::Value as GgufValue;
use candle_core::quantized::QTensor;
use candle_core::{DType, Tensor};
use serde_json::Value;

use super::family::{gguf_name, Family};
use super::from_hf::{permute_rotary, Hyper};
use super::{check_destination, GgufType};
use crate::gguf::GgufHeader;
use crate::hf_folder::{TensorSource, WeightFiles};
use crate::{Error, ErrorKind, Result};

/// What converting an adapter needs to know of its base model: the tensor naming and, for a
/// Llama, the head counts that lay out Q and K rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoraBase {
    family: Family,
    n_head: usize,
    n_head_kv: usize,
}

impl LoraBase {
    /// The base model at `path`: a GGUF file, or a Hugging Face folder (only its config.json
    /// is read).
    pub fn of_model(path: &Path) -> Result<LoraBase> {
        match crate::format::detect(path)? {
            crate::format::Format::Gguf => LoraBase::of_gguf(&crate::gguf::read_header(path)?),
            _ => LoraBase::of_hf_config(&crate::format::model_dir(path)),
        }
    }

    /// From a GGUF model's header.
    pub fn of_gguf(header: &GgufHeader) -> Result<LoraBase> {
        let arch = header.architecture().unwrap_or("unknown");
        let family = Family::of_gguf(arch).ok_or_else(|| unsupported_arch(arch))?;
        let n_head = header
            .get_u64(&format!("{arch}.attention.head_count"))
            .unwrap_or(0) as usize;
        let n_head_kv = header
            .get_u64(&format!("{arch}.attention.head_count_kv"))
            .map_or(n_head, |n| n as usize);
        LoraBase::new(family, n_head, n_head_kv, "the model's GGUF header")
    }

    fn of_hf_config(dir: &Path) -> Result<LoraBase> {
        let config = crate::hf_folder::read_config(dir)?;
        let arch = config["architectures"][0]
            .as_str()
            .unwrap_or("(undeclared)");
        let family = Family::of_hf(arch).ok_or_else(|| unsupported_arch(arch))?;
        let hp = Hyper::read(&config, dir)?;
        LoraBase::new(family, hp.n_head, hp.n_head_kv, "config.json")
    }

    fn new(family: Family, n_head: usize, n_head_kv: usize, from: &str) -> Result<LoraBase> {
        if family == Family::Llama && (n_head == 0 || n_head_kv == 0) {
            return Err(Error::invalid_model(format!(
                "{from} gives no attention head counts, which a Llama adapter's Q and K layout needs"
            )));
        }
        Ok(LoraBase {
            family,
            n_head,
            n_head_kv,
        })
    }
}

fn unsupported_arch(arch: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!(
            "converting LoRA adapters for the {arch} architecture is not supported yet; uml \
             converts adapters of Llama (SmolLM2, Mistral) and Gemma 3 models"
        ),
    )
}

/// Whether `path` is a PEFT adapter folder (it holds adapter_config.json).
pub fn is_peft_adapter(path: &Path) -> bool {
    path.is_dir() && path.join("adapter_config.json").is_file()
}

/// Write the PEFT LoRA adapter in folder `src`, made for a model like `base`, as a GGUF LoRA
/// adapter at `dst` whose tensors are of type `to`. Never overwrites `dst`.
pub fn peft_to_gguf(src: &Path, base: &LoraBase, dst: &Path, to: GgufType) -> Result<()> {
    check_destination(dst)?;
    let config = PeftConfig::read(src)?;
    let source = TensorSource::open(&adapter_weights(src)?)?;
    let invalid =
        |why: String| Error::invalid_model(format!("PEFT adapter {}: {why}", src.display()));

    // Pair each module's lora_A with its lora_B.
    let mut pairs: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
    for name in source.names() {
        let (module, is_a) = classify(&name).map_err(|why| {
            Error::new(
                ErrorKind::Unsupported,
                format!("PEFT adapter {}: {why}", src.display()),
            )
        })?;
        let pair = pairs.entry(module).or_default();
        if is_a {
            pair.0 = Some(name);
        } else {
            pair.1 = Some(name);
        }
    }
    if pairs.is_empty() {
        return Err(invalid("it holds no lora_A / lora_B tensors".into()));
    }

    let mut layers = Vec::with_capacity(pairs.len());
    for (module, pair) in &pairs {
        let (Some(a_name), Some(b_name)) = pair else {
            return Err(invalid(format!(
                "{module} has only one of lora_A and lora_B"
            )));
        };
        let gguf = gguf_name(base.family, &format!("{module}.weight")).ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "PEFT adapter {}: it adapts {module}, which has no GGUF counterpart in a {} \
                     model",
                    src.display(),
                    base.family.gguf_arch()
                ),
            )
        })?;
        let f32 = |name: &str| -> Result<Tensor> {
            source
                .get(name)?
                .to_dtype(DType::F32)
                .map_err(|e| invalid(format!("tensor {name}: {e}")))
        };
        let (a, b) = (f32(a_name)?, f32(b_name)?);
        let (rank, _) = a.dims2().map_err(|e| invalid(format!("{a_name}: {e}")))?;
        let (_, rank_b) = b.dims2().map_err(|e| invalid(format!("{b_name}: {e}")))?;
        if rank != rank_b || rank == 0 {
            return Err(invalid(format!(
                "{module}: lora_A is {:?} and lora_B {:?}; they must be [r, in] and [out, r]",
                a.dims(),
                b.dims()
            )));
        }
        layers.push(Layer {
            gguf,
            scale: config.scale(module, rank),
            rank,
            a,
            b,
        });
    }

    // One alpha for the file when every layer's scale is that alpha over its rank.
    let alpha = layers[0].scale * layers[0].rank as f64;
    let uniform = alpha != 0.0
        && layers
            .iter()
            .all(|l| (l.scale * l.rank as f64 - alpha).abs() <= 1e-9 * alpha.abs());

    let mut tensors = Vec::with_capacity(2 * layers.len());
    for layer in layers {
        let b_dims = layer.b.dims().to_vec();
        let shape_err = |e: candle_core::Error| {
            invalid(format!(
                "{}: lora_B {b_dims:?} does not fit the model's heads ({e})",
                layer.gguf
            ))
        };
        let mut b = layer.b;
        if base.family == Family::Llama {
            if layer.gguf.ends_with("attn_q.weight") {
                b = permute_rotary(&b, base.n_head).map_err(shape_err)?;
            } else if layer.gguf.ends_with("attn_k.weight") {
                b = permute_rotary(&b, base.n_head_kv).map_err(shape_err)?;
            }
        }
        if !uniform {
            b = (b * layer.scale).map_err(shape_err)?;
        }
        for (suffix, t) in [("lora_a", layer.a), ("lora_b", b)] {
            let name = format!("{}.{suffix}", layer.gguf);
            let q = QTensor::quantize(&t, to.ggml()).map_err(|e| {
                Error::invalid_argument(format!(
                    "{name} ({:?}) cannot be stored as {:?}: {e}; use f32 or f16",
                    t.dims(),
                    to.ggml()
                ))
            })?;
            tensors.push((name, q));
        }
    }
    tensors.sort_by(|x, y| x.0.cmp(&y.0));

    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "LoRA adapter".into());
    let metadata: Vec<(&str, GgufValue)> = vec![
        (
            "general.architecture",
            GgufValue::String(base.family.gguf_arch().into()),
        ),
        ("general.type", GgufValue::String("adapter".into())),
        ("general.name", GgufValue::String(name)),
        ("general.file_type", GgufValue::U32(to.file_type())),
        ("adapter.type", GgufValue::String("lora".into())),
        (
            "adapter.lora.alpha",
            GgufValue::F32(if uniform { alpha as f32 } else { 0.0 }),
        ),
    ];
    let refs: Vec<(&str, &GgufValue)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    super::write_gguf(dst, &refs, &tensors)
}

struct Layer {
    gguf: String,
    /// PEFT's factor on this layer's `B·A`.
    scale: f64,
    rank: usize,
    a: Tensor,
    b: Tensor,
}

/// The module a PEFT tensor adapts (`model.layers.0.self_attn.q_proj`) and whether it is its
/// lora_A; anything else an adapter may hold is refused with the reason.
fn classify(name: &str) -> std::result::Result<(String, bool), String> {
    let bare = name.strip_prefix("base_model.model.").unwrap_or(name);
    if let Some(module) = bare.strip_suffix(".lora_A.weight") {
        return Ok((module.to_string(), true));
    }
    if let Some(module) = bare.strip_suffix(".lora_B.weight") {
        return Ok((module.to_string(), false));
    }
    Err(if name.contains("lora_embedding_") {
        format!(
            "{name} adapts the token embeddings; uml converts LoRA on linear layers (PEFT's \
             target_modules such as q_proj, v_proj) only"
        )
    } else if name.contains("lora_magnitude_vector") {
        format!("{name} belongs to a DoRA adapter, which llama.cpp cannot apply")
    } else {
        format!(
            "{name} is a full tensor, not a low-rank pair (PEFT's modules_to_save, such as a \
             resized embedding); a GGUF LoRA holds only lora_A / lora_B pairs: merge the \
             adapter into the model (PEFT's merge_and_unload) and convert the merged folder"
        )
    })
}

/// adapter_model.safetensors, else adapter_model.bin (a PyTorch checkpoint, whose pickle
/// `TensorSource` checks before reading it).
fn adapter_weights(dir: &Path) -> Result<WeightFiles> {
    let file = crate::lora::peft_weights_file(dir)?;
    Ok(if file.extension().is_some_and(|e| e == "safetensors") {
        WeightFiles::Safetensors(vec![file])
    } else {
        WeightFiles::PyTorch(vec![file])
    })
}

/// The parts of adapter_config.json that decide how the adapter is applied.
#[derive(Debug)]
struct PeftConfig {
    alpha: f64,
    rslora: bool,
    /// PEFT's `alpha_pattern`: per-module alphas, keyed by a module name's last components.
    alpha_pattern: Vec<(String, f64)>,
}

impl PeftConfig {
    fn read(dir: &Path) -> Result<PeftConfig> {
        let path = dir.join("adapter_config.json");
        let v: Value = crate::files::read_json(&path)?;
        let invalid = |why: String| Error::invalid_model(format!("{}: {why}", path.display()));
        let unsupported =
            |why: String| Error::new(ErrorKind::Unsupported, format!("{}: {why}", path.display()));
        if let Some(kind) = v["peft_type"].as_str() {
            if !kind.eq_ignore_ascii_case("lora") {
                return Err(unsupported(format!(
                    "a {kind} adapter; llama.cpp applies LoRA adapters only"
                )));
            }
        }
        if v["use_dora"].as_bool() == Some(true) {
            return Err(unsupported(
                "a DoRA adapter (use_dora), which llama.cpp cannot apply".into(),
            ));
        }
        // PEFT's own defaults where a key is missing.
        let alpha = match &v["lora_alpha"] {
            Value::Null => 8.0,
            a => a
                .as_f64()
                .ok_or_else(|| invalid(format!("lora_alpha {a} is not a number")))?,
        };
        let mut alpha_pattern = Vec::new();
        if let Some(patterns) = v["alpha_pattern"].as_object() {
            for (key, a) in patterns {
                if key.contains(|c: char| "*+?[](){}|\\^$".contains(c)) {
                    return Err(unsupported(format!(
                        "alpha_pattern key {key:?} is a regular expression; uml matches module \
                         names by their last components"
                    )));
                }
                let a = a
                    .as_f64()
                    .ok_or_else(|| invalid(format!("alpha_pattern {key:?} is not a number")))?;
                alpha_pattern.push((key.clone(), a));
            }
        }
        Ok(PeftConfig {
            alpha,
            rslora: v["use_rslora"].as_bool() == Some(true),
            alpha_pattern,
        })
    }

    /// PEFT's factor on `module`'s `B·A` (rank from its tensors, which also covers
    /// `rank_pattern`).
    fn scale(&self, module: &str, rank: usize) -> f64 {
        let alpha = self
            .alpha_pattern
            .iter()
            .find(|(key, _)| module == key || module.ends_with(&format!(".{key}")))
            .map_or(self.alpha, |(_, a)| *a);
        let rank = rank as f64;
        alpha / if self.rslora { rank.sqrt() } else { rank }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_names_name_their_module_or_the_reason_they_are_refused() {
        assert_eq!(
            classify("base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight").unwrap(),
            ("model.layers.3.self_attn.q_proj".to_string(), true)
        );
        assert_eq!(
            classify("model.layers.0.mlp.down_proj.lora_B.weight").unwrap(),
            ("model.layers.0.mlp.down_proj".to_string(), false)
        );
        let e = classify("base_model.model.model.embed_tokens.lora_embedding_A").unwrap_err();
        assert!(e.contains("token embeddings"), "{e}");
        let e = classify("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector")
            .unwrap_err();
        assert!(e.contains("DoRA"), "{e}");
        let e = classify("base_model.model.lm_head.weight").unwrap_err();
        assert!(e.contains("modules_to_save"), "{e}");
    }

    #[test]
    fn scales_follow_peft_alpha_rslora_and_alpha_pattern() {
        let config = PeftConfig {
            alpha: 16.0,
            rslora: false,
            alpha_pattern: vec![("v_proj".into(), 4.0)],
        };
        assert_eq!(config.scale("model.layers.0.self_attn.q_proj", 8), 2.0);
        assert_eq!(config.scale("model.layers.0.self_attn.v_proj", 8), 0.5);
        // A key matches whole components only.
        assert_eq!(config.scale("model.layers.0.self_attn.xv_proj", 8), 2.0);
        let rs = PeftConfig {
            rslora: true,
            ..config
        };
        assert_eq!(rs.scale("model.layers.0.self_attn.q_proj", 4), 8.0);
    }
}
