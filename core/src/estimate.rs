//! Memory needed to run a model with llama.cpp, from its `ModelInfo` and the context options.
//!
//! The parts, for a context of `n_ctx` tokens (llama.cpp pads it to a multiple of 256) and
//! micro-batches of `n_ub = min(n_ubatch, n_batch, n_ctx)` tokens:
//!
//! - **weights**: the tensor bytes. llama.cpp maps the file; every weight a forward pass reads
//!   becomes resident.
//! - **KV cache**: `n_ctx × n_layer × n_head_kv × (key_length + value_length)` elements of
//!   the cache type (f16 = 2 bytes; q8_0 = 34 bytes and q4_0 = 18 bytes per 32 elements).
//!   llama.cpp clears it at creation, so all of it is resident at once. Encoder-only models
//!   (BERT family) have none. Recurrent blocks (Mamba, RWKV, the linear-attention blocks of
//!   Qwen3.5 or LFM2; `ModelInfo::recurrent`) have none either, but a state of
//!   `state_elements` f32 per slot, and a copy of it per snapshot that a drafting context
//!   keeps (`speculative::rollback_snapshots`): counted in `kv_cache_bytes` too.
//! - **compute**: llama.cpp reserves a compute buffer for its worst-case graph, logged as
//!   "compute buffer size" and reported here as `compute_reserved_bytes`:
//!   logits for a whole micro-batch (`n_ub × n_vocab × 4`), the live activations of one block
//!   (`n_ub × (3·n_embd + q + k + v widths + 3·n_ff) × 4`) and the attention mask
//!   (`n_ctx × n_ub × 6`: f32 plus the f16 copy flash attention reads). Without flash
//!   attention the score matrix adds `2 × n_ctx × n_ub × n_head × 4`.
//!   On a CPU only the pages a graph writes become resident, and generation asks for the
//!   logits of one token per batch, so the host share counted in `compute_bytes` is the
//!   reserve minus all but one row of the logits. A GPU commits the whole reserve.
//! - **overhead**: the runtime (code, threads, graph metadata) ~24 MiB, the vocabulary as
//!   llama.cpp keeps it (~160 bytes per token) and the GGUF metadata it copies to the heap
//!   (file size minus tensor bytes); plus a CUDA context (~384 MiB) when layers are offloaded.
//!
//! With `gpu_layers = k`, the last `k` blocks (and their KV cache) go to the GPU; `k` beyond the
//! block count also moves the output layer (llama.cpp counts it as one more layer).

use crate::error::{Error, ErrorKind, Result};
use crate::hardware::Hardware;
use crate::inspect::ModelInfo;
use crate::options::{GpuLayers, KvCacheType, LoadOptions};
use serde::{Deserialize, Serialize};

mod adapters;
pub(crate) use adapters::AdapterMemory;

const MIB: u64 = 1 << 20;
/// The context used when neither the options nor the model give one.
pub const DEFAULT_N_CTX: u32 = 4096;
/// llama.cpp pads the context to a multiple of this.
pub const N_CTX_PAD: u32 = 256;
/// Runtime memory outside llama.cpp's buffers (code, thread stacks, graph metadata).
const RUNTIME_OVERHEAD: u64 = 24 * MIB;
/// llama.cpp's per-token vocabulary storage (text, score, attributes, lookup tables).
const VOCAB_BYTES_PER_TOKEN: u64 = 160;
/// A CUDA context, cuBLAS workspace and ggml's kernels, on the device.
const DEVICE_OVERHEAD: u64 = 384 * MIB;

/// What to estimate for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(default)]
pub struct EstimateOptions {
    /// Context length; `None` (or 0) = the model's trained context length.
    pub n_ctx: Option<u32>,
    pub cache_type: KvCacheType,
    /// Blocks to offload to the GPU (more than the block count also moves the output layer).
    pub gpu_layers: u32,
    pub n_batch: u32,
    pub n_ubatch: u32,
    /// Whether llama.cpp uses flash attention (its default "auto" enables it on CPU and
    /// CUDA).
    pub flash_attention: bool,
    /// The weight type for backends that convert weights on load (candle): `None` = f32.
    pub dtype: Option<crate::options::WeightDtype>,
    /// Generation slots sharing the context, each with `n_ctx` KV cells (llama.cpp allocates
    /// them all at load; candle allocates a cache per running generation, so its estimate is
    /// for one).
    pub parallel: u32,
    /// Contexts each running generation has of its own, in place of the slots' shared one: a
    /// load that drafts (`draft_model`) 1, with the model's own heads (`mtp`) 2 (the heads'
    /// context beside the model's). Each has its own compute buffer. 0: generations share one.
    pub private_contexts: u32,
}

