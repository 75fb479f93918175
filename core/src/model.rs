//! `Model`: the one public entry point every host uses. It walks the flow of DESIGN.md:
//! inspect → estimate → select backend → load (with progress) → generate / chat / embed.

use crate::admission::{self, Admission, Refused};
use crate::backend::{self, Backend, LoadPlan, LoadedModel, Skipped, Token};
use crate::chat::content::{self, ControlTexts};
use crate::chat::{ChatMessage, ChatTemplate};
use crate::chat_session::ChatSession;
use crate::estimate::{self, EstimateOptions, MemoryEstimate};
use crate::generate::{generate_tokens, Sink};
use crate::hardware::{self, Hardware};
use crate::inspect::{self, ModelInfo};
use crate::options::LoadOptions;
use crate::sampling::{Constraint, ConstraintFactory, GenerateParams};
use crate::stream::Completion;
use crate::{CancelToken, Error, ErrorKind, Result};
use serde::Serialize;
use std::path::Path;

/// Where a load is, for progress reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadStage {
    /// Reading headers and estimating memory.
    Inspect,
    /// Reading / mapping weights (fraction advances).
    Weights,
    /// Creating the first context; the model is usable after this.
    Ready,
}

impl LoadStage {
    pub fn as_str(self) -> &'static str {
        match self {
            LoadStage::Inspect => "inspect",
            LoadStage::Weights => "weights",
            LoadStage::Ready => "ready",
        }
    }
}

/// Load progress callback: (stage, fraction of that stage in 0..=1). Return false to cancel.
pub type ProgressFn<'a> = &'a mut dyn FnMut(LoadStage, f32) -> bool;

/// Longest text [`Model::tokenize`] takes: llama.cpp counts bytes and tokens in 32 bits.
pub const MAX_TEXT_BYTES: usize = 1 << 30;

/// More bytes than any vocabulary's longest token (real ones top out near 128), so a text
/// longer than `n_ctx` times this cannot fit the context.
const MAX_TOKEN_BYTES: usize = 1024;

/// What a model is doing: see [`Model::activity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Activity {
    pub running: u32,
    pub queued: u32,
}

/// A loaded model. `Send + Sync`: share it (e.g. in an `Arc`) and generate from several threads
/// at once; each generation has its own context.
pub struct Model {
    /// Dropped by hand in `Drop`, so the freed memory can be handed back to the OS after it.
    inner: std::mem::ManuallyDrop<Box<dyn LoadedModel>>,
    info: ModelInfo,
    plan: LoadPlan,
    estimate: MemoryEstimate,
    backend: &'static str,
    skipped: Vec<Skipped>,
    chat_template: std::result::Result<ChatTemplate, Error>,
    default_seed: Option<u32>,
    /// Built on the first constrained generation: indexing the vocabulary costs milliseconds
    /// that unconstrained use should not pay.
    constraints: once_cell::sync::OnceCell<ConstraintFactory>,
    /// The `control_tokens_in_messages` load option.
    control_tokens_in_messages: bool,
    /// Bounds the generations and embedding calls running at once (`plan.max_parallel`).
    admission: Admission,
    /// The vocabulary's control-token texts, built on the first chat.
    control_texts: once_cell::sync::OnceCell<Option<ControlTexts>>,
    /// Set for a model served by a remote endpoint: generate, chat and embed go there.
    remote: Option<crate::remote::RemoteClient>,
    /// The draft model of speculative decoding (`LoadOptions::draft_model`).
    draft: Option<Box<Model>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.info.path)
            .field("backend", &self.backend)
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

/// What `Model::describe` reports: the model, how it was loaded, and the memory it was given.
#[derive(Debug, Clone, Serialize)]
pub struct LoadedInfo<'a> {
    pub backend: &'static str,
    /// Backends passed over before `backend`, with the reason for each.
    pub skipped_backends: &'a [Skipped],
    pub plan: &'a LoadPlan,
    pub memory: &'a MemoryEstimate,
    /// The draft model's memory (load option `draft_model`), beside `memory`.
    pub draft_memory: Option<&'a MemoryEstimate>,
    pub model: &'a ModelInfo,
}

