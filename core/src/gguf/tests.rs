use super::*;
use crate::error::ErrorKind;
use std::io::Cursor;
use std::path::Path;

fn parse(bytes: &[u8]) -> crate::Result<GgufHeader> {
    parse_header(Cursor::new(bytes), bytes.len() as u64, Path::new("x.gguf"))
}

fn expect_err(bytes: &[u8], kind: ErrorKind, needle: &str) {
    match parse(bytes) {
        Ok(_) => panic!("parsed, expected an error containing {needle:?}"),
        Err(e) => {
            assert_eq!(e.kind(), kind, "{e}");
            assert!(e.message().contains(needle), "{needle:?} not in: {e}");
            assert!(e.message().contains("x.gguf"), "path missing: {e}");
        }
    }
}

/// Hand-built GGUF bytes for hostile cases.
#[derive(Default)]
struct B(Vec<u8>);

impl B {
    fn gguf(n_tensors: u64, n_kv: u64) -> B {
        let mut b = B::default();
        b.raw(b"GGUF").u32(3).u64(n_tensors).u64(n_kv);
        b
    }
    fn raw(&mut self, bytes: &[u8]) -> &mut B {
        self.0.extend_from_slice(bytes);
        self
    }
    fn u32(&mut self, v: u32) -> &mut B {
        self.raw(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> &mut B {
        self.raw(&v.to_le_bytes())
    }
    fn str(&mut self, s: &str) -> &mut B {
        self.u64(s.len() as u64).raw(s.as_bytes())
    }
    /// A tensor info with the given dims, type id and offset.
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut B {
        self.str(name).u32(dims.len() as u32);
        for d in dims {
            self.u64(*d);
        }
        self.u32(ty).u64(offset)
    }
    fn pad(&mut self, n: usize) -> &mut B {
        self.0.resize(self.0.len() + n, 0);
        self
    }
}

fn all_types_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama")
        .add_metadata("t.u8", 7u8)
        .add_metadata("t.i8", -7i8)
        .add_metadata("t.u16", 700u16)
        .add_metadata("t.i16", -700i16)
        .add_metadata("t.u32", 70_000u32)
        .add_metadata("t.i32", -70_000i32)
        .add_metadata("t.f32", 1.5f32)
        .add_metadata("t.bool", true)
        .add_metadata("t.string", "héllo")
        .add_metadata("t.u64", u64::MAX)
        .add_metadata("t.i64", i64::MIN)
        .add_metadata("t.f64", -2.25f64)
        .add_metadata("t.strings", GgufValue::strings(["a", "", "▁the"]))
        .add_metadata("t.f32s", GgufValue::f32s([0.5, -1.0]))
        .add_metadata(
            "t.nested",
            GgufArray::new(
                GgufValueType::Array,
                vec![
                    GgufValue::i32s([1, 2, 3]),
                    GgufValue::i32s([]),
                    GgufValue::i32s([-4]),
                ],
            ),
        )
        .add_metadata("t.empty", GgufArray::new(GgufValueType::String, Vec::new()));
    w
}

#[test]
fn round_trip_of_every_value_type_and_tensor_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.gguf");
    let mut w = all_types_writer();
    w.add_metadata("general.alignment", 64u32);
    let a: Vec<f32> = (0..6).map(|v| v as f32 * 0.25).collect();
    let b: Vec<f32> = vec![1.0, -2.0, 0.5, 65504.0, 1e-6, -0.0, 3.0];
    w.add_tensor_f32("a", &[3, 2], &a).unwrap();
    w.add_tensor_f16("b", &[7], &b).unwrap();
    w.add_tensor_raw("q", &[64], GgmlType::Q4_0, vec![0x11; 36])
        .unwrap();
    w.write(&path).unwrap();

    let h = read_header(&path).unwrap();
    assert_eq!(h.version, 3);
    assert_eq!(h.alignment, 64);
    assert_eq!(h.data_offset % 64, 0);
    assert_eq!(h.file_size, std::fs::metadata(&path).unwrap().len());
    for (k, v) in w.metadata() {
        assert_eq!(h.get(k), Some(v), "key {k}");
    }
    assert_eq!(h.get_u64("t.u64"), Some(u64::MAX));
    assert_eq!(h.get_str("t.string"), Some("héllo"));
    assert_eq!(h.architecture(), Some("llama"));

    let ta = h.tensor("a").unwrap();
    assert_eq!((ta.dims.clone(), ta.ggml_type), (vec![3, 2], GgmlType::F32));
    assert_eq!((ta.n_elements, ta.n_bytes, ta.offset), (6, 24, 0));
    let tb = h.tensor("b").unwrap();
    assert_eq!(
        (tb.ggml_type, tb.n_bytes, tb.offset),
        (GgmlType::F16, 14, 64)
    );
    let tq = h.tensor("q").unwrap();
    assert_eq!(
        (tq.ggml_type, tq.n_bytes, tq.offset),
        (GgmlType::Q4_0, 36, 128)
    );
    assert_eq!(h.tensor_data_bytes(), 24 + 14 + 36);

