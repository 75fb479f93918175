//! `Manager`: several models by id within a memory budget (core's `Manager`). Everything that
//! reads model files or loads them (`register`, `scan`, `get`, `swap`) and `close` run on
//! core's task threads and answer through a promise; `get` resolves with an ordinary `Model`
//! whose `close()` lets go of that handle only. Byte counts cross as numbers (f64: exact
//! below 2^53 bytes).

use crate::cancel::CancelToken;
use crate::convert::{to_js, Options};
use crate::error::{to_napi, OrThrow};
use crate::model::{Model, LOADS};
use crate::task::{self, Queue};
use napi::bindgen_prelude::Object;
use napi::Env;
use napi_derive::napi;
use parking_lot::Mutex;
use serde_json::Value;
use std::sync::Arc;
use uml_core::manager::{ManagedPull, ManagerOptions};
use uml_core::options::LoadOptions;
use uml_core::pull::{PullOptions, PullProgress};
use uml_core::runner::{self, Reporter};
use uml_core::Error;

/// One pull progress event: the repo file being fetched, the bytes of all chosen files on disk
/// so far and their total.
#[napi(object)]
pub struct PullEvent {
    pub file: String,
    pub bytes: f64,
    pub total: f64,
}

type PullQueue = Queue<PullEvent, ManagedPull>;

/// Sends a pull's report (or error) into its queue (progress is pushed by the pull itself).
struct PullReporter(Arc<PullQueue>);

impl Reporter<ManagedPull> for PullReporter {
    fn piece(&mut self, _: &str) -> bool {
        true
    }

    fn done(self, result: uml_core::Result<ManagedPull>) {
        self.0.finish(result);
    }
}

/// A pull running on a task thread: `next()` gives its progress events, then `null`;
/// `report()` then gives what it pulled (or throws its error).
#[napi]
pub struct Pulling {
    queue: Arc<PullQueue>,
}

#[napi]
impl Pulling {
    /// A promise of the next progress event, or of `null` once the pull has ended (rejected if
    /// it failed).
    #[napi(ts_return_type = "Promise<PullEvent | null>")]
    pub fn next<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        self.queue.next(env)
    }

    /// The pull's report (`id`, `repo`, `commit`, `path`, `files`, `downloadedBytes`,
    /// `reusedBytes`), once `next()` has given `null`.
    #[napi]
    pub fn report(&self) -> napi::Result<Value> {
        let report = self.queue.end().ok_or_else(|| {
            to_napi(Error::invalid_argument(
                "no report yet: the pull has not finished, or it failed",
            ))
        })?;
        to_js(&report).or_throw()
    }
}

#[napi]
pub struct Manager {
    inner: Mutex<Option<Arc<uml_core::manager::Manager>>>,
}

/// Load options JSON (camelCase or snake_case keys) as core's.
fn load_options(options_json: &str) -> napi::Result<LoadOptions> {
    let options = Options::parse(options_json, "load option", LoadOptions::FIELDS).or_throw()?;
    LoadOptions::from_json(&options.json).map_err(|e| to_napi(options.explain(e)))
}

impl Manager {
    fn open(&self) -> napi::Result<Arc<uml_core::manager::Manager>> {
        self.inner.lock().clone().ok_or_else(|| {
            to_napi(Error::invalid_argument(
                "this manager is closed (by close() or the end of its `await using` block); \
                 create a new Manager",
            ))
        })
    }

    /// Run `work` with the manager on a task thread; the promise settles with its result.
    fn run<'env, R, W>(&self, env: &'env Env, work: W) -> napi::Result<Object<'env>>
    where
        R: napi::bindgen_prelude::ToNapiValue + Send + 'static,
        W: FnOnce(&uml_core::manager::Manager) -> uml_core::Result<R> + Send + 'static,
    {
        let manager = self.open()?;
        task::promise(
            env,
            &LOADS,
            uml_core::CancelToken::new(),
            move || work(&manager),
            Ok,
        )
    }
}

#[napi]
impl Manager {
    /// A manager with no models yet; `optionsJson` holds `memoryBudgetBytes`, `keepAliveMs`
    /// and `folders` (snake_case keys are accepted too).
    #[napi(constructor, catch_unwind)]
    pub fn new(options_json: String) -> napi::Result<Self> {
        let options =
            Options::parse(&options_json, "manager option", ManagerOptions::FIELDS).or_throw()?;
        let manager_options =
            ManagerOptions::from_json(&options.json).map_err(|e| to_napi(options.explain(e)))?;
        let manager = uml_core::manager::Manager::new(manager_options).or_throw()?;
        Ok(Manager {
            inner: Mutex::new(Some(Arc::new(manager))),
        })
    }

