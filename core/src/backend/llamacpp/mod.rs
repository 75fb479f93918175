//! The llama.cpp backend (GGUF), through the `llama-cpp-2` crate.
//!
//! Weights live in one `LlamaModel` shared by every thread (mmap by default). Generations run
//! on the slots of one shared context and are decoded together (`slots`); a generation that
//! asks to run alone (`deterministic`), and every embedding call, borrows a private context
//! from a small pool instead. A load whose generations draft (a draft model, MTP heads), or
//! that is a draft, makes no shared context: each generation runs in private ones.

mod cpu_backend;
mod lora;
mod mtp;
mod slots;

use super::{
    AdapterChoice, Backend, BackendChoice, ConversationId, LoadPlan, LoadedModel, Session,
    SessionRequest, Token,
};
use crate::estimate::{EstimateOptions, MemoryEstimate};
use crate::format::Format;
use crate::inspect::ModelInfo;
use crate::options::KvCacheType;
use crate::{CancelToken, Error, ErrorKind, Result};
use llama_cpp_2::context::params::{
    KvCacheType as LlamaKvType, LlamaContextParams, LlamaPoolingType,
};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use lora::Adapters;
use once_cell::sync::OnceCell;
use parking_lot::Mutex;
use slots::{SlotEngine, SlotSession, Slots};
use std::num::NonZeroU32;
use std::sync::Arc;

/// Idle contexts kept per model. One covers the common case (sequential calls) without
/// holding several KV caches' worth of memory after a burst of concurrent generations.
const IDLE_CONTEXTS: usize = 1;

/// Texts longer than this many tokens are refused by `embed` (the embedding context processes a
/// whole text in one micro-batch, and its compute buffer grows with the square of this).
const MAX_EMBED_TOKENS: u32 = 2048;

static BACKEND: LlamaCppBackend = LlamaCppBackend;

pub(super) fn backend() -> &'static dyn Backend {
    &BACKEND
}

/// llama.cpp may be initialised once per process; keep it for the process's lifetime.
fn llama() -> Result<&'static LlamaBackend> {
    static INSTANCE: OnceCell<LlamaBackend> = OnceCell::new();
    INSTANCE.get_or_try_init(|| {
        load_modules()?;
        LlamaBackend::init()
            .map_err(|e| Error::backend(format!("cannot initialise llama.cpp: {e}")))
    })
}

/// See `crate::backend::llama_cpp_cpu_kernels`.
pub(super) fn cpu_kernels() -> Option<String> {
    Some(match load_modules() {
        Ok(()) => cpu_backend::variant().unwrap_or_default(),
        Err(e) => format!("unavailable: {}", e.message()),
    })
}

/// Route llama.cpp's log to `tracing` (silent unless the host installs a subscriber), then load
/// its backend modules (a portable build's; nothing in a native one).
fn load_modules() -> Result<()> {
    static LOGS: std::sync::Once = std::sync::Once::new();
    LOGS.call_once(|| llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default()));
    cpu_backend::load()
}

/// llama.cpp's context creation mutates shared model state: never run two at once.
static NEW_CONTEXT_LOCK: Mutex<()> = Mutex::new(());

struct LlamaCppBackend;

