//! JavaScript names for core's JSON: options arrive as JSON text (`lib/index.ts` serializes
//! them, so a cyclic or absurdly deep object is a JavaScript error before anything reaches
//! Rust) with camelCase keys, which become core's snake_case keys; results leave with their
//! field names in camelCase. Data maps (GGUF metadata, tensor type counts) keep their keys.

use serde_json::{Map, Value};
use uml_core::{Error, Result};

/// Object fields whose keys are data, not field names: left as they are.
const DATA_MAPS: [&str; 2] = ["metadata", "tensor_types"];

/// `nCtx` → `n_ctx`, `maxTokens` → `max_tokens`; snake_case keys stay as they are.
pub fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `n_ctx` → `nCtx`.
pub fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// JavaScript options (`what`: "load option", "generate option") as core's JSON, with
/// snake_case keys; `fields` are core's names for them (`LoadOptions::FIELDS`, ...), which
/// errors show in camelCase, as the caller writes them.
pub struct Options {
    pub json: String,
    fields: &'static [&'static str],
    /// Keys the caller wrote in camelCase, as (core's spelling, the caller's).
    renamed: Vec<(String, String)>,
}

impl Options {
    pub fn parse(text: &str, what: &str, fields: &'static [&'static str]) -> Result<Options> {
        if text.is_empty() {
            return Ok(Options {
                json: String::new(),
                fields,
                renamed: Vec::new(),
            });
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid_argument(format!("{what}s are not valid JSON: {e}")))?;
        let Value::Object(given) = value else {
            return Err(Error::invalid_argument(format!(
                "{what}s must be an object, got {text:.40}"
            )));
        };
        let mut renamed = Vec::new();
        let mut snake = Map::new();
        for (key, value) in given {
            let core_key = snake_case(&key);
            if core_key != key {
                renamed.push((core_key.clone(), key));
            }
            snake.insert(core_key, value);
        }
        Ok(Options {
            json: Value::Object(snake).to_string(),
            fields,
            renamed,
        })
    }

    /// Core's error, naming options as JavaScript writes them.
    pub fn explain(&self, e: Error) -> Error {
        let mut message = e.message().to_string();
        for (core_key, given) in &self.renamed {
            message = replace_word(&message, core_key, given);
        }
        for field in self.fields.iter().filter(|f| f.contains('_')) {
            message = replace_word(&message, field, &camel_case(field));
        }
        Error::new(e.kind(), message)
    }
}

/// Replace `word` where it stands alone (not inside a longer identifier).
fn replace_word(text: &str, word: &str, with: &str) -> String {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + word.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before.is_some_and(is_ident) || after.is_some_and(is_ident) {
            out.push_str(word);
        } else {
            out.push_str(with);
        }
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}

/// A core value as JavaScript sees it: field names in camelCase.
pub fn to_js<T: serde::Serialize>(value: &T) -> Result<Value> {
    let value = serde_json::to_value(value).map_err(|e| Error::internal(e.to_string()))?;
    Ok(camel_keys(value))
}

fn camel_keys(value: Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, value)| {
                    let value = if DATA_MAPS.contains(&key.as_str()) {
                        value
                    } else {
                        camel_keys(value)
                    };
                    (camel_case(&key), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(camel_keys).collect()),
        other => other,
    }
}

/// A remote endpoint, `{ url, model, apiKey? }` as JSON text, as core's `RemoteEndpoint`: a
/// missing or unknown key is an InvalidArgumentError naming it as JavaScript writes it.
pub fn endpoint(text: &str) -> Result<uml_core::RemoteEndpoint> {
    const FIELDS: &[&str] = &["url", "model", "api_key"];
    let options = Options::parse(text, "remote endpoint field", FIELDS)?;
    let endpoint: uml_core::RemoteEndpoint = serde_json::from_str(&options.json).map_err(|e| {
        options.explain(Error::invalid_argument(format!(
            "remote endpoint: {e}; pass {{ url: 'http://host:8080/v1', model: 'name' }} and \
                 optionally api_key"
        )))
    })?;
    endpoint.validate()?;
    Ok(endpoint)
}
