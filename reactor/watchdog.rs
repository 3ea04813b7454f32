//! Blocked-loop detection: callbacks that ran too long, and a watchdog for a loop that is
//! stuck right now.
//!
//! A loop has one thread, so one callback that computes for a second delays every other
//! connection by a second. Two tools find it:
//!
//! - **Slow callbacks** ([`Core::set_slow_callback_threshold`]): the loop reads the clock
//!   around every callback and reports each one that took longer than the threshold, after it
//!   returns, with its site and causal chain.
//! - **The watchdog** ([`Core::start_watchdog`]): a thread that notices when the loop has not
//!   come back to poll for longer than a threshold, and reports, while the loop is still
//!   stuck, which callback is running. It sees a callback that never returns, which the first
//!   tool cannot.
//!
//! ```
//! use std::{cell::Cell, rc::Rc, time::Duration};
//! use reactor::EventLoop;
//!
//! let mut lp = EventLoop::new()?;
//! let slow = Rc::new(Cell::new(0));
//! let seen = slow.clone();
//! lp.set_slow_callback_threshold(Some(Duration::from_millis(5)));
//! lp.set_slow_callback_hook(move |report| {
//!     assert!(report.duration() >= Duration::from_millis(5));
//!     seen.set(seen.get() + 1);
//! });
//! lp.set_timeout(Duration::ZERO, |_| std::thread::sleep(Duration::from_millis(10)));
//! lp.set_timeout(Duration::ZERO, |_| {}); // quick: not reported
//! lp.run()?;
//! assert_eq!(slow.get(), 1);
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! # How the watchdog sees the loop
//!
//! The loop publishes two things for it, only while it runs: when it last returned from poll
//! (or that it is in poll now), and the running callback's name, site and chain. The chain is
//! copied into atomic cells under a sequence counter (a seqlock): the loop never waits for the
//! watchdog, and the watchdog retries a read that raced with an update. Sites are
//! `&'static Location`s, so a copy stays valid on any thread.
//!
//! Off, both tools cost one branch per callback. On, slow-callback checks cost two clock reads
//! per callback; the watchdog adds a copy of the chain per callback and a clock read per poll.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::Result;
use crate::event_loop::Core;
use crate::handle::HandleId;
use crate::sys::site::AtomicSite;
use crate::trace::{Act, CallbackName, Chain, Event, Kind, Link, MAX_DEPTH, Tracer};

/// A callback that ran for longer than the threshold, as given to the hook set with
/// [`Core::set_slow_callback_hook`]. Its `Display` is one line.
#[derive(Debug)]
pub struct SlowCallback {
    duration: Duration,
    chain: Chain,
}

impl SlowCallback {
    /// How long the callback ran.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// The callback, where it was handed to the loop, and how it came to run.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }
}

impl fmt::Display for SlowCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.duration.as_secs_f64() * 1e3;
        write!(f, "reactor: slow callback, {ms:.1} ms: {}", self.chain)
    }
}

/// The loop has not come back to poll for longer than the watchdog's threshold. Given to the
/// watchdog's hook on the watchdog's thread, while the loop is still stuck.
#[derive(Debug)]
pub struct Blocked {
    duration: Duration,
    chain: Option<Chain>,
}

impl Blocked {
    /// How long the loop has been away from poll so far.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// The callback running now, with its site and chain; `None` if the loop is in its own
    /// code between callbacks, or if the callback changed while it was being read.
    pub fn chain(&self) -> Option<&Chain> {
        self.chain.as_ref()
    }
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.duration.as_secs_f64() * 1e3;
        write!(f, "reactor: loop blocked for {ms:.0} ms")?;
        match &self.chain {
            Some(chain) => write!(f, ", running {chain}"),
            None => f.write_str(", not in a callback"),
        }
    }
}

type SlowHook = Box<dyn FnMut(&SlowCallback)>;
type BlockedHook = Box<dyn FnMut(&Blocked) + Send>;

/// The loop's side of both tools (a field of [`Core`]).
#[derive(Default)]
pub(crate) struct Watch {
    /// A slow-callback threshold or a watchdog is set: the one flag the loop checks.
    on: bool,
    slow_threshold: Option<Duration>,
    slow_hook: Option<SlowHook>,
    dog: Option<Dog>,
}

