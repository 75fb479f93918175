//! `ModelInfo`: what a model is, read from headers and config files only (no weights), so
//! inspecting a 70 GB model takes milliseconds.

mod gguf;
mod hf;
mod recurrent;
pub(crate) mod safetensors;

#[cfg(test)]
mod tests;

pub use crate::format::MAX_SAFETENSORS_HEADER;

use crate::error::Result;
use crate::format::{self, Format};
pub use recurrent::RecurrentLayout;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Everything uml knows about a model before loading it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// The path as given.
    pub path: PathBuf,
    pub format: Format,
    /// GGUF `general.architecture` (`"llama"`), or a Hugging Face `model_type` (falling back
    /// to `architectures[0]`), so the same model reads the same in both formats.
    pub architecture: Option<String>,
    pub name: Option<String>,
    /// Total elements of all tensors (0 when unknown, e.g. a PyTorch checkpoint without a
    /// config giving its dtype; see `notes`).
    pub parameter_count: u64,
    /// The quantization: GGUF `general.file_type` as llama.cpp names it (`"Q4_K_M"`), else
    /// the tensor type holding the most bytes (`"Q4_1"`, `"BF16"`).
    pub quantization: Option<String>,
    /// Tensor type name → number of tensors of that type.
    pub tensor_types: BTreeMap<String, u64>,
    pub tensor_count: u64,
    /// The context length the model was trained for.
    pub context_length: Option<u64>,
    /// Transformer blocks (layers).
    pub block_count: Option<u64>,
    pub embedding_length: Option<u64>,
    pub feed_forward_length: Option<u64>,
    /// Multi-token-prediction (NextN) blocks the file carries after the `block_count - mtp_layers`
    /// blocks of the model proper (GGUF `{arch}.nextn_predict_layers`: Qwen3.5, GLM-4.5,
    /// DeepSeek-V3): what the `mtp` load option drafts with. 0 when it has none.
    #[serde(default)]
    pub mtp_layers: u64,
    /// The blocks that keep a recurrent state (Mamba, RWKV, the linear-attention blocks of
    /// hybrids such as Qwen3.5 and LFM2) and its size; `None` for a transformer.
    pub recurrent: Option<RecurrentLayout>,
    pub head_count: Option<u64>,
    /// KV heads (grouped-query attention); equals `head_count` when the model does not say.
    pub head_count_kv: Option<u64>,
    /// Size of one attention head's key; `embedding_length / head_count` unless given.
    pub key_length: Option<u64>,
    pub value_length: Option<u64>,
    pub vocab_size: Option<u64>,
    /// GGUF `tokenizer.ggml.model` (`"llama"`, `"gpt2"`, `"bert"`), or the `model.type` of a
    /// Hugging Face `tokenizer.json` in lowercase (`"bpe"`, `"unigram"`, `"wordpiece"`).
    pub tokenizer_model: Option<String>,
    pub chat_template: Option<String>,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    /// Embedding pooling (`"mean"`, `"cls"`, `"last"`, `"none"`, `"rank"`) when the model
    /// declares one.
    pub pooling_type: Option<String>,
    /// Bytes of all files in `files`.
    pub file_size: u64,
    /// Bytes of tensor data.
    pub weights_bytes: u64,
    /// Weight bytes of each block, indexed by block number.
    pub layer_bytes: Vec<u64>,
    /// Weight bytes outside the blocks (embeddings, output norm and head).
    pub non_layer_bytes: u64,
    /// Weight bytes of the output layer (final norm and head) that llama.cpp offloads with
    /// the last "layer"; when the head is tied to the token embeddings this is the size of the
    /// copy llama.cpp makes of them.
    pub output_bytes: u64,
    /// Whether the output head reuses the token embeddings (no separate `output.weight`).
    pub tied_embeddings: bool,
    /// The files the model consists of (weights, config, tokenizer).
    pub files: Vec<PathBuf>,
    /// Scalar metadata (GGUF keys, safetensors `__metadata__`, config.json scalars); arrays
    /// summarised as `"[array of N type]"`, long strings cut.
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// Things the reader could not determine, and why.
    pub notes: Vec<String>,
}

