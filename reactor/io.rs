//! The poll phase: wait for readiness, then hand each event to its owner.
//!
//! This is where the loop sleeps. [`Core::poll_timeout`] decides how long; `mio::Poll::poll`
//! (`epoll_wait` on Linux) blocks until an event arrives or the timeout passes; then every event
//! is routed by its token. Tokens are either a handle's packed (slot, generation) id, or one of
//! the reserved tokens below, which are out of reach of any slot number.
//!
//! ```text
//! epoll_wait ──▶ mio::Events ──▶ token ──┬─ WAKER    ──▶ drain the Remote inbox ──▶ posted closures
//!                                        ├─ SIGNALS  ──▶ read the self-pipe     ──▶ signal callbacks,
//!                                        │                                          SIGCHLD: reap children
//!                                        ├─ FS_EVENTS ─▶ read inotify           ──▶ fs watch callbacks
//!                                        └─ (slot, generation) ──▶ slab lookup ──┬─ stream:   flush, read
//!                                              (stale: dropped)                  ├─ listener: accept
//!                                                                                └─ udp:      flush, receive
//! ```

use std::time::Duration;

use crate::Result;
use crate::error::is_transient;
use crate::event_loop::Core;
use crate::handle::{HandleId, State};

/// The token of the cross-thread waker (see [`Remote`](crate::Remote)).
pub(crate) const WAKER: mio::Token = mio::Token(usize::MAX);
/// The token of the signal self-pipe (see [`signal`](crate::signal)).
pub(crate) const SIGNALS: mio::Token = mio::Token(usize::MAX - 1);
/// The token of the loop's inotify instance (see [`fs_event`](crate::fs_event)).
pub(crate) const FS_EVENTS: mio::Token = mio::Token(usize::MAX - 2);

impl Core {
    /// Polls for readiness for at most `timeout` (`None`: until an event) and dispatches the
    /// events. Only a failure of the poller itself is an error.
    pub(crate) fn poll_io(
        &mut self,
        events: &mut mio::Events,
        timeout: Option<Duration>,
    ) -> Result<()> {
        // A virtual clock does not wait for timers: it polls without blocking and, if nothing
        // happened, jumps to the deadline instead.
        let wait = if self.clock.is_virtual() { timeout.map(|_| Duration::ZERO) } else { timeout };
        self.watch.entering_poll();
        self.metrics.entering_poll();
        if let Err(err) = self.poll.poll(events, wait) {
            if !is_transient(&err) {
                return Err(err.into());
            }
            // EINTR: a signal arrived. Its byte is in the self-pipe; the next poll reports it.
            events.clear();
        }
        self.metrics.left_poll();
        self.watch.left_poll();
        if timeout != Some(Duration::ZERO) {
            // We may have slept: callbacks must not see the time from before the wait.
            self.update_time();
            if events.is_empty() {
                self.clock.advance(timeout.unwrap_or(Duration::ZERO));
            }
        }

        let mut dispatched = 0;
        for event in events.iter() {
            dispatched += 1;
            match event.token() {
                WAKER => self.drain_inbox(),
                SIGNALS => self.deliver_signals(),
                FS_EVENTS => self.read_fs_events(),
                token => self.socket_ready(HandleId::from_token(token), event),
            }
        }
        self.metrics.polled(dispatched);
        Ok(())
    }
}

impl Core {
    /// Routes a socket's readiness event to its kind's handler. An event for a stale id (the
    /// handle was closed after the event was queued) finds no handle and is dropped.
    fn socket_ready(&mut self, id: HandleId, event: &mio::event::Event) {
        match self.handles.get(id).map(|handle| &handle.state) {
            Some(State::Stream(_)) => self.stream_ready(id, event),
            Some(State::Listener(_)) => self.accept(id),
            Some(State::Udp(_)) => self.udp_ready(id, event),
            _ => {}
        }
    }
}
