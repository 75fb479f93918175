//! GGUF: reading headers (metadata and tensor table, never the weights) and writing small
//! files for tests.
//!
//! Layout (little-endian): magic `GGUF`, version (u32), tensor count (u64), metadata count
//! (u64), the metadata key/values, the tensor infos (name, dims innermost-first, ggml type,
//! offset relative to the data section), padding to the alignment, then the tensor data.

pub mod ggml;
mod reader;
mod value;
mod writer;

#[cfg(test)]
mod tests;

pub use ggml::{file_type_name, GgmlType};
pub use reader::{parse_header, read_header};
pub use value::{GgufArray, GgufValue, GgufValueType};
pub use writer::{f16_bits_to_f32, f32_to_f16_bits, GgufWriter};

use serde::Serialize;
use std::collections::BTreeMap;

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";

/// The alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Numeric arrays longer than this are skipped by the reader (only their length is kept):
/// token scores and token types of large vocabularies are not needed to inspect a model.
/// String arrays are always kept (the vocabulary names the special tokens).
pub const MAX_KEPT_NUMERIC_ARRAY: u64 = 4096;

/// The first four bytes of the pre-GGUF formats llama.cpp used before August 2023 (the magic
/// u32 written little-endian), with their names.
const LEGACY_MAGICS: [([u8; 4], &str); 4] = [
    (*b"lmgg", "GGML (unversioned)"),
    (*b"fmgg", "GGMF"),
    (*b"tjgg", "GGJT"),
    (*b"algg", "GGLA (LoRA adapter)"),
];

/// The name of the legacy GGML-family format whose magic `head` starts with, if any.
pub fn legacy_ggml_format(head: &[u8]) -> Option<&'static str> {
    LEGACY_MAGICS
        .iter()
        .find(|(m, _)| head.starts_with(m))
        .map(|(_, name)| *name)
}

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GgufTensorInfo {
    pub name: String,
    /// Dimensions, innermost first (GGUF / ggml order: a matrix with rows of `n_embd` is
    /// `[n_embd, n_rows]`).
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    pub n_elements: u64,
    /// Bytes of data: elements / block size × bytes per block.
    pub n_bytes: u64,
}

/// The header of a GGUF file.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    pub version: u32,
    pub metadata: BTreeMap<String, GgufValue>,
    pub tensors: Vec<GgufTensorInfo>,
    pub alignment: u64,
    /// Absolute file offset of the tensor data section.
    pub data_offset: u64,
    pub file_size: u64,
}

impl GgufHeader {
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(GgufValue::as_str)
    }

    /// An integer key; a per-layer array gives its largest item.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        match self.get(key)? {
            GgufValue::Array(a) => a
                .values
                .as_ref()?
                .iter()
                .filter_map(GgufValue::as_u64)
                .max(),
            v => v.as_u64(),
        }
    }

    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(GgufValue::as_f64)
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    pub fn tensor(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Bytes of all tensor data.
    pub fn tensor_data_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.n_bytes).sum()
    }
}
