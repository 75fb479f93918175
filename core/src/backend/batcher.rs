//! Continuous batching. Every generation keeps its own loop on its own thread (sampling,
//! grammars, stop strings and streaming stay exactly as for one caller); only its `decode`
//! calls meet here, and one engine thread per batcher decodes every pending request at once,
//! the way llama-server's loop decodes the next token of every slot in one batch:
//!
//! - a batch of single tokens is ready when every member (a generation holding a sequence)
//!   has a request pending, so a lone caller's next token is decoded at once;
//! - or when the oldest pending request has waited [`GRACE`] since the engine came free: a
//!   member that is slow to come back (a host callback, an expensive grammar) delays the
//!   others by at most that much.
//!
//! One thread runs every decode because llama.cpp's OpenMP keeps a team of worker threads per
//! calling thread, spinning after each decode: decodes taking turns on the members' threads
//! left the previous caller's team spinning on the cores the next one needed (4 streams on 2
//! cores: 42 ms per 4-token decode that way, 21 ms from one thread).
//!
//! Requests are taken in arrival order up to the engine's token budget (`n_batch`); what does
//! not fit goes into the next decode. One decode serves one LoRA adapter (or none): the
//! oldest request's, with the other requests of that adapter; the rest wait for the next
//! decode, which the oldest of them then leads.

use crate::backend::Token;
use crate::{Error, Result};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
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
    /// The LoRA adapter to decode with (every request of one decode has the same).
    pub adapter: Option<crate::backend::AdapterChoice>,
    /// Keep the logits of every token, one vocabulary's worth after another in `logits`
    /// (speculative decoding's verification), not only the last one's.
    pub all_logits: bool,
}

/// What decodes a batch: llama.cpp's shared context, or a stand-in in tests.
pub(crate) trait Engine: Send + 'static {
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
    /// When the oldest pending request started waiting for a free engine.
    oldest: Option<Instant>,
    next_id: u64,
    shutdown: bool,
    /// Decodes run and requests they carried, and decodes that started on the grace deadline
    /// rather than on a complete batch.
    decodes: u64,
    requests: u64,
    #[cfg(test)]
    on_deadline: u64,
}

struct Shared<E> {
    engine: Mutex<E>,
    state: Mutex<State>,
    changed: Condvar,
}

/// Decodes the pending requests of its members together, on its own thread.
pub(crate) struct Batcher<E: Engine> {
    shared: Arc<Shared<E>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A place in the batch: while it lives, decodes wait (up to [`GRACE`]) for its request.
pub(crate) struct Member<'a, E: Engine>(&'a Batcher<E>);

impl<E: Engine> Drop for Member<'_, E> {
    fn drop(&mut self) {
        self.0.shared.state.lock().members -= 1;
        // A waiting batch may now be complete.
        self.0.shared.changed.notify_all();
    }
}

impl<E: Engine> Batcher<E> {
    /// Start the engine thread. Fails only when the OS cannot start a thread.
    pub fn new(engine: E) -> Result<Self> {
        let shared = Arc::new(Shared {
            engine: Mutex::new(engine),
            state: Mutex::new(State {
                pending: VecDeque::new(),
                done: HashMap::new(),
                members: 0,
                oldest: None,
                next_id: 0,
                shutdown: false,
                decodes: 0,
                requests: 0,
                #[cfg(test)]
                on_deadline: 0,
            }),
            changed: Condvar::new(),
        });
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("uml-batch".into())
            .spawn(move || engine_loop(&for_thread))
            .map_err(|e| Error::backend(format!("cannot start the decode thread: {e}")))?;
        Ok(Batcher {
            shared,
            thread: Some(thread),
        })
    }

    /// Join the batch; drop the member when the generation ends.
    pub fn join(&self) -> Member<'_, E> {
        self.shared.state.lock().members += 1;
        Member(self)
    }

    /// The engine, for work outside a decode (dropping a sequence's tokens): waits for a
    /// decode in progress.
    pub fn engine(&self) -> MutexGuard<'_, E> {
        self.shared.engine.lock()
    }

    /// (decodes run, requests decoded) so far.
    pub fn counts(&self) -> (u64, u64) {
        let state = self.shared.state.lock();
        (state.decodes, state.requests)
    }

    /// Decode `request` together with whatever the other members submit meanwhile; returns
    /// it with its logits filled. Blocks for at most the grace period plus the decodes ahead.
    pub fn submit(&self, request: Request) -> Result<Request> {
        let shared = &self.shared;
        let mut state = shared.state.lock();
        let id = state.next_id;
        state.next_id += 1;
        if state.pending.is_empty() {
            state.oldest = Some(Instant::now());
        }
        state.pending.push_back((id, request));
        shared.changed.notify_all();
        loop {
            if let Some(result) = state.done.remove(&id) {
                return result;
            }
            shared.changed.wait(&mut state);
        }
    }
}

