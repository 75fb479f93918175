//! The causal LM architectures the candle backend runs, behind one shape: weights shared by
//! every session, and per session a KV cache. candle's Llama keeps its cache outside the model;
//! the others keep it inside, so a session clones a never-used copy of the model (tensors are
//! reference-counted: the clone shares the weights and owns only the empty cache).

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::quantized_llama;
use candle_transformers::models::{bert, gemma3, llama, mistral, phi3, qwen2, qwen3};
use serde_json::Value;
use std::sync::Arc;

use crate::{Error, ErrorKind, Result};

/// `config.json` `architectures` names this backend runs, for the "not supported" message.
pub(super) const SUPPORTED: &[&str] = &[
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "Gemma3ForCausalLM",
    "Phi3ForCausalLM",
    "BertModel",
];

/// Loaded weights of one architecture.
pub(super) enum Weights {
    Llama {
        /// Shared with every session's state, which owns a handle so it can outlive a turn.
        model: Arc<llama::Llama>,
        /// An empty cache (with the rotary tables) cloned for each session.
        cache: llama::Cache,
    },
    Mistral(mistral::Model),
    Qwen2(qwen2::ModelForCausalLM),
    Qwen3(qwen3::ModelForCausalLM),
    Gemma3(gemma3::Model),
    Phi3(phi3::Model),
    /// A BERT sentence encoder (embeddings only; it cannot generate).
    Bert(bert::BertModel),
    /// A llama-architecture GGUF run by candle's quantized kernels.
    QuantizedLlama(quantized_llama::ModelWeights),
}

/// One session's model state.
pub(super) enum State {
    Llama {
        model: Arc<llama::Llama>,
        cache: llama::Cache,
    },
    Mistral(mistral::Model),
    Qwen2(qwen2::ModelForCausalLM),
    Qwen3(qwen3::ModelForCausalLM),
    Gemma3(gemma3::Model),
    Phi3(phi3::Model),
    QuantizedLlama(quantized_llama::ModelWeights),
}

/// GGUF architectures this backend runs through candle's quantized models, and why the others
/// are not: the message for a GGUF it refuses.
pub(super) const GGUF_SUPPORTED: &[&str] = &["llama"];

/// Why a GGUF architecture is not run by candle's quantized models.
pub(super) fn gguf_refusal(arch: &str) -> String {
    let why = match arch {
        "gemma3" => {
            "candle's quantized Gemma 3 uses SiLU where Gemma uses GELU, so it would \
                     generate wrong text"
        }
        "qwen2" => "candle's quantized Qwen2 cannot give each generation its own KV cache",
        _ => "candle has no quantized model for it that uml has checked",
    };
    format!(
        "the candle backend does not run '{arch}' GGUFs ({why}); it runs {} GGUFs. Use llama.cpp, \
         or convert the model with `uml convert MODEL.gguf DIR --to hf` and load the folder",
        GGUF_SUPPORTED.join(", ")
    )
}

/// The longest context candle's quantized llama has rotary tables for.
pub(super) const QUANTIZED_LLAMA_MAX_CTX: u32 = quantized_llama::MAX_SEQ_LEN as u32;

/// The architecture `config.json` declares (its first `architectures` entry).
pub(super) fn architecture(config: &Value) -> Option<&str> {
    config
        .get("architectures")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
}

fn parse<T: serde::de::DeserializeOwned>(config: &Value, arch: &str) -> Result<T> {
    serde_json::from_value(config.clone()).map_err(|e| {
        Error::invalid_model(format!(
            "config.json does not describe a {arch} the candle backend can build: {e}"
        ))
    })
}

fn candle_error(what: &str) -> impl Fn(candle_core::Error) -> Error + '_ {
    move |e| Error::invalid_model(format!("{what}: {e}"))
}

