//! Reading a GGUF header (metadata and tensor table) without touching the tensor data.
//!
//! Every count and length read from the file is checked against the bytes that remain before
//! anything is allocated for it, so a hostile or truncated file gives an `InvalidModel` error,
//! never a panic or an unbounded allocation.

use super::ggml::GgmlType;
use super::value::{GgufArray, GgufValue, GgufValueType};
use super::{GgufHeader, GgufTensorInfo, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_KEPT_NUMERIC_ARRAY};
use crate::error::{Error, ErrorKind, Result};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufReader, Read, Seek};
use std::path::Path;

/// More tensors than any real model has (the largest have tens of thousands).
const MAX_TENSORS: u64 = 1 << 20;
/// More metadata keys than any real model has.
const MAX_KV: u64 = 1 << 20;
/// The longest single string accepted (chat templates are tens of KB).
const MAX_STRING: u64 = 64 << 20;
/// Arrays nest this deep at most (real files use one level; deeper nesting only serves to
/// exhaust the stack).
const MAX_DEPTH: u32 = 4;
/// llama.cpp's `GGML_MAX_DIMS`.
const MAX_DIMS: u32 = 4;
/// The largest alignment accepted.
const MAX_ALIGNMENT: u64 = 1 << 30;
/// Items preallocated for one array before the reader has seen them.
const PREALLOC: u64 = 1 << 16;

/// Read the header of the GGUF file at `path`: version, metadata, tensor table, alignment and
/// data offset. Only the header is read (through a buffered reader); tensor data is not
/// touched, but every tensor is checked to lie inside the file.
pub fn read_header(path: &Path) -> Result<GgufHeader> {
    let file = crate::files::open_regular(path)?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    parse_header(file, len, path)
}

/// [`read_header`] from any seekable reader positioned at the start of a GGUF file of
/// `file_size` bytes; `path` only names the file in error messages.
pub fn parse_header<R: Read + Seek>(reader: R, file_size: u64, path: &Path) -> Result<GgufHeader> {
    let mut r = Reader {
        inner: BufReader::with_capacity(1 << 16, reader),
        pos: 0,
        len: file_size,
        path,
    };
    r.header()
}

struct Reader<'p, R> {
    inner: BufReader<R>,
    pos: u64,
    len: u64,
    path: &'p Path,
}

