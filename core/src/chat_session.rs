//! `ChatSession`: a conversation that keeps its history, and its place in the model's cache,
//! between turns. Each turn renders the whole conversation with the model's template, as
//! `Model::chat` does, but the backend keeps this conversation's cache for it (llama.cpp: the
//! slot that holds it is kept for it while other slots are free; candle: its KV cache is
//! parked between turns), so turn N evaluates only the tokens that turn added.
//!
//! A turn sent while another runs is `Busy`, not queued: a conversation has one order.
//! The session does not keep the model alive: closing the model ends every session on it
//! (their next turn is `ModelClosed`), as it ends every other call.

use crate::backend::ConversationId;
use crate::chat::ChatMessage;
use crate::generate::Sink;
use crate::model::Model;
use crate::sampling::GenerateParams;
use crate::stream::{Completion, FinishReason};
use crate::{CancelToken, Error, ErrorKind, Result};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// Conversation ids, unique in the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A conversation with one model (see the module docs). `Send + Sync`: share it between
/// threads (the bindings' handles do); it runs one turn at a time, and a turn sent while
/// another runs is `Busy`.
#[derive(Debug)]
pub struct ChatSession {
    model: Weak<Model>,
    id: ConversationId,
    messages: Mutex<Vec<ChatMessage>>,
    in_turn: AtomicBool,
}

/// Marks a turn as running until dropped.
struct Turn<'a>(&'a AtomicBool);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl ChatSession {
    pub(crate) fn new(model: &Arc<Model>, messages: Vec<ChatMessage>) -> Self {
        ChatSession {
            model: Arc::downgrade(model),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            messages: Mutex::new(messages),
            in_turn: AtomicBool::new(false),
        }
    }

    /// The conversation so far: the starting messages, then each turn's message and reply
    /// (a running turn's appear when it ends).
    pub fn messages(&self) -> Vec<ChatMessage> {
        self.messages.lock().clone()
    }

    /// Start over from `messages` (the cache keeps whatever prefix still matches). `Busy`
    /// while a turn runs.
    pub fn reset(&self, messages: Vec<ChatMessage>) -> Result<()> {
        let _turn = self.begin_turn()?;
        *self.messages.lock() = messages;
        Ok(())
    }

    /// One turn: add `message` (usually the user's), generate the assistant's reply over the
    /// whole conversation, streaming it to `sink`, and add the reply. A turn that fails, or is
    /// cancelled before any text, leaves the conversation as it was; a turn cancelled or
    /// stopped later keeps the text generated so far as the reply.
    pub fn send(
        &self,
        message: ChatMessage,
        params: &GenerateParams,
        cancel: Option<&CancelToken>,
        sink: Sink<'_>,
    ) -> Result<Completion> {
        let _turn = self.begin_turn()?;
        let model = self.model.upgrade().ok_or_else(|| {
            Error::new(
                ErrorKind::ModelClosed,
                "the model of this chat session was closed; load it again and start a new \
                 session (its messages are still readable)",
            )
        })?;
        let mut conversation = self.messages();
        conversation.push(message.clone());
        let reply = model.chat_in(Some(self.id), &conversation, params, cancel, sink)?;
        if !(reply.text.is_empty() && reply.finish_reason == FinishReason::Cancelled) {
            let mut messages = self.messages.lock();
            messages.push(message);
            messages.push(ChatMessage::assistant(reply.text.clone()));
        }
        Ok(reply)
    }

    fn begin_turn(&self) -> Result<Turn<'_>> {
        if self.in_turn.swap(true, Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Busy,
                "a turn of this chat session is running; wait for its reply (or cancel it) \
                 before sending the next message",
            ));
        }
        Ok(Turn(&self.in_turn))
    }
}

impl Drop for ChatSession {
    fn drop(&mut self) {
        if let Some(model) = self.model.upgrade() {
            model.end_conversation(self.id);
        }
    }
}
