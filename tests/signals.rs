//! Signal handles, driven by real signals raised in this process.
//!
//! All tests in this file are threads of one process, and signal dispositions belong to the
//! process: raising a signal nobody handles runs its default action and kills the test binary.
//! So every test owns one signal that no other test touches, and raises it only while one of
//! its own handles watches it.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use reactor::signal::{SIGALRM, SIGHUP, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, kill};
use reactor::{Error, EventLoop, Signal};

/// How long a test waits for a signal before it fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(5);

fn raise(signum: i32) {
    kill(std::process::id(), signum).unwrap();
}

/// Runs the loop one iteration at a time until `done()`; fails after [`LIMIT`]. The safety-net
/// timer is unreferenced, so it does not keep the loop alive by itself.
fn run_until(lp: &mut EventLoop, done: impl Fn() -> bool) {
    let expired = Rc::new(Cell::new(false));
    let flag = expired.clone();
    let net = lp.set_timeout(LIMIT, move |_| flag.set(true));
    lp.unref(net).unwrap();
    while !done() && !expired.get() {
        lp.run_once().unwrap();
    }
    assert!(!expired.get(), "nothing arrived within {LIMIT:?}");
    lp.close(net).unwrap();
}

/// A few more non-blocking iterations, so that a callback that should not run has its chance.
fn settle(lp: &mut EventLoop) {
    for _ in 0..3 {
        lp.run_nowait().unwrap();
    }
}

