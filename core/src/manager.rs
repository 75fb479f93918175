//! `Manager`: several models by id, loaded on demand within a memory budget.
//!
//! - Models are registered by id (and aliases) from paths, or found by scanning folders for
//!   GGUF files and Hugging Face folders. With folders configured, nothing outside them loads:
//!   a path is resolved (`..` and symlinks followed) before it is checked.
//! - `get` loads a model when needed. Loaded models' memory estimates stay within the budget:
//!   a load that would exceed it first unloads the least recently used idle models; a model in
//!   use (someone holds its `Arc`: a running generation, a host's handle) is never unloaded
//!   for another, so if that is not enough the load fails with `OutOfMemory` and the numbers.
//! - `swap` loads a new file under an existing id: new callers get the new model at once, and
//!   calls running on the old one finish on it (it is freed when the last of them ends).
//! - Keep-alive: a model idle for `keep_alive` is unloaded by a background thread.

use crate::options::LoadOptions;
use crate::remote::RemoteEndpoint;
use crate::{Error, ErrorKind, Model, Result};
use parking_lot::{Condvar, Mutex};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// The fraction of available RAM the default budget allows (the rest is for the OS, the host
/// and the models' growth past their estimates).
pub const DEFAULT_BUDGET_FRACTION: f64 = 0.8;

/// How a manager runs.
#[derive(Debug, Clone, Default)]
pub struct ManagerOptions {
    /// The most host memory the loaded models may take together, by their estimates. `None`:
    /// `DEFAULT_BUDGET_FRACTION` of the RAM available when the manager starts.
    pub memory_budget_bytes: Option<u64>,
    /// Unload a model once it has been idle this long; `None`: keep it until evicted.
    pub keep_alive: Option<Duration>,
    /// The folders models may be loaded from, and that `scan` searches. Empty: any path.
    pub folders: Vec<PathBuf>,
}

impl ManagerOptions {
    /// Every key of `from_json`, in order (for "unknown key" messages).
    pub const FIELDS: &'static [&'static str] =
        &["memory_budget_bytes", "keep_alive_ms", "folders"];

    /// Parse the JSON form hosts pass: `{"memory_budget_bytes": null | bytes, "keep_alive_ms":
    /// null | milliseconds, "folders": ["path", ...]}` (an empty string, `null` or `{}` gives
    /// the defaults; a `null` value means the default). An unknown key or a wrong type is an
    /// `InvalidArgument` that names the key.
    pub fn from_json(json: &str) -> Result<ManagerOptions> {
        #[derive(serde::Deserialize, Default)]
        #[serde(default, deny_unknown_fields)]
        struct Json {
            memory_budget_bytes: Option<u64>,
            keep_alive_ms: Option<u64>,
            folders: Vec<PathBuf>,
        }
        let parsed: Json = crate::options::parse_json_object(json, "manager option", Self::FIELDS)?;
        Ok(ManagerOptions {
            memory_budget_bytes: parsed.memory_budget_bytes,
            keep_alive: parsed.keep_alive_ms.map(Duration::from_millis),
            folders: parsed.folders,
        })
    }
}

/// Where a registered model is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelState {
    Unloaded,
    Loading,
    /// Loaded and used by nobody but the manager.
    Idle,
    /// Loaded and held by someone (a running generation, a host's handle).
    InUse,
}

/// One registered model, as `list` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub id: String,
    pub aliases: Vec<String>,
    pub path: PathBuf,
    pub state: ModelState,
    /// The backend running it (`None` while not loaded).
    pub backend: Option<&'static str>,
    /// Its memory estimate's host bytes while loaded (what the budget counts), else 0.
    pub memory_bytes: u64,
    /// Milliseconds since it was last handed out (`None`: never).
    pub idle_ms: Option<u64>,
    /// Its calls running and waiting (zero while not loaded).
    pub activity: crate::model::Activity,
}

/// What `Manager::pull` did: the id the model is registered as, and what the pull left on
/// disk (serialized as one object: `id` beside the pull's fields, what every host returns).
#[derive(Debug, Clone, Serialize)]
pub struct ManagedPull {
    pub id: String,
    #[serde(flatten)]
    pub pulled: crate::pull::Pulled,
}

/// A model the manager keeps.
struct Loaded {
    model: Arc<Model>,
    bytes: u64,
}

