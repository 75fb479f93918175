//! `CancelToken`: what `lib/index.ts` ties an `AbortSignal` to. One per call.

use napi_derive::napi;

#[napi]
pub struct CancelToken(pub(crate) uml_core::CancelToken);

#[napi]
impl CancelToken {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        CancelToken(uml_core::CancelToken::new())
    }

    /// Ask the work holding this token to stop; returns at once.
    #[napi]
    pub fn cancel(&self) {
        self.0.cancel();
    }

    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}
