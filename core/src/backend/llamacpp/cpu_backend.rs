//! Which llama.cpp CPU kernels run. A native build (the default) compiles them into uml for
//! the CPU that builds it. A portable build (cargo feature `portable`, llama.cpp's
//! `GGML_BACKEND_DL` + `GGML_CPU_ALL_VARIANTS`) ships them as one module per x86-64 level,
//! `libggml-cpu-<variant>.so` (x64, sse42, sandybridge, haswell, skylakex, icelake, zen4, ...),
//! beside the library or program that holds uml's code, and loads the best one this CPU runs
//! when llama.cpp starts. The modules are found from where uml's own code was loaded, never
//! from a path fixed at compile time, so a wheel, an npm package or a libuml archive works
//! wherever it is unpacked.

/// The CPU kernels in use: `"native"` for a native build, else the variant loaded
/// (`"haswell"`); `None` before llama.cpp has started.
pub fn variant() -> Option<String> {
    imp::variant()
}

/// Load llama.cpp's backend modules (portable build; nothing to do in a native one). Called
/// once, before llama.cpp's backend starts.
pub(super) fn load() -> crate::Result<()> {
    imp::load()
}

#[cfg(not(feature = "portable"))]
mod imp {
    pub fn variant() -> Option<String> {
        Some("native".into())
    }

    pub fn load() -> crate::Result<()> {
        Ok(())
    }
}

#[cfg(feature = "portable")]
mod imp {
    use crate::{Error, ErrorKind, Result};
    use once_cell::sync::OnceCell;
    use std::ffi::{CStr, CString};
    use std::path::{Path, PathBuf};

    /// Names a variant to load instead of the best (`haswell`): for tests that check a lower
    /// variant's output, and for users working around a kernel bug.
    const VARIANT_VAR: &str = "UML_CPU_VARIANT";
    /// A folder to find the modules in instead of the one holding uml's code.
    const DIR_VAR: &str = "UML_BACKENDS_DIR";
    const PREFIX: &str = "libggml-cpu-";

    static LOADED: OnceCell<String> = OnceCell::new();

    pub fn variant() -> Option<String> {
        LOADED.get().cloned()
    }

    pub fn load() -> Result<()> {
        LOADED.get_or_try_init(load_modules).map(|_| ())
    }