impl Default for EstimateOptions {
    fn default() -> Self {
        EstimateOptions {
            n_ctx: None,
            cache_type: KvCacheType::F16,
            gpu_layers: 0,
            n_batch: 512,
            n_ubatch: 512,
            flash_attention: true,
            dtype: None,
            parallel: 1,
            private_contexts: 0,
        }
    }
}

/// Memory needed, in bytes. `host_bytes + device_bytes == total_bytes`, and
/// `weights + kv_cache + compute + overhead + adapters == total_bytes`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The context length estimated for (padded to a multiple of 256).
    pub n_ctx: u32,
    pub cache_type: KvCacheType,
    /// Layers offloaded (capped at block count + 1).
    pub gpu_layers: u32,
    pub n_ubatch: u32,
    pub flash_attention: bool,
    /// Generation slots counted in `kv_cache_bytes` (each `n_ctx` cells).
    #[serde(default = "one_slot")]
    pub parallel: u32,
    /// Contexts each generation has of its own (see `EstimateOptions::private_contexts`):
    /// `compute_bytes` counts a compute buffer for each of them in every slot.
    #[serde(default)]
    pub private_contexts: u32,
    pub weights_bytes: u64,
    /// The attention blocks' KV cache, and the recurrent blocks' state with its rollback
    /// snapshots (see the module's notes).
    pub kv_cache_bytes: u64,
    /// Compute memory counted in the totals (resident on the host, committed on a GPU).
    pub compute_bytes: u64,
    /// llama.cpp's reserved compute buffer (what it logs as "compute buffer size").
    pub compute_reserved_bytes: u64,
    pub overhead_bytes: u64,
    /// The LoRA adapters loaded with the model (load option `lora`): their tensors, and the
    /// merged adapter when several are on at load.
    #[serde(default)]
    pub adapters_bytes: u64,
    pub host_bytes: u64,
    pub device_bytes: u64,
    pub total_bytes: u64,
}

fn one_slot() -> u32 {
    1
}

impl MemoryEstimate {
    /// Whether the host part fits in available RAM and the device part in the GPUs' free
    /// memory.
    pub fn fits(&self, hw: &Hardware) -> bool {
        fits_in(self.host_bytes, self.device_bytes, hw)
    }

    /// This estimate with `other`'s memory added (a model and its draft, loaded together);
    /// the context, slots and cache settings stay this one's.
    pub fn plus(&self, other: &MemoryEstimate) -> MemoryEstimate {
        MemoryEstimate {
            weights_bytes: self.weights_bytes.saturating_add(other.weights_bytes),
            kv_cache_bytes: self.kv_cache_bytes.saturating_add(other.kv_cache_bytes),
            compute_bytes: self.compute_bytes.saturating_add(other.compute_bytes),
            compute_reserved_bytes: self
                .compute_reserved_bytes
                .saturating_add(other.compute_reserved_bytes),
            overhead_bytes: self.overhead_bytes.saturating_add(other.overhead_bytes),
            adapters_bytes: self.adapters_bytes.saturating_add(other.adapters_bytes),
            host_bytes: self.host_bytes.saturating_add(other.host_bytes),
            device_bytes: self.device_bytes.saturating_add(other.device_bytes),
            total_bytes: self.total_bytes.saturating_add(other.total_bytes),
            ..*self
        }
    }
}

/// Whether `host` bytes fit in `hw`'s available RAM and `device` bytes in its GPUs' free memory.
fn fits_in(host: u64, device: u64, hw: &Hardware) -> bool {
    host <= hw.available_memory_bytes && (device == 0 || device <= hw.gpu_free_bytes())
}

