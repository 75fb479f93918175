//! The generation loop, shared by every backend: prompt evaluation in cancellable chunks,
//! sampling, UTF-8-safe streaming with stop strings, finish reasons and usage.

use crate::backend::{ConversationId, LoadedModel, Session, SessionRequest, Token};
use crate::sampling::{Constraint, GenerateParams, Sampler};
use crate::stream::{Completion, FinishReason, TextStream, Usage};
use crate::{CancelToken, Error, ErrorKind, Result};
use std::time::Instant;

/// Where streamed text goes. Returning `false` stops generation (finish reason `Cancelled`).
pub type Sink<'a> = &'a mut dyn FnMut(&str) -> bool;

/// Run one generation from already-tokenized `prompt`; `constraint` is the compiled grammar or
/// JSON schema of `params`, if any; `conversation` names the chat session it continues.
pub(crate) fn generate_tokens(
    model: &dyn LoadedModel,
    conversation: Option<ConversationId>,
    prompt: &[Token],
    params: &GenerateParams,
    constraint: Option<Constraint>,
    cancel: Option<&CancelToken>,
    sink: Sink<'_>,
) -> Result<Completion> {
    params.validate()?;
    if prompt.is_empty() {
        return Err(Error::invalid_argument(
            "the prompt is empty: give at least one token of text",
        ));
    }
    let mut session = model.new_session(SessionRequest {
        alone: params.deterministic,
        conversation,
        adapter: crate::lora::choose(model.lora_adapters(), params.lora.as_deref())?,
    })?;
    let n_ctx = session.n_ctx() as usize;
    if params.context_shift {
        session.can_shift()?;
    }
    let mut sampler = Sampler::new(params, model.vocab_size(), session.n_ctx(), constraint)?;
    sampler.accept_prompt(prompt);
    if prompt.len() >= n_ctx {
        return Err(Error::new(
            ErrorKind::ContextOverflow,
            format!(
                "the prompt is {} tokens but the context holds {n_ctx} (one more is needed to generate); \
                 shorten the prompt or load the model with a larger n_ctx",
                prompt.len()
            ),
        ));
    }
    let is_cancelled = || cancel.is_some_and(|c| c.is_cancelled());
    let mut stream = TextStream::new(&params.stop);
    let mut usage = Usage {
        prompt_tokens: prompt.len() as u32,
        ..Usage::default()
    };

    // Prompt: what the context still holds of it from an earlier generation is kept; the rest
    // is evaluated in n_batch chunks, checking for cancellation between them, so a cancel
    // during a long prompt waits for at most one chunk.
    let prompt_start = Instant::now();
    let cached = session.reuse_prefix(prompt)?;
    usage.cached_prompt_tokens = cached as u32;
    if !decode_prompt(
        session.as_mut(),
        &prompt[cached..],
        cached as u32,
        &is_cancelled,
    )? {
        return Ok(finished(stream, FinishReason::Cancelled, usage, Some(sink)));
    }
    usage.prompt_ms = ms(prompt_start);

    let gen_start = Instant::now();
    let mut pos = prompt.len();
    let mut sink_open = true;
    let reason = loop {
        if is_cancelled() {
            break FinishReason::Cancelled;
        }
        let token = sampler
            .sample(session.logits()?)
            .map_err(|e| with_text_so_far(e, &stream))?;
        if model.is_end_of_generation(token) {
            break FinishReason::Stop;
        }
        sampler.accept(token)?;
        usage.completion_tokens += 1;
        let pushed = stream.push(&model.token_bytes(token));
        if !pushed.text.is_empty() && !sink(&pushed.text) {
            sink_open = false;
            break FinishReason::Cancelled;
        }
        if pushed.stopped || sampler.is_finished() {
            break FinishReason::Stop;
        }
        if usage.completion_tokens >= params.max_tokens {
            break FinishReason::Length;
        }
        if pos + 1 >= n_ctx {
            // The context is full: report `length` rather than silently dropping old tokens,
            // unless the caller asked for a shift.
            if !params.context_shift {
                break FinishReason::Length;
            }
            let keep = 1;
            let count = ((pos - keep) / 2).max(1);
            session.shift(keep as u32, count as u32)?;
            pos -= count;
        }
        session.decode(&[token], pos as u32)?;
        pos += 1;
    };
    usage.generation_ms = ms(gen_start);
    Ok(finished(stream, reason, usage, sink_open.then_some(sink)))
}

/// A generation that cannot go on (a grammar dead end) loses nothing: the error carries the
/// text generated before it.
fn with_text_so_far(e: Error, stream: &TextStream) -> Error {
    let text = stream.text_so_far();
    if text.is_empty() {
        return e;
    }
    Error::new(
        e.kind(),
        format!("{}; the text generated so far: {text:?}", e.message()),
    )
}

/// Evaluate `tokens` from position `first_pos` in chunks (`Session::prompt_chunk`), checking
/// `is_cancelled` before each one. Returns false when cancelled before all of them were evaluated.
pub(crate) fn decode_prompt(
    session: &mut dyn Session,
    tokens: &[Token],
    first_pos: u32,
    is_cancelled: &dyn Fn() -> bool,
) -> Result<bool> {
    let end = first_pos + tokens.len() as u32;
    let mut at = 0;
    while at < tokens.len() {
        if is_cancelled() {
            return Ok(false);
        }
        let pos = first_pos + at as u32;
        let chunk = session.prompt_chunk(pos, end).max(1) as usize;
        let piece = &tokens[at..(at + chunk).min(tokens.len())];
        session.decode(piece, pos)?;
        at += piece.len();
    }
    Ok(true)
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Tokens a second over `ms` milliseconds (0 for no time).
pub(crate) fn per_second(tokens: u32, ms: f64) -> f64 {
    if ms > 0.0 {
        f64::from(tokens) * 1000.0 / ms
    } else {
        0.0
    }
}

/// Release held-back text to the sink (unless the sink itself asked to stop: then it gets
/// nothing more, and the result holds exactly what it received) and assemble the result.
fn finished(
    mut stream: TextStream,
    reason: FinishReason,
    mut usage: Usage,
    sink: Option<Sink<'_>>,
) -> Completion {
    if let Some(sink) = sink {
        let tail = stream.finish();
        if !tail.is_empty() {
            sink(&tail);
        }
    }
    // The rate of evaluation: kept tokens took no time.
    let evaluated = usage
        .prompt_tokens
        .saturating_sub(usage.cached_prompt_tokens);
    usage.prompt_tokens_per_second = per_second(evaluated, usage.prompt_ms);
    usage.generation_tokens_per_second = per_second(usage.completion_tokens, usage.generation_ms);
    Completion {
        text: stream.text_so_far().to_string(),
        finish_reason: reason,
        usage,
    }
}