impl Backend for LlamaCppBackend {
    fn name(&self) -> &'static str {
        "llama.cpp"
    }

    fn choice(&self) -> BackendChoice {
        BackendChoice::LlamaCpp
    }

    fn runs_lora(&self) -> bool {
        true
    }

    fn runs_mtp(&self) -> bool {
        true
    }

    fn estimate(&self, info: &ModelInfo, opts: &EstimateOptions) -> Result<MemoryEstimate> {
        crate::estimate::estimate(info, opts)
    }

    fn check(&self, info: &ModelInfo) -> Result<()> {
        match info.format {
            Format::Gguf => Ok(()),
            other => Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{} is a {} model; the llama.cpp backend loads GGUF files only (the \
                     candle backend runs Hugging Face folders; or convert it with llama.cpp's \
                     convert_hf_to_gguf.py)",
                    info.path.display(),
                    other.name()
                ),
            )),
        }
    }

    fn load(
        &self,
        info: &ModelInfo,
        plan: &LoadPlan,
        progress: &mut dyn FnMut(f32) -> bool,
    ) -> Result<Box<dyn LoadedModel>> {
        if let Some(d) = plan.dtype {
            return Err(super::gguf_dtype_error(d));
        }
        // A LoRA adapter that does not fit fails before the weights load.
        let adapter_files = Adapters::prepare(&info.path, &plan.lora)?;
        let backend = llama()?;
        let cancelled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let progress: *mut (dyn FnMut(f32) -> bool + '_) = progress;
        // SAFETY: only the lifetime is erased (same fat-pointer layout); see the call site below
        // for why every use happens while the borrow is alive.
        let progress_ptr = ProgressPtr(unsafe {
            std::mem::transmute::<
                *mut (dyn FnMut(f32) -> bool + '_),
                *mut (dyn FnMut(f32) -> bool + 'static),
            >(progress)
        });
        let flag = cancelled.clone();
        let params = LlamaModelParams::default()
            .with_n_gpu_layers(plan.gpu_layers)
            .with_use_mmap(plan.use_mmap)
            .with_use_mlock(plan.use_mlock)
            .with_load_mtp(plan.mtp)
            .with_progress_callback(move |fraction| {
                // SAFETY: the closure lives in `params`, which is dropped before `load` returns,
                // and llama.cpp calls it only inside `load_from_file` below, on this thread;
                // so the caller's `progress` borrow outlives every call.
                let keep_going = unsafe { (*progress_ptr.get())(fraction) };
                if !keep_going {
                    flag.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                keep_going
            });
        let model = LlamaModel::load_from_file(backend, &info.path, &params);
        drop(params);
        let model = match model {
            Ok(model) => model,
            Err(_) if cancelled.load(std::sync::atomic::Ordering::Relaxed) => {
                return Err(Error::new(ErrorKind::Cancelled, "model load cancelled by the progress callback"))
            }
            Err(e) => {
                return Err(Error::backend(format!(
                    "llama.cpp could not load {}: {e} (the file may be truncated, or use an architecture this llama.cpp does not know; set RUST_LOG=llama_cpp_2=info for llama.cpp's log)",
                    info.path.display()
                )))
            }
        };
        let mut model = model;
        let adapters = Arc::new(Adapters::load(
            &mut model,
            &info.path,
            &plan.lora,
            &adapter_files,
        )?);
        drop(adapter_files);
        let model = Arc::new(model);
        let pooling = pooling_type(info);
        let shift_refused = shift_refusal(info, &model);
        let mut loaded = LlamaLoaded {
            shift_refused,
            generation_pool: Mutex::new(Vec::new()),
            embedding_pool: Mutex::new(Vec::new()),
            mtp_pool: Mutex::new(Vec::new()),
            slots: None,
            plan: plan.clone(),
            pooling,
            adapters,
            model,
        };
        // Create the context now (of the kind the model was loaded for) so a context that
        // cannot be allocated fails the load, not the first call, and the first call does not
        // pay for the allocation.
        if plan.embeddings {
            let ctx = loaded.new_context(ContextKind::Embedding)?;
            loaded.return_context(ctx, true);
        } else if plan.private_generations {
            // Every generation drafts (or is a draft) in private contexts: a shared one would
            // hold its slots' memory unused.
            if !plan.mtp {
                let mut ctx = loaded.new_context(ContextKind::Alone)?;
                if plan.draft_window > 0
                    && loaded.has_recurrent_state()
                    && !rolls_back(&mut ctx.ctx)
                {
                    return Err(no_rollback(info, "load it without draft_model"));
                }
                loaded.return_context(ctx, false);
            }
        } else {
            let shared = loaded.new_context(ContextKind::Slots)?;
            loaded.slots = Some(Slots::new(
                SlotEngine::new(shared, loaded.adapters.clone()),
                plan.max_parallel,
            )?);
        }
        // A model whose heads this llama.cpp cannot run fails the load, not its generations;
        // the pair made to find out serves generations with the default limits.
        if plan.mtp {
            let limits = super::DraftLimits {
                max: crate::speculative::MTP_MAX_DRAFT,
                min: 0,
                p_min: 0.0,
            };
            let mut pair = mtp::MtpPair::new(&loaded, limits)?;
            if loaded.has_recurrent_state() && !pair.rolls_back() {
                return Err(no_rollback(info, "load it without mtp"));
            }
            loaded.return_mtp_pair(pair);
        }
        Ok(Box::new(loaded))
    }
}

/// Whether `ctx` (empty) can drop the last of two tokens it decoded: a recurrent state rolls
/// back only to the snapshots llama.cpp keeps, which it does only for the architectures it
/// knows how to (Qwen3.5, LFM2, Nemotron-H, ...; not Mamba, RWKV or Qwen3-Next). Leaves the
/// context empty.
fn rolls_back(ctx: &mut LlamaContext<'_>) -> bool {
    let mut batch = LlamaBatch::new(2, 1);
    let decoded = batch.add(LlamaToken(0), 0, &[0], false).is_ok()
        && batch.add(LlamaToken(0), 1, &[0], true).is_ok()
        && ctx.decode(&mut batch).is_ok();
    let dropped = decoded
        && ctx
            .clear_kv_cache_seq(Some(0), Some(1), None)
            .unwrap_or(false);
    ctx.clear_kv_cache();
    dropped
}

/// The error for a drafting load of a model whose recurrent state llama.cpp cannot roll back.
fn no_rollback(info: &ModelInfo, fix: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!(
            "speculative decoding needs to roll a rejected draft back, and this llama.cpp cannot \
             roll back the recurrent state of {} ({} architecture): {fix}",
            info.path.display(),
            info.architecture.as_deref().unwrap_or("its")
        ),
    )
}

/// A raw pointer to the caller's progress callback, movable into llama-cpp-2's 'static closure.
struct ProgressPtr(*mut dyn FnMut(f32) -> bool);
impl ProgressPtr {
    fn get(&self) -> *mut dyn FnMut(f32) -> bool {
        self.0
    }
}

/// Why a context shift would not work on this model, if it would not. llama.cpp aborts the
/// process on a K-shift its memory cannot do, so this is decided from the model before any
/// shift: sliding-window layers keep fewer cells than the context (llama.cpp refuses to shift
/// them unless the window is as large as the context), recurrent and hybrid state has no
/// positions to move, and multi-section RoPE (vision-language models) needs more than one
/// position per token.
fn shift_refusal(info: &ModelInfo, model: &LlamaModel) -> Option<String> {
    let arch = info.architecture.as_deref().unwrap_or("");
    let has = |key: &str| info.metadata.contains_key(&format!("{arch}.{key}"));
    let why = if model.is_recurrent() || model.is_hybrid() {
        "its recurrent state has no positions to move"
    } else if has("attention.sliding_window") {
        "its sliding-window attention layers keep fewer tokens than the context"
    } else if has("rope.dimension_sections") {
        "its multi-section RoPE gives a token several positions"
    } else if arch == "step35" {
        "its layers use different RoPE widths"
    } else {
        return None;
    };
    Some(format!(
        "context_shift is not supported for this {arch} model: {why}; generate without it (the \
         generation stops with finish reason length when the context is full) or load a \
         larger n_ctx"
    ))
}

/// The model's own pooling, from `{arch}.pooling_type` as `inspect` read it (so `ModelInfo`
/// shows the pooling `embed` uses). Decoder-only models declare none and get mean pooling, so
/// `embed` still returns one vector per text; so do "none" (one vector per token) and "rank"
/// (a reranker's score, not an embedding), which `embed` does not offer.
fn pooling_type(info: &ModelInfo) -> LlamaPoolingType {
    match info.pooling_type.as_deref() {
        Some("cls") => LlamaPoolingType::Cls,
        Some("last") => LlamaPoolingType::Last,
        _ => LlamaPoolingType::Mean,
    }
}

fn llama_kv_type(t: KvCacheType) -> LlamaKvType {
    match t {
        KvCacheType::F32 => LlamaKvType::F32,
        KvCacheType::F16 => LlamaKvType::F16,
        KvCacheType::Q8_0 => LlamaKvType::Q8_0,
        KvCacheType::Q4_0 => LlamaKvType::Q4_0,
    }
}

/// The contexts a model makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContextKind {
    /// The shared generation context, a sequence per slot.
    Slots,
    /// A private generation context, one sequence.
    Alone,
    /// An embedding context, one text at a time.
    Embedding,
}

/// A context bound to its model. Field order matters: `ctx` is dropped before `_model`.
struct PooledContext {
    ctx: LlamaContext<'static>,
    /// The tokens whose state the context holds, at positions 0.. of sequence 0: what an
    /// earlier generation evaluated, kept so the next one can start from a shared prefix.
    cached: Vec<Token>,
    /// Tokens at the end of `cached` that a recurrent state can drop: llama.cpp snapshots the
    /// state only within the last decode (the one before a rejected draft's), and a second
    /// rollback before the next decode is refused.
    rollback_room: usize,
    /// The LoRA adapter set on the context (`cached` was evaluated with it).
    adapter: Option<AdapterChoice>,
    _model: Arc<LlamaModel>,
}

impl PooledContext {
    /// Forget every token the context holds.
    fn forget(&mut self) {
        self.ctx.clear_kv_cache();
        self.cached.clear();
        self.rollback_room = 0;
    }

    /// Keep the first `n` cached tokens and forget the rest; false when the memory cannot
    /// drop a suffix (then nothing is kept).
    fn truncate(&mut self, n: usize) -> bool {
        if n >= self.cached.len() {
            return n == self.cached.len();
        }
        let Ok(from) = u32::try_from(n) else {
            self.forget();
            return false;
        };
        let recurrent = self.has_recurrent_state();
        // Past the snapshots, llama.cpp would restore a stale state: start afresh instead.
        if recurrent && self.cached.len() - n > self.rollback_room {
            self.forget();
            return false;
        }
        let kept = drop_from(&mut self.ctx, 0, from, recurrent);
        self.cached.truncate(if kept { n } else { 0 });
        self.rollback_room = 0;
        kept
    }

    /// Whether the model keeps a recurrent state (Mamba, or a hybrid such as Qwen3.5), which
    /// rolls back only to a snapshot of the last decode.
    fn has_recurrent_state(&self) -> bool {
        self._model.is_recurrent() || self._model.is_hybrid()
    }
}

/// Drop what sequence `seq` holds from position `from` on. False when the memory cannot drop
/// a suffix (a sliding window or a recurrent state already lost the start, so the prefix is
/// not all there to keep): then the whole sequence is dropped. A `recurrent` state's removal
/// succeeds only back to a snapshot llama.cpp kept, and keeps the whole prefix when it
/// does; the caller must not ask for more than the last decode (see
/// `PooledContext::rollback_room`): past it, llama.cpp would restore a stale snapshot.
fn drop_from(ctx: &mut LlamaContext<'static>, seq: i32, from: u32, recurrent: bool) -> bool {
    let seq_id = seq as u32;
    if ctx.kv_cache_seq_pos_max(seq) < i32::try_from(from).unwrap_or(i32::MAX) {
        // Nothing at or after `from`: the usual case, the next token of a generation.
        return true;
    }
    if from == 0 {
        return ctx
            .clear_kv_cache_seq(Some(seq_id), None, None)
            .unwrap_or(false);
    }
    let whole = ctx.kv_cache_seq_pos_min(seq) <= 0;
    let removed = ctx
        .clear_kv_cache_seq(Some(seq_id), Some(from), None)
        .unwrap_or(false);
    if removed && (whole || recurrent) {
        return true;
    }
    let _ = ctx.clear_kv_cache_seq(Some(seq_id), None, None);
    false
}

// SAFETY: a llama.cpp context may be used from any thread as long as only one thread uses it at
// a time; a `PooledContext` is owned by exactly one session (or the pool's mutex) at a time.
unsafe impl Send for PooledContext {}

struct LlamaLoaded {
    /// Why this model's memory cannot take a context shift (`None`: it can).
    shift_refused: Option<String>,
    /// Private contexts for generations that run alone.
    generation_pool: Mutex<Vec<PooledContext>>,
    embedding_pool: Mutex<Vec<PooledContext>>,
    /// Idle context pairs of generations that drafted with the model's own heads.
    mtp_pool: Mutex<Vec<mtp::MtpPair>>,
    /// The shared generation context (none when loaded for embeddings, or when every
    /// generation drafts in private contexts: `LoadPlan::private_generations`).
    slots: Option<Slots>,
    plan: LoadPlan,
    pooling: LlamaPoolingType,
    /// The LoRA adapters of `plan.lora`.
    adapters: Arc<Adapters>,
    model: Arc<LlamaModel>,
}

impl LlamaLoaded {
    /// Tokens one text may have in `embed`: the context, capped by `MAX_EMBED_TOKENS` and by the
    /// positions the model was trained on. The last cap matters for BERT-style encoders, whose
    /// learned position table has exactly `n_ctx_train` rows: a longer text makes llama.cpp
    /// index past it and abort the process (GGML_ASSERT in get_rows), whatever `n_ctx` says.
    fn embedding_ctx_size(&self) -> u32 {
        let trained = self.model.n_ctx_train();
        let limit = self.plan.n_ctx.min(MAX_EMBED_TOKENS);
        if trained > 0 {
            limit.min(trained)
        } else {
            limit
        }
    }

    fn new_context(&self, kind: ContextKind) -> Result<PooledContext> {
        let (params, n_ctx) = self.context_params(kind);
        let ctx = self.create_context(params, n_ctx)?;
        // SAFETY: the context borrows the model; we store an `Arc` of that same model beside it in
        // `PooledContext`, whose field order drops the context first, so the borrow never
        // outlives the model.
        let ctx: LlamaContext<'static> = unsafe { std::mem::transmute(ctx) };
        Ok(PooledContext {
            ctx,
            cached: Vec::new(),
            rollback_room: 0,
            adapter: None,
            _model: self.model.clone(),
        })
    }

    /// A context of `n_ctx` tokens on the model (llama.cpp cannot create two at once).
    fn create_context(&self, params: LlamaContextParams, n_ctx: u32) -> Result<LlamaContext<'_>> {
        let _guard = NEW_CONTEXT_LOCK.lock();
        self.model.new_context(llama()?, params).map_err(|e| {
            Error::new(
                ErrorKind::OutOfMemory,
                format!(
                    "llama.cpp could not create a context of {n_ctx} tokens: {e} (try a smaller n_ctx or kv_cache_type \"q8_0\")"
                ),
            )
        })
    }

    /// The parameters of a context of `kind`, and its length in tokens.
    fn context_params(&self, kind: ContextKind) -> (LlamaContextParams, u32) {
        let plan = &self.plan;
        let n_threads = i32::try_from(plan.n_threads).unwrap_or(i32::MAX);
        let n_threads_batch = i32::try_from(plan.n_threads_batch).unwrap_or(i32::MAX);
        let embeddings = kind == ContextKind::Embedding;
        let (n_ctx, n_batch, n_ubatch, n_seq) = match kind {
            ContextKind::Embedding => {
                let n = self.embedding_ctx_size();
                (n, n, n, 1)
            }
            ContextKind::Alone => (plan.n_ctx, plan.n_batch, plan.n_ubatch, 1),
            // One unified cache of n_ctx cells per slot: any slot may fill its own n_ctx
            // without taking cells from another, and one decode may mix any sequences
            // (a split KV cache batches only runs of consecutive sequence ids).
            // Room in one decode for a whole prompt chunk and every slot's next token, so the
            // running generations step along with a prompt instead of waiting for it.
            ContextKind::Slots => {
                let slots = plan.max_parallel.max(1);
                (
                    plan.n_ctx.saturating_mul(slots),
                    plan.n_batch.saturating_add(slots),
                    plan.n_ubatch,
                    slots,
                )
            }
        };
        let mut params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_ubatch)
            .with_n_seq_max(n_seq)
            .with_kv_unified(true)
            .with_n_threads(n_threads)
            .with_n_threads_batch(n_threads_batch)
            .with_type_k(llama_kv_type(plan.kv_cache_type))
            .with_type_v(llama_kv_type(plan.kv_cache_type))
            .with_flash_attention_policy(match plan.flash_attention {
                None => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_AUTO,
                Some(true) => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED,
                Some(false) => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED,
            });
        if embeddings {
            params = params.with_embeddings(true).with_pooling_type(self.pooling);
        }
        if kind == ContextKind::Alone {
            // Snapshots of a recurrent state to roll a rejected draft back to (llama.cpp
            // keeps none for a model without one).
            params = params.with_n_rs_seq(plan.draft_window);
        }
        (params, n_ctx)
    }

    fn pool(&self, embeddings: bool) -> &Mutex<Vec<PooledContext>> {
        if embeddings {
            &self.embedding_pool
        } else {
            &self.generation_pool
        }
    }

    /// An idle context, or a new one. A generation context keeps what it holds (a session
    /// reuses or forgets it as it decodes); an embedding context starts empty.
    fn take_context(&self, embeddings: bool) -> Result<PooledContext> {
        let idle = self.pool(embeddings).lock().pop();
        match idle {
            Some(mut pooled) => {
                if embeddings {
                    pooled.forget();
                }
                Ok(pooled)
            }
            None if embeddings => self.new_context(ContextKind::Embedding),
            None => self.new_context(ContextKind::Alone),
        }
    }

    /// An idle context pair that drafts within `limits`, if the pool has one.
    fn take_mtp_pair(&self, limits: super::DraftLimits) -> Option<mtp::MtpPair> {
        let mut pool = self.mtp_pool.lock();
        let n_ubatch = self.plan.n_ubatch;
        let at = pool
            .iter()
            .position(|pair| pair.drafts_within(limits, n_ubatch))?;
        Some(pool.swap_remove(at))
    }

    /// Keep `pair` for the next generation; the most recent pairs win (their limits are
    /// likely the next generation's).
    fn return_mtp_pair(&self, pair: mtp::MtpPair) {
        let mut pool = self.mtp_pool.lock();
        if pool.len() >= IDLE_CONTEXTS {
            pool.remove(0);
        }
        pool.push(pair);
    }

    fn return_context(&self, pooled: PooledContext, embeddings: bool) {
        let mut pool = self.pool(embeddings).lock();
        if pool.len() < IDLE_CONTEXTS {
            pool.push(pooled);
        }
    }
}

