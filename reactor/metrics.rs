//! Loop metrics: what the loop counts and times about itself, and what it holds.
//!
//! ```
//! use std::time::Duration;
//! use reactor::EventLoop;
//!
//! let mut lp = EventLoop::builder().loop_timing(true).build()?;
//! lp.set_timeout(Duration::from_millis(5), |core| {
//!     let now = core.metrics(); // a snapshot, taken inside a callback
//!     assert_eq!(now.handles.timer, 1, "the timer that is running");
//! });
//! lp.run()?;
//! let metrics = lp.metrics();
//! assert!(metrics.iterations >= 1);
//! assert!(metrics.idle > Duration::ZERO, "the loop slept in poll until the timer was due");
//! let busy = metrics.utilization(None); // Node's eventLoopUtilization(), since timing was on
//! assert!((0.0..=1.0).contains(&busy));
//! assert!(metrics.to_json().contains("\"iterations\":"));
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! [`Core::metrics`] takes a [`Metrics`] snapshot (libuv's `uv_metrics_info`); the loop pays
//! for three kinds of figures in three different ways.
//!
//! # Counters: always on
//!
//! Each is a `u64` the loop bumps where the thing happens, cumulative since the loop was built.
//!
//! - [`iterations`](Metrics::iterations): loop passes started (`run`, `run_once` and
//!   `run_nowait` each make one per pass).
//! - [`events`](Metrics::events): readiness events returned by `epoll_wait` and dispatched by
//!   the poll phase (sockets, the cross-thread waker, the signal pipe, inotify; an event for a
//!   handle closed meanwhile is counted, then dropped).
//!   [`max_events_per_iteration`](Metrics::max_events_per_iteration) is the largest batch one
//!   poll returned; it cannot exceed [`Builder::events_capacity`](crate::Builder).
//! - [`emfile_events`](Metrics::emfile_events): `accept` calls that failed with `EMFILE` or
//!   `ENFILE` (out of descriptors; see [`listener`](crate::listener) for what the loop does then).
//! - [`panics`](Metrics::panics): panics caught in callbacks (see [`dispatch`](crate::dispatch)).
//! - [`slow_callbacks`](Metrics::slow_callbacks): callbacks reported as slow (see
//!   [`watchdog`](crate::watchdog); zero unless a threshold is set).
//!
//! Cost: an addition per iteration and two per poll (the event count and its maximum).
//!
//! # Timing: off unless asked for
//!
//! [`Builder::loop_timing`](crate::Builder::loop_timing) or [`Core::set_loop_timing`] turns it
//! on. The loop then reads `Instant::now()` (the real clock, even when the loop's own clock is
//! [virtual](crate::Builder::virtual_clock)) at the start of each iteration, at the end of each
//! phase, and on each side of `epoll_wait`: ten reads per iteration (eleven in `run_once`),
//! 20 to 40 ns each on Linux; an empty `run_nowait` pass went from about 230 ns to 540 ns on
//! our test machine. Off, each of those places costs one well-predicted branch on a flag and no
//! clock read, too little to show in `cargo bench --bench dispatch -- empty_iteration`. Times
//! accumulate while timing is on and are kept, frozen, while it is off.
//!
//! - [`idle`](Metrics::idle): time spent blocked in `epoll_wait`.
//! - [`busy`](Metrics::busy): all the other time since timing was turned on: time in the
//!   phases, and also time spent outside the loop between calls to `run_once` or `run`, since
//!   the loop was not waiting for events then either. `idle + busy` is the wall time during
//!   which timing was on.
//! - [`phases`](Metrics::phases): time spent in each phase of the iteration (the names of
//!   [`event_loop`](crate::event_loop)): `timers` (including the extra timer run of `run_once`),
//!   `pending`, `idle`, `prepare`, `poll` (preparing the poll and dispatching its events, *not*
//!   the wait, which is `idle`), `check` (deferred callbacks and check watchers) and `closing`.
//!   Their sum is at most `busy`.
//! - [`lag`](Metrics::lag): a histogram of **loop lag**, defined as each iteration's busy
//!   time: from the moment `epoll_wait` returns to the moment the loop calls it again. That is
//!   how long an I/O event that arrives just after a poll waits before the loop even looks for
//!   it; a callback that computes for 20 ms makes one sample of at least 20 ms. One sample per
//!   poll, from the second poll after timing was turned on; time spent outside the loop between
//!   two calls of `run_once` (say) falls in the next sample, as it does in `busy`. Buckets are
//!   powers of two in microseconds (see [`LagHistogram`]).
//!
//! [`Metrics::utilization`] is Node's `performance.eventLoopUtilization()`:
//! `busy / (busy + idle)`, over the interval between two snapshots or since timing was on.
//!
//! # Handles: computed when asked
//!
//! A snapshot walks the handle slab, O(handles), to count handles by kind and state
//! ([`HandleCounts`]) and to sum the bytes queued for writing on streams and UDP sockets
//! ([`Metrics::queued_write_bytes`]). Nothing is kept up to date for these between snapshots.
//!
//! # Handles one by one, and why the loop is alive
//!
//! [`Core::dump_handles`] is libuv's `uv_print_all_handles`: one line per handle, with its
//! flags (`R` referenced, `A` active, `C` closing), kind and id, age, queued bytes and the
//! source line that created it, then the reasons the loop is still alive.
//! [`Core::handles_info`] and [`Core::alive_reasons`] give the same as values:
//!
//! ```text
//! reactor: 3 handles (3 active, 2 referenced, 0 closing)
//! [RA-] listener#0     age     1520 ms                      at examples/echo.rs:40:22
//! [RA-] stream#1       age      210 ms  queued    65536 B   at examples/echo.rs:40:22
//! [-A-] timer#2        age     1520 ms                      at examples/echo.rs:52:8
//! alive, because:
//!   listener#0 is active and referenced (created at examples/echo.rs:40:22)
//!   stream#1 is active and referenced (created at examples/echo.rs:40:22)
//! ```
//!
//! # JSON
//!
//! [`Metrics::to_json`] writes a snapshot as one JSON object, for a status page that polls it:
//! cumulative figures stay cumulative, so the page computes rates, utilization and lag
//! percentiles over each refresh interval from the differences of two snapshots.

use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

use crate::event_loop::Core;

pub use crate::introspect::{AliveReason, HandleInfo};

/// A snapshot of the loop's metrics, taken by [`Core::metrics`]. See the
/// [module documentation](self) for what each figure means, when it is updated and what it
/// costs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Metrics {
    /// Loop iterations started since the loop was built.
    pub iterations: u64,
    /// Readiness events the poll phase dispatched since the loop was built.
    pub events: u64,
    /// The most events one poll returned.
    pub max_events_per_iteration: u64,
    /// `accept` calls that failed for want of a descriptor (`EMFILE`, `ENFILE`).
    pub emfile_events: u64,
    /// Panics caught in callbacks.
    pub panics: u64,
    /// Callbacks reported as slow.
    pub slow_callbacks: u64,
    /// Whether loop timing is on now. The times below count only while it is on.
    pub timing: bool,
    /// Time blocked in `epoll_wait` while timing was on.
    pub idle: Duration,
    /// Time not blocked in `epoll_wait` while timing was on, up to this snapshot.
    pub busy: Duration,
    /// Time spent in each phase while timing was on (the poll phase without its wait).
    pub phases: PhaseTimes,
    /// Loop lag: each iteration's busy time, from a poll's return to the next poll.
    pub lag: LagHistogram,
    /// The handles that exist now, by kind and state.
    pub handles: HandleCounts,
    /// Bytes queued for writing and not yet taken by the kernel, over all open streams and
    /// UDP sockets. (Closing streams that still flush their output are not counted.)
    pub queued_write_bytes: u64,
}

