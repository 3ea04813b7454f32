//! Causal traces: how the running callback came to run, and values that travel with it.
//!
//! In an event loop a stack trace ends at the loop: the code that armed the timer whose
//! callback failed has long returned. `reactor` keeps the story instead. Every *scheduling act*
//! (creating a handle, arming a timer, accepting a connection, queueing a write with a
//! completion, queueing pool work, deferring a callback, setting a close callback) records a
//! small cause: what was done, where in the source (`#[track_caller]`, no stack walking), in
//! which callback, and that callback's own cause. When the loop later runs the callback that
//! act scheduled, the cause comes with it, so [`current`] can tell the whole chain:
//!
//! ```
//! use std::{cell::RefCell, rc::Rc, time::Duration};
//! use reactor::{EventLoop, trace};
//!
//! let mut lp = EventLoop::builder().tracing(true).build()?;
//! let chain = Rc::new(RefCell::new(String::new()));
//! let out = chain.clone();
//! lp.set_timeout(Duration::ZERO, move |core| {
//!     core.defer(move |core| *out.borrow_mut() = trace::current(core).to_string());
//! });
//! lp.run()?;
//! // deferred callback (src/...) <- deferred in callback of timer#0 (src/...) <- created (src/...)
//! assert!(chain.borrow().starts_with("deferred callback ("));
//! assert!(chain.borrow().contains(" <- deferred in callback of timer#0 ("));
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! # Reading a chain
//!
//! A chain reads from the running callback back to the first cause, each step on `<-`:
//!
//! ```text
//! callback of timer#7 (examples/trace.rs:31:22)
//!   <- armed in data callback of stream#5 (examples/trace.rs:31:22)
//!   <- accepted by listener#1 (examples/trace.rs:24:8)
//!   <- created (examples/trace.rs:24:8)
//! ```
//!
//! The first entry is the callback that is running and where it was handed to the loop. Each
//! step after it is one act: what was done, in which callback (none for code that ran before
//! the loop did), and where. A chain is at most [`MAX_DEPTH`] steps long; older steps are
//! dropped, and the chain ends with `<- …` to say so.
//!
//! # Context
//!
//! [`Core::set_context`] attaches a value to the running callback, and every act it makes
//! carries the value on to the callbacks it schedules, and so on down the chain: a request id
//! set when a request arrives is seen by the timer, the pool work and the write completion
//! that request causes, and by nothing else (Node's `AsyncLocalStorage`, Python's
//! `contextvars`). Values are looked up by type, so independent libraries do not collide.
//!
//! # Cost
//!
//! Tracing is off unless [`Builder::tracing`](crate::Builder::tracing) or the environment
//! variable `REACTOR_TRACE=1` turns it on; off, an act costs one branch. On, an act costs one
//! small allocation (a reference-counted record), and running a callback costs two reference
//! count updates. Records are freed when nothing scheduled refers to them any more: what is
//! kept is bounded by what is scheduled times [`MAX_DEPTH`], however long the loop runs.
//! A context, once set, is carried even while tracing is off (that costs the same as
//! tracing, for that chain only). `docs/tracing.md` has the measured cost.

use std::any::Any;
use std::fmt;
use std::panic::Location;
use std::rc::Rc;

use crate::dispatch::Task;
use crate::event_loop::Core;
use crate::handle::HandleId;

/// The most steps a [`Chain`] shows after the running callback. Records further back are
/// dropped, which is also what bounds the memory tracing keeps.
pub const MAX_DEPTH: usize = 16;

/// What a scheduling act did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Act {
    /// A handle was created: a timer, a listener, a connection, a watcher, a process...
    Created,
    /// A timer was started or restarted.
    Armed,
    /// A listener accepted a connection (the step names the listener).
    Accepted,
    /// A write with a completion callback was queued.
    Wrote,
    /// Work was queued on the [thread pool](crate::pool).
    QueuedWork,
    /// A callback was deferred ([`Core::defer`]).
    Deferred,
    /// A handle was closed with a close callback ([`Core::close_with`]).
    Closed,
}

