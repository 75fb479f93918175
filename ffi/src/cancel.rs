//! `uml_cancel`: a cancellation token one thread passes to a generation and another triggers.

use crate::boundary::{boundary, guard, Out};
use crate::handles::Registry;
use crate::status::uml_status;
use uml_core::{CancelToken, ErrorKind, Result};

/// A cancellation token (opaque). Created by `uml_cancel_new`, released by `uml_cancel_free`.
/// Pass it to `uml_generate` / `uml_chat` / `uml_embed` and call `uml_cancel_cancel` from any
/// thread to stop them; generation stops before the next token (or prompt chunk).
pub struct uml_cancel {
    _opaque: [u8; 0],
}

static CANCELS: Registry<CancelToken> = Registry::new(
    2,
    "uml_cancel",
    "uml_cancel_new()",
    "uml_cancel_free()",
    ErrorKind::InvalidArgument,
);

/// An optional cancel-token argument: NULL means none; anything else must be a live handle.
pub(crate) fn cancel_arg(c: *const uml_cancel) -> Result<Option<CancelToken>> {
    if c.is_null() {
        return Ok(None);
    }
    CANCELS.get(c, "cancel").map(|t| Some((*t).clone()))
}

/// Create a cancellation token (not cancelled).
///
/// Ownership: `*out_cancel` receives a handle the caller owns and releases with
/// `uml_cancel_free`; written only on success.
/// Thread safety: any thread.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (NULL `out_cancel`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_cancel_new(out_cancel: *mut *mut uml_cancel) -> uml_status {
    boundary("uml_cancel_new", || {
        // SAFETY: the caller passes a writable `uml_cancel *` slot (or NULL).
        let out = unsafe { Out::new(out_cancel, "out_cancel") }?;
        out.write(CANCELS.insert(CancelToken::new()));
        Ok(())
    })
}

/// Cancel: every running and later call given this token stops (generation finishes with
/// finish reason "cancelled" and `UML_OK`; a load or embedding fails with
/// `UML_ERR_CANCELLED`) until `uml_cancel_reset`. Idempotent.
///
/// Thread safety: any thread, typically not the one generating; safe to call concurrently.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (NULL, invalid or freed handle).
#[unsafe(no_mangle)]
pub extern "C" fn uml_cancel_cancel(cancel: *const uml_cancel) -> uml_status {
    boundary("uml_cancel_cancel", || {
        CANCELS.get(cancel, "cancel")?.cancel();
        Ok(())
    })
}

/// Make a cancelled token usable again for new calls.
///
/// Thread safety: any thread. Resetting while a call using the token runs may let it go on.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (NULL, invalid or freed handle).
#[unsafe(no_mangle)]
pub extern "C" fn uml_cancel_reset(cancel: *const uml_cancel) -> uml_status {
    boundary("uml_cancel_reset", || {
        CANCELS.get(cancel, "cancel")?.reset();
        Ok(())
    })
}

/// Whether the token is cancelled, into `*out_cancelled`.
///
/// Thread safety: any thread.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (NULL, invalid or freed handle; NULL out-pointer).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_cancel_is_cancelled(
    cancel: *const uml_cancel,
    out_cancelled: *mut bool,
) -> uml_status {
    boundary("uml_cancel_is_cancelled", || {
        let token = CANCELS.get(cancel, "cancel")?;
        // SAFETY: the caller passes a writable bool (or NULL).
        let out = unsafe { Out::new(out_cancelled, "out_cancelled") }?;
        out.write(token.is_cancelled());
        Ok(())
    })
}

/// Release a token. NULL, and a handle already freed, are ignored. Calls already running with
/// the token are unaffected (but can no longer be cancelled through this handle).
///
/// Ownership: takes the handle; it must not be used afterwards.
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn uml_cancel_free(cancel: *mut uml_cancel) {
    guard((), || drop(CANCELS.remove(cancel)))
}
