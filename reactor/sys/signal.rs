//! Signal plumbing: the handler, the self-pipes it writes to, and the process-wide table of
//! which signals are watched.
//!
//! Signal dispositions belong to the process, not to a loop, so two pieces of state are global:
//!
//! - [`PIPES`]: the write end of the self-pipe of every loop that watches signals. The handler
//!   writes the signal number into each of them. Only atomics are touched in the handler.
//! - [`TABLE`]: per signal, how many handles (in all loops) watch it, and the disposition that
//!   was in place before the first one, restored when the last one stops. Only touched from
//!   loop threads, under a mutex.
//!
//! The special problem of closing a pipe: a handler running on another thread may have loaded
//! a pipe's fd just before the loop closes it, and would then write into whatever file reuses
//! that number. So a pipe is first unpublished, then closed only once no handler is running
//! ([`RUNNING`]). Handlers are a few instructions long, so the wait is short.

use std::fs::File;
use std::io::{self, Read};
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, PoisonError};

/// One more than the highest signal number on Linux (`NSIG`).
const NSIG: usize = 65;
/// How many loops may watch signals at once. A process rarely has more than one loop.
const MAX_PIPES: usize = 64;

/// Write ends of the loops' self-pipes; -1 marks a free entry.
static PIPES: [AtomicI32; MAX_PIPES] = [const { AtomicI32::new(-1) }; MAX_PIPES];
/// How many invocations of the handler are running right now, on any thread.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

struct Table {
    watchers: [usize; NSIG],
    previous: [Option<libc::sigaction>; NSIG],
}

static TABLE: Mutex<Table> =
    Mutex::new(Table { watchers: [0; NSIG], previous: [const { None }; NSIG] });

fn table() -> std::sync::MutexGuard<'static, Table> {
    // The table is updated only after the system calls succeed, so it is sound even if a
    // panic poisoned the lock.
    TABLE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The signal handler: async-signal-safe, it only loads atomics and calls `write(2)`.
extern "C" fn on_signal(signum: libc::c_int) {
    RUNNING.fetch_add(1, SeqCst);
    // SAFETY: `__errno_location` returns a valid pointer to this thread's errno. `write` may
    // change errno, and the interrupted code must not see that.
    let saved_errno = unsafe { *libc::__errno_location() };
    // `check_signum` keeps watched numbers below 65, so they fit in a byte.
    let byte = signum as u8;
    for pipe in &PIPES {
        let fd = pipe.load(SeqCst);
        if fd >= 0 {
            // SAFETY: `fd` is the open write end of a self-pipe: a pipe is unpublished and then
            // closed only after `RUNNING` drops to zero, and we incremented it before loading.
            // The buffer is one valid byte. A full pipe fails with EAGAIN, which is fine:
            // signals coalesce anyway.
            unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
    RUNNING.fetch_sub(1, SeqCst);
}

/// `InvalidInput` unless `signum` can be watched.
pub(crate) fn check_signum(signum: i32) -> io::Result<()> {
    let in_range = usize::try_from(signum).is_ok_and(|n| (1..NSIG).contains(&n));
    if !in_range || signum == libc::SIGKILL || signum == libc::SIGSTOP {
        let message = format!("signal {signum} cannot be watched");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
    }
    Ok(())
}

/// Counts one more watcher of `signum`, installing the handler for the first.
pub(crate) fn watch(signum: i32) -> io::Result<()> {
    check_signum(signum)?;
    let mut table = table();
    let n = signum as usize;
    if table.watchers[n] == 0 {
        table.previous[n] = Some(install(signum)?);
    }
    table.watchers[n] += 1;
    Ok(())
}

/// Counts one watcher of `signum` less, restoring the previous disposition after the last.
pub(crate) fn unwatch(signum: i32) {
    let mut table = table();
    let n = signum as usize;
    if table.watchers.get(n).is_none_or(|&count| count == 0) {
        return;
    }
    table.watchers[n] -= 1;
    if table.watchers[n] == 0 {
        if let Some(previous) = table.previous[n].take() {
            // SAFETY: `previous` is the action `sigaction` gave us for this signal; the old
            // action out-pointer may be null.
            unsafe { libc::sigaction(signum, &previous, std::ptr::null_mut()) };
        }
    }
}

/// Installs `on_signal` for `signum`; returns the action it replaces.
fn install(signum: i32) -> io::Result<libc::sigaction> {
    // SAFETY: `sigaction` is plain old data; all-zero is a valid value (SIG_DFL, no flags, no
    // restorer), and the fields that matter are set below.
    let mut action: libc::sigaction = unsafe { mem::zeroed() };
    action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // Restart interrupted system calls on other threads; block all signals while the handler
    // runs so that it never interrupts itself.
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa_mask` is a valid, writable `sigset_t`.
    unsafe { libc::sigfillset(&mut action.sa_mask) };
    // SAFETY: as above.
    let mut previous: libc::sigaction = unsafe { mem::zeroed() };
    // SAFETY: both pointers are valid; `on_signal` is async-signal-safe and has the
    // one-argument signature that a handler without SA_SIGINFO must have.
    if unsafe { libc::sigaction(signum, &action, &mut previous) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(previous)
}

/// One loop's self-pipe.
pub(crate) struct SignalPipe {
    read: File,
    /// Kept open while published in `PIPES`.
    _write: OwnedFd,
    /// Our entry in `PIPES`.
    slot: usize,
}

impl SignalPipe {
    /// Makes a non-blocking pipe and publishes its write end to the handler.
    pub(crate) fn new() -> io::Result<SignalPipe> {
        let mut fds: [RawFd; 2] = [-1; 2];
        // SAFETY: `fds` has room for the two descriptors `pipe2` writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `pipe2` succeeded, so both are fresh descriptors that nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for (slot, entry) in PIPES.iter().enumerate() {
            if entry.compare_exchange(-1, write.as_raw_fd(), SeqCst, SeqCst).is_ok() {
                return Ok(SignalPipe { read: File::from(read), _write: write, slot });
            }
        }
        Err(io::Error::other("too many event loops watching signals at once"))
    }

    /// The end to register with the poller.
    pub(crate) fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Reads every signal number waiting in the pipe, until it is empty.
    pub(crate) fn read_signals(&mut self, out: &mut Vec<i32>) {
        let mut buf = [0u8; 128];
        loop {
            match self.read.read(&mut buf) {
                Ok(0) => return, // cannot happen while we hold the write end
                Ok(n) => out.extend(buf[..n].iter().map(|&byte| i32::from(byte))),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return, // WouldBlock: drained
            }
        }
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        PIPES[self.slot].store(-1, SeqCst);
        // A handler that loaded our fd before the store is still counted in RUNNING.
        while RUNNING.load(SeqCst) != 0 {
            std::thread::yield_now();
        }
        // Now the fields drop and both ends close.
    }
}

/// Sends signal `signum` to process `pid` (libuv's `uv_kill`). As with `kill(2)`, a `pid` of 0
/// means this process group. `kill(std::process::id(), SIGUSR1)` raises a signal in this
/// process.
pub fn kill(pid: u32, signum: i32) -> io::Result<()> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `kill` takes two integers and has no memory-safety preconditions.
    if unsafe { libc::kill(pid, signum) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
