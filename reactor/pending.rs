//! The pending phase: work left over from the previous iteration.
//!
//! Under edge-triggered readiness an event is reported once. When the loop stops short of
//! finishing the work behind an event, because a fairness budget ran out, nothing will report
//! that work again: the loop must remember it and come back to it by itself. This queue is that
//! memory. The poll phase does not block while it holds anything, and the pending phase of the
//! next iteration continues the work, again within its budget.
//!
//! Today the only such work is the rest of the cross-thread inbox (closures posted through a
//! [`Remote`](crate::Remote) beyond one iteration's budget). Byte streams stopped by their read
//! budget will join it.

use crate::event_loop::Core;

/// What the next pending phase has to continue.
pub(crate) struct Pending {
    /// The inbox had more posted closures than one iteration may run.
    inbox: bool,
}

impl Pending {
    pub(crate) fn new() -> Self {
        Pending { inbox: false }
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.inbox
    }

    /// Remember to continue draining the inbox next iteration.
    pub(crate) fn push_inbox(&mut self) {
        self.inbox = true;
    }
}

impl Core {
    /// The pending phase: continue what the previous iteration left for it.
    pub(crate) fn run_pending(&mut self) {
        if std::mem::take(&mut self.pending.inbox) {
            self.drain_inbox();
        }
    }
}
