//! Waiting on engine work from Python. The work itself runs on core's task threads
//! (`uml_core::runner`, which says why); the Python thread waits for their events in short
//! slices with the GIL released, checking for signals between slices. This keeps other Python
//! threads running, makes Ctrl-C cancel within a slice plus one decode step, and lets
//! `Model.close()` cancel and wait for every task still running before it frees the weights.

use pyo3::prelude::*;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;
use uml_core::runner::{self, ended_without_result, Event, Task};

use crate::error::to_py;

/// How long the waiting Python thread sleeps before it checks for signals (Ctrl-C) again.
const SLICE: Duration = Duration::from_millis(20);

/// Cancel every running task of the process and wait for all to end (`uml._uml._shutdown`,
/// registered with `atexit` by `uml/__init__.py`).
#[pyfunction(name = "_shutdown")]
pub fn shutdown(py: Python<'_>) {
    py.detach(runner::cancel_all_and_wait);
}

/// Wait for the next event of `task` with the GIL released, in slices; between slices run
/// Python's signal handlers, and if one raises (KeyboardInterrupt) cancel the task, wait for
/// it to end (one decode step, so no engine work outlives the exception, e.g. while the
/// interpreter exits) and propagate the exception. `Ok(None)`: the thread is gone without a
/// final event (it cannot happen short of an abort).
pub fn next_event<R: Send>(py: Python<'_>, task: &Task<R>) -> PyResult<Option<Event<R>>> {
    loop {
        match py.detach(|| task.next_event(SLICE)) {
            Ok(event) => return Ok(Some(event)),
            Err(RecvTimeoutError::Disconnected) => return Ok(None),
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = py.check_signals() {
                    task.cancel.cancel();
                    py.detach(|| task.wait_ended());
                    return Err(e);
                }
            }
        }
    }
}

/// Wait for the result of `task`, ignoring pieces.
pub fn wait<R: Send>(py: Python<'_>, task: Task<R>) -> PyResult<R> {
    loop {
        match next_event(py, &task)? {
            Some(Event::Piece(_)) => {}
            Some(Event::Done(result)) => return result.map_err(to_py),
            None => return Err(to_py(ended_without_result())),
        }
    }
}