impl LoadedModel for LlamaLoaded {
    fn tokenize(&self, text: &str, add_special: bool) -> Result<Vec<Token>> {
        let tokens = self
            .model
            .vocab()
            .tokenize(text.as_bytes(), add_special, true);
        Ok(tokens.into_iter().map(|t| t.0).collect())
    }

    fn tokenize_plain(&self, text: &str) -> Result<Vec<Token>> {
        let tokens = self.model.vocab().tokenize(text.as_bytes(), false, false);
        Ok(tokens.into_iter().map(|t| t.0).collect())
    }

    fn token_bytes(&self, token: Token) -> Vec<u8> {
        self.model
            .vocab()
            .token_to_piece(LlamaToken(token), false, None)
    }

    fn special_token_text(&self, token: Token) -> Vec<u8> {
        if !self.model.vocab().is_control(LlamaToken(token)) {
            return Vec::new();
        }
        self.model
            .vocab()
            .token_to_piece(LlamaToken(token), true, None)
    }

    fn is_end_of_generation(&self, token: Token) -> bool {
        self.model.vocab().is_eog(LlamaToken(token))
    }

    fn vocab_size(&self) -> u32 {
        u32::try_from(self.model.n_vocab()).unwrap_or(0)
    }

    fn new_session(&self, request: SessionRequest) -> Result<Box<dyn Session + '_>> {
        // The heads draft for the base model: a generation with an adapter runs undrafted.
        if let (Some(limits), true, None) = (request.own_draft, self.plan.mtp, request.adapter) {
            return Ok(Box::new(mtp::MtpSession::new(self, limits)?));
        }
        if let (Some(slots), false) = (&self.slots, request.alone) {
            return Ok(Box::new(SlotSession::new(self, slots, request)?));
        }
        let mut ctx = self.take_context(false)?;
        // What the context holds was evaluated with its adapter: of no use with another.
        if ctx.adapter != request.adapter {
            ctx.forget();
        }
        if let Err(e) = self.adapters.apply(&mut ctx, request.adapter) {
            self.return_context(ctx, false);
            return Err(e);
        }
        let n_batch = self.plan.n_batch;
        Ok(Box::new(LlamaSession {
            owner: self,
            ctx: Some(ctx),
            batch: LlamaBatch::new(n_batch as usize, 1),
            last_index: -1,
        }))
    }

    fn end_conversation(&self, id: ConversationId) {
        if let Some(slots) = &self.slots {
            slots.end_conversation(id);
        }
    }

    fn embed(&self, text: &str, cancel: Option<&CancelToken>) -> Result<Vec<f32>> {
        // Checked before tokenizing: BERT-style vocabularies add [CLS]/[SEP] even to "", and a
        // vector of those alone describes no text.
        if text.is_empty() {
            return Err(Error::invalid_argument(
                "embed: the text is empty; pass at least one character",
            ));
        }
        let tokens = self.tokenize(text, true)?;
        let limit = self.embedding_ctx_size();
        if tokens.is_empty() {
            return Err(Error::invalid_argument(
                "embed: the text is empty after tokenization",
            ));
        }
        if tokens.len() > limit as usize {
            return Err(Error::new(
                ErrorKind::ContextOverflow,
                format!(
                    "embed: the text is {} tokens but at most {limit} fit (n_ctx {}, trained context {}, cap {MAX_EMBED_TOKENS}); split the text into smaller chunks",
                    tokens.len(),
                    self.plan.n_ctx,
                    self.model.n_ctx_train()
                ),
            ));
        }
        if cancel.is_some_and(|c| c.is_cancelled()) {
            return Err(Error::new(ErrorKind::Cancelled, "embed cancelled"));
        }
        let mut pooled = self.take_context(true)?;
        let mut batch = LlamaBatch::new(tokens.len(), 1);
        for (i, &t) in tokens.iter().enumerate() {
            batch
                .add(LlamaToken(t), i as i32, &[0], true)
                .map_err(|e| Error::internal(format!("embed: batch add failed: {e}")))?;
        }
        let result = pooled
            .ctx
            .decode(&mut batch)
            .map_err(|e| Error::backend(format!("embed: llama.cpp decode failed: {e}")))
            .and_then(|()| {
                pooled
                    .ctx
                    .embeddings_seq_ith(0)
                    .map(|v| v.to_vec())
                    .map_err(|e| Error::backend(format!("embed: no pooled embedding: {e}")))
            });
        self.return_context(pooled, true);
        let mut vector = result?;
        if self.plan.normalize_embeddings {
            crate::embed::l2_normalize(&mut vector);
        }
        Ok(vector)
    }

    fn embedding_size(&self) -> usize {
        usize::try_from(self.model.n_embd_out()).unwrap_or(0)
    }

    fn batch_stats(&self) -> Option<super::BatchStats> {
        self.slots.as_ref().map(Slots::stats)
    }

    fn drafts_itself(&self) -> bool {
        self.plan.mtp
    }

    fn has_recurrent_state(&self) -> bool {
        self.model.is_recurrent() || self.model.is_hybrid()
    }

    fn lora_adapters(&self) -> &[crate::options::LoraAdapter] {
        &self.plan.lora
    }
}

