//! Greedy reference fixtures (`tests/fixtures/*_greedy.json`), recorded by
//! `scripts/record-greedy-fixtures` from llama.cpp on several CPU kernel paths.
//!
//! Greedy text is exact on one CPU but not across SIMD paths: where the two best tokens nearly
//! tie, AVX-512 and AVX2 rounding can pick differently. Each fixture lists, per generated
//! position, the token chosen on every recorded path and its margin (logit difference) over the
//! runner-up on each. The tests compare output exactly up to the first position where the
//! paths disagree or a margin is below the fixture's `margin_threshold`, and no further; a
//! fixture whose trusted prefix is shorter than its `min_trusted_tokens` fails every test that
//! reads it, so a careless re-recording cannot quietly weaken the check.
//!
//! Python reads the same files with the same rule (`bindings/python/tests/conftest.py`).

use serde_json::Value;

/// What a host's test must reproduce, exactly, on any x86-64 CPU.
#[derive(Debug, Clone)]
pub struct GreedyFixture {
    /// The prompt given to `generate` (for chat fixtures: the rendered template).
    pub prompt: String,
    /// Chat fixtures: the messages, as JSON (an array of {role, content}).
    pub messages: Option<String>,
    /// Tokens to generate: the trusted prefix's length.
    pub n_predict: u32,
    /// The text of the trusted prefix: what greedy generation of `n_predict` tokens must give.
    pub text: String,
}

impl GreedyFixture {
    /// Read `tests/fixtures/NAME` and derive the trusted prefix. Panics (failing the test)
    /// with the reason when the file is missing, malformed, inconsistent or too weak.
    pub fn load(name: &str) -> GreedyFixture {
        let path = super::repo_root().join("tests/fixtures").join(name);
        let raw = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
        let v: Value = serde_json::from_str(&raw)
            .unwrap_or_else(|e| panic!("fixture {} is not JSON: {e}", path.display()));
        GreedyFixture::from_json(&v).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
    }

    /// The rule itself, on a parsed fixture.
    pub fn from_json(v: &Value) -> Result<GreedyFixture, String> {
        let threshold = v["margin_threshold"]
            .as_f64()
            .ok_or("no margin_threshold")?;
        let min_trusted = v["min_trusted_tokens"]
            .as_u64()
            .ok_or("no min_trusted_tokens")? as usize;
        let tokens = v["tokens"].as_array().ok_or("no tokens")?;
        let mut text = String::new();
        let mut trusted = 0;
        for (i, t) in tokens.iter().enumerate() {
            let agree = t["same_on_all_paths"]
                .as_bool()
                .ok_or_else(|| format!("token {i}: no same_on_all_paths"))?;
            let margins = t["margins"]
                .as_object()
                .filter(|m| !m.is_empty())
                .ok_or_else(|| format!("token {i}: no margins"))?;
            let mut smallest = f64::INFINITY;
            for (path, m) in margins {
                let m = m
                    .as_f64()
                    .ok_or_else(|| format!("token {i}: margin on {path} is not a number"))?;
                smallest = smallest.min(m);
            }
            if !agree || smallest < threshold {
                break;
            }
            text.push_str(
                t["text"]
                    .as_str()
                    .ok_or_else(|| format!("token {i}: no text"))?,
            );
            trusted = i + 1;
        }
        if trusted < min_trusted {
            return Err(format!(
                "only the first {trusted} tokens hold on every recorded CPU path (margin >= \
                 {threshold}), fewer than min_trusted_tokens = {min_trusted}: record it again \
                 with a prompt whose output has no near-tie early"
            ));
        }
        // The recorded summary must agree with the tokens, so an edit to either is caught.
        if v["trusted_tokens"].as_u64() != Some(trusted as u64)
            || v["trusted_completion"].as_str() != Some(text.as_str())
        {
            return Err(format!(
                "trusted_tokens / trusted_completion disagree with the tokens (which give \
                 {trusted} tokens, {text:?}): the file was edited by hand; record it again"
            ));
        }
        Ok(GreedyFixture {
            prompt: v["prompt"].as_str().ok_or("no prompt")?.to_string(),
            messages: v.get("messages").map(Value::to_string),
            n_predict: trusted as u32,
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::GreedyFixture;
    use serde_json::json;

    fn fixture(tokens: serde_json::Value, trusted: u64, text: &str) -> serde_json::Value {
        json!({
            "prompt": "p", "margin_threshold": 0.5, "min_trusted_tokens": 2,
            "trusted_tokens": trusted, "trusted_completion": text, "tokens": tokens,
        })
    }

    fn token(text: &str, agree: bool, a: f64, b: f64) -> serde_json::Value {
        json!({"text": text, "same_on_all_paths": agree, "margins": {"avx512": a, "avx2": b}})
    }

    #[test]
    fn trusted_prefix_ends_at_the_first_near_tie_on_any_path() {
        let tokens = json!([
            token(" a", true, 3.0, 2.9),
            token(" b", true, 1.0, 0.6),
            token(" c", true, 2.0, 0.4),
            token(" d", true, 5.0, 5.0)
        ]);
        let f = GreedyFixture::from_json(&fixture(tokens, 2, " a b")).unwrap();
        assert_eq!((f.n_predict, f.text.as_str()), (2, " a b"));
    }

    #[test]
    fn trusted_prefix_ends_where_paths_disagree() {
        let tokens = json!([
            token(" a", true, 3.0, 2.9),
            token(" b", true, 3.0, 3.0),
            token(" c", false, 2.0, 2.0)
        ]);
        let f = GreedyFixture::from_json(&fixture(tokens, 2, " a b")).unwrap();
        assert_eq!(f.n_predict, 2);
    }

    #[test]
    fn a_prefix_shorter_than_the_minimum_or_an_edited_summary_is_refused() {
        let tokens = json!([token(" a", true, 3.0, 0.1), token(" b", true, 3.0, 3.0)]);
        let err = GreedyFixture::from_json(&fixture(tokens, 0, "")).unwrap_err();
        assert!(err.contains("fewer than min_trusted_tokens"), "{err}");
        let tokens = json!([token(" a", true, 3.0, 3.0), token(" b", true, 3.0, 3.0)]);
        let err = GreedyFixture::from_json(&fixture(tokens, 2, " a c")).unwrap_err();
        assert!(err.contains("edited by hand"), "{err}");
    }
}
