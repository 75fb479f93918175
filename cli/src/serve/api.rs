//! OpenAI's wire format: the requests `uml serve` accepts and the responses and errors it
//! sends, translated to and from core's types. Fields clients send that uml does not use are
//! accepted and ignored; invalid values are errors naming the field.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use uml_core::sampling::GenerateParams;
use uml_core::stream::{Completion, FinishReason, Usage};
use uml_core::{Error, ErrorKind};

/// An error as OpenAI sends it: an HTTP status and `{"error": {message, type, param, code}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_string),
            code: None,
        }
    }

    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, kind, code) = match e.kind() {
            ErrorKind::InvalidArgument | ErrorKind::ContextOverflow | ErrorKind::Unsupported => {
                (400, "invalid_request_error", None)
            }
            ErrorKind::NotFound => (404, "invalid_request_error", Some("model_not_found")),
            ErrorKind::Busy => (429, "rate_limit_error", Some("busy")),
            ErrorKind::OutOfMemory => (503, "server_error", Some("out_of_memory")),
            ErrorKind::ModelClosed | ErrorKind::Cancelled => (503, "server_error", None),
            _ => (500, "server_error", None),
        };
        ApiError {
            status,
            message: e.message().to_string(),
            kind,
            param: None,
            code,
        }
    }
}

/// `stop`: a string or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// What chat and text completions share.
#[derive(Deserialize)]
pub struct Common {
    pub model: String,
    #[serde(default)]
    pub stream: bool,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    seed: Option<i64>,
    stop: Option<Stop>,
    logit_bias: Option<Map<String, Value>>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    n: Option<u32>,
    response_format: Option<Value>,
    /// uml's extension (llama-server has one like it): the LoRA adapters to run with, by name.
    lora: Option<Vec<uml_core::sampling::LoraScale>>,
    /// uml's extensions for a model served with a draft (llama-server's speculative.* alike).
    draft_max: Option<u32>,
    draft_min: Option<u32>,
    draft_p_min: Option<f32>,
    draft_margin_min: Option<f32>,
}

impl Common {
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }

    /// Core's parameters; OpenAI's defaults where uml's differ (temperature 1, no top-k or
    /// min-p).
    pub fn params(&self) -> Result<GenerateParams, ApiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::invalid("only n = 1 is supported", Some("n")));
        }
        let mut p = GenerateParams {
            temperature: self.temperature.unwrap_or(1.0),
            top_p: self.top_p.unwrap_or(1.0),
            top_k: 0,
            min_p: 0.0,
            ..GenerateParams::default()
        };
        if let Some(n) = self.max_completion_tokens.or(self.max_tokens) {
            p.max_tokens = n;
        }
        if let Some(seed) = self.seed {
            p.seed = Some(seed as u32);
        }
        if let Some(f) = self.frequency_penalty {
            p.frequency_penalty = f;
        }
        if let Some(f) = self.presence_penalty {
            p.presence_penalty = f;
        }
        p.lora = self.lora.clone();
        p.draft_max = self.draft_max.unwrap_or(p.draft_max);
        p.draft_min = self.draft_min.unwrap_or(p.draft_min);
        p.draft_p_min = self.draft_p_min.unwrap_or(p.draft_p_min);
        p.draft_margin_min = self.draft_margin_min.unwrap_or(p.draft_margin_min);
        p.stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        for (token, bias) in self.logit_bias.iter().flatten() {
            let token: i32 = token.parse().map_err(|_| {
                ApiError::invalid(
                    format!("logit_bias key {token:?} is not a token id"),
                    Some("logit_bias"),
                )
            })?;
            let bias = bias.as_f64().ok_or_else(|| {
                ApiError::invalid(
                    format!("logit_bias value for {token} is not a number"),
                    Some("logit_bias"),
                )
            })?;
            p.logit_bias.insert(token, bias as f32);
        }
        match self
            .response_format
            .as_ref()
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str)
        {
            None | Some("text") => {}
            Some("json_object") => p.json_schema = Some(json!({"type": "object"})),
            Some("json_schema") => {
                let schema = self
                    .response_format
                    .as_ref()
                    .and_then(|f| f.pointer("/json_schema/schema"))
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "response_format json_schema needs json_schema.schema",
                            Some("response_format"),
                        )
                    })?;
                p.json_schema = Some(schema.clone());
            }
            Some(other) => {
                return Err(ApiError::invalid(
                    format!("response_format type {other:?}: use text, json_object or json_schema"),
                    Some("response_format"),
                ))
            }
        }
        p.validate().map_err(ApiError::from)?;
        Ok(p)
    }
}

