//! Continuous batching by rendezvous. Every generation keeps its own loop on its own thread
//! (sampling, grammars, stop strings and streaming stay exactly as for one caller); only its
//! `decode` calls meet here. Whichever waiting thread finds the batch ready runs one decode
//! for every pending request, the way llama-server's loop decodes the next token of every
//! slot at once:
//!
//! - ready when every member (a generation holding a sequence) has a request pending, so a
//!   lone caller decodes at once, with no hand-off and no wait;
//! - or when the oldest pending request has waited [`GRACE`]: a member that is slow to come
//!   back (a host callback, an expensive grammar) delays the others by at most that much.
//!
//! Requests are taken in arrival order up to the engine's token budget (`n_batch`); what does
//! not fit goes into the next decode.

use crate::backend::Token;
use crate::{Error, Result};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long the oldest pending request waits for the other members before decoding without
/// them. Sampling one token takes well under a millisecond, so members normally come back
/// within it; a decode step of a small model takes about 10 ms.
pub(crate) const GRACE: Duration = Duration::from_millis(2);

/// One member's decode request: evaluate `tokens` at positions `first_pos..` of sequence
/// `seq`, dropping whatever the sequence holds from `first_pos` on; `logits` receives the
/// logits of the last token (the buffer travels with the request so it is reused).
#[derive(Debug)]
pub(crate) struct Request {
    pub seq: i32,
    pub tokens: Vec<Token>,
    pub first_pos: u32,
    pub logits: Vec<f32>,
}

/// What decodes a batch: llama.cpp's shared context, or a stand-in in tests.
pub(crate) trait Engine: Send {
    /// Most tokens one decode may take.
    fn token_budget(&self) -> usize;
    /// Decode every request in one batch and fill each one's logits. On an error the
    /// sequences of every request are left empty (what a failed batch wrote is unknown).
    fn run(&mut self, requests: &mut [Request]) -> Result<()>;
}

struct State {
    pending: VecDeque<(u64, Request)>,
    done: HashMap<u64, Result<Request>>,
    /// Members: generations that will submit again (one request pending at most each).
    members: usize,
    decoding: bool,
    /// When the oldest pending request arrived.
    oldest: Option<Instant>,
    next_id: u64,
    /// Decodes run and requests they carried (for tests and the benchmark).
    decodes: u64,
    requests: u64,
}

/// Decodes the pending requests of its members together. The engine is only touched by the
/// thread that runs a decode, under its own lock.
pub(crate) struct Batcher<E: Engine> {
    engine: Mutex<E>,
    state: Mutex<State>,
    changed: Condvar,
}

/// A place in the batch: while it lives, decodes wait (up to [`GRACE`]) for its request.
pub(crate) struct Member<'a, E: Engine>(&'a Batcher<E>);

impl<E: Engine> Drop for Member<'_, E> {
    fn drop(&mut self) {
        self.0.state.lock().members -= 1;
        // A waiting batch may now be complete.
        self.0.changed.notify_all();
    }
}

impl<E: Engine> Batcher<E> {
    pub fn new(engine: E) -> Self {
        Batcher {
            engine: Mutex::new(engine),
            state: Mutex::new(State {
                pending: VecDeque::new(),
                done: HashMap::new(),
                members: 0,
                decoding: false,
                oldest: None,
                next_id: 0,
                decodes: 0,
                requests: 0,
            }),
            changed: Condvar::new(),
        }
    }

