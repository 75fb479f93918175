//! Engine work off the host's thread: every binding and the C ABI run generations, chats,
//! embeddings and benchmarks through here, so none of them carries its own copy.
//!
//! Each task runs on a short-lived thread of its own and reports through a [`Reporter`]: text
//! pieces as they come, then its result. Hosts pick the reporter: a channel the calling thread
//! waits on ([`spawn_task`], used by Python and C), or a callback into an event loop (Node).
//!
//! Why a thread per task rather than the caller's thread: llama.cpp's CPU backend uses OpenMP,
//! and libgomp keeps a team of worker threads alive for every thread that ever ran a parallel
//! region. Once it manages more threads than there are CPUs it stops spin-waiting between
//! regions, which halves single-token decode speed (measured on 2 cores: 60 t/s instead of
//! 110). A thread that exits takes its team with it, so running compute only on task threads
//! (never on a host's long-lived threads: a Python thread, Node's libuv pool, a C host's
//! pthreads) keeps one team alive per running task.
//!
//! Tasks are registered in an [`Active`] set (one per model: closing it cancels them and waits
//! until none is left) and in the process-wide set that [`cancel_all_and_wait`] drains before a
//! host exits: a task still decoding while the process exits races llama.cpp's static
//! destructors (a segfault in about 1 exit in 5, measured from Python).

use crate::{CancelToken, Error, Result};
use parking_lot::{Condvar, Mutex};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

/// Where a task's output goes. Both methods run on the task's thread.
pub trait Reporter<R>: Send + 'static {
    /// A text piece of a streamed generation. Return false when nobody reads any more (the
    /// task then stops, as if cancelled).
    fn piece(&mut self, piece: &str) -> bool;
    /// The result; called exactly once, after the task's work has returned and dropped what it
    /// owned.
    fn done(self, result: Result<R>);
}

/// The set of running tasks of one owner (a model), which can cancel them and wait for them.
#[derive(Default)]
pub struct Active {
    running: Mutex<(u64, BTreeMap<u64, CancelToken>)>,
    idle: Condvar,
}

/// Every running task of the process.
static ALL: Active = Active::new();

impl Active {
    pub const fn new() -> Self {
        Active {
            running: Mutex::new((0, BTreeMap::new())),
            idle: Condvar::new(),
        }
    }

    fn register(&self, token: CancelToken) -> u64 {
        let mut guard = self.running.lock();
        let (next, map) = &mut *guard;
        *next += 1;
        map.insert(*next, token);
        *next
    }

    fn unregister(&self, id: u64) {
        let mut guard = self.running.lock();
        guard.1.remove(&id);
        if guard.1.is_empty() {
            self.idle.notify_all();
        }
    }

