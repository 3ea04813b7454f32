//! Handles: what the loop keeps for every timer, watcher, signal and socket, and how they are
//! named.
//!
//! A handle is an entry in the loop's slab. Its id is a (slot, generation) pair, so an id that
//! outlives its handle is recognised as stale instead of reaching whatever handle reuses the slot
//! next (mio issues #172 and #219 show what happens otherwise). Each kind of handle gets a typed
//! id ([`Timer`], [`Idle`], ...) that converts into the generic [`HandleId`] accepted by the calls
//! every handle shares: [`Core::close`], [`Core::unref`], [`Core::ref_`], [`Core::is_active`].
//!
//! ```
//! use std::time::Duration;
//! use reactor::EventLoop;
//!
//! let mut lp = EventLoop::new()?;
//! // A repeating timer that does not keep the loop alive on its own...
//! let heartbeat = lp.set_interval(Duration::from_secs(1), |_, _| {});
//! lp.unref(heartbeat)?;
//! // ...so the loop has nothing to wait for and returns at once.
//! lp.run()?;
//! assert!(lp.is_active(heartbeat));
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! # States
//!
//! A handle is *active* while it is doing its job: a timer while it is armed, a watcher or a
//! signal handle while it is started, a socket while it is open (as in Node, an open socket
//! keeps the loop alive even while paused). It is *referenced* unless [`Core::unref`] was
//! called on it. The loop stays alive while at least one handle is both (libuv's
//! `uv_loop_alive`). [`Core::close`] makes a handle *closing*: it is stopped at once, its close
//! callback runs in the closing phase of the same iteration (for a stream: once its queued
//! output is flushed), and only then is its slot freed.

use std::fmt;
use std::panic::Location;

use crate::dispatch::Callback;
use crate::event_loop::Core;
use crate::fs_event::FsWatchState;
use crate::listener::ListenerState;
use crate::process::ProcessState;
use crate::stream::StreamState;
use crate::timer::TimerState;
use crate::trace::Kind;
use crate::udp::UdpState;
use crate::watchers::Phase;
use crate::{Error, Result};

/// The id of any handle: a slot in the loop's slab and the generation of that slot.
///
/// Ids are `Copy` and cheap. An id is meaningful only to the loop that created it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandleId {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

// Socket handles pack (slot, generation) into a `mio::Token`, two u32s in a usize.
const _: () = assert!(usize::BITS >= 64, "reactor needs a 64-bit target");

impl HandleId {
    /// The token a socket of this handle is registered with: the generation in the high half,
    /// the slot in the low half. An event for a closed handle then carries a stale generation
    /// and is dropped by the slab lookup, even if the slot was reused meanwhile.
    pub(crate) fn token(self) -> mio::Token {
        mio::Token(((self.generation as usize) << 32) | self.slot as usize)
    }

    /// The inverse of [`HandleId::token`].
    pub(crate) fn from_token(token: mio::Token) -> HandleId {
        HandleId { slot: token.0 as u32, generation: (token.0 >> 32) as u32 }
    }
}

impl fmt::Display for HandleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.slot)
    }
}

impl fmt::Debug for HandleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HandleId(#{}, generation {})", self.slot, self.generation)
    }
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub struct $name(pub(crate) HandleId);

        impl $name {
            /// The generic id of this handle.
            pub fn id(self) -> HandleId {
                self.0
            }
        }

        impl From<$name> for HandleId {
            fn from(typed: $name) -> HandleId {
                typed.0
            }
        }
    };
}

typed_id!(
    /// A timer handle, created by [`Core::timer`], [`Core::set_timeout`] or
    /// [`Core::set_interval`].
    Timer
);
typed_id!(
    /// An idle handle: its callback runs once per iteration, and while it is active the loop
    /// polls without blocking. Created by [`Core::idle`].
    Idle
);
typed_id!(
    /// A prepare handle: its callback runs once per iteration, right before the loop polls for
    /// I/O. Created by [`Core::prepare`].
    Prepare
);
typed_id!(
    /// A check handle: its callback runs once per iteration, right after the poll phase.
    /// Created by [`Core::check`].
    Check
);
typed_id!(
    /// A signal handle, created by [`Core::signal`].
    Signal
);
typed_id!(
    /// A byte stream: a TCP or Unix-domain connection, accepted by a listener or made by
    /// [`Core::connect_tcp`] or [`Core::connect_unix`]. See [`stream`](crate::stream).
    Stream
);
typed_id!(
    /// A listening socket, created by [`Core::listen_tcp`] or [`Core::listen_unix`]. See
    /// [`listener`](crate::listener).
    Listener
);
typed_id!(
    /// A UDP socket, created by [`Core::udp_bind`]. See [`udp`](crate::udp).
    Udp
);
typed_id!(
    /// A child process, started by [`Core::spawn`]. See [`process`](crate::process).
    Process
);
typed_id!(
    /// A watched file or directory, created by [`Core::fs_watch`]. See
    /// [`fs_event`](crate::fs_event).
    FsWatch
);