impl ModelInfo {
    /// False for encoder-only models (BERT-style embedding models: GGUF
    /// `{arch}.attention.causal = false`), which cannot generate text.
    pub fn generates_text(&self) -> bool {
        let arch = self.architecture.as_deref().unwrap_or_default();
        self.metadata.get(&format!("{arch}.attention.causal"))
            != Some(&serde_json::Value::Bool(false))
    }

    /// An info with nothing known but the path and format (readers fill the rest).
    pub fn new(path: &Path, format: Format) -> ModelInfo {
        ModelInfo {
            path: path.to_path_buf(),
            format,
            architecture: None,
            name: None,
            parameter_count: 0,
            quantization: None,
            tensor_types: BTreeMap::new(),
            tensor_count: 0,
            context_length: None,
            block_count: None,
            embedding_length: None,
            feed_forward_length: None,
            mtp_layers: 0,
            recurrent: None,
            head_count: None,
            head_count_kv: None,
            key_length: None,
            value_length: None,
            vocab_size: None,
            tokenizer_model: None,
            chat_template: None,
            bos_token_id: None,
            eos_token_id: None,
            bos_token: None,
            eos_token: None,
            pooling_type: None,
            file_size: 0,
            weights_bytes: 0,
            layer_bytes: Vec::new(),
            non_layer_bytes: 0,
            output_bytes: 0,
            tied_embeddings: false,
            files: Vec::new(),
            metadata: BTreeMap::new(),
            notes: Vec::new(),
        }
    }

    /// Fill the per-head sizes and KV heads from the others where the model left them out.
    fn fill_defaults(&mut self) {
        if self.head_count_kv.is_none() {
            self.head_count_kv = self.head_count;
        }
        let per_head = match (self.embedding_length, self.head_count) {
            (Some(e), Some(h)) if h > 0 => Some(e / h),
            _ => None,
        };
        if self.key_length.is_none() {
            self.key_length = per_head;
        }
        if self.value_length.is_none() {
            self.value_length = per_head;
        }
        if self.block_count.is_none() && !self.layer_bytes.is_empty() {
            self.block_count = Some(self.layer_bytes.len() as u64);
        }
        if let Some(n) = self.block_count {
            // Blocks without tensors (a hostile or partial file) still count, as zeros.
            let n = n.min(MAX_LAYERS as u64) as usize;
            if self.layer_bytes.len() < n {
                self.layer_bytes.resize(n, 0);
            }
        }
    }

    fn add_file(&mut self, path: &Path) {
        if let Ok(m) = std::fs::metadata(path) {
            self.file_size += m.len();
        }
        self.files.push(path.to_path_buf());
    }
}

/// Inspect the model at `path` (a file or a folder): format, architecture, sizes, tokenizer
/// facts. Reads headers and small JSON files only.
pub fn inspect(path: &Path) -> Result<ModelInfo> {
    let format = format::detect(path)?;
    let mut info = match format {
        Format::Gguf => gguf::inspect(path)?,
        Format::Safetensors => with_folder_facts(safetensors::inspect_file(path)?, path)?,
        Format::ShardedSafetensors => with_folder_facts(safetensors::inspect_sharded(path)?, path)?,
        Format::HuggingFaceFolder => hf::inspect_folder(path)?,
        Format::PyTorch => hf::inspect_pytorch(path)?,
        // `detect` reads files; a remote model never comes from one.
        Format::Remote => {
            return Err(crate::Error::internal(
                "inspect: a remote model has no file",
            ))
        }
    };
    info.fill_defaults();
    Ok(info)
}

/// Safetensors weights with the facts of their folder's config.json and tokenizer files, when
/// it has them (here, so `safetensors` and `hf` each read only their own files).
fn with_folder_facts(mut info: ModelInfo, weights: &Path) -> Result<ModelInfo> {
    let dir = format::model_dir(weights);
    if dir.join("config.json").is_file() {
        hf::apply_folder(&mut info, &dir)?;
    }
    Ok(info)
}

