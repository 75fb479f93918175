//! `ModelInfo` from Hugging Face folders (config.json, tokenizer files, weights) and PyTorch
//! zip checkpoints (listed, never unpickled).

use super::safetensors::{apply_shards, read_json, shard_files};
use super::ModelInfo;
use crate::error::{Error, Result};
use crate::format::{pytorch_pickle_name, Format, SHARD_INDEX};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A whole Hugging Face folder: its weights (sharded or single safetensors, else a PyTorch
/// checkpoint, else any safetensors files) and its config and tokenizer files.
pub(super) fn inspect_folder(dir: &Path) -> Result<ModelInfo> {
    let mut info = ModelInfo::new(dir, Format::HuggingFaceFolder);
    let index = dir.join(SHARD_INDEX);
    let single = dir.join("model.safetensors");
    let pytorch = dir.join("pytorch_model.bin");
    let mut is_pytorch = false;
    if index.is_file() {
        let shards = shard_files(&index)?;
        info.add_file(&index);
        apply_shards(&mut info, &shards)?;
    } else if single.is_file() {
        apply_shards(&mut info, &[single])?;
    } else if pytorch.is_file() {
        apply_pytorch_zip(&mut info, &pytorch)?;
        is_pytorch = true;
    } else {
        let mut others: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        others.sort();
        if others.is_empty() {
            info.notes.push(format!(
                "no weights found in {} (looked for {SHARD_INDEX}, model.safetensors, \
                 pytorch_model.bin and *.safetensors)",
                dir.display()
            ));
        } else {
            apply_shards(&mut info, &others)?;
        }
    }
    apply_folder(&mut info, dir)?;
    if is_pytorch {
        estimate_pytorch_params(&mut info);
    }
    Ok(info)
}

/// A PyTorch zip checkpoint file (with its folder's config when present).
pub(super) fn inspect_pytorch(path: &Path) -> Result<ModelInfo> {
    let mut info = ModelInfo::new(path, Format::PyTorch);
    apply_pytorch_zip(&mut info, path)?;
    let dir = crate::format::model_dir(path);
    if dir.join("config.json").is_file() {
        apply_folder(&mut info, &dir)?;
    }
    estimate_pytorch_params(&mut info);
    Ok(info)
}

/// List the archive: the storages under `<prefix>/data/` hold the tensor bytes. Their dtypes
/// and shapes live in the pickle, which uml does not execute.
fn apply_pytorch_zip(info: &mut ModelInfo, path: &Path) -> Result<()> {
    let file = crate::files::open_regular(path)?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| {
        Error::invalid_model(format!(
            "invalid PyTorch checkpoint {}: the zip archive cannot be read: {e} (truncated \
             download? fetch it again)",
            path.display()
        ))
    })?;
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    let pickle = pytorch_pickle_name(&names).ok_or_else(|| {
        Error::invalid_model(format!(
            "invalid PyTorch checkpoint {}: the archive has no data.pkl",
            path.display()
        ))
    })?;
    let data_prefix = match pickle.rsplit_once('/') {
        Some((prefix, _)) => format!("{prefix}/data/"),
        None => "data/".to_string(),
    };
    let mut storages = 0u64;
    let mut bytes = 0u64;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(|e| {
            Error::invalid_model(format!(
                "invalid PyTorch checkpoint {}: zip entry {i} cannot be read: {e}",
                path.display()
            ))
        })?;
        if entry.name().starts_with(&data_prefix) && !entry.is_dir() {
            storages += 1;
            bytes = bytes.saturating_add(entry.size());
        }
    }
    info.weights_bytes = bytes;
    info.file_size += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    info.files.push(path.to_path_buf());
    info.metadata
        .insert("pytorch.storages".into(), serde_json::json!(storages));
    info.metadata
        .insert("pytorch.zip_entries".into(), serde_json::json!(names.len()));
    Ok(())
}