    /// Register the model at `path` as `id`, loaded with `loadOptionsJson` when first used.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn register<'env>(
        &self,
        env: &'env Env,
        id: String,
        path: String,
        load_options_json: String,
    ) -> napi::Result<Object<'env>> {
        let options = load_options(&load_options_json)?;
        self.run(env, move |m| m.register(&id, &path, options))
    }

    /// Register the remote model `endpointJson` names (`{ url, model, apiKey? }`) as `id`,
    /// opened with `loadOptionsJson` when first asked for (nothing is sent to the endpoint
    /// before). On a task thread, as `register`: the manager's lock may be held by a load.
    #[napi(
        js_name = "registerRemote",
        catch_unwind,
        ts_return_type = "Promise<void>"
    )]
    pub fn register_remote<'env>(
        &self,
        env: &'env Env,
        id: String,
        endpoint_json: String,
        load_options_json: String,
    ) -> napi::Result<Object<'env>> {
        let endpoint = crate::convert::endpoint(&endpoint_json).or_throw()?;
        let options = load_options(&load_options_json)?;
        self.run(env, move |m| m.register_remote(&id, endpoint, options))
    }

    /// Serve `name` from the remote model `endpointJson` names when its local load fails.
    #[napi(
        js_name = "setFallback",
        catch_unwind,
        ts_return_type = "Promise<void>"
    )]
    pub fn set_fallback<'env>(
        &self,
        env: &'env Env,
        name: String,
        endpoint_json: String,
    ) -> napi::Result<Object<'env>> {
        let endpoint = crate::convert::endpoint(&endpoint_json).or_throw()?;
        self.run(env, move |m| m.set_fallback(&name, endpoint))
    }

    /// Another name for the model `id`.
    #[napi(catch_unwind)]
    pub fn alias(&self, alias: String, id: String) -> napi::Result<()> {
        self.open()?.alias(&alias, &id).or_throw()
    }

    /// Register every model in the folders not registered yet; resolves with the new ids.
    #[napi(catch_unwind, ts_return_type = "Promise<string[]>")]
    pub fn scan<'env>(
        &self,
        env: &'env Env,
        load_options_json: String,
    ) -> napi::Result<Object<'env>> {
        let options = load_options(&load_options_json)?;
        self.run(env, move |m| m.scan(&options))
    }

    /// Start pulling `spec` from the hub into the first folder (core's `Manager::pull`) with
    /// `pullOptionsJson` (`revision`, `files`, `endpoint`, `token`) and registering it with
    /// `loadOptionsJson`. Cancelling `cancel` stops it at its next progress step.
    #[napi(js_name = "startPull", catch_unwind)]
    pub fn start_pull(
        &self,
        spec: String,
        pull_options_json: String,
        load_options_json: String,
        cancel: &CancelToken,
    ) -> napi::Result<Pulling> {
        let manager = self.open()?;
        let options = load_options(&load_options_json)?;
        let parsed =
            Options::parse(&pull_options_json, "pull option", PullOptions::FIELDS).or_throw()?;
        let pull_options =
            PullOptions::from_json(&parsed.json).map_err(|e| to_napi(parsed.explain(e)))?;
        let queue: Arc<PullQueue> = Queue::new();
        let progress_queue = Arc::clone(&queue);
        let token = cancel.0.clone();
        runner::spawn(
            &LOADS,
            token.clone(),
            move |_| {
                let mut on_progress = |p: &PullProgress| {
                    progress_queue.push(PullEvent {
                        file: p.file.to_string(),
                        bytes: p.bytes as f64,
                        total: p.total as f64,
                    })
                };
                manager.pull(
                    &spec,
                    &pull_options,
                    options,
                    Some(&token),
                    &mut on_progress,
                )
            },
            PullReporter(Arc::clone(&queue)),
        )
        .or_throw()?;
        Ok(Pulling { queue })
    }

    /// The model `name` (an id or alias), loaded first if needed, as a new `Model` handle.
    #[napi(catch_unwind, ts_return_type = "Promise<Model>")]
    pub fn get<'env>(&self, env: &'env Env, name: String) -> napi::Result<Object<'env>> {
        self.run(env, move |m| m.get(&name).map(Model::managed))
    }

    /// Load the file at `path` under the existing `name` (hot-swap).
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn swap<'env>(
        &self,
        env: &'env Env,
        name: String,
        path: String,
        load_options_json: String,
    ) -> napi::Result<Object<'env>> {
        let options = load_options(&load_options_json)?;
        self.run(env, move |m| m.swap(&name, &path, options))
    }

    /// Unload `name`; the bytes the budget counted for it (0: it was not loaded).
    #[napi(catch_unwind)]
    pub fn unload(&self, name: String) -> napi::Result<f64> {
        Ok(self.open()?.unload(&name).or_throw()? as f64)
    }

    /// Unregister `name` and its aliases, unloading it; the bytes as `unload`.
    #[napi(catch_unwind)]
    pub fn remove(&self, name: String) -> napi::Result<f64> {
        Ok(self.open()?.remove(&name).or_throw()? as f64)
    }

    /// Every registered model: `[{ id, aliases, path, state, backend, memoryBytes, idleMs,
    /// activity }]`.
    #[napi(catch_unwind)]
    pub fn list(&self) -> napi::Result<Value> {
        to_js(&self.open()?.list()).or_throw()
    }

    #[napi(getter, js_name = "budgetBytes")]
    pub fn budget_bytes(&self) -> napi::Result<f64> {
        Ok(self.open()?.budget_bytes() as f64)
    }

    #[napi(getter, js_name = "usedBytes")]
    pub fn used_bytes(&self) -> napi::Result<f64> {
        Ok(self.open()?.used_bytes() as f64)
    }

    /// Milliseconds an idle model stays loaded; `null`: until evicted.
    #[napi(getter, js_name = "keepAliveMs")]
    pub fn keep_alive_ms(&self) -> napi::Result<Option<f64>> {
        Ok(self.open()?.keep_alive().map(|d| d.as_millis() as f64))
    }

    /// Let go of every model (those no `Model` handle holds are freed). Resolves once they
    /// are; idempotent.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let manager = self.inner.lock().take();
        task::promise(
            env,
            &LOADS,
            uml_core::CancelToken::new(),
            move || {
                drop(manager);
                Ok(())
            },
            Ok,
        )
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.lock().is_none()
    }
}