    // The data is where the header says.
    let bytes = std::fs::read(&path).unwrap();
    let at = |t: &GgufTensorInfo| (h.data_offset + t.offset) as usize;
    let got_a: Vec<f32> = bytes[at(ta)..at(ta) + 24]
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(got_a, a);
    let got_b: Vec<f32> = bytes[at(tb)..at(tb) + 14]
        .chunks(2)
        .map(|c| f16_bits_to_f32(u16::from_le_bytes([c[0], c[1]])))
        .collect();
    assert_eq!(&got_b[..4], &b[..4]);
    assert!((got_b[4] - 1e-6).abs() < 1e-7, "subnormal {}", got_b[4]);
    assert_eq!(got_b[5].to_bits(), (-0.0f32).to_bits());
    assert!(bytes[at(tq)..at(tq) + 36].iter().all(|&x| x == 0x11));
}

#[test]
fn version_2_reads_and_default_alignment_is_32() {
    let mut w = all_types_writer();
    w.set_version(2);
    w.add_tensor_f32("x", &[5], &[1.0; 5]).unwrap();
    let h = parse(&w.to_bytes().unwrap()).unwrap();
    assert_eq!((h.version, h.alignment), (2, 32));
    assert_eq!(h.data_offset % 32, 0);
}

#[test]
fn large_numeric_arrays_keep_only_their_length() {
    let n = MAX_KEPT_NUMERIC_ARRAY as usize + 1;
    let mut w = GgufWriter::new();
    w.add_metadata("scores", GgufValue::f32s(vec![0.5; n]))
        .add_metadata("small", GgufValue::i32s([1, 2]))
        .add_metadata("after", "still read");
    let h = parse(&w.to_bytes().unwrap()).unwrap();
    let a = h.get("scores").and_then(GgufValue::as_array).unwrap();
    assert_eq!(
        (a.len, a.item_type, a.values.is_none()),
        (n as u64, GgufValueType::F32, true)
    );
    assert_eq!(h.get("small"), Some(&GgufValue::i32s([1, 2])));
    assert_eq!(h.get_str("after"), Some("still read"));
    assert_eq!(
        h.get("scores").unwrap().to_json_summary(64),
        serde_json::json!(format!("[array of {n} float32]"))
    );
}

#[test]
fn f16_conversion_rounds_to_nearest_even() {
    for (v, bits) in [
        (0.0f32, 0x0000u16),
        (1.0, 0x3c00),
        (-2.0, 0xc000),
        (65504.0, 0x7bff),
        (65520.0, 0x7c00), // rounds up to infinity
        (1e9, 0x7c00),
        (f32::INFINITY, 0x7c00),
        (5.960_464_5e-8, 0x0001), // smallest subnormal
        (2.0e-8, 0x0000),
        (1.000_488_3, 0x3c00), // exactly half way: ties to even
        (1.001_464_8, 0x3c02), // half way above an odd mantissa: rounds up
    ] {
        assert_eq!(f32_to_f16_bits(v), bits, "{v}");
    }
    assert!(f16_bits_to_f32(f32_to_f16_bits(f32::NAN)).is_nan());
    for bits in [0x0001u16, 0x03ff, 0x0400, 0x3c00, 0x7bff, 0xc000, 0x8001] {
        assert_eq!(f32_to_f16_bits(f16_bits_to_f32(bits)), bits);
    }
}

#[test]
fn tiny_llama_header_has_what_llama_cpp_needs() {
    let bytes = uml_test_support::tiny_llama_writer(1)
        .unwrap()
        .to_bytes()
        .unwrap();
    let h = parse(&bytes).unwrap();
    assert_eq!(h.architecture(), Some("llama"));
    assert_eq!(h.get_u64("llama.block_count"), Some(2));
    let n_vocab = uml_test_support::tiny_vocab().len() as u64;
    let tokens = h
        .get("tokenizer.ggml.tokens")
        .and_then(|v| v.as_array())
        .unwrap();
    assert_eq!(tokens.len, n_vocab);
    assert_eq!(h.get_u64("llama.vocab_size"), Some(n_vocab));
    assert_eq!(
        h.tensor("blk.1.attn_k.weight").unwrap().dims,
        vec![64, 32],
        "attn_k is [n_embd, n_head_kv*head_dim]"
    );
    assert_eq!(
        h.tensor("blk.0.ffn_down.weight").unwrap().dims,
        vec![128, 64]
    );
    assert_eq!(
        h.tensor("token_embd.weight").unwrap().dims,
        vec![64, n_vocab]
    );
    assert_eq!(h.tensors.len(), 3 + 9 * 2);
}

