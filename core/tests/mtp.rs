//! Drafting with a model's own multi-token-prediction heads (load option `mtp`), on tiny
//! Qwen3.5 models written by the test support (a hybrid stack: a linear-attention block, whose
//! recurrent state must roll back when a draft is rejected, then a full-attention block, then
//! the prediction head). No registry ships a Qwen3.5 small enough for CI, so two made ones
//! stand in: a random one, whose head's drafts are nearly all rejected, and an "echo" one,
//! whose head drafts what the model mostly does (repeat a token), so nearly all are kept.
//! Either way the text must be the model's own, token for token. The same hybrid model also
//! verifies a draft model's tokens (its recurrent state rolled back by snapshots).
#![cfg(feature = "llamacpp")]

use std::path::PathBuf;
use uml_core::options::LoadOptions;
use uml_core::{ChatMessage, ErrorKind, GenerateParams, Model};

const PROMPTS: [&str; 3] = ["once upon a time", "the cat sat on the mat", "hello world"];

fn tiny(echo: bool) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-qwen35-mtp.gguf");
    uml_test_support::write_tiny_qwen35_mtp_gguf(&path, 7, echo).unwrap();
    (dir, path)
}

fn options(mtp: bool) -> LoadOptions {
    LoadOptions {
        n_ctx: Some(256),
        max_parallel: Some(1),
        mtp,
        ..LoadOptions::default()
    }
}

fn greedy(n: u32) -> GenerateParams {
    GenerateParams {
        max_tokens: n,
        ..GenerateParams::greedy()
    }
}

#[test]
fn inspect_counts_the_prediction_heads() {
    let (_dir, path) = tiny(false);
    assert_eq!(uml_core::inspect::inspect(&path).unwrap().mtp_layers, 1);
    let (_dir, llama) = {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("llama.gguf");
        uml_test_support::write_tiny_llama_gguf(&p, 0).unwrap();
        (dir, p)
    };
    assert_eq!(uml_core::inspect::inspect(&llama).unwrap().mtp_layers, 0);
}

/// Greedy text with the heads drafting equals the model's own, whether its drafts are
/// rejected (random heads: every step rolls the recurrent state back) or kept (echo heads).
#[test]
fn greedy_text_drafted_by_the_heads_is_the_models_own() {
    for echo in [false, true] {
        let (_dir, path) = tiny(echo);
        let plain = Model::load(&path, &options(false), None).unwrap();
        let mtp = Model::load(&path, &options(true), None).unwrap();
        let (mut drafted, mut accepted) = (0, 0);
        for prompt in PROMPTS {
            let without = plain
                .generate(prompt, &greedy(200), None, &mut |_| true)
                .unwrap();
            let with = mtp
                .generate(prompt, &greedy(200), None, &mut |_| true)
                .unwrap();
            assert_eq!(with.text, without.text, "echo {echo}, {prompt:?}");
            assert_eq!(with.finish_reason, without.finish_reason);
            assert_eq!(
                with.usage.completion_tokens,
                without.usage.completion_tokens
            );
            assert_eq!(without.usage.drafted_tokens, 0);
            drafted += with.usage.drafted_tokens;
            accepted += with.usage.accepted_tokens;
        }
        assert!(drafted > 100, "echo {echo}: {drafted} drafted");
        assert!(accepted <= drafted);
        if echo {
            assert!(
                accepted * 10 >= drafted * 9,
                "echo heads: {accepted} of {drafted} kept"
            );
        } else {
            assert!(
                accepted * 10 < drafted,
                "random heads: {accepted} of {drafted} kept"
            );
        }
        // draft_max 0: no drafting; a draft_min above the heads' 3 tokens: none verified.
        for off in [
            GenerateParams {
                draft_max: 0,
                ..greedy(32)
            },
            GenerateParams {
                draft_min: 4,
                ..greedy(32)
            },
        ] {
            let c = mtp.generate(PROMPTS[0], &off, None, &mut |_| true).unwrap();
            let expected = plain
                .generate(PROMPTS[0], &off, None, &mut |_| true)
                .unwrap();
            assert_eq!(c.text, expected.text);
            assert_eq!(c.usage.drafted_tokens, 0);
        }
    }
}

/// A fixed seed samples the same text with the heads drafting as without: verification runs
/// the generation's own sampler at each drafted position, in order.
#[test]
fn a_fixed_seed_samples_the_same_text_with_the_heads_drafting() {
    let (_dir, path) = tiny(true);
    let plain = Model::load(&path, &options(false), None).unwrap();
    let mtp = Model::load(&path, &options(true), None).unwrap();
    let params = GenerateParams {
        max_tokens: 120,
        temperature: 0.7,
        seed: Some(42),
        ..GenerateParams::default()
    };
    for prompt in PROMPTS {
        let without = plain
            .generate(prompt, &params, None, &mut |_| true)
            .unwrap();
        let with = mtp.generate(prompt, &params, None, &mut |_| true).unwrap();
        assert_eq!(with.text, without.text, "{prompt:?}");
        assert!(with.usage.drafted_tokens > 0);
    }
}

