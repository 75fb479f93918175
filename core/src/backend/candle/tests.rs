//! The candle backend against llama.cpp on the same weights (the tiny llama our code writes as
//! both GGUF and a Hugging Face folder), and its errors on broken folders.

use crate::backend::BackendChoice;
use crate::{ErrorKind, GenerateParams, LoadOptions, Model};
use uml_test_support::{max_abs_diff, write_tiny_hf_folder, write_tiny_llama_gguf};

fn options(backend: BackendChoice) -> LoadOptions {
    LoadOptions {
        n_ctx: Some(128),
        n_threads: Some(1),
        backend,
        ..LoadOptions::default()
    }
}

/// The tiny llama as a folder run by candle and as a GGUF run by llama.cpp (seed 0 = the folder's
/// weights).
fn both() -> (tempfile::TempDir, Model, Option<Model>) {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("tiny-hf");
    write_tiny_hf_folder(&folder).unwrap();
    let candle = Model::load(&folder, &options(BackendChoice::Auto), None).unwrap();
    let gguf = dir.path().join("tiny.gguf");
    write_tiny_llama_gguf(&gguf, 0).unwrap();
    // F32 attention, as candle computes it: an f16 KV cache (or flash attention, which uses f16
    // K and V whatever the cache type) alone moves the logits by ~1e-3.
    let llama_options = LoadOptions {
        kv_cache_type: crate::KvCacheType::F32,
        flash_attention: Some(false),
        ..options(BackendChoice::LlamaCpp)
    };
    let llama =
        cfg!(feature = "llamacpp").then(|| Model::load(&gguf, &llama_options, None).unwrap());
    (dir, candle, llama)
}

fn last_logits(model: &Model, tokens: &[i32]) -> Vec<f32> {
    let loaded = model.loaded();
    let mut session = loaded
        .new_session(crate::backend::SessionRequest::default())
        .unwrap();
    session.decode(tokens, 0).unwrap();
    session.logits().unwrap().to_vec()
}

#[test]
fn auto_picks_candle_for_a_folder_and_says_why_not_llama_cpp() {
    let (_dir, candle, _) = both();
    assert_eq!(candle.backend(), "candle");
    let skipped = candle.skipped();
    if cfg!(feature = "llamacpp") {
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert_eq!(
            (skipped[0].backend, skipped[0].stage),
            ("llama.cpp", "check")
        );
        assert!(skipped[0].reason.contains("GGUF files only"), "{skipped:?}");
    }
    assert_eq!(candle.plan().n_ctx, 128);
    assert_eq!(candle.memory().cache_type.as_str(), "f32");
}

#[cfg(feature = "llamacpp")]
#[test]
fn same_weights_same_logits_same_greedy_text_same_seeded_sample() {
    let (_dir, candle, llama) = both();
    let llama = llama.unwrap();
    for prompt in [
        "once upon a time there was a cat",
        "the dog sat on the mat and",
    ] {
        let ids = llama.tokenize(prompt, true).unwrap();
        assert_eq!(
            candle.tokenize(prompt, true).unwrap(),
            ids,
            "{prompt}: tokenization"
        );
        let max_abs =
            uml_test_support::max_abs_diff(&last_logits(&candle, &ids), &last_logits(&llama, &ids));
        assert!(max_abs < 1e-3, "{prompt}: logits differ by {max_abs}");

        let greedy = GenerateParams {
            max_tokens: 32,
            ..GenerateParams::greedy()
        };
        let (x, y) = (
            candle.complete(prompt, &greedy).unwrap(),
            llama.complete(prompt, &greedy).unwrap(),
        );
        assert_eq!(x.text, y.text, "{prompt}: greedy");
        assert_eq!(x.usage.completion_tokens, y.usage.completion_tokens);

        let seeded = GenerateParams {
            max_tokens: 32,
            temperature: 0.8,
            top_p: 0.9,
            seed: Some(42),
            ..GenerateParams::default()
        };
        let (x, y) = (
            candle.complete(prompt, &seeded).unwrap(),
            llama.complete(prompt, &seeded).unwrap(),
        );
        assert_eq!(x.text, y.text, "{prompt}: seeded sample");
    }
}

