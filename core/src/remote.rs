//! Remote models: an OpenAI-compatible endpoint (vLLM, llama-server, Ollama, another
//! `uml serve`) standing in for a local model. A remote model has no weights or logits here,
//! so it is not a backend under the generation loop: `Model` hands its generate, chat and
//! embed calls to the endpoint whole, streamed, with the same parameters, cancellation,
//! completion and errors as a local model. This is how uml scales past one machine: to an
//! existing serving engine, not a cluster of its own.

use crate::chat::ChatMessage;
use crate::generate::{per_second, Sink};
use crate::sampling::GenerateParams;
use crate::stream::{Completion, FinishReason, Usage};
use crate::{CancelToken, Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::BufRead;
use std::time::{Duration, Instant};

/// Where a remote model is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteEndpoint {
    /// The API's base URL, up to and including `/v1` (`http://10.0.0.5:8080/v1`).
    pub url: String,
    /// The model name the endpoint knows it by.
    pub model: String,
    /// Sent as `Authorization: Bearer <key>` when set.
    #[serde(default)]
    pub api_key: Option<String>,
}

impl RemoteEndpoint {
    /// Parse `URL#MODEL` (the model name after `#`), with an optional key.
    pub fn parse(spec: &str, api_key: Option<String>) -> Result<RemoteEndpoint> {
        let (url, model) = spec.rsplit_once('#').ok_or_else(|| {
            Error::invalid_argument(format!(
                "remote endpoint {spec:?}: expected URL#MODEL, e.g. http://host:8080/v1#llama"
            ))
        })?;
        let endpoint = RemoteEndpoint {
            url: url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            api_key,
        };
        endpoint.validate()?;
        Ok(endpoint)
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(Error::invalid_argument(format!(
                "remote endpoint url {:?}: use an http:// or https:// URL ending in /v1",
                self.url
            )));
        }
        if self.model.is_empty() {
            return Err(Error::invalid_argument(
                "remote endpoint: the model name is empty",
            ));
        }
        Ok(())
    }
}

/// The client side of one remote model.
pub(crate) struct RemoteClient {
    endpoint: RemoteEndpoint,
    agent: ureq::Agent,
}

impl std::fmt::Debug for RemoteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteClient")
            .field("url", &self.endpoint.url)
            .field("model", &self.endpoint.model)
            .finish()
    }
}

impl RemoteClient {
    pub fn new(endpoint: RemoteEndpoint) -> Result<RemoteClient> {
        endpoint.validate()?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .build()
            .into();
        Ok(RemoteClient { endpoint, agent })
    }

    pub fn endpoint(&self) -> &RemoteEndpoint {
        &self.endpoint
    }

