use super::*;
use crate::error::ErrorKind;
use crate::gguf::GgufValue;
use crate::gguf::GgufWriter;
use std::fs::File;
use std::io::Write;
use uml_test_support as testing;

fn tiny_params() -> u64 {
    testing::tiny_llama_tensors(0)
        .iter()
        .map(|t| t.data.len() as u64)
        .sum()
}

fn n_vocab() -> u64 {
    testing::tiny_vocab().len() as u64
}

#[test]
fn tiny_gguf() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("tiny.gguf");
    testing::write_tiny_llama_gguf(&p, 42).unwrap();
    let info = inspect(&p).unwrap();
    assert_eq!(info.format, Format::Gguf);
    assert_eq!(info.architecture.as_deref(), Some("llama"));
    assert_eq!(info.name.as_deref(), Some("uml-tiny-llama"));
    assert_eq!(info.parameter_count, tiny_params());
    assert_eq!(info.tensor_count, 21);
    assert_eq!(info.tensor_types, BTreeMap::from([("F32".to_string(), 21)]));
    assert_eq!(info.quantization.as_deref(), Some("F32"));
    assert_eq!(info.weights_bytes, tiny_params() * 4);
    assert_eq!(info.context_length, Some(256));
    assert_eq!(info.block_count, Some(2));
    assert_eq!(info.embedding_length, Some(64));
    assert_eq!(info.feed_forward_length, Some(128));
    assert_eq!((info.head_count, info.head_count_kv), (Some(4), Some(2)));
    assert_eq!((info.key_length, info.value_length), (Some(16), Some(16)));
    assert_eq!(info.vocab_size, Some(n_vocab()));
    assert_eq!(info.tokenizer_model.as_deref(), Some("llama"));
    assert_eq!(
        info.chat_template.as_deref(),
        Some(testing::TINY_CHAT_TEMPLATE)
    );
    assert_eq!((info.bos_token_id, info.eos_token_id), (Some(1), Some(2)));
    assert_eq!(info.bos_token.as_deref(), Some("<s>"));
    assert_eq!(info.eos_token.as_deref(), Some("</s>"));
    assert_eq!(info.pooling_type, None);
    assert_eq!(info.file_size, std::fs::metadata(&p).unwrap().len());
    assert_eq!(info.files, vec![p.clone()]);

    // Per-block bytes: attn q,k,v,o + 3 ffn + 2 norms.
    let block = 4 * (64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 128 + 2 * 64);
    assert_eq!(info.layer_bytes, vec![block, block]);
    let embd = 4 * 64 * n_vocab();
    assert_eq!(info.non_layer_bytes, 2 * embd + 4 * 64);
    assert_eq!(info.output_bytes, embd + 4 * 64);
    assert!(!info.tied_embeddings);
    assert_eq!(
        info.weights_bytes,
        info.layer_bytes.iter().sum::<u64>() + info.non_layer_bytes
    );

    assert_eq!(info.metadata["general.architecture"], "llama");
    assert_eq!(info.metadata["llama.block_count"], 2);
    assert_eq!(
        info.metadata["tokenizer.ggml.tokens"],
        format!("[array of {} string]", n_vocab())
    );
    // The whole report serialises (this is what every binding sends).
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["format"], "gguf");
    assert_eq!(json["tensor_types"]["F32"], 21);
}

#[test]
fn gguf_without_output_head_is_tied_and_counts_the_copy() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("tied.gguf");
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama")
        .add_metadata("general.file_type", 15u32)
        .add_metadata("llama.embedding_length", 32u32)
        .add_metadata("llama.attention.head_count", 4u32)
        .add_metadata("llama.attention.head_count_kv", GgufValue::i32s([2, 1]))
        .add_metadata("llama.pooling_type", 1u32);
    w.add_tensor_f16("token_embd.weight", &[32, 10], &[0.0; 320])
        .unwrap()
        .add_tensor_f32("output_norm.weight", &[32], &[1.0; 32])
        .unwrap()
        .add_tensor_f32("blk.0.attn_norm.weight", &[32], &[1.0; 32])
        .unwrap()
        .add_tensor_f32("blk.1.attn_norm.weight", &[32], &[1.0; 32])
        .unwrap();
    w.write(&p).unwrap();
    let info = inspect(&p).unwrap();
    assert!(info.tied_embeddings);
    assert_eq!(info.output_bytes, 640 + 128);
    assert_eq!(info.quantization.as_deref(), Some("Q4_K_M"));
    assert_eq!(info.block_count, Some(2), "from the tensor names");
    assert_eq!(info.head_count_kv, Some(2), "per-layer array: the largest");
    assert_eq!(info.key_length, Some(8));
    assert_eq!(info.pooling_type.as_deref(), Some("mean"));
    assert_eq!(info.vocab_size, None);
    assert_eq!(
        info.tensor_types,
        BTreeMap::from([("F16".to_string(), 1), ("F32".to_string(), 3)])
    );
}