    fn load_modules() -> Result<String> {
        let dir = match std::env::var_os(DIR_VAR) {
            Some(d) => PathBuf::from(d),
            None => own_dir()?,
        };
        let (variants, others) = modules(&dir)?;
        let chosen = match std::env::var(VARIANT_VAR) {
            Ok(wanted) => {
                let (name, path) = variants
                    .iter()
                    .find(|(name, _)| *name == wanted)
                    .ok_or_else(|| {
                        Error::invalid_argument(format!(
                            "{VARIANT_VAR}={wanted}: no such CPU variant in {}; there are {}",
                            dir.display(),
                            names(&variants)
                        ))
                    })?;
                if score(path) == 0 {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        format!("{VARIANT_VAR}={wanted}: this CPU lacks instructions it needs"),
                    ));
                }
                (name.clone(), path.clone())
            }
            Err(_) => variants
                .iter()
                .map(|(name, path)| (score(path), name, path))
                .filter(|(s, _, _)| *s > 0)
                .max_by_key(|(s, _, _)| *s)
                .map(|(_, name, path)| (name.clone(), path.clone()))
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Unsupported,
                        format!(
                            "none of the CPU variants in {} runs on this CPU ({})",
                            dir.display(),
                            names(&variants)
                        ),
                    )
                })?,
        };
        register(&chosen.1)?;
        for path in &others {
            // A GPU module (libggml-cuda.so in a CUDA build) needs its vendor's runtime and
            // driver. Where they are missing it does not load, and uml runs on the CPU, as a
            // CPU-only build would: one package serves machines with and without the GPU.
            if let Err(e) = register(path) {
                tracing::warn!(error = %e, "running without this backend module");
            }
        }
        Ok(chosen.0)
    }

    /// The folder of the file holding this code: the `uml` program, libuml.so, the Python
    /// extension or the Node addon.
    fn own_dir() -> Result<PathBuf> {
        // SAFETY: Dl_info is plain data (pointers and integers); all-zero is a valid value.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: dladdr only reads the loader's tables; `info` is a valid out-parameter and
        // the address is a function of this library.
        let found = unsafe { libc::dladdr(own_dir as *const libc::c_void, &mut info) };
        let file = if found != 0 && !info.dli_fname.is_null() {
            // SAFETY: dladdr set dli_fname to a NUL-terminated path owned by the loader.
            let name = unsafe { CStr::from_ptr(info.dli_fname) };
            PathBuf::from(name.to_string_lossy().into_owned())
        } else {
            PathBuf::new()
        };
        let file = match std::fs::canonicalize(&file) {
            Ok(f) if f.is_file() => f,
            // The main program's entry may be a bare name: ask the OS.
            _ => std::env::current_exe().map_err(|e| Error::io(Path::new("current_exe"), e))?,
        };
        Ok(file.parent().map(Path::to_path_buf).unwrap_or_default())
    }

    /// `(variant, path)` of each CPU module, and the paths of the other modules.
    type Modules = (Vec<(String, PathBuf)>, Vec<PathBuf>);

    /// The backend modules in `dir`: `(variant, path)` of every `libggml-cpu-<variant>.so`,
    /// and the others (a CUDA module in a CUDA build), each list sorted.
    fn modules(dir: &Path) -> Result<Modules> {
        let (mut cpu, mut others) = (Vec::new(), Vec::new());
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let path = entry.map_err(|e| Error::io(dir, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some(variant) = name
                .strip_prefix(PREFIX)
                .and_then(|n| n.strip_suffix(".so"))
            {
                cpu.push((variant.to_string(), path.clone()));
            } else if name.starts_with("libggml-")
                && name.ends_with(".so")
                && name != "libggml-base.so"
            {
                others.push(path);
            }
        }
        if cpu.is_empty() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "this portable build of uml finds no llama.cpp CPU modules ({PREFIX}*.so) in \
                     {}; they ship beside it: reinstall the package, or set {DIR_VAR}",
                    dir.display()
                ),
            ));
        }
        cpu.sort();
        others.sort();
        Ok((cpu, others))
    }

    fn names(variants: &[(String, PathBuf)]) -> String {
        variants
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The module's own score for this CPU (its `ggml_backend_score`; 0: it cannot run here),
    /// read without registering it, as ggml's own loader does.
    fn score(path: &Path) -> i32 {
        let Ok(c_path) = CString::new(path.as_os_str().as_encoded_bytes()) else {
            return 0;
        };
        // SAFETY: dlopen/dlsym/dlclose on a ggml backend module; `ggml_backend_score` takes no
        // arguments and returns int (ggml-backend-dl.h), and the handle stays open while it is
        // called.
        unsafe {
            let handle = libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            if handle.is_null() {
                return 0;
            }
            let sym = libc::dlsym(handle, c"ggml_backend_score".as_ptr());
            let score = if sym.is_null() {
                0
            } else {
                let f: extern "C" fn() -> libc::c_int = std::mem::transmute(sym);
                f()
            };
            libc::dlclose(handle);
            score
        }
    }

    fn register(path: &Path) -> Result<()> {
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::invalid_argument("a backend path holds a NUL byte"))?;
        // SAFETY: ggml_backend_load takes a NUL-terminated path and returns null on failure.
        let reg = unsafe { llama_cpp_sys_2::ggml_backend_load(c_path.as_ptr()) };
        if reg.is_null() {
            return Err(Error::backend(format!(
                "llama.cpp could not load its backend module {}: {}",
                path.display(),
                dlopen_error(&c_path)
            )));
        }
        Ok(())
    }

    /// Why the dynamic loader refuses `path` (a library it needs is missing, say), or a note
    /// that it loads but did not register as a backend.
    fn dlopen_error(path: &CStr) -> String {
        // SAFETY: dlopen of a NUL-terminated path; on failure dlerror returns this thread's
        // message (NUL-terminated, valid until the next dl* call, copied at once); a handle
        // that opened is closed again.
        unsafe {
            let handle = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            if handle.is_null() {
                let message = libc::dlerror();
                if message.is_null() {
                    return "the dynamic loader gave no reason".to_string();
                }
                return CStr::from_ptr(message).to_string_lossy().into_owned();
            }
            libc::dlclose(handle);
            "it loads, but is not a ggml backend this llama.cpp accepts".to_string()
        }
    }
}