    /// The endpoint's answer to `GET /models`: that it is up and serves the model.
    pub fn check(&self) -> Result<()> {
        let response = self.send(
            self.agent
                .get(format!("{}/models", self.endpoint.url))
                .call(),
        )?;
        let listed: Value = serde_json::from_reader(response.into_body().into_reader())
            .map_err(|e| self.error(format!("its model list is not JSON: {e}")))?;
        let known = listed["data"]
            .as_array()
            .is_some_and(|d| d.iter().any(|m| m["id"] == self.endpoint.model.as_str()));
        if !known {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "the remote endpoint {} does not serve a model named {:?}",
                    self.endpoint.url, self.endpoint.model
                ),
            ));
        }
        Ok(())
    }

    /// A chat completion over `messages`, streamed to `sink`.
    pub fn chat(
        &self,
        messages: &[ChatMessage],
        params: &GenerateParams,
        cancel: Option<&CancelToken>,
        sink: Sink<'_>,
    ) -> Result<Completion> {
        let mut body = self.body(params)?;
        body["messages"] = serde_json::to_value(messages)
            .map_err(|e| Error::internal(format!("messages to JSON: {e}")))?;
        self.stream("chat/completions", body, cancel, sink, |choice| {
            choice["delta"]["content"].as_str().map(str::to_string)
        })
    }

    /// A text completion of `prompt`, streamed to `sink`.
    pub fn complete(
        &self,
        prompt: &str,
        params: &GenerateParams,
        cancel: Option<&CancelToken>,
        sink: Sink<'_>,
    ) -> Result<Completion> {
        let mut body = self.body(params)?;
        body["prompt"] = json!(prompt);
        self.stream("completions", body, cancel, sink, |choice| {
            choice["text"].as_str().map(str::to_string)
        })
    }

    /// One vector per text.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let body =
            json!({"model": self.endpoint.model, "input": texts, "encoding_format": "float"});
        let response = self.post("embeddings", &body)?;
        let reply: Value = serde_json::from_reader(response.into_body().into_reader())
            .map_err(|e| self.error(format!("its embeddings are not JSON: {e}")))?;
        let data = reply["data"]
            .as_array()
            .filter(|d| d.len() == texts.len())
            .ok_or_else(|| self.error(format!("expected {} embeddings", texts.len())))?;
        data.iter()
            .map(|d| {
                d["embedding"]
                    .as_array()
                    .map(|v| {
                        v.iter()
                            .map(|x| x.as_f64().unwrap_or(f64::NAN) as f32)
                            .collect()
                    })
                    .ok_or_else(|| self.error("an embedding is not a list of numbers"))
            })
            .collect()
    }

    /// The sampling part of a request: OpenAI's names for what the endpoint understands.
    fn body(&self, params: &GenerateParams) -> Result<Value> {
        params.validate()?;
        if params.grammar.is_some() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "a remote model takes no GBNF grammar (OpenAI's API has none); use json_schema",
            ));
        }
        let mut body = json!({
            "model": self.endpoint.model,
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "frequency_penalty": params.frequency_penalty,
            "presence_penalty": params.presence_penalty,
        });
        if let Some(seed) = params.seed {
            body["seed"] = json!(seed);
        }
        if !params.stop.is_empty() {
            body["stop"] = json!(params.stop);
        }
        if !params.logit_bias.is_empty() {
            let bias: serde_json::Map<String, Value> = params
                .logit_bias
                .iter()
                .map(|(t, b)| (t.to_string(), json!(b)))
                .collect();
            body["logit_bias"] = Value::Object(bias);
        }
        if let Some(schema) = &params.json_schema {
            body["response_format"] = json!({"type": "json_schema",
                                             "json_schema": {"name": "output", "schema": schema}});
        }
        Ok(body)
    }

    /// Post a streamed request and pass each piece `text_of` finds in a choice to `sink`,
    /// checking `cancel` between pieces (dropping the connection stops the remote's work).
    fn stream(
        &self,
        path: &str,
        body: Value,
        cancel: Option<&CancelToken>,
        sink: Sink<'_>,
        text_of: impl Fn(&Value) -> Option<String>,
    ) -> Result<Completion> {
        let started = Instant::now();
        let response = self.post(path, &body)?;
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        let mut text = String::new();
        let mut usage = Usage::default();
        let mut finish = FinishReason::Stop;
        let mut first_at = None;
        for line in reader.lines() {
            if cancel.is_some_and(CancelToken::is_cancelled) {
                finish = FinishReason::Cancelled;
                break;
            }
            let line = line.map_err(|e| self.error(format!("the stream broke: {e}")))?;
            let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                continue;
            };
            if data == "[DONE]" {
                break;
            }
            let chunk: Value = serde_json::from_str(data)
                .map_err(|e| self.error(format!("a streamed chunk is not JSON: {e}")))?;
            if let Some(message) = chunk["error"]["message"].as_str() {
                return Err(self.error(format!("it failed mid-stream: {message}")));
            }
            if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
                usage.prompt_tokens = u["prompt_tokens"].as_u64().unwrap_or(0) as u32;
                usage.completion_tokens = u["completion_tokens"].as_u64().unwrap_or(0) as u32;
                usage.cached_prompt_tokens = u["prompt_tokens_details"]["cached_tokens"]
                    .as_u64()
                    .unwrap_or(0) as u32;
            }
            for choice in chunk["choices"].as_array().into_iter().flatten() {
                if let Some(piece) = text_of(choice).filter(|p| !p.is_empty()) {
                    first_at.get_or_insert_with(Instant::now);
                    text.push_str(&piece);
                    if !sink(&piece) {
                        finish = FinishReason::Cancelled;
                        return Ok(self.finished(text, finish, usage, started, first_at));
                    }
                }
                match choice["finish_reason"].as_str() {
                    Some("length") => finish = FinishReason::Length,
                    Some(_) => finish = FinishReason::Stop,
                    None => {}
                }
            }
        }
        Ok(self.finished(text, finish, usage, started, first_at))
    }

    fn finished(
        &self,
        text: String,
        finish_reason: FinishReason,
        mut usage: Usage,
        started: Instant,
        first_at: Option<Instant>,
    ) -> Completion {
        let first = first_at.unwrap_or_else(Instant::now);
        usage.prompt_ms = first.duration_since(started).as_secs_f64() * 1000.0;
        usage.generation_ms = first.elapsed().as_secs_f64() * 1000.0;
        usage.prompt_tokens_per_second = per_second(usage.prompt_tokens, usage.prompt_ms);
        usage.generation_tokens_per_second =
            per_second(usage.completion_tokens, usage.generation_ms);
        Completion {
            text,
            finish_reason,
            usage,
        }
    }

    fn post(&self, path: &str, body: &Value) -> Result<ureq::http::Response<ureq::Body>> {
        let mut request = self
            .agent
            .post(format!("{}/{path}", self.endpoint.url))
            .header("Content-Type", "application/json");
        if let Some(key) = &self.endpoint.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        self.send(request.send(body.to_string()))
    }

    /// A response, or the remote's error as uml's kind (its message kept).
    fn send(
        &self,
        sent: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let response = sent.map_err(|e| {
            Error::new(
                ErrorKind::Backend,
                format!(
                    "the remote endpoint {} cannot be reached: {e}",
                    self.endpoint.url
                ),
            )
        })?;
        let status = response.status().as_u16();
        if status < 400 {
            return Ok(response);
        }
        let body: Value =
            serde_json::from_reader(response.into_body().into_reader()).unwrap_or(Value::Null);
        let message = body["error"]["message"]
            .as_str()
            .map_or_else(|| format!("HTTP {status}"), str::to_string);
        let kind = match status {
            400 | 413 | 422 => ErrorKind::InvalidArgument,
            401 | 403 => ErrorKind::Unsupported,
            404 => ErrorKind::NotFound,
            429 => ErrorKind::Busy,
            _ => ErrorKind::Backend,
        };
        Err(Error::new(
            kind,
            format!("the remote endpoint {} said: {message}", self.endpoint.url),
        ))
    }

    fn error(&self, what: impl std::fmt::Display) -> Error {
        Error::new(
            ErrorKind::Backend,
            format!("the remote endpoint {}: {what}", self.endpoint.url),
        )
    }
}

