//! Child processes: spawn a command, talk to it through streams, learn how it ended.
//!
//! ```no_run
//! use std::process::Command;
//! use reactor::process::SpawnOptions;
//! use reactor::{Conn, EventLoop, StreamHandler};
//!
//! /// Prints what the child writes, as it comes.
//! struct Print;
//!
//! impl StreamHandler for Print {
//!     fn on_data(&mut self, _conn: &mut Conn<'_>, data: &[u8]) {
//!         print!("{}", String::from_utf8_lossy(data));
//!     }
//! }
//!
//! let mut lp = EventLoop::new()?;
//! let mut ls = Command::new("ls");
//! ls.arg("-l");
//! let child = lp.spawn(&mut ls, SpawnOptions::new().stdout(Print), |_core, _process, status| {
//!     println!("ls ended: {:?}", status.map(|status| status.code()));
//! })?;
//! println!("started ls as pid {}", child.pid);
//! lp.run()?; // until ls has exited and its output is read
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! # The contract (libuv's `uv_spawn`, Node's `child_process.spawn`)
//!
//! - [`Core::spawn`] starts the command at once and returns a [`Child`]: its [`Process`]
//!   handle, its pid and a [`Stream`] for each standard stream that [`SpawnOptions`] asked to
//!   pipe. Arguments, environment, working directory and the standard streams that are not
//!   piped (inherited unless the `Command` says otherwise) are configured on the
//!   `std::process::Command`. The streams that were piped are left set to null on it.
//! - A command that cannot be started (no such file, not executable) makes `spawn` return the
//!   error, and nothing else happens: `on_exit` is never called.
//! - The piped streams are ordinary streams: `on_data`, `write` with backpressure,
//!   `shutdown` (the child reads an end of file), `close`. Each is a Unix socket pair, as in
//!   libuv; the child sees a socket where it would see a pipe, which every program that reads
//!   or writes its standard streams accepts. A stream opens like an outgoing connection: its
//!   `on_open` runs in the next poll phase.
//! - When the child ends, `on_exit` runs once on the loop thread with its `ExitStatus`: the
//!   exit code (`status.code()`), or the signal that killed it
//!   (`std::os::unix::process::ExitStatusExt::signal`). Output may still be arriving on its
//!   streams: their `on_close` marks the end of each. After `on_exit` the process handle
//!   closes by itself.
//! - [`Core::process_kill`] sends a signal. It is safe until the exit is reported, because
//!   the pid cannot be reused before the loop has collected the child's status.
//! - A running child keeps the loop alive, like any active handle ([`Core::unref`] lets it
//!   run without doing so).
//!
//! # No zombies
//!
//! A child that exits stays a *zombie* until its parent collects its status. The loop watches
//! `SIGCHLD` (through the same self-pipe as [`signal`](crate::signal) handles) and, when it
//! comes, asks each of its own children with a non-blocking `waitpid(pid, WNOHANG)`. It never
//! uses `waitpid(-1)`, which would steal the children of other code in the process. A child
//! whose handle is closed before it exits is still collected, on a later `SIGCHLD`. When the
//! loop is dropped, its children that are still running are handed to a thread each, which
//! waits for them; [`SpawnOptions::kill_on_drop`] kills them first.
//!
//! `spawn` itself does block the loop for as long as `fork` and `exec` take (libuv's does
//! too): under a millisecond for a small process, which is why it is not on the pool.
//! A process whose `SIGCHLD` is set to be ignored (`SIG_IGN`) has its children reaped by the
//! kernel; `on_exit` then gets the `ECHILD` error instead of a status.

use std::io;
use std::os::fd::OwnedFd;
use std::panic::Location;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;

use crate::dispatch::{self, Callback, Event};
use crate::event_loop::Core;
use crate::handle::{Handle, HandleId, Process, State, Stream};
use crate::stream::{Socket, StreamHandler};
use crate::sys::signal as sys;
use crate::{Error, Result};

/// What [`Core::spawn`] needs besides the command: which standard streams to pipe to the loop,
/// each with its handler, and whether the child dies with the loop.
#[derive(Default)]
pub struct SpawnOptions {
    stdin: Option<Box<dyn StreamHandler>>,
    stdout: Option<Box<dyn StreamHandler>>,
    stderr: Option<Box<dyn StreamHandler>>,
    kill_on_drop: bool,
}

impl SpawnOptions {
    /// Nothing piped; the child's standard streams are what the `Command` says (by default,
    /// the parent's).
    pub fn new() -> Self {
        SpawnOptions::default()
    }

    /// Pipes the child's standard input: the returned [`Child::stdin`] stream is written to
    /// (and shut down to give the child an end of file). `handler` gets the stream's events;
    /// [`Input`] is enough when only writing.
    pub fn stdin(mut self, handler: impl StreamHandler) -> Self {
        self.stdin = Some(Box::new(handler));
        self
    }

