//! `Manager`: several models by id within a memory budget (core's `Manager`). Calls that read
//! model files or load models (`register`, `scan`, `get`, `swap`) and those that may free one
//! (`unload`, `remove`, `close`) run with the GIL released; `get` hands out an ordinary
//! `Model` whose `close()` lets go of that handle only.

use crate::convert::{kwargs_json, to_py_value};
use crate::error::to_py;
use crate::model::Model;
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use uml_core::manager::ManagerOptions;
use uml_core::options::LoadOptions;
use uml_core::pull::{PullOptions, PullProgress};
use uml_core::{CancelToken, Error, RemoteEndpoint};

#[pyclass(module = "uml._uml", name = "Manager", frozen)]
pub struct Manager {
    inner: Mutex<Option<Arc<uml_core::manager::Manager>>>,
}

fn load_options(options: Option<&Bound<'_, PyDict>>) -> PyResult<LoadOptions> {
    LoadOptions::from_json(&kwargs_json(options, "load option")?).map_err(to_py)
}

impl Manager {
    fn open(&self) -> PyResult<Arc<uml_core::manager::Manager>> {
        self.inner.lock().clone().ok_or_else(|| {
            to_py(Error::invalid_argument(
                "this manager is closed (by close() or the end of its `with` block); create a \
                 new uml.Manager",
            ))
        })
    }
}

#[pymethods]
impl Manager {
    /// A manager with no models yet: `memory_budget_bytes` (None: 80% of the RAM available
    /// now), `keep_alive` (seconds a model may stay idle before it is unloaded; None: until
    /// evicted), `folders` (the only places models load from, and what `scan` searches; empty:
    /// any path).
    #[new]
    #[pyo3(signature = (memory_budget_bytes=None, keep_alive=None, folders=Vec::new()))]
    fn new(
        py: Python<'_>,
        memory_budget_bytes: Option<i64>,
        keep_alive: Option<f64>,
        folders: Vec<PathBuf>,
    ) -> PyResult<Self> {
        let memory_budget_bytes = memory_budget_bytes
            .map(|n| {
                u64::try_from(n).map_err(|_| {
                    to_py(Error::invalid_argument(format!(
                        "memory_budget_bytes = {n} is invalid: pass the bytes the loaded models \
                         may take together (>= 0), or None for 80% of the available RAM"
                    )))
                })
            })
            .transpose()?;
        let keep_alive = keep_alive
            .map(|s| {
                Duration::try_from_secs_f64(s).map_err(|_| {
                    to_py(Error::invalid_argument(format!(
                        "keep_alive = {s} is invalid: pass the seconds an idle model stays \
                         loaded (>= 0), or None to keep it until it is evicted"
                    )))
                })
            })
            .transpose()?;
        let options = ManagerOptions {
            memory_budget_bytes,
            keep_alive,
            folders,
        };
        let manager = py
            .detach(move || uml_core::manager::Manager::new(options))
            .map_err(to_py)?;
        Ok(Manager {
            inner: Mutex::new(Some(Arc::new(manager))),
        })
    }

    /// Register the model at `path` as `id`, loaded with `options` when first used.
    #[pyo3(signature = (id, path, options=None))]
    fn register(
        &self,
        py: Python<'_>,
        id: String,
        path: PathBuf,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let (manager, options) = (self.open()?, load_options(options)?);
        py.detach(move || manager.register(&id, &path, options))
            .map_err(to_py)
    }

    /// Register `model` served by the OpenAI-compatible endpoint at `url` as `id`; `get` opens
    /// it (asking the endpoint) when first used.
    #[pyo3(signature = (id, url, model, api_key=None, options=None))]
    fn register_remote(
        &self,
        id: String,
        url: String,
        model: String,
        api_key: Option<String>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let (manager, options) = (self.open()?, load_options(options)?);
        let endpoint = RemoteEndpoint {
            url,
            model,
            api_key,
        };
        // No I/O: the endpoint is first asked by `get`.
        manager
            .register_remote(&id, endpoint, options)
            .map_err(to_py)
    }

    /// Serve `name` from `model` at `url` when its local load fails.
    #[pyo3(signature = (name, url, model, api_key=None))]
    fn set_fallback(
        &self,
        name: String,
        url: String,
        model: String,
        api_key: Option<String>,
    ) -> PyResult<()> {
        let endpoint = RemoteEndpoint {
            url,
            model,
            api_key,
        };
        self.open()?.set_fallback(&name, endpoint).map_err(to_py)
    }

