//! Timers through the public API (in the spirit of libuv's `test-timer*.c`). Most tests use the
//! virtual clock, so they run instantly and can assert exact times.

mod util;

use std::time::Duration;

use reactor::{Error, Timer};
use util::{Count, Log, virtual_loop};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn equal_deadlines_fire_in_the_order_they_were_armed() {
    let mut lp = virtual_loop();
    let log = Log::new();
    for (name, delay) in [("a", 20), ("b", 10), ("c", 20), ("d", 10), ("e", 20)] {
        let l = log.clone();
        lp.set_timeout(ms(delay), move |_| l.push(name));
    }
    lp.run().unwrap();
    assert_eq!(log.take(), ["b", "d", "a", "c", "e"]);
}

#[test]
fn restarting_a_timer_moves_it_behind_timers_armed_before_the_restart() {
    let mut lp = virtual_loop();
    let log = Log::new();
    let timers: Vec<Timer> = ["a", "b", "c"]
        .into_iter()
        .map(|name| {
            let l = log.clone();
            let t = lp.timer(move |_, _| l.push(name));
            lp.timer_start(t, ms(5), Duration::ZERO).unwrap();
            t
        })
        .collect();
    lp.timer_start(timers[0], ms(5), Duration::ZERO).unwrap(); // re-armed last
    lp.run().unwrap();
    assert_eq!(log.take(), ["b", "c", "a"]);
}

#[test]
fn a_zero_timer_armed_in_a_timer_callback_waits_for_the_next_iteration() {
    let mut lp = virtual_loop();
    let log = Log::new();
    let l = log.clone();
    lp.set_timeout(Duration::ZERO, move |core| {
        l.push("outer");
        let l = l.clone();
        core.set_timeout(Duration::ZERO, move |_| l.push("inner"));
    });
    lp.run_nowait().unwrap();
    assert_eq!(log.take(), ["outer"]);
    lp.run_nowait().unwrap();
    assert_eq!(log.take(), ["inner"]);
}

#[test]
fn a_timer_that_rearms_itself_at_zero_cannot_starve_the_other_phases() {
    let mut lp = virtual_loop();
    let (fires, checks) = (Count::new(), Count::new());
    let f = fires.clone();
    let timer = lp.timer(move |core, me| {
        f.bump();
        core.timer_start(me, Duration::ZERO, Duration::ZERO).unwrap();
    });
    lp.timer_start(timer, Duration::ZERO, Duration::ZERO).unwrap();
    let c = checks.clone();
    lp.check(move |_, _| c.bump());
    for _ in 0..5 {
        lp.run_nowait().unwrap();
    }
    assert_eq!((fires.get(), checks.get()), (5, 5), "exactly one firing per iteration");
}

#[test]
fn a_repeating_timer_fires_every_interval_until_stopped() {
    let mut lp = virtual_loop();
    let start = lp.now();
    let log = Log::new();
    let l = log.clone();
    lp.set_interval(ms(10), move |core, me| {
        l.push(format!("{:?}", core.now() - start));
        if l.len() == 4 {
            core.timer_stop(me).unwrap(); // stopping from its own callback
        }
    });
    lp.run().unwrap();
    assert_eq!(log.take(), ["10ms", "20ms", "30ms", "40ms"]);
}

#[test]
fn timer_start_with_a_repeat_fires_first_after_the_timeout() {
    let mut lp = virtual_loop();
    let start = lp.now();
    let log = Log::new();
    let l = log.clone();
    let timer = lp.timer(move |core, me| {
        l.push(format!("{:?}", core.now() - start));
        if l.len() == 3 {
            core.close(me).unwrap();
        }
    });
    lp.timer_start(timer, ms(5), ms(20)).unwrap();
    assert_eq!(lp.timer_repeat(timer).unwrap(), ms(20));
    lp.run().unwrap();
    assert_eq!(log.take(), ["5ms", "25ms", "45ms"]);
}

#[test]
fn a_callback_that_stops_another_due_timer_prevents_it_from_firing() {
    let mut lp = virtual_loop();
    let log = Log::new();
    let victim = {
        let l = log.clone();
        lp.timer(move |_, _| l.push("victim"))
    };
    let closed_victim = {
        let l = log.clone();
        lp.timer(move |_, _| l.push("closed victim"))
    };
    let l = log.clone();
    // Armed first, so it runs first among the timers due at 10 ms.
    lp.set_timeout(ms(10), move |core| {
        l.push("killer");
        core.timer_stop(victim).unwrap();
        core.close(closed_victim).unwrap();
    });
    lp.timer_start(victim, ms(10), Duration::ZERO).unwrap();
    lp.timer_start(closed_victim, ms(10), Duration::ZERO).unwrap();
    lp.run().unwrap();
    assert_eq!(log.take(), ["killer"]);
    assert!(!lp.is_active(victim));
}

#[test]
fn a_callback_that_rearms_another_due_timer_postpones_it() {
    let mut lp = virtual_loop();
    let start = lp.now();
    let log = Log::new();
    let l = log.clone();
    let late = lp.timer(move |core, _| l.push(format!("late at {:?}", core.now() - start)));
    let l = log.clone();
    lp.set_timeout(ms(10), move |core| {
        l.push("first");
        core.timer_start(late, ms(15), Duration::ZERO).unwrap();
    });
    lp.timer_start(late, ms(10), Duration::ZERO).unwrap();
    lp.run().unwrap();
    assert_eq!(log.take(), ["first", "late at 25ms"], "fired once, at the new deadline");
}

