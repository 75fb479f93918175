use super::*;
use crate::format::Format;
use crate::hardware::Gpu;
use std::path::Path;

/// SmolLM2-135M as llama.cpp sees it: 30 blocks, n_embd 576, 9 heads, 3 KV heads of 64.
fn smollm2() -> ModelInfo {
    let mut i = ModelInfo::new(Path::new("smollm2.gguf"), Format::Gguf);
    i.architecture = Some("llama".into());
    i.block_count = Some(30);
    i.embedding_length = Some(576);
    i.feed_forward_length = Some(1536);
    i.head_count = Some(9);
    i.head_count_kv = Some(3);
    i.key_length = Some(64);
    i.value_length = Some(64);
    i.vocab_size = Some(49152);
    i.context_length = Some(8192);
    i.layer_bytes = vec![2_500_000; 30];
    i.output_bytes = 18_000_000;
    i.tied_embeddings = true;
    i.non_layer_bytes = 18_000_000;
    i.weights_bytes = 30 * 2_500_000 + 18_000_000;
    i.file_size = i.weights_bytes + 1_000_000;
    i
}

fn ctx(n: u32) -> EstimateOptions {
    EstimateOptions {
        n_ctx: Some(n),
        ..Default::default()
    }
}

fn hw(available: u64, gpu_free: Option<u64>) -> Hardware {
    Hardware {
        cpu_model: "test".into(),
        physical_cores: 2,
        logical_cores: 4,
        simd: vec![],
        total_memory_bytes: available * 2,
        available_memory_bytes: available,
        gpus: gpu_free
            .map(|free| Gpu {
                index: 0,
                name: "test gpu".into(),
                backend: "cuda".into(),
                total_memory_bytes: free,
                free_memory_bytes: free,
            })
            .into_iter()
            .collect(),
        cpu_kernels: None,
    }
}

#[test]
fn kv_cache_is_exact() {
    let info = smollm2();
    let e = estimate(&info, &ctx(2048)).unwrap();
    assert_eq!(e.kv_cache_bytes, 2048 * 30 * 2 * 3 * 64 * 2);
    assert_eq!(e.kv_cache_bytes, 47_185_920);
    let q8 = estimate(
        &info,
        &EstimateOptions {
            cache_type: KvCacheType::Q8_0,
            ..ctx(2048)
        },
    )
    .unwrap();
    // 192-element rows: 6 blocks of 34 bytes, for K and V.
    assert_eq!(q8.kv_cache_bytes, 2048 * 30 * 2 * 6 * 34);
    let q4 = estimate(
        &info,
        &EstimateOptions {
            cache_type: KvCacheType::Q4_0,
            ..ctx(2048)
        },
    )
    .unwrap();
    assert_eq!(q4.kv_cache_bytes, 2048 * 30 * 2 * 6 * 18);
    assert!(q4.kv_cache_bytes < q8.kv_cache_bytes && q8.kv_cache_bytes < e.kv_cache_bytes);
    assert!(q4.total_bytes < q8.total_bytes && q8.total_bytes < e.total_bytes);
    assert_eq!(KvCacheType::Q8_0.bytes_per_element(), 34.0 / 32.0);
    assert_eq!(KvCacheType::Q4_0.bytes_per_element(), 18.0 / 32.0);
}

#[test]
fn parts_add_up_and_grow_with_the_context() {
    let info = smollm2();
    let mut last = 0;
    for n in [256, 512, 1024, 2048, 4096, 8192, 16384] {
        let e = estimate(&info, &ctx(n)).unwrap();
        assert_eq!(e.host_bytes + e.device_bytes, e.total_bytes);
        assert_eq!(
            e.weights_bytes + e.kv_cache_bytes + e.compute_bytes + e.overhead_bytes,
            e.total_bytes
        );
        assert_eq!(e.device_bytes, 0);
        assert_eq!(e.weights_bytes, info.weights_bytes);
        assert!(e.total_bytes > last, "n_ctx {n}");
        assert!(e.compute_bytes < e.compute_reserved_bytes);
        last = e.total_bytes;
    }
}

