//! The memory estimate against reality: the resident memory a load (plus one generation, so
//! every weight page has been touched) adds to this process must be within 25% of the estimate.
//! Its own test binary so no other test's allocations share the process.

mod common;

use common::{model_path, SMOLLM2};
use uml_core::options::LoadOptions;
use uml_core::sampling::GenerateParams;
use uml_core::Model;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("rss pages");
    pages * 4096
}

#[test]
fn estimate_is_within_25_percent_of_real_rss() {
    for n_ctx in [2048u32, 8192] {
        let before = rss_bytes();
        let options = LoadOptions {
            n_ctx: Some(n_ctx),
            ..LoadOptions::default()
        };
        let model = Model::load(model_path(SMOLLM2), &options, None).unwrap();
        let params = GenerateParams {
            max_tokens: 8,
            ..GenerateParams::greedy()
        };
        model.complete("The capital of France is", &params).unwrap();
        let used = rss_bytes().saturating_sub(before) as f64;
        let estimated = model.memory().host_bytes as f64;
        let ratio = used / estimated;
        eprintln!(
            "n_ctx {n_ctx}: estimated {estimated:.0} B, measured {used:.0} B, ratio {ratio:.3}"
        );
        assert!(
            (0.75..=1.25).contains(&ratio),
            "n_ctx {n_ctx}: estimate {estimated} vs measured RSS growth {used} (ratio {ratio:.3})"
        );
        drop(model);
    }
}
