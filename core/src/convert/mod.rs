//! Converting models between the two engines' formats: a GGUF (any ggml type, dequantized by
//! candle's reference kernels) to a Hugging Face folder that the candle backend runs, a Hugging
//! Face folder to a GGUF (F32, F16, Q8_0) that llama.cpp runs, and a GGUF to a GGUF of another
//! type. Together they give both backends the very same weights, which is how their outputs
//! are compared, and let a user run a model in whichever engine suits the machine.

mod family;
mod from_hf;
mod peft;
mod to_hf;
mod vocab;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value as GgufValue};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;

use crate::format::Format;
use crate::{Error, ErrorKind, Result};

pub use from_hf::hf_to_gguf;
pub use peft::{is_peft_adapter, peft_to_gguf, LoraBase};
pub use to_hf::gguf_to_hf;
pub(crate) use vocab::tokenizer_json;

/// Element types `gguf_to_gguf` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufType {
    F32,
    F16,
    Q8_0,
    Q4_0,
}

impl GgufType {
    /// Parse "f32", "f16", "q8_0" or "q4_0".
    pub fn parse(s: &str) -> Result<GgufType> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(GgufType::F32),
            "f16" => Ok(GgufType::F16),
            "q8_0" => Ok(GgufType::Q8_0),
            "q4_0" => Ok(GgufType::Q4_0),
            other => Err(Error::invalid_argument(format!(
                "GGUF type '{other}' is not one uml writes; use f32, f16, q8_0 or q4_0"
            ))),
        }
    }

    /// llama.cpp's `general.file_type` for a file whose tensors are of this type.
    pub(crate) fn file_type(self) -> u32 {
        match self {
            GgufType::F32 => 0,
            GgufType::F16 => 1,
            GgufType::Q8_0 => 7,
            GgufType::Q4_0 => 2,
        }
    }

    pub(crate) fn ggml(self) -> GgmlDType {
        match self {
            GgufType::F32 => GgmlDType::F32,
            GgufType::F16 => GgmlDType::F16,
            GgufType::Q8_0 => GgmlDType::Q8_0,
            GgufType::Q4_0 => GgmlDType::Q4_0,
        }
    }
}

/// What [`convert`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// A Hugging Face folder with F32 safetensors, run by the candle backend.
    HuggingFace,
    /// A GGUF of the given type, run by llama.cpp.
    Gguf(GgufType),
}

/// Convert the model at `src` (a GGUF, or a Hugging Face folder or a file in one) to `dst`,
/// choosing the direction from what `src` holds. Never overwrites `dst`.
pub fn convert(src: &Path, dst: &Path, to: Destination) -> Result<()> {
    let format = crate::format::detect(src)?;
    match (format, to) {
        (Format::Gguf, Destination::HuggingFace) => gguf_to_hf(src, dst),
        (Format::Gguf, Destination::Gguf(t)) => gguf_to_gguf(src, dst, t),
        (_, Destination::Gguf(t)) => hf_to_gguf(src, dst, t),
        (other, Destination::HuggingFace) => Err(Error::invalid_argument(format!(
            "{} is already a {other} model; convert it to GGUF (--to gguf), or load it as it is",
            src.display()
        ))),
    }
}

/// A GGUF's `general.architecture` ("" when missing).
pub(crate) fn gguf_architecture(content: &gguf_file::Content) -> String {
    content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_default()
}

fn candle_err<'p>(what: &str, path: &'p Path) -> impl Fn(candle_core::Error) -> Error + 'p {
    let what = what.to_string();
    move |e| Error::invalid_model(format!("{what} {}: {e}", path.display()))
}

pub(crate) fn read_gguf(path: &Path) -> Result<(gguf_file::Content, BufReader<File>)> {
    let file = crate::files::open_regular(path)?;
    let mut reader = BufReader::new(file);
    let content = gguf_file::Content::read(&mut reader).map_err(candle_err("cannot read", path))?;
    Ok((content, reader))
}

/// Refuse to write into a folder or file that already holds something: conversion never
/// overwrites a user's files.
fn check_destination(dst: &Path) -> Result<()> {
    let occupied = if dst.is_dir() {
        std::fs::read_dir(dst)
            .map_err(|e| Error::io(dst, e))?
            .next()
            .is_some()
    } else {
        dst.exists()
    };
    if occupied {
        return Err(Error::invalid_argument(format!(
            "{} already exists; choose a new destination (uml does not overwrite files)",
            dst.display()
        )));
    }
    Ok(())
}

/// Write `src` as a GGUF whose tensors are all of type `to` (1-D tensors such as norms stay
/// F32, as llama.cpp's own quantizer keeps them), with every metadata key copied.
pub fn gguf_to_gguf(src: &Path, dst: &Path, to: GgufType) -> Result<()> {
    check_destination(dst)?;
    let (content, mut reader) = read_gguf(src)?;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let q = content
            .tensor(&mut reader, name, &Device::Cpu)
            .map_err(candle_err(&format!("tensor {name} of"), src))?;
        let f = q
            .dequantize(&Device::Cpu)
            .map_err(candle_err("cannot dequantize", src))?;
        let target = if f.dims().len() < 2 {
            GgmlDType::F32
        } else {
            to.ggml()
        };
        let out = QTensor::quantize(&f, target).map_err(|e| {
            Error::invalid_argument(format!("tensor {name} cannot be stored as {target:?}: {e}"))
        })?;
        tensors.push((name.clone(), out));
    }
    let mut metadata: Vec<(&str, &GgufValue)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    metadata.sort_by_key(|(k, _)| *k);
    let file_type = GgufValue::U32(to.file_type());
    metadata.retain(|(k, _)| *k != "general.file_type");
    metadata.push(("general.file_type", &file_type));
    write_gguf(dst, &metadata, &tensors)
}

/// Write a GGUF to `dst` through `dst.gguf.part`, renamed only once complete, so a failed or
/// interrupted conversion never leaves a file that looks like a model (the part is removed).
fn write_gguf(
    dst: &Path,
    metadata: &[(&str, &GgufValue)],
    tensors: &[(String, QTensor)],
) -> Result<()> {
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let partial = dst.with_extension("gguf.part");
    let mut out = File::create(&partial).map_err(|e| Error::io(&partial, e))?;
    let written = gguf_file::write(&mut out, metadata, &refs);
    drop(out);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(Error::new(
            ErrorKind::Io,
            format!("writing {}: {e}", partial.display()),
        ));
    }
    std::fs::rename(&partial, dst).map_err(|e| Error::io(dst, e))
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests;
