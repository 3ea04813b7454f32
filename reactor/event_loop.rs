//! The event loop: its run modes and the phases of one iteration.
//!
//! ```
//! use std::time::Duration;
//! use reactor::EventLoop;
//!
//! let mut lp = EventLoop::new()?;
//! lp.set_timeout(Duration::from_millis(10), |core| {
//!     println!("10 ms later");
//!     core.defer(|_| println!("and then, in the check phase"));
//! });
//! lp.run()?; // returns when no active, referenced handle is left
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! # One iteration
//!
//! One private function, `EventLoop::iterate`, is the whole loop pass, phase by phase, in libuv's
//! order (Node's phase names in brackets):
//!
//! 1. **update time**: read the clock once; callbacks see this cached [`Core::now`].
//! 2. **timers** \[timers\]: due timers fire in deadline order, ties in the order they were armed.
//! 3. **pending** \[pending callbacks\]: work deferred from the previous iteration.
//! 4. **idle**, 5. **prepare** \[idle, prepare\]: the watcher callbacks.
//! 6. **poll** \[poll\]: wait for I/O (how long: [`Core::poll_timeout`]) and dispatch every event.
//! 7. **check** \[check\]: deferred callbacks ([`Core::defer`]), then check watchers.
//! 8. **closing** \[close callbacks\]: close callbacks run and slots are freed.
//!
//! [`EventLoop::run`] repeats this while the loop is [alive](Core::alive) and not
//! [stopped](Core::stop). `docs/ARCHITECTURE.md` draws the same sequence.
//!
//! # `EventLoop` and `Core`
//!
//! Callbacks receive `&mut Core`: everything that can be done *on* the loop (arm timers, start
//! and close handles, defer work, stop) but not the ability to *run* it, so a callback cannot
//! re-enter the loop. `EventLoop` owns a `Core` and dereferences to it, so the same calls work
//! on the loop before it runs.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use crate::Result;
use crate::clock::Clock;
use crate::close::Closing;
use crate::deferred::Deferred;
use crate::dispatch::{PanicHook, PanicReport};
use crate::fs_event::FsEvents;
use crate::handle::HandleId;
use crate::metrics::{LoopPhase, Recorder};
use crate::pending::Pending;
use crate::pool::Pool;
use crate::process::Processes;
use crate::remote::Inbox;
use crate::signal::Signals;
use crate::slots::Slots;
use crate::timer::Timers;
use crate::trace::Tracer;
use crate::watchdog::Watch;
use crate::watchers::{Phase, Watchers};

/// How many readiness events one `epoll_wait` can return. Events beyond this stay in the kernel
/// for the next iteration, so this bounds the work of one poll phase, not correctness.
const DEFAULT_EVENTS_CAPACITY: usize = 1024;

/// An event loop: one thread, one `mio::Poll`, one slab of handles.
///
/// See the [module documentation](self) for the phases of an iteration.
pub struct EventLoop {
    core: Core,
    /// The buffer `epoll_wait` fills. Kept outside `Core` so that dispatching an event (which
    /// lends `&mut Core` to a callback) never overlaps a borrow of the event list.
    events: mio::Events,
}

