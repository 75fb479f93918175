//! The generation loop, shared by every backend: prompt evaluation in cancellable chunks,
//! sampling, UTF-8-safe streaming with stop strings, finish reasons and usage; with a draft
//! model, or the model's own prediction heads (`Session::draft_own`), each step verifies the
//! drafted tokens in one decode (`speculative`), and every token still goes through the same
//! sampling and streaming.

use crate::backend::{ConversationId, DraftLimits, LoadedModel, Session, SessionRequest, Token};
use crate::sampling::{Constraint, GenerateParams, Sampler};
use crate::speculative::Drafter;
use crate::stream::{Completion, FinishReason, TextStream, Usage};
use crate::{CancelToken, Error, ErrorKind, Result};
use std::time::Instant;

/// Where streamed text goes. Returning `false` stops generation (finish reason `Cancelled`).
pub type Sink<'a> = &'a mut dyn FnMut(&str) -> bool;

/// Run one generation from already-tokenized `prompt`; `constraint` is the compiled grammar or
/// JSON schema of `params`, if any; `conversation` names the chat session it continues;
/// `draft` is the draft model, if one was loaded.
#[allow(clippy::too_many_arguments)]
pub(crate) fn generate_tokens(
    model: &dyn LoadedModel,
    draft: Option<&dyn LoadedModel>,
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
    // A context shift would move positions under the draft's feet: no drafting with it.
    let draft = draft.filter(|_| params.draft_max > 0 && !params.context_shift);
    // A drafting generation runs in private contexts, the model's and the draft's, decoded on
    // this thread: decodes that alternate between the model's batch thread and the draft's
    // leave each thread's OpenMP team spinning on the cores the other one needs (measured
    // with SmolLM2 F32 and its Q4_1 draft on 2 cores: 57 tokens/s that way, 77 this way, 54
    // without a draft).
    let adapter = crate::lora::choose(model.lora_adapters(), params.lora.as_deref())?;
    // Or the model drafts with its own prediction heads (load option `mtp`), in a context
    // pair of this generation's own; they draft for the base model, not for an adapter.
    let own_draft = (draft.is_none()
        && adapter.is_none()
        && model.drafts_itself()
        && params.draft_max > 0
        && !params.context_shift)
        .then_some(DraftLimits {
            max: params.draft_max,
            min: params.draft_min,
            p_min: params.draft_p_min,
        });
    let alone = params.deterministic || draft.is_some() || own_draft.is_some();
    let mut session = model.new_session(SessionRequest {
        alone,
        conversation,
        adapter,
        own_draft,
    })?;
    let mut drafter = match draft {
        Some(draft) => Some(Drafter::new(draft, SessionRequest::ALONE, params)?),
        _ => None,
    };
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
    if let Some(drafter) = drafter.as_mut() {
        if !drafter.prompt(prompt, &is_cancelled)? {
            return Ok(finished(stream, FinishReason::Cancelled, usage, Some(sink)));
        }
    }
    usage.prompt_ms = ms(prompt_start);

    let gen_start = Instant::now();
    let mut pos = prompt.len();
    let mut out = Output {
        model,
        stream: &mut stream,
        usage: &mut usage,
        sink: &mut *sink,
        sink_open: true,
        max_tokens: params.max_tokens,
    };
    // The generation's tokens so far (what the draft continues), kept only with a draft.
    let mut history: Vec<Token> = if drafter.is_some() || own_draft.is_some() {
        prompt.to_vec()
    } else {
        Vec::new()
    };
    // A token verification sampled already: the next one to emit.
    let mut pending: Option<Token> = None;
    let reason = 'generation: loop {
        if is_cancelled() {
            break FinishReason::Cancelled;
        }
        let token = match pending.take() {
            Some(token) => token,
            None => sampler
                .sample(session.logits()?)
                .map_err(|e| with_text_so_far(e, out.stream))?,
        };
        if let Some(reason) = out.emit(&mut sampler, token)? {
            break reason;
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
        let drafts = if drafter.is_some() || own_draft.is_some() {
            history.push(token);
            // Room for the drafts and the token after them, in the context and the budget.
            // And what the model's memory can roll back when they are rejected.
            let room = (n_ctx - pos - 2)
                .min((params.max_tokens - out.usage.completion_tokens) as usize)
                .min(session.n_batch() as usize - 1)
                .min(session.draft_window().unwrap_or(usize::MAX));
            match drafter.as_mut() {
                Some(drafter) => drafter.propose(&history, room)?,
                None => session.draft_own(&history, room)?,
            }
        } else {
            Vec::new()
        };
        if drafts.is_empty() {
            session.decode(&[token], pos as u32)?;
            pos += 1;
            continue;
        }
        // Verify: the model's logits after the token and after each drafted one, in one decode.
        out.usage.drafted_tokens += drafts.len() as u32;
        let mut batch = Vec::with_capacity(drafts.len() + 1);
        batch.push(token);
        batch.extend_from_slice(&drafts);
        let logits = session.decode_all(&batch, pos as u32)?;
        pos += 1;
        for (draft, logits) in drafts.iter().zip(&logits) {
            let chosen = sampler
                .sample(logits)
                .map_err(|e| with_text_so_far(e, out.stream))?;
            if chosen != *draft {
                pending = Some(chosen);
                continue 'generation;
            }
            out.usage.accepted_tokens += 1;
            if let Some(reason) = out.emit(&mut sampler, chosen)? {
                break 'generation reason;
            }
            history.push(chosen);
            pos += 1;
        }
        // Every draft kept: the token after the last one comes from its logits.
        let last = logits.last().ok_or_else(|| Error::internal("no logits"))?;
        pending = Some(
            sampler
                .sample(last)
                .map_err(|e| with_text_so_far(e, out.stream))?,
        );
    };
    let sink_open = out.sink_open;
    usage.generation_ms = ms(gen_start);
    Ok(finished(stream, reason, usage, sink_open.then_some(sink)))
}

/// Where a generation's tokens go: counted, streamed (stop strings held back), checked against
/// the stops and the budget.
struct Output<'a> {
    model: &'a dyn LoadedModel,
    stream: &'a mut TextStream,
    usage: &'a mut Usage,
    sink: &'a mut dyn FnMut(&str) -> bool,
    /// False once the sink asked to stop.
    sink_open: bool,
    max_tokens: u32,
}

impl Output<'_> {
    /// Take the sampled `token`; `Some` when the generation ends with it.
    fn emit(&mut self, sampler: &mut Sampler, token: Token) -> Result<Option<FinishReason>> {
        if self.model.is_end_of_generation(token) {
            return Ok(Some(FinishReason::Stop));
        }
        sampler.accept(token)?;
        self.usage.completion_tokens += 1;
        let pushed = self.stream.push(&self.model.token_bytes(token));
        if !pushed.text.is_empty() && !(self.sink)(&pushed.text) {
            self.sink_open = false;
            return Ok(Some(FinishReason::Cancelled));
        }
        if pushed.stopped || sampler.is_finished() {
            return Ok(Some(FinishReason::Stop));
        }
        if self.usage.completion_tokens >= self.max_tokens {
            return Ok(Some(FinishReason::Length));
        }
        Ok(None)
    }
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
