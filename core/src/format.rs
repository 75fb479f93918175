//! Sniffing what kind of model a path holds, from its bytes (never its extension).

use crate::error::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The index file of a sharded safetensors model.
pub const SHARD_INDEX: &str = "model.safetensors.index.json";

pub(crate) use crate::files::MAX_JSON_BYTES;

/// The model formats uml recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A GGUF file (version 2 or 3).
    Gguf,
    /// One `.safetensors` file.
    Safetensors,
    /// A `model.safetensors.index.json` and its shards (or the folder holding them).
    ShardedSafetensors,
    /// A Hugging Face model folder (`config.json` plus weights and tokenizer files).
    HuggingFaceFolder,
    /// A PyTorch zip checkpoint (`.bin` / `.pt` written by `torch.save`), read without
    /// executing its pickle.
    #[serde(rename = "pytorch")]
    PyTorch,
    /// Not a file: an OpenAI-compatible endpoint serving the model (`Model::remote`).
    Remote,
}

impl Format {
    /// A short human name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Gguf => "GGUF",
            Format::Safetensors => "safetensors",
            Format::ShardedSafetensors => "sharded safetensors",
            Format::HuggingFaceFolder => "Hugging Face folder",
            Format::PyTorch => "PyTorch checkpoint",
            Format::Remote => "remote endpoint",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const SUPPORTED: &str = "GGUF, safetensors (single or sharded with model.safetensors.index.json), \
     a Hugging Face folder with config.json, or a PyTorch zip checkpoint";

/// The largest safetensors JSON header accepted (real ones are well under 10 MB): what
/// detection believes, and what `inspect` reads.
pub const MAX_SAFETENSORS_HEADER: u64 = 100 << 20;

/// What format `path` holds. A missing path is `NotFound`; legacy GGML/GGJT files, old
/// pickle-only PyTorch files and unknown bytes are `UnsupportedFormat` with what to do.
pub fn detect(path: &Path) -> Result<Format> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return detect_dir(path);
    }
    let mut file = crate::files::open_regular(path)?;
    let mut head = Vec::with_capacity(16);
    (&mut file)
        .take(16)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;

    if head.starts_with(&crate::gguf::GGUF_MAGIC) {
        return Ok(Format::Gguf);
    }
    if let Some(legacy) = crate::gguf::legacy_ggml_format(&head) {
        return Err(Error::new(
            ErrorKind::UnsupportedFormat,
            format!(
                "{} is a legacy {legacy} file (llama.cpp's format before August 2023), which \
                 current llama.cpp cannot load; convert the original model to GGUF with \
                 llama.cpp's convert_hf_to_gguf.py (or convert_llama_ggml_to_gguf.py), or \
                 download a GGUF version of it",
                path.display()
            ),
        ));
    }
    if head.starts_with(b"PK\x03\x04") {
        return detect_zip(path);
    }
    if head.len() >= 9 && head[8] == b'{' {
        let n = u64::from_le_bytes([
            head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7],
        ]);
        // A plausible header length and a JSON object: safetensors (a header longer than
        // the file is reported as truncated by inspect, not as an unknown format).
        if (2..=MAX_SAFETENSORS_HEADER).contains(&n) {
            return Ok(Format::Safetensors);
        }
    }
    if head
        .first()
        .is_some_and(|b| b.is_ascii_whitespace() || *b == b'{')
        && is_shard_index(path)
    {
        return Ok(Format::ShardedSafetensors);
    }
    if head.starts_with(&[0x80, 0x02]) {
        return Err(Error::new(
            ErrorKind::UnsupportedFormat,
            format!(
                "{} is a legacy (pre-1.6) PyTorch pickle file; uml never executes pickles and \
                 reads only zip checkpoints: convert it to safetensors (or re-save it with a \
                 current torch.save)",
                path.display()
            ),
        ));
    }
    if let Some(e) = named_but_broken(path, &head, meta.len()) {
        return Err(e);
    }
    Err(Error::new(
        ErrorKind::UnsupportedFormat,
        format!(
            "{} is not a model format uml knows: it starts with {} ; supported are {SUPPORTED}",
            path.display(),
            describe_bytes(&head)
        ),
    ))
}

