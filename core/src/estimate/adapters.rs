//! The memory of the LoRA adapters a load names (load option `lora`), read from their headers
//! before anything loads. llama.cpp copies each adapter tensor into the buffer of the weight
//! it adapts (so an offloaded block's adapters sit on the GPU), a PEFT folder is converted to
//! f32 as it loads, and several adapters on at load add one merged f32 adapter
//! (`crate::lora::load_combination`).

use super::MemoryEstimate;
use crate::options::LoraAdapter;
use crate::{Error, ErrorKind, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Where llama.cpp keeps an adapter tensor: beside the weight it adapts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    /// The token embeddings: always on the host.
    Input,
    /// Block `n`: on the device when that block is offloaded.
    Block(u64),
    /// The output head and anything else outside the blocks: on the device when every block
    /// and the head are offloaded.
    Output,
}

/// One adapter tensor: where it goes, its bytes as loaded, and its elements (what a merged
/// f32 copy takes, times 4).
struct AdapterTensor {
    place: Place,
    bytes: u64,
    elements: u64,
}

/// Adapter bytes per place.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct AdapterMemory {
    per_place: BTreeMap<Place, u64>,
}

impl AdapterMemory {
    /// The memory the `adapters` take once loaded. A missing or unreadable adapter is an
    /// error naming it.
    pub fn of(adapters: &[LoraAdapter]) -> Result<AdapterMemory> {
        let mut memory = AdapterMemory::default();
        let mut tensors = Vec::with_capacity(adapters.len());
        for adapter in adapters {
            let these = adapter_tensors(&adapter.path)?;
            for t in &these {
                memory.add(t.place, t.bytes);
            }
            tensors.push(these);
        }
        let together = crate::lora::load_combination(adapters);
        if together.len() > 1 {
            for &(i, _) in &together {
                for t in &tensors[i] {
                    memory.add(t.place, t.elements.saturating_mul(4));
                }
            }
        }
        Ok(memory)
    }

    fn add(&mut self, place: Place, bytes: u64) {
        let sum = self.per_place.entry(place).or_default();
        *sum = sum.saturating_add(bytes);
    }

    /// `estimate` (of a model with `n_layer` blocks) with these adapters added in
    /// `adapters_bytes` and the totals: those of the blocks it offloads (the last
    /// `gpu_layers`; the output head's beyond the block count) on the device, the rest on the
    /// host.
    pub fn add_to(&self, estimate: MemoryEstimate, n_layer: u64) -> MemoryEstimate {
        let gpu_layers = u64::from(estimate.gpu_layers);
        let first_offloaded = n_layer.saturating_sub(gpu_layers);
        let (mut host, mut device) = (0u64, 0u64);
        for (&place, &bytes) in &self.per_place {
            let on_device = match place {
                Place::Input => false,
                Place::Block(b) => gpu_layers > 0 && b >= first_offloaded,
                Place::Output => gpu_layers > n_layer,
            };
            let side = if on_device { &mut device } else { &mut host };
            *side = side.saturating_add(bytes);
        }
        let both = host.saturating_add(device);
        MemoryEstimate {
            adapters_bytes: estimate.adapters_bytes.saturating_add(both),
            host_bytes: estimate.host_bytes.saturating_add(host),
            device_bytes: estimate.device_bytes.saturating_add(device),
            total_bytes: estimate.total_bytes.saturating_add(both),
            ..estimate
        }
    }
}

