//! The crate's error type.
//!
//! Errors come in three tiers (libuv's `errors.rst` says the same):
//!
//! 1. `WouldBlock` and `Interrupted` are not errors at all. The loop retries or waits for the next
//!    readiness edge; they never reach user code.
//! 2. Per-handle errors are returned by the call that caused them, as [`Error`]. A call that
//!    returns an error never invokes its callback.
//! 3. Loop-fatal errors (the poller itself failing) come back from [`EventLoop::run`] as
//!    [`Error::Io`].
//!
//! [`EventLoop::run`]: crate::EventLoop::run

use std::fmt;
use std::io;

use crate::HandleId;

/// What can go wrong in a call on the loop or on one of its handles.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The handle has been closed: `close()` was called on it, or it has been freed and the id is
    /// stale. A stale id never reaches another handle that reused its slot.
    Closed(HandleId),
    /// The handle's queue is full: the data was not accepted. (A UDP socket's send queue is
    /// bounded; see [`udp`](crate::udp).)
    QueueFull(HandleId),
    /// An operating-system call failed.
    Io(io::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed(id) => write!(f, "handle {id} is closed"),
            Error::QueueFull(id) => write!(f, "the send queue of handle {id} is full"),
            Error::Io(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Closed(_) | Error::QueueFull(_) => None,
            Error::Io(err) => Some(err),
        }
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        Error::Io(err)
    }
}

/// Lets `main() -> io::Result<()>` use `?` on the loop's calls.
impl From<Error> for io::Error {
    fn from(err: Error) -> Self {
        match err {
            Error::Io(err) => err,
            closed @ Error::Closed(_) => {
                io::Error::new(io::ErrorKind::NotFound, closed.to_string())
            }
            full @ Error::QueueFull(_) => {
                io::Error::new(io::ErrorKind::WouldBlock, full.to_string())
            }
        }
    }
}

/// `true` for the errors that only mean "try again later" (tier 1 above).
pub(crate) fn is_transient(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted)
}
