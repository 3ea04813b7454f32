//! `reactor`: an event loop in the style of libuv, written from scratch on `mio` and `slab`.
//!
//! One thread, one `mio::Poll`, one slab of handles. Every timer, watcher, signal and socket is
//! a *handle* with a callback (for a stream, a [`StreamHandler`] object); the loop waits for
//! something to happen and calls the one callback it belongs to. Callbacks receive `&mut`
//! [`Core`], through which they arm timers, write to streams, start and close handles and defer
//! work.
//!
//! ```
//! use std::time::Duration;
//! use reactor::EventLoop;
//!
//! let mut lp = EventLoop::new()?;
//! let mut count = 0;
//! lp.set_interval(Duration::from_millis(1), move |core, me| {
//!     count += 1;
//!     if count == 3 {
//!         core.close(me).unwrap();
//!     }
//! });
//! let remote = lp.remote(); // Send + Clone: wakes the loop from any thread
//! std::thread::spawn(move || {
//!     remote.post(|core| core.defer(|_| println!("hello from another thread"))).ok();
//! });
//! lp.run()?; // until no active, referenced handle (or Remote) is left
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! # The model
//!
//! - **One iteration** runs the phases of libuv's loop in order: timers, pending, idle, prepare,
//!   poll (I/O callbacks), check, closing. [`event_loop`] shows the function that does it and
//!   `docs/ARCHITECTURE.md` draws it.
//! - **Handles** are ids: (slot, generation) pairs, typed per kind ([`Timer`], [`Idle`],
//!   [`Prepare`], [`Check`], [`Signal`], [`Stream`], [`Listener`], [`Udp`], [`Process`],
//!   [`FsWatch`]). A stale id gets [`Error::Closed`], never another handle. See [`handle`].
//! - **Streams** ([`stream`], [`listener`]) read into one loop-wide buffer, try writes on the
//!   socket before queueing them, and apply backpressure with watermarks, `on_drain` and
//!   pause/resume. [`udp`] does the same for datagrams.
//! - **Liveness** works like libuv's: [`EventLoop::run`] returns when no active, referenced
//!   handle, closing handle, deferred callback or referenced [`Remote`] is left.
//!   [`Core::unref`] lets a handle work without keeping the loop alive.
//! - **One place calls user code** ([`dispatch`]). A panic in a callback is caught there: the
//!   handle is closed, the panic is reported through a hook, and the loop goes on.
//! - **Never block the loop.** Other threads talk to it only through [`Remote`]; signals arrive
//!   through a self-pipe ([`signal`]), changes to files and directories through inotify
//!   ([`fs_event`]); blocking work (files in [`fs`], name lookups in [`dns`]) runs on a
//!   [thread pool](pool) and comes back as a callback; child processes ([`process`]) are
//!   collected when `SIGCHLD` says so.
//!
//! The crate is Linux-first (epoll through mio, a self-pipe for signals) and needs a 64-bit
//! target.

#![deny(missing_docs)]
#![deny(unsafe_code)]

mod buf;
mod clock;
pub mod close;
pub mod deferred;
pub mod dispatch;
pub mod dns;
mod error;
pub mod event_loop;
pub mod fs;
pub mod fs_event;
pub mod handle;
pub mod http;
mod introspect;
mod io;
pub mod listener;
pub mod metrics;
mod pending;
pub mod pool;
pub mod process;
pub mod remote;
pub mod signal;
mod slots;
pub mod stream;
#[allow(unsafe_code)]
mod sys;
pub mod timer;
pub mod trace;
pub mod udp;
pub mod watchdog;
pub mod watchers;

pub use dispatch::PanicReport;
pub use error::{Error, Result};
pub use event_loop::{Builder, Core, EventLoop};
pub use fs_event::{FsEvent, FsEventKind};
pub use handle::{
    Check, FsWatch, HandleId, Idle, Listener, Prepare, Process, Signal, Stream, Timer, Udp,
};
pub use listener::ListenOptions;
pub use metrics::{AliveReason, HandleInfo, Metrics};
pub use pool::{Work, WorkError};
pub use remote::{PostError, PostErrorKind, Remote};
pub use stream::{Conn, StreamHandler};

/// The README's example, compiled and run as a doctest so that it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;

/// Raises this process's soft limit on open file descriptors to its hard limit and returns the
/// new soft limit. A server that holds 10,000 connections needs 10,000 descriptors, while the
/// usual soft limit is 1024; call this once at startup.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    sys::net::raise_fd_limit()
}
