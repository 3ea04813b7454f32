//! The one place where user code is called.
//!
//! Every callback the loop runs (handle callbacks, close callbacks, deferred and posted closures)
//! goes through one of the three functions here: `run_handle`, `run_task` and
//! `run_close`. That is what lets the loop promise things about *all* user code at once:
//!
//! - **Panic isolation.** A panic is caught with `catch_unwind`, the handle whose callback
//!   panicked is closed, the panic is reported through the panic hook, and the loop goes on.
//! - **No aliasing.** A handle's callback is taken out of its slab entry while it runs, so the
//!   callback can get `&mut Core` and do anything (arm timers, close handles, its own included)
//!   without the loop holding a borrow into the slab.
//!
//! ```
//! use std::{cell::RefCell, rc::Rc, time::Duration};
//! use reactor::EventLoop;
//!
//! let mut lp = EventLoop::new()?;
//! let reports = Rc::new(RefCell::new(Vec::new()));
//! let sink = reports.clone();
//! lp.set_panic_hook(move |report| sink.borrow_mut().push(report.to_string()));
//! lp.set_timeout(Duration::ZERO, |_| panic!("boom"));
//! lp.run()?; // the panic does not escape
//! assert!(reports.borrow()[0].contains("boom"));
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! # Unwind safety
//!
//! The closure passed to `catch_unwind` is asserted unwind-safe. That is sound here because the
//! loop's own state is never left half-updated while user code runs (no `Core` method calls user
//! code, and none of them panics), and the user state a panicking callback captured is dropped
//! with its handle, which is closed.

use std::any::Any;
use std::fmt;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe, Location};
use std::process::ExitStatus;
use std::time::Instant;

use crate::event_loop::Core;
use crate::fs_event::{FsEvent, FsWatchFn};
use crate::handle::{FsWatch, HandleId, Process, Signal, State, Stream, Timer, Udp};
use crate::listener::AcceptFn;
use crate::process::ExitFn;
use crate::stream::{Conn, StreamHandler};
use crate::trace::{CallbackName, Cause, Chain, Entered, Event as TraceEvent, Kind};
use crate::udp::UdpFn;

