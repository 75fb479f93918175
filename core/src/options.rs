//! `LoadOptions`: how a model is loaded (context size, threads, batch sizes, GPU offload, KV
//! cache type, embeddings mode, chat template override). Hosts pass them as a JSON object; an
//! unknown key or a wrong type is an `InvalidArgument` that names the key.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::backend::BackendChoice;
use crate::chat::ChatTemplate;
use crate::error::{Error, Result};

/// How many layers to offload to the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpuLayers {
    /// As many as fit in free GPU memory (0 when there is no usable GPU). JSON: `"auto"`.
    #[default]
    Auto,
    /// Exactly this many (0 = CPU only; a number above the model's layer count offloads
    /// every layer, e.g. 999). JSON: a number.
    Count(u32),
}

impl Serialize for GpuLayers {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            GpuLayers::Auto => s.serialize_str("auto"),
            GpuLayers::Count(n) => s.serialize_u32(*n),
        }
    }
}

impl<'de> Deserialize<'de> for GpuLayers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        const EXPECTED: &str = "\"auto\" or a layer count >= 0 (0 = CPU only, 999 = every layer)";
        impl serde::de::Visitor<'_> for V {
            type Value = GpuLayers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<GpuLayers, E> {
                if v.eq_ignore_ascii_case("auto") {
                    Ok(GpuLayers::Auto)
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(v), &EXPECTED))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<GpuLayers, E> {
                u32::try_from(v)
                    .map(GpuLayers::Count)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &EXPECTED))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<GpuLayers, E> {
                u64::try_from(v)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &EXPECTED))
                    .and_then(|v| self.visit_u64(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Element type of the KV cache. Smaller types fit longer contexts at a small quality cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum KvCacheType {
    /// Full precision: twice f16's memory; what the candle backend keeps on the CPU.
    #[serde(rename = "f32")]
    F32,
    #[default]
    #[serde(rename = "f16")]
    F16,
    #[serde(rename = "q8_0")]
    Q8_0,
    #[serde(rename = "q4_0")]
    Q4_0,
}

impl KvCacheType {
    /// Average bytes per cached element (ggml block sizes: q8_0 = 34 bytes per 32 values,
    /// q4_0 = 18 bytes per 32 values).
    pub fn bytes_per_element(self) -> f64 {
        match self {
            KvCacheType::F32 => 4.0,
            KvCacheType::F16 => 2.0,
            KvCacheType::Q8_0 => 34.0 / 32.0,
            KvCacheType::Q4_0 => 18.0 / 32.0,
        }
    }

    /// Bytes of one row of `n` elements (quantized rows are whole 32-element blocks).
    pub fn row_bytes(self, n: u64) -> u64 {
        match self {
            KvCacheType::F32 => n * 4,
            KvCacheType::F16 => n * 2,
            KvCacheType::Q8_0 => n.div_ceil(32) * 34,
            KvCacheType::Q4_0 => n.div_ceil(32) * 18,
        }
    }

    /// The JSON / CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KvCacheType::F32 => "f32",
            KvCacheType::F16 => "f16",
            KvCacheType::Q8_0 => "q8_0",
            KvCacheType::Q4_0 => "q4_0",
        }
    }
}

/// Element type candle keeps a Hugging Face folder's weights (and its KV cache) in. GGUF
/// weights keep the types stored in the file (convert them with `uml convert --type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WeightDtype {
    /// Full precision: candle's default on the CPU, what its CPU kernels are fastest at.
    #[serde(rename = "f32")]
    F32,
    /// Half the memory of f32.
    #[serde(rename = "f16")]
    F16,
    /// Half the memory of f32, with f32's range: what most checkpoints are trained in.
    #[serde(rename = "bf16")]
    BF16,
}

impl WeightDtype {
    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            WeightDtype::F32 => 4,
            WeightDtype::F16 | WeightDtype::BF16 => 2,
        }
    }

    /// The JSON / CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WeightDtype::F32 => "f32",
            WeightDtype::F16 => "f16",
            WeightDtype::BF16 => "bf16",
        }
    }
}

/// Largest `n_ctx` (and `n_batch`, `n_ubatch`) a load accepts: 16M tokens, above the longest
/// context any released model was trained for (10M), far below where token positions or buffer
/// sizes could overflow. Whether a context fits in memory is the estimate's call.
pub const MAX_N_CTX: u32 = 1 << 24;