/// What stands in for weights under a remote model: every local operation says that it runs
/// on the endpoint instead (`Model` never decodes through it).
pub(crate) struct RemoteWeights;

impl RemoteWeights {
    fn unsupported(what: &str) -> Error {
        Error::new(
            ErrorKind::Unsupported,
            format!("{what}: this model runs on a remote endpoint, which does not offer it"),
        )
    }
}

impl crate::backend::LoadedModel for RemoteWeights {
    fn tokenize(&self, _text: &str, _add_special: bool) -> Result<Vec<crate::backend::Token>> {
        Err(Self::unsupported("tokenize"))
    }

    fn tokenize_plain(&self, _text: &str) -> Result<Vec<crate::backend::Token>> {
        Err(Self::unsupported("tokenize"))
    }

    fn token_bytes(&self, _token: crate::backend::Token) -> Vec<u8> {
        Vec::new()
    }

    fn special_token_text(&self, _token: crate::backend::Token) -> Vec<u8> {
        Vec::new()
    }

    fn is_end_of_generation(&self, _token: crate::backend::Token) -> bool {
        false
    }

    fn vocab_size(&self) -> u32 {
        0
    }

    fn new_session(
        &self,
        _request: crate::backend::SessionRequest,
    ) -> Result<Box<dyn crate::backend::Session + '_>> {
        Err(Self::unsupported("a local generation session"))
    }

    fn embed(&self, _text: &str, _cancel: Option<&CancelToken>) -> Result<Vec<f32>> {
        Err(Self::unsupported("a local embedding"))
    }

    fn embedding_size(&self) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_are_checked() {
        let e = RemoteEndpoint::parse("http://10.0.0.5:8080/v1/#llama", None).unwrap();
        assert_eq!(e.url, "http://10.0.0.5:8080/v1");
        assert_eq!(e.model, "llama");
        assert!(RemoteEndpoint::parse("http://host/v1", None).is_err());
        assert!(RemoteEndpoint::parse("ftp://host/v1#m", None).is_err());
        assert!(RemoteEndpoint::parse("http://host/v1#", None).is_err());
    }
}
