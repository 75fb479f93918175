//! Backend selection with fallback, on a tiny real GGUF run by the real llama.cpp backend, behind
//! stand-in backends that fail at each stage the way a real one can.

use super::*;
use crate::backend::{BackendChoice, LoadedModel};
use crate::estimate::{Beside, EstimateOptions};
use crate::options::LoraAdapter;
use crate::speculative::DraftFile;

/// A backend that passes or fails `check` and always fails `load` (as one out of memory, or
/// missing a kernel for this CPU, would).
struct Failing {
    check_ok: bool,
    kind: ErrorKind,
}

impl Backend for Failing {
    fn name(&self) -> &'static str {
        "failing"
    }
    fn choice(&self) -> BackendChoice {
        BackendChoice::Auto
    }
    fn check(&self, _info: &ModelInfo) -> Result<()> {
        if self.check_ok {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Unsupported,
                "failing: this format is not mine",
            ))
        }
    }
    fn estimate(&self, info: &ModelInfo, opts: &EstimateOptions) -> Result<MemoryEstimate> {
        estimate::estimate(info, opts)
    }
    fn load(
        &self,
        _info: &ModelInfo,
        _plan: &LoadPlan,
        _progress: &mut dyn FnMut(f32) -> bool,
    ) -> Result<Box<dyn LoadedModel>> {
        Err(Error::new(
            self.kind,
            "failing: could not allocate the weights",
        ))
    }
}

fn tiny() -> (tempfile::TempDir, ModelInfo) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    uml_test_support::write_tiny_llama_gguf(&path, 1).unwrap();
    let info = inspect::inspect(&path).unwrap();
    (dir, info)
}

fn load(candidates: Vec<&dyn Backend>, info: ModelInfo) -> Result<Model> {
    let options = LoadOptions {
        n_ctx: Some(64),
        ..LoadOptions::default()
    };
    Model::load_with(
        candidates,
        info,
        &options,
        &hardware::detect(),
        &mut |_, _| true,
        &Beside::default(),
    )
}

#[cfg(feature = "llamacpp")]
#[test]
fn a_failed_load_falls_through_to_the_next_backend_and_the_reason_is_kept() {
    let (_dir, info) = tiny();
    let first = Failing {
        check_ok: true,
        kind: ErrorKind::OutOfMemory,
    };
    let llama = backend::registry()[0];
    let model = load(vec![&first, llama], info).unwrap();
    assert_eq!(model.backend(), "llama.cpp");
    assert_eq!(
        model.skipped(),
        [Skipped {
            backend: "failing",
            stage: "load",
            kind: ErrorKind::OutOfMemory,
            reason: "failing: could not allocate the weights".into(),
        }]
    );
    let json = serde_json::to_value(model.describe()).unwrap();
    assert_eq!(json["backend"], "llama.cpp");
    assert_eq!(json["skipped_backends"][0]["stage"], "load");
    assert_eq!(json["skipped_backends"][0]["kind"], "out_of_memory");
    // The model that loaded works.
    assert!(model
        .complete(
            "a",
            &GenerateParams {
                max_tokens: 2,
                ..GenerateParams::greedy()
            }
        )
        .is_ok());
}

#[cfg(feature = "llamacpp")]
#[test]
fn a_failed_check_is_recorded_too() {
    let (_dir, info) = tiny();
    let first = Failing {
        check_ok: false,
        kind: ErrorKind::Backend,
    };
    let model = load(vec![&first, backend::registry()[0]], info).unwrap();
    assert_eq!(model.skipped().len(), 1);
    assert_eq!(model.skipped()[0].stage, "check");
    assert_eq!(model.skipped()[0].kind, ErrorKind::Unsupported);
}

