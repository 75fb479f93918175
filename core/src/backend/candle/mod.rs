//! The candle backend: Hugging Face folders (config.json + safetensors or a PyTorch
//! checkpoint + tokenizer.json) run in-process on the CPU, in F32, and llama-architecture GGUFs
//! through candle's quantized kernels. Weights are read once and shared by every session; each
//! session has its own KV cache, and a chat session's cache is parked between its turns.

mod arch;
mod estimate;
mod tokenizer;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::Value;

use super::{
    Backend, BackendChoice, ConversationId, LoadPlan, LoadedModel, Session, SessionRequest, Token,
};
use crate::estimate::{EstimateOptions, MemoryEstimate};
use crate::format::Format;
use crate::hf_folder::{read_config, var_builder, weight_files};
use crate::inspect::ModelInfo;
use crate::options::WeightDtype;
use crate::{CancelToken, Error, ErrorKind, Result};
use arch::{State, Weights};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
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
        if info.format == Format::Gguf {
            let arch = info.architecture.as_deref().unwrap_or("(undeclared)");
            return if arch::GGUF_SUPPORTED.contains(&arch) {
                Ok(())
            } else {
                Err(Error::new(ErrorKind::Unsupported, arch::gguf_refusal(arch)))
            };
        }
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

    fn max_context(&self, info: &ModelInfo) -> Option<u32> {
        (info.format == Format::Gguf).then_some(arch::QUANTIZED_LLAMA_MAX_CTX)
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
        if info.format == Format::Gguf {
            let loaded = load_gguf(&info.path, plan)?;
            progress(1.0);
            return Ok(Box::new(loaded));
        }
        let folder = model_folder(info)?;
        let dir = folder.as_path();
        let config = read_config(dir)?;
        let tokenizer = HfTokenizer::load(dir)?;
        let files = weight_files(dir)?;
        let device = Device::Cpu;
        let dtype = match plan.dtype {
            None | Some(WeightDtype::F32) => DType::F32,
            Some(WeightDtype::F16) => DType::F16,
            Some(WeightDtype::BF16) => DType::BF16,
        };
        let vb = var_builder(&files, dtype, &device)
            .map_err(|e| Error::new(e.kind(), format!("{}: {}", dir.display(), e.message())))?;
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
        // Gemma 3's sliding-window cache cannot take a multi-token step that reaches past its
        // window after the first step (see `CandleSession::prompt_chunk`).
        let window = match weights {
            Weights::Gemma3(_) => Some(
                config
                    .get("sliding_window")
                    .and_then(Value::as_u64)
                    .map_or(0, |w| w.min(u64::from(u32::MAX)) as u32),
            ),
            _ => None,
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
        Ok(Box::new(CandleLoaded {
            weights,
            tokenizer,
            device,
            pool: thread_pool(plan)?,
            n_ctx,
            n_batch: plan.n_batch.max(1),
            window,
            normalize: plan.normalize_embeddings,
            cls_pooling: read_config(&dir.join("1_Pooling"))
                .ok()
                .and_then(|p| p.get("pooling_mode_cls_token").and_then(Value::as_bool))
                .unwrap_or(false),
            embedding_size,
            parked: Parking::new(plan),
        }))
    }
}

/// candle's matmuls run on the current rayon pool: each model gets its own, sized by the plan,
/// so n_threads means what it means for llama.cpp and two models do not oversubscribe.
fn thread_pool(plan: &LoadPlan) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(plan.n_threads.max(1) as usize)
        .thread_name(|i| format!("uml-candle-{i}"))
        .build()
        .map_err(|e| Error::backend(format!("cannot start candle's threads: {e}")))
}

/// A GGUF through candle's quantized kernels: the fallback when llama.cpp is not compiled in,
/// or when `backend: "candle"` asks for it.
fn load_gguf(path: &Path, plan: &LoadPlan) -> Result<CandleLoaded> {
    if let Some(d) = plan.dtype {
        return Err(super::gguf_dtype_error(d));
    }
    let (content, mut reader) = crate::convert::read_gguf(path)?;
    let tokenizer = HfTokenizer::from_gguf(&content, path)?;
    let device = Device::Cpu;
    let weights = Weights::load_gguf(content, &mut reader, &device)
        .map_err(|e| Error::new(e.kind(), format!("{}: {}", path.display(), e.message())))?;
    Ok(CandleLoaded {
        weights,
        tokenizer,
        device,
        pool: thread_pool(plan)?,
        n_ctx: plan.n_ctx,
        n_batch: plan.n_batch.max(1),
        window: None,
        normalize: plan.normalize_embeddings,
        cls_pooling: false,
        embedding_size: 0,
        parked: Parking::new(plan),
    })
}

