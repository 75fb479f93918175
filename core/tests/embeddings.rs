//! Embeddings from a real GGUF embedding model: all-MiniLM-L6-v2 (BERT, mean pooling), converted
//! from the PyPI wheel by scripts/fetch-models, checked against llama.cpp's own llama-embedding.
// The GGUF runs on llama.cpp: a build without it has nothing to test here.
#![cfg(feature = "llamacpp")]

mod common;

#[cfg(feature = "candle")]
use uml_test_support::max_abs_diff;

use common::{model_path, repo_root};
use std::sync::OnceLock;
use uml_core::embed::cosine_similarity;
use uml_core::options::LoadOptions;
use uml_core::{ErrorKind, Model};

const MINILM: &str = "all-MiniLM-L6-v2.F32.gguf";

fn options(normalize: bool) -> LoadOptions {
    LoadOptions {
        embeddings: true,
        normalize_embeddings: normalize,
        ..LoadOptions::default()
    }
}

fn minilm() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL
        .get_or_init(|| Model::load(model_path(MINILM), &options(true), None).expect("load MiniLM"))
}

/// The vectors llama-embedding printed (see the fixture's "command").
fn fixture() -> (Vec<String>, Vec<Vec<f32>>) {
    let path = repo_root().join("tests/fixtures/minilm_embeddings.json");
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&raw).expect("fixture is JSON");
    let texts = v["texts"]
        .as_array()
        .expect("texts")
        .iter()
        .map(|t| t.as_str().expect("text").to_string())
        .collect();
    let vectors = v["embeddings"]
        .as_array()
        .expect("embeddings")
        .iter()
        .map(|e| {
            e.as_array()
                .expect("vector")
                .iter()
                .map(|x| x.as_f64().expect("number") as f32)
                .collect()
        })
        .collect();
    (texts, vectors)
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt()
}

#[test]
fn shape_and_pooling_come_from_the_gguf() {
    let model = minilm();
    let info = model.info();
    assert_eq!(info.architecture.as_deref(), Some("bert"));
    assert_eq!(info.pooling_type.as_deref(), Some("mean"));
    assert_eq!(info.context_length, Some(512));
    assert_eq!(model.embedding_size(), 384);
    let v = model.embed(&["hello"], None).unwrap();
    assert_eq!((v.len(), v[0].len()), (1, 384));
}

#[test]
fn vectors_match_llama_embedding() {
    let (texts, expected) = fixture();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = minilm().embed(&refs, None).unwrap();
    assert_eq!(got.len(), expected.len());
    let mut worst = 0f32;
    for ((text, g), e) in texts.iter().zip(&got).zip(&expected) {
        assert_eq!(g.len(), e.len(), "{text}");
        assert!((norm(g) - 1.0).abs() < 1e-5, "{text}: norm {}", norm(g));
        for (i, (a, b)) in g.iter().zip(e).enumerate() {
            let d = (a - b).abs();
            worst = worst.max(d);
            assert!(
                d <= 1e-4,
                "{text}: component {i} is {a}, llama-embedding printed {b}"
            );
        }
    }
    eprintln!("largest difference from llama-embedding: {worst:e}");
}

#[test]
fn similar_sentences_are_closer_than_unrelated_ones() {
    let v = minilm()
        .embed(
            &[
                "I love cats",
                "I adore kittens",
                "The stock market fell sharply today",
            ],
            None,
        )
        .unwrap();
    let close = cosine_similarity(&v[0], &v[1]);
    let far = cosine_similarity(&v[0], &v[2]);
    assert!(close > 0.6, "love cats / adore kittens: {close}");
    assert!(far < 0.2, "love cats / stock market: {far}");
    assert!(close > far + 0.4);
}

#[test]
fn raw_vectors_have_the_same_direction() {
    let raw_model = Model::load(model_path(MINILM), &options(false), None).unwrap();
    let raw = raw_model.embed(&["I love cats"], None).unwrap().remove(0);
    let unit = minilm().embed(&["I love cats"], None).unwrap().remove(0);
    let n = norm(&raw);
    assert!((n - 1.0).abs() > 0.1, "unnormalised vector has norm {n}");
    for (r, u) in raw.iter().zip(&unit) {
        assert!(((f64::from(*r) / n) as f32 - u).abs() < 1e-5);
    }
}

