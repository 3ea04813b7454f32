//! Timer benchmarks: `cargo bench --bench timers`.
//!
//! The queue-level groups (see [`queue_benches`]) pick the loop's timer structure by
//! measurement. Each group runs the same workload against three queues in the same run:
//!
//! - `wheel`: the hierarchical timing wheel (`reactor/timer/wheel.rs`),
//! - `heap`: an indexed 4-ary heap with exact removal, libuv's approach
//!   (`benches/support/heap.rs`; it lost, so it lives here and not in the library),
//! - `binary_heap`: the baseline, `std::collections::BinaryHeap` with lazy cancellation (a
//!   cancelled timer stays in the heap, flagged, and is skipped when it reaches the top).
//!
//! The loop-level groups (see [`loop_benches`]) run the same kind of work through the public
//! `EventLoop` API, beside the wheel alone in the same run, so the ratio is the loop's own cost
//! per timer (slab lookup, generation check, liveness bookkeeping, dispatch).
//!
//! Throughput is 1,000,000 elements per iteration, so criterion's "thrpt" line reads as
//! millions of operations per second and "time" divided by 10^6 is the cost per timer.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    BatchSize, Bencher, BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main,
};
use reactor::{EventLoop, Timer};

// Included as modules of the bench so that it does not depend on the library's private API.
#[path = "support/heap.rs"]
mod heap;
#[path = "../reactor/timer/wheel.rs"]
mod wheel;

/// Timers per iteration of every queue-level benchmark.
const TIMERS: usize = 1_000_000;
/// The clock at which every benchmark starts: an hour into the loop's life, not 0, so the
/// wheel's cursor sits at an arbitrary place rather than at a neatly aligned one.
const START: u64 = 3_600_000 + 12_345;
/// `arm_1m`, `arm_cancel_1m` and `fire_1m` arm timers `[1, SPREAD)` ms after `START`.
const SPREAD: u64 = 60_000;
/// `refresh_10k_x100`: live timers, their idle timeout, and refreshes per millisecond.
const LIVE: usize = 10_000;
const IDLE_TIMEOUT: u64 = 5_000;
const REFRESHES_PER_MS: usize = 10_000;

/// The operations the benchmarks need, so that one generic workload runs on every queue.
trait TimerQueue {
    type Key: Copy;
    fn new() -> Self;
    fn insert(&mut self, deadline: u64, value: u32) -> Self::Key;
    /// Cancels a timer; false if the key was stale.
    fn cancel(&mut self, key: Self::Key) -> bool;
    fn next_seq(&self) -> u64;
    fn next_wakeup(&self) -> Option<u64>;
    fn pop_expired(&mut self, now: u64, seq_limit: u64) -> Option<(u64, u32)>;
}

impl TimerQueue for wheel::Wheel<u32> {
    type Key = wheel::Key;
    fn new() -> Self {
        wheel::Wheel::new()
    }
    fn insert(&mut self, deadline: u64, value: u32) -> Self::Key {
        self.insert(deadline, value)
    }
    fn cancel(&mut self, key: Self::Key) -> bool {
        self.remove(key).is_some()
    }
    fn next_seq(&self) -> u64 {
        self.next_seq()
    }
    fn next_wakeup(&self) -> Option<u64> {
        self.next_wakeup()
    }
    fn pop_expired(&mut self, now: u64, seq_limit: u64) -> Option<(u64, u32)> {
        self.pop_expired(now, seq_limit)
    }
}

impl TimerQueue for heap::Heap<u32> {
    type Key = heap::Key;
    fn new() -> Self {
        heap::Heap::new()
    }
    fn insert(&mut self, deadline: u64, value: u32) -> Self::Key {
        self.insert(deadline, value)
    }
    fn cancel(&mut self, key: Self::Key) -> bool {
        self.remove(key).is_some()
    }
    fn next_seq(&self) -> u64 {
        self.next_seq()
    }
    fn next_wakeup(&self) -> Option<u64> {
        self.next_wakeup()
    }
    fn pop_expired(&mut self, now: u64, seq_limit: u64) -> Option<(u64, u32)> {
        self.pop_expired(now, seq_limit)
    }
}

