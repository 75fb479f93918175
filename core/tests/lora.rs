//! LoRA adapters on the real SmolLM2 with the test adapters (`write_lora_adapter`, the seeds of
//! tests/fixtures/smollm2_lora_greedy.json): greedy text equal to llama.cpp's own
//! `llama-completion --lora-scaled` (up to the first near-tie), scale 0 exactly the base
//! model, a per-generation choice of adapter on one loaded model, generations with different
//! adapters at once each getting their own text, several adapters loaded together running
//! together (llama.cpp's text with both), and adapters that do not fit refused with the reason.
#![cfg(feature = "llamacpp")]

use serde_json::Value;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uml_core::options::{LoadOptions, LoraAdapter};
use uml_core::sampling::LoraScale;
use uml_core::{ErrorKind, GenerateParams, Model};
use uml_test_support::{fetched_model, repo_root, write_lora_adapter};

const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn fixture() -> Value {
    let path = repo_root().join("tests/fixtures/smollm2_lora_greedy.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The fixture's adapters `a` and `b` written into `dir`, checked to be the recorded bytes.
fn adapters(dir: &Path) -> (PathBuf, PathBuf) {
    let fixture = fixture();
    let write = |name: &str| {
        let spec = &fixture["adapters"][name];
        let path = dir.join(format!("{name}.gguf"));
        write_lora_adapter(
            &fetched_model(SMOLLM2),
            &path,
            spec["seed"].as_u64().unwrap(),
            spec["rank"].as_u64().unwrap(),
            spec["magnitude"].as_f64().unwrap() as f32,
            None,
        )
        .unwrap();
        let sha = sha2::Sha256::digest(std::fs::read(&path).unwrap());
        let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex, spec["sha256"],
            "adapter {name} is not the recorded one"
        );
        path
    };
    (write("a"), write("b"))
}

/// Two adapters whose effect on the logits is large (random weights 4x the fixture's):
/// decoded with the wrong one, a generation parts from its own greedy text at a clear margin.
fn strong(dir: &Path) -> (PathBuf, PathBuf) {
    let write = |name: &str, seed: u64| {
        let path = dir.join(format!("{name}.gguf"));
        write_lora_adapter(&fetched_model(SMOLLM2), &path, seed, 8, 0.2, None).unwrap();
        path
    };
    (write("a", 3), write("b", 4))
}

fn base_options() -> LoadOptions {
    LoadOptions {
        n_ctx: Some(256),
        n_threads: Some(2),
        ..LoadOptions::default()
    }
}

/// Adapter `a` at `scale_a` and `b` (off unless chosen).
fn with_adapters(a: &Path, b: &Path, scale_a: f32) -> LoadOptions {
    LoadOptions {
        lora: vec![
            LoraAdapter {
                scale: scale_a,
                ..LoraAdapter::new(a)
            },
            LoraAdapter {
                scale: 0.0,
                ..LoraAdapter::new(b)
            },
        ],
        ..base_options()
    }
}

/// SmolLM2 with adapter `a` (at `scale_a`) and `b` (off unless chosen).
fn load(a: &Path, b: &Path, scale_a: f32) -> Arc<Model> {
    Arc::new(Model::load(fetched_model(SMOLLM2), &with_adapters(a, b, scale_a), None).unwrap())
}

/// The greedy text of a fresh model loaded with `options`: its first generation.
fn first_generation(options: &LoadOptions, prompt: &str, lora: Option<Vec<LoraScale>>) -> String {
    let model = Model::load(fetched_model(SMOLLM2), options, None).unwrap();
    generate(&model, prompt, &greedy(lora))
}

fn choose(adapter: &str, scale: f32) -> Option<Vec<LoraScale>> {
    Some(vec![LoraScale {
        name: adapter.into(),
        scale,
    }])
}

fn greedy(lora: Option<Vec<LoraScale>>) -> GenerateParams {
    GenerateParams {
        max_tokens: 32,
        lora,
        ..GenerateParams::greedy()
    }
}

fn generate(model: &Model, prompt: &str, params: &GenerateParams) -> String {
    model
        .generate(prompt, params, None, &mut |_| true)
        .unwrap()
        .text
}

/// Rounding that differs between CPUs (kernel paths) moves a logit by well under this: the
/// fixtures' rule (tests/fixtures/README.md).
fn across_cpus() -> f32 {
    fixture()["margin_threshold"].as_f64().unwrap() as f32
}

/// Rounding that differs between a decode alone and one batched with other sequences on one
/// CPU (other kernels for other batch shapes) moves SmolLM2 Q4_1's logits by up to about 0.12
/// (measured); a strong adapter's effect (`strong`), by far more.
const BATCHED: f32 = 0.5;

/// Check that `text` is greedy decoding with `lora` on this CPU: token for token as its trace
/// (decoded alone), except that the two may part at a near-tie (a top-two margin under
/// `threshold`, which other rounding may break the other way), and from there on differ.
/// Returns how many tokens agreed.
fn follows_greedy(
    model: &Model,
    prompt: &str,
    lora: Option<&[LoraScale]>,
    text: &str,
    threshold: f32,
) -> usize {
    let tokens = model.tokenize(prompt, true).unwrap();
    let steps = uml_core::trace::greedy_trace_lora(model, &tokens, 32, lora).unwrap();
    let mut rest = text;
    for (i, step) in steps.iter().enumerate() {
        if rest.is_empty() {
            return i;
        }
        match rest.strip_prefix(step.text.as_str()) {
            Some(after) if step.complete_utf8 => rest = after,
            _ => {
                assert!(
                    step.margin < threshold,
                    "{prompt:?} with {lora:?}: {text:?} parts from greedy decoding at token {i} \
                     ({:?}, margin {}), which is no near-tie",
                    step.text,
                    step.margin
                );
                return i;
            }
        }
    }
    assert!(
        rest.is_empty(),
        "{prompt:?}: {text:?} goes on past greedy decoding's {rest:?}"
    );
    steps.len()
}

#[test]
fn adapters_give_llama_cpps_greedy_text_and_scale_0_the_base_models() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = adapters(dir.path());
    let model = load(&a, &b, 1.0);
    let with = with_adapters(&a, &b, 1.0);
    for case in fixture()["cases"].as_array().unwrap() {
        let (adapter, scale) = (
            case["adapter"].as_str().unwrap(),
            case["scale"].as_f64().unwrap(),
        );
        let prompt = case["prompt"].as_str().unwrap();
        let lora = choose(adapter, scale as f32);
        let reference = case["text"].as_str().unwrap();
        let text = generate(&model, prompt, &greedy(lora.clone()));
        // llama.cpp's text and uml's are both greedy decoding with the adapter (here, where
        // the fixture was recorded, they are equal outright).
        let agreed = follows_greedy(&model, prompt, lora.as_deref(), reference, across_cpus());
        assert!(
            agreed >= 3,
            "{adapter} at {scale} on {prompt:?}: {agreed} tokens agree"
        );
        follows_greedy(&model, prompt, lora.as_deref(), &text, BATCHED);
        // Scale 0 (or none on) is exactly the base model, token for token. Each text compared
        // exactly is a fresh model's first generation: a later one may reuse cached prompt
        // tokens, evaluated in other batches, which round differently in the last bits.
        let base_text = first_generation(&base_options(), prompt, None);
        assert_eq!(
            first_generation(&with, prompt, choose(adapter, 0.0)),
            base_text
        );
        assert_eq!(first_generation(&with, prompt, Some(Vec::new())), base_text);
        assert_ne!(base_text, text, "the adapter changed nothing on {prompt:?}");
        // Adapter `a` at scale 1 is also what the model runs by default.
        if (adapter, scale) == ("a", 1.0) {
            assert_eq!(
                first_generation(&with, prompt, None),
                first_generation(&with, prompt, lora.clone())
            );
        }
    }
    // A model loaded with `a` at scale 0 runs the base model unless a generation asks.
    let prompt = "The capital of France is";
    assert_eq!(
        first_generation(&with_adapters(&a, &b, 0.0), prompt, None),
        first_generation(&base_options(), prompt, None)
    );
}

