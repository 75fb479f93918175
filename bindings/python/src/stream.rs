//! `Stream`: an iterator of text pieces from a generation running on its own thread. Dropping
//! it, closing it, or Ctrl-C while waiting on it cancels the generation.

use crate::convert::to_py_value;
use crate::error::to_py;
use crate::worker;
use parking_lot::Mutex;
use pyo3::prelude::*;
use uml_core::runner::{ended_without_result, Event, Task};
use uml_core::stream::Completion;

enum State {
    Running,
    Finished(Completion),
    Failed,
}

#[pyclass(module = "uml._uml", name = "Stream", frozen)]
pub struct Stream {
    task: Task<Completion>,
    state: Mutex<State>,
}

impl Stream {
    pub fn new(task: Task<Completion>) -> Self {
        Stream {
            task,
            state: Mutex::new(State::Running),
        }
    }

    fn running(&self) -> bool {
        matches!(*self.state.lock(), State::Running)
    }

    /// The next piece, or None once the generation has ended (its result is then kept).
    fn next_piece(&self, py: Python<'_>) -> PyResult<Option<String>> {
        if !self.running() {
            return Ok(None);
        }
        let event = worker::next_event(py, &self.task).inspect_err(|_| {
            // Ctrl-C: the generation was cancelled and has ended; the stream is over.
            *self.state.lock() = State::Failed;
        })?;
        match event {
            Some(Event::Piece(piece)) => Ok(Some(piece)),
            Some(Event::Done(Ok(completion))) => {
                *self.state.lock() = State::Finished(completion);
                Ok(None)
            }
            Some(Event::Done(Err(e))) => {
                *self.state.lock() = State::Failed;
                Err(to_py(e))
            }
            None => {
                *self.state.lock() = State::Failed;
                Err(to_py(ended_without_result()))
            }
        }
    }
}

#[pymethods]
impl Stream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.next_piece(py)
    }

    /// Ask the generation to stop; returns at once (safe from any thread).
    fn cancel(&self) {
        self.task.cancel.cancel();
    }

    /// Cancel the generation and wait for it to end (within one decode step). Pieces not yet
    /// read are discarded; `completion()` then holds what was generated.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.task.cancel.cancel();
        while self.next_piece(py)?.is_some() {}
        Ok(())
    }

    /// The result (text, finish_reason, usage) as a dict once the stream is exhausted or
    /// closed; None while it is still running or if it failed.
    fn completion<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match &*self.state.lock() {
            State::Finished(c) => Ok(Some(to_py_value(py, c)?)),
            State::Running | State::Failed => Ok(None),
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // Breaking out of a `for` loop drops the iterator: stop the generation it was reading.
        self.task.cancel.cancel();
    }
}