struct LlamaSession<'m> {
    owner: &'m LlamaLoaded,
    ctx: Option<PooledContext>,
    batch: LlamaBatch<'static>,
    last_index: i32,
}

impl LlamaSession<'_> {
    /// Decode `tokens` from `first_pos`; with `all_logits`, every position keeps its logits.
    fn decode_batch(&mut self, tokens: &[Token], first_pos: u32, all_logits: bool) -> Result<()> {
        if tokens.is_empty() || tokens.len() > self.owner.plan.n_batch as usize {
            return Err(Error::internal(format!(
                "decode: {} tokens for a batch of {}",
                tokens.len(),
                self.owner.plan.n_batch
            )));
        }
        let pooled = self
            .ctx
            .as_mut()
            .ok_or_else(|| Error::internal("session used after its context was returned"))?;
        // Decoding at a position the context already holds replaces what follows it.
        let first = first_pos as usize;
        if first > pooled.cached.len() {
            return Err(Error::internal(format!(
                "decode at position {first} but the context holds {} tokens",
                pooled.cached.len()
            )));
        }
        if !pooled.truncate(first) {
            return Err(Error::backend(format!(
                "llama.cpp could not drop the context's tokens after position {first}"
            )));
        }
        fill_batch(&mut self.batch, tokens, first_pos, all_logits)?;
        let last = tokens.len() - 1;
        let pooled = self
            .ctx
            .as_mut()
            .ok_or_else(|| Error::internal("session used after its context was returned"))?;
        let result = pooled.ctx.decode(&mut self.batch);
        match &result {
            Ok(()) => {
                pooled.cached.extend_from_slice(tokens);
                pooled.rollback_room = tokens.len() - 1;
            }
            // What the failed batch left behind is unknown: start the next generation afresh.
            Err(_) => pooled.forget(),
        }
        result.map_err(|e| decode_error(e, self.owner.plan.n_ctx))?;
        self.last_index = last as i32;
        Ok(())
    }
}