/// Everything a callback may do to the loop: the handles, the clock, the queues.
///
/// Callbacks receive `&mut Core`; [`EventLoop`] dereferences to it. The calls that create and
/// drive each kind of handle are documented with that kind: [timers](crate::timer),
/// [watchers](crate::watchers), [signals](crate::signal), [deferred callbacks](crate::deferred),
/// [cross-thread posts](crate::remote), [closing](crate::close), [streams](crate::stream),
/// [listeners](crate::listener), [UDP sockets](crate::udp), [pool work](crate::pool),
/// [files](crate::fs), [names](crate::dns), [child processes](crate::process),
/// [file-system events](crate::fs_event).
pub struct Core {
    pub(crate) handles: Slots,
    /// Handles that are active and referenced: the count behind [`Core::alive`].
    pub(crate) live_handles: usize,
    pub(crate) clock: Clock,
    pub(crate) timers: Timers,
    pub(crate) pending: Pending,
    pub(crate) watchers: Watchers,
    pub(crate) deferred: Deferred,
    pub(crate) closing: Closing,
    pub(crate) signals: Signals,
    /// The inotify instance and which handles are on each of its watches.
    pub(crate) fs_events: FsEvents,
    pub(crate) inbox: Inbox,
    /// Work on the thread pool whose `done` is owed (see [`pool`](crate::pool)).
    pub(crate) pool: Pool,
    /// Child processes to collect when they exit (see [`process`](crate::process)).
    pub(crate) processes: Processes,
    /// The addresses still to try of the streams connecting to one of several (see
    /// [`Core::connect_any`]), last first.
    pub(crate) addresses_left: HashMap<HandleId, Vec<SocketAddr>>,
    pub(crate) poll: mio::Poll,
    /// The one buffer every stream and UDP socket reads into (see [`stream`](crate::stream)).
    /// Allocated on first use; lent out while `on_data` borrows from it.
    pub(crate) read_buf: Vec<u8>,
    /// A descriptor held in reserve for accepting under `EMFILE` (see
    /// [`listener`](crate::listener)). Opened with the first listener.
    pub(crate) spare_fd: Option<std::fs::File>,
    stop_flag: bool,
    pub(crate) panic_hook: Option<PanicHook>,
    /// Causal tracing: the running callback and the causes of what is scheduled (see
    /// [`trace`](crate::trace)).
    pub(crate) trace: Tracer,
    /// Slow-callback checks and the watchdog (see [`watchdog`](crate::watchdog)).
    pub(crate) watch: Watch,
    /// What the loop counts and times about itself (see [`metrics`](crate::metrics)).
    pub(crate) metrics: Recorder,
}

/// Which kind of pass `iterate` makes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RunMode {
    /// Part of `run()`: may block in poll.
    Default,
    /// `run_once()`: may block, and guarantees that a due timer fires before returning.
    Once,
    /// `run_nowait()`: polls without blocking.
    NoWait,
}

impl EventLoop {
    /// Creates a loop with the default settings. See [`EventLoop::builder`] for the others.
    pub fn new() -> Result<EventLoop> {
        Builder::default().build()
    }

    /// Settings for a new loop.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Runs until no active, referenced handle or request is left, or until [`Core::stop`] is
    /// called. Returns an error only if the loop itself fails (the poller); errors of single
    /// handles go to their callbacks.
    pub fn run(&mut self) -> Result<()> {
        while self.core.alive() && !self.core.stop_flag {
            self.iterate(RunMode::Default)?;
        }
        self.core.stop_flag = false;
        Ok(())
    }

    /// Runs one iteration, blocking in the poll phase if there is nothing to do yet, so that at
    /// least one callback (an event or a due timer) runs unless the loop is not alive. Returns
    /// whether the loop is still alive.
    pub fn run_once(&mut self) -> Result<bool> {
        self.iterate(RunMode::Once)
    }

    /// Runs one iteration without blocking: callbacks that are ready now run, nothing is
    /// waited for. Returns whether the loop is still alive.
    pub fn run_nowait(&mut self) -> Result<bool> {
        self.iterate(RunMode::NoWait)
    }

