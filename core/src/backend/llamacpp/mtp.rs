//! Drafting with the model's own multi-token-prediction heads (load option `mtp`), through
//! llama.cpp's MTP drafter (`MtpSpeculative`). The drafter runs the heads in a context of
//! their own, fed with the hidden state of every position the model decodes, and it is bound
//! to sequence 0 of one model context: so a drafting generation runs in a context pair of its
//! own, decoded on the calling thread (as a draft model's generation does), and pooled for the
//! next one. The generation loop verifies the drafts exactly as it verifies a draft model's.
//!
//! A pooled pair's KV caches are cleared for the next generation, but llama.cpp's drafter
//! keeps the last hidden state it saw until the new prompt is processed: the first draft can
//! differ from a fresh pair's (the text never does), as in llama-server, which reuses its
//! drafter the same way.

use super::{decode_error, fill_batch, ContextKind, LlamaLoaded};
use crate::backend::{DraftLimits, Session, Token};
use crate::speculative::rollback_snapshots;
use crate::{Error, Result};
use llama_cpp_2::context::params::LlamaContextType;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::speculative::{MtpSpeculative, MtpSpeculativeParams};
use llama_cpp_2::token::LlamaToken;
use std::sync::Arc;

/// The most tokens a pair drafts for a generation asking `max`: no more than the snapshots
/// the estimate counts for mtp (`rollback_snapshots`: at most `MTP_MAX_DRAFT`, and fewer than
/// `n_ubatch - 1`; plan_load refuses mtp when that leaves none).
fn window(max: u32, n_ubatch: u32) -> u32 {
    rollback_snapshots(2, n_ubatch).min(max).max(1)
}

/// A draft handed out by `draft_own` and not yet settled with the drafter.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// The position of the token the draft follows (verification decodes from there).
    at: u32,
    /// Tokens drafted.
    len: u32,
    /// Whether verification has decoded it.
    verified: bool,
}

/// A context pair, the model's and the heads', owned by llama.cpp's drafter: what a drafting
/// generation runs in, kept in the model's pool between generations (making one reserves
/// both contexts' memory and compute graphs).
pub(super) struct MtpPair {
    /// Owns both contexts; declared before `_model`, so it is dropped before the model its
    /// contexts borrow.
    drafter: MtpSpeculative<'static>,
    _model: Arc<LlamaModel>,
    /// Most tokens a draft, and the recurrent-state snapshots kept to roll one back.
    window: u32,
    /// The drafter stops at a token less likely than this (`draft_p_min`).
    p_min: f32,
}

// SAFETY: llama.cpp contexts may be used from any thread, one thread at a time; a pair
// belongs to one generation, or to the pool's mutex.
unsafe impl Send for MtpPair {}

impl MtpPair {
    /// A pair for generations asking `limits` (its `min` is applied per generation).
    pub fn new(owner: &LlamaLoaded, limits: DraftLimits) -> Result<MtpPair> {
        let window = window(limits.max, owner.plan.n_ubatch);
        let (params, n_ctx) = owner.context_params(ContextKind::Alone);
        // The model's context keeps a snapshot of its recurrent state (Qwen3.5's linear
        // attention blocks) per drafted position, so a rejected draft can be rolled back;
        // llama.cpp ignores it for models without one.
        let model_ctx = owner.create_context(params.clone().with_n_rs_seq(window), n_ctx)?;
        let heads_ctx = {
            let _guard = super::NEW_CONTEXT_LOCK.lock();
            owner.model.new_context(
                super::llama()?,
                params.with_context_type(LlamaContextType::Mtp),
            )
        }
        .map_err(|e| {
            Error::backend(format!(
                "llama.cpp could not make a context for this model's prediction heads: {e} \
                 (it may have too little memory, or heads this llama.cpp does not run); load it \
                 without mtp"
            ))
        })?;
        let drafter = MtpSpeculative::new(
            model_ctx,
            heads_ctx,
            MtpSpeculativeParams {
                n_max: window as i32,
                n_min: 0,
                p_min: limits.p_min,
            },
        )
        .map_err(|e| {
            Error::backend(format!(
                "llama.cpp cannot draft with this model's prediction heads: {e} (its \
                 architecture may carry MTP tensors that this llama.cpp does not run yet); load \
                 it without mtp"
            ))
        })?;
        // SAFETY: the drafter's contexts borrow the model; an `Arc` of that same model is kept
        // beside it, and the field order drops the drafter first.
        let drafter: MtpSpeculative<'static> = unsafe { std::mem::transmute(drafter) };
        Ok(MtpPair {
            drafter,
            _model: owner.model.clone(),
            window,
            p_min: limits.p_min,
        })
    }