impl Metrics {
    /// Events per iteration, on average since the loop was built (0 before the first).
    pub fn events_per_iteration(&self) -> f64 {
        if self.iterations == 0 {
            return 0.0;
        }
        self.events as f64 / self.iterations as f64
    }

    /// Node's eventLoopUtilization: busy / (busy + idle) over the interval since `earlier`
    /// (or since timing was turned on when None).
    ///
    /// A number from 0 (the loop only waited) to 1 (it never waited); 0 when no time was
    /// measured in the interval, as when timing is off.
    pub fn utilization(&self, earlier: Option<&Metrics>) -> f64 {
        let (mut busy, mut idle) = (self.busy, self.idle);
        if let Some(earlier) = earlier {
            busy = busy.saturating_sub(earlier.busy);
            idle = idle.saturating_sub(earlier.idle);
        }
        let total = (busy + idle).as_secs_f64();
        if total == 0.0 { 0.0 } else { busy.as_secs_f64() / total }
    }

    /// The number of streams (TCP and Unix-domain connections, accepted or made), closing ones
    /// included: `handles.stream`.
    pub fn connections(&self) -> usize {
        self.handles.stream
    }

    /// The snapshot as one JSON object (written by hand: no dependency). Its keys:
    ///
    /// - `timing` (bool), `iterations`, `events`, `max_events_per_iteration`,
    ///   `events_per_iteration` (a float), `emfile_events`, `panics`, `slow_callbacks`;
    /// - `idle_ns`, `busy_ns`, `utilization` (0 to 1, since timing was on);
    /// - `phases_ns`: an object with `timers`, `pending`, `idle`, `prepare`, `poll`, `check`,
    ///   `closing`;
    /// - `lag`: an object with `count`, `p50_us`, `p99_us`, `max_us`, `bucket_upper_us` (the
    ///   buckets' exclusive upper bounds in µs; the last bucket has none and shows `null`) and
    ///   `counts` (samples per bucket);
    /// - `handles`: an object with one key per kind (`timer`, `idle`, `prepare`, `check`,
    ///   `signal`, `stream`, `listener`, `udp`, `process`, `fs_watch`) and `active`,
    ///   `referenced`, `closing`, `total`;
    /// - `connections` (streams), `queued_write_bytes`.
    ///
    /// The counters, `idle_ns`, `busy_ns`, `phases_ns` and the `lag` counts only grow, so the
    /// differences of two snapshots describe the interval between them. `handles`,
    /// `connections` and `queued_write_bytes` describe the moment of the snapshot; the ratios,
    /// percentiles and maxima cover all the time since the loop was built (or timing was on).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(1024);
        // Writing to a `String` cannot fail.
        let _ = self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) -> fmt::Result {
        write!(out, "{{\"timing\":{}", self.timing)?;
        write!(out, ",\"iterations\":{}", self.iterations)?;
        write!(out, ",\"events\":{}", self.events)?;
        write!(out, ",\"max_events_per_iteration\":{}", self.max_events_per_iteration)?;
        write!(out, ",\"events_per_iteration\":{}", self.events_per_iteration())?;
        write!(out, ",\"emfile_events\":{}", self.emfile_events)?;
        write!(out, ",\"panics\":{}", self.panics)?;
        write!(out, ",\"slow_callbacks\":{}", self.slow_callbacks)?;
        write!(out, ",\"idle_ns\":{}", self.idle.as_nanos())?;
        write!(out, ",\"busy_ns\":{}", self.busy.as_nanos())?;
        write!(out, ",\"utilization\":{}", self.utilization(None))?;
        out.push_str(",\"phases_ns\":");
        write_object(out, self.phases.by_name().map(|(name, time)| (name, time.as_nanos())))?;

        let lag = &self.lag;
        write!(out, ",\"lag\":{{\"count\":{}", lag.count())?;
        write!(out, ",\"p50_us\":{}", lag.p50().as_micros())?;
        write!(out, ",\"p99_us\":{}", lag.p99().as_micros())?;
        write!(out, ",\"max_us\":{}", lag.max().as_micros())?;
        out.push_str(",\"bucket_upper_us\":[");
        for bucket in 0..LAG_BUCKETS {
            let comma = if bucket == 0 { "" } else { "," };
            match LagHistogram::bucket_upper(bucket) {
                Some(upper) => write!(out, "{comma}{}", upper.as_micros())?,
                None => write!(out, "{comma}null")?,
            }
        }
        out.push_str("],\"counts\":[");
        for (bucket, count) in lag.counts().iter().enumerate() {
            let comma = if bucket == 0 { "" } else { "," };
            write!(out, "{comma}{count}")?;
        }
        out.push_str("]}");

        out.push_str(",\"handles\":");
        write_object(out, self.handles.by_kind().into_iter().chain(self.handles.by_state()))?;
        write!(out, ",\"connections\":{}", self.connections())?;
        write!(out, ",\"queued_write_bytes\":{}}}", self.queued_write_bytes)
    }
}

