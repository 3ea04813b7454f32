//! The socket under a stream: TCP or Unix-domain, behind one small enum, so that the read and
//! write paths are written once.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;

/// A connected socket of either family. The rest of the stream code does not care which.
pub(crate) enum Socket {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
    /// A connect that failed before a socket existed; the stream is closing with the error.
    Failed,
    /// A connect by name whose addresses are being looked up (see [`dns`](crate::dns)).
    Resolving,
}

fn not_connected() -> io::Error {
    io::Error::from(io::ErrorKind::NotConnected)
}

impl Socket {
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read(buf),
            Socket::Unix(s) => s.read(buf),
            Socket::Failed | Socket::Resolving => Err(not_connected()),
        }
    }

    /// One `write` (one buffer) or `writev` (several).
    pub(crate) fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match (self, bufs) {
            (Socket::Tcp(s), [one]) => s.write(one),
            (Socket::Unix(s), [one]) => s.write(one),
            (Socket::Tcp(s), _) => s.write_vectored(bufs),
            (Socket::Unix(s), _) => s.write_vectored(bufs),
            (Socket::Failed | Socket::Resolving, _) => Err(not_connected()),
        }
    }

    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.shutdown(Shutdown::Write),
            Socket::Unix(s) => s.shutdown(Shutdown::Write),
            Socket::Failed | Socket::Resolving => Err(not_connected()),
        }
    }

    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Socket::Tcp(s) => s.take_error(),
            Socket::Unix(s) => s.take_error(),
            Socket::Failed | Socket::Resolving => Err(not_connected()),
        }
    }

    /// `Ok` once a connect has completed; `NotConnected` while it is in progress.
    pub(crate) fn check_connected(&self) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.peer_addr().map(drop),
            Socket::Unix(s) => s.peer_addr().map(drop),
            Socket::Failed | Socket::Resolving => Err(not_connected()),
        }
    }

    pub(crate) fn tcp(&self) -> io::Result<&mio::net::TcpStream> {
        match self {
            Socket::Tcp(s) => Ok(s),
            _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "not a TCP stream")),
        }
    }

    pub(crate) fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        match self {
            Socket::Tcp(s) => Some(s),
            Socket::Unix(s) => Some(s),
            Socket::Failed | Socket::Resolving => None,
        }
    }
}