// ---- hostile headers ----

#[test]
fn absurd_counts_are_refused_before_allocating() {
    expect_err(
        &B::gguf(u64::MAX, 0).0,
        ErrorKind::InvalidModel,
        "claims 18446744073709551615 tensors",
    );
    expect_err(
        &B::gguf(0, 1 << 60).0,
        ErrorKind::InvalidModel,
        "metadata keys",
    );
    // A plausible count that the file is far too small to hold.
    let mut b = B::gguf(1000, 0);
    b.pad(100);
    expect_err(&b.0, ErrorKind::InvalidModel, "claims 1000 tensors");
}

#[test]
fn huge_string_and_array_lengths_are_refused() {
    let mut b = B::gguf(0, 1);
    b.u64(1 << 40).pad(64);
    expect_err(
        &b.0,
        ErrorKind::InvalidModel,
        "claims a string of 1099511627776 bytes",
    );

    let mut b = B::gguf(0, 1);
    b.str("tokenizer.ggml.tokens")
        .u32(9)
        .u32(8)
        .u64(u64::MAX / 2)
        .pad(64);
    expect_err(&b.0, ErrorKind::InvalidModel, "claims an array of");
    assert!(parse(&b.0)
        .unwrap_err()
        .message()
        .contains("tokenizer.ggml.tokens"));

    let mut b = B::gguf(0, 1);
    b.str("k").u32(9).u32(6).u64(1_000_000).pad(64);
    expect_err(
        &b.0,
        ErrorKind::InvalidModel,
        "claims an array of 1000000 float32 items",
    );
}

#[test]
fn unknown_value_types_and_bad_bools_are_refused() {
    let mut b = B::gguf(0, 1);
    b.str("general.name").u32(13).pad(16);
    expect_err(&b.0, ErrorKind::InvalidModel, "unknown value type 13");

    let mut b = B::gguf(0, 1);
    b.str("arr").u32(9).u32(77).u64(1).pad(16);
    expect_err(&b.0, ErrorKind::InvalidModel, "unknown value type 77");

    let mut b = B::gguf(0, 1);
    b.str("flag").u32(7).raw(&[2]).pad(16);
    expect_err(&b.0, ErrorKind::InvalidModel, "bool with byte value 2");
}

#[test]
fn deeply_nested_arrays_are_refused() {
    let mut b = B::gguf(0, 1);
    b.str("deep");
    b.u32(9);
    for _ in 0..10 {
        b.u32(9).u64(1);
    }
    b.pad(64);
    expect_err(&b.0, ErrorKind::InvalidModel, "nests arrays");
}

#[test]
fn bad_tensor_infos_are_refused() {
    let case = |dims: &[u64], ty: u32, offset: u64| {
        let mut b = B::gguf(1, 0);
        b.tensor("blk.0.attn_q.weight", dims, ty, offset).pad(256);
        b.0
    };
    expect_err(
        &case(&[1, 1, 1, 1, 1], 0, 0),
        ErrorKind::InvalidModel,
        "has 5 dimensions",
    );
    expect_err(
        &case(&[1 << 32, 1 << 32, 1 << 32], 0, 0),
        ErrorKind::InvalidModel,
        "element count overflows",
    );
    expect_err(
        &case(&[u64::MAX], 0, 0),
        ErrorKind::InvalidModel,
        "overflows",
    );
    expect_err(
        &case(&[32], 99, 0),
        ErrorKind::InvalidModel,
        "unknown ggml type id 99",
    );
    expect_err(
        &case(&[32], 4, 0),
        ErrorKind::InvalidModel,
        "unknown ggml type id 4",
    );
    expect_err(
        &case(&[33], 2, 0),
        ErrorKind::InvalidModel,
        "not a multiple of the Q4_0 block size 32",
    );
    expect_err(
        &case(&[4], 0, 3),
        ErrorKind::InvalidModel,
        "not a multiple of the alignment 32",
    );
    expect_err(
        &case(&[4], 0, 1 << 40),
        ErrorKind::InvalidModel,
        "tensor 'blk.0.attn_q.weight' data ends at byte",
    );
    expect_err(
        &case(&[4], 0, u64::MAX - 31),
        ErrorKind::InvalidModel,
        "beyond 2^64",
    );
}