#[test]
fn context_defaults_and_padding() {
    let info = smollm2();
    assert_eq!(
        estimate(&info, &EstimateOptions::default()).unwrap().n_ctx,
        8192
    );
    assert_eq!(estimate(&info, &ctx(0)).unwrap().n_ctx, 8192);
    assert_eq!(estimate(&info, &ctx(1000)).unwrap().n_ctx, 1024);
    let mut unknown = smollm2();
    unknown.context_length = None;
    assert_eq!(
        estimate(&unknown, &EstimateOptions::default())
            .unwrap()
            .n_ctx,
        DEFAULT_N_CTX
    );
    let bad = EstimateOptions {
        n_ubatch: 0,
        ..Default::default()
    };
    assert_eq!(
        estimate(&info, &bad).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn compute_follows_the_documented_formula() {
    let info = smollm2();
    let e = estimate(&info, &ctx(2048)).unwrap();
    let n_ub = 512u64;
    let logits = n_ub * 49152 * 4;
    let widths = 3 * 576 + 9 * 64 + 3 * (64 + 64) + 3 * 1536;
    let reserved = logits + n_ub * widths * 4 + 2048 * n_ub * 6;
    assert_eq!(e.compute_reserved_bytes, reserved);
    assert_eq!(e.compute_bytes, reserved - logits + 49152 * 4);
    let no_fa = estimate(
        &info,
        &EstimateOptions {
            flash_attention: false,
            ..ctx(2048)
        },
    )
    .unwrap();
    assert_eq!(
        no_fa.compute_reserved_bytes,
        reserved + 2 * 2048 * n_ub * 9 * 4
    );
    // A short context limits the micro-batch.
    assert_eq!(estimate(&info, &ctx(256)).unwrap().n_ubatch, 256);
}

#[test]
fn encoder_models_have_no_kv_cache() {
    let mut info = smollm2();
    info.architecture = Some("bert".into());
    assert_eq!(estimate(&info, &ctx(512)).unwrap().kv_cache_bytes, 0);
}

#[test]
fn unknown_shape_is_unsupported_not_a_guess() {
    let mut info = smollm2();
    info.block_count = None;
    let e = estimate(&info, &ctx(512)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.message().contains("block count"), "{e}");
}

#[test]
fn gpu_offload_splits_layers_kv_and_output() {
    let info = smollm2();
    let on = |g: u32| {
        estimate(
            &info,
            &EstimateOptions {
                gpu_layers: g,
                ..ctx(2048)
            },
        )
        .unwrap()
    };
    let cpu = on(0);
    let half = on(15);
    let all_blocks = on(30);
    let all = on(31);
    assert_eq!(on(999), all, "capped at block count + 1");
    assert_eq!(all.gpu_layers, 31);
    assert_eq!(cpu.device_bytes, 0);
    let kv_layer = 2048 * 2 * 3 * 64 * 2;
    assert_eq!(
        half.device_bytes,
        15 * 2_500_000 + 15 * kv_layer + half.compute_reserved_bytes + DEVICE_OVERHEAD
    );
    assert_eq!(
        all.device_bytes - all_blocks.device_bytes,
        info.output_bytes,
        "the output layer moves last"
    );
    // The tied head is copied: the host keeps the embeddings.
    assert!(all.host_bytes >= 18_000_000);
    assert!(half.host_bytes < cpu.host_bytes);
    for e in [half, all_blocks, all] {
        assert_eq!(e.host_bytes + e.device_bytes, e.total_bytes);
        assert_eq!(
            e.weights_bytes + e.kv_cache_bytes + e.compute_bytes + e.overhead_bytes,
            e.total_bytes
        );
    }
}

#[test]
fn fits_and_max_gpu_layers() {
    let info = smollm2();
    let e = estimate(&info, &ctx(2048)).unwrap();
    assert!(e.fits(&hw(e.host_bytes, None)));
    assert!(!e.fits(&hw(e.host_bytes - 1, None)));
    assert_eq!(
        max_gpu_layers(&estimate, &info, &ctx(2048), &hw(1 << 40, None)),
        0
    );
    assert_eq!(
        max_gpu_layers(&estimate, &info, &ctx(2048), &hw(1 << 40, Some(80 << 30))),
        31
    );
    let ten = estimate(
        &info,
        &EstimateOptions {
            gpu_layers: 10,
            ..ctx(2048)
        },
    )
    .unwrap();
    let g = max_gpu_layers(
        &estimate,
        &info,
        &ctx(2048),
        &hw(1 << 40, Some(ten.device_bytes)),
    );
    assert_eq!(g, 10);
    assert!(ten.fits(&hw(1 << 40, Some(ten.device_bytes))));
    assert!(!ten.fits(&hw(1 << 40, Some(ten.device_bytes - 1))));
}

#[test]
fn largest_context() {
    let info = smollm2();
    let opts = EstimateOptions::default();
    let at = |n: u32| estimate(&info, &ctx(n)).unwrap().host_bytes;
    assert_eq!(
        largest_context_that_fits(&estimate, &info, &opts, at(8192)),
        Some(8192)
    );
    assert_eq!(
        largest_context_that_fits(&estimate, &info, &opts, u64::MAX),
        Some(8192)
    );
    assert_eq!(
        largest_context_that_fits(&estimate, &info, &opts, at(4096)),
        Some(4096)
    );
    assert_eq!(
        largest_context_that_fits(&estimate, &info, &opts, at(4096) + 1),
        Some(4096)
    );
    assert_eq!(
        largest_context_that_fits(&estimate, &info, &opts, at(4352) - 1),
        Some(4096)
    );
    assert_eq!(
        largest_context_that_fits(&estimate, &info, &opts, at(256)),
        Some(256)
    );
    assert_eq!(
        largest_context_that_fits(&estimate, &info, &opts, at(256) - 1),
        None
    );
    assert_eq!(
        largest_context_that_fits(&estimate, &info, &ctx(1024), u64::MAX),
        Some(1024)
    );
}

#[test]
fn check_fits_names_the_numbers_and_the_fixes() {
    let info = smollm2();
    let e = estimate(&info, &ctx(8192)).unwrap();
    assert!(check_fits(&estimate, &info, &e, None, &hw(e.host_bytes, None)).is_ok());
    let available = estimate(&info, &ctx(2048)).unwrap().host_bytes;
    let err = check_fits(&estimate, &info, &e, None, &hw(available, None)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory);
    let m = err.message();
    for needle in [
        "smollm2.gguf",
        "n_ctx 8192",
        &format_bytes(e.host_bytes),
        &format_bytes(available),
        &format_bytes(e.kv_cache_bytes),
        "about 2048 fits",
        "q8_0",
        "smaller quantization",
    ] {
        assert!(m.contains(needle), "{needle:?} not in {m}");
    }

    let g = estimate(
        &info,
        &EstimateOptions {
            gpu_layers: 31,
            ..ctx(2048)
        },
    )
    .unwrap();
    let err = check_fits(
        &estimate,
        &info,
        &g,
        None,
        &hw(1 << 40, Some(g.device_bytes / 2)),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory);
    assert!(err.message().contains("gpu_layers"), "{err}");
}

#[test]
fn byte_formatting() {
    assert_eq!(format_bytes(12), "12 B");
    assert_eq!(format_bytes(2048), "2 KiB");
    assert_eq!(format_bytes(45 << 20), "45.0 MiB");
    assert_eq!(format_bytes(3 << 29), "1.50 GiB");
}

#[test]
fn tiny_model_end_to_end() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("tiny.gguf");
    uml_test_support::write_tiny_llama_gguf(&p, 0).unwrap();
    let info = crate::inspect::inspect(&p).unwrap();
    let e = estimate(&info, &EstimateOptions::default()).unwrap();
    assert_eq!(e.n_ctx, 256);
    assert_eq!(e.kv_cache_bytes, 256 * 2 * 2 * (2 * 16) * 2);
    assert_eq!(e.weights_bytes, info.weights_bytes);
}

#[test]
fn load_options_map_onto_the_estimate() {
    use crate::options::{GpuLayers, KvCacheType, LoadOptions};
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("tiny.gguf");
    uml_test_support::write_tiny_llama_gguf(&p, 0).unwrap();
    let info = crate::inspect::inspect(&p).unwrap();
    let options = LoadOptions {
        n_ctx: Some(512),
        kv_cache_type: KvCacheType::Q8_0,
        gpu_layers: GpuLayers::Count(1),
        ..LoadOptions::default()
    };
    let e = for_backend(&estimate, &info, &options, &hw(1024 * MIB, None)).unwrap();
    assert_eq!(
        (e.n_ctx, e.cache_type, e.gpu_layers),
        (512, KvCacheType::Q8_0, 1)
    );
    // "auto" with no GPU offloads nothing; with a roomy GPU, every block and the output layer.
    let auto = LoadOptions {
        gpu_layers: GpuLayers::Auto,
        ..options
    };
    assert_eq!(
        for_backend(&estimate, &info, &auto, &hw(1024 * MIB, None))
            .unwrap()
            .gpu_layers,
        0
    );
    assert_eq!(
        for_backend(&estimate, &info, &auto, &hw(1024 * MIB, Some(8192 * MIB)))
            .unwrap()
            .gpu_layers,
        3
    );
}

/// Header values chosen so the products overflow 64 bits: each is an InvalidModel naming the
/// problem, in both backends' estimates, never a wrapped number that "fits".
#[test]
fn a_corrupt_header_is_an_error_never_a_wrapped_fit() {
    type Corrupt = fn(&mut ModelInfo);
    let implausible: [(&str, Corrupt); 4] = [
        ("block count", |i| i.block_count = Some(1 << 40)),
        ("embedding length", |i| i.embedding_length = Some(u64::MAX)),
        ("vocabulary size", |i| i.vocab_size = Some(1 << 62)),
        ("key-value head count", |i| i.head_count_kv = Some(1 << 33)),
    ];
    for (what, corrupt) in implausible {
        let mut info = smollm2();
        corrupt(&mut info);
        let e = estimate(&info, &ctx(2048)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidModel, "{what}: {e}");
        assert!(e.message().contains(what), "{what}: {e}");
        assert!(e.message().contains("corrupt"), "{what}: {e}");
    }
    // Every value plausible, their product beyond 2^64 bytes: the largest bounds at once with
    // a saturated weight size.
    let mut info = smollm2();
    info.weights_bytes = u64::MAX;
    info.layer_bytes = vec![u64::MAX / 2; 30];
    let e = estimate(&info, &ctx(1 << 24)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidModel, "{e}");
    assert!(e.message().contains("more than 2^64 bytes"), "{e}");
    // The same through every backend's estimator.
    for backend in crate::backend::registry() {
        let e = backend.estimate(&info, &ctx(1 << 24)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidModel, "{}: {e}", backend.name());
    }
}

#[test]
fn preflight_is_the_one_flow_every_host_reports() {
    use crate::options::LoadOptions;
    let d = tempfile::tempdir().unwrap();
    let gguf = d.path().join("tiny.gguf");
    uml_test_support::write_tiny_llama_gguf(&gguf, 0).unwrap();
    let options = LoadOptions {
        n_ctx: Some(512),
        ..LoadOptions::default()
    };
    let p = preflight(&gguf, &options).unwrap();
    let info = crate::inspect::inspect(&gguf).unwrap();
    let hw = crate::hardware::detect();
    assert_eq!(p.estimate, for_load_options(&info, &options, &hw).unwrap());
    assert_eq!(p.estimate.n_ctx, 512);
    assert_eq!(p.fits, p.estimate.host_bytes <= p.available_memory_bytes);
    assert!(p.available_memory_bytes > 0);
    #[cfg(feature = "llamacpp")]
    assert_eq!(p.backend, "llama.cpp");
    // The JSON hosts print: the estimate's fields with the backend and the fit beside them.
    let json = serde_json::to_value(&p).unwrap();
    for key in [
        "total_bytes",
        "n_ctx",
        "backend",
        "fits",
        "available_memory_bytes",
    ] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }
    // A folder goes to the backend that can run it, and so does its memory model.
    #[cfg(feature = "candle")]
    {
        let folder = d.path().join("tiny-hf");
        uml_test_support::write_tiny_hf_folder(&folder).unwrap();
        assert_eq!(
            preflight(&folder, &LoadOptions::default()).unwrap().backend,
            "candle"
        );
        let forced = LoadOptions {
            backend: crate::backend::BackendChoice::Candle,
            ..LoadOptions::default()
        };
        assert_eq!(preflight(&gguf, &forced).unwrap().backend, "candle");
    }
    let missing = preflight(&d.path().join("nope.gguf"), &options).unwrap_err();
    assert_eq!(missing.kind(), crate::ErrorKind::NotFound);
}

