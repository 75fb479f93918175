use super::*;

fn params(f: impl FnOnce(&mut GenerateParams)) -> GenerateParams {
    let mut p = GenerateParams {
        seed: Some(42),
        ..GenerateParams::default()
    };
    f(&mut p);
    p
}

fn sampler(p: &GenerateParams, n_vocab: u32) -> Sampler {
    Sampler::new(p, n_vocab, 512, None).unwrap()
}

/// Counts of each token over `n` draws from the same logits.
fn histogram(p: &GenerateParams, logits: &[f32], n: usize) -> Vec<usize> {
    let mut s = sampler(p, logits.len() as u32);
    let mut counts = vec![0; logits.len()];
    for _ in 0..n {
        counts[s.sample(logits).unwrap() as usize] += 1;
    }
    counts
}

/// Logits whose softmax is exactly `probs`.
fn logits_for(probs: &[f64]) -> Vec<f32> {
    probs.iter().map(|p| p.ln() as f32).collect()
}

#[test]
fn greedy_takes_the_largest_finite_logit_and_the_lowest_id_on_a_tie() {
    let greedy = GenerateParams::greedy();
    let mut s = sampler(&greedy, 6);
    assert_eq!(s.sample(&[0.1, 2.0, -1.0, 2.0, 0.0, 1.0]).unwrap(), 1);
    assert_eq!(
        s.sample(&[f32::NAN, f32::INFINITY, -3.0, -2.0, f32::NEG_INFINITY, -2.5])
            .unwrap(),
        3
    );
    let err = s.sample(&[f32::NAN; 6]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("no token can be sampled"), "{err}");
}

#[test]
fn logit_bias_moves_and_bans_tokens_and_is_checked_against_the_vocabulary() {
    let logits = [1.0, 3.0, 2.0];
    let p = params(|p| {
        p.temperature = 0.0;
        p.logit_bias = [(1, -1.5)].into_iter().collect();
    });
    assert_eq!(sampler(&p, 3).sample(&logits).unwrap(), 2);
    let p = params(|p| {
        p.temperature = 0.0;
        p.logit_bias = [(1, f32::NEG_INFINITY), (2, f32::NEG_INFINITY)]
            .into_iter()
            .collect();
    });
    assert_eq!(sampler(&p, 3).sample(&logits).unwrap(), 0);
    // A banned token is never drawn, whatever the seed.
    let p = params(|p| p.logit_bias = [(1, f32::NEG_INFINITY)].into_iter().collect());
    assert_eq!(histogram(&p, &logits, 2000)[1], 0);
    let p = params(|p| {
        p.logit_bias = [
            (0, f32::NEG_INFINITY),
            (1, f32::NEG_INFINITY),
            (2, f32::NEG_INFINITY),
        ]
        .into_iter()
        .collect()
    });
    assert!(sampler(&p, 3)
        .sample(&logits)
        .unwrap_err()
        .message()
        .contains("logit_bias bans every token"));

    let p = params(|p| p.logit_bias = [(3, 1.0)].into_iter().collect());
    let err = Sampler::new(&p, 3, 512, None)
        .err()
        .expect("token 3 is outside a vocabulary of 3");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(
        err.message().contains("token id 3") && err.message().contains("0..3"),
        "{err}"
    );
}

#[test]
fn repeat_penalty_divides_positive_and_multiplies_negative_logits() {
    let p = params(|p| {
        p.temperature = 0.0;
        p.repeat_penalty = 2.0;
    });
    let mut s = sampler(&p, 4);
    s.accept_prompt(&[0, 2]);
    // Token 0 (4.0) falls to 2.0, under token 1 (3.0).
    assert_eq!(s.sample(&[4.0, 3.0, 0.0, 0.0]).unwrap(), 1);
    // Token 2 (-1.0) becomes -2.0, under token 3 (-1.5); without the penalty 2 would win.
    assert_eq!(s.sample(&[-9.0, -9.0, -1.0, -1.5]).unwrap(), 3);
}

#[test]
fn frequency_and_presence_penalties_count_occurrences_in_the_window() {
    let p = params(|p| {
        p.temperature = 0.0;
        p.frequency_penalty = 0.5;
        p.presence_penalty = 0.25;
        p.repeat_last_n = 3;
    });
    let mut s = sampler(&p, 3);
    s.accept_prompt(&[0, 0]);
    s.accept(0).unwrap();
    // Token 0 seen 3 times: 5.0 - (3 * 0.5 + 0.25) = 3.25 < 3.5.
    assert_eq!(s.sample(&[5.0, 3.5, 0.0]).unwrap(), 1);
    // Two more tokens push two of the 0s out of the 3-token window: 5.0 - 0.75 = 4.25 > 3.5.
    s.accept(2).unwrap();
    s.accept(2).unwrap();
    assert_eq!(s.sample(&[5.0, 3.5, 0.0]).unwrap(), 0);

    // repeat_last_n = 0 disables every penalty.
    let off = params(|p| {
        p.temperature = 0.0;
        p.repeat_penalty = 10.0;
        p.repeat_last_n = 0;
    });
    let mut s = sampler(&off, 2);
    s.accept_prompt(&[0, 0, 0]);
    assert_eq!(s.sample(&[2.0, 1.0]).unwrap(), 0);
}

