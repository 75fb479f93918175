//! `uml_manager`: several models by id, loaded on demand within a memory budget
//! (`uml_core::manager::Manager`). `uml_manager_get` hands out ordinary `uml_model` handles.

use crate::boundary::{boundary, new_json, opt_str_arg, str_arg, Out};
use crate::handles::Registry;
use crate::model::{endpoint_arg, uml_model, MODELS};
use crate::status::uml_status;
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;
use uml_core::manager::{Manager, ManagerOptions};
use uml_core::options::LoadOptions;
use uml_core::pull::{PullOptions, PullProgress};
use uml_core::{CancelToken, ErrorKind, Result};

/// A model manager (opaque). Created by `uml_manager_new`, released by `uml_manager_free`.
///
/// One handle may be used from any number of threads at once.
pub struct uml_manager {
    _opaque: [u8; 0],
}

static MANAGERS: Registry<Manager> = Registry::new(
    4,
    "uml_manager",
    "uml_manager_new()",
    "uml_manager_free()",
    ErrorKind::InvalidArgument,
);

fn manager_arg(m: *const uml_manager) -> Result<Arc<Manager>> {
    MANAGERS.get(m, "manager")
}

/// Optional load options JSON: NULL or "" gives the defaults.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
unsafe fn load_options_arg(p: *const c_char) -> Result<LoadOptions> {
    // SAFETY: forwarded from this function's contract.
    let json = unsafe { opt_str_arg(p, "load_options_json") }?;
    LoadOptions::from_json(json.unwrap_or(""))
}

/// Create a model manager: models registered by id (and aliases) from paths, or found by
/// scanning folders, loaded when first asked for by `uml_manager_get`. The loaded models'
/// memory estimates stay within a budget: a load that would exceed it first unloads the least
/// recently used idle models. A model is idle while nobody but the manager holds it; every
/// `uml_model` handle from `uml_manager_get`, and every call running on it, makes it in use,
/// and a model in use is never unloaded for another (the load then fails with
/// `UML_ERR_OUT_OF_MEMORY`).
///
/// - `options_json`: NULL, "" or a JSON object: `memory_budget_bytes` (null: 80% of the RAM
///   available now), `keep_alive_ms` (null: keep an idle model until it is evicted; a number:
///   unload a model idle that long), `folders` (an array of paths: only models inside them
///   load, and `uml_manager_scan` searches them; empty or omitted: any path). Borrowed.
/// - `out_manager`: receives the new handle; the caller owns it and releases it with
///   `uml_manager_free`. Untouched on failure.
///
/// Thread safety: any thread.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (NULL `out_manager`, bad JSON, an unknown key or a value
/// of the wrong type, named in the message), `UML_ERR_NOT_FOUND` (a folder does not exist),
/// `UML_ERR_INTERNAL`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_manager_new(
    options_json: *const c_char,
    out_manager: *mut *mut uml_manager,
) -> uml_status {
    boundary("uml_manager_new", || {
        // SAFETY: the caller passes a NUL-terminated string (or NULL) and a writable
        // `uml_manager *` slot (or NULL, refused).
        let (options, out) = unsafe {
            (
                opt_str_arg(options_json, "options_json")?,
                Out::new(out_manager, "out_manager")?,
            )
        };
        let manager = Manager::new(ManagerOptions::from_json(options.unwrap_or(""))?)?;
        out.write(MANAGERS.insert(manager));
        Ok(())
    })
}

/// Release a manager: it lets go of every model, and those no `uml_model` handle holds are
/// freed now (a model handle from `uml_manager_get` stays usable until its `uml_model_free`).
/// NULL, and a handle already freed, are ignored. A call still running on another thread with
/// this manager finishes first.
///
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn uml_manager_free(manager: *mut uml_manager) {
    // The last `Arc` may be this one: dropping it frees the idle models (a while).
    crate::boundary::guard((), || drop(MANAGERS.remove(manager)))
}