/// The hyperparameters the estimate needs, checked to be plausible. `u128`: the estimators
/// multiply header values (up to five at a time) and a corrupt header must give an error,
/// never a product that wrapped around to something that "fits"; [`to_bytes`] brings each
/// result back to `u64` or fails.
pub(crate) struct Shape {
    pub(crate) n_layer: u128,
    pub(crate) n_embd: u128,
    pub(crate) n_ff: u128,
    pub(crate) n_head: u128,
    pub(crate) n_head_kv: u128,
    pub(crate) k_len: u128,
    pub(crate) v_len: u128,
    pub(crate) n_vocab: u128,
    pub(crate) has_kv: bool,
}

/// Upper bounds on header values, each far beyond any real model (the largest have ~128
/// blocks, 16K-wide embeddings, 128 heads and 262K-token vocabularies): a larger value is a
/// corrupt or hostile header.
const MAX_BLOCKS: u64 = 1 << 16;
const MAX_WIDTH: u64 = 1 << 20;
const MAX_HEADS: u64 = 1 << 16;
const MAX_FF: u64 = 1 << 24;
const MAX_VOCAB: u64 = 1 << 24;

/// A byte count computed in `u128`, as `u64`; more is a corrupt header.
pub(crate) fn to_bytes(info: &ModelInfo, what: &str, n: u128) -> Result<u64> {
    u64::try_from(n).map_err(|_| {
        Error::invalid_model(format!(
            "{}: its header gives a {what} of more than 2^64 bytes; the file is corrupt",
            info.path.display()
        ))
    })
}

pub(crate) fn shape(info: &ModelInfo) -> Result<Shape> {
    let missing = |what: &str| {
        Error::new(
            ErrorKind::Unsupported,
            format!(
                "cannot estimate memory for {}: its {what} is unknown (the model's metadata \
                 or config.json does not give it)",
                info.path.display()
            ),
        )
    };
    let n_layer = info
        .block_count
        .filter(|&n| n > 0)
        .ok_or_else(|| missing("block count"))?;
    let n_embd = info
        .embedding_length
        .filter(|&n| n > 0)
        .ok_or_else(|| missing("embedding length"))?;
    // Mamba and RWKV have no attention heads (their GGUFs say 0): nothing to size by them.
    let attends = info
        .recurrent
        .as_ref()
        .is_none_or(|r| r.attention.contains(&true) || r.head_blocks > 0);
    let n_head = match info.head_count.filter(|&n| n > 0) {
        Some(n) => n,
        None if !attends => 1,
        None => return Err(missing("attention head count")),
    };
    let n_head_kv = info.head_count_kv.unwrap_or(n_head);
    let k_len = info.key_length.unwrap_or(n_embd / n_head);
    let v_len = info.value_length.unwrap_or(n_embd / n_head);
    let n_ff = info.feed_forward_length.unwrap_or(4 * n_embd);
    let n_vocab = info.vocab_size.unwrap_or(32_000);
    for (what, value, max) in [
        ("block count", n_layer, MAX_BLOCKS),
        ("embedding length", n_embd, MAX_WIDTH),
        ("attention head count", n_head, MAX_HEADS),
        ("key-value head count", n_head_kv, MAX_HEADS),
        ("key length", k_len, MAX_WIDTH),
        ("value length", v_len, MAX_WIDTH),
        ("feed-forward length", n_ff, MAX_FF),
        ("vocabulary size", n_vocab, MAX_VOCAB),
    ] {
        if value > max {
            return Err(Error::invalid_model(format!(
                "{}: its {what} is {value}, beyond any real model (at most {max}); the header \
                 is corrupt",
                info.path.display()
            )));
        }
    }
    let has_kv = !info.architecture.as_deref().is_some_and(is_encoder_only);
    Ok(Shape {
        n_layer: n_layer.into(),
        n_embd: n_embd.into(),
        n_ff: n_ff.into(),
        n_head: n_head.into(),
        n_head_kv: n_head_kv.into(),
        k_len: k_len.into(),
        v_len: v_len.into(),
        n_vocab: n_vocab.into(),
        has_kv,
    })
}

