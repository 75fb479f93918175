//! Reading a model without loading it (`inspect`, `estimate`) and the machine (`hardware`).

use crate::convert::{kwargs_json, to_py_value};
use crate::error::to_py;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use uml_core::options::LoadOptions;

/// What the file or folder at `path` is (headers only; no weights are read). A dict.
#[pyfunction]
pub fn inspect(py: Python<'_>, path: PathBuf) -> PyResult<Bound<'_, PyAny>> {
    let info = py
        .detach(move || uml_core::inspect::inspect(&path))
        .map_err(to_py)?;
    to_py_value(py, &info)
}

/// The memory the model at `path` needs when loaded with `options` (the same `LoadOptions` keys
/// as `Model`, so an unknown key is refused), as a dict with `backend` (whose memory model it
/// is), `draft` (the draft model's estimate, for a `draft_model` option), `load_host_bytes` and
/// `load_device_bytes` (the model's and its draft's), `fits` (whether those fit in the memory
/// available now) and `available_memory_bytes` added. Core's `estimate::preflight`, as the C ABI's `uml_estimate` and the CLI show it.
#[pyfunction]
#[pyo3(signature = (path, options=None))]
pub fn estimate<'py>(
    py: Python<'py>,
    path: PathBuf,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let options = LoadOptions::from_json(&kwargs_json(options, "load option")?).map_err(to_py)?;
    let preflight = py
        .detach(move || uml_core::estimate::preflight(&path, &options))
        .map_err(to_py)?;
    to_py_value(py, &preflight)
}

/// The CPU, memory and GPUs uml sees. A dict.
#[pyfunction]
pub fn hardware(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let hw = py.detach(uml_core::hardware::detect);
    to_py_value(py, &hw)
}
