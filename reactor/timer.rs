//! Timers: one-shot and repeating, with libuv's semantics and Node's conveniences.
//!
//! ```
//! use std::time::Duration;
//! use reactor::EventLoop;
//!
//! let mut lp = EventLoop::new()?;
//! let mut ticks = 0;
//! lp.set_interval(Duration::from_millis(5), move |core, me| {
//!     ticks += 1;
//!     if ticks == 3 {
//!         core.close(me).unwrap(); // a repeating timer runs until stopped or closed
//!     }
//! });
//! lp.run()?;
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! # The contract
//!
//! - A timer fires at the first timer phase whose [cached time](crate::Core::now) has reached
//!   its deadline. Durations are rounded up to whole milliseconds, so a timer never fires early.
//! - Timers with equal deadlines fire in the order they were armed.
//! - A timer armed during the timer phase waits for the next iteration, even with a zero
//!   timeout. A timer callback that re-arms itself at 0 ms therefore cannot starve I/O.
//! - A repeating timer is re-armed at `now + repeat` just before its callback runs, so the
//!   callback may stop it, restart it with other values, or close it.
//! - [`Core::set_timeout`] closes its timer after the callback (unless the callback re-armed
//!   it); afterwards the id is stale and calls on it return [`Error::Closed`](crate::Error).
//!
//! # The queue
//!
//! Armed timers live in a hierarchical timing wheel (`timer/wheel.rs` documents the algorithm):
//! arming and cancelling are O(1), which matters because servers arm and cancel a timeout per
//! request. It was chosen over libuv's binary heap by measurement: `cargo bench --bench timers`
//! compares both against a plain `BinaryHeap`, and `docs/ARCHITECTURE.md` quotes the figures.

use std::cell::Cell;
use std::panic::Location;
use std::time::Duration;

use crate::clock::ceil_ms;
use crate::dispatch::{self, Callback};
use crate::event_loop::Core;
use crate::handle::{Handle, State, Timer};
use crate::slots::Slots;
use crate::trace::Act;
use crate::{Error, Result};

mod wheel;
use wheel::{Key, Wheel};

/// The loop's armed timers.
pub(crate) struct Timers {
    queue: Wheel<crate::HandleId>,
    /// `queue.next_wakeup()`, once asked, until the queue changes. A busy server asks twice
    /// per iteration (may timers fire? how long may the poll sleep?) and changes its timers
    /// far less often, so most iterations skip the wheel's scan.
    wakeup: Cell<Option<Option<u64>>>,
}

impl Timers {
    pub(crate) fn new() -> Self {
        Timers { queue: Wheel::new(), wakeup: Cell::new(None) }
    }

    /// When the poll phase must wake up for the next timer, in loop milliseconds.
    pub(crate) fn next_wakeup(&self) -> Option<u64> {
        if let Some(wakeup) = self.wakeup.get() {
            return wakeup;
        }
        let wakeup = self.queue.next_wakeup();
        self.wakeup.set(Some(wakeup));
        wakeup
    }

    fn insert(&mut self, deadline: u64, id: crate::HandleId) -> Key {
        self.wakeup.set(None);
        self.queue.insert(deadline, id)
    }

    fn remove(&mut self, key: Key) {
        self.wakeup.set(None);
        self.queue.remove(key);
    }

    fn pop_expired(&mut self, now: u64, seq_limit: u64) -> Option<crate::HandleId> {
        self.wakeup.set(None);
        self.queue.pop_expired(now, seq_limit).map(|(_, id)| id)
    }