/// Register the model at `path` as `id`; it loads when first asked for. Reads the file's
/// headers only (an encoder such as BERT is registered to load for embeddings).
///
/// - `id`: 1 to 128 characters without whitespace or control characters, not yet naming a
///   model (an id or an alias). Borrowed.
/// - `path`: a GGUF file or a Hugging Face folder; with folders configured, it must resolve
///   (`..` and symlinks followed) to a path inside one of them. Borrowed.
/// - `load_options_json`: NULL, "" or the JSON object `uml_model_load` takes, used for every
///   load of this model. Borrowed.
///
/// Thread safety: any thread.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (bad handle or argument, an id already taken, a path
/// outside the model folders, bad load options), `UML_ERR_NOT_FOUND` (no such path),
/// `UML_ERR_UNSUPPORTED_FORMAT`, `UML_ERR_INVALID_MODEL`, `UML_ERR_IO`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_manager_register(
    manager: *const uml_manager,
    id: *const c_char,
    path: *const c_char,
    load_options_json: *const c_char,
) -> uml_status {
    boundary("uml_manager_register", || {
        let manager = manager_arg(manager)?;
        // SAFETY: the caller passes NUL-terminated strings (or NULL) valid for the call.
        let (id, path, options) = unsafe {
            (
                str_arg(id, "id")?,
                str_arg(path, "path")?,
                load_options_arg(load_options_json)?,
            )
        };
        manager.register(id, path, options)
    })
}

/// Register a remote model (see `uml_model_load_remote`) as `id`; `uml_manager_get` opens it,
/// asking the endpoint whether it serves the model, the first time it is asked for. It takes
/// no memory from the budget.
///
/// - `id`: as in `uml_manager_register`. Borrowed.
/// - `endpoint_json`: the JSON object `uml_model_load_remote` takes (`url`, `model`,
///   `api_key`). Borrowed.
/// - `load_options_json`: NULL, "" or the JSON object `uml_model_load` takes. Borrowed.
///
/// Thread safety: any thread.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (bad handle or argument, an id already taken, bad
/// endpoint JSON, a missing or unknown key, named in the message, a URL that is not http(s),
/// bad load options). The endpoint is not contacted here: an endpoint that does not serve the
/// model (`UML_ERR_NOT_FOUND`) or cannot be reached (`UML_ERR_BACKEND`) fails
/// `uml_manager_get`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_manager_register_remote(
    manager: *const uml_manager,
    id: *const c_char,
    endpoint_json: *const c_char,
    load_options_json: *const c_char,
) -> uml_status {
    boundary("uml_manager_register_remote", || {
        let manager = manager_arg(manager)?;
        // SAFETY: the caller passes NUL-terminated strings (or NULL) valid for the call.
        let (id, endpoint, options) = unsafe {
            (
                str_arg(id, "id")?,
                endpoint_arg(endpoint_json, "endpoint_json")?,
                load_options_arg(load_options_json)?,
            )
        };
        manager.register_remote(id, endpoint, options)
    })
}

/// Give the model `name` (an id or an alias) a remote fallback: when a load of its local
/// model fails (a missing or broken file, too little memory, ...), `uml_manager_get` opens
/// the remote model instead (see `uml_model_load_remote`); its `uml_model_info` then reports
/// `"backend": "remote"` and the local failure in `skipped_backends`. Replaces an earlier
/// fallback; a model loaded already is not affected until it is loaded again.
///
/// - `name`: NUL-terminated UTF-8, borrowed.
/// - `endpoint_json`: the JSON object `uml_model_load_remote` takes. Borrowed.
///
/// Thread safety: any thread.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (bad handle or argument, bad endpoint JSON, a missing
/// or unknown key, named in the message), `UML_ERR_NOT_FOUND` (no model is registered as
/// `name`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_manager_set_fallback(
    manager: *const uml_manager,
    name: *const c_char,
    endpoint_json: *const c_char,
) -> uml_status {
    boundary("uml_manager_set_fallback", || {
        let manager = manager_arg(manager)?;
        // SAFETY: the caller passes NUL-terminated strings (or NULL) valid for the call.
        let (name, endpoint) = unsafe {
            (
                str_arg(name, "name")?,
                endpoint_arg(endpoint_json, "endpoint_json")?,
            )
        };
        manager.set_fallback(name, endpoint)
    })
}

/// Make `alias` another name for the model `id` (an id or an alias). Removing the model
/// removes its aliases.
///
/// - `alias`, `id`: NUL-terminated UTF-8, borrowed; `alias` follows the rules of ids.
///
/// Thread safety: any thread.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (bad handle or argument, `alias` already names a
/// model), `UML_ERR_NOT_FOUND` (no model is registered as `id`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_manager_alias(
    manager: *const uml_manager,
    alias: *const c_char,
    id: *const c_char,
) -> uml_status {
    boundary("uml_manager_alias", || {
        let manager = manager_arg(manager)?;
        // SAFETY: the caller passes NUL-terminated strings (or NULL) valid for the call.
        let (alias, id) = unsafe { (str_arg(alias, "alias")?, str_arg(id, "id")?) };
        manager.alias(alias, id)
    })
}

