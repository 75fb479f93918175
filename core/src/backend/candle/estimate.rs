//! candle's memory model on the CPU: every weight of a folder as F32 (whatever the file
//! stores), a GGUF's weights as stored plus its embeddings in F32, F32 KV caches that grow to
//! the context, attention over a prompt chunk against the whole context, and the rotary
//! tables.

use crate::estimate::{effective_n_ctx, shape, to_bytes, EstimateOptions, MemoryEstimate};
use crate::format::Format;
use crate::inspect::ModelInfo;
use crate::options::{KvCacheType, WeightDtype};
use crate::Result;

// u128 like the shape (see `estimate::Shape`): header products never wrap.
const MIB: u128 = 1 << 20;
/// The process's share for candle's thread pools and allocator slack.
const RUNTIME_OVERHEAD: u128 = 24 * MIB;
/// Score-sized (chunk × context × heads) F32 buffers live at once while a prompt chunk attends:
/// the scores and their masked (or softmaxed) copy.
const SCORE_BUFFERS: u128 = 2;
/// tokenizers keeps a few maps of every token's string.
const TOKENIZER_BYTES_PER_TOKEN: u128 = 200;
const F32: u128 = 4;

pub(super) fn estimate(info: &ModelInfo, opts: &EstimateOptions) -> Result<MemoryEstimate> {
    let s = shape(info)?;
    let n_ctx = effective_n_ctx(info, opts);
    let ctx = u128::from(n_ctx);
    let chunk = u128::from(opts.n_batch.min(n_ctx).max(1));
    let dtype = opts.dtype.unwrap_or(WeightDtype::F32);
    let elem = u128::from(dtype.size());
    let stored = u128::from(info.weights_bytes);

    let weights = if info.format == Format::Gguf {
        // A GGUF's tensors stay quantized in memory, but candle's quantized llama dequantizes
        // the token embeddings to F32 for its lookup table.
        stored + s.n_vocab * s.n_embd * F32
    } else {
        // Folder weights are converted to `dtype` on load: scale what the file holds by its
        // size / stored bytes.
        match info.parameter_count {
            0 => stored * elem / stored_bytes_per_param(info),
            n => u128::from(n) * elem,
        }
    };
    // The cache holds keys and values in the weights' type.
    let kv = s.n_layer * ctx * s.n_head_kv * (s.k_len + s.v_len) * elem;
    let rope = 2 * ctx * s.k_len * F32;
    // One prompt chunk's activations, its attention scores against the context, and a row of
    // logits (candle computes the head for the last position only).
    let widths = 3 * s.n_embd + s.n_head * s.k_len + s.n_head_kv * (s.k_len + s.v_len) + 3 * s.n_ff;
    let compute =
        chunk * widths * F32 + SCORE_BUFFERS * chunk * ctx * s.n_head * F32 + s.n_vocab * F32;
    let overhead = RUNTIME_OVERHEAD + s.n_vocab * TOKENIZER_BYTES_PER_TOKEN + rope;
    let total = weights + kv + compute + overhead;
    let bytes = |what: &str, n: u128| to_bytes(info, what, n);
    Ok(MemoryEstimate {
        n_ctx,
        // This backend keeps its cache in the weights' type whatever was asked.
        cache_type: match dtype {
            WeightDtype::F32 => KvCacheType::F32,
            _ => KvCacheType::F16,
        },
        gpu_layers: 0,
        n_ubatch: chunk as u32,
        flash_attention: false,
        parallel: 1,
        private_contexts: 0,
        weights_bytes: bytes("weight size", weights)?,
        kv_cache_bytes: bytes("KV cache", kv)?,
        compute_bytes: bytes("compute buffer", compute)?,
        compute_reserved_bytes: bytes("compute buffer", compute)?,
        overhead_bytes: bytes("overhead", overhead)?,
        adapters_bytes: 0,
        host_bytes: bytes("memory need", total)?,
        device_bytes: 0,
        total_bytes: bytes("memory need", total)?,
    })
}

fn stored_bytes_per_param(info: &ModelInfo) -> u128 {
    match info.quantization.as_deref() {
        Some("F16" | "BF16") => 2,
        Some("F64") => 8,
        _ => 4,
    }
}
