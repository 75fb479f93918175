//! Conversion on the tiny llama our own code writes (real models: core/tests/cross_backend.rs).

use super::*;
use uml_test_support::{tiny_llama_safetensors, write_pytorch_checkpoint, write_tiny_hf_folder};

fn tiny_folder(parent: &Path, name: &str) -> std::path::PathBuf {
    let folder = parent.join(name);
    write_tiny_hf_folder(&folder).unwrap();
    folder
}

#[test]
fn safetensors_and_pytorch_folders_give_the_same_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let st = tiny_folder(&dir.path().join("a"), "tiny");
    let pt = tiny_folder(&dir.path().join("b"), "tiny");
    std::fs::remove_file(pt.join("model.safetensors")).unwrap();
    write_pytorch_checkpoint(
        &pt.join("pytorch_model.bin"),
        &tiny_llama_safetensors(0),
        None,
    )
    .unwrap();
    let (x, y) = (dir.path().join("x.gguf"), dir.path().join("y.gguf"));
    convert(&st, &x, Destination::Gguf(GgufType::F32)).unwrap();
    convert(&pt, &y, Destination::Gguf(GgufType::F32)).unwrap();
    assert_eq!(std::fs::read(&x).unwrap(), std::fs::read(&y).unwrap());
}

#[test]
fn conversion_refuses_what_it_cannot_do_faithfully() {
    let dir = tempfile::tempdir().unwrap();
    let folder = tiny_folder(dir.path(), "tiny");
    let out = dir.path().join("out.gguf");

    // Never overwrites.
    std::fs::write(&out, b"precious").unwrap();
    let e = convert(&folder, &out, Destination::Gguf(GgufType::F32)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    std::fs::remove_file(&out).unwrap();

    // A folder is already a Hugging Face folder.
    let e = convert(&folder, &dir.path().join("hf"), Destination::HuggingFace).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");

    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let p = folder.join("config.json");
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&p, v.to_string()).unwrap();
    };
    edit(&|v| v["architectures"] = serde_json::json!(["BertModel"]));
    let e = convert(&folder, &out, Destination::Gguf(GgufType::F32)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(
        e.message().contains("BertModel") && e.message().contains("Gemma3ForCausalLM"),
        "{e}"
    );
    edit(&|v| {
        v["architectures"] = serde_json::json!(["LlamaForCausalLM"]);
        v["rope_scaling"] = serde_json::json!({"rope_type": "llama3", "factor": 8.0});
    });
    let e = convert(&folder, &out, Destination::Gguf(GgufType::F32)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.message().contains("rope_scaling"), "{e}");
    edit(&|v| v["rope_scaling"] = serde_json::Value::Null);

    std::fs::remove_file(folder.join("tokenizer.json")).unwrap();
    let e = convert(&folder, &out, Destination::Gguf(GgufType::F32)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidModel, "{e}");
    assert!(e.message().contains("tokenizer.json"), "{e}");
    assert!(!out.exists(), "a failed conversion leaves nothing behind");
    assert!(!dir.path().join("out.gguf.part").exists());

    // Weights of another model than config.json says.
    let other = tiny_folder(dir.path(), "other");
    let mut tensors = tiny_llama_safetensors(0);
    tensors[0].name = "transformer.h.0.attn.c_attn.weight".into();
    uml_test_support::write_safetensors(&other.join("model.safetensors"), &tensors).unwrap();
    let e = convert(&other, &out, Destination::Gguf(GgufType::F32)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidModel, "{e}");
    assert!(
        e.message().contains("transformer.h.0.attn.c_attn.weight"),
        "{e}"
    );
}

#[test]
fn byte_level_pre_tokenizers_are_recognised_or_refused() {
    let path = Path::new("tokenizer.json");
    let bl = |regex: bool| serde_json::json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": regex});
    let seq = |parts: Vec<serde_json::Value>| serde_json::json!({"pre_tokenizer": {"type": "Sequence", "pretokenizers": parts}});
    let split = |re: &str| serde_json::json!({"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false});
    let pre = |tj: serde_json::Value| vocab::byte_level_pre(&tj, path);
    assert_eq!(
        pre(serde_json::json!({"pre_tokenizer": bl(true)})).unwrap(),
        "gpt-2"
    );
    assert_eq!(
        pre(seq(vec![
            serde_json::json!({"type": "Digits", "individual_digits": true}),
            bl(true)
        ]))
        .unwrap(),
        "smollm"
    );
    let llama3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    assert_eq!(pre(seq(vec![split(llama3), bl(false)])).unwrap(), "llama3");
    let qwen2 = llama3.replace(r"\p{N}{1,3}", r"\p{N}");
    assert_eq!(pre(seq(vec![split(&qwen2), bl(false)])).unwrap(), "qwen2");
    let e = pre(seq(vec![split(r"\w+"), bl(false)])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
}

#[cfg(feature = "llamacpp")]
mod with_llama_cpp {
    use super::*;
    use crate::backend::BackendChoice;
    use crate::{LoadOptions, Model};

    fn llama(path: &Path) -> Model {
        let options = LoadOptions {
            n_ctx: Some(128),
            n_threads: Some(1),
            backend: BackendChoice::LlamaCpp,
            kv_cache_type: crate::KvCacheType::F32,
            flash_attention: Some(false),
            ..LoadOptions::default()
        };
        Model::load(path, &options, None).unwrap()
    }

    fn logits(m: &Model, ids: &[i32]) -> Vec<f32> {
        crate::trace::last_logits(m, ids).unwrap()
    }

    /// The tiny folder converted to GGUF is, to llama.cpp, the tiny GGUF our code writes
    /// directly: same tokens for the same text, same logits, same chat prompt.
    #[test]
    fn a_converted_folder_runs_in_llama_cpp_as_the_original_gguf() {
        let dir = tempfile::tempdir().unwrap();
        let folder = tiny_folder(dir.path(), "tiny");
        let original = dir.path().join("original.gguf");
        uml_test_support::write_tiny_llama_gguf(&original, 0).unwrap();
        let converted = dir.path().join("converted.gguf");
        hf_to_gguf(&folder, &converted, GgufType::F32).unwrap();
        let (a, b) = (llama(&original), llama(&converted));
        for text in [
            "the cat sat on the mat",
            "  spaced  out\nlines",
            "ünïcödé ✓ 𓀀",
        ] {
            assert_eq!(
                a.tokenize(text, true).unwrap(),
                b.tokenize(text, true).unwrap(),
                "{text:?}"
            );
        }
        let ids = a.tokenize("the cat sat", true).unwrap();
        assert_eq!(logits(&a, &ids), logits(&b, &ids));
        let messages = [crate::ChatMessage::new("user", "hi")];
        assert_eq!(
            a.chat_prompt_tokens(&messages).unwrap(),
            b.chat_prompt_tokens(&messages).unwrap()
        );

        // F16 and Q8_0 run too, close to F32.
        for (ty, bound) in [
            (GgufType::F16, 1e-2f32),
            (GgufType::Q8_0, 0.1),
            (GgufType::Q4_0, 0.8),
        ] {
            let path = dir.path().join(format!("{ty:?}.gguf"));
            hf_to_gguf(&folder, &path, ty).unwrap();
            let m = llama(&path);
            let diff = uml_test_support::max_abs_diff(&logits(&m, &ids), &logits(&a, &ids));
            eprintln!("{ty:?}: max |{ty:?} - F32| = {diff}");
            assert!(diff < bound, "{ty:?}: max |{ty:?} - F32| = {diff}");
        }
    }
}