/// Architectures llama.cpp runs without a KV cache (non-causal encoders).
fn is_encoder_only(arch: &str) -> bool {
    matches!(
        arch.to_ascii_lowercase().as_str(),
        "bert"
            | "nomic-bert"
            | "nomic-bert-moe"
            | "jina-bert-v2"
            | "jina-bert-v3"
            | "modern-bert"
            | "neo-bert"
            | "eurobert"
            | "t5encoder"
            | "roberta"
            | "xlm-roberta"
            | "distilbert"
    )
}

/// The context to estimate for: the option, else the model's, else 4096; padded to 256.
pub(crate) fn effective_n_ctx(info: &ModelInfo, opts: &EstimateOptions) -> u32 {
    let n = opts
        .n_ctx
        .filter(|&n| n > 0)
        .or_else(|| {
            info.context_length
                .filter(|&n| n > 0)
                .map(|n| n.min(u64::from(u32::MAX - N_CTX_PAD)) as u32)
        })
        .unwrap_or(DEFAULT_N_CTX);
    n.div_ceil(N_CTX_PAD).saturating_mul(N_CTX_PAD)
}

impl EstimateOptions {
    /// The options that give `estimate` again (its context, slots, cache, GPU layers and
    /// batch), with `dtype` for backends that convert weights.
    pub fn of(estimate: &MemoryEstimate, dtype: Option<crate::options::WeightDtype>) -> Self {
        EstimateOptions {
            n_ctx: Some(estimate.n_ctx),
            cache_type: estimate.cache_type,
            gpu_layers: estimate.gpu_layers,
            n_batch: estimate.n_ubatch.max(1),
            n_ubatch: estimate.n_ubatch.max(1),
            flash_attention: estimate.flash_attention,
            dtype,
            parallel: estimate.parallel,
            private_contexts: estimate.private_contexts,
        }
    }

    /// What a load with `options` asks for. `gpu_layers: "auto"` counts as 0 here: it depends
    /// on the hardware, which `for_load_options` resolves.
    pub fn from_load_options(options: &LoadOptions) -> Self {
        EstimateOptions {
            n_ctx: options.n_ctx,
            cache_type: options.kv_cache_type,
            gpu_layers: match options.gpu_layers {
                GpuLayers::Count(n) => n,
                GpuLayers::Auto => 0,
            },
            n_batch: options.n_batch,
            n_ubatch: options.n_ubatch,
            flash_attention: options.flash_attention.unwrap_or(true),
            dtype: options.dtype,
            // An embedding load has no generation slots: its KV cells are not multiplied.
            parallel: if options.embeddings {
                1
            } else {
                options.max_parallel.unwrap_or(1)
            },
            private_contexts: if options.embeddings {
                0
            } else if options.mtp {
                2
            } else {
                u32::from(options.draft_model.is_some())
            },
        }
    }
}

/// A backend's memory model: what running a model with some options would take. The helpers
/// below (GPU layers, the largest context, the fit check) work for any backend's.
pub type Estimator<'a> = &'a dyn Fn(&ModelInfo, &EstimateOptions) -> Result<MemoryEstimate>;

/// The estimate for loading `info` with `options` on `hw` (`gpu_layers: "auto"` = the most
/// that fit on its GPUs) by the backend a load would pick first: what `uml_estimate`, Python's
/// `uml.estimate` and the CLI report.
pub fn for_load_options(
    info: &ModelInfo,
    options: &LoadOptions,
    hw: &Hardware,
) -> Result<MemoryEstimate> {
    let adapters = AdapterMemory::of(&options.lora)?;
    own_estimate(info, options, &adapters, hw).map(|(_, estimate)| estimate)
}

/// The backend a load of `info` with `options` tries first, and its estimate of the model's
/// own memory (`adapters` included) on `hw`.
fn own_estimate(
    info: &ModelInfo,
    options: &LoadOptions,
    adapters: &AdapterMemory,
    hw: &Hardware,
) -> Result<(&'static dyn crate::backend::Backend, MemoryEstimate)> {
    let backend = first_backend(info, options)?;
    crate::backend::check_extras(backend, options)?;
    crate::backend::check_mtp_heads(info, options)?;
    let estimate = for_backend(
        &|i, o| with_adapters(backend, adapters, i, o),
        info,
        options,
        hw,
    )?;
    Ok((backend, estimate))
}

