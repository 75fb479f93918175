//! Engine work off the calling thread. Each generation (and each embed or bench call) runs on a
//! short-lived Rust thread and reports through a channel; the Python thread waits on that
//! channel in short slices with the GIL released, checking for signals between slices. This
//! keeps other Python threads running, makes Ctrl-C cancel within a slice plus one decode step,
//! and lets `Model.close()` cancel and wait for every task still running before it frees the
//! weights.
//!
//! Why a thread per call rather than the caller's thread: llama.cpp's CPU backend uses OpenMP,
//! and libgomp keeps a team of worker threads alive per thread that ever ran a parallel region.
//! Once it manages more threads than there are CPUs it stops spin-waiting between regions,
//! which halves single-token decode speed (measured on 2 cores: 60 t/s instead of 110). A
//! thread that exits takes its team with it, so running all compute on such threads (never on
//! the long-lived Python thread) keeps one team alive at a time, as in the Rust CLI.

use parking_lot::{Condvar, Mutex};
use pyo3::prelude::*;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;
use uml_core::{CancelToken, Error};

use crate::error::to_py;

/// How long the waiting Python thread sleeps before it checks for signals (Ctrl-C) again.
const SLICE: Duration = Duration::from_millis(20);

/// What a task thread reports: text pieces (generation streams only), then its result.
pub enum Event<R> {
    Piece(String),
    Done(Result<R, Error>),
}

/// A set of running tasks: those of one model (`close()` cancels them and waits until none is
/// left), or all of them (`ALL`, drained at interpreter exit).
#[derive(Default)]
pub struct Active {
    running: Mutex<(u64, BTreeMap<u64, CancelToken>)>,
    idle: Condvar,
}

/// Every running task of the process. A task still decoding when the interpreter exits would
/// race llama.cpp's static destructors (a segfault in about 1 exit in 5, measured), so
/// `uml/__init__.py` registers `_shutdown` with `atexit` to cancel and wait for them first.
static ALL: Active = Active::new();

impl Active {
    const fn new() -> Self {
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

    /// Cancel every running task and block until all have ended (a generation stops within
    /// one decode step). Call with the GIL released.
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

/// Unregisters on drop, i.e. after the task has dropped everything it captured (the model).
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

/// Cancel every running task of the process and wait for all to end (`uml._uml._shutdown`).
#[pyfunction(name = "_shutdown")]
pub fn shutdown(py: Python<'_>) {
    py.detach(|| ALL.cancel_and_wait());
}

/// A running task: its channel and the token that cancels it.
pub struct Task<R> {
    rx: Mutex<Receiver<Event<R>>>,
    pub cancel: CancelToken,
}

/// Start `work` on its own thread. It gets a sender for `Event::Piece`s (a send fails once the
/// receiver is gone: a dropped stream) and should stop when `cancel` is cancelled. `work` owns
/// what it captures (e.g. an `Arc` of the model), which is dropped before the final `Done`.
pub fn spawn<R, F>(active: &Arc<Active>, cancel: CancelToken, work: F) -> PyResult<Task<R>>
where
    R: Send + 'static,
    F: FnOnce(&Sender<Event<R>>) -> Result<R, Error> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let registration = Registration {
        id: active.register(cancel.clone()),
        global_id: ALL.register(cancel.clone()),
        active: Arc::clone(active),
    };
    std::thread::Builder::new()
        .name("uml-task".into())
        .spawn(move || {
            let registration = registration;
            let result = catch_unwind(AssertUnwindSafe(|| work(&tx)))
                .unwrap_or_else(|panic| Err(Error::from_panic(panic)));
            // The receiver may be gone (a dropped stream): nobody needs the result then.
            let _ = tx.send(Event::Done(result));
            drop(registration);
        })
        .map_err(|e| {
            to_py(Error::internal(format!(
                "cannot start a worker thread: {e}"
            )))
        })?;
    Ok(Task {
        rx: Mutex::new(rx),
        cancel,
    })
}

impl<R: Send> Task<R> {
    /// Wait for the next event with the GIL released, in slices; between slices run Python's
    /// signal handlers, and if one raises (KeyboardInterrupt) cancel the task, wait for it to
    /// end (one decode step, so no engine work outlives the exception, e.g. while the
    /// interpreter exits) and propagate the exception. `Ok(None)`: the thread is gone without
    /// a final event (it cannot happen short of an abort).
    pub fn next_event(&self, py: Python<'_>) -> PyResult<Option<Event<R>>> {
        loop {
            match py.detach(|| self.rx.lock().recv_timeout(SLICE)) {
                Ok(event) => return Ok(Some(event)),
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = py.check_signals() {
                        self.cancel.cancel();
                        py.detach(|| {
                            let rx = self.rx.lock();
                            while let Ok(event) = rx.recv() {
                                if matches!(event, Event::Done(_)) {
                                    break;
                                }
                            }
                        });
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Wait for the result, ignoring pieces.
    pub fn wait(self, py: Python<'_>) -> PyResult<R> {
        loop {
            match self.next_event(py)? {
                Some(Event::Piece(_)) => {}
                Some(Event::Done(result)) => return result.map_err(to_py),
                None => return Err(ended_without_result()),
            }
        }
    }
}

pub fn ended_without_result() -> PyErr {
    to_py(Error::internal("a worker thread ended without a result"))
}