    /// Whether it drafts as a generation asking for `limits` of a model with micro-batches
    /// of `n_ubatch` tokens would.
    pub fn drafts_within(&self, limits: DraftLimits, n_ubatch: u32) -> bool {
        self.window == window(limits.max, n_ubatch) && self.p_min == limits.p_min
    }

    /// Whether the model's context can roll a rejected draft back (see `rolls_back`).
    pub fn rolls_back(&mut self) -> bool {
        super::rolls_back(self.drafter.target_context_mut())
    }

    /// Forget everything both contexts hold, for the next generation.
    fn clear(&mut self) {
        self.drafter.target_context_mut().clear_kv_cache();
        self.drafter.draft_context_mut().clear_kv_cache();
    }
}

/// One generation's run in a context pair.
pub(super) struct MtpSession<'m> {
    owner: &'m LlamaLoaded,
    /// `None` only once returned to the pool (in `Drop`).
    pair: Option<MtpPair>,
    /// Drafts shorter than this are not verified (`draft_min`).
    min: usize,
    batch: LlamaBatch<'static>,
    /// Tokens the model's context holds, at positions `0..held`.
    held: u32,
    last_index: i32,
    pending: Option<Pending>,
    /// Whether the drafter was told the prompt (`begin`, before the first draft).
    begun: bool,
    /// A call failed: what the pair holds is unknown, so it is not pooled again.
    failed: bool,
}

fn returned() -> Error {
    Error::internal("MTP session used after its contexts were returned")
}

fn drafter_of(pair: &mut Option<MtpPair>) -> Result<&mut MtpSpeculative<'static>> {
    pair.as_mut()
        .map(|pair| &mut pair.drafter)
        .ok_or_else(returned)
}

impl Drop for MtpSession<'_> {
    fn drop(&mut self) {
        let Some(mut pair) = self.pair.take() else {
            return;
        };
        // A draft handed out and not settled would make the drafter refuse the next one.
        if self.pending.is_some() && pair.drafter.accept(0).is_err() {
            return;
        }
        if !self.failed {
            self.owner.return_mtp_pair(pair);
        }
    }
}

impl<'m> MtpSession<'m> {
    pub fn new(owner: &'m LlamaLoaded, limits: DraftLimits) -> Result<Self> {
        let mut pair = match owner.take_mtp_pair(limits) {
            Some(pair) => pair,
            None => MtpPair::new(owner, limits)?,
        };
        pair.clear();
        Ok(MtpSession {
            owner,
            pair: Some(pair),
            min: limits.min as usize,
            batch: LlamaBatch::new(owner.plan.n_batch as usize, 1),
            held: 0,
            last_index: -1,
            pending: None,
            begun: false,
            failed: false,
        })
    }

    fn drafter(&mut self) -> Result<&mut MtpSpeculative<'static>> {
        drafter_of(&mut self.pair)
    }

    /// Tell the drafter how much of its last draft the model kept, now that the generation
    /// goes on from position `at`: the tokens between the draft's start and `at`.
    fn settle(&mut self, at: u32) -> Result<()> {
        let Some(pending) = self.pending else {
            return Ok(());
        };
        if !pending.verified && at == pending.at {
            return Ok(()); // the verification itself
        }
        let kept = if pending.verified {
            at.saturating_sub(pending.at + 1).min(pending.len)
        } else {
            0
        };
        self.pending = None;
        self.drafter()?
            .accept(kept as u16)
            .map_err(|e| Error::backend(format!("llama.cpp MTP drafter: {e}")))
    }

    /// Forget what both contexts hold from position `from` on (a rejected draft).
    fn forget_from(&mut self, from: u32) -> Result<()> {
        let heads = self.drafter()?.draft_context_mut();
        if heads.kv_cache_seq_pos_max(0) >= from as i32
            && !heads
                .clear_kv_cache_seq(Some(0), Some(from), None)
                .unwrap_or(false)
        {
            return Err(Error::backend(format!(
                "llama.cpp could not roll the prediction heads' context back to position {from}"
            )));
        }
        if from >= self.held {
            return Ok(());
        }
        let removed = self
            .drafter()?
            .target_context_mut()
            .clear_kv_cache_seq(Some(0), Some(from), None)
            .unwrap_or(false);
        if !removed {
            return Err(Error::backend(format!(
                "llama.cpp could not roll the context back to position {from} after a rejected \
                 draft"
            )));
        }
        self.held = from;
        Ok(())
    }

    /// `decode_batch_in`, after which a failed pair is not pooled again.
    fn decode_batch(&mut self, tokens: &[Token], first_pos: u32, all_logits: bool) -> Result<()> {
        let result = self.decode_batch_in(tokens, first_pos, all_logits);
        self.failed |= result.is_err();
        result
    }

    fn decode_batch_in(
        &mut self,
        tokens: &[Token],
        first_pos: u32,
        all_logits: bool,
    ) -> Result<()> {
        if tokens.is_empty() || tokens.len() > self.owner.plan.n_batch as usize {
            return Err(Error::internal(format!(
                "decode: {} tokens for a batch of {}",
                tokens.len(),
                self.owner.plan.n_batch
            )));
        }
        if first_pos > self.held {
            return Err(Error::internal(format!(
                "decode at position {first_pos} but the context holds {} tokens",
                self.held
            )));
        }
        self.settle(first_pos)?;
        self.forget_from(first_pos)?;
        fill_batch(&mut self.batch, tokens, first_pos, all_logits)?;
        let last = tokens.len() - 1;
        drafter_of(&mut self.pair)?
            .target_context_mut()
            .decode(&mut self.batch)
            .map_err(|e| decode_error(e, self.owner.plan.n_ctx))?;
        self.held = first_pos + tokens.len() as u32;
        self.last_index = last as i32;
        if let Some(pending) = self.pending.as_mut() {
            pending.verified = true;
        }
        // The heads see the hidden state of every position the model decodes.
        drafter_of(&mut self.pair)?
            .process(&self.batch)
            .map_err(|e| Error::backend(format!("llama.cpp MTP drafter: {e}")))
    }
}

