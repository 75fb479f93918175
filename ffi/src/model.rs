//! `uml_model`: load, describe, tokenize, embed and free a model.

use crate::boundary::{boundary, new_c_string, new_json, opt_str_arg, str_arg, Out};
use crate::cancel::cancel_arg;
use crate::handles::Registry;
use crate::status::uml_status;
use std::ffi::{c_char, c_void};
use std::sync::Arc;
use uml_core::options::LoadOptions;
use uml_core::{Error, ErrorKind, LoadStage, Model, RemoteEndpoint, Result};

/// A loaded model (opaque). Created by `uml_model_load` (or handed out by `uml_manager_get`),
/// released by `uml_model_free`.
///
/// One handle may be used from any number of threads at once: every generation gets its own
/// context, and the weights are shared.
pub struct uml_model {
    _opaque: [u8; 0],
}

pub(crate) static MODELS: Registry<Model> = Registry::new(
    1,
    "uml_model",
    "uml_model_load() or uml_manager_get()",
    "uml_model_free()",
    ErrorKind::ModelClosed,
);

/// The model behind a handle argument.
pub(crate) fn model_arg(m: *const uml_model, name: &str) -> Result<Arc<Model>> {
    MODELS.get(m, name)
}

/// Load progress: `stage` is "inspect", "weights" or "ready" (a static string), `fraction` is
/// in [0, 1] within that stage. Return false to cancel the load (`uml_model_load` then returns
/// `UML_ERR_CANCELLED`). Called on the thread that called `uml_model_load`, before it returns.
/// It must not call back into uml with the model being loaded, and must not throw or longjmp.
pub type uml_progress_cb =
    Option<unsafe extern "C" fn(stage: *const c_char, fraction: f32, user: *mut c_void) -> bool>;

fn stage_name(stage: LoadStage) -> &'static std::ffi::CStr {
    match stage {
        LoadStage::Inspect => c"inspect",
        LoadStage::Weights => c"weights",
        LoadStage::Ready => c"ready",
    }
}

