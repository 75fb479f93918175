//! `ModelInfo` from safetensors files: the JSON header of one file, or the shards named by a
//! `model.safetensors.index.json`.

use super::{ModelInfo, TensorStats};
use crate::error::{Error, ErrorKind, Result};
use crate::format::{Format, SHARD_INDEX};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::format::MAX_SAFETENSORS_HEADER as MAX_HEADER_BYTES;

/// One tensor of a safetensors header.
#[derive(Debug, Clone)]
pub(crate) struct StTensor {
    pub name: String,
    pub dtype: String,
    pub n_elements: u64,
    pub n_bytes: u64,
}

/// A parsed safetensors header.
#[derive(Debug, Clone)]
pub(crate) struct StHeader {
    pub tensors: Vec<StTensor>,
    pub metadata: BTreeMap<String, String>,
    pub file_size: u64,
}

#[derive(Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// Bits per element of a safetensors dtype.
fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" => 64,
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        _ => return None,
    })
}

fn invalid(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::invalid_model(format!(
        "invalid safetensors model {}: {what}",
        path.display()
    ))
}

/// Read and check the header of the safetensors file at `path`.
pub(crate) fn read_header(path: &Path) -> Result<StHeader> {
    let mut file = crate::files::open_regular(path)?;
    let file_size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut len_bytes = [0u8; 8];
    file.read_exact(&mut len_bytes).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            invalid(
                path,
                format_args!(
                    "the file is only {file_size} bytes, too short for a header \
                     (truncated download? fetch it again)"
                ),
            )
        } else {
            Error::io(path, e)
        }
    })?;
    let n = u64::from_le_bytes(len_bytes);
    if n > MAX_HEADER_BYTES {
        return Err(invalid(
            path,
            format_args!(
                "the header claims {n} bytes, more than the {MAX_HEADER_BYTES} uml accepts \
                 (corrupt file?)"
            ),
        ));
    }
    if n > file_size - 8 {
        return Err(invalid(
            path,
            format_args!(
                "the header claims {n} bytes but the file is only {file_size} bytes \
                 (truncated download? fetch it again)"
            ),
        ));
    }
    let mut json = vec![0u8; n as usize];
    file.read_exact(&mut json).map_err(|e| Error::io(path, e))?;
    let raw: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&json)
        .map_err(|e| invalid(path, format_args!("the JSON header does not parse: {e}")))?;
    let data_len = file_size - 8 - n;

    let mut tensors = Vec::with_capacity(raw.len());
    let mut metadata = BTreeMap::new();
    for (name, value) in raw {
        if name == "__metadata__" {
            if let serde_json::Value::Object(m) = value {
                for (k, v) in m {
                    let s = match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    metadata.insert(k, s);
                }
            }
            continue;
        }
        let e: Entry = serde_json::from_value(value).map_err(|e| {
            invalid(
                path,
                format_args!("tensor '{name}' has a malformed entry in the header: {e}"),
            )
        })?;
        let bits = dtype_bits(&e.dtype).ok_or_else(|| {
            invalid(
                path,
                format_args!(
                    "tensor '{name}' has unknown dtype '{}' (upgrade uml, or the file is \
                     corrupt)",
                    e.dtype
                ),
            )
        })?;
        let n_elements = e
            .shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                invalid(
                    path,
                    format_args!(
                        "tensor '{name}' has shape {:?} whose element count overflows",
                        e.shape
                    ),
                )
            })?;
        let n_bytes = n_elements
            .checked_mul(bits)
            .map(|b| b.div_ceil(8))
            .ok_or_else(|| invalid(path, format_args!("tensor '{name}' is too large")))?;
        let [begin, end] = e.data_offsets;
        if end < begin || end - begin != n_bytes {
            return Err(invalid(
                path,
                format_args!(
                    "tensor '{name}' ({} {:?}) needs {n_bytes} bytes but its data_offsets \
                     [{begin}, {end}] span {} (corrupt header)",
                    e.dtype,
                    e.shape,
                    end.wrapping_sub(begin) as i64
                ),
            ));
        }
        if end > data_len {
            return Err(invalid(
                path,
                format_args!(
                    "tensor '{name}' data ends at byte {} but the file is only {file_size} \
                     bytes (truncated download? fetch it again)",
                    end.saturating_add(8 + n)
                ),
            ));
        }
        tensors.push(StTensor {
            name,
            dtype: e.dtype,
            n_elements,
            n_bytes,
        });
    }
    Ok(StHeader {
        tensors,
        metadata,
        file_size,
    })
}