/// Parameters from storage bytes and the config's dtype, when it gives one.
fn estimate_pytorch_params(info: &mut ModelInfo) {
    let dtype = info
        .metadata
        .get("config.torch_dtype")
        .or_else(|| info.metadata.get("config.dtype"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let (name, size) = match dtype.as_deref() {
        Some("float32") => ("F32", 4),
        Some("float16") => ("F16", 2),
        Some("bfloat16") => ("BF16", 2),
        _ => {
            info.notes.push(
                "parameter count unknown: tensor dtypes and shapes live in the checkpoint's \
                 pickle, which uml does not execute, and no config.json gives torch_dtype; \
                 weights_bytes is the sum of the storages"
                    .into(),
            );
            return;
        }
    };
    info.parameter_count = info.weights_bytes / size;
    info.quantization = Some(name.to_string());
    info.notes.push(format!(
        "parameter count estimated from the storage bytes and config torch_dtype {} (the \
         pickle is not executed)",
        dtype.unwrap_or_default()
    ));
}

/// The integer at the first of `keys` in `cfg` or its `text_config` (multimodal configs
/// nest the language model's hyperparameters there).
fn cfg_u64(cfg: &Value, keys: &[&str]) -> Option<u64> {
    let lookup = |v: &Value| keys.iter().find_map(|k| first_u64(v.get(*k)?));
    lookup(cfg).or_else(|| cfg.get("text_config").and_then(lookup))
}

/// An integer, or the first integer of a list (`eos_token_id: [1, 2]`).
fn first_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Array(a) => a.first().and_then(Value::as_u64),
        other => other.as_u64(),
    }
}

/// A token given as a string or as an AddedToken object (`{"content": "<s>", ...}`).
fn token_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// Apply the folder's config.json, generation_config.json, tokenizer_config.json,
/// chat_template.jinja and tokenizer.json to `info` (each only when present).
pub(super) fn apply_folder(info: &mut ModelInfo, dir: &Path) -> Result<()> {
    let config_path = dir.join("config.json");
    if config_path.is_file() {
        let cfg = read_json(&config_path)?;
        info.add_file(&config_path);
        apply_config(info, &cfg, dir);
    }

    let gen_path = dir.join("generation_config.json");
    if gen_path.is_file() {
        let gen = read_json(&gen_path)?;
        info.add_file(&gen_path);
        if info.bos_token_id.is_none() {
            info.bos_token_id = cfg_u64(&gen, &["bos_token_id"]).and_then(to_u32);
        }
        if info.eos_token_id.is_none() {
            info.eos_token_id = cfg_u64(&gen, &["eos_token_id"]).and_then(to_u32);
        }
    }

    let tc_path = dir.join("tokenizer_config.json");
    if tc_path.is_file() {
        let tc = read_json(&tc_path)?;
        info.add_file(&tc_path);
        info.chat_template = match tc.get("chat_template") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(list)) => {
                let named = |n: &str| {
                    list.iter()
                        .find(|t| t.get("name").and_then(Value::as_str) == Some(n))
                };
                named("default")
                    .or_else(|| list.first())
                    .and_then(|t| t.get("template"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            }
            _ => None,
        };
        info.bos_token = tc.get("bos_token").and_then(token_string);
        info.eos_token = tc.get("eos_token").and_then(token_string);
    }
    let jinja = dir.join("chat_template.jinja");
    if info.chat_template.is_none() && jinja.is_file() {
        let bytes =
            crate::files::read_capped(&jinja, crate::files::MAX_TEMPLATE_BYTES, "a chat template")?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::invalid_model(format!("{} is not UTF-8 text", jinja.display())))?;
        info.add_file(&jinja);
        info.chat_template = Some(text);
    }

    let tok_path = dir.join("tokenizer.json");
    if tok_path.is_file() {
        let tok = read_tokenizer_json(&tok_path)?;
        info.add_file(&tok_path);
        if let Some(ty) = tok.model.as_ref().and_then(|m| m.ty.as_ref()) {
            info.tokenizer_model = Some(ty.to_lowercase());
        }
        let model_vocab = tok.model.as_ref().map_or(0, |m| m.vocab.0);
        let added_max = tok.added_tokens.iter().map(|t| u64::from(t.id) + 1).max();
        if info.vocab_size.is_none() {
            info.vocab_size = Some(model_vocab.max(added_max.unwrap_or(0)));
        }
        let by_content = |s: &Option<String>| {
            let s = s.as_ref()?;
            tok.added_tokens
                .iter()
                .find(|t| &t.content == s)
                .map(|t| t.id)
        };
        let by_id = |id: Option<u32>| {
            tok.added_tokens
                .iter()
                .find(|t| Some(t.id) == id)
                .map(|t| t.content.clone())
        };
        if info.bos_token_id.is_none() {
            info.bos_token_id = by_content(&info.bos_token);
        }
        if info.eos_token_id.is_none() {
            info.eos_token_id = by_content(&info.eos_token);
        }
        if info.bos_token.is_none() {
            info.bos_token = by_id(info.bos_token_id);
        }
        if info.eos_token.is_none() {
            info.eos_token = by_id(info.eos_token_id);
        }
    }
    Ok(())
}

