//! How many generations and embedding calls run on one model at once. Each holds a context (KV
//! cache and compute buffers), so without a bound a burst of host threads allocates contexts
//! until the process dies. The bound comes from the memory estimate at load (or the
//! `max_parallel` load option); callers past it wait in line, cancellably, as requests wait
//! for a free slot in llama.cpp's server.

use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::cancel::CancelToken;
use crate::estimate::MemoryEstimate;

/// Most slots chosen without the `max_parallel` option: four streams already fill a batched
/// decode's memory bandwidth on a CPU, and each slot's KV cells are allocated at load.
pub const MAX_AUTO_PARALLEL: u32 = 4;

/// How often a waiting caller looks at its cancel token.
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// The slots a model loaded with `estimate` (for one slot), with `available` bytes of RAM
/// before the load, gets by default: each slot more needs its KV cache (and room for its
/// share of compute), taken from at most half of what is left, so the host keeps the rest.
pub fn parallel_from_memory(estimate: &MemoryEstimate, available: u64) -> u32 {
    let per_context = estimate
        .kv_cache_bytes
        .saturating_add(estimate.compute_bytes)
        .max(1);
    let spare = available.saturating_sub(estimate.host_bytes) / 2;
    let more = u32::try_from(spare / per_context).unwrap_or(u32::MAX);
    more.saturating_add(1).min(MAX_AUTO_PARALLEL)
}

/// Most callers waiting for a free place by default: a burst beyond it is refused with `Busy`
/// rather than queued without bound (Ollama's default queue holds 512 as well).
pub const DEFAULT_MAX_QUEUED: u32 = 512;

/// A counting gate with a bounded line: at most `max` holders of a [`Permit`] at once, the
/// next `max_queued` callers wait in arrival order, and one more is refused.
#[derive(Debug)]
pub(crate) struct Admission {
    max: u32,
    max_queued: u32,
    state: Mutex<Line>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct Line {
    active: u32,
    /// Tickets of the callers waiting, oldest first.
    waiting: std::collections::VecDeque<u64>,
    next_ticket: u64,
}

/// A place in the running set; dropping it lets the next caller in.
pub(crate) struct Permit<'a>(&'a Admission);

/// Why a caller did not get in.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its cancel token fired while it waited.
    Cancelled,
    /// The line was full.
    Busy { running: u32, queued: u32 },
}

impl Admission {
    pub fn new(max: u32, max_queued: u32) -> Self {
        Admission {
            max: max.max(1),
            max_queued,
            state: Mutex::new(Line::default()),
            freed: Condvar::new(),
        }
    }

    /// Callers running and waiting now.
    pub fn counts(&self) -> (u32, u32) {
        let line = self.state.lock();
        (line.active, line.waiting.len() as u32)
    }

    /// Wait for a free place, behind every caller that came earlier.
    pub fn enter(&self, cancel: Option<&CancelToken>) -> Result<Permit<'_>, Refused> {
        let mut line = self.state.lock();
        if line.waiting.is_empty() && line.active < self.max {
            line.active += 1;
            return Ok(Permit(self));
        }
        if line.waiting.len() >= self.max_queued as usize {
            return Err(Refused::Busy {
                running: line.active,
                queued: line.waiting.len() as u32,
            });
        }
        let ticket = line.next_ticket;
        line.next_ticket += 1;
        line.waiting.push_back(ticket);
        loop {
            if line.waiting.front() == Some(&ticket) && line.active < self.max {
                line.waiting.pop_front();
                line.active += 1;
                // The next in line may fit too (several places freed at once).
                self.freed.notify_all();
                return Ok(Permit(self));
            }
            if cancel.is_some_and(CancelToken::is_cancelled) {
                line.waiting.retain(|&t| t != ticket);
                self.freed.notify_all();
                return Err(Refused::Cancelled);
            }
            self.freed.wait_for(&mut line, CANCEL_POLL);
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.state.lock().active -= 1;
        self.0.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[test]
    fn at_most_max_run_at_once_and_the_rest_wait() {
        let gate = Arc::new(Admission::new(2, 16));
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
        let line = gate.state.lock();
        assert_eq!((line.active, line.waiting.len()), (0, 0));
    }

    #[test]
    fn waiting_callers_get_in_in_arrival_order() {
        let gate = Arc::new(Admission::new(1, 16));
        let held = gate.enter(None).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for i in 0..5 {
            let (waiter, order) = (gate.clone(), order.clone());
            threads.push(std::thread::spawn(move || {
                let _permit = waiter.enter(None).unwrap();
                order.lock().push(i);
            }));
            // Each one is in line before the next arrives.
            while gate.state.lock().waiting.len() < i + 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        drop(held);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock(), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_full_line_refuses_with_busy() {
        let gate = Arc::new(Admission::new(1, 1));
        let _held = gate.enter(None).unwrap();
        let waiter = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.enter(None).map(drop).is_ok())
        };
        while gate.state.lock().waiting.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            gate.enter(None).map(drop),
            Err(Refused::Busy {
                running: 1,
                queued: 1
            })
        );
        drop(_held);
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn a_waiting_caller_leaves_when_cancelled() {
        let gate = Admission::new(1, 4);
        let _held = gate.enter(None).unwrap();
        let cancel = CancelToken::new();
        cancel.cancel();
        assert_eq!(gate.enter(Some(&cancel)).map(drop), Err(Refused::Cancelled));
        assert!(gate.state.lock().waiting.is_empty());
    }

    #[test]
    fn memory_decides_how_many_contexts_fit() {
        let estimate = MemoryEstimate {
            n_ctx: 4096,
            cache_type: crate::KvCacheType::F16,
            gpu_layers: 0,
            n_ubatch: 512,
            flash_attention: true,
            parallel: 1,
            private_contexts: 0,
            weights_bytes: 1000,
            kv_cache_bytes: 300,
            compute_bytes: 100,
            compute_reserved_bytes: 100,
            overhead_bytes: 0,
            adapters_bytes: 0,
            host_bytes: 1400,
            device_bytes: 0,
            total_bytes: 1400,
        };
        assert_eq!(parallel_from_memory(&estimate, 1400), 1);
        assert_eq!(parallel_from_memory(&estimate, 1000), 1);
        assert_eq!(
            parallel_from_memory(&estimate, 1400 + 2 * (2 * 400) + 799),
            3
        );
        assert_eq!(parallel_from_memory(&estimate, 1400 + 2 * (3 * 400)), 4);
        assert_eq!(parallel_from_memory(&estimate, u64::MAX), MAX_AUTO_PARALLEL);
    }
}