    /// How many timers are armed.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

/// What the loop keeps per timer handle.
pub(crate) struct TimerState {
    /// The timer's entry in the queue, while it is armed.
    key: Option<Key>,
    /// When it fires, in loop milliseconds (meaningful while `key` is set).
    deadline: u64,
    /// The timeout of the last start, in ms (what `timer_refresh` re-arms with).
    timeout: u64,
    /// 0 for a one-shot timer.
    repeat: u64,
    /// Close the handle after it fires (timers made by `set_timeout`).
    close_after_firing: bool,
}

/// The state of timer `timer`, if it is open.
fn timer_state(handles: &mut Slots, timer: Timer) -> Result<&mut TimerState> {
    match handles.get_mut(timer.0) {
        Some(Handle { state: State::Timer(state), closing: false, .. }) => Ok(state),
        _ => Err(Error::Closed(timer.0)),
    }
}

/// Read-only version of [`timer_state`].
fn timer_state_ref(handles: &Slots, timer: Timer) -> Result<&TimerState> {
    match handles.get(timer.0) {
        Some(Handle { state: State::Timer(state), closing: false, .. }) => Ok(state),
        _ => Err(Error::Closed(timer.0)),
    }
}

impl Core {
    /// Creates a timer that is not armed yet (libuv's `uv_timer_init`); arm it with
    /// [`Core::timer_start`]. The callback gets the timer's own id.
    #[track_caller]
    pub fn timer(&mut self, callback: impl FnMut(&mut Core, Timer) + 'static) -> Timer {
        self.new_timer(Callback::Timer(Box::new(callback)), Location::caller())
    }

    fn new_timer(&mut self, callback: Callback, site: &'static Location<'static>) -> Timer {
        let state =
            TimerState { key: None, deadline: 0, timeout: 0, repeat: 0, close_after_firing: false };
        Timer(self.add_handle(Handle::new(State::Timer(state), callback, site)))
    }

    /// Runs `callback` once, `after` from now, then closes the timer (Node's `setTimeout`).
    /// Cancel it with [`Core::timer_stop`] or [`Core::close`] before it fires.
    #[track_caller]
    pub fn set_timeout(
        &mut self,
        after: Duration,
        callback: impl FnOnce(&mut Core) + 'static,
    ) -> Timer {
        let mut callback = Some(callback);
        let once = move |core: &mut Core, _: Timer| {
            if let Some(callback) = callback.take() {
                callback(core);
            }
        };
        let timer = self.new_timer(Callback::Timer(Box::new(once)), Location::caller());
        if let Ok(state) = timer_state(&mut self.handles, timer) {
            state.close_after_firing = true;
        }
        self.arm(timer, ceil_ms(after), 0);
        timer
    }

    /// Runs `callback` every `every`, first `every` from now, until the timer is stopped or
    /// closed (Node's `setInterval`). Like Node's, an interval below 1 ms is 1 ms.
    #[track_caller]
    pub fn set_interval(
        &mut self,
        every: Duration,
        callback: impl FnMut(&mut Core, Timer) + 'static,
    ) -> Timer {
        let timer = self.new_timer(Callback::Timer(Box::new(callback)), Location::caller());
        // A zero repeat would mean "one-shot"; one millisecond is the finest interval anyway.
        let every = ceil_ms(every).max(1);
        self.arm(timer, every, every);
        timer
    }

    /// Arms the timer to fire `timeout` from now and then, if `repeat` is not zero, every
    /// `repeat` (libuv's `uv_timer_start`). An armed timer is re-armed with the new values.
    #[track_caller]
    pub fn timer_start(&mut self, timer: Timer, timeout: Duration, repeat: Duration) -> Result<()> {
        timer_state(&mut self.handles, timer)?;
        self.arm(timer, ceil_ms(timeout), ceil_ms(repeat));
        Ok(())
    }

    /// Disarms the timer; it keeps its callback and can be started again. Stopping a stopped
    /// timer does nothing.
    pub fn timer_stop(&mut self, timer: Timer) -> Result<()> {
        let state = timer_state(&mut self.handles, timer)?;
        if let Some(key) = state.key.take() {
            self.timers.remove(key);
        }
        self.set_active(timer.0, false);
        Ok(())
    }