/// Put `tokens` in `batch` for sequence 0 from position `first_pos`, with logits for the last
/// one (`all_logits`: for every one).
fn fill_batch(
    batch: &mut LlamaBatch<'static>,
    tokens: &[Token],
    first_pos: u32,
    all_logits: bool,
) -> Result<()> {
    batch.clear();
    let last = tokens.len().saturating_sub(1);
    for (i, &t) in tokens.iter().enumerate() {
        batch
            .add(
                LlamaToken(t),
                (first_pos as usize + i) as i32,
                &[0],
                i == last || all_logits,
            )
            .map_err(|e| Error::internal(format!("decode: batch add failed: {e}")))?;
    }
    Ok(())
}

/// A failed decode of a context of `n_ctx` tokens, as core's error.
fn decode_error(e: llama_cpp_2::DecodeError, n_ctx: u32) -> Error {
    match e {
        llama_cpp_2::DecodeError::NoKvCacheSlot => Error::new(
            ErrorKind::ContextOverflow,
            format!("the context of {n_ctx} tokens is full"),
        ),
        other => Error::backend(format!("llama.cpp decode failed: {other}")),
    }
}

impl Session for LlamaSession<'_> {
    fn n_ctx(&self) -> u32 {
        self.owner.plan.n_ctx
    }

    fn n_batch(&self) -> u32 {
        self.owner.plan.prompt_chunk()
    }

    fn decode(&mut self, tokens: &[Token], first_pos: u32) -> Result<()> {
        self.decode_batch(tokens, first_pos, false)
    }

    fn decode_all(&mut self, tokens: &[Token], first_pos: u32) -> Result<Vec<Vec<f32>>> {
        self.decode_batch(tokens, first_pos, true)?;
        let ctx = self
            .ctx
            .as_ref()
            .ok_or_else(|| Error::internal("session used after its context was returned"))?;
        Ok((0..tokens.len() as i32)
            .map(|i| ctx.ctx.get_logits_ith(i).to_vec())
            .collect())
    }

    fn can_shift(&self) -> Result<()> {
        self.owner.can_shift()
    }

    fn shift(&mut self, keep: u32, count: u32) -> Result<()> {
        self.owner.can_shift()?;
        let pooled = self
            .ctx
            .as_mut()
            .ok_or_else(|| Error::internal("session used after its context was returned"))?;
        shift_sequence(&mut pooled.ctx, 0, &mut pooled.cached, keep, count)
    }

    fn draft_window(&self) -> Option<usize> {
        let pooled = self.ctx.as_ref()?;
        pooled
            .has_recurrent_state()
            .then_some(self.owner.plan.draft_window as usize)
    }

    fn reuse_prefix(&mut self, prompt: &[Token]) -> Result<usize> {
        let pooled = self
            .ctx
            .as_mut()
            .ok_or_else(|| Error::internal("session used after its context was returned"))?;
        let shared = pooled
            .cached
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len().saturating_sub(1));
        Ok(if pooled.truncate(shared) { shared } else { 0 })
    }

    fn logits(&self) -> Result<&[f32]> {
        // Checked here because llama-cpp-2 panics on a position without logits.
        if self.last_index < 0 {
            return Err(Error::internal("logits read before decode"));
        }
        let ctx = self
            .ctx
            .as_ref()
            .ok_or_else(|| Error::internal("session used after its context was returned"))?;
        Ok(ctx.ctx.get_logits_ith(self.last_index))
    }
}

