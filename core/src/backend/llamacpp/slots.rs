//! The generation context every caller shares: one llama.cpp context with a sequence per slot
//! (`max_parallel` of them), a unified KV cache of `n_ctx` cells per slot, and one decode per
//! step for every running generation (see `backend::batcher`). A slot keeps the tokens its
//! last generation left in the cache, and a new generation takes the free slot that already
//! holds the longest part of its prompt (a repeated system prompt, a chat's earlier turns), as
//! llama-server picks slots by prompt similarity. A chat session's slot is kept for it: other
//! generations take it only when no other slot is free.

use super::{drop_from, Adapters, LlamaLoaded, PooledContext};
use crate::backend::batcher::{Batcher, Engine, Member, Request};
use crate::backend::{AdapterChoice, ConversationId, Session, SessionRequest, Token};
use crate::{Error, ErrorKind, Result};
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;
use parking_lot::Mutex;
use std::sync::Arc;

/// The shared context, driven by the batcher.
pub(super) struct SlotEngine {
    pooled: PooledContext,
    batch: LlamaBatch<'static>,
    n_batch: usize,
    adapters: Arc<Adapters>,
}

// SAFETY: the context is only used under the batcher's engine lock, by one thread at a time
// (the batcher's decode thread, or a session dropping its sequence's tokens).
unsafe impl Send for SlotEngine {}

impl SlotEngine {
    /// Drive `pooled`, taking as many tokens per decode as its context was made for.
    pub fn new(pooled: PooledContext, adapters: Arc<Adapters>) -> Self {
        let n_batch = pooled.ctx.n_batch() as usize;
        SlotEngine {
            pooled,
            batch: LlamaBatch::new(n_batch, 1),
            n_batch,
            adapters,
        }
    }

    /// Drop the tokens of `seq` from position `from` on (see `drop_from`).
    fn truncate(&mut self, seq: i32, from: u32) -> bool {
        let recurrent = self.pooled.has_recurrent_state();
        drop_from(&mut self.pooled.ctx, seq, from, recurrent)
    }

    fn forget(&mut self, seq: i32) {
        let _ = self
            .pooled
            .ctx
            .clear_kv_cache_seq(Some(seq as u32), None, None);
    }
}

impl Engine for SlotEngine {
    fn token_budget(&self) -> usize {
        self.n_batch
    }

    fn run(&mut self, requests: &mut [Request]) -> Result<()> {
        // The batcher gives one decode requests of one adapter.
        let adapter = requests.first().and_then(|r| r.adapter);
        if let Err(e) = self.adapters.apply(&mut self.pooled, adapter) {
            return Err(self.fail(requests, e));
        }
        for r in requests.iter() {
            if !self.truncate(r.seq, r.first_pos) && r.first_pos > 0 {
                return Err(self.fail(
                    requests,
                    Error::backend(format!(
                        "llama.cpp could not drop sequence {}'s tokens after position {}",
                        r.seq, r.first_pos
                    )),
                ));
            }
        }
        self.batch.clear();
        let mut last_index = Vec::with_capacity(requests.len());
        for r in requests.iter() {
            let last = r.tokens.len().saturating_sub(1);
            for (i, &t) in r.tokens.iter().enumerate() {
                let added = self.batch.add(
                    LlamaToken(t),
                    (r.first_pos as usize + i) as i32,
                    &[r.seq],
                    i == last || r.all_logits,
                );
                if let Err(e) = added {
                    let e = Error::internal(format!("decode: batch add failed: {e}"));
                    return Err(self.fail(requests, e));
                }
            }
            last_index.push(self.batch.n_tokens() - 1);
        }
        if let Err(e) = self.pooled.ctx.decode(&mut self.batch) {
            let e = match e {
                llama_cpp_2::DecodeError::NoKvCacheSlot => Error::new(
                    ErrorKind::ContextOverflow,
                    "the shared context has no free KV cells",
                ),
                other => Error::backend(format!("llama.cpp decode failed: {other}")),
            };
            return Err(self.fail(requests, e));
        }
        for (r, last) in requests.iter_mut().zip(last_index) {
            r.logits.clear();
            let first = if r.all_logits {
                last + 1 - r.tokens.len() as i32
            } else {
                last
            };
            for index in first..=last {
                r.logits
                    .extend_from_slice(self.pooled.ctx.get_logits_ith(index));
            }
        }
        Ok(())
    }
}

impl SlotEngine {
    /// What a failed batch left in its sequences is unknown: drop them.
    fn fail(&mut self, requests: &[Request], e: Error) -> Error {
        for r in requests {
            self.forget(r.seq);
        }
        e
    }
}

/// Which slots are taken, and what each free slot's cache holds.
struct SlotTable {
    taken: Vec<bool>,
    /// The tokens each slot's sequence holds, kept current for free slots (a taken slot's
    /// session tracks its own).
    held: Vec<Vec<Token>>,
    /// When each slot was last released (a logical clock), to reuse the oldest first.
    released_at: Vec<u64>,
    /// The chat session each slot is kept for, if any.
    kept_for: Vec<Option<ConversationId>>,
    /// The LoRA adapter each free slot's tokens were evaluated with.
    held_with: Vec<Option<AdapterChoice>>,
    clock: u64,
}

