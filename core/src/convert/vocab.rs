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
pub(crate) fn tokenizer_json(content: &Content, src: &Path) -> Result<Value> {
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

/// llama.cpp's remaining token types.
const TYPE_NORMAL: i32 = 1;
const TYPE_UNKNOWN: i32 = 2;
const TYPE_UNUSED: i32 = 5;

/// The regexes llama.cpp's `llama3` and `qwen2` pre-tokenizers use, as HF writes them.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The `tokenizer.*` GGUF metadata for a Hugging Face folder's tokenizer.json (and its
/// tokenizer_config.json), padded with unused entries to the embedding's `n_rows`, as
/// llama.cpp requires one token per row.
pub(super) fn gguf_vocab(
    dir: &Path,
    config: &Value,
    n_rows: usize,
) -> Result<Vec<(String, GgufValue)>> {
    let tok_path = dir.join("tokenizer.json");
    if !tok_path.exists() {
        return Err(Error::invalid_model(format!(
            "{} has no tokenizer.json; a GGUF needs the vocabulary from the fast tokenizer file \
             (save it with transformers' tokenizer.save_pretrained)",
            dir.display()
        )));
    }
    let bytes =
        crate::files::read_capped(&tok_path, crate::files::MAX_JSON_BYTES, "tokenizer.json")?;
    let tj: Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::invalid_model(format!("{} is not valid JSON: {e}", tok_path.display()))
    })?;
    let invalid = |what: &str| Error::invalid_model(format!("{}: {what}", tok_path.display()));
    let model = tj.get("model").ok_or_else(|| invalid("no model"))?;
    let kind = model.get("type").and_then(Value::as_str).unwrap_or("");

    // Base vocabulary: (text, score) by id.
    let mut entries: Vec<Option<(String, f32)>> = Vec::new();
    fn set(entries: &mut Vec<Option<(String, f32)>>, id: usize, text: String, score: f32) {
        if entries.len() <= id {
            entries.resize(id + 1, None);
        }
        entries[id] = Some((text, score));
    }
    let mut merges: Vec<(String, String)> = Vec::new();
    let byte_fallback = model
        .get("byte_fallback")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match kind {
        "BPE" => {
            let vocab = model
                .get("vocab")
                .and_then(Value::as_object)
                .ok_or_else(|| invalid("BPE model without vocab"))?;
            for (text, id) in vocab {
                let id = id
                    .as_u64()
                    .ok_or_else(|| invalid("a vocab id is not a number"))?;
                set(&mut entries, id as usize, text.clone(), 0.0);
            }
            for m in model
                .get("merges")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let pair = match m {
                    Value::String(s) => s
                        .split_once(' ')
                        .map(|(a, b)| (a.to_string(), b.to_string())),
                    Value::Array(a) => match (
                        a.first().and_then(Value::as_str),
                        a.get(1).and_then(Value::as_str),
                    ) {
                        (Some(l), Some(r)) => Some((l.to_string(), r.to_string())),
                        _ => None,
                    },
                    _ => None,
                };
                merges.push(pair.ok_or_else(|| invalid("a merge is not a pair of pieces"))?);
            }
        }
        "Unigram" => {
            let vocab = model
                .get("vocab")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid("Unigram model without vocab"))?;
            for (id, e) in vocab.iter().enumerate() {
                let text = e
                    .get(0)
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("a Unigram entry has no piece"))?;
                let score = e.get(1).and_then(Value::as_f64).unwrap_or(0.0) as f32;
                set(&mut entries, id, text.to_string(), score);
            }
        }
        other => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{}: a '{other}' tokenizer is not converted to GGUF yet; uml converts BPE \
                     (byte-level or SentencePiece-style) and Unigram tokenizers",
                    tok_path.display()
                ),
            ))
        }
    }
    let sentencepiece = kind == "Unigram" || byte_fallback;

    // Added tokens override or extend the base vocabulary.
    let mut types: Vec<i32> = Vec::new();
    let mut added: Vec<(usize, String, bool)> = Vec::new();
    for a in tj
        .get("added_tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(id), Some(text)) = (
            a.get("id").and_then(Value::as_u64),
            a.get("content").and_then(Value::as_str),
        ) else {
            return Err(invalid("an added token lacks id or content"));
        };
        let special = a.get("special").and_then(Value::as_bool).unwrap_or(false);
        added.push((id as usize, text.to_string(), special));
    }
    for (id, text, _) in &added {
        let score = entries
            .get(*id)
            .and_then(|e| e.as_ref())
            .map_or(0.0, |e| e.1);
        set(&mut entries, *id, text.clone(), score);
    }
    if entries.len() > n_rows {
        return Err(invalid(&format!(
            "the tokenizer has {} tokens but the embedding only {n_rows} rows",
            entries.len()
        )));
    }
    entries.resize(n_rows, None);

    // SentencePiece-style BPE keeps no scores: rank pieces by the merge that first makes them,
    // which is the order llama.cpp's SPM tokenizer then merges them in.
    if sentencepiece && kind == "BPE" {
        let index: HashMap<String, usize> = entries
            .iter()
            .enumerate()
            .filter_map(|(id, e)| e.as_ref().map(|(t, _)| (t.clone(), id)))
            .collect();
        let unranked = -(merges.len() as f32) - 1.0;
        for e in entries.iter_mut().flatten() {
            e.1 = unranked;
        }
        for (rank, (l, r)) in merges.iter().enumerate().rev() {
            if let Some(&id) = index.get(&format!("{l}{r}")) {
                if let Some(e) = entries[id].as_mut() {
                    e.1 = -(rank as f32);
                }
            }
        }
    }

    let tokenizer_config = read_json(&dir.join("tokenizer_config.json"));
    let unk_text = tokenizer_config
        .get("unk_token")
        .and_then(token_content)
        .or_else(|| {
            model
                .get("unk_token")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    let mut tokens = Vec::with_capacity(n_rows);
    let mut scores = Vec::with_capacity(n_rows);
    for (id, e) in entries.iter().enumerate() {
        let (text, score, ty) = match e {
            None => (format!("[PAD{id}]"), 0.0, TYPE_UNUSED),
            Some((text, score)) => {
                let ty = match added.iter().find(|(a, _, _)| *a == id) {
                    Some((_, _, true)) => TYPE_CONTROL,
                    Some((_, _, false)) => TYPE_USER_DEFINED,
                    None if unk_text.as_deref() == Some(text.as_str()) => TYPE_UNKNOWN,
                    None if sentencepiece && is_byte_piece(text) => TYPE_BYTE,
                    None => TYPE_NORMAL,
                };
                (text.clone(), *score, ty)
            }
        };
        tokens.push(GgufValue::String(text));
        scores.push(GgufValue::F32(score));
        types.push(ty);
    }
    let find = |text: &str| -> Option<u32> {
        entries
            .iter()
            .position(|e| e.as_ref().is_some_and(|(t, _)| t == text))
            .map(|i| i as u32)
    };
    let special_id = |name: &str, config_key: &str| -> Option<u32> {
        tokenizer_config
            .get(name)
            .and_then(token_content)
            .and_then(|t| find(&t))
            .or_else(|| {
                match config.get(config_key) {
                    Some(Value::Array(a)) => a.first().and_then(Value::as_u64),
                    Some(v) => v.as_u64(),
                    None => None,
                }
                .map(|v| v as u32)
            })
    };

    let mut md: Vec<(String, GgufValue)> = Vec::new();
    let mut put = |k: &str, v: GgufValue| md.push((k.to_string(), v));
    if sentencepiece {
        put("tokenizer.ggml.model", GgufValue::String("llama".into()));
        put("tokenizer.ggml.pre", GgufValue::String("default".into()));
    } else {
        put("tokenizer.ggml.model", GgufValue::String("gpt2".into()));
        put(
            "tokenizer.ggml.pre",
            GgufValue::String(byte_level_pre(&tj, &tok_path)?.into()),
        );
    }
    put("tokenizer.ggml.tokens", GgufValue::Array(tokens));
    if sentencepiece {
        put("tokenizer.ggml.scores", GgufValue::Array(scores));
        put(
            "tokenizer.ggml.add_space_prefix",
            GgufValue::Bool(adds_space_prefix(&tj)),
        );
    } else {
        put(
            "tokenizer.ggml.merges",
            GgufValue::Array(
                merges
                    .iter()
                    .map(|(l, r)| GgufValue::String(format!("{l} {r}")))
                    .collect(),
            ),
        );
    }
    put(
        "tokenizer.ggml.token_type",
        GgufValue::Array(types.into_iter().map(GgufValue::I32).collect()),
    );
    for (name, config_key, gguf_key) in [
        ("bos_token", "bos_token_id", "tokenizer.ggml.bos_token_id"),
        ("eos_token", "eos_token_id", "tokenizer.ggml.eos_token_id"),
        (
            "pad_token",
            "pad_token_id",
            "tokenizer.ggml.padding_token_id",
        ),
        (
            "unk_token",
            "unk_token_id",
            "tokenizer.ggml.unknown_token_id",
        ),
    ] {
        if let Some(id) = special_id(name, config_key) {
            put(gguf_key, GgufValue::U32(id));
        }
    }
    let flag = |k: &str| {
        tokenizer_config
            .get(k)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    put(
        "tokenizer.ggml.add_bos_token",
        GgufValue::Bool(flag("add_bos_token")),
    );
    put(
        "tokenizer.ggml.add_eos_token",
        GgufValue::Bool(flag("add_eos_token")),
    );
    if let Some(template) = chat_template(dir, &tokenizer_config) {
        put("tokenizer.chat_template", GgufValue::String(template));
    }
    Ok(md)
}

fn read_json(path: &Path) -> Value {
    crate::files::read_json(path).unwrap_or(Value::Null)
}

/// A special token in tokenizer_config.json: a string or `{"content": ...}`.
fn token_content(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

fn is_byte_piece(text: &str) -> bool {
    text.len() == 6 && text.starts_with("<0x") && text.ends_with('>')
}

/// The chat template: tokenizer_config.json's (a string, or the one named "default" of a list),
/// else chat_template.jinja.
fn chat_template(dir: &Path, tokenizer_config: &Value) -> Option<String> {
    match tokenizer_config.get("chat_template") {
        Some(Value::String(s)) => return Some(s.clone()),
        Some(Value::Array(list)) => {
            let named = list
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))?;
            return named
                .get("template")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        _ => {}
    }
    crate::files::read_capped(
        &dir.join("chat_template.jinja"),
        crate::files::MAX_TEMPLATE_BYTES,
        "a chat template",
    )
    .ok()
    .and_then(|b| String::from_utf8(b).ok())
}

/// Whether a SentencePiece-style tokenizer.json puts `▁` before each text run.
fn adds_space_prefix(tj: &Value) -> bool {
    fn has_prepend(n: &Value) -> bool {
        match n.get("type").and_then(Value::as_str) {
            Some("Prepend") => true,
            Some("Sequence") => n
                .get("normalizers")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(has_prepend)),
            _ => false,
        }
    }
    fn metaspace_prepends(p: &Value) -> bool {
        match p.get("type").and_then(Value::as_str) {
            Some("Metaspace") => p.get("prepend_scheme").and_then(Value::as_str).map_or_else(
                || {
                    p.get("add_prefix_space")
                        .and_then(Value::as_bool)
                        .unwrap_or(true)
                },
                |s| s != "never",
            ),
            Some("Sequence") => p
                .get("pretokenizers")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(metaspace_prepends)),
            _ => false,
        }
    }
    tj.get("normalizer").is_some_and(has_prepend)
        || tj.get("pre_tokenizer").is_some_and(metaspace_prepends)
}

