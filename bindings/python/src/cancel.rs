//! `uml.CancelToken`: core's shared cancellation flag, usable from any Python thread (the
//! asyncio helpers cancel through it when their task is cancelled).

use pyo3::prelude::*;

#[pyclass(module = "uml._uml", name = "CancelToken", frozen)]
#[derive(Clone, Default)]
pub struct CancelToken(pub uml_core::CancelToken);

#[pymethods]
impl CancelToken {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Ask the generations using this token to stop (they end within one decode step).
    fn cancel(&self) {
        self.0.cancel();
    }

    /// Make the token usable for a new operation.
    fn reset(&self) {
        self.0.reset();
    }

    #[getter]
    fn cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    fn __repr__(&self) -> String {
        format!(
            "CancelToken(cancelled={})",
            if self.0.is_cancelled() {
                "True"
            } else {
                "False"
            }
        )
    }
}
