//! Chat prompts rendered with the model's own Jinja template (minijinja), configured like
//! Hugging Face's `apply_chat_template`: `trim_blocks` + `lstrip_blocks`, lenient undefined
//! variables, Python string/dict methods (`.strip()`, `.split()`, `.items()`, ...), the
//! helpers `raise_exception`, `strftime_now` and a `json.dumps`-style `tojson`.
//!
//! `ChatTemplate::chatml()` is a documented fallback for models without a template; it is
//! never chosen silently.

use chrono::format::StrftimeItems;
use chrono::NaiveDateTime;
use minijinja::value::{Kwargs, StringInput};
use minijinja::{context, AutoEscape, Environment, Value};
use serde::{Deserialize, Deserializer, Serialize};

use crate::cancel::CancelToken;
use crate::error::{Error, ErrorKind, Result};

pub(crate) mod content;
pub mod limits;
mod pyjson;

use limits::{CappedOutput, Stop};

/// One message of a conversation.
///
/// `content` is a string; when deserializing it also accepts `null` (empty) and OpenAI
/// content-part arrays `[{"type": "text", "text": "..."}]`, whose text parts are
/// concatenated (other part types, e.g. images, are refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    pub role: String,
    #[serde(deserialize_with = "content_from_json")]
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

fn content_from_json<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    use serde::de::Error as _;
    use serde_json::Value as J;
    match J::deserialize(d)? {
        J::String(s) => Ok(s),
        J::Null => Ok(String::new()),
        J::Array(parts) => {
            let mut text = String::new();
            for (i, part) in parts.iter().enumerate() {
                let kind = part.get("type").and_then(J::as_str);
                match (kind, part.get("text").and_then(J::as_str)) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    (Some("text"), None) => {
                        return Err(D::Error::custom(format!(
                            "content part {i} has type \"text\" but no string \"text\" field"
                        )))
                    }
                    (Some(other), _) => {
                        return Err(D::Error::custom(format!(
                            "content part {i} has type \"{other}\": only \"text\" parts are \
                             supported (this model takes no images or audio)"
                        )))
                    }
                    (None, _) => {
                        return Err(D::Error::custom(format!(
                            "content part {i} is not an object with a \"type\": expected \
                             {{\"type\": \"text\", \"text\": \"...\"}}"
                        )))
                    }
                }
            }
            Ok(text)
        }
        other => Err(D::Error::custom(format!(
            "content must be a string or an array of {{\"type\": \"text\"}} parts, got {other}"
        ))),
    }
}

/// Where a template came from: decides the error kind when it is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateOrigin {
    /// Given by the caller (the `chat_template` load option): errors are `InvalidArgument`.
    Caller,
    /// Read from the model file: errors are `InvalidModel`.
    Model,
    /// One of uml's own templates: errors are `Internal`.
    Builtin,
}

impl TemplateOrigin {
    fn describe(self) -> &'static str {
        match self {
            TemplateOrigin::Caller => "chat template passed in chat_template",
            TemplateOrigin::Model => "chat template from the model",
            TemplateOrigin::Builtin => "built-in chat template",
        }
    }
    fn fix(self) -> &'static str {
        match self {
            TemplateOrigin::Caller => "fix the template",
            TemplateOrigin::Model => "pass a working template in the chat_template load option",
            TemplateOrigin::Builtin => "a bug in uml, please report it",
        }
    }
    fn error_kind(self) -> ErrorKind {
        match self {
            TemplateOrigin::Caller => ErrorKind::InvalidArgument,
            TemplateOrigin::Model => ErrorKind::InvalidModel,
            TemplateOrigin::Builtin => ErrorKind::Internal,
        }
    }
}

const NAME: &str = "chat_template";

/// The ChatML template (`<|im_start|>role\ncontent<|im_end|>\n`), used by
/// [`ChatTemplate::chatml`].
pub const CHATML_TEMPLATE: &str = "{%- for message in messages %}\
{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}\
{%- endfor %}\
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/// A compiled chat template. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    origin: TemplateOrigin,
    bos_token: String,
    eos_token: String,
    now: Option<NaiveDateTime>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("origin", &self.origin)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("source_len", &self.source.len())
            .finish()
    }
}

/// Marks an error raised by the template's own `raise_exception(msg)`, so it can be told
/// apart from a broken template.
#[derive(Debug)]
struct Raised(String);

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

