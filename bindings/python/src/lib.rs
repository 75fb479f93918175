//! `uml._uml`: the native half of the `uml` Python package. It converts arguments, calls
//! `uml-core` with the GIL released, and converts results and errors; everything else (the
//! context manager, asyncio, numpy, typed result objects) is plain Python in `python/uml/`.

mod cancel;
mod convert;
mod error;
mod inspect;
mod manager;
mod model;
mod session;
mod stream;
#[cfg(feature = "test-hooks")]
mod test_hooks;
mod worker;

use pyo3::prelude::*;

#[pymodule]
fn _uml(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", uml_core::VERSION)?;
    m.add_class::<cancel::CancelToken>()?;
    m.add_class::<manager::Manager>()?;
    m.add_class::<model::Model>()?;
    m.add_class::<session::ChatSession>()?;
    m.add_class::<stream::Stream>()?;
    m.add_function(wrap_pyfunction!(inspect::inspect, m)?)?;
    m.add_function(wrap_pyfunction!(inspect::estimate, m)?)?;
    m.add_function(wrap_pyfunction!(inspect::hardware, m)?)?;
    m.add_function(wrap_pyfunction!(error::error_kinds, m)?)?;
    #[cfg(feature = "test-hooks")]
    {
        m.add_function(wrap_pyfunction!(test_hooks::raise_error, m)?)?;
        m.add_function(wrap_pyfunction!(test_hooks::write_tiny_llama_gguf, m)?)?;
        m.add_function(wrap_pyfunction!(test_hooks::write_tiny_hf_folder, m)?)?;
        m.add_function(wrap_pyfunction!(test_hooks::write_lora_adapter, m)?)?;
        m.add_function(wrap_pyfunction!(test_hooks::write_tiny_qwen35_mtp_gguf, m)?)?;
    }
    m.add_function(wrap_pyfunction!(worker::shutdown, m)?)?;
    Ok(())
}
