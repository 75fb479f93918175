//! Which blocks of a GGUF model keep a recurrent state in place of (or, in Falcon-H1, beside)
//! a KV cache, and how large that state is: Mamba and RWKV, and the hybrids (Qwen3.5,
//! Qwen3-Next, LFM2, Jamba, Granite 4, Nemotron-H, Falcon-H1, ...). Read as llama.cpp reads it:
//! the layer patterns of its `models/*.cpp`, the state sizes of `llama_hparams::n_embd_r` and
//! `n_embd_s` (llama-hparams.cpp). The memory estimate counts a KV cache only for attention
//! blocks and the state (with its rollback snapshots) for recurrent ones.
//!
//! Not modelled: DeepSeek-V4's compressor state (its own cache type) and Qwen4-exp's extra
//! per-layer-embedding rows; they are estimated as transformers are.

use crate::gguf::{GgufHeader, GgufValue};
use serde::Serialize;

/// The blocks of a model with a recurrent state.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct RecurrentLayout {
    /// Per block: whether it keeps a recurrent state.
    pub recurrent: Vec<bool>,
    /// Per block: whether it has a KV cache (attention).
    pub attention: Vec<bool>,
    /// f32 elements of one recurrent block's state for one sequence: its convolution or
    /// token-shift rows and its state matrix (llama.cpp's `n_embd_r + n_embd_s`).
    pub state_elements: u64,
    /// Prediction-head blocks (the last `mtp_layers`) whose KV cache the heads' own context
    /// holds (`mtp`). Qwen3.5's model context leaves them out (`attention` false for them);
    /// others keep them there too.
    pub head_blocks: u64,
    /// Whether llama.cpp keeps snapshots of this architecture's state to roll a rejected
    /// draft back to (`llm_arch_supports_rs_rollback`); the others keep none.
    pub rolls_back: bool,
}

impl RecurrentLayout {
    pub fn recurrent_blocks(&self) -> usize {
        self.recurrent.iter().filter(|&&r| r).count()
    }
}

/// Architectures whose every block is recurrent (llama.cpp's `llm_arch_is_recurrent`).
const RECURRENT: &[&str] = &["mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"];

/// Hybrids whose recurrent blocks are those every `full_attention_interval`-th is not (or
/// as `attention.recurrent_layers` lists them), with llama.cpp's default interval.
const INTERVAL_HYBRIDS: &[(&str, u64)] = &[
    ("qwen3next", 4),
    ("qwen35", 4),
    ("qwen35moe", 4),
    ("qwen4exp", 4),
    ("minimax-01", 8),
];

/// Architectures whose model context leaves the prediction-head blocks out (only the heads'
/// context attends with them).
const HEADS_APART: &[&str] = &["qwen3next", "qwen35", "qwen35moe", "qwen4exp", "glm5-next"];

/// llama.cpp's `llm_arch_supports_rs_rollback` (among the architectures above).
const ROLLS_BACK: &[&str] = &[
    "kimi-k3",
    "qwen35",
    "qwen35moe",
    "qwen4exp",
    "glm5-next",
    "nemotron_h",
    "nemotron_h_moe",
    "lfm2",
    "lfm2moe",
    "bailingmoe3",
];

/// Hybrids whose recurrent blocks are those without KV heads (a per-block
/// `attention.head_count_kv`).
const HEADLESS_HYBRIDS: &[&str] = &[
    "jamba",
    "plamo2",
    "granitehybrid",
    "lfm2",
    "lfm2moe",
    "nemotron_h",
    "nemotron_h_moe",
    "kimi-linear",
    "kimi-k3",
    "bailingmoe3",
    "glm5-next",
];

