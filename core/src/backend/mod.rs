//! Backends: the engines that actually run a model (llama.cpp for GGUF; candle and remote
//! later). Core owns the flow (inspect, estimate, select, the generation loop, sampling); a
//! backend only loads weights, tokenizes, decodes batches and exposes the logits.

#[cfg(feature = "candle")]
mod candle;
#[cfg(not(feature = "candle"))]
#[path = "candle_stub.rs"]
mod candle;
#[cfg(feature = "llamacpp")]
mod llamacpp;
#[cfg(not(feature = "llamacpp"))]
#[path = "llamacpp_stub.rs"]
mod llamacpp;
#[cfg(not(all(feature = "llamacpp", feature = "candle")))]
mod not_compiled;

pub(crate) mod batcher;

use crate::estimate::{EstimateOptions, MemoryEstimate};
use crate::inspect::ModelInfo;
use crate::options::KvCacheType;
use crate::{CancelToken, Result};
use serde::{Deserialize, Serialize};

/// A token id in the model's vocabulary.
pub type Token = i32;

/// Names one chat session (`Model::chat_session`) to the backend, so its cache can be kept
/// for it between turns.
pub type ConversationId = u64;

/// A LoRA adapter a generation runs with: its index in `LoadPlan::lora`, and its scale
/// (never 0: a generation at scale 0 runs the base model, `None`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdapterChoice {
    pub index: usize,
    pub scale: f32,
}

/// What a generation asks of the session it runs in.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SessionRequest {
    /// A private context decoded on its own, as a fresh single-sequence context would be:
    /// bit-equal to a lone caller (the `deterministic` option).
    pub alone: bool,
    /// The chat session this generation continues: a backend that keeps caches between
    /// generations keeps this conversation's for it, so its next turn evaluates only the new
    /// tokens.
    pub conversation: Option<ConversationId>,
    /// The LoRA adapter to run with (`None`: the base model). A cache evaluated with another
    /// adapter, or none, is not reused.
    pub adapter: Option<AdapterChoice>,
    /// Draft with the model's own prediction heads (`Session::draft_own`), within these
    /// limits; only where `LoadedModel::drafts_itself`.
    pub own_draft: Option<DraftLimits>,
}

impl SessionRequest {
    /// A private context decoded alone (benchmarks and traces measure it so).
    pub const ALONE: SessionRequest = SessionRequest {
        alone: true,
        conversation: None,
        adapter: None,
        own_draft: None,
    };
}

/// How much a generation drafts per step (`GenerateParams::draft_max` / `draft_min` /
/// `draft_p_min`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DraftLimits {
    /// Most tokens per draft (at least 1).
    pub max: u32,
    /// Fewer than this: no draft.
    pub min: u32,
    /// A drafted token less likely than this ends the draft.
    pub p_min: f32,
}

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
    /// Flash attention: `None` = the backend decides.
    pub flash_attention: Option<bool>,
    /// Weight element type for backends that convert weights on load (candle's folders).
    pub dtype: Option<crate::options::WeightDtype>,
    /// Loaded for embedding: the context made at load time is an embedding one.
    pub embeddings: bool,
    pub normalize_embeddings: bool,
    /// Most generations and embedding calls running at once (llama.cpp: the slots of the
    /// shared generation context); more wait in line.
    pub max_parallel: u32,
    /// Most callers waiting in that line; one more is refused with `Busy`.
    pub max_queued: u32,
    /// LoRA adapters to load with the weights (empty for a backend that has none).
    pub lora: Vec<crate::options::LoraAdapter>,
    /// Load the model's multi-token-prediction heads and draft with them (`LoadOptions::mtp`).
    pub mtp: bool,
    /// Drafted tokens one verification may reject in a generation's private context, with a
    /// draft model (0 without one): a recurrent state (Qwen3.5's linear attention) rolls back
    /// only to a snapshot of the last decode, and llama.cpp keeps this many per context, for
    /// the architectures it can roll back. Below `n_ubatch - 1`: the snapshots' positions
    /// and one more token share a micro-batch.
    pub draft_window: u32,
    /// Every generation runs in private contexts, because it drafts (a draft model, MTP heads)
    /// or is a draft: no shared batched context is made, and the memory planned for the
    /// slots goes to those contexts (at most `max_parallel` at once).
    pub private_generations: bool,
}