impl LoadPlan {
    /// Prompt tokens per decode call: one micro-batch (llama.cpp computes a decode call's
    /// n_batch tokens n_ubatch at a time, and a cancel can only land between calls), so a
    /// cancel during a long prompt waits for one micro-batch at most.
    fn prompt_chunk(&self) -> u32 {
        self.n_ubatch.min(self.n_batch).max(1)
    }
}

impl LlamaLoaded {
    fn can_shift(&self) -> Result<()> {
        match &self.shift_refused {
            None => Ok(()),
            Some(why) => Err(Error::new(ErrorKind::Unsupported, why.clone())),
        }
    }
}

/// Forget the `count` tokens of sequence `seq` after its first `keep` and move the rest back
/// by `count` positions (llama.cpp applies the RoPE shift to the keys on the next decode);
/// `held` (the sequence's tokens) follows.
fn shift_sequence(
    ctx: &mut LlamaContext<'static>,
    seq: i32,
    held: &mut Vec<Token>,
    keep: u32,
    count: u32,
) -> Result<()> {
    let (from, to) = (keep as usize, keep as usize + count as usize);
    if to > held.len() {
        return Err(Error::internal(format!(
            "shift of {count} tokens after {keep} but the sequence holds {}",
            held.len()
        )));
    }
    let shifted = ctx
        .clear_kv_cache_seq(Some(seq as u32), Some(keep), Some(keep + count))
        .map_err(|e| Error::internal(format!("context shift: {e}")))
        .and_then(|_| {
            ctx.kv_cache_seq_add(seq, Some(keep + count), None, -(count as i32))
                .map_err(|e| Error::internal(format!("context shift: {e}")))
        });
    if let Err(e) = shifted {
        // What the sequence holds now is unknown: start over next time.
        let _ = ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
        held.clear();
        return Err(e);
    }
    held.drain(from..to);
    Ok(())
}

impl Drop for LlamaSession<'_> {
    fn drop(&mut self) {
        if let Some(ctx) = self.ctx.take() {
            self.owner.return_context(ctx, false);
        }
    }
}
