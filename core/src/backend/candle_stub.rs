//! Stand-in for the candle backend in builds without the `candle` feature: it refuses
//! every model with `Unsupported`, naming the feature, so callers need no `cfg`.

use super::{Backend, BackendChoice, LoadPlan, LoadedModel};
use crate::estimate::{EstimateOptions, MemoryEstimate};
use crate::inspect::ModelInfo;
use crate::{Error, ErrorKind, Result};

struct CandleStub;

static BACKEND: CandleStub = CandleStub;

pub(super) fn backend() -> &'static dyn Backend {
    &BACKEND
}

fn not_compiled() -> Error {
    Error::new(
        ErrorKind::Unsupported,
        "this build of uml has no candle backend: rebuild uml-core with the `candle` feature to run Hugging Face folders",
    )
}

impl Backend for CandleStub {
    fn name(&self) -> &'static str {
        "candle"
    }

    fn choice(&self) -> BackendChoice {
        BackendChoice::Candle
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