impl Act {
    fn name(self) -> &'static str {
        match self {
            Act::Created => "created",
            Act::Armed => "armed",
            Act::Accepted => "accepted",
            Act::Wrote => "queued write",
            Act::QueuedWork => "queued work",
            Act::Deferred => "deferred",
            Act::Closed => "closed",
        }
    }
}

impl fmt::Display for Act {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of thing a callback belongs to: a handle kind, or a kind of one-shot callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Timer,
    Idle,
    Prepare,
    Check,
    Signal,
    Stream,
    Listener,
    Udp,
    Process,
    FsWatch,
    Deferred,
    Posted,
    WorkDone,
    WriteDone,
}

impl Kind {
    pub(crate) const ALL: [Kind; 14] = [
        Kind::Timer,
        Kind::Idle,
        Kind::Prepare,
        Kind::Check,
        Kind::Signal,
        Kind::Stream,
        Kind::Listener,
        Kind::Udp,
        Kind::Process,
        Kind::FsWatch,
        Kind::Deferred,
        Kind::Posted,
        Kind::WorkDone,
        Kind::WriteDone,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Timer => "timer",
            Kind::Idle => "idle",
            Kind::Prepare => "prepare",
            Kind::Check => "check",
            Kind::Signal => "signal",
            Kind::Stream => "stream",
            Kind::Listener => "listener",
            Kind::Udp => "udp",
            Kind::Process => "process",
            Kind::FsWatch => "fs_watch",
            Kind::Deferred => "deferred",
            Kind::Posted => "posted",
            Kind::WorkDone => "work done",
            Kind::WriteDone => "write done",
        }
    }
}

/// Which of a handle's callbacks: the one callback of a timer, watcher or signal handle, or
/// one of the methods of a stream's handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Event {
    Fire,
    Open,
    Data,
    Eof,
    Drain,
    Wake,
    Accept,
    Datagram,
    Exit,
    Change,
    Close,
}

impl Event {
    pub(crate) const ALL: [Event; 11] = [
        Event::Fire,
        Event::Open,
        Event::Data,
        Event::Eof,
        Event::Drain,
        Event::Wake,
        Event::Accept,
        Event::Datagram,
        Event::Exit,
        Event::Change,
        Event::Close,
    ];

    fn name(self) -> &'static str {
        match self {
            Event::Fire => "",
            Event::Open => "open",
            Event::Data => "data",
            Event::Eof => "eof",
            Event::Drain => "drain",
            Event::Wake => "wake",
            Event::Accept => "accept",
            Event::Datagram => "datagram",
            Event::Exit => "exit",
            Event::Change => "change",
            Event::Close => "close",
        }
    }
}

/// A callback, as a chain names it: `data callback of stream#5`, `callback of timer#3`,
/// `deferred callback`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CallbackName {
    pub(crate) kind: Kind,
    pub(crate) event: Event,
    pub(crate) handle: Option<HandleId>,
}

impl CallbackName {
    /// The callback of a handle.
    pub(crate) fn handle(kind: Kind, event: Event, id: HandleId) -> Self {
        CallbackName { kind, event, handle: Some(id) }
    }

    /// A one-shot callback that belongs to no handle.
    pub(crate) fn task(kind: Kind) -> Self {
        CallbackName { kind, event: Event::Fire, handle: None }
    }

    /// The handle the callback belongs to, if any.
    pub fn handle_id(&self) -> Option<HandleId> {
        self.handle
    }

    /// The kind of handle ("timer", "stream", "listener", ...) or of one-shot callback
    /// ("deferred", "posted", "work done", "write done").
    pub fn kind(&self) -> &'static str {
        self.kind.name()
    }

    /// Which callback of the handle: "data", "open", "eof", "drain", "wake", "accept",
    /// "datagram", "exit", "change", "close", or "" for a handle's one callback.
    pub fn event(&self) -> &'static str {
        self.event.name()
    }
}

