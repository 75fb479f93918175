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
use crate::sampling::GenerateParams;
use crate::{Error, ErrorKind, Result};
use std::path::Path;

/// Most drafted tokens one step verifies for a model that keeps a recurrent state (Qwen3.5's
/// linear attention): such a state rolls back only to a snapshot, and each position of the
/// window costs a snapshot of it in every drafting context. The default `draft_max`.
pub const RECURRENT_DRAFT_WINDOW: u32 = 16;

/// Most tokens a model's own prediction heads draft per step, whatever `draft_max` asks: a
/// head trained to look one token ahead guesses worse at each further step (llama.cpp's MTP
/// default is 3), and every drafted position costs the model's context a recurrent-state
/// snapshot to roll back.
pub const MTP_MAX_DRAFT: u32 = 3;

/// Snapshots of a recurrent state that each drafting context keeps to roll a rejected draft
/// back to (llama.cpp's `n_rs_seq`), at most: for a load with `private_contexts` (1: a draft
/// model, 2: the model's own heads; 0: no drafting) and micro-batches of `n_ubatch` tokens,
/// which must hold those positions and one more token.
pub(crate) fn rollback_snapshots(private_contexts: u32, n_ubatch: u32) -> u32 {
    let room = n_ubatch.saturating_sub(2);
    match private_contexts {
        0 => 0,
        1 => RECURRENT_DRAFT_WINDOW.min(room),
        _ => MTP_MAX_DRAFT.min(room).max(1),
    }
}

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
    margin_min: f32,
}

impl<'m> Drafter<'m> {
    /// A drafter in a session of `model` made with `request`, drafting as `params` ask
    /// (`draft_max`, `draft_min`, `draft_p_min`, `draft_margin_min`).
    pub fn new(
        model: &'m dyn LoadedModel,
        request: SessionRequest,
        params: &GenerateParams,
    ) -> Result<Self> {
        Ok(Drafter {
            model,
            session: model.new_session(request)?,
            held: Vec::new(),
            max: params.draft_max as usize,
            min: params.draft_min as usize,
            p_min: params.draft_p_min,
            margin_min: params.draft_margin_min,
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
    /// (its last one sampled but not yet evaluated). Greedy; stops before a near-tie (a token
    /// leading the runner-up by less than `margin_min` logits) or a token the draft gives less
    /// than `p_min`, and after an end of generation. Fewer than `min`: none.
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
            let (token, top, runner_up) = top_two(logits)?;
            if top - runner_up < self.margin_min {
                break;
            }
            // The probability costs a pass of exp over the vocabulary: only when it matters.
            if self.p_min > 0.0 && probability_of_top(logits, top) < self.p_min {
                break;
            }
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

/// The most likely token (the lowest id on a tie), its logit and the runner-up's (minus
/// infinity for a vocabulary of one).
fn top_two(logits: &[f32]) -> Result<(Token, f32, f32)> {
    let (mut best, mut top, mut runner_up) = (0, f32::NEG_INFINITY, f32::NEG_INFINITY);
    for (i, &l) in logits.iter().enumerate() {
        if l > top {
            (best, top, runner_up) = (i, l, top);
        } else if l > runner_up {
            runner_up = l;
        }
    }
    if !top.is_finite() {
        return Err(Error::internal("the draft model's logits are not finite"));
    }
    let token = Token::try_from(best).map_err(|_| Error::internal("token id overflow"))?;
    Ok((token, top, runner_up))
}

/// The probability of the token whose logit is `top`, the largest (softmax of the raw logits).
fn probability_of_top(logits: &[f32], top: f32) -> f32 {
    let sum: f32 = logits.iter().map(|&l| (l - top).exp()).sum();
    1.0 / sum
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
    use super::{probability_of_top, top_two};

    #[test]
    fn the_best_token_comes_with_the_runner_up_and_its_probability() {
        let logits = [0.0, 2.0, 1.5, 0.0];
        assert_eq!(top_two(&logits).unwrap(), (1, 2.0, 1.5));
        let p = probability_of_top(&logits, 2.0);
        let expected = 2f32.exp() / (2.0 + 2f32.exp() + 1.5f32.exp());
        assert!((p - expected).abs() < 1e-6, "{p}");
        // The lowest id wins a tie, and the margin is then 0.
        assert_eq!(top_two(&[1.0, 3.0, 3.0]).unwrap(), (1, 3.0, 3.0));
        assert_eq!(top_two(&[4.0]).unwrap(), (0, 4.0, f32::NEG_INFINITY));
        assert!(top_two(&[f32::NEG_INFINITY; 3]).is_err());
    }
}
