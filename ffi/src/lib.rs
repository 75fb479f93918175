//! libuml: the stable C ABI of uml (`include/uml.h` is generated from this crate by cbindgen).
//!
//! Conventions (DESIGN.md, ffi/; STYLE.md, "Panic boundary, ownership"):
//! - Every fallible function returns `uml_status` and writes its results through out-pointers,
//!   only on success (the one exception: the needed size on `UML_ERR_BUFFER_TOO_SMALL`).
//! - Every body runs in `boundary()`: a panic is `UML_ERR_INTERNAL`, never an unwind into C.
//! - Parameters are raw pointers, checked here: NULL, non-UTF-8 text and dead handles are
//!   `UML_ERR_INVALID_ARGUMENT` (a freed model: `UML_ERR_MODEL_CLOSED`), never a crash.
//! - Options and results that grow are UTF-8 JSON; hot paths (token callback, embeddings) are
//!   plain C types.
#![allow(non_camel_case_types)]
// Each function's `///` doc (copied into uml.h) states its pointer contract in C terms: which
// pointers may be NULL, what they must point to and for how long. A Rust `# Safety` heading
// would only repeat it in the header.
#![allow(clippy::missing_safety_doc)]

mod boundary;
mod handles;
mod status;

// The order of these modules is the order of the functions in uml.h (cbindgen keeps source
// order): looking before loading, the model, generation, chat sessions, the model manager,
// cancellation.
mod inspect;

mod model;

mod generate;

mod session;

mod manager;

mod cancel;
mod tasks;

pub use cancel::*;
pub use generate::*;
pub use inspect::*;
pub use manager::*;
pub use model::*;
pub use session::*;
pub use status::uml_status;

use boundary::guard;
use std::ffi::c_char;

/// The version of the ABI described by this header. It changes only when an existing
/// function, type or constant changes incompatibly; additions keep it. Compare it with
/// `uml_abi_version()` at run time to detect a header/library mismatch.
pub const UML_ABI_VERSION: u32 = 1;

/// The ABI version of the loaded library (see `UML_ABI_VERSION`).
///
/// Thread safety: any thread. Never fails.
#[unsafe(no_mangle)]
pub extern "C" fn uml_abi_version() -> u32 {
    UML_ABI_VERSION
}

/// The version of uml, e.g. "0.1.0".
///
/// Ownership: a static string owned by the library; do not free it.
/// Thread safety: any thread. Never fails.
#[unsafe(no_mangle)]
pub extern "C" fn uml_version() -> *const c_char {
    static VERSION: std::sync::OnceLock<std::ffi::CString> = std::sync::OnceLock::new();
    guard(c"".as_ptr(), || {
        VERSION
            .get_or_init(|| std::ffi::CString::new(uml_core::VERSION).unwrap_or_default())
            .as_ptr()
    })
}

/// The name of a status code, e.g. "UML_ERR_NOT_FOUND" (for logs); "UML_ERR_UNKNOWN" for a
/// value this library does not know.
///
/// Ownership: a static string owned by the library; do not free it.
/// Thread safety: any thread. Never fails.
#[unsafe(no_mangle)]
pub extern "C" fn uml_status_name(status: i32) -> *const c_char {
    guard(c"UML_ERR_UNKNOWN".as_ptr(), || {
        status::name(status).as_ptr()
    })
}

/// The message of the last failed uml call on the calling thread, naming the function, the
/// argument or value and the fix; "" if that call succeeded. Functions returning `void` or a
/// value (the `*_free` functions, `uml_version`, ...) leave it untouched.
///
/// Ownership: owned by the library; valid until the calling thread's next uml call or exit.
/// Copy it if you need it longer. Never NULL.
/// Thread safety: any thread; each thread has its own message.
#[unsafe(no_mangle)]
pub extern "C" fn uml_last_error() -> *const c_char {
    guard(c"".as_ptr(), boundary::last_error_ptr)
}

/// Free a string returned by uml (JSON results, detokenized text). NULL is ignored.
///
/// Ownership: takes ownership of `s`, which must come from uml and not be freed before; use
/// this function, not free().
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_string_free(s: *mut c_char) {
    // SAFETY: the caller passes NULL or a string uml returned and has not freed.
    guard((), || unsafe { boundary::free_c_string(s) })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soname_carries_the_abi_version() {
        assert_eq!(
            env!("UML_SONAME_ABI_VERSION"),
            super::UML_ABI_VERSION.to_string(),
            "ffi/build.rs ABI_VERSION must equal UML_ABI_VERSION"
        );
    }
}
