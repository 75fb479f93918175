//! LoRA adapters, backend-neutral: which loaded adapter a generation runs with, and whether a
//! GGUF adapter file fits the model before a backend is handed it (llama.cpp answers a
//! mismatch with a null pointer and a log line; uml names the tensor and the shapes).

use crate::backend::AdapterChoice;
use crate::gguf::{read_header, GgufHeader};
use crate::options::LoraAdapter;
use crate::sampling::LoraScale;
use crate::{Error, ErrorKind, Result};
use std::path::Path;

/// The adapter a generation runs with: `asked` (by name; `None`: the scales the model was
/// loaded with) among the `loaded` ones. Adapters at scale 0 are off; with none on, the base
/// model runs. One adapter per generation: llama.cpp's API as this build wraps it sets one
/// adapter on a context at a time.
pub fn choose(
    loaded: &[LoraAdapter],
    asked: Option<&[LoraScale]>,
) -> Result<Option<AdapterChoice>> {
    let names: Vec<String> = loaded.iter().map(LoraAdapter::name).collect();
    let on: Vec<(usize, f32)> = match asked {
        None => loaded
            .iter()
            .enumerate()
            .map(|(i, a)| (i, a.scale))
            .filter(|&(_, scale)| scale != 0.0)
            .collect(),
        Some(asked) => {
            let mut on = Vec::new();
            for choice in asked {
                let Some(index) = names.iter().position(|n| *n == choice.name) else {
                    return Err(Error::invalid_argument(format!(
                        "generate parameter lora: no adapter is named {:?}; {}",
                        choice.name,
                        if names.is_empty() {
                            "this model was loaded without any (load option lora)".to_string()
                        } else {
                            format!("loaded: {}", names.join(", "))
                        }
                    )));
                };
                if choice.scale != 0.0 {
                    on.push((index, choice.scale));
                }
            }
            on
        }
    };
    match on.as_slice() {
        [] => Ok(None),
        [(index, scale)] => Ok(Some(AdapterChoice {
            index: *index,
            scale: *scale,
        })),
        _ => Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{} LoRA adapters are on ({}), but a generation runs with one; set the others' \
                 scale to 0",
                on.len(),
                on.iter()
                    .map(|&(i, _)| names[i].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Check that the GGUF LoRA adapter at `adapter` fits the model whose header is `model`: an
/// adapter file (not a model), for the same architecture, each `X.lora_a` / `X.lora_b` pair
/// shaped for the model's tensor `X`. Errors name `shown_as`: the adapter as the user gave it
/// (a PEFT folder, where `adapter` is the GGUF converted from it).
pub fn check_gguf_adapter(adapter: &Path, shown_as: &Path, model: &GgufHeader) -> Result<()> {
    let shown = shown_as.display();
    let header = read_header(adapter)
        .map_err(|e| Error::new(e.kind(), format!("LoRA adapter {shown}: {}", e.message())))?;
    let mismatch = |why: String| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("LoRA adapter {shown} does not fit this model: {why}"),
        )
    };
    match (
        header.get_str("general.type"),
        header.get_str("adapter.type"),
    ) {
        (Some("adapter"), Some("lora")) => {}
        (Some("adapter"), other) => {
            return Err(mismatch(format!(
                "it is a {} adapter, not a LoRA",
                other.unwrap_or("unnamed")
            )))
        }
        (other, _) => {
            return Err(mismatch(format!(
                "it is not an adapter file (general.type is {:?}); pass a LoRA adapter GGUF, \
                 as llama.cpp's convert_lora_to_gguf.py writes one",
                other.unwrap_or("missing")
            )))
        }
    }
    let (theirs, ours) = (header.architecture(), model.architecture());
    if theirs != ours {
        return Err(mismatch(format!(
            "it was made for the {} architecture, the model is {}",
            theirs.unwrap_or("unknown"),
            ours.unwrap_or("unknown")
        )));
    }
    // A split model's other parts hold tensors the first part's header does not list;
    // llama.cpp checks those itself.
    let split = model.get_u64("split.count").is_some_and(|n| n > 1);
    let mut pairs = 0;
    for a in header
        .tensors
        .iter()
        .filter(|t| t.name.ends_with(".lora_a"))
    {
        let base = &a.name[..a.name.len() - ".lora_a".len()];
        let b = header
            .tensor(&format!("{base}.lora_b"))
            .ok_or_else(|| mismatch(format!("{} has no {base}.lora_b", a.name)))?;
        let Some(weight) = model.tensor(base) else {
            if split {
                continue;
            }
            return Err(mismatch(format!("the model has no tensor {base}")));
        };
        let dims = |d: &[u64]| format!("{d:?}");
        let fits = a.dims.len() == 2
            && b.dims.len() == 2
            && weight.dims.len() >= 2
            && a.dims[0] == weight.dims[0]
            && b.dims[1] == weight.dims[1]
            && a.dims[1] == b.dims[0];
        if !fits {
            return Err(mismatch(format!(
                "{base} is {} in the model, but its lora_a is {} and lora_b {} (lora_a must be \
                 [{}, rank] and lora_b [rank, {}])",
                dims(&weight.dims),
                dims(&a.dims),
                dims(&b.dims),
                weight.dims[0],
                weight.dims.get(1).copied().unwrap_or(0)
            )));
        }
        pairs += 1;
    }
    if pairs == 0 && !split {
        return Err(mismatch("it holds no lora_a / lora_b tensor pairs".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded() -> Vec<LoraAdapter> {
        vec![
            LoraAdapter {
                path: "formal.gguf".into(),
                scale: 1.0,
                name: None,
            },
            LoraAdapter {
                path: "x/pirate.gguf".into(),
                scale: 0.0,
                name: Some("arr".into()),
            },
        ]
    }

    fn scale(name: &str, scale: f32) -> LoraScale {
        LoraScale {
            name: name.into(),
            scale,
        }
    }

    #[test]
    fn a_generation_gets_the_load_scales_or_its_own_choice() {
        let l = loaded();
        assert_eq!(
            choose(&l, None).unwrap(),
            Some(AdapterChoice {
                index: 0,
                scale: 1.0
            })
        );
        assert_eq!(choose(&l, Some(&[])).unwrap(), None);
        assert_eq!(
            choose(&l, Some(&[scale("arr", 0.5), scale("formal", 0.0)])).unwrap(),
            Some(AdapterChoice {
                index: 1,
                scale: 0.5
            })
        );
        assert_eq!(choose(&[], None).unwrap(), None);
    }

    #[test]
    fn unknown_names_and_two_adapters_at_once_are_refused() {
        let l = loaded();
        let e = choose(&l, Some(&[scale("pirate", 1.0)])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("loaded: formal, arr"), "{e}");
        let e = choose(&[], Some(&[scale("formal", 1.0)])).unwrap_err();
        assert!(e.message().contains("load option lora"), "{e}");
        let e = choose(&l, Some(&[scale("arr", 1.0), scale("formal", 1.0)])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.message().contains("scale to 0"), "{e}");
    }
}
