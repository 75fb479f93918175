//! Reading a Hugging Face folder's config and weights, for the candle backend and for
//! conversion: safetensors (one file, or the shards an index lists) memory-mapped, or PyTorch
//! zip checkpoints (`pytorch_model.bin`, sharded or not) through candle's pickle reader.
//!
//! candle's reader never executes a pickle, but it quietly skips what it does not understand.
//! uml goes further: every global a checkpoint's pickle names must be one that rebuilding
//! tensors needs, or the checkpoint is refused, since a weights file that asks for anything
//! else (`os.system`, `builtins.eval`, ...) is at best not a plain state dict and at worst an
//! attack on whoever loads it with torch.

use std::collections::HashMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::pickle::{Object, PthTensors, Stack};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde_json::Value;

use crate::format::{pytorch_pickle_name, SHARD_INDEX};
use crate::{Error, ErrorKind, Result};

/// The index of a sharded PyTorch checkpoint.
const PYTORCH_INDEX: &str = "pytorch_model.bin.index.json";

/// The globals a PyTorch state dict's pickle may name: the tensor rebuilders, the storage
/// types candle reads, and OrderedDict (as torch's own `weights_only` loader allows).
const ALLOWED_GLOBALS: &[(&str, &str)] = &[
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch", "FloatStorage"),
    ("torch", "HalfStorage"),
    ("torch", "BFloat16Storage"),
    ("torch", "DoubleStorage"),
    ("torch", "LongStorage"),
    ("torch", "ByteStorage"),
];

/// `dir/config.json` as JSON.
pub(crate) fn read_config(dir: &Path) -> Result<Value> {
    crate::files::read_json(&dir.join("config.json"))
}

/// Where a folder's weights are.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WeightFiles {
    Safetensors(Vec<PathBuf>),
    PyTorch(Vec<PathBuf>),
}

/// The weight files of a folder: the safetensors shards its index lists (each must exist), else
/// `model.safetensors`, else every `*.safetensors`; failing those, the PyTorch checkpoint(s).
pub(crate) fn weight_files(dir: &Path) -> Result<WeightFiles> {
    let files = find_weight_files(dir)?;
    // Mapping or unzipping a FIFO would block: every weight file must be a regular file.
    match &files {
        WeightFiles::Safetensors(p) | WeightFiles::PyTorch(p) => {
            p.iter().try_for_each(|f| crate::files::check_regular(f))?
        }
    }
    Ok(files)
}

fn find_weight_files(dir: &Path) -> Result<WeightFiles> {
    let safetensors = if dir.join(SHARD_INDEX).is_file() {
        indexed_shards(dir, SHARD_INDEX)?
    } else if dir.join("model.safetensors").is_file() {
        vec![dir.join("model.safetensors")]
    } else {
        files_with_extension(dir, "safetensors")?
    };
    if !safetensors.is_empty() {
        return Ok(WeightFiles::Safetensors(safetensors));
    }
    let pytorch = if dir.join(PYTORCH_INDEX).is_file() {
        indexed_shards(dir, PYTORCH_INDEX)?
    } else if dir.join("pytorch_model.bin").is_file() {
        vec![dir.join("pytorch_model.bin")]
    } else {
        Vec::new()
    };
    if !pytorch.is_empty() {
        return Ok(WeightFiles::PyTorch(pytorch));
    }
    Err(Error::invalid_model(format!(
        "{} holds no weights: no *.safetensors, {SHARD_INDEX}, pytorch_model.bin or \
         {PYTORCH_INDEX}",
        dir.display()
    )))
}

fn indexed_shards(dir: &Path, index_name: &str) -> Result<Vec<PathBuf>> {
    let index = dir.join(index_name);
    let v = crate::files::read_json(&index)?;
    let mut names: Vec<&str> = v
        .get("weight_map")
        .and_then(Value::as_object)
        .map(|m| m.values().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return Err(Error::invalid_model(format!(
            "{} has no weight_map naming its shards",
            index.display()
        )));
    }
    let files: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "{} lists the shard {} but it is missing; download the whole model again",
                index.display(),
                missing.display()
            ),
        ));
    }
    Ok(files)
}

fn files_with_extension(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    all.sort();
    Ok(all)
}