impl fmt::Display for CallbackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind.name();
        match (self.handle, self.event) {
            (Some(id), Event::Fire) => write!(f, "callback of {kind}{id}"),
            (Some(id), event) => write!(f, "{} callback of {kind}{id}", event.name()),
            (None, _) => write!(f, "{kind} callback"),
        }
    }
}

impl fmt::Debug for CallbackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One scheduling act, kept while something it scheduled may still run.
pub(crate) struct Record {
    act: Act,
    site: &'static Location<'static>,
    /// The callback that made the act; `None` for code outside any callback.
    within: Option<CallbackName>,
    /// The cause of that callback.
    parent: Cause,
    /// How many records this chain holds, this one included.
    depth: usize,
    /// Older records of this chain were dropped.
    cut: bool,
    /// The context the act was made in.
    context: Context,
}

/// The cause of something scheduled: `None` when tracing was off (or it came from another
/// thread).
pub(crate) type Cause = Option<Rc<Record>>;

/// A context: values set with [`Core::set_context`], newest first. Immutable and shared, so
/// that carrying it to a scheduled callback is one reference count.
type Context = Option<Rc<ContextValue>>;

struct ContextValue {
    value: Box<dyn Any>,
    next: Context,
}

/// The callback that is running, or the top level (code outside any callback).
struct Frame {
    name: Option<CallbackName>,
    site: Option<&'static Location<'static>>,
    cause: Cause,
    context: Context,
}

impl Frame {
    const TOP: Frame = Frame { name: None, site: None, cause: None, context: None };
}

/// The loop's tracing state (a field of [`Core`]).
pub(crate) struct Tracer {
    enabled: bool,
    /// A context has been set on this loop (ever): from then on callbacks get frames even
    /// with tracing off, so that contexts are carried.
    contexts: bool,
    frame: Frame,
    /// The cause of each handle's callbacks, by slot: what created the handle, or what last
    /// armed it. Empty while tracing has never been on.
    handle_causes: Vec<Cause>,
}

impl Tracer {
    pub(crate) fn new(enabled: bool) -> Self {
        Tracer { enabled, contexts: false, frame: Frame::TOP, handle_causes: Vec::new() }
    }

    /// Whether callbacks need frames: tracing is on, or contexts are in use.
    #[inline]
    pub(crate) fn live(&self) -> bool {
        self.enabled || self.contexts
    }

    /// After a callback that ran without a frame: drops a context it set, which belongs to it
    /// and to what it scheduled, not to the callbacks that come next.
    #[inline]
    pub(crate) fn forget_context(&mut self) {
        if self.contexts {
            self.frame.context = None;
        }
    }

    /// The cause of handle `id`'s callbacks, which is being freed.
    #[inline]
    pub(crate) fn take_handle_cause(&mut self, id: HandleId) -> Cause {
        self.handle_causes.get_mut(id.slot as usize).and_then(Option::take)
    }

    /// Whether acts are recorded now: tracing is on, or the running callback has a context
    /// to carry.
    fn recording(&self) -> bool {
        self.enabled || self.frame.context.is_some()
    }

    /// Records an act made by the running callback (or the top level).
    #[inline]
    pub(crate) fn record(&self, act: Act, site: &'static Location<'static>) -> Cause {
        if !self.recording() {
            return None;
        }
        let parent = self.frame.cause.clone();
        Some(link(act, site, self.frame.name, parent, self.frame.context.clone()))
    }

    /// Records an act the loop makes on a handle's behalf (a listener accepting a
    /// connection): made "in" that handle's callback, with that handle's cause.
    pub(crate) fn record_for(
        &self,
        act: Act,
        site: &'static Location<'static>,
        within: CallbackName,
        parent: Cause,
    ) -> Cause {
        if !self.enabled && parent.as_ref().is_none_or(|p| p.context.is_none()) {
            return None;
        }
        let context = parent.as_ref().and_then(|p| p.context.clone());
        Some(link(act, site, Some(within), parent, context))
    }

