//! Hugging Face PEFT LoRA adapters on the real SmolLM2, checked against merged weights: the
//! model (dequantized to an F32 Hugging Face folder) gets PEFT's `W + scale·B·A` added to its
//! weights and is converted to GGUF by the tested HF → GGUF path; the adapter, converted by
//! `peft_to_gguf` (or loaded as a folder), applied at run time by llama.cpp to the unmerged
//! model, must then give the merged model's greedy text. A wrong Q/K row layout, a wrong
//! scale or a mixed-up A and B each part the two at once.
#![cfg(all(feature = "llamacpp", feature = "candle"))]

use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use uml_core::convert::{gguf_to_hf, hf_to_gguf, peft_to_gguf, GgufType, LoraBase};
use uml_core::options::{LoadOptions, LoraAdapter};
use uml_core::{ErrorKind, GenerateParams, Model};
use uml_test_support::{
    fetched_model, max_abs_diff, merge_peft_layers, read_safetensors, write_peft_adapter,
    write_safetensors, PeftLayer,
};

const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const PROMPTS: [&str; 2] = ["The capital of France is", "Once upon a time, there was a"];
const TOKENS: u32 = 32;

/// A top-two margin under this may flip between the two ways of rounding (twice the largest
/// logit difference measured).
const NEAR_TIE: f32 = 0.25;

/// How far `W·x + s·B·(A·x)` at run time and `(W + s·B·A)·x` merged may round apart, as a
/// logit (measured: up to 0.012; a Q/K layout or a scale gone wrong: 7 to 15); the adapters
/// move logits by tens.
const LOGIT_ROUNDING: f32 = 0.5;

/// An adapter as PEFT configures it, with the factor PEFT puts on each layer's `B·A`.
struct Adapter {
    name: &'static str,
    config: serde_json::Value,
    targets: &'static [(&'static str, usize)],
    scale: fn(&PeftLayer) -> f32,
}

/// Plain LoRA (one alpha: the converter writes it as the file's alpha), and rsLoRA with an
/// alpha_pattern and two ranks (no one alpha fits: the converter folds the scales into B).
fn adapters() -> [Adapter; 2] {
    [
        Adapter {
            name: "plain",
            config: json!({
                "peft_type": "LORA", "r": 8, "lora_alpha": 16,
                "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
                "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct",
            }),
            targets: &[("q_proj", 8), ("k_proj", 8), ("v_proj", 8), ("o_proj", 8)],
            scale: |_| 16.0 / 8.0,
        },
        Adapter {
            name: "patterned",
            config: json!({
                "peft_type": "LORA", "r": 4, "lora_alpha": 8, "use_rslora": true,
                "rank_pattern": {"down_proj": 16}, "alpha_pattern": {"k_proj": 2},
                "target_modules": ["q_proj", "k_proj", "down_proj"],
            }),
            targets: &[("q_proj", 4), ("k_proj", 4), ("down_proj", 16)],
            scale: |l| {
                let alpha = if l.module.ends_with(".k_proj") {
                    2.0
                } else {
                    8.0
                };
                alpha / (l.rank as f32).sqrt()
            },
        },
    ]
}

struct Setup {
    _dir: tempfile::TempDir,
    /// SmolLM2 as an F32 GGUF, converted from the F32 Hugging Face folder.
    base: PathBuf,
    /// Per adapter: its PEFT folder and the merged model's F32 GGUF.
    adapters: Vec<(PathBuf, PathBuf)>,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let hf = dir.path().join("hf");
        gguf_to_hf(&fetched_model(SMOLLM2), &hf).unwrap();
        let base = dir.path().join("base.gguf");
        hf_to_gguf(&hf, &base, GgufType::F32).unwrap();
        let weights = read_safetensors(&hf.join("model.safetensors")).unwrap();
        let mut made = Vec::new();
        for (seed, adapter) in adapters().iter().enumerate() {
            let peft = dir.path().join(adapter.name);
            let layers = write_peft_adapter(
                &base,
                &peft,
                &adapter.config,
                adapter.targets,
                seed as u64 + 1,
                0.15,
            )
            .unwrap();
            let merged = dir.path().join(format!("{}-merged", adapter.name));
            std::fs::create_dir(&merged).unwrap();
            for entry in std::fs::read_dir(&hf).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "json") {
                    std::fs::copy(&path, merged.join(path.file_name().unwrap())).unwrap();
                }
            }
            let mut merged_weights = weights.clone();
            merge_peft_layers(&mut merged_weights, &layers, adapter.scale).unwrap();
            write_safetensors(&merged.join("model.safetensors"), &merged_weights).unwrap();
            let merged_gguf = dir.path().join(format!("{}-merged.gguf", adapter.name));
            hf_to_gguf(&merged, &merged_gguf, GgufType::F32).unwrap();
            std::fs::remove_dir_all(&merged).unwrap();
            made.push((peft, merged_gguf));
        }
        std::fs::remove_dir_all(&hf).unwrap();
        Setup {
            _dir: dir,
            base,
            adapters: made,
        }
    })
}

fn options(lora: Option<&Path>) -> LoadOptions {
    LoadOptions {
        n_ctx: Some(256),
        n_threads: Some(2),
        lora: lora.into_iter().map(LoraAdapter::new).collect(),
        ..LoadOptions::default()
    }
}

/// A fresh model's first greedy generation (later ones may reuse cached prompt tokens,
/// evaluated in other batches, which round differently in the last bits).
fn first_generation(model: &Path, lora: Option<&Path>, prompt: &str) -> String {
    let model = Model::load(model, &options(lora), None).unwrap();
    let params = GenerateParams {
        max_tokens: TOKENS,
        ..GenerateParams::greedy()
    };
    model
        .generate(prompt, &params, None, &mut |_| true)
        .unwrap()
        .text
}

