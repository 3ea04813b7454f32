//! The loop pass: phase order, run modes, stop, liveness and the cached clock (in the spirit of
//! libuv's `test-loop-*.c`).

mod util;

use std::time::{Duration, Instant};

use reactor::EventLoop;
use util::{Count, Log, Watchdog, virtual_loop, within};

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn one_iteration_runs_the_phases_in_libuv_order() {
    let mut lp = EventLoop::new().unwrap();
    let log = Log::new();

    let l = log.clone();
    lp.set_timeout(Duration::ZERO, move |_| l.push("timer"));
    let l = log.clone();
    lp.idle(move |core, me| {
        l.push("idle");
        core.idle_stop(me).unwrap();
    });
    let l = log.clone();
    lp.prepare(move |core, me| {
        l.push("prepare");
        core.prepare_stop(me).unwrap();
    });
    let l = log.clone();
    let remote = lp.remote();
    remote.post(move |_| l.push("poll: posted closure")).unwrap();
    drop(remote);
    let l = log.clone();
    lp.defer(move |_| l.push("check: deferred"));
    let l = log.clone();
    lp.check(move |core, me| {
        l.push("check: handle");
        let l = l.clone();
        core.close_with(me, move |_| l.push("closing")).unwrap();
    });

    lp.run_nowait().unwrap();
    let expected = [
        "timer",
        "idle",
        "prepare",
        "poll: posted closure",
        "check: deferred",
        "check: handle",
        "closing",
    ];
    assert_eq!(log.take(), expected);
}

#[test]
fn run_returns_at_once_when_nothing_is_alive() {
    let mut lp = EventLoop::new().unwrap();
    assert!(!lp.alive());
    within(Duration::from_secs(5), || EventLoop::new().unwrap().run().unwrap());
    lp.run().unwrap();
    assert!(!lp.run_once().unwrap(), "run_once reports that nothing is alive");
    assert!(!lp.run_nowait().unwrap());
}

#[test]
fn stop_inside_a_callback_finishes_the_iteration_then_returns() {
    let mut lp = EventLoop::new().unwrap();
    let (idles, checks) = (Count::new(), Count::new());
    let i = idles.clone();
    lp.idle(move |core, _| {
        i.bump();
        if i.get() == 3 {
            core.stop();
        }
    });
    let c = checks.clone();
    lp.check(move |_, _| c.bump());

    let _watchdog = Watchdog::arm(Duration::from_secs(5));
    lp.run().unwrap();
    assert_eq!(idles.get(), 3);
    assert_eq!(checks.get(), 3, "the check phase of the stopping iteration still runs");

    // The stop flag is cleared when run() returns: the loop can be run again.
    assert!(lp.run_nowait().unwrap());
    assert_eq!(idles.get(), 4);
}

#[test]
fn stop_before_run_makes_run_return_without_an_iteration() {
    let mut lp = EventLoop::new().unwrap();
    let idles = Count::new();
    let i = idles.clone();
    lp.idle(move |_, _| i.bump());
    lp.stop();
    lp.run().unwrap();
    assert_eq!(idles.get(), 0);
    lp.run_nowait().unwrap();
    assert_eq!(idles.get(), 1);
}

#[test]
fn run_nowait_never_blocks() {
    let fired = within(Duration::from_secs(5), || {
        let mut lp = EventLoop::new().unwrap();
        let fired = Count::new();
        let f = fired.clone();
        lp.set_timeout(HOUR, move |_| f.bump());
        assert!(lp.run_nowait().unwrap(), "the armed timer keeps the loop alive");
        fired.get()
    });
    assert_eq!(fired, 0);
}

#[test]
fn run_once_waits_for_the_next_timer_and_fires_it() {
    let mut lp = virtual_loop();
    let start = lp.now();
    let fired_at = Log::new();
    let f = fired_at.clone();
    lp.set_timeout(Duration::from_millis(50), move |core| {
        f.push(format!("{:?}", core.now() - start))
    });
    lp.set_timeout(HOUR, |_| {});

    // One blocking iteration must make progress: the 50 ms timer fires within it.
    assert!(lp.run_once().unwrap(), "the one-hour timer is still armed");
    assert_eq!(fired_at.take(), ["50ms"]);
}

#[test]
fn the_poll_timeout_follows_the_work_that_is_waiting() {
    let mut lp = virtual_loop();
    // Nothing alive: polling must not block.
    assert_eq!(lp.poll_timeout(), Some(Duration::ZERO));

    // Until the timer, or earlier: the wheel wakes up to move a far timer into a finer slot.
    let timer = lp.set_timeout(Duration::from_millis(250), |_| {});
    let until_timer = lp.poll_timeout().unwrap();
    assert!(until_timer > Duration::ZERO && until_timer <= Duration::from_millis(250));

    // An active idle handle makes the poll non-blocking.
    let idle = lp.idle(|_, _| {});
    assert_eq!(lp.poll_timeout(), Some(Duration::ZERO));
    lp.idle_stop(idle).unwrap();
    assert_eq!(lp.poll_timeout(), Some(until_timer));

    // So does a deferred callback.
    lp.defer(|_| {});
    assert_eq!(lp.poll_timeout(), Some(Duration::ZERO));
    lp.run_nowait().unwrap();

    // A referenced Remote and nothing scheduled: wait for an event without a timeout.
    lp.close(timer).unwrap();
    lp.run_nowait().unwrap();
    let remote = lp.remote();
    assert_eq!(lp.poll_timeout(), None);
    drop(remote);
    assert_eq!(lp.poll_timeout(), Some(Duration::ZERO));
}

