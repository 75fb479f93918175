//! How many generations and embedding calls run on one model at once. Each holds a context (KV
//! cache and compute buffers), so without a bound a burst of host threads allocates contexts
//! until the process dies. The bound comes from the memory estimate at load (or the
//! `max_parallel` load option); callers past it wait in line, cancellably, as requests wait
//! for a free slot in llama.cpp's server.

use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::cancel::CancelToken;
use crate::estimate::MemoryEstimate;

/// Most parallel work the memory bound alone allows: beyond this, threads compete for the same
/// cores and gain nothing.
pub const MAX_AUTO_PARALLEL: u32 = 16;

/// How often a waiting caller looks at its cancel token.
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// The parallel work a model loaded with `estimate`, with `available` bytes of RAM before the
/// load, can hold: one context is in the estimate; each more needs its KV cache and compute
/// buffers from what is left.
pub fn parallel_from_memory(estimate: &MemoryEstimate, available: u64) -> u32 {
    let per_context = estimate
        .kv_cache_bytes
        .saturating_add(estimate.compute_bytes)
        .max(1);
    let spare = available.saturating_sub(estimate.host_bytes);
    let more = u32::try_from(spare / per_context).unwrap_or(u32::MAX);
    more.saturating_add(1).min(MAX_AUTO_PARALLEL)
}

/// A counting gate: at most `max` holders of a [`Permit`] at once.
#[derive(Debug)]
pub(crate) struct Admission {
    max: u32,
    active: Mutex<u32>,
    freed: Condvar,
}

/// A place in the running set; dropping it lets the next caller in.
pub(crate) struct Permit<'a>(&'a Admission);

impl Admission {
    pub fn new(max: u32) -> Self {
        Admission {
            max: max.max(1),
            active: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Wait for a free place. `None` when `cancel` fires first.
    pub fn enter(&self, cancel: Option<&CancelToken>) -> Option<Permit<'_>> {
        let mut active = self.active.lock();
        while *active >= self.max {
            if cancel.is_some_and(CancelToken::is_cancelled) {
                return None;
            }
            self.freed.wait_for(&mut active, CANCEL_POLL);
        }
        *active += 1;
        Some(Permit(self))
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.active.lock() -= 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[test]
    fn at_most_max_run_at_once_and_the_rest_wait() {
        let gate = Arc::new(Admission::new(2));
        let running = Arc::new(AtomicU32::new(0));
        let peak = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gate, running, peak) = (gate.clone(), running.clone(), peak.clone());
                std::thread::spawn(move || {
                    let _permit = gate.enter(None).unwrap();
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(10));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(*gate.active.lock(), 0);
    }

    #[test]
    fn a_waiting_caller_leaves_when_cancelled() {
        let gate = Admission::new(1);
        let _held = gate.enter(None).unwrap();
        let cancel = CancelToken::new();
        cancel.cancel();
        assert!(gate.enter(Some(&cancel)).is_none());
    }

    #[test]
    fn memory_decides_how_many_contexts_fit() {
        let estimate = MemoryEstimate {
            n_ctx: 4096,
            cache_type: crate::KvCacheType::F16,
            gpu_layers: 0,
            n_ubatch: 512,
            flash_attention: true,
            weights_bytes: 1000,
            kv_cache_bytes: 300,
            compute_bytes: 100,
            compute_reserved_bytes: 100,
            overhead_bytes: 0,
            host_bytes: 1400,
            device_bytes: 0,
            total_bytes: 1400,
        };
        assert_eq!(parallel_from_memory(&estimate, 1400), 1);
        assert_eq!(parallel_from_memory(&estimate, 1000), 1);
        assert_eq!(parallel_from_memory(&estimate, 1400 + 3 * 400 + 399), 4);
        assert_eq!(parallel_from_memory(&estimate, u64::MAX), MAX_AUTO_PARALLEL);
    }
}
