//! Talking to the loop from other threads: [`Remote`].
//!
//! The loop is `!Send`: its handles and callbacks belong to its thread. Other threads reach it
//! through a `Remote`, a `Send + Clone` handle that posts closures to the loop's inbox and wakes
//! its poll (a `mio::Waker`, an eventfd on Linux). The loop runs them in its poll phase with
//! `&mut Core`, like any other callback.
//!
//! ```
//! use std::{cell::Cell, rc::Rc, thread};
//! use reactor::EventLoop;
//!
//! let mut lp = EventLoop::new()?;
//! let remote = lp.remote();
//! let worker = thread::spawn(move || {
//!     let answer = 6 * 7; // work done off the loop thread
//!     remote.post(move |core| core.defer(move |_| println!("answer: {answer}"))).ok();
//! });
//! lp.run()?; // alive while a Remote exists or a posted closure waits
//! worker.join().unwrap();
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! # The contract
//!
//! - Every posted closure runs exactly once, on the loop thread, and closures posted by one
//!   thread run in the order it posted them.
//! - A `Remote` keeps the loop alive, like a referenced handle, until it is dropped or
//!   [unref'd](Remote::unref); so does every closure posted and not yet run. A worker thread's
//!   `Remote` therefore keeps `run()` going until the worker is done.
//! - The inbox is bounded ([`Builder::remote_capacity`](crate::Builder::remote_capacity)).
//!   When it is full, [`Remote::post`] blocks the posting thread until the loop catches up
//!   (backpressure), and [`Remote::try_post`] returns the closure in a [`PostError`]. On the loop
//!   thread itself `post` never blocks: it could never be unblocked.
//! - The loop runs at most [`POSTS_PER_ITERATION`] posted closures per iteration, so a flood of
//!   posts cannot starve I/O; the rest wait in the pending phase of the next iteration.
//! - Once the loop is dropped, posting fails with [`PostErrorKind::Closed`] and closures still
//!   queued are dropped unrun.

use std::collections::VecDeque;
use std::fmt;
use std::panic::Location;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};

use crate::dispatch::{self, Task};
use crate::event_loop::Core;
use crate::io::WAKER;
use crate::trace::Kind;

/// Default bound of the inbox (see [`Builder::remote_capacity`](crate::Builder)): room for
/// thousands of in-flight completions, while a flood of posts holds at most a few hundred KiB.
pub(crate) const DEFAULT_CAPACITY: usize = 4096;

/// How many posted closures one iteration runs at most: enough to amortise the wake-up, small
/// enough that a thread posting in a tight loop cannot keep the loop from its I/O.
pub const POSTS_PER_ITERATION: usize = 1024;

type Posted = (Box<dyn FnOnce(&mut Core) + Send>, &'static Location<'static>);

/// What the loop and its `Remote`s share.
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when the loop takes closures out of a full queue, or goes away.
    space: Condvar,
    waker: mio::Waker,
    /// How many referenced `Remote`s exist.
    refs: AtomicUsize,
    capacity: usize,
    loop_thread: ThreadId,
}

struct Queue {
    items: VecDeque<Posted>,
    /// The loop has been dropped.
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock, so a poisoned lock still holds a sound queue.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The loop's end of the inbox.
pub(crate) struct Inbox {
    shared: Arc<Shared>,
    /// Reused buffer for one iteration's batch.
    batch: Vec<Posted>,
}

impl Inbox {
    pub(crate) fn new(poll: &mio::Poll, capacity: usize) -> std::io::Result<Self> {
        let shared = Shared {
            queue: Mutex::new(Queue { items: VecDeque::new(), closed: false }),
            space: Condvar::new(),
            waker: mio::Waker::new(poll.registry(), WAKER)?,
            refs: AtomicUsize::new(0),
            capacity,
            loop_thread: thread::current().id(),
        };
        Ok(Inbox { shared: Arc::new(shared), batch: Vec::new() })
    }

    /// A referenced `Remote` exists, or a posted closure has not run yet.
    pub(crate) fn keeps_alive(&self) -> bool {
        // A sender pushes before it drops its reference, so seeing no references here and then
        // an empty queue under the lock means nothing is on its way.
        self.shared.refs.load(Ordering::Acquire) > 0 || !self.shared.lock().items.is_empty()
    }

    /// How many referenced `Remote`s exist, and how many posted closures wait to run: what
    /// [`Inbox::keeps_alive`] looks at, counted (for [`Core::alive_reasons`]).
    pub(crate) fn counts(&self) -> (usize, usize) {
        let posted = self.shared.lock().items.len();
        (self.shared.refs.load(Ordering::Acquire), posted)
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let unrun = {
            let mut queue = self.shared.lock();
            queue.closed = true;
            std::mem::take(&mut queue.items)
        };
        self.shared.space.notify_all();
        drop(unrun); // outside the lock: dropping a closure runs user code
    }
}

impl Core {
    /// A new [`Remote`] for this loop, referenced (it keeps the loop alive until dropped).
    pub fn remote(&self) -> Remote {
        self.inbox.shared.refs.fetch_add(1, Ordering::Relaxed);
        Remote { shared: self.inbox.shared.clone(), referenced: true }
    }

