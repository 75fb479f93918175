//! `Sampler`: the next token from a backend's logits. One chain, in llama.cpp's common order:
//! logit bias → repetition penalties → grammar mask → greedy pick, or top-k → top-p → min-p →
//! temperature → a seeded draw.

use std::collections::{HashMap, VecDeque};

use super::{Constraint, GenerateParams, Rng};
use crate::backend::Token;
use crate::{Error, ErrorKind, Result};

/// A token still in the running, with its (biased, penalised) logit.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    token: Token,
    logit: f32,
}

/// Most likely first; equal logits go to the lower token id, so ties break the same way on
/// every run and in every backend.
fn by_likelihood(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.logit.total_cmp(&a.logit).then(a.token.cmp(&b.token))
}

/// Samples one generation's tokens. Build one per generation (it keeps the penalty window and
/// the grammar state), feed it the prompt with `accept_prompt`, then alternate `sample` and
/// `accept`.
pub struct Sampler {
    greedy: bool,
    temperature: f32,
    top_k: usize,
    top_p: f32,
    min_p: f32,
    bias: Vec<(usize, f32)>,
    penalties: Option<Penalties>,
    constraint: Option<Constraint>,
    rng: Rng,
    scratch: Vec<f32>,
    candidates: Vec<Candidate>,
}

impl Sampler {
    /// A sampler for `params` over a vocabulary of `n_vocab` tokens in a context of `n_ctx`
    /// (what `repeat_last_n = -1` means). `constraint` is the grammar or JSON schema, if any.
    pub fn new(
        params: &GenerateParams,
        n_vocab: u32,
        n_ctx: u32,
        constraint: Option<Constraint>,
    ) -> Result<Sampler> {
        params.validate()?;
        let mut bias = Vec::with_capacity(params.logit_bias.len());
        for (&token, &b) in &params.logit_bias {
            match usize::try_from(token) {
                Ok(i) if i < n_vocab as usize => bias.push((i, b)),
                _ => {
                    return Err(Error::invalid_argument(format!(
                        "logit_bias: token id {token} is outside the vocabulary (0..{n_vocab})"
                    )))
                }
            }
        }
        let window = match params.repeat_last_n {
            -1 => n_ctx as usize,
            n => usize::try_from(n).unwrap_or(0),
        };
        let penalties_on = params.repeat_penalty != 1.0
            || params.frequency_penalty != 0.0
            || params.presence_penalty != 0.0;
        let penalties = (penalties_on && window > 0).then(|| Penalties {
            window,
            recent: VecDeque::with_capacity(window.min(4096)),
            counts: HashMap::new(),
            repeat: params.repeat_penalty,
            frequency: params.frequency_penalty,
            presence: params.presence_penalty,
        });
        let rng = match params.seed {
            Some(seed) => Rng::from_seed(u64::from(seed)),
            None => Rng::from_entropy(),
        };
        Ok(Sampler {
            greedy: params.is_greedy(),
            temperature: params.temperature,
            top_k: usize::try_from(params.top_k).unwrap_or(0),
            top_p: params.top_p,
            min_p: params.min_p,
            bias,
            penalties,
            constraint,
            rng,
            scratch: Vec::new(),
            candidates: Vec::new(),
        })
    }

    /// Count the prompt's tokens in the penalty window (as llama-server and llama-cpp-python
    /// do), without showing them to the grammar, which constrains only the output.
    pub fn accept_prompt(&mut self, tokens: &[Token]) {
        if let Some(p) = &mut self.penalties {
            for &t in tokens {
                p.push(t);
            }
        }
    }

    /// Record the token that was chosen: it enters the penalty window and advances the grammar.
    pub fn accept(&mut self, token: Token) -> Result<()> {
        if let Some(p) = &mut self.penalties {
            p.push(token);
        }
        if let Some(c) = &mut self.constraint {
            c.accept(token)?;
        }
        Ok(())
    }

    /// True once the grammar has matched completely and allows nothing more.
    pub fn is_finished(&self) -> bool {
        self.constraint.as_ref().is_some_and(|c| c.is_finished())
    }

    /// Pick the next token from `logits` (one per vocabulary entry). Does not accept it.
    pub fn sample(&mut self, logits: &[f32]) -> Result<Token> {
        let modified =
            !self.bias.is_empty() || self.penalties.is_some() || self.constraint.is_some();
        if modified {
            self.scratch.clear();
            self.scratch.extend_from_slice(logits);
            for &(i, b) in &self.bias {
                self.scratch[i] += b;
            }
            if let Some(p) = &self.penalties {
                p.apply(&mut self.scratch);
            }
            if let Some(c) = &mut self.constraint {
                c.mask(&mut self.scratch)?;
            }
        }
        // The scratch buffer is moved out while `draw` borrows `self` mutably, then put back
        // so its allocation is reused for the next token.
        let scratch = std::mem::take(&mut self.scratch);
        let logits = if modified { &scratch[..] } else { logits };
        let picked = if self.greedy {
            argmax(logits)
        } else {
            self.draw(logits)
        };
        self.scratch = scratch;
        picked.ok_or_else(|| self.nothing_to_sample())
    }