/// llama.cpp's name for a byte-level BPE's pre-tokenizer, recognised from its structure.
pub(super) fn byte_level_pre(tj: &Value, path: &Path) -> Result<&'static str> {
    let pre = tj.get("pre_tokenizer").unwrap_or(&Value::Null);
    let ty = |v: &Value| {
        v.get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let parts: Vec<&Value> = if ty(pre) == "Sequence" {
        pre.get("pretokenizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    } else {
        vec![pre]
    };
    let kinds: Vec<String> = parts.iter().map(|p| ty(p)).collect();
    let kinds: Vec<&str> = kinds.iter().map(String::as_str).collect();
    let regex_of = |p: &Value| {
        p.get("pattern")
            .and_then(|pat| pat.get("Regex"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let uses_regex = |p: &Value| p.get("use_regex").and_then(Value::as_bool).unwrap_or(true);
    match kinds.as_slice() {
        ["ByteLevel"] if uses_regex(parts[0]) => return Ok("gpt-2"),
        ["Digits", "ByteLevel"]
            if parts[0].get("individual_digits").and_then(Value::as_bool) == Some(true) =>
        {
            return Ok("smollm")
        }
        ["Split", "ByteLevel"] if !uses_regex(parts[1]) => match regex_of(parts[0]).as_deref() {
            Some(LLAMA3_SPLIT) => return Ok("llama3"),
            Some(QWEN2_SPLIT) => return Ok("qwen2"),
            _ => {}
        },
        _ => {}
    }
    Err(Error::new(
        ErrorKind::Unsupported,
        format!(
            "{}: its pre-tokenizer ({}) is not one uml maps to llama.cpp's (gpt-2, smollm, \
             llama3, qwen2); a GGUF with the wrong one would split text differently",
            path.display(),
            serde_json::to_string(pre).unwrap_or_default()
        ),
    ))
}