/// `POST /v1/chat/completions`.
#[derive(Deserialize)]
pub struct ChatRequest {
    #[serde(flatten)]
    pub common: Common,
    pub messages: Value,
}

/// `POST /v1/completions`.
#[derive(Deserialize)]
pub struct CompletionRequest {
    #[serde(flatten)]
    pub common: Common,
    pub prompt: Value,
}

impl CompletionRequest {
    /// One prompt: a string, or a list holding one string.
    pub fn prompt(&self) -> Result<String, ApiError> {
        match &self.prompt {
            Value::String(s) => Ok(s.clone()),
            Value::Array(items) if items.len() == 1 && items[0].is_string() => {
                Ok(items[0].as_str().unwrap_or_default().to_string())
            }
            _ => Err(ApiError::invalid(
                "prompt must be a string (one prompt per request)",
                Some("prompt"),
            )),
        }
    }
}

/// `POST /v1/embeddings`.
#[derive(Deserialize)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: Value,
    /// "float" (the default) or "base64" (little-endian f32 bytes, which OpenAI's Node client
    /// asks for by default).
    #[serde(default)]
    encoding_format: Option<String>,
}

impl EmbeddingRequest {
    /// One vector as the request's encoding asks.
    pub fn encode(&self, vector: &[f32]) -> Result<Value, ApiError> {
        match self.encoding_format.as_deref() {
            None | Some("float") => Ok(json!(vector)),
            Some("base64") => {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                Ok(Value::String(base64(&bytes)))
            }
            Some(other) => Err(ApiError::invalid(
                format!("encoding_format {other:?}: use float or base64"),
                Some("encoding_format"),
            )),
        }
    }

    pub fn texts(&self) -> Result<Vec<String>, ApiError> {
        let bad =
            || ApiError::invalid("input must be a string or a list of strings", Some("input"));
        match &self.input {
            Value::String(s) => Ok(vec![s.clone()]),
            Value::Array(items) if !items.is_empty() => items
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
                .collect(),
            _ => Err(bad()),
        }
    }
}

pub fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Length => "length",
        _ => "stop",
    }
}

/// A completion's usage; speculative decoding's drafted tokens in OpenAI's fields for
/// predicted outputs (kept: accepted, the rest: rejected).
pub fn usage(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_prompt_tokens},
        "completion_tokens_details": {
            "accepted_prediction_tokens": u.accepted_tokens,
            "rejected_prediction_tokens": u.drafted_tokens.saturating_sub(u.accepted_tokens),
        },
    })
}

/// A whole chat completion.
pub fn chat_completion(id: &str, model: &str, created: u64, c: &Completion) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": c.text},
            "finish_reason": finish_reason(c.finish_reason),
            "logprobs": null,
        }],
        "usage": usage(&c.usage),
    })
}

/// One streamed chat chunk: `delta` text, or the end (`finish`), or usage alone.
pub fn chat_chunk(
    id: &str,
    model: &str,
    created: u64,
    delta: Value,
    finish: Option<&str>,
) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
    })
}

/// A whole text completion.
pub fn text_completion(id: &str, model: &str, created: u64, c: &Completion) -> Value {
    json!({
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "text": c.text,
            "finish_reason": finish_reason(c.finish_reason),
            "logprobs": null,
        }],
        "usage": usage(&c.usage),
    })
}

/// One streamed text completion chunk.
pub fn text_chunk(id: &str, model: &str, created: u64, text: &str, finish: Option<&str>) -> Value {
    json!({
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": null}],
    })
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&1.0f32.to_le_bytes()), "AACAPw==");
    }
}