struct Entry {
    path: PathBuf,
    options: LoadOptions,
    /// Set for a model served by a remote endpoint (`path` then names it, and no file is read).
    remote: Option<RemoteEndpoint>,
    /// The endpoint to serve the model from when its local load fails.
    fallback: Option<RemoteEndpoint>,
    aliases: Vec<String>,
    loaded: Option<Loaded>,
    /// Bytes reserved by a load in progress (its estimate), or 0.
    loading: u64,
    last_used: Option<Instant>,
}

impl Entry {
    fn in_use(&self) -> bool {
        self.loaded
            .as_ref()
            .is_some_and(|l| Arc::strong_count(&l.model) > 1)
    }
}

struct State {
    entries: BTreeMap<String, Entry>,
    /// Alias → id.
    aliases: BTreeMap<String, String>,
}

impl State {
    fn used_bytes(&self) -> u64 {
        self.entries
            .values()
            .map(|e| e.loaded.as_ref().map_or(0, |l| l.bytes) + e.loading)
            .sum()
    }

    fn resolve(&self, name: &str) -> Result<String> {
        if self.entries.contains_key(name) {
            return Ok(name.to_string());
        }
        self.aliases.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = self.entries.keys().map(String::as_str).collect();
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "no model is registered as {name:?}; registered: {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })
    }
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a load ends or the manager closes (waiters and the keep-alive thread).
    changed: Condvar,
    budget: u64,
    keep_alive: Option<Duration>,
    folders: Vec<PathBuf>,
}

/// Several models by id within a memory budget (see the module docs). `Send + Sync`; dropping
/// it unloads every model nobody else holds.
pub struct Manager {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("budget", &self.shared.budget)
            .field("models", &self.shared.state.lock().entries.len())
            .finish()
    }
}

