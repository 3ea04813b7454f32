//! Handle introspection: every handle one by one, and why the loop is still alive.
//!
//! The types are documented, and re-exported, in [`metrics`](crate::metrics); this module
//! walks the handle slab for them and for the handle counts of a [`Metrics`] snapshot.
//!
//! [`Metrics`]: crate::metrics::Metrics

use std::fmt::{self, Write as _};
use std::panic::Location;
use std::time::Duration;

use crate::event_loop::Core;
use crate::handle::{Handle, HandleId, State, Udp};
use crate::metrics::HandleCounts;
use crate::trace::Kind;

/// One handle, as [`Core::handles_info`] describes it.
///
/// Its `Display` is the handle's line in [`Core::dump_handles`]: flags (`R` referenced, `A`
/// active, `C` closing, `-` for each that is not), kind and id, age, queued bytes for sockets
/// that write, and the source location that created it:
///
/// ```text
/// [RA-] stream#5       age     1520 ms  queued    65536 B   at examples/echo.rs:40:22
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HandleInfo {
    /// The handle's id.
    pub id: HandleId,
    /// Its kind: "timer", "idle", "prepare", "check", "signal", "stream", "listener", "udp",
    /// "process" or "fs_watch".
    pub kind: &'static str,
    /// Doing its job: an armed timer, a started watcher or signal handle, an open socket
    /// (a closing stream that still flushes its output included), a running process.
    pub active: bool,
    /// Not [unreferenced](Core::unref). An active, referenced handle keeps the loop alive.
    pub referenced: bool,
    /// Closed, its slot not freed yet.
    pub closing: bool,
    /// How long ago it was created, in the loop's time ([`Core::now`]), to the millisecond.
    pub age: Duration,
    /// Bytes queued for writing on a stream or UDP socket and not yet taken by the kernel; 0
    /// for other kinds, and for a closing stream.
    pub queued_bytes: usize,
    /// The call that created it (for an accepted stream: the one that created its listener).
    pub site: &'static Location<'static>,
}

impl fmt::Display for HandleInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = |on: bool, letter: char| if on { letter } else { '-' };
        let (r, a, c) =
            (flag(self.referenced, 'R'), flag(self.active, 'A'), flag(self.closing, 'C'));
        let name = format!("{}{}", self.kind, self.id);
        write!(f, "[{r}{a}{c}] {name:<14} age {:>8} ms  ", self.age.as_millis())?;
        if matches!(self.kind, "stream" | "udp") {
            write!(f, "queued {:>8} B   ", self.queued_bytes)?;
        } else {
            f.write_str(&" ".repeat(20))?;
        }
        write!(f, "at {}", self.site)
    }
}

/// Something that keeps the loop alive: one of the conditions of [`Core::alive`], as
/// [`Core::alive_reasons`] lists them. Each `Display`s as one line.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AliveReason {
    /// An active, referenced handle (libuv's "active handles").
    Handle(HandleInfo),
    /// Work left over by an iteration whose budget ran out, for the next pending phase.
    Pending,
    /// Deferred callbacks ([`Core::defer`]) that have not run yet: how many.
    Deferred(usize),
    /// Closed handles whose close callbacks are due: how many.
    Closing(usize),
    /// Referenced [`Remote`](crate::Remote)s exist, or closures they posted have not run.
    Remotes {
        /// How many referenced `Remote`s exist.
        referenced: usize,
        /// How many posted closures wait for the loop.
        posted: usize,
    },
    /// Work on the [thread pool](crate::pool) whose `done` has not run: how many.
    PoolWork(usize),
}

impl fmt::Display for AliveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |n: usize| if n == 1 { "" } else { "s" };
        match self {
            AliveReason::Handle(info) => {
                write!(f, "{}{} is active and referenced", info.kind, info.id)?;
                if info.closing {
                    f.write_str(", closing (flushing its output)")?;
                }
                write!(f, " (created at {})", info.site)
            }
            AliveReason::Pending => f.write_str("work is pending from the last iteration"),
            AliveReason::Deferred(n) => write!(f, "{n} deferred callback{} to run", s(*n)),
            AliveReason::Closing(n) => write!(f, "{n} close callback{} due", s(*n)),
            AliveReason::Remotes { referenced, posted } => write!(
                f,
                "{referenced} referenced Remote{}, {posted} posted closure{} to run",
                s(*referenced),
                s(*posted)
            ),
            AliveReason::PoolWork(n) => {
                write!(f, "{n} piece{} of pool work whose done has not run", s(*n))
            }
        }
    }
}

/// Handle introspection (see [`metrics`](crate::metrics)).
impl Core {
    /// Every handle, in slot order (libuv's `uv_walk`). O(handles).
    pub fn handles_info(&self) -> Vec<HandleInfo> {
        self.handles.iter().map(|(id, handle)| self.handle_info(id, handle)).collect()
    }