/// A load whose generations draft runs each in private contexts (one with a draft model, two
/// with MTP heads), each with a compute buffer of its own: counted for every slot.
#[test]
fn drafting_loads_count_a_compute_buffer_per_private_context() {
    let info = smollm2();
    let shared = EstimateOptions {
        parallel: 3,
        ..ctx(2048)
    };
    let base = estimate(&info, &shared).unwrap();
    for (private, buffers) in [(1, 3), (2, 6)] {
        let e = estimate(
            &info,
            &EstimateOptions {
                private_contexts: private,
                ..shared
            },
        )
        .unwrap();
        assert_eq!(e.private_contexts, private);
        assert_eq!(e.compute_bytes, base.compute_bytes * buffers);
        assert_eq!(e.kv_cache_bytes, base.kv_cache_bytes);
        assert_eq!(
            e.host_bytes - base.host_bytes,
            base.compute_bytes * (buffers - 1)
        );
        assert_eq!(EstimateOptions::of(&e, None).private_contexts, private);
    }
    let opts = |draft: bool, mtp: bool| {
        EstimateOptions::from_load_options(&crate::LoadOptions {
            draft_model: draft.then(|| "d.gguf".into()),
            mtp,
            ..Default::default()
        })
        .private_contexts
    };
    assert_eq!(
        (opts(false, false), opts(true, false), opts(false, true)),
        (0, 1, 2)
    );
}

