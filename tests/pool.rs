//! The thread pool: `queue_work`, `cancel_work`, liveness, panics, and a loop that keeps its
//! timers on schedule while the pool is busy.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use reactor::{Error, EventLoop, WorkError};

mod util;
use util::BusyPool;

/// A loop with a pool of `threads`.
fn pool_loop(threads: usize) -> EventLoop {
    EventLoop::builder().thread_pool_size(threads).build().unwrap()
}

#[test]
fn work_runs_on_a_pool_thread_and_done_on_the_loop_thread() {
    let mut lp = pool_loop(2);
    let loop_thread = thread::current().id();
    let got: Rc<RefCell<Option<(ThreadId, ThreadId, u64)>>> = Rc::default();
    let sink = got.clone();
    lp.queue_work(
        || (thread::current().id(), (1..=20u64).product::<u64>()),
        move |_, result| {
            let (worker, value) = result.unwrap();
            *sink.borrow_mut() = Some((worker, thread::current().id(), value));
        },
    )
    .unwrap();
    // `run` returns by itself: queued work keeps the loop alive until its `done` has run.
    lp.run().unwrap();
    let (worker, done_on, value) = got.take().expect("done ran");
    assert_ne!(worker, loop_thread, "work ran on the loop thread");
    assert_eq!(done_on, loop_thread, "done ran off the loop thread");
    assert_eq!(value, 2_432_902_008_176_640_000);
}

#[test]
fn every_done_runs_once_with_its_own_value() {
    let mut lp = pool_loop(4);
    let seen = Rc::new(RefCell::new(vec![0u32; 200]));
    for i in 0..200u32 {
        let seen = seen.clone();
        lp.queue_work(
            move || i * 3,
            move |_, r| {
                assert_eq!(r, Ok(i * 3));
                seen.borrow_mut()[i as usize] += 1;
            },
        )
        .unwrap();
    }
    lp.run().unwrap();
    assert!(seen.borrow().iter().all(|&n| n == 1), "{:?}", seen.borrow());
}

#[test]
fn a_panic_in_work_reaches_done_as_an_error() {
    let mut lp = pool_loop(1);
    let got: Rc<RefCell<Option<Result<u8, WorkError>>>> = Rc::default();
    let sink = got.clone();
    lp.queue_work(|| -> u8 { panic!("disk on fire") }, move |_, r| *sink.borrow_mut() = Some(r))
        .unwrap();
    lp.run().unwrap();
    assert_eq!(got.take(), Some(Err(WorkError::Panicked("disk on fire".into()))));
    // The pool thread survived the panic: more work still runs.
    let ok = Rc::new(Cell::new(false));
    let flag = ok.clone();
    lp.queue_work(|| 7, move |_, r| flag.set(r == Ok(7))).unwrap();
    lp.run().unwrap();
    assert!(ok.get());
}

#[test]
fn queued_work_can_be_cancelled_and_running_work_cannot() {
    // One thread, held busy by the first job until the test lets it go.
    let mut lp = pool_loop(1);
    let order: Rc<RefCell<Vec<String>>> = Rc::default();
    let log = order.clone();
    let busy = BusyPool::hold(&mut lp, move |_, r| log.borrow_mut().push(format!("busy {r:?}")));
    let ran = Arc::new(AtomicBool::new(false));
    let ran_in_work = ran.clone();
    let log = order.clone();
    let queued = lp
        .queue_work(
            move || ran_in_work.store(true, Ordering::SeqCst),
            move |_, r| log.borrow_mut().push(format!("queued {r:?}")),
        )
        .unwrap();

    // The running job: busy. The queued one: cancelled, and its done not run inside the call.
    let err = lp.cancel_work(busy.work).unwrap_err();
    assert!(matches!(&err, Error::Io(e) if e.kind() == io::ErrorKind::ResourceBusy), "{err:?}");
    lp.cancel_work(queued).unwrap();
    assert!(order.borrow().is_empty(), "done ran inside cancel_work");
    // Twice: it is no longer in flight.
    let err = lp.cancel_work(queued).unwrap_err();
    assert!(matches!(&err, Error::Io(e) if e.kind() == io::ErrorKind::NotFound), "{err:?}");

    busy.release();
    lp.run().unwrap();
    let mut order = order.take();
    order.sort();
    assert_eq!(order, ["busy Ok(true)", "queued Err(Cancelled)"]);
    assert!(!ran.load(Ordering::SeqCst), "cancelled work ran");
}

