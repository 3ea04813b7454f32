//! Names: looking up a host's addresses, and connecting to a host by name.
//!
//! ```no_run
//! use reactor::{Conn, EventLoop, StreamHandler};
//!
//! struct Hello;
//!
//! impl StreamHandler for Hello {
//!     fn on_open(&mut self, conn: &mut Conn<'_>) {
//!         conn.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
//!     }
//!     fn on_data(&mut self, _conn: &mut Conn<'_>, data: &[u8]) {
//!         print!("{}", String::from_utf8_lossy(data));
//!     }
//! }
//!
//! let mut lp = EventLoop::new()?;
//! lp.resolve("localhost", 8080, |_core, addrs| println!("localhost is {addrs:?}"))?;
//! lp.connect_host("localhost", 8080, Hello)?;
//! lp.run()?;
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! # Why the pool
//!
//! `getaddrinfo(3)`, the resolver every program on the machine agrees with (`/etc/hosts`,
//! `nsswitch.conf`, DNS), only comes as a blocking call: it may wait seconds for a name
//! server. So, like libuv's `uv_getaddrinfo`, [`Core::resolve`] runs it on the
//! [thread pool](crate::pool) (through std's `ToSocketAddrs`), and its callback runs on the
//! loop thread. A lookup keeps the loop alive until its callback has run.
//!
//! # Connecting by name
//!
//! [`Core::connect_host`] returns its [`Stream`] at once, resolves the name on the pool, then
//! tries the addresses in the order the resolver gave them, moving on when one refuses or is
//! unreachable ([`Core::connect_any`]). `on_open` runs once one accepts; an unknown host, or a
//! host none of whose addresses accepts, ends the stream with the error in `on_close`. Writes
//! made meanwhile are queued, and a `close` meanwhile stops the attempt.
//!
//! What it does not do (yet): it tries one address at a time, without Happy Eyeballs'
//! parallel attempts (RFC 8305), and has no connect timeout of its own, so an address that
//! drops packets holds the attempt until the kernel gives up (about two minutes on Linux).
//! Arm a timer and `close` the stream to bound it.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::Location;

use crate::event_loop::Core;
use crate::handle::Stream;
use crate::pool::Work;
use crate::stream::StreamHandler;
use crate::{Result, WorkError};

/// Refuses host names that the resolver would refuse anyway, before a pool thread is used.
fn check_host(host: &str) -> io::Result<()> {
    if host.is_empty() || host.contains('\0') {
        let message = format!("invalid host name {host:?}");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
    }
    Ok(())
}

/// The pool's failure as an I/O error (a lookup is not cancelled by anyone but its owner).
fn lookup_error(err: WorkError) -> io::Error {
    match err {
        WorkError::Cancelled => io::Error::new(io::ErrorKind::Interrupted, "lookup cancelled"),
        WorkError::Panicked(message) => io::Error::other(message),
    }
}

/// Looks up `host` with `getaddrinfo`. Blocks: runs on a pool thread.
fn lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    if addrs.is_empty() {
        let message = format!("{host} has no addresses");
        return Err(io::Error::new(io::ErrorKind::NotFound, message));
    }
    Ok(addrs)
}

/// Looking up names and connecting by name.
impl Core {
    /// Looks up the addresses of `host` (a name or an IP literal) on the thread pool, and calls
    /// `done` on the loop thread with them, each with `port`, in the resolver's order. An
    /// unknown host is an error in `done`. The returned [`Work`] can be cancelled while it is
    /// still queued ([`Core::cancel_work`]); `done` then gets an `Interrupted` error.
    ///
    /// Errors: `InvalidInput` for an empty host name or one containing NUL (`done` is then
    /// never called).
    #[track_caller]
    pub fn resolve(
        &mut self,
        host: &str,
        port: u16,
        done: impl FnOnce(&mut Core, io::Result<Vec<SocketAddr>>) + 'static,
    ) -> Result<Work> {
        check_host(host)?;
        let host = host.to_owned();
        self.queue_work(
            move || lookup(&host, port),
            move |core, result| done(core, result.unwrap_or_else(|err| Err(lookup_error(err)))),
        )
    }

    /// Connects to `host` (a name or an IP literal) on `port`: resolves it on the pool, then
    /// connects to its addresses in turn (see the [module docs](self)). The stream is returned
    /// at once; `on_open` follows a successful connect, and `on_close` gets the error if the
    /// host is unknown or no address accepts.
    ///
    /// Errors: `InvalidInput` for an empty host name or one containing NUL.
    #[track_caller]
    pub fn connect_host(
        &mut self,
        host: &str,
        port: u16,
        handler: impl StreamHandler,
    ) -> Result<Stream> {
        check_host(host)?;
        let site = Location::caller();
        let stream = self.stream_awaiting_addresses(Box::new(handler), site)?;
        let host = host.to_owned();
        let queued = self.queue_work(
            move || lookup(&host, port),
            move |core, result| {
                let addrs = result.unwrap_or_else(|err| Err(lookup_error(err)));
                core.addresses_found(stream, addrs);
            },
        );
        if let Err(err) = queued {
            // The stream exists: its handler hears of the failure, as of any failed connect.
            self.addresses_found(stream, Err(err.into()));
        }
        Ok(stream)
    }
}