#[test]
fn text_longer_than_the_context_is_refused() {
    // "word " is one token; 600 of them plus [CLS]/[SEP] exceed the 512 positions BERT has.
    let long = "word ".repeat(600);
    let err = minilm().embed(&[&long], None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContextOverflow, "{err}");
    // Exactly the context still works: 510 words + [CLS] + [SEP] = 512 tokens.
    let fits = "word ".repeat(510);
    let v = minilm().embed(&[&fits], None).unwrap();
    assert_eq!(v[0].len(), 384);
}

#[test]
fn a_larger_n_ctx_does_not_stretch_the_trained_positions() {
    // BERT has 512 learned positions: a bigger context must not let longer texts through.
    let opts = LoadOptions {
        n_ctx: Some(1024),
        ..options(true)
    };
    let model = Model::load(model_path(MINILM), &opts, None).unwrap();
    let err = model.embed(&[&"word ".repeat(600)], None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContextOverflow, "{err}");
}

#[test]
fn empty_text_is_invalid() {
    let err = minilm().embed(&[""], None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

#[test]
fn an_embedding_model_refuses_to_generate_text() {
    let err = minilm()
        .complete("Hello", &uml_core::GenerateParams::greedy())
        .unwrap_err();
    assert_eq!(err.kind(), uml_core::ErrorKind::Unsupported);
    assert!(err.message().contains("embedding model"), "{err}");
}

/// The same model as its original Hugging Face folder (safetensors + tokenizer.json), run by
/// the candle backend.
#[cfg(feature = "candle")]
fn minilm_folder() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        let folder = model_path("all-MiniLM-L6-v2");
        Model::load(&folder, &options(true), None).expect("load the MiniLM folder")
    })
}

#[cfg(feature = "candle")]
/// The vectors of `scripts/minilm-numpy-reference`: a float64 numpy run of the original
/// safetensors with the exact erf GELU the config names (see the fixture's "command").
fn numpy_fixture() -> (Vec<String>, Vec<Vec<i32>>, Vec<Vec<f32>>) {
    let path = repo_root().join("tests/fixtures/minilm_numpy.json");
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&raw).expect("fixture is JSON");
    let texts = serde_json::from_value(v["texts"].clone()).expect("texts");
    let ids = serde_json::from_value(v["token_ids"].clone()).expect("token_ids");
    let vectors = serde_json::from_value(v["embeddings"].clone()).expect("embeddings");
    (texts, ids, vectors)
}

#[cfg(feature = "candle")]
#[test]
fn the_safetensors_folder_on_candle_matches_numpy_and_llama_cpp() {
    let model = minilm_folder();
    assert_eq!(model.backend(), "candle");
    assert_eq!(model.embedding_size(), 384);
    let (texts, ids, reference) = numpy_fixture();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = model.embed(&refs, None).unwrap();
    let from_gguf = minilm().embed(&refs, None).unwrap();
    for (i, text) in texts.iter().enumerate() {
        assert_eq!(
            model.tokenize(text, true).unwrap(),
            ids[i],
            "{text}: WordPiece ids"
        );
        assert!(
            (norm(&got[i]) - 1.0).abs() < 1e-5,
            "{text}: norm {}",
            norm(&got[i])
        );
        // candle computes what the model defines: within 1e-5 of the float64 reference.
        let d = max_abs_diff(&got[i], &reference[i]);
        assert!(d < 1e-5, "{text}: {d:e} from the numpy reference");
        // llama.cpp's BERT uses the tanh approximation of GELU, which alone moves these vectors
        // by about 2e-4 from the exact-erf model (the GGUF path measures 1.5e-4 to 2.5e-4 from
        // numpy here); both engines agree to within that.
        let d = max_abs_diff(&got[i], &from_gguf[i]);
        assert!(d < 4e-4, "{text}: {d:e} from the GGUF on llama.cpp");
        let d = max_abs_diff(&from_gguf[i], &reference[i]);
        assert!(
            d < 4e-4,
            "{text}: the GGUF on llama.cpp is {d:e} from the numpy reference"
        );
    }
    let err = model
        .complete("hello", &uml_core::GenerateParams::greedy())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
}