impl Model {
    /// Load a model with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Model> {
        Model::load(path, &LoadOptions::default(), None)
    }

    /// Inspect, estimate, check memory, pick a backend and load. Refuses (with `OutOfMemory`)
    /// before allocating anything when the estimate exceeds available RAM.
    pub fn load(
        path: impl AsRef<Path>,
        options: &LoadOptions,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<Model> {
        Model::load_as(path.as_ref(), options, progress, false)
    }

    /// `load`, of a model or (`for_draft`) of another model's draft.
    fn load_as(
        path: &Path,
        options: &LoadOptions,
        progress: Option<ProgressFn<'_>>,
        for_draft: bool,
    ) -> Result<Model> {
        crate::logging::init_from_env();
        options.validate()?;
        let mut noop = |_: LoadStage, _: f32| true;
        let progress: ProgressFn<'_> = match progress {
            Some(p) => p,
            None => &mut noop,
        };
        if !progress(LoadStage::Inspect, 0.0) {
            return Err(load_cancelled());
        }
        let info = inspect::inspect(path)?;
        // One clear error rather than the same one from every backend.
        if let (Some(d), crate::format::Format::Gguf) = (options.dtype, info.format) {
            return Err(backend::gguf_dtype_error(d));
        }
        backend::check_mtp_heads(&info, options)?;
        let beside = estimate::Beside {
            for_draft,
            ..estimate::Beside::of(options)?
        };
        let hw = hardware::detect();
        if !progress(LoadStage::Inspect, 1.0) {
            return Err(load_cancelled());
        }
        let mut model = Model::load_with(
            backend::candidates(options.backend),
            info,
            options,
            &hw,
            progress,
            &beside,
        )?;
        if let Some(draft) = &options.draft_model {
            model.draft = Some(Box::new(model.load_draft(draft, options)?));
        }
        Ok(model)
    }

    /// Load `path` as this model's draft: the same context, threads and slots (each drafting
    /// generation has a private context of it), checked to share the vocabulary.
    fn load_draft(&self, path: &Path, options: &LoadOptions) -> Result<Model> {
        let plan = &self.plan;
        let draft_options = LoadOptions {
            n_ctx: Some(plan.n_ctx),
            n_threads: Some(plan.n_threads),
            n_threads_batch: Some(plan.n_threads_batch),
            // As asked (the draft's plan clamps them as the model's did), so the draft's
            // estimate is the one planned beside the model's.
            n_batch: options.n_batch,
            n_ubatch: options.n_ubatch,
            use_mmap: plan.use_mmap,
            kv_cache_type: plan.kv_cache_type,
            flash_attention: plan.flash_attention,
            max_parallel: Some(plan.max_parallel),
            max_queued: options.max_queued,
            gpu_layers: options.gpu_layers,
            ..LoadOptions::default()
        };
        let draft = Model::load_as(path, &draft_options, None, true)
            .map_err(|e| crate::speculative::draft_error(path, e))?;
        if draft.loaded().has_recurrent_state() {
            return Err(Error::invalid_argument(format!(
                "draft model {}: its {} architecture keeps a recurrent state, which cannot drop \
                 the tokens it drafted one at a time when the model rejects them; draft with a \
                 transformer of the same vocabulary, or with the model's own prediction heads \
                 (load option mtp) where it has them",
                path.display(),
                draft.info().architecture.as_deref().unwrap_or("model's")
            )));
        }
        crate::speculative::check_vocabularies(self.loaded(), draft.loaded(), path)?;
        Ok(draft)
    }

    /// The draft model speculative decoding uses, if one was loaded.
    pub fn draft(&self) -> Option<&Model> {
        self.draft.as_deref()
    }

    /// The load itself, over an explicit list of candidate backends; the memory planned
    /// counts what the load puts `beside` the model (its draft model, its LoRA adapters).
    pub(crate) fn load_with(
        candidates: Vec<&dyn Backend>,
        info: ModelInfo,
        options: &LoadOptions,
        hw: &Hardware,
        progress: ProgressFn<'_>,
        beside: &estimate::Beside,
    ) -> Result<Model> {
        // Try each candidate in turn; a failed check, estimate or load moves on to the next,
        // and the reasons stay on the model (or make up the error when every one failed).
        let mut skipped = Vec::new();
        for backend in candidates {
            let skip = |stage: &'static str, e: Error| Skipped {
                backend: backend.name(),
                stage,
                kind: e.kind(),
                reason: e.message().to_string(),
            };
            if let Err(e) = backend.check(&info) {
                skipped.push(skip("check", e));
                continue;
            }
            let (plan, estimate) = match plan_load(backend, &info, options, hw, beside) {
                Ok(planned) => planned,
                Err(e) => {
                    skipped.push(skip("estimate", e));
                    continue;
                }
            };
            let loaded = backend.load(&info, &plan, &mut |f| progress(LoadStage::Weights, f));
            let inner = match loaded {
                Ok(inner) => inner,
                // A cancelled load is the caller's decision, not a backend's failure.
                Err(e) if e.kind() == ErrorKind::Cancelled => return Err(e),
                Err(e) => {
                    tracing::warn!(backend = backend.name(), error = %e, "load failed; trying the next backend");
                    skipped.push(skip("load", e));
                    continue;
                }
            };
            progress(LoadStage::Ready, 1.0);
            let chat_template = chat_template_for(&info, options);
            let admission = Admission::new(plan.max_parallel, plan.max_queued);
            return Ok(Model {
                inner: std::mem::ManuallyDrop::new(inner),
                info,
                plan,
                estimate,
                backend: backend.name(),
                skipped,
                chat_template,
                default_seed: options.seed,
                control_tokens_in_messages: options.control_tokens_in_messages,
                admission,
                control_texts: once_cell::sync::OnceCell::new(),
                constraints: once_cell::sync::OnceCell::new(),
                remote: None,
                draft: None,
            });
        }
        if skipped.is_empty() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "this build of uml has no {} backend (load option backend = \"{}\"); use \"auto\" \
                     or a build with that backend's feature",
                    options.backend.as_str(),
                    options.backend.as_str()
                ),
            ));
        }
        Err(backend::no_backend_error(&info.path, &skipped))
    }

    /// A model served by an OpenAI-compatible endpoint (vLLM, llama-server, Ollama, another
    /// `uml serve`): `generate`, `chat`, chat sessions and `embed` are sent there, streamed,
    /// with the same parameters, cancellation and results as a local model (a GBNF grammar
    /// excepted: OpenAI's API has none); tokenizing and rendering chats locally are
    /// `Unsupported`. The endpoint is asked whether it serves the model first. `options`:
    /// `max_parallel` (default 16) bounds the calls in flight, `max_queued` those waiting;
    /// `seed` is the default seed; the rest is the endpoint's business.
    pub fn remote(endpoint: crate::remote::RemoteEndpoint, options: &LoadOptions) -> Result<Model> {
        options.validate()?;
        let client = crate::remote::RemoteClient::new(endpoint)?;
        client.check()?;
        Ok(Model::remote_unchecked(client, options, Vec::new()))
    }

    /// A remote model standing in for a local one that failed to load with `failure` (kept
    /// in `skipped()`).
    pub(crate) fn remote_fallback(
        endpoint: crate::remote::RemoteEndpoint,
        options: &LoadOptions,
        failure: Error,
    ) -> Result<Model> {
        tracing::warn!(error = %failure, url = %endpoint.url, "the local load failed; serving the model from its remote fallback");
        let client = crate::remote::RemoteClient::new(endpoint)?;
        client.check()?;
        let skipped = vec![Skipped {
            backend: "local",
            stage: "load",
            kind: failure.kind(),
            reason: failure.message().to_string(),
        }];
        Ok(Model::remote_unchecked(client, options, skipped))
    }

    /// A remote model standing in for a local one that could not load (`skipped` says why).
    pub(crate) fn remote_unchecked(
        client: crate::remote::RemoteClient,
        options: &LoadOptions,
        skipped: Vec<Skipped>,
    ) -> Model {
        let endpoint = client.endpoint();
        let mut info = ModelInfo::new(
            Path::new(&format!("{}#{}", endpoint.url, endpoint.model)),
            crate::format::Format::Remote,
        );
        info.name = Some(endpoint.model.clone());
        let plan = LoadPlan {
            n_ctx: 0,
            n_threads: 0,
            n_threads_batch: 0,
            n_batch: 0,
            n_ubatch: 0,
            gpu_layers: 0,
            use_mmap: false,
            use_mlock: false,
            kv_cache_type: options.kv_cache_type,
            flash_attention: None,
            dtype: None,
            embeddings: options.embeddings,
            normalize_embeddings: options.normalize_embeddings,
            max_parallel: options.max_parallel.unwrap_or(16).max(1),
            max_queued: options.max_queued.unwrap_or(admission::DEFAULT_MAX_QUEUED),
            lora: Vec::new(),
            mtp: false,
            draft_window: 0,
            private_generations: false,
        };
        let estimate = MemoryEstimate {
            n_ctx: 0,
            cache_type: options.kv_cache_type,
            gpu_layers: 0,
            n_ubatch: 0,
            flash_attention: false,
            parallel: plan.max_parallel,
            private_contexts: 0,
            weights_bytes: 0,
            kv_cache_bytes: 0,
            compute_bytes: 0,
            compute_reserved_bytes: 0,
            overhead_bytes: 0,
            adapters_bytes: 0,
            host_bytes: 0,
            device_bytes: 0,
            total_bytes: 0,
        };
        Model {
            inner: std::mem::ManuallyDrop::new(Box::new(crate::remote::RemoteWeights)),
            admission: Admission::new(plan.max_parallel, plan.max_queued),
            info,
            plan,
            estimate,
            backend: "remote",
            skipped,
            chat_template: Err(Error::new(
                ErrorKind::Unsupported,
                "this model runs on a remote endpoint, which renders its chats itself",
            )),
            default_seed: options.seed,
            control_tokens_in_messages: options.control_tokens_in_messages,
            control_texts: once_cell::sync::OnceCell::new(),
            constraints: once_cell::sync::OnceCell::new(),
            remote: Some(client),
            draft: None,
        }
    }

    /// Run a remote call under the model's admission line (as a local generation waits for
    /// a slot).
    fn remote_call<R>(
        &self,
        cancel: Option<&CancelToken>,
        cancelled: impl FnOnce() -> Result<R>,
        call: impl FnOnce(&crate::remote::RemoteClient) -> Result<R>,
    ) -> Option<Result<R>> {
        let remote = self.remote.as_ref()?;
        Some(match self.admission.enter(cancel) {
            Ok(_permit) => call(remote),
            Err(Refused::Cancelled) => cancelled(),
            Err(Refused::Busy { running, queued }) => Err(self.busy_error(running, queued)),
        })
    }

    /// Backends tried before the one that runs this model, and why each was passed over.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// What the file is (headers), as inspected before loading.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The resolved load settings (context size, threads, layers on GPU, ...).
    pub fn plan(&self) -> &LoadPlan {
        &self.plan
    }

    /// The memory estimate the load was checked against.
    pub fn memory(&self) -> &MemoryEstimate {
        &self.estimate
    }

    /// RAM this model holds by its estimates: its own and its draft model's.
    pub fn host_bytes_with_draft(&self) -> u64 {
        let draft = self.draft().map_or(0, |d| d.memory().host_bytes);
        self.estimate.host_bytes.saturating_add(draft)
    }

    /// Name of the backend running this model.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Everything about this loaded model, ready to serialise (the JSON of `uml_model_info`).
    pub fn describe(&self) -> LoadedInfo<'_> {
        LoadedInfo {
            backend: self.backend,
            skipped_backends: &self.skipped,
            plan: &self.plan,
            memory: &self.estimate,
            draft_memory: self.draft().map(Model::memory),
            model: &self.info,
        }
    }

    /// Tokenize `text`; `add_special` adds BOS (etc.) as the model wants.
    pub fn tokenize(&self, text: &str, add_special: bool) -> Result<Vec<Token>> {
        if text.len() > MAX_TEXT_BYTES {
            return Err(Error::invalid_argument(format!(
                "tokenize: the text is {} bytes, over the limit of {MAX_TEXT_BYTES} (1 GiB); \
                 split it",
                text.len()
            )));
        }
        self.inner.tokenize(text, add_special)
    }

    /// Refuse, before tokenizing it, a text (prompt, rendered chat, embedding input) too long
    /// for the context whatever its tokens: tokenizing a huge string only to learn that would
    /// take the caller's time and memory.
    fn check_fits_context(&self, what: &str, text: &str) -> Result<()> {
        let max = (self.plan.n_ctx as usize).saturating_mul(MAX_TOKEN_BYTES);
        if text.len() > max {
            return Err(Error::new(
                ErrorKind::ContextOverflow,
                format!(
                    "the {what} is {} bytes, more than a context of {} tokens can hold (at most \
                     {MAX_TOKEN_BYTES} bytes per token); shorten it or load the model with a \
                     larger n_ctx",
                    text.len(),
                    self.plan.n_ctx
                ),
            ));
        }
        Ok(())
    }

    /// Turn tokens back into text. Unknown ids are `InvalidArgument`.
    pub fn detokenize(&self, tokens: &[Token]) -> Result<String> {
        let n_vocab = self.inner.vocab_size();
        let mut bytes = Vec::new();
        for &t in tokens {
            if t < 0 || t as u32 >= n_vocab {
                return Err(Error::invalid_argument(format!(
                    "detokenize: token id {t} is outside the vocabulary (0..{n_vocab})"
                )));
            }
            bytes.extend(self.inner.token_bytes(t));
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Generate a continuation of `prompt`, streaming text pieces to `sink` (return false from it
    /// to stop). Blocking; safe to call from several threads at once.
    pub fn generate(
        &self,
        prompt: &str,
        params: &GenerateParams,
        cancel: Option<&CancelToken>,
        sink: Sink<'_>,
    ) -> Result<Completion> {
        let remote_params = self.with_default_seed(params);
        if let Some(done) = self.remote_call(
            cancel,
            || Ok(Completion::cancelled()),
            |r| r.complete(prompt, &remote_params, cancel, &mut *sink),
        ) {
            return done;
        }
        self.check_generates_text()?;
        self.check_fits_context("prompt", prompt)?;
        let tokens = self.inner.tokenize(prompt, true)?;
        self.generate_from(None, &tokens, params, cancel, sink)
    }

    /// `generate` without streaming.
    pub fn complete(&self, prompt: &str, params: &GenerateParams) -> Result<Completion> {
        self.generate(prompt, params, None, &mut |_| true)
    }

    /// Render `messages` with the model's chat template (or the one given at load).
    pub fn render_chat(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.render_chat_cancellable(messages, add_generation_prompt, None)
    }

    /// [`render_chat`](Self::render_chat) that stops with `Cancelled` once `cancel` is set. The
    /// template is untrusted: rendering runs inside [`crate::chat::limits`].
    pub fn render_chat_cancellable(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        cancel: Option<&CancelToken>,
    ) -> Result<String> {
        let template = self.chat_template.as_ref().map_err(clone_error)?;
        template.render_cancellable(messages, None, add_generation_prompt, cancel)
    }

    /// Chat: render with the template, then generate the assistant's reply.
    pub fn chat(
        &self,
        messages: &[ChatMessage],
        params: &GenerateParams,
        cancel: Option<&CancelToken>,
        sink: Sink<'_>,
    ) -> Result<Completion> {
        self.chat_in(None, messages, params, cancel, sink)
    }

    /// A conversation that keeps its place in this model's cache between turns (see
    /// [`ChatSession`]), starting from `messages` (a system prompt, earlier turns, or none).
    pub fn chat_session(self: &std::sync::Arc<Self>, messages: Vec<ChatMessage>) -> ChatSession {
        ChatSession::new(self, messages)
    }

    /// `chat` as a turn of the chat session `conversation`, if any.
    pub(crate) fn chat_in(
        &self,
        conversation: Option<backend::ConversationId>,
        messages: &[ChatMessage],
        params: &GenerateParams,
        cancel: Option<&CancelToken>,
        sink: Sink<'_>,
    ) -> Result<Completion> {
        let remote_params = self.with_default_seed(params);
        if let Some(done) = self.remote_call(
            cancel,
            || Ok(Completion::cancelled()),
            |r| r.chat(messages, &remote_params, cancel, &mut *sink),
        ) {
            return done;
        }
        self.check_generates_text()?;
        let tokens = match self.chat_tokens(messages, cancel) {
            // Cancelled before the first token, as a cancelled prompt is: an empty reply.
            Err(e) if e.kind() == ErrorKind::Cancelled => return Ok(Completion::cancelled()),
            other => other?,
        };
        self.generate_from(conversation, &tokens, params, cancel, sink)
    }

    /// The generation behind `generate` and `chat`: the load's default seed, the compiled
    /// grammar, then the shared loop.
    fn generate_from(
        &self,
        conversation: Option<backend::ConversationId>,
        tokens: &[Token],
        params: &GenerateParams,
        cancel: Option<&CancelToken>,
        sink: Sink<'_>,
    ) -> Result<Completion> {
        let params = self.with_default_seed(params);
        let constraint = self.constraint_for(&params)?;
        // Cancelled while waiting in line: nothing was evaluated, like a cancelled prompt.
        let _permit = match self.admission.enter(cancel) {
            Ok(permit) => permit,
            Err(Refused::Cancelled) => return Ok(Completion::cancelled()),
            Err(Refused::Busy { running, queued }) => return Err(self.busy_error(running, queued)),
        };
        generate_tokens(
            self.inner.as_ref(),
            self.draft.as_ref().map(|d| d.loaded()),
            conversation,
            tokens,
            &params,
            constraint,
            cancel,
            sink,
        )
    }

    /// The tokens `chat` evaluates for `messages`: the rendered template, tokenized with BOS
    /// only where the template did not write it already.
    pub fn chat_prompt_tokens(&self, messages: &[ChatMessage]) -> Result<Vec<Token>> {
        self.chat_tokens(messages, None)
    }

    fn chat_tokens(
        &self,
        messages: &[ChatMessage],
        cancel: Option<&CancelToken>,
    ) -> Result<Vec<Token>> {
        let prompt = self.render_chat_cancellable(messages, true, cancel)?;
        self.check_fits_context("rendered chat prompt", &prompt)?;
        // Templates usually write the BOS token themselves; adding another would double it.
        let add_special = !self
            .info
            .bos_token
            .as_deref()
            .is_some_and(|bos| !bos.is_empty() && prompt.starts_with(bos));
        let controls = self
            .control_texts
            .get_or_init(|| self.build_control_texts());
        let spans = match controls {
            Some(controls) if !self.control_tokens_in_messages => {
                content::plain_spans(&prompt, messages, controls)?
            }
            _ => Vec::new(),
        };
        // Markup between the plain contents keeps control-token parsing; BOS goes first only.
        let mut tokens = Vec::new();
        let mut at = 0;
        for span in spans {
            tokens.extend(
                self.inner
                    .tokenize(&prompt[at..span.start], add_special && at == 0)?,
            );
            tokens.extend(self.inner.tokenize_plain(&prompt[span.clone()])?);
            at = span.end;
        }
        tokens.extend(self.inner.tokenize(&prompt[at..], add_special && at == 0)?);
        Ok(tokens)
    }

    fn build_control_texts(&self) -> Option<ControlTexts> {
        let texts = (0..self.inner.vocab_size())
            .map(|t| self.inner.special_token_text(t as Token))
            .filter(|bytes| !bytes.is_empty())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .collect();
        ControlTexts::new(texts)
    }

    /// One embedding vector per text.
    pub fn embed(&self, texts: &[&str], cancel: Option<&CancelToken>) -> Result<Vec<Vec<f32>>> {
        let cancelled = || {
            Err(Error::new(
                ErrorKind::Cancelled,
                "embed: cancelled while waiting for a free place",
            ))
        };
        if let Some(done) = self.remote_call(cancel, cancelled, |r| r.embed(texts)) {
            return done;
        }
        let _permit = match self.admission.enter(cancel) {
            Ok(permit) => permit,
            Err(Refused::Cancelled) => {
                return Err(Error::new(
                    ErrorKind::Cancelled,
                    "embed: cancelled while waiting for a free context",
                ))
            }
            Err(Refused::Busy { running, queued }) => return Err(self.busy_error(running, queued)),
        };
        texts
            .iter()
            .map(|t| {
                self.check_fits_context("text to embed", t)?;
                self.inner.embed(t, cancel)
            })
            .collect()
    }

    fn busy_error(&self, running: u32, queued: u32) -> Error {
        Error::new(
            ErrorKind::Busy,
            format!(
                "the model is busy: {running} generations are running (max_parallel {}) and \
                 {queued} callers are waiting (max_queued {}); try again later, or load with a \
                 larger max_parallel or max_queued",
                self.plan.max_parallel, self.plan.max_queued
            ),
        )
    }

    /// Generations and embedding calls running on the model now, and callers waiting in its
    /// line.
    pub fn activity(&self) -> Activity {
        let (running, queued) = self.admission.counts();
        Activity { running, queued }
    }

    /// Decodes of the shared generation context so far and the sequence steps they carried
    /// (`None` for a backend that does not batch generations).
    pub fn batch_stats(&self) -> Option<backend::BatchStats> {
        self.inner.batch_stats()
    }

    /// The chat session `id` has ended (its `Drop`).
    pub(crate) fn end_conversation(&self, id: backend::ConversationId) {
        self.inner.end_conversation(id);
    }

    /// Width of the vectors `embed` returns.
    pub fn embedding_size(&self) -> usize {
        self.inner.embedding_size()
    }

    /// Refuse text generation on models that cannot do it (encoder-only embedding models),
    /// rather than sampling junk from them.
    fn check_generates_text(&self) -> Result<()> {
        if self.info.generates_text() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{} is an embedding model (non-causal {}); it cannot generate text: use embed",
                self.info.path.display(),
                self.info.architecture.as_deref().unwrap_or("encoder")
            ),
        ))
    }

    pub(crate) fn loaded(&self) -> &dyn LoadedModel {
        self.inner.as_ref()
    }

    /// The compiled grammar or JSON schema of `params` (validated first, so a bad parameter is
    /// reported as such before any grammar work).
    fn constraint_for(&self, params: &GenerateParams) -> Result<Option<Constraint>> {
        params.validate()?;
        if params.grammar.is_none() && params.json_schema.is_none() {
            return Ok(None);
        }
        self.constraints
            .get_or_try_init(|| ConstraintFactory::new(self.inner.as_ref()))?
            .for_params(params)
    }

    fn with_default_seed(&self, params: &GenerateParams) -> GenerateParams {
        let mut params = params.clone();
        if params.seed.is_none() {
            params.seed = self.default_seed;
        }
        params
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: `inner` is dropped exactly once, here, and never used afterwards (this is
        // the last thing that touches `self`'s fields before they go).
        unsafe { std::mem::ManuallyDrop::drop(&mut self.inner) };
        release_freed_memory();
    }
}

