//! The thread pool: blocking work off the loop thread, its result back on it.
//!
//! The loop thread must never block, but some work can only be done by blocking: reading a
//! file, resolving a name, compressing a buffer. [`Core::queue_work`] hands such work to a pool
//! thread and names a `done` callback, which runs later on the loop thread with the work's
//! result, like libuv's `uv_queue_work`.
//!
//! ```
//! use reactor::EventLoop;
//!
//! let mut lp = EventLoop::new()?;
//! lp.queue_work(
//!     || (1..=20u64).product::<u64>(), // on a pool thread
//!     |_core, result| println!("20! = {}", result.unwrap()), // back on the loop thread
//! )?;
//! lp.run()?; // returns once `done` has run
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! # The contract
//!
//! - `work` is a `Send` closure; it runs on one of the pool's threads. `done` runs on the loop
//!   thread, exactly once, with `Ok(value)`, or with `Err(WorkError::Panicked)` if `work`
//!   panicked, or `Err(WorkError::Cancelled)` after a successful [`Core::cancel_work`]. A panic
//!   in `done` is caught and reported like any callback's (see [`dispatch`]),
//!   with the site of the `queue_work` call.
//! - Queued work keeps the loop alive until its `done` has run, like a request in libuv.
//! - Work still queued can be cancelled; work a thread has started cannot (it runs to the end,
//!   and `cancel_work` says so with an error).
//! - The pool starts with the first `queue_work`: [`DEFAULT_THREADS`] threads, or as many as the
//!   environment variable [`THREADS_ENV`] says (1 to [`MAX_THREADS`]), or as many as
//!   [`Builder::thread_pool_size`](crate::Builder::thread_pool_size) says, which wins.
//! - When the loop is dropped, queued work is dropped unrun (with its `done`), and the threads
//!   finish the work they are running and exit. They are not joined: a thread may be blocked in
//!   a system call for long, and dropping a loop must not hang.
//!
//! # The queue is unbounded, on purpose
//!
//! `queue_work` is called on the loop thread, so it must never block; a bounded queue would
//! have to fail instead, and every caller would need a retry path. A queued job costs two boxed
//! closures, so a million queued jobs hold tens of MiB, and nothing else grows. Backpressure
//! comes from the other side: results return through the loop's bounded inbox (the one behind
//! [`Remote`](crate::Remote)), so when the loop falls behind, pool threads wait for it rather
//! than pile up results. A program that can queue without bound should count its work in
//! flight, as it would with libuv.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe, Location};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;

use crate::Result;
use crate::dispatch::{self, Task};
use crate::event_loop::Core;
use crate::trace::{Act, Cause, Kind};

/// Threads of a pool when nothing says otherwise (libuv's default too).
pub const DEFAULT_THREADS: usize = 4;
/// The environment variable that sets the pool's size, like libuv's `UV_THREADPOOL_SIZE`.
pub const THREADS_ENV: &str = "REACTOR_THREADPOOL_SIZE";
/// The largest pool.
pub const MAX_THREADS: usize = 1024;

/// Work queued with [`Core::queue_work`], for [`Core::cancel_work`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Work(u64);

/// Why `done` got no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkError {
    /// [`Core::cancel_work`] took the work off the queue before a thread started it.
    Cancelled,
    /// The work panicked; the panic's message.
    Panicked(String),
}

impl fmt::Display for WorkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkError::Cancelled => f.write_str("the work was cancelled"),
            WorkError::Panicked(message) => write!(f, "the work panicked: {message}"),
        }
    }
}

impl std::error::Error for WorkError {}

/// What a pool thread sends back: the value, type-erased, or why there is none.
type Outcome = std::result::Result<Box<dyn Any + Send>, WorkError>;

/// A `done` callback, wrapped to take an [`Outcome`] and hand its own type to the user's.
type DoneFn = Box<dyn FnOnce(&mut Core, Outcome)>;

/// A `done` owed, with where and why its work was queued.
struct Owed {
    done: DoneFn,
    site: &'static Location<'static>,
    cause: Cause,
}

/// The loop's side of the pool.
pub(crate) struct Pool {
    /// The `done` callbacks owed, by work id, with the site and cause of their `queue_work`.
    owed: HashMap<u64, Owed>,
    next_id: u64,
    /// Threads to start; 0: from [`THREADS_ENV`] or [`DEFAULT_THREADS`].
    size: usize,
    /// The queue the threads take work from; `None` until the first `queue_work`.
    shared: Option<Arc<Shared>>,
}

/// What the loop and the pool's threads share.
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a job is queued, or the pool closes.
    ready: Condvar,
}

struct Queue {
    jobs: VecDeque<Job>,
    /// Threads waiting for a job: a new job wakes one only if there is one (a wake-up is a
    /// system call, and busy threads find the job without it).
    idle: usize,
    /// The loop is gone: threads exit once they find the queue empty.
    closed: bool,
}

/// Work on its way to a thread: the user's closure, and what to do with its result.
struct Job {
    id: u64,
    run: Box<dyn FnOnce() + Send>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock (user code runs outside it), so a poisoned
        // lock still holds a sound queue.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Pool {
    /// A pool of `size` threads (0: from the environment), not started.
    pub(crate) fn new(size: usize) -> Pool {
        Pool { owed: HashMap::new(), next_id: 0, size, shared: None }
    }

    /// Whether some work's `done` has yet to run: the loop's liveness.
    pub(crate) fn in_flight(&self) -> bool {
        !self.owed.is_empty()
    }

    /// How many pieces of work have a `done` yet to run (for [`Core::alive_reasons`]).
    pub(crate) fn owed(&self) -> usize {
        self.owed.len()
    }