/// A hybrid model (Qwen3.5-like, 4 blocks: 3 linear-attention blocks with a recurrent state,
/// then 1 attention block, and a prediction head after them): a KV cache for the attention
/// block only, a state per slot for the recurrent ones, a copy of it per snapshot a drafting
/// context keeps, and the head's cache in the heads' own context.
#[test]
fn recurrent_blocks_count_their_state_and_snapshots_not_a_kv_cache() {
    let mut info = smollm2();
    info.block_count = Some(5);
    info.layer_bytes = vec![2_500_000; 5];
    info.recurrent = Some(crate::inspect::RecurrentLayout {
        recurrent: vec![true, true, true, false, false],
        attention: vec![false, false, false, true, false],
        state_elements: 100_000,
        head_blocks: 1,
        rolls_back: true,
    });
    let kv_block = 2048 * 2 * 3 * 64 * 2;
    let state = 100_000 * 4;
    let opts = |parallel: u32, private_contexts: u32| EstimateOptions {
        parallel,
        private_contexts,
        ..ctx(2048)
    };
    let kv = |o: EstimateOptions| estimate(&info, &o).unwrap().kv_cache_bytes;
    assert_eq!(kv(opts(1, 0)), kv_block + 3 * state);
    assert_eq!(kv(opts(2, 0)), 2 * (kv_block + 3 * state));
    // A draft model: 16 snapshots (micro-batches of 512 hold them).
    assert_eq!(kv(opts(1, 1)), kv_block + 3 * state * 17);
    // The model's own heads: 3 snapshots, and the head block's cache in their context.
    assert_eq!(kv(opts(1, 2)), 2 * kv_block + 3 * state * 4);
    // Micro-batches of 8 tokens hold 6 positions to roll back to, and one more token.
    let small = EstimateOptions {
        n_batch: 8,
        n_ubatch: 8,
        ..opts(1, 1)
    };
    assert_eq!(kv(small), kv_block + 3 * state * 7);
    // On a GPU, each offloaded block takes what it keeps: blocks count from the last, so 3
    // layers hold the head (nothing without mtp), the attention block and one recurrent one.
    let device = |gpu_layers: u32, state_elements: u64| {
        let mut info = info.clone();
        if let Some(r) = info.recurrent.as_mut() {
            r.state_elements = state_elements;
        }
        let o = EstimateOptions {
            gpu_layers,
            ..opts(1, 0)
        };
        estimate(&info, &o).unwrap().device_bytes
    };
    assert_eq!(device(3, 100_000) - device(3, 0), state);
    assert_eq!(device(4, 100_000) - device(4, 0), 2 * state);
    assert_eq!(device(2, 0) - device(1, 0), 2_500_000 + kv_block);
}

/// A model llama.cpp cannot roll back keeps no snapshots; a Mamba-like one (no attention
/// heads: its GGUF says 0) is estimated by its state alone.
#[test]
fn state_without_rollback_or_attention() {
    let mut info = smollm2();
    info.block_count = Some(4);
    info.layer_bytes = vec![2_500_000; 4];
    info.head_count = Some(0);
    info.head_count_kv = Some(0);
    info.recurrent = Some(crate::inspect::RecurrentLayout {
        recurrent: vec![true; 4],
        attention: vec![false; 4],
        state_elements: 50_000,
        head_blocks: 0,
        rolls_back: false,
    });
    for private_contexts in [0, 1] {
        let e = estimate(
            &info,
            &EstimateOptions {
                private_contexts,
                parallel: 2,
                ..ctx(2048)
            },
        )
        .unwrap();
        assert_eq!(e.kv_cache_bytes, 4 * 50_000 * 4 * 2);
    }
    // A transformer without heads is still an unreadable header.
    let mut headless = smollm2();
    headless.head_count = Some(0);
    assert_eq!(
        estimate(&headless, &ctx(2048)).unwrap_err().kind(),
        ErrorKind::Unsupported
    );
}
