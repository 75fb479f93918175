//! Test hooks, compiled only with the `test-hooks` feature (scripts/test-python builds the
//! package with it; a wheel built for users has none of this, nor uml-test-support).

use std::path::PathBuf;

use pyo3::prelude::*;
use uml_core::{Error, ErrorKind};

use crate::error::to_py;

/// Raise the exception core would raise for `code` (tests of the mapping only).
#[pyfunction(name = "_raise_error")]
pub fn raise_error(code: i32, message: String) -> PyResult<()> {
    let kind = ErrorKind::ALL
        .iter()
        .copied()
        .find(|k| k.code() == code)
        .ok_or_else(|| {
            to_py(Error::invalid_argument(format!(
                "_raise_error: no error kind has code {code} (known: 1..={})",
                ErrorKind::ALL.len()
            )))
        })?;
    Err(to_py(Error::new(kind, message)))
}

/// Write the tiny random llama GGUF core's tests use (a few hundred KB; loads in milliseconds).
#[pyfunction(name = "_write_tiny_llama_gguf")]
pub fn write_tiny_llama_gguf(py: Python<'_>, path: PathBuf, seed: u64) -> PyResult<()> {
    py.detach(move || uml_test_support::write_tiny_llama_gguf(&path, seed))
        .map_err(to_py)
}

/// Write the tiny llama as a Hugging Face folder (the same weights as seed 0 of the GGUF), run
/// by the candle backend.
#[pyfunction(name = "_write_tiny_hf_folder")]
pub fn write_tiny_hf_folder(py: Python<'_>, path: PathBuf) -> PyResult<()> {
    py.detach(move || uml_test_support::write_tiny_hf_folder(&path))
        .map_err(to_py)
}

/// Write the tiny Qwen3.5 with a multi-token-prediction head (core's `mtp` tests' model;
/// `echo`: its head's drafts are mostly kept).
#[pyfunction(name = "_write_tiny_qwen35_mtp_gguf")]
pub fn write_tiny_qwen35_mtp_gguf(
    py: Python<'_>,
    path: PathBuf,
    seed: u64,
    echo: bool,
) -> PyResult<()> {
    py.detach(move || uml_test_support::write_tiny_qwen35_mtp_gguf(&path, seed, echo))
        .map_err(to_py)
}

/// Write a random LoRA adapter for the GGUF model at `model` (core's test adapters:
/// `uml_test_support::write_lora_adapter`).
#[pyfunction(name = "_write_lora_adapter")]
pub fn write_lora_adapter(
    py: Python<'_>,
    model: PathBuf,
    out: PathBuf,
    seed: u64,
    rank: u64,
    magnitude: f32,
) -> PyResult<()> {
    py.detach(move || {
        uml_test_support::write_lora_adapter(&model, &out, seed, rank, magnitude, None)
    })
    .map_err(to_py)
}
