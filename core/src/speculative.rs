//! Speculative decoding with a draft model: a small model of the same vocabulary proposes the
//! next few tokens greedily, and the generation loop (`generate`) has the model evaluate them
//! all in one decode and keeps those it would have chosen itself.
//!
//! Verification samples the model at each drafted position with the generation's own sampler,
//! in order, and keeps drafted tokens while they equal what it sampled: the first token that
//! differs is the model's own next token. So every token comes from the model's distribution
//! through the same sampler calls as without a draft, and a fixed seed gives the same text with
//! or without one (llama.cpp's server verifies so too). The draft only decides how many tokens
//! one decode yields.

use crate::backend::{Backend, LoadedModel, Session, SessionRequest, Token};
use crate::estimate::{EstimateOptions, MemoryEstimate};
use crate::generate::decode_prompt;
use crate::inspect::ModelInfo;
use crate::options::LoadOptions;
use crate::{Error, ErrorKind, Result};
use std::path::Path;

/// Most drafted tokens one step verifies for a model that keeps a recurrent state (Qwen3.5's
/// linear attention): such a state rolls back only to a snapshot, and each position of the
/// window costs a snapshot of it in every drafting context. The default `draft_max`.
pub const RECURRENT_DRAFT_WINDOW: u32 = 16;

/// A draft model file (load option `draft_model`), inspected before its model loads: a
/// missing or broken draft fails before the model's weights are read, and the memory planned
/// for the model leaves room for the draft's.
pub(crate) struct DraftFile {
    info: ModelInfo,
    backend: &'static dyn Backend,
}

impl std::fmt::Debug for DraftFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DraftFile")
            .field("path", &self.info.path)
            .field("backend", &self.backend.name())
            .finish()
    }
}

impl DraftFile {
    pub fn inspect(path: &Path) -> Result<DraftFile> {
        let info = crate::inspect::inspect(path).map_err(|e| draft_error(path, e))?;
        let backend = crate::estimate::first_backend(&info, &LoadOptions::default())
            .map_err(|e| draft_error(path, e))?;
        Ok(DraftFile { info, backend })
    }

    pub fn path(&self) -> &Path {
        &self.info.path
    }

    /// The draft's memory beside a model estimated with `beside`: the same context length,
    /// slots, KV cache type and batch (see `Model::load_draft`), and as many GPU layers (its
    /// own block count caps them).
    pub fn estimate(&self, beside: &EstimateOptions) -> Result<MemoryEstimate> {
        let opts = EstimateOptions {
            dtype: None,
            ..*beside
        };
        self.backend
            .estimate(&self.info, &opts)
            .map_err(|e| draft_error(&self.info.path, e))
    }
}

/// `e`, said of the draft model at `path`.
pub(crate) fn draft_error(path: &Path, e: Error) -> Error {
    Error::new(
        e.kind(),
        format!("draft model {}: {}", path.display(), e.message()),
    )
}

/// The draft side of one generation: its own session on the draft model, kept in step with
/// the generation's tokens.
pub(crate) struct Drafter<'m> {
    model: &'m dyn LoadedModel,
    session: Box<dyn Session + 'm>,
    /// The tokens the draft's session holds.
    held: Vec<Token>,
    max: usize,
    min: usize,
    p_min: f32,
}

impl<'m> Drafter<'m> {
    pub fn new(
        model: &'m dyn LoadedModel,
        request: SessionRequest,
        max: u32,
        min: u32,
        p_min: f32,
    ) -> Result<Self> {
        Ok(Drafter {
            model,
            session: model.new_session(request)?,
            held: Vec::new(),
            max: max as usize,
            min: min as usize,
            p_min,
        })
    }

    /// Evaluate the prompt (keeping what the draft's context already holds of it). False when
    /// cancelled.
    pub fn prompt(&mut self, prompt: &[Token], is_cancelled: &dyn Fn() -> bool) -> Result<bool> {
        let cached = self.session.reuse_prefix(prompt)?;
        if !decode_prompt(
            self.session.as_mut(),
            &prompt[cached..],
            cached as u32,
            is_cancelled,
        )? {
            return Ok(false);
        }
        self.held = prompt.to_vec();
        Ok(true)
    }