/// An engine that can load some models.
pub trait Backend: Send + Sync {
    /// Short stable name ("llama.cpp").
    fn name(&self) -> &'static str;
    /// The `backend` load option that asks for this backend.
    fn choice(&self) -> BackendChoice;
    /// `Ok` if this backend can load the model, else why not (recorded when selection falls
    /// through to the next backend).
    fn check(&self, info: &ModelInfo) -> Result<()>;
    /// The memory this backend would take to run `info` with `opts` (its own weights layout,
    /// KV cache and compute buffers).
    fn estimate(&self, info: &ModelInfo, opts: &EstimateOptions) -> Result<MemoryEstimate>;
    /// Whether this backend runs LoRA adapters (load option `lora`).
    fn runs_lora(&self) -> bool {
        false
    }
    /// Whether this backend drafts with a model's own multi-token-prediction heads (load
    /// option `mtp`).
    fn runs_mtp(&self) -> bool {
        false
    }
    /// The longest context this backend can give `info`, when it is below the model's own
    /// (the default context shrinks to it; asking for more is an error naming it).
    fn max_context(&self, _info: &ModelInfo) -> Option<u32> {
        None
    }
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
    /// Tokenize `text` as plain text: no BOS/EOS, and control-token text such as
    /// `<|im_start|>` stays text (the tokens of its characters), never the control token.
    fn tokenize_plain(&self, text: &str) -> Result<Vec<Token>>;
    /// The raw bytes a token stands for (may be part of a UTF-8 character). Control tokens
    /// render as nothing.
    fn token_bytes(&self, token: Token) -> Vec<u8>;
    /// The text of a control token (`<|im_end|>`), empty for other tokens; grammars use it to
    /// name control tokens.
    fn special_token_text(&self, token: Token) -> Vec<u8>;
    /// True for end-of-generation tokens (EOS, EOT, <|im_end|>, ...).
    fn is_end_of_generation(&self, token: Token) -> bool;
    fn vocab_size(&self) -> u32;
    /// A generation state. It may start on a cache that holds an earlier generation's tokens
    /// (see [`Session::reuse_prefix`]), and its decodes may be batched with other sessions'
    /// (then rounding can differ in the last bits from a lone decode); see [`SessionRequest`].
    fn new_session(&self, request: SessionRequest) -> Result<Box<dyn Session + '_>>;
    /// The chat session `id` has ended: what the backend kept for it may go to anyone.
    fn end_conversation(&self, _id: ConversationId) {}
    /// Embed one text (pooled, L2-normalised if the plan says so).
    fn embed(&self, text: &str, cancel: Option<&CancelToken>) -> Result<Vec<f32>>;
    /// Width of the vectors `embed` returns.
    fn embedding_size(&self) -> usize;
    /// How batched decoding has gone, for a backend that batches generations.
    fn batch_stats(&self) -> Option<BatchStats> {
        None
    }
    /// Whether sessions can draft with the model's own prediction heads (`Session::draft_own`,
    /// asked for with `SessionRequest::own_draft`).
    fn drafts_itself(&self) -> bool {
        false
    }
    /// Whether the model keeps a recurrent state (Mamba, or a hybrid such as Qwen3.5) that
    /// cannot drop the tokens of several decodes at once: such a model cannot be a draft.
    fn has_recurrent_state(&self) -> bool {
        false
    }
    /// The LoRA adapters loaded with the weights (`LoadPlan::lora`), which
    /// `SessionRequest::adapter` indexes.
    fn lora_adapters(&self) -> &[crate::options::LoraAdapter] {
        &[]
    }
}

/// Decodes of the shared generation context so far, and the sequence steps they carried:
/// `sequence_steps / decodes` is the mean batch width (1.0 = nothing was batched).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BatchStats {
    pub decodes: u64,
    pub sequence_steps: u64,
}

