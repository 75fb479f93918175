//! `ChatSession`: a conversation that keeps its history, and its place in the model's cache,
//! between turns. Each turn renders the whole conversation with the model's template, as
//! `Model::chat` does, but the backend keeps this conversation's cache for it (llama.cpp: the
//! slot that holds it is kept for it while other slots are free; candle: its KV cache is
//! parked between turns), so turn N evaluates only the tokens that turn added.
//!
//! The session does not keep the model alive: closing the model ends every session on it
//! (their next turn is `ModelClosed`), as it ends every other call.

use crate::backend::ConversationId;
use crate::chat::ChatMessage;
use crate::generate::Sink;
use crate::model::Model;
use crate::sampling::GenerateParams;
use crate::stream::{Completion, FinishReason};
use crate::{CancelToken, Error, ErrorKind, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// Conversation ids, unique in the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A conversation with one model (see the module docs). One turn at a time: `send` takes
/// `&mut self`; share a session between threads behind a lock.
#[derive(Debug)]
pub struct ChatSession {
    model: Weak<Model>,
    id: ConversationId,
    messages: Vec<ChatMessage>,
}

impl ChatSession {
    pub(crate) fn new(model: &Arc<Model>, messages: Vec<ChatMessage>) -> Self {
        ChatSession {
            model: Arc::downgrade(model),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            messages,
        }
    }

    /// The conversation so far: the starting messages, then each turn's message and reply.
    pub fn messages(&self) -> &[ChatMessage] {
        &self.messages
    }

    /// Start over from `messages` (the cache keeps whatever prefix still matches).
    pub fn reset(&mut self, messages: Vec<ChatMessage>) {
        self.messages = messages;
    }

    /// One turn: add `message` (usually the user's), generate the assistant's reply over the
    /// whole conversation, streaming it to `sink`, and add the reply. A turn that fails, or is
    /// cancelled before any text, leaves the conversation as it was; a turn cancelled or
    /// stopped later keeps the text generated so far as the reply.
    pub fn send(
        &mut self,
        message: ChatMessage,
        params: &GenerateParams,
        cancel: Option<&CancelToken>,
        sink: Sink<'_>,
    ) -> Result<Completion> {
        let model = self.model.upgrade().ok_or_else(|| {
            Error::new(
                ErrorKind::ModelClosed,
                "the model of this chat session was closed; load it again and start a new \
                 session (its messages are still readable)",
            )
        })?;
        self.messages.push(message);
        let turn = model.chat_in(Some(self.id), &self.messages, params, cancel, sink);
        match &turn {
            Ok(reply)
                if !(reply.text.is_empty() && reply.finish_reason == FinishReason::Cancelled) =>
            {
                self.messages
                    .push(ChatMessage::assistant(reply.text.clone()));
            }
            _ => {
                self.messages.pop();
            }
        }
        turn
    }
}

impl Drop for ChatSession {
    fn drop(&mut self) {
        if let Some(model) = self.model.upgrade() {
            model.end_conversation(self.id);
        }
    }
}