/// A timer's callback.
pub(crate) type TimerFn = Box<dyn FnMut(&mut Core, Timer)>;
/// An idle, prepare or check callback; the constructor wraps the user's closure in one that
/// rebuilds the typed id.
pub(crate) type WatcherFn = Box<dyn FnMut(&mut Core, HandleId)>;
/// A signal handle's callback: its id and the signal number.
pub(crate) type SignalFn = Box<dyn FnMut(&mut Core, Signal, i32)>;
/// The function that receives panic reports.
pub(crate) type PanicHook = Box<dyn FnMut(&PanicReport<'_>)>;

/// A handle's callback, stored in its slab entry. Matched in exactly one place: [`run_handle`]
/// (and [`run_close`], for a stream handler's `on_close`).
pub(crate) enum Callback {
    Timer(TimerFn),
    Watcher(WatcherFn),
    Signal(SignalFn),
    Stream(Box<dyn StreamHandler>),
    Listener(AcceptFn),
    Udp(UdpFn),
    /// A process handle's `on_exit`, until it has run.
    Process(Option<ExitFn>),
    /// A file-system watch's callback.
    FsWatch(FsWatchFn),
    /// The callback is running (or the handle has none).
    Taken,
}

/// What happened to the handle whose callback [`run_handle`] runs.
pub(crate) enum Event<'a> {
    /// A timer fired, a watcher's phase came, a signal arrived: the handle's one callback.
    Fire,
    /// Something for a stream's handler.
    Stream(StreamEvent<'a>),
    /// A listener accepted this stream and needs its handler.
    Accept(Stream),
    /// A UDP socket received a datagram.
    Datagram(&'a [u8], SocketAddr),
    /// A child process ended (or its status could not be collected).
    Exit(io::Result<ExitStatus>),
    /// A watched file or directory changed.
    Fs(FsEvent<'a>),
}

impl Event<'_> {
    /// Which callback this event calls, as a chain names it.
    fn name(&self) -> TraceEvent {
        match self {
            Event::Fire => TraceEvent::Fire,
            Event::Stream(StreamEvent::Open) => TraceEvent::Open,
            Event::Stream(StreamEvent::Data(_)) => TraceEvent::Data,
            Event::Stream(StreamEvent::Eof) => TraceEvent::Eof,
            Event::Stream(StreamEvent::Drain) => TraceEvent::Drain,
            Event::Stream(StreamEvent::Wake) => TraceEvent::Wake,
            Event::Accept(_) => TraceEvent::Accept,
            Event::Datagram(..) => TraceEvent::Datagram,
            Event::Exit(_) => TraceEvent::Exit,
            Event::Fs(_) => TraceEvent::Change,
        }
    }
}

/// The [`StreamHandler`] method to call (`on_close` is called by [`run_close`]).
pub(crate) enum StreamEvent<'a> {
    Open,
    Data(&'a [u8]),
    Eof,
    Drain,
    Wake,
}

/// A one-shot closure that is not tied to a handle: a deferred callback, a posted closure or a
/// close callback. Made by [`Core::task`], which records its cause.
pub(crate) struct Task {
    pub(crate) run: Box<dyn FnOnce(&mut Core)>,
    /// Where the closure was handed to the loop.
    pub(crate) site: &'static Location<'static>,
    /// The act that scheduled it (see [`trace`](crate::trace)).
    pub(crate) cause: Cause,
}

/// Runs the callback of handle `id` for `event`.
pub(crate) fn run_handle(core: &mut Core, id: HandleId, event: Event<'_>) {
    let Some(handle) = core.handles.get_mut(id) else { return };
    let mut callback = mem::replace(&mut handle.callback, Callback::Taken);
    let (kind, site) = (handle.trace_kind(), handle.site);
    let signum = match handle.state {
        State::Signal(signum) => signum,
        _ => 0,
    };
    let running = core.diagnosing().then(|| {
        let cause = core.trace.handle_cause(id);
        enter(core, CallbackName::handle(kind, event.name(), id), site, cause)
    });

    let outcome = panic::catch_unwind(AssertUnwindSafe(|| match (&mut callback, event) {
        (Callback::Timer(f), _) => f(core, Timer(id)),
        (Callback::Watcher(f), _) => f(core, id),
        (Callback::Signal(f), _) => f(core, Signal(id), signum),
        (Callback::Stream(handler), Event::Stream(event)) => {
            let conn = &mut Conn::new(core, Stream(id));
            match event {
                StreamEvent::Open => handler.on_open(conn),
                StreamEvent::Data(data) => handler.on_data(conn, data),
                StreamEvent::Eof => handler.on_eof(conn),
                StreamEvent::Drain => handler.on_drain(conn),
                StreamEvent::Wake => handler.on_wake(conn),
            }
        }
        (Callback::Listener(factory), Event::Accept(stream)) => {
            let handler = factory(stream);
            if let Some(accepted) = core.handles.get_mut(stream.0) {
                accepted.callback = Callback::Stream(handler);
            }
        }
        (Callback::Udp(f), Event::Datagram(data, peer)) => f(core, Udp(id), data, peer),
        (Callback::Process(on_exit), Event::Exit(status)) => {
            if let Some(on_exit) = on_exit.take() {
                on_exit(core, Process(id), status);
            }
        }
        (Callback::FsWatch(f), Event::Fs(event)) => f(core, FsWatch(id), &event),
        // A callback of another kind than the event: nothing to call.
        _ => {}
    }));

    // The slot cannot have been freed meanwhile: slots are freed only in the closing phase.
    if let Some(handle) = core.handles.get_mut(id) {
        handle.callback = callback;
    }
    if let Err(payload) = outcome {
        let _ = core.close(id);
        let source = Source::Handle { kind: kind.name(), id };
        report(core, source, site, payload);
    }
    leave(core, running);
}

/// Runs a one-shot closure: deferred, posted, or the `done` of pool work or of a write.
pub(crate) fn run_task(core: &mut Core, task: Task, kind: Kind) {
    let Task { run, site, cause } = task;
    let running = core.diagnosing().then(|| enter(core, CallbackName::task(kind), site, cause));
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| run(core))) {
        report(core, Source::Task { kind: kind.name() }, site, payload);
    }
    leave(core, running);
}

/// Frees the slot of closing handle `id` (closing its socket, if it has one) and runs its close
/// callbacks: a stream handler's `on_close` with the `error` that ended the stream, then the
/// callback given to `close_with`.
pub(crate) fn run_close(
    core: &mut Core,
    id: HandleId,
    on_close: Option<Task>,
    error: Option<io::Error>,
) {
    let Some(mut handle) = core.handles.remove(id) else { return };
    let kind = handle.trace_kind();
    let handle_cause = core.trace.take_handle_cause(id);
    let (site, cause) = match &on_close {
        Some(task) => (task.site, task.cause.clone()),
        None => (handle.site, handle_cause),
    };
    let running = core
        .diagnosing()
        .then(|| enter(core, CallbackName::handle(kind, TraceEvent::Close, id), site, cause));
    let callback = mem::replace(&mut handle.callback, Callback::Taken);
    // Dropping the callback drops what it captured, which may run user `Drop` code: guard
    // that too.
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        drop(handle);
        if let Callback::Stream(mut handler) = callback {
            handler.on_close(core, Stream(id), error);
        } else {
            drop(callback);
        }
        if let Some(task) = on_close {
            (task.run)(core);
        }
    }));
    if let Err(payload) = outcome {
        report(core, Source::Close { kind: kind.name(), id }, site, payload);
    }
    leave(core, running);
}