/// Give the pages a freed model leaves in the C heap back to the OS. glibc keeps them
/// otherwise: after the first large free it raises its mmap threshold, so the next model's
/// buffers come from the heap and stay resident after they are freed (measured through libuml:
/// +15% RSS over 1,000 load/free cycles of a tiny model without this, +1% with it). Unload must
/// actually return memory, for every host.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only returns free heap pages to the OS.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn load_cancelled() -> Error {
    Error::new(
        ErrorKind::Cancelled,
        "model load cancelled by the progress callback",
    )
}

fn clone_error(e: &Error) -> Error {
    Error::new(e.kind(), e.message().to_string())
}

fn chat_template_for(
    info: &ModelInfo,
    options: &LoadOptions,
) -> std::result::Result<ChatTemplate, Error> {
    let bos = info.bos_token.clone().unwrap_or_default();
    let eos = info.eos_token.clone().unwrap_or_default();
    match (&options.chat_template, &info.chat_template) {
        (Some(source), _) => ChatTemplate::new(source, &bos, &eos),
        (None, Some(source)) => ChatTemplate::from_model(source, &bos, &eos),
        (None, None) => Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{} has no chat template; pass one with the `chat_template` load option \
                 (e.g. the ChatML template) or use generate with your own prompt format",
                info.path.display()
            ),
        )),
    }
}