/// The Hugging Face folder a model lives in: the folder itself, or the one holding the given
/// safetensors file or shard index; it must have a config.json.
fn model_folder(info: &ModelInfo) -> Result<PathBuf> {
    let folder_format = matches!(
        info.format,
        Format::HuggingFaceFolder
            | Format::Safetensors
            | Format::ShardedSafetensors
            | Format::PyTorch
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

struct CandleLoaded {
    weights: Weights,
    tokenizer: HfTokenizer,
    device: Device,
    pool: rayon::ThreadPool,
    n_ctx: u32,
    n_batch: u32,
    /// Gemma 3's sliding window: a prompt longer than it goes in one piece.
    window: Option<u32>,
    normalize: bool,
    /// sentence-transformers' pooling (1_Pooling/config.json): the [CLS] state, else the mean.
    cls_pooling: bool,
    embedding_size: usize,
    parked: Parking,
}

/// Chat sessions' caches between their turns. Sessions running plus caches parked stay within
/// `max_parallel`, the caches the memory estimate counts: the one parked longest goes first.
struct Parking {
    parked: Mutex<VecDeque<Parked>>,
    running: AtomicUsize,
    max_parallel: usize,
}

/// What a chat session's last turn left: its state and the tokens that state holds.
struct Parked {
    conversation: ConversationId,
    state: State,
    held: Vec<Token>,
}

impl Parking {
    fn new(plan: &LoadPlan) -> Self {
        Parking {
            parked: Mutex::new(VecDeque::new()),
            running: AtomicUsize::new(0),
            max_parallel: plan.max_parallel.max(1) as usize,
        }
    }

    /// A session starts: take back `conversation`'s cache, if parked.
    fn start(&self, conversation: Option<ConversationId>) -> Option<Parked> {
        self.running.fetch_add(1, Ordering::SeqCst);
        let mut parked = self.parked.lock();
        let mine = conversation
            .and_then(|c| parked.iter().position(|p| p.conversation == c))
            .and_then(|i| parked.remove(i));
        self.trim(&mut parked);
        mine
    }

    /// A session ends; a chat session's cache is parked for its next turn.
    fn finish(&self, park: Option<Parked>) {
        self.running.fetch_sub(1, Ordering::SeqCst);
        let mut parked = self.parked.lock();
        if let Some(p) = park {
            parked.retain(|q| q.conversation != p.conversation);
            parked.push_back(p);
        }
        self.trim(&mut parked);
    }

    fn end(&self, conversation: ConversationId) {
        self.parked
            .lock()
            .retain(|p| p.conversation != conversation);
    }

    fn trim(&self, parked: &mut VecDeque<Parked>) {
        let running = self.running.load(Ordering::SeqCst);
        while !parked.is_empty() && parked.len() + running > self.max_parallel {
            parked.pop_front();
        }
    }
}

impl LoadedModel for CandleLoaded {
    fn tokenize(&self, text: &str, add_special: bool) -> Result<Vec<Token>> {
        self.tokenizer.encode(text, add_special)
    }

    fn tokenize_plain(&self, text: &str) -> Result<Vec<Token>> {
        self.tokenizer.encode_plain(text)
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

    fn new_session(&self, request: SessionRequest) -> Result<Box<dyn Session + '_>> {
        let fresh = self.fresh_state()?;
        // A deterministic turn runs on a fresh cache; the parked one stays for the next turn.
        let conversation = request.conversation.filter(|_| !request.alone);
        let (state, held) = match self.parked.start(conversation) {
            Some(p) => (p.state, p.held),
            None => (fresh, Vec::new()),
        };
        Ok(Box::new(CandleSession {
            owner: self,
            state: Some(state),
            conversation,
            next_pos: held.len() as u32,
            held,
            logits: Vec::new(),
        }))
    }

    fn end_conversation(&self, id: ConversationId) {
        self.parked.end(id);
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

impl CandleLoaded {
    /// An empty cache over the weights.
    fn fresh_state(&self) -> Result<State> {
        self.weights.session().ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                "this is a sentence-embedding model (BERT); it cannot generate text: use embed",
            )
        })
    }
}

struct CandleSession<'m> {
    owner: &'m CandleLoaded,
    /// `None` only after a failed reset.
    state: Option<State>,
    /// The chat session this generation continues, whose cache is parked at the end.
    conversation: Option<ConversationId>,
    /// The tokens the state holds, in order.
    held: Vec<Token>,
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

    /// Gemma 3 in candle: its rotating cache keeps only the window, and candle builds the
    /// mask of a multi-token step at an offset over everything before it, so a chunk may not
    /// end past the window. A prompt that fits the window goes in chunks (a cancel lands within
    /// one); a longer one in one piece, as candle's own Gemma 3 example runs it.
    fn prompt_chunk(&self, first_pos: u32, end: u32) -> u32 {
        match self.owner.window {
            Some(window) if end > window => end - first_pos,
            _ => self.owner.n_batch,
        }
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
        let state = self
            .state
            .as_mut()
            .ok_or_else(|| Error::internal("candle decode on a session without state"))?;
        // What a failed step left in the cache is unknown: then it holds nothing worth keeping.
        let mut held = std::mem::take(&mut self.held);
        self.logits = self
            .owner
            .pool
            .install(|| state.forward(&input, first_pos as usize))
            .map_err(|e| Error::backend(format!("candle forward failed: {e}")))?;
        held.extend_from_slice(tokens);
        self.held = held;
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

    /// candle's caches only grow: a state is kept when it holds a proper prefix of `prompt`
    /// (the earlier turns of this chat session), and otherwise starts empty.
    fn reuse_prefix(&mut self, prompt: &[Token]) -> Result<usize> {
        let continues = self.state.as_ref().is_some_and(State::continues);
        if continues && self.held.len() < prompt.len() && prompt.starts_with(&self.held) {
            return Ok(self.held.len());
        }
        if !self.held.is_empty() || self.state.is_none() {
            self.state = None;
            self.held.clear();
            self.next_pos = 0;
            self.state = Some(self.owner.fresh_state()?);
        }
        Ok(0)
    }
}

impl Drop for CandleSession<'_> {
    fn drop(&mut self) {
        let park = match (self.conversation, self.state.take()) {
            (Some(conversation), Some(state)) if !self.held.is_empty() && state.continues() => {
                Some(Parked {
                    conversation,
                    state,
                    held: std::mem::take(&mut self.held),
                })
            }
            _ => None,
        };
        self.owner.parked.finish(park);
    }
}

#[cfg(test)]
mod tests;
