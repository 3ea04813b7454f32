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
//!   stopped), so none of its callbacks runs after `close` returns.
//! - The close callback runs in the closing phase of the same iteration, after every I/O
//!   callback of the pass, and never inside `close` itself. Only then is the slot freed and the
//!   id becomes stale.
//! - Closing a closing or freed handle returns [`Error::Closed`](crate::Error). A closing handle
//!   keeps the loop alive until its close callback has run.

use std::mem;

use crate::Result;
use crate::dispatch::{self, Task};
use crate::event_loop::Core;
use crate::handle::{HandleId, Signal, State, Timer};

/// Handles whose close callbacks are due in the closing phase, with those callbacks. A close
/// callback lives here rather than in the handle, which only needs it once it is closing.
pub(crate) struct Closing {
    list: Vec<(HandleId, Option<Task>)>,
    /// Reused buffer for the phase runner.
    batch: Vec<(HandleId, Option<Task>)>,
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
        self.start_closing(handle.into(), Some(Task::new(Box::new(callback))))
    }

    fn start_closing(&mut self, id: HandleId, on_close: Option<Task>) -> Result<()> {
        self.stop_handle(id)?;
        self.open_handle_mut(id)?.closing = true;
        self.closing.list.push((id, on_close));
        Ok(())
    }

    /// Stops a handle of any kind: the one place that knows how each kind is stopped.
    fn stop_handle(&mut self, id: HandleId) -> Result<()> {
        match self.open_handle_mut(id)?.state {
            State::Timer(_) => self.timer_stop(Timer(id)),
            State::Watcher(_) => self.watcher_stop(id),
            State::Signal(_) => self.signal_stop(Signal(id)),
        }
    }

    /// The closing phase: run the close callbacks and free the slots.
    ///
    /// Handles closed by these close callbacks are taken in the next iteration's closing phase
    /// (the loop stays alive and does not block meanwhile).
    pub(crate) fn run_closing(&mut self) {
        let mut batch = mem::replace(&mut self.closing.list, mem::take(&mut self.closing.batch));
        for (id, on_close) in batch.drain(..) {
            dispatch::run_close(self, id, on_close);
        }
        self.closing.batch = batch;
    }
}
