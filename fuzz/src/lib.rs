//! One function per class of untrusted input uml takes. Each must return normally for any
//! bytes: errors are fine, a panic, abort, hang or unbounded allocation is a finding. libFuzzer
//! drives them (`fuzz/libfuzzer`, `scripts/fuzz`); `tests/replay.rs` runs every saved input of
//! `fuzz/corpus/<target>/` through them on every test run.

use std::ffi::{c_char, CString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use uml_core::{ChatMessage, ChatTemplate, GenerateParams, LoadOptions};

/// A fuzz target: any bytes in, a normal return out.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/corpus/<name>/` and `fuzz/libfuzzer/fuzz_targets/<name>.rs`
/// call them.
pub const TARGETS: &[(&str, Target)] = &[
    ("gguf_file", gguf_file),
    ("safetensors_file", safetensors_file),
    ("hf_config", hf_config),
    ("options_json", options_json),
    ("chat_template", chat_template),
    ("c_abi", c_abi),
];

/// A scratch folder for this process: targets write their input to a file there.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("uml-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        dir
    })
}

fn write(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    let mut f = std::fs::File::create(&path).expect("a scratch file");
    f.write_all(data).expect("write the input");
    path
}

/// Inspect the file and estimate its memory with every backend's estimator: the GGUF reader,
/// `inspect` and the estimate's arithmetic on header values.
fn inspect_and_estimate(path: &Path) {
    if let Ok(info) = uml_core::inspect(path) {
        static HW: OnceLock<uml_core::Hardware> = OnceLock::new();
        let hw = HW.get_or_init(uml_core::hardware::detect);
        let _ = uml_core::estimate::for_load_options(&info, &LoadOptions::default(), hw);
        for backend in uml_core::backend::registry() {
            let _ = backend.estimate(&info, &uml_core::EstimateOptions::default());
        }
    }
}

/// Bytes as a `.gguf` file.
pub fn gguf_file(data: &[u8]) {
    inspect_and_estimate(&write("model.gguf", data));
}

/// Bytes as a `.safetensors` file.
pub fn safetensors_file(data: &[u8]) {
    inspect_and_estimate(&write("model.safetensors", data));
}

/// Bytes as the `config.json` of a Hugging Face folder whose weights are a tiny valid
/// safetensors file.
pub fn hf_config(data: &[u8]) {
    let dir = scratch().join("hf");
    static WEIGHTS: OnceLock<()> = OnceLock::new();
    WEIGHTS.get_or_init(|| {
        std::fs::create_dir_all(&dir).expect("a folder");
        uml_test_support::write_tiny_safetensors(&dir.join("model.safetensors"))
            .expect("tiny weights");
    });
    std::fs::write(dir.join("config.json"), data).expect("write config.json");
    inspect_and_estimate(&dir);
}

/// Bytes as the JSON of load options, generate parameters and chat messages.
pub fn options_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = LoadOptions::from_json(text);
    let _ = GenerateParams::from_json(text);
    let _ = ChatTemplate::messages_from_json(text);
}

/// Bytes as a chat template (up to the first NUL) and the content of its messages (after it):
/// compiled and rendered within the render limits.
pub fn chat_template(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (source, content) = text.split_once('\0').unwrap_or((&text, "hello"));
    let Ok(template) = ChatTemplate::from_model(source, "<s>", "</s>") else {
        return;
    };
    let messages = [
        ChatMessage::system("be brief"),
        ChatMessage::user(content),
        ChatMessage::assistant("ok"),
    ];
    let _ = template.render(&messages, true);
}

/// Bytes through the C ABI: the first byte picks the call, the rest is its text argument (a
/// file's contents, JSON options or parameters, chat messages, a prompt), on a tiny model
/// loaded once.
pub fn c_abi(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text =
        CString::new(rest.iter().map(|&b| b.max(1)).collect::<Vec<u8>>()).expect("no NUL bytes");
    let model = tiny_model();
    let mut out: *mut c_char = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: NUL-terminated strings that outlive it, the
    // model handle loaded once and never freed, and `out`, freed below by `uml_string_free`.
    unsafe {
        match which % 6 {
            0 => {
                let path = CString::new(write("c.gguf", rest).to_string_lossy().into_owned())
                    .expect("a path");
                uml::uml_inspect(path.as_ptr(), &mut out);
            }
            1 => {
                let path =
                    CString::new(tiny_path().to_string_lossy().into_owned()).expect("a path");
                uml::uml_estimate(path.as_ptr(), text.as_ptr(), &mut out);
            }
            2 => {
                let params = c"{\"max_tokens\": 8, \"temperature\": 0}";
                uml::uml_generate(
                    model,
                    text.as_ptr(),
                    params.as_ptr(),
                    None,
                    std::ptr::null_mut(),
                    std::ptr::null(),
                    &mut out,
                );
            }
            3 => {
                let params = c"{\"max_tokens\": 8}";
                uml::uml_chat(
                    model,
                    text.as_ptr(),
                    params.as_ptr(),
                    None,
                    std::ptr::null_mut(),
                    std::ptr::null(),
                    &mut out,
                );
            }
            4 => {
                // Parameters from the input, on a short prompt; max_tokens is what it says.
                uml::uml_generate(
                    model,
                    c"hello".as_ptr(),
                    text.as_ptr(),
                    None,
                    std::ptr::null_mut(),
                    std::ptr::null(),
                    &mut out,
                );
            }
            _ => {
                let mut tokens = [0i32; 64];
                let mut n = 0usize;
                uml::uml_tokenize(model, text.as_ptr(), true, tokens.as_mut_ptr(), 64, &mut n);
                let ids: Vec<i32> = rest
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                uml::uml_detokenize(
                    model,
                    ids.as_ptr(),
                    ids.len(),
                    &mut out,
                    std::ptr::null_mut(),
                );
            }
        }
        if !out.is_null() {
            uml::uml_string_free(out);
        }
    }
}

fn tiny_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = scratch().join("tiny.gguf");
        uml_test_support::write_tiny_llama_gguf(&path, 1).expect("the tiny model");
        path
    })
}

/// The tiny model, loaded once per process through the C ABI (never freed: the fuzzer calls
/// the targets until the process ends).
fn tiny_model() -> *const uml::uml_model {
    struct Handle(*mut uml::uml_model);
    // SAFETY: a uml_model is usable from any thread (uml.h); the handle is only read.
    unsafe impl Send for Handle {}
    unsafe impl Sync for Handle {}
    static MODEL: OnceLock<Handle> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let path = CString::new(tiny_path().to_string_lossy().into_owned()).expect("a path");
            let mut model = std::ptr::null_mut();
            // SAFETY: valid strings for the call; `model` receives the handle.
            let status = unsafe {
                uml::uml_model_load(
                    path.as_ptr(),
                    c"{\"n_ctx\": 256, \"n_threads\": 1}".as_ptr(),
                    None,
                    std::ptr::null_mut(),
                    &mut model,
                )
            };
            assert_eq!(status as i32, 0, "the tiny model loads");
            Handle(model)
        })
        .0
}
