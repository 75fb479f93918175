//! `ChatSession`: a conversation with a model (core's `ChatSession`). Turns run on worker
//! threads registered with the model, so closing the model cancels a running turn as it
//! cancels any generation.

use crate::cancel::CancelToken;
use crate::convert::{to_json, to_py_value};
use crate::error::to_py;
use crate::model::Model;
use crate::stream::Stream;
use crate::worker;
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::Arc;
use uml_core::chat::{ChatMessage, ChatTemplate};
use uml_core::runner::Task;
use uml_core::stream::Completion;
use uml_core::Error;

#[pyclass(module = "uml._uml", name = "ChatSession", frozen)]
pub struct ChatSession {
    model: Py<Model>,
    session: Mutex<Option<Arc<uml_core::ChatSession>>>,
}

/// Messages a session starts from: a list of {"role", "content"} (none is fine).
pub fn history(messages: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<ChatMessage>> {
    match messages {
        None => Ok(Vec::new()),
        Some(m) => {
            let json = to_json(m, "chat messages")?.to_string();
            ChatTemplate::history_from_json(&json).map_err(to_py)
        }
    }
}

impl ChatSession {
    pub fn new(model: Py<Model>, session: uml_core::ChatSession) -> Self {
        ChatSession {
            model,
            session: Mutex::new(Some(Arc::new(session))),
        }
    }

    fn open(&self) -> PyResult<Arc<uml_core::ChatSession>> {
        self.session.lock().clone().ok_or_else(|| {
            to_py(Error::invalid_argument(
                "this chat session is closed; start a new one with model.session()",
            ))
        })
    }

    /// Start a turn on a worker thread of the model (`role` None: "user"); with `stream`,
    /// pieces are sent as they come.
    fn start(
        &self,
        py: Python<'_>,
        role: Option<String>,
        content: String,
        params: Option<&Bound<'_, PyDict>>,
        cancel: Option<&CancelToken>,
        stream: bool,
    ) -> PyResult<Task<Completion>> {
        let session = self.open()?;
        let params = crate::model::params(params)?;
        let message = ChatMessage::new(role.unwrap_or_else(|| "user".into()), content);
        let cancel = cancel.map(|c| c.0.clone()).unwrap_or_default();
        let token = cancel.clone();
        self.model
            .bind(py)
            .get()
            .spawn(cancel, stream, move |_, sink| {
                session.send(message, &params, Some(&token), sink)
            })
    }
}

#[pymethods]
impl ChatSession {
    /// One turn: add the message, generate the reply over the whole conversation, add it;
    /// returns the completion as a dict.
    #[pyo3(signature = (content, role=None, params=None, cancel=None))]
    fn send<'py>(
        &self,
        py: Python<'py>,
        content: String,
        role: Option<String>,
        params: Option<&Bound<'py, PyDict>>,
        cancel: Option<PyRef<'py, CancelToken>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let task = self.start(py, role, content, params, cancel.as_deref(), false)?;
        to_py_value(py, &worker::wait(py, task)?)
    }

    /// `send`, streamed: iterate the returned `Stream` for text pieces.
    #[pyo3(signature = (content, role=None, params=None, cancel=None))]
    fn send_stream(
        &self,
        py: Python<'_>,
        content: String,
        role: Option<String>,
        params: Option<&Bound<'_, PyDict>>,
        cancel: Option<PyRef<'_, CancelToken>>,
    ) -> PyResult<Stream> {
        let task = self.start(py, role, content, params, cancel.as_deref(), true)?;
        Ok(Stream::new(task))
    }

    /// The conversation so far, as a list of {"role", "content"} dicts.
    fn messages<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py_value(py, &self.open()?.messages())
    }

    /// Start over from `messages` (None: no messages).
    #[pyo3(signature = (messages=None))]
    fn reset(&self, messages: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let history = history(messages)?;
        self.open()?.reset(history).map_err(to_py)
    }

    /// End the session: what the model kept for it goes to other callers. Idempotent; a turn
    /// still running finishes first.
    fn close(&self) {
        self.session.lock().take();
    }

    #[getter]
    fn closed(&self) -> bool {
        self.session.lock().is_none()
    }
}