    /// Re-arms a repeating timer with its repeat interval as the timeout (libuv's
    /// `uv_timer_again`). Does nothing to a timer whose repeat is zero.
    #[track_caller]
    pub fn timer_again(&mut self, timer: Timer) -> Result<()> {
        let repeat = timer_state(&mut self.handles, timer)?.repeat;
        if repeat > 0 {
            self.arm(timer, repeat, repeat);
        }
        Ok(())
    }

    /// Re-arms the timer with the timeout and repeat of its last start, counting from now
    /// (Node's `timeout.refresh()`): the idle-timeout idiom, "push the deadline back".
    #[track_caller]
    pub fn timer_refresh(&mut self, timer: Timer) -> Result<()> {
        let state = timer_state(&mut self.handles, timer)?;
        let (timeout, repeat) = (state.timeout, state.repeat);
        self.arm(timer, timeout, repeat);
        Ok(())
    }

    /// Changes the repeat interval; it takes effect the next time the timer is re-armed.
    pub fn timer_set_repeat(&mut self, timer: Timer, repeat: Duration) -> Result<()> {
        timer_state(&mut self.handles, timer)?.repeat = ceil_ms(repeat);
        Ok(())
    }

    /// The repeat interval (zero for a one-shot timer).
    pub fn timer_repeat(&self, timer: Timer) -> Result<Duration> {
        Ok(Duration::from_millis(timer_state_ref(&self.handles, timer)?.repeat))
    }

    /// Time until the timer fires, measured from the loop's cached time; `None` if it is not
    /// armed (libuv's `uv_timer_get_due_in`).
    pub fn timer_due_in(&self, timer: Timer) -> Result<Option<Duration>> {
        let state = timer_state_ref(&self.handles, timer)?;
        let due_in = state.deadline.saturating_sub(self.clock.now_ms());
        Ok(state.key.map(|_| Duration::from_millis(due_in)))
    }

    /// Puts an open timer in the queue, replacing its current entry if it has one. The
    /// caller's site becomes the cause of the timer's callback.
    #[track_caller]
    fn arm(&mut self, timer: Timer, timeout: u64, repeat: u64) {
        let deadline = self.clock.now_ms().saturating_add(timeout);
        let Ok(state) = timer_state(&mut self.handles, timer) else { return };
        if let Some(key) = state.key.take() {
            self.timers.remove(key);
        }
        state.key = Some(self.timers.insert(deadline, timer.0));
        state.deadline = deadline;
        state.timeout = timeout;
        state.repeat = repeat;
        self.set_active(timer.0, true);
        let cause = self.trace.record(Act::Armed, Location::caller());
        self.trace.set_handle_cause(timer.0, cause);
    }

    /// The timer phase: fires every timer that is due, in (deadline, arming order).
    ///
    /// Timers are popped one at a time rather than collected first, so a callback that stops
    /// or re-arms another due timer is always respected. Timers armed from here on get a
    /// sequence number of at least `armed_before` and wait for the next iteration.
    pub(crate) fn run_timers(&mut self) {
        let now = self.clock.now_ms();
        if self.timers.next_wakeup().is_none_or(|wakeup| wakeup > now) {
            return;
        }
        let armed_before = self.timers.queue.next_seq();
        while let Some(id) = self.timers.pop_expired(now, armed_before) {
            let timer = Timer(id);
            let Ok(state) = timer_state(&mut self.handles, timer) else { continue };
            state.key = None;
            let close_after_firing = state.close_after_firing;
            if state.repeat > 0 {
                state.deadline = now.saturating_add(state.repeat);
                state.key = Some(self.timers.insert(state.deadline, id));
            } else {
                self.set_active(id, false);
            }

            dispatch::run_handle(self, id, dispatch::Event::Fire);

            if close_after_firing && !self.is_active(id) && !self.is_closing(id) {
                let _ = self.close(id);
            }
        }
    }
}
