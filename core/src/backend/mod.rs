//! Backends: the engines that actually run a model (llama.cpp for GGUF; candle and remote
//! later). Core owns the flow (inspect, estimate, select, the generation loop); a backend only
//! loads weights, tokenizes, decodes batches and samples.

#[cfg(feature = "llamacpp")]
mod llamacpp;
#[cfg(not(feature = "llamacpp"))]
#[path = "llamacpp_stub.rs"]
mod llamacpp;

use crate::inspect::ModelInfo;
use crate::options::KvCacheType;
use crate::sampling::GenerateParams;
use crate::{CancelToken, Result};
use serde::Serialize;

/// A token id in the model's vocabulary.
pub type Token = i32;

/// Everything a backend needs to load a model, resolved by core from `LoadOptions`, the
/// memory estimate and the hardware: no `Option`s, no `auto` left.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadPlan {
    pub n_ctx: u32,
    pub n_threads: u32,
    pub n_threads_batch: u32,
    pub n_batch: u32,
    pub n_ubatch: u32,
    pub gpu_layers: u32,
    pub use_mmap: bool,
    pub use_mlock: bool,
    pub kv_cache_type: KvCacheType,
    /// Loaded for embedding: the context made at load time is an embedding one.
    pub embeddings: bool,
    pub normalize_embeddings: bool,
}

/// An engine that can load some models.
pub trait Backend: Send + Sync {
    /// Short stable name ("llama.cpp").
    fn name(&self) -> &'static str;
    /// `Ok` if this backend can load the model, else why not (recorded when selection falls
    /// through to the next backend).
    fn check(&self, info: &ModelInfo) -> Result<()>;
    /// Load the weights. `progress` gets fractions in 0..=1 and returns false to abort the load
    /// (which then fails with `Cancelled`).
    fn load(
        &self,
        info: &ModelInfo,
        plan: &LoadPlan,
        progress: &mut dyn FnMut(f32) -> bool,
    ) -> Result<Box<dyn LoadedModel>>;
}

/// A model in memory. Shared by every thread that generates from it; each generation gets its
/// own `Session` (context and KV cache).
pub trait LoadedModel: Send + Sync {
    /// Tokenize; `add_special` adds BOS/EOS as the model wants. Special-token text such as
    /// `<|im_start|>` is parsed as the special token (chat templates rely on it).
    fn tokenize(&self, text: &str, add_special: bool) -> Result<Vec<Token>>;
    /// The raw bytes a token stands for (may be part of a UTF-8 character). Control tokens
    /// render as nothing.
    fn token_bytes(&self, token: Token) -> Vec<u8>;
    /// True for end-of-generation tokens (EOS, EOT, <|im_end|>, ...).
    fn is_end_of_generation(&self, token: Token) -> bool;
    fn vocab_size(&self) -> u32;
    /// A fresh generation state with the sampler chain built from `params`.
    fn new_session(&self, params: &GenerateParams) -> Result<Box<dyn Session + '_>>;
    /// Embed one text (pooled, L2-normalised if the plan says so).
    fn embed(&self, text: &str, cancel: Option<&CancelToken>) -> Result<Vec<f32>>;
    /// Width of the vectors `embed` returns.
    fn embedding_size(&self) -> usize;
}

/// One generation's state: a context with its KV cache and a sampler.
pub trait Session {
    fn n_ctx(&self) -> u32;
    /// The most tokens one `decode` call may take.
    fn n_batch(&self) -> u32;
    /// Evaluate `tokens` at positions `first_pos..`; logits are kept for the last token only.
    fn decode(&mut self, tokens: &[Token], first_pos: u32) -> Result<()>;
    /// Sample the next token from the last decoded position (the sampler accepts it).
    fn sample(&mut self) -> Result<Token>;
    /// The raw logits (one per vocabulary entry) of the last decoded position, before any
    /// sampler touched them.
    fn logits(&self) -> Result<&[f32]>;
}

/// The backends compiled into this build, in order of preference.
pub fn registry() -> Vec<&'static dyn Backend> {
    vec![llamacpp::backend()]
}

/// Pick the first backend that can load `info`; if none can, the error lists every reason.
pub fn select(info: &ModelInfo) -> Result<&'static dyn Backend> {
    let mut reasons = Vec::new();
    for backend in registry() {
        match backend.check(info) {
            Ok(()) => return Ok(backend),
            Err(e) => reasons.push((backend.name(), e)),
        }
    }
    // A single candidate keeps its own error kind and message; several are summarised.
    if reasons.len() == 1 {
        if let Some((_, e)) = reasons.pop() {
            return Err(e);
        }
    }
    let summary: Vec<String> = reasons
        .iter()
        .map(|(name, e)| format!("{name}: {e}"))
        .collect();
    Err(crate::Error::new(
        crate::ErrorKind::Unsupported,
        format!(
            "no backend in this build can load {}: {}",
            info.path.display(),
            summary.join("; ")
        ),
    ))
}