/// minijinja's `indent` with the width capped at [`limits::MAX_INDENT`]: `indent(10**9)` would
/// otherwise allocate a gigabyte per line.
fn capped_indent(
    value: StringInput<'_>,
    width: Option<usize>,
    first: Option<bool>,
    blank: Option<bool>,
    kwargs: Kwargs,
) -> std::result::Result<Value, minijinja::Error> {
    let width = match width {
        Some(w) => w,
        None => kwargs.get::<Option<usize>>("width")?.unwrap_or(4),
    };
    if width > limits::MAX_INDENT {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!(
                "indent: width {width} is over the limit of {}",
                limits::MAX_INDENT
            ),
        ));
    }
    minijinja::filters::indent(value, Some(width), first, blank, kwargs)
}

fn raise_exception(msg: String) -> std::result::Result<Value, minijinja::Error> {
    Err(
        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg.clone())
            .with_source(Raised(msg)),
    )
}

type StrftimeFn = dyn Fn(String) -> std::result::Result<String, minijinja::Error> + Send + Sync;

fn strftime_now(fixed: Option<NaiveDateTime>) -> Box<StrftimeFn> {
    Box::new(move |fmt: String| {
        let now = fixed.unwrap_or_else(|| chrono::Local::now().naive_local());
        let mut out = String::new();
        // An unknown specifier makes Display fail; `to_string()` would panic on that.
        std::fmt::Write::write_fmt(
            &mut out,
            format_args!("{}", now.format_with_items(StrftimeItems::new(&fmt))),
        )
        .map_err(|_| {
            minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("strftime_now: cannot format the time with {fmt:?} (check the % codes)"),
            )
        })?;
        Ok(out)
    })
}