fn logits(model: &Path, lora: Option<&Path>, prompt: &str) -> Vec<f32> {
    let model = Model::load(model, &options(lora), None).unwrap();
    let tokens = model.tokenize(prompt, true).unwrap();
    uml_core::trace::last_logits(&model, &tokens).unwrap()
}

/// Check that `text` is the merged model's greedy text, up to a near-tie (a top-two margin
/// where other rounding may pick the other token). Returns how many tokens agreed, or `None`
/// when all of them did (the merged model stopping where `text` ends).
fn follows_merged(merged: &Path, prompt: &str, text: &str) -> Option<usize> {
    let model = Model::load(merged, &options(None), None).unwrap();
    let tokens = model.tokenize(prompt, true).unwrap();
    let steps = uml_core::trace::greedy_trace_lora(&model, &tokens, TOKENS, None).unwrap();
    let mut rest = text;
    for (i, step) in steps.iter().enumerate() {
        match rest.strip_prefix(step.text.as_str()) {
            Some(after) if step.complete_utf8 => rest = after,
            _ => {
                assert!(
                    step.margin < NEAR_TIE,
                    "{prompt:?}: {text:?} parts from the merged model's greedy text at token {i} \
                     ({:?}, margin {}), which is no near-tie",
                    step.text,
                    step.margin
                );
                return Some(i);
            }
        }
    }
    assert!(
        rest.is_empty(),
        "{prompt:?}: {text:?} goes on past the merged model's text with {rest:?}"
    );
    None
}

#[test]
fn converted_peft_adapters_give_the_merged_models_text() {
    let setup = setup();
    for (adapter, (peft, merged)) in adapters().iter().zip(&setup.adapters) {
        let gguf = peft.with_extension("gguf");
        if !gguf.exists() {
            peft_to_gguf(
                peft,
                &LoraBase::of_model(&setup.base).unwrap(),
                &gguf,
                GgufType::F32,
            )
            .unwrap();
        }
        for prompt in PROMPTS {
            // The logits after the prompt: the adapter's effect is large, and the difference
            // from the merged weights is rounding.
            let adapted = logits(&setup.base, Some(&gguf), prompt);
            let effect = max_abs_diff(&adapted, &logits(&setup.base, None, prompt));
            let off = max_abs_diff(&adapted, &logits(merged, None, prompt));

            assert!(
                effect > 1.0 && off < LOGIT_ROUNDING,
                "{} on {prompt:?}: the adapter moves a logit by up to {effect}; it differs from \
                 the merged weights' by up to {off}",
                adapter.name
            );
            let text = first_generation(&setup.base, Some(&gguf), prompt);
            if let Some(agreed) = follows_merged(merged, prompt, &text) {
                assert!(
                    agreed >= 16,
                    "{}: only {agreed} tokens of {text:?} agree",
                    adapter.name
                );
            }
            assert_ne!(
                text,
                first_generation(&setup.base, None, prompt),
                "{}: the adapter changed nothing on {prompt:?}",
                adapter.name
            );
            // The folder itself as the lora option: converted as it loads, the same weights.
            assert_eq!(first_generation(&setup.base, Some(peft), prompt), text);
        }
    }
    // The temporary GGUFs those loads converted into are gone.
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("uml-lora-{}-", std::process::id())))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn adapters_that_cannot_be_converted_are_refused_with_the_reason() {
    let setup = setup();
    let (plain, _) = &setup.adapters[0];
    let dir = tempfile::tempdir().unwrap();
    let copy = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| -> PathBuf {
        let to = dir.path().join(name);
        std::fs::create_dir(&to).unwrap();
        std::fs::copy(
            plain.join("adapter_model.safetensors"),
            to.join("adapter_model.safetensors"),
        )
        .unwrap();
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(plain.join("adapter_config.json")).unwrap())
                .unwrap();
        edit(&mut config);
        std::fs::write(to.join("adapter_config.json"), config.to_string()).unwrap();
        to
    };
    let load = |lora: &Path| Model::load(&setup.base, &options(Some(lora)), None).unwrap_err();

    let dora = copy("dora", &|c| c["use_dora"] = json!(true));
    let e = load(&dora);
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.message().contains("DoRA"), "{e}");

    let ia3 = copy("ia3", &|c| c["peft_type"] = json!("IA3"));
    assert!(load(&ia3).message().contains("IA3"));

    // Full tensors beside the pairs (modules_to_save).
    let saved = copy("saved", &|_| {});
    let mut tensors = read_safetensors(&saved.join("adapter_model.safetensors")).unwrap();
    tensors.push(uml_test_support::SafeTensor {
        name: "base_model.model.lm_head.weight".into(),
        dtype: "F32",
        shape: vec![2, 2],
        data: vec![0; 16],
    });
    write_safetensors(&saved.join("adapter_model.safetensors"), &tensors).unwrap();
    let e = load(&saved);
    assert!(e.message().contains("modules_to_save"), "{e}");
    assert!(e.message().contains("merge_and_unload"), "{e}");

    // No weights; a folder that is no adapter.
    let empty = copy("empty", &|_| {});
    std::fs::remove_file(empty.join("adapter_model.safetensors")).unwrap();
    assert_eq!(load(&empty).kind(), ErrorKind::NotFound);
    std::fs::remove_file(empty.join("adapter_config.json")).unwrap();
    assert!(load(&empty).message().contains("adapter_config.json"));

    // An adapter trained on another model: Gemma 3's shapes are not SmolLM2's.
    let gemma = fetched_model("gemma-3-270m-q4_k_m.gguf");
    let e = Model::load(&gemma, &options(Some(plain)), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("does not fit"), "{e}");
    assert!(e.message().contains(&plain.display().to_string()), "{e}");
}