/// Largest `max_parallel` a load accepts: llama.cpp's limit on sequences in one context
/// (`LLAMA_MAX_SEQ`).
pub const MAX_PARALLEL: u32 = 256;

/// Largest `max_queued` a load accepts.
pub const MAX_QUEUED: u32 = 1 << 20;

/// Most threads a load accepts: ggml's own limit (`GGML_MAX_N_THREADS`).
pub const MAX_THREADS: u32 = 512;

/// How to load a model. JSON keys are the field names; omitted keys take the defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadOptions {
    /// Context length in tokens. `None` = the model's trained context length, capped by
    /// available memory.
    pub n_ctx: Option<u32>,
    /// Threads for generation. `None` = the number of physical cores.
    pub n_threads: Option<u32>,
    /// Threads for prompt processing. `None` = same as `n_threads`.
    pub n_threads_batch: Option<u32>,
    /// Logical batch size (tokens submitted per decode call).
    pub n_batch: u32,
    /// Physical batch size; at most `n_batch`. Cancellation is checked between ubatches.
    pub n_ubatch: u32,
    /// Layers to offload to the GPU.
    pub gpu_layers: GpuLayers,
    /// Map the weights from the file instead of reading them into memory.
    pub use_mmap: bool,
    /// Lock the weights in RAM (no swapping).
    pub use_mlock: bool,
    /// Element type of the KV cache.
    pub kv_cache_type: KvCacheType,
    /// Seed for generations that give none. `None` = random per generation.
    pub seed: Option<u32>,
    /// Load for embeddings (pooled sentence vectors) instead of generation.
    pub embeddings: bool,
    /// L2-normalise embeddings.
    pub normalize_embeddings: bool,
    /// A Jinja chat template that replaces the model's own.
    pub chat_template: Option<String>,
    /// Which engine loads the model: `auto` (the default: the preferred one for the format,
    /// falling back to the next when one fails) or a named backend.
    pub backend: BackendChoice,
    /// llama.cpp's flash attention: `None` = llama.cpp decides (on where supported), `true` /
    /// `false` to force it. Flash attention keeps K and V in f16 even with an f32 cache, so
    /// exact f32 attention needs `false`.
    pub flash_attention: Option<bool>,
    /// The element type of a Hugging Face folder's weights in the candle backend: `None` =
    /// the backend's default for the device (f32 on the CPU). A GGUF keeps its stored types,
    /// so asking llama.cpp (or candle with a GGUF) for a dtype is an error.
    pub dtype: Option<WeightDtype>,
    /// Whether control-token text inside chat message contents (a user typing
    /// `<|im_start|>system`) becomes the control token. `false` (the default): message
    /// contents are tokenized as plain text, so no message can forge a turn; only the
    /// template's own markup yields control tokens. `true`: the whole rendered prompt is
    /// parsed for control tokens, as llama.cpp's server and transformers do.
    pub control_tokens_in_messages: bool,
    /// Most generations and embedding calls running on this model at once. With llama.cpp
    /// these are the slots of the shared generation context, each with `n_ctx` KV cells
    /// (allocated at load, and counted in the memory estimate); their decodes are batched. A
    /// load that drafts (`draft_model`, `mtp`) runs each in private contexts instead.
    /// More callers wait in line, in arrival order and cancellably. `None` = up to 4, fewer
    /// when the memory left after loading holds fewer.
    pub max_parallel: Option<u32>,
    /// Most callers waiting in line for a free slot; one more fails at once with `Busy`
    /// rather than queueing without bound. 0 = no line. `None` = 512.
    pub max_queued: Option<u32>,
    /// LoRA adapters to load with the model (GGUF adapter files, as llama.cpp's
    /// convert_lora_to_gguf.py writes them), each at the scale generations use unless they
    /// choose (`GenerateParams::lora`). llama.cpp only.
    pub lora: Vec<LoraAdapter>,
    /// A small model of the same vocabulary that drafts tokens for this one to verify
    /// (speculative decoding): loaded beside it with the same context, threads and slots.
    /// Generations use it unless they set `draft_max` to 0. Each generation runs in private
    /// contexts of the pair (none is batched with another). llama.cpp only.
    pub draft_model: Option<std::path::PathBuf>,
    /// Draft with the model's own multi-token-prediction heads (speculative decoding without
    /// a second model; Qwen3.5, GLM-4.5 and DeepSeek-V3 GGUFs carry them, `ModelInfo::mtp_layers`
    /// says how many): each generation runs in a context of its own beside a small one for the
    /// heads, and verifies what they propose as it would a draft model's tokens. Generations
    /// use it unless they set `draft_max` to 0; one with a LoRA adapter runs undrafted (the
    /// heads draft for the base model). llama.cpp only; not with `draft_model`.
    pub mtp: bool,
}

