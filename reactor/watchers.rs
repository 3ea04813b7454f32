//! Idle, prepare and check handles: callbacks that run once per iteration at a fixed phase.
//!
//! ```
//! use reactor::EventLoop;
//!
//! let mut lp = EventLoop::new()?;
//! let mut spins = 0;
//! // An idle handle keeps the poll from blocking: use it for background work in small steps.
//! lp.idle(move |core, me| {
//!     spins += 1;
//!     if spins == 100 {
//!         core.idle_stop(me).unwrap();
//!     }
//! });
//! lp.run()?;
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! # The contract (libuv's `uv_idle_t`, `uv_prepare_t`, `uv_check_t`)
//!
//! - **Idle** callbacks run every iteration after the pending phase. While an idle handle is
//!   active the poll phase does not block, so the loop spins: that is their purpose.
//! - **Prepare** callbacks run right before the poll phase, **check** callbacks right after it,
//!   each once per iteration. They do not change how long the poll blocks.
//! - The constructors start the handle. Within a phase, watchers run in the order they were
//!   started; one started during its own phase first runs in the next iteration, one stopped
//!   during the phase before its turn does not run.

use std::mem;
use std::panic::Location;

use crate::dispatch::{self, Callback, WatcherFn};
use crate::event_loop::Core;
use crate::handle::{Check, Handle, HandleId, Idle, Prepare, State};
use crate::{Error, Result};

/// The phase a watcher runs in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Phase {
    Idle,
    Prepare,
    Check,
}

/// The started watchers of each phase, in start order.
pub(crate) struct Watchers {
    idle: Vec<HandleId>,
    prepare: Vec<HandleId>,
    check: Vec<HandleId>,
    /// Reused buffer for the phase runner's snapshot.
    batch: Vec<HandleId>,
}

impl Watchers {
    pub(crate) fn new() -> Self {
        Watchers { idle: Vec::new(), prepare: Vec::new(), check: Vec::new(), batch: Vec::new() }
    }

    fn list(&mut self, phase: Phase) -> &mut Vec<HandleId> {
        match phase {
            Phase::Idle => &mut self.idle,
            Phase::Prepare => &mut self.prepare,
            Phase::Check => &mut self.check,
        }
    }

    /// An active idle handle means the poll must not block.
    pub(crate) fn has_active_idle(&self) -> bool {
        !self.idle.is_empty()
    }
}

impl Core {
    /// Creates and starts an idle handle. See the [module docs](self).
    #[track_caller]
    pub fn idle(&mut self, mut callback: impl FnMut(&mut Core, Idle) + 'static) -> Idle {
        let callback = move |core: &mut Core, id| callback(core, Idle(id));
        Idle(self.new_watcher(Phase::Idle, Box::new(callback), Location::caller()))
    }

    /// Restarts a stopped idle handle. Starting a started one does nothing.
    pub fn idle_start(&mut self, idle: Idle) -> Result<()> {
        self.watcher_start(idle.0, Phase::Idle)
    }

    /// Stops an idle handle; it can be started again.
    pub fn idle_stop(&mut self, idle: Idle) -> Result<()> {
        self.watcher_stop(idle.0)
    }

    /// Creates and starts a prepare handle. See the [module docs](self).
    #[track_caller]
    pub fn prepare(&mut self, mut callback: impl FnMut(&mut Core, Prepare) + 'static) -> Prepare {
        let callback = move |core: &mut Core, id| callback(core, Prepare(id));
        Prepare(self.new_watcher(Phase::Prepare, Box::new(callback), Location::caller()))
    }

    /// Restarts a stopped prepare handle. Starting a started one does nothing.
    pub fn prepare_start(&mut self, prepare: Prepare) -> Result<()> {
        self.watcher_start(prepare.0, Phase::Prepare)
    }

    /// Stops a prepare handle; it can be started again.
    pub fn prepare_stop(&mut self, prepare: Prepare) -> Result<()> {
        self.watcher_stop(prepare.0)
    }

    /// Creates and starts a check handle. See the [module docs](self).
    #[track_caller]
    pub fn check(&mut self, mut callback: impl FnMut(&mut Core, Check) + 'static) -> Check {
        let callback = move |core: &mut Core, id| callback(core, Check(id));
        Check(self.new_watcher(Phase::Check, Box::new(callback), Location::caller()))
    }

    /// Restarts a stopped check handle. Starting a started one does nothing.
    pub fn check_start(&mut self, check: Check) -> Result<()> {
        self.watcher_start(check.0, Phase::Check)
    }

    /// Stops a check handle; it can be started again.
    pub fn check_stop(&mut self, check: Check) -> Result<()> {
        self.watcher_stop(check.0)
    }

    fn new_watcher(
        &mut self,
        phase: Phase,
        callback: WatcherFn,
        site: &'static Location<'static>,
    ) -> HandleId {
        let handle = Handle::new(State::Watcher(phase), Callback::Watcher(callback), site);
        let id = self.add_handle(handle);
        // Cannot fail: the handle was just created.
        let _ = self.watcher_start(id, phase);
        id
    }

    fn watcher_start(&mut self, id: HandleId, phase: Phase) -> Result<()> {
        let handle = self.open_handle_mut(id)?;
        if handle.active {
            return Ok(());
        }
        self.watchers.list(phase).push(id);
        self.set_active(id, true);
        Ok(())
    }

    /// Stops any watcher (also used by `close`).
    pub(crate) fn watcher_stop(&mut self, id: HandleId) -> Result<()> {
        let handle = self.open_handle_mut(id)?;
        let State::Watcher(phase) = handle.state else { return Err(Error::Closed(id)) };
        if handle.active {
            self.watchers.list(phase).retain(|&started| started != id);
            self.set_active(id, false);
        }
        Ok(())
    }

    /// Runs the callbacks of one phase's watchers.
    ///
    /// Collect, then call: the started list is copied first, because callbacks may start and
    /// stop watchers; each one is checked again right before its turn.
    ///
    /// The test for no watchers, the usual case, is inlined into the loop: it runs three
    /// times per iteration.
    #[inline]
    pub(crate) fn run_watchers(&mut self, phase: Phase) {
        if !self.watchers.list(phase).is_empty() {
            self.run_started_watchers(phase);
        }
    }

    /// [`Core::run_watchers`] when the phase has watchers.
    #[inline(never)]
    fn run_started_watchers(&mut self, phase: Phase) {
        let mut batch = mem::take(&mut self.watchers.batch);
        batch.extend_from_slice(self.watchers.list(phase));
        for &id in &batch {
            if self.is_active(id) {
                dispatch::run_handle(self, id, dispatch::Event::Fire);
            }
        }
        batch.clear();
        self.watchers.batch = batch;
    }
}