/// When the file's extension says what it was meant to be but its bytes do not match, say
/// what is wrong with it (a truncated download, a corrupt header) rather than "unknown format".
fn named_but_broken(path: &Path, head: &[u8], len: u64) -> Option<Error> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    let why = match ext.as_str() {
        "safetensors" if head.len() < 8 => format!(
            "the file is {len} bytes, too short for the 8-byte header length every safetensors \
             file starts with"
        ),
        "safetensors" => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&head[..8]);
            let claimed = u64::from_le_bytes(n);
            if claimed > len.saturating_sub(8) {
                format!(
                    "its header claims {claimed} bytes but the file has only {} after the \
                     length: truncated, or not a safetensors file",
                    len.saturating_sub(8)
                )
            } else {
                format!(
                    "its header ({claimed} bytes claimed) does not start with a JSON object; the \
                     file is corrupt"
                )
            }
        }
        "gguf" => format!(
            "it starts with {} where every GGUF starts with \"GGUF\"; the file is corrupt or \
             not a GGUF",
            describe_bytes(head)
        ),
        _ => return None,
    };
    Some(Error::invalid_model(format!(
        "{} is not a valid {ext} file: {why}. Download it again",
        path.display()
    )))
}

fn detect_dir(dir: &Path) -> Result<Format> {
    if dir.join(SHARD_INDEX).is_file() {
        return Ok(Format::ShardedSafetensors);
    }
    if dir.join("config.json").is_file() {
        return Ok(Format::HuggingFaceFolder);
    }
    if dir.join("adapter_config.json").is_file() {
        return Err(Error::new(
            ErrorKind::UnsupportedFormat,
            format!(
                "{} is a PEFT adapter, not a model: load its base model with the adapter as load \
                 option lora (or --lora), or convert it with `uml convert ADAPTER OUT.gguf --to \
                 gguf --base MODEL`",
                dir.display()
            ),
        ));
    }
    Err(Error::new(
        ErrorKind::UnsupportedFormat,
        format!(
            "{} is a folder without config.json or {SHARD_INDEX}, so it is not a Hugging Face \
             model folder; pass the model file itself (supported are {SUPPORTED})",
            dir.display()
        ),
    ))
}

/// The archive-relative name of a PyTorch checkpoint's pickle (`data.pkl` or `*/data.pkl`).
pub(crate) fn pytorch_pickle_name(names: &[String]) -> Option<&str> {
    names
        .iter()
        .map(String::as_str)
        .find(|n| *n == "data.pkl" || (n.ends_with("/data.pkl") && n.matches('/').count() == 1))
}

fn detect_zip(path: &Path) -> Result<Format> {
    let file = crate::files::open_regular(path)?;
    let archive = zip::ZipArchive::new(file).map_err(|e| {
        Error::invalid_model(format!(
            "{} starts like a zip archive (a PyTorch checkpoint?) but cannot be read as one: \
             {e} (truncated download? fetch it again)",
            path.display()
        ))
    })?;
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    if pytorch_pickle_name(&names).is_some() {
        return Ok(Format::PyTorch);
    }
    Err(Error::new(
        ErrorKind::UnsupportedFormat,
        format!(
            "{} is a zip archive without data.pkl, so not a PyTorch checkpoint; unpack it and \
             pass the model inside (supported are {SUPPORTED})",
            path.display()
        ),
    ))
}

/// Whether the JSON file at `path` is a safetensors shard index (has a `weight_map` object).
fn is_shard_index(path: &Path) -> bool {
    let Ok(text) = crate::files::read_capped(path, MAX_JSON_BYTES, "a shard index") else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("weight_map").map(serde_json::Value::is_object))
        .unwrap_or(false)
}

/// `"47 47 4d 4c (\"GGML\")"`: the bytes in hex and as text.
fn describe_bytes(head: &[u8]) -> String {
    if head.is_empty() {
        return "nothing (the file is empty)".to_string();
    }
    let shown = &head[..head.len().min(8)];
    let hex: Vec<String> = shown.iter().map(|b| format!("{b:02x}")).collect();
    let text: String = shown
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    format!("bytes {} (\"{text}\")", hex.join(" "))
}