impl ChatTemplate {
    /// Compile a template given by the caller. A syntax error is `InvalidArgument` naming the
    /// line.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        Self::with_origin(source, bos_token, eos_token, TemplateOrigin::Caller)
    }

    /// Compile the template stored in a model (GGUF `tokenizer.chat_template` or
    /// `tokenizer_config.json`). A syntax error is `InvalidModel` naming the line.
    pub fn from_model(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        Self::with_origin(source, bos_token, eos_token, TemplateOrigin::Model)
    }

    /// The fallback ChatML template ([`CHATML_TEMPLATE`]) for models that carry none. Use it
    /// only when the caller opts in: a model trained on another format answers poorly.
    pub fn chatml() -> Self {
        match Self::with_origin(CHATML_TEMPLATE, "", "<|im_end|>", TemplateOrigin::Builtin) {
            Ok(t) => t,
            // A constant template; the unit tests compile it.
            Err(e) => unreachable!("the built-in ChatML template does not compile: {e}"),
        }
    }

    /// Compile `source`; `origin` decides the error kind of a broken template.
    pub fn with_origin(
        source: &str,
        bos_token: &str,
        eos_token: &str,
        origin: TemplateOrigin,
    ) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now(None));
        env.add_filter("tojson", pyjson::tojson);
        env.add_filter("indent", capped_indent);
        env.set_fuel(Some(limits::RENDER_FUEL));
        env.set_recursion_limit(limits::RENDER_RECURSION_LIMIT);
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| template_error(origin, "has a syntax error", &e))?;
        Ok(ChatTemplate {
            env,
            source: source.to_string(),
            origin,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            now: None,
        })
    }

    /// Render as of a fixed local time (`strftime_now` and `date_string`), for reproducible
    /// prompts and tests.
    pub fn with_fixed_time(mut self, now: NaiveDateTime) -> Self {
        self.env
            .add_function("strftime_now", strftime_now(Some(now)));
        self.now = Some(now);
        self
    }

    /// The template text.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn origin(&self) -> TemplateOrigin {
        self.origin
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// Render `messages` into a prompt; with `add_generation_prompt` it ends with the header
    /// of the assistant's turn.
    ///
    /// Variables: `messages`, `add_generation_prompt`, `bos_token`, `eos_token`, `tools`
    /// (none), `date_string` (today, "26 Jul 2024" style, as llama.cpp passes it).
    /// A `raise_exception` in the template is `InvalidArgument` with the template's message
    /// (the messages are what it rejects); other failures depend on the template's origin.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        self.render_with_tools(messages, None, add_generation_prompt)
    }

    /// Like [`render`](Self::render), with `tools` (a JSON array of OpenAI-style function
    /// definitions) passed to the template.
    pub fn render_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.render_cancellable(messages, tools, add_generation_prompt, None)
    }

    /// [`render_with_tools`](Self::render_with_tools) that stops with `Cancelled` once `cancel`
    /// is set. Every render runs inside the bounds of [`limits`]: a template that loops,
    /// recurses or writes past them fails with an error naming the limit.
    pub fn render_cancellable(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
        cancel: Option<&CancelToken>,
    ) -> Result<String> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| template_error(self.origin, "is missing", &e))?;
        let now = self
            .now
            .unwrap_or_else(|| chrono::Local::now().naive_local());
        let ctx = context! {
            messages => Value::from_serialize(messages),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
            tools => tools.map(Value::from_serialize),
            date_string => now.format("%d %b %Y").to_string(),
        };
        let caller_bytes = messages
            .iter()
            .map(|m| m.role.len() + m.content.len())
            .sum::<usize>()
            + tools.map_or(0, |t| t.to_string().len());
        let mut out = CappedOutput::new(caller_bytes, cancel);
        let rendered = template.render_captured_to(ctx, &mut out);
        match (rendered, out.stopped) {
            (Ok(_), _) => String::from_utf8(out.buf)
                .map_err(|_| template_error_text(self.origin, "wrote text that is not UTF-8")),
            (Err(_), Some(Stop::Cancelled)) => Err(Error::new(
                ErrorKind::Cancelled,
                "rendering the chat template was cancelled",
            )),
            (Err(_), Some(Stop::TooLong(cap))) => Err(template_error_text(
                self.origin,
                &format!(
                    "wrote more than {cap} bytes, the limit for these messages (a template \
                     that loops without end, or messages far longer than any context)"
                ),
            )),
            (Err(e), None) => Err(self.render_error(&e)),
        }
    }

    /// The error for a render that failed inside the template.
    fn render_error(&self, e: &minijinja::Error) -> Error {
        if e.kind() == minijinja::ErrorKind::OutOfFuel {
            return template_error_text(
                self.origin,
                &format!(
                    "took more than {} steps (a template that loops without end, or a \
                     conversation of far more messages than any context holds)",
                    limits::RENDER_FUEL
                ),
            );
        }
        {
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                if let Some(raised) = s.downcast_ref::<Raised>() {
                    return Error::invalid_argument(format!(
                        "the chat template rejected the messages: {raised}"
                    ));
                }
                source = s.source();
            }
            template_error(self.origin, "failed to render", e)
        }
    }

    /// Parse a JSON array of `{"role": ..., "content": ...}` messages; the array and every
    /// role must be non-empty.
    pub fn messages_from_json(json: &str) -> Result<Vec<ChatMessage>> {
        let messages = Self::history_from_json(json)?;
        if messages.is_empty() {
            return Err(Error::invalid_argument(
                "chat messages are empty: pass at least one {\"role\": \"user\", \"content\": \
                 \"...\"} message",
            ));
        }
        Ok(messages)
    }

    /// Messages a chat session starts from, as [`messages_from_json`](Self::messages_from_json)
    /// reads them, but none is fine (`[]`).
    pub fn history_from_json(json: &str) -> Result<Vec<ChatMessage>> {
        let messages: Vec<ChatMessage> = serde_json::from_str(json).map_err(|e| {
            Error::invalid_argument(format!(
                "invalid chat messages: {e} (expected a JSON array of {{\"role\": \"user\", \
                 \"content\": \"...\"}} objects)"
            ))
        })?;
        if let Some(i) = messages.iter().position(|m| m.role.trim().is_empty()) {
            return Err(Error::invalid_argument(format!(
                "chat message {i} has an empty role: use \"system\", \"user\" or \"assistant\""
            )));
        }
        Ok(messages)
    }
}

/// A render stopped by one of uml's own limits.
fn template_error_text(origin: TemplateOrigin, what: &str) -> Error {
    Error::new(
        origin.error_kind(),
        format!("the {} {what} ({})", origin.describe(), origin.fix()),
    )
}

fn template_error(origin: TemplateOrigin, what: &str, e: &minijinja::Error) -> Error {
    let at = e
        .line()
        .map(|l| format!(" at line {l}"))
        .unwrap_or_default();
    let detail = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    Error::new(
        origin.error_kind(),
        format!(
            "{} {what}{at}: {detail} ({})",
            origin.describe(),
            origin.fix()
        ),
    )
}

#[cfg(test)]
mod tests;