    /// Pipes the child's standard output to `handler`.
    pub fn stdout(mut self, handler: impl StreamHandler) -> Self {
        self.stdout = Some(Box::new(handler));
        self
    }

    /// Pipes the child's standard error to `handler`.
    pub fn stderr(mut self, handler: impl StreamHandler) -> Self {
        self.stderr = Some(Box::new(handler));
        self
    }

    /// Kills the child (`SIGKILL`) if its handle is closed, or the loop dropped, while it
    /// still runs (tokio's `kill_on_drop`). Off by default: the child then runs on, and is
    /// still reaped.
    pub fn kill_on_drop(mut self, kill: bool) -> Self {
        self.kill_on_drop = kill;
        self
    }
}

/// A stream handler for a child's standard input when only writing to it: it ignores input
/// (a child does not write to its stdin) and leaves the end of the stream to the defaults.
#[derive(Debug, Default, Clone, Copy)]
pub struct Input;

impl StreamHandler for Input {
    fn on_data(&mut self, _conn: &mut crate::Conn<'_>, _data: &[u8]) {}
}

/// A spawned child, as [`Core::spawn`] returns it.
#[derive(Debug, Clone, Copy)]
pub struct Child {
    /// The process handle: for [`Core::process_kill`], [`Core::unref`], [`Core::close`].
    pub process: Process,
    /// The child's process id.
    pub pid: u32,
    /// The child's standard input, if [`SpawnOptions::stdin`] piped it.
    pub stdin: Option<Stream>,
    /// The child's standard output, if [`SpawnOptions::stdout`] piped it.
    pub stdout: Option<Stream>,
    /// The child's standard error, if [`SpawnOptions::stderr`] piped it.
    pub stderr: Option<Stream>,
}

/// A process handle's callback: the exit status, or why it could not be collected.
pub(crate) type ExitFn = Box<dyn FnOnce(&mut Core, Process, io::Result<ExitStatus>)>;

/// What the loop keeps for a process handle.
pub(crate) struct ProcessState {
    /// `None` once the exit is collected, or the handle closed.
    child: Option<std::process::Child>,
    kill_on_drop: bool,
}

impl Drop for ProcessState {
    /// The loop is being dropped with the child still running (a closed handle gave its child
    /// to the orphans first).
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            reap_in_background(child, self.kill_on_drop);
        }
    }
}

/// The loop's children.
#[derive(Default)]
pub(crate) struct Processes {
    /// Process handles whose exit has not been collected, in spawn order.
    running: Vec<HandleId>,
    /// Children whose handle was closed before they exited: collected all the same.
    orphans: Vec<std::process::Child>,
    /// This loop counts as a watcher of `SIGCHLD`.
    watching: bool,
}

impl Processes {
    pub(crate) fn new() -> Self {
        Processes::default()
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in self.orphans.drain(..) {
            reap_in_background(child, false);
        }
        if self.watching {
            sys::unwatch(libc::SIGCHLD);
        }
    }
}

/// Makes sure `child` does not stay a zombie once nobody is left to collect it: collected now
/// if it has exited, else by a thread that waits for it.
fn reap_in_background(mut child: std::process::Child, kill: bool) {
    if kill {
        let _ = child.kill();
    }
    if !matches!(child.try_wait(), Ok(None)) {
        return; // collected now (or not ours to collect)
    }
    let waiter = thread::Builder::new().name("reactor-reaper".into());
    // A thread that cannot be started leaves a zombie until this process exits; there is no
    // other way to wait without blocking the caller.
    let _ = waiter.spawn(move || child.wait());
}

/// Sets standard stream `index` (0 stdin, 1 stdout, 2 stderr) of `command`.
fn set_stdio(command: &mut Command, index: usize, stdio: Stdio) {
    match index {
        0 => command.stdin(stdio),
        1 => command.stdout(stdio),
        _ => command.stderr(stdio),
    };
}

/// One end of a socket pair for the loop, the other as a standard stream of the child.
fn stdio_pair() -> io::Result<(Socket, Stdio)> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    Ok((Socket::Unix(mio::net::UnixStream::from_std(ours)), Stdio::from(OwnedFd::from(theirs))))
}

