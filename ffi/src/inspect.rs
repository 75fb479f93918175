//! Looking before loading: `uml_inspect`, `uml_estimate`, `uml_hardware`.

use crate::boundary::{boundary, new_json, opt_str_arg, str_arg, Out};
use crate::status::uml_status;
use std::ffi::c_char;
use std::path::Path;
use uml_core::estimate;
use uml_core::options::LoadOptions;

/// Inspect a model file or folder without loading weights (reads headers only; milliseconds
/// even for huge files). JSON: format, architecture, parameter count, quantization, tensor
/// types, context length, layers (`mtp_layers` of them prediction heads; `recurrent`: which
/// keep a recurrent state in place of a KV cache, and its size, or null for a transformer),
/// heads, embedding size, vocabulary size, chat template, special tokens, file size.
///
/// - `path`: NUL-terminated UTF-8, borrowed.
/// - `out_json`: on success a new string the caller frees with `uml_string_free`.
///
/// Thread safety: any thread.
/// Errors: `UML_ERR_INVALID_ARGUMENT`, `UML_ERR_NOT_FOUND`, `UML_ERR_UNSUPPORTED_FORMAT`
/// (not a model, or a legacy format, with the conversion to do), `UML_ERR_INVALID_MODEL`
/// (corrupt or truncated), `UML_ERR_IO`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_inspect(
    path: *const c_char,
    out_json: *mut *mut c_char,
) -> uml_status {
    boundary("uml_inspect", || {
        // SAFETY: the caller passes a NUL-terminated string and a writable slot (or NULLs).
        let (path, out) = unsafe { (str_arg(path, "path")?, Out::new(out_json, "out_json")?) };
        let info = uml_core::inspect::inspect(Path::new(path))?;
        out.write(new_json(&info)?);
        Ok(())
    })
}

/// Estimate the memory loading a model would take, without loading it. JSON: the
/// estimate's bytes (weights, KV cache, compute buffers, overhead, LoRA adapters, host and
/// device totals, the context size used) plus `"backend"` (whose memory model it is: the backend a load
/// would try first), `"draft"` (the draft model's estimate for a `draft_model` option, else
/// null), `"load_host_bytes"` and `"load_device_bytes"` (the model's and its draft's),
/// `"fits"` (whether those fit in the memory available now) and `"available_memory_bytes"`.
///
/// - `path`: NUL-terminated UTF-8, borrowed.
/// - `options_json`: NULL, "" or the same JSON object `uml_model_load` takes; `n_ctx`,
///   `kv_cache_type`, `gpu_layers`, `n_batch`, `n_ubatch`, `max_parallel`, `lora` and
///   `draft_model` are used (`gpu_layers` "auto" means the most that fit on the GPUs present).
/// - `out_json`: on success a new string the caller frees with `uml_string_free`.
///
/// Thread safety: any thread.
/// Errors: as `uml_inspect`, plus `UML_ERR_INVALID_ARGUMENT` for bad options.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_estimate(
    path: *const c_char,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> uml_status {
    boundary("uml_estimate", || {
        // SAFETY: the caller passes NUL-terminated strings and a writable slot (or NULLs).
        let (path, options, out) = unsafe {
            (
                str_arg(path, "path")?,
                opt_str_arg(options_json, "options_json")?,
                Out::new(out_json, "out_json")?,
            )
        };
        let options = LoadOptions::from_json(options.unwrap_or(""))?;
        let json = estimate::preflight(Path::new(path), &options)?;
        out.write(new_json(&json)?);
        Ok(())
    })
}

/// Describe this machine as JSON: CPU model, physical and logical cores, SIMD features,
/// total and available RAM, GPUs with their free memory, and `cpu_kernels`: llama.cpp's CPU
/// kernels in use (`"native"`, or the variant a portable build loaded: `"haswell"`, ...).
///
/// - `out_json`: on success a new string the caller frees with `uml_string_free`.
///
/// Thread safety: any thread.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (NULL `out_json`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_hardware(out_json: *mut *mut c_char) -> uml_status {
    boundary("uml_hardware", || {
        // SAFETY: the caller passes a writable slot (or NULL).
        let out = unsafe { Out::new(out_json, "out_json") }?;
        out.write(new_json(&uml_core::hardware::detect())?);
        Ok(())
    })
}