impl Weights {
    /// Build the model `config` describes from the tensors in `vb`.
    pub(super) fn load(
        config: &Value,
        vb: VarBuilder,
        dtype: DType,
        device: &Device,
    ) -> Result<Weights> {
        let arch = architecture(config).unwrap_or_default().to_string();
        let load = candle_error("loading the weights failed");
        let weights = match arch.as_str() {
            "LlamaForCausalLM" => {
                let cfg: llama::LlamaConfig = parse(config, &arch)?;
                let cfg = cfg.into_config(false);
                let model = llama::Llama::load(vb, &cfg).map_err(&load)?;
                let cache = llama::Cache::new(true, dtype, &cfg, device).map_err(&load)?;
                Weights::Llama {
                    model: Arc::new(model),
                    cache,
                }
            }
            "MistralForCausalLM" => {
                Weights::Mistral(mistral::Model::new(&parse(config, &arch)?, vb).map_err(&load)?)
            }
            "Qwen2ForCausalLM" => {
                let mut config = config.clone();
                // candle wants a number; HF writes null when sliding attention is off.
                if config.get("sliding_window").is_none_or(Value::is_null) {
                    config["sliding_window"] = Value::from(u32::MAX);
                }
                Weights::Qwen2(
                    qwen2::ModelForCausalLM::new(&parse(&config, &arch)?, vb).map_err(&load)?,
                )
            }
            "Qwen3ForCausalLM" => Weights::Qwen3(
                qwen3::ModelForCausalLM::new(&parse(config, &arch)?, vb).map_err(&load)?,
            ),
            "Gemma3ForCausalLM" => {
                let mut config = config.clone();
                // Newer transformers write layer_types instead of the pattern candle reads;
                // Gemma 3 alternates five local layers with one global.
                if config.get("sliding_window_pattern").is_none() {
                    config["sliding_window_pattern"] = Value::from(6);
                }
                Weights::Gemma3(
                    gemma3::Model::new(false, &parse(&config, &arch)?, vb).map_err(&load)?,
                )
            }
            "Phi3ForCausalLM" => {
                Weights::Phi3(phi3::Model::new(&parse(config, &arch)?, vb).map_err(&load)?)
            }
            "BertModel" => {
                Weights::Bert(bert::BertModel::load(vb, &parse(config, &arch)?).map_err(&load)?)
            }
            other => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "the candle backend does not run the {} architecture; it runs: {}",
                        if other.is_empty() {
                            "(none declared)"
                        } else {
                            other
                        },
                        SUPPORTED.join(", ")
                    ),
                ))
            }
        };
        Ok(weights)
    }

    /// Build the GGUF's model (one of `GGUF_SUPPORTED`) from its tensors.
    pub(super) fn load_gguf<R: std::io::Read + std::io::Seek>(
        content: candle_core::quantized::gguf_file::Content,
        reader: &mut R,
        device: &Device,
    ) -> Result<Weights> {
        let arch = crate::convert::gguf_architecture(&content);
        if !GGUF_SUPPORTED.contains(&arch.as_str()) {
            return Err(Error::new(ErrorKind::Unsupported, gguf_refusal(&arch)));
        }
        let model = quantized_llama::ModelWeights::from_gguf(content, reader, device)
            .map_err(candle_error("loading the GGUF's weights failed"))?;
        Ok(Weights::QuantizedLlama(model))
    }

    /// A fresh state: an empty KV cache over these weights; `None` for an encoder, which has no
    /// generation state.
    pub(super) fn session(&self) -> Option<State> {
        Some(match self {
            Weights::Llama { model, cache } => State::Llama {
                model: Arc::clone(model),
                cache: cache.clone(),
            },
            Weights::Mistral(m) => State::Mistral(m.clone()),
            Weights::Qwen2(m) => State::Qwen2(m.clone()),
            Weights::Qwen3(m) => State::Qwen3(m.clone()),
            Weights::Gemma3(m) => State::Gemma3(m.clone()),
            Weights::Phi3(m) => State::Phi3(m.clone()),
            Weights::QuantizedLlama(m) => State::QuantizedLlama(m.clone()),
            Weights::Bert(_) => return None,
        })
    }

    /// The sentence vector of `ids` (one text, every token attended): the mean of the token
    /// states, or the first ([CLS]) token's with `cls`. For encoders; `None` for causal LMs.
    pub(super) fn embed(&self, ids: &Tensor, cls: bool) -> Option<candle_core::Result<Vec<f32>>> {
        let Weights::Bert(model) = self else {
            return None;
        };
        let pooled = (|| {
            let types = ids.zeros_like()?;
            let hidden = model.forward(ids, &types, None)?; // (1, n, hidden)
            let pooled = if cls {
                hidden.get_on_dim(1, 0)?
            } else {
                hidden.mean(1)?
            };
            pooled.flatten_all()?.to_dtype(DType::F32)?.to_vec1()
        })();
        Some(pooled)
    }

    /// Width of `embed`'s vectors (0 for causal LMs).
    pub(super) fn hidden_size(config: &Value) -> usize {
        config
            .get("hidden_size")
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize
    }
}

impl State {
    /// Whether a state that holds some tokens can take several more in one step, as the next
    /// turn of a chat does. Gemma 3's sliding-window cache cannot.
    pub(super) fn continues(&self) -> bool {
        !matches!(self, State::Gemma3(_))
    }

    /// Run `ids` (shape `(1, n)`) at positions `pos..`; the logits of the last position, F32.
    pub(super) fn forward(&mut self, ids: &Tensor, pos: usize) -> candle_core::Result<Vec<f32>> {
        let logits = match self {
            State::Llama { model, cache } => model.forward(ids, pos, cache)?,
            State::Mistral(m) => m.forward(ids, pos)?,
            State::Qwen2(m) => m.forward(ids, pos)?,
            State::Qwen3(m) => m.forward(ids, pos)?,
            State::Gemma3(m) => m.forward(ids, pos)?,
            State::Phi3(m) => m.forward(ids, pos)?,
            State::QuantizedLlama(m) => m.forward(ids, pos)?,
        };
        logits.flatten_all()?.to_dtype(DType::F32)?.to_vec1()
    }
}