/// Load a model (a GGUF through llama.cpp, a Hugging Face folder through candle): inspect it,
/// pick a backend, check its memory estimate against available RAM, then load the weights.
/// With `"backend": "auto"` a backend that fails its check, its estimate or the load itself is
/// passed over for the next one; the reasons are in `uml_model_info`'s `skipped_backends`.
///
/// - `path`: NUL-terminated UTF-8 path; borrowed for the call.
/// - `options_json`: NULL, "" or a JSON object of load options (`n_ctx`, `n_threads`,
///   `n_threads_batch`, `n_batch`, `n_ubatch`, `gpu_layers`, `use_mmap`, `use_mlock`,
///   `kv_cache_type`, `seed`, `embeddings`, `normalize_embeddings`, `chat_template`,
///   `backend`: "auto", "llamacpp" or "candle", `flash_attention`: null, true or false,
///   `dtype`: null, "f32", "f16" or "bf16": a Hugging Face folder's weight type in candle,
///   `control_tokens_in_messages`: false (default: control-token text such as `<|im_start|>`
///   inside chat message contents stays plain text, so a message cannot forge a turn) or true
///   (it becomes the control token, as in llama.cpp's server), `max_parallel`: null (default:
///   up to 4, fewer when the memory left after loading holds fewer) or 1 to 256, the most
///   `uml_generate` / `uml_chat` / `uml_embed` calls running on the model at once (with
///   llama.cpp, the slots of one shared context, each with `n_ctx` KV cells, allocated at
///   load and counted in the estimate; their decodes are batched; a load that drafts runs
///   each in private contexts instead); more wait in line, in
///   arrival order, and leave it when their `uml_cancel` is cancelled; `max_queued`: null
///   (default 512) or 0 to 1048576, the most calls waiting in that line: one more fails at
///   once with `UML_ERR_BUSY`), `lora`: an array of LoRA adapters to load (GGUF adapter files,
///   as llama.cpp's convert_lora_to_gguf.py writes them, or Hugging Face PEFT adapter folders,
///   converted as they load; llama.cpp only), each
///   `{"path", "scale" (default 1; 0: loaded but off), "name" (default: the file name without
///   .gguf; generations choose adapters by it)}`; several at a nonzero scale run together
///   (merged into one adapter at load, as llama.cpp's repeated `--lora-scaled` applies them):
///   an adapter for another architecture or with
///   tensors shaped for another model is `UML_ERR_INVALID_ARGUMENT` naming the tensor, a missing
///   file `UML_ERR_NOT_FOUND`), `draft_model`: the path of a small model of the same
///   vocabulary that drafts tokens for this one to verify in one decode (speculative decoding:
///   faster, the same greedy text; a draft whose vocabulary differs is
///   `UML_ERR_INVALID_ARGUMENT`), `mtp` (bool): draft with the model's own
///   multi-token-prediction heads instead (Qwen3.5, GLM-4.5, DeepSeek-V3 GGUFs; `uml_inspect`'s
///   `mtp_layers` counts them; none is `UML_ERR_INVALID_ARGUMENT`); omitted keys take their
///   defaults. Numbers out of range
///   (`n_ctx`, `n_batch`, `n_ubatch`: 1 to 16777216; thread counts: 1 to 512) are
///   `UML_ERR_INVALID_ARGUMENT`. Borrowed for the call.
/// - `progress`, `user`: optional progress callback (NULL for none) and the pointer passed to
///   it unchanged.
/// - `out_model`: receives the new handle on success; the caller owns it and releases it with
///   `uml_model_free`. Untouched on failure.
///
/// Thread safety: any thread; loads on several threads run independently.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (NULL/non-UTF-8 argument, bad JSON or an unknown or
/// invalid option, named in the message), `UML_ERR_NOT_FOUND`, `UML_ERR_UNSUPPORTED_FORMAT`,
/// `UML_ERR_INVALID_MODEL`, `UML_ERR_OUT_OF_MEMORY` (estimate exceeds available memory),
/// `UML_ERR_CANCELLED` (progress returned false), `UML_ERR_BACKEND`, `UML_ERR_IO`,
/// `UML_ERR_UNSUPPORTED`, `UML_ERR_INTERNAL`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_model_load(
    path: *const c_char,
    options_json: *const c_char,
    progress: uml_progress_cb,
    user: *mut c_void,
    out_model: *mut *mut uml_model,
) -> uml_status {
    boundary("uml_model_load", || {
        // SAFETY: the caller passes NUL-terminated strings (or NULL) valid for the call and a
        // writable `uml_model *` slot (or NULL).
        let (path, options, out) = unsafe {
            (
                str_arg(path, "path")?,
                opt_str_arg(options_json, "options_json")?,
                Out::new(out_model, "out_model")?,
            )
        };
        let options = LoadOptions::from_json(options.unwrap_or(""))?;
        let mut on_progress = |stage: LoadStage, fraction: f32| -> bool {
            match progress {
                // SAFETY: a C function pointer given by the caller for this call, with its
                // own `user` pointer; the stage string is static.
                Some(cb) => unsafe { cb(stage_name(stage).as_ptr(), fraction, user) },
                None => true,
            }
        };
        let model = Model::load(path, &options, Some(&mut on_progress))?;
        out.write(MODELS.insert(model));
        Ok(())
    })
}

/// A required `{"url", "model", "api_key"?}` JSON argument naming a remote endpoint: bad JSON,
/// a missing or unknown key and a URL that is not http(s) are `UML_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
pub(crate) unsafe fn endpoint_arg(p: *const c_char, name: &str) -> Result<RemoteEndpoint> {
    // SAFETY: forwarded from this function's contract.
    let json = unsafe { str_arg(p, name) }?;
    let endpoint: RemoteEndpoint = serde_json::from_str(json).map_err(|e| {
        Error::invalid_argument(format!(
            "{name}: {e}; pass {{\"url\": \"http://host:8080/v1\", \"model\": \"name\"}} and \
             optionally \"api_key\""
        ))
    })?;
    endpoint.validate()?;
    Ok(endpoint)
}