/// A log of (which handle, signal number) pairs, one per callback.
type Log = Rc<RefCell<Vec<(&'static str, i32)>>>;

/// Starts a handle named `name` watching `signum` that appends to `log`.
fn watch(lp: &mut EventLoop, signum: i32, name: &'static str, log: &Log) -> Signal {
    let log = log.clone();
    lp.signal(signum, move |_, _, got| log.borrow_mut().push((name, got))).unwrap()
}

#[test]
fn a_raised_signal_runs_the_callback_with_its_number() {
    let mut lp = EventLoop::new().unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    let handle = lp.signal(SIGUSR1, move |_, me, signum| log.borrow_mut().push((me, signum)));
    let handle = handle.unwrap();
    assert!(lp.is_active(handle));

    raise(SIGUSR1);
    run_until(&mut lp, || !seen.borrow().is_empty());
    settle(&mut lp);
    assert_eq!(*seen.borrow(), [(handle, SIGUSR1)]);
}

#[test]
fn equal_signals_reach_every_watcher_in_start_order() {
    let mut lp = EventLoop::new().unwrap();
    let log = Log::default();
    let first = watch(&mut lp, SIGUSR2, "first", &log);
    watch(&mut lp, SIGUSR2, "second", &log);
    // Restarting `first` puts it behind `second`: the order is that of starts, not creation.
    lp.signal_stop(first).unwrap();
    lp.signal_start(first).unwrap();

    raise(SIGUSR2);
    run_until(&mut lp, || log.borrow().len() == 2);
    settle(&mut lp);
    assert_eq!(*log.borrow(), [("second", SIGUSR2), ("first", SIGUSR2)]);
}

#[test]
fn a_stopped_handle_misses_the_signal_a_started_one_gets() {
    let mut lp = EventLoop::new().unwrap();
    let log = Log::default();
    let stopped = watch(&mut lp, SIGHUP, "stopped", &log);
    let started = watch(&mut lp, SIGHUP, "started", &log); // keeps the handler installed
    lp.signal_stop(stopped).unwrap();
    assert!(!lp.is_active(stopped));
    assert!(lp.is_active(started));

    raise(SIGHUP);
    run_until(&mut lp, || !log.borrow().is_empty());
    settle(&mut lp);
    assert_eq!(*log.borrow(), [("started", SIGHUP)]);
}

#[test]
fn signal_stop_and_start_round_trip() {
    // SIGWINCH is ignored by default, so the raise while no handle watches it is harmless.
    let mut lp = EventLoop::new().unwrap();
    let log = Log::default();
    let handle = watch(&mut lp, SIGWINCH, "handle", &log);

    raise(SIGWINCH);
    run_until(&mut lp, || log.borrow().len() == 1);

    lp.signal_stop(handle).unwrap();
    lp.signal_stop(handle).unwrap(); // stopping twice is the same as once
    assert!(!lp.is_active(handle));
    raise(SIGWINCH);
    settle(&mut lp);
    assert_eq!(log.borrow().len(), 1);
    assert!(!lp.alive());

    lp.signal_start(handle).unwrap();
    lp.signal_start(handle).unwrap(); // starting twice too: still one callback per signal
    assert!(lp.is_active(handle));
    raise(SIGWINCH);
    run_until(&mut lp, || log.borrow().len() == 2);
    settle(&mut lp);
    assert_eq!(*log.borrow(), [("handle", SIGWINCH), ("handle", SIGWINCH)]);
}

#[test]
fn an_unreferenced_signal_handle_does_not_keep_the_loop_alive() {
    let mut lp = EventLoop::new().unwrap();
    let log = Log::default();
    let handle = watch(&mut lp, SIGQUIT, "handle", &log);
    assert!(lp.alive());
    lp.unref(handle).unwrap();
    assert!(!lp.alive());

    let expired = Rc::new(Cell::new(false));
    let flag = expired.clone();
    let net = lp.set_timeout(LIMIT, move |core| {
        flag.set(true);
        core.stop();
    });
    lp.unref(net).unwrap();
    lp.run().unwrap(); // returns at once
    assert!(!expired.get());
    assert!(lp.is_active(handle), "unreferenced, but still watching");
    assert!(log.borrow().is_empty());
}

#[test]
fn invalid_signal_numbers_are_refused_and_create_nothing() {
    let mut lp = EventLoop::new().unwrap();
    for signum in [0, -1, 65, libc::SIGKILL, libc::SIGSTOP] {
        let called = Rc::new(Cell::new(false));
        let flag = called.clone();
        match lp.signal(signum, move |_, _, _| flag.set(true)) {
            Err(Error::Io(err)) => assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{signum}"),
            other => panic!("signal {signum}: expected InvalidInput, got {other:?}"),
        }
        assert!(!called.get());
    }
    assert!(!lp.alive());
    // No slot was taken, not even briefly: the next handle gets the very first id.
    let first_id_of_a_fresh_loop = EventLoop::new().unwrap().timer(|_, _| {}).id();
    assert_eq!(lp.timer(|_, _| {}).id(), first_id_of_a_fresh_loop);
}

#[test]
fn a_signal_handle_can_close_itself_from_its_callback() {
    let mut lp = EventLoop::new().unwrap();
    let (calls, closes) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let (call_count, close_count) = (calls.clone(), closes.clone());
    let handle = lp
        .signal(SIGALRM, move |core, me, _| {
            call_count.set(call_count.get() + 1);
            let close_count = close_count.clone();
            core.close_with(me, move |_| close_count.set(close_count.get() + 1)).unwrap();
        })
        .unwrap();

    raise(SIGALRM);
    run_until(&mut lp, || closes.get() == 1);
    // Closed, so nothing keeps the loop alive any more.
    lp.run().unwrap();
    assert_eq!((calls.get(), closes.get()), (1, 1));
    assert!(lp.is_closing(handle));
    assert!(matches!(lp.signal_start(handle), Err(Error::Closed(id)) if id == handle.id()));
}

#[test]
fn every_loop_watching_a_signal_receives_it() {
    let (ready_tx, ready_rx) = mpsc::channel();
    let other_loop = thread::spawn(move || {
        let mut lp = EventLoop::new().unwrap();
        let log = Log::default();
        watch(&mut lp, SIGTERM, "other loop", &log);
        ready_tx.send(()).unwrap();
        run_until(&mut lp, || !log.borrow().is_empty());
        settle(&mut lp);
        log.take()
    });

    let mut lp = EventLoop::new().unwrap();
    let log = Log::default();
    watch(&mut lp, SIGTERM, "this loop", &log);
    ready_rx.recv_timeout(LIMIT).expect("the other loop did not start watching");

    raise(SIGTERM);
    run_until(&mut lp, || !log.borrow().is_empty());
    settle(&mut lp);
    assert_eq!(*log.borrow(), [("this loop", SIGTERM)]);
    assert_eq!(other_loop.join().unwrap(), [("other loop", SIGTERM)]);
}