#[test]
fn timer_again_restarts_with_the_repeat_interval() {
    let mut lp = virtual_loop();
    let start = lp.now();
    let log = Log::new();
    let l = log.clone();
    let timer = lp.timer(move |core, me| {
        l.push(format!("{:?}", core.now() - start));
        core.close(me).unwrap();
    });
    // `again` on a timer without a repeat does nothing.
    lp.timer_again(timer).unwrap();
    assert!(!lp.is_active(timer));

    lp.timer_start(timer, ms(100), ms(30)).unwrap();
    lp.set_timeout(ms(20), move |core| core.timer_again(timer).unwrap());
    lp.run().unwrap();
    assert_eq!(log.take(), ["50ms"], "re-armed at 20 ms with the 30 ms repeat");
}

#[test]
fn timer_refresh_pushes_the_deadline_back_like_an_idle_timeout() {
    let mut lp = virtual_loop();
    let start = lp.now();
    let log = Log::new();
    let l = log.clone();
    let idle_timeout = lp.set_timeout(ms(100), move |core| {
        l.push(format!("timed out at {:?}", core.now() - start));
    });
    // "Activity" at 60 ms restarts the 100 ms countdown.
    lp.set_timeout(ms(60), move |core| core.timer_refresh(idle_timeout).unwrap());
    lp.run().unwrap();
    assert_eq!(log.take(), ["timed out at 160ms"]);
}

#[test]
fn timer_due_in_counts_down_and_is_none_when_stopped() {
    let mut lp = virtual_loop();
    let timer = lp.timer(|_, _| {});
    assert_eq!(lp.timer_due_in(timer).unwrap(), None);
    lp.timer_start(timer, ms(100), Duration::ZERO).unwrap();
    assert_eq!(lp.timer_due_in(timer).unwrap(), Some(ms(100)));
    let seen = Log::new();
    let s = seen.clone();
    lp.set_timeout(ms(40), move |core| s.push(format!("{:?}", core.timer_due_in(timer).unwrap())));
    lp.run_once().unwrap();
    assert_eq!(seen.take(), ["Some(60ms)"]);
    lp.timer_stop(timer).unwrap();
    assert_eq!(lp.timer_due_in(timer).unwrap(), None);
}

#[test]
fn set_timeout_closes_its_timer_after_firing() {
    let mut lp = virtual_loop();
    let fired = Count::new();
    let f = fired.clone();
    let timer = lp.set_timeout(ms(1), move |_| f.bump());
    lp.run().unwrap();
    assert_eq!(fired.get(), 1);
    assert!(lp.is_closing(timer));
    assert!(matches!(lp.timer_stop(timer), Err(Error::Closed(id)) if id == timer.id()));
}

#[test]
fn a_stopped_timeout_can_be_started_again_and_fires_once() {
    let mut lp = virtual_loop();
    let fired = Count::new();
    let f = fired.clone();
    let timer = lp.set_timeout(ms(5), move |_| f.bump());
    lp.timer_stop(timer).unwrap();
    lp.run().unwrap();
    assert_eq!(fired.get(), 0, "a stopped timer does not fire and does not keep the loop alive");
    lp.timer_start(timer, ms(5), Duration::ZERO).unwrap();
    lp.run().unwrap();
    assert_eq!(fired.get(), 1);
}

#[test]
fn durations_round_up_to_whole_milliseconds() {
    let mut lp = virtual_loop();
    let start = lp.now();
    let log = Log::new();
    let l = log.clone();
    lp.set_timeout(Duration::from_micros(1_500), move |core| {
        l.push(format!("{:?}", core.now() - start))
    });
    lp.run().unwrap();
    assert_eq!(log.take(), ["2ms"]);
}

#[test]
fn calls_on_a_stale_timer_id_fail_and_never_reach_the_new_handle() {
    let mut lp = virtual_loop();
    let old = lp.timer(|_, _| {});
    lp.close(old).unwrap();
    lp.run().unwrap(); // the closing phase frees the slot
    let fired = Count::new();
    let f = fired.clone();
    let new = lp.set_timeout(ms(5), move |_| f.bump());
    assert_eq!(new.id().to_string(), old.id().to_string(), "the slot was reused");

    assert!(matches!(lp.timer_stop(old), Err(Error::Closed(_))));
    assert!(matches!(lp.timer_start(old, ms(1), ms(1)), Err(Error::Closed(_))));
    assert!(matches!(lp.close(old), Err(Error::Closed(_))));
    assert!(matches!(lp.unref(old), Err(Error::Closed(_))));
    assert!(lp.is_active(new));
    lp.run().unwrap();
    assert_eq!(fired.get(), 1);
}

#[test]
fn ten_thousand_timers_fire_in_deadline_order() {
    let mut lp = virtual_loop();
    let start = lp.now();
    let fired = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    // A fixed pseudo-random spread of deadlines over ten minutes, many of them equal.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut expected = Vec::new();
    for i in 0..10_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = x % 600_000 / 7 * 7; // multiples of 7 ms collide often
        expected.push((delay, i));
        let f = fired.clone();
        lp.set_timeout(ms(delay), move |core| {
            f.borrow_mut().push(((core.now() - start).as_millis() as u64, i));
        });
    }
    expected.sort();
    lp.run().unwrap();
    assert_eq!(*fired.borrow(), expected, "each at its deadline; ties in arming order");
}
