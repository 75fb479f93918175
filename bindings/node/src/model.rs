//! `Model`: a loaded model, and `Loading`, a load in progress. Arguments become owned core
//! values on the JavaScript thread; everything that reads the model's files or computes runs
//! on core's task threads and answers through a promise (see `task`). A model's chat sessions
//! (`session`) share its slot, so closing the model ends their turns too.

use crate::cancel::CancelToken;
use crate::convert::{to_js, Options};
use crate::error::{to_napi, OrThrow};
use crate::session::{self, ChatSession};
use crate::task::{self, Queue};
use napi::bindgen_prelude::{Float32Array, Object};
use napi::Env;
use napi_derive::napi;
use parking_lot::{MappedMutexGuard, Mutex, MutexGuard};
use serde_json::Value;
use std::sync::{Arc, LazyLock, Weak};
use uml_core::bench::BenchOptions;
use uml_core::chat::{ChatMessage, ChatTemplate};
use uml_core::options::LoadOptions;
use uml_core::runner::{self, Active, Reporter};
use uml_core::sampling::GenerateParams;
use uml_core::{Error, ErrorKind, LoadStage};

/// Core's bench option names, for errors.
const BENCH_FIELDS: &[&str] = &["n_prompt", "n_gen", "repetitions"];

/// Loads in progress (each becomes its model's own business once loaded), and closes (of
/// models and of chat sessions).
pub(crate) static LOADS: LazyLock<Arc<Active>> = LazyLock::new(Arc::default);

/// One load progress event.
#[napi(object)]
pub struct LoadProgress {
    /// "inspect", "weights" or "ready".
    pub stage: String,
    /// In [0, 1] within the stage.
    pub fraction: f64,
}

type LoadQueue = Queue<LoadProgress, Arc<uml_core::Model>>;
type PieceQueue = Queue<String, Value>;

/// Sends a load's result into its queue (progress is pushed by the load itself).
struct LoadReporter(Arc<LoadQueue>);

impl Reporter<uml_core::Model> for LoadReporter {
    fn piece(&mut self, _: &str) -> bool {
        true
    }

    fn done(self, result: uml_core::Result<uml_core::Model>) {
        self.0.finish(result.map(Arc::new));
    }
}

/// Sends a generation's pieces and its completion (as JavaScript sees it) into its queue.
struct PieceReporter(Arc<PieceQueue>);

impl Reporter<Value> for PieceReporter {
    fn piece(&mut self, piece: &str) -> bool {
        self.0.push(piece.to_owned());
        true
    }

    fn done(self, result: uml_core::Result<Value>) {
        self.0.finish(result);
    }
}

/// A load running on a task thread: `next()` gives its progress events, then `null`; `model()`
/// then gives the model (or throws the load's error).
#[napi]
pub struct Loading {
    queue: Arc<LoadQueue>,
    path: String,
}

/// Open the remote model `endpointJson` names (`{ url, model, apiKey? }`) with `optionsJson`
/// (load options) on a load thread: it asks the endpoint whether it serves the model.
#[napi(
    js_name = "loadRemote",
    catch_unwind,
    ts_return_type = "Promise<Model>"
)]
pub fn load_remote(
    env: &Env,
    endpoint_json: String,
    options_json: String,
) -> napi::Result<Object<'_>> {
    let endpoint = crate::convert::endpoint(&endpoint_json).or_throw()?;
    let options = Options::parse(&options_json, "load option", LoadOptions::FIELDS).or_throw()?;
    let load_options =
        LoadOptions::from_json(&options.json).map_err(|e| to_napi(options.explain(e)))?;
    task::promise(
        env,
        &LOADS,
        uml_core::CancelToken::new(),
        move || uml_core::Model::remote(endpoint, &load_options),
        |model| {
            let path = model.info().path.to_string_lossy().into_owned();
            Ok(Model::new(Arc::new(model), path, false))
        },
    )
}

/// Start loading the model at `path` with `optionsJson` (a JSON object of load options, camelCase
/// or snake_case keys). Cancelling `cancel` stops the load at its next progress step.
#[napi(js_name = "startLoad")]
pub fn start_load(
    path: String,
    options_json: String,
    cancel: &CancelToken,
) -> napi::Result<Loading> {
    let options = Options::parse(&options_json, "load option", LoadOptions::FIELDS).or_throw()?;
    let load_options =
        LoadOptions::from_json(&options.json).map_err(|e| to_napi(options.explain(e)))?;
    let queue: Arc<LoadQueue> = Queue::new();
    let progress_queue = Arc::clone(&queue);
    let token = cancel.0.clone();
    let load_path = path.clone();
    runner::spawn(
        &LOADS,
        token.clone(),
        move |_| {
            let mut on_progress = |stage: LoadStage, fraction: f32| {
                progress_queue.push(LoadProgress {
                    stage: stage.as_str().to_string(),
                    fraction: f64::from(fraction),
                });
                !token.is_cancelled()
            };
            uml_core::Model::load(&load_path, &load_options, Some(&mut on_progress))
        },
        LoadReporter(Arc::clone(&queue)),
    )
    .or_throw()?;
    Ok(Loading { queue, path })
}