fn add_header(stats: &mut TensorStats, h: &StHeader) {
    for t in &h.tensors {
        stats.add(&t.name, &t.dtype, t.n_elements, t.n_bytes);
    }
}

/// One safetensors file: its tensors (`inspect` adds the folder's config.json and tokenizer).
pub(super) fn inspect_file(path: &Path) -> Result<ModelInfo> {
    let mut info = ModelInfo::new(path, Format::Safetensors);
    let h = read_header(path)?;
    let mut stats = TensorStats::default();
    add_header(&mut stats, &h);
    stats.apply(&mut info);
    info.file_size = h.file_size;
    info.files.push(path.to_path_buf());
    for (k, v) in h.metadata {
        info.metadata
            .insert(format!("safetensors.{k}"), serde_json::Value::String(v));
    }
    Ok(info)
}

/// Read a JSON file of at most [`MAX_JSON_BYTES`].
pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value> {
    crate::files::read_json(path)
}

/// The shard files named by an index, checked to be plain file names in its folder.
pub(crate) fn shard_files(index: &Path) -> Result<Vec<PathBuf>> {
    let v = read_json(index)?;
    let map = v
        .get("weight_map")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| {
            Error::invalid_model(format!(
                "{} has no \"weight_map\" object, so it is not a safetensors shard index",
                index.display()
            ))
        })?;
    let dir = crate::format::model_dir(index);
    let mut names = BTreeSet::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| {
            Error::invalid_model(format!(
                "{}: tensor '{tensor}' maps to {file}, not a file name",
                index.display()
            ))
        })?;
        // Shards live beside the index: a path here could make uml read any file.
        if file.is_empty()
            || file.contains('/')
            || file.contains('\\')
            || file == ".."
            || file == "."
        {
            return Err(Error::invalid_model(format!(
                "{}: tensor '{tensor}' maps to '{file}', which is not a file name in the \
                 index's folder (shards must sit beside the index)",
                index.display()
            )));
        }
        names.insert(file.to_string());
    }
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        let p = dir.join(&name);
        if !p.is_file() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "shard {} listed in {} is missing (incomplete download? fetch the model \
                     again)",
                    p.display(),
                    index.display()
                ),
            ));
        }
        files.push(p);
    }
    Ok(files)
}

/// Sum the headers of `shards` into `info`.
pub(crate) fn apply_shards(info: &mut ModelInfo, shards: &[PathBuf]) -> Result<()> {
    let mut stats = TensorStats::default();
    for shard in shards {
        let h = read_header(shard)?;
        add_header(&mut stats, &h);
        info.file_size += h.file_size;
        info.files.push(shard.clone());
        for (k, v) in h.metadata {
            info.metadata
                .entry(format!("safetensors.{k}"))
                .or_insert(serde_json::Value::String(v));
        }
    }
    stats.apply(info);
    Ok(())
}

/// A sharded model: `path` is the index file or the folder holding it.
pub(super) fn inspect_sharded(path: &Path) -> Result<ModelInfo> {
    let index = if path.is_dir() {
        path.join(SHARD_INDEX)
    } else {
        path.to_path_buf()
    };
    let mut info = ModelInfo::new(path, Format::ShardedSafetensors);
    let shards = shard_files(&index)?;
    info.add_file(&index);
    apply_shards(&mut info, &shards)?;
    Ok(info)
}