#[test]
fn top_k_keeps_exactly_the_k_most_likely() {
    let mut r = Rng::from_seed(9);
    for k in [1, 2, 5, 40, 99, 100, 150] {
        let logits: Vec<f32> = (0..100)
            .map(|_| (r.next_f64() * 8.0 - 4.0).floor() as f32)
            .collect();
        let mut got = Vec::new();
        top_k_into(&logits, k, &mut got);
        let mut all: Vec<Candidate> = finite(&logits).collect();
        all.sort_unstable_by(by_likelihood);
        all.truncate(k);
        let ids = |v: &[Candidate]| v.iter().map(|c| c.token).collect::<Vec<_>>();
        assert_eq!(ids(&got), ids(&all), "k = {k}");
    }
    // top_k = 1 is greedy whatever the seed.
    let p = params(|p| p.top_k = 1);
    let counts = histogram(&p, &[0.0, 1.0, 0.9], 500);
    assert_eq!(counts, vec![0, 500, 0]);
}

#[test]
fn draws_follow_the_softmax_at_temperature_one() {
    let probs = [0.5, 0.3, 0.15, 0.05];
    let p = params(|p| {
        p.temperature = 1.0;
        p.top_k = 0;
        p.top_p = 1.0;
        p.min_p = 0.0;
    });
    let n = 40_000;
    let counts = histogram(&p, &logits_for(&probs), n);
    for (c, want) in counts.iter().zip(probs) {
        let got = *c as f64 / n as f64;
        assert!((got - want).abs() < 0.01, "{counts:?}");
    }
    // A low temperature sharpens towards the most likely token.
    let cold = params(|p| {
        p.temperature = 0.1;
        p.top_k = 0;
        p.top_p = 1.0;
        p.min_p = 0.0;
    });
    let counts = histogram(&cold, &logits_for(&probs), 1000);
    assert!(counts[0] > 990, "{counts:?}");
}

#[test]
fn top_p_and_min_p_cut_the_unlikely_tail() {
    let probs = [0.6, 0.3, 0.08, 0.02];
    let logits = logits_for(&probs);
    let p = params(|p| {
        p.temperature = 1.0;
        p.top_k = 0;
        p.min_p = 0.0;
        p.top_p = 0.85; // 0.6 + 0.3 reaches it: tokens 2 and 3 are cut
    });
    let counts = histogram(&p, &logits, 5000);
    assert_eq!((counts[2], counts[3]), (0, 0), "{counts:?}");
    assert!(counts[0] > 2800 && counts[1] > 1300, "{counts:?}");
    let p = params(|p| {
        p.temperature = 1.0;
        p.top_k = 0;
        p.top_p = 0.5; // the first token alone reaches it
        p.min_p = 0.0;
    });
    assert_eq!(histogram(&p, &logits, 500), vec![500, 0, 0, 0]);
    let p = params(|p| {
        p.temperature = 1.0;
        p.top_k = 0;
        p.top_p = 1.0;
        p.min_p = 0.1; // keeps p >= 0.06: tokens 0, 1, 2
    });
    let counts = histogram(&p, &logits, 5000);
    assert_eq!(counts[3], 0, "{counts:?}");
    assert!(counts[2] > 0, "{counts:?}");
}

#[test]
fn a_seed_fixes_the_tokens_and_different_seeds_differ() {
    let logits: Vec<f32> = (0..1000)
        .map(|i| ((i * 7919) % 1000) as f32 / 250.0)
        .collect();
    let run = |seed: u32| {
        let p = params(|p| {
            p.seed = Some(seed);
            p.top_k = 0;
            p.min_p = 0.0;
        });
        let mut s = sampler(&p, 1000);
        (0..32)
            .map(|_| s.sample(&logits).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
    // Pinned: a seed gives these tokens in every uml version and every backend. Changing the
    // sampler or the RNG so that they move breaks users' recorded seeded outputs.
    assert_eq!(run(42)[..8], PINNED_SEED_42);
}

// Computed independently by a Python transcription of the chain (f32 logits, f64 weights).
const PINNED_SEED_42: [Token; 8] = [457, 532, 694, 808, 514, 633, 398, 424];