impl Manager {
    /// A manager with no models yet. Fails when a folder does not exist.
    pub fn new(options: ManagerOptions) -> Result<Manager> {
        let folders = options
            .folders
            .iter()
            .map(|f| {
                std::fs::canonicalize(f).map_err(|e| {
                    Error::new(
                        ErrorKind::NotFound,
                        format!("model folder {}: {e}", f.display()),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let budget = options.memory_budget_bytes.unwrap_or_else(|| {
            (crate::hardware::detect().available_memory_bytes as f64 * DEFAULT_BUDGET_FRACTION)
                as u64
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                entries: BTreeMap::new(),
                aliases: BTreeMap::new(),
            }),
            changed: Condvar::new(),
            budget,
            keep_alive: options.keep_alive,
            folders,
        });
        if let Some(keep_alive) = options.keep_alive {
            let weak = Arc::downgrade(&shared);
            std::thread::Builder::new()
                .name("uml-keep-alive".into())
                .spawn(move || keep_alive_loop(weak, keep_alive))
                .map_err(|e| Error::internal(format!("cannot start the keep-alive thread: {e}")))?;
        }
        Ok(Manager { shared })
    }

    /// The memory budget in bytes.
    pub fn budget_bytes(&self) -> u64 {
        self.shared.budget
    }

    /// How long a model may stay idle before it is unloaded (`None`: until evicted).
    pub fn keep_alive(&self) -> Option<Duration> {
        self.shared.keep_alive
    }

    /// Register the model at `path` as `id`, loaded with `options` when first used (an
    /// embedding-only model with `embeddings` set). Reads the file's headers; a file that
    /// cannot be read fails when it is loaded.
    pub fn register(&self, id: &str, path: impl AsRef<Path>, options: LoadOptions) -> Result<()> {
        check_id(id)?;
        options.validate()?;
        let path = self.allowed_path(path.as_ref())?;
        // An encoder (BERT, ...) can only embed: load it for that. A file that cannot be read
        // is still registered: its load says what is wrong (or its fallback serves it).
        let mut options = options;
        if crate::inspect::inspect(&path).is_ok_and(|info| !info.generates_text()) {
            options.embeddings = true;
        }
        let mut state = self.shared.state.lock();
        if state.entries.contains_key(id) || state.aliases.contains_key(id) {
            return Err(Error::invalid_argument(format!(
                "a model is already registered as {id:?}; swap it to load a new file under that \
                 id, or remove it first"
            )));
        }
        state.entries.insert(
            id.to_string(),
            Entry {
                path,
                options,
                aliases: Vec::new(),
                loaded: None,
                loading: 0,
                last_used: None,
                remote: None,
                fallback: None,
            },
        );
        Ok(())
    }

    /// Register a model served by an OpenAI-compatible endpoint as `id`: it takes no memory
    /// here, and `get` hands out a remote `Model` (see `Model::remote`).
    pub fn register_remote(
        &self,
        id: &str,
        endpoint: RemoteEndpoint,
        options: LoadOptions,
    ) -> Result<()> {
        check_id(id)?;
        options.validate()?;
        endpoint.validate()?;
        let mut state = self.shared.state.lock();
        if state.entries.contains_key(id) || state.aliases.contains_key(id) {
            return Err(Error::invalid_argument(format!(
                "a model is already registered as {id:?}"
            )));
        }
        state.entries.insert(
            id.to_string(),
            Entry {
                path: PathBuf::from(format!("{}#{}", endpoint.url, endpoint.model)),
                options,
                aliases: Vec::new(),
                loaded: None,
                loading: 0,
                last_used: None,
                remote: Some(endpoint),
                fallback: None,
            },
        );
        Ok(())
    }

    /// Serve the model `name` from `endpoint` whenever its own file fails to load (a broken
    /// or missing file, too little memory): the failure is kept in the model's
    /// `skipped()` list.
    pub fn set_fallback(&self, name: &str, endpoint: RemoteEndpoint) -> Result<()> {
        endpoint.validate()?;
        let mut state = self.shared.state.lock();
        let id = state.resolve(name)?;
        if let Some(entry) = state.entries.get_mut(&id) {
            entry.fallback = Some(endpoint);
        }
        Ok(())
    }

    /// Another name for the model registered as `id`.
    pub fn alias(&self, alias: &str, id: &str) -> Result<()> {
        check_id(alias)?;
        let mut state = self.shared.state.lock();
        let id = state.resolve(id)?;
        if state.entries.contains_key(alias) || state.aliases.contains_key(alias) {
            return Err(Error::invalid_argument(format!(
                "{alias:?} already names a model"
            )));
        }
        state.aliases.insert(alias.to_string(), id.clone());
        if let Some(entry) = state.entries.get_mut(&id) {
            entry.aliases.push(alias.to_string());
        }
        Ok(())
    }

    /// Register every model in the configured folders not registered yet: each `.gguf` file
    /// (the first part of a split one) as its file name without `.gguf`, each Hugging Face
    /// folder (one holding a config.json) as its folder name, each to load with `options`.
    /// Returns the new ids.
    pub fn scan(&self, options: &LoadOptions) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for folder in &self.shared.folders {
            let entries = std::fs::read_dir(folder)
                .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", folder.display())))?;
            for entry in entries.flatten() {
                let path = entry.path();
                if let Some(id) = id_for(&path) {
                    found.push((id, path));
                }
            }
        }
        found.sort();
        let mut added = Vec::new();
        for (id, path) in found {
            if check_id(&id).is_err() {
                continue;
            }
            let taken = {
                let state = self.shared.state.lock();
                state.entries.contains_key(&id) || state.aliases.contains_key(&id)
            };
            if !taken && self.register(&id, &path, options.clone()).is_ok() {
                added.push(id);
            }
        }
        Ok(added)
    }

    /// Download `spec` (`owner/name[:QUANT]`, see `crate::pull`) into the first model folder
    /// and register it as `scan` would name it, to load with `options`. Returns its id and
    /// what the pull left on disk. A model already pulled is checked, not fetched again.
    pub fn pull(
        &self,
        spec: &str,
        pull_options: &crate::pull::PullOptions,
        options: LoadOptions,
        cancel: Option<&crate::CancelToken>,
        progress: &mut dyn FnMut(&crate::pull::PullProgress),
    ) -> Result<ManagedPull> {
        let Some(folder) = self.shared.folders.first() else {
            return Err(Error::invalid_argument(
                "this manager has no model folder to pull into; create it with folders set",
            ));
        };
        let pulled = crate::pull::pull(spec, folder, pull_options, cancel, progress)?;
        let id = id_for(&pulled.path).ok_or_else(|| {
            Error::internal(format!("{} is no model scan finds", pulled.path.display()))
        })?;
        let path = self.allowed_path(&pulled.path)?;
        let registered = {
            let state = self.shared.state.lock();
            state
                .resolve(&id)
                .ok()
                .and_then(|id| state.entries.get(&id).map(|e| e.path.clone()))
        };
        match registered {
            None => self.register(&id, &path, options)?,
            Some(same) if same == path => {}
            Some(other) => {
                return Err(Error::invalid_argument(format!(
                    "{spec} was pulled to {}, but the id {id:?} already names {}; remove that \
                     model first",
                    path.display(),
                    other.display()
                )))
            }
        }
        Ok(ManagedPull { id, pulled })
    }

    /// The model registered as `name` (an id or alias), loading it first if needed (which may
    /// unload idle models to stay within the budget). Hold the `Arc` only while using it: a
    /// model held is in use, and is never unloaded for another.
    pub fn get(&self, name: &str) -> Result<Arc<Model>> {
        let mut state = self.shared.state.lock();
        loop {
            let id = state.resolve(name)?;
            let Some(entry) = state.entries.get_mut(&id) else {
                return Err(Error::internal(format!("alias {name:?} names no model")));
            };
            if let Some(loaded) = &entry.loaded {
                entry.last_used = Some(Instant::now());
                return Ok(Arc::clone(&loaded.model));
            }
            if entry.loading > 0 {
                self.shared.changed.wait(&mut state);
                continue;
            }
            let (path, options) = (entry.path.clone(), entry.options.clone());
            drop(state);
            match self.load_into(&id, &path, &options, false) {
                // Another caller began loading it meanwhile: wait for that load.
                Err(e) if e.kind() == ErrorKind::Busy => {}
                other => other?,
            }
            state = self.shared.state.lock();
        }
    }

    /// Load the file at `path` under the existing id `name`: new callers get it as soon as it
    /// is loaded, and calls running on the old model finish on it. If the load fails, the old
    /// model stays.
    pub fn swap(&self, name: &str, path: impl AsRef<Path>, options: LoadOptions) -> Result<()> {
        options.validate()?;
        let path = self.allowed_path(path.as_ref())?;
        let id = self.shared.state.lock().resolve(name)?;
        self.load_into(&id, &path, &options, true)
    }

    /// Unload the model `name`: the manager lets go of it, and its memory is freed now if
    /// nobody else holds it, else when the last holder lets go. Returns its estimate's host
    /// bytes (0 when it was not loaded).
    pub fn unload(&self, name: &str) -> Result<u64> {
        let mut state = self.shared.state.lock();
        let id = state.resolve(name)?;
        let loaded = state.entries.get_mut(&id).and_then(|e| e.loaded.take());
        drop(state);
        Ok(loaded.map_or(0, |l| l.bytes))
    }

    /// Unregister `name` (unloading it as `unload` does).
    pub fn remove(&self, name: &str) -> Result<u64> {
        let freed = self.unload(name)?;
        let mut state = self.shared.state.lock();
        let id = state.resolve(name)?;
        if let Some(entry) = state.entries.remove(&id) {
            for alias in entry.aliases {
                state.aliases.remove(&alias);
            }
        }
        Ok(freed)
    }

    /// Every registered model, by id.
    pub fn list(&self) -> Vec<ModelStatus> {
        let state = self.shared.state.lock();
        let now = Instant::now();
        state
            .entries
            .iter()
            .map(|(id, e)| ModelStatus {
                id: id.clone(),
                aliases: e.aliases.clone(),
                path: e.path.clone(),
                state: match (&e.loaded, e.loading > 0) {
                    (Some(_), _) if e.in_use() => ModelState::InUse,
                    (Some(_), _) => ModelState::Idle,
                    (None, true) => ModelState::Loading,
                    (None, false) => ModelState::Unloaded,
                },
                backend: e.loaded.as_ref().map(|l| l.model.backend()),
                memory_bytes: e.loaded.as_ref().map_or(0, |l| l.bytes),
                idle_ms: e
                    .last_used
                    .map(|t| now.saturating_duration_since(t).as_millis() as u64),
                activity: e
                    .loaded
                    .as_ref()
                    .map(|l| l.model.activity())
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// The bytes the loaded models' estimates add up to (what the budget counts).
    pub fn used_bytes(&self) -> u64 {
        self.shared.state.lock().used_bytes()
    }

    /// `path` resolved (`..` and symlinks followed); with folders configured, refused
    /// (`InvalidArgument`, "outside the model folders") unless it lies inside one of them.
    /// `NotFound` when it does not exist.
    pub fn allowed_path(&self, path: &Path) -> Result<PathBuf> {
        let resolved = std::fs::canonicalize(path)
            .map_err(|e| Error::new(ErrorKind::NotFound, format!("{}: {e}", path.display())))?;
        if self.shared.folders.is_empty()
            || self.shared.folders.iter().any(|f| resolved.starts_with(f))
        {
            return Ok(resolved);
        }
        Err(Error::invalid_argument(format!(
            "{} is outside the model folders ({}); models load only from there",
            path.display(),
            self.shared
                .folders
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    /// Load `path` for `id` within the budget and install it; with `replace`, over a model
    /// already loaded (a swap), else only into an unloaded entry.
    fn load_into(&self, id: &str, path: &Path, options: &LoadOptions, replace: bool) -> Result<()> {
        // A swap always loads the file it names; otherwise the entry says where the model is.
        let (remote, fallback) = {
            let state = self.shared.state.lock();
            let entry = state.entries.get(id);
            let remote = entry.and_then(|e| e.remote.clone()).filter(|_| !replace);
            (remote, entry.and_then(|e| e.fallback.clone()))
        };
        let local_failure = |e: Error| match &fallback {
            Some(endpoint) => Model::remote_fallback(endpoint.clone(), options, e),
            None => Err(e),
        };
        let need = match &remote {
            Some(_) => 0,
            None => match crate::estimate::preflight(path, options) {
                Ok(p) => p.load_host_bytes,
                Err(e) if fallback.is_some() => {
                    return self.install(id, path, options, local_failure(e));
                }
                Err(e) => return Err(e),
            },
        };
        {
            let mut state = self.shared.state.lock();
            let entry = state
                .entries
                .get(id)
                .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("{id:?} was removed")))?;
            if entry.loading > 0 {
                return Err(Error::new(
                    ErrorKind::Busy,
                    format!("{id:?} is being loaded already; try again when that load ends"),
                ));
            }
            if entry.loaded.is_some() && !replace {
                return Ok(());
            }
            self.make_room(&mut state, id, need)?;
            if let Some(entry) = state.entries.get_mut(id) {
                entry.loading = need.max(1);
            }
        }
        let loaded = match &remote {
            Some(endpoint) => Model::remote(endpoint.clone(), options),
            None => Model::load(path, options, None).or_else(local_failure),
        };
        self.install(id, path, options, loaded)
    }

    /// Put the result of a load into the entry `id` (clearing its reservation), and wake the
    /// callers waiting for it.
    fn install(
        &self,
        id: &str,
        path: &Path,
        options: &LoadOptions,
        loaded: Result<Model>,
    ) -> Result<()> {
        let mut state = self.shared.state.lock();
        let result = match (state.entries.get_mut(id), loaded) {
            (Some(entry), Ok(model)) => {
                let bytes = model.host_bytes_with_draft();
                entry.loaded = Some(Loaded {
                    model: Arc::new(model),
                    bytes,
                });
                if entry.remote.is_none() {
                    entry.path = path.to_path_buf();
                }
                entry.options = options.clone();
                entry.loading = 0;
                Ok(())
            }
            (Some(entry), Err(e)) => {
                entry.loading = 0;
                Err(e)
            }
            (None, _) => Err(Error::new(
                ErrorKind::NotFound,
                format!("{id:?} was removed while it loaded"),
            )),
        };
        drop(state);
        self.shared.changed.notify_all();
        result
    }

    /// Unload least recently used idle models (never `for_id`) until `need` more bytes fit
    /// the budget, or say why they cannot.
    fn make_room(&self, state: &mut State, for_id: &str, need: u64) -> Result<()> {
        let budget = self.shared.budget;
        while state.used_bytes() + need > budget {
            let victim = state
                .entries
                .iter()
                .filter(|(id, e)| id.as_str() != for_id && e.loaded.is_some() && !e.in_use())
                .min_by_key(|(_, e)| e.last_used)
                .map(|(id, _)| id.clone());
            let Some(victim) = victim else {
                let held: Vec<String> = state
                    .entries
                    .iter()
                    .filter(|(_, e)| e.loaded.is_some() || e.loading > 0)
                    .map(|(id, e)| {
                        let bytes = e.loaded.as_ref().map_or(e.loading, |l| l.bytes);
                        format!("{id} {} MiB", bytes >> 20)
                    })
                    .collect();
                return Err(Error::new(
                    ErrorKind::OutOfMemory,
                    format!(
                        "{for_id:?} needs {} MiB but the memory budget is {} MiB and models in \
                         use or loading hold {} MiB ({}); unload one, wait for it to be idle, or \
                         raise the memory budget",
                        need >> 20,
                        budget >> 20,
                        state.used_bytes() >> 20,
                        held.join(", ")
                    ),
                ));
            };
            tracing::info!(model = %victim, "unloading the least recently used idle model to make room");
            if let Some(entry) = state.entries.get_mut(&victim) {
                entry.loaded = None;
            }
        }
        Ok(())
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        // Wakes the keep-alive thread, which then finds the manager gone.
        self.shared.changed.notify_all();
    }
}

/// Unload models idle for `keep_alive`, until the manager is dropped.
fn keep_alive_loop(shared: Weak<Shared>, keep_alive: Duration) {
    let tick = keep_alive
        .min(Duration::from_secs(1))
        .max(Duration::from_millis(10));
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut state = shared.state.lock();
        let now = Instant::now();
        for entry in state.entries.values_mut() {
            if entry.in_use() {
                // Idle time counts from the end of the last use.
                entry.last_used = Some(now);
            } else if entry.loaded.is_some()
                && entry
                    .last_used
                    .is_none_or(|t| now.saturating_duration_since(t) >= keep_alive)
            {
                tracing::info!(path = %entry.path.display(), "unloading a model idle past its keep-alive");
                entry.loaded = None;
            }
        }
        shared.changed.wait_for(&mut state, tick);
        drop(state);
        drop(shared);
    }
}

/// The id `scan` gives the model at `path`: a folder holding a config.json by its name, a
/// `.gguf` file by its name without `.gguf` (a split file by its first part, without the
/// part suffix); `None` for anything else.
fn id_for(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    if path.is_dir() && path.join("config.json").is_file() {
        return Some(name);
    }
    let stem = name.strip_suffix(".gguf")?;
    match split_part(stem) {
        Some((base, 1)) => Some(base.to_string()),
        Some(_) => None,
        None => Some(stem.to_string()),
    }
}

/// A `name-00001-of-00003` stem's base name and part number.
pub(crate) fn split_part(stem: &str) -> Option<(&str, u32)> {
    let (rest, total) = stem.rsplit_once("-of-")?;
    let (base, part) = rest.rsplit_once('-')?;
    if part.len() != 5 || total.len() != 5 || !total.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((base, part.parse().ok()?))
}

/// Ids are what clients type: 1 to 128 characters, no whitespace or control characters.
fn check_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.chars().count() > 128
        || id.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::invalid_argument(format!(
            "model id {id:?}: use 1 to 128 characters without spaces or control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_gguf_parts_are_recognised() {
        assert_eq!(split_part("model-00001-of-00003"), Some(("model", 1)));
        assert_eq!(split_part("model-00002-of-00003"), Some(("model", 2)));
        assert_eq!(split_part("model-q4"), None);
        assert_eq!(split_part("a-of-b"), None);
    }

    #[test]
    fn options_parse_from_json_and_name_unknown_keys() {
        let o = ManagerOptions::from_json(
            r#"{"memory_budget_bytes": 1024, "keep_alive_ms": 1500, "folders": ["/tmp"]}"#,
        )
        .unwrap();
        assert_eq!(o.memory_budget_bytes, Some(1024));
        assert_eq!(o.keep_alive, Some(Duration::from_millis(1500)));
        assert_eq!(o.folders, [PathBuf::from("/tmp")]);
        let d = ManagerOptions::from_json(r#"{"memory_budget_bytes": null}"#).unwrap();
        assert_eq!((d.memory_budget_bytes, d.keep_alive), (None, None));
        assert!(ManagerOptions::from_json("").unwrap().folders.is_empty());
        let err = ManagerOptions::from_json(r#"{"keep_alive": 5}"#).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(
            err.message().contains("'keep_alive'") && err.message().contains("keep_alive_ms"),
            "{err}"
        );
        let err = ManagerOptions::from_json(r#"{"folders": "/tmp"}"#).unwrap_err();
        assert!(err.message().contains("'folders'"), "{err}");
        let err = ManagerOptions::from_json(r#"{"memory_budget_bytes": -1}"#).unwrap_err();
        assert!(err.message().contains("'memory_budget_bytes'"), "{err}");
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("smollm2").is_ok());
        assert!(check_id("org/model:q4").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("two words").is_err());
        assert!(check_id(&"x".repeat(129)).is_err());
    }
}