#[test]
fn the_poll_timeout_follows_every_arm_and_stop() {
    // The loop remembers the next wakeup between changes to its timers: every arm and stop
    // must be seen by the next poll timeout.
    let mut lp = virtual_loop();
    let far = lp.set_timeout(Duration::from_millis(40), |_| {});
    let until_far = lp.poll_timeout().unwrap();
    assert!(until_far > Duration::from_millis(5), "{until_far:?}");
    let near = lp.set_timeout(Duration::from_millis(5), |_| {});
    assert_eq!(lp.poll_timeout(), Some(Duration::from_millis(5)));
    lp.timer_stop(near).unwrap();
    assert_eq!(lp.poll_timeout(), Some(until_far));
    lp.timer_start(near, Duration::from_millis(3), Duration::ZERO).unwrap();
    assert_eq!(lp.poll_timeout(), Some(Duration::from_millis(3)));
    lp.timer_stop(near).unwrap();
    lp.timer_stop(far).unwrap();
    let remote = lp.remote();
    assert_eq!(lp.poll_timeout(), None, "no timer armed");
    drop(remote);
}

#[test]
fn unreferenced_handles_do_not_keep_the_loop_alive() {
    let mut lp = EventLoop::new().unwrap();
    let timer = lp.set_interval(HOUR, |_, _| {});
    let idle = lp.idle(|_, _| {});
    lp.unref(timer).unwrap();
    lp.unref(idle).unwrap();
    lp.unref(idle).unwrap(); // twice is the same as once
    assert!(!lp.has_ref(timer).unwrap());
    assert!(!lp.alive());
    let _watchdog = Watchdog::arm(Duration::from_secs(5));
    lp.run().unwrap();
    assert!(lp.is_active(timer) && lp.is_active(idle), "unref does not stop a handle");

    lp.ref_(timer).unwrap();
    assert!(lp.has_ref(timer).unwrap());
    assert!(lp.alive());
    // A stopped handle does not keep the loop alive, referenced or not.
    lp.timer_stop(timer).unwrap();
    assert!(!lp.alive());
}

#[test]
fn an_unreferenced_timer_fires_while_something_else_keeps_the_loop_alive() {
    let mut lp = virtual_loop();
    let ticks = Count::new();
    let t = ticks.clone();
    let tick = lp.set_interval(Duration::from_millis(1), move |_, _| t.bump());
    lp.unref(tick).unwrap();
    lp.set_timeout(Duration::from_millis(10), |_| {});
    lp.run().unwrap();
    // Ticks at 1, 2, ..., 10 ms; at 10 ms the timeout (armed first) fires first, then the tick,
    // and then nothing referenced is left.
    assert_eq!(ticks.get(), 10);
}

#[test]
fn callbacks_of_one_iteration_see_the_same_cached_time() {
    let mut lp = EventLoop::new().unwrap();
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    for _ in 0..3 {
        let s = seen.clone();
        lp.set_timeout(Duration::ZERO, move |core| s.borrow_mut().push(core.now()));
    }
    let s = seen.clone();
    lp.defer(move |core| s.borrow_mut().push(core.now()));
    lp.run_nowait().unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|&t| t == seen[0]), "one clock read serves the whole iteration");
}

#[test]
fn update_time_refreshes_the_cached_time() {
    let mut lp = EventLoop::new().unwrap();
    let result = Log::new();
    let r = result.clone();
    lp.defer(move |core| {
        let cached = core.now();
        // A long callback: busy-wait (bounded) until the real clock has moved on.
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() <= cached + Duration::from_millis(2) && Instant::now() < deadline {}
        assert_eq!(core.now(), cached, "the cached time does not move by itself");
        core.update_time();
        r.push(format!("{}", core.now() > cached + Duration::from_millis(2)));
    });
    lp.run().unwrap();
    assert_eq!(result.take(), ["true"]);
}

#[test]
fn the_virtual_clock_jumps_to_each_deadline() {
    let mut lp = virtual_loop();
    let start = lp.now();
    let log = Log::new();
    for ms in [30, 10, 20] {
        let l = log.clone();
        lp.set_timeout(Duration::from_millis(ms), move |core| {
            l.push(format!("{ms}ms at {:?}", core.now() - start));
        });
    }
    lp.run().unwrap();
    assert_eq!(log.take(), ["10ms at 10ms", "20ms at 20ms", "30ms at 30ms"]);
}

#[test]
fn a_real_timer_never_fires_before_its_time() {
    let mut lp = EventLoop::new().unwrap();
    let start = Instant::now();
    let elapsed = Log::new();
    let e = elapsed.clone();
    lp.set_timeout(Duration::from_millis(20), move |_| {
        e.push(format!("{}", start.elapsed().as_millis()))
    });
    let _watchdog = Watchdog::arm(Duration::from_secs(5));
    lp.run().unwrap();
    let ms: u128 = elapsed.take()[0].parse().unwrap();
    assert!(ms >= 20, "fired after {ms} ms");
}
