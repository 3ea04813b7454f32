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
//!
//! The loop queues some callbacks of its own here, in one order with the rest, so that none
//! runs inside the call that caused it: the callbacks of [`write_with`](Core::write_with), once
//! the kernel has taken their bytes or the stream has ended (they run as `write done`
//! callbacks, not deferred ones), and the `done` of cancelled [pool work](crate::pool).

use std::collections::VecDeque;
use std::mem;

use crate::dispatch::{self, Task};
use crate::event_loop::Core;
use crate::trace::{Act, Kind};

/// The queue of deferred callbacks, each with the kind it runs as.
pub(crate) struct Deferred {
    queue: VecDeque<(Task, Kind)>,
    /// An empty queue kept to swap in, so that neither queue reallocates in steady state.
    spare: VecDeque<(Task, Kind)>,
}

impl Deferred {
    /// Queues `task` for this iteration's check phase, with the site it carries (for a
    /// callback the loop defers on the user's behalf, such as a cancelled work's `done`).
    pub(crate) fn push(&mut self, task: Task) {
        self.push_as(task, Kind::Deferred);
    }

    /// [`Deferred::push`] for a callback that is not a deferred one, such as a `write_with`
    /// callback: it runs in the check phase all the same, but as `kind`, which is what its
    /// chain and a panic report call it (`write done callback`).
    pub(crate) fn push_as(&mut self, task: Task, kind: Kind) {
        self.queue.push_back((task, kind));
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
        self.deferred.push(task);
    }

    /// Runs the callbacks deferred so far. Those they defer go to the fresh queue swapped in
    /// here, which the next iteration runs.
    pub(crate) fn run_deferred(&mut self) {
        if self.deferred.queue.is_empty() {
            return; // the usual case: skip the swap of the two queues
        }
        let fresh = mem::take(&mut self.deferred.spare);
        let mut batch = mem::replace(&mut self.deferred.queue, fresh);
        while let Some((task, kind)) = batch.pop_front() {
            dispatch::run_task(self, task, kind);
        }
        self.deferred.spare = batch;
    }
}
