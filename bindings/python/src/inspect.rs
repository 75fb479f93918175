//! Reading a model without loading it (`inspect`, `estimate`) and the machine (`hardware`).

use crate::convert::{kwargs_json, to_py_value};
use crate::error::to_py;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use uml_core::estimate::EstimateOptions;
use uml_core::Error;

/// What the file or folder at `path` is (headers only; no weights are read). A dict.
#[pyfunction]
pub fn inspect(py: Python<'_>, path: PathBuf) -> PyResult<Bound<'_, PyAny>> {
    let info = py
        .detach(move || uml_core::inspect::inspect(&path))
        .map_err(to_py)?;
    to_py_value(py, &info)
}

/// The memory the model at `path` needs with `options` (core's `EstimateOptions` keys). A dict.
#[pyfunction]
#[pyo3(signature = (path, options=None))]
pub fn estimate<'py>(
    py: Python<'py>,
    path: PathBuf,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let json = kwargs_json(options, "estimate option")?;
    let opts: EstimateOptions = if json.is_empty() {
        EstimateOptions::default()
    } else {
        serde_json::from_str(&json).map_err(|e| {
            to_py(Error::invalid_argument(format!(
                "invalid estimate option: {e}"
            )))
        })?
    };
    let est = py
        .detach(move || {
            let info = uml_core::inspect::inspect(&path)?;
            uml_core::estimate::estimate(&info, &opts)
        })
        .map_err(to_py)?;
    to_py_value(py, &est)
}

/// The CPU, memory and GPUs uml sees. A dict.
#[pyfunction]
pub fn hardware(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let hw = py.detach(uml_core::hardware::detect);
    to_py_value(py, &hw)
}

/// Write the tiny random llama GGUF core's tests use (a few hundred KB; loads in milliseconds).
#[pyfunction(name = "_write_tiny_llama_gguf")]
pub fn write_tiny_llama_gguf(py: Python<'_>, path: PathBuf, seed: u64) -> PyResult<()> {
    py.detach(move || uml_core::testing::write_tiny_llama_gguf(&path, seed))
        .map_err(to_py)
}