#[test]
fn single_safetensors() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("model.safetensors");
    testing::write_tiny_safetensors(&p).unwrap();
    let info = inspect(&p).unwrap();
    assert_eq!(info.format, Format::Safetensors);
    assert_eq!(info.parameter_count, tiny_params());
    assert_eq!(info.tensor_types, BTreeMap::from([("F32".to_string(), 21)]));
    assert_eq!(info.quantization.as_deref(), Some("F32"));
    assert_eq!(info.architecture, None, "no config.json beside it");
    assert_eq!(info.block_count, Some(2), "from the tensor names");
    assert_eq!(info.layer_bytes.len(), 2);
    assert_eq!(info.output_bytes, 4 * 64 * n_vocab() + 4 * 64);
    assert_eq!(info.metadata["safetensors.format"], "pt");
    assert_eq!(info.file_size, std::fs::metadata(&p).unwrap().len());
}

#[test]
fn hf_folder() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("tiny-llama");
    testing::write_tiny_hf_folder(&dir).unwrap();
    let info = inspect(&dir).unwrap();
    assert_eq!(info.format, Format::HuggingFaceFolder);
    assert_eq!(info.architecture.as_deref(), Some("llama"));
    assert_eq!(info.name.as_deref(), Some("tiny-llama"));
    assert_eq!(info.parameter_count, tiny_params());
    assert_eq!(info.block_count, Some(2));
    assert_eq!(info.embedding_length, Some(64));
    assert_eq!((info.head_count, info.head_count_kv), (Some(4), Some(2)));
    assert_eq!(info.key_length, Some(16));
    assert_eq!(info.feed_forward_length, Some(128));
    assert_eq!(info.context_length, Some(256));
    assert_eq!(info.vocab_size, Some(n_vocab()));
    assert_eq!(
        info.chat_template.as_deref(),
        Some(testing::TINY_CHAT_TEMPLATE)
    );
    assert_eq!(info.bos_token.as_deref(), Some("<s>"));
    assert_eq!(info.eos_token.as_deref(), Some("</s>"));
    assert_eq!((info.bos_token_id, info.eos_token_id), (Some(1), Some(2)));
    assert_eq!(info.tokenizer_model.as_deref(), Some("unigram"));
    assert_eq!(info.metadata["config.architectures"][0], "LlamaForCausalLM");
    let sum: u64 = info
        .files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert_eq!(info.file_size, sum);
    assert_eq!(info.files.len(), 5);
}

#[test]
fn hf_folder_template_list_nested_config_and_tokenizer_fallbacks() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(
        dir.join("config.json"),
        r#"{"architectures": ["Gemma3ForConditionalGeneration"],
            "text_config": {"hidden_size": 640, "num_hidden_layers": 18,
                            "num_attention_heads": 4, "num_key_value_heads": 1,
                            "head_dim": 256, "max_position_embeddings": 32768},
            "eos_token_id": [1, 106]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"chat_template": [{"name": "tool_use", "template": "T"},
                              {"name": "default", "template": "D"}],
            "bos_token": {"content": "<bos>", "lstrip": false}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("tokenizer.json"),
        r#"{"added_tokens": [{"id": 2, "content": "<bos>"}, {"id": 1, "content": "<eos>"}],
            "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "d": 3}, "merges": []}}"#,
    )
    .unwrap();
    let info = inspect(dir).unwrap();
    assert_eq!(
        info.architecture.as_deref(),
        Some("Gemma3ForConditionalGeneration")
    );
    assert_eq!(info.embedding_length, Some(640));
    assert_eq!(info.key_length, Some(256));
    assert_eq!(info.head_count_kv, Some(1));
    assert_eq!(info.context_length, Some(32768));
    assert_eq!(info.chat_template.as_deref(), Some("D"));
    assert_eq!(info.bos_token.as_deref(), Some("<bos>"));
    assert_eq!(info.bos_token_id, Some(2), "looked up in added_tokens");
    assert_eq!(info.eos_token_id, Some(1), "first of a list");
    assert_eq!(info.eos_token.as_deref(), Some("<eos>"), "looked up by id");
    assert_eq!(info.vocab_size, Some(4));
    assert_eq!(info.tokenizer_model.as_deref(), Some("bpe"));
    assert!(info.notes.iter().any(|n| n.contains("no weights found")));
}