/// One LoRA adapter of `LoadOptions::lora`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraAdapter {
    /// The adapter: a GGUF LoRA file, or a Hugging Face PEFT adapter folder
    /// (adapter_config.json + adapter_model.safetensors), converted as it loads.
    pub path: std::path::PathBuf,
    /// Its scale for generations that do not choose their adapters (default 1; 0: loaded,
    /// but off unless a generation asks for it).
    #[serde(default = "one")]
    pub scale: f32,
    /// The name generations choose it by; default: the file name without `.gguf`.
    #[serde(default)]
    pub name: Option<String>,
}

fn one() -> f32 {
    1.0
}

impl LoraAdapter {
    /// The adapter at `path` with scale 1, named after its file.
    pub fn new(path: impl Into<std::path::PathBuf>) -> LoraAdapter {
        LoraAdapter {
            path: path.into(),
            scale: 1.0,
            name: None,
        }
    }

    /// Its name: `name`, else the file name without `.gguf`.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let file = self.path.file_name().unwrap_or_default().to_string_lossy();
            file.strip_suffix(".gguf").unwrap_or(&file).to_string()
        })
    }
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            n_ctx: None,
            n_threads: None,
            n_threads_batch: None,
            n_batch: 512,
            n_ubatch: 512,
            gpu_layers: GpuLayers::Auto,
            use_mmap: true,
            use_mlock: false,
            kv_cache_type: KvCacheType::F16,
            seed: None,
            embeddings: false,
            normalize_embeddings: true,
            chat_template: None,
            backend: BackendChoice::Auto,
            flash_attention: None,
            dtype: None,
            control_tokens_in_messages: false,
            max_parallel: None,
            max_queued: None,
            lora: Vec::new(),
            draft_model: None,
            mtp: false,
        }
    }
}

impl LoadOptions {
    /// Every JSON key, in declaration order (used in "unknown key" messages).
    pub const FIELDS: &'static [&'static str] = &[
        "n_ctx",
        "n_threads",
        "n_threads_batch",
        "n_batch",
        "n_ubatch",
        "gpu_layers",
        "use_mmap",
        "use_mlock",
        "kv_cache_type",
        "seed",
        "embeddings",
        "normalize_embeddings",
        "chat_template",
        "backend",
        "flash_attention",
        "dtype",
        "control_tokens_in_messages",
        "max_parallel",
        "max_queued",
        "lora",
        "draft_model",
        "mtp",
    ];

    /// Parse a JSON object of load options (an empty string, `null` or `{}` gives the
    /// defaults; a `null` value means "default" for that key) and validate it.
    pub fn from_json(json: &str) -> Result<Self> {
        let opts: LoadOptions = parse_json_object(json, "load option", Self::FIELDS)?;
        opts.validate()?;
        Ok(opts)
    }

    /// Check every field; the error names the field, the value and what is allowed.
    pub fn validate(&self) -> Result<()> {
        let in_range = |name: &str, v: Option<u32>, max: u32, fix: &str| -> Result<()> {
            match v {
                Some(n) if n == 0 || n > max => Err(Error::invalid_argument(format!(
                    "load option {name} = {n} is invalid: it must be 1 to {max} ({fix})"
                ))),
                _ => Ok(()),
            }
        };
        in_range(
            "n_ctx",
            self.n_ctx,
            MAX_N_CTX,
            "or omit it to use the model's context length",
        )?;
        in_range(
            "n_threads",
            self.n_threads,
            MAX_THREADS,
            "or omit it to use the physical cores",
        )?;
        in_range(
            "n_threads_batch",
            self.n_threads_batch,
            MAX_THREADS,
            "or omit it to use n_threads",
        )?;
        in_range(
            "max_parallel",
            self.max_parallel,
            MAX_PARALLEL,
            "or omit it to fit the memory",
        )?;
        if let Some(n) = self.max_queued.filter(|&n| n > MAX_QUEUED) {
            return Err(Error::invalid_argument(format!(
                "load option max_queued = {n} is invalid: it must be 0 to {MAX_QUEUED} (or omit \
                 it for 512)"
            )));
        }
        in_range("n_batch", Some(self.n_batch), MAX_N_CTX, "default 512")?;
        in_range("n_ubatch", Some(self.n_ubatch), MAX_N_CTX, "default 512")?;
        if self.n_ubatch > self.n_batch {
            return Err(Error::invalid_argument(format!(
                "load option n_ubatch = {} is larger than n_batch = {}: n_ubatch must be <= n_batch \
                 (lower n_ubatch or raise n_batch)",
                self.n_ubatch, self.n_batch
            )));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, adapter) in self.lora.iter().enumerate() {
            if !adapter.scale.is_finite() {
                return Err(Error::invalid_argument(format!(
                    "load option lora[{i}].scale = {} is invalid: it must be a finite number \
                     (1 = as trained, 0 = off)",
                    adapter.scale
                )));
            }
            let name = adapter.name();
            if name.is_empty() || !names.insert(name.clone()) {
                return Err(Error::invalid_argument(format!(
                    "load option lora[{i}]: the name {name:?} is empty or given twice; name each \
                     adapter differently with \"name\""
                )));
            }
        }
        if self.mtp && self.draft_model.is_some() {
            return Err(Error::invalid_argument(
                "load options mtp and draft_model are both set: a generation drafts with one or \
                 the other; keep mtp for a model with its own prediction heads, or draft_model",
            ));
        }
        if self.mtp && self.embeddings {
            return Err(Error::invalid_argument(
                "load option mtp drafts tokens for generation, but embeddings is set: load for \
                 one or the other",
            ));
        }
        if let Some(src) = &self.chat_template {
            if src.trim().is_empty() {
                return Err(Error::invalid_argument(
                    "load option chat_template is empty: pass a Jinja template, or omit it to \
                     use the model's own",
                ));
            }
            // Syntax errors surface now, naming the line, rather than at the first chat.
            ChatTemplate::new(src, "", "")?;
        }
        Ok(())
    }
}