/// Child processes: spawning, signalling, collecting.
impl Core {
    /// Starts `command` as a child process. See the [module docs](self) for the contract.
    ///
    /// Errors: the command cannot be started (`NotFound`, `PermissionDenied`, ...), or the
    /// socket pairs for its streams cannot be made. `on_exit` is then never called.
    #[track_caller]
    pub fn spawn(
        &mut self,
        command: &mut Command,
        options: SpawnOptions,
        on_exit: impl FnOnce(&mut Core, Process, io::Result<ExitStatus>) + 'static,
    ) -> Result<Child> {
        let site = Location::caller();
        let SpawnOptions { stdin, stdout, stderr, kill_on_drop } = options;
        let mut piped = [(stdin, None), (stdout, None), (stderr, None)];
        for (handler, socket) in &mut piped {
            if handler.is_some() {
                let (ours, theirs) = stdio_pair()?;
                *socket = Some((ours, theirs));
            }
        }
        // Hand the child its ends.
        for (index, (_, socket)) in piped.iter_mut().enumerate() {
            if let Some((_, theirs)) = socket.as_mut() {
                set_stdio(command, index, std::mem::replace(theirs, Stdio::null()));
            }
        }
        // Watch SIGCHLD before the child exists, so that its exit cannot be missed.
        let spawned = self.watch_children().and_then(|()| Ok(command.spawn()?));
        // The `Command` holds our copies of the child's ends: they must close, or the child's
        // output would never reach an end of file (and a failed spawn would leak them).
        for (index, (_, socket)) in piped.iter().enumerate() {
            if socket.is_some() {
                set_stdio(command, index, Stdio::null());
            }
        }
        let child = spawned?;
        let pid = child.id();

        let state = State::Process(ProcessState { child: Some(child), kill_on_drop });
        let callback = Callback::Process(Some(Box::new(on_exit)));
        let id = self.add_handle(Handle::new(state, callback, site));
        self.set_active(id, true);
        self.processes.running.push(id);

        let mut streams = [None; 3];
        for ((handler, socket), stream) in piped.into_iter().zip(&mut streams) {
            let (Some(handler), Some((ours, _))) = (handler, socket) else { continue };
            // Registered as if connecting: `on_open` runs on the first readiness event.
            // If registering fails (epoll_ctl out of memory), the child runs on with that
            // stream closed, as if it had been closed at once: rare enough not to undo the
            // spawn for.
            if let Ok(id) = self.insert_stream(ours, true, Callback::Stream(handler), site) {
                *stream = Some(Stream(id));
            }
        }
        let [stdin, stdout, stderr] = streams;
        Ok(Child { process: Process(id), pid, stdin, stdout, stderr })
    }

    /// Sends `signum` to the child (libuv's `uv_process_kill`). Signal 0 only checks that it
    /// can be sent. Fails with [`Error::Closed`] once the exit has been reported, and with
    /// `InvalidInput` for a bad signal number.
    pub fn process_kill(&mut self, process: Process, signum: i32) -> Result<()> {
        let pid = self.process_pid(process)?;
        sys::kill(pid, signum)?;
        Ok(())
    }

    /// The child's process id, until its exit has been reported.
    pub fn process_pid(&self, process: Process) -> Result<u32> {
        match self.handles.get(process.0).map(|handle| (&handle.state, handle.closing)) {
            Some((State::Process(ProcessState { child: Some(child), .. }), false)) => {
                Ok(child.id())
            }
            _ => Err(Error::Closed(process.0)),
        }
    }

    /// Counts this loop as a watcher of `SIGCHLD`, once.
    fn watch_children(&mut self) -> Result<()> {
        if !self.processes.watching {
            self.open_signal_pipe()?;
            sys::watch(libc::SIGCHLD)?;
            self.processes.watching = true;
        }
        Ok(())
    }

    /// `close` on a process handle: the child is no longer reported, but still collected.
    pub(crate) fn process_stop(&mut self, id: HandleId) {
        let Some(Handle { state: State::Process(state), .. }) = self.handles.get_mut(id) else {
            return;
        };
        if let Some(mut child) = state.child.take() {
            if state.kill_on_drop {
                let _ = child.kill();
            }
            self.processes.orphans.push(child);
        }
        self.processes.running.retain(|&running| running != id);
    }

    /// `SIGCHLD` arrived: collect every child of this loop that has exited and report each.
    /// Signals coalesce, so every child is asked, not one per signal.
    pub(crate) fn reap_children(&mut self) {
        self.processes.orphans.retain_mut(|child| matches!(child.try_wait(), Ok(None)));
        // Collect, then call: `on_exit` may spawn or close processes.
        let mut exited = Vec::new();
        self.processes.running.retain(|&id| {
            let Some(Handle { state: State::Process(state), .. }) = self.handles.get_mut(id) else {
                return false;
            };
            let Some(child) = state.child.as_mut() else { return false };
            let status = match child.try_wait() {
                Ok(None) => return true,
                Ok(Some(status)) => Ok(status),
                Err(err) => Err(err),
            };
            state.child = None;
            exited.push((id, status));
            false
        });
        for (id, status) in exited {
            self.set_active(id, false);
            dispatch::run_handle(self, id, Event::Exit(status));
            // The handle has said all it can; `on_exit` may have closed it already.
            let _ = self.close(id);
        }
    }
}