/// Writes `{"name":value,...}`. Names are ours (plain identifiers): nothing to escape.
fn write_object<V: fmt::Display>(
    out: &mut String,
    fields: impl IntoIterator<Item = (&'static str, V)>,
) -> fmt::Result {
    out.push('{');
    for (i, (name, value)) in fields.into_iter().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        write!(out, "{comma}\"{name}\":{value}")?;
    }
    out.push('}');
    Ok(())
}

/// Time spent in each phase of the iteration while loop timing was on. The poll phase's
/// figure leaves out the wait in `epoll_wait`, which is [`Metrics::idle`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PhaseTimes {
    /// Running due timers (both runs of a `run_once` pass).
    pub timers: Duration,
    /// Continuing work left over by the previous iteration.
    pub pending: Duration,
    /// Running idle watchers.
    pub idle: Duration,
    /// Running prepare watchers.
    pub prepare: Duration,
    /// Computing the poll timeout, and dispatching the events the poll returned.
    pub poll: Duration,
    /// Running deferred callbacks, then check watchers.
    pub check: Duration,
    /// Running close callbacks and freeing slots.
    pub closing: Duration,
}

impl PhaseTimes {
    /// The phases by name, in the order they run.
    pub fn by_name(&self) -> [(&'static str, Duration); 7] {
        [
            ("timers", self.timers),
            ("pending", self.pending),
            ("idle", self.idle),
            ("prepare", self.prepare),
            ("poll", self.poll),
            ("check", self.check),
            ("closing", self.closing),
        ]
    }

    /// The sum over all phases.
    pub fn total(&self) -> Duration {
        self.by_name().iter().map(|(_, time)| *time).sum()
    }
}

/// How many buckets a [`LagHistogram`] has: under 1 µs, under 2 µs, under 4 µs and so on up to
/// under 2²⁴ µs (16.8 s), and one for anything longer.
pub const LAG_BUCKETS: usize = 26;

/// A histogram of loop lag (see the [module documentation](self)) in power-of-two buckets of
/// microseconds, cumulative since loop timing was first turned on.
///
/// Bucket 0 holds samples under 1 µs; bucket `i` (1 to 24) holds samples of at least
/// 2<sup>i-1</sup> µs and under 2<sup>i</sup> µs; bucket 25 holds samples of 2²⁴ µs (16.8 s)
/// or more. Percentiles are therefore upper bounds, at most twice the true value (and never
/// more than the exact [`max`](LagHistogram::max)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LagHistogram {
    counts: [u64; LAG_BUCKETS],
    max: Duration,
}