#[napi]
impl Loading {
    /// A promise of the next progress event, or of `null` once the load has ended (rejected if
    /// it failed).
    #[napi(ts_return_type = "Promise<LoadProgress | null>")]
    pub fn next<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        self.queue.next(env)
    }

    /// The loaded model, once `next()` has given `null`; only once.
    #[napi]
    pub fn model(&self) -> napi::Result<Model> {
        let model = self.queue.take_end().ok_or_else(|| {
            to_napi(Error::invalid_argument(
                "no model to take: the load has not finished, failed, or was taken already",
            ))
        })?;
        Ok(Model::new(model, self.path.clone(), false))
    }
}

/// A loaded model's slot, shared by the `Model` handle and its chat sessions: `close()` empties
/// it, and every call checks it while it registers its task (see [`Loaded::open`]).
pub(crate) struct Loaded {
    inner: Mutex<Option<Arc<uml_core::Model>>>,
    path: String,
}

impl Loaded {
    /// The model, held by the caller: the lock is held until the caller's task is registered,
    /// so a concurrent `close()` either comes first (the call rejects with MODEL_CLOSED) or
    /// cancels the task and waits for it.
    pub(crate) fn open(&self) -> Option<MappedMutexGuard<'_, Arc<uml_core::Model>>> {
        MutexGuard::try_map(self.inner.lock(), Option::as_mut).ok()
    }

    pub(crate) fn path(&self) -> &str {
        &self.path
    }
}

#[napi]
pub struct Model {
    loaded: Arc<Loaded>,
    active: Arc<Active>,
    /// The task sets of its chat sessions, whose turns `close()` cancels and waits for too.
    sessions: Mutex<Vec<Weak<Active>>>,
    /// Handed out by a `Manager` (which keeps the model when this handle closes).
    managed: bool,
}

impl Model {
    fn new(model: Arc<uml_core::Model>, path: String, managed: bool) -> Model {
        Model {
            loaded: Arc::new(Loaded {
                inner: Mutex::new(Some(model)),
                path,
            }),
            active: Arc::default(),
            sessions: Mutex::default(),
            managed,
        }
    }

    /// A handle to a model a `Manager` keeps: closing it lets go of this handle only.
    pub(crate) fn managed(model: Arc<uml_core::Model>) -> Model {
        let path = model.info().path.to_string_lossy().into_owned();
        Model::new(model, path, true)
    }
}

/// A generation running on a task thread: `next()` gives its text pieces, then `null`;
/// `completion()` then gives the result.
#[napi]
pub struct Stream {
    queue: Arc<PieceQueue>,
    cancel: uml_core::CancelToken,
}

#[napi]
impl Stream {
    /// A promise of the next text piece, or of `null` once the generation has ended (rejected
    /// if it failed).
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn next<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        self.queue.next(env)
    }

    /// The completion (`text`, `finishReason`, `usage`) once the stream has ended well;
    /// `null` before that or if it failed.
    #[napi]
    pub fn completion(&self) -> Option<Value> {
        self.queue.end()
    }

    /// Ask the generation to stop; returns at once. `next()` then gives the pieces already
    /// made and `null`.
    #[napi]
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    #[napi(getter)]
    pub fn ended(&self) -> bool {
        self.queue.ended()
    }
}

impl Stream {
    /// Run `work` on a task thread registered in `active`, streaming its pieces.
    pub(crate) fn spawn<W>(
        active: &Arc<Active>,
        cancel: &CancelToken,
        work: W,
    ) -> napi::Result<Stream>
    where
        W: FnOnce(&uml_core::CancelToken, &mut dyn FnMut(&str) -> bool) -> uml_core::Result<Value>
            + Send
            + 'static,
    {
        let queue: Arc<PieceQueue> = Queue::new();
        let token = cancel.0.clone();
        let work_token = token.clone();
        runner::spawn(
            active,
            token.clone(),
            move |sink| work(&work_token, sink),
            PieceReporter(Arc::clone(&queue)),
        )
        .or_throw()?;
        Ok(Stream {
            queue,
            cancel: token,
        })
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // A stream nobody can read any more (collected by the garbage collector): stop it.
        self.cancel.cancel();
    }
}

/// What a generation starts from.
enum Job {
    Prompt(String),
    Chat(Vec<ChatMessage>),
}

