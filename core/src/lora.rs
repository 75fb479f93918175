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
/// model runs. Several adapters run together only at the scales they were loaded with: a
/// backend sets one adapter on a context (llama.cpp's API as this build wraps it), so the load
/// merges the adapters loaded at a nonzero scale into one, at `combined_index`.
pub fn choose(
    loaded: &[LoraAdapter],
    asked: Option<&[LoraScale]>,
) -> Result<Option<AdapterChoice>> {
    let names: Vec<String> = loaded.iter().map(LoraAdapter::name).collect();
    let on_at_load = load_combination(loaded);
    let mut on: Vec<(usize, f32)> = match asked {
        None => on_at_load.clone(),
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
    on.sort_by_key(|&(index, _)| index);
    match on.as_slice() {
        [] => Ok(None),
        [(index, scale)] => Ok(Some(AdapterChoice {
            index: *index,
            scale: *scale,
        })),
        _ if on == on_at_load => Ok(Some(AdapterChoice {
            index: combined_index(loaded),
            scale: 1.0,
        })),
        _ => Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{} LoRA adapters are on ({}); several adapters run together only at the scales \
                 they were loaded with ({}); load the model with the scales wanted (load option \
                 lora), or set all but one adapter's scale to 0",
                on.len(),
                show(&names, &on),
                if on_at_load.len() > 1 {
                    show(&names, &on_at_load)
                } else {
                    "fewer than two were loaded at a nonzero scale".to_string()
                }
            ),
        )),
    }
}

/// The index [`choose`] gives the load-time combination of several adapters: one past the
/// loaded adapters (a backend adds the merged adapter there).
pub(crate) fn combined_index(loaded: &[LoraAdapter]) -> usize {
    loaded.len()
}

/// The adapters loaded at a nonzero scale, with their scales, in load order: what runs when a
/// generation does not choose, and what a backend merges when there are several.
pub(crate) fn load_combination(loaded: &[LoraAdapter]) -> Vec<(usize, f32)> {
    loaded
        .iter()
        .enumerate()
        .filter(|(_, a)| a.scale != 0.0)
        .map(|(i, a)| (i, a.scale))
        .collect()
}