/// A VarBuilder over the folder's weights, converting each tensor to `dtype` as it is read.
pub(crate) fn var_builder(
    files: &WeightFiles,
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>> {
    match files {
        WeightFiles::Safetensors(paths) => {
            // SAFETY: the files are mapped read-only while the VarBuilder lives; on the CPU
            // candle copies each tensor out of the map when it is fetched, so nothing refers to
            // the mapping after loading. A file truncated by another process meanwhile is the
            // one case memmap cannot guard against, as for every mmap-based loader.
            unsafe { VarBuilder::from_mmaped_safetensors(paths, dtype, device) }.map_err(|e| {
                Error::invalid_model(format!("cannot map the safetensors weights: {e}"))
            })
        }
        WeightFiles::PyTorch(paths) => {
            let mut all = HashMap::new();
            for path in paths {
                let checkpoint = open_pytorch(path)?;
                for name in checkpoint.tensor_infos().keys() {
                    all.insert(name.clone(), pytorch_tensor(&checkpoint, name, path)?);
                }
            }
            Ok(VarBuilder::from_tensors(all, dtype, device))
        }
    }
}

/// Every tensor of the folder's weights by name, read one at a time (conversion holds only the
/// converted copies, never the whole source, in memory).
pub(crate) struct TensorSource {
    kind: SourceKind,
}

enum SourceKind {
    Safetensors(MmapedSafetensors),
    PyTorch(Vec<(PathBuf, PthTensors)>),
}

impl TensorSource {
    pub(crate) fn open(files: &WeightFiles) -> Result<TensorSource> {
        let kind = match files {
            WeightFiles::Safetensors(paths) => {
                // SAFETY: as in `var_builder`: read-only maps, each tensor copied out on `get`.
                let st = unsafe { MmapedSafetensors::multi(paths) }.map_err(|e| {
                    Error::invalid_model(format!("cannot map the safetensors weights: {e}"))
                })?;
                SourceKind::Safetensors(st)
            }
            WeightFiles::PyTorch(paths) => SourceKind::PyTorch(
                paths
                    .iter()
                    .map(|p| Ok((p.clone(), open_pytorch(p)?)))
                    .collect::<Result<_>>()?,
            ),
        };
        Ok(TensorSource { kind })
    }

    /// The tensor names, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = match &self.kind {
            SourceKind::Safetensors(st) => st.tensors().into_iter().map(|(n, _)| n).collect(),
            SourceKind::PyTorch(files) => files
                .iter()
                .flat_map(|(_, c)| c.tensor_infos().keys().cloned())
                .collect(),
        };
        names.sort();
        names.dedup();
        names
    }

    pub(crate) fn get(&self, name: &str) -> Result<Tensor> {
        match &self.kind {
            SourceKind::Safetensors(st) => st
                .load(name, &Device::Cpu)
                .map_err(|e| Error::invalid_model(format!("tensor {name}: {e}"))),
            SourceKind::PyTorch(files) => {
                let (path, checkpoint) = files
                    .iter()
                    .find(|(_, c)| c.tensor_infos().contains_key(name))
                    .ok_or_else(|| Error::invalid_model(format!("no tensor named {name}")))?;
                pytorch_tensor(checkpoint, name, path)
            }
        }
    }
}

fn pytorch_tensor(checkpoint: &PthTensors, name: &str, path: &Path) -> Result<Tensor> {
    checkpoint
        .get(name)
        .map_err(|e| Error::invalid_model(format!("{}: tensor {name}: {e}", path.display())))?
        .ok_or_else(|| Error::invalid_model(format!("{}: no tensor {name}", path.display())))
}

/// Open a PyTorch zip checkpoint after checking every global its pickle names.
fn open_pytorch(path: &Path) -> Result<PthTensors> {
    check_pickle_globals(path)?;
    PthTensors::new(path, None).map_err(|e| {
        Error::invalid_model(format!(
            "{} cannot be read as a PyTorch state dict: {e}",
            path.display()
        ))
    })
}

/// Walk the checkpoint's pickle one opcode at a time (candle's reader only builds values, it
/// calls nothing) and refuse it at the first global outside `ALLOWED_GLOBALS`.
pub(crate) fn check_pickle_globals(path: &Path) -> Result<()> {
    let invalid = |why: String| Error::invalid_model(format!("{}: {why}", path.display()));
    let file = crate::files::open_regular(path)?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| invalid(format!("not a readable PyTorch zip checkpoint ({e})")))?;
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    let pickle = pytorch_pickle_name(&names)
        .ok_or_else(|| invalid("the archive has no data.pkl".into()))?
        .to_string();
    let entry = archive
        .by_name(&pickle)
        .map_err(|e| invalid(format!("{pickle} cannot be read ({e})")))?;
    let mut reader = BufReader::new(entry);
    let mut stack = Stack::empty();
    loop {
        let done = stack.read(&mut reader).map_err(|e| {
            invalid(format!(
                "its pickle cannot be read ({e}); re-save it with torch.save, or convert it to \
                 safetensors"
            ))
        })?;
        if let Some(Object::Class {
            module_name,
            class_name,
        }) = stack.stack().last()
        {
            let allowed = ALLOWED_GLOBALS
                .iter()
                .any(|(m, c)| m == module_name && c == class_name);
            if !allowed {
                return Err(Error::new(
                    ErrorKind::InvalidModel,
                    format!(
                        "{}: its pickle refers to {module_name}.{class_name}, which a plain \
                         state dict of tensors never needs; uml refuses it (loading it with \
                         torch could run code). Convert the weights to safetensors with a tool \
                         you trust, or get a safetensors copy of the model",
                        path.display()
                    ),
                ));
            }
        }
        if done {
            return Ok(());
        }
    }
}
