//! The pending phase: work left over from the previous iteration.
//!
//! Under edge-triggered readiness an event is reported once. When the loop stops short of
//! finishing the work behind an event, because a fairness budget ran out, nothing will report
//! that work again: the loop must remember it and come back to it by itself. This queue is that
//! memory. The poll phase does not block while it holds anything, and the pending phase of the
//! next iteration continues the work, again within its budget.
//!
//! What it remembers: the rest of the cross-thread inbox (closures posted through a
//! [`Remote`](crate::Remote) beyond one iteration's budget), the rest of the file-system events
//! ([`FS_EVENT_BUDGET`](crate::fs_event::FS_EVENT_BUDGET)), and sockets whose budget ran out:
//! a stream with more to read ([`READ_BUDGET`](crate::stream::READ_BUDGET)), a listener with
//! more connections waiting ([`ACCEPT_BUDGET`](crate::listener::ACCEPT_BUDGET)), a UDP socket
//! with more datagrams ([`RECV_BUDGET`](crate::udp::RECV_BUDGET)). A stream whose reading was
//! resumed joins them, since the data that arrived while it was paused raised no new edge.

use std::mem;

use crate::event_loop::Core;
use crate::handle::{HandleId, State};

/// What the next pending phase has to continue.
pub(crate) struct Pending {
    /// The inbox had more posted closures than one iteration may run.
    inbox: bool,
    /// The inotify queue had more events than one iteration may read.
    fs_events: bool,
    /// Sockets to continue, in the order they stopped.
    handles: Vec<HandleId>,
    /// Reused buffer for the phase runner.
    batch: Vec<HandleId>,
    /// Counts pending phases (wrapping), so that a stream read in this iteration's pending
    /// phase can tell, when an event for it comes in the same iteration's poll phase, that its
    /// budget for the iteration is spent.
    pass: u32,
}

impl Pending {
    pub(crate) fn new() -> Self {
        Pending { inbox: false, fs_events: false, handles: Vec::new(), batch: Vec::new(), pass: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.inbox && !self.fs_events && self.handles.is_empty()
    }

    /// Remember to continue draining the inbox next iteration.
    pub(crate) fn push_inbox(&mut self) {
        self.inbox = true;
    }

    /// Remember to continue reading file-system events next iteration.
    pub(crate) fn push_fs_events(&mut self) {
        self.fs_events = true;
    }

    /// The number of the current iteration's pending phase.
    pub(crate) fn pass(&self) -> u32 {
        self.pass
    }

    /// Remember to continue the I/O of a socket handle next iteration.
    pub(crate) fn push_handle(&mut self, id: HandleId) {
        self.handles.push(id);
    }
}

impl Core {
    /// The pending phase: continue what the previous iteration left for it. Work that runs out
    /// of budget again here is queued for the iteration after.
    pub(crate) fn run_pending(&mut self) {
        self.pending.pass = self.pending.pass.wrapping_add(1);
        if mem::take(&mut self.pending.inbox) {
            self.drain_inbox();
        }
        if mem::take(&mut self.pending.fs_events) {
            self.read_fs_events();
        }
        if self.pending.handles.is_empty() {
            return; // the usual case: nothing was left over
        }
        let mut batch = mem::replace(&mut self.pending.handles, mem::take(&mut self.pending.batch));
        for &id in &batch {
            match self.handles.get(id).map(|handle| &handle.state) {
                Some(State::Stream(_)) => self.continue_stream(id),
                Some(State::Listener(_)) => self.accept(id),
                Some(State::Udp(_)) => self.receive(id),
                // Closed meanwhile.
                _ => {}
            }
        }
        batch.clear();
        self.pending.batch = batch;
    }
}