impl<E: Engine> Drop for Batcher<E> {
    fn drop(&mut self) {
        self.shared.state.lock().shutdown = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The engine thread: decode whenever a batch is ready, until the batcher is dropped.
fn engine_loop<E: Engine>(shared: &Shared<E>) {
    let mut state = shared.state.lock();
    loop {
        if state.shutdown {
            return;
        }
        let Some(oldest) = state.oldest.filter(|_| !state.pending.is_empty()) else {
            shared.changed.wait(&mut state);
            continue;
        };
        let deadline = oldest + GRACE;
        // A prompt waits out the grace period even when every member is in: callers that
        // arrive together (a burst of requests) join a moment apart, and their prompts then
        // share one decode instead of the first one going alone. A few milliseconds on a
        // prompt's evaluation; the generation steps never wait for it.
        let prompt = state.pending.iter().any(|(_, r)| r.tokens.len() > 1);
        let complete = state.pending.len() >= state.members && !prompt;
        if complete || Instant::now() >= deadline {
            #[cfg(test)]
            if !complete {
                state.on_deadline += 1;
            }
            decode_pending(shared, &mut state);
        } else {
            shared.changed.wait_until(&mut state, deadline);
        }
    }
}

/// Take the oldest requests that fit the token budget, decode them with the state unlocked
/// (members keep submitting meanwhile), then hand out the results.
fn decode_pending<E: Engine>(shared: &Shared<E>, state: &mut MutexGuard<'_, State>) {
    let mut engine = shared.engine.lock();
    let budget = engine.token_budget().max(1);
    let mut ids = Vec::new();
    let mut batch: Vec<Request> = Vec::new();
    let mut tokens = 0;
    let adapter = state.pending.front().and_then(|(_, r)| r.adapter);
    let mut i = 0;
    while let Some((_, next)) = state.pending.get(i) {
        if next.adapter != adapter {
            i += 1;
            continue;
        }
        if !batch.is_empty() && tokens + next.tokens.len() > budget {
            break;
        }
        tokens += next.tokens.len();
        if let Some((id, request)) = state.pending.remove(i) {
            ids.push(id);
            batch.push(request);
        }
    }
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
    shared.changed.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn counting(budget: usize, fail: bool) -> Batcher<Counting> {
        Batcher::new(Counting { budget, fail }).unwrap()
    }

    fn request(seq: i32, n: usize, first_pos: u32) -> Request {
        Request {
            seq,
            tokens: vec![1; n],
            first_pos,
            logits: Vec::new(),
            adapter: None,
            all_logits: false,
        }
    }

    #[test]
    fn a_lone_member_decodes_at_once() {
        let batcher = counting(512, false);
        let _member = batcher.join();
        for pos in 0..20 {
            let done = batcher.submit(request(0, 1, pos)).unwrap();
            assert_eq!(done.logits, vec![0.0, (pos + 1) as f32, 1.0]);
        }
        assert_eq!(batcher.counts(), (20, 20));
        // None of them waited for the grace period.
        assert_eq!(batcher.shared.state.lock().on_deadline, 0);
    }

    #[test]
    fn members_stepping_together_share_decodes() {
        let batcher = Arc::new(counting(512, false));
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
        let batcher = Arc::new(counting(8, false));
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
        let batcher = counting(512, false);
        let _silent = batcher.join();
        let _member = batcher.join();
        let start = Instant::now();
        batcher.submit(request(1, 1, 0)).unwrap();
        let waited = start.elapsed();
        assert!(waited >= GRACE, "{waited:?}");
        // Not forever: decoded on the deadline (the bound is loose for busy machines).
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        assert_eq!(batcher.shared.state.lock().on_deadline, 1);
    }

    /// Records, per decode, the adapters of its requests.
    struct Adapters(Arc<Mutex<Vec<Vec<Option<usize>>>>>);

    impl Engine for Adapters {
        fn token_budget(&self) -> usize {
            512
        }
        fn run(&mut self, requests: &mut [Request]) -> Result<()> {
            self.0.lock().push(
                requests
                    .iter()
                    .map(|r| r.adapter.map(|a| a.index))
                    .collect(),
            );
            std::thread::sleep(Duration::from_millis(2));
            Ok(())
        }
    }

    #[test]
    fn a_decode_never_mixes_lora_adapters_and_every_adapter_gets_its_turn() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let batcher = Arc::new(Batcher::new(Adapters(log.clone())).unwrap());
        let threads: Vec<_> = [None, Some(0), Some(1), Some(0)]
            .into_iter()
            .enumerate()
            .map(|(seq, adapter)| {
                let batcher = batcher.clone();
                std::thread::spawn(move || {
                    let _member = batcher.join();
                    for pos in 0..20 {
                        let mut r = request(seq as i32, 1, pos);
                        r.adapter = adapter
                            .map(|index| crate::backend::AdapterChoice { index, scale: 1.0 });
                        batcher.submit(r).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let log = log.lock();
        assert_eq!(log.iter().map(Vec::len).sum::<usize>(), 80);
        for decode in log.iter() {
            assert!(decode.iter().all(|a| *a == decode[0]), "{decode:?}");
        }
        // The two generations with adapter 0 stepped together.
        assert!(log.iter().any(|d| d == &[Some(0), Some(0)]), "{log:?}");
    }

    #[test]
    fn a_failed_decode_fails_every_request_in_it() {
        let batcher = counting(512, true);
        let _member = batcher.join();
        let err = batcher.submit(request(0, 3, 0)).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Backend);
        assert_eq!(batcher.shared.state.lock().done.len(), 0);
    }
}
