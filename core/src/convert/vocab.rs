//! A GGUF vocabulary written as a Hugging Face `tokenizer.json` that splits text exactly as
//! llama.cpp does: byte-level BPE (gpt2-style) through candle's reader with llama.cpp's
//! pre-tokenizer, SentencePiece (llama-style) as a byte-fallback BPE whose merges follow the
//! piece scores.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value as GgufValue};
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use serde_json::{json, Value};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;

use crate::{Error, ErrorKind, Result};

/// llama.cpp's token types (`llama_token_type`).
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;
const TYPE_BYTE: i32 = 6;

/// The tokenizer.json for the GGUF's vocabulary, or an Unsupported error naming its kind.
pub(super) fn tokenizer_json(content: &Content, src: &Path) -> Result<Value> {
    let model = content
        .metadata
        .get("tokenizer.ggml.model")
        .and_then(|v| v.to_string().ok())
        .map(String::as_str)
        .unwrap_or("");
    match model {
        "gpt2" => byte_level_bpe(content, src),
        "llama" => sentencepiece(content, src),
        other => Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{}: its '{other}' vocabulary cannot be written as tokenizer.json; uml converts \
                 byte-level BPE (gpt2) and SentencePiece (llama) vocabularies",
                src.display()
            ),
        )),
    }
}

fn byte_level_bpe(content: &Content, src: &Path) -> Result<Value> {
    let unsupported = |e: &dyn std::fmt::Display| {
        Error::new(
            ErrorKind::Unsupported,
            format!(
                "{}: its vocabulary cannot be written as tokenizer.json ({e})",
                src.display()
            ),
        )
    };
    let mut tokenizer = tokenizers::Tokenizer::from_gguf(content).map_err(|e| unsupported(&e))?;
    // candle's GGUF reader knows a few pre-tokenizers and otherwise adds GPT-2's prefix space,
    // which llama.cpp never does. Match llama.cpp's splitting for the common families.
    let pre = content
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .map(String::as_str)
        .unwrap_or("default");
    let byte_level = ByteLevel::new(false, true, true);
    match pre {
        "qwen2" | "llama3" | "smaug-bpe" | "lfm2" => {}
        // SmolLM / StarCoder: every digit alone, then GPT-2's split.
        "smollm" | "starcoder" | "refact" => {
            tokenizer.with_pre_tokenizer(Some(PreSequence::new(vec![
                Digits::new(true).into(),
                byte_level.into(),
            ])));
        }
        _ => {
            tokenizer.with_pre_tokenizer(Some(byte_level));
        }
    }
    let text = tokenizer.to_string(false).map_err(|e| unsupported(&e))?;
    Ok(serde_json::from_str(&text)?)
}

/// A SentencePiece vocabulary as llama.cpp runs it (`llm_tokenizer_spm`): spaces become `▁`
/// (with one in front of each text run when `add_space_prefix` is set), adjacent pieces merge
/// highest score first (leftmost on ties), and characters outside the vocabulary fall back to
/// `<0xHH>` byte pieces. A byte-fallback BPE whose merges are ranked by the merged piece's
/// score does the same; control and user-defined pieces become added tokens, matched whole
/// before any merging as llama.cpp matches them.
fn sentencepiece(content: &Content, src: &Path) -> Result<Value> {
    let md = &content.metadata;
    let invalid = |what: &str| Error::invalid_model(format!("{}: {what}", src.display()));
    let tokens: Vec<String> = match md.get("tokenizer.ggml.tokens") {
        Some(GgufValue::Array(a)) => a
            .iter()
            .map(|v| v.to_string().cloned())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| invalid("tokenizer.ggml.tokens holds a non-string"))?,
        _ => return Err(invalid("no tokenizer.ggml.tokens")),
    };
    let numbers = |key: &str, as_f32: bool| -> Vec<f32> {
        match md.get(key) {
            Some(GgufValue::Array(a)) => a
                .iter()
                .map(|v| {
                    if as_f32 {
                        v.to_f32().unwrap_or(0.0)
                    } else {
                        v.to_i32().map(|i| i as f32).unwrap_or(1.0)
                    }
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    let scores = numbers("tokenizer.ggml.scores", true);
    let types: Vec<i32> = numbers("tokenizer.ggml.token_type", false)
        .into_iter()
        .map(|t| t as i32)
        .collect();
    if scores.len() != tokens.len() || types.len() != tokens.len() {
        return Err(invalid(
            "tokenizer.ggml.scores or token_type does not match tokenizer.ggml.tokens",
        ));
    }
    let add_space_prefix = md
        .get("tokenizer.ggml.add_space_prefix")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(true);
    let unk = md
        .get("tokenizer.ggml.unknown_token_id")
        .and_then(|v| v.to_u32().ok())
        .and_then(|id| tokens.get(id as usize).cloned());

    let mut ids: HashMap<&str, usize> = HashMap::with_capacity(tokens.len());
    for (id, text) in tokens.iter().enumerate() {
        // The first of duplicated pieces wins, as in llama.cpp's text-to-token map.
        ids.entry(text.as_str()).or_insert(id);
    }
    // Every way of building a piece from two pieces, best merged score first.
    let mut merges: Vec<(f32, usize, &str, &str)> = Vec::new();
    for (id, text) in tokens.iter().enumerate() {
        if types[id] == TYPE_BYTE || ids.get(text.as_str()) != Some(&id) {
            continue;
        }
        for (split, _) in text.char_indices().skip(1) {
            let (left, right) = text.split_at(split);
            if ids.contains_key(left) && ids.contains_key(right) {
                merges.push((scores[id], id, left, right));
            }
        }
    }
    merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));

    let mut vocab = serde_json::Map::with_capacity(tokens.len());
    for (id, text) in tokens.iter().enumerate() {
        if ids.get(text.as_str()) == Some(&id) {
            vocab.insert(text.clone(), json!(id));
        }
    }
    let added: Vec<Value> = tokens
        .iter()
        .enumerate()
        .filter(|(id, _)| matches!(types[*id], TYPE_CONTROL | TYPE_USER_DEFINED))
        .map(|(id, text)| {
            json!({
                "id": id,
                "content": text,
                "single_word": false,
                "lstrip": false,
                "rstrip": false,
                "normalized": false,
                "special": types[id] == TYPE_CONTROL,
            })
        })
        .collect();
    let replace_spaces =
        json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"});
    let normalizer = if add_space_prefix {
        json!({"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u{2581}"},
            replace_spaces,
        ]})
    } else {
        replace_spaces
    };
    let mut decoders = vec![
        json!({"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "}),
        json!({"type": "ByteFallback"}),
        json!({"type": "Fuse"}),
    ];
    if add_space_prefix {
        decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
    }
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": null,
        "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": unk,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": true,
            "byte_fallback": true,
            "ignore_merges": false,
            "vocab": vocab,
            "merges": merges.iter().map(|(_, _, l, r)| json!([l, r])).collect::<Vec<_>>(),
        },
    }))
}
