//! uml-core: the Universal Model Loader engine.
//!
//! One flow for every host: detect the format of a path, inspect it (headers only), estimate
//! memory, select a backend for the hardware, load, then generate / stream / chat / embed.
//!
//! ```no_run
//! use uml_core::{GenerateParams, LoadOptions, Model};
//! let model = Model::load("model.gguf", &LoadOptions::default(), None)?;
//! let out = model.generate("Once upon a time", &GenerateParams::greedy(), None, &mut |piece| {
//!     print!("{piece}");
//!     true
//! })?;
//! println!("\n[{:?}, {} tokens]", out.finish_reason, out.usage.completion_tokens);
//! # Ok::<(), uml_core::Error>(())
//! ```

pub mod admission;
pub mod backend;
pub mod bench;
pub mod cancel;
pub mod chat;
pub mod chat_session;
#[cfg(feature = "candle")]
pub mod convert;
pub mod embed;
pub mod error;
pub mod estimate;
mod files;
pub mod format;
mod generate;
pub mod gguf;
pub mod hardware;
#[cfg(feature = "candle")]
mod hf_folder;
pub mod inspect;
pub mod logging;
pub mod lora;
pub mod manager;
pub mod model;
pub mod options;
pub mod pull;
pub mod remote;
pub mod runner;
pub mod sampling;
mod speculative;
pub mod stream;
pub mod trace;

pub use cancel::CancelToken;
pub use chat::{ChatMessage, ChatTemplate, TemplateOrigin};
pub use chat_session::ChatSession;
pub use error::{Error, ErrorKind, Result};
pub use estimate::{EstimateOptions, MemoryEstimate};
pub use format::Format;
pub use generate::Sink;
pub use hardware::{Gpu, Hardware};
pub use inspect::{inspect, ModelInfo};
pub use model::{LoadStage, Model};
pub use options::{GpuLayers, KvCacheType, LoadOptions};
pub use remote::RemoteEndpoint;
pub use sampling::GenerateParams;
pub use stream::{Completion, FinishReason, Pushed, TextStream, Usage};

/// The version of uml (all crates share it).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