#[test]
fn when_every_backend_fails_the_error_names_each_reason() {
    let (_dir, info) = tiny();
    let a = Failing {
        check_ok: true,
        kind: ErrorKind::OutOfMemory,
    };
    let b = Failing {
        check_ok: false,
        kind: ErrorKind::OutOfMemory,
    };
    // One got past its check: its reason is the error, as it was (the other could not even
    // take the format).
    let err = load(vec![&a, &b], info.clone()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory);
    assert_eq!(err.message(), "failing: could not allocate the weights");
    // None did: every reason, summarised.
    let err = load(vec![&b, &b], info.clone()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(
        err.message()
            .contains("failing (check): failing: this format is not mine"),
        "{err}"
    );
    // Different kinds past the check: the preferred backend's kind, with every backend, stage
    // and reason.
    let c = Failing {
        check_ok: true,
        kind: ErrorKind::Backend,
    };
    let err = load(vec![&a, &c], info.clone()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory);
    let err = load(vec![&c, &a], info.clone()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend);
    assert!(
        err.message()
            .contains("failing (load): failing: could not allocate the weights"),
        "{err}"
    );
    // Agreeing kinds are kept; a single candidate's error is passed on as it was.
    let err = load(vec![&a, &a], info.clone()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory);
    let err = load(vec![&a], info.clone()).unwrap_err();
    assert_eq!(
        (err.kind(), err.message()),
        (
            ErrorKind::OutOfMemory,
            "failing: could not allocate the weights"
        )
    );
    let err = load(vec![], info).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(
        err.message().contains("no auto backend") || err.message().contains("backend"),
        "{err}"
    );
}

#[test]
fn backend_option_parses_and_names_the_choices() {
    let o = LoadOptions::from_json(r#"{"backend": "llamacpp"}"#).unwrap();
    assert_eq!(o.backend, BackendChoice::LlamaCpp);
    assert_eq!(
        LoadOptions::from_json("{}").unwrap().backend,
        BackendChoice::Auto
    );
    let e = LoadOptions::from_json(r#"{"backend": "tensorrt"}"#).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(
        e.message().contains("backend") && e.message().contains("tensorrt"),
        "{e}"
    );
    assert_eq!(backend::candidates(BackendChoice::LlamaCpp).len(), 1);
    assert_eq!(
        backend::candidates(BackendChoice::Auto).len(),
        backend::registry().len()
    );
}

/// A header that says the context is 0 tokens is a clear error naming the fix; n_ctx given
/// by the caller overrides it.
#[cfg(feature = "llamacpp")]
#[test]
fn a_model_whose_header_says_context_0_needs_n_ctx() {
    let (_dir, mut info) = tiny();
    info.context_length = Some(0);
    let llama = backend::registry()[0];
    let e = Model::load_with(
        vec![llama],
        info.clone(),
        &LoadOptions::default(),
        &hardware::detect(),
        &mut |_, _| true,
        &Beside::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidModel, "{e}");
    assert!(e.message().contains("context length is 0"), "{e}");
    assert!(e.message().contains("n_ctx load option"), "{e}");
    load(vec![llama], info).unwrap();
}

/// A prompt too long for the context by its bytes alone is refused before tokenizing.
#[cfg(feature = "llamacpp")]
#[test]
fn a_prompt_longer_than_any_context_is_refused_before_tokenizing() {
    let (_dir, info) = tiny();
    let m = load(vec![backend::registry()[0]], info).unwrap();
    let prompt = "a".repeat(64 * 1024 + 1);
    let params = GenerateParams::greedy();
    for e in [
        m.complete(&prompt, &params).unwrap_err(),
        m.chat(
            &[ChatMessage::user(prompt.clone())],
            &params,
            None,
            &mut |_| true,
        )
        .unwrap_err(),
        m.embed(&[&prompt], None).unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::ContextOverflow, "{e}");
        assert!(e.message().contains("a context of 64 tokens"), "{e}");
    }
}

/// With `max_parallel = 1` a second generation waits for the first; cancelled while waiting,
/// it returns at once with nothing generated. The plan reports the bound.
#[cfg(feature = "llamacpp")]
#[test]
fn generations_past_max_parallel_wait_in_line_and_can_leave_it() {
    let (_dir, info) = tiny();
    let options = LoadOptions {
        n_ctx: Some(64),
        max_parallel: Some(1),
        ..LoadOptions::default()
    };
    let m = Model::load_with(
        vec![backend::registry()[0]],
        info,
        &options,
        &hardware::detect(),
        &mut |_, _| true,
        &Beside::default(),
    )
    .unwrap();
    assert_eq!(m.plan().max_parallel, 1);
    // Another caller holds the only place: this generation waits, and leaves when cancelled.
    let held = m.admission.enter(None).unwrap();
    let cancel = CancelToken::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            cancel.cancel();
        });
        let waited = m
            .generate("b", &GenerateParams::greedy(), Some(&cancel), &mut |_| true)
            .unwrap();
        assert_eq!(waited.finish_reason, crate::FinishReason::Cancelled);
        assert_eq!(waited.usage.completion_tokens, 0);
    });
    let e = m.embed(&["b"], Some(&cancel)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    drop(held);
    // The place is free again.
    let params = GenerateParams {
        max_tokens: 2,
        ..GenerateParams::greedy()
    };
    assert_eq!(m.complete("c", &params).unwrap().usage.completion_tokens, 2);
}