/// Resolve `LoadOptions` into concrete numbers for `backend` and check its estimate, with
/// what the load puts `beside` the model (`Beside::of(options)`), against free memory.
pub(crate) fn plan_load(
    backend: &dyn Backend,
    info: &ModelInfo,
    options: &LoadOptions,
    hw: &Hardware,
    beside: &estimate::Beside,
) -> Result<(LoadPlan, MemoryEstimate)> {
    backend::check_extras(backend, options)?;
    // The model's own memory counts its LoRA adapters. With a draft, every sizing below (the
    // default context, the slots, the fit check) counts the draft's memory too: it is loaded
    // beside the model with the same context and slots.
    let draft = beside.draft.as_ref();
    let own_estimator = |i: &ModelInfo, o: &EstimateOptions| {
        estimate::with_adapters(backend, &beside.adapters, i, o)
    };
    let with_draft = |i: &ModelInfo, o: &EstimateOptions| {
        let own = own_estimator(i, o)?;
        match draft {
            Some(d) => Ok(own.plus(&d.estimate(o)?)),
            None => Ok(own),
        }
    };
    let estimator: estimate::Estimator<'_> = &with_draft;
    let threads = options
        .n_threads
        .unwrap_or_else(|| hw.recommended_threads() as u32)
        .max(1);
    let trained_ctx = info
        .context_length
        .map(|c| c.min(u64::from(u32::MAX)) as u32);
    let backend_max = backend.max_context(info);
    let n_ctx = match options.n_ctx {
        Some(n) => {
            if let Some(max) = backend_max.filter(|&m| n > m) {
                return Err(Error::invalid_argument(format!(
                    "n_ctx {n} is more than the {} backend can give {} ({max} tokens); ask for \
                     at most {max}, or use another backend",
                    backend.name(),
                    info.path.display()
                )));
            }
            n
        }
        None if trained_ctx == Some(0) => {
            return Err(Error::invalid_model(format!(
                "{} says its context length is 0 tokens, which nothing can run with; pass the \
                 n_ctx load option (the context the model was trained for)",
                info.path.display()
            )))
        }
        None => {
            // The model's own context (or the backend's limit), shrunk (not refused) when that
            // would not fit in memory.
            let wanted = trained_ctx
                .unwrap_or(4096)
                .min(backend_max.unwrap_or(u32::MAX));
            let est_opts = EstimateOptions::from_load_options(options);
            let fits = estimate::largest_context_that_fits(
                estimator,
                info,
                &est_opts,
                hw.available_memory_bytes,
            );
            match fits {
                Some(f) if f < wanted => {
                    tracing::warn!(
                        wanted,
                        fits = f,
                        "default context shrunk to fit available memory"
                    );
                    f
                }
                _ => wanted,
            }
        }
    };
    let resolved = LoadOptions {
        n_ctx: Some(n_ctx),
        ..options.clone()
    };
    let mut estimate = estimate::for_backend(estimator, info, &resolved, hw)?;
    // Slots: as asked, or as many as half the memory left beside one slot holds (at most
    // admission::MAX_AUTO_PARALLEL); the estimate then counts them all.
    let max_parallel = match options.max_parallel {
        Some(n) => n,
        None => {
            let auto = admission::parallel_from_memory(&estimate, hw.available_memory_bytes);
            if auto > 1 {
                let slots = LoadOptions {
                    max_parallel: Some(auto),
                    ..resolved
                };
                estimate = estimate::for_backend(estimator, info, &slots, hw)?;
            }
            auto
        }
    };
    estimate::check_fits(estimator, info, &estimate, options.dtype, hw).map_err(
        |e| match draft {
            Some(d) if e.kind() == ErrorKind::OutOfMemory => Error::new(
                ErrorKind::OutOfMemory,
                format!(
                    "{} (the numbers include the draft model {}, loaded beside it with the same \
                 context and slots; a smaller draft needs less)",
                    e.message(),
                    d.path().display()
                ),
            ),
            _ => e,
        },
    )?;
    // The model's own share: what it reports, and what unloading it frees.
    if draft.is_some() {
        let planned = LoadOptions {
            n_ctx: Some(n_ctx),
            max_parallel: Some(max_parallel),
            gpu_layers: crate::options::GpuLayers::Count(estimate.gpu_layers),
            ..options.clone()
        };
        estimate = estimate::for_backend(&own_estimator, info, &planned, hw)?;
    }
    let n_batch = options.n_batch.min(n_ctx).max(1);
    let n_ubatch = options.n_ubatch.min(n_batch).max(1);
    // llama.cpp decodes the positions a recurrent state may roll back to in one micro-batch,
    // beside at least one more token.
    let rollback_room = n_ubatch.saturating_sub(2);
    if options.mtp && rollback_room == 0 {
        return Err(Error::invalid_argument(format!(
            "load option mtp needs micro-batches of at least 3 tokens to verify a draft in, \
             but n_ubatch is {n_ubatch} (n_ubatch, n_batch and n_ctx bound it): raise them"
        )));
    }
    let plan = LoadPlan {
        n_ctx,
        n_threads: threads,
        n_threads_batch: options.n_threads_batch.unwrap_or(threads).max(1),
        n_batch,
        n_ubatch,
        gpu_layers: estimate.gpu_layers,
        use_mmap: options.use_mmap,
        use_mlock: options.use_mlock,
        kv_cache_type: options.kv_cache_type,
        flash_attention: options.flash_attention,
        dtype: options.dtype,
        embeddings: options.embeddings,
        normalize_embeddings: options.normalize_embeddings,
        max_parallel,
        max_queued: options.max_queued.unwrap_or(admission::DEFAULT_MAX_QUEUED),
        lora: options.lora.clone(),
        mtp: options.mtp,
        draft_window: if options.draft_model.is_some() {
            crate::speculative::rollback_snapshots(1, n_ubatch)
        } else {
            0
        },
        private_generations: options.draft_model.is_some() || options.mtp || beside.for_draft,
    };
    Ok((plan, estimate))
}

#[cfg(test)]
mod tests;