/// Adapters loaded together at nonzero scales run together, as llama.cpp's `--lora-scaled A
/// --lora-scaled B` runs them (uml merges them into one adapter at load): llama.cpp's greedy
/// text, by default and when a generation names them at those scales; at other scales two at
/// once are refused.
#[test]
fn adapters_loaded_together_give_llama_cpps_text_with_both() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = adapters(dir.path());
    for case in fixture()["combined_cases"].as_array().unwrap() {
        let scale = |name: &str| case["adapters"][name].as_f64().unwrap() as f32;
        let (scale_a, scale_b) = (scale("a"), scale("b"));
        let options = LoadOptions {
            lora: vec![
                LoraAdapter {
                    scale: scale_a,
                    ..LoraAdapter::new(&a)
                },
                LoraAdapter {
                    scale: scale_b,
                    ..LoraAdapter::new(&b)
                },
            ],
            ..base_options()
        };
        let model = Model::load(fetched_model(SMOLLM2), &options, None).unwrap();
        let prompt = case["prompt"].as_str().unwrap();
        let reference = case["text"].as_str().unwrap();
        let text = generate(&model, prompt, &greedy(None));
        let agreed = follows_greedy(&model, prompt, None, reference, across_cpus());
        assert!(agreed >= 3, "a+b on {prompt:?}: {agreed} tokens agree");
        follows_greedy(&model, prompt, None, &text, BATCHED);
        let both = vec![
            LoraScale {
                name: "b".into(),
                scale: scale_b,
            },
            LoraScale {
                name: "a".into(),
                scale: scale_a,
            },
        ];
        let named = generate(&model, prompt, &greedy(Some(both.clone())));
        follows_greedy(&model, prompt, None, &named, BATCHED);
        let mut other = both;
        other[0].scale *= 2.0;
        let err = model
            .generate(prompt, &greedy(Some(other)), None, &mut |_| true)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        assert!(err.message().contains("loaded with"), "{err}");
    }
}

