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
use std::path::{Path, PathBuf};

/// The adapters loaded with a model, in `LoadPlan::lora` order. They live as long as the
/// model (llama.cpp frees them with it), and only contexts of that model use them.
pub(super) struct Adapters {
    // llama-cpp-2 takes `&mut` to set an adapter, though llama.cpp only reads it.
    list: Mutex<Vec<LlamaLoraAdapter>>,
}

impl Adapters {
    /// Load each of `files` (from [`Adapters::prepare`], in plan order) into `model`.
    pub fn load(
        model: &mut LlamaModel,
        model_path: &Path,
        plan: &[LoraAdapter],
        files: &[AdapterFile],
    ) -> Result<Adapters> {
        let mut list = Vec::with_capacity(files.len());
        for (adapter, file) in plan.iter().zip(files) {
            let loaded = model.lora_adapter_init(&file.path).map_err(|e| {
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
        // Several adapters on at load run together, as one merged adapter (see
        // `crate::lora::choose`): at `combined_index`, one past the loaded ones.
        let together = crate::lora::load_combination(plan);
        if together.len() > 1 {
            let merged = AdapterFile::temporary();
            let inputs: Vec<(&Path, f32)> = together
                .iter()
                .map(|&(i, scale)| (files[i].path.as_path(), scale))
                .collect();
            crate::lora::combine_gguf_adapters(&inputs, &merged.path)?;
            let loaded = model.lora_adapter_init(&merged.path).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidModel,
                    format!(
                        "llama.cpp could not load the LoRA adapters combined for {}: {e} (set \
                         RUST_LOG=llama_cpp_2=info for its log)",
                        model_path.display()
                    ),
                )
            })?;
            debug_assert_eq!(list.len(), crate::lora::combined_index(plan));
            list.push(loaded);
        }
        Ok(Adapters {
            list: Mutex::new(list),
        })
    }

    /// The GGUF file of each adapter of `plan`, checked against the model file before any
    /// weights load: a GGUF adapter as it is, a PEFT adapter folder converted for this model
    /// into a temporary GGUF (removed when the returned value drops; llama.cpp copies an
    /// adapter's tensors when it loads one).
    pub fn prepare(model_path: &Path, plan: &[LoraAdapter]) -> Result<Vec<AdapterFile>> {
        if plan.is_empty() {
            return Ok(Vec::new());
        }
        let header = crate::gguf::read_header(model_path)?;
        let mut files = Vec::with_capacity(plan.len());
        for adapter in plan {
            let file = if adapter.path.is_dir() {
                AdapterFile::converted(&adapter.path, &header)?
            } else if adapter.path.is_file() {
                AdapterFile {
                    path: adapter.path.clone(),
                    temporary: false,
                }
            } else {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "LoRA adapter {} does not exist (check load option lora)",
                        adapter.path.display()
                    ),
                ));
            };
            crate::lora::check_gguf_adapter(&file.path, &adapter.path, &header)?;
            files.push(file);
        }
        Ok(files)
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

/// A GGUF adapter file for llama.cpp; a temporary one (converted from a PEFT folder) is
/// removed when this drops.
pub(super) struct AdapterFile {
    path: PathBuf,
    temporary: bool,
}

impl AdapterFile {
    /// A file name in the temporary folder for an adapter uml writes, removed on drop.
    fn temporary() -> AdapterFile {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        AdapterFile {
            path: std::env::temp_dir().join(format!(
                "uml-lora-{}-{}.gguf",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            )),
            temporary: true,
        }
    }

    #[cfg(feature = "candle")]
    fn converted(dir: &Path, model: &crate::gguf::GgufHeader) -> Result<AdapterFile> {
        use crate::convert::{peft_to_gguf, GgufType, LoraBase};
        crate::lora::peft_weights_file(dir)?;
        let file = AdapterFile::temporary();
        peft_to_gguf(dir, &LoraBase::of_gguf(model)?, &file.path, GgufType::F32)?;
        Ok(file)
    }

    #[cfg(not(feature = "candle"))]
    fn converted(dir: &Path, _model: &crate::gguf::GgufHeader) -> Result<AdapterFile> {
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{} is a folder; reading PEFT adapters needs uml built with the candle feature \
                 (or pass a GGUF adapter)",
                dir.display()
            ),
        ))
    }
}

impl Drop for AdapterFile {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
