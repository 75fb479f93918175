//! The candle backend in builds without the `candle` feature.

use super::not_compiled::NotCompiled;
use super::{Backend, BackendChoice};

static BACKEND: NotCompiled = NotCompiled {
    name: "candle",
    choice: BackendChoice::Candle,
    message: "this build of uml has no candle backend: rebuild uml-core with the `candle` feature to run Hugging Face folders",
};

pub(super) fn backend() -> &'static dyn Backend {
    &BACKEND
}
