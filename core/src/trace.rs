//! Greedy traces: at each generated position, the token greedy decoding picks, its logit and its
//! margin over the runner-up.
//!
//! SIMD kernels (AVX-512, AVX2, plain SSE) round differently, so two tokens whose logits nearly
//! tie can swap places from one CPU to another, and greedy text recorded on one machine is not
//! what another machine must produce past such a point. The margins say how far a recorded
//! greedy output can be trusted anywhere: `scripts/record-greedy-fixtures` records them per
//! kernel path, and every host's tests compare output only up to the first near-tie
//! (`uml_test_support::GreedyFixture`).

use crate::backend::{SessionRequest, Token};
use crate::generate::decode_prompt;
use crate::model::Model;
use crate::{Error, ErrorKind, Result};
use serde::Serialize;

/// One greedy position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceStep {
    /// The token greedy decoding chose (the highest logit; the lowest id on an exact tie, as
    /// llama.cpp's greedy sampler does).
    pub token: Token,
    /// Its text. A token that is only part of a UTF-8 character has none: see `complete_utf8`.
    pub text: String,
    /// False when `text` is not the token's exact bytes (a split UTF-8 character).
    pub complete_utf8: bool,
    pub logit: f32,
    /// The second-best token and how far below the chosen one its logit is (>= 0).
    pub runner_up: Token,
    pub margin: f32,
}

/// Greedy-decode up to `n_predict` tokens after `prompt`, recording each position's choice and
/// margin. Stops early at an end-of-generation token (which is not recorded), like `generate`.
pub fn greedy_trace(model: &Model, prompt: &[Token], n_predict: u32) -> Result<Vec<TraceStep>> {
    greedy_trace_lora(model, prompt, n_predict, None)
}

/// `greedy_trace` with the LoRA adapters `lora` chooses (as `GenerateParams::lora`; `None`:
/// those the model was loaded with).
pub fn greedy_trace_lora(
    model: &Model,
    prompt: &[Token],
    n_predict: u32,
    lora: Option<&[crate::sampling::LoraScale]>,
) -> Result<Vec<TraceStep>> {
    if prompt.is_empty() {
        return Err(Error::invalid_argument("greedy_trace: the prompt is empty"));
    }
    let loaded = model.loaded();
    let mut session = loaded.new_session(SessionRequest {
        adapter: crate::lora::choose(loaded.lora_adapters(), lora)?,
        ..SessionRequest::ALONE
    })?;
    let n_ctx = session.n_ctx() as usize;
    if prompt.len() + n_predict as usize > n_ctx {
        return Err(Error::new(
            ErrorKind::ContextOverflow,
            format!(
                "greedy_trace: {} prompt tokens + {n_predict} predicted do not fit a context of {n_ctx}",
                prompt.len()
            ),
        ));
    }
    decode_prompt(session.as_mut(), prompt, 0, &|| false)?;
    let mut steps = Vec::with_capacity(n_predict as usize);
    for pos in prompt.len()..prompt.len() + n_predict as usize {
        let (token, logit, runner_up, second) = top_two(session.logits()?)?;
        if loaded.is_end_of_generation(token) {
            break;
        }
        let bytes = loaded.token_bytes(token);
        let (text, complete_utf8) = match String::from_utf8(bytes) {
            Ok(s) => (s, true),
            Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), false),
        };
        steps.push(TraceStep {
            token,
            text,
            complete_utf8,
            logit,
            runner_up,
            margin: logit - second,
        });
        session.decode(&[token], pos as u32)?;
    }
    Ok(steps)
}

/// The raw logits (one per vocabulary entry) of the last position after evaluating `tokens`
/// from position 0 on a fresh context, with the LoRA adapters the model was loaded with: what
/// two backends, or an adapter and the weights it was merged into, are compared on.
pub fn last_logits(model: &Model, tokens: &[Token]) -> Result<Vec<f32>> {
    if tokens.is_empty() {
        return Err(Error::invalid_argument("last_logits: no tokens"));
    }
    let loaded = model.loaded();
    let mut session = loaded.new_session(SessionRequest {
        adapter: crate::lora::choose(loaded.lora_adapters(), None)?,
        ..SessionRequest::ALONE
    })?;
    decode_prompt(session.as_mut(), tokens, 0, &|| false)?;
    Ok(session.logits()?.to_vec())
}

/// The best and second-best (token, logit); the lower id wins an exact tie.
fn top_two(logits: &[f32]) -> Result<(Token, f32, Token, f32)> {
    if logits.len() < 2 {
        return Err(Error::internal("greedy_trace: fewer than two logits"));
    }
    let (mut best, mut second) = ((0usize, f32::NEG_INFINITY), (0usize, f32::NEG_INFINITY));
    for (i, &l) in logits.iter().enumerate() {
        if l > best.1 {
            second = best;
            best = (i, l);
        } else if l > second.1 {
            second = (i, l);
        }
    }
    let id = |i: usize| Token::try_from(i).map_err(|_| Error::internal("token id overflow"));
    Ok((id(best.0)?, best.1, id(second.0)?, second.1))
}

#[cfg(test)]
mod tests {
    use super::top_two;

    #[test]
    fn top_two_finds_best_and_runner_up_and_breaks_ties_by_lower_id() {
        assert_eq!(top_two(&[0.0, 3.0, 1.0, 2.5]).unwrap(), (1, 3.0, 3, 2.5));
        assert_eq!(top_two(&[5.0, 1.0, 5.0]).unwrap(), (0, 5.0, 2, 5.0));
        assert_eq!(top_two(&[1.0, 9.0]).unwrap(), (1, 9.0, 0, 1.0));
        assert!(top_two(&[1.0]).is_err());
    }
}