    /// How many tasks are running.
    pub fn len(&self) -> usize {
        self.running.lock().1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cancel every running task and block until all have ended (a generation stops within
    /// one decode step, a long prompt within one batch).
    pub fn cancel_and_wait(&self) {
        let mut guard = self.running.lock();
        for token in guard.1.values() {
            token.cancel();
        }
        while !guard.1.is_empty() {
            self.idle.wait(&mut guard);
        }
    }
}

/// Cancel every running task of the process and wait for all to end. Hosts call it before the
/// process exits (Python's `atexit`, Node's environment cleanup hook).
pub fn cancel_all_and_wait() {
    ALL.cancel_and_wait();
}

/// Unregisters on drop, i.e. after the task has reported and dropped everything it owned.
struct Registration {
    active: Arc<Active>,
    id: u64,
    global_id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.active.unregister(self.id);
        ALL.unregister(self.global_id);
    }
}

/// Run `work` on a new thread, registered in `active` (and the process-wide set) under
/// `cancel`. `work` gets a sink for text pieces (false: stop) and should stop when `cancel`
/// is cancelled; it owns what it captures (e.g. an `Arc` of the model), which is dropped
/// before `reporter.done`. A panic in `work` becomes an `Internal` error result.
pub fn spawn<R, W, P>(active: &Arc<Active>, cancel: CancelToken, work: W, reporter: P) -> Result<()>
where
    R: Send + 'static,
    W: FnOnce(&mut dyn FnMut(&str) -> bool) -> Result<R> + Send + 'static,
    P: Reporter<R>,
{
    let registration = Registration {
        id: active.register(cancel.clone()),
        global_id: ALL.register(cancel),
        active: Arc::clone(active),
    };
    std::thread::Builder::new()
        .name("uml-task".into())
        .spawn(move || {
            let registration = registration;
            let mut reporter = reporter;
            let result = catch_unwind(AssertUnwindSafe(|| {
                work(&mut |piece: &str| reporter.piece(piece))
            }))
            .unwrap_or_else(|panic| Err(Error::from_panic(panic)));
            reporter.done(result);
            drop(registration);
        })
        .map(drop)
        .map_err(|e| Error::internal(format!("cannot start a worker thread: {e}")))
}

/// What a channel task sends: text pieces (streamed generations only), then its result.
pub enum Event<R> {
    Piece(String),
    Done(Result<R>),
}

/// What a channel task does with text pieces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pieces {
    /// Not sent: the result carries the whole text.
    Dropped,
    /// Sent as they come; the task runs ahead of the reader.
    Sent,
    /// Sent, and the task waits for the reader's answer to each ([`Task::wait`]'s `on_piece`)
    /// before it goes on: when the reader says stop, the result holds exactly the pieces it
    /// was given (the C ABI's callback contract).
    Lockstep,
}

struct ChannelReporter<R> {
    tx: Sender<Event<R>>,
    pieces: Pieces,
    answers: Option<Receiver<bool>>,
}

impl<R: Send + 'static> Reporter<R> for ChannelReporter<R> {
    fn piece(&mut self, piece: &str) -> bool {
        if self.pieces == Pieces::Dropped {
            return true;
        }
        // A send fails once the receiver is gone: a dropped stream.
        if self.tx.send(Event::Piece(piece.to_owned())).is_err() {
            return false;
        }
        match &self.answers {
            Some(answers) => answers.recv().unwrap_or(false),
            None => true,
        }
    }

    fn done(self, result: Result<R>) {
        // The receiver may be gone (a dropped stream): nobody needs the result then.
        let _ = self.tx.send(Event::Done(result));
    }
}

/// A running task whose events a host thread reads from a channel.
pub struct Task<R> {
    rx: Mutex<Receiver<Event<R>>>,
    /// The reader's answers to pieces, in [`Pieces::Lockstep`].
    answers: Option<Sender<bool>>,
    pub cancel: CancelToken,
}

/// [`spawn`] with a channel: the caller reads the events from the returned [`Task`].
pub fn spawn_task<R, W>(
    active: &Arc<Active>,
    cancel: CancelToken,
    pieces: Pieces,
    work: W,
) -> Result<Task<R>>
where
    R: Send + 'static,
    W: FnOnce(&mut dyn FnMut(&str) -> bool) -> Result<R> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let (answers, answers_rx) = match pieces {
        Pieces::Lockstep => {
            let (a, b) = mpsc::channel();
            (Some(a), Some(b))
        }
        Pieces::Dropped | Pieces::Sent => (None, None),
    };
    let reporter = ChannelReporter {
        tx,
        pieces,
        answers: answers_rx,
    };
    spawn(active, cancel.clone(), work, reporter)?;
    Ok(Task {
        rx: Mutex::new(rx),
        answers,
        cancel,
    })
}

impl<R: Send> Task<R> {
    /// The next event, waiting at most `timeout` (hosts that must run signal handlers or other
    /// work wait in slices). `Disconnected`: the thread is gone without a final event, which
    /// cannot happen short of an abort.
    pub fn next_event(&self, timeout: Duration) -> std::result::Result<Event<R>, RecvTimeoutError> {
        self.rx.lock().recv_timeout(timeout)
    }

    /// The next event, blocking; None if the thread is gone without a final event.
    pub fn next_event_blocking(&self) -> Option<Event<R>> {
        self.rx.lock().recv().ok()
    }