/// The baseline: `std`'s binary heap with lazy cancellation, keyed by sequence number.
struct LazyBinaryHeap {
    heap: BinaryHeap<Reverse<(u64, u64, u32)>>,
    /// `cancelled[seq]`: set by `cancel`; such entries are dropped when they reach the top.
    cancelled: Vec<bool>,
}

impl TimerQueue for LazyBinaryHeap {
    type Key = u64;
    fn new() -> Self {
        LazyBinaryHeap { heap: BinaryHeap::new(), cancelled: Vec::new() }
    }
    fn insert(&mut self, deadline: u64, value: u32) -> u64 {
        let seq = self.cancelled.len() as u64;
        self.cancelled.push(false);
        self.heap.push(Reverse((deadline, seq, value)));
        seq
    }
    fn cancel(&mut self, seq: u64) -> bool {
        !std::mem::replace(&mut self.cancelled[seq as usize], true)
    }
    fn next_seq(&self) -> u64 {
        self.cancelled.len() as u64
    }
    /// The top's deadline, which may belong to a cancelled entry: an early wakeup at worst.
    fn next_wakeup(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((deadline, _, _))| *deadline)
    }
    fn pop_expired(&mut self, now: u64, seq_limit: u64) -> Option<(u64, u32)> {
        while let Some(&Reverse((deadline, seq, value))) = self.heap.peek() {
            if self.cancelled[seq as usize] {
                self.heap.pop();
                continue;
            }
            if deadline > now || seq >= seq_limit {
                return None;
            }
            self.heap.pop();
            return Some((deadline, value));
        }
        None
    }
}

/// xorshift64: a fixed-seed PRNG, so every queue sees the same workload.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// `TIMERS` deadlines in `START + [1, SPREAD)`.
fn random_deadlines() -> Vec<u64> {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    (0..TIMERS).map(|_| START + 1 + rng.below(SPREAD - 1)).collect()
}

/// A random permutation of `0..TIMERS` (Fisher-Yates): the order of cancellation.
fn random_order() -> Vec<u32> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut order: Vec<u32> = (0..TIMERS as u32).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    order
}

/// A new queue whose clock has been moved to `START`.
fn queue_at_start<Q: TimerQueue>() -> Q {
    let mut queue = Q::new();
    assert!(queue.pop_expired(START, 0).is_none());
    queue
}

/// Arms one timer per deadline; returns the queue and the keys, in order.
fn arm<Q: TimerQueue>(deadlines: &[u64]) -> (Q, Vec<Q::Key>) {
    let mut queue = queue_at_start::<Q>();
    let mut keys = Vec::with_capacity(deadlines.len());
    for (value, &deadline) in deadlines.iter().enumerate() {
        keys.push(queue.insert(deadline, value as u32));
    }
    (queue, keys)
}

/// Arms one timer per deadline and keeps only the queue (the keys are discarded).
fn arm_only<Q: TimerQueue>(deadlines: &[u64]) -> Q {
    let mut queue = queue_at_start::<Q>();
    for (value, &deadline) in deadlines.iter().enumerate() {
        black_box(queue.insert(deadline, value as u32));
    }
    queue
}

/// Arms every timer, then cancels them all in `order`; returns the time both phases took.
///
/// Between the two timed phases the keys are put in cancellation order, so that the cancel
/// phase reads them sequentially: a loop finds a timer's key in the handle it is already
/// working on, and a random read of a 16 MB key table would measure the table, not the queue.
fn arm_then_cancel<Q: TimerQueue>(deadlines: &[u64], order: &[u32]) -> Duration {
    let started = Instant::now();
    let (mut queue, keys) = arm::<Q>(deadlines);
    let arming = started.elapsed();

    let doomed: Vec<Q::Key> = order.iter().map(|&i| keys[i as usize]).collect();
    drop(keys);

    let started = Instant::now();
    let mut cancelled = 0;
    for &key in &doomed {
        cancelled += queue.cancel(key) as usize;
    }
    let cancelling = started.elapsed();
    assert_eq!(cancelled, deadlines.len());
    black_box(&queue);
    arming + cancelling
}

