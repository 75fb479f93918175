//! The native addon of the `uml` Node package (`uml.node`). It translates between JavaScript
//! and uml-core and nothing else: `lib/index.ts` builds the public API (Loader, async
//! iterators, AbortSignal, error classes) on these functions and classes.

mod cancel;
mod convert;
mod error;
mod manager;
mod model;
mod session;
mod task;

use convert::{to_js, Options};
use error::{to_napi, OrThrow};
use napi::bindgen_prelude::Object;
use napi::Env;
use napi_derive::napi;
use std::sync::{Arc, LazyLock};
use uml_core::options::LoadOptions;
use uml_core::runner::{self, Active};

pub use cancel::CancelToken;
pub use error::error_kinds;
pub use manager::Manager;
pub use model::{load_remote, start_load, LoadProgress, Loading, Model, Stream};
pub use session::ChatSession;

/// `inspect` and `estimate` read model files on task threads.
static LOOKS: LazyLock<Arc<Active>> = LazyLock::new(Arc::default);

/// The version of uml.
#[napi]
pub fn version() -> &'static str {
    uml_core::VERSION
}

/// What the file or folder at `path` is (headers only; no weights are read).
#[napi(ts_return_type = "Promise<unknown>")]
pub fn inspect(env: &Env, path: String) -> napi::Result<Object<'_>> {
    task::promise(
        env,
        &LOOKS,
        uml_core::CancelToken::new(),
        move || uml_core::inspect::inspect(std::path::Path::new(&path)),
        |info| to_js(&info),
    )
}

/// The memory a load of `path` with `optionsJson` (load options) would take, the backend it is
/// for, and whether it fits in the memory available now.
#[napi(ts_return_type = "Promise<unknown>")]
pub fn estimate(env: &Env, path: String, options_json: String) -> napi::Result<Object<'_>> {
    let options = Options::parse(&options_json, "load option", LoadOptions::FIELDS).or_throw()?;
    let load_options =
        LoadOptions::from_json(&options.json).map_err(|e| to_napi(options.explain(e)))?;
    task::promise(
        env,
        &LOOKS,
        uml_core::CancelToken::new(),
        move || uml_core::estimate::preflight(std::path::Path::new(&path), &load_options),
        |preflight| to_js(&preflight),
    )
}

/// The CPU, memory and GPUs uml sees.
#[napi]
pub fn hardware() -> napi::Result<serde_json::Value> {
    to_js(&uml_core::hardware::detect()).or_throw()
}

/// Cancel every running task of the process and wait for them to end (one decode step). The
/// package calls it on process exit: a task still decoding while the process tears down races
/// llama.cpp's static destructors.
#[napi]
pub fn shutdown() {
    runner::cancel_all_and_wait();
}

/// What `GOMP_SPINCOUNT` uml wants llama.cpp's OpenMP to run with (see core's hardware
/// module); the package sets it before it loads this addon, unless the user set it.
#[napi(js_name = "openmpSpin")]
pub fn openmp_spin() -> (String, String) {
    let (name, value) = uml_core::hardware::OPENMP_SPIN;
    (name.to_string(), value.to_string())
}
