//! Shared by the real-model tests: where the fetched models are, and one loaded model per test
//! binary (loading once keeps the suite fast; the model is Send + Sync).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;
use uml_core::options::LoadOptions;
use uml_core::Model;

pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";

#[allow(unused_imports)]
pub use uml_test_support::repo_root;

/// Path of a model fetched by `scripts/fetch-models`; fails the test with the fetch command when
/// it is missing.
pub fn model_path(name: &str) -> PathBuf {
    uml_test_support::fetched_model(name)
}

/// Small context: the tests need little, and it keeps each context's KV cache small.
pub fn test_options() -> LoadOptions {
    LoadOptions {
        n_ctx: Some(1024),
        seed: Some(42),
        ..LoadOptions::default()
    }
}

pub fn smollm2() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        Model::load(model_path(SMOLLM2), &test_options(), None).expect("load SmolLM2")
    })
}

/// A greedy reference recorded from llama.cpp on several CPU kernel paths: generating
/// `n_predict` tokens of `prompt` must give exactly `text` on any x86-64 CPU (see
/// `uml_test_support::GreedyFixture` for how the trusted prefix is chosen).
pub use uml_test_support::GreedyFixture as Reference;

pub fn reference(name: &str) -> Reference {
    Reference::load(name)
}