/// A model loaded with a draft is planned with the draft's memory beside it: with room for
/// the model alone but not the pair, the load is refused before anything loads, naming the
/// draft; the slots sized from memory leave room for the draft's; and the model still reports
/// its own share.
#[cfg(feature = "llamacpp")]
#[test]
fn a_model_and_its_draft_are_planned_to_fit_together() {
    let (dir, info) = tiny();
    let draft_path = dir.path().join("draft.gguf");
    uml_test_support::write_tiny_llama_gguf(&draft_path, 2).unwrap();
    let draft = DraftFile::inspect(&draft_path).unwrap();
    let with_draft = Beside {
        draft: Some(DraftFile::inspect(&draft_path).unwrap()),
        ..Beside::default()
    };
    let backend = backend::registry()[0];
    let options = LoadOptions {
        n_ctx: Some(128),
        max_parallel: Some(2),
        ..LoadOptions::default()
    };
    let mut hw = hardware::detect();
    hw.gpus.clear();
    let (_, alone) = plan_load(backend, &info, &options, &hw, &Beside::default()).unwrap();
    let (_, own) = plan_load(backend, &info, &options, &hw, &with_draft).unwrap();
    assert_eq!(own, alone, "the model's own share is what it reports");
    let draft_est = draft.estimate(&EstimateOptions::of(&alone, None)).unwrap();
    let pair = alone.host_bytes + draft_est.host_bytes;

    hw.available_memory_bytes = pair - 1;
    assert!(plan_load(backend, &info, &options, &hw, &Beside::default()).is_ok());
    let err = plan_load(backend, &info, &options, &hw, &with_draft).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");
    assert!(err.message().contains("draft model"), "{err}");
    assert!(err.message().contains("draft.gguf"), "{err}");

    // Slots from memory: room for 4 of the model's, but the draft's slots take room too.
    let auto = LoadOptions {
        max_parallel: None,
        ..options
    };
    let per_slot = alone.kv_cache_bytes / 2 + alone.compute_bytes;
    hw.available_memory_bytes = pair + 2 * 3 * per_slot;
    let (solo, _) = plan_load(backend, &info, &auto, &hw, &Beside::default()).unwrap();
    let (paired, _) = plan_load(backend, &info, &auto, &hw, &with_draft).unwrap();
    assert!(
        paired.max_parallel < solo.max_parallel,
        "{paired:?} {solo:?}"
    );

    // A missing draft fails before the model loads, naming it.
    let err = DraftFile::inspect(&dir.path().join("nope.gguf")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().starts_with("draft model "), "{err}");
}