    /// Runs up to [`POSTS_PER_ITERATION`] posted closures; if more are waiting, the pending
    /// phase continues. Called when the waker's event arrives and from the pending phase.
    pub(crate) fn drain_inbox(&mut self) {
        let mut batch = std::mem::take(&mut self.inbox.batch);
        let more = {
            let mut queue = self.inbox.shared.lock();
            let n = queue.items.len().min(POSTS_PER_ITERATION);
            batch.extend(queue.items.drain(..n));
            !queue.items.is_empty()
        };
        if !batch.is_empty() {
            self.inbox.shared.space.notify_all();
        }
        // With closures left behind, no new wake-up will come (senders only wake an empty
        // inbox): the pending phase must come back for them.
        if more {
            self.pending.push_inbox();
        }
        for (run, site) in batch.drain(..) {
            // Posted from another thread: no cause to carry.
            dispatch::run_task(self, Task { run, site, cause: None }, Kind::Posted);
        }
        self.inbox.batch = batch;
    }
}

/// A `Send + Clone` handle that posts closures to a loop from any thread. See the
/// [module docs](self).
pub struct Remote {
    shared: Arc<Shared>,
    referenced: bool,
}

impl Remote {
    /// Posts `callback` to run on the loop thread. Blocks while the inbox is full, except on the
    /// loop thread, where a full inbox is an error.
    #[track_caller]
    pub fn post<F>(&self, callback: F) -> Result<(), PostError<F>>
    where
        F: FnOnce(&mut Core) + Send + 'static,
    {
        self.push(callback, Location::caller(), true)
    }

    /// Posts `callback` if the inbox has room, without ever blocking.
    #[track_caller]
    pub fn try_post<F>(&self, callback: F) -> Result<(), PostError<F>>
    where
        F: FnOnce(&mut Core) + Send + 'static,
    {
        self.push(callback, Location::caller(), false)
    }

    fn push<F>(
        &self,
        callback: F,
        site: &'static Location<'static>,
        block: bool,
    ) -> Result<(), PostError<F>>
    where
        F: FnOnce(&mut Core) + Send + 'static,
    {
        let shared = &*self.shared;
        let mut queue = shared.lock();
        loop {
            if queue.closed {
                return Err(PostError { kind: PostErrorKind::Closed, callback });
            }
            if queue.items.len() < shared.capacity {
                break;
            }
            if !block || thread::current().id() == shared.loop_thread {
                return Err(PostError { kind: PostErrorKind::Full, callback });
            }
            queue = shared.space.wait(queue).unwrap_or_else(PoisonError::into_inner);
        }
        let was_empty = queue.items.is_empty();
        queue.items.push_back((Box::new(callback), site));
        drop(queue);
        // One wake-up per batch: the loop takes everything that is queued when it drains, so a
        // non-empty inbox already has a wake-up (or a pending-phase visit) on its way.
        if was_empty {
            // An eventfd write fails only if the fd is gone, and then the loop is gone too.
            let _ = shared.waker.wake();
        }
        Ok(())
    }

    /// Stops this `Remote` from keeping the loop alive (a worker that may outlive the loop's
    /// useful life, say). Clones made afterwards are unreferenced too.
    pub fn unref(&mut self) {
        if std::mem::replace(&mut self.referenced, false) {
            self.release();
        }
    }

    /// Undoes [`Remote::unref`].
    #[doc(alias = "ref")]
    pub fn ref_(&mut self) {
        if !std::mem::replace(&mut self.referenced, true) {
            self.shared.refs.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops one reference; the last one wakes the loop so that it can notice it may be done.
    fn release(&self) {
        if self.shared.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = self.shared.waker.wake();
        }
    }
}

impl Clone for Remote {
    fn clone(&self) -> Self {
        if self.referenced {
            self.shared.refs.fetch_add(1, Ordering::Relaxed);
        }
        Remote { shared: self.shared.clone(), referenced: self.referenced }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        if self.referenced {
            self.release();
        }
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote").field("referenced", &self.referenced).finish_non_exhaustive()
    }
}

/// Why a closure could not be posted. It holds the closure, so nothing is lost.
pub struct PostError<F> {
    kind: PostErrorKind,
    callback: F,
}

/// The reason in a [`PostError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostErrorKind {
    /// The inbox is full (from [`Remote::try_post`], or [`Remote::post`] on the loop thread).
    Full,
    /// The loop has been dropped.
    Closed,
}

impl<F> PostError<F> {
    /// Why posting failed.
    pub fn kind(&self) -> PostErrorKind {
        self.kind
    }

    /// The closure that was not posted.
    pub fn into_inner(self) -> F {
        self.callback
    }
}

impl<F> fmt::Debug for PostError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostError").field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl<F> fmt::Display for PostError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            PostErrorKind::Full => f.write_str("the loop's inbox is full"),
            PostErrorKind::Closed => f.write_str("the loop is gone"),
        }
    }
}

impl<F> std::error::Error for PostError<F> {}
