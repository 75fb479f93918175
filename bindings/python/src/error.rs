//! Core errors become the exception classes of `uml/_errors.py`: one per `ErrorKind`, each also
//! subclassing the fitting builtin (`ValueError`, `FileNotFoundError`, `MemoryError`, ...).

use pyo3::import_exception;
use pyo3::prelude::*;
use uml_core::{Error, ErrorKind};

import_exception!(uml._errors, InvalidArgumentError);
import_exception!(uml._errors, ModelNotFoundError);
import_exception!(uml._errors, UnsupportedFormatError);
import_exception!(uml._errors, InvalidModelError);
import_exception!(uml._errors, OutOfMemoryError);
import_exception!(uml._errors, CancelledError);
import_exception!(uml._errors, BackendError);
import_exception!(uml._errors, IoError);
import_exception!(uml._errors, ContextOverflowError);
import_exception!(uml._errors, UnsupportedError);
import_exception!(uml._errors, ModelClosedError);
import_exception!(uml._errors, InternalError);
import_exception!(uml._errors, BufferTooSmallError);
import_exception!(uml._errors, BusyError);

/// The Python exception for a core error, carrying the core's message unchanged.
pub fn to_py(e: Error) -> PyErr {
    let msg = e.message().to_string();
    // No wildcard: a new ErrorKind must fail to compile here until it has a Python class.
    match e.kind() {
        ErrorKind::InvalidArgument => InvalidArgumentError::new_err(msg),
        ErrorKind::NotFound => ModelNotFoundError::new_err(msg),
        ErrorKind::UnsupportedFormat => UnsupportedFormatError::new_err(msg),
        ErrorKind::InvalidModel => InvalidModelError::new_err(msg),
        ErrorKind::OutOfMemory => OutOfMemoryError::new_err(msg),
        ErrorKind::Cancelled => CancelledError::new_err(msg),
        ErrorKind::Backend => BackendError::new_err(msg),
        ErrorKind::Io => IoError::new_err(msg),
        ErrorKind::ContextOverflow => ContextOverflowError::new_err(msg),
        ErrorKind::Unsupported => UnsupportedError::new_err(msg),
        ErrorKind::ModelClosed => ModelClosedError::new_err(msg),
        ErrorKind::Internal => InternalError::new_err(msg),
        ErrorKind::BufferTooSmall => BufferTooSmallError::new_err(msg),
        ErrorKind::Busy => BusyError::new_err(msg),
    }
}

/// Every core error kind as `(code, NAME)`, so the Python tests can check each has a class.
#[pyfunction(name = "_error_kinds")]
pub fn error_kinds() -> Vec<(i32, &'static str)> {
    ErrorKind::ALL
        .iter()
        .map(|k| (k.code(), k.name()))
        .collect()
}