    /// The cause of handle `id`'s callbacks.
    #[inline]
    pub(crate) fn handle_cause(&self, id: HandleId) -> Cause {
        self.handle_causes.get(id.slot as usize).cloned().flatten()
    }

    /// Sets (or, with `None`, clears) the cause of handle `id`'s callbacks.
    #[inline]
    pub(crate) fn set_handle_cause(&mut self, id: HandleId, cause: Cause) {
        let slot = id.slot as usize;
        if slot >= self.handle_causes.len() {
            if cause.is_none() {
                return; // the usual case with tracing off: nothing to store, nothing to clear
            }
            self.handle_causes.resize(slot + 1, None);
        }
        self.handle_causes[slot] = cause;
    }

    /// Makes `name` the running callback, until [`Tracer::leave`] restores what `enter`
    /// returns.
    #[inline]
    pub(crate) fn enter(
        &mut self,
        name: CallbackName,
        site: &'static Location<'static>,
        cause: Cause,
    ) -> Entered {
        let context = cause.as_ref().and_then(|c| c.context.clone());
        let frame = Frame { name: Some(name), site: Some(site), cause, context };
        Entered(std::mem::replace(&mut self.frame, frame))
    }

    /// Ends the running callback.
    #[inline]
    pub(crate) fn leave(&mut self, entered: Entered) {
        self.frame = entered.0;
    }

    /// The chain of the running callback.
    pub(crate) fn chain(&self) -> Chain {
        let mut links = Vec::new();
        let cut = self.walk(|link| links.push(link));
        Chain { callback: self.frame.name, site: self.frame.site, links, cut, off: false }
    }

    /// The running callback and where it was handed to the loop; `None` at the top level.
    pub(crate) fn head(&self) -> (Option<CallbackName>, Option<&'static Location<'static>>) {
        (self.frame.name, self.frame.site)
    }

    /// Calls `visit` with each step of the running callback's chain, newest first, at most
    /// [`MAX_DEPTH`] of them, without allocating. Returns whether older steps exist.
    pub(crate) fn walk(&self, mut visit: impl FnMut(Link)) -> bool {
        let mut next = self.frame.cause.as_deref();
        let mut steps = 0;
        let mut cut = false;
        while let Some(record) = next {
            if steps == MAX_DEPTH {
                return true;
            }
            visit(Link { act: record.act, site: record.site, within: record.within });
            steps += 1;
            cut = record.cut;
            next = record.parent.as_deref();
        }
        cut
    }
}

/// The state saved by [`Tracer::enter`].
#[must_use]
pub(crate) struct Entered(Frame);

/// A new record on top of `parent`. A chain that grows past twice [`MAX_DEPTH`] (a timer
/// that re-arms itself forever) is copied down to its newest `MAX_DEPTH` records, so that
/// each record keeps at most `2 * MAX_DEPTH` others alive, at the price of one copy every
/// `MAX_DEPTH` acts.
fn link(
    act: Act,
    site: &'static Location<'static>,
    within: Option<CallbackName>,
    mut parent: Cause,
    context: Context,
) -> Rc<Record> {
    if parent.as_ref().is_some_and(|p| p.depth >= 2 * MAX_DEPTH) {
        parent = shorten(parent.as_deref(), MAX_DEPTH - 1);
    }
    let depth = parent.as_ref().map_or(1, |p| p.depth + 1);
    Rc::new(Record { act, site, within, parent, depth, cut: false, context })
}

/// A copy of the newest `keep` records of a chain, the oldest marked as cut.
fn shorten(record: Option<&Record>, keep: usize) -> Cause {
    let record = record?;
    if keep == 1 {
        let mut copy = copy_of(record, None);
        copy.cut = true;
        return Some(Rc::new(copy));
    }
    let parent = shorten(record.parent.as_deref(), keep - 1);
    Some(Rc::new(copy_of(record, parent)))
}