/// Deepest nesting of a host value (a Python or JavaScript dict / list) that a binding passes
/// on as options, parameters or messages: deeper than any real JSON schema or conversation,
/// and under serde_json's own limit of 128 on the JSON text core parses. A value that contains
/// itself is therefore a clear error, not a stack overflow in the binding.
pub const MAX_VALUE_DEPTH: usize = 100;

/// Parse `json` as an object of options of type `T`: empty / `null` = defaults, keys with a
/// `null` value are dropped (= default), an unknown key is named along with the known ones,
/// and a type error names the offending key. `what` is e.g. "generate parameter".
pub(crate) fn parse_json_object<T: DeserializeOwned + Default>(
    json: &str,
    what: &str,
    known: &[&str],
) -> Result<T> {
    if json.trim().is_empty() {
        return Ok(T::default());
    }
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| {
        Error::invalid_argument(format!(
            "{what}s are not valid JSON: {e} (pass a JSON object)"
        ))
    })?;
    let mut map = match value {
        serde_json::Value::Null => return Ok(T::default()),
        serde_json::Value::Object(map) => map,
        other => {
            return Err(Error::invalid_argument(format!(
                "{what}s must be a JSON object, got {} (e.g. {{\"{}\": ...}})",
                json_type_name(&other),
                known.first().copied().unwrap_or("key")
            )))
        }
    };
    if let Some(key) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Error::invalid_argument(format!(
            "unknown {what} '{key}'; known: {}",
            known.join(", ")
        )));
    }
    map.retain(|_, v| !v.is_null());
    match serde_json::from_value::<T>(serde_json::Value::Object(map.clone())) {
        Ok(v) => Ok(v),
        Err(whole) => {
            // serde_json::from_value does not say which key failed: find it by trying each
            // key on its own.
            for (key, value) in &map {
                let mut one = serde_json::Map::new();
                one.insert(key.clone(), value.clone());
                if let Err(e) = serde_json::from_value::<T>(serde_json::Value::Object(one)) {
                    return Err(Error::invalid_argument(format!(
                        "invalid {what} '{key}' = {value}: {e}"
                    )));
                }
            }
            Err(Error::invalid_argument(format!("invalid {what}s: {whole}")))
        }
    }
}