    /// One loop pass, phase by phase (the module docs and `docs/ARCHITECTURE.md` explain each).
    ///
    /// The `metrics` lines count the pass and, when loop timing is on, time each phase (see
    /// [`metrics`](crate::metrics)); off, each is one branch.
    fn iterate(&mut self, mode: RunMode) -> Result<bool> {
        let core = &mut self.core;
        core.metrics.iteration_started();
        core.update_time();
        core.run_timers();
        core.metrics.phase_done(LoopPhase::Timers);
        core.run_pending();
        core.metrics.phase_done(LoopPhase::Pending);
        core.run_watchers(Phase::Idle);
        core.metrics.phase_done(LoopPhase::Idle);
        core.run_watchers(Phase::Prepare);
        core.metrics.phase_done(LoopPhase::Prepare);

        let timeout = match mode {
            RunMode::NoWait => Some(Duration::ZERO),
            RunMode::Default | RunMode::Once => core.poll_timeout(),
        };
        core.poll_io(&mut self.events, timeout)?;
        core.metrics.phase_done(LoopPhase::Poll);

        core.run_deferred();
        core.run_watchers(Phase::Check);
        core.metrics.phase_done(LoopPhase::Check);
        core.run_closing();
        core.metrics.phase_done(LoopPhase::Closing);

        if mode == RunMode::Once {
            // If the poll slept until a timer's deadline, fire it now: `run_once` promises
            // progress (libuv's UV_RUN_ONCE does the same).
            core.update_time();
            core.run_timers();
            core.metrics.phase_done(LoopPhase::Timers);
        }
        Ok(core.alive())
    }
}

impl Deref for EventLoop {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

impl DerefMut for EventLoop {
    fn deref_mut(&mut self) -> &mut Core {
        &mut self.core
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl Core {
    /// The loop's cached time: read once per iteration, before the timers run, and again after
    /// a poll that may have slept. All callbacks of one phase see the same value.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Reads the clock now. Call it in a callback that ran for long before arming a timer, so
    /// the timer counts from the real time rather than from the start of the iteration.
    pub fn update_time(&mut self) {
        self.clock.update();
    }

    /// Makes [`EventLoop::run`] return after the current iteration. The iteration finishes (its
    /// check and closing phases still run) and the poll phase does not block. The flag is
    /// cleared when `run` returns.
    pub fn stop(&mut self) {
        self.stop_flag = true;
    }

    /// Whether the loop has anything to do: an active, referenced handle, a closing handle, a
    /// deferred callback, pending work, a referenced [`Remote`](crate::Remote) or posted
    /// closure, or work on the [thread pool](crate::pool) whose `done` has not run. `run()`
    /// returns when this becomes `false` (libuv's `uv_loop_alive`).
    pub fn alive(&self) -> bool {
        self.live_handles > 0
            || !self.pending.is_empty()
            || !self.deferred.is_empty()
            || !self.closing.is_empty()
            || self.inbox.keeps_alive()
            || self.pool.in_flight()
    }

    /// How long the poll phase may block: zero if callbacks are already waiting to run or the
    /// loop is stopping; otherwise until the next timer, or a little earlier when the timer
    /// wheel must move far timers into finer slots first; and `None` (forever, until an event)
    /// when nothing is scheduled (libuv's `uv_backend_timeout`).
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.stop_flag || self.has_immediate_work() || !self.alive() {
            return Some(Duration::ZERO);
        }
        let wakeup = self.timers.next_wakeup()?;
        Some(Duration::from_millis(wakeup.saturating_sub(self.clock.now_ms())))
    }

    /// Work that must run in the next pass whatever happens, so the poll must not block. Unlike
    /// liveness, an active idle handle counts here even when it is unreferenced.
    fn has_immediate_work(&self) -> bool {
        !self.pending.is_empty()
            || self.watchers.has_active_idle()
            || !self.deferred.is_empty()
            || !self.closing.is_empty()
    }

    /// Sets the function that receives reports of panics caught in callbacks. The default
    /// prints the report's one line on stderr.
    ///
    /// A panicking callback's handle is closed and the loop goes on. The standard panic hook
    /// (`std::panic::set_hook`) still runs first, as for any panic, and prints its own message
    /// unless the program replaced it. A panic inside this hook is not caught.
    pub fn set_panic_hook(&mut self, hook: impl FnMut(&PanicReport<'_>) + 'static) {
        self.panic_hook = Some(Box::new(hook));
    }
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("handles", &self.handles.len())
            .field("live_handles", &self.live_handles)
            .field("timers", &self.timers.len())
            .field("closing", &self.closing.len())
            .field("deferred", &self.deferred.len())
            .field("stopped", &self.stop_flag)
            .finish_non_exhaustive()
    }
}

/// Settings for a new [`EventLoop`].
///
/// ```
/// let lp = reactor::EventLoop::builder().virtual_clock(true).build()?;
/// # Ok::<(), reactor::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    virtual_clock: bool,
    events_capacity: usize,
    remote_capacity: usize,
    thread_pool_size: usize,
    tracing: Option<bool>,
    loop_timing: bool,
}

/// The environment variable that turns causal tracing on for loops whose builder does not
/// say: `REACTOR_TRACE=1`.
pub const TRACE_ENV: &str = "REACTOR_TRACE";

fn tracing_from_env() -> bool {
    std::env::var_os(TRACE_ENV).is_some_and(|value| value == "1" || value == "on")
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            virtual_clock: false,
            events_capacity: DEFAULT_EVENTS_CAPACITY,
            remote_capacity: crate::remote::DEFAULT_CAPACITY,
            thread_pool_size: 0,
            tracing: None,
            loop_timing: false,
        }
    }
}