fn write_shards(dir: &Path) -> Vec<String> {
    let tensors = testing::tiny_llama_safetensors(0);
    let (a, b) = tensors.split_at(10);
    let names = vec![
        "model-00001-of-00002.safetensors".to_string(),
        "model-00002-of-00002.safetensors".to_string(),
    ];
    testing::write_safetensors(&dir.join(&names[0]), a).unwrap();
    testing::write_safetensors(&dir.join(&names[1]), b).unwrap();
    let mut map = serde_json::Map::new();
    for t in a {
        map.insert(t.name.clone(), names[0].clone().into());
    }
    for t in b {
        map.insert(t.name.clone(), names[1].clone().into());
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": map});
    std::fs::write(dir.join(crate::format::SHARD_INDEX), index.to_string()).unwrap();
    names
}

#[test]
fn sharded_safetensors() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write_shards(dir);
    for p in [dir.to_path_buf(), dir.join(crate::format::SHARD_INDEX)] {
        let info = inspect(&p).unwrap();
        assert_eq!(info.format, Format::ShardedSafetensors);
        assert_eq!(info.parameter_count, tiny_params());
        assert_eq!(info.tensor_count, 21);
        assert_eq!(info.files.len(), 3, "index + 2 shards");
        let sum: u64 = info
            .files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert_eq!(info.file_size, sum);
    }
    // With a config beside the index, the folder is still read as sharded, with its config.
    testing::write_tiny_hf_folder(&d.path().join("unused")).unwrap();
    std::fs::copy(d.path().join("unused/config.json"), dir.join("config.json")).unwrap();
    let info = inspect(dir).unwrap();
    assert_eq!(info.format, Format::ShardedSafetensors);
    assert_eq!(info.architecture.as_deref(), Some("llama"));
}

#[test]
fn sharded_with_missing_or_escaping_shard() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let names = write_shards(dir);
    std::fs::remove_file(dir.join(&names[1])).unwrap();
    let e = inspect(dir).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.message().contains(&names[1]), "{e}");
    assert!(e.message().contains("incomplete download"), "{e}");

    std::fs::write(
        dir.join(crate::format::SHARD_INDEX),
        r#"{"weight_map": {"a": "../../etc/passwd"}}"#,
    )
    .unwrap();
    let e = inspect(dir).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidModel);
    assert!(e.message().contains("../../etc/passwd"), "{e}");
}

fn st_with_header(dir: &Path, header: &str, data_len: usize) -> PathBuf {
    let p = dir.join("bad.safetensors");
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.resize(bytes.len() + data_len, 0);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn hostile_safetensors() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let check = |p: &Path, needle: &str| {
        let e = inspect(p).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidModel, "{e}");
        assert!(e.message().contains(needle), "{needle:?} not in {e}");
    };
    let p = st_with_header(
        dir,
        r#"{"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}}"#,
        10,
    );
    check(&p, "tensor 'w' data ends at byte");
    let p = st_with_header(
        dir,
        r#"{"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 60]}}"#,
        64,
    );
    check(&p, "needs 64 bytes");
    let p = st_with_header(
        dir,
        r#"{"w": {"dtype": "Q9", "shape": [4], "data_offsets": [0, 4]}}"#,
        4,
    );
    check(&p, "unknown dtype 'Q9'");
    let p = st_with_header(
        dir,
        r#"{"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 4], "data_offsets": [0, 4]}}"#,
        4,
    );
    check(&p, "overflows");
    let p = st_with_header(dir, r#"{"w": {"dtype": "F32"}}"#, 4);
    check(&p, "malformed entry");
    let p = st_with_header(dir, r#"{"w": 1, "#, 4);
    // Not JSON after '{': sniffed as safetensors, refused as invalid.
    check(&p, "does not parse");

    // A header length larger than the file.
    let p = dir.join("short.safetensors");
    let mut bytes = 1000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{\"a\": 1}");
    std::fs::write(&p, bytes).unwrap();
    check(&p, "truncated");

    let p = dir.join("huge.safetensors");
    let mut bytes = (200u64 << 20).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&p, bytes).unwrap();
    let e = safetensors::read_header(&p).unwrap_err();
    assert!(e.message().contains("more than the"), "{e}");
}

fn write_pytorch_zip(path: &Path) {
    let mut zw = zip::ZipWriter::new(File::create(path).unwrap());
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zw.start_file("pytorch_model/data.pkl", opts).unwrap();
    // Never executed: uml only lists the archive.
    zw.write_all(b"\x80\x02cos\nsystem\nq\x00.").unwrap();
    zw.start_file("pytorch_model/data/0", opts).unwrap();
    zw.write_all(&[0u8; 400]).unwrap();
    zw.start_file("pytorch_model/data/1", opts).unwrap();
    zw.write_all(&[0u8; 100]).unwrap();
    zw.start_file("pytorch_model/version", opts).unwrap();
    zw.write_all(b"3\n").unwrap();
    zw.finish().unwrap();
}