fn show(names: &[String], on: &[(usize, f32)]) -> String {
    on.iter()
        .map(|&(i, scale)| format!("{} at {scale}", names[i]))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Write to `out` one GGUF LoRA adapter that does what the `adapters` (GGUF adapter files for
/// one model, each with its scale) do together: for each weight, the adapters' `lora_a` stacked
/// along the rank and their `lora_b` side by side, each `lora_b` multiplied by its adapter's
/// effective scale (scale × alpha / rank, as llama.cpp applies it; the scale alone without an
/// alpha). The result has no alpha, so it applies at scale 1 as written: the sum of the
/// adapters' products, up to rounding. `lora_a` / `lora_b` must be f32, f16 or bf16.
pub(crate) fn combine_gguf_adapters(adapters: &[(&Path, f32)], out: &Path) -> Result<()> {
    use crate::gguf::GgufWriter;
    use std::collections::BTreeMap;
    // Per weight: the stacked lora_a rows and, per output row, the scaled lora_b rows.
    struct Merged {
        n_in: u64,
        n_out: u64,
        rank: u64,
        a: Vec<f32>,
        b_rows: Vec<Vec<f32>>,
    }
    let mut merged: BTreeMap<String, Merged> = BTreeMap::new();
    let mut arch: Option<String> = None;
    for &(path, scale) in adapters {
        let header = read_header(path)?;
        let named = |why: String| {
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "LoRA adapter {} cannot run together with the others: {why}",
                    path.display()
                ),
            )
        };
        if header.get("adapter.alora.invocation_tokens").is_some() {
            return Err(named(
                "it is an activated LoRA (its invocation tokens switch it on)".into(),
            ));
        }
        match (&arch, header.architecture()) {
            (None, a) => arch = a.map(str::to_string),
            (Some(ours), Some(theirs)) if ours == theirs => {}
            (Some(ours), theirs) => {
                return Err(named(format!(
                    "it is for {}, the others for {ours}",
                    theirs.unwrap_or("an unknown architecture")
                )))
            }
        }
        let alpha = header.get_f64("adapter.lora.alpha").unwrap_or(0.0) as f32;
        let mut file = std::fs::File::open(path)
            .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", path.display())))?;
        for a in header.tensors.iter() {
            let Some(base) = a.name.strip_suffix(".lora_a") else {
                if a.name.ends_with(".lora_b") {
                    continue;
                }
                return Err(named(format!(
                    "it holds {}, which is no lora_a / lora_b tensor",
                    a.name
                )));
            };
            let b = header
                .tensor(&format!("{base}.lora_b"))
                .ok_or_else(|| named(format!("{} has no {base}.lora_b", a.name)))?;
            let (n_in, rank, n_out) = match (a.dims.as_slice(), b.dims.as_slice()) {
                ([n_in, r], [r_b, n_out]) if r == r_b && *r > 0 => (*n_in, *r, *n_out),
                _ => {
                    return Err(named(format!(
                        "{base}'s lora_a is {:?} and lora_b {:?}",
                        a.dims, b.dims
                    )))
                }
            };
            let effective = if alpha != 0.0 {
                scale * alpha / rank as f32
            } else {
                scale
            };
            let a_data = read_floats(&mut file, &header, a).map_err(|e| named(e.to_string()))?;
            let b_data = read_floats(&mut file, &header, b).map_err(|e| named(e.to_string()))?;
            let entry = merged.entry(base.to_string()).or_insert_with(|| Merged {
                n_in,
                n_out,
                rank: 0,
                a: Vec::new(),
                b_rows: vec![Vec::new(); n_out as usize],
            });
            if (entry.n_in, entry.n_out) != (n_in, n_out) {
                return Err(named(format!(
                    "its {base} is [{n_in}, {n_out}], another adapter's [{}, {}]",
                    entry.n_in, entry.n_out
                )));
            }
            entry.rank += rank;
            entry.a.extend_from_slice(&a_data);
            for (row, chunk) in entry.b_rows.iter_mut().zip(b_data.chunks(rank as usize)) {
                row.extend(chunk.iter().map(|v| v * effective));
            }
        }
    }
    let mut w = GgufWriter::new();
    w.add_metadata(
        "general.architecture",
        arch.unwrap_or_else(|| "llama".into()).as_str(),
    )
    .add_metadata("general.type", "adapter")
    .add_metadata("general.name", "uml: LoRA adapters combined")
    .add_metadata("adapter.type", "lora")
    .add_metadata("adapter.lora.alpha", 0.0f32);
    for (base, m) in &merged {
        let b: Vec<f32> = m.b_rows.concat();
        w.add_tensor_f32(&format!("{base}.lora_a"), &[m.n_in, m.rank], &m.a)?;
        w.add_tensor_f32(&format!("{base}.lora_b"), &[m.rank, m.n_out], &b)?;
    }
    w.write(out)
}

/// The elements of `tensor` (f32, f16 or bf16) from the GGUF file `file` with `header`.
fn read_floats(
    file: &mut std::fs::File,
    header: &GgufHeader,
    tensor: &crate::gguf::GgufTensorInfo,
) -> Result<Vec<f32>> {
    use crate::gguf::GgmlType;
    use std::io::{Read, Seek, SeekFrom};
    let width = match tensor.ggml_type {
        GgmlType::F32 => 4,
        GgmlType::F16 | GgmlType::BF16 => 2,
        other => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{} is {}; combining adapters reads f32, f16 or bf16 (convert_lora_to_gguf.py \
                     --outtype f32 or f16)",
                    tensor.name,
                    other.name()
                ),
            ))
        }
    };
    let start = header.data_offset.saturating_add(tensor.offset);
    let len = tensor.n_elements.saturating_mul(width);
    if start.saturating_add(len) > header.file_size {
        return Err(Error::invalid_model(format!(
            "{} runs past the end of the file (truncated?)",
            tensor.name
        )));
    }
    let mut bytes = vec![0u8; len as usize];
    file.seek(SeekFrom::Start(start))
        .and_then(|_| file.read_exact(&mut bytes))
        .map_err(|e| Error::new(ErrorKind::Io, format!("reading {}: {e}", tensor.name)))?;
    Ok(match tensor.ggml_type {
        GgmlType::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        GgmlType::F16 => bytes
            .chunks_exact(2)
            .map(|c| crate::gguf::f16_bits_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        _ => bytes
            .chunks_exact(2)
            .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
            .collect(),
    })
}

