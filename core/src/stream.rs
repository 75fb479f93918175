//! Incremental text assembly for streaming generation: token bytes in, text out that never
//! splits a UTF-8 character and never shows any part of a stop string. Also the result types
//! of a generation (`FinishReason`, `Usage`, `Completion`).

use serde::{Deserialize, Serialize};

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A stop string or an end-of-generation token.
    Stop,
    /// `max_tokens` (or the context) was reached.
    Length,
    /// The caller cancelled.
    Cancelled,
    /// The backend failed part-way.
    Error,
}

/// Token counts and timings of one generation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    /// Prompt tokens whose state was kept from an earlier generation instead of evaluated
    /// again (counted in `prompt_tokens` too).
    #[serde(default)]
    pub cached_prompt_tokens: u32,
    pub completion_tokens: u32,
    pub prompt_ms: f64,
    pub generation_ms: f64,
    pub prompt_tokens_per_second: f64,
    pub generation_tokens_per_second: f64,
    /// Speculative decoding: tokens the draft model proposed, and those the model accepted
    /// (each accepted one saved a decode step). 0 without a draft model.
    #[serde(default)]
    pub drafted_tokens: u32,
    #[serde(default)]
    pub accepted_tokens: u32,
}

impl Usage {
    /// Counts and timings, with the rates derived from them (0 when a time is 0).
    pub fn new(
        prompt_tokens: u32,
        completion_tokens: u32,
        prompt_ms: f64,
        generation_ms: f64,
    ) -> Self {
        let rate = |n: u32, ms: f64| {
            if ms > 0.0 {
                n as f64 * 1000.0 / ms
            } else {
                0.0
            }
        };
        Usage {
            prompt_tokens,
            cached_prompt_tokens: 0,
            completion_tokens,
            prompt_ms,
            generation_ms,
            prompt_tokens_per_second: rate(prompt_tokens, prompt_ms),
            generation_tokens_per_second: rate(completion_tokens, generation_ms),
            ..Usage::default()
        }
    }
}

/// The whole result of a non-streaming generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub text: String,
    pub finish_reason: FinishReason,
    pub usage: Usage,
}

impl Completion {
    /// Cancelled before the prompt was evaluated: no text, no usage.
    pub fn cancelled() -> Self {
        Completion {
            text: String::new(),
            finish_reason: FinishReason::Cancelled,
            usage: Usage::default(),
        }
    }
}

/// What one [`TextStream::push`] released.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Text now safe to show (may be empty).
    pub text: String,
    /// A stop string was completed: stop generating. `text` ends right before it.
    pub stopped: bool,
}

/// Turns the raw bytes of sampled tokens into text, holding back incomplete UTF-8 sequences
/// and anything that could still become a stop string.
///
/// When stop strings overlap, the one completed first in the text wins (the one ending
/// earliest; among those, the one starting earliest), so how the text is split into tokens
/// never changes the result.
#[derive(Debug, Clone)]
pub struct TextStream {
    stops: Vec<String>,
    /// The longest stop string, in bytes: held-back text is always shorter than this.
    max_stop_len: usize,
    /// Bytes of an incomplete UTF-8 character at the end of the input.
    pending: Vec<u8>,
    /// Decoded text not yet emitted because it is a prefix of some stop string.
    held: String,
    emitted: String,
    stopped: bool,
    finished: bool,
}

impl TextStream {
    /// A stream that stops at any of `stop` (empty strings are ignored; `GenerateParams`
    /// validation rejects them anyway).
    pub fn new(stop: &[String]) -> Self {
        let stops: Vec<String> = stop.iter().filter(|s| !s.is_empty()).cloned().collect();
        let max_stop_len = stops.iter().map(String::len).max().unwrap_or(0);
        TextStream {
            stops,
            max_stop_len,
            pending: Vec::new(),
            held: String::new(),
            emitted: String::new(),
            stopped: false,
            finished: false,
        }
    }

    /// Feed the raw bytes of one sampled token. Returns text that is now safe to emit (never a
    /// partial UTF-8 character, never text that could still turn out to be the start of a stop
    /// string) and whether a stop string was completed (then the text up to, not including,
    /// the stop string has been returned, and nothing more will be). Once stopped, every later
    /// push returns no text and `stopped: true`; after [`finish`](Self::finish) pushes return
    /// no text.
    pub fn push(&mut self, token_bytes: &[u8]) -> Pushed {
        if self.stopped || self.finished {
            return Pushed {
                text: String::new(),
                stopped: self.stopped,
            };
        }
        self.pending.extend_from_slice(token_bytes);
        let decoded = decode_complete(&mut self.pending);
        self.held.push_str(&decoded);
        let text = self.release(false);
        Pushed {
            text,
            stopped: self.stopped,
        }
    }

