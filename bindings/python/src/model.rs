//! `Model`: a loaded model. Arguments become owned core values before the GIL is released;
//! compute (generate, chat, embed, bench) runs on a worker thread (see `worker` for why),
//! the rest under `py.detach`.

use crate::cancel::CancelToken;
use crate::convert::{kwargs_json, to_json, to_py_value};
use crate::error::to_py;
use crate::stream::Stream;
use crate::worker;
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::path::PathBuf;
use std::sync::Arc;
use uml_core::bench::BenchOptions;
use uml_core::chat::{ChatMessage, ChatTemplate};
use uml_core::options::LoadOptions;
use uml_core::runner::{self, Active, Pieces, Task};
use uml_core::sampling::GenerateParams;
use uml_core::stream::Completion;
use uml_core::{Error, ErrorKind, LoadStage, RemoteEndpoint};

#[pyclass(module = "uml._uml", name = "Model", frozen)]
pub struct Model {
    inner: Mutex<Option<Arc<uml_core::Model>>>,
    active: Arc<Active>,
    path: PathBuf,
    /// Handed out by a `Manager` (which keeps the model when this handle closes).
    managed: bool,
}

impl Model {
    /// A handle to a model a `Manager` keeps: closing it lets go of this handle only.
    pub(crate) fn managed(model: Arc<uml_core::Model>) -> Model {
        Model {
            path: model.info().path.clone(),
            inner: Mutex::new(Some(model)),
            active: Arc::default(),
            managed: true,
        }
    }

    fn closed_error(&self) -> PyErr {
        let again = if self.managed {
            "get it again with manager.get(name)"
        } else {
            "load it again with uml.Loader(path)"
        };
        to_py(Error::new(
            ErrorKind::ModelClosed,
            format!(
                "the model {} is closed (by close() or the end of its `with` block); {again}",
                self.path.display()
            ),
        ))
    }

    fn open(&self) -> PyResult<Arc<uml_core::Model>> {
        self.inner.lock().clone().ok_or_else(|| self.closed_error())
    }

    /// Run `work` on a worker thread. The lock is held until the task is registered, so a
    /// concurrent `close()` either comes first (this call raises ModelClosedError) or cancels
    /// the task and waits for it.
    pub(crate) fn spawn<R, F>(
        &self,
        cancel: uml_core::CancelToken,
        stream: bool,
        work: F,
    ) -> PyResult<Task<R>>
    where
        R: Send + 'static,
        F: FnOnce(&uml_core::Model, &mut dyn FnMut(&str) -> bool) -> Result<R, Error>
            + Send
            + 'static,
    {
        let guard = self.inner.lock();
        let model = guard.clone().ok_or_else(|| self.closed_error())?;
        let pieces = if stream {
            Pieces::Sent
        } else {
            Pieces::Dropped
        };
        runner::spawn_task(&self.active, cancel, pieces, move |sink| work(&model, sink))
            .map_err(to_py)
    }
}

/// What to generate from.
enum Job {
    Prompt(String),
    Chat(Vec<ChatMessage>),
}

impl Model {
    /// Start a generation on a worker thread; with `stream`, pieces are sent as they come.
    fn start(
        &self,
        job: Job,
        params: GenerateParams,
        cancel: Option<&CancelToken>,
        stream: bool,
    ) -> PyResult<Task<Completion>> {
        let cancel = cancel.map(|c| c.0.clone()).unwrap_or_default();
        let token = cancel.clone();
        self.spawn(cancel, stream, move |model, sink| match &job {
            Job::Prompt(prompt) => model.generate(prompt, &params, Some(&token), sink),
            Job::Chat(messages) => model.chat(messages, &params, Some(&token), sink),
        })
    }
}