impl LagHistogram {
    /// The exclusive upper bound of bucket `bucket`: 2<sup>bucket</sup> µs; `None` for the
    /// last bucket, which has none (and for buckets past it).
    pub fn bucket_upper(bucket: usize) -> Option<Duration> {
        (bucket < LAG_BUCKETS - 1).then(|| Duration::from_micros(1 << bucket))
    }

    /// Samples per bucket.
    pub fn counts(&self) -> &[u64; LAG_BUCKETS] {
        &self.counts
    }

    /// How many samples: loop iterations measured.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The longest sample, exactly.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The lag that a fraction `q` (0 to 1) of the samples did not exceed, as the upper bound
    /// of the bucket it falls in (capped at [`max`](LagHistogram::max)). Zero without samples.
    pub fn percentile(&self, q: f64) -> Duration {
        let count = self.count();
        if count == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return LagHistogram::bucket_upper(bucket).map_or(self.max, |up| up.min(self.max));
            }
        }
        self.max
    }

    /// The median: [`percentile`](LagHistogram::percentile)`(0.5)`.
    pub fn p50(&self) -> Duration {
        self.percentile(0.5)
    }

    /// [`percentile`](LagHistogram::percentile)`(0.99)`.
    pub fn p99(&self) -> Duration {
        self.percentile(0.99)
    }

    fn record(&mut self, lag: Duration) {
        let micros = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        // 0 µs: bucket 0; otherwise the bucket whose bound is the next power of two above.
        let bucket = (u64::BITS - micros.leading_zeros()) as usize;
        self.counts[bucket.min(LAG_BUCKETS - 1)] += 1;
        self.max = self.max.max(lag);
    }
}

