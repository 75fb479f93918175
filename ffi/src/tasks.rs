//! The C ABI's compute runs on core's task threads (`uml_core::runner` says why: a C host's
//! long-lived threads would each keep an OpenMP team of their own, and decoding slows down once
//! there are more teams than cores). The calling thread blocks until the result and runs the
//! host's callback itself, in lockstep with the task, as the ABI promises.

use std::sync::{Arc, LazyLock};
use uml_core::runner::{self, Active, Pieces};
use uml_core::{CancelToken, Result};

/// Every task the C ABI started (the process-wide set in core drains them all at exit).
static TASKS: LazyLock<Arc<Active>> = LazyLock::new(Arc::default);

/// Run `work` on a task thread and wait for its result. `work` gets the caller's cancel token
/// (if any) and a sink for text pieces; each piece is handed to `on_piece` on this thread, and
/// its answer (false: stop) goes back to the task before it continues.
pub(crate) fn run<R, W>(
    cancel: Option<CancelToken>,
    on_piece: Option<&mut dyn FnMut(&str) -> bool>,
    work: W,
) -> Result<R>
where
    R: Send + 'static,
    W: FnOnce(Option<&CancelToken>, &mut dyn FnMut(&str) -> bool) -> Result<R> + Send + 'static,
{
    let registered = cancel.clone().unwrap_or_default();
    let pieces = if on_piece.is_some() {
        Pieces::Lockstep
    } else {
        Pieces::Dropped
    };
    let task = runner::spawn_task(&TASKS, registered, pieces, move |sink| {
        work(cancel.as_ref(), sink)
    })?;
    match on_piece {
        Some(on_piece) => task.wait(on_piece),
        None => task.wait(&mut |_| true),
    }
}