impl<R: Read + Seek> Reader<'_, R> {
    fn invalid(&self, what: impl std::fmt::Display) -> Error {
        Error::invalid_model(format!(
            "invalid GGUF model {}: {what}",
            self.path.display()
        ))
    }

    fn unsupported(&self, what: impl std::fmt::Display) -> Error {
        Error::new(
            ErrorKind::UnsupportedFormat,
            format!("unsupported GGUF model {}: {what}", self.path.display()),
        )
    }

    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn truncated(&self, what: &dyn Fn() -> String) -> Error {
        self.invalid(format_args!(
            "the file ends after {} bytes, in the middle of {} (truncated download? fetch it again)",
            self.len,
            what()
        ))
    }

    fn need(&self, n: u64, what: &dyn Fn() -> String) -> Result<()> {
        if n > self.remaining() {
            Err(self.truncated(what))
        } else {
            Ok(())
        }
    }

    fn fixed<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        self.need(N as u64, what)?;
        let mut buf = [0u8; N];
        match self.inner.read_exact(&mut buf) {
            Ok(()) => {
                self.pos += N as u64;
                Ok(buf)
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(self.truncated(what)),
            Err(e) => Err(Error::io(self.path, e)),
        }
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        self.fixed::<4>(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        self.fixed::<8>(what).map(u64::from_le_bytes)
    }

    fn skip(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<()> {
        self.need(n, what)?;
        let step = i64::try_from(n).map_err(|_| self.truncated(what))?;
        self.inner
            .seek_relative(step)
            .map_err(|e| Error::io(self.path, e))?;
        self.pos += n;
        Ok(())
    }

    /// A length-prefixed string; bytes that are not UTF-8 are replaced (some vocabularies hold
    /// raw bytes), never refused.
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let n = self.u64(what)?;
        if n > MAX_STRING || n > self.remaining() {
            return Err(self.invalid(format_args!(
                "{} claims a string of {n} bytes but only {} bytes remain in the file \
                 (corrupt header or truncated download; fetch the file again)",
                what(),
                self.remaining()
            )));
        }
        let mut buf = vec![0u8; n as usize];
        match self.inner.read_exact(&mut buf) {
            Ok(()) => self.pos += n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(self.truncated(what))
            }
            Err(e) => return Err(Error::io(self.path, e)),
        }
        Ok(match String::from_utf8(buf) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    fn value_type(&mut self, what: &dyn Fn() -> String) -> Result<GgufValueType> {
        let id = self.u32(what)?;
        GgufValueType::from_id(id).ok_or_else(|| {
            self.invalid(format_args!(
                "{} has unknown value type {id} (known types are 0..=12; the file is corrupt \
                 or was written by a newer GGUF writer)",
                what()
            ))
        })
    }

    fn value(
        &mut self,
        ty: GgufValueType,
        depth: u32,
        what: &dyn Fn() -> String,
    ) -> Result<GgufValue> {
        Ok(match ty {
            GgufValueType::U8 => GgufValue::U8(self.fixed::<1>(what)?[0]),
            GgufValueType::I8 => GgufValue::I8(i8::from_le_bytes(self.fixed::<1>(what)?)),
            GgufValueType::U16 => GgufValue::U16(u16::from_le_bytes(self.fixed::<2>(what)?)),
            GgufValueType::I16 => GgufValue::I16(i16::from_le_bytes(self.fixed::<2>(what)?)),
            GgufValueType::U32 => GgufValue::U32(self.u32(what)?),
            GgufValueType::I32 => GgufValue::I32(i32::from_le_bytes(self.fixed::<4>(what)?)),
            GgufValueType::F32 => GgufValue::F32(f32::from_le_bytes(self.fixed::<4>(what)?)),
            GgufValueType::Bool => {
                let b = self.fixed::<1>(what)?[0];
                if b > 1 {
                    return Err(self.invalid(format_args!(
                        "{} is a bool with byte value {b} (must be 0 or 1)",
                        what()
                    )));
                }
                GgufValue::Bool(b == 1)
            }
            GgufValueType::String => GgufValue::String(self.string(what)?),
            GgufValueType::U64 => GgufValue::U64(self.u64(what)?),
            GgufValueType::I64 => GgufValue::I64(i64::from_le_bytes(self.fixed::<8>(what)?)),
            GgufValueType::F64 => GgufValue::F64(f64::from_le_bytes(self.fixed::<8>(what)?)),
            GgufValueType::Array => GgufValue::Array(self.array(depth, what)?),
        })
    }

    fn array(&mut self, depth: u32, what: &dyn Fn() -> String) -> Result<GgufArray> {
        if depth >= MAX_DEPTH {
            return Err(self.invalid(format_args!(
                "{} nests arrays more than {MAX_DEPTH} levels deep",
                what()
            )));
        }
        let item_type = self.value_type(what)?;
        let len = self.u64(what)?;
        let max = self.remaining() / item_type.min_size();
        if len > max {
            return Err(self.invalid(format_args!(
                "{} claims an array of {len} {item_type} items but only {} bytes remain in \
                 the file (corrupt header or truncated download; fetch the file again)",
                what(),
                self.remaining()
            )));
        }
        if let Some(size) = item_type.fixed_size() {
            if len > MAX_KEPT_NUMERIC_ARRAY {
                // Scores and token types of large vocabularies: keep the length only.
                self.skip(len * size, what)?;
                return Ok(GgufArray {
                    item_type,
                    len,
                    values: None,
                });
            }
        }
        let mut values = Vec::with_capacity(len.min(PREALLOC) as usize);
        for _ in 0..len {
            values.push(self.value(item_type, depth + 1, what)?);
        }
        Ok(GgufArray {
            item_type,
            len,
            values: Some(values),
        })
    }

    fn header(&mut self) -> Result<GgufHeader> {
        let magic = self.fixed::<4>(&|| "the magic bytes".into())?;
        if let Some(legacy) = super::legacy_ggml_format(&magic) {
            return Err(self.unsupported(format_args!(
                "this is a legacy {legacy} file (llama.cpp's format before August 2023); \
                 convert the original model to GGUF with llama.cpp's convert_hf_to_gguf.py \
                 (or convert_llama_ggml_to_gguf.py)"
            )));
        }
        if magic != GGUF_MAGIC {
            return Err(self.invalid(format_args!(
                "the file does not start with the GGUF magic (found {:02x?}; is it a GGUF file?)",
                magic
            )));
        }
        let version = self.u32(&|| "the version".into())?;
        match version {
            2 | 3 => {}
            1 => {
                return Err(self.unsupported(
                    "GGUF version 1 (the 2023 pre-release layout) is not supported; \
                     convert the original model again with a current llama.cpp \
                     (convert_hf_to_gguf.py)",
                ))
            }
            v if v & 0xffff == 0 && matches!(v.swap_bytes(), 1..=3) => {
                return Err(self.unsupported(format_args!(
                    "this is a big-endian GGUF (version {} byte-swapped); uml reads \
                     little-endian GGUF only: convert the model again without --bigendian",
                    v.swap_bytes()
                )))
            }
            v if (4..=255).contains(&v) => {
                return Err(self.unsupported(format_args!(
                    "GGUF version {v} is newer than this uml reads (versions 2 and 3); \
                     upgrade uml"
                )))
            }
            v => {
                return Err(self.invalid(format_args!(
                    "GGUF version {v} is not a valid version (expected 2 or 3; the file is \
                     corrupt)"
                )))
            }
        }

        let n_tensors = self.u64(&|| "the tensor count".into())?;
        let n_kv = self.u64(&|| "the metadata key count".into())?;
        // The smallest key/value: an 8-byte key length, a 4-byte type, a 1-byte value.
        let kv_room = self.remaining() / 13;
        if n_kv > MAX_KV || n_kv > kv_room {
            return Err(self.invalid(format_args!(
                "the header claims {n_kv} metadata keys but only {} bytes remain in the file \
                 (corrupt header or truncated download; fetch the file again)",
                self.remaining()
            )));
        }

        let mut metadata = BTreeMap::new();
        for i in 0..n_kv {
            let key = self.string(&|| format!("metadata key #{i}"))?;
            let what = || format!("the value of metadata key '{key}'");
            let ty = self.value_type(&what)?;
            let value = self.value(ty, 0, &what)?;
            if metadata.contains_key(&key) {
                return Err(self.invalid(format_args!(
                    "metadata key '{key}' appears twice (corrupt header)"
                )));
            }
            metadata.insert(key, value);
        }

        // The smallest tensor info: name length 8, n_dims 4, type 4, offset 8.
        let tensor_room = self.remaining() / 24;
        if n_tensors > MAX_TENSORS || n_tensors > tensor_room {
            return Err(self.invalid(format_args!(
                "the header claims {n_tensors} tensors but only {} bytes remain in the file \
                 (corrupt header or truncated download; fetch the file again)",
                self.remaining()
            )));
        }
        let mut tensors = Vec::with_capacity(n_tensors.min(PREALLOC) as usize);
        let mut names = HashSet::new();
        for i in 0..n_tensors {
            let name = self.string(&|| format!("the name of tensor #{i}"))?;
            let t = self.tensor_info(name)?;
            if !names.insert(t.name.clone()) {
                return Err(self.invalid(format_args!(
                    "tensor '{}' appears twice in the tensor table (corrupt header)",
                    t.name
                )));
            }
            tensors.push(t);
        }

        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a.is_power_of_two() && a <= MAX_ALIGNMENT => a,
                _ => {
                    return Err(self.invalid(format_args!(
                        "general.alignment is {v:?}; it must be a power of two (32 by default)"
                    )))
                }
            },
        };
        let header_end = self.pos;
        let data_offset = header_end.div_ceil(alignment) * alignment;

        for t in &tensors {
            if t.offset % alignment != 0 {
                return Err(self.invalid(format_args!(
                    "tensor '{}' starts at data offset {}, which is not a multiple of the \
                     alignment {alignment} (corrupt header)",
                    t.name, t.offset
                )));
            }
            let end = data_offset
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(t.n_bytes));
            match end {
                Some(end) if end <= self.len => {}
                _ => {
                    return Err(self.invalid(format_args!(
                        "tensor '{}' data ends at byte {} but the file is only {} bytes \
                         (truncated download? fetch it again)",
                        t.name,
                        end.map_or_else(|| "beyond 2^64".to_string(), |e| e.to_string()),
                        self.len
                    )))
                }
            }
        }

        Ok(GgufHeader {
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
            file_size: self.len,
        })
    }

    fn tensor_info(&mut self, name: String) -> Result<GgufTensorInfo> {
        let what = || format!("the info of tensor '{name}'");
        let n_dims = self.u32(&what)?;
        if n_dims > MAX_DIMS {
            return Err(self.invalid(format_args!(
                "tensor '{name}' has {n_dims} dimensions; GGUF tensors have at most {MAX_DIMS}"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(self.u64(&what)?);
        }
        let type_id = self.u32(&what)?;
        let offset = self.u64(&what)?;

        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| {
            self.invalid(format_args!(
                "tensor '{name}' has unknown ggml type id {type_id} (the file is corrupt, or \
                 uses a type newer than this uml knows; upgrade uml)"
            ))
        })?;
        // llama.cpp keeps sizes in int64_t: every dimension and the product must fit.
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| {
                if d > i64::MAX as u64 {
                    None
                } else {
                    acc.checked_mul(d)
                }
            })
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| {
                self.invalid(format_args!(
                    "tensor '{name}' has dimensions {dims:?} whose element count overflows \
                     (corrupt header)"
                ))
            })?;
        let row = dims.first().copied().unwrap_or(1);
        if row % ggml_type.block_size() != 0 {
            return Err(self.invalid(format_args!(
                "tensor '{name}' has rows of {row} elements, not a multiple of the {} block \
                 size {} (corrupt header)",
                ggml_type,
                ggml_type.block_size()
            )));
        }
        let n_bytes = ggml_type.tensor_bytes(n_elements).ok_or_else(|| {
            self.invalid(format_args!(
                "tensor '{name}' of {n_elements} {ggml_type} elements has no valid byte size \
                 (corrupt header)"
            ))
        })?;
        Ok(GgufTensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            n_elements,
            n_bytes,
        })
    }
}