/// Streaming, stop strings and chat behave as without drafting.
#[test]
fn streams_stops_and_chats_work_with_the_heads_drafting() {
    let (_dir, path) = tiny(true);
    let plain = Model::load(&path, &options(false), None).unwrap();
    let mtp = Model::load(&path, &options(true), None).unwrap();
    let whole = plain
        .generate(PROMPTS[1], &greedy(60), None, &mut |_| true)
        .unwrap();
    let mut streamed = String::new();
    let c = mtp
        .generate(PROMPTS[1], &greedy(60), None, &mut |piece| {
            streamed.push_str(piece);
            true
        })
        .unwrap();
    assert_eq!(streamed, whole.text);
    assert_eq!(c.text, whole.text);
    // A stop string inside the text: cut there, as without drafting.
    let stop: String = whole.text.chars().skip(8).take(6).collect();
    let stopped = GenerateParams {
        stop: vec![stop.clone()],
        ..greedy(60)
    };
    let a = plain
        .generate(PROMPTS[1], &stopped, None, &mut |_| true)
        .unwrap();
    let b = mtp
        .generate(PROMPTS[1], &stopped, None, &mut |_| true)
        .unwrap();
    assert_eq!(b.text, a.text);
    assert!(!b.text.contains(&stop));
    let messages = [ChatMessage::user("hello")];
    let a = plain
        .chat(&messages, &greedy(40), None, &mut |_| true)
        .unwrap();
    let b = mtp
        .chat(&messages, &greedy(40), None, &mut |_| true)
        .unwrap();
    assert_eq!(b.text, a.text);
}

#[test]
fn mtp_on_a_model_without_heads_or_with_a_draft_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let llama = dir.path().join("llama.gguf");
    uml_test_support::write_tiny_llama_gguf(&llama, 0).unwrap();
    let e = Model::load(&llama, &options(true), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(
        e.message().contains("no multi-token-prediction heads"),
        "{e}"
    );
    let both = LoadOptions {
        draft_model: Some(llama.clone()),
        ..options(true)
    };
    let e = Model::load(&llama, &both, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("mtp and draft_model"), "{e}");
    let e = uml_core::estimate::preflight(&llama, &options(true)).unwrap_err();
    assert!(
        e.message().contains("no multi-token-prediction heads"),
        "{e}"
    );
}

/// A model with a recurrent state (the tiny Qwen3.5's linear-attention block) verifies a
/// draft model's tokens too: its drafting context keeps snapshots of the state, so a rejected
/// draft rolls back, and the text is its own. A recurrent draft is refused at load: it would
/// have to drop tokens it decoded one at a time.
#[test]
fn a_recurrent_model_verifies_a_draft_models_tokens_and_a_recurrent_draft_is_refused() {
    let (dir, path) = tiny(true);
    // The tiny llama shares the tiny Qwen3.5's vocabulary; its random drafts are mostly
    // rejected.
    let llama = dir.path().join("llama.gguf");
    uml_test_support::write_tiny_llama_gguf(&llama, 3).unwrap();
    let plain = Model::load(&path, &options(false), None).unwrap();
    let drafted = LoadOptions {
        draft_model: Some(llama),
        ..options(false)
    };
    let model = Model::load(&path, &drafted, None).unwrap();
    let (mut n_drafted, mut n_accepted) = (0, 0);
    for prompt in PROMPTS {
        let without = plain
            .generate(prompt, &greedy(120), None, &mut |_| true)
            .unwrap();
        let with = model
            .generate(prompt, &greedy(120), None, &mut |_| true)
            .unwrap();
        assert_eq!(with.text, without.text, "{prompt:?}");
        n_drafted += with.usage.drafted_tokens;
        n_accepted += with.usage.accepted_tokens;
    }
    assert!(
        n_drafted > 100 && n_accepted < n_drafted,
        "{n_accepted} of {n_drafted}"
    );

    let (_other, recurrent_draft) = tiny(false);
    let e = Model::load(
        &path,
        &LoadOptions {
            draft_model: Some(recurrent_draft),
            ..options(false)
        },
        None,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("recurrent state"), "{e}");
}