/// `backend`'s estimate of `info` with `opts`, with the memory of the LoRA adapters loaded
/// with it: a model's own memory.
pub(crate) fn with_adapters(
    backend: &dyn crate::backend::Backend,
    adapters: &AdapterMemory,
    info: &ModelInfo,
    opts: &EstimateOptions,
) -> Result<MemoryEstimate> {
    let own = backend.estimate(info, opts)?;
    Ok(adapters.add_to(own, info.block_count.unwrap_or(0)))
}

/// The backend a load of `info` with `options` tries first: the first candidate whose check
/// passes, else the first candidate (whose load will then say why it cannot).
pub(crate) fn first_backend(
    info: &ModelInfo,
    options: &LoadOptions,
) -> Result<&'static dyn crate::backend::Backend> {
    let candidates = crate::backend::candidates(options.backend);
    candidates
        .iter()
        .find(|b| b.check(info).is_ok())
        .or(candidates.first())
        .copied()
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "no backend in this build is called {}",
                    options.backend.as_str()
                ),
            )
        })
}

/// What a host shows before a load: the estimate for loading a path with some options on this
/// machine, the backend it is for, and whether it fits in the memory available now. One
/// function, so the C ABI, every binding and the CLI report the same thing.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Preflight {
    /// The model's own memory, its LoRA adapters included.
    #[serde(flatten)]
    pub estimate: MemoryEstimate,
    /// The backend a load would try first, whose memory model this is.
    pub backend: &'static str,
    /// The draft model's memory (load option `draft_model`): loaded beside the model, with
    /// its context length, slots and KV cache type. `None` without a draft.
    pub draft: Option<MemoryEstimate>,
    /// RAM the load needs: the model's and its draft's.
    pub load_host_bytes: u64,
    /// GPU memory the load needs: the model's and its draft's.
    pub load_device_bytes: u64,
    /// Whether `load_host_bytes` fit in the RAM available now (and `load_device_bytes` in
    /// the GPUs' free memory).
    pub fits: bool,
    pub available_memory_bytes: u64,
}

/// What a load puts beside the model's own weights, read from the files the options name
/// before any backend is tried (a missing or broken one is one error, not one per backend):
/// the draft model (`draft_model`) and the LoRA adapters' memory (`lora`).
#[derive(Debug, Default)]
pub(crate) struct Beside {
    pub draft: Option<crate::speculative::DraftFile>,
    pub adapters: AdapterMemory,
    /// This load is another model's draft (`Model::load_draft`): its generations all draft
    /// for that model, each in a private context.
    pub for_draft: bool,
}

impl Beside {
    pub fn of(options: &LoadOptions) -> Result<Beside> {
        Ok(Beside {
            draft: options
                .draft_model
                .as_deref()
                .map(crate::speculative::DraftFile::inspect)
                .transpose()?,
            adapters: AdapterMemory::of(&options.lora)?,
            for_draft: false,
        })
    }
}

/// Inspect `path` (headers only), estimate a load of it with `options` by the backend a load
/// would pick first (with its LoRA adapters, and its draft model if the options name one),
/// and check the result against this machine's free memory.
pub fn preflight(path: &std::path::Path, options: &LoadOptions) -> Result<Preflight> {
    let info = crate::inspect::inspect(path)?;
    let beside = Beside::of(options)?;
    let hw = crate::hardware::detect();
    let (backend, estimate) = own_estimate(&info, options, &beside.adapters, &hw)?;
    let draft = beside
        .draft
        .map(|d| d.estimate(&EstimateOptions::of(&estimate, None)))
        .transpose()?;
    let load = draft.map_or(estimate, |d| estimate.plus(&d));
    Ok(Preflight {
        fits: fits_in(load.host_bytes, load.device_bytes, &hw),
        load_host_bytes: load.host_bytes,
        load_device_bytes: load.device_bytes,
        estimate,
        draft,
        backend: backend.name(),
        available_memory_bytes: hw.available_memory_bytes,
    })
}