/// How many handles exist, by kind and by state. Computed by walking the slab when a
/// snapshot is taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandleCounts {
    /// Timers, armed or not.
    pub timer: usize,
    /// Idle watchers, started or not.
    pub idle: usize,
    /// Prepare watchers, started or not.
    pub prepare: usize,
    /// Check watchers, started or not.
    pub check: usize,
    /// Signal handles.
    pub signal: usize,
    /// Streams: TCP and Unix-domain connections.
    pub stream: usize,
    /// Listeners.
    pub listener: usize,
    /// UDP sockets.
    pub udp: usize,
    /// Child processes not yet collected.
    pub process: usize,
    /// File-system watches.
    pub fs_watch: usize,
    /// Handles doing their job (an armed timer, a started watcher, an open socket), closing
    /// streams that still flush their output included.
    pub active: usize,
    /// Handles not [unreferenced](crate::Core::unref), closing ones included.
    pub referenced: usize,
    /// Handles closed whose slot is not freed yet.
    pub closing: usize,
    /// All handles.
    pub total: usize,
}

impl HandleCounts {
    /// The counts by kind, with the kind names of [`HandleInfo::kind`].
    pub fn by_kind(&self) -> [(&'static str, usize); 10] {
        [
            ("timer", self.timer),
            ("idle", self.idle),
            ("prepare", self.prepare),
            ("check", self.check),
            ("signal", self.signal),
            ("stream", self.stream),
            ("listener", self.listener),
            ("udp", self.udp),
            ("process", self.process),
            ("fs_watch", self.fs_watch),
        ]
    }

    /// The counts by state: `active`, `referenced`, `closing`, `total`.
    pub fn by_state(&self) -> [(&'static str, usize); 4] {
        [
            ("active", self.active),
            ("referenced", self.referenced),
            ("closing", self.closing),
            ("total", self.total),
        ]
    }
}

/// A phase of the iteration, as loop timing names it (the index into the phase times).
#[derive(Clone, Copy)]
pub(crate) enum LoopPhase {
    Timers,
    Pending,
    Idle,
    Prepare,
    Poll,
    Check,
    Closing,
}

/// What the loop records about itself as it runs (a field of [`Core`]): the counters, always,
/// and the times, while loop timing is on.
///
/// The timing hooks the loop calls (`iteration_started`, `phase_done`, `entering_poll`,
/// `left_poll`) test the `timing` flag and do nothing else while it is off.
pub(crate) struct Recorder {
    /// Panics caught at dispatch.
    pub(crate) panics: u64,
    /// Callbacks that ran past the slow-callback threshold.
    pub(crate) slow_callbacks: u64,
    /// `accept` failures for want of a descriptor.
    pub(crate) emfile_events: u64,
    iterations: u64,
    events: u64,
    max_events: u64,
    /// Loop timing is on.
    timing: bool,
    /// What loop timing measured; kept while it is off.
    times: Times,
}

/// The times loop timing keeps.
struct Times {
    /// When timing was last turned on.
    on_since: Instant,
    /// How long timing was on before `on_since` (it may have been off in between).
    on_before: Duration,
    idle: Duration,
    /// Indexed by [`LoopPhase`].
    phases: [Duration; 7],
    lag: LagHistogram,
    /// The end of the last lap: where the running phase's time counts from.
    mark: Instant,
    /// When the loop last entered `epoll_wait`.
    poll_entered: Instant,
    /// When `epoll_wait` last returned (while timing was on): where the lag counts from.
    poll_left: Option<Instant>,
}

impl Recorder {
    pub(crate) fn new(timing: bool) -> Self {
        let now = Instant::now();
        let times = Times {
            on_since: now,
            on_before: Duration::ZERO,
            idle: Duration::ZERO,
            phases: [Duration::ZERO; 7],
            lag: LagHistogram::default(),
            mark: now,
            poll_entered: now,
            poll_left: None,
        };
        let mut recorder = Recorder {
            panics: 0,
            slow_callbacks: 0,
            emfile_events: 0,
            iterations: 0,
            events: 0,
            max_events: 0,
            timing: false,
            times,
        };
        recorder.set_timing(timing);
        recorder
    }

    fn set_timing(&mut self, on: bool) {
        if on == self.timing {
            return;
        }
        let now = Instant::now();
        let times = &mut self.times;
        if on {
            // Turned on in the middle of an iteration, say in a callback: the running phase
            // counts from now, and the first lag sample waits for the next return from poll.
            (times.on_since, times.mark, times.poll_entered) = (now, now, now);
            times.poll_left = None;
        } else {
            times.on_before += now - times.on_since;
        }
        self.timing = on;
    }

    /// A new iteration starts: counted, and its first phase is timed from here.
    #[inline]
    pub(crate) fn iteration_started(&mut self) {
        self.iterations += 1;
        if self.timing {
            self.times.mark = Instant::now();
        }
    }

    /// A phase ended: its time since the last lap is added to it.
    #[inline]
    pub(crate) fn phase_done(&mut self, phase: LoopPhase) {
        if self.timing {
            self.times.lap(phase);
        }
    }

    /// The loop is about to wait in `epoll_wait`: the poll phase's preparation ends, and so
    /// does the lag sample that started when the last poll returned.
    #[inline]
    pub(crate) fn entering_poll(&mut self) {
        if self.timing {
            self.times.entering_poll();
        }
    }

    /// `epoll_wait` returned: the wait was idle time, and a new lag sample starts.
    #[inline]
    pub(crate) fn left_poll(&mut self) {
        if self.timing {
            self.times.left_poll();
        }
    }

    /// A poll returned `events` events, which the poll phase dispatched.
    #[inline]
    pub(crate) fn polled(&mut self, events: u64) {
        self.events += events;
        self.max_events = self.max_events.max(events);
    }
}

impl Times {
    fn lap(&mut self, phase: LoopPhase) -> Instant {
        let now = Instant::now();
        self.phases[phase as usize] += now - self.mark;
        self.mark = now;
        now
    }

    fn entering_poll(&mut self) {
        let now = self.lap(LoopPhase::Poll);
        if let Some(left) = self.poll_left {
            self.lag.record(now - left);
        }
        self.poll_entered = now;
    }

    fn left_poll(&mut self) {
        let now = Instant::now();
        self.idle += now - self.poll_entered;
        self.mark = now;
        self.poll_left = Some(now);
    }
}

/// Metrics and loop timing (see the [module documentation](self)).
impl Core {
    /// Takes a snapshot of the loop's metrics. Counters and times are copied; handle counts
    /// and queued bytes are computed now, by walking the handles (O(handles)).
    pub fn metrics(&self) -> Metrics {
        let (recorder, times) = (&self.metrics, &self.metrics.times);
        let (handles, queued_write_bytes) = self.count_handles();
        // The one clock read of a snapshot, and only while timing is on.
        let on_for = match recorder.timing {
            true => times.on_before + times.on_since.elapsed(),
            false => times.on_before,
        };
        let [timers, pending, idle, prepare, poll, check, closing] = times.phases;
        Metrics {
            iterations: recorder.iterations,
            events: recorder.events,
            max_events_per_iteration: recorder.max_events,
            emfile_events: recorder.emfile_events,
            panics: recorder.panics,
            slow_callbacks: recorder.slow_callbacks,
            timing: recorder.timing,
            idle: times.idle,
            busy: on_for.saturating_sub(times.idle),
            phases: PhaseTimes { timers, pending, idle, prepare, poll, check, closing },
            lag: times.lag.clone(),
            handles,
            queued_write_bytes,
        }
    }

    /// Turns loop timing on or off (see the [module documentation](self)). Times measured
    /// so far are kept while it is off, and go on accumulating when it is turned on again.
    pub fn set_loop_timing(&mut self, on: bool) {
        self.metrics.set_timing(on);
    }

    /// Whether loop timing is on.
    pub fn loop_timing(&self) -> bool {
        self.metrics.timing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_samples_fall_in_power_of_two_buckets() {
        let mut lag = LagHistogram::default();
        for micros in [0, 1, 2, 3, 4, 1000, 1 << 24, u64::MAX / 1_000_000] {
            lag.record(Duration::from_micros(micros));
        }
        lag.record(Duration::from_nanos(999));
        let counts = lag.counts();
        assert_eq!(counts[0], 2, "0 µs and 999 ns are under 1 µs");
        assert_eq!((counts[1], counts[2], counts[3]), (1, 2, 1), "1; 2 and 3; 4");
        assert_eq!(counts[10], 1, "1000 µs is under 1024");
        assert_eq!(counts[LAG_BUCKETS - 1], 2, "16.8 s and longer");
        assert_eq!(lag.count(), 9);
        assert_eq!(lag.max(), Duration::from_micros(u64::MAX / 1_000_000));
        assert_eq!(LagHistogram::bucket_upper(10), Some(Duration::from_micros(1024)));
        assert_eq!(LagHistogram::bucket_upper(LAG_BUCKETS - 1), None);
    }

    #[test]
    fn percentiles_are_bucket_bounds_capped_at_the_max() {
        let mut lag = LagHistogram::default();
        assert_eq!(lag.p99(), Duration::ZERO);
        for _ in 0..98 {
            lag.record(Duration::from_micros(3)); // bucket "under 4 µs"
        }
        lag.record(Duration::from_micros(100)); // under 128 µs
        lag.record(Duration::from_micros(300)); // under 512 µs
        assert_eq!(lag.p50(), Duration::from_micros(4));
        assert_eq!(lag.percentile(0.99), Duration::from_micros(128));
        assert_eq!(lag.percentile(1.0), Duration::from_micros(300), "capped at the max");
    }

    #[test]
    fn utilization_is_busy_over_busy_plus_idle_over_the_interval() {
        let mut metrics = Core::metrics(&crate::EventLoop::new().unwrap());
        assert_eq!(metrics.utilization(None), 0.0, "nothing measured");
        let earlier = metrics.clone();
        metrics.busy = Duration::from_millis(30);
        metrics.idle = Duration::from_millis(10);
        assert_eq!(metrics.utilization(None), 0.75);
        let mut later = metrics.clone();
        later.busy += Duration::from_millis(10);
        later.idle += Duration::from_millis(30);
        assert_eq!(later.utilization(Some(&metrics)), 0.25);
        assert_eq!(metrics.utilization(Some(&earlier)), 0.75);
    }
}
