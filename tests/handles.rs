//! The handle lifecycle (close, stale ids), the idle/prepare/check watchers and deferred
//! callbacks (in the spirit of libuv's `test-close-order.c`, `test-idle.c`, `test-loop-*.c`).

mod util;

use std::time::Duration;

use reactor::{Error, EventLoop};
use util::{Count, Log};

#[test]
fn the_close_callback_runs_in_the_closing_phase_never_inside_close() {
    let mut lp = EventLoop::new().unwrap();
    let log = Log::new();
    let timer = lp.timer(|_, _| {});
    let l = log.clone();
    lp.defer(move |core| {
        let l2 = l.clone();
        core.close_with(timer, move |_| l2.push("close callback")).unwrap();
        l.push("close() returned");
    });
    let l = log.clone();
    lp.check(move |core, me| {
        l.push("check");
        core.check_stop(me).unwrap();
    });
    lp.run_nowait().unwrap();
    assert_eq!(log.take(), ["close() returned", "check", "close callback"]);
}

#[test]
fn a_closing_handle_keeps_the_loop_alive_until_its_close_callback_ran() {
    let mut lp = EventLoop::new().unwrap();
    let idle = lp.idle(|_, _| {});
    lp.unref(idle).unwrap();
    assert!(!lp.alive());
    lp.close(idle).unwrap();
    assert!(lp.alive(), "the close callback is still to run");
    assert!(lp.is_closing(idle) && !lp.is_active(idle));
    assert!(!lp.run_nowait().unwrap(), "freed in this iteration's closing phase");
}

#[test]
fn closing_twice_is_an_error_and_the_callback_runs_once() {
    let mut lp = EventLoop::new().unwrap();
    let closed = Count::new();
    let idle = lp.idle(|_, _| {});
    let c = closed.clone();
    lp.close_with(idle, move |_| c.bump()).unwrap();
    assert!(matches!(lp.close(idle), Err(Error::Closed(id)) if id == idle.id()));
    lp.run().unwrap();
    assert!(matches!(lp.close(idle), Err(Error::Closed(_))), "freed: the id is stale");
    assert_eq!(closed.get(), 1);
}

#[test]
fn a_handle_closed_in_its_own_callback_runs_no_more() {
    let mut lp = EventLoop::new().unwrap();
    let (runs, closed) = (Count::new(), Count::new());
    let (r, c) = (runs.clone(), closed.clone());
    lp.idle(move |core, me| {
        r.bump();
        let c = c.clone();
        core.close_with(me, move |_| c.bump()).unwrap();
        // Calls on the closing handle fail cleanly.
        assert!(matches!(core.idle_start(me), Err(Error::Closed(_))));
    });
    lp.run().unwrap();
    assert_eq!((runs.get(), closed.get()), (1, 1));
}

#[test]
fn close_callbacks_may_close_more_handles() {
    let mut lp = EventLoop::new().unwrap();
    let log = Log::new();
    let second = lp.timer(|_, _| {});
    let first = lp.timer(|_, _| {});
    let l = log.clone();
    lp.close_with(first, move |core| {
        l.push("first");
        let l = l.clone();
        core.close_with(second, move |_| l.push("second")).unwrap();
    })
    .unwrap();
    assert!(lp.run_nowait().unwrap(), "the second close is still pending");
    assert_eq!(log.take(), ["first"]);
    lp.run().unwrap();
    assert_eq!(log.take(), ["second"]);
}

#[test]
fn every_kind_of_handle_can_be_closed_through_its_generic_id() {
    let mut lp = EventLoop::new().unwrap();
    let closed = Count::new();
    let ids = [
        lp.timer(|_, _| {}).id(),
        lp.set_interval(Duration::from_secs(60), |_, _| {}).id(),
        lp.idle(|_, _| {}).id(),
        lp.prepare(|_, _| {}).id(),
        lp.check(|_, _| {}).id(),
        lp.signal(reactor::signal::SIGWINCH, |_, _, _| {}).unwrap().id(),
    ];
    for id in ids {
        let c = closed.clone();
        lp.close_with(id, move |_| c.bump()).unwrap();
        assert!(!lp.is_active(id));
    }
    lp.run().unwrap();
    assert_eq!(closed.get(), ids.len());
    assert!(ids.iter().all(|&id| lp.is_closing(id)));
}