    /// Up to `limit` tokens (and `max`) to follow `history`, the generation's tokens so far
    /// (its last one sampled but not yet evaluated). Greedy; stops at a token the draft gives
    /// less than `p_min`, or after an end of generation. Fewer than `min`: none.
    pub fn propose(&mut self, history: &[Token], limit: usize) -> Result<Vec<Token>> {
        let limit = limit.min(self.max);
        if limit == 0 || history.is_empty() {
            return Ok(Vec::new());
        }
        // Bring the draft's context to `history`: what it drafted last time and the model did
        // not keep is replaced from the first difference on.
        let common = self
            .held
            .iter()
            .zip(history)
            .take_while(|(a, b)| a == b)
            .count()
            .min(history.len() - 1);
        decode_prompt(
            self.session.as_mut(),
            &history[common..],
            common as u32,
            &|| false,
        )?;
        self.held.truncate(common);
        self.held.extend_from_slice(&history[common..]);
        let n_ctx = self.session.n_ctx() as usize;
        let mut drafts = Vec::new();
        while drafts.len() < limit && self.held.len() < n_ctx {
            let logits = self.session.logits()?;
            // The probability costs a pass of exp over the vocabulary: only when it matters.
            let token = if self.p_min > 0.0 {
                let (token, p) = best_with_probability(logits)?;
                if p < self.p_min {
                    break;
                }
                token
            } else {
                best(logits)?
            };
            drafts.push(token);
            if drafts.len() == limit || self.model.is_end_of_generation(token) {
                break;
            }
            self.session.decode(&[token], self.held.len() as u32)?;
            self.held.push(token);
        }
        if drafts.len() < self.min {
            drafts.clear();
        }
        Ok(drafts)
    }
}

/// The most likely token (the lowest id on a tie).
fn best(logits: &[f32]) -> Result<Token> {
    let (best, max) = argmax(logits);
    if !max.is_finite() {
        return Err(Error::internal("the draft model's logits are not finite"));
    }
    Token::try_from(best).map_err(|_| Error::internal("token id overflow"))
}

fn argmax(logits: &[f32]) -> (usize, f32) {
    logits
        .iter()
        .copied()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bl), (i, l)| {
            if l > bl {
                (i, l)
            } else {
                (bi, bl)
            }
        })
}

/// The most likely token and its probability (softmax of the raw logits).
fn best_with_probability(logits: &[f32]) -> Result<(Token, f32)> {
    let (best, max) = argmax(logits);
    if !max.is_finite() {
        return Err(Error::internal("the draft model's logits are not finite"));
    }
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let token = Token::try_from(best).map_err(|_| Error::internal("token id overflow"))?;
    Ok((token, 1.0 / sum))
}

/// Check that `draft` can draft for `model`: the same vocabulary, token for token (the same
/// ids for the same bytes, the same end-of-generation tokens).
pub(crate) fn check_vocabularies(
    model: &dyn LoadedModel,
    draft: &dyn LoadedModel,
    draft_path: &std::path::Path,
) -> Result<()> {
    let mismatch = |why: String| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "draft model {} cannot draft for this model: {why}; a draft must share the \
                 model's vocabulary (a smaller model of the same family, e.g. SmolLM2-135M for \
                 SmolLM2-1.7B)",
                draft_path.display()
            ),
        )
    };
    let (n, n_draft) = (model.vocab_size(), draft.vocab_size());
    if n != n_draft {
        return Err(mismatch(format!(
            "its vocabulary has {n_draft} tokens, the model's {n}"
        )));
    }
    for id in 0..n as Token {
        if model.token_bytes(id) != draft.token_bytes(id)
            || model.special_token_text(id) != draft.special_token_text(id)
            || model.is_end_of_generation(id) != draft.is_end_of_generation(id)
        {
            return Err(mismatch(format!(
                "token {id} is {:?} in the model but {:?} in the draft",
                String::from_utf8_lossy(&model.token_bytes(id)),
                String::from_utf8_lossy(&draft.token_bytes(id))
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::best_with_probability;

    #[test]
    fn the_best_token_comes_with_its_softmax_probability() {
        let (token, p) = best_with_probability(&[0.0, 2.0, 0.0]).unwrap();
        assert_eq!(token, 1);
        let expected = 2f32.exp() / (2.0 + 2f32.exp());
        assert!((p - expected).abs() < 1e-6, "{p}");
        assert!(best_with_probability(&[f32::NEG_INFINITY; 3]).is_err());
    }
}
