//! Shared by the real-model tests: where the fetched models are, and one loaded model per test
//! binary (loading once keeps the suite fast; the model is Send + Sync).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;
use uml_core::options::LoadOptions;
use uml_core::Model;

pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

pub use uml_core::testing::repo_root;

/// Path of a model fetched by `scripts/fetch-models`; fails the test with the fetch command when
/// it is missing.
pub fn model_path(name: &str) -> PathBuf {
    uml_core::testing::fetched_model(name)
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

/// The recorded reference output of llama.cpp's own `llama-simple` (see the fixture's "command").
pub struct Reference {
    pub prompt: String,
    pub n_predict: u32,
    pub text: String,
}

pub fn reference(name: &str) -> Reference {
    let path = repo_root().join("tests/fixtures").join(name);
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&raw).expect("fixture is JSON");
    Reference {
        prompt: v["prompt"].as_str().expect("prompt").to_string(),
        n_predict: v["n_predict"].as_u64().expect("n_predict") as u32,
        text: v["completion"].as_str().expect("completion").to_string(),
    }
}
