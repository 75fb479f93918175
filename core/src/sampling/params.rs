//! `GenerateParams`: what to generate and how to sample it, with defaults and validation.
//! Hosts pass them as a JSON object; an unknown key or a wrong type is an `InvalidArgument`
//! that names the key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::options::parse_json_object;

/// Sampling and stopping parameters for one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateParams {
    /// Most tokens to generate (>= 1).
    pub max_tokens: u32,
    /// Softmax temperature; 0 = greedy (always the most likely token).
    pub temperature: f32,
    /// Keep only the k most likely tokens; 0 = disabled.
    pub top_k: i32,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p, in
    /// (0, 1]; 1 = disabled.
    pub top_p: f32,
    /// Drop tokens less likely than min_p times the most likely one, in [0, 1]; 0 = disabled.
    pub min_p: f32,
    /// Penalty on recently seen tokens (> 0); 1 = off.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalties look at; 0 = none, -1 = the whole context.
    pub repeat_last_n: i32,
    /// OpenAI-style frequency penalty, in [-2, 2].
    pub frequency_penalty: f32,
    /// OpenAI-style presence penalty, in [-2, 2].
    pub presence_penalty: f32,
    /// Seed for the sampler; `None` = the model's default seed, else random per call. The same
    /// seed, parameters and prompt give the same tokens in every backend and uml version.
    pub seed: Option<u32>,
    /// Stop generating when any of these strings appears; it is not part of the output.
    pub stop: Vec<String>,
    /// Bias added to a token's logit (token id -> bias; `f32::NEG_INFINITY` bans the token).
    /// In JSON the keys are strings of integers: `{"15043": -100}`.
    pub logit_bias: BTreeMap<i32, f32>,
    /// A grammar constraining the output: GBNF (llama.cpp's syntax, starting at `root`), or
    /// llguidance's Lark syntax (starting at `start`, or with a `%llguidance` header).
    pub grammar: Option<String>,
    /// A JSON schema constraining the output. Not together with `grammar`.
    pub json_schema: Option<serde_json::Value>,
    /// Run this generation in a context of its own, never batched with other callers'
    /// generations: the same logits bit for bit as a lone caller gets (batching can change
    /// the last bits, and a near-tie with them). Costs a context of its own (allocated on
    /// demand) and the speed batching gives. Default false.
    pub deterministic: bool,
    /// When the context is full, drop the older half of what follows the first token and go
    /// on (as llama.cpp's context shift), instead of stopping with finish reason `length`.
    /// The first token stays, as an attention sink. A model whose memory cannot shift
    /// (sliding-window attention, recurrent state) refuses the option with `Unsupported`.
    /// Default false.
    pub context_shift: bool,
    /// The LoRA adapters this generation runs with, by the names the model loaded them under,
    /// each with its scale; those not listed are off (`[]`: the base model). `None`: the
    /// scales the model was loaded with. Several may be on only at the scales they were loaded
    /// with (see `crate::lora::choose`).
    pub lora: Option<Vec<LoraScale>>,
    /// With a draft model loaded (`LoadOptions::draft_model`): the most tokens it drafts per
    /// step for the model to verify in one decode (default 16; 0: no drafting). With the
    /// model's own prediction heads (`LoadOptions::mtp`) at most 3, llama.cpp's MTP default:
    /// a head trained to look one token ahead guesses worse at each further step.
    pub draft_max: u32,
    /// Drafts shorter than this are not verified (the step decodes one token as without a
    /// draft). Default 0.
    pub draft_min: u32,
    /// The draft stops drafting at a token it gives less than this probability. Default 0
    /// (llama.cpp's current default: draft `draft_max` tokens).
    pub draft_p_min: f32,
    /// A draft model stops drafting at a near-tie: a token whose logit leads the draft's
    /// runner-up by less than this. The model breaks such ties its own way more often than
    /// not, and every token drafted after a rejected one is wasted. Default 0.25 (with
    /// SmolLM2 F32 and its Q4_1 draft it stopped before 19 of 21 rejected tokens, and at 5%
    /// of kept ones); 0 drafts through ties. The model's own prediction heads (`mtp`) stop
    /// by `draft_p_min` only.
    pub draft_margin_min: f32,
}

/// `GenerateParams::draft_margin_min` by default, in logits.
pub const DEFAULT_DRAFT_MARGIN_MIN: f32 = 0.25;

/// The most tokens a draft model may propose per step.
pub const MAX_DRAFT: u32 = 64;

