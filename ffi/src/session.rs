//! `uml_chat_session`: a conversation that keeps its history, and its place in the model's
//! cache, between turns (`uml_core::ChatSession`).

use crate::boundary::{boundary, new_json, opt_str_arg, str_arg, Out};
use crate::cancel::uml_cancel;
use crate::generate::{run_generation, uml_token_cb};
use crate::handles::Registry;
use crate::model::{model_arg, uml_model};
use crate::status::uml_status;
use std::ffi::{c_char, c_void};
use std::sync::Arc;
use uml_core::chat::{ChatMessage, ChatTemplate};
use uml_core::{ChatSession, ErrorKind, Result};

/// A chat session (opaque). Created by `uml_chat_session_new`, released by
/// `uml_chat_session_free`.
pub struct uml_chat_session {
    _opaque: [u8; 0],
}

static SESSIONS: Registry<ChatSession> = Registry::new(
    3,
    "uml_chat_session",
    "uml_chat_session_new()",
    "uml_chat_session_free()",
    ErrorKind::InvalidArgument,
);

fn session_arg(s: *const uml_chat_session) -> Result<Arc<ChatSession>> {
    SESSIONS.get(s, "session")
}

/// Optional messages JSON: NULL or "" is none.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
unsafe fn messages_arg(p: *const c_char) -> Result<Vec<ChatMessage>> {
    // SAFETY: forwarded from this function's contract.
    match unsafe { opt_str_arg(p, "messages_json") }? {
        None | Some("") => Ok(Vec::new()),
        Some(json) => ChatTemplate::history_from_json(json),
    }
}

/// Start a chat session on `model`. Each `uml_chat_session_send` adds a message, generates the
/// reply over the whole conversation with the model's chat template (as `uml_chat`), and adds
/// the reply; the model keeps the conversation's state for it between turns (with llama.cpp,
/// the slot holding it is kept while other slots are free; candle parks its cache), so a turn
/// evaluates only the tokens it added (see `cached_prompt_tokens` in the result).
///
/// - `model`: the model; the session does not keep it loaded: after `uml_model_free` (and the
///   end of the calls running on it) a send fails with `UML_ERR_MODEL_CLOSED`.
/// - `messages_json`: NULL, "" or a JSON array of `{"role", "content"}` messages the
///   conversation starts from (a system prompt, earlier turns). Borrowed.
/// - `out_session`: receives the new handle; free it with `uml_chat_session_free`.
///
/// Thread safety: any thread.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (bad handle, malformed messages, NULL `out_session`),
/// `UML_ERR_MODEL_CLOSED`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_chat_session_new(
    model: *const uml_model,
    messages_json: *const c_char,
    out_session: *mut *mut uml_chat_session,
) -> uml_status {
    boundary("uml_chat_session_new", || {
        let model = model_arg(model, "model")?;
        // SAFETY: the caller passes a NUL-terminated string (or NULL) and a writable slot.
        let (messages, out) = unsafe {
            (
                messages_arg(messages_json)?,
                Out::new(out_session, "out_session")?,
            )
        };
        out.write(SESSIONS.insert(model.chat_session(messages)));
        Ok(())
    })
}

/// One turn: add the message (`role`, NULL for "user"; `content`) and generate the
/// assistant's reply, streamed to `on_token`, exactly as `uml_chat` does (same parameters,
/// callback, cancellation and result JSON). A turn that fails, or is cancelled before any
/// text, leaves the conversation as it was; one cancelled or stopped later keeps the text
/// generated so far as the reply.
///
/// Thread safety: any thread, one turn at a time per session: a send while another turn of
/// the same session runs fails with `UML_ERR_BUSY` (sessions of one model run in parallel).
/// Errors: as `uml_chat`, plus `UML_ERR_BUSY` as above and `UML_ERR_MODEL_CLOSED` when the
/// model was freed.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn uml_chat_session_send(
    session: *const uml_chat_session,
    role: *const c_char,
    content: *const c_char,
    params_json: *const c_char,
    on_token: uml_token_cb,
    user: *mut c_void,
    cancel: *const uml_cancel,
    out_result_json: *mut *mut c_char,
) -> uml_status {
    boundary("uml_chat_session_send", || {
        let session = session_arg(session)?;
        // SAFETY: the caller passes NUL-terminated strings (or NULL).
        let (role, content) = unsafe {
            (
                opt_str_arg(role, "role")?.unwrap_or("user").to_owned(),
                str_arg(content, "content")?.to_owned(),
            )
        };
        let message = ChatMessage::new(role, content);
        // SAFETY: the caller passes NUL-terminated params (or NULL) and a writable result slot
        // (or NULL).
        unsafe {
            run_generation(
                params_json,
                on_token,
                user,
                cancel,
                out_result_json,
                move |p, c, s| session.send(message, p, c, s),
            )
        }
    })
}

/// The conversation so far as a JSON array of `{"role", "content"}` messages: the starting
/// messages, then each finished turn's message and reply.
///
/// - `out_json`: receives a new string; free it with `uml_string_free`.
///
/// Thread safety: any thread, also while a turn runs (its messages appear when it ends).
/// Errors: `UML_ERR_INVALID_ARGUMENT` (bad handle, NULL `out_json`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_chat_session_messages(
    session: *const uml_chat_session,
    out_json: *mut *mut c_char,
) -> uml_status {
    boundary("uml_chat_session_messages", || {
        let session = session_arg(session)?;
        // SAFETY: the caller passes a writable slot (or NULL, refused).
        let out = unsafe { Out::new(out_json, "out_json") }?;
        out.write(new_json(&session.messages())?);
        Ok(())
    })
}

/// Start the conversation over from `messages_json` (NULL or "" for none; borrowed). The
/// model's cache keeps whatever prefix still matches.
///
/// Thread safety: any thread. Errors: `UML_ERR_INVALID_ARGUMENT` (bad handle, malformed
/// messages), `UML_ERR_BUSY` while a turn runs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_chat_session_reset(
    session: *const uml_chat_session,
    messages_json: *const c_char,
) -> uml_status {
    boundary("uml_chat_session_reset", || {
        let session = session_arg(session)?;
        // SAFETY: the caller passes a NUL-terminated string (or NULL).
        let messages = unsafe { messages_arg(messages_json) }?;
        session.reset(messages)
    })
}

/// Release a chat session; what the model kept for it goes to other callers. NULL, and a
/// handle already freed, are ignored. A turn still running on another thread finishes first.
///
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn uml_chat_session_free(session: *mut uml_chat_session) {
    crate::boundary::guard((), || drop(SESSIONS.remove(session)))
}