/// One generation's state: a context with its KV cache. Sampling is core's (`Sampler`).
pub trait Session {
    fn n_ctx(&self) -> u32;
    /// The most tokens one `decode` call may take; prompts are evaluated in chunks of this
    /// size, so a cancel lands within one chunk.
    fn n_batch(&self) -> u32;
    /// The most tokens of a prompt ending at position `end` to decode in one call from
    /// `first_pos`; [`n_batch`](Self::n_batch) unless the model's memory needs otherwise.
    fn prompt_chunk(&self, _first_pos: u32, _end: u32) -> u32 {
        self.n_batch()
    }
    /// Evaluate `tokens` at positions `first_pos..`; logits are kept for the last token only.
    fn decode(&mut self, tokens: &[Token], first_pos: u32) -> Result<()>;
    /// The raw logits (one per vocabulary entry) of the last decoded position, before any
    /// sampler touched them.
    fn logits(&self) -> Result<&[f32]>;
    /// Evaluate `tokens` (at most `n_batch`) as `decode` does, and return the logits of every
    /// position, in order (speculative decoding verifies a draft so); `logits` then gives the
    /// last one's. By default one `decode` per token, for backends without multi-output
    /// decodes.
    fn decode_all(&mut self, tokens: &[Token], first_pos: u32) -> Result<Vec<Vec<f32>>> {
        let mut all = Vec::with_capacity(tokens.len());
        for (i, &token) in tokens.iter().enumerate() {
            self.decode(&[token], first_pos + i as u32)?;
            all.push(self.logits()?.to_vec());
        }
        Ok(all)
    }
    /// Keep the longest prefix of `prompt` whose state this session already holds (left by an
    /// earlier generation on the same context: a repeated system prompt, the previous turns of
    /// a chat) and forget the rest; returns its length, at most `prompt.len() - 1` so the last
    /// token is decoded for its logits. Decoding then goes on from that position. A backend
    /// that keeps nothing between generations keeps nothing here.
    fn reuse_prefix(&mut self, _prompt: &[Token]) -> Result<usize> {
        Ok(0)
    }
    /// `Ok` when [`shift`](Self::shift) works on this model, else why not (`Unsupported`).
    fn can_shift(&self) -> Result<()> {
        Err(crate::Error::new(
            crate::ErrorKind::Unsupported,
            "this backend cannot shift its context: generate without context_shift (the \
             generation then stops with finish reason length when the context is full)",
        ))
    }
    /// A context shift: forget the `count` tokens after the first `keep` and move the later
    /// ones back by `count` positions, so decoding goes on at `held - count`.
    fn shift(&mut self, _keep: u32, _count: u32) -> Result<()> {
        self.can_shift()
    }
    /// Most drafted tokens one `decode_all` may verify when some may be rejected (dropped by
    /// the next decode): `None` when any number may (the memory drops any suffix).
    fn draft_window(&self) -> Option<usize> {
        None
    }
    /// Up to `limit` tokens to follow `history` (the generation's tokens: what this session
    /// evaluated and kept, then its last sampled token, not evaluated yet), drafted by the
    /// model's own prediction heads, for a session asked for with `SessionRequest::own_draft`.
    /// The next `decode` from position `history.len() - 1` verifies them; whatever it does
    /// not keep (it decodes from an earlier position later) is forgotten. None by default.
    fn draft_own(&mut self, _history: &[Token], _limit: usize) -> Result<Vec<Token>> {
        Ok(Vec::new())
    }
}

/// Which engine loads a model: the `backend` load option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum BackendChoice {
    /// The preferred engine for the format and hardware, falling back to the next one when a
    /// check, the memory estimate or the load itself fails. JSON: `"auto"`.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// llama.cpp (GGUF). JSON: `"llamacpp"`.
    #[serde(rename = "llamacpp")]
    LlamaCpp,
    /// candle (Hugging Face folders: config.json + safetensors + tokenizer.json). JSON:
    /// `"candle"`.
    #[serde(rename = "candle")]
    Candle,
}

impl BackendChoice {
    /// The JSON / CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::LlamaCpp => "llamacpp",
            BackendChoice::Candle => "candle",
        }
    }
}

/// A backend that was not used for a model, and why (kept on the model: `Model::skipped`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub backend: &'static str,
    /// Where it failed: "check", "estimate" or "load".
    pub stage: &'static str,
    pub kind: crate::ErrorKind,
    pub reason: String,
}

/// The llama.cpp CPU kernels this build runs: `"native"` (compiled for the building CPU), the
/// variant a portable build loaded for this CPU (`"haswell"`, `"skylakex"`), `"unavailable:
/// <why>"` when a portable build's modules cannot be loaded, or `None` without llama.cpp.
pub fn llama_cpp_cpu_kernels() -> Option<String> {
    llamacpp::cpu_kernels()
}

