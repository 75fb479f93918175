//! Generation off the calling thread. Each generation runs on its own Rust thread and reports
//! through a channel; the Python thread waits on that channel in short slices with the GIL
//! released, checking for signals between slices. This is what keeps other Python threads
//! running, makes Ctrl-C cancel within a slice plus one decode step, and lets `Model.close()`
//! cancel and wait for every generation still running before it frees the weights.

use parking_lot::{Condvar, Mutex};
use pyo3::prelude::*;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;
use uml_core::chat::ChatMessage;
use uml_core::sampling::GenerateParams;
use uml_core::stream::Completion;
use uml_core::{CancelToken, Error, Model};

use crate::error::to_py;

/// How long the waiting Python thread sleeps before it checks for signals (Ctrl-C) again.
const SLICE: Duration = Duration::from_millis(20);

/// What a generation thread reports.
pub enum Event {
    Piece(String),
    Done(Result<Completion, Error>),
}

/// What to generate from.
pub enum Job {
    Prompt(String),
    Chat(Vec<ChatMessage>),
}

/// The generations running on one model: `close()` cancels them and waits until none is left.
#[derive(Default)]
pub struct Active {
    running: Mutex<(u64, HashMap<u64, CancelToken>)>,
    idle: Condvar,
}

impl Active {
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

    /// Cancel every running generation and block until all have ended (each stops within one
    /// decode step). Call with the GIL released.
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

/// Unregisters on drop, i.e. after the thread has dropped its handle on the model.
struct Registration {
    active: Arc<Active>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.active.unregister(self.id);
    }
}

/// Start one generation. With `stream`, every text piece is sent as it is produced; otherwise
/// only the final `Done`. A stream whose receiver is gone stops generating at the next piece.
pub fn spawn(
    model: Arc<Model>,
    job: Job,
    params: GenerateParams,
    cancel: CancelToken,
    active: Arc<Active>,
    stream: bool,
) -> PyResult<Receiver<Event>> {
    let (tx, rx) = mpsc::channel();
    let registration = Registration {
        id: active.register(cancel.clone()),
        active,
    };
    std::thread::Builder::new()
        .name("uml-generate".into())
        .spawn(move || {
            let registration = registration;
            let result = catch_unwind(AssertUnwindSafe(|| {
                let mut sink =
                    |piece: &str| !stream || tx.send(Event::Piece(piece.to_owned())).is_ok();
                match &job {
                    Job::Prompt(prompt) => {
                        model.generate(prompt, &params, Some(&cancel), &mut sink)
                    }
                    Job::Chat(messages) => model.chat(messages, &params, Some(&cancel), &mut sink),
                }
            }))
            .unwrap_or_else(|panic| Err(Error::from_panic(panic)));
            drop(model);
            // The receiver may be gone (a dropped stream): nobody needs the result then.
            let _ = tx.send(Event::Done(result));
            drop(registration);
        })
        .map_err(|e| {
            to_py(Error::internal(format!(
                "cannot start a generation thread: {e}"
            )))
        })?;
    Ok(rx)
}

/// Wait for the next event with the GIL released, in slices; between slices run Python's signal
/// handlers, and if one raises (KeyboardInterrupt) cancel the generation, wait for it to end and
/// propagate the exception.
/// `Ok(None)`: the thread is gone without a final event (it cannot happen short of an abort).
pub fn next_event(
    py: Python<'_>,
    rx: &Mutex<Receiver<Event>>,
    cancel: &CancelToken,
) -> PyResult<Option<Event>> {
    loop {
        match py.detach(|| rx.lock().recv_timeout(SLICE)) {
            Ok(event) => return Ok(Some(event)),
            Err(RecvTimeoutError::Disconnected) => return Ok(None),
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = py.check_signals() {
                    cancel.cancel();
                    // Wait for the thread to stop (one decode step) so no engine work outlives
                    // the exception, e.g. while the interpreter exits on KeyboardInterrupt.
                    py.detach(|| {
                        let rx = rx.lock();
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

/// Run a whole generation and return its result (pieces are not streamed).
pub fn run(
    py: Python<'_>,
    model: Arc<Model>,
    job: Job,
    params: GenerateParams,
    cancel: CancelToken,
    active: Arc<Active>,
) -> PyResult<Completion> {
    let rx = Mutex::new(spawn(model, job, params, cancel.clone(), active, false)?);
    loop {
        match next_event(py, &rx, &cancel)? {
            Some(Event::Piece(_)) => {}
            Some(Event::Done(result)) => return result.map_err(to_py),
            None => {
                return Err(to_py(Error::internal(
                    "the generation thread ended without a result",
                )))
            }
        }
    }
}