/// The weights file of the Hugging Face PEFT adapter folder `dir` (adapter_config.json beside
/// adapter_model.safetensors, else adapter_model.bin).
pub(crate) fn peft_weights_file(dir: &Path) -> Result<std::path::PathBuf> {
    if !dir.join("adapter_config.json").is_file() {
        return Err(Error::invalid_argument(format!(
            "LoRA adapter {} is a folder without adapter_config.json; pass a GGUF adapter or a \
             PEFT adapter folder",
            dir.display()
        )));
    }
    let file = ["adapter_model.safetensors", "adapter_model.bin"]
        .map(|name| dir.join(name))
        .into_iter()
        .find(|f| f.exists())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "PEFT adapter {} has no adapter_model.safetensors or adapter_model.bin",
                    dir.display()
                ),
            )
        })?;
    crate::files::check_regular(&file)?;
    Ok(file)
}

/// The error for the adapter `shown_as` (as the user gave it) that does not fit the model.
fn mismatch(shown_as: &Path, why: String) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!(
            "LoRA adapter {} does not fit this model: {why}",
            shown_as.display()
        ),
    )
}

/// Check that `header` is a LoRA adapter file's: not a model's, not another kind of adapter.
/// Errors name `shown_as`, the adapter as the user gave it.
pub(crate) fn check_is_lora(header: &GgufHeader, shown_as: &Path) -> Result<()> {
    let mismatch = |why: String| mismatch(shown_as, why);
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
    Ok(())
}

