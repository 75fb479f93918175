//! uml-core: the Universal Model Loader engine.
//!
//! One flow for every host: detect the format of a path, inspect it (headers only), estimate
//! memory, select a backend for the hardware, load, then generate / stream / chat / embed.

pub mod error;
pub mod estimate;
pub mod format;
pub mod gguf;
pub mod hardware;
pub mod inspect;
#[doc(hidden)]
pub mod testing;

pub use error::{Error, ErrorKind, Result};
pub use estimate::{
    check_fits, estimate, largest_context_that_fits, max_gpu_layers, CacheType, EstimateOptions,
    MemoryEstimate,
};
pub use format::{detect, Format};
pub use hardware::{Gpu, Hardware};
pub use inspect::{inspect, ModelInfo};