/// Register every model in the manager's folders not registered yet: each `.gguf` file (the
/// first part of a split one) as its file name without `.gguf`, each Hugging Face folder (one
/// holding a config.json) as its folder name. Files that are not models, and names already
/// taken, are passed over.
///
/// - `load_options_json`: NULL, "" or the JSON object `uml_model_load` takes, for each model
///   found. Borrowed.
/// - `out_json`: receives the new ids as a JSON array of strings, sorted (`[]` when none);
///   the caller frees it with `uml_string_free`. Written only on success.
///
/// Thread safety: any thread.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (bad handle, bad load options, NULL `out_json`),
/// `UML_ERR_IO` (a folder cannot be read).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_manager_scan(
    manager: *const uml_manager,
    load_options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> uml_status {
    boundary("uml_manager_scan", || {
        let manager = manager_arg(manager)?;
        // SAFETY: the caller passes a NUL-terminated string (or NULL) and a writable slot.
        let (options, out) = unsafe {
            (
                load_options_arg(load_options_json)?,
                Out::new(out_json, "out_json")?,
            )
        };
        out.write(new_json(&manager.scan(&options)?)?);
        Ok(())
    })
}

/// Pull progress: `file` is the repo file being fetched (borrowed for the call), `bytes` the
/// bytes of all chosen files on disk so far, `total` their sum. Return false to cancel the
/// pull (`uml_manager_pull` then returns `UML_ERR_CANCELLED`, and the next pull resumes the
/// file). Called about every MiB on the thread that called `uml_manager_pull`, before it
/// returns. It must not throw or longjmp.
pub type uml_pull_progress_cb = Option<
    unsafe extern "C" fn(file: *const c_char, bytes: u64, total: u64, user: *mut c_void) -> bool,
>;

/// Download a model from the Hugging Face Hub (or a server with its URL layout) into the
/// manager's first folder, and register it as `uml_manager_scan` would name it (a GGUF file by
/// its name without `.gguf`, a Hugging Face folder by the repo's name). A GGUF repo gives one
/// model, picked by a quantization tag; a Hugging Face folder gives the files uml reads. Each
/// file is written to `<name>.part`, resumed from there after a dropped connection or an
/// earlier cancelled pull, and kept only when its sha256 (or git blob id) matches what the hub
/// lists; a file already there with that hash is not fetched again, and one with other
/// content is never overwritten. The hub is `HF_ENDPOINT` (default https://huggingface.co),
/// the token `HF_TOKEN` (else `HF_TOKEN_PATH`, else `$HF_HOME/token`); `HF_HUB_OFFLINE` set
/// refuses to pull.
///
/// - `spec`: `owner/name` or `owner/name:QUANT` (e.g. `Q4_K_M`; the default when a repo holds
///   several GGUF models), as llama.cpp's `-hf` and Ollama write it. Borrowed.
/// - `pull_options_json`: NULL, "" or a JSON object: `revision` (branch, tag or commit;
///   default "main"), `files` (exact repo paths to fetch instead), `endpoint`, `token` (over
///   the environment's). Borrowed.
/// - `load_options_json`: NULL, "" or the JSON object `uml_model_load` takes, for when the
///   model is loaded. Borrowed.
/// - `progress`, `user`: optional progress callback (NULL for none) and its pointer.
/// - `out_json`: receives `{"id", "repo", "commit", "path", "files", "downloaded_bytes",
///   "reused_bytes"}`; the caller frees it with `uml_string_free`. Written only on success.
///
/// Thread safety: any thread; blocks while it downloads.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (bad handle or argument, a spec that is no repo id, an
/// unknown option, a manager without folders, a missing or refused token (the message says to
/// set `HF_TOKEN`), a quantization matching several files, a different file already at the
/// target), `UML_ERR_NOT_FOUND` (no such repo, revision, file or tag; the message lists the
/// repo's files), `UML_ERR_UNSUPPORTED_FORMAT` (the repo holds no model uml loads),
/// `UML_ERR_INVALID_MODEL` (a download that does not match its hash; it is removed),
/// `UML_ERR_IO` (the hub cannot be reached, a file cannot be written), `UML_ERR_CANCELLED`,
/// `UML_ERR_UNSUPPORTED` (`HF_HUB_OFFLINE`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_manager_pull(
    manager: *const uml_manager,
    spec: *const c_char,
    pull_options_json: *const c_char,
    load_options_json: *const c_char,
    progress: uml_pull_progress_cb,
    user: *mut c_void,
    out_json: *mut *mut c_char,
) -> uml_status {
    boundary("uml_manager_pull", || {
        let manager = manager_arg(manager)?;
        // SAFETY: the caller passes NUL-terminated strings (or NULL) valid for the call and a
        // writable `char *` slot.
        let (spec, pull_options, options, out) = unsafe {
            (
                str_arg(spec, "spec")?,
                opt_str_arg(pull_options_json, "pull_options_json")?,
                load_options_arg(load_options_json)?,
                Out::new(out_json, "out_json")?,
            )
        };
        let pull_options = PullOptions::from_json(pull_options.unwrap_or(""))?;
        let cancel = CancelToken::new();
        let mut on_progress = |p: &PullProgress| {
            let Some(cb) = progress else { return };
            // Repo paths never hold NUL (the hub's JSON could; such a name is reported empty).
            let file = CString::new(p.file).unwrap_or_default();
            // SAFETY: a C function pointer given by the caller for this call, with its own
            // `user` pointer; `file` lives until it returns.
            if !unsafe { cb(file.as_ptr(), p.bytes, p.total, user) } {
                cancel.cancel();
            }
        };
        let report = manager.pull(
            spec,
            &pull_options,
            options,
            Some(&cancel),
            &mut on_progress,
        )?;
        out.write(new_json(&report)?);
        Ok(())
    })
}

