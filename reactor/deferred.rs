//! Deferred callbacks: run a closure in the check phase (Node's `setImmediate`).
//!
//! ```
//! use std::{cell::RefCell, rc::Rc};
//! use reactor::EventLoop;
//!
//! let mut lp = EventLoop::new()?;
//! let order = Rc::new(RefCell::new(Vec::new()));
//! let log = order.clone();
//! lp.defer(move |core| {
//!     log.borrow_mut().push("first pass");
//!     let log = log.clone();
//!     // Deferred from a deferred callback: waits for the next iteration.
//!     core.defer(move |_| log.borrow_mut().push("second pass"));
//! });
//! lp.run_nowait()?;
//! assert_eq!(*order.borrow(), ["first pass"]);
//! lp.run()?;
//! assert_eq!(*order.borrow(), ["first pass", "second pass"]);
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! # The contract
//!
//! - A deferred callback runs in the check phase of the current iteration, before the check
//!   handles, or of the next iteration if it was deferred from the check phase itself. Callbacks
//!   run in the order they were deferred, each exactly once.
//! - While callbacks are queued the loop is alive and its poll does not block.
//! - The queue grows only by what callbacks defer; there is no cancellation (keep a flag in the
//!   closure if one may need to be skipped).

use std::collections::VecDeque;
use std::mem;

use crate::dispatch::{self, Task};
use crate::event_loop::Core;
use crate::trace::{Act, Kind};

/// The queue of deferred callbacks.
pub(crate) struct Deferred {
    queue: VecDeque<Task>,
    /// An empty queue kept to swap in, so that neither queue reallocates in steady state.
    spare: VecDeque<Task>,
}

impl Deferred {
    /// Queues `task` for this iteration's check phase, with the site it carries (for a
    /// callback the loop defers on the user's behalf, such as a cancelled work's `done`).
    pub(crate) fn push(&mut self, task: Task) {
        self.queue.push_back(task);
    }

    pub(crate) fn new() -> Self {
        Deferred { queue: VecDeque::new(), spare: VecDeque::new() }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

impl Core {
    /// Runs `callback` in this iteration's check phase. See the [module docs](self).
    #[track_caller]
    pub fn defer(&mut self, callback: impl FnOnce(&mut Core) + 'static) {
        let task = self.task(Act::Deferred, Box::new(callback));
        self.deferred.queue.push_back(task);
    }

    /// Runs the callbacks deferred so far. Those they defer go to the fresh queue swapped in
    /// here, which the next iteration runs.
    pub(crate) fn run_deferred(&mut self) {
        if self.deferred.queue.is_empty() {
            return; // the usual case: skip the swap of the two queues
        }
        let fresh = mem::take(&mut self.deferred.spare);
        let mut batch = mem::replace(&mut self.deferred.queue, fresh);
        while let Some(task) = batch.pop_front() {
            dispatch::run_task(self, task, Kind::Deferred);
        }
        self.deferred.spare = batch;
    }
}