impl Job {
    fn run(
        &self,
        model: &uml_core::Model,
        params: &GenerateParams,
        cancel: &uml_core::CancelToken,
        sink: &mut dyn FnMut(&str) -> bool,
    ) -> uml_core::Result<Value> {
        let completion = match self {
            Job::Prompt(prompt) => model.generate(prompt, params, Some(cancel), sink)?,
            Job::Chat(messages) => model.chat(messages, params, Some(cancel), sink)?,
        };
        to_js(&completion)
    }
}

pub(crate) fn params(params_json: &str) -> napi::Result<GenerateParams> {
    let options =
        Options::parse(params_json, "generate option", GenerateParams::FIELDS).or_throw()?;
    GenerateParams::from_json(&options.json).map_err(|e| to_napi(options.explain(e)))
}

fn messages(messages_json: &str) -> napi::Result<Vec<ChatMessage>> {
    ChatTemplate::messages_from_json(messages_json).or_throw()
}

impl Model {
    fn closed_error(&self) -> napi::Error {
        let again = if self.managed {
            "get it again with manager.get(name)"
        } else {
            "load it again with Loader.load(path)"
        };
        to_napi(Error::new(
            ErrorKind::ModelClosed,
            format!(
                "the model {} is closed (by close() or the end of its `await using` block); \
                 {again}",
                self.loaded.path
            ),
        ))
    }

    /// The model, held by the caller (see [`Loaded::open`]).
    fn open(&self) -> napi::Result<MappedMutexGuard<'_, Arc<uml_core::Model>>> {
        self.loaded.open().ok_or_else(|| self.closed_error())
    }

    fn with_model<'env, R, D, W, C>(
        &self,
        env: &'env Env,
        cancel: uml_core::CancelToken,
        work: W,
        convert: C,
    ) -> napi::Result<Object<'env>>
    where
        R: Send + 'static,
        D: napi::bindgen_prelude::ToNapiValue + Send + 'static,
        W: FnOnce(&uml_core::Model, &uml_core::CancelToken) -> uml_core::Result<R> + Send + 'static,
        C: FnOnce(R) -> uml_core::Result<D> + Send + 'static,
    {
        let model = self.open()?;
        let (held, token) = (Arc::clone(&model), cancel.clone());
        task::promise(
            env,
            &self.active,
            cancel,
            move || work(&held, &token),
            convert,
        )
    }

    fn start_stream(
        &self,
        job: Job,
        params: GenerateParams,
        cancel: &CancelToken,
    ) -> napi::Result<Stream> {
        let model = self.open()?;
        let held = Arc::clone(&model);
        Stream::spawn(&self.active, cancel, move |token, sink| {
            job.run(&held, &params, token, sink)
        })
    }

    fn generation<'env>(
        &self,
        env: &'env Env,
        job: Job,
        params: GenerateParams,
        cancel: &CancelToken,
    ) -> napi::Result<Object<'env>> {
        self.with_model(
            env,
            cancel.0.clone(),
            move |model, cancel| job.run(model, &params, cancel, &mut |_| true),
            Ok,
        )
    }
}