/// One adapter of `GenerateParams::lora`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraScale {
    pub name: String,
    /// Default 1 (as trained); 0 is the base model.
    #[serde(default = "one")]
    pub scale: f32,
}

fn one() -> f32 {
    1.0
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_tokens: 256,
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: None,
            stop: Vec::new(),
            logit_bias: BTreeMap::new(),
            grammar: None,
            json_schema: None,
            deterministic: false,
            context_shift: false,
            lora: None,
            draft_max: 16,
            draft_min: 0,
            draft_p_min: 0.0,
            draft_margin_min: DEFAULT_DRAFT_MARGIN_MIN,
        }
    }
}

impl GenerateParams {
    /// Every JSON key, in declaration order (used in "unknown key" messages).
    pub const FIELDS: &'static [&'static str] = &[
        "max_tokens",
        "temperature",
        "top_k",
        "top_p",
        "min_p",
        "repeat_penalty",
        "repeat_last_n",
        "frequency_penalty",
        "presence_penalty",
        "seed",
        "stop",
        "logit_bias",
        "grammar",
        "json_schema",
        "deterministic",
        "context_shift",
        "lora",
        "draft_max",
        "draft_min",
        "draft_p_min",
        "draft_margin_min",
    ];

    /// The defaults with temperature 0: deterministic output, handy for tests.
    pub fn greedy() -> Self {
        GenerateParams {
            temperature: 0.0,
            ..GenerateParams::default()
        }
    }

    /// Whether sampling is greedy (temperature 0).
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Parse a JSON object of parameters (an empty string, `null` or `{}` gives the defaults;
    /// a `null` value means "default" for that key) and validate it.
    pub fn from_json(json: &str) -> Result<Self> {
        let params: GenerateParams = parse_json_object(json, "generate parameter", Self::FIELDS)?;
        params.validate()?;
        Ok(params)
    }

    /// Check every field; the error names the field, the value and what is allowed.
    pub fn validate(&self) -> Result<()> {
        fn bad(field: &str, value: impl std::fmt::Display, allowed: &str) -> Error {
            Error::invalid_argument(format!(
                "generate parameter {field} = {value} is invalid: {allowed}"
            ))
        }
        if self.max_tokens == 0 {
            return Err(bad("max_tokens", 0, "it must be >= 1 (default 256)"));
        }
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(bad(
                "temperature",
                self.temperature,
                "it must be >= 0 (0 = greedy; default 0.8)",
            ));
        }
        if self.top_k < 0 {
            return Err(bad(
                "top_k",
                self.top_k,
                "it must be >= 0 (0 = disabled; default 40)",
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(bad(
                "top_p",
                self.top_p,
                "it must be in (0, 1] (1 = disabled; default 0.95)",
            ));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(bad(
                "min_p",
                self.min_p,
                "it must be in [0, 1] (0 = disabled; default 0.05)",
            ));
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return Err(bad(
                "repeat_penalty",
                self.repeat_penalty,
                "it must be > 0 (1 = off, the default)",
            ));
        }
        if self.repeat_last_n < -1 {
            return Err(bad(
                "repeat_last_n",
                self.repeat_last_n,
                "it must be >= -1 (-1 = the whole context, 0 = none; default 64)",
            ));
        }
        for (field, v) in [
            ("frequency_penalty", self.frequency_penalty),
            ("presence_penalty", self.presence_penalty),
        ] {
            if !(-2.0..=2.0).contains(&v) {
                return Err(bad(
                    field,
                    v,
                    "it must be in [-2, 2] (0 = off, the default)",
                ));
            }
        }
        if let Some(i) = self.stop.iter().position(|s| s.is_empty()) {
            return Err(bad(
                &format!("stop[{i}]"),
                "\"\"",
                "stop strings must not be empty (remove it)",
            ));
        }
        if !(0.0..=1.0).contains(&self.draft_p_min) {
            return Err(bad(
                "draft_p_min",
                self.draft_p_min,
                "it must be in [0, 1] (default 0)",
            ));
        }
        if !(self.draft_margin_min >= 0.0 && self.draft_margin_min.is_finite()) {
            return Err(bad(
                "draft_margin_min",
                self.draft_margin_min,
                "it must be a finite number >= 0, in logits (0 = draft through near-ties; \
                 default 0.25)",
            ));
        }
        if self.draft_max > MAX_DRAFT {
            return Err(bad(
                "draft_max",
                self.draft_max,
                &format!("it must be 0 to {MAX_DRAFT} (0 = no drafting; default 16)"),
            ));
        }
        for (i, lora) in self.lora.iter().flatten().enumerate() {
            if !lora.scale.is_finite() {
                return Err(bad(
                    &format!("lora[{i}].scale"),
                    lora.scale,
                    "it must be a finite number (1 = as trained, 0 = off)",
                ));
            }
        }
        for (&token, &bias) in &self.logit_bias {
            if token < 0 {
                return Err(bad(
                    "logit_bias key",
                    token,
                    "token ids are >= 0 (tokenize the text to find them)",
                ));
            }
            if bias.is_nan() || bias == f32::INFINITY {
                return Err(Error::invalid_argument(format!(
                    "generate parameter logit_bias[{token}] = {bias} is invalid: a bias must be a \
                     finite number (or -inf to ban the token)"
                )));
            }
        }
        if let Some(g) = &self.grammar {
            if g.trim().is_empty() {
                return Err(bad(
                    "grammar",
                    "\"\"",
                    "pass a GBNF grammar, or omit it for unconstrained output",
                ));
            }
        }
        if let Some(schema) = &self.json_schema {
            if !(schema.is_object() || schema.is_boolean()) {
                return Err(bad(
                    "json_schema",
                    schema,
                    "a JSON schema is an object (or true/false)",
                ));
            }
        }
        if self.grammar.is_some() && self.json_schema.is_some() {
            return Err(Error::invalid_argument(
                "generate parameters grammar and json_schema were both given: pass only one",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn err(json: &str) -> Error {
        match GenerateParams::from_json(json) {
            Ok(p) => panic!("expected an error for {json}, got {p:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn defaults() {
        let d = GenerateParams::default();
        assert_eq!(d.max_tokens, 256);
        assert_eq!(d.temperature, 0.8);
        assert_eq!(d.top_k, 40);
        assert_eq!(d.top_p, 0.95);
        assert_eq!(d.min_p, 0.05);
        assert_eq!(d.repeat_penalty, 1.0);
        assert_eq!(d.repeat_last_n, 64);
        assert_eq!((d.frequency_penalty, d.presence_penalty), (0.0, 0.0));
        assert!(d.seed.is_none() && d.stop.is_empty() && d.logit_bias.is_empty());
        assert!(d.grammar.is_none() && d.json_schema.is_none());
        assert!(!d.is_greedy());
        d.validate().unwrap();
        for s in ["", "\n", "{}", "null"] {
            assert_eq!(GenerateParams::from_json(s).unwrap(), d, "{s:?}");
        }
        let g = GenerateParams::greedy();
        assert!(g.is_greedy());
        assert_eq!(g.max_tokens, 256);
        g.validate().unwrap();
    }

    #[test]
    fn fields_list_matches_the_struct() {
        let v = serde_json::to_value(GenerateParams::default()).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        let mut known = GenerateParams::FIELDS.to_vec();
        known.sort_unstable();
        assert_eq!(keys, known);
    }

    #[test]
    fn parses_every_field_and_round_trips() {
        let p = GenerateParams::from_json(
            r#"{"max_tokens": 64, "temperature": 0, "top_k": 0, "top_p": 1, "min_p": 0,
                "repeat_penalty": 1.1, "repeat_last_n": -1, "frequency_penalty": -2,
                "presence_penalty": 2, "seed": 42, "stop": ["\n\nUser:", "</s>"],
                "logit_bias": {"15043": -100, "2": 5.5},
                "json_schema": {"type": "object"}}"#,
        )
        .unwrap();
        assert_eq!(p.max_tokens, 64);
        assert!(p.is_greedy());
        assert_eq!((p.top_k, p.top_p, p.min_p), (0, 1.0, 0.0));
        assert_eq!(p.repeat_penalty, 1.1);
        assert_eq!(p.repeat_last_n, -1);
        assert_eq!((p.frequency_penalty, p.presence_penalty), (-2.0, 2.0));
        assert_eq!(p.seed, Some(42));
        assert_eq!(p.stop, vec!["\n\nUser:".to_string(), "</s>".to_string()]);
        assert_eq!(p.logit_bias, BTreeMap::from([(2, 5.5), (15043, -100.0)]));
        assert_eq!(p.json_schema, Some(serde_json::json!({"type": "object"})));
        let json = serde_json::to_string(&p).unwrap();
        assert!(
            json.contains(r#""logit_bias":{"2":5.5,"15043":-100.0}"#),
            "{json}"
        );
        assert_eq!(GenerateParams::from_json(&json).unwrap(), p);

        let g = GenerateParams::from_json(r#"{"grammar": "root ::= \"yes\" | \"no\""}"#).unwrap();
        assert_eq!(g.grammar.as_deref(), Some(r#"root ::= "yes" | "no""#));
    }

    #[test]
    fn unknown_key_is_named_with_the_known_ones() {
        let e = err(r#"{"temprature": 0.5}"#);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            e.message(),
            "unknown generate parameter 'temprature'; known: max_tokens, temperature, top_k, \
             top_p, min_p, repeat_penalty, repeat_last_n, frequency_penalty, presence_penalty, \
             seed, stop, logit_bias, grammar, json_schema, deterministic, context_shift, lora, \
             draft_max, draft_min, draft_p_min, draft_margin_min"
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        for (json, field) in [
            (r#"{"temperature": "hot"}"#, "'temperature'"),
            (r#"{"max_tokens": -1}"#, "'max_tokens'"),
            (r#"{"max_tokens": 1.5}"#, "'max_tokens'"),
            (r#"{"stop": "END"}"#, "'stop'"),
            (r#"{"seed": -1}"#, "'seed'"),
            (r#"{"logit_bias": {"abc": 1}}"#, "'logit_bias'"),
            (r#"{"logit_bias": [1, 2]}"#, "'logit_bias'"),
        ] {
            let e = err(json);
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{json}");
            assert!(e.message().contains(field), "{json}: {e}");
        }
        let e = err(r#"{"temperature": "hot"}"#);
        assert!(e.message().contains("\"hot\""), "{e}");
        let e = err("[]");
        assert!(e.message().contains("must be a JSON object"), "{e}");
        let e = err("{");
        assert!(e.message().contains("not valid JSON"), "{e}");
    }

    #[test]
    fn range_checks_name_field_value_and_range() {
        for (json, needle) in [
            (r#"{"max_tokens": 0}"#, "max_tokens = 0"),
            (r#"{"temperature": -1}"#, "temperature = -1"),
            (r#"{"top_k": -1}"#, "top_k = -1"),
            (r#"{"top_p": 0}"#, "top_p = 0"),
            (r#"{"top_p": 1.5}"#, "top_p = 1.5"),
            (r#"{"min_p": -0.1}"#, "min_p = -0.1"),
            (r#"{"min_p": 1.01}"#, "min_p = 1.01"),
            (r#"{"repeat_penalty": 0}"#, "repeat_penalty = 0"),
            (r#"{"repeat_last_n": -2}"#, "repeat_last_n = -2"),
            (r#"{"frequency_penalty": 2.5}"#, "frequency_penalty = 2.5"),
            (r#"{"presence_penalty": -3}"#, "presence_penalty = -3"),
            (r#"{"stop": ["a", ""]}"#, "stop[1]"),
            (r#"{"logit_bias": {"-3": 1}}"#, "logit_bias key = -3"),
            (r#"{"grammar": ""}"#, "grammar"),
            (r#"{"json_schema": 5}"#, "json_schema = 5"),
        ] {
            let e = err(json);
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{json}");
            assert!(e.message().contains(needle), "{json}: {e}");
        }
        assert!(err(r#"{"top_p": 0}"#).message().contains("(0, 1]"));
        assert!(err(r#"{"temperature": -1}"#).message().contains(">= 0"));
        let e = err(r#"{"grammar": "root ::= \"a\"", "json_schema": {}}"#);
        assert!(e.message().contains("grammar and json_schema"), "{e}");
    }

    #[test]
    fn validate_catches_non_finite_values_set_from_rust() {
        let mut p = GenerateParams::greedy();
        p.temperature = f32::NAN;
        assert!(p
            .validate()
            .unwrap_err()
            .message()
            .contains("temperature = NaN"));
        let mut p = GenerateParams::greedy();
        p.top_p = f32::NAN;
        assert!(p.validate().is_err());
        let mut p = GenerateParams::greedy();
        p.logit_bias.insert(7, f32::NEG_INFINITY);
        p.validate().unwrap();
        p.logit_bias.insert(8, f32::NAN);
        assert!(p
            .validate()
            .unwrap_err()
            .message()
            .contains("logit_bias[8]"));
    }
}
