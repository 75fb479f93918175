//! uml-core: the Universal Model Loader engine.
//!
//! One flow for every host: detect the format of a path, inspect it (headers only), estimate
//! memory, select a backend for the hardware, load, then generate / stream / chat / embed.

pub mod chat;
pub mod error;
pub mod options;
pub mod sampling;
pub mod stream;

pub use chat::{ChatMessage, ChatTemplate, TemplateOrigin};
pub use error::{Error, ErrorKind, Result};
pub use options::{GpuLayers, KvCacheType, LoadOptions};
pub use sampling::GenerateParams;
pub use stream::{Completion, FinishReason, Pushed, TextStream, Usage};