#[napi]
impl Model {
    /// Cancel running work (its chat sessions' turns too), wait for it (within one decode
    /// step) and free the model. Resolves once the memory is released; idempotent. A model
    /// from a `Manager`: this handle lets go of it, and the manager keeps it loaded.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let model = self.loaded.inner.lock().take();
        let active = Arc::clone(&self.active);
        // No session starts a turn once the slot is empty: these are all there can be.
        let sessions: Vec<Arc<Active>> = self
            .sessions
            .lock()
            .drain(..)
            .filter_map(|s| s.upgrade())
            .collect();
        task::promise(
            env,
            &LOADS,
            uml_core::CancelToken::new(),
            move || {
                active.cancel_and_wait();
                for session in &sessions {
                    session.cancel_and_wait();
                }
                drop(model);
                Ok(())
            },
            Ok,
        )
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.loaded.inner.lock().is_none()
    }

    #[napi(getter)]
    pub fn path(&self) -> String {
        self.loaded.path.clone()
    }

    /// A chat session on this model, starting from `messagesJson` (a JSON array of messages,
    /// none is fine; "" is none).
    #[napi(catch_unwind)]
    pub fn session(&self, messages_json: String) -> napi::Result<ChatSession> {
        let history = session::history(&messages_json)?;
        let core_session = self.open()?.chat_session(history);
        let active: Arc<Active> = Arc::default();
        let mut sessions = self.sessions.lock();
        sessions.retain(|s| s.strong_count() > 0);
        sessions.push(Arc::downgrade(&active));
        Ok(ChatSession::new(
            core_session,
            Arc::clone(&self.loaded),
            active,
        ))
    }

    /// What the model is and how it was loaded: `{ backend, skippedBackends, plan, memory,
    /// model }`.
    #[napi]
    pub fn info(&self) -> napi::Result<Value> {
        to_js(&self.open()?.describe()).or_throw()
    }

    /// The width of the model's embedding vectors.
    #[napi(getter, js_name = "embeddingSize")]
    pub fn embedding_size(&self) -> napi::Result<u32> {
        Ok(self.open()?.embedding_size() as u32)
    }

    /// Generate a continuation of `prompt`; resolves with the completion.
    #[napi(ts_return_type = "Promise<unknown>")]
    pub fn generate<'env>(
        &self,
        env: &'env Env,
        prompt: String,
        params_json: String,
        cancel: &CancelToken,
    ) -> napi::Result<Object<'env>> {
        self.generation(env, Job::Prompt(prompt), params(&params_json)?, cancel)
    }

    /// Reply to `messagesJson` (OpenAI-style messages) with the model's chat template.
    #[napi(ts_return_type = "Promise<unknown>")]
    pub fn chat<'env>(
        &self,
        env: &'env Env,
        messages_json: String,
        params_json: String,
        cancel: &CancelToken,
    ) -> napi::Result<Object<'env>> {
        let messages = messages(&messages_json)?;
        self.generation(env, Job::Chat(messages), params(&params_json)?, cancel)
    }

    /// `generate`, streamed.
    #[napi]
    pub fn stream(
        &self,
        prompt: String,
        params_json: String,
        cancel: &CancelToken,
    ) -> napi::Result<Stream> {
        self.start_stream(Job::Prompt(prompt), params(&params_json)?, cancel)
    }

    /// `chat`, streamed.
    #[napi(js_name = "chatStream")]
    pub fn chat_stream(
        &self,
        messages_json: String,
        params_json: String,
        cancel: &CancelToken,
    ) -> napi::Result<Stream> {
        let messages = messages(&messages_json)?;
        self.start_stream(Job::Chat(messages), params(&params_json)?, cancel)
    }

    /// The prompt `chat` would generate from.
    #[napi(js_name = "renderChat", ts_return_type = "Promise<string>")]
    pub fn render_chat<'env>(
        &self,
        env: &'env Env,
        messages_json: String,
        add_generation_prompt: bool,
        cancel: &CancelToken,
    ) -> napi::Result<Object<'env>> {
        let messages = messages(&messages_json)?;
        self.with_model(
            env,
            cancel.0.clone(),
            move |model, cancel| {
                model.render_chat_cancellable(&messages, add_generation_prompt, Some(cancel))
            },
            Ok,
        )
    }

    /// One vector per text.
    #[napi(ts_return_type = "Promise<Float32Array[]>")]
    pub fn embed<'env>(
        &self,
        env: &'env Env,
        texts: Vec<String>,
        cancel: &CancelToken,
    ) -> napi::Result<Object<'env>> {
        self.with_model(
            env,
            cancel.0.clone(),
            move |model, cancel| {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                model.embed(&refs, Some(cancel))
            },
            |vectors| {
                Ok(vectors
                    .into_iter()
                    .map(Float32Array::new)
                    .collect::<Vec<_>>())
            },
        )
    }

    /// The token ids of `text`; `addSpecial` adds BOS (etc.) as the model wants.
    #[napi(ts_return_type = "Promise<number[]>")]
    pub fn tokenize<'env>(
        &self,
        env: &'env Env,
        text: String,
        add_special: bool,
    ) -> napi::Result<Object<'env>> {
        self.with_model(
            env,
            uml_core::CancelToken::new(),
            move |model, _| model.tokenize(&text, add_special),
            Ok,
        )
    }

    /// The text of `tokens`.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn detokenize<'env>(&self, env: &'env Env, tokens: Vec<i32>) -> napi::Result<Object<'env>> {
        self.with_model(
            env,
            uml_core::CancelToken::new(),
            move |model, _| model.detokenize(&tokens),
            Ok,
        )
    }

    /// Engine throughput (llama-bench's pp/tg tests); `optionsJson` holds core's bench options.
    #[napi(ts_return_type = "Promise<unknown>")]
    pub fn bench<'env>(&self, env: &'env Env, options_json: String) -> napi::Result<Object<'env>> {
        let options = Options::parse(&options_json, "bench option", BENCH_FIELDS).or_throw()?;
        let opts: BenchOptions = if options.json.is_empty() {
            BenchOptions::default()
        } else {
            serde_json::from_str(&options.json).map_err(|e| {
                to_napi(options.explain(Error::invalid_argument(format!(
                    "invalid bench option: {e}"
                ))))
            })?
        };
        self.with_model(
            env,
            uml_core::CancelToken::new(),
            move |model, _| model.bench(&opts),
            |report| to_js(&report),
        )
    }
}
