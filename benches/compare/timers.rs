//! The timers section: what arming, cancelling and firing a timer cost through the public API,
//! measured in this process (pinned to CPU 1 with the rest of the harness).
//!
//! - arm and cancel: 1,000 timer handles, each armed (`timer_start`, deadlines spread over a
//!   second) and then cancelled (`timer_stop`) 1,000 times: 1,000,000 of each, the
//!   per-request-timeout pattern. The two are timed apart, a batch of 1,000 at a time.
//! - fire: 1,000,000 timers armed on a loop with the virtual clock, then `run()`, which jumps
//!   from deadline to deadline and fires every one; the time of `run()` alone (arming is not
//!   counted). Two shapes: libuv's `million_timers` benchmark (the timeout grows by 1 ms every
//!   1,000 timers, so timers fire in the order they were armed, which is also their order in
//!   memory), and deadlines drawn at random over a second, so that each firing touches a timer
//!   far in memory from the last: the worst case for the caches.
//!
//! Each is repeated (7 times; 3 with `--quick`) and reported as the median (min–max). The
//! criterion bench `cargo bench --bench timers` has the same loops beside the bare timer wheel
//! and two heaps.

use std::cell::Cell;
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::{EventLoop, Timer};

use crate::load::{Res, cell, median, num};
use crate::{Ctx, Goal, Section};

/// Timers fired, and arm/cancel pairs done, per repetition.
const TIMERS: usize = 1_000_000;
/// Handles armed and cancelled over and over.
const HANDLES: usize = 1_000;
/// Deadlines are spread over this many milliseconds.
const SPREAD: u64 = 1_000;

/// Deadlines in `1..SPREAD` ms, the same on every run (xorshift64).
fn deadlines(count: usize) -> Vec<u64> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            1 + x % (SPREAD - 1)
        })
        .collect()
}

/// Nanoseconds per `timer_start` and per `timer_stop`, over [`TIMERS`] of each.
fn arm_cancel(deadlines: &[u64]) -> Res<(f64, f64)> {
    let mut lp = EventLoop::new().map_err(|e| format!("EventLoop::new: {e}"))?;
    let timers: Vec<Timer> = (0..HANDLES).map(|_| lp.timer(|_, _| {})).collect();
    let (mut arming, mut cancelling) = (Duration::ZERO, Duration::ZERO);
    for round in deadlines.chunks(HANDLES) {
        let t = Instant::now();
        for (&timer, &ms) in timers.iter().zip(round) {
            lp.timer_start(timer, Duration::from_millis(ms), Duration::ZERO)
                .map_err(|e| format!("timer_start: {e}"))?;
        }
        let armed = Instant::now();
        for &timer in &timers {
            lp.timer_stop(timer).map_err(|e| format!("timer_stop: {e}"))?;
        }
        arming += armed - t;
        cancelling += armed.elapsed();
    }
    let per = |d: Duration| d.as_secs_f64() * 1e9 / deadlines.len() as f64;
    Ok((per(arming), per(cancelling)))
}

/// libuv's `million_timers` deadlines: 1 ms more every 1,000 timers.
fn in_order(count: usize) -> Vec<u64> {
    (0..count as u64).map(|i| 1 + i / 1_000).collect()
}

/// Milliseconds for `run()` to fire [`TIMERS`] armed timers.
fn fire(deadlines: &[u64]) -> Res<f64> {
    let mut lp = EventLoop::builder()
        .virtual_clock(true)
        .build()
        .map_err(|e| format!("EventLoop::build: {e}"))?;
    let fired = Rc::new(Cell::new(0));
    for &ms in deadlines {
        let fired = fired.clone();
        let timer = lp.timer(move |_, _| fired.set(fired.get() + 1));
        lp.timer_start(timer, Duration::from_millis(ms), Duration::ZERO)
            .map_err(|e| format!("timer_start: {e}"))?;
    }
    let t = Instant::now();
    lp.run().map_err(|e| format!("run: {e}"))?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    if fired.get() != deadlines.len() {
        return Err(format!("{} of {} timers fired", fired.get(), deadlines.len()));
    }
    Ok(ms)
}

/// The timers section.
pub fn run(ctx: &Ctx) -> Res<Section> {
    let reps = if ctx.quick { 3 } else { 7 };
    let (deadlines, ordered) = (deadlines(TIMERS), in_order(TIMERS));
    let (mut arm, mut cancel, mut fired, mut scattered) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for rep in 1..=reps {
        let (a, c) = arm_cancel(&deadlines)?;
        let (f, r) = (fire(&ordered)?, fire(&deadlines)?);
        eprintln!(
            "compare: timers: {rep}/{reps}: arm {} ns, cancel {} ns, fire 1M {} ms in order, {} \
             ms at random",
            num(a),
            num(c),
            num(f),
            num(r)
        );
        arm.push(a);
        cancel.push(c);
        fired.push(f);
        scattered.push(r);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "- in this process, through `EventLoop`'s API; {reps} repetitions, cells are median \
         (min–max)\n"
    );
    out.push_str("| figure | reactor | goal |\n|---|---|---|\n");
    let _ =
        writeln!(out, "| `timer_start`, 1,000 handles × 1,000: ns each | {} | ≤ 50 |", cell(&arm));
    let _ = writeln!(
        out,
        "| `timer_stop`, 1,000 handles × 1,000: ns each | {} | ≤ 50 |",
        cell(&cancel)
    );
    let _ = writeln!(
        out,
        "| `run()` firing 1,000,000 timers, libuv's `million_timers` shape: ms | {} | ≤ 100 |",
        cell(&fired)
    );
    let _ = writeln!(
        out,
        "| `run()` firing 1,000,000 timers, random deadlines: ms | {} | |",
        cell(&scattered)
    );
    let (a, c, f, r) = (median(&arm), median(&cancel), median(&fired), median(&scattered));
    let goals = vec![
        Goal::at_most("Timers: arm ≤ 50 ns", Some(a), 50.0, format!("{} ns", num(a))),
        Goal::at_most("Timers: cancel ≤ 50 ns", Some(c), 50.0, format!("{} ns", num(c))),
        Goal::at_most(
            "Timers: firing 1,000,000 ≤ 100 ms",
            Some(f),
            100.0,
            format!(
                "{} ms in libuv's `million_timers` shape; {} ms with random deadlines",
                num(f),
                num(r)
            ),
        ),
    ];
    Ok(Section { title: "Timers".into(), markdown: out, plots: Vec::new(), goals })
}
