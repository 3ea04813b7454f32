//! A source location that one thread publishes and another reads: how the loop tells its
//! watchdog thread where the running callback came from (see [`watchdog`](crate::watchdog)).

use std::panic::Location;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

/// An atomic `Option<&'static Location<'static>>`.
pub(crate) struct AtomicSite(AtomicPtr<Location<'static>>);

impl AtomicSite {
    pub(crate) const fn new() -> Self {
        AtomicSite(AtomicPtr::new(ptr::null_mut()))
    }

    pub(crate) fn store(&self, site: Option<&'static Location<'static>>) {
        let ptr = site.map_or(ptr::null_mut(), |site| ptr::from_ref(site).cast_mut());
        self.0.store(ptr, Ordering::Relaxed);
    }

    pub(crate) fn load(&self) -> Option<&'static Location<'static>> {
        let ptr = self.0.load(Ordering::Relaxed);
        // SAFETY: `store` is the only writer, and it stores either null or a pointer made from
        // a `&'static Location<'static>`: a location that lives for the whole program and is
        // never written through, so a shared reference to it is valid on any thread.
        unsafe { ptr.as_ref() }
    }
}
