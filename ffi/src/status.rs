//! `uml_status`: the result of every fallible C function, mapped 1:1 from core's `ErrorKind`.

use uml_core::ErrorKind;

/// The result of every fallible uml function. `UML_OK` (0) is success; every other value is the
/// stable code of a core `ErrorKind`. Values are never reused or renumbered; new ones may be
/// added, so treat an unknown value as an error (`uml_status_name()` names it
/// "UML_ERR_UNKNOWN"). `uml_last_error()` has the message of the failure.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum uml_status {
    /// Success.
    UML_OK = 0,
    /// An argument is NULL, not valid UTF-8, not a live handle, or an option/parameter JSON is
    /// invalid (the message names it).
    UML_ERR_INVALID_ARGUMENT = 1,
    /// The model path (or another named file) does not exist.
    UML_ERR_NOT_FOUND = 2,
    /// A model format uml recognises but cannot load (e.g. legacy GGML), or no format at all.
    UML_ERR_UNSUPPORTED_FORMAT = 3,
    /// The file claims a known format but is corrupt, truncated or hostile.
    UML_ERR_INVALID_MODEL = 4,
    /// Loading or running would need more memory than is available.
    UML_ERR_OUT_OF_MEMORY = 5,
    /// The operation was cancelled (e.g. a load stopped by its progress callback).
    UML_ERR_CANCELLED = 6,
    /// The inference backend (llama.cpp) reported a failure.
    UML_ERR_BACKEND = 7,
    /// An operating-system I/O error (permissions, read failure).
    UML_ERR_IO = 8,
    /// The prompt (plus one generated token) does not fit in the context window.
    UML_ERR_CONTEXT_OVERFLOW = 9,
    /// Valid, but not supported by this build or this model.
    UML_ERR_UNSUPPORTED = 10,
    /// The model handle was already freed.
    UML_ERR_MODEL_CLOSED = 11,
    /// A bug in uml (a caught panic, a broken invariant). Please report it.
    UML_ERR_INTERNAL = 12,
    /// A caller-provided buffer is too small; the needed size is written to the size output.
    UML_ERR_BUFFER_TOO_SMALL = 13,
    /// Every generation slot of the model is running and the queue of callers waiting for one
    /// is full: try again later, or load with a larger `max_parallel` / `max_queued`.
    UML_ERR_BUSY = 14,
}

impl From<ErrorKind> for uml_status {
    // No wildcard on purpose: a new ErrorKind must fail to compile here until it is mapped.
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::InvalidArgument => uml_status::UML_ERR_INVALID_ARGUMENT,
            ErrorKind::NotFound => uml_status::UML_ERR_NOT_FOUND,
            ErrorKind::UnsupportedFormat => uml_status::UML_ERR_UNSUPPORTED_FORMAT,
            ErrorKind::InvalidModel => uml_status::UML_ERR_INVALID_MODEL,
            ErrorKind::OutOfMemory => uml_status::UML_ERR_OUT_OF_MEMORY,
            ErrorKind::Cancelled => uml_status::UML_ERR_CANCELLED,
            ErrorKind::Backend => uml_status::UML_ERR_BACKEND,
            ErrorKind::Io => uml_status::UML_ERR_IO,
            ErrorKind::ContextOverflow => uml_status::UML_ERR_CONTEXT_OVERFLOW,
            ErrorKind::Unsupported => uml_status::UML_ERR_UNSUPPORTED,
            ErrorKind::ModelClosed => uml_status::UML_ERR_MODEL_CLOSED,
            ErrorKind::Internal => uml_status::UML_ERR_INTERNAL,
            ErrorKind::BufferTooSmall => uml_status::UML_ERR_BUFFER_TOO_SMALL,
            ErrorKind::Busy => uml_status::UML_ERR_BUSY,
        }
    }
}

/// The C name of a status code, NUL-terminated and static.
pub(crate) fn name(code: i32) -> &'static std::ffi::CStr {
    if code == 0 {
        return c"UML_OK";
    }
    match ErrorKind::ALL.iter().find(|k| k.code() == code) {
        // Every ErrorKind name is also the suffix of its UML_ERR_ constant.
        Some(kind) => match uml_status::from(*kind) {
            uml_status::UML_OK => c"UML_OK",
            uml_status::UML_ERR_INVALID_ARGUMENT => c"UML_ERR_INVALID_ARGUMENT",
            uml_status::UML_ERR_NOT_FOUND => c"UML_ERR_NOT_FOUND",
            uml_status::UML_ERR_UNSUPPORTED_FORMAT => c"UML_ERR_UNSUPPORTED_FORMAT",
            uml_status::UML_ERR_INVALID_MODEL => c"UML_ERR_INVALID_MODEL",
            uml_status::UML_ERR_OUT_OF_MEMORY => c"UML_ERR_OUT_OF_MEMORY",
            uml_status::UML_ERR_CANCELLED => c"UML_ERR_CANCELLED",
            uml_status::UML_ERR_BACKEND => c"UML_ERR_BACKEND",
            uml_status::UML_ERR_IO => c"UML_ERR_IO",
            uml_status::UML_ERR_CONTEXT_OVERFLOW => c"UML_ERR_CONTEXT_OVERFLOW",
            uml_status::UML_ERR_UNSUPPORTED => c"UML_ERR_UNSUPPORTED",
            uml_status::UML_ERR_MODEL_CLOSED => c"UML_ERR_MODEL_CLOSED",
            uml_status::UML_ERR_INTERNAL => c"UML_ERR_INTERNAL",
            uml_status::UML_ERR_BUFFER_TOO_SMALL => c"UML_ERR_BUFFER_TOO_SMALL",
            uml_status::UML_ERR_BUSY => c"UML_ERR_BUSY",
        },
        None => c"UML_ERR_UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_to_the_status_with_its_code_and_name() {
        for kind in ErrorKind::ALL {
            let status = uml_status::from(kind);
            assert_eq!(status as i32, kind.code(), "{kind:?}");
            let expected = format!("UML_ERR_{}", kind.name());
            assert_eq!(name(kind.code()).to_str().unwrap(), expected);
        }
        assert_eq!(name(0).to_str().unwrap(), "UML_OK");
        assert_eq!(name(-1).to_str().unwrap(), "UML_ERR_UNKNOWN");
        assert_eq!(name(9999).to_str().unwrap(), "UML_ERR_UNKNOWN");
    }
}