/// Open a remote model: one served by an OpenAI-compatible endpoint (vLLM, llama-server,
/// Ollama, another `uml serve`). `uml_generate`, `uml_chat`, chat sessions and `uml_embed` on
/// it are sent to the endpoint, with the same parameters, streaming, cancellation and result
/// JSON as a local model; `uml_tokenize`, `uml_detokenize` are `UML_ERR_UNSUPPORTED`, and
/// `uml_model_info` reports `"backend": "remote"`. Blocks while it asks the endpoint (`GET
/// /models`) whether it serves the model.
///
/// - `endpoint_json`: a JSON object: `url` (the API's base URL up to and including `/v1`,
///   http:// or https://), `model` (the name the endpoint knows the model by), `api_key`
///   (optional: sent as `Authorization: Bearer <key>`). Borrowed for the call.
/// - `options_json`: NULL, "" or the JSON object of load options `uml_model_load` takes; the
///   ones that apply here are `max_parallel` (default 16: the calls sent to the endpoint at
///   once), `max_queued`, `embeddings` and `normalize_embeddings`. Borrowed.
/// - `out_model`: receives the new handle on success; the caller owns it and releases it with
///   `uml_model_free`. Untouched on failure.
///
/// Thread safety: any thread.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (NULL/non-UTF-8 argument, bad JSON, a missing or
/// unknown key, named in the message, a URL that is not http(s), an empty model name, bad
/// load options), `UML_ERR_NOT_FOUND` (the endpoint does not serve a model by that name),
/// `UML_ERR_BACKEND` (the endpoint cannot be reached, or answers with an error),
/// `UML_ERR_INTERNAL`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_model_load_remote(
    endpoint_json: *const c_char,
    options_json: *const c_char,
    out_model: *mut *mut uml_model,
) -> uml_status {
    boundary("uml_model_load_remote", || {
        // SAFETY: the caller passes NUL-terminated strings (or NULL) valid for the call and a
        // writable `uml_model *` slot (or NULL, refused).
        let (endpoint, options, out) = unsafe {
            (
                endpoint_arg(endpoint_json, "endpoint_json")?,
                opt_str_arg(options_json, "options_json")?,
                Out::new(out_model, "out_model")?,
            )
        };
        let options = LoadOptions::from_json(options.unwrap_or(""))?;
        let model = Model::remote(endpoint, &options)?;
        out.write(MODELS.insert(model));
        Ok(())
    })
}

/// Release a model. NULL, and a handle already freed, are ignored.
///
/// Ownership: takes the handle; it must not be used afterwards (a later call with it returns
/// `UML_ERR_MODEL_CLOSED`). Calls still running on other threads with this handle finish
/// normally; the memory is returned when the last of them does. A handle from
/// `uml_manager_get` lets go of its model only: the manager keeps it loaded (now idle, so it
/// can be evicted) until it unloads it.
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn uml_model_free(model: *mut uml_model) {
    crate::boundary::guard((), || {
        let Some(model) = MODELS.remove(model) else {
            return;
        };
        // Still in use by a call on another thread: it is dropped (and its memory returned to
        // the OS, see uml_core::Model's Drop) when the last of those calls returns.
        drop(model);
    })
}

/// Describe a loaded model as JSON: `{"backend", "plan" (resolved load settings: n_ctx,
/// threads, batch sizes, gpu_layers, ...), "memory" (the estimate it was checked against),
/// "model" (what `uml_inspect` reports)}`.
///
/// Ownership: `*out_json` is a new string the caller frees with `uml_string_free`; written
/// only on success.
/// Thread safety: any thread, concurrently with other calls on the same model.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (NULL or invalid handle, NULL `out_json`),
/// `UML_ERR_MODEL_CLOSED`, `UML_ERR_INTERNAL`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_model_info(
    model: *const uml_model,
    out_json: *mut *mut c_char,
) -> uml_status {
    boundary("uml_model_info", || {
        let model = model_arg(model, "model")?;
        // SAFETY: the caller passes a writable `char *` slot (or NULL).
        let out = unsafe { Out::new(out_json, "out_json") }?;
        out.write(new_json(&model.describe())?);
        Ok(())
    })
}

/// The width of the vectors `uml_embed` writes (floats per text).
///
/// Ownership: `*out_size` is written on success.
/// Thread safety: any thread.
/// Errors: `UML_ERR_INVALID_ARGUMENT`, `UML_ERR_MODEL_CLOSED`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_model_embedding_size(
    model: *const uml_model,
    out_size: *mut usize,
) -> uml_status {
    boundary("uml_model_embedding_size", || {
        let model = model_arg(model, "model")?;
        // SAFETY: the caller passes a writable `size_t` (or NULL).
        let out = unsafe { Out::new(out_size, "out_size") }?;
        out.write(model.embedding_size());
        Ok(())
    })
}

