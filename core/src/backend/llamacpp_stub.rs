//! The llama.cpp backend in builds without the `llamacpp` feature.

use super::not_compiled::NotCompiled;
use super::{Backend, BackendChoice};

static BACKEND: NotCompiled = NotCompiled {
    name: "llama.cpp",
    choice: BackendChoice::LlamaCpp,
    message: "this build of uml has no llama.cpp backend: rebuild uml-core with the `llamacpp` feature to load GGUF models",
};

pub(super) fn backend() -> &'static dyn Backend {
    &BACKEND
}

pub(super) fn cpu_kernels() -> Option<String> {
    None
}