#[test]
fn tensor_data_past_the_end_names_the_tensor_and_sizes() {
    let mut w = GgufWriter::new();
    w.add_tensor_f32("blk.0.attn_q.weight", &[64, 64], &[0.0; 4096])
        .unwrap();
    let bytes = w.to_bytes().unwrap();
    let cut = &bytes[..bytes.len() - 100];
    let e = parse(cut).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidModel);
    let expected = format!(
        "tensor 'blk.0.attn_q.weight' data ends at byte {} but the file is only {} bytes \
         (truncated download? fetch it again)",
        bytes.len(),
        cut.len()
    );
    assert!(e.message().contains(&expected), "{e}");
}

#[test]
fn duplicates_and_bad_alignment_are_refused() {
    let mut b = B::gguf(0, 2);
    b.str("k").u32(4).u32(1).str("k").u32(4).u32(2).pad(16);
    expect_err(&b.0, ErrorKind::InvalidModel, "'k' appears twice");

    let mut b = B::gguf(2, 0);
    b.tensor("t", &[1], 0, 0).tensor("t", &[1], 0, 32).pad(128);
    expect_err(&b.0, ErrorKind::InvalidModel, "'t' appears twice");

    let mut b = B::gguf(0, 1);
    b.str("general.alignment").u32(4).u32(48).pad(16);
    expect_err(&b.0, ErrorKind::InvalidModel, "general.alignment");
}

#[test]
fn versions_endianness_and_magic() {
    let mut b = B::default();
    b.raw(b"GGUF").u32(1).u32(0).u32(0).pad(32);
    expect_err(&b.0, ErrorKind::UnsupportedFormat, "GGUF version 1");

    let mut b = B::default();
    b.raw(b"GGUF").raw(&3u32.to_be_bytes()).pad(32);
    expect_err(&b.0, ErrorKind::UnsupportedFormat, "big-endian");

    let mut b = B::default();
    b.raw(b"GGUF").u32(4).pad(32);
    expect_err(
        &b.0,
        ErrorKind::UnsupportedFormat,
        "GGUF version 4 is newer",
    );

    let mut b = B::default();
    b.raw(b"GGUF").u32(0x1234_5678).pad(32);
    expect_err(&b.0, ErrorKind::InvalidModel, "not a valid version");

    for magic in [b"lmgg", b"fmgg", b"tjgg"] {
        let mut b = B::default();
        b.raw(magic).u32(3).pad(32);
        expect_err(
            &b.0,
            ErrorKind::UnsupportedFormat,
            "convert the original model to GGUF",
        );
    }
    expect_err(
        b"PK\x03\x04 not gguf",
        ErrorKind::InvalidModel,
        "GGUF magic",
    );
    expect_err(b"", ErrorKind::InvalidModel, "truncated");
}

#[test]
fn missing_file_is_not_found() {
    let e = read_header(Path::new("/no/such/dir/model.gguf")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

/// Every prefix of a valid file is an error (the last tensor no longer fits), never a panic.
#[test]
fn every_truncation_is_an_error() {
    let bytes = uml_test_support::tiny_llama_writer(3)
        .unwrap()
        .to_bytes()
        .unwrap();
    let h = parse(&bytes).unwrap();
    let header_end = h.data_offset as usize;
    let mut lens: Vec<usize> = (0..header_end.min(600)).collect();
    lens.extend((600..header_end).step_by(7));
    lens.extend((header_end..bytes.len()).step_by(997));
    lens.push(bytes.len() - 1);
    for len in lens {
        let e = parse(&bytes[..len]).expect_err("a truncated file parsed");
        assert_eq!(e.kind(), ErrorKind::InvalidModel, "len {len}: {e}");
        assert!(
            e.message().contains("truncated") || e.message().contains("remain"),
            "len {len}: {e}"
        );
    }
}

/// Random bytes, with and without a valid GGUF preamble, and random corruptions of a valid
/// header: errors or (for some corruptions) a parse, never a panic.
#[test]
fn random_bytes_never_panic() {
    let mut state = 0x1234_5678_9abc_def1u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..300 {
        let len = (next() % 2048) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 2 == 0 && len >= 8 {
            bytes[..8].copy_from_slice(b"GGUF\x03\x00\x00\x00");
        }
        let r = parse(&bytes);
        assert!(r.is_err(), "random bytes parsed: {i}");
    }
    let valid = uml_test_support::tiny_llama_writer(5)
        .unwrap()
        .to_bytes()
        .unwrap();
    let header_end = parse(&valid).unwrap().data_offset as usize;
    for _ in 0..300 {
        let mut bytes = valid.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % header_end;
            bytes[at] = next() as u8;
        }
        if let Err(e) = parse(&bytes) {
            assert!(
                matches!(
                    e.kind(),
                    ErrorKind::InvalidModel | ErrorKind::UnsupportedFormat
                ),
                "{e}"
            );
        }
    }
}
