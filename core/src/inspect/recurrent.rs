//! Which blocks of a GGUF model keep a recurrent state in place of (or, in Falcon-H1, beside)
//! a KV cache, and how large that state is: Mamba and RWKV, and the hybrids (Qwen3.5,
//! Qwen3-Next, LFM2, Jamba, Granite 4, Nemotron-H, Falcon-H1, ...). Read as llama.cpp reads it:
//! the layer patterns of its `models/*.cpp`, the state sizes of `llama_hparams::n_embd_r` and
//! `n_embd_s` (llama-hparams.cpp). The memory estimate counts a KV cache only for attention
//! blocks and the state (with its rollback snapshots) for recurrent ones.

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
    /// Prediction-head blocks (of `mtp_layers`, not in `attention`) whose KV cache only the
    /// heads' own context holds: llama.cpp leaves them out of a Qwen3.5 model's context.
    pub head_blocks: u64,
}

impl RecurrentLayout {
    pub fn recurrent_blocks(&self) -> usize {
        self.recurrent.iter().filter(|&&r| r).count()
    }
}

/// Architectures whose every block is recurrent (llama.cpp's `llm_arch_is_recurrent`).
const RECURRENT: &[&str] = &["mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"];

/// Hybrids whose recurrent blocks are those every `full_attention_interval`-th is not (or
/// as `attention.recurrent_layers` lists them).
const INTERVAL_HYBRIDS: &[&str] = &["qwen3next", "qwen35", "qwen35moe", "qwen4exp", "minimax-01"];

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
    let kv_heads = per_block(h, &key("attention.head_count_kv"), n);
    let mut head_blocks = 0;
    let (recurrent, attention): (Vec<bool>, Vec<bool>) = if RECURRENT.contains(&arch) {
        (vec![true; n], vec![false; n])
    } else if arch == "falcon-h1" {
        // Every block runs attention and a Mamba-2 mixer side by side.
        (vec![true; n], vec![true; n])
    } else if INTERVAL_HYBRIDS.contains(&arch) {
        let listed = per_block(h, &key("attention.recurrent_layers"), n);
        let interval = h.get_u64(&key("full_attention_interval")).unwrap_or(4);
        let recurrent: Vec<bool> = (0..n)
            .map(|i| match &listed {
                Some(list) => list[i] != 0,
                None => i < main && interval > 0 && !(i as u64 + 1).is_multiple_of(interval),
            })
            .collect();
        let attention = (0..n).map(|i| i < main && !recurrent[i]).collect();
        head_blocks = (n - main) as u64;
        (recurrent, attention)
    } else if HEADLESS_HYBRIDS.contains(&arch) {
        let heads = kv_heads.as_ref()?;
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
    if !recurrent.contains(&true) {
        return None;
    }
    let state_elements = state_elements(h, arch);
    Some(RecurrentLayout {
        recurrent,
        attention,
        state_elements,
        head_blocks,
    })
}

/// `key` as one value per block: a per-block array as it is (`None` when its length is not
/// `n`), a scalar repeated.
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

/// llama.cpp's `n_embd_r() + n_embd_s()` for `arch` (in `u128`, so a hostile header
/// saturates rather than wraps; the estimate refuses what does not fit in bytes).
fn state_elements(h: &GgufHeader, arch: &str) -> u64 {
    let get = |k: &str| u128::from(h.get_u64(&format!("{arch}.{k}")).unwrap_or(0));
    let n_embd = get("embedding_length");
    let n_head = get("attention.head_count");
    let elements = if get("wkv.head_size") > 0 {
        // RWKV: token-shift rows and the WKV state.
        let shifts = h
            .get_u64(&format!("{arch}.token_shift_count"))
            .map_or(2, u128::from);
        shifts * n_embd + n_embd * get("wkv.head_size")
    } else if get("shortconv.l_cache") > 0 {
        // LFM2's short convolutions keep their last inputs only.
        n_embd * (get("shortconv.l_cache") - 1)
    } else if get("kda.head_dim") > 0 {
        // Kimi's delta attention: conv rows for Q, K and V, and a head_dim² state per head.
        let (head, d_conv) = (get("kda.head_dim"), get("ssm.conv_kernel"));
        let conv = if d_conv > 0 { d_conv - 1 } else { 3 };
        3 * conv * n_head * head + head * head * n_head
    } else {
        let (d_inner, d_state, n_group) = (
            get("ssm.inner_size"),
            get("ssm.state_size"),
            get("ssm.group_count"),
        );
        let conv = get("ssm.conv_kernel").saturating_sub(1) * (d_inner + 2 * n_group * d_state);
        if arch == "minimax-01" {
            // Lightning attention: a key_length² state per head.
            let head = get("attention.key_length");
            conv + head * head * n_head
        } else {
            // Mamba's (and the gated delta nets') conv and SSM states.
            conv + d_state * d_inner
        }
    };
    u64::try_from(elements).unwrap_or(u64::MAX)
}