#[test]
fn candle_streams_chats_and_honours_grammars_through_the_shared_loop() {
    let (_dir, candle, _) = both();
    let mut pieces = String::new();
    let out = candle
        .generate(
            "the cat",
            &GenerateParams {
                max_tokens: 12,
                ..GenerateParams::greedy()
            },
            None,
            &mut |p| {
                pieces.push_str(p);
                true
            },
        )
        .unwrap();
    assert_eq!(pieces, out.text);
    assert!(out.usage.completion_tokens > 0);
    let grammar = GenerateParams {
        grammar: Some(r#"root ::= "yes" | "no""#.into()),
        ..GenerateParams::greedy()
    };
    let out = candle.complete("is it", &grammar).unwrap();
    assert!(out.text == "yes" || out.text == "no", "{:?}", out.text);
    let messages = vec![crate::ChatMessage::new("user", "hello")];
    let chat = candle.chat(
        &messages,
        &GenerateParams {
            max_tokens: 4,
            ..GenerateParams::greedy()
        },
        None,
        &mut |_| true,
    );
    assert!(chat.is_ok(), "{chat:?}");
}

fn broken(edit: impl FnOnce(&std::path::Path)) -> crate::Error {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("m");
    write_tiny_hf_folder(&folder).unwrap();
    edit(&folder);
    Model::load(&folder, &options(BackendChoice::Candle), None).unwrap_err()
}

fn edit_json(path: &std::path::Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn broken_folders_are_clear_errors_of_the_right_kind() {
    let e = broken(|d| std::fs::remove_file(d.join("tokenizer.json")).unwrap());
    assert_eq!(e.kind(), ErrorKind::InvalidModel, "{e}");
    assert!(e.message().contains("no tokenizer.json"), "{e}");

    let e = broken(|d| {
        edit_json(&d.join("config.json"), |v| {
            v["architectures"] = serde_json::json!(["GPT2LMHeadModel"])
        })
    });
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(
        e.message().contains("GPT2LMHeadModel") && e.message().contains("Qwen3ForCausalLM"),
        "{e}"
    );

    // Shapes that do not match the config (a wider model declared over these weights).
    let e = broken(|d| {
        edit_json(&d.join("config.json"), |v| {
            v["intermediate_size"] = serde_json::json!(256)
        })
    });
    assert_eq!(e.kind(), ErrorKind::InvalidModel, "{e}");

    // A sharded folder whose index names a shard that is not there.
    let e = broken(|d| {
        std::fs::rename(
            d.join("model.safetensors"),
            d.join("model-00001-of-00002.safetensors"),
        )
        .unwrap();
        let index = serde_json::json!({"metadata": {}, "weight_map": {
            "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
            "lm_head.weight": "model-00002-of-00002.safetensors"}});
        std::fs::write(d.join("model.safetensors.index.json"), index.to_string()).unwrap();
    });
    assert!(
        matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidModel),
        "{e}"
    );
    assert!(
        e.message().contains("model-00002-of-00002.safetensors"),
        "{e}"
    );
}

#[test]
fn a_sharded_folder_loads_and_matches_the_single_file() {
    let dir = tempfile::tempdir().unwrap();
    let single = dir.path().join("single");
    write_tiny_hf_folder(&single).unwrap();
    let sharded = dir.path().join("sharded");
    write_tiny_hf_folder(&sharded).unwrap();
    std::fs::remove_file(sharded.join("model.safetensors")).unwrap();
    let tensors = uml_test_support::tiny_llama_safetensors(0);
    let (a, b) = tensors.split_at(tensors.len() / 2);
    let mut map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        uml_test_support::write_safetensors(&sharded.join(file), part).unwrap();
        for t in part {
            map.insert(t.name.clone(), serde_json::json!(file));
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(
        sharded.join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let one = Model::load(&single, &options(BackendChoice::Candle), None).unwrap();
    let two = Model::load(&sharded, &options(BackendChoice::Candle), None).unwrap();
    let ids = one.tokenize("the cat sat", true).unwrap();
    assert_eq!(last_logits(&one, &ids), last_logits(&two, &ids));
}

/// The tiny folder with its weights as `pytorch_model.bin` instead of safetensors.
fn pytorch_folder(
    parent: &std::path::Path,
    extra_global: Option<(&str, &str)>,
) -> std::path::PathBuf {
    let folder = parent.join("pt");
    write_tiny_hf_folder(&folder).unwrap();
    std::fs::remove_file(folder.join("model.safetensors")).unwrap();
    uml_test_support::write_pytorch_checkpoint(
        &folder.join("pytorch_model.bin"),
        &uml_test_support::tiny_llama_safetensors(0),
        extra_global,
    )
    .unwrap();
    folder
}

#[test]
fn a_pytorch_checkpoint_loads_and_matches_the_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("st");
    write_tiny_hf_folder(&st).unwrap();
    let pt = pytorch_folder(dir.path(), None);
    let a = Model::load(&st, &options(BackendChoice::Candle), None).unwrap();
    let b = Model::load(&pt, &options(BackendChoice::Auto), None).unwrap();
    assert_eq!(b.backend(), "candle");
    let ids = a.tokenize("the cat sat", true).unwrap();
    assert_eq!(last_logits(&a, &ids), last_logits(&b, &ids));
    // The checkpoint file itself names the folder's model too.
    let c = Model::load(
        pt.join("pytorch_model.bin"),
        &options(BackendChoice::Candle),
        None,
    )
    .unwrap();
    assert_eq!(last_logits(&a, &ids), last_logits(&c, &ids));
}

#[test]
fn a_pickle_naming_any_other_global_is_refused() {
    for (module, name) in [
        ("os", "system"),
        ("builtins", "eval"),
        ("subprocess", "check_output"),
        ("torch", "load"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let pt = pytorch_folder(dir.path(), Some((module, name)));
        let e = Model::load(&pt, &options(BackendChoice::Candle), None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidModel, "{e}");
        assert!(e.message().contains(&format!("{module}.{name}")), "{e}");
        assert!(e.message().contains("safetensors"), "{e}");
    }
}

#[test]
fn a_gguf_runs_in_candle_when_asked_with_the_folders_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny.gguf");
    write_tiny_llama_gguf(&gguf, 0).unwrap();
    let folder = dir.path().join("tiny-hf");
    write_tiny_hf_folder(&folder).unwrap();
    let quantized = Model::load(&gguf, &options(BackendChoice::Candle), None).unwrap();
    assert_eq!(quantized.backend(), "candle");
    let f32_folder = Model::load(&folder, &options(BackendChoice::Candle), None).unwrap();
    let ids = f32_folder.tokenize("the cat sat", true).unwrap();
    assert_eq!(quantized.tokenize("the cat sat", true).unwrap(), ids);
    let (a, b) = (
        last_logits(&quantized, &ids),
        last_logits(&f32_folder, &ids),
    );
    let max_abs = uml_test_support::max_abs_diff(&a, &b);
    assert!(max_abs < 1e-4, "max |GGUF - folder| = {max_abs}");
    let text = quantized
        .complete(
            "the cat",
            &GenerateParams {
                max_tokens: 8,
                ..GenerateParams::greedy()
            },
        )
        .unwrap();
    assert!(text.usage.completion_tokens > 0);
    // Past the rotary tables of candle's quantized llama: a clear error, not a crash.
    let big = LoadOptions {
        n_ctx: Some(8192),
        ..options(BackendChoice::Candle)
    };
    let e = Model::load(&gguf, &big, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("4096"), "{e}");
}

#[test]
fn a_folder_loads_in_f16_and_bf16_at_half_the_weight_memory() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("tiny-hf");
    write_tiny_hf_folder(&folder).unwrap();
    let load = |dtype| {
        let opts = LoadOptions {
            dtype,
            ..options(BackendChoice::Candle)
        };
        Model::load(&folder, &opts, None).unwrap()
    };
    let full = load(None);
    let ids = full.tokenize("the cat sat", true).unwrap();
    let reference = last_logits(&full, &ids);
    for (dtype, bound) in [
        (crate::options::WeightDtype::F16, 1e-2f32),
        (crate::options::WeightDtype::BF16, 5e-2),
    ] {
        let half = load(Some(dtype));
        assert_eq!(
            half.memory().weights_bytes * 2,
            full.memory().weights_bytes,
            "{dtype:?}"
        );
        let diff = uml_test_support::max_abs_diff(&last_logits(&half, &ids), &reference);
        assert!(diff < bound, "{dtype:?}: max |{dtype:?} - f32| = {diff}");
        let out = half
            .complete(
                "the cat",
                &GenerateParams {
                    max_tokens: 4,
                    ..GenerateParams::greedy()
                },
            )
            .unwrap();
        assert!(out.usage.completion_tokens > 0);
    }
    // A GGUF keeps its stored types, in either backend.
    let gguf = dir.path().join("tiny.gguf");
    write_tiny_llama_gguf(&gguf, 0).unwrap();
    for backend in [BackendChoice::Candle, BackendChoice::LlamaCpp] {
        if backend == BackendChoice::LlamaCpp && !cfg!(feature = "llamacpp") {
            continue;
        }
        let opts = LoadOptions {
            dtype: Some(crate::options::WeightDtype::BF16),
            ..options(backend)
        };
        let e = Model::load(&gguf, &opts, None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(
            e.message().contains("dtype") && e.message().contains("--type"),
            "{e}"
        );
    }
}

/// The tiny llama's weights declared as each other causal LM candle runs. Mistral is Llama
/// with a window, Qwen2 is Llama with (here zero) Q/K/V biases, and Phi-3 is Llama with Q/K/V
/// and gate/up fused into one matrix each: all must give the folder's Llama logits exactly.
/// Qwen3 normalises Q and K per head, so it only has to load and generate.
#[test]
fn every_supported_causal_lm_runs_the_weights_it_shares_with_llama() {
    use uml_test_support::{tiny_llama_safetensors, write_safetensors, SafeTensor};
    let dir = tempfile::tempdir().unwrap();
    let llama_dir = dir.path().join("llama");
    write_tiny_hf_folder(&llama_dir).unwrap();
    let llama = Model::load(&llama_dir, &options(BackendChoice::Candle), None).unwrap();
    let ids = llama.tokenize("the cat sat", true).unwrap();
    let expected = last_logits(&llama, &ids);

    let f32_tensor = |name: String, shape: Vec<u64>, values: Vec<f32>| SafeTensor {
        name,
        dtype: "F32",
        shape,
        data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    };
    let hd = uml_test_support::TINY_HEAD_DIM;
    let (q_rows, kv_rows) = (
        uml_test_support::TINY_N_HEAD * hd,
        uml_test_support::TINY_N_HEAD_KV * hd,
    );
    let variant = |name: &str, config: serde_json::Value, tensors: Vec<SafeTensor>| -> Model {
        let folder = dir.path().join(name);
        write_tiny_hf_folder(&folder).unwrap();
        edit_json(&folder.join("config.json"), |v| {
            for (k, x) in config.as_object().unwrap() {
                v[k] = x.clone();
            }
        });
        write_safetensors(&folder.join("model.safetensors"), &tensors).unwrap();
        let m = Model::load(&folder, &options(BackendChoice::Candle), None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.backend(), "candle", "{name}");
        m
    };

    let mistral = variant(
        "mistral",
        serde_json::json!({"architectures": ["MistralForCausalLM"], "model_type": "mistral",
                           "sliding_window": 4096}),
        tiny_llama_safetensors(0),
    );
    assert_eq!(last_logits(&mistral, &ids), expected, "Mistral");

    let mut with_bias = tiny_llama_safetensors(0);
    for layer in 0..uml_test_support::TINY_N_LAYER {
        for (proj, rows) in [("q_proj", q_rows), ("k_proj", kv_rows), ("v_proj", kv_rows)] {
            with_bias.push(f32_tensor(
                format!("model.layers.{layer}.self_attn.{proj}.bias"),
                vec![rows],
                vec![0.0; rows as usize],
            ));
        }
    }
    let qwen2 = variant(
        "qwen2",
        serde_json::json!({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                           "sliding_window": null, "max_window_layers": 2,
                           "use_sliding_window": false}),
        with_bias,
    );
    assert_eq!(last_logits(&qwen2, &ids), expected, "Qwen2");

    // Phi-3: [q; k; v] and [gate; up] stacked by rows, which in row-major bytes is appending.
    let mut by_name: std::collections::HashMap<String, SafeTensor> = tiny_llama_safetensors(0)
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let mut fused = Vec::new();
    for layer in 0..uml_test_support::TINY_N_LAYER {
        let mut take = |part: &str| {
            by_name
                .remove(&format!("model.layers.{layer}.{part}"))
                .unwrap()
        };
        let (q, k, v) = (
            take("self_attn.q_proj.weight"),
            take("self_attn.k_proj.weight"),
            take("self_attn.v_proj.weight"),
        );
        let (gate, up) = (take("mlp.gate_proj.weight"), take("mlp.up_proj.weight"));
        fused.push(SafeTensor {
            name: format!("model.layers.{layer}.self_attn.qkv_proj.weight"),
            dtype: "F32",
            shape: vec![q.shape[0] + k.shape[0] + v.shape[0], q.shape[1]],
            data: [q.data, k.data, v.data].concat(),
        });
        fused.push(SafeTensor {
            name: format!("model.layers.{layer}.mlp.gate_up_proj.weight"),
            dtype: "F32",
            shape: vec![gate.shape[0] + up.shape[0], gate.shape[1]],
            data: [gate.data, up.data].concat(),
        });
    }
    fused.extend(by_name.into_values());
    let phi3 = variant(
        "phi3",
        serde_json::json!({"architectures": ["Phi3ForCausalLM"], "model_type": "phi3",
                           "rope_scaling": null}),
        fused,
    );
    let phi3_logits = last_logits(&phi3, &ids);
    let max_abs = uml_test_support::max_abs_diff(&phi3_logits, &expected);
    assert!(max_abs < 1e-5, "Phi-3: max |phi3 - llama| = {max_abs}");

    let mut with_norms = tiny_llama_safetensors(0);
    for layer in 0..uml_test_support::TINY_N_LAYER {
        for norm in ["q_norm", "k_norm"] {
            with_norms.push(f32_tensor(
                format!("model.layers.{layer}.self_attn.{norm}.weight"),
                vec![hd],
                vec![1.0; hd as usize],
            ));
        }
    }
    let qwen3 = variant(
        "qwen3",
        serde_json::json!({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
                           "head_dim": hd, "attention_bias": false, "sliding_window": null,
                           "max_window_layers": 2, "use_sliding_window": false}),
        with_norms,
    );
    let out = qwen3
        .complete(
            "the cat",
            &GenerateParams {
                max_tokens: 4,
                ..GenerateParams::greedy()
            },
        )
        .unwrap();
    assert!(out.usage.completion_tokens > 0);
    assert_ne!(
        last_logits(&qwen3, &ids),
        expected,
        "Qwen3 normalises Q and K"
    );
}

/// candle parks a chat session's cache between turns: the next turn's session starts on it
/// when the prompt continues it, with the logits of decoding everything afresh; a prompt that
/// does not continue it, or a session that ended, starts empty.
#[test]
fn a_chat_sessions_cache_is_parked_between_turns() {
    use crate::backend::SessionRequest;
    let (_dir, candle, _) = both();
    let loaded = candle.loaded();
    let turn = SessionRequest {
        alone: false,
        conversation: Some(7),
        adapter: None,
        own_draft: None,
    };
    let ids = candle.tokenize("the cat sat on the mat", true).unwrap();
    {
        let mut first = loaded.new_session(turn).unwrap();
        assert_eq!(first.reuse_prefix(&ids[..4]).unwrap(), 0);
        first.decode(&ids[..4], 0).unwrap();
    }
    {
        let mut second = loaded.new_session(turn).unwrap();
        assert_eq!(second.reuse_prefix(&ids).unwrap(), 4);
        second.decode(&ids[4..], 4).unwrap();
        let diff = max_abs_diff(second.logits().unwrap(), &last_logits(&candle, &ids));
        assert!(diff < 1e-5, "{diff}");
    }
    // A stranger between the turns starts empty and leaves the parked cache alone.
    let mut stranger = loaded.new_session(SessionRequest::default()).unwrap();
    assert_eq!(stranger.reuse_prefix(&ids).unwrap(), 0);
    drop(stranger);
    let other = candle.tokenize("a dog ran", true).unwrap();
    {
        let mut third = loaded.new_session(turn).unwrap();
        assert_eq!(third.reuse_prefix(&other).unwrap(), 0);
        third.decode(&other, 0).unwrap();
    }
    loaded.end_conversation(7);
    let mut after = loaded.new_session(turn).unwrap();
    assert_eq!(after.reuse_prefix(&other).unwrap(), 0);
}