/// The model registered as `name` (an id or an alias), loading it first if it is not loaded
/// (which takes as long as `uml_model_load`, and may unload least recently used idle models
/// to stay within the budget). Several threads asking for a model being loaded wait for that
/// one load.
///
/// - `name`: NUL-terminated UTF-8, borrowed.
/// - `out_model`: receives a NEW `uml_model` handle, usable with every `uml_model` function;
///   the caller releases it with `uml_model_free`, which lets go of this handle only: the
///   manager keeps the model loaded until it unloads or evicts it. While the handle lives the
///   model is in use and is never evicted, so free it when done (`uml_manager_unload` and
///   `uml_manager_remove` still let go of the manager's part; the handle then keeps the model
///   until it is freed). Untouched on failure.
///
/// Thread safety: any thread.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (bad handle or argument, NULL `out_model`),
/// `UML_ERR_NOT_FOUND` (no such name; the message lists the registered ids),
/// `UML_ERR_OUT_OF_MEMORY` (it does not fit the budget even after unloading every idle
/// model), and what `uml_model_load` returns for a failed load.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_manager_get(
    manager: *const uml_manager,
    name: *const c_char,
    out_model: *mut *mut uml_model,
) -> uml_status {
    boundary("uml_manager_get", || {
        let manager = manager_arg(manager)?;
        // SAFETY: the caller passes a NUL-terminated string and a writable `uml_model *` slot.
        let (name, out) = unsafe { (str_arg(name, "name")?, Out::new(out_model, "out_model")?) };
        let model = manager.get(name)?;
        out.write(MODELS.insert_arc(model));
        Ok(())
    })
}

/// Hot-swap: load the model at `path` under the existing `name`. Once it is loaded, new
/// `uml_manager_get` calls get it; handles to the old model (and calls running on them) keep
/// working, and the old model is freed when the last of them is freed. If the load fails, the
/// old model stays.
///
/// - `name`, `path`: NUL-terminated UTF-8, borrowed; `path` as in `uml_manager_register`.
/// - `load_options_json`: NULL, "" or the JSON object `uml_model_load` takes; it replaces the
///   model's load options. Borrowed.
///
/// Thread safety: any thread.
/// Errors: as `uml_manager_register` and `uml_manager_get`, plus `UML_ERR_BUSY` (the model is
/// being loaded by another call; try again when that load ends).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_manager_swap(
    manager: *const uml_manager,
    name: *const c_char,
    path: *const c_char,
    load_options_json: *const c_char,
) -> uml_status {
    boundary("uml_manager_swap", || {
        let manager = manager_arg(manager)?;
        // SAFETY: the caller passes NUL-terminated strings (or NULL) valid for the call.
        let (name, path, options) = unsafe {
            (
                str_arg(name, "name")?,
                str_arg(path, "path")?,
                load_options_arg(load_options_json)?,
            )
        };
        manager.swap(name, path, options)
    })
}

