//! Engine throughput, measured the way llama.cpp's `llama-bench` does so the two can be put
//! side by side: `pp` = prompt processing (n_prompt tokens in n_batch chunks on an empty
//! context), `tg` = text generation (n_gen single-token decodes). No sampling, no detokenizing:
//! those are measured separately by `generate`'s own usage figures.

use crate::backend::{SessionRequest, Token};
use crate::generate::decode_prompt;
use crate::{Error, Model, Result};
use serde::{Deserialize, Serialize};
use std::time::Instant;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BenchOptions {
    /// Prompt tokens per `pp` run (llama-bench `-p`, default 512).
    pub n_prompt: u32,
    /// Generated tokens per `tg` run (llama-bench `-n`, default 128).
    pub n_gen: u32,
    /// Runs of each test; the median is reported (llama-bench `-r`, default 5).
    pub repetitions: u32,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            n_prompt: 512,
            n_gen: 128,
            repetitions: 5,
        }
    }
}

/// One test's samples, in tokens per second.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchSeries {
    /// "pp512", "tg128": the llama-bench test names.
    pub test: String,
    pub tokens: u32,
    pub samples: Vec<f64>,
    pub median: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    pub threads: u32,
    pub n_batch: u32,
    pub tests: Vec<BenchSeries>,
}

pub(crate) fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Deterministic, valid, non-special-looking token ids for benchmarking (llama-bench uses random
/// ids too: the content does not change the arithmetic).
fn bench_tokens(n: u32, vocab: u32) -> Vec<Token> {
    (0..n)
        .map(|i| ((u64::from(i) * 7919 + 1000) % u64::from(vocab.max(1))) as Token)
        .collect()
}

impl Model {
    /// Run the pp and tg tests. Each run uses a fresh (cleared) context, as llama-bench does.
    pub fn bench(&self, opts: &BenchOptions) -> Result<BenchReport> {
        if opts.repetitions == 0 || (opts.n_prompt == 0 && opts.n_gen == 0) {
            return Err(Error::invalid_argument(
                "bench: repetitions must be >= 1 and at least one of n_prompt, n_gen > 0",
            ));
        }
        let inner = self.loaded();
        let vocab = inner.vocab_size();
        let mut tests = Vec::new();
        // Untimed warm-up, as llama-bench does: one prompt pass and one generated token, so
        // page faults of the mmap'd weights and first-use allocations are not counted.
        {
            let mut session = inner.new_session(SessionRequest::ALONE)?;
            if opts.n_prompt > 0 {
                decode_prompt(
                    session.as_mut(),
                    &bench_tokens(opts.n_prompt, vocab),
                    0,
                    &|| false,
                )?;
            }
        }
        if opts.n_gen > 0 {
            let mut session = inner.new_session(SessionRequest::ALONE)?;
            session.decode(&bench_tokens(1, vocab), 0)?;
        }
        if opts.n_prompt > 0 {
            let tokens = bench_tokens(opts.n_prompt, vocab);
            let mut samples = Vec::new();
            for _ in 0..opts.repetitions {
                let mut session = inner.new_session(SessionRequest::ALONE)?;
                let start = Instant::now();
                decode_prompt(session.as_mut(), &tokens, 0, &|| false)?;
                samples.push(f64::from(opts.n_prompt) / start.elapsed().as_secs_f64());
            }
            tests.push(series(
                format!("pp{}", opts.n_prompt),
                opts.n_prompt,
                samples,
            ));
        }
        if opts.n_gen > 0 {
            let tokens = bench_tokens(opts.n_gen, vocab);
            let mut samples = Vec::new();
            for _ in 0..opts.repetitions {
                let mut session = inner.new_session(SessionRequest::ALONE)?;
                let start = Instant::now();
                for (pos, &t) in tokens.iter().enumerate() {
                    session.decode(&[t], pos as u32)?;
                }
                samples.push(f64::from(opts.n_gen) / start.elapsed().as_secs_f64());
            }
            tests.push(series(format!("tg{}", opts.n_gen), opts.n_gen, samples));
        }
        Ok(BenchReport {
            threads: self.plan().n_threads,
            n_batch: self.plan().n_batch,
            tests,
        })
    }
}

fn series(test: String, tokens: u32, samples: Vec<f64>) -> BenchSeries {
    BenchSeries {
        test,
        tokens,
        median: median(&samples),
        samples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn bench_tokens_stay_in_the_vocabulary() {
        assert!(bench_tokens(1000, 300)
            .iter()
            .all(|&t| (0..300).contains(&t)));
    }
}
