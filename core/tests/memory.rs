//! The memory estimate against reality, per backend, at two context sizes: the resident memory
//! a load plus a generation that fills the context adds to a process (read while generating)
//! must be within 10% of the estimate. Each case runs in a fresh child process (this test
//! binary re-run), so memory kept by the allocator from an earlier load cannot hide part of
//! the next one.
//!
//! The context is filled because that is the peak the estimate promises: llama.cpp allocates
//! and clears its whole KV cache up front, candle grows its cache as tokens arrive.
//! Measured on SmolLM2 (RSS / estimate): llama.cpp 0.929 at 2048 and 0.928 at 8192,
//! candle 0.994 at 512 and 0.939 at 2048.
// Measures llama.cpp (and candle when built): a build without llama.cpp has nothing to measure.
#![cfg(feature = "llamacpp")]

mod common;

use common::{model_path, SMOLLM2};
use std::path::{Path, PathBuf};
use std::process::Command;
use uml_core::options::LoadOptions;
use uml_core::sampling::GenerateParams;
use uml_core::Model;

const CHILD_ENV: &str = "UML_MEMORY_CHILD";

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("rss pages");
    pages * 4096
}

/// Load `path` in a child process with `backend`, `n_ctx` and `slots` generation slots, fill
/// every slot's context at once, and return (estimated, measured) bytes.
fn measure(path: &Path, backend: &str, n_ctx: u32, slots: u32) -> (f64, f64) {
    let spec = format!("{backend} {n_ctx} {slots} {}", path.display());
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "measure_in_child",
            "--include-ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, &spec)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child {spec} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("MEASURED "))
        .unwrap_or_else(|| panic!("no measurement in: {stdout}"));
    let nums: Vec<f64> = line
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    (nums[0], nums[1])
}

fn check(path: &Path, backend: &str, cases: &[(u32, u32)]) {
    for &(n_ctx, slots) in cases {
        let (estimated, used) = measure(path, backend, n_ctx, slots);
        let ratio = used / estimated;
        eprintln!(
            "{backend} n_ctx {n_ctx} x {slots} slots: estimated {:.1} MiB, measured {:.1} MiB, \
             ratio {ratio:.3}",
            estimated / 1048576.0,
            used / 1048576.0
        );
        assert!(
            (0.90..=1.10).contains(&ratio),
            "{backend} n_ctx {n_ctx} x {slots} slots: estimate {estimated} vs measured RSS \
             growth {used} (ratio {ratio:.3}, allowed 0.90..1.10)"
        );
    }
}

/// One test for both backends, so the measurements run one after the other: a second child
/// loading beside the first changes how much freed memory the allocator keeps by ~5%.
#[test]
fn estimates_are_within_10_percent_of_real_rss() {
    // Two context sizes on one slot, and four slots generating at once, each filling its own.
    check(
        &model_path(SMOLLM2),
        "llamacpp",
        &[(2048, 1), (8192, 1), (2048, 4)],
    );
    #[cfg(feature = "candle")]
    {
        let dir = tempfile::tempdir().unwrap();
        let folder: PathBuf = dir.path().join("smollm2-hf");
        uml_core::convert::gguf_to_hf(&model_path(SMOLLM2), &folder).unwrap();
        check(&folder, "candle", &[(512, 1), (2048, 1)]);
    }
}

/// Run only as the child of the test above.
#[test]
#[ignore = "run by the estimate tests in a fresh process"]
fn measure_in_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(4, ' ');
    let (backend, n_ctx, slots, path) = (
        parts.next().unwrap(),
        parts.next().unwrap().parse::<u32>().unwrap(),
        parts.next().unwrap().parse::<u32>().unwrap(),
        PathBuf::from(parts.next().unwrap()),
    );
    let before = rss_bytes();
    let options = LoadOptions {
        n_ctx: Some(n_ctx),
        backend: serde_json::from_value(serde_json::json!(backend)).unwrap(),
        max_parallel: Some(slots),
        ..LoadOptions::default()
    };
    let model = Model::load(&path, &options, None).unwrap();
    // A prompt that leaves room for the generated tokens: " the" is one token in SmolLM2.
    let params = GenerateParams {
        max_tokens: 8,
        ..GenerateParams::greedy()
    };
    // Sampled while the sessions are alive with their contexts full; read after the
    // generation, RSS would also hold (or not) whatever the allocator kept of the freed
    // session, which swung by 10% between identical runs. Each slot's prompt differs from the
    // others' from the first token, so no slot shares cells with another.
    let peak = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for slot in 0..slots {
            let (model, params, peak) = (&model, &params, &peak);
            s.spawn(move || {
                let prompt = format!("{slot}{}", " the".repeat(n_ctx as usize - 16));
                let out = model
                    .generate(&prompt, params, None, &mut |_| {
                        peak.fetch_max(rss_bytes(), std::sync::atomic::Ordering::SeqCst);
                        true
                    })
                    .unwrap();
                assert!(out.usage.prompt_tokens + 16 >= n_ctx, "{:?}", out.usage);
            });
        }
    });
    let peak = peak.load(std::sync::atomic::Ordering::SeqCst);
    println!(
        "MEASURED {} {}",
        model.memory().host_bytes,
        peak.saturating_sub(before)
    );
}
