//! Signal handles: Unix signals delivered as ordinary callbacks on the loop thread.
//!
//! ```no_run
//! use reactor::{signal::SIGINT, EventLoop};
//!
//! let mut lp = EventLoop::new()?;
//! let ctrl_c = lp.signal(SIGINT, |core, me, _signum| {
//!     println!("interrupted, shutting down");
//!     core.close(me).ok();
//!     core.stop();
//! })?;
//! lp.run()?;
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! # How it works: the self-pipe
//!
//! A signal handler may interrupt any code on any thread, so it may only do async-signal-safe
//! things: certainly not run user code or touch the loop. Ours writes the signal number as one
//! byte into a non-blocking pipe owned by each loop that watches signals, and returns. The
//! pipe's read end is registered with the poller like a socket; in the poll phase the loop reads
//! the bytes and runs the callbacks of the handles watching each signal. (Linux's `signalfd`
//! would avoid the pipe, but it needs the signal blocked in every thread of the process,
//! including threads the loop does not own, or the default action still kills the process.)
//!
//! # The contract (libuv's `uv_signal_t`)
//!
//! - Several handles, in one loop or several, may watch the same signal; each gets a callback.
//!   Within a loop they run in the order they were started.
//! - The first handle to watch a signal installs the handler; when the last one stops, the
//!   previous disposition is restored.
//! - Signals are coalesced by the kernel: two deliveries close together may produce one
//!   callback.
//! - `SIGKILL` and `SIGSTOP` cannot be watched, and neither can numbers outside `1..=64`.

use std::mem;
use std::panic::Location;

use crate::dispatch::{self, Callback};
use crate::event_loop::Core;
use crate::handle::{Handle, HandleId, Signal, State};
use crate::io::SIGNALS;
use crate::sys::signal::{self as sys, SignalPipe};
use crate::{Error, Result};

pub use crate::sys::signal::kill;

/// Hangup (`SIGHUP`): often "reload your configuration".
pub const SIGHUP: i32 = libc::SIGHUP;
/// Interrupt (`SIGINT`): Ctrl-C.
pub const SIGINT: i32 = libc::SIGINT;
/// Quit (`SIGQUIT`): Ctrl-\.
pub const SIGQUIT: i32 = libc::SIGQUIT;
/// User-defined signal 1 (`SIGUSR1`).
pub const SIGUSR1: i32 = libc::SIGUSR1;
/// User-defined signal 2 (`SIGUSR2`).
pub const SIGUSR2: i32 = libc::SIGUSR2;
/// Broken pipe (`SIGPIPE`).
pub const SIGPIPE: i32 = libc::SIGPIPE;
/// Alarm clock (`SIGALRM`).
pub const SIGALRM: i32 = libc::SIGALRM;
/// Termination request (`SIGTERM`): what `kill` and service managers send.
pub const SIGTERM: i32 = libc::SIGTERM;
/// A child process stopped or exited (`SIGCHLD`).
pub const SIGCHLD: i32 = libc::SIGCHLD;
/// Terminal window size changed (`SIGWINCH`).
pub const SIGWINCH: i32 = libc::SIGWINCH;

/// The loop's side of signal delivery.
pub(crate) struct Signals {
    /// Created when the first signal handle starts.
    pipe: Option<SignalPipe>,
    /// Started signal handles and their signal, in start order.
    watching: Vec<(i32, HandleId)>,
    /// Reused buffers for one delivery.
    received: Vec<i32>,
    batch: Vec<HandleId>,
}

impl Signals {
    pub(crate) fn new() -> Self {
        Signals { pipe: None, watching: Vec::new(), received: Vec::new(), batch: Vec::new() }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for &(signum, _) in &self.watching {
            sys::unwatch(signum);
        }
    }
}

impl Core {
    /// Creates a handle that runs `callback` on the loop thread each time `signum` arrives, and
    /// starts it. The callback gets the handle's id and the signal number.
    ///
    /// Errors: an invalid signal number, `SIGKILL` or `SIGSTOP` (`InvalidInput`), or no pipe
    /// could be made.
    #[track_caller]
    pub fn signal(
        &mut self,
        signum: i32,
        callback: impl FnMut(&mut Core, Signal, i32) + 'static,
    ) -> Result<Signal> {
        sys::check_signum(signum)?;
        let callback = Callback::Signal(Box::new(callback));
        let id = self.add_handle(Handle::new(State::Signal(signum), callback, Location::caller()));
        if let Err(err) = self.signal_start(Signal(id)) {
            // Never started, so nothing else refers to it: free it now.
            self.handles.remove(id);
            return Err(err);
        }
        Ok(Signal(id))
    }

    /// Starts watching again after [`Core::signal_stop`]. Starting a started handle does
    /// nothing.
    pub fn signal_start(&mut self, signal: Signal) -> Result<()> {
        let id = signal.0;
        let handle = self.open_handle_mut(id)?;
        let State::Signal(signum) = handle.state else { return Err(Error::Closed(id)) };
        if handle.active {
            return Ok(());
        }
        self.open_signal_pipe()?;
        sys::watch(signum)?;
        self.signals.watching.push((signum, id));
        self.set_active(id, true);
        Ok(())
    }

    /// Stops watching; the handle can be started again. Stopping a stopped handle does
    /// nothing.
    pub fn signal_stop(&mut self, signal: Signal) -> Result<()> {
        let id = signal.0;
        let handle = self.open_handle_mut(id)?;
        let State::Signal(signum) = handle.state else { return Err(Error::Closed(id)) };
        if handle.active {
            self.signals.watching.retain(|&(_, watcher)| watcher != id);
            sys::unwatch(signum);
            self.set_active(id, false);
        }
        Ok(())
    }

    /// Creates this loop's self-pipe and registers it with the poller, once.
    pub(crate) fn open_signal_pipe(&mut self) -> Result<()> {
        if self.signals.pipe.is_none() {
            let pipe = SignalPipe::new()?;
            let mut source = mio::unix::SourceFd(&pipe.read_fd());
            self.poll.registry().register(&mut source, SIGNALS, mio::Interest::READABLE)?;
            self.signals.pipe = Some(pipe);
        }
        Ok(())
    }

    /// The self-pipe is readable: run the callbacks for every signal that arrived.
    pub(crate) fn deliver_signals(&mut self) {
        let Some(pipe) = self.signals.pipe.as_mut() else { return };
        let mut received = mem::take(&mut self.signals.received);
        // Reads until WouldBlock, as edge-triggered readiness requires. The pipe holds at most
        // one page of bytes, so this is bounded.
        pipe.read_signals(&mut received);
        if received.contains(&SIGCHLD) {
            // A child of this loop may have exited (see `process`).
            self.reap_children();
        }
        let mut batch = mem::take(&mut self.signals.batch);
        for &signum in &received {
            // Collect, then call: callbacks may start and stop signal handles.
            batch.extend(self.signals.watching.iter().filter(|w| w.0 == signum).map(|w| w.1));
            for &id in &batch {
                if self.is_active(id) {
                    dispatch::run_handle(self, id, dispatch::Event::Fire);
                }
            }
            batch.clear();
        }
        received.clear();
        self.signals.received = received;
        self.signals.batch = batch;
    }
}