impl SlotTable {
    /// Keep `slot` for `conversation` (and no other slot for it), or for nobody.
    fn keep_for(&mut self, slot: usize, conversation: Option<ConversationId>) {
        if conversation.is_some() {
            for kept in self.kept_for.iter_mut() {
                if *kept == conversation {
                    *kept = None;
                }
            }
        }
        self.kept_for[slot] = conversation;
    }

    /// Whether a generation of `conversation` may use the free `slot` without evicting a
    /// chat session's cache.
    fn open_to(&self, slot: usize, conversation: Option<ConversationId>) -> bool {
        !self.taken[slot] && (self.kept_for[slot].is_none() || self.kept_for[slot] == conversation)
    }
}

/// The shared context and its slots.
pub(super) struct Slots {
    batcher: Batcher<SlotEngine>,
    table: Mutex<SlotTable>,
}

impl Slots {
    pub fn new(engine: SlotEngine, n_slots: u32) -> Result<Self> {
        let n = n_slots.max(1) as usize;
        Ok(Slots {
            batcher: Batcher::new(engine)?,
            table: Mutex::new(SlotTable {
                taken: vec![false; n],
                held: vec![Vec::new(); n],
                released_at: vec![0; n],
                kept_for: vec![None; n],
                held_with: vec![None; n],
                clock: 0,
            }),
        })
    }

    pub fn stats(&self) -> crate::backend::BatchStats {
        let (decodes, sequence_steps) = self.batcher.counts();
        crate::backend::BatchStats {
            decodes,
            sequence_steps,
        }
    }

    /// Take the slot kept for `conversation`, else the free slot released longest ago that
    /// is kept for no chat session, else (evicting one) the one kept longest. Admission keeps
    /// callers to the slot count, so one is free unless a caller bypassed it.
    fn claim(
        &self,
        conversation: Option<ConversationId>,
        adapter: Option<AdapterChoice>,
    ) -> Result<(usize, Vec<Token>)> {
        let mut table = self.table.lock();
        let n = table.taken.len();
        let own = conversation
            .and_then(|c| (0..n).find(|&i| !table.taken[i] && table.kept_for[i] == Some(c)));
        let free = own
            .or_else(|| {
                (0..n)
                    .filter(|&i| !table.taken[i])
                    .min_by_key(|&i| (table.kept_for[i].is_some(), table.released_at[i]))
            })
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Busy,
                    format!(
                        "all {} generation slots of this model are in use",
                        table.taken.len()
                    ),
                )
            })?;
        table.taken[free] = true;
        table.keep_for(free, conversation);
        let held = std::mem::take(&mut table.held[free]);
        // Tokens evaluated with another adapter are of no use: the first decode (at position
        // 0) drops them.
        let held = if table.held_with[free] == adapter {
            held
        } else {
            Vec::new()
        };
        Ok((free, held))
    }

    /// The chat session `conversation` ended: its slot is anyone's again.
    pub fn end_conversation(&self, conversation: ConversationId) {
        let mut table = self.table.lock();
        for kept in table.kept_for.iter_mut() {
            if *kept == Some(conversation) {
                *kept = None;
            }
        }
    }

    /// Give a slot back with what its sequence holds.
    fn release(&self, slot: usize, held: Vec<Token>, adapter: Option<AdapterChoice>) {
        let mut table = self.table.lock();
        table.held_with[slot] = adapter;
        table.clock += 1;
        table.released_at[slot] = table.clock;
        table.held[slot] = held;
        table.taken[slot] = false;
    }

    /// Move from `slot` to the free slot holding the longest prefix of `prompt`, when that is
    /// longer than what `slot` holds (`held`), and that slot is kept for no other chat
    /// session. Returns the slot now used and its tokens.
    fn best_for(
        &self,
        slot: usize,
        held: Vec<Token>,
        prompt: &[Token],
        conversation: Option<ConversationId>,
        adapter: Option<AdapterChoice>,
    ) -> (usize, Vec<Token>) {
        let mut table = self.table.lock();
        let mine = shared_prefix(&held, prompt);
        let better = (0..table.taken.len())
            .filter(|&i| table.open_to(i, conversation) && table.held_with[i] == adapter)
            .map(|i| (i, shared_prefix(&table.held[i], prompt)))
            .filter(|&(_, n)| n > mine)
            .max_by_key(|&(i, n)| (n, std::cmp::Reverse(i)));
        let Some((other, _)) = better else {
            return (slot, held);
        };
        table.taken[other] = true;
        let other_held = std::mem::take(&mut table.held[other]);
        table.taken[slot] = false;
        table.held[slot] = held;
        table.held_with[slot] = adapter;
        table.kept_for[slot] = None;
        table.keep_for(other, conversation);
        (other, other_held)
    }
}