/// Fires every queued timer the way the loop does: sleep until `next_wakeup`, then pop
/// everything due with the sequence limit taken at the start of the timer phase.
fn fire_all<Q: TimerQueue>(queue: &mut Q) -> usize {
    let mut now = START;
    let mut fired = 0;
    while let Some(wakeup) = queue.next_wakeup() {
        now = now.max(wakeup);
        let limit = queue.next_seq();
        while let Some(expired) = queue.pop_expired(now, limit) {
            black_box(expired);
            fired += 1;
        }
    }
    fired
}

/// The idle-timeout pattern of an HTTP server: `LIVE` connections, each with a timer that
/// is pushed back to `now + IDLE_TIMEOUT` whenever the connection sees traffic.
struct IdleTimers<Q: TimerQueue> {
    queue: Q,
    /// `keys[connection]`: that connection's armed timer (its value is `connection`).
    keys: Vec<Q::Key>,
}

/// `LIVE` timers with deadlines spread over the next `IDLE_TIMEOUT` ms.
fn idle_timers<Q: TimerQueue>() -> IdleTimers<Q> {
    let mut rng = XorShift(0xDA94_2042_E4DD_58B5);
    let mut queue = queue_at_start::<Q>();
    let keys = (0..LIVE as u32)
        .map(|connection| queue.insert(START + 1 + rng.below(IDLE_TIMEOUT), connection))
        .collect();
    IdleTimers { queue, keys }
}

/// One refresh per entry of `traffic` (the connection that saw traffic); the clock
/// advances 1 ms every `REFRESHES_PER_MS` refreshes, and whatever expires is re-armed
/// (a new connection replacing the one that timed out). Returns how many expired.
fn refresh<Q: TimerQueue>(timers: &mut IdleTimers<Q>, traffic: &[u32]) -> usize {
    let IdleTimers { queue, keys } = timers;
    let mut now = START;
    let mut expired = 0;
    let mut refreshed = 0;
    for (op, &connection) in traffic.iter().enumerate() {
        if op % REFRESHES_PER_MS == 0 {
            now += 1;
            let limit = queue.next_seq();
            while let Some((_, timed_out)) = queue.pop_expired(now, limit) {
                keys[timed_out as usize] = queue.insert(now + IDLE_TIMEOUT, timed_out);
                expired += 1;
            }
        }
        let key = &mut keys[connection as usize];
        refreshed += queue.cancel(*key) as usize;
        *key = queue.insert(now + IDLE_TIMEOUT, connection);
    }
    assert_eq!(refreshed, traffic.len(), "every refreshed timer was armed");
    expired
}

/// Group settings shared by the queue-level groups: 10 samples, a few seconds each.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(TIMERS as u64));
}