    /// Join the batch; drop the member when the generation ends.
    pub fn join(&self) -> Member<'_, E> {
        self.state.lock().members += 1;
        Member(self)
    }

    /// The engine, for work outside a decode (dropping a sequence's tokens): waits for a
    /// decode in progress.
    pub fn engine(&self) -> MutexGuard<'_, E> {
        self.engine.lock()
    }

    /// (decodes run, requests decoded) so far.
    pub fn counts(&self) -> (u64, u64) {
        let state = self.state.lock();
        (state.decodes, state.requests)
    }

    /// Decode `request` together with whatever the other members submit meanwhile; returns
    /// it with its logits filled. Blocks for at most the grace period plus the decodes ahead.
    pub fn submit(&self, request: Request) -> Result<Request> {
        let mut state = self.state.lock();
        let id = state.next_id;
        state.next_id += 1;
        if state.pending.is_empty() {
            state.oldest = Some(Instant::now());
        }
        state.pending.push_back((id, request));
        self.changed.notify_all();
        loop {
            if let Some(result) = state.done.remove(&id) {
                return result;
            }
            if !state.decoding && !state.pending.is_empty() {
                let deadline = state.oldest.map(|t| t + GRACE);
                let complete = state.pending.len() >= state.members;
                if complete || deadline.is_some_and(|d| Instant::now() >= d) {
                    self.decode_pending(&mut state);
                    continue;
                }
                if let Some(deadline) = deadline {
                    self.changed.wait_until(&mut state, deadline);
                    continue;
                }
            }
            self.changed.wait(&mut state);
        }
    }

    /// Take the oldest requests that fit the token budget, decode them with the state
    /// unlocked (members keep submitting meanwhile), then hand out the results.
    fn decode_pending(&self, state: &mut MutexGuard<'_, State>) {
        let mut engine = self.engine.lock();
        let budget = engine.token_budget().max(1);
        let mut ids = Vec::new();
        let mut batch = Vec::new();
        let mut tokens = 0;
        while let Some((_, next)) = state.pending.front() {
            if !batch.is_empty() && tokens + next.tokens.len() > budget {
                break;
            }
            tokens += next.tokens.len();
            if let Some((id, request)) = state.pending.pop_front() {
                ids.push(id);
                batch.push(request);
            }
        }
        state.decoding = true;
        let outcome = MutexGuard::unlocked(state, || engine.run(&mut batch));
        drop(engine);
        // The grace period counts from when the engine is free again: requests that came in
        // during this decode wait for the members it served to come back, which keeps every
        // member in one batch instead of two groups taking turns.
        state.oldest = (!state.pending.is_empty()).then(Instant::now);
        state.decodes += 1;
        state.requests += batch.len() as u64;
        for (id, request) in ids.into_iter().zip(batch) {
            let result = match &outcome {
                Ok(()) => Ok(request),
                Err(e) => Err(Error::new(e.kind(), e.message().to_string())),
            };
            state.done.insert(id, result);
        }
        state.decoding = false;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Logits = [seq, first_pos + number of tokens, tokens in this batch].
    struct Counting {
        budget: usize,
        fail: bool,
    }

    impl Engine for Counting {
        fn token_budget(&self) -> usize {
            self.budget
        }
        fn run(&mut self, requests: &mut [Request]) -> Result<()> {
            if self.fail {
                return Err(Error::backend("decode failed"));
            }
            let total: usize = requests.iter().map(|r| r.tokens.len()).sum();
            assert!(total <= self.budget || requests.len() == 1);
            for r in requests.iter_mut() {
                r.logits = vec![
                    r.seq as f32,
                    (r.first_pos as usize + r.tokens.len()) as f32,
                    total as f32,
                ];
            }
            std::thread::sleep(Duration::from_millis(2));
            Ok(())
        }
    }

    fn request(seq: i32, n: usize, first_pos: u32) -> Request {
        Request {
            seq,
            tokens: vec![1; n],
            first_pos,
            logits: Vec::new(),
        }
    }

    #[test]
    fn a_lone_member_decodes_at_once() {
        let batcher = Batcher::new(Counting {
            budget: 512,
            fail: false,
        });
        let _member = batcher.join();
        let start = Instant::now();
        for pos in 0..20 {
            let done = batcher.submit(request(0, 1, pos)).unwrap();
            assert_eq!(done.logits, vec![0.0, (pos + 1) as f32, 1.0]);
        }
        // 20 decodes of 2 ms each, and no grace wait on top of them.
        assert!(start.elapsed() < Duration::from_millis(20 * 2 + 30));
        assert_eq!(batcher.counts(), (20, 20));
    }

    #[test]
    fn members_stepping_together_share_decodes() {
        let batcher = Arc::new(Batcher::new(Counting {
            budget: 512,
            fail: false,
        }));
        let steps = 50;
        let threads: Vec<_> = (0..4)
            .map(|seq| {
                let batcher = batcher.clone();
                std::thread::spawn(move || {
                    let _member = batcher.join();
                    for pos in 0..steps {
                        let done = batcher.submit(request(seq, 1, pos)).unwrap();
                        assert_eq!(done.logits[0], seq as f32);
                        assert_eq!(done.logits[1], (pos + 1) as f32);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (decodes, requests) = batcher.counts();
        assert_eq!(requests, 4 * u64::from(steps));
        // Joining is staggered, so the first steps may run apart; after that, together.
        assert!(decodes < u64::from(steps) * 2, "{decodes} decodes");
    }

    #[test]
    fn the_token_budget_splits_a_batch() {
        let batcher = Arc::new(Batcher::new(Counting {
            budget: 8,
            fail: false,
        }));
        let threads: Vec<_> = (0..3)
            .map(|seq| {
                let batcher = batcher.clone();
                std::thread::spawn(move || {
                    let _member = batcher.join();
                    batcher.submit(request(seq, 6, 0)).unwrap().logits[2]
                })
            })
            .collect();
        for t in threads {
            // Two requests of 6 tokens never share a decode of at most 8.
            assert_eq!(t.join().unwrap(), 6.0);
        }
    }

    #[test]
    fn a_silent_member_delays_the_others_by_the_grace_period_only() {
        let batcher = Batcher::new(Counting {
            budget: 512,
            fail: false,
        });
        let _silent = batcher.join();
        let _member = batcher.join();
        let start = Instant::now();
        batcher.submit(request(1, 1, 0)).unwrap();
        let waited = start.elapsed();
        assert!(waited >= GRACE, "{waited:?}");
        assert!(waited < GRACE + Duration::from_millis(100), "{waited:?}");
    }

    #[test]
    fn a_failed_decode_fails_every_request_in_it() {
        let batcher = Batcher::new(Counting {
            budget: 512,
            fail: true,
        });
        let _member = batcher.join();
        let err = batcher.submit(request(0, 3, 0)).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Backend);
        assert_eq!(batcher.state.lock().done.len(), 0);
    }
}
