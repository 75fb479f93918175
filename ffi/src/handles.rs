//! Handle registries. A C handle is a numbered token, never a pointer uml dereferences: every
//! call looks the number up under a lock and gets an `Arc` of the object. So a NULL, garbage,
//! foreign or already-freed handle is refused with a status instead of being undefined
//! behaviour, a double free is harmless, and freeing a model while other threads still
//! generate from it only drops it once they return.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use uml_core::{Error, ErrorKind, Result};

/// Low bits of a handle value say which registry it belongs to, so a `uml_cancel *` passed as
/// a `uml_model *` is recognised as the wrong kind.
const TAG_BITS: u32 = 4;
const TAG_MASK: usize = (1 << TAG_BITS) - 1;

pub(crate) struct Registry<T> {
    tag: usize,
    /// The C type, for messages ("uml_model").
    type_name: &'static str,
    /// Which function makes and which frees such handles, for messages.
    made_by: &'static str,
    freed_by: &'static str,
    /// The kind of error for a handle that was freed (a model: `ModelClosed`).
    freed_kind: ErrorKind,
    inner: Mutex<Inner<T>>,
}

struct Inner<T> {
    live: BTreeMap<usize, Arc<T>>,
    /// The next id; ids are never reused, so a freed handle stays recognisably freed.
    next: usize,
}

impl<T> Registry<T> {
    pub(crate) const fn new(
        tag: usize,
        type_name: &'static str,
        made_by: &'static str,
        freed_by: &'static str,
        freed_kind: ErrorKind,
    ) -> Self {
        Registry {
            tag,
            type_name,
            made_by,
            freed_by,
            freed_kind,
            inner: Mutex::new(Inner {
                live: BTreeMap::new(),
                next: 1,
            }),
        }
    }

    /// Register `value` and return its handle (never NULL).
    pub(crate) fn insert<H>(&self, value: T) -> *mut H {
        self.insert_arc(Arc::new(value))
    }

    /// Register an object others hold too (a model the manager keeps) and return a new handle
    /// to it (never NULL); freeing the handle drops only this `Arc`.
    pub(crate) fn insert_arc<H>(&self, value: Arc<T>) -> *mut H {
        let mut inner = self.inner.lock();
        let id = inner.next;
        inner.next += 1;
        let key = (id << TAG_BITS) | self.tag;
        inner.live.insert(key, value);
        // A handle is a number C stores and hands back; it is never dereferenced.
        std::ptr::without_provenance_mut(key)
    }

    /// The object behind handle `p`, or why `p` is not a live handle (`name` is the argument).
    pub(crate) fn get<H>(&self, p: *const H, name: &str) -> Result<Arc<T>> {
        let key = p.addr();
        if key == 0 {
            return Err(Error::invalid_argument(format!(
                "{name} is NULL: pass a {} * from {}",
                self.type_name, self.made_by
            )));
        }
        let inner = self.inner.lock();
        if let Some(value) = inner.live.get(&key) {
            return Ok(Arc::clone(value));
        }
        let id = key >> TAG_BITS;
        if key & TAG_MASK == self.tag && id > 0 && id < inner.next {
            return Err(Error::new(
                self.freed_kind,
                format!(
                    "{name} ({key:#x}) was already freed with {}; it cannot be used any more",
                    self.freed_by
                ),
            ));
        }
        Err(Error::invalid_argument(format!(
            "{name} ({key:#x}) is not a {} handle: pass the pointer {} returned",
            self.type_name, self.made_by
        )))
    }

    /// Unregister handle `p` and give back its `Arc` (the object is dropped when the last
    /// user's `Arc` goes). Unknown, NULL and already-freed handles give `None`.
    pub(crate) fn remove<H>(&self, p: *mut H) -> Option<Arc<T>> {
        // The caller drops the result outside the lock: freeing a model takes a while.
        self.inner.lock().live.remove(&p.addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Thing;

    #[test]
    fn handles_are_checked_not_dereferenced() {
        static THINGS: Registry<u32> = Registry::new(
            7,
            "uml_thing",
            "uml_thing_new()",
            "uml_thing_free()",
            ErrorKind::ModelClosed,
        );
        let h: *mut Thing = THINGS.insert(5);
        assert_eq!(*THINGS.get(h, "thing").unwrap(), 5);
        let null = THINGS.get(std::ptr::null::<Thing>(), "thing").unwrap_err();
        assert_eq!(null.kind(), ErrorKind::InvalidArgument);
        let garbage: *const Thing = std::ptr::without_provenance(0xdead_beef);
        assert_eq!(
            THINGS.get(garbage, "thing").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        // A second handle to a shared object: freeing it lets go of that handle only.
        let shared = Arc::new(6);
        let h2: *mut Thing = THINGS.insert_arc(Arc::clone(&shared));
        assert_ne!(h2, h);
        assert!(Arc::ptr_eq(&THINGS.get(h2, "thing").unwrap(), &shared));
        drop(THINGS.remove(h2));
        assert_eq!(Arc::strong_count(&shared), 1);
        assert_eq!(THINGS.remove(h).as_deref(), Some(&5));
        assert!(THINGS.remove(h).is_none()); // double free: ignored
        let freed = THINGS.get(h, "thing").unwrap_err();
        assert_eq!(freed.kind(), ErrorKind::ModelClosed);
        assert!(freed.message().contains("already freed"), "{freed}");
    }
}
