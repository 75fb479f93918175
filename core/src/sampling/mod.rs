//! Sampling, one implementation for every backend: `GenerateParams` (what to generate and how),
//! and the `Sampler` that turns a backend's logits into the next token. A backend only exposes
//! logits; it never samples, so the same parameters, seed and logits give the same token
//! whichever engine computed the logits.

mod constraint;
mod gbnf;
mod params;
mod rng;
mod sampler;

pub use constraint::{Constraint, ConstraintFactory};
pub use params::{GenerateParams, LoraScale, DEFAULT_DRAFT_MARGIN_MIN};
pub use rng::Rng;
pub use sampler::Sampler;