/// The recurrent layout of a model of `arch` with `n_blocks` blocks (the last `mtp_layers` of
/// them prediction heads, which attend), or `None` for a model without recurrent blocks.
pub(super) fn layout(
    h: &GgufHeader,
    arch: &str,
    n_blocks: u64,
    mtp_layers: u64,
) -> Option<RecurrentLayout> {
    let n = usize::try_from(n_blocks).ok()?.min(super::MAX_LAYERS);
    let key = |k: &str| format!("{arch}.{k}");
    let main = n.saturating_sub(usize::try_from(mtp_layers).unwrap_or(n));
    let interval = INTERVAL_HYBRIDS.iter().find(|(a, _)| *a == arch);
    let (mut recurrent, mut attention): (Vec<bool>, Vec<bool>) = if RECURRENT.contains(&arch) {
        (vec![true; n], vec![false; n])
    } else if arch == "falcon-h1" {
        // Every block runs attention and a Mamba-2 mixer side by side.
        (vec![true; n], vec![true; n])
    } else if let Some(&(_, default_interval)) = interval {
        let listed = per_block(h, &key("attention.recurrent_layers"), n);
        let interval = h
            .get_u64(&key("full_attention_interval"))
            .unwrap_or(default_interval);
        let recurrent: Vec<bool> = (0..n)
            .map(|i| match &listed {
                Some(list) => list[i] != 0,
                None => interval > 0 && !(i as u64 + 1).is_multiple_of(interval),
            })
            .collect();
        let attention = recurrent.iter().map(|r| !r).collect();
        (recurrent, attention)
    } else if HEADLESS_HYBRIDS.contains(&arch) {
        let heads = per_block(h, &key("attention.head_count_kv"), n)?;
        // Nemotron-H's blocks with a feed-forward network have neither.
        let ff = per_block(h, &key("feed_forward_length"), n);
        let mlp_only =
            |i: usize| arch.starts_with("nemotron_h") && ff.as_ref().is_some_and(|f| f[i] > 0);
        (0..n)
            .map(|i| {
                let mixer = !mlp_only(i);
                (mixer && heads[i] == 0, mixer && heads[i] > 0)
            })
            .unzip()
    } else {
        return None;
    };
    // The prediction-head blocks keep no state (llama.cpp allocates one below n_layer only),
    // and attend in the heads' context; some models' own context leaves them out.
    for i in main..n {
        recurrent[i] = false;
        attention[i] &= !HEADS_APART.contains(&arch);
    }
    if !recurrent.contains(&true) {
        return None;
    }
    let state_elements = state_elements(h, arch);
    Some(RecurrentLayout {
        recurrent,
        attention,
        state_elements,
        head_blocks: (n - main) as u64,
        rolls_back: ROLLS_BACK.contains(&arch),
    })
}

/// `key` as one value per block: the first `n` items of a per-block array (`None` when it has
/// fewer), a scalar repeated.
fn per_block(h: &GgufHeader, key: &str, n: usize) -> Option<Vec<u64>> {
    let as_number = |v: &GgufValue| v.as_u64().or_else(|| v.as_bool().map(u64::from));
    match h.get(key)? {
        GgufValue::Array(a) => {
            let values: Vec<u64> = a
                .values
                .as_ref()?
                .iter()
                .map(|v| as_number(v).unwrap_or(0))
                .collect();
            (values.len() >= n).then(|| values[..n].to_vec())
        }
        v => as_number(v).map(|x| vec![x; n]),
    }
}

/// llama.cpp's `n_embd_r() + n_embd_s()` for `arch`. It reads these keys as 32-bit values;
/// a larger one is a corrupt header, and the products saturate rather than wrap (the
/// estimate refuses what does not fit in bytes).
fn state_elements(h: &GgufHeader, arch: &str) -> u64 {
    let get = |k: &str| {
        h.get_u64(&format!("{arch}.{k}"))
            .map_or(0, |v| u128::from(v.min(u64::from(u32::MAX))))
    };
    let product = |factors: &[u128]| factors.iter().fold(1u128, |p, &f| p.saturating_mul(f));
    let n_embd = get("embedding_length");
    let n_head = get("attention.head_count");
    let elements = if get("wkv.head_size") > 0 {
        // RWKV: token-shift rows and the WKV state.
        let shifts = h
            .get_u64(&format!("{arch}.token_shift_count"))
            .map_or(2, |v| u128::from(v.min(u64::from(u32::MAX))));
        product(&[shifts, n_embd]).saturating_add(product(&[n_embd, get("wkv.head_size")]))
    } else if get("shortconv.l_cache") > 0 {
        // LFM2's short convolutions keep their last inputs only.
        product(&[n_embd, get("shortconv.l_cache") - 1])
    } else if get("kda.head_dim") > 0 {
        // Kimi's delta attention: conv rows for Q, K and V, and a head_dim² state per head.
        let (head, d_conv) = (get("kda.head_dim"), get("ssm.conv_kernel"));
        let conv = if d_conv > 0 { d_conv - 1 } else { 3 };
        product(&[3, conv, n_head, head]).saturating_add(product(&[head, head, n_head]))
    } else if arch == "minimax-01" {
        // Lightning attention: a key_length² state per head (key_length defaults to the
        // embedding over the heads).
        let head = match get("attention.key_length") {
            0 => n_embd.checked_div(n_head).unwrap_or(0),
            k => k,
        };
        product(&[head, head, n_head])
    } else {
        // Mamba's (and the gated delta nets') conv and SSM states.
        let (d_inner, d_state, n_group) = (
            get("ssm.inner_size"),
            get("ssm.state_size"),
            get("ssm.group_count"),
        );
        let width = d_inner.saturating_add(product(&[2, n_group, d_state]));
        product(&[get("ssm.conv_kernel").saturating_sub(1), width])
            .saturating_add(product(&[d_state, d_inner]))
    };
    u64::try_from(elements).unwrap_or(u64::MAX)
}