/// A recurrent state rolls back only to a snapshot of its last decode: a later generation
/// that shares a prefix with what a drafting context holds, further back than that, must
/// evaluate its prompt afresh rather than restore a stale state.
#[test]
fn a_recurrent_state_is_not_rolled_back_past_its_last_decode() {
    let (dir, path) = tiny(true);
    let llama = dir.path().join("llama.gguf");
    uml_test_support::write_tiny_llama_gguf(&llama, 3).unwrap();
    let drafted = LoadOptions {
        draft_model: Some(llama),
        ..options(false)
    };
    let model = Model::load(&path, &drafted, None).unwrap();
    let plain = Model::load(&path, &options(false), None).unwrap();
    // One token per decode, in the private context a draft model's load gives its
    // generations (with state snapshots).
    let alone = GenerateParams {
        deterministic: true,
        draft_max: 0,
        ..greedy(2)
    };
    let long = "once upon a time the cat sat on the mat and the dog sat on the cat";
    model.generate(long, &alone, None, &mut |_| true).unwrap();
    // A few tokens shorter: its prefix is held, a few decodes back.
    let short = "once upon a time the cat sat on the mat and the dog";
    let expected = plain
        .generate(short, &greedy(40), None, &mut |_| true)
        .unwrap();
    let second = model
        .generate(
            short,
            &GenerateParams {
                max_tokens: 40,
                ..alone
            },
            None,
            &mut |_| true,
        )
        .unwrap();
    assert_eq!(second.text, expected.text);
    assert_eq!(second.usage.cached_prompt_tokens, 0);
}

/// A load whose generations all draft in private contexts (MTP heads, a draft model), and a
/// draft itself, make no shared batched context: it would hold its slots' memory unused
/// beside the private ones.
#[test]
fn drafting_loads_make_no_shared_context() {
    let (dir, path) = tiny(true);
    let llama = dir.path().join("llama.gguf");
    uml_test_support::write_tiny_llama_gguf(&llama, 3).unwrap();
    let plain = Model::load(&path, &options(false), None).unwrap();
    assert!(plain.batch_stats().is_some(), "an undrafted load batches");
    let mtp = Model::load(&path, &options(true), None).unwrap();
    assert!(mtp.batch_stats().is_none());
    let drafted = LoadOptions {
        draft_model: Some(llama),
        ..options(false)
    };
    let model = Model::load(&path, &drafted, None).unwrap();
    assert!(model.batch_stats().is_none());
    assert!(model.draft().unwrap().batch_stats().is_none());
    // Undrafted generations still run, in a private context.
    let off = GenerateParams {
        draft_max: 0,
        ..greedy(16)
    };
    let expected = plain
        .generate(PROMPTS[2], &off, None, &mut |_| true)
        .unwrap();
    for m in [&mtp, &model] {
        let c = m.generate(PROMPTS[2], &off, None, &mut |_| true).unwrap();
        assert_eq!(c.text, expected.text);
    }
}

/// The snapshots a recurrent state rolls back to share a micro-batch with one more token
/// (llama.cpp aborts the process otherwise): small micro-batches draft less, or, for mtp,
/// are refused at load.
#[test]
fn small_micro_batches_bound_the_draft_and_never_abort() {
    let (dir, path) = tiny(true);
    let llama = dir.path().join("llama.gguf");
    uml_test_support::write_tiny_llama_gguf(&llama, 3).unwrap();
    let plain = Model::load(&path, &options(false), None).unwrap();
    let expected = plain
        .generate(PROMPTS[1], &greedy(64), None, &mut |_| true)
        .unwrap();
    let small = |n_ubatch| LoadOptions {
        n_ubatch,
        ..options(false)
    };
    for n_ubatch in [1, 3, 4, 8] {
        let drafted = LoadOptions {
            draft_model: Some(llama.clone()),
            ..small(n_ubatch)
        };
        let model = Model::load(&path, &drafted, None).unwrap();
        // The random draft's near-ties would stop its drafts; the windows are what is tested.
        let through_ties = GenerateParams {
            draft_margin_min: 0.0,
            ..greedy(64)
        };
        let c = model
            .generate(PROMPTS[1], &through_ties, None, &mut |_| true)
            .unwrap();
        assert_eq!(c.text, expected.text, "n_ubatch {n_ubatch}");
        assert_eq!(
            c.usage.drafted_tokens == 0,
            n_ubatch < 3,
            "n_ubatch {n_ubatch}"
        );
        if n_ubatch >= 3 {
            let mtp = Model::load(
                &path,
                &LoadOptions {
                    mtp: true,
                    ..small(n_ubatch)
                },
                None,
            )
            .unwrap();
            let c = mtp
                .generate(PROMPTS[1], &greedy(64), None, &mut |_| true)
                .unwrap();
            assert_eq!(c.text, expected.text, "mtp, n_ubatch {n_ubatch}");
            assert!(c.usage.drafted_tokens > 0);
        }
    }
    let e = Model::load(
        &path,
        &LoadOptions {
            mtp: true,
            ..small(2)
        },
        None,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("n_ubatch"), "{e}");
}
