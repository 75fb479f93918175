//! Stand-in for the llama.cpp backend in builds without the `llamacpp` feature: it refuses
//! every model with `Unsupported`, naming the feature, so callers need no `cfg`.

use super::{Backend, BackendChoice, LoadPlan, LoadedModel};
use crate::estimate::{EstimateOptions, MemoryEstimate};
use crate::inspect::ModelInfo;
use crate::{Error, ErrorKind, Result};

struct LlamaCppStub;

static BACKEND: LlamaCppStub = LlamaCppStub;

pub(super) fn backend() -> &'static dyn Backend {
    &BACKEND
}

fn not_compiled() -> Error {
    Error::new(
        ErrorKind::Unsupported,
        "this build of uml has no llama.cpp backend: rebuild uml-core with the `llamacpp` feature to load GGUF models",
    )
}

impl Backend for LlamaCppStub {
    fn name(&self) -> &'static str {
        "llama.cpp"
    }

    fn choice(&self) -> BackendChoice {
        BackendChoice::LlamaCpp
    }

    fn check(&self, _info: &ModelInfo) -> Result<()> {
        Err(not_compiled())
    }

    fn estimate(&self, _info: &ModelInfo, _opts: &EstimateOptions) -> Result<MemoryEstimate> {
        Err(not_compiled())
    }

    fn load(
        &self,
        _info: &ModelInfo,
        _plan: &LoadPlan,
        _progress: &mut dyn FnMut(f32) -> bool,
    ) -> Result<Box<dyn LoadedModel>> {
        Err(not_compiled())
    }
}