#[test]
fn watchers_run_once_per_iteration_in_start_order() {
    let mut lp = EventLoop::new().unwrap();
    let log = Log::new();
    for name in ["idle a", "idle b"] {
        let l = log.clone();
        lp.idle(move |_, _| l.push(name));
    }
    for name in ["prepare a", "prepare b"] {
        let l = log.clone();
        lp.prepare(move |_, _| l.push(name));
    }
    for name in ["check a", "check b"] {
        let l = log.clone();
        lp.check(move |_, _| l.push(name));
    }
    lp.run_nowait().unwrap();
    lp.run_nowait().unwrap();
    let once = ["idle a", "idle b", "prepare a", "prepare b", "check a", "check b"];
    assert_eq!(log.take(), [once, once].concat());
}

#[test]
fn a_watcher_started_during_its_phase_first_runs_in_the_next_iteration() {
    let mut lp = EventLoop::new().unwrap();
    let log = Log::new();
    let l = log.clone();
    let late = lp.idle(move |_, _| l.push("late"));
    lp.idle_stop(late).unwrap();
    let l = log.clone();
    lp.idle(move |core, me| {
        l.push("starter");
        core.idle_stop(me).unwrap();
        core.idle_start(late).unwrap();
    });
    lp.run_nowait().unwrap();
    assert_eq!(log.take(), ["starter"]);
    lp.run_nowait().unwrap();
    assert_eq!(log.take(), ["late"]);
}

#[test]
fn an_idle_handle_stopping_a_later_one_in_the_same_phase_prevents_its_run() {
    let mut lp = EventLoop::new().unwrap();
    let log = Log::new();
    let l = log.clone();
    let victim = lp.idle(move |_, _| l.push("victim"));
    lp.idle_stop(victim).unwrap();
    let l = log.clone();
    lp.idle(move |core, me| {
        l.push("killer");
        core.idle_stop(victim).unwrap();
        core.idle_stop(me).unwrap();
    });
    lp.idle_start(victim).unwrap(); // started after the killer: its turn comes second
    lp.run_nowait().unwrap();
    assert_eq!(log.take(), ["killer"]);
}

#[test]
fn prepare_and_check_handles_can_be_stopped_and_restarted() {
    let mut lp = EventLoop::new().unwrap();
    let (prepares, checks) = (Count::new(), Count::new());
    let p = prepares.clone();
    let prepare = lp.prepare(move |_, _| p.bump());
    let c = checks.clone();
    let check = lp.check(move |_, _| c.bump());
    lp.run_nowait().unwrap();
    lp.prepare_stop(prepare).unwrap();
    lp.check_stop(check).unwrap();
    lp.prepare_stop(prepare).unwrap(); // stopping twice is harmless
    assert!(!lp.alive());
    lp.run_nowait().unwrap();
    lp.prepare_start(prepare).unwrap();
    lp.check_start(check).unwrap();
    lp.check_start(check).unwrap(); // so is starting twice
    lp.run_nowait().unwrap();
    assert_eq!((prepares.get(), checks.get()), (2, 2));
}

#[test]
fn deferred_callbacks_run_in_order_and_those_deferred_from_the_check_phase_wait() {
    let mut lp = EventLoop::new().unwrap();
    let log = Log::new();
    for n in 0..3 {
        let l = log.clone();
        lp.defer(move |core| {
            l.push(format!("deferred {n}"));
            if n == 2 {
                let l = l.clone();
                core.defer(move |_| l.push("deferred from deferred"));
            }
        });
    }
    assert!(lp.alive(), "a queued deferred callback keeps the loop alive");
    lp.run_nowait().unwrap();
    assert_eq!(log.take(), ["deferred 0", "deferred 1", "deferred 2"]);
    assert!(!lp.run_nowait().unwrap());
    assert_eq!(log.take(), ["deferred from deferred"]);
}

#[test]
fn a_callback_can_own_and_drive_other_handles() {
    // A handle's callback is taken out of the slab while it runs, so it may create, start,
    // stop and close handles freely, its own included.
    let mut lp = EventLoop::new().unwrap();
    let log = Log::new();
    let l = log.clone();
    lp.idle(move |core, me| {
        let l2 = l.clone();
        let child = core.idle(move |core, child| {
            l2.push("child");
            core.close(child).unwrap();
        });
        assert!(core.is_active(child));
        l.push("parent");
        core.close(me).unwrap();
    });
    lp.run().unwrap();
    assert_eq!(log.take(), ["parent", "child"]);
}