/// Check that the GGUF LoRA adapter at `adapter` fits the model whose header is `model`: an
/// adapter file (not a model), for the same architecture, each `X.lora_a` / `X.lora_b` pair
/// shaped for the model's tensor `X`. Errors name `shown_as`: the adapter as the user gave it
/// (a PEFT folder, where `adapter` is the GGUF converted from it).
pub fn check_gguf_adapter(adapter: &Path, shown_as: &Path, model: &GgufHeader) -> Result<()> {
    let shown = shown_as.display();
    let header = read_header(adapter)
        .map_err(|e| Error::new(e.kind(), format!("LoRA adapter {shown}: {}", e.message())))?;
    let mismatch = |why: String| mismatch(shown_as, why);
    check_is_lora(&header, shown_as)?;
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
        assert!(e.message().contains("fewer than two were loaded"), "{e}");
    }

    /// A two-weight adapter file: `blk.0.attn_q.weight` (4 in, 3 out) at rank `rank`, and
    /// (only in the first) `blk.0.attn_k.weight`; elements from `base`.
    fn adapter(path: &Path, rank: u64, alpha: Option<f32>, base: f32, with_k: bool) {
        let mut w = crate::gguf::GgufWriter::new();
        w.add_metadata("general.architecture", "llama")
            .add_metadata("general.type", "adapter")
            .add_metadata("adapter.type", "lora");
        if let Some(alpha) = alpha {
            w.add_metadata("adapter.lora.alpha", alpha);
        }
        let values = |n: u64, from: f32| (0..n).map(|i| from + i as f32).collect::<Vec<f32>>();
        let mut names = vec!["blk.0.attn_q.weight"];
        if with_k {
            names.push("blk.0.attn_k.weight");
        }
        for name in names {
            w.add_tensor_f32(
                &format!("{name}.lora_a"),
                &[4, rank],
                &values(4 * rank, base),
            )
            .unwrap();
            w.add_tensor_f16(
                &format!("{name}.lora_b"),
                &[rank, 3],
                &values(rank * 3, -base),
            )
            .unwrap();
        }
        w.write(path).unwrap();
    }

    fn floats(path: &Path, name: &str) -> (Vec<u64>, Vec<f32>) {
        let header = read_header(path).unwrap();
        let t = header.tensor(name).unwrap().clone();
        let mut file = std::fs::File::open(path).unwrap();
        (t.dims.clone(), read_floats(&mut file, &header, &t).unwrap())
    }

    /// The combined adapter's product B·A is the sum of the adapters' products, each times
    /// its effective scale (scale × alpha / rank, or the scale without an alpha), and it
    /// carries no alpha; a weight only one adapter targets keeps that adapter's part.
    #[test]
    fn combined_adapters_add_up_their_scaled_products() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two, out) = (
            dir.path().join("one.gguf"),
            dir.path().join("two.gguf"),
            dir.path().join("both.gguf"),
        );
        adapter(&one, 2, Some(8.0), 1.0, true); // effective: 0.5 * 8 / 2 = 2
        adapter(&two, 3, None, 2.0, false); // effective: 1.5
        combine_gguf_adapters(&[(&one, 0.5), (&two, 1.5)], &out).unwrap();
        let header = read_header(&out).unwrap();
        assert_eq!(header.get_f64("adapter.lora.alpha"), Some(0.0));
        assert_eq!(header.get_str("general.type"), Some("adapter"));
        // delta[o][i] = sum_r B[o][r] * A[r][i], with A as [n_in, rank] (rank rows of n_in)
        // and B as [rank, n_out] (n_out rows of rank).
        let product = |path: &Path, name: &str| {
            let (a_dims, a) = floats(path, &format!("{name}.lora_a"));
            let (_, b) = floats(path, &format!("{name}.lora_b"));
            let (n_in, rank) = (a_dims[0] as usize, a_dims[1] as usize);
            let n_out = b.len() / rank;
            let mut delta = vec![0f32; n_out * n_in];
            for o in 0..n_out {
                for i in 0..n_in {
                    delta[o * n_in + i] =
                        (0..rank).map(|r| b[o * rank + r] * a[r * n_in + i]).sum();
                }
            }
            delta
        };
        let q = "blk.0.attn_q.weight";
        let expected: Vec<f32> = product(&one, q)
            .iter()
            .zip(product(&two, q))
            .map(|(x, y)| 2.0 * x + 1.5 * y)
            .collect();
        assert_eq!(floats(&out, &format!("{q}.lora_a")).0, vec![4, 5]);
        assert_eq!(product(&out, q), expected);
        let k = "blk.0.attn_k.weight";
        let only_one: Vec<f32> = product(&one, k).iter().map(|x| 2.0 * x).collect();
        assert_eq!(product(&out, k), only_one);

        // Adapters for other shapes or architectures, or quantized, cannot be combined.
        let mut w = crate::gguf::GgufWriter::new();
        w.add_metadata("general.architecture", "gemma3")
            .add_metadata("general.type", "adapter")
            .add_metadata("adapter.type", "lora");
        let other = dir.path().join("other.gguf");
        w.write(&other).unwrap();
        let e = combine_gguf_adapters(&[(&one, 1.0), (&other, 1.0)], &out).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(
            e.message().contains("gemma3") && e.message().contains("other.gguf"),
            "{e}"
        );
    }

    /// Adapters loaded together at nonzero scales run together (the backend's merged adapter,
    /// one past the loaded ones), by default or when a generation names them at those scales;
    /// at other scales they are refused, naming the load scales.
    #[test]
    fn adapters_loaded_together_run_together_at_their_load_scales() {
        let mut l = loaded();
        l[1].scale = 0.5;
        let combined = Some(AdapterChoice {
            index: 2,
            scale: 1.0,
        });
        assert_eq!(choose(&l, None).unwrap(), combined);
        let both = [scale("arr", 0.5), scale("formal", 1.0)];
        assert_eq!(choose(&l, Some(&both)).unwrap(), combined);
        assert_eq!(
            choose(&l, Some(&[scale("arr", 0.5)])).unwrap(),
            Some(AdapterChoice {
                index: 1,
                scale: 0.5
            })
        );
        let e = choose(&l, Some(&[scale("arr", 1.0), scale("formal", 1.0)])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.message().contains("formal at 1, arr at 0.5"), "{e}");
    }
}
