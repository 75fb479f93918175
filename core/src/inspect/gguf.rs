//! `ModelInfo` from a GGUF header.

use super::{recurrent, ModelInfo, TensorStats};
use crate::error::Result;
use crate::format::Format;
use crate::gguf::{self, GgufHeader, GgufValue};
use std::path::Path;

/// Strings longer than this are cut in `ModelInfo::metadata` (the chat template has its own
/// field).
const MAX_METADATA_STRING: usize = 256;

pub(super) fn inspect(path: &Path) -> Result<ModelInfo> {
    let h = gguf::read_header(path)?;
    Ok(from_header(path, &h))
}

pub(super) fn from_header(path: &Path, h: &GgufHeader) -> ModelInfo {
    let mut info = ModelInfo::new(path, Format::Gguf);
    info.file_size = h.file_size;
    info.files.push(path.to_path_buf());

    let mut stats = TensorStats::default();
    for t in &h.tensors {
        stats.add(&t.name, t.ggml_type.name(), t.n_elements, t.n_bytes);
    }
    stats.apply(&mut info);
    if let Some(name) = h
        .get_u64("general.file_type")
        .and_then(gguf::file_type_name)
    {
        info.quantization = Some(name.to_string());
    }

    let arch = h.architecture().map(str::to_string);
    let key = |k: &str| format!("{}.{k}", arch.as_deref().unwrap_or("unknown"));
    info.name = h.get_str("general.name").map(str::to_string);
    info.context_length = h.get_u64(&key("context_length"));
    info.block_count = h.get_u64(&key("block_count"));
    info.embedding_length = h.get_u64(&key("embedding_length"));
    info.feed_forward_length = h.get_u64(&key("feed_forward_length"));
    info.mtp_layers = h.get_u64(&key("nextn_predict_layers")).unwrap_or(0);
    info.head_count = h.get_u64(&key("attention.head_count"));
    info.head_count_kv = h.get_u64(&key("attention.head_count_kv"));
    info.key_length = h.get_u64(&key("attention.key_length"));
    info.value_length = h.get_u64(&key("attention.value_length"));
    info.pooling_type = h
        .get(&key("pooling_type"))
        .and_then(GgufValue::as_i64)
        .and_then(pooling_name)
        .map(str::to_string);

    let tokens = h.get("tokenizer.ggml.tokens").and_then(GgufValue::as_array);
    info.vocab_size = h
        .get_u64(&key("vocab_size"))
        .or_else(|| tokens.map(|t| t.len));
    info.tokenizer_model = h.get_str("tokenizer.ggml.model").map(str::to_string);
    info.chat_template = h.get_str("tokenizer.chat_template").map(str::to_string);
    info.bos_token_id = h
        .get_u64("tokenizer.ggml.bos_token_id")
        .and_then(|v| u32::try_from(v).ok());
    info.eos_token_id = h
        .get_u64("tokenizer.ggml.eos_token_id")
        .and_then(|v| u32::try_from(v).ok());
    let token_text = |id: Option<u32>| -> Option<String> {
        let values = tokens?.values.as_ref()?;
        values.get(id? as usize)?.as_str().map(str::to_string)
    };
    info.bos_token = token_text(info.bos_token_id);
    info.eos_token = token_text(info.eos_token_id);
    info.recurrent = arch
        .as_deref()
        .and_then(|a| recurrent::layout(h, a, info.block_count?, info.mtp_layers));
    info.architecture = arch;

    for (k, v) in &h.metadata {
        info.metadata
            .insert(k.clone(), v.to_json_summary(MAX_METADATA_STRING));
    }
    info.metadata
        .insert("gguf.version".into(), serde_json::json!(h.version));
    if info.architecture.is_none() {
        info.notes.push(
            "general.architecture is missing, so hyperparameters (context length, layers, \
             heads) are unknown"
                .into(),
        );
    }
    info
}

/// llama.cpp's `enum llama_pooling_type`.
fn pooling_name(v: i64) -> Option<&'static str> {
    Some(match v {
        0 => "none",
        1 => "mean",
        2 => "cls",
        3 => "last",
        4 => "rank",
        _ => return None,
    })
}