fn shared_prefix(a: &[Token], b: &[Token]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A generation on one slot of the shared context.
pub(super) struct SlotSession<'m> {
    owner: &'m LlamaLoaded,
    slots: &'m Slots,
    slot: usize,
    /// The chat session this generation continues, if any.
    conversation: Option<ConversationId>,
    /// The LoRA adapter it runs with.
    adapter: Option<AdapterChoice>,
    /// The tokens this slot's sequence holds.
    held: Vec<Token>,
    logits: Vec<f32>,
    has_logits: bool,
    _member: Member<'m, SlotEngine>,
}

impl<'m> SlotSession<'m> {
    pub fn new(owner: &'m LlamaLoaded, slots: &'m Slots, request: SessionRequest) -> Result<Self> {
        let (slot, held) = slots.claim(request.conversation, request.adapter)?;
        Ok(SlotSession {
            owner,
            slots,
            slot,
            conversation: request.conversation,
            adapter: request.adapter,
            held,
            logits: Vec::new(),
            has_logits: false,
            _member: slots.batcher.join(),
        })
    }
}

impl SlotSession<'_> {
    /// Decode `tokens` through the batcher; with `all_logits`, `self.logits` then holds every
    /// position's logits, one after another.
    fn submit(&mut self, tokens: &[Token], first_pos: u32, all_logits: bool) -> Result<()> {
        let first = first_pos as usize;
        if tokens.is_empty() || tokens.len() > self.owner.plan.n_batch as usize {
            return Err(Error::internal(format!(
                "decode: {} tokens for a batch of {}",
                tokens.len(),
                self.owner.plan.n_batch
            )));
        }
        if first > self.held.len() {
            return Err(Error::internal(format!(
                "decode at position {first} but the sequence holds {} tokens",
                self.held.len()
            )));
        }
        if first + tokens.len() > self.owner.plan.n_ctx as usize {
            return Err(Error::new(
                ErrorKind::ContextOverflow,
                format!("the context of {} tokens is full", self.owner.plan.n_ctx),
            ));
        }
        let request = Request {
            seq: self.slot as i32,
            tokens: tokens.to_vec(),
            first_pos,
            logits: std::mem::take(&mut self.logits),
            adapter: self.adapter,
            all_logits,
        };
        self.has_logits = false;
        self.held.truncate(first);
        match self.slots.batcher.submit(request) {
            Ok(done) => {
                self.held.extend_from_slice(tokens);
                self.logits = done.logits;
                self.has_logits = true;
                Ok(())
            }
            Err(e) => {
                self.held.clear();
                Err(e)
            }
        }
    }
}

impl Session for SlotSession<'_> {
    fn n_ctx(&self) -> u32 {
        self.owner.plan.n_ctx
    }

    fn n_batch(&self) -> u32 {
        self.owner.plan.prompt_chunk()
    }

    fn decode(&mut self, tokens: &[Token], first_pos: u32) -> Result<()> {
        self.submit(tokens, first_pos, false)
    }

    fn decode_all(&mut self, tokens: &[Token], first_pos: u32) -> Result<Vec<Vec<f32>>> {
        self.submit(tokens, first_pos, true)?;
        let n_vocab = self.logits.len() / tokens.len().max(1);
        let all = self
            .logits
            .chunks(n_vocab.max(1))
            .map(<[f32]>::to_vec)
            .collect();
        // `logits()` gives the last position's, as after `decode`.
        self.logits.drain(..self.logits.len() - n_vocab);
        Ok(all)
    }

    fn logits(&self) -> Result<&[f32]> {
        if !self.has_logits {
            return Err(Error::internal("logits read before decode"));
        }
        Ok(&self.logits)
    }

    fn can_shift(&self) -> Result<()> {
        self.owner.can_shift()
    }

    fn shift(&mut self, keep: u32, count: u32) -> Result<()> {
        self.owner.can_shift()?;
        let mut engine = self.slots.batcher.engine();
        super::shift_sequence(
            &mut engine.pooled.ctx,
            self.slot as i32,
            &mut self.held,
            keep,
            count,
        )
    }

    fn reuse_prefix(&mut self, prompt: &[Token]) -> Result<usize> {
        let held = std::mem::take(&mut self.held);
        let (slot, held) =
            self.slots
                .best_for(self.slot, held, prompt, self.conversation, self.adapter);
        self.slot = slot;
        self.held = held;
        let shared = shared_prefix(&self.held, prompt).min(prompt.len().saturating_sub(1));
        if shared < self.held.len() {
            let kept = self
                .slots
                .batcher
                .engine()
                .truncate(self.slot as i32, shared as u32);
            self.held.truncate(if kept { shared } else { 0 });
        }
        Ok(self.held.len())
    }
}

impl Drop for SlotSession<'_> {
    fn drop(&mut self) {
        self.slots
            .release(self.slot, std::mem::take(&mut self.held), self.adapter);
    }
}
