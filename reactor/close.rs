//! Closing handles: `close()` now, close callback and freed slot in the closing phase.
//!
//! ```
//! use std::time::Duration;
//! use reactor::{EventLoop, Error};
//!
//! let mut lp = EventLoop::new()?;
//! let timer = lp.timer(|_, _| {});
//! lp.timer_start(timer, Duration::from_secs(60), Duration::ZERO)?;
//! lp.close_with(timer, |_| println!("closed"))?;
//! assert!(lp.is_closing(timer));
//! lp.run()?; // returns at once: the timer was stopped by close
//! assert!(matches!(lp.timer_stop(timer), Err(Error::Closed(_))));
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! # The contract (libuv's `uv_close`)
//!
//! - `close` stops the handle at once (a timer is disarmed, a watcher or signal handle
//!   stopped, a file-system watch removed, a listener stops accepting, a stream stops reading),
//!   so none of its callbacks runs after `close` returns, except the close callbacks.
//! - The close callback runs in the closing phase of the same iteration, after every I/O
//!   callback of the pass, and never inside `close` itself. Only then is the slot freed and the
//!   id becomes stale.
//! - A stream is closed gracefully: if output is still queued, it is flushed first and the close
//!   callbacks run in the closing phase of the iteration in which that finishes (see
//!   [`stream`](crate::stream); [`Core::abort`] does not wait).
//! - Closing a closing or freed handle returns [`Error::Closed`](crate::Error). A closing handle
//!   keeps the loop alive until its close callback has run.

use std::io;
use std::mem;

use crate::Result;
use crate::dispatch::{self, Task};
use crate::event_loop::Core;
use crate::handle::{HandleId, Signal, State, Timer};
use crate::trace::Act;

/// A handle whose close callbacks are due in the closing phase.
struct Closed {
    id: HandleId,
    /// The callback given to `close_with`. It lives here rather than in the handle, which only
    /// needs it once it is closing.
    on_close: Option<Task>,
    /// What ended a stream, for its handler's `on_close`.
    error: Option<io::Error>,
}

/// The handles due in the closing phase.
pub(crate) struct Closing {
    list: Vec<Closed>,
    /// Reused buffer for the phase runner.
    batch: Vec<Closed>,
}

impl Closing {
    pub(crate) fn new() -> Self {
        Closing { list: Vec::new(), batch: Vec::new() }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Schedules the close callbacks of `id`, which is already stopped and marked closing.
    pub(crate) fn push(&mut self, id: HandleId, on_close: Option<Task>, error: Option<io::Error>) {
        self.list.push(Closed { id, on_close, error });
    }
}

impl Core {
    /// Closes any handle. See the [module docs](self).
    pub fn close(&mut self, handle: impl Into<HandleId>) -> Result<()> {
        self.start_closing(handle.into(), None)
    }

    /// Closes any handle and runs `callback` in the closing phase, once the handle is gone.
    #[track_caller]
    pub fn close_with(
        &mut self,
        handle: impl Into<HandleId>,
        callback: impl FnOnce(&mut Core) + 'static,
    ) -> Result<()> {
        let task = self.task(Act::Closed, Box::new(callback));
        self.start_closing(handle.into(), Some(task))
    }

    fn start_closing(&mut self, id: HandleId, on_close: Option<Task>) -> Result<()> {
        if self.stop_handle(id)? == Stopped::Flushing {
            self.open_handle_mut(id)?.closing = true;
            self.close_stream(id, on_close);
            return Ok(());
        }
        self.open_handle_mut(id)?.closing = true;
        self.set_active(id, false);
        self.closing.push(id, on_close, None);
        Ok(())
    }

    /// Stops a handle of any kind: the one place that knows how each kind is stopped.
    fn stop_handle(&mut self, id: HandleId) -> Result<Stopped> {
        match self.open_handle_mut(id)?.state {
            State::Timer(_) => self.timer_stop(Timer(id))?,
            State::Watcher(_) => self.watcher_stop(id)?,
            State::Signal(_) => self.signal_stop(Signal(id))?,
            State::FsWatch(_) => self.fs_watch_stop(id)?,
            // Closing the socket (when the slot is freed) is all it takes.
            State::Listener(_) | State::Udp(_) => {}
            State::Stream(_) => return Ok(Stopped::Flushing),
            State::Process(_) => self.process_stop(id),
        }
        Ok(Stopped::Now)
    }

    /// The closing phase: run the close callbacks and free the slots.
    ///
    /// Handles closed by these close callbacks are taken in the next iteration's closing phase
    /// (the loop stays alive and does not block meanwhile).
    pub(crate) fn run_closing(&mut self) {
        if self.closing.list.is_empty() {
            return; // the usual case: skip the swap of the two lists
        }
        let mut batch = mem::replace(&mut self.closing.list, mem::take(&mut self.closing.batch));
        for Closed { id, on_close, error } in batch.drain(..) {
            dispatch::run_close(self, id, on_close, error);
        }
        self.closing.batch = batch;
    }
}

/// How far `stop_handle` got.
#[derive(PartialEq, Eq)]
enum Stopped {
    /// The handle is stopped; its close callbacks can run in this closing phase.
    Now,
    /// A stream: it stops reading, and its close callbacks wait for its queue to flush.
    Flushing,
}