/// A running watchdog: what the loop publishes, and how to stop the thread.
struct Dog {
    shared: Arc<Shared>,
    /// Dropping it wakes the thread, which then ends.
    stop: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Dog {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Watch {
    /// Called as a callback starts. Returns the time it started if anything watches.
    #[inline]
    pub(crate) fn callback_started(&self, trace: &Tracer) -> Option<Instant> {
        if !self.on {
            return None;
        }
        self.publish(trace);
        Some(Instant::now())
    }

    fn update_on(&mut self) {
        self.on = self.slow_threshold.is_some() || self.dog.is_some();
    }

    /// Tells the watchdog, if there is one, which callback runs now.
    pub(crate) fn publish(&self, trace: &Tracer) {
        if let Some(dog) = &self.dog {
            dog.shared.publish(trace);
        }
    }

    /// Called before the loop blocks in poll.
    #[inline]
    pub(crate) fn entering_poll(&self) {
        if self.on {
            self.poll_state(true);
        }
    }

    /// Called when poll returns.
    #[inline]
    pub(crate) fn left_poll(&self) {
        if self.on {
            self.poll_state(false);
        }
    }

    /// Tells the watchdog, if there is one, that the loop enters or leaves poll.
    #[cold]
    fn poll_state(&self, entering: bool) {
        match &self.dog {
            Some(dog) if entering => dog.shared.busy_since.store(IN_POLL, Ordering::Release),
            Some(dog) => dog.shared.mark_busy(),
            None => {}
        }
    }
}

impl Core {
    /// Whether callbacks run inside a frame: tracing, contexts, or a slow-callback check or
    /// watchdog is on. Dispatch checks this once per callback; when it is false, the loop
    /// does no diagnostic work at all.
    #[inline]
    pub(crate) fn diagnosing(&self) -> bool {
        self.trace.live() || self.watch.on
    }

    /// Reports every callback that runs for longer than `threshold` (`None`: stop checking).
    /// Reports go to the hook set with [`Core::set_slow_callback_hook`], or one line on stderr.
    pub fn set_slow_callback_threshold(&mut self, threshold: Option<Duration>) {
        self.watch.slow_threshold = threshold;
        self.watch.update_on();
    }

    /// Sets the function that receives slow-callback reports. It runs on the loop thread,
    /// right after the slow callback returns.
    pub fn set_slow_callback_hook(&mut self, hook: impl FnMut(&SlowCallback) + 'static) {
        self.watch.slow_hook = Some(Box::new(hook));
    }

    /// Starts a watchdog thread that calls `hook` (on that thread) when the loop has not come
    /// back to poll for longer than `threshold`: once per stall, while the loop is still
    /// stuck. Replaces a watchdog started before. The thread ends when the loop is dropped or
    /// [`Core::stop_watchdog`] is called.
    pub fn start_watchdog(
        &mut self,
        threshold: Duration,
        hook: impl FnMut(&Blocked) + Send + 'static,
    ) -> Result<()> {
        self.stop_watchdog();
        let shared = Arc::new(Shared::new());
        shared.mark_busy();
        shared.publish(&self.trace);
        let (stop, stopped) = mpsc::sync_channel(0);
        let theirs = shared.clone();
        let hook: BlockedHook = Box::new(hook);
        let thread = thread::Builder::new()
            .name("reactor-watchdog".into())
            .spawn(move || watch(&theirs, threshold, hook, &stopped))?;
        self.watch.dog = Some(Dog { shared, stop: Some(stop), thread: Some(thread) });
        self.watch.update_on();
        Ok(())
    }

    /// Stops the watchdog thread, if one runs, and waits for it to end.
    pub fn stop_watchdog(&mut self) {
        self.watch.dog = None;
        self.watch.update_on();
    }

    /// Called as a callback that started at `started` ends, its frame still current.
    pub(crate) fn check_slow(&mut self, started: Instant) {
        let Some(threshold) = self.watch.slow_threshold else { return };
        let duration = started.elapsed();
        if duration < threshold {
            return;
        }
        self.metrics.slow_callbacks += 1;
        let report = SlowCallback { duration, chain: self.trace.chain() };
        match self.watch.slow_hook.as_mut() {
            Some(hook) => hook(&report),
            None => eprintln!("{report}"),
        }
    }
}

/// `busy_since` while the loop waits in poll.
const IN_POLL: u64 = u64::MAX;

/// What the loop publishes for the watchdog.
struct Shared {
    origin: Instant,
    /// Nanoseconds after `origin` when the loop last came back from poll, or [`IN_POLL`].
    busy_since: AtomicU64,
    /// Even while the fields below are consistent; odd while the loop rewrites them.
    seq: AtomicU64,
    /// The running callback, packed (see [`pack`]); [`NONE`] between callbacks.
    head: Cell,
    links: [Cell; MAX_DEPTH],
    len: AtomicUsize,
    cut: AtomicBool,
}

/// A callback name or a link, in atomics.
struct Cell {
    name: AtomicU64,
    id: AtomicU64,
    site: AtomicSite,
}

const NONE: u64 = u64::MAX;

impl Shared {
    fn new() -> Self {
        let cell =
            || Cell { name: AtomicU64::new(NONE), id: AtomicU64::new(0), site: AtomicSite::new() };
        Shared {
            origin: Instant::now(),
            busy_since: AtomicU64::new(IN_POLL),
            seq: AtomicU64::new(0),
            head: cell(),
            links: std::array::from_fn(|_| cell()),
            len: AtomicUsize::new(0),
            cut: AtomicBool::new(false),
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(IN_POLL - 1)
    }

    fn mark_busy(&self) {
        self.busy_since.store(self.now_ns(), Ordering::Release);
    }

    /// Copies the running callback and its chain (the loop thread is the only writer).
    fn publish(&self, trace: &Tracer) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        let (name, site) = trace.head();
        self.head.store(name.map(|name| (None, name)), site);
        let mut len = 0;
        let cut = trace.walk(|link| {
            let within = link.within().unwrap_or(CallbackName::task(Kind::Deferred));
            let packed = (Some((link.act(), link.within().is_some())), within);
            self.links[len].store(Some(packed), Some(link.site()));
            len += 1;
        });
        self.len.store(len, Ordering::Relaxed);
        self.cut.store(cut, Ordering::Relaxed);
        self.seq.store(seq + 2, Ordering::Release);
    }

    /// Reads what [`Shared::publish`] wrote: `None` between callbacks or if every try raced
    /// with an update.
    fn read(&self) -> Option<Chain> {
        for _ in 0..1000 {
            let before = self.seq.load(Ordering::Acquire);
            if before % 2 == 1 {
                thread::yield_now();
                continue;
            }
            let head = self.head.load();
            let len = self.len.load(Ordering::Relaxed).min(MAX_DEPTH);
            let links: Vec<_> = self.links[..len].iter().map(Cell::load).collect();
            let cut = self.cut.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) != before {
                continue;
            }
            let (Some((_, name)), site) = head else { return None };
            let links = links
                .into_iter()
                .filter_map(|(packed, site)| {
                    let (Some((act, has_within)), within) = packed? else { return None };
                    Some(Link::new(act, site?, has_within.then_some(within)))
                })
                .collect();
            return Some(Chain::from_parts(Some(name), site, links, cut));
        }
        None
    }
}

/// A packed name: an optional act (with whether the link has a callback), and a callback.
type Packed = (Option<(Act, bool)>, CallbackName);

impl Cell {
    fn store(&self, packed: Option<Packed>, site: Option<&'static std::panic::Location<'static>>) {
        let (name, id) = match packed {
            None => (NONE, 0),
            Some(packed) => pack(packed),
        };
        self.name.store(name, Ordering::Relaxed);
        self.id.store(id, Ordering::Relaxed);
        self.site.store(site);
    }