/// The backends compiled into this build, in order of preference.
pub fn registry() -> Vec<&'static dyn Backend> {
    vec![llamacpp::backend(), candle::backend()]
}

/// The backends to try, in order: the one `choice` names, or with `auto` every compiled-in
/// backend in order of preference.
pub fn candidates(choice: BackendChoice) -> Vec<&'static dyn Backend> {
    registry()
        .into_iter()
        .filter(|b| choice == BackendChoice::Auto || b.choice() == choice)
        .collect()
}

/// The error for a dtype asked of a GGUF, whose weights keep their stored types.
pub(crate) fn gguf_dtype_error(d: crate::options::WeightDtype) -> crate::Error {
    crate::Error::invalid_argument(format!(
        "load option dtype = \"{}\" applies to Hugging Face folders run by candle; a GGUF keeps \
         the types stored in the file (write another with `uml convert MODEL.gguf OUT.gguf \
         --to gguf --type f16`), so omit dtype",
        d.as_str()
    ))
}

/// `options`' LoRA adapters and MTP drafting on `backend`: an error naming the way out when it
/// cannot run them (before anything is sized or loaded for it).
pub(crate) fn check_extras(
    backend: &dyn Backend,
    options: &crate::LoadOptions,
) -> crate::Result<()> {
    let refuse = |what: &str| {
        Err(crate::Error::new(
            crate::ErrorKind::Unsupported,
            format!(
                "{what} run on the llama.cpp backend, not {}: load a GGUF model with backend \
                 \"llamacpp\" (or \"auto\"), or convert this one with `uml convert --to gguf`",
                backend.name()
            ),
        ))
    };
    if !options.lora.is_empty() && !backend.runs_lora() {
        return refuse("LoRA adapters");
    }
    if options.mtp && !backend.runs_mtp() {
        return refuse("multi-token-prediction drafts (load option mtp)");
    }
    Ok(())
}

/// The `mtp` load option on `info`: an error when the model has no prediction heads to draft
/// with.
pub(crate) fn check_mtp_heads(info: &ModelInfo, options: &crate::LoadOptions) -> crate::Result<()> {
    // Only a GGUF says (a folder goes to candle, which refuses mtp for a reason of its own).
    if !options.mtp || info.mtp_layers > 0 || info.format != crate::format::Format::Gguf {
        return Ok(());
    }
    Err(crate::Error::invalid_argument(format!(
        "load option mtp: {} has no multi-token-prediction heads to draft with (no {}.nextn_predict_layers; \
         Qwen3.5, GLM-4.5 and DeepSeek-V3 GGUFs have them): load it without mtp, or give a \
         draft_model of the same vocabulary",
        info.path.display(),
        info.architecture.as_deref().unwrap_or("<architecture>")
    )))
}

/// The error when no candidate could load the model. Backends that could not even take the
/// format (a failed check) are left out when another got further: the user needs that one's
/// reason (out of memory, a corrupt file), not "not a GGUF". A single remaining failure keeps
/// its own kind and message; several are summarised under the kind of the first (preferred)
/// one, which is what `auto` would have run: a GGUF too large for llama.cpp is OutOfMemory
/// even when the candle fallback then refuses its context length.
pub(crate) fn no_backend_error(path: &std::path::Path, skipped: &[Skipped]) -> crate::Error {
    let further: Vec<&Skipped> = skipped.iter().filter(|s| s.stage != "check").collect();
    let relevant: Vec<&Skipped> = if further.is_empty() {
        skipped.iter().collect()
    } else {
        further
    };
    if let [only] = relevant.as_slice() {
        return crate::Error::new(only.kind, only.reason.clone());
    }
    let kind = relevant
        .first()
        .map_or(crate::ErrorKind::Unsupported, |first| first.kind);
    let summary: Vec<String> = relevant
        .iter()
        .map(|s| format!("{} ({}): {}", s.backend, s.stage, s.reason))
        .collect();
    crate::Error::new(
        kind,
        format!(
            "no backend in this build could load {}: {}",
            path.display(),
            summary.join("; ")
        ),
    )
}