/// What [`enter`] saved, for [`leave`].
struct Running {
    entered: Entered,
    started: Option<Instant>,
}

/// Makes `name` the running callback: for its chain, and for the slow-callback check and
/// the watchdog. Called only while one of them is on ([`Core::diagnosing`]): otherwise the
/// loop keeps no frame at all, which is what makes tracing free when it is off.
fn enter(
    core: &mut Core,
    name: CallbackName,
    site: &'static Location<'static>,
    cause: Cause,
) -> Running {
    let entered = core.trace.enter(name, site, cause);
    let started = core.watch.callback_started(&core.trace);
    Running { entered, started }
}

/// Ends the running callback: reports it if it was slow, then restores the frame.
#[inline(always)]
fn leave(core: &mut Core, running: Option<Running>) {
    match running {
        Some(running) => leave_frame(core, running),
        // No frame was entered; a context the callback set is its own all the same.
        None => core.trace.forget_context(),
    }
}

fn leave_frame(core: &mut Core, Running { entered, started }: Running) {
    match started {
        None => core.trace.leave(entered),
        Some(started) => {
            core.check_slow(started);
            core.trace.leave(entered);
            core.watch.publish(&core.trace);
        }
    }
}

/// What a panicking piece of user code belonged to.
#[derive(Clone, Copy, Debug)]
enum Source {
    Handle { kind: &'static str, id: HandleId },
    Close { kind: &'static str, id: HandleId },
    Task { kind: &'static str },
}

/// The message of a panic, as `panic!` made it (a `&str` or a `String`).
fn panic_str(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}

/// [`panic_str`], owned: for a panic caught off the loop thread (see [`pool`](crate::pool)).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    panic_str(payload).to_owned()
}

fn report(
    core: &mut Core,
    source: Source,
    site: &'static Location<'static>,
    payload: Box<dyn Any + Send>,
) {
    let message = panic_str(&*payload);
    let chain = core.trace.chain();
    core.metrics.panics += 1;
    let report = PanicReport { source, site, message, chain };
    match core.panic_hook.as_mut() {
        Some(hook) => hook(&report),
        // The default hook: the issue's "one line on stderr". Replace it with `set_panic_hook`.
        None => eprintln!("{report}"),
    }
}

/// A panic caught by the loop, as given to the hook set with [`Core::set_panic_hook`].
///
/// Its `Display` is one line naming the callback, the handle and the source location where the
/// callback was handed to the loop, e.g.
/// `reactor: panic in timer#3 callback registered at src/main.rs:10:5: boom (handle closed)`.
#[derive(Debug)]
pub struct PanicReport<'a> {
    source: Source,
    site: &'static Location<'static>,
    message: &'a str,
    chain: Chain,
}

impl PanicReport<'_> {
    /// The handle whose callback (or close callback) panicked; `None` for deferred and posted
    /// closures, which belong to no handle.
    pub fn handle(&self) -> Option<HandleId> {
        match self.source {
            Source::Handle { id, .. } | Source::Close { id, .. } => Some(id),
            Source::Task { .. } => None,
        }
    }

    /// What kind of callback panicked: a handle kind ("timer", "idle", "prepare", "check",
    /// "signal", "stream", "listener", "udp", "process", "fs_watch"), or a one-shot callback
    /// ("deferred", "posted", "work done", "write done").
    pub fn kind(&self) -> &'static str {
        match self.source {
            Source::Handle { kind, .. } | Source::Close { kind, .. } | Source::Task { kind } => {
                kind
            }
        }
    }

    /// Whether it was a close callback that panicked.
    pub fn in_close_callback(&self) -> bool {
        matches!(self.source, Source::Close { .. })
    }

    /// Where the callback was registered: the call that created the handle, or that deferred,
    /// posted or set the close callback.
    pub fn site(&self) -> &'static Location<'static> {
        self.site
    }

    /// The panic message, if the payload was a string.
    pub fn message(&self) -> &str {
        self.message
    }

    /// How the panicking callback came to run (see [`trace`](crate::trace)). With tracing
    /// off it names the callback only.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }
}

impl fmt::Display for PanicReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (site, message) = (self.site, self.message);
        let chain = &self.chain;
        match self.source {
            Source::Handle { kind, id } => {
                write!(
                    f,
                    "reactor: panic in {kind}{id} callback registered at {site}: {message} (handle closed)"
                )?;
            }
            Source::Close { kind, id } => {
                write!(
                    f,
                    "reactor: panic in close callback of {kind}{id} registered at {site}: {message}"
                )?;
            }
            Source::Task { kind } => {
                write!(f, "reactor: panic in {kind} callback registered at {site}: {message}")?;
            }
        }
        if !chain.links().is_empty() {
            write!(f, "; chain: {chain}")?;
        }
        Ok(())
    }
}