    /// Another name for the model `id`.
    fn alias(&self, alias: String, id: String) -> PyResult<()> {
        self.open()?.alias(&alias, &id).map_err(to_py)
    }

    /// Register every model in the folders not registered yet; returns the new ids.
    #[pyo3(signature = (options=None))]
    fn scan(&self, py: Python<'_>, options: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<String>> {
        let (manager, options) = (self.open()?, load_options(options)?);
        py.detach(move || manager.scan(&options)).map_err(to_py)
    }

    /// Download `spec` from the hub into the first folder and register it (core's
    /// `Manager::pull`); returns the pull report with its `id`. `progress(file, bytes, total)`
    /// is called about every MiB; returning False (or Ctrl-C) cancels.
    #[pyo3(signature = (spec, pull_options=None, options=None, progress=None))]
    fn pull<'py>(
        &self,
        py: Python<'py>,
        spec: String,
        pull_options: Option<&Bound<'py, PyDict>>,
        options: Option<&Bound<'py, PyDict>>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (manager, options) = (self.open()?, load_options(options)?);
        let pull_options =
            PullOptions::from_json(&kwargs_json(pull_options, "pull option")?).map_err(to_py)?;
        let cancel = CancelToken::new();
        // As in a load: the callback runs Python's signal handlers too, and an exception from
        // either is raised instead of core's "cancelled".
        let mut failure: Option<PyErr> = None;
        let mut on_progress = |p: &PullProgress| {
            Python::attach(|py| {
                let go_on = match py.check_signals() {
                    Err(e) => Err(e),
                    Ok(()) => match &progress {
                        None => Ok(true),
                        Some(callback) => callback
                            .call1(py, (p.file, p.bytes, p.total))
                            .map(|ret| !ret.bind(py).is(&*pyo3::types::PyBool::new(py, false))),
                    },
                };
                match go_on {
                    Ok(true) => {}
                    Ok(false) => cancel.cancel(),
                    Err(e) => {
                        failure = Some(e);
                        cancel.cancel();
                    }
                }
            })
        };
        let pulled = py.detach(|| {
            manager.pull(
                &spec,
                &pull_options,
                options,
                Some(&cancel),
                &mut on_progress,
            )
        });
        if let Some(e) = failure {
            return Err(e);
        }
        to_py_value(py, &pulled.map_err(to_py)?)
    }

    /// The model `name` (an id or alias), loaded first if needed, as a new `Model` handle.
    fn get(&self, py: Python<'_>, name: String) -> PyResult<Model> {
        let manager = self.open()?;
        let model = py.detach(move || manager.get(&name)).map_err(to_py)?;
        Ok(Model::managed(model))
    }

    /// Load the file at `path` under the existing `name` (hot-swap).
    #[pyo3(signature = (name, path, options=None))]
    fn swap(
        &self,
        py: Python<'_>,
        name: String,
        path: PathBuf,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let (manager, options) = (self.open()?, load_options(options)?);
        py.detach(move || manager.swap(&name, &path, options))
            .map_err(to_py)
    }

    /// Unload `name`; returns the bytes the budget counted for it (0: it was not loaded).
    fn unload(&self, py: Python<'_>, name: String) -> PyResult<u64> {
        let manager = self.open()?;
        py.detach(move || manager.unload(&name)).map_err(to_py)
    }

    /// Unregister `name` and its aliases, unloading it; returns the bytes as `unload`.
    fn remove(&self, py: Python<'_>, name: String) -> PyResult<u64> {
        let manager = self.open()?;
        py.detach(move || manager.remove(&name)).map_err(to_py)
    }

    /// Every registered model, as a list of dicts.
    fn list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py_value(py, &self.open()?.list())
    }

    #[getter]
    fn budget_bytes(&self) -> PyResult<u64> {
        Ok(self.open()?.budget_bytes())
    }

    #[getter]
    fn used_bytes(&self) -> PyResult<u64> {
        Ok(self.open()?.used_bytes())
    }

    #[getter]
    fn keep_alive(&self) -> PyResult<Option<f64>> {
        Ok(self.open()?.keep_alive().map(|d| d.as_secs_f64()))
    }

    /// Let go of every model (those no `Model` handle holds are freed now). Idempotent.
    fn close(&self, py: Python<'_>) {
        let manager = self.inner.lock().take();
        py.detach(move || drop(manager));
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().is_none()
    }
}