/// Tokenize `text` with the model's vocabulary. `add_special` adds BOS (etc.) as the model
/// wants; special-token text such as "<|im_start|>" is parsed as the special token.
///
/// - `tokens`, `capacity`: the caller's buffer of `capacity` token ids (may be NULL when
///   `capacity` is 0, to ask for the size).
/// - `out_count`: on success, the number of tokens written; on `UML_ERR_BUFFER_TOO_SMALL`, the
///   number needed (and `tokens` is untouched).
///
/// Thread safety: any thread, concurrently with other calls on the same model.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (NULL handle/text/out_count, NULL `tokens` with a
/// non-zero capacity, non-UTF-8 text), `UML_ERR_MODEL_CLOSED`, `UML_ERR_BUFFER_TOO_SMALL`,
/// `UML_ERR_BACKEND`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_tokenize(
    model: *const uml_model,
    text: *const c_char,
    add_special: bool,
    tokens: *mut i32,
    capacity: usize,
    out_count: *mut usize,
) -> uml_status {
    boundary("uml_tokenize", || {
        let model = model_arg(model, "model")?;
        // SAFETY: the caller passes a NUL-terminated string and a writable size_t (or NULL).
        let (text, out_count) =
            unsafe { (str_arg(text, "text")?, Out::new(out_count, "out_count")?) };
        check_buffer(tokens, capacity, "tokens")?;
        let ids = model.tokenize(text, add_special)?;
        if ids.len() > capacity {
            out_count.write(ids.len());
            return Err(too_small("tokens", capacity, ids.len(), "token ids"));
        }
        if !ids.is_empty() {
            // SAFETY: capacity >= ids.len() > 0, so `tokens` is non-NULL (check_buffer) and
            // the caller promises room for `capacity` ids.
            unsafe { std::ptr::copy_nonoverlapping(ids.as_ptr(), tokens, ids.len()) };
        }
        out_count.write(ids.len());
        Ok(())
    })
}

/// Turn token ids back into text (UTF-8; bytes that do not form valid UTF-8 become U+FFFD).
///
/// - `tokens`, `n_tokens`: the ids, borrowed for the call (`tokens` may be NULL if `n_tokens`
///   is 0).
/// - `out_text`: a new NUL-terminated string the caller frees with `uml_string_free`.
/// - `out_len`: optional (NULL to skip); the text's length in bytes, without the NUL (the
///   text may itself contain NUL bytes when a token stands for one).
///
/// Thread safety: any thread, concurrently with other calls on the same model.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (NULL arguments, an id outside the vocabulary),
/// `UML_ERR_MODEL_CLOSED`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_detokenize(
    model: *const uml_model,
    tokens: *const i32,
    n_tokens: usize,
    out_text: *mut *mut c_char,
    out_len: *mut usize,
) -> uml_status {
    boundary("uml_detokenize", || {
        let model = model_arg(model, "model")?;
        // SAFETY: the caller passes writable slots (or NULL).
        let (out_text, out_len) =
            unsafe { (Out::new(out_text, "out_text")?, Out::optional(out_len)) };
        // SAFETY: the caller promises `n_tokens` readable ids at `tokens` (NULL only if 0).
        let ids = unsafe { slice_arg(tokens, n_tokens, "tokens") }?;
        let text = model.detokenize(ids)?;
        out_text.write(new_c_string(text.as_bytes())?);
        if let Some(out_len) = out_len {
            out_len.write(text.len());
        }
        Ok(())
    })
}

