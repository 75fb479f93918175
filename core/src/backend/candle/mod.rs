//! The candle backend: Hugging Face folders (config.json + safetensors + tokenizer.json) run
//! in-process on the CPU, in F32. Weights are read from the memory-mapped safetensors once and
//! shared by every session; each session has its own KV cache.

mod arch;
mod estimate;
mod tokenizer;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde_json::Value;

use super::{Backend, BackendChoice, LoadPlan, LoadedModel, Session, Token};
use crate::estimate::{EstimateOptions, MemoryEstimate};
use crate::format::{Format, SHARD_INDEX};
use crate::inspect::ModelInfo;
use crate::{CancelToken, Error, ErrorKind, Result};
use arch::Weights;
use tokenizer::HfTokenizer;

struct CandleBackend;

static BACKEND: CandleBackend = CandleBackend;

pub(super) fn backend() -> &'static dyn Backend {
    &BACKEND
}

impl Backend for CandleBackend {
    fn name(&self) -> &'static str {
        "candle"
    }

    fn choice(&self) -> BackendChoice {
        BackendChoice::Candle
    }

    fn check(&self, info: &ModelInfo) -> Result<()> {
        let dir = model_folder(info)?;
        let config = read_config(&dir)?;
        match arch::architecture(&config) {
            Some(a) if arch::SUPPORTED.contains(&a) => Ok(()),
            other => Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the candle backend does not run the {} architecture of {}; it runs: {}",
                    other.unwrap_or("(undeclared)"),
                    info.path.display(),
                    arch::SUPPORTED.join(", ")
                ),
            )),
        }
    }

    fn estimate(&self, info: &ModelInfo, opts: &EstimateOptions) -> Result<MemoryEstimate> {
        estimate::estimate(info, opts)
    }

    fn load(
        &self,
        info: &ModelInfo,
        plan: &LoadPlan,
        progress: &mut dyn FnMut(f32) -> bool,
    ) -> Result<Box<dyn LoadedModel>> {
        if !progress(0.0) {
            return Err(Error::new(ErrorKind::Cancelled, "model load cancelled"));
        }
        let folder = model_folder(info)?;
        let dir = folder.as_path();
        let config = read_config(dir)?;
        let tokenizer = HfTokenizer::load(dir)?;
        let files = weight_files(dir)?;
        let device = Device::Cpu;
        let dtype = DType::F32;
        // SAFETY: the files are mapped read-only while the VarBuilder lives (to the end of this
        // function); on the CPU candle copies each tensor out of the map, so nothing refers to
        // the mapping afterwards. A file truncated by another process during these few seconds
        // is the one case memmap cannot guard against, as for every mmap-based loader.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, &device) }.map_err(
            |e| Error::invalid_model(format!("{}: cannot map the weights: {e}", dir.display())),
        )?;
        // candle's Llama builder unwraps a missing tensor (a panic); turn that into the error it is.
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Weights::load(&config, vb, dtype, &device)
        }));
        let weights = match built {
            Ok(w) => w?,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                return Err(Error::invalid_model(format!(
                    "{}: the weights do not match config.json ({why}); a shard may be missing \
                     or from another model",
                    dir.display()
                )));
            }
        };
        let n_vocab = tokenizer.vocab_size();
        if let Some(v) = config.get("vocab_size").and_then(Value::as_u64) {
            if (v as usize) < n_vocab {
                return Err(Error::invalid_model(format!(
                    "{}: tokenizer.json has {n_vocab} tokens but config.json's vocab_size is {v}",
                    dir.display()
                )));
            }
        }
        // Gemma 3's sliding-window cache cannot take a multi-token step after the first: its
        // prompt goes in one piece.
        let n_batch = match weights {
            Weights::Gemma3(_) => plan.n_ctx,
            _ => plan.n_batch,
        };
        progress(1.0);
        // A BERT encoder's learned position table bounds its input, whatever n_ctx says.
        let n_ctx = match weights {
            Weights::Bert(_) => plan.n_ctx.min(
                config
                    .get("max_position_embeddings")
                    .and_then(Value::as_u64)
                    .map_or(512, |n| n.min(u64::from(u32::MAX)) as u32),
            ),
            _ => plan.n_ctx,
        };
        let embedding_size = match weights {
            Weights::Bert(_) => Weights::hidden_size(&config),
            _ => 0,
        };
        // candle's matmuls run on the current rayon pool: this model's own, sized by the plan,
        // so n_threads means what it means for llama.cpp and two models do not oversubscribe.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(plan.n_threads.max(1) as usize)
            .thread_name(|i| format!("uml-candle-{i}"))
            .build()
            .map_err(|e| Error::backend(format!("cannot start candle's threads: {e}")))?;
        Ok(Box::new(CandleLoaded {
            weights,
            tokenizer,
            device,
            pool,
            n_ctx,
            n_batch: n_batch.max(1),
            normalize: plan.normalize_embeddings,
            cls_pooling: read_config(&dir.join("1_Pooling"))
                .ok()
                .and_then(|p| p.get("pooling_mode_cls_token").and_then(Value::as_bool))
                .unwrap_or(false),
            embedding_size,
        }))
    }
}