#[test]
fn pytorch_zip_is_listed_not_unpickled() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("pytorch_model.bin");
    write_pytorch_zip(&p);
    let info = inspect(&p).unwrap();
    assert_eq!(info.format, Format::PyTorch);
    assert_eq!(info.weights_bytes, 500);
    assert_eq!(info.parameter_count, 0);
    assert!(info.notes.iter().any(|n| n.contains("does not execute")));
    assert_eq!(info.metadata["pytorch.storages"], 2);

    std::fs::write(
        d.path().join("config.json"),
        r#"{"model_type": "bert", "torch_dtype": "float32", "num_hidden_layers": 6,
            "hidden_size": 384, "num_attention_heads": 12, "vocab_size": 30522,
            "max_position_embeddings": 512, "intermediate_size": 1536}"#,
    )
    .unwrap();
    let info = inspect(&p).unwrap();
    assert_eq!(info.architecture.as_deref(), Some("bert"));
    assert_eq!(info.parameter_count, 125);
    assert_eq!(info.quantization.as_deref(), Some("F32"));
    assert_eq!(info.key_length, Some(32));
    assert_eq!(info.layer_bytes, vec![0; 6]);
    // The folder form reads the same checkpoint.
    let info = inspect(d.path()).unwrap();
    assert_eq!(info.format, Format::HuggingFaceFolder);
    assert_eq!(info.weights_bytes, 500);
}

#[test]
fn layer_names() {
    assert_eq!(layer_index("blk.12.attn_q.weight"), Some(12));
    assert_eq!(layer_index("model.layers.3.mlp.up_proj.weight"), Some(3));
    assert_eq!(layer_index("transformer.h.0.attn.c_attn.weight"), Some(0));
    assert_eq!(layer_index("encoder.layer.5.output.dense.weight"), Some(5));
    assert_eq!(layer_index("token_embd.weight"), None);
    assert_eq!(layer_index("blk.99999999999.x"), None);
    assert_eq!(layer_index("blk.x.y"), None);
}