/// `for_load_options` with a given backend's estimator.
pub fn for_backend(
    estimator: Estimator<'_>,
    info: &ModelInfo,
    options: &LoadOptions,
    hw: &Hardware,
) -> Result<MemoryEstimate> {
    let mut opts = EstimateOptions::from_load_options(options);
    if options.gpu_layers == GpuLayers::Auto {
        opts.gpu_layers = max_gpu_layers(estimator, info, &opts, hw);
    }
    estimator(info, &opts)
}

/// llama.cpp's memory model: the memory to run `info` with `opts` in its buffers (weights as
/// stored, f16/q8_0/q4_0 KV cells, ggml's compute graph reservation).
pub fn estimate(info: &ModelInfo, opts: &EstimateOptions) -> Result<MemoryEstimate> {
    if opts.n_batch == 0 || opts.n_ubatch == 0 {
        return Err(Error::invalid_argument(format!(
            "n_batch ({}) and n_ubatch ({}) must be at least 1 (default 512)",
            opts.n_batch, opts.n_ubatch
        )));
    }
    let s = shape(info)?;
    let n_ctx = effective_n_ctx(info, opts);
    let n_ub = u128::from(opts.n_ubatch.min(opts.n_batch).min(n_ctx));
    // The cells of every slot: one unified cache, which attention and its mask span whole.
    let ctx = u128::from(n_ctx) * u128::from(opts.parallel.max(1));

    // KV cache of an attention block.
    let kv_block = if s.has_kv {
        // Both products are below 2^36 (checked bounds), so the u64 row sizes are exact.
        let row = |width: u128| u128::from(opts.cache_type.row_bytes(width as u64));
        ctx * (row(s.n_head_kv * s.k_len) + row(s.n_head_kv * s.v_len))
    } else {
        0
    };
    // A recurrent block's state: f32, one per slot, and the snapshots a drafting context
    // keeps to roll a rejected draft back to.
    let snapshots = match &info.recurrent {
        Some(r) if r.rolls_back => {
            crate::speculative::rollback_snapshots(opts.private_contexts, n_ub as u32)
        }
        _ => 0,
    };
    let state_block = info.recurrent.as_ref().map_or(0, |r| {
        u128::from(r.state_elements)
            * 4
            * u128::from(opts.parallel.max(1))
            * (1 + u128::from(snapshots))
    });
    // What each block keeps: a transformer's every block attends. The heads' own context
    // (`mtp`) holds a KV cache for the prediction-head blocks it runs.
    let n_blocks = s.n_layer as usize;
    let block_memory = |i: usize| -> u128 {
        match &info.recurrent {
            Some(r) => {
                let has = |flags: &[bool]| flags.get(i).copied().unwrap_or(false);
                let head = opts.private_contexts >= 2
                    && (i as u128) + u128::from(r.head_blocks) >= s.n_layer;
                (u128::from(has(&r.attention)) + u128::from(head)) * kv_block
                    + u128::from(has(&r.recurrent)) * state_block
            }
            None => kv_block,
        }
    };
    let kv: u128 = (0..n_blocks).map(block_memory).sum();

    // Compute buffer.
    let logits = n_ub * s.n_vocab * 4;
    let widths = 3 * s.n_embd + s.n_head * s.k_len + s.n_head_kv * (s.k_len + s.v_len) + 3 * s.n_ff;
    let activations = n_ub * widths * 4;
    let mask = ctx * n_ub * 6;
    let scores = if opts.flash_attention {
        0
    } else {
        2 * ctx * n_ub * s.n_head * 4
    };
    let reserved = logits + activations + mask + scores;
    // What a CPU actually touches while generating: one row of logits.
    let cpu_resident = reserved - logits + s.n_vocab * 4;
    // The host's inputs when the graph runs on a GPU (token embeddings, positions, mask).
    let host_inputs = n_ub * s.n_embd * 4 + ctx * n_ub * 4;

    // Weights per layer and outside.
    let weights = u128::from(info.weights_bytes);
    let n_layer_us = s.n_layer as usize;
    let layer_sum: u128 = info.layer_bytes.iter().map(|&b| u128::from(b)).sum();
    let per_layer = |i: usize| -> u128 {
        if layer_sum > 0 {
            info.layer_bytes.get(i).copied().map_or(0, u128::from)
        } else {
            // No per-layer sizes (a PyTorch checkpoint): spread the weights evenly.
            weights / s.n_layer
        }
    };
    let output = if layer_sum > 0 {
        u128::from(info.output_bytes)
    } else {
        0
    };

    let gpu_layers = u128::from(opts.gpu_layers).min(s.n_layer + 1);
    let offloaded_blocks = gpu_layers.min(s.n_layer) as usize;
    let output_offloaded = gpu_layers > s.n_layer;
    let device_weights: u128 = (n_layer_us - offloaded_blocks..n_layer_us)
        .map(per_layer)
        .sum::<u128>()
        + if output_offloaded { output } else { 0 };
    // A tied head is copied to the GPU; the embeddings stay on the host as well.
    let host_weights = weights.saturating_sub(device_weights)
        + if output_offloaded && info.tied_embeddings {
            output
        } else {
            0
        };
    let device_kv: u128 = (n_layer_us - offloaded_blocks..n_layer_us)
        .map(block_memory)
        .sum();
    let host_kv = kv - device_kv;

    let (host_compute, device_compute) = if gpu_layers == 0 {
        (cpu_resident, 0)
    } else if output_offloaded {
        (host_inputs, reserved)
    } else {
        // Some blocks and the output head run on the CPU.
        (cpu_resident, reserved)
    };
    // Generations in private contexts: a compute buffer each, in every slot.
    let buffers = match opts.private_contexts {
        0 => 1,
        n => u128::from(n) * u128::from(opts.parallel.max(1)),
    };
    let (host_compute, device_compute) = (host_compute * buffers, device_compute * buffers);

    let metadata_copy = u128::from(info.file_size)
        .saturating_sub(weights)
        .min(1 << 30);
    let host_overhead = u128::from(RUNTIME_OVERHEAD)
        + s.n_vocab * u128::from(VOCAB_BYTES_PER_TOKEN)
        + metadata_copy;
    let device_overhead = if gpu_layers > 0 {
        u128::from(DEVICE_OVERHEAD)
    } else {
        0
    };

    let host = host_weights + host_kv + host_compute + host_overhead;
    let device = device_weights + device_kv + device_compute + device_overhead;
    let bytes = |what: &str, n: u128| to_bytes(info, what, n);
    Ok(MemoryEstimate {
        n_ctx,
        cache_type: opts.cache_type,
        gpu_layers: gpu_layers as u32,
        n_ubatch: n_ub as u32,
        flash_attention: opts.flash_attention,
        parallel: opts.parallel.max(1),
        private_contexts: opts.private_contexts,
        weights_bytes: bytes("weight size", host_weights + device_weights)?,
        kv_cache_bytes: bytes("KV cache", kv)?,
        compute_bytes: bytes("compute buffer", host_compute + device_compute)?,
        compute_reserved_bytes: bytes("compute buffer", reserved)?,
        overhead_bytes: bytes("overhead", host_overhead + device_overhead)?,
        adapters_bytes: 0,
        host_bytes: bytes("memory need", host)?,
        device_bytes: bytes("GPU memory need", device)?,
        total_bytes: bytes("memory need", host + device)?,
    })
}