    fn load(&self) -> (Option<Packed>, Option<&'static std::panic::Location<'static>>) {
        let (name, id) = (self.name.load(Ordering::Relaxed), self.id.load(Ordering::Relaxed));
        let packed = if name == NONE { None } else { unpack(name, id) };
        (packed, self.site.load())
    }
}

const ACTS: [Act; 7] = [
    Act::Created,
    Act::Armed,
    Act::Accepted,
    Act::Wrote,
    Act::QueuedWork,
    Act::Deferred,
    Act::Closed,
];

/// Bytes, low first: kind, event, act + 1 (0: none), has-within, has-handle.
fn pack((act, name): Packed) -> (u64, u64) {
    let kind = Kind::ALL.iter().position(|k| *k == name.kind).unwrap_or(0) as u64;
    let event = Event::ALL.iter().position(|e| *e == name.event).unwrap_or(0) as u64;
    let (act, within) = match act {
        Some((act, within)) => {
            (ACTS.iter().position(|a| *a == act).unwrap_or(0) as u64 + 1, within)
        }
        None => (0, false),
    };
    let has_handle = name.handle.is_some() as u64;
    let word = kind | event << 8 | act << 16 | (within as u64) << 24 | has_handle << 32;
    let id = name.handle.map_or(0, |id| u64::from(id.slot) | u64::from(id.generation) << 32);
    (word, id)
}

fn unpack(word: u64, id: u64) -> Option<Packed> {
    let kind = *Kind::ALL.get((word & 0xff) as usize)?;
    let event = *Event::ALL.get((word >> 8 & 0xff) as usize)?;
    let act = match (word >> 16 & 0xff) as usize {
        0 => None,
        n => Some((*ACTS.get(n - 1)?, word >> 24 & 1 == 1)),
    };
    let handle = (word >> 32 & 1 == 1)
        .then_some(HandleId { slot: id as u32, generation: (id >> 32) as u32 });
    Some((act, CallbackName { kind, event, handle }))
}

/// The watchdog thread: checks the loop a few times per threshold until told to stop.
fn watch(shared: &Shared, threshold: Duration, mut hook: BlockedHook, stop: &mpsc::Receiver<()>) {
    let tick = (threshold / 4).clamp(Duration::from_millis(1), Duration::from_millis(250));
    let mut reported = IN_POLL;
    loop {
        match stop.recv_timeout(tick) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let since = shared.busy_since.load(Ordering::Acquire);
        if since == IN_POLL || since == reported {
            continue;
        }
        let busy = Duration::from_nanos(shared.now_ns().saturating_sub(since));
        if busy < threshold {
            continue;
        }
        reported = since;
        hook(&Blocked { duration: busy, chain: shared.read() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_links_survive_packing() {
        let id = HandleId { slot: 7, generation: 3 };
        for kind in Kind::ALL {
            for event in Event::ALL {
                let name = CallbackName { kind, event, handle: Some(id) };
                for act in ACTS {
                    let packed = (Some((act, true)), name);
                    let (word, id) = pack(packed);
                    assert_eq!(unpack(word, id), Some(packed));
                }
                let packed = (None, CallbackName { kind, event, handle: None });
                let (word, id) = pack(packed);
                assert_eq!(unpack(word, id), Some(packed));
            }
        }
    }
}
