//! `uml_generate` and `uml_chat`: text generation streamed through a C callback.

use crate::boundary::{boundary, new_json, opt_str_arg, str_arg, Out};
use crate::cancel::{cancel_arg, uml_cancel};
use crate::model::{model_arg, uml_model};
use crate::status::uml_status;
use crate::tasks;
use std::ffi::{c_char, c_void};
use uml_core::chat::ChatTemplate;
use uml_core::sampling::GenerateParams;
use uml_core::stream::Completion;
use uml_core::Result;

/// Receives generated text as it is produced. `piece` is `len` bytes of UTF-8 (never a split
/// character), followed by a NUL that is not counted in `len`; it is borrowed and valid only
/// during the call. Return true to go on, false to stop generation cleanly (the call then
/// returns `UML_OK` with finish reason "cancelled"; the result text holds exactly the pieces
/// delivered, this one included).
///
/// Called on the thread that called `uml_generate` / `uml_chat`, before it returns, never
/// concurrently for one call (the decoding itself runs on a uml thread, which waits for each
/// callback's answer before it goes on). It must not throw or longjmp; it may call other uml functions
/// (e.g. `uml_cancel_cancel`, or generate from the same model).
pub type uml_token_cb =
    Option<unsafe extern "C" fn(piece: *const c_char, len: usize, user: *mut c_void) -> bool>;

/// What every generating entry point shares: parse the params, run `run` with a sink that
/// forwards pieces to the callback, write the result JSON.
///
/// # Safety
/// `params_json` is NULL or a NUL-terminated string; `out_result_json` is NULL or writable.
pub(crate) unsafe fn run_generation(
    params_json: *const c_char,
    on_token: uml_token_cb,
    user: *mut c_void,
    cancel: *const uml_cancel,
    out_result_json: *mut *mut c_char,
    run: impl FnOnce(
            &GenerateParams,
            Option<&uml_core::CancelToken>,
            &mut dyn FnMut(&str) -> bool,
        ) -> Result<Completion>
        + Send
        + 'static,
) -> Result<()> {
    let cancel = cancel_arg(cancel)?;
    // SAFETY: forwarded from this function's contract.
    let (params, out) = unsafe {
        (
            opt_str_arg(params_json, "params_json")?,
            Out::optional(out_result_json),
        )
    };
    let params = GenerateParams::from_json(params.unwrap_or(""))?;
    let mut piece_buf: Vec<u8> = Vec::new();
    let mut forward = |piece: &str| -> bool {
        let Some(cb) = on_token else { return true };
        // NUL-terminated copy, so C can also treat the piece as a string.
        piece_buf.clear();
        piece_buf.extend_from_slice(piece.as_bytes());
        piece_buf.push(0);
        // SAFETY: a C function pointer given for this call with its own `user`, called on the
        // calling thread during the call; the piece is valid for `len` bytes plus the NUL.
        unsafe { cb(piece_buf.as_ptr().cast::<c_char>(), piece.len(), user) }
    };
    let on_piece: Option<&mut dyn FnMut(&str) -> bool> = match on_token {
        Some(_) => Some(&mut forward),
        None => None,
    };
    let completion = tasks::run(cancel, on_piece, move |cancel, sink| {
        run(&params, cancel, sink)
    })?;
    if let Some(out) = out {
        out.write(new_json(&completion)?);
    }
    Ok(())
}