/// The most layers that fit in the GPUs' free memory (0 without a GPU). Values above the
/// block count include the output layer.
pub fn max_gpu_layers(
    estimator: Estimator<'_>,
    info: &ModelInfo,
    opts: &EstimateOptions,
    hw: &Hardware,
) -> u32 {
    let free = hw.gpu_free_bytes();
    if free == 0 {
        return 0;
    }
    let Some(n_layer) = info.block_count.filter(|&n| n > 0) else {
        return 0;
    };
    let top = (n_layer + 1).min(u64::from(u32::MAX)) as u32;
    (1..=top)
        .rev()
        .find(|&g| {
            let o = EstimateOptions {
                gpu_layers: g,
                ..*opts
            };
            estimator(info, &o).is_ok_and(|e| e.device_bytes <= free)
        })
        .unwrap_or(0)
}

/// The largest context (a multiple of 256, at most the requested or trained one) whose host
/// memory fits in `available_bytes`; `None` when not even 256 tokens fit.
pub fn largest_context_that_fits(
    estimator: Estimator<'_>,
    info: &ModelInfo,
    opts: &EstimateOptions,
    available_bytes: u64,
) -> Option<u32> {
    let fits = |n: u32| {
        let o = EstimateOptions {
            n_ctx: Some(n),
            ..*opts
        };
        estimator(info, &o).is_ok_and(|e| e.host_bytes <= available_bytes)
    };
    let upper = effective_n_ctx(info, opts);
    if fits(upper) {
        return Some(upper);
    }
    // Memory grows with n_ctx: binary search the multiples of 256 below `upper`.
    let (mut lo, mut hi) = (0u32, upper / N_CTX_PAD);
    // Invariant: lo = 0 or lo·256 fits; hi·256 does not fit.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid * N_CTX_PAD) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo > 0).then_some(lo * N_CTX_PAD)
}