/// One slab entry: everything the loop knows about a handle.
pub(crate) struct Handle {
    /// What the loop needs to drive this kind of handle.
    pub(crate) state: State,
    /// The user's code. Taken out while it runs (see `dispatch`).
    pub(crate) callback: Callback,
    /// Where the handle was created, for panic reports.
    pub(crate) site: &'static Location<'static>,
    /// A copy of the slot's generation, set by `Slots::insert` and checked by `Slots::get`.
    pub(crate) generation: u32,
    /// The loop time ([`Core::now`]) when the handle was created, in milliseconds since the
    /// loop was created; for its age in [`Core::dump_handles`]. Wraps after 49 days.
    pub(crate) born_ms: u32,
    pub(crate) active: bool,
    pub(crate) referenced: bool,
    pub(crate) closing: bool,
}

/// Per-kind state the loop needs (the callback lives beside it in [`Handle`]).
pub(crate) enum State {
    Timer(TimerState),
    Watcher(Phase),
    Signal(i32),
    Stream(StreamState),
    Listener(ListenerState),
    Udp(UdpState),
    Process(ProcessState),
    FsWatch(FsWatchState),
}

impl Handle {
    pub(crate) fn new(state: State, callback: Callback, site: &'static Location<'static>) -> Self {
        Handle {
            state,
            callback,
            site,
            generation: 0,
            born_ms: 0,
            active: false,
            referenced: true,
            closing: false,
        }
    }

    /// The kind's name, as used in reports: "timer", "idle", "prepare", "check", "signal",
    /// "stream", "listener", "udp", "process", "fs_watch".
    pub(crate) fn kind(&self) -> &'static str {
        self.trace_kind().name()
    }

    /// The kind, as a chain names it (see [`trace`](crate::trace)).
    pub(crate) fn trace_kind(&self) -> Kind {
        match &self.state {
            State::Timer(_) => Kind::Timer,
            State::Watcher(Phase::Idle) => Kind::Idle,
            State::Watcher(Phase::Prepare) => Kind::Prepare,
            State::Watcher(Phase::Check) => Kind::Check,
            State::Signal(_) => Kind::Signal,
            State::Stream(_) => Kind::Stream,
            State::Listener(_) => Kind::Listener,
            State::Udp(_) => Kind::Udp,
            State::Process(_) => Kind::Process,
            State::FsWatch(_) => Kind::FsWatch,
        }
    }

    /// Does this handle keep the loop alive?
    fn keeps_alive(&self) -> bool {
        self.active && self.referenced
    }
}

/// The state changes every handle kind shares. Liveness bookkeeping happens only here.
impl Core {
    /// Stores a new handle: the one place handles are born. Stamps its birth time and records
    /// its creation as the cause of its callbacks (see [`trace`](crate::trace)).
    pub(crate) fn add_handle(&mut self, mut handle: Handle) -> HandleId {
        handle.born_ms = self.clock.now_ms() as u32;
        let site = handle.site;
        let id = self.handles.insert(handle);
        let cause = self.trace.record(crate::trace::Act::Created, site);
        self.trace.set_handle_cause(id, cause);
        id
    }

    /// Marks a handle active or inactive, keeping the count of live handles exact.
    pub(crate) fn set_active(&mut self, id: HandleId, active: bool) {
        if let Some(handle) = self.handles.get_mut(id) {
            let before = handle.keeps_alive();
            handle.active = active;
            self.live_handles = self.live_handles + handle.keeps_alive() as usize - before as usize;
        }
    }

    fn set_referenced(&mut self, id: HandleId, referenced: bool) -> Result<()> {
        let handle = self.open_handle_mut(id)?;
        let before = handle.keeps_alive();
        handle.referenced = referenced;
        let after = handle.keeps_alive();
        self.live_handles = self.live_handles + after as usize - before as usize;
        Ok(())
    }

    /// The handle behind `id`, if it exists and is not closing.
    pub(crate) fn open_handle_mut(&mut self, id: HandleId) -> Result<&mut Handle> {
        match self.handles.get_mut(id) {
            Some(handle) if !handle.closing => Ok(handle),
            _ => Err(Error::Closed(id)),
        }
    }

    /// Stops the handle from keeping the loop alive (libuv's `uv_unref`, Node's `unref()`).
    ///
    /// An unreferenced handle still works: an armed timer still fires while something else
    /// keeps the loop running. Calling it twice is the same as calling it once.
    pub fn unref(&mut self, handle: impl Into<HandleId>) -> Result<()> {
        self.set_referenced(handle.into(), false)
    }

    /// Undoes [`Core::unref`] (libuv's `uv_ref`). Handles start referenced.
    #[doc(alias = "ref")]
    pub fn ref_(&mut self, handle: impl Into<HandleId>) -> Result<()> {
        self.set_referenced(handle.into(), true)
    }

    /// Whether the handle is referenced, or [`Error::Closed`].
    pub fn has_ref(&self, handle: impl Into<HandleId>) -> Result<bool> {
        let id = handle.into();
        match self.handles.get(id) {
            Some(handle) if !handle.closing => Ok(handle.referenced),
            _ => Err(Error::Closed(id)),
        }
    }

    /// Whether the handle is doing its job (an armed timer, a started watcher). `false` for a
    /// closing or stale handle.
    pub fn is_active(&self, handle: impl Into<HandleId>) -> bool {
        self.handles.get(handle.into()).is_some_and(|h| h.active && !h.closing)
    }

    /// Whether `close()` has been called on the handle. Also `true` once it has been freed.
    pub fn is_closing(&self, handle: impl Into<HandleId>) -> bool {
        self.handles.get(handle.into()).is_none_or(|h| h.closing)
    }
}