/// The queue-level groups: `arm_1m`, `arm_cancel_1m`, `fire_1m` and `refresh_10k_x100`.
fn queue_benches(c: &mut Criterion) {
    type Wheel = wheel::Wheel<u32>;
    type Heap = heap::Heap<u32>;
    let deadlines = random_deadlines();
    let order = random_order();

    // Arm 1,000,000 timers into an empty queue. The queue is dropped outside the timing.
    let mut group = c.benchmark_group("arm_1m");
    configure(&mut group);
    let batch = BatchSize::PerIteration;
    group.bench_function("wheel", |b| {
        b.iter_batched(|| (), |()| arm_only::<Wheel>(&deadlines), batch)
    });
    group.bench_function("heap", |b| {
        b.iter_batched(|| (), |()| arm_only::<Heap>(&deadlines), batch)
    });
    group.bench_function("binary_heap", |b| {
        b.iter_batched(|| (), |()| arm_only::<LazyBinaryHeap>(&deadlines), batch)
    });
    group.finish();

    // Arm 1,000,000 timers, then cancel all of them in random order.
    fn arm_cancel<Q: TimerQueue>(b: &mut Bencher<'_>, deadlines: &[u64], order: &[u32]) {
        b.iter_custom(|iters| (0..iters).map(|_| arm_then_cancel::<Q>(deadlines, order)).sum())
    }
    let mut group = c.benchmark_group("arm_cancel_1m");
    configure(&mut group);
    group.bench_function("wheel", |b| arm_cancel::<Wheel>(b, &deadlines, &order));
    group.bench_function("heap", |b| arm_cancel::<Heap>(b, &deadlines, &order));
    group.bench_function("binary_heap", |b| arm_cancel::<LazyBinaryHeap>(b, &deadlines, &order));
    group.finish();

    // Fire 1,000,000 queued timers; arming them is setup, not measured.
    fn fire<Q: TimerQueue>(mut armed: (Q, Vec<Q::Key>)) -> (Q, Vec<Q::Key>) {
        assert_eq!(fire_all(&mut armed.0), TIMERS);
        armed
    }
    let mut group = c.benchmark_group("fire_1m");
    configure(&mut group);
    group.bench_function("wheel", |b| b.iter_batched(|| arm::<Wheel>(&deadlines), fire, batch));
    group.bench_function("heap", |b| b.iter_batched(|| arm::<Heap>(&deadlines), fire, batch));
    group.bench_function("binary_heap", |b| {
        b.iter_batched(|| arm::<LazyBinaryHeap>(&deadlines), fire, batch)
    });
    group.finish();

    // 10,000 idle timers refreshed 1,000,000 times while the clock advances 100 ms.
    let mut rng = XorShift(0x5851_F42D_4C95_7F2D);
    let traffic: Vec<u32> = (0..TIMERS).map(|_| rng.below(LIVE as u64) as u32).collect();
    fn run_refresh<Q: TimerQueue>(mut timers: IdleTimers<Q>, traffic: &[u32]) -> IdleTimers<Q> {
        black_box(refresh(&mut timers, traffic));
        timers
    }
    let mut group = c.benchmark_group("refresh_10k_x100");
    configure(&mut group);
    group.bench_function("wheel", |b| {
        b.iter_batched(idle_timers::<Wheel>, |t| run_refresh(t, &traffic), batch)
    });
    group.bench_function("heap", |b| {
        b.iter_batched(idle_timers::<Heap>, |t| run_refresh(t, &traffic), batch)
    });
    group.bench_function("binary_heap", |b| {
        b.iter_batched(idle_timers::<LazyBinaryHeap>, |t| run_refresh(t, &traffic), batch)
    });
    group.finish();
}

/// Loop-level deadlines spread over one second of loop time: the loop's per-iteration work
/// (one poll per millisecond of virtual time) is shared by ~1,000 timers, as in a busy server.
const LOOP_SPREAD: u64 = 1_000;
/// Timer handles that `loop_arm_cancel_1m` arms and cancels over and over.
const HANDLES: usize = 1_000;

/// A loop on the virtual clock with `deadlines.len()` armed timers, and their firing count.
fn armed_loop(deadlines: &[u64]) -> (EventLoop, Rc<Cell<usize>>) {
    let mut lp = EventLoop::builder().virtual_clock(true).build().unwrap();
    let fired = Rc::new(Cell::new(0));
    for &deadline in deadlines {
        let fired = fired.clone();
        let timer = lp.timer(move |_, _| fired.set(fired.get() + 1));
        lp.timer_start(timer, Duration::from_millis(deadline), Duration::ZERO).unwrap();
    }
    (lp, fired)
}