    /// End of generation (length, end-of-generation token, cancel): release held-back text;
    /// an incomplete trailing UTF-8 sequence becomes U+FFFD. Returns "" after a stop.
    pub fn finish(&mut self) -> String {
        if self.stopped || self.finished {
            return String::new();
        }
        self.finished = true;
        if !self.pending.is_empty() {
            let tail = String::from_utf8_lossy(&self.pending).into_owned();
            self.pending.clear();
            self.held.push_str(&tail);
        }
        self.release(true)
    }

    /// Everything emitted so far (stop strings never included).
    pub fn text_so_far(&self) -> &str {
        &self.emitted
    }

    /// Whether a stop string ended the stream.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Emit what is safe from `held`: cut at a completed stop string, else keep back the
    /// shortest suffix that could still grow into one (nothing when `all`).
    fn release(&mut self, all: bool) -> String {
        // The first stop string completed: earliest end, then earliest start. For one stop
        // string its first occurrence has both.
        let hit = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()).map(|at| (at + s.len(), at)))
            .min();
        if let Some((_, at)) = hit {
            self.held.truncate(at);
            self.pending.clear();
            self.stopped = true;
            return self.emit_held(at);
        }
        let cut = if all {
            self.held.len()
        } else {
            self.holdback_start()
        };
        self.emit_held(cut)
    }

    /// The first char boundary `i` such that `held[i..]` is a proper prefix of a stop string
    /// (`held.len()` when there is none). Everything before it can never be part of a stop.
    fn holdback_start(&self) -> usize {
        let len = self.held.len();
        let earliest = len.saturating_sub(self.max_stop_len.saturating_sub(1));
        (earliest..len)
            .filter(|&i| self.held.is_char_boundary(i))
            .find(|&i| {
                let tail = &self.held[i..];
                self.stops.iter().any(|s| s.starts_with(tail))
            })
            .unwrap_or(len)
    }

    fn emit_held(&mut self, upto: usize) -> String {
        let rest = self.held.split_off(upto);
        let out = std::mem::replace(&mut self.held, rest);
        self.emitted.push_str(&out);
        out
    }
}