fn to_u32(v: u64) -> Option<u32> {
    u32::try_from(v).ok()
}

fn apply_config(info: &mut ModelInfo, cfg: &Value, dir: &Path) {
    let model_type = cfg.get("model_type").and_then(Value::as_str);
    let first_arch = cfg
        .get("architectures")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str);
    info.architecture = model_type.or(first_arch).map(str::to_string);
    info.name = cfg
        .get("_name_or_path")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()));
    info.block_count = cfg_u64(cfg, &["num_hidden_layers", "n_layer", "num_layers"]);
    info.embedding_length = cfg_u64(cfg, &["hidden_size", "n_embd", "d_model"]);
    info.head_count = cfg_u64(cfg, &["num_attention_heads", "n_head", "num_heads"]);
    info.head_count_kv = cfg_u64(cfg, &["num_key_value_heads", "num_kv_heads"]);
    info.key_length = cfg_u64(cfg, &["head_dim"]);
    info.value_length = info.key_length;
    info.feed_forward_length = cfg_u64(cfg, &["intermediate_size", "n_inner", "ffn_dim"]);
    info.vocab_size = cfg_u64(cfg, &["vocab_size"]).or(info.vocab_size);
    info.context_length = cfg_u64(
        cfg,
        &[
            "max_position_embeddings",
            "n_positions",
            "max_seq_len",
            "seq_length",
        ],
    );
    info.bos_token_id = cfg_u64(cfg, &["bos_token_id"]).and_then(to_u32);
    info.eos_token_id = cfg_u64(cfg, &["eos_token_id"]).and_then(to_u32);
    if let Some(obj) = cfg.as_object() {
        for (k, v) in obj {
            let summary = match v {
                Value::Array(a) if a.len() <= 8 && a.iter().all(|x| !x.is_object()) => v.clone(),
                Value::Array(a) => Value::String(format!("[array of {}]", a.len())),
                Value::Object(_) => continue,
                other => other.clone(),
            };
            info.metadata.insert(format!("config.{k}"), summary);
        }
    }
}

/// The parts of tokenizer.json inspect needs; the vocabulary is counted, not stored.
#[derive(Deserialize)]
struct TokenizerJson {
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
    model: Option<TokenizerModel>,
}

#[derive(Deserialize)]
struct AddedToken {
    id: u32,
    content: String,
}

#[derive(Deserialize)]
struct TokenizerModel {
    #[serde(rename = "type")]
    ty: Option<String>,
    #[serde(default)]
    vocab: Count,
}

/// The number of entries of a JSON map or list, skipped without being stored.
#[derive(Default)]
struct Count(u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Count, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a vocabulary map or list")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<Count, A::Error> {
                let mut n = 0;
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> std::result::Result<Count, A::Error> {
                let mut n = 0;
                while s.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
            fn visit_unit<E>(self) -> std::result::Result<Count, E> {
                Ok(Count(0))
            }
        }
        d.deserialize_any(V)
    }
}

fn read_tokenizer_json(path: &Path) -> Result<TokenizerJson> {
    let bytes = crate::files::read_capped(path, crate::files::MAX_JSON_BYTES, "tokenizer.json")?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::invalid_model(format!(
            "{} is not a valid tokenizer.json: {e}",
            path.display()
        ))
    })
}