/// Unload the model `name`: the manager lets go of it, and its memory is freed now if no
/// `uml_model` handle holds it, else when the last one is freed. It stays registered and
/// loads again on the next `uml_manager_get`.
///
/// - `name`: NUL-terminated UTF-8, borrowed.
/// - `out_bytes`: optional (NULL to skip); receives the bytes of its memory estimate that the
///   budget counted, 0 when it was not loaded.
///
/// Thread safety: any thread.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (bad handle or argument), `UML_ERR_NOT_FOUND`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_manager_unload(
    manager: *const uml_manager,
    name: *const c_char,
    out_bytes: *mut u64,
) -> uml_status {
    boundary("uml_manager_unload", || {
        let manager = manager_arg(manager)?;
        // SAFETY: the caller passes a NUL-terminated string and a writable slot (or NULL).
        let (name, out) = unsafe { (str_arg(name, "name")?, Out::optional(out_bytes)) };
        let freed = manager.unload(name)?;
        if let Some(out) = out {
            out.write(freed);
        }
        Ok(())
    })
}

/// Unregister the model `name` and its aliases, unloading it as `uml_manager_unload` does.
///
/// - `name`: NUL-terminated UTF-8, borrowed.
/// - `out_bytes`: optional (NULL to skip); as in `uml_manager_unload`.
///
/// Thread safety: any thread.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (bad handle or argument), `UML_ERR_NOT_FOUND`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_manager_remove(
    manager: *const uml_manager,
    name: *const c_char,
    out_bytes: *mut u64,
) -> uml_status {
    boundary("uml_manager_remove", || {
        let manager = manager_arg(manager)?;
        // SAFETY: the caller passes a NUL-terminated string and a writable slot (or NULL).
        let (name, out) = unsafe { (str_arg(name, "name")?, Out::optional(out_bytes)) };
        let freed = manager.remove(name)?;
        if let Some(out) = out {
            out.write(freed);
        }
        Ok(())
    })
}

/// Every registered model, by id, as a JSON array of objects: `id`, `aliases` (an array),
/// `path` (resolved), `state` ("unloaded", "loading", "idle": loaded and held by nobody but
/// the manager, or "in_use": held by a `uml_model` handle or a running call), `backend` (null
/// while not loaded), `memory_bytes` (what the budget counts for it while loaded, else 0),
/// `idle_ms` (milliseconds since it was last handed out; null: never) and `activity`
/// (`{"running", "queued"}`: its calls).
///
/// - `out_json`: receives a new string the caller frees with `uml_string_free`; written only
///   on success.
///
/// Thread safety: any thread.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (bad handle, NULL `out_json`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_manager_list(
    manager: *const uml_manager,
    out_json: *mut *mut c_char,
) -> uml_status {
    boundary("uml_manager_list", || {
        let manager = manager_arg(manager)?;
        // SAFETY: the caller passes a writable slot (or NULL, refused).
        let out = unsafe { Out::new(out_json, "out_json") }?;
        out.write(new_json(&manager.list())?);
        Ok(())
    })
}

/// The memory budget and what the loaded models' estimates take of it now, in bytes.
///
/// - `out_budget_bytes`, `out_used_bytes`: optional (NULL to skip); written on success.
///
/// Thread safety: any thread.
/// Errors: `UML_ERR_INVALID_ARGUMENT` (bad handle).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uml_manager_memory(
    manager: *const uml_manager,
    out_budget_bytes: *mut u64,
    out_used_bytes: *mut u64,
) -> uml_status {
    boundary("uml_manager_memory", || {
        let manager = manager_arg(manager)?;
        // SAFETY: the caller passes writable slots (or NULL).
        let (budget, used) = unsafe {
            (
                Out::optional(out_budget_bytes),
                Out::optional(out_used_bytes),
            )
        };
        if let Some(out) = budget {
            out.write(manager.budget_bytes());
        }
        if let Some(out) = used {
            out.write(manager.used_bytes());
        }
        Ok(())
    })
}
