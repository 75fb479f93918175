//! The panic boundary and argument checks every `extern "C"` function goes through: panics
//! become `UML_ERR_INTERNAL`, NULL / non-UTF-8 / dangling handles become
//! `UML_ERR_INVALID_ARGUMENT`, and the message of the last failure is kept per thread.

use crate::status::uml_status;
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use uml_core::{Error, ErrorKind, Result};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Remember (or, on success, clear) the calling thread's last error message.
fn set_last_error(function: &str, error: Option<&Error>) {
    let message = match error {
        None => CString::default(),
        Some(e) => c_string_lossy(&format!("{function}: {}", e.message())),
    };
    // A thread being torn down has no TLS any more: then the message is simply dropped.
    let _ = LAST_ERROR.try_with(|cell| *cell.borrow_mut() = message);
}

/// The calling thread's last error message; valid until this thread's next uml call.
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR
        .try_with(|cell| cell.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

/// A C string from arbitrary text: interior NULs (which C cannot hold) are shown as `\0`.
fn c_string_lossy(text: &str) -> CString {
    CString::new(text.replace('\0', "\\0")).unwrap_or_default()
}

/// Run the body of a fallible `extern "C"` function: a panic becomes `UML_ERR_INTERNAL`, the
/// error's message becomes this thread's `uml_last_error()` (prefixed with `function`), and
/// success clears it.
pub(crate) fn boundary(function: &str, body: impl FnOnce() -> Result<()>) -> uml_status {
    let result = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|p| Err(Error::from_panic(p)));
    set_last_error(function, result.as_ref().err());
    match result {
        Ok(()) => uml_status::UML_OK,
        Err(e) => uml_status::from(e.kind()),
    }
}

/// Run an infallible `extern "C"` function (free, version, ...): a panic gives `fallback` and
/// never unwinds into C. The last error is left alone.
pub(crate) fn guard<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// A required NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid and unmodified for `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> Result<&'a str> {
    // SAFETY: forwarded from this function's contract.
    unsafe { opt_str_arg(p, name) }?
        .ok_or_else(|| Error::invalid_argument(format!("{name} is NULL")))
}

/// An optional NUL-terminated UTF-8 string argument (NULL = `None`).
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(p: *const c_char, name: &str) -> Result<Option<&'a str>> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string living for 'a.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    std::str::from_utf8(bytes).map(Some).map_err(|e| {
        Error::invalid_argument(format!(
            "{name} is not valid UTF-8 (invalid byte at offset {}); pass UTF-8 text",
            e.valid_up_to()
        ))
    })
}

/// A required out-pointer, written with [`Out::write`] once every fallible step is done.
pub(crate) struct Out<T>(*mut T);

impl<T> Out<T> {
    /// # Safety
    /// `p` is NULL or valid for writing one `T` (it need not be initialised).
    pub(crate) unsafe fn new(p: *mut T, name: &str) -> Result<Self> {
        if p.is_null() {
            return Err(Error::invalid_argument(format!("{name} is NULL")));
        }
        Ok(Out(p))
    }

    /// # Safety
    /// As [`Out::new`]; NULL gives `None` (the caller did not ask for this output).
    pub(crate) unsafe fn optional(p: *mut T) -> Option<Self> {
        (!p.is_null()).then_some(Out(p))
    }

    pub(crate) fn write(self, value: T) {
        // SAFETY: non-NULL and writable, as promised to `Out::new` / `Out::optional`; `write`
        // does not read or drop the old (possibly uninitialised) value.
        unsafe { self.0.write(value) }
    }
}

/// Copy `bytes` into a new NUL-terminated string owned by the caller (freed with
/// `uml_string_free`). malloc'd rather than a `CString` so text with interior NULs (which
/// `CString` refuses) can still be returned with its length.
pub(crate) fn new_c_string(bytes: &[u8]) -> Result<*mut c_char> {
    let len = bytes.len();
    // SAFETY: malloc has no preconditions; the result is checked for NULL below.
    let p = unsafe { libc::malloc(len + 1) }.cast::<u8>();
    if p.is_null() {
        return Err(Error::new(
            ErrorKind::OutOfMemory,
            format!("cannot allocate {} bytes for the returned string", len + 1),
        ));
    }
    // SAFETY: `p` holds len + 1 bytes and does not overlap `bytes`.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, len);
        *p.add(len) = 0;
    }
    Ok(p.cast::<c_char>())
}

/// Serialise `value` into a caller-owned JSON string.
pub(crate) fn new_json(value: &impl serde::Serialize) -> Result<*mut c_char> {
    let json = serde_json::to_string(value)
        .map_err(|e| Error::internal(format!("cannot serialise the result as JSON: {e}")))?;
    new_c_string(json.as_bytes())
}

/// Free a string made by [`new_c_string`].
///
/// # Safety
/// `p` is NULL or was returned by `new_c_string` and not freed since.
pub(crate) unsafe fn free_c_string(p: *mut c_char) {
    // SAFETY: forwarded; free(NULL) is a no-op.
    unsafe { libc::free(p.cast()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_internal_with_its_message() {
        let status = boundary("uml_test", || panic!("boom"));
        assert_eq!(status, uml_status::UML_ERR_INTERNAL);
        // SAFETY: the pointer is this thread's NUL-terminated last error.
        let msg = unsafe { CStr::from_ptr(last_error_ptr()) }
            .to_str()
            .unwrap();
        assert!(
            msg.starts_with("uml_test: internal error") && msg.contains("boom"),
            "{msg}"
        );
        assert_eq!(boundary("uml_test", || Ok(())), uml_status::UML_OK);
        // SAFETY: as above.
        assert_eq!(unsafe { CStr::from_ptr(last_error_ptr()) }.to_bytes(), b"");
    }

    #[test]
    fn strings_with_interior_nul_round_trip() {
        let p = new_c_string(b"a\0b").unwrap();
        // SAFETY: p holds 4 bytes written above; freed once.
        unsafe {
            assert_eq!(std::slice::from_raw_parts(p.cast::<u8>(), 4), b"a\0b\0");
            free_c_string(p);
        }
    }
}