/// `OutOfMemory` with the numbers and the fixes when `est` does not fit `hw`. `dtype` is the
/// weight type `est` was made for (it is not part of the estimate itself).
pub fn check_fits(
    estimator: Estimator<'_>,
    info: &ModelInfo,
    est: &MemoryEstimate,
    dtype: Option<crate::options::WeightDtype>,
    hw: &Hardware,
) -> Result<()> {
    let opts = EstimateOptions::of(est, dtype);
    if est.host_bytes > hw.available_memory_bytes {
        let slots_hint = if est.parallel > 1 {
            format!(
                "fewer generation slots (max_parallel, now {}), ",
                est.parallel
            )
        } else {
            String::new()
        };
        let largest = largest_context_that_fits(estimator, info, &opts, hw.available_memory_bytes);
        let ctx_hint = match largest {
            Some(n) if n < est.n_ctx => format!("a smaller n_ctx (about {n} fits)"),
            _ => "a smaller n_ctx".to_string(),
        };
        let cache_hint = match est.cache_type {
            KvCacheType::F32 | KvCacheType::F16 => {
                "a quantized KV cache (cache_type q8_0 or q4_0), "
            }
            KvCacheType::Q8_0 => "a smaller KV cache type (cache_type q4_0), ",
            KvCacheType::Q4_0 => "",
        };
        let (adapters, adapters_hint) = if est.adapters_bytes > 0 {
            (
                format!(", LoRA adapters {}", format_bytes(est.adapters_bytes)),
                "fewer LoRA adapters (or fewer on at load), ",
            )
        } else {
            (String::new(), "")
        };
        return Err(Error::new(
            ErrorKind::OutOfMemory,
            format!(
                "{} needs about {} of RAM at n_ctx {} (weights {}, KV cache {} as {}, compute \
                 {}, overhead {}{adapters}) but only {} is available; use {ctx_hint}, \
                 {slots_hint}{cache_hint}{adapters_hint}or a smaller quantization of the model",
                info.path.display(),
                format_bytes(est.host_bytes),
                est.n_ctx,
                format_bytes(est.weights_bytes),
                format_bytes(est.kv_cache_bytes),
                est.cache_type.as_str(),
                format_bytes(est.compute_bytes),
                format_bytes(est.overhead_bytes),
                format_bytes(hw.available_memory_bytes),
            ),
        ));
    }
    if est.device_bytes > 0 && est.device_bytes > hw.gpu_free_bytes() {
        let most = max_gpu_layers(estimator, info, &opts, hw);
        return Err(Error::new(
            ErrorKind::OutOfMemory,
            format!(
                "{} needs about {} of GPU memory with gpu_layers {} but the GPUs have {} free; \
                 use gpu_layers {most} or fewer, a smaller n_ctx, or a quantized KV cache",
                info.path.display(),
                format_bytes(est.device_bytes),
                est.gpu_layers,
                format_bytes(hw.gpu_free_bytes()),
            ),
        ));
    }
    Ok(())
}

/// `"1.50 GiB"`, `"45.0 MiB"`, `"512 KiB"`, `"12 B"`.
pub fn format_bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if f >= KIB * KIB * KIB {
        format!("{:.2} GiB", f / (KIB * KIB * KIB))
    } else if f >= KIB * KIB {
        format!("{:.1} MiB", f / (KIB * KIB))
    } else if f >= KIB {
        format!("{:.0} KiB", f / KIB)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests;