fn copy_of(record: &Record, parent: Cause) -> Record {
    let depth = parent.as_ref().map_or(1, |p| p.depth + 1);
    Record {
        act: record.act,
        site: record.site,
        within: record.within,
        parent,
        depth,
        cut: record.cut,
        context: record.context.clone(),
    }
}

/// One step of a [`Chain`]: an act, where it was made, and in which callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    act: Act,
    site: &'static Location<'static>,
    within: Option<CallbackName>,
}

impl Link {
    pub(crate) fn new(
        act: Act,
        site: &'static Location<'static>,
        within: Option<CallbackName>,
    ) -> Self {
        Link { act, site, within }
    }

    /// What was done.
    pub fn act(&self) -> Act {
        self.act
    }

    /// Where in the source it was done.
    pub fn site(&self) -> &'static Location<'static> {
        self.site
    }

    /// The callback that did it; `None` for code that ran outside any callback.
    pub fn within(&self) -> Option<CallbackName> {
        self.within
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let site = self.site;
        match (self.act, self.within) {
            (Act::Accepted, Some(by)) => match by.handle {
                Some(id) => write!(f, "accepted by {}{id} ({site})", by.kind.name()),
                None => write!(f, "accepted ({site})"),
            },
            (act, Some(within)) => write!(f, "{act} in {within} ({site})"),
            (act, None) => write!(f, "{act} ({site})"),
        }
    }
}

/// How the running callback came to run: the callback, then the acts that led to it, newest
/// first. Its `Display` is one line (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    callback: Option<CallbackName>,
    site: Option<&'static Location<'static>>,
    links: Vec<Link>,
    cut: bool,
    /// Made while nothing was traced: the loop kept no frame to tell.
    off: bool,
}

impl Chain {
    pub(crate) fn from_parts(
        callback: Option<CallbackName>,
        site: Option<&'static Location<'static>>,
        links: Vec<Link>,
        cut: bool,
    ) -> Self {
        Chain { callback, site, links, cut, off: false }
    }

    /// The running callback; `None` outside any callback.
    pub fn callback(&self) -> Option<CallbackName> {
        self.callback
    }

    /// Where the running callback was handed to the loop.
    pub fn site(&self) -> Option<&'static Location<'static>> {
        self.site
    }

    /// The acts that led to the callback, newest first; empty when tracing was off.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// Whether older steps were dropped (the chain was longer than [`MAX_DEPTH`]).
    pub fn is_cut(&self) -> bool {
        self.cut
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.callback, self.site) {
            (Some(callback), Some(site)) => write!(f, "{callback} ({site})")?,
            (Some(callback), None) => write!(f, "{callback}")?,
            (None, _) if self.off => f.write_str("(tracing off)")?,
            (None, _) => f.write_str("top level")?,
        }
        for link in &self.links {
            write!(f, " <- {link}")?;
        }
        if self.cut {
            f.write_str(" <- …")?;
        }
        Ok(())
    }
}

/// The causal chain of the running callback.
///
/// Outside any callback it is `top level`, with no steps. With tracing off (and no context
/// set, slow-callback check or watchdog on) the loop keeps no record of the running callback
/// at all, and the chain is `(tracing off)`. Call it in a callback that got an error to see
/// how the failing operation came about.
pub fn current(core: &Core) -> Chain {
    let mut chain = core.trace.chain();
    chain.off = chain.callback.is_none() && !core.diagnosing();
    chain
}

impl Core {
    /// Turns causal tracing on or off from now on (see [`trace`](crate::trace)). Acts made
    /// while it is off have no cause; callbacks that are already scheduled keep theirs.
    pub fn set_tracing(&mut self, enabled: bool) {
        self.trace.enabled = enabled;
    }