/// The merged adapter applies each adapter at its own scale: an adapter at 0.75 with a copy of
/// itself at 0.25 gives the logits of that adapter at 1 (up to rounding), far from those at
/// 0.75. The fixture's adapters: strong ones make SmolLM2 so unstable that rounding in the
/// last bit moves its logits by a percent.
#[test]
fn adapters_run_together_each_at_its_scale() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = adapters(dir.path());
    let copy = dir.path().join("copy.gguf");
    std::fs::copy(&a, &copy).unwrap();
    let pair = LoadOptions {
        lora: vec![
            LoraAdapter {
                scale: 0.75,
                ..LoraAdapter::new(&a)
            },
            LoraAdapter {
                scale: 0.25,
                ..LoraAdapter::new(&copy)
            },
        ],
        ..base_options()
    };
    let trace = |options: &LoadOptions| {
        let model = Model::load(fetched_model(SMOLLM2), options, None).unwrap();
        let tokens = model
            .tokenize("Once upon a time, there was a", true)
            .unwrap();
        uml_core::trace::greedy_trace(&model, &tokens, 8).unwrap()
    };
    let together = trace(&pair);
    let single = trace(&with_adapters(&a, &b, 1.0));
    let part = trace(&with_adapters(&a, &b, 0.75));
    eprintln!(
        "first logit: together {}, at 1 {}, at 0.75 {}",
        together[0].logit, single[0].logit, part[0].logit
    );
    for (x, y) in together.iter().zip(&single) {
        assert_eq!(x.token, y.token, "{together:?}\n{single:?}");
        assert!((x.logit - y.logit).abs() < 1e-3, "{x:?} {y:?}");
    }
    assert!((part[0].logit - single[0].logit).abs() > 0.1);
}

