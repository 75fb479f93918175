//! One error type for the whole engine. `ErrorKind` numbers are part of the C ABI (`uml_status`)
//! and of every binding: they are explicit and never reused.

use std::fmt;

/// What went wrong, as a stable code. Not `#[non_exhaustive]` on purpose: adding a kind must
/// break every binding's `match` until it is mapped there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(i32)]
pub enum ErrorKind {
    /// A caller-supplied option, parameter or argument is invalid.
    InvalidArgument = 1,
    /// The model path (or another named file) does not exist.
    NotFound = 2,
    /// The file is a model format uml recognises but cannot load (e.g. legacy GGML), or no
    /// format at all.
    UnsupportedFormat = 3,
    /// The file claims a known format but its contents are corrupt, truncated or hostile.
    InvalidModel = 4,
    /// Loading or running would need more memory than is available.
    OutOfMemory = 5,
    /// The operation was cancelled by the caller.
    Cancelled = 6,
    /// The inference backend (llama.cpp, candle) reported a failure.
    Backend = 7,
    /// An operating-system I/O error (permissions, read failure).
    Io = 8,
    /// The prompt (plus requested tokens) does not fit in the context window.
    ContextOverflow = 9,
    /// The operation is valid but not supported by this build or this model (a backend feature
    /// that was not compiled in, embeddings from a model without them, ...).
    Unsupported = 10,
    /// The model handle was already closed / freed.
    ModelClosed = 11,
    /// A bug in uml (a caught panic, a broken invariant). Please report it.
    Internal = 12,
    /// A caller-provided output buffer is too small; the needed size is reported beside it.
    BufferTooSmall = 13,
    /// The model is at capacity: every generation slot is running and the queue of callers
    /// waiting for one is full. Try again later, or load with larger `max_parallel` /
    /// `max_queued`.
    Busy = 14,
}

impl ErrorKind {
    /// Every kind, in code order (bindings use it to check their mapping is complete).
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::InvalidArgument,
        ErrorKind::NotFound,
        ErrorKind::UnsupportedFormat,
        ErrorKind::InvalidModel,
        ErrorKind::OutOfMemory,
        ErrorKind::Cancelled,
        ErrorKind::Backend,
        ErrorKind::Io,
        ErrorKind::ContextOverflow,
        ErrorKind::Unsupported,
        ErrorKind::ModelClosed,
        ErrorKind::Internal,
        ErrorKind::BufferTooSmall,
        ErrorKind::Busy,
    ];

    /// The stable numeric code (equal to the C `uml_status`).
    pub fn code(self) -> i32 {
        self as i32
    }

    /// A stable SCREAMING_SNAKE name, used as the JS `err.code` and in logs.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "INVALID_ARGUMENT",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::UnsupportedFormat => "UNSUPPORTED_FORMAT",
            ErrorKind::InvalidModel => "INVALID_MODEL",
            ErrorKind::OutOfMemory => "OUT_OF_MEMORY",
            ErrorKind::Cancelled => "CANCELLED",
            ErrorKind::Backend => "BACKEND",
            ErrorKind::Io => "IO",
            ErrorKind::ContextOverflow => "CONTEXT_OVERFLOW",
            ErrorKind::Unsupported => "UNSUPPORTED",
            ErrorKind::ModelClosed => "MODEL_CLOSED",
            ErrorKind::Internal => "INTERNAL",
            ErrorKind::BufferTooSmall => "BUFFER_TOO_SMALL",
            ErrorKind::Busy => "BUSY",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The engine's error: a stable kind, a message that names the thing, the value and the fix,
/// and optionally the underlying cause.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attach the underlying cause (kept for `source()`, not repeated in the message).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    pub fn invalid_model(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidModel, message)
    }

    pub fn backend(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Backend, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    /// An I/O error on `path`, classified: a missing file is `NotFound`, anything else `Io`.
    pub fn io(path: &std::path::Path, err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Io,
        };
        let message = match kind {
            ErrorKind::NotFound => format!(
                "model not found: {} does not exist (check the path, or fetch the model first)",
                path.display()
            ),
            _ => format!("cannot read {}: {err}", path.display()),
        };
        Error::new(kind, message).with_source(err)
    }

    /// A panic payload caught at an API boundary.
    pub fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Error::internal(format!(
            "internal error (a bug in uml, please report it): {what}"
        ))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::invalid_argument(format!("invalid JSON: {e}"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_unique() {
        let codes: Vec<i32> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(codes, (1..=14).collect::<Vec<_>>());
    }

    #[test]
    fn missing_file_is_not_found_and_names_the_path() {
        let err = std::fs::File::open("/no/such/model.gguf").unwrap_err();
        let e = Error::io(std::path::Path::new("/no/such/model.gguf"), err);
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.message().contains("/no/such/model.gguf"), "{e}");
    }
}