    /// The size to start with: the builder's, or the environment's, or the default.
    fn threads(&self) -> usize {
        if self.size > 0 {
            return self.size.min(MAX_THREADS);
        }
        std::env::var(THREADS_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .map_or(DEFAULT_THREADS, |n| n.min(MAX_THREADS))
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let Some(shared) = self.shared.take() else { return };
        let unrun = {
            let mut queue = shared.lock();
            queue.closed = true;
            std::mem::take(&mut queue.jobs)
        };
        shared.ready.notify_all();
        drop(unrun); // outside the lock: dropping a closure runs user code
    }
}

/// The body of a pool thread: take a job, run it, until the pool closes.
fn worker(shared: Arc<Shared>) {
    loop {
        let job = {
            let mut queue = shared.lock();
            loop {
                if let Some(job) = queue.jobs.pop_front() {
                    break job;
                }
                if queue.closed {
                    return;
                }
                queue.idle += 1;
                queue = shared.ready.wait(queue).unwrap_or_else(PoisonError::into_inner);
                queue.idle -= 1;
            }
        };
        (job.run)();
    }
}

impl Core {
    /// Runs `work` on a pool thread, then `done` on the loop thread with its result (see the
    /// [module docs](self)). Fails only if the pool's first thread cannot be started.
    #[track_caller]
    pub fn queue_work<T, W, D>(&mut self, work: W, done: D) -> Result<Work>
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
        D: FnOnce(&mut Core, std::result::Result<T, WorkError>) + 'static,
    {
        let site = Location::caller();
        let shared = self.start_pool()?;
        let id = self.pool.next_id;
        self.pool.next_id += 1;
        // A clone of an unreferenced Remote: queued work keeps the loop alive through `owed`,
        // not through the Remote.
        let mut remote = self.remote();
        remote.unref();
        let run = move || {
            let outcome: Outcome = match panic::catch_unwind(AssertUnwindSafe(work)) {
                Ok(value) => Ok(Box::new(value)),
                Err(payload) => Err(WorkError::Panicked(dispatch::panic_message(&*payload))),
            };
            // Fails only if the loop is gone, and then nobody waits for the result.
            let _ = remote.post(move |core: &mut Core| core.finish_work(id, outcome));
        };
        let done: DoneFn = Box::new(move |core: &mut Core, outcome: Outcome| {
            let result = outcome.map(|value| match value.downcast::<T>() {
                Ok(value) => *value,
                Err(_) => unreachable!("work {id} sent back a value of another type"),
            });
            done(core, result);
        });
        let cause = self.trace.record(Act::QueuedWork, site);
        self.pool.owed.insert(id, Owed { done, site, cause });
        let wake = {
            let mut queue = shared.lock();
            queue.jobs.push_back(Job { id, run: Box::new(run) });
            queue.idle > 0
        };
        if wake {
            shared.ready.notify_one();
        }
        Ok(Work(id))
    }

    /// Takes `work` off the queue if no thread has started it; its `done` then runs with
    /// `Err(WorkError::Cancelled)` in this iteration's check phase, never inside this call.
    /// Fails with [`io::ErrorKind::ResourceBusy`] if the work is running, and with
    /// [`io::ErrorKind::NotFound`] if its `done` has already run (libuv: `EBUSY`, `EINVAL`).
    pub fn cancel_work(&mut self, work: Work) -> Result<()> {
        if !self.pool.owed.contains_key(&work.0) {
            let err = io::Error::new(io::ErrorKind::NotFound, "no such work in flight");
            return Err(err.into());
        }
        let job = self.pool.shared.as_ref().and_then(|shared| {
            let mut queue = shared.lock();
            let at = queue.jobs.iter().position(|job| job.id == work.0)?;
            queue.jobs.remove(at)
        });
        let Some(job) = job else {
            let err = io::Error::new(io::ErrorKind::ResourceBusy, "the work is running");
            return Err(err.into());
        };
        drop(job); // outside the lock: dropping the closure runs user code
        let Owed { done, site, cause } =
            self.pool.owed.remove(&work.0).expect("owed, checked above");
        let run = Box::new(move |core: &mut Core| done(core, Err(WorkError::Cancelled)));
        self.deferred.push_as(Task { run, site, cause }, Kind::WorkDone);
        Ok(())
    }

    /// The queue, with its threads started on the first call.
    fn start_pool(&mut self) -> Result<Arc<Shared>> {
        if let Some(shared) = &self.pool.shared {
            return Ok(shared.clone());
        }
        let queue = Queue { jobs: VecDeque::new(), idle: 0, closed: false };
        let shared = Arc::new(Shared { queue: Mutex::new(queue), ready: Condvar::new() });
        let threads = self.pool.threads();
        for n in 0..threads {
            let shared = shared.clone();
            let spawned = thread::Builder::new()
                .name(format!("reactor-pool-{n}"))
                .spawn(move || worker(shared));
            // Fewer threads than asked is still a pool; none at all is an error.
            if let Err(err) = spawned {
                if n == 0 {
                    return Err(err.into());
                }
                break;
            }
        }
        self.pool.shared = Some(shared.clone());
        Ok(shared)
    }

    /// Runs the `done` of work `id` with what its thread sent back.
    fn finish_work(&mut self, id: u64, outcome: Outcome) {
        // Gone if the work was cancelled meanwhile: its `done` has had its answer.
        let Some(Owed { done, site, cause }) = self.pool.owed.remove(&id) else { return };
        let run = Box::new(move |core: &mut Core| done(core, outcome));
        dispatch::run_task(self, Task { run, site, cause }, Kind::WorkDone);
    }
}