/// The tensors of the adapter at `path`: a GGUF adapter file, or a PEFT adapter folder (its
/// tensors become f32 when it is converted at load).
fn adapter_tensors(path: &Path) -> Result<Vec<AdapterTensor>> {
    let named = |e: Error| {
        Error::new(
            e.kind(),
            format!("LoRA adapter {}: {}", path.display(), e.message()),
        )
    };
    if path.is_file() {
        let header = crate::gguf::read_header(path).map_err(named)?;
        crate::lora::check_is_lora(&header, path)?;
        return Ok(header
            .tensors
            .iter()
            .filter(|t| t.name.ends_with(".lora_a") || t.name.ends_with(".lora_b"))
            .map(|t| AdapterTensor {
                place: place_of(&t.name, "blk.", "token_embd."),
                bytes: t.n_bytes,
                elements: t.n_elements,
            })
            .collect());
    }
    if !path.is_dir() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "LoRA adapter {} does not exist (check load option lora)",
                path.display()
            ),
        ));
    }
    let weights = crate::lora::peft_weights_file(path)?;
    if weights.extension().is_some_and(|e| e == "safetensors") {
        let header = crate::inspect::safetensors::read_header(&weights).map_err(named)?;
        return Ok(header
            .tensors
            .iter()
            .filter(|t| t.name.contains("lora_A") || t.name.contains("lora_B"))
            .map(|t| AdapterTensor {
                place: place_of(&t.name, "layers.", "embed_tokens"),
                bytes: t.n_elements.saturating_mul(4),
                elements: t.n_elements,
            })
            .collect());
    }
    // A PyTorch checkpoint has no header to read without unpickling it. Its size at most
    // doubles as f32 (from half precision; an f32 checkpoint is overestimated), and where its
    // tensors go is unknown: counted outside the blocks.
    let size = std::fs::metadata(&weights)
        .map_err(|e| named(Error::io(&weights, e)))?
        .len();
    Ok(vec![AdapterTensor {
        place: Place::Output,
        bytes: size.saturating_mul(2),
        elements: size / 2,
    }])
}

/// Where the tensor `name` goes: the block whose number follows `block_prefix`
/// (`blk.3.attn_q.weight.lora_a`, `base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight`),
/// the input for names with `input` (the token embeddings), else the output.
fn place_of(name: &str, block_prefix: &str, input: &str) -> Place {
    if name.contains(input) {
        return Place::Input;
    }
    name.find(block_prefix)
        .and_then(|at| name[at + block_prefix.len()..].split('.').next())
        .and_then(|digits| digits.parse().ok())
        .map_or(Place::Output, Place::Block)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(gpu_layers: u32) -> MemoryEstimate {
        MemoryEstimate {
            n_ctx: 256,
            cache_type: crate::KvCacheType::F16,
            gpu_layers,
            n_ubatch: 512,
            flash_attention: true,
            parallel: 1,
            private_contexts: 0,
            weights_bytes: 1000,
            kv_cache_bytes: 0,
            compute_bytes: 0,
            compute_reserved_bytes: 0,
            overhead_bytes: 0,
            adapters_bytes: 0,
            host_bytes: 1000,
            device_bytes: 0,
            total_bytes: 1000,
        }
    }

    #[test]
    fn places_come_from_gguf_and_peft_names() {
        let gguf = |name| place_of(name, "blk.", "token_embd.");
        assert_eq!(gguf("blk.12.attn_q.weight.lora_a"), Place::Block(12));
        assert_eq!(gguf("output.weight.lora_b"), Place::Output);
        assert_eq!(gguf("token_embd.weight.lora_a"), Place::Input);
        let peft = "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight";
        assert_eq!(place_of(peft, "layers.", "embed_tokens"), Place::Block(3));
    }

    #[test]
    fn offloaded_blocks_keep_their_adapters_on_the_device() {
        let memory = AdapterMemory {
            per_place: BTreeMap::from([
                (Place::Input, 5),
                (Place::Block(0), 10),
                (Place::Block(1), 20),
                (Place::Output, 40),
            ]),
        };
        let cpu = memory.add_to(estimate(0), 2);
        assert_eq!(
            (cpu.adapters_bytes, cpu.host_bytes, cpu.device_bytes),
            (75, 1075, 0)
        );
        assert_eq!(cpu.total_bytes, 1075);
        // The last block on the GPU; then both blocks and the head (the input stays).
        let one = memory.add_to(estimate(1), 2);
        assert_eq!((one.host_bytes, one.device_bytes), (1055, 20));
        let all = memory.add_to(estimate(3), 2);
        assert_eq!((all.host_bytes, all.device_bytes), (1005, 70));
    }

    #[test]
    fn a_missing_adapter_is_named() {
        let err = AdapterMemory::of(&[LoraAdapter::new("/nonexistent/a.gguf")]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.message().contains("/nonexistent/a.gguf"), "{err}");
    }
}