/// The loop-level groups: `loop_fire_1m`, `loop_fire_10k_x100` and `loop_arm_cancel_1m`.
fn loop_benches(c: &mut Criterion) {
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    let deadlines: Vec<u64> = (0..TIMERS).map(|_| 1 + rng.below(LOOP_SPREAD - 1)).collect();
    let batch = BatchSize::PerIteration;

    // Fire 1,000,000 armed timers: `run()` on the virtual clock jumps from deadline to
    // deadline. Arming is setup, not measured.
    let mut group = c.benchmark_group("loop_fire_1m");
    configure(&mut group);
    let run = |(mut lp, fired): (EventLoop, Rc<Cell<usize>>)| {
        lp.run().unwrap();
        assert_eq!(fired.get(), TIMERS);
        lp
    };
    group.bench_function("reactor: run()", |b| {
        b.iter_batched(|| armed_loop(&deadlines), run, batch)
    });
    let armed_wheel = || {
        let mut wheel = wheel::Wheel::<u32>::new();
        for (value, &deadline) in deadlines.iter().enumerate() {
            wheel.insert(START + deadline, value as u32);
        }
        wheel
    };
    let fire = |mut wheel: wheel::Wheel<u32>| {
        assert_eq!(fire_all(&mut wheel), TIMERS);
        wheel
    };
    group.bench_function("wheel alone", |b| b.iter_batched(armed_wheel, fire, batch));
    group.finish();

    // A server's shape: 10,000 repeating timers (periods of 1 to 100 ms) that fire 1,000,000
    // times in all. Everything stays in cache, so this is the CPU cost of one firing: pop,
    // re-arm, dispatch. Against the wheel alone doing the same pops and re-inserts.
    let periods: Vec<u64> = (0..LIVE).map(|_| 1 + rng.below(100)).collect();
    let mut group = c.benchmark_group("loop_fire_10k_x100");
    configure(&mut group);
    group.bench_function("reactor: run()", |b| {
        b.iter_batched(
            || {
                let mut lp = EventLoop::builder().virtual_clock(true).build().unwrap();
                let fired = Rc::new(Cell::new(0));
                for &period in &periods {
                    let fired = fired.clone();
                    lp.set_interval(Duration::from_millis(period), move |core, _| {
                        fired.set(fired.get() + 1);
                        if fired.get() == TIMERS {
                            core.stop();
                        }
                    });
                }
                (lp, fired)
            },
            |(mut lp, fired)| {
                lp.run().unwrap();
                // `stop` finishes the iteration, so the timers due with the last one fire too.
                assert!(fired.get() >= TIMERS);
                lp
            },
            batch,
        )
    });
    group.bench_function("wheel alone: pop + re-insert", |b| {
        b.iter_batched(
            || {
                let mut wheel = wheel::Wheel::<u32>::new();
                for (value, &period) in periods.iter().enumerate() {
                    wheel.insert(START + period, value as u32);
                }
                wheel
            },
            |mut wheel| {
                let (mut now, mut fired) = (START, 0);
                while fired < TIMERS {
                    now = now.max(wheel.next_wakeup().unwrap());
                    let limit = wheel.next_seq();
                    while let Some((_, value)) = wheel.pop_expired(now, limit) {
                        wheel.insert(now + periods[value as usize], value);
                        fired += 1;
                    }
                }
                wheel
            },
            batch,
        )
    });
    group.finish();

    // Arm and cancel through the API: 1,000 handles, each armed and then cancelled 1,000
    // times (the per-request timeout pattern).
    let mut group = c.benchmark_group("loop_arm_cancel_1m");
    configure(&mut group);
    group.bench_function("reactor: timer_start + timer_stop", |b| {
        let mut lp = EventLoop::new().unwrap();
        let timers: Vec<Timer> = (0..HANDLES).map(|_| lp.timer(|_, _| {})).collect();
        b.iter(|| {
            for round in deadlines.chunks(HANDLES) {
                for (&timer, &deadline) in timers.iter().zip(round) {
                    lp.timer_start(timer, Duration::from_millis(deadline), Duration::ZERO).unwrap();
                }
                for &timer in &timers {
                    lp.timer_stop(timer).unwrap();
                }
            }
        });
    });
    group.bench_function("wheel alone: insert + remove", |b| {
        let mut wheel = wheel::Wheel::<u32>::new();
        let mut keys = Vec::with_capacity(HANDLES);
        b.iter(|| {
            for round in deadlines.chunks(HANDLES) {
                keys.extend(round.iter().enumerate().map(|(i, &d)| wheel.insert(d, i as u32)));
                for key in keys.drain(..) {
                    black_box(wheel.remove(key));
                }
            }
        });
    });
    group.finish();
}

criterion_group!(benches, queue_benches, loop_benches);
criterion_main!(benches);