/// The Hugging Face folder a model lives in: the folder itself, or the one holding the given
/// safetensors file or shard index; it must have a config.json.
fn model_folder(info: &ModelInfo) -> Result<PathBuf> {
    let folder_format = matches!(
        info.format,
        Format::HuggingFaceFolder | Format::Safetensors | Format::ShardedSafetensors
    );
    let dir = crate::format::model_dir(&info.path);
    if !folder_format || !dir.join("config.json").is_file() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{} is a {} model; the candle backend loads Hugging Face folders \
                 (config.json + *.safetensors + tokenizer.json)",
                info.path.display(),
                info.format.name()
            ),
        ));
    }
    Ok(dir)
}

fn read_config(dir: &Path) -> Result<Value> {
    let path = dir.join("config.json");
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid_model(format!("{} is not valid JSON: {e}", path.display())))
}

/// The safetensors files of a folder: the shards its index lists (each must exist), else
/// `model.safetensors`, else every `*.safetensors`.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join(SHARD_INDEX);
    let files: Vec<PathBuf> = if index.is_file() {
        let bytes = std::fs::read(&index).map_err(|e| Error::io(&index, e))?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::invalid_model(format!("{} is not valid JSON: {e}", index.display()))
        })?;
        let mut names: Vec<&str> = v
            .get("weight_map")
            .and_then(Value::as_object)
            .map(|m| m.values().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        names.sort_unstable();
        names.dedup();
        names.iter().map(|n| dir.join(n)).collect()
    } else if dir.join("model.safetensors").is_file() {
        vec![dir.join("model.safetensors")]
    } else {
        let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        all.sort();
        all
    };
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "{} lists the shard {} but it is missing; download the whole model again",
                index.display(),
                missing.display()
            ),
        ));
    }
    if files.is_empty() {
        return Err(Error::invalid_model(format!(
            "{} holds no safetensors weights (PyTorch .bin checkpoints are not loaded by the \
             candle backend yet: convert them to safetensors)",
            dir.display()
        )));
    }
    Ok(files)
}

struct CandleLoaded {
    weights: Weights,
    tokenizer: HfTokenizer,
    device: Device,
    pool: rayon::ThreadPool,
    n_ctx: u32,
    n_batch: u32,
    normalize: bool,
    /// sentence-transformers' pooling (1_Pooling/config.json): the [CLS] state, else the mean.
    cls_pooling: bool,
    embedding_size: usize,
}

impl LoadedModel for CandleLoaded {
    fn tokenize(&self, text: &str, add_special: bool) -> Result<Vec<Token>> {
        self.tokenizer.encode(text, add_special)
    }

    fn token_bytes(&self, token: Token) -> Vec<u8> {
        self.tokenizer.token_bytes(token)
    }

    fn special_token_text(&self, token: Token) -> Vec<u8> {
        self.tokenizer.special_text(token)
    }