impl Session for MtpSession<'_> {
    fn n_ctx(&self) -> u32 {
        self.owner.plan.n_ctx
    }

    fn n_batch(&self) -> u32 {
        self.owner.plan.prompt_chunk()
    }

    fn decode(&mut self, tokens: &[Token], first_pos: u32) -> Result<()> {
        self.decode_batch(tokens, first_pos, false)
    }

    fn decode_all(&mut self, tokens: &[Token], first_pos: u32) -> Result<Vec<Vec<f32>>> {
        self.decode_batch(tokens, first_pos, true)?;
        let ctx = self.target()?;
        Ok((0..tokens.len() as i32)
            .map(|i| ctx.get_logits_ith(i).to_vec())
            .collect())
    }

    fn draft_window(&self) -> Option<usize> {
        self.pair.as_ref().map(|pair| pair.window as usize)
    }

    fn logits(&self) -> Result<&[f32]> {
        // Checked here because llama-cpp-2 panics on a position without logits.
        if self.last_index < 0 {
            return Err(Error::internal("logits read before decode"));
        }
        Ok(self.target()?.get_logits_ith(self.last_index))
    }

    fn draft_own(&mut self, history: &[Token], limit: usize) -> Result<Vec<Token>> {
        let result = self.draft_own_in(history, limit);
        self.failed |= result.is_err();
        result
    }
}

impl MtpSession<'_> {
    fn target(&self) -> Result<&llama_cpp_2::context::LlamaContext<'static>> {
        self.pair
            .as_ref()
            .map(|pair| pair.drafter.target_context())
            .ok_or_else(returned)
    }

    fn draft_own_in(&mut self, history: &[Token], limit: usize) -> Result<Vec<Token>> {
        let Some((&last, before)) = history.split_last() else {
            return Ok(Vec::new());
        };
        let at = before.len() as u32;
        self.settle(at)?;
        self.forget_from(at)?;
        if limit == 0 || at != self.held {
            return Ok(Vec::new());
        }
        let drafter_error = |e| Error::backend(format!("llama.cpp MTP drafter: {e}"));
        if !self.begun {
            let prompt: Vec<LlamaToken> = before.iter().map(|&t| LlamaToken(t)).collect();
            self.drafter()?.begin(&prompt).map_err(drafter_error)?;
            self.begun = true;
        }
        // The heads draft from the hidden states they were fed; the token history is for
        // llama.cpp's n-gram drafters only, so none is copied over.
        let mut drafts = self
            .drafter()?
            .draft(at as i32, LlamaToken(last), &[])
            .map_err(drafter_error)?;
        drafts.truncate(limit);
        if !drafts.is_empty() && drafts.len() < self.min {
            // Too short to verify: settled at once as all rejected.
            self.drafter()?.accept(0).map_err(drafter_error)?;
            drafts.clear();
        }
        if !drafts.is_empty() {
            self.pending = Some(Pending {
                at,
                len: drafts.len() as u32,
                verified: false,
            });
        }
        Ok(drafts.into_iter().map(|t| t.0).collect())
    }
}