#[test]
fn the_pool_runs_work_in_parallel_up_to_its_size() {
    // Four jobs that each wait for all four at a barrier: they finish only if four threads run
    // them at once. (A pool of fewer threads would hang at the barrier; the barrier's wait is
    // bounded by the test's watchdog below.)
    let mut lp = pool_loop(4);
    let barrier = Arc::new(Barrier::new(4));
    let done = Rc::new(Cell::new(0));
    for _ in 0..4 {
        let (barrier, done) = (barrier.clone(), done.clone());
        lp.queue_work(
            move || barrier.wait().is_leader(),
            move |_, r| {
                r.unwrap();
                done.set(done.get() + 1);
            },
        )
        .unwrap();
    }
    let (tx, rx) = mpsc::channel();
    let watchdog = thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(20)).is_err() {
            eprintln!("the pool did not run 4 jobs at once");
            std::process::abort();
        }
    });
    lp.run().unwrap();
    tx.send(()).unwrap();
    watchdog.join().unwrap();
    assert_eq!(done.get(), 4);
}

#[test]
fn timers_keep_their_schedule_while_a_hundred_slow_jobs_run() {
    // 100 jobs of 20 ms each on 4 threads: about half a second of pool work. Meanwhile a
    // 10 ms interval timer must keep firing: the loop thread never waits for the pool.
    let mut lp = pool_loop(4);
    let finished = Rc::new(Cell::new(0));
    for _ in 0..100 {
        let finished = finished.clone();
        lp.queue_work(
            || thread::sleep(Duration::from_millis(20)), // the slow work itself
            move |_, r| {
                r.unwrap();
                finished.set(finished.get() + 1);
            },
        )
        .unwrap();
    }
    let ticks: Rc<RefCell<Vec<Instant>>> = Rc::default();
    let (log, jobs) = (ticks.clone(), finished.clone());
    lp.set_interval(Duration::from_millis(10), move |core, me| {
        log.borrow_mut().push(Instant::now());
        if jobs.get() == 100 {
            core.close(me).unwrap();
        }
    });
    let started = Instant::now();
    lp.run().unwrap();
    assert_eq!(finished.get(), 100);
    let ticks = ticks.take();
    // The work takes at least 100 × 20 ms / 4 threads = 500 ms; ticks came all along.
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(ticks.len() >= 20, "only {} ticks in {:?}", ticks.len(), started.elapsed());
    let longest = ticks.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    // A blocked loop would show a gap of a whole job or more; allow a loaded machine's jitter.
    assert!(longest < Duration::from_millis(200), "a gap of {longest:?} between ticks");
}

#[test]
fn dropping_the_loop_drops_queued_work_unrun() {
    let mut lp = pool_loop(1);
    let busy = BusyPool::hold(&mut lp, |_, _| {});
    let ran = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    for _ in 0..3 {
        let (ran, flag) = (ran.clone(), Flag(dropped.clone()));
        lp.queue_work(
            move || {
                let _flag = &flag;
                ran.fetch_add(1, Ordering::SeqCst);
            },
            |_, _| {},
        )
        .unwrap();
    }
    drop(lp);
    assert_eq!(dropped.load(Ordering::SeqCst), 3, "queued work was not dropped with the loop");
    busy.release();
    assert_eq!(ran.load(Ordering::SeqCst), 0, "queued work ran after the loop was dropped");
}

#[test]
fn a_panic_in_done_is_reported_with_the_queue_work_site() {
    let mut lp = pool_loop(1);
    let reports: Rc<RefCell<Vec<String>>> = Rc::default();
    let sink = reports.clone();
    lp.set_panic_hook(move |report| sink.borrow_mut().push(report.to_string()));
    let line = line!() + 1;
    lp.queue_work(|| (), |_, _| panic!("done failed")).unwrap();
    lp.run().unwrap();
    let reports = reports.take();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].contains("done failed"), "{}", reports[0]);
    assert!(reports[0].contains(&format!("tests/pool.rs:{line}")), "{}", reports[0]);
}