#[test]
fn generations_with_different_adapters_at_once_each_get_their_own_text() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = strong(dir.path());
    let model = load(&a, &b, 1.0);
    let prompt = "Once upon a time, there was a";
    let choices = [
        choose("a", 1.0),
        choose("b", 1.0),
        Some(Vec::new()),
        choose("a", 1.0),
    ];
    let alone: Vec<String> = choices
        .iter()
        .map(|c| generate(&model, prompt, &greedy(c.clone())))
        .collect();
    assert_ne!(alone[0], alone[1]);
    assert_ne!(alone[0], alone[2]);
    for _ in 0..2 {
        let threads: Vec<_> = choices
            .iter()
            .cloned()
            .map(|lora| {
                let model = model.clone();
                std::thread::spawn(move || generate(&model, prompt, &greedy(lora)))
            })
            .collect();
        for (i, t) in threads.into_iter().enumerate() {
            let text = t.join().unwrap();
            // Batched, the last bits may round differently than alone: equal up to a near-tie.
            follows_greedy(&model, prompt, choices[i].as_deref(), &text, BATCHED);
        }
    }
    // Those generations ran in the shared context's slots, batched.
    let stats = model.batch_stats().unwrap();
    assert!(stats.sequence_steps > stats.decodes, "{stats:?}");
}

#[test]
fn adapters_that_do_not_fit_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = adapters(dir.path());
    let smollm2 = fetched_model(SMOLLM2);
    let with = |adapter: &Path| {
        let options = LoadOptions {
            n_ctx: Some(256),
            lora: vec![LoraAdapter::new(adapter)],
            ..LoadOptions::default()
        };
        Model::load(&smollm2, &options, None).unwrap_err()
    };
    // For another architecture.
    let gemma_arch = dir.path().join("gemma-arch.gguf");
    write_lora_adapter(&smollm2, &gemma_arch, 1, 8, 0.05, Some("gemma3")).unwrap();
    let e = with(&gemma_arch);
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("gemma3 architecture"), "{e}");
    // For another model of the same architecture: Gemma 3's shapes written as a llama's.
    let gemma = fetched_model("gemma-3-270m-q4_k_m.gguf");
    let other_shapes = dir.path().join("other-shapes.gguf");
    write_lora_adapter(&gemma, &other_shapes, 1, 8, 0.05, Some("llama")).unwrap();
    let e = with(&other_shapes);
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("lora_a must be [576, rank]"), "{e}");
    // A model, not an adapter; a missing file.
    let e = with(&smollm2);
    assert!(e.message().contains("not an adapter file"), "{e}");
    let e = with(&dir.path().join("missing.gguf"));
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    // Per generation: an unknown name, two adapters on at once.
    let model = load(&a, &b, 1.0);
    let e = model
        .generate("Hi", &greedy(choose("c", 1.0)), None, &mut |_| true)
        .unwrap_err();
    assert!(e.message().contains("loaded: a, b"), "{e}");
    let both = Some(vec![
        LoraScale {
            name: "a".into(),
            scale: 1.0,
        },
        LoraScale {
            name: "b".into(),
            scale: 0.5,
        },
    ]);
    let e = model
        .generate("Hi", &greedy(both), None, &mut |_| true)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    // Two adapters with one name.
    let options = LoadOptions {
        lora: vec![
            LoraAdapter::new(&a),
            LoraAdapter::new(dir.path().join("x/a.gguf")),
        ],
        ..LoadOptions::default()
    };
    let e = Model::load(&smollm2, &options, None).unwrap_err();
    assert!(e.message().contains("given twice"), "{e}");
}