/// Embed texts: one vector of `uml_model_embedding_size()` floats per text, written one after
/// another (row-major) into the caller's buffer. L2-normalised unless the model was loaded
/// with `"normalize_embeddings": false`.
///
/// - `texts`, `n_texts`: an array of `n_texts` >= 1 NUL-terminated UTF-8 strings, borrowed.
/// - `cancel`: optional (NULL for none); a cancelled token stops between texts with
///   `UML_ERR_CANCELLED`.
/// - `out`, `capacity`: the caller's buffer of `capacity` floats (may be NULL when `capacity`
///   is 0, to ask for the size).
/// - `out_len`: on success, the number of floats written (`n_texts` x size); on
///   `UML_ERR_BUFFER_TOO_SMALL`, the number needed (and `out` is untouched).
///
/// Thread safety: any thread, concurrently with other calls on the same model.
/// Errors: `UML_ERR_INVALID_ARGUMENT`, `UML_ERR_MODEL_CLOSED`, `UML_ERR_BUFFER_TOO_SMALL`,
/// `UML_ERR_CONTEXT_OVERFLOW` (a text longer than the context), `UML_ERR_UNSUPPORTED` (a
/// model without embeddings), `UML_ERR_CANCELLED`, `UML_ERR_BACKEND`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_embed(
    model: *const uml_model,
    texts: *const *const c_char,
    n_texts: usize,
    cancel: *const crate::uml_cancel,
    out: *mut f32,
    capacity: usize,
    out_len: *mut usize,
) -> uml_status {
    boundary("uml_embed", || {
        let model = model_arg(model, "model")?;
        let cancel = cancel_arg(cancel)?;
        // SAFETY: the caller passes a writable size_t (or NULL).
        let out_len = unsafe { Out::new(out_len, "out_len") }?;
        if n_texts == 0 {
            return Err(Error::invalid_argument(
                "n_texts is 0: pass at least one text",
            ));
        }
        // SAFETY: the caller promises `n_texts` readable string pointers at `texts`.
        let ptrs = unsafe { slice_arg(texts, n_texts, "texts") }?;
        let texts = ptrs
            .iter()
            .enumerate()
            // SAFETY: each entry is NULL or a NUL-terminated string valid for the call.
            .map(|(i, &p)| unsafe { str_arg(p, &format!("texts[{i}]")).map(str::to_owned) })
            .collect::<Result<Vec<String>>>()?;
        check_buffer(out, capacity, "out")?;
        let dim = model.embedding_size();
        let needed = dim
            .checked_mul(n_texts)
            .ok_or_else(|| Error::invalid_argument(format!("n_texts = {n_texts} is too large")))?;
        if needed > capacity {
            out_len.write(needed);
            return Err(too_small("out", capacity, needed, "floats"));
        }
        let vectors = crate::tasks::run(cancel, None, move |cancel, _| {
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            model.embed(&texts, cancel)
        })?;
        let mut flat = Vec::with_capacity(needed);
        for v in &vectors {
            if v.len() != dim {
                return Err(Error::internal(format!(
                    "embedding has {} dimensions, expected {dim}",
                    v.len()
                )));
            }
            flat.extend_from_slice(v);
        }
        if !flat.is_empty() {
            // SAFETY: capacity >= needed = flat.len() > 0, so `out` is non-NULL (check_buffer)
            // and holds at least flat.len() floats.
            unsafe { std::ptr::copy_nonoverlapping(flat.as_ptr(), out, flat.len()) };
        }
        out_len.write(flat.len());
        Ok(())
    })
}

/// A NULL buffer is only allowed with capacity 0.
fn check_buffer<T>(p: *mut T, capacity: usize, name: &str) -> Result<()> {
    if p.is_null() && capacity > 0 {
        return Err(Error::invalid_argument(format!(
            "{name} is NULL but its capacity is {capacity}: pass a buffer, or capacity 0 to ask for the size"
        )));
    }
    Ok(())
}

fn too_small(name: &str, capacity: usize, needed: usize, what: &str) -> Error {
    Error::new(
        ErrorKind::BufferTooSmall,
        format!("{name} holds {capacity} {what} but {needed} are needed; pass a buffer of at least {needed} (the size output says so)"),
    )
}

/// A borrowed C array (`p` may be NULL only when `len` is 0).
///
/// # Safety
/// `p` is NULL or points to `len` initialised `T`s valid for `'a`.
pub(crate) unsafe fn slice_arg<'a, T>(p: *const T, len: usize, name: &str) -> Result<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::invalid_argument(format!(
            "{name} is NULL but its length is {len}"
        )));
    }
    // SAFETY: non-NULL with `len` elements, as the caller promises.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}