    /// Block until the task has ended, discarding its events.
    pub fn wait_ended(&self) {
        let rx = self.rx.lock();
        while let Ok(event) = rx.recv() {
            if matches!(event, Event::Done(_)) {
                break;
            }
        }
    }

    /// Block until the result, calling `on_piece` on this thread for each piece. Its answer
    /// (false: stop) reaches the task in [`Pieces::Lockstep`]; otherwise it is ignored.
    pub fn wait(self, on_piece: &mut dyn FnMut(&str) -> bool) -> Result<R> {
        loop {
            match self.next_event_blocking() {
                Some(Event::Piece(piece)) => {
                    let go_on = on_piece(&piece);
                    if let Some(answers) = &self.answers {
                        // The task is gone only after its final event, read below.
                        let _ = answers.send(go_on);
                    }
                }
                Some(Event::Done(result)) => return result,
                None => return Err(ended_without_result()),
            }
        }
    }
}

/// The error for a task thread that ended without reporting.
pub fn ended_without_result() -> Error {
    Error::internal("a worker thread ended without a result")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn pieces_then_the_result_reach_the_caller_in_order() {
        let active = Arc::new(Active::new());
        let task = spawn_task(&active, CancelToken::new(), Pieces::Sent, |sink| {
            for piece in ["a", "b", "c"] {
                sink(piece);
            }
            Ok(3)
        })
        .unwrap();
        let mut seen = String::new();
        let result = task.wait(&mut |p| {
            seen.push_str(p);
            true
        });
        assert_eq!(result.unwrap(), 3);
        assert_eq!(seen, "abc");
    }

    #[test]
    fn in_lockstep_the_task_stops_at_the_piece_the_reader_refused() {
        let active = Arc::new(Active::new());
        let task = spawn_task(&active, CancelToken::new(), Pieces::Lockstep, |sink| {
            let mut produced = String::new();
            for piece in ["a", "b", "c", "d"] {
                produced.push_str(piece);
                if !sink(piece) {
                    break;
                }
            }
            Ok(produced)
        })
        .unwrap();
        let mut seen = String::new();
        let produced = task.wait(&mut |p| {
            seen.push_str(p);
            seen.len() < 2
        });
        assert_eq!(produced.unwrap(), "ab");
        assert_eq!(seen, "ab");
    }

    #[test]
    fn a_panic_is_an_internal_error_and_the_task_unregisters() {
        let active = Arc::new(Active::new());
        let task = spawn_task::<(), _>(&active, CancelToken::new(), Pieces::Dropped, |_| {
            panic!("boom")
        })
        .unwrap();
        let err = task.wait(&mut |_| true).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert!(err.to_string().contains("boom"), "{err}");
        active.cancel_and_wait();
        assert!(active.is_empty());
    }

    #[test]
    fn cancel_and_wait_stops_every_task_of_an_owner() {
        let active = Arc::new(Active::new());
        let tasks: Vec<Task<u32>> = (0..4)
            .map(|_| {
                let token = CancelToken::new();
                let seen = token.clone();
                spawn_task(&active, token, Pieces::Dropped, move |_| {
                    let mut spins = 0;
                    while !seen.is_cancelled() {
                        std::thread::sleep(Duration::from_millis(1));
                        spins += 1;
                    }
                    Ok(spins)
                })
                .unwrap()
            })
            .collect();
        while active.len() < 4 {
            std::thread::yield_now();
        }
        active.cancel_and_wait();
        assert!(active.is_empty());
        for task in tasks {
            assert!(task.wait(&mut |_| true).is_ok());
        }
    }

    #[test]
    fn a_reader_that_goes_away_stops_the_stream() {
        let active = Arc::new(Active::new());
        let (tx, rx) = mpsc::channel();
        let task = spawn_task(&active, CancelToken::new(), Pieces::Sent, move |sink| {
            let mut sent = 0;
            while sink("x") {
                sent += 1;
                if sent == 1 {
                    let _ = tx.send(());
                }
            }
            Ok(sent)
        })
        .unwrap();
        rx.recv().unwrap();
        drop(task);
        active.cancel_and_wait();
        assert!(active.is_empty());
    }
}