    fn is_end_of_generation(&self, token: Token) -> bool {
        self.tokenizer.is_end_of_generation(token)
    }

    fn vocab_size(&self) -> u32 {
        u32::try_from(self.tokenizer.vocab_size()).unwrap_or(u32::MAX)
    }

    fn new_session(&self) -> Result<Box<dyn Session + '_>> {
        let state = self.weights.session().ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                "this is a sentence-embedding model (BERT); it cannot generate text: use embed",
            )
        })?;
        Ok(Box::new(CandleSession {
            owner: self,
            state,
            logits: Vec::new(),
            next_pos: 0,
        }))
    }

    fn embed(&self, text: &str, cancel: Option<&CancelToken>) -> Result<Vec<f32>> {
        if text.is_empty() {
            return Err(Error::invalid_argument(
                "embed: the text is empty; pass at least one character",
            ));
        }
        let tokens = self.tokenizer.encode(text, true)?;
        let limit = self.n_ctx as usize;
        if tokens.len() > limit {
            return Err(Error::new(
                ErrorKind::ContextOverflow,
                format!(
                    "embed: the text is {} tokens but at most {limit} fit (the model's positions); \
                     split the text into smaller chunks",
                    tokens.len()
                ),
            ));
        }
        if cancel.is_some_and(|c| c.is_cancelled()) {
            return Err(Error::new(ErrorKind::Cancelled, "embed cancelled"));
        }
        let ids: Vec<u32> = tokens.iter().map(|&t| t as u32).collect();
        let input = Tensor::new(ids.as_slice(), &self.device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(|e| Error::backend(format!("candle: {e}")))?;
        let mut vector = self
            .pool
            .install(|| self.weights.embed(&input, self.cls_pooling))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unsupported,
                    "embeddings from causal LMs are not offered by the candle backend; load a \
                     sentence-embedding model (BERT) or a GGUF through llama.cpp",
                )
            })?
            .map_err(|e| Error::backend(format!("candle encoder failed: {e}")))?;
        if self.normalize {
            crate::embed::l2_normalize(&mut vector);
        }
        Ok(vector)
    }

    fn embedding_size(&self) -> usize {
        self.embedding_size
    }
}

struct CandleSession<'m> {
    owner: &'m CandleLoaded,
    state: arch::State<'m>,
    logits: Vec<f32>,
    next_pos: u32,
}

impl Session for CandleSession<'_> {
    fn n_ctx(&self) -> u32 {
        self.owner.n_ctx
    }

    fn n_batch(&self) -> u32 {
        self.owner.n_batch
    }

    fn decode(&mut self, tokens: &[Token], first_pos: u32) -> Result<()> {
        if tokens.is_empty() || first_pos != self.next_pos {
            return Err(Error::internal(format!(
                "candle decode: {} tokens at position {first_pos}, expected position {}",
                tokens.len(),
                self.next_pos
            )));
        }
        let end = first_pos as usize + tokens.len();
        if end > self.owner.n_ctx as usize {
            return Err(Error::new(
                ErrorKind::ContextOverflow,
                format!("the context of {} tokens is full", self.owner.n_ctx),
            ));
        }
        let ids: Vec<u32> = tokens.iter().map(|&t| t as u32).collect();
        let input = Tensor::new(ids.as_slice(), &self.owner.device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(|e| Error::backend(format!("candle: {e}")))?;
        let state = &mut self.state;
        self.logits = self
            .owner
            .pool
            .install(|| state.forward(&input, first_pos as usize))
            .map_err(|e| Error::backend(format!("candle forward failed: {e}")))?;
        // Checkpoints often pad the output layer past the tokenizer's vocabulary; those rows
        // are no tokens and must never be sampled.
        self.logits.truncate(self.owner.tokenizer.vocab_size());
        self.next_pos = end as u32;
        Ok(())
    }

    fn logits(&self) -> Result<&[f32]> {
        if self.logits.is_empty() {
            return Err(Error::internal("logits read before decode"));
        }
        Ok(&self.logits)
    }
}

#[cfg(test)]
mod tests;