/// Generate a continuation of `prompt` (BOS is added as the model wants), streaming it to
/// `on_token`. Blocks until done, stopped or cancelled.
///
/// - `prompt`: NUL-terminated UTF-8, borrowed for the call.
/// - `params_json`: NULL, "" or a JSON object of generate parameters (`max_tokens`,
///   `temperature` (0 = greedy), `top_k`, `top_p`, `min_p`, `repeat_penalty`,
///   `repeat_last_n`, `frequency_penalty`, `presence_penalty`, `seed`, `stop`, `logit_bias`,
///   `grammar`, `json_schema`, `deterministic`: true runs it alone in a context of its own,
///   never batched with other calls, `context_shift`: true drops the older half of a full
///   context after its first token and goes on instead of stopping with "length",
///   `UML_ERR_UNSUPPORTED` for a model whose memory cannot shift, `lora`: an array of
///   `{"name", "scale"}` choosing among the adapters the model was loaded with (those not
///   listed are off; `[]` is the base model; omitted: the load scales; several may be on only
///   at the scales they were loaded with, else `UML_ERR_UNSUPPORTED`; an unknown name is `UML_ERR_INVALID_ARGUMENT`); omitted keys
///   take their defaults; with a draft model loaded, `draft_max` (default 16; 0: no drafting),
///   `draft_min` (default 0), `draft_p_min` (default 0) and `draft_margin_min` (default 0.25:
///   drafting stops at a token leading the draft's runner-up by fewer logits; 0: draft
///   through near-ties) shape its drafts. Borrowed.
/// - `on_token`, `user`: optional streaming callback (NULL for none) and its pointer.
/// - `cancel`: optional token (NULL for none); cancelling it stops before the next token with
///   finish reason "cancelled" and `UML_OK`.
/// - `out_result_json`: optional (NULL to skip); on success a new string the caller frees
///   with `uml_string_free`: `{"text": "...", "finish_reason": "stop" | "length" |
///   "cancelled", "usage": {"prompt_tokens", "cached_prompt_tokens", "completion_tokens",
///   "prompt_ms", "generation_ms", "prompt_tokens_per_second",
///   "generation_tokens_per_second", "drafted_tokens", "accepted_tokens"}}`.
///   `cached_prompt_tokens` of the prompt's tokens were kept from an earlier generation on
///   the same model (a shared prefix) instead of evaluated again; with a draft model,
///   `drafted_tokens` were proposed by it and `accepted_tokens` of them kept.
///
/// Thread safety: any thread; several threads may generate from one model at once (each
/// call gets its own context). The callback runs on the calling thread.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (NULL/non-UTF-8/empty prompt, invalid handle, bad
/// JSON or an unknown or invalid parameter, named), `UML_ERR_MODEL_CLOSED`,
/// `UML_ERR_CONTEXT_OVERFLOW` (prompt does not fit `n_ctx`), `UML_ERR_BACKEND`,
/// `UML_ERR_INTERNAL`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_generate(
    model: *const uml_model,
    prompt: *const c_char,
    params_json: *const c_char,
    on_token: uml_token_cb,
    user: *mut c_void,
    cancel: *const uml_cancel,
    out_result_json: *mut *mut c_char,
) -> uml_status {
    boundary("uml_generate", || {
        let model = model_arg(model, "model")?;
        // SAFETY: the caller passes a NUL-terminated prompt (or NULL).
        let prompt = unsafe { str_arg(prompt, "prompt") }?.to_owned();
        // SAFETY: the caller passes NUL-terminated params (or NULL) and a writable result slot
        // (or NULL).
        unsafe {
            run_generation(
                params_json,
                on_token,
                user,
                cancel,
                out_result_json,
                move |p, c, s| model.generate(&prompt, p, c, s),
            )
        }
    })
}

/// Chat: render `messages_json` with the model's own chat template (or the `chat_template`
/// load option), then generate the assistant's reply exactly like `uml_generate` (same
/// parameters, callback, cancellation and result JSON).
///
/// - `messages_json`: a JSON array of `{"role": "system" | "user" | "assistant", "content":
///   "..."}` objects, at least one; borrowed.
///
/// Thread safety: as `uml_generate`.
/// Errors: as `uml_generate`, plus `UML_ERR_INVALID_ARGUMENT` for malformed messages and
/// `UML_ERR_UNSUPPORTED` for a model without a chat template (give one at load).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_chat(
    model: *const uml_model,
    messages_json: *const c_char,
    params_json: *const c_char,
    on_token: uml_token_cb,
    user: *mut c_void,
    cancel: *const uml_cancel,
    out_result_json: *mut *mut c_char,
) -> uml_status {
    boundary("uml_chat", || {
        let model = model_arg(model, "model")?;
        // SAFETY: the caller passes a NUL-terminated string (or NULL).
        let messages = unsafe { str_arg(messages_json, "messages_json") }?;
        let messages = ChatTemplate::messages_from_json(messages)?;
        // SAFETY: as in uml_generate.
        unsafe {
            run_generation(
                params_json,
                on_token,
                user,
                cancel,
                out_result_json,
                move |p, c, s| model.chat(&messages, p, c, s),
            )
        }
    })
}