fn json_type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Context size for a one-shot generation (one prompt, at most `max_tokens` new tokens) when the
/// caller gives none: room for exactly that job, rounded up to a multiple of 256 and capped by
/// the model's trained context. Allocating the model's full context (8,192 tokens and more)
/// for a single short answer costs time and memory up front for nothing; sessions and loaded
/// models that serve many requests keep the full default.
///
/// Counted before loading, without the tokenizer: every token covers at least one byte of the
/// text (byte-level BPE and SentencePiece's byte fallback alike), plus a few special tokens
/// (BOS, a SentencePiece leading space), so `prompt.len() + 8` bounds the prompt's tokens.
pub fn one_shot_n_ctx(prompt: &str, max_tokens: u32, trained_ctx: Option<u64>) -> u32 {
    const ROUND: u64 = 256;
    let needed = prompt.len() as u64 + 8 + u64::from(max_tokens);
    let rounded = needed.div_ceil(ROUND) * ROUND;
    let capped = match trained_ctx {
        Some(t) if t > 0 => rounded.min(t),
        _ => rounded,
    };
    u32::try_from(capped).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn err(json: &str) -> Error {
        match LoadOptions::from_json(json) {
            Ok(o) => panic!("expected an error for {json}, got {o:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn defaults() {
        let d = LoadOptions::default();
        assert_eq!(d.n_batch, 512);
        assert_eq!(d.n_ubatch, 512);
        assert_eq!(d.gpu_layers, GpuLayers::Auto);
        assert!(d.use_mmap && !d.use_mlock && !d.embeddings && d.normalize_embeddings);
        assert_eq!(d.kv_cache_type, KvCacheType::F16);
        assert_eq!(d.n_ctx, None);
        for s in ["", "  ", "{}", "null"] {
            assert_eq!(LoadOptions::from_json(s).unwrap(), d, "{s:?}");
        }
        d.validate().unwrap();
    }

    #[test]
    fn every_numeric_option_has_a_range_named_in_the_error() {
        for (json, needle) in [
            (
                r#"{"n_ctx": 0}"#,
                "n_ctx = 0 is invalid: it must be 1 to 16777216",
            ),
            (r#"{"n_ctx": 16777217}"#, "n_ctx = 16777217"),
            (r#"{"n_threads": 0}"#, "n_threads = 0"),
            (
                r#"{"n_threads": 100000}"#,
                "n_threads = 100000 is invalid: it must be 1 to 512",
            ),
            (r#"{"n_threads_batch": 513}"#, "n_threads_batch = 513"),
            (r#"{"n_batch": 0}"#, "n_batch = 0"),
            (r#"{"n_batch": 4294967295}"#, "n_batch = 4294967295"),
            (r#"{"n_ubatch": 4294967295}"#, "n_ubatch = 4294967295"),
            (r#"{"n_ctx": -1}"#, "n_ctx"),
            (r#"{"n_ctx": 4294967296}"#, "n_ctx"),
        ] {
            let e = err(json);
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{json}");
            assert!(e.message().contains(needle), "{json}: {e}");
        }
        LoadOptions::from_json(r#"{"n_ctx": 16777216, "n_threads": 512, "n_batch": 16777216}"#)
            .unwrap();
    }

    #[test]
    fn fields_list_matches_the_struct() {
        let v = serde_json::to_value(LoadOptions::default()).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        let mut known = LoadOptions::FIELDS.to_vec();
        known.sort_unstable();
        assert_eq!(keys, known);
    }

    #[test]
    fn parses_every_field() {
        let o = LoadOptions::from_json(
            r#"{"n_ctx": 4096, "n_threads": 2, "n_threads_batch": 4, "n_batch": 256,
                "n_ubatch": 128, "gpu_layers": 12, "use_mmap": false, "use_mlock": true,
                "kv_cache_type": "q8_0", "seed": 7, "embeddings": true,
                "normalize_embeddings": false, "chat_template": "{{ bos_token }}"}"#,
        )
        .unwrap();
        assert_eq!(o.n_ctx, Some(4096));
        assert_eq!(o.n_threads, Some(2));
        assert_eq!(o.n_threads_batch, Some(4));
        assert_eq!((o.n_batch, o.n_ubatch), (256, 128));
        assert_eq!(o.gpu_layers, GpuLayers::Count(12));
        assert!(!o.use_mmap && o.use_mlock && o.embeddings && !o.normalize_embeddings);
        assert_eq!(o.kv_cache_type, KvCacheType::Q8_0);
        assert_eq!(o.seed, Some(7));
        assert_eq!(o.chat_template.as_deref(), Some("{{ bos_token }}"));
        // Round trip.
        let back = LoadOptions::from_json(&serde_json::to_string(&o).unwrap()).unwrap();
        assert_eq!(back, o);
    }

    #[test]
    fn gpu_layers_forms() {
        let g = |j: &str| LoadOptions::from_json(&format!(r#"{{"gpu_layers": {j}}}"#));
        assert_eq!(g(r#""auto""#).unwrap().gpu_layers, GpuLayers::Auto);
        assert_eq!(g(r#""AUTO""#).unwrap().gpu_layers, GpuLayers::Auto);
        assert_eq!(g("12").unwrap().gpu_layers, GpuLayers::Count(12));
        assert_eq!(g("0").unwrap().gpu_layers, GpuLayers::Count(0));
        for bad in [r#""x""#, "-1", "1.5", "true", "4294967296"] {
            let e = g(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.message().contains("'gpu_layers'"), "{e}");
            assert!(e.message().contains("\"auto\""), "{e}");
        }
        assert_eq!(
            serde_json::to_string(&GpuLayers::Auto).unwrap(),
            r#""auto""#
        );
        assert_eq!(serde_json::to_string(&GpuLayers::Count(3)).unwrap(), "3");
    }

    #[test]
    fn kv_cache_type() {
        assert_eq!(KvCacheType::F16.bytes_per_element(), 2.0);
        assert_eq!(KvCacheType::Q8_0.bytes_per_element(), 1.0625);
        assert_eq!(KvCacheType::Q4_0.bytes_per_element(), 0.5625);
        for t in [KvCacheType::F16, KvCacheType::Q8_0, KvCacheType::Q4_0] {
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        let e = err(r#"{"kv_cache_type": "q5_1"}"#);
        assert!(e.message().contains("kv_cache_type"), "{e}");
        assert!(e.message().contains("q4_0"), "{e}");
    }

    #[test]
    fn unknown_key_is_named() {
        let e = err(r#"{"n_gpu_layers": 3}"#);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(
            e.message()
                .starts_with("unknown load option 'n_gpu_layers'; known: n_ctx, n_threads,"),
            "{e}"
        );
        assert!(e.message().contains("gpu_layers"), "{e}");
    }

    #[test]
    fn wrong_type_and_bad_json() {
        let e = err(r#"{"n_ctx": "big"}"#);
        assert!(e.message().contains("'n_ctx'"), "{e}");
        assert!(e.message().contains("\"big\""), "{e}");
        let e = err(r#"{"n_ctx": -5}"#);
        assert!(e.message().contains("'n_ctx'"), "{e}");
        let e = err("[1, 2]");
        assert!(
            e.message().contains("must be a JSON object, got an array"),
            "{e}"
        );
        let e = err("{n_ctx: 1}");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("not valid JSON"), "{e}");
    }

    #[test]
    fn null_means_default() {
        let o = LoadOptions::from_json(r#"{"n_batch": null, "n_ctx": null}"#).unwrap();
        assert_eq!(o, LoadOptions::default());
    }

    #[test]
    fn validation() {
        let e = err(r#"{"n_batch": 256, "n_ubatch": 512}"#);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("n_ubatch = 512"), "{e}");
        assert!(e.message().contains("n_batch = 256"), "{e}");
        let e = err(r#"{"n_ubatch": 1024}"#);
        assert!(e.message().contains("n_ubatch = 1024"), "{e}");
        for key in [
            "n_ctx",
            "n_threads",
            "n_threads_batch",
            "n_batch",
            "n_ubatch",
        ] {
            let e = err(&format!(r#"{{"{key}": 0}}"#));
            assert!(e.message().contains(&format!("{key} = 0")), "{e}");
        }
        let e = err(r#"{"chat_template": "  "}"#);
        assert!(e.message().contains("chat_template is empty"), "{e}");
        let e = err(r#"{"chat_template": "hi\n{% if x %}"}"#);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("line"), "{e}");
    }

    #[test]
    fn one_shot_context_fits_the_job_not_the_model() {
        // "Hello" + 1 token: the smallest step, not the model's 8,192.
        assert_eq!(one_shot_n_ctx("Hello", 1, Some(8192)), 256);
        // 248 prompt bytes + 8 + 256 = 512 exactly.
        assert_eq!(one_shot_n_ctx(&"x".repeat(248), 256, Some(8192)), 512);
        assert_eq!(one_shot_n_ctx(&"x".repeat(249), 256, Some(8192)), 768);
        // Never more than the model was trained for; unknown trained context: uncapped.
        assert_eq!(one_shot_n_ctx("Hello", 100_000, Some(8192)), 8192);
        assert_eq!(one_shot_n_ctx("Hello", 100_000, None), 100_096);
    }
}