#[test]
fn legacy_and_missing_through_inspect() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("old.bin");
    std::fs::write(&p, b"tjgg\x01\x00\x00\x00rest").unwrap();
    let e = inspect(&p).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnsupportedFormat);
    assert!(e.message().contains("GGUF"), "{e}");
    let e = inspect(&d.path().join("missing.gguf")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

/// Not a unit test of uml: checks the real SmolLM2 file when it is present (`cargo test --
/// --ignored real_smollm2`).
#[test]
#[ignore]
fn real_smollm2() {
    let p = Path::new("/tmp/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let t = std::time::Instant::now();
    let info = inspect(p).unwrap();
    eprintln!("inspect took {:?}", t.elapsed());
    eprintln!("{}", serde_json::to_string_pretty(&info).unwrap());
    assert_eq!(info.architecture.as_deref(), Some("llama"));
    assert_eq!(info.block_count, Some(30));
    assert_eq!(info.embedding_length, Some(576));
    assert_eq!(info.vocab_size, Some(49152));
    assert_eq!(info.context_length, Some(8192));
    assert!(info.chat_template.is_some());
    for n_ctx in [2048, 8192] {
        let opts = crate::estimate::EstimateOptions {
            n_ctx: Some(n_ctx),
            ..Default::default()
        };
        let e = crate::estimate::estimate(&info, &opts).unwrap();
        eprintln!("{}", serde_json::to_string(&e).unwrap());
    }
}

/// The recurrent layout of a GGUF header with `metadata` (keys under `arch.`) and 4 blocks.
fn layout_of(arch: &str, metadata: Vec<(&str, GgufValue)>) -> Option<RecurrentLayout> {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("m.gguf");
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", arch)
        .add_metadata(format!("{arch}.block_count"), 4u32);
    for (key, value) in metadata {
        w.add_metadata(format!("{arch}.{key}"), value);
    }
    w.write(&p).unwrap();
    inspect(&p).unwrap().recurrent
}

/// Which blocks keep a recurrent state, and its size, as llama.cpp's models/*.cpp and
/// `n_embd_r`/`n_embd_s` have them.
#[test]
fn recurrent_blocks_and_their_state_follow_llama_cpp() {
    let flags = |bits: [u8; 4]| bits.iter().map(|&b| b == 1).collect::<Vec<_>>();
    // LFM2: blocks without KV heads are short convolutions keeping l_cache - 1 inputs.
    let lfm2 = layout_of(
        "lfm2",
        vec![
            ("embedding_length", GgufValue::U32(1024)),
            ("attention.head_count_kv", GgufValue::i32s([0, 0, 8, 0])),
            ("shortconv.l_cache", GgufValue::U32(3)),
        ],
    )
    .unwrap();
    assert_eq!(lfm2.recurrent, flags([1, 1, 0, 1]));
    assert_eq!(lfm2.attention, flags([0, 0, 1, 0]));
    assert_eq!(lfm2.state_elements, 1024 * 2);
    // Nemotron-H: blocks with a feed-forward network have neither; the Mamba-2 state is
    // (d_conv - 1) x (d_inner + 2 n_group d_state) + d_state x d_inner.
    let nemotron = layout_of(
        "nemotron_h",
        vec![
            ("attention.head_count_kv", GgufValue::i32s([0, 0, 8, 0])),
            ("feed_forward_length", GgufValue::i32s([0, 4096, 0, 0])),
            ("ssm.conv_kernel", GgufValue::U32(4)),
            ("ssm.inner_size", GgufValue::U32(128)),
            ("ssm.state_size", GgufValue::U32(16)),
            ("ssm.group_count", GgufValue::U32(8)),
        ],
    )
    .unwrap();
    assert_eq!(nemotron.recurrent, flags([1, 0, 0, 1]));
    assert_eq!(nemotron.attention, flags([0, 0, 1, 0]));
    assert_eq!(nemotron.state_elements, 3 * (128 + 2 * 8 * 16) + 16 * 128);
    // Qwen3.5: every full_attention_interval-th block attends; the last is a prediction head
    // whose cache only the heads' context holds. A recurrent_layers list wins over the interval.
    let qwen = |extra: Vec<(&'static str, GgufValue)>| {
        let mut metadata = vec![
            ("nextn_predict_layers", GgufValue::U32(1)),
            ("full_attention_interval", GgufValue::U32(3)),
        ];
        metadata.extend(extra);
        layout_of("qwen35", metadata).unwrap()
    };
    let interval = qwen(vec![]);
    assert_eq!(interval.recurrent, flags([1, 1, 0, 0]));
    assert_eq!(interval.attention, flags([0, 0, 1, 0]));
    assert_eq!(interval.head_blocks, 1);
    let listed = qwen(vec![(
        "attention.recurrent_layers",
        GgufValue::Array(crate::gguf::GgufArray::new(
            crate::gguf::GgufValueType::Bool,
            [true, false, true, false].map(GgufValue::Bool).to_vec(),
        )),
    )]);
    assert_eq!(listed.recurrent, flags([1, 0, 1, 0]));
    assert!(listed.rolls_back);
    // MiniMax-01 attends every 8th block by default, with a key_length² state per head.
    let minimax = layout_of(
        "minimax-01",
        vec![
            ("embedding_length", GgufValue::U32(256)),
            ("attention.head_count", GgufValue::U32(4)),
        ],
    )
    .unwrap();
    assert_eq!(minimax.recurrent, flags([1, 1, 1, 1]));
    assert_eq!(minimax.state_elements, 64 * 64 * 4);
    assert!(!minimax.rolls_back);
    // A hostile header saturates rather than wraps.
    let huge = layout_of(
        "mamba",
        vec![
            ("ssm.conv_kernel", GgufValue::U64(u64::MAX)),
            ("ssm.inner_size", GgufValue::U64(u64::MAX)),
            ("ssm.state_size", GgufValue::U64(u64::MAX)),
            ("ssm.group_count", GgufValue::U64(u64::MAX)),
        ],
    )
    .unwrap();
    assert_eq!(huge.state_elements, u64::MAX);
    // RWKV-7: every block, token-shift rows and a head_size-wide state per channel.
    let rwkv = layout_of(
        "rwkv7",
        vec![
            ("embedding_length", GgufValue::U32(256)),
            ("wkv.head_size", GgufValue::U32(64)),
        ],
    )
    .unwrap();
    assert_eq!(rwkv.recurrent, flags([1, 1, 1, 1]));
    assert_eq!(rwkv.attention, flags([0, 0, 0, 0]));
    assert_eq!(rwkv.state_elements, 2 * 256 + 256 * 64);
    // A transformer has none, even with per-block KV heads.
    assert_eq!(
        layout_of(
            "llama",
            vec![("attention.head_count_kv", GgufValue::i32s([0, 2, 2, 2]))]
        ),
        None
    );
}
