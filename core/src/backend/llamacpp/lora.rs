//! LoRA adapters on llama.cpp contexts: loaded once with the model (checked against it first,
//! see `crate::lora`), then set on a context before it decodes for a generation that runs
//! with one. llama.cpp applies a context's adapters to every sequence of a decode, so the
//! batcher never mixes generations of different adapters in one decode.

use super::PooledContext;
use crate::backend::AdapterChoice;
use crate::options::LoraAdapter;
use crate::{Error, ErrorKind, Result};
use llama_cpp_2::model::{LlamaLoraAdapter, LlamaModel};
use parking_lot::Mutex;
use std::path::Path;

/// The adapters loaded with a model, in `LoadPlan::lora` order. They live as long as the
/// model (llama.cpp frees them with it), and only contexts of that model use them.
pub(super) struct Adapters {
    // llama-cpp-2 takes `&mut` to set an adapter, though llama.cpp only reads it.
    list: Mutex<Vec<LlamaLoraAdapter>>,
}

impl Adapters {
    /// Check each adapter against the model file at `model_path`, then load it into `model`.
    pub fn load(
        model: &mut LlamaModel,
        model_path: &Path,
        plan: &[LoraAdapter],
    ) -> Result<Adapters> {
        let mut list = Vec::with_capacity(plan.len());
        for adapter in plan {
            let loaded = model.lora_adapter_init(&adapter.path).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidModel,
                    format!(
                        "llama.cpp could not load the LoRA adapter {} for {}: {e} (set \
                         RUST_LOG=llama_cpp_2=info for its log)",
                        adapter.path.display(),
                        model_path.display()
                    ),
                )
            })?;
            list.push(loaded);
        }
        Ok(Adapters {
            list: Mutex::new(list),
        })
    }

    /// Check every adapter of `plan` against the model file, before any weights load.
    pub fn check(model_path: &Path, plan: &[LoraAdapter]) -> Result<()> {
        if plan.is_empty() {
            return Ok(());
        }
        let header = crate::gguf::read_header(model_path)?;
        for adapter in plan {
            if !adapter.path.is_file() {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "LoRA adapter {} does not exist (check load option lora)",
                        adapter.path.display()
                    ),
                ));
            }
            crate::lora::check_gguf_adapter(&adapter.path, &header)?;
        }
        Ok(())
    }

    /// Make `pooled`'s next decodes run with `wanted`. What its cache holds stays: the caller
    /// knows which of it was evaluated with which adapter.
    pub fn apply(&self, pooled: &mut PooledContext, wanted: Option<AdapterChoice>) -> Result<()> {
        if pooled.adapter == wanted {
            return Ok(());
        }
        let mut list = self.list.lock();
        let set = match wanted {
            Some(choice) => {
                let adapter = list.get_mut(choice.index).ok_or_else(|| {
                    Error::internal(format!("no LoRA adapter {} is loaded", choice.index))
                })?;
                pooled
                    .ctx
                    .lora_adapter_set(adapter, choice.scale)
                    .map_err(|e| e.to_string())
            }
            None => match list.first_mut() {
                Some(any) => pooled
                    .ctx
                    .lora_adapter_remove(any)
                    .map_err(|e| e.to_string()),
                None => Ok(()),
            },
        };
        set.map_err(|e| Error::backend(format!("llama.cpp could not set the LoRA adapter: {e}")))?;
        pooled.adapter = wanted;
        Ok(())
    }
}