/// Decode the complete UTF-8 in `bytes`, leaving an incomplete trailing character there.
/// Invalid sequences anywhere else become U+FFFD (one per maximal invalid subsequence, as
/// `String::from_utf8_lossy` does) so a bad byte never stalls the stream.
fn decode_complete(bytes: &mut Vec<u8>) -> String {
    let mut out = String::new();
    let mut start = 0;
    loop {
        match std::str::from_utf8(&bytes[start..]) {
            Ok(s) => {
                out.push_str(s);
                start = bytes.len();
                break;
            }
            Err(e) => {
                let valid = start + e.valid_up_to();
                // Cannot fail: from_utf8 just reported bytes[start..valid] as valid.
                out.push_str(std::str::from_utf8(&bytes[start..valid]).unwrap_or_default());
                match e.error_len() {
                    Some(n) => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        start = valid + n;
                    }
                    None => {
                        // Incomplete at the end: wait for the next token's bytes.
                        start = valid;
                        break;
                    }
                }
            }
        }
    }
    bytes.drain(..start);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `chunks`, then finish; returns (every emitted piece, stopped).
    fn run(stops: &[&str], chunks: &[&[u8]]) -> (Vec<String>, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut ts = TextStream::new(&stops);
        let mut pieces = Vec::new();
        for c in chunks {
            let p = ts.push(c);
            pieces.push(p.text);
            if p.stopped {
                assert!(ts.stopped());
                pieces.push(ts.finish());
                return (pieces, true);
            }
        }
        pieces.push(ts.finish());
        let joined: String = pieces.concat();
        assert_eq!(ts.text_so_far(), joined);
        (pieces, false)
    }

    fn joined(stops: &[&str], chunks: &[&[u8]]) -> (String, bool) {
        let (p, s) = run(stops, chunks);
        (p.concat(), s)
    }

    const TEXT: &str = "Héllo, 世界! 😀👍🏽 done\n\nUser: ok ∑x";

    #[test]
    fn every_two_and_three_way_split_reassembles_exactly() {
        let b = TEXT.as_bytes();
        for i in 0..=b.len() {
            for j in i..=b.len() {
                let (out, stopped) = joined(&[], &[&b[..i], &b[i..j], &b[j..]]);
                assert_eq!(out, TEXT, "split at {i},{j}");
                assert!(!stopped);
            }
        }
    }

    #[test]
    fn byte_at_a_time_never_emits_partial_characters() {
        let chunks: Vec<&[u8]> = TEXT.as_bytes().chunks(1).collect();
        let (pieces, _) = run(&[], &chunks);
        assert_eq!(pieces.concat(), TEXT);
        // Each piece is a whole String, so it is valid UTF-8; a multi-byte char arrives whole
        // in the push of its last byte.
        assert!(pieces.iter().any(|p| p == "😀"));
        assert!(pieces.iter().any(|p| p == "世"));
    }

    #[test]
    fn stop_across_token_boundaries() {
        let (pieces, stopped) = run(
            &["\n\nUser:"],
            &[b"Hi", b" there", b"\n", b"\nUs", b"er:", b" more"],
        );
        assert!(stopped);
        assert_eq!(pieces.concat(), "Hi there");
        // The held-back "\n" pieces were never emitted before the stop completed.
        assert_eq!(pieces, ["Hi", " there", "", "", "", ""]);
    }

    #[test]
    fn held_back_prefix_that_is_not_a_stop_is_released_in_order() {
        let (pieces, stopped) = run(&["\n\nUser:"], &[b"a", b"\n", b"\nUs", b"e", b"x", b"b"]);
        assert!(!stopped);
        assert_eq!(pieces, ["a", "", "", "", "\n\nUsex", "b", ""]);
        // Only the part that can no longer start a stop is released.
        let (pieces, _) = run(&["\n\nUser:"], &[b"\n", b"\n\n", b"User:"]);
        assert_eq!(pieces, ["", "\n", "", ""]);
        // Held back until the end, then released by finish().
        let (pieces, _) = run(&["\n\nUser:"], &[b"a", b"\n", b"\nUs"]);
        assert_eq!(pieces, ["a", "", "", "\n\nUs"]);
    }

    #[test]
    fn overlapping_prefix_restarts_correctly() {
        // "aab" inside "aaab": the first 'a' is released, the match starts at the second.
        let (out, stopped) = joined(&["aab"], &[b"a", b"a", b"a", b"b", b"zz"]);
        assert_eq!((out.as_str(), stopped), ("a", true));
    }

    #[test]
    fn first_completed_stop_wins() {
        // Both complete in one push: earliest end wins.
        assert_eq!(
            joined(&["world", "lo w"], &[b"hello world"]),
            ("hel".to_string(), true)
        );
        assert_eq!(
            joined(&["lo w", "o"], &[b"hello world"]),
            ("hell".to_string(), true)
        );
        // Same end: the longer (earlier-starting) one.
        assert_eq!(
            joined(&["d", "world"], &[b"hello world!"]),
            ("hello ".to_string(), true)
        );
        // Chunking does not change which stop wins.
        assert_eq!(
            joined(&["abc", "b"], &[b"a", b"bc"]),
            joined(&["abc", "b"], &[b"abc"])
        );
        assert_eq!(joined(&["abc", "b"], &[b"abc"]), ("a".to_string(), true));
    }

    #[test]
    fn multibyte_stop_strings() {
        let stop = "世界";
        let text = "你好世界再见";
        let b = text.as_bytes();
        for i in 0..=b.len() {
            let (out, stopped) = joined(&[stop], &[&b[..i], &b[i..]]);
            assert_eq!((out.as_str(), stopped), ("你好", true), "split at {i}");
        }
        let (out, stopped) = joined(
            &["👍🏽"],
            &[&"ok 👍🏿👍🏽 x".as_bytes()[..5], &"ok 👍🏿👍🏽 x".as_bytes()[5..]],
        );
        assert_eq!((out.as_str(), stopped), ("ok 👍🏿", true));
    }

    #[test]
    fn nothing_after_stop() {
        let mut ts = TextStream::new(&["END".to_string()]);
        assert_eq!(ts.push(b"abEN").text, "ab");
        let p = ts.push(b"Dxyz");
        assert_eq!(
            p,
            Pushed {
                text: String::new(),
                stopped: true
            }
        );
        assert_eq!(
            ts.push(b"more"),
            Pushed {
                text: String::new(),
                stopped: true
            }
        );
        assert_eq!(ts.finish(), "");
        assert_eq!(ts.text_so_far(), "ab");
    }

    #[test]
    fn stop_split_inside_a_multibyte_character() {
        let stop = "é!";
        let b = "caf\u{e9}! no".as_bytes();
        // Split between the two bytes of 'é'.
        let (out, stopped) = joined(&[stop], &[&b[..4], &b[4..5], &b[5..]]);
        assert_eq!((out.as_str(), stopped), ("caf", true));
    }

    #[test]
    fn invalid_utf8_in_the_middle_becomes_replacement() {
        let (out, _) = joined(&[], &[b"a\xffb", b"c"]);
        assert_eq!(out, "a\u{FFFD}bc");
        // A lead byte followed by a non-continuation: U+FFFD, then the rest goes on.
        let (out, _) = joined(&[], &[b"x\xe4", b"yz"]);
        assert_eq!(out, "x\u{FFFD}yz");
        // Lone continuation bytes.
        let (out, _) = joined(&[], &[b"\x80\x80ok"]);
        assert_eq!(out, "\u{FFFD}\u{FFFD}ok");
        // Same result as from_utf8_lossy on the whole input, whatever the chunking.
        let bytes: &[u8] = b"a\xf0\x9f\x98 b\xed\xa0\x80c\xc3";
        let expected = String::from_utf8_lossy(bytes).into_owned();
        for i in 0..=bytes.len() {
            assert_eq!(
                joined(&[], &[&bytes[..i], &bytes[i..]]).0,
                expected,
                "split {i}"
            );
        }
    }

    #[test]
    fn incomplete_tail_becomes_replacement_on_finish() {
        let mut ts = TextStream::new(&[]);
        assert_eq!(ts.push("ok ".as_bytes()).text, "ok ");
        assert_eq!(ts.push(&"😀".as_bytes()[..2]).text, "");
        assert_eq!(ts.finish(), "\u{FFFD}");
        assert_eq!(ts.text_so_far(), "ok \u{FFFD}");
        // Later pushes are ignored.
        assert_eq!(ts.push(b"x").text, "");
    }

    /// A tiny deterministic generator (no rand dependency).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % n
        }
    }

    /// Reference: the stop completed first in the whole text (earliest end, then start).
    fn reference(text: &str, stops: &[String]) -> (String, bool) {
        let hit = stops
            .iter()
            .filter_map(|s| text.find(s.as_str()).map(|at| (at + s.len(), at)))
            .min();
        match hit {
            Some((_, at)) => (text[..at].to_string(), true),
            None => (text.to_string(), false),
        }
    }

    #[test]
    fn random_texts_stops_and_chunkings_match_the_reference() {
        let alphabet = ["a", "b", "\n", "é", "世", "😀"];
        let mut rng = Lcg(0x5eed);
        for case in 0..3000 {
            let text: String = (0..rng.next(24))
                .map(|_| alphabet[rng.next(alphabet.len())])
                .collect();
            let stops: Vec<String> = (0..rng.next(4))
                .map(|_| {
                    (0..1 + rng.next(3))
                        .map(|_| alphabet[rng.next(alphabet.len())])
                        .collect()
                })
                .collect();
            let bytes = text.as_bytes();
            let mut chunks = Vec::new();
            let mut at = 0;
            while at < bytes.len() {
                let n = 1 + rng.next(6).min(bytes.len() - at - 1);
                chunks.push(&bytes[at..at + n]);
                at += n;
            }
            let mut ts = TextStream::new(&stops);
            let mut out = String::new();
            let mut stopped = false;
            for c in &chunks {
                let p = ts.push(c);
                out.push_str(&p.text);
                // Emitted text is always a prefix of the final answer: nothing is retracted,
                // and no part of a stop string ever shows.
                assert!(
                    reference(&text, &stops).0.starts_with(&out),
                    "case {case}: {text:?} stops {stops:?} emitted {out:?}"
                );
                if p.stopped {
                    stopped = true;
                    break;
                }
            }
            out.push_str(&ts.finish());
            assert_eq!(
                (out, stopped),
                reference(&text, &stops),
                "case {case}: {text:?} stops {stops:?} chunks {chunks:?}"
            );
        }
    }

    #[test]
    fn usage_rates() {
        let u = Usage::new(10, 50, 100.0, 2000.0);
        assert_eq!(u.prompt_tokens_per_second, 100.0);
        assert_eq!(u.generation_tokens_per_second, 25.0);
        assert_eq!(Usage::new(3, 0, 0.0, 0.0).prompt_tokens_per_second, 0.0);
        let c = Completion {
            text: "hi".into(),
            finish_reason: FinishReason::Length,
            usage: u,
        };
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["finish_reason"], "length");
        assert_eq!(json["usage"]["completion_tokens"], 50);
        assert_eq!(serde_json::from_value::<Completion>(json).unwrap(), c);
        for (r, s) in [
            (FinishReason::Stop, "\"stop\""),
            (FinishReason::Cancelled, "\"cancelled\""),
            (FinishReason::Error, "\"error\""),
        ] {
            assert_eq!(serde_json::to_string(&r).unwrap(), s);
        }
    }
}