    /// Whether causal tracing is on.
    pub fn tracing(&self) -> bool {
        self.trace.enabled
    }

    /// Attaches `value` to the running callback and everything it causes from now on (see
    /// [Context](crate::trace#context)). A value of the same type set earlier in the chain is
    /// shadowed, not changed: callbacks scheduled before this call still see the old one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::EventLoop;
    ///
    /// struct RequestId(u64);
    ///
    /// let mut lp = EventLoop::new()?;
    /// lp.set_timeout(Duration::ZERO, |core| {
    ///     core.set_context(RequestId(7));
    ///     core.defer(|core| assert_eq!(core.context::<RequestId>().unwrap().0, 7));
    /// });
    /// lp.set_timeout(Duration::ZERO, |core| {
    ///     core.defer(|core| assert!(core.context::<RequestId>().is_none()));
    /// });
    /// lp.run()?;
    /// # Ok::<(), reactor::Error>(())
    /// ```
    pub fn set_context<T: Any>(&mut self, value: T) {
        self.trace.contexts = true;
        let next = self.trace.frame.context.take();
        self.trace.frame.context = Some(Rc::new(ContextValue { value: Box::new(value), next }));
    }

    /// The value of type `T` in the running callback's context, if one was set in this
    /// callback or in the chain that caused it.
    pub fn context<T: Any>(&self) -> Option<&T> {
        let mut next = self.trace.frame.context.as_deref();
        while let Some(entry) = next {
            if let Some(value) = entry.value.downcast_ref::<T>() {
                return Some(value);
            }
            next = entry.next.as_deref();
        }
        None
    }

    /// Runs `f` with the running callback's context as it is now, and puts that context back
    /// afterwards: for code that calls user code more than once in one callback (one HTTP
    /// request handler after another), so that a context one of them sets stays its own.
    #[inline]
    pub(crate) fn with_own_context<R>(&mut self, f: impl FnOnce(&mut Core) -> R) -> R {
        if !self.trace.contexts {
            let result = f(self);
            self.trace.forget_context();
            return result;
        }
        let saved = self.trace.frame.context.clone();
        let result = f(self);
        self.trace.frame.context = saved;
        result
    }

    /// A one-shot callback made by `act` at the caller's site, with its cause.
    #[track_caller]
    pub(crate) fn task(&self, act: Act, run: Box<dyn FnOnce(&mut Core)>) -> Task {
        let site = Location::caller();
        Task { run, site, cause: self.trace.record(act, site) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> &'static Location<'static> {
        Location::caller()
    }

    #[test]
    fn a_chain_that_grows_forever_keeps_its_newest_steps_and_bounded_memory() {
        let mut tracer = Tracer::new(true);
        let name = CallbackName::task(Kind::Deferred);
        let first = tracer.record(Act::Created, site());
        let mut cause = first.clone();
        for _ in 0..10 * MAX_DEPTH {
            let entered = tracer.enter(name, site(), cause);
            cause = tracer.record(Act::Deferred, site());
            tracer.leave(entered);
        }
        let depth = cause.as_ref().unwrap().depth;
        assert!(depth <= 2 * MAX_DEPTH, "depth {depth}");
        // The first record is no longer kept alive by the chain.
        assert_eq!(Rc::strong_count(first.as_ref().unwrap()), 1);
        let entered = tracer.enter(name, site(), cause);
        let chain = tracer.chain();
        tracer.leave(entered);
        assert_eq!(chain.links().len(), MAX_DEPTH);
        assert!(chain.is_cut());
        assert!(chain.links().iter().all(|link| link.act() == Act::Deferred));
        assert!(chain.to_string().ends_with(" <- …"));
    }

    #[test]
    fn nothing_is_recorded_while_tracing_is_off() {
        let tracer = Tracer::new(false);
        assert!(tracer.record(Act::Armed, site()).is_none());
        assert_eq!(tracer.chain().to_string(), "top level");
    }
}