    /// Why the loop is alive: the conditions of [`Core::alive`] that hold, each active and
    /// referenced handle on its own. Empty exactly when the loop is not alive. O(handles).
    pub fn alive_reasons(&self) -> Vec<AliveReason> {
        let mut reasons: Vec<AliveReason> = (self.handles.iter())
            .filter(|(_, handle)| handle.active && handle.referenced)
            .map(|(id, handle)| AliveReason::Handle(self.handle_info(id, handle)))
            .collect();
        if !self.pending.is_empty() {
            reasons.push(AliveReason::Pending);
        }
        if !self.deferred.is_empty() {
            reasons.push(AliveReason::Deferred(self.deferred.len()));
        }
        if !self.closing.is_empty() {
            reasons.push(AliveReason::Closing(self.closing.len()));
        }
        let (referenced, posted) = self.inbox.counts();
        if referenced > 0 || posted > 0 {
            reasons.push(AliveReason::Remotes { referenced, posted });
        }
        if self.pool.in_flight() {
            reasons.push(AliveReason::PoolWork(self.pool.owed()));
        }
        reasons
    }

    /// Every handle, one line each, then why the loop is alive (libuv's
    /// `uv_print_all_handles`). For people: the format may change; use
    /// [`Core::handles_info`] and [`Core::alive_reasons`] in code.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::EventLoop;
    ///
    /// let mut lp = EventLoop::new()?;
    /// let heartbeat = lp.set_interval(Duration::from_secs(1), |_, _| {});
    /// lp.unref(heartbeat)?;
    /// let dump = lp.dump_handles();
    /// assert!(dump.contains("[-A-] timer#0"), "{dump}"); // active, not referenced
    /// assert!(dump.ends_with("not alive: nothing keeps the loop running\n"), "{dump}");
    /// # Ok::<(), reactor::Error>(())
    /// ```
    pub fn dump_handles(&self) -> String {
        let infos = self.handles_info();
        let counts = self.count_handles().0;
        let mut out = String::new();
        // Writing to a `String` cannot fail.
        let _ = writeln!(
            out,
            "reactor: {} handle{} ({} active, {} referenced, {} closing)",
            counts.total,
            if counts.total == 1 { "" } else { "s" },
            counts.active,
            counts.referenced,
            counts.closing
        );
        for info in &infos {
            let _ = writeln!(out, "{info}");
        }
        let reasons = self.alive_reasons();
        if reasons.is_empty() {
            out.push_str("not alive: nothing keeps the loop running\n");
        } else {
            out.push_str("alive, because:\n");
            for reason in reasons {
                let _ = writeln!(out, "  {reason}");
            }
        }
        out
    }

    /// The handle counts of a [`Metrics`](crate::metrics::Metrics) snapshot, and the bytes
    /// queued for writing over all streams and UDP sockets. O(handles).
    pub(crate) fn count_handles(&self) -> (HandleCounts, u64) {
        let mut counts = HandleCounts::default();
        let mut queued = 0;
        for (id, handle) in self.handles.iter() {
            let kind = match handle.trace_kind() {
                Kind::Timer => &mut counts.timer,
                Kind::Idle => &mut counts.idle,
                Kind::Prepare => &mut counts.prepare,
                Kind::Check => &mut counts.check,
                Kind::Signal => &mut counts.signal,
                Kind::Stream => &mut counts.stream,
                Kind::Listener => &mut counts.listener,
                Kind::Udp => &mut counts.udp,
                Kind::Process => &mut counts.process,
                Kind::FsWatch => &mut counts.fs_watch,
                // Not handle kinds: one-shot callbacks.
                Kind::Deferred | Kind::Posted | Kind::WorkDone | Kind::WriteDone => continue,
            };
            *kind += 1;
            counts.total += 1;
            counts.active += handle.active as usize;
            counts.referenced += handle.referenced as usize;
            counts.closing += handle.closing as usize;
            queued += self.queued_for_writing(id, handle) as u64;
        }
        (counts, queued)
    }

    fn handle_info(&self, id: HandleId, handle: &Handle) -> HandleInfo {
        // Both in the loop's milliseconds; `born_ms` wraps after 49 days, and so does this.
        let age_ms = (self.clock.now_ms() as u32).wrapping_sub(handle.born_ms);
        HandleInfo {
            id,
            kind: handle.kind(),
            active: handle.active,
            referenced: handle.referenced,
            closing: handle.closing,
            age: Duration::from_millis(u64::from(age_ms)),
            queued_bytes: self.queued_for_writing(id, handle),
            site: handle.site,
        }
    }

    /// Bytes queued on a stream or UDP socket. A closing stream's queue is private to
    /// [`stream`](crate::stream) (`Core::queued_bytes` refuses closed handles): 0.
    fn queued_for_writing(&self, id: HandleId, handle: &Handle) -> usize {
        match handle.state {
            // Also a closing stream's: it is still flushing.
            State::Stream(ref stream) => stream.queued(),
            State::Udp(_) => self.udp_queued_bytes(Udp(id)).unwrap_or(0),
            _ => 0,
        }
    }
}
