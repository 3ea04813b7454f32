//! Small helpers shared by the integration tests (like mio's `tests/util`).
#![allow(dead_code)] // Each test binary uses a different subset.

pub mod child;

use std::rc::Rc;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reactor::EventLoop;

/// A shared, append-only record of what callbacks did, in order. `Send`, so posted closures
/// can log too.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }

    /// Everything logged so far, leaving the log empty.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A shared counter for callbacks.
#[derive(Clone, Default)]
pub struct Count(Arc<Mutex<usize>>);

impl Count {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn bump(&self) {
        *self.0.lock().unwrap() += 1;
    }

    pub fn get(&self) -> usize {
        *self.0.lock().unwrap()
    }
}

/// A loop whose clock only moves when it would sleep until a timer: timer tests run instantly
/// and see exact times.
pub fn virtual_loop() -> EventLoop {
    EventLoop::builder().virtual_clock(true).build().expect("create a loop")
}

/// Runs `f` on its own thread and fails the test if it does not finish within `limit`. For
/// tests whose failure mode would be a loop that blocks forever.
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    let body = std::thread::spawn(move || done.send(f()).ok());
    match result.recv_timeout(limit) {
        Ok(value) => value,
        // The body panicked: report its panic, not a timeout.
        Err(mpsc::RecvTimeoutError::Disconnected) => match body.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(_) => unreachable!("the body ended without sending its result"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the test body did not finish in {limit:?}"),
    }
}

/// Aborts the test process if it is still armed after `limit`: a loop that blocks forever fails
/// the test run instead of hanging it. Disarmed when dropped.
pub struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

impl Watchdog {
    pub fn arm(limit: Duration) -> Watchdog {
        let (disarm, disarmed) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = disarmed.recv_timeout(limit) {
                eprintln!("watchdog: the loop is still running after {limit:?}; aborting");
                std::process::abort();
            }
        });
        Watchdog { _disarm: disarm }
    }
}

/// One pool thread held by a job until [`BusyPool::release`]: with a pool of one thread, work
/// queued after it waits in the queue, where it can be cancelled or dropped.
pub struct BusyPool {
    /// The holding job.
    pub work: reactor::Work,
    release: mpsc::Sender<()>,
}

impl BusyPool {
    /// Queues the holding job on `lp`'s pool, and waits (at most 10 s) until a thread runs it.
    /// `done` gets whether the job was released (rather than given up after 10 s).
    pub fn hold(
        lp: &mut EventLoop,
        done: impl FnOnce(&mut reactor::Core, Result<bool, reactor::WorkError>) + 'static,
    ) -> BusyPool {
        let (started_tx, started_rx) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let work = lp
            .queue_work(
                move || {
                    started_tx.send(()).unwrap();
                    release_rx.recv_timeout(Duration::from_secs(10)).is_ok()
                },
                done,
            )
            .unwrap();
        started_rx.recv_timeout(Duration::from_secs(10)).expect("the holding job started");
        BusyPool { work, release }
    }

    /// Lets the holding job finish.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

/// A loop whose panic hook re-raises: an assertion that fails inside a handler fails the test
/// at once instead of being caught, reported and survived by the loop.
pub fn strict(mut lp: EventLoop) -> EventLoop {
    lp.set_panic_hook(|report| panic!("{report}"));
    lp
}

/// A new [`strict`] loop.
pub fn new_loop() -> EventLoop {
    strict(EventLoop::new().unwrap())
}

/// Runs the loop until `done()` holds. It is checked in every iteration's prepare phase (after
/// the pending phase, where resumed and budget-stopped streams are read; a `stop()` there keeps
/// the poll from blocking) and check phase (after the poll phase). What a closing phase does is
/// seen in the next iteration's prepare phase.
pub fn run_until(lp: &mut EventLoop, done: impl Fn() -> bool + 'static) {
    if done() {
        return;
    }
    let done = Rc::new(done);
    let (d1, d2) = (done.clone(), done.clone());
    let prepare = lp.prepare(move |core, _| {
        if d1() {
            core.stop();
        }
    });
    let check = lp.check(move |core, _| {
        if d2() {
            core.stop();
        }
    });
    lp.unref(prepare).unwrap();
    lp.unref(check).unwrap();
    lp.run().unwrap();
    lp.close(prepare).unwrap();
    lp.close(check).unwrap();
    assert!(done(), "the loop ended before the condition held");
}
