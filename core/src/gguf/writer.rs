//! Writing GGUF files: metadata of every type and f32/f16 (or raw pre-encoded) tensors, laid
//! out with llama.cpp's alignment rules. Used to build tiny test models in every crate.

use super::ggml::GgmlType;
use super::value::{GgufArray, GgufValue};
use super::{DEFAULT_ALIGNMENT, GGUF_MAGIC};
use crate::error::{Error, Result};
use std::path::Path;

struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ggml_type: GgmlType,
    data: Vec<u8>,
}

/// Builds a GGUF file in memory. Keys keep their insertion order; setting a key again replaces
/// its value. The alignment is `general.alignment` when set, else 32.
///
/// ```
/// # use uml_core::gguf::GgufWriter;
/// # fn main() -> uml_core::Result<()> {
/// let mut w = GgufWriter::new();
/// w.add_metadata("general.architecture", "llama");
/// w.add_tensor_f32("output_norm.weight", &[4], &[1.0; 4])?;
/// let bytes = w.to_bytes()?;
/// assert_eq!(&bytes[..4], b"GGUF");
/// # Ok(()) }
/// ```
pub struct GgufWriter {
    version: u32,
    metadata: Vec<(String, GgufValue)>,
    tensors: Vec<PendingTensor>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter::new()
    }
}

impl GgufWriter {
    /// A writer for GGUF version 3.
    pub fn new() -> GgufWriter {
        GgufWriter {
            version: 3,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Write GGUF `version` (2 or 3; any other value is written as given, for tests of
    /// readers).
    pub fn set_version(&mut self, version: u32) -> &mut Self {
        self.version = version;
        self
    }

    /// Set metadata `key` to `value`, replacing an earlier value of the same key.
    pub fn add_metadata(
        &mut self,
        key: impl Into<String>,
        value: impl Into<GgufValue>,
    ) -> &mut Self {
        let key = key.into();
        let value = value.into();
        match self.metadata.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.metadata.push((key, value)),
        }
        self
    }

    /// The metadata set so far, in insertion order.
    pub fn metadata(&self) -> &[(String, GgufValue)] {
        &self.metadata
    }

    /// Add an f32 tensor. `dims` are GGUF order (innermost first); `data` must hold their
    /// product of elements.
    pub fn add_tensor_f32(&mut self, name: &str, dims: &[u64], data: &[f32]) -> Result<&mut Self> {
        check_len(name, dims, data.len())?;
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add_tensor_raw(name, dims, GgmlType::F32, bytes)
    }

    /// Add an f16 tensor, converting `data` from f32 (round to nearest even).
    pub fn add_tensor_f16(&mut self, name: &str, dims: &[u64], data: &[f32]) -> Result<&mut Self> {
        check_len(name, dims, data.len())?;
        let bytes = data
            .iter()
            .flat_map(|&v| f32_to_f16_bits(v).to_le_bytes())
            .collect();
        self.add_tensor_raw(name, dims, GgmlType::F16, bytes)
    }

    /// Add a tensor whose data is already encoded as `ggml_type`.
    pub fn add_tensor_raw(
        &mut self,
        name: &str,
        dims: &[u64],
        ggml_type: GgmlType,
        data: Vec<u8>,
    ) -> Result<&mut Self> {
        let n: u64 = dims.iter().product();
        let expected = ggml_type.tensor_bytes(n).ok_or_else(|| {
            Error::invalid_argument(format!(
                "tensor '{name}': {n} elements is not a whole number of {ggml_type} blocks of {}",
                ggml_type.block_size()
            ))
        })?;
        if expected != data.len() as u64 {
            return Err(Error::invalid_argument(format!(
                "tensor '{name}': {dims:?} of {ggml_type} needs {expected} bytes, got {}",
                data.len()
            )));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(Error::invalid_argument(format!(
                "tensor '{name}' was already added; tensor names must be unique"
            )));
        }
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            ggml_type,
            data,
        });
        Ok(self)
    }

    fn alignment(&self) -> Result<u64> {
        match self.metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => Ok(DEFAULT_ALIGNMENT),
            Some((_, v)) => v.as_u64().filter(|a| a.is_power_of_two()).ok_or_else(|| {
                Error::invalid_argument(format!(
                    "general.alignment is {v:?}; it must be a power of two"
                ))
            }),
        }
    }

    /// The whole file as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let alignment = self.alignment()?;
        let mut out = Vec::new();
        out.extend_from_slice(&GGUF_MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_string(&mut out, key);
            out.extend_from_slice(&value.value_type().id().to_le_bytes());
            put_value(&mut out, value, key)?;
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            put_string(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ggml_type.id().to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offset = (offset + t.data.len() as u64).div_ceil(alignment) * alignment;
        }
        for t in &self.tensors {
            pad(&mut out, alignment);
            out.extend_from_slice(&t.data);
        }
        pad(&mut out, alignment);
        Ok(out)
    }

    /// Write the file to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
    }
}

fn check_len(name: &str, dims: &[u64], len: usize) -> Result<()> {
    let n: u64 = dims.iter().product();
    if n != len as u64 {
        return Err(Error::invalid_argument(format!(
            "tensor '{name}': dims {dims:?} hold {n} elements but {len} values were given"
        )));
    }
    Ok(())
}

fn pad(out: &mut Vec<u8>, alignment: u64) {
    let len = out.len() as u64;
    let target = len.div_ceil(alignment) * alignment;
    out.resize(target as usize, 0);
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, value: &GgufValue, key: &str) -> Result<()> {
    match value {
        GgufValue::U8(v) => out.push(*v),
        GgufValue::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::Bool(v) => out.push(u8::from(*v)),
        GgufValue::String(s) => put_string(out, s),
        GgufValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::Array(a) => put_array(out, a, key)?,
    }
    Ok(())
}

fn put_array(out: &mut Vec<u8>, a: &GgufArray, key: &str) -> Result<()> {
    let values = a.values.as_ref().ok_or_else(|| {
        Error::invalid_argument(format!(
            "metadata key '{key}': the array's items were not kept when it was read, so it \
             cannot be written back"
        ))
    })?;
    out.extend_from_slice(&a.item_type.id().to_le_bytes());
    out.extend_from_slice(&(values.len() as u64).to_le_bytes());
    for v in values {
        if v.value_type() != a.item_type {
            return Err(Error::invalid_argument(format!(
                "metadata key '{key}': an array of {} holds a {} item",
                a.item_type,
                v.value_type()
            )));
        }
        put_value(out, v, key)?;
    }
    Ok(())
}

/// IEEE half-precision bits of `value`, rounded to nearest even.
pub fn f32_to_f16_bits(value: f32) -> u16 {
    let x = value.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let exp = ((x >> 23) & 0xff) as i32;
    let man = x & 0x7f_ffff;
    if exp == 0xff {
        // Infinity stays infinity, NaN stays a (quiet) NaN.
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        // Subnormal half: shift the 24-bit mantissa (with its implicit 1) into 10 bits.
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rem = m & ((1u32 << shift) - 1);
        let mut r = m >> shift;
        if rem > half || (rem == half && r & 1 == 1) {
            r += 1;
        }
        return sign | r as u16;
    }
    let mut r = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    if rem > 0x1000 || (rem == 0x1000 && r & 1 == 1) {
        r += 1;
    }
    sign | r as u16
}

/// The f32 value of IEEE half-precision `bits`.
pub fn f16_bits_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits & 0x8000) << 16;
    let exp = u32::from((bits >> 10) & 0x1f);
    let man = u32::from(bits & 0x3ff);
    let out = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value = m * 2^-24.
            let v = m as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(out)
}
