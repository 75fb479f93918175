//! The stand-in for a backend whose cargo feature is off: it refuses every model with
//! `Unsupported`, naming the feature, so callers need no `cfg` (the house style's stub).

use super::{Backend, BackendChoice, LoadPlan, LoadedModel};
use crate::estimate::{EstimateOptions, MemoryEstimate};
use crate::inspect::ModelInfo;
use crate::{Error, ErrorKind, Result};

pub(super) struct NotCompiled {
    pub name: &'static str,
    pub choice: BackendChoice,
    /// Says which feature to rebuild with, and what it would load.
    pub message: &'static str,
}

impl NotCompiled {
    fn error(&self) -> Error {
        Error::new(ErrorKind::Unsupported, self.message)
    }
}

impl Backend for NotCompiled {
    fn name(&self) -> &'static str {
        self.name
    }

    fn choice(&self) -> BackendChoice {
        self.choice
    }

    fn check(&self, _info: &ModelInfo) -> Result<()> {
        Err(self.error())
    }

    fn estimate(&self, _info: &ModelInfo, _opts: &EstimateOptions) -> Result<MemoryEstimate> {
        Err(self.error())
    }

    fn load(
        &self,
        _info: &ModelInfo,
        _plan: &LoadPlan,
        _progress: &mut dyn FnMut(f32) -> bool,
    ) -> Result<Box<dyn LoadedModel>> {
        Err(self.error())
    }
}