/// Blocks beyond this index are not believed (no model has 64k layers; a hostile name like
/// `blk.99999999999.x` must not size a vector).
const MAX_LAYERS: usize = 1 << 16;

/// The block number of a tensor name: `blk.3.attn_q.weight`, `model.layers.3.mlp...`,
/// `transformer.h.3...`, `encoder.layer.3...`.
pub(crate) fn layer_index(name: &str) -> Option<usize> {
    let parts: Vec<&str> = name.split('.').collect();
    parts.windows(2).find_map(|w| {
        if matches!(w[0], "blk" | "layers" | "h" | "layer" | "blocks" | "block") {
            w[1].parse::<usize>().ok().filter(|&i| i < MAX_LAYERS)
        } else {
            None
        }
    })
}

/// Sums over a tensor table, shared by every format.
#[derive(Default)]
pub(crate) struct TensorStats {
    parameter_count: u64,
    tensor_count: u64,
    weights_bytes: u64,
    types: BTreeMap<String, u64>,
    type_bytes: BTreeMap<String, u64>,
    layer_bytes: Vec<u64>,
    non_layer_bytes: u64,
    output_bytes: u64,
    embedding_bytes: u64,
    has_output_head: bool,
}

impl TensorStats {
    pub(crate) fn add(&mut self, name: &str, type_name: &str, n_elements: u64, n_bytes: u64) {
        self.parameter_count = self.parameter_count.saturating_add(n_elements);
        self.tensor_count += 1;
        self.weights_bytes = self.weights_bytes.saturating_add(n_bytes);
        *self.types.entry(type_name.to_string()).or_default() += 1;
        let tb = self.type_bytes.entry(type_name.to_string()).or_default();
        *tb = tb.saturating_add(n_bytes);
        match layer_index(name) {
            Some(i) => {
                if self.layer_bytes.len() <= i {
                    self.layer_bytes.resize(i + 1, 0);
                }
                self.layer_bytes[i] = self.layer_bytes[i].saturating_add(n_bytes);
            }
            None => {
                self.non_layer_bytes = self.non_layer_bytes.saturating_add(n_bytes);
                if is_output_tensor(name) {
                    self.output_bytes = self.output_bytes.saturating_add(n_bytes);
                    if name.starts_with("output.") || name.starts_with("lm_head.") {
                        self.has_output_head = true;
                    }
                } else if is_token_embedding(name) {
                    self.embedding_bytes = self.embedding_bytes.saturating_add(n_bytes);
                }
            }
        }
    }

    /// The type holding the most bytes.
    fn dominant_type(&self) -> Option<String> {
        self.type_bytes
            .iter()
            .max_by_key(|(_, &b)| b)
            .map(|(t, _)| t.clone())
    }

    pub(crate) fn apply(self, info: &mut ModelInfo) {
        info.quantization = self.dominant_type();
        info.parameter_count = self.parameter_count;
        info.tensor_count = self.tensor_count;
        info.weights_bytes = self.weights_bytes;
        info.tensor_types = self.types;
        info.layer_bytes = self.layer_bytes;
        info.non_layer_bytes = self.non_layer_bytes;
        info.tied_embeddings = !self.has_output_head && self.embedding_bytes > 0;
        info.output_bytes = if info.tied_embeddings {
            self.output_bytes + self.embedding_bytes
        } else {
            self.output_bytes
        };
    }
}

fn is_output_tensor(name: &str) -> bool {
    name.starts_with("output.")
        || name.starts_with("output_norm.")
        || name.starts_with("lm_head.")
        || name.starts_with("model.norm.")
}

fn is_token_embedding(name: &str) -> bool {
    name.starts_with("token_embd.")
        || name.ends_with("embed_tokens.weight")
        || name == "transformer.wte.weight"
}
