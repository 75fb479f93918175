//! Long calls never block the event loop: their work runs on core's task threads
//! (`uml_core::runner`, which also keeps llama.cpp's OpenMP teams off libuv's threads), and
//! settles a JavaScript promise through napi's deferred, which hands the value to the event
//! loop from any thread. Work that yields a series (text pieces, load progress) fills a
//! [`Queue`] that JavaScript pulls from one promise at a time (`lib/index.ts` turns it into an
//! async iterator).

use crate::error::to_napi;
use napi::bindgen_prelude::{Object, ToNapiValue};
use napi::{Env, JsDeferred};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use uml_core::runner::{self, Active, Reporter};
use uml_core::{CancelToken, Error, ErrorKind};

type Resolver<D> = Box<dyn FnOnce(Env) -> napi::Result<D> + Send>;
type Deferred<D> = JsDeferred<D, Resolver<D>>;

fn resolve<D: ToNapiValue + Send + 'static>(deferred: Deferred<D>, value: D) {
    deferred.resolve(Box::new(move |_| Ok(value)));
}

/// Settles a promise with the task's result, converted by `convert` on the task's thread.
struct PromiseReporter<D: ToNapiValue, C> {
    deferred: Deferred<D>,
    convert: C,
}

impl<R, D, C> Reporter<R> for PromiseReporter<D, C>
where
    R: Send + 'static,
    D: ToNapiValue + Send + 'static,
    C: FnOnce(R) -> uml_core::Result<D> + Send + 'static,
{
    fn piece(&mut self, _: &str) -> bool {
        true
    }

    fn done(self, result: uml_core::Result<R>) {
        match result.and_then(self.convert) {
            Ok(value) => resolve(self.deferred, value),
            Err(e) => self.deferred.reject(to_napi(e)),
        }
    }
}

/// Run `work` on a task thread registered in `active`; the returned promise settles with
/// `convert(result)` or rejects with the error.
pub fn promise<'env, R, D, W, C>(
    env: &'env Env,
    active: &Arc<Active>,
    cancel: CancelToken,
    work: W,
    convert: C,
) -> napi::Result<Object<'env>>
where
    R: Send + 'static,
    D: ToNapiValue + Send + 'static,
    W: FnOnce() -> uml_core::Result<R> + Send + 'static,
    C: FnOnce(R) -> uml_core::Result<D> + Send + 'static,
{
    let (deferred, promise) = env.create_deferred::<D, Resolver<D>>()?;
    let reporter = PromiseReporter { deferred, convert };
    runner::spawn(active, cancel, move |_| work(), reporter).map_err(to_napi)?;
    Ok(promise)
}

/// The end of a series: its final value, or the error it failed with.
enum End<E> {
    Value(E),
    /// The value was handed over by [`Queue::take_end`].
    Taken,
    Failed(ErrorKind, String),
}

struct QueueState<T: ToNapiValue, E> {
    items: VecDeque<T>,
    end: Option<End<E>>,
    /// A `next()` promise waiting for the next item.
    waiter: Option<Deferred<Option<T>>>,
}

/// Items a task produces, read by JavaScript one promise at a time, then the task's end.
pub struct Queue<T: ToNapiValue, E> {
    state: Mutex<QueueState<T, E>>,
}

impl<T: ToNapiValue + Send + 'static, E: Clone> Queue<T, E> {
    pub fn new() -> Arc<Self> {
        Arc::new(Queue {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                end: None,
                waiter: None,
            }),
        })
    }

    /// Add an item (task thread): a waiting `next()` gets it at once.
    pub fn push(&self, item: T) {
        let mut state = self.state.lock();
        match state.waiter.take() {
            Some(waiter) => resolve(waiter, Some(item)),
            None => state.items.push_back(item),
        }
    }

    /// End the series (task thread); a waiting `next()` learns of it.
    pub fn finish(&self, result: uml_core::Result<E>) {
        let mut state = self.state.lock();
        let end = match result {
            Ok(value) => End::Value(value),
            Err(e) => End::Failed(e.kind(), e.message().to_string()),
        };
        if let Some(waiter) = state.waiter.take() {
            settle_end(waiter, &end);
        }
        state.end = Some(end);
    }

    /// A promise of the next item, or of `null` once the series has ended (rejected if it
    /// failed).
    pub fn next<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let (deferred, promise) = env.create_deferred::<Option<T>, Resolver<Option<T>>>()?;
        let mut state = self.state.lock();
        if let Some(item) = state.items.pop_front() {
            resolve(deferred, Some(item));
        } else if let Some(end) = &state.end {
            settle_end(deferred, end);
        } else if state.waiter.is_some() {
            return Err(to_napi(Error::invalid_argument(
                "next() was called again before its previous promise settled; await each one",
            )));
        } else {
            state.waiter = Some(deferred);
        }
        Ok(promise)
    }

    /// The final value once the series has ended well; `None` while it runs, if it failed,
    /// or once taken.
    pub fn end(&self) -> Option<E> {
        match &self.state.lock().end {
            Some(End::Value(value)) => Some(value.clone()),
            Some(End::Taken | End::Failed(..)) | None => None,
        }
    }

    /// The final value, handed over: the queue keeps nothing of it (a loaded model must not
    /// stay alive in a `Loading` object until the garbage collector gets to it).
    pub fn take_end(&self) -> Option<E> {
        let mut state = self.state.lock();
        match state.end.take() {
            Some(End::Value(value)) => {
                state.end = Some(End::Taken);
                Some(value)
            }
            other => {
                state.end = other;
                None
            }
        }
    }

    pub fn ended(&self) -> bool {
        self.state.lock().end.is_some()
    }
}

fn settle_end<T: ToNapiValue + Send + 'static, E>(waiter: Deferred<Option<T>>, end: &End<E>) {
    match end {
        End::Value(_) | End::Taken => resolve(waiter, None),
        End::Failed(kind, message) => waiter.reject(to_napi(Error::new(*kind, message.clone()))),
    }
}