impl Builder {
    /// Uses a virtual clock that only moves when the loop would otherwise sleep until a timer,
    /// and then jumps to that timer's deadline. For tests of timer logic: they run instantly and
    /// see exact times. I/O still works, but time does not pass while waiting for it.
    pub fn virtual_clock(mut self, enabled: bool) -> Self {
        self.virtual_clock = enabled;
        self
    }

    /// How many readiness events one poll can return (default 1024).
    pub fn events_capacity(mut self, capacity: usize) -> Self {
        self.events_capacity = capacity.max(1);
        self
    }

    /// How many closures posted from other threads may wait for the loop before
    /// [`Remote::post`](crate::Remote::post) blocks (default 4096).
    pub fn remote_capacity(mut self, capacity: usize) -> Self {
        self.remote_capacity = capacity.max(1);
        self
    }

    /// How many threads the [thread pool](crate::pool) starts, over the environment's
    /// `REACTOR_THREADPOOL_SIZE` (clamped to 1 to [`MAX_THREADS`](crate::pool::MAX_THREADS)).
    pub fn thread_pool_size(mut self, threads: usize) -> Self {
        self.thread_pool_size = threads.clamp(1, crate::pool::MAX_THREADS);
        self
    }

    /// Turns causal tracing on or off (see [`trace`](crate::trace)), over the environment's
    /// [`TRACE_ENV`]. It can also be switched later with [`Core::set_tracing`].
    pub fn tracing(mut self, enabled: bool) -> Self {
        self.tracing = Some(enabled);
        self
    }

    /// Turns loop timing on or off (default off): idle time, time per phase and loop lag (see
    /// [`metrics`](crate::metrics)). It can also be switched later with
    /// [`Core::set_loop_timing`].
    pub fn loop_timing(mut self, on: bool) -> Self {
        self.loop_timing = on;
        self
    }

    /// Creates the loop: the poller, its waker, and empty queues.
    pub fn build(self) -> Result<EventLoop> {
        let poll = mio::Poll::new()?;
        let inbox = Inbox::new(&poll, self.remote_capacity)?;
        let core = Core {
            handles: Slots::new(),
            live_handles: 0,
            clock: Clock::new(self.virtual_clock),
            timers: Timers::new(),
            pending: Pending::new(),
            watchers: Watchers::new(),
            deferred: Deferred::new(),
            closing: Closing::new(),
            signals: Signals::new(),
            fs_events: FsEvents::new(),
            inbox,
            pool: Pool::new(self.thread_pool_size),
            processes: Processes::new(),
            addresses_left: HashMap::new(),
            poll,
            read_buf: Vec::new(),
            spare_fd: None,
            stop_flag: false,
            panic_hook: None,
            trace: Tracer::new(self.tracing.unwrap_or_else(tracing_from_env)),
            watch: Watch::default(),
            metrics: Recorder::new(self.loop_timing),
        };
        Ok(EventLoop { core, events: mio::Events::with_capacity(self.events_capacity) })
    }
}