/// LoRA adapters count with the model's memory: their tensors as stored, and a merged f32 copy
/// when several are on at load; a load that fits only without them is refused.
#[test]
fn a_models_lora_adapters_count_in_its_memory() {
    let (dir, info) = tiny();
    let write = |name: &str, seed: u64| {
        let path = dir.path().join(name);
        uml_test_support::write_lora_adapter(&info.path, &path, seed, 4, 0.01, None).unwrap();
        let bytes = crate::gguf::read_header(&path).unwrap().tensor_data_bytes();
        (path, bytes)
    };
    let ((a, a_bytes), (b, b_bytes)) = (write("a.gguf", 1), write("b.gguf", 2));
    assert!(a_bytes > 0 && a_bytes == b_bytes);
    let backend = backend::registry()[0];
    let mut hw = hardware::detect();
    hw.gpus.clear();
    // No GPU layers: preflight sees this machine's GPUs, where adapters of offloaded blocks
    // would count on the device.
    let with = |adapters: Vec<LoraAdapter>| LoadOptions {
        n_ctx: Some(128),
        max_parallel: Some(1),
        gpu_layers: crate::options::GpuLayers::Count(0),
        lora: adapters,
        ..LoadOptions::default()
    };
    let off = |path: &std::path::Path| LoraAdapter {
        scale: 0.0,
        ..LoraAdapter::new(path)
    };
    let plan = |adapters: Vec<LoraAdapter>, hw: &Hardware| {
        let options = with(adapters);
        plan_load(backend, &info, &options, hw, &Beside::of(&options)?).map(|(_, e)| e)
    };
    let alone = plan(vec![], &hw).unwrap();
    assert_eq!(alone.adapters_bytes, 0);
    let one = plan(vec![LoraAdapter::new(&a)], &hw).unwrap();
    assert_eq!(one.adapters_bytes, a_bytes);
    assert_eq!(one.host_bytes, alone.host_bytes + a_bytes);
    assert_eq!(one.total_bytes, alone.total_bytes + a_bytes);
    // Loaded but off: its tensors, no merged copy.
    let either = plan(vec![LoraAdapter::new(&a), off(&b)], &hw).unwrap();
    assert_eq!(either.adapters_bytes, a_bytes + b_bytes);
    // Both on: the merged f32 adapter too (the test adapters are f32, so as many bytes again).
    let both = vec![LoraAdapter::new(&a), LoraAdapter::new(&b)];
    let together = plan(both.clone(), &hw).unwrap();
    assert_eq!(together.adapters_bytes, 2 * (a_bytes + b_bytes));

    // What every host reports before loading is the same.
    let p = estimate::preflight(&info.path, &with(both)).unwrap();
    assert_eq!(p.estimate.adapters_bytes, together.adapters_bytes);
    assert_eq!(p.load_host_bytes, together.host_bytes);

    hw.available_memory_bytes = alone.host_bytes + a_bytes - 1;
    assert!(plan(vec![], &hw).is_ok());
    let err = plan(vec![LoraAdapter::new(&a)], &hw).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{err}");

    // A missing adapter is named before any weights load: one error, not one per backend.
    let missing = with(vec![LoraAdapter::new(dir.path().join("nope.gguf"))]);
    let err = estimate::preflight(&info.path, &missing).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("nope.gguf"), "{err}");
    let err = Model::load(&info.path, &missing, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.message().starts_with("LoRA adapter ") && !err.message().contains("backend"),
        "{err}"
    );
    // A model file is no adapter, sized as one or loaded.
    let model_as_adapter = with(vec![LoraAdapter::new(&info.path)]);
    let err = estimate::preflight(&info.path, &model_as_adapter).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("not an adapter file"), "{err}");
}

/// LoRA adapters run on llama.cpp only: for a model only candle runs, estimating or loading
/// with adapters is refused with the way out before anything is sized or loaded.
#[test]
fn lora_adapters_on_a_backend_without_them_are_refused_up_front() {
    let (dir, info) = tiny();
    let folder = dir.path().join("hf");
    uml_test_support::write_tiny_hf_folder(&folder).unwrap();
    let adapter = dir.path().join("a.gguf");
    uml_test_support::write_lora_adapter(&info.path, &adapter, 1, 4, 0.01, None).unwrap();
    let options = LoadOptions {
        n_ctx: Some(64),
        lora: vec![LoraAdapter::new(&adapter)],
        ..LoadOptions::default()
    };
    for err in [
        estimate::preflight(&folder, &options).unwrap_err(),
        Model::load(&folder, &options, None).unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        assert!(
            err.message()
                .contains("LoRA adapters run on the llama.cpp backend, not candle"),
            "{err}"
        );
    }
}
