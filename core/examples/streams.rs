//! Concurrent generations on one model, from Rust (no host-language consumers on the cores):
//! the engine-level measurement behind bench/batched.py.
//!
//!   cargo run --release -p uml-core --example streams -- MODEL STREAMS NPP NTG THREADS MODE ROUND
//!
//! MODE is `batched` (the model's slots) or `per-call` (deterministic: a private context per
//! generation, decoded alone). Prints one JSON line: prompt and generation tokens/s, as
//! llama-batched-bench computes S_PP and S_TG.

use std::time::Instant;
use uml_core::options::LoadOptions;
use uml_core::sampling::GenerateParams;
use uml_core::Model;

const FILLER: &str = "The river ran past the mill and the mill turned all day, grinding wheat \
                      for the village bakers who sold bread at the market every morning. ";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 8 {
        eprintln!("usage: streams MODEL STREAMS NPP NTG THREADS batched|per-call ROUND");
        std::process::exit(2);
    }
    let num = |i: usize| -> u32 { args[i].parse().expect("a number") };
    let (streams, npp, ntg, threads, round) = (num(2), num(3), num(4), num(5), num(7));
    let deterministic = match args[6].as_str() {
        "batched" => false,
        "per-call" => true,
        other => panic!("mode {other}: batched or per-call"),
    };
    let n_ctx = (npp + ntg).div_ceil(512) * 512;
    let model = Model::load(
        &args[1],
        &LoadOptions {
            n_ctx: Some(n_ctx),
            n_threads: Some(threads),
            max_parallel: Some(streams),
            ..LoadOptions::default()
        },
        None,
    )
    .expect("load");
    // Exactly NTG tokens each: end-of-generation banned.
    let mut params = GenerateParams {
        max_tokens: ntg,
        deterministic,
        ..GenerateParams::greedy()
    };
    for t in model
        .tokenize("<|im_end|><|endoftext|>", false)
        .expect("tokenize")
    {
        params.logit_bias.insert(t, f32::NEG_INFINITY);
    }
    // Distinct prompts of NPP tokens, different from the first token on.
    let prompts: Vec<String> = (0..streams)
        .map(|s| {
            let text = format!("Story {}: {}", round * 100 + s, FILLER.repeat(40));
            let tokens = model.tokenize(&text, false).expect("tokenize");
            model
                .detokenize(&tokens[..npp as usize])
                .expect("detokenize")
        })
        .collect();

    let barrier = std::sync::Barrier::new(streams as usize + 1);
    let (start, results) = std::thread::scope(|s| {
        let handles: Vec<_> = prompts
            .iter()
            .map(|p| {
                let (model, params, barrier) = (&model, &params, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let mut first = None;
                    let out = model
                        .generate(p, params, None, &mut |_| {
                            first.get_or_insert_with(Instant::now);
                            true
                        })
                        .expect("generate");
                    (first.expect("a first token"), Instant::now(), out.usage)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        (start, results)
    });
    let pp_end = results.iter().map(|r| r.0).max().unwrap();
    let end = results.iter().map(|r| r.1).max().unwrap();
    let prompt_tokens: u32 = results
        .iter()
        .map(|r| r.2.prompt_tokens - r.2.cached_prompt_tokens)
        .sum();
    let generated: u32 = results.iter().map(|r| r.2.completion_tokens).sum();
    assert_eq!(
        generated,
        ntg * streams,
        "every stream makes exactly NTG tokens"
    );
    let pp = f64::from(prompt_tokens) / (pp_end - start).as_secs_f64();
    let tg = f64::from(generated - streams) / (end - pp_end).as_secs_f64();
    let stats = model.batch_stats();
    println!(
        "{{\"speed_pp\": {pp:.3}, \"speed_tg\": {tg:.3}, \"decodes\": {}, \"sequence_steps\": {}}}",
        stats.map_or(0, |s| s.decodes),
        stats.map_or(0, |s| s.sequence_steps)
    );
}