    fn nothing_to_sample(&self) -> Error {
        if self.constraint.is_some() {
            Error::new(
                ErrorKind::InvalidArgument,
                "no token can continue the output: the grammar (or JSON schema) allows none of \
                 the tokens left after logit_bias, or it must end here while end-of-generation \
                 is banned; check the grammar and the banned tokens",
            )
        } else {
            Error::invalid_argument(
                "no token can be sampled: logit_bias bans every token (or the model returned no \
                 finite logit); ban fewer tokens",
            )
        }
    }

    /// Top-k, top-p, min-p and temperature, then a draw from what is left.
    fn draw(&mut self, logits: &[f32]) -> Option<Token> {
        let candidates = &mut self.candidates;
        if self.top_k > 0 && self.top_k < logits.len() {
            top_k_into(logits, self.top_k, candidates);
        } else {
            candidates.clear();
            candidates.extend(finite(logits));
            candidates.sort_unstable_by(by_likelihood);
        }
        let max = candidates.first()?.logit;
        if self.top_p < 1.0 {
            // Probabilities before temperature, as llama.cpp's chain computes them here.
            let weights: Vec<f64> = candidates
                .iter()
                .map(|c| f64::from(c.logit - max).exp())
                .collect();
            let total: f64 = weights.iter().sum();
            let mut cumulative = 0.0;
            let mut keep = candidates.len();
            for (i, w) in weights.iter().enumerate() {
                cumulative += w / total;
                if cumulative >= f64::from(self.top_p) {
                    keep = i + 1;
                    break;
                }
            }
            candidates.truncate(keep);
        }
        if self.min_p > 0.0 {
            // p_i >= min_p * p_max  <=>  logit_i >= max + ln(min_p)
            let floor = max + self.min_p.ln();
            let keep = candidates.iter().take_while(|c| c.logit >= floor).count();
            candidates.truncate(keep.max(1));
        }
        let t = f64::from(self.temperature);
        let weights: Vec<f64> = candidates
            .iter()
            .map(|c| (f64::from(c.logit - max) / t).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let mut target = self.rng.next_f64() * total;
        for (c, w) in candidates.iter().zip(&weights) {
            if target < *w {
                return Some(c.token);
            }
            target -= w;
        }
        // Rounding left a sliver past the last weight: it belongs to the last candidate.
        candidates.last().map(|c| c.token)
    }
}

fn finite(logits: &[f32]) -> impl Iterator<Item = Candidate> + '_ {
    logits
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_finite())
        .map(|(i, &logit)| Candidate {
            token: i as Token,
            logit,
        })
}

/// The most likely token (the lowest id among equals), or `None` if no logit is finite.
fn argmax(logits: &[f32]) -> Option<Token> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        if l.is_finite() && best.is_none_or(|(_, b)| l > b) {
            best = Some((i, l));
        }
    }
    best.map(|(i, _)| i as Token)
}

/// The `k` most likely finite tokens, sorted, in one pass: a token enters only if it beats the
/// weakest of those kept so far, which after the first few hundred is rare, so this costs about
/// one comparison per vocabulary entry.
fn top_k_into(logits: &[f32], k: usize, out: &mut Vec<Candidate>) {
    out.clear();
    for c in finite(logits) {
        if out.len() < k {
            out.push(c);
            if out.len() == k {
                out.sort_unstable_by(by_likelihood);
            }
        } else if by_likelihood(&c, &out[k - 1]).is_lt() {
            // Insert in order and drop the weakest; k is small (tens).
            let at = out.partition_point(|kept| by_likelihood(kept, &c).is_lt());
            out.insert(at, c);
            out.truncate(k);
        }
    }
    if out.len() < k {
        out.sort_unstable_by(by_likelihood);
    }
}

/// Repetition penalties over the last `window` tokens, with llama.cpp's semantics: a seen
/// token's logit is divided by `repeat` (multiplied when negative), then lowered by
/// `count * frequency + presence`.
struct Penalties {
    window: usize,
    recent: VecDeque<Token>,
    counts: HashMap<Token, u32>,
    repeat: f32,
    frequency: f32,
    presence: f32,
}

impl Penalties {
    fn push(&mut self, token: Token) {
        if self.recent.len() == self.window {
            if let Some(old) = self.recent.pop_front() {
                if let Some(n) = self.counts.get_mut(&old) {
                    *n -= 1;
                    if *n == 0 {
                        self.counts.remove(&old);
                    }
                }
            }
        }
        self.recent.push_back(token);
        *self.counts.entry(token).or_insert(0) += 1;
    }

    fn apply(&self, logits: &mut [f32]) {
        for (&token, &count) in &self.counts {
            let Some(l) = usize::try_from(token).ok().and_then(|i| logits.get_mut(i)) else {
                continue;
            };
            if *l <= 0.0 {
                *l *= self.repeat;
            } else {
                *l /= self.repeat;
            }
            *l -= count as f32 * self.frequency + self.presence;
        }
    }
}

#[cfg(test)]
mod tests;