pub(crate) fn params(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<GenerateParams> {
    GenerateParams::from_json(&kwargs_json(kwargs, "generate parameter")?).map_err(to_py)
}

fn messages(messages: &Bound<'_, PyAny>) -> PyResult<Vec<ChatMessage>> {
    let json = to_json(messages, "chat messages")?.to_string();
    ChatTemplate::messages_from_json(&json).map_err(to_py)
}

#[pymethods]
impl Model {
    /// Load the model at `path` with `options` (the keys of core's `LoadOptions`). `progress`,
    /// if given, is called as `progress(stage, fraction)`; returning False cancels the load.
    #[new]
    #[pyo3(signature = (path, options=None, progress=None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        options: Option<&Bound<'_, PyDict>>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let options =
            LoadOptions::from_json(&kwargs_json(options, "load option")?).map_err(to_py)?;
        // The callback also runs Python's signal handlers, so Ctrl-C interrupts a load; an
        // exception from either is kept and raised instead of core's "load cancelled".
        let mut failure: Option<PyErr> = None;
        let mut on_progress = |stage: LoadStage, fraction: f32| -> bool {
            Python::attach(|py| {
                if let Err(e) = py.check_signals() {
                    failure = Some(e);
                    return false;
                }
                let Some(callback) = &progress else {
                    return true;
                };
                match callback.call1(py, (stage.as_str(), fraction)) {
                    // Only an explicit False cancels; None (no return statement) goes on.
                    Ok(ret) => !ret.bind(py).is(&*pyo3::types::PyBool::new(py, false)),
                    Err(e) => {
                        failure = Some(e);
                        false
                    }
                }
            })
        };
        let loaded = py.detach(|| uml_core::Model::load(&path, &options, Some(&mut on_progress)));
        match (loaded, failure) {
            (_, Some(e)) => Err(e),
            (Ok(model), None) => Ok(Model {
                inner: Mutex::new(Some(Arc::new(model))),
                active: Arc::default(),
                path,
                managed: false,
            }),
            (Err(e), None) => Err(to_py(e)),
        }
    }

    /// A remote model: `model` served by the OpenAI-compatible endpoint at `url` (up to and
    /// including `/v1`), `api_key` sent as a bearer token. Asks the endpoint whether it serves
    /// the model with the GIL released.
    #[staticmethod]
    #[pyo3(signature = (url, model, api_key=None, options=None))]
    fn remote(
        py: Python<'_>,
        url: String,
        model: String,
        api_key: Option<String>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let options =
            LoadOptions::from_json(&kwargs_json(options, "load option")?).map_err(to_py)?;
        let endpoint = RemoteEndpoint {
            url,
            model,
            api_key,
        };
        let model = py
            .detach(move || uml_core::Model::remote(endpoint, &options))
            .map_err(to_py)?;
        Ok(Model {
            path: model.info().path.clone(),
            inner: Mutex::new(Some(Arc::new(model))),
            active: Arc::default(),
            managed: false,
        })
    }

    /// Cancel running generations, wait for them, and free the model (a model from a
    /// `Manager`: let go of this handle; the manager keeps the model). Idempotent.
    fn close(&self, py: Python<'_>) {
        let model = self.inner.lock().take();
        if let Some(model) = model {
            let active = Arc::clone(&self.active);
            py.detach(move || {
                active.cancel_and_wait();
                drop(model);
            });
        }
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().is_none()
    }

    #[getter]
    fn path(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// What the model is and how it was loaded: {"backend", "plan", "memory", "model"}.
    fn describe<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py_value(py, &self.open()?.describe())
    }

    /// Generate a continuation of `prompt`; returns the completion as a dict.
    #[pyo3(signature = (prompt, params=None, cancel=None))]
    fn generate<'py>(
        &self,
        py: Python<'py>,
        prompt: String,
        params: Option<&Bound<'py, PyDict>>,
        cancel: Option<PyRef<'py, CancelToken>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.open()?;
        let task = self.start(
            Job::Prompt(prompt),
            self::params(params)?,
            cancel.as_deref(),
            false,
        )?;
        to_py_value(py, &worker::wait(py, task)?)
    }

    /// Start generating from `prompt`; iterate the returned `Stream` for text pieces.
    #[pyo3(signature = (prompt, params=None, cancel=None))]
    fn stream(
        &self,
        prompt: String,
        params: Option<&Bound<'_, PyDict>>,
        cancel: Option<PyRef<'_, CancelToken>>,
    ) -> PyResult<Stream> {
        self.open()?;
        let task = self.start(
            Job::Prompt(prompt),
            self::params(params)?,
            cancel.as_deref(),
            true,
        )?;
        Ok(Stream::new(task))
    }

    /// Reply to OpenAI-style `messages` using the model's chat template.
    #[pyo3(signature = (messages, params=None, cancel=None))]
    fn chat<'py>(
        &self,
        py: Python<'py>,
        messages: &Bound<'py, PyAny>,
        params: Option<&Bound<'py, PyDict>>,
        cancel: Option<PyRef<'py, CancelToken>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.open()?;
        let (messages, params) = (self::messages(messages)?, self::params(params)?);
        let task = self.start(Job::Chat(messages), params, cancel.as_deref(), false)?;
        to_py_value(py, &worker::wait(py, task)?)
    }

    /// `chat`, streamed.
    #[pyo3(signature = (messages, params=None, cancel=None))]
    fn chat_stream(
        &self,
        messages: &Bound<'_, PyAny>,
        params: Option<&Bound<'_, PyDict>>,
        cancel: Option<PyRef<'_, CancelToken>>,
    ) -> PyResult<Stream> {
        self.open()?;
        let (messages, params) = (self::messages(messages)?, self::params(params)?);
        let task = self.start(Job::Chat(messages), params, cancel.as_deref(), true)?;
        Ok(Stream::new(task))
    }

    /// A conversation that keeps its history, and its place in the model's cache, between
    /// turns; `messages` (a list of {"role", "content"}) is what it starts from.
    #[pyo3(signature = (messages=None))]
    fn session(
        slf: &Bound<'_, Self>,
        messages: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<crate::session::ChatSession> {
        let history = crate::session::history(messages)?;
        let session = slf.get().open()?.chat_session(history);
        Ok(crate::session::ChatSession::new(
            slf.clone().unbind(),
            session,
        ))
    }

    /// The prompt `chat` would generate from. The template runs on a worker thread, without
    /// the GIL, so Ctrl-C and `close()` stop it.
    #[pyo3(signature = (messages, add_generation_prompt=true))]
    fn render_chat(
        &self,
        py: Python<'_>,
        messages: &Bound<'_, PyAny>,
        add_generation_prompt: bool,
    ) -> PyResult<String> {
        let messages = self::messages(messages)?;
        let cancel = uml_core::CancelToken::new();
        let token = cancel.clone();
        let task = self.spawn(cancel, false, move |model, _| {
            model.render_chat_cancellable(&messages, add_generation_prompt, Some(&token))
        })?;
        worker::wait(py, task)
    }

    /// One vector per text, as (little-endian f32 bytes of all vectors, vector width).
    fn embed<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
    ) -> PyResult<(Bound<'py, PyBytes>, usize)> {
        let cancel = uml_core::CancelToken::new();
        let token = cancel.clone();
        let task = self.spawn(cancel, false, move |model, _| {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let vectors = model.embed(&refs, Some(&token))?;
            let bytes: Vec<u8> = vectors
                .iter()
                .flatten()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            Ok((bytes, model.embedding_size()))
        })?;
        let (bytes, width) = worker::wait(py, task)?;
        Ok((PyBytes::new(py, &bytes), width))
    }

    #[pyo3(signature = (text, add_special=true))]
    fn tokenize(&self, py: Python<'_>, text: String, add_special: bool) -> PyResult<Vec<i32>> {
        let model = self.open()?;
        py.detach(move || model.tokenize(&text, add_special))
            .map_err(to_py)
    }

    fn detokenize(&self, py: Python<'_>, tokens: Vec<i32>) -> PyResult<String> {
        let model = self.open()?;
        py.detach(move || model.detokenize(&tokens)).map_err(to_py)
    }

    /// Engine throughput (llama-bench's pp/tg tests); `options` are core's `BenchOptions` keys.
    #[pyo3(signature = (options=None))]
    fn bench<'py>(
        &self,
        py: Python<'py>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let json = kwargs_json(options, "bench option")?;
        let opts: BenchOptions = if json.is_empty() {
            BenchOptions::default()
        } else {
            serde_json::from_str(&json).map_err(|e| {
                to_py(Error::invalid_argument(format!(
                    "invalid bench option: {e}"
                )))
            })?
        };
        // Not cancellable: Ctrl-C is raised once the current run ends.
        let task = self.spawn(uml_core::CancelToken::new(), false, move |model, _| {
            model.bench(&opts)
        })?;
        to_py_value(py, &worker::wait(py, task)?)
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { ", closed" } else { "" };
        format!("<uml._uml.Model {}{state}>", self.path.display())
    }
}
