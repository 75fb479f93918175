//! Core errors cross into JavaScript as plain `Error`s whose message starts with
//! `[uml:CODE] ` (CODE is core's stable `ErrorKind` name); `lib/errors.ts` turns them into the
//! `UmlError` subclass for CODE with core's message unchanged. One encoding for thrown and
//! rejected errors alike, since napi's promise rejections carry only a message.

use uml_core::{Error, ErrorKind};

/// The JavaScript error for a core error.
pub fn to_napi(e: Error) -> napi::Error {
    napi::Error::from_reason(format!("[uml:{}] {}", e.kind().name(), e.message()))
}

/// `Result` with core errors mapped.
pub trait OrThrow<T> {
    fn or_throw(self) -> napi::Result<T>;
}

impl<T> OrThrow<T> for uml_core::Result<T> {
    fn or_throw(self) -> napi::Result<T> {
        self.map_err(to_napi)
    }
}

/// Every core error kind as `[code, NAME]`, so the JavaScript side can check each has a class.
#[napi_derive::napi(js_name = "errorKinds")]
pub fn error_kinds() -> Vec<(i32, String)> {
    ErrorKind::ALL
        .iter()
        .map(|k| (k.code(), k.name().to_string()))
        .collect()
}
