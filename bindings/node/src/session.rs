//! `ChatSession`: a conversation with a model (core's `ChatSession`), which keeps its history
//! and its place in the model's cache between turns. Turns run on core's task threads like
//! `Model.chat`, registered in the session's own task set: `close()` cancels and waits for
//! them, and so does closing the model (it holds the sets of its sessions).

use crate::cancel::CancelToken;
use crate::convert::to_js;
use crate::error::{to_napi, OrThrow};
use crate::model::{params, Loaded, Stream, LOADS};
use crate::task;
use napi::bindgen_prelude::Object;
use napi::Env;
use napi_derive::napi;
use parking_lot::Mutex;
use serde_json::Value;
use std::sync::Arc;
use uml_core::chat::{ChatMessage, ChatTemplate};
use uml_core::runner::Active;
use uml_core::{Error, ErrorKind};

/// The messages a session starts from, or starts over from: a JSON array (none is fine);
/// "" is none.
pub(crate) fn history(messages_json: &str) -> napi::Result<Vec<ChatMessage>> {
    if messages_json.is_empty() {
        return Ok(Vec::new());
    }
    ChatTemplate::history_from_json(messages_json).or_throw()
}

#[napi]
pub struct ChatSession {
    session: Mutex<Option<Arc<uml_core::ChatSession>>>,
    /// The model's slot: a turn checks it while it registers, as the model's own calls do.
    loaded: Arc<Loaded>,
    /// Its running turns.
    active: Arc<Active>,
}

/// The work of one turn, for a task thread.
type TurnWork = Box<
    dyn FnOnce(&uml_core::CancelToken, &mut dyn FnMut(&str) -> bool) -> uml_core::Result<Value>
        + Send,
>;

impl ChatSession {
    pub(crate) fn new(
        session: uml_core::ChatSession,
        loaded: Arc<Loaded>,
        active: Arc<Active>,
    ) -> Self {
        ChatSession {
            session: Mutex::new(Some(Arc::new(session))),
            loaded,
            active,
        }
    }

    fn open(&self) -> napi::Result<Arc<uml_core::ChatSession>> {
        self.session.lock().clone().ok_or_else(|| {
            to_napi(Error::invalid_argument(
                "this chat session is closed (by close() or the end of its `await using` \
                 block); start a new one with model.session(messages)",
            ))
        })
    }

    /// Check the session and its model, then hand `start` the turn's work while the model's
    /// slot is locked, so a concurrent model `close()` either comes first (MODEL_CLOSED) or
    /// cancels the turn and waits for it.
    fn turn<T>(
        &self,
        role: String,
        content: String,
        params_json: &str,
        start: impl FnOnce(TurnWork) -> napi::Result<T>,
    ) -> napi::Result<T> {
        let session = self.open()?;
        let params = params(params_json)?;
        let message = ChatMessage::new(role, content);
        let Some(_model) = self.loaded.open() else {
            return Err(to_napi(Error::new(
                ErrorKind::ModelClosed,
                format!(
                    "the model {} of this chat session is closed; load it again with \
                     Loader.load(path) and start a new session with model.session(messages) \
                     (this session's messages are still readable)",
                    self.loaded.path()
                ),
            )));
        };
        start(Box::new(move |cancel, sink| {
            to_js(&session.send(message, &params, Some(cancel), sink)?)
        }))
    }
}

#[napi]
impl ChatSession {
    /// One turn: add the message (`role`, `content`), generate the assistant's reply over the
    /// whole conversation with the model's chat template, and add the reply. Resolves with the
    /// completion, as `Model.chat` does; rejects with BUSY while another turn of this session
    /// runs. A turn that fails, or is cancelled before any text, leaves the history as it was.
    #[napi(catch_unwind, ts_return_type = "Promise<unknown>")]
    pub fn send<'env>(
        &self,
        env: &'env Env,
        role: String,
        content: String,
        params_json: String,
        cancel: &CancelToken,
    ) -> napi::Result<Object<'env>> {
        let token = cancel.0.clone();
        self.turn(role, content, &params_json, |work| {
            let work_token = token.clone();
            task::promise(
                env,
                &self.active,
                token,
                move || work(&work_token, &mut |_| true),
                Ok,
            )
        })
    }

    /// `send`, streamed.
    #[napi(catch_unwind, js_name = "sendStream")]
    pub fn send_stream(
        &self,
        role: String,
        content: String,
        params_json: String,
        cancel: &CancelToken,
    ) -> napi::Result<Stream> {
        self.turn(role, content, &params_json, |work| {
            Stream::spawn(&self.active, cancel, work)
        })
    }

    /// The conversation so far (`[{ role, content }]`): the starting messages, then each
    /// finished turn's message and reply. Never waits for a running turn.
    #[napi(catch_unwind, getter)]
    pub fn messages(&self) -> napi::Result<Value> {
        to_js(&self.open()?.messages()).or_throw()
    }

    /// Start over from `messagesJson` ("" or "[]" for none); BUSY while a turn runs.
    #[napi(catch_unwind)]
    pub fn reset(&self, messages_json: String) -> napi::Result<()> {
        let messages = history(&messages_json)?;
        self.open()?.reset(messages).or_throw()
    }

    /// Cancel a running turn, wait for it (within one decode step) and release what the model
    /// kept for the conversation. Resolves once it is released; idempotent.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let session = self.session.lock().take();
        let active = Arc::clone(&self.active);
        task::promise(
            env,
            &LOADS,
            uml_core::CancelToken::new(),
            move || {
                active.cancel_and_wait();
                // The turns held the other references; this drop releases the cache.
                drop(session);
                Ok(())
            },
            Ok,
        )
    }

    /// Whether `close()` has been called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.session.lock().is_none()
    }
}