/// The folder a model path lives in (the path itself for a folder).
pub(crate) fn model_dir(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uml_test_support as testing;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn sniffs_each_format_by_content() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        // Extensions lie on purpose: detection reads bytes.
        let gguf = dir.join("model.bin");
        testing::write_tiny_llama_gguf(&gguf, 1).unwrap();
        assert_eq!(detect(&gguf).unwrap(), Format::Gguf);

        let st = dir.join("weights.gguf");
        testing::write_tiny_safetensors(&st).unwrap();
        assert_eq!(detect(&st).unwrap(), Format::Safetensors);

        let hf = dir.join("hf");
        testing::write_tiny_hf_folder(&hf).unwrap();
        assert_eq!(detect(&hf).unwrap(), Format::HuggingFaceFolder);

        let sharded = dir.join("sharded");
        std::fs::create_dir(&sharded).unwrap();
        let index = write(
            &sharded,
            SHARD_INDEX,
            br#"{"metadata": {}, "weight_map": {"a": "model-00001-of-00001.safetensors"}}"#,
        );
        assert_eq!(detect(&sharded).unwrap(), Format::ShardedSafetensors);
        assert_eq!(detect(&index).unwrap(), Format::ShardedSafetensors);

        let pt = dir.join("pytorch_model.bin");
        let mut zw = zip::ZipWriter::new(std::fs::File::create(&pt).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zw.start_file("archive/data.pkl", opts).unwrap();
        std::io::Write::write_all(&mut zw, b"\x80\x02}q\x00.").unwrap();
        zw.finish().unwrap();
        assert_eq!(detect(&pt).unwrap(), Format::PyTorch);
    }

    #[test]
    fn legacy_ggml_is_unsupported_and_says_convert_to_gguf() {
        let d = tempfile::tempdir().unwrap();
        for magic in [0x6767_6d6cu32, 0x6767_6d66, 0x6767_6a74] {
            let mut bytes = magic.to_le_bytes().to_vec();
            bytes.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
            let p = write(d.path(), "old.bin", &bytes);
            let e = detect(&p).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::UnsupportedFormat);
            assert!(e.message().contains("legacy"), "{e}");
            assert!(
                e.message().contains("convert the original model to GGUF"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_file_named_for_a_format_says_what_is_wrong_with_it() {
        let d = tempfile::tempdir().unwrap();
        // A header length running past the end of the file.
        let mut bytes = (1u64 << 40).to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{\"a\":");
        let p = write(d.path(), "model.safetensors", &bytes);
        let e = detect(&p).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidModel, "{e}");
        assert!(
            e.message().contains("claims 1099511627776 bytes") && e.message().contains("only 5"),
            "{e}"
        );
        // A plausible length past the end is a safetensors file, reported truncated by inspect.
        let mut bytes = 1000u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{\"a\":");
        let p = write(d.path(), "cut.safetensors", &bytes);
        assert_eq!(detect(&p).unwrap(), Format::Safetensors);
        let e = crate::inspect::inspect(&p).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidModel, "{e}");
        let p = write(d.path(), "short.safetensors", b"\x01\x02");
        let e = detect(&p).unwrap_err();
        assert!(e.message().contains("too short"), "{e}");
        let p = write(d.path(), "x.gguf", b"hello, not a model");
        let e = detect(&p).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidModel, "{e}");
        assert!(e.message().contains("\"GGUF\""), "{e}");
        // Without a telling name it stays an unknown format.
        let p = write(d.path(), "x.bin", b"hello, not a model");
        assert_eq!(detect(&p).unwrap_err().kind(), ErrorKind::UnsupportedFormat);
    }

    #[test]
    fn unknown_and_missing() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "x.onnx", b"\x08\x07\x12\x04onnx");
        let e = detect(&p).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnsupportedFormat);
        assert!(e.message().contains("08 07 12 04"), "{e}");
        assert!(e.message().contains("GGUF, safetensors"), "{e}");

        let p = write(d.path(), "empty.gguf", b"");
        let e = detect(&p).unwrap_err();
        assert!(e.message().contains("empty"), "{e}");

        let p = write(
            d.path(),
            "old.pt",
            b"\x80\x02\x8a\x0alz\xfc\x9cF\xf9 j\xa8P\x19.",
        );
        let e = detect(&p).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnsupportedFormat);
        assert!(e.message().contains("pre-1.6"), "{e}");

        let p = write(d.path(), "other.json", br#"{"hello": 1}"#);
        assert_eq!(detect(&p).unwrap_err().kind(), ErrorKind::UnsupportedFormat);

        let e = detect(&d.path().join("nope.gguf")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);

        let e = detect(d.path()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnsupportedFormat);
        assert!(e.message().contains("config.json"), "{e}");

        let p = write(d.path(), "a.zip", b"PK\x03\x04garbage");
        assert_eq!(detect(&p).unwrap_err().kind(), ErrorKind::InvalidModel);
    }

    #[test]
    fn serde_names_are_snake_case() {
        assert_eq!(serde_json::to_value(Format::Gguf).unwrap(), "gguf");
        assert_eq!(
            serde_json::to_value(Format::ShardedSafetensors).unwrap(),
            "sharded_safetensors"
        );
        assert_eq!(serde_json::to_value(Format::PyTorch).unwrap(), "pytorch");
        assert_eq!(
            serde_json::to_value(Format::HuggingFaceFolder).unwrap(),
            "hugging_face_folder"
        );
    }
}
