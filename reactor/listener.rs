//! Listeners: accepting TCP and Unix-domain connections.
//!
//! ```
//! use reactor::{Conn, EventLoop, StreamHandler};
//!
//! struct Hello;
//!
//! impl StreamHandler for Hello {
//!     fn on_open(&mut self, conn: &mut Conn<'_>) {
//!         conn.write(b"hello\n");
//!         conn.close(); // graceful: "hello" is delivered first
//!     }
//!     fn on_data(&mut self, _: &mut Conn<'_>, _: &[u8]) {}
//! }
//!
//! let mut lp = EventLoop::new()?;
//! // Port 0: the kernel picks a free port, and `local_addr` tells which.
//! let listener = lp.listen_tcp("127.0.0.1:0".parse().unwrap(), |_stream| Hello)?;
//! println!("listening on {}", lp.local_addr(listener)?);
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! A listener is created with a *factory*: a closure called once per accepted connection with
//! the new stream's id, returning that stream's [`StreamHandler`]. The handler's `on_open` runs
//! right after.
//!
//! # Accepting
//!
//! Readiness is edge-triggered, so one event may stand for many waiting connections: the
//! listener accepts until `WouldBlock`, but at most [`ACCEPT_BUDGET`] per iteration; the rest
//! are taken in the next iteration's pending phase, after established connections had their
//! turn. A connection storm cannot starve them.
//!
//! # The special problem of running out of file descriptors
//!
//! When the process is out of descriptors, `accept` fails with `EMFILE` and the connection stays
//! in the kernel's backlog. A level-triggered loop would see the listener readable again at
//! once and spin at full CPU (the classic libuv and Node bug); an edge-triggered one would never
//! hear of those connections again. `reactor` does what libev's manual and libuv recommend: each
//! loop keeps one spare descriptor (on `/dev/null`). On `EMFILE` it closes the spare, accepts
//! each waiting connection and closes it at once (the client sees a clean close instead of a
//! hang), and reopens the spare. Established connections keep working, nothing spins, and
//! accepting resumes by itself as soon as descriptors are free. If the backlog cannot be drained
//! that way (no spare, another error), the listener retries after [`ACCEPT_RETRY_DELAY`].

use std::fs::{self, File};
use std::io;
use std::net::SocketAddr;
use std::panic::Location;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::dispatch::{self, Callback, Event, StreamEvent};
use crate::event_loop::Core;
use crate::handle::{Handle, HandleId, Listener, State, Stream};
use crate::stream::{Socket, StreamHandler};
use crate::trace::{Act, CallbackName, Event as TraceEvent, Kind};
use crate::{Result, sys};

/// How many connections one listener accepts per iteration before established connections get
/// their turn. Accepting costs a few microseconds each, so 64 bounds the detour to well under a
/// millisecond, while a burst of new clients still drains within a few iterations.
pub const ACCEPT_BUDGET: usize = 64;

/// How long a listener waits before trying again after an `accept` error it could not work
/// around (out of memory, or out of descriptors with no spare to shed connections with).
pub const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// The factory a listener calls for each connection.
pub(crate) type AcceptFn = Box<dyn FnMut(Stream) -> Box<dyn StreamHandler>>;

/// Settings for [`Core::listen_tcp_with`].
///
/// ```
/// let options = reactor::ListenOptions::default().backlog(4096).reuse_port(true);
/// ```
#[derive(Debug, Clone)]
pub struct ListenOptions {
    backlog: i32,
    reuse_port: bool,
    nodelay: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions { backlog: 1024, reuse_port: false, nodelay: true }
    }
}

impl ListenOptions {
    /// How many connections the kernel queues before they are accepted (default 1024; Linux
    /// caps it at `net.core.somaxconn`).
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog.min(i32::MAX as u32) as i32;
        self
    }

    /// Sets `SO_REUSEPORT`, so several loops (threads or processes) can listen on one port and
    /// the kernel spreads connections between them (default off). `SO_REUSEADDR` is always on.
    pub fn reuse_port(mut self, reuse_port: bool) -> Self {
        self.reuse_port = reuse_port;
        self
    }

    /// Whether accepted streams start with Nagle's algorithm off (`TCP_NODELAY`; default on, as
    /// request-response protocols want).
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }
}

/// A listening socket of either family.
enum ListenSocket {
    Tcp(mio::net::TcpListener),
    Unix(mio::net::UnixListener),
}

impl ListenSocket {
    fn accept(&self) -> io::Result<Socket> {
        match self {
            ListenSocket::Tcp(listener) => listener.accept().map(|(s, _)| Socket::Tcp(s)),
            ListenSocket::Unix(listener) => listener.accept().map(|(s, _)| Socket::Unix(s)),
        }
    }
}

/// What the loop keeps for a listener besides its factory.
pub(crate) struct ListenerState {
    socket: ListenSocket,
    nodelay: bool,
    /// A retry timer is armed (see [`ACCEPT_RETRY_DELAY`]).
    retry_armed: bool,
    /// The socket file of a Unix-domain listener, removed when the listener is dropped.
    _path: Option<SocketFile>,
}

impl ListenerState {
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.socket {
            ListenSocket::Tcp(listener) => listener.local_addr(),
            ListenSocket::Unix(_) => {
                Err(io::Error::new(io::ErrorKind::InvalidInput, "not a TCP listener"))
            }
        }
    }
}

/// A Unix-domain listener's path, unlinked on drop so that the next bind does not fail.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// What an `accept` error means for the listener.
enum AcceptError {
    /// This one connection failed (it was reset while waiting, say): go on with the next.
    Connection,
    /// Out of file descriptors: shed the waiting connections.
    NoDescriptors,
    /// Anything else (out of memory...): try again later.
    Other,
}

fn classify(err: &io::Error) -> AcceptError {
    // accept(2): "Linux accept() passes already-pending network errors on the new socket as an
    // error code from accept()... the application should treat them like EAGAIN by retrying".
    const CONNECTION: [i32; 9] = [
        libc::ECONNABORTED,
        libc::EPROTO,
        libc::ENETDOWN,
        libc::ENOPROTOOPT,
        libc::EHOSTDOWN,
        libc::ENONET,
        libc::EHOSTUNREACH,
        libc::EOPNOTSUPP,
        libc::ENETUNREACH,
    ];
    match err.raw_os_error() {
        Some(code) if CONNECTION.contains(&code) => AcceptError::Connection,
        Some(libc::EMFILE | libc::ENFILE) => AcceptError::NoDescriptors,
        _ if err.kind() == io::ErrorKind::Interrupted => AcceptError::Connection,
        _ => AcceptError::Other,
    }
}

impl Core {
    /// Listens on a TCP address with the default [`ListenOptions`]; `factory` makes the
    /// handler of each accepted connection. See the [module docs](self).
    #[track_caller]
    pub fn listen_tcp<H: StreamHandler>(
        &mut self,
        addr: SocketAddr,
        factory: impl FnMut(Stream) -> H + 'static,
    ) -> Result<Listener> {
        self.listen_tcp_with(addr, &ListenOptions::default(), factory)
    }

    /// [`Core::listen_tcp`] with chosen options.
    #[track_caller]
    pub fn listen_tcp_with<H: StreamHandler>(
        &mut self,
        addr: SocketAddr,
        options: &ListenOptions,
        factory: impl FnMut(Stream) -> H + 'static,
    ) -> Result<Listener> {
        let listener = sys::net::tcp_listener(addr, options.backlog, options.reuse_port)?;
        let socket = ListenSocket::Tcp(mio::net::TcpListener::from_std(listener));
        self.listen(socket, options.nodelay, None, boxed(factory), Location::caller())
    }

    /// Listens on a Unix-domain socket at `path`. The socket file is removed when the listener
    /// is closed; an existing file at `path` is an error (`AddrInUse`), as in Node.
    #[track_caller]
    pub fn listen_unix<H: StreamHandler>(
        &mut self,
        path: impl AsRef<Path>,
        factory: impl FnMut(Stream) -> H + 'static,
    ) -> Result<Listener> {
        let path = path.as_ref();
        let socket = ListenSocket::Unix(mio::net::UnixListener::bind(path)?);
        let file = Some(SocketFile(path.to_owned()));
        self.listen(socket, false, file, boxed(factory), Location::caller())
    }

    fn listen(
        &mut self,
        socket: ListenSocket,
        nodelay: bool,
        path: Option<SocketFile>,
        factory: AcceptFn,
        site: &'static Location<'static>,
    ) -> Result<Listener> {
        if self.spare_fd.is_none() {
            self.spare_fd = Some(File::open("/dev/null")?);
        }
        let state = ListenerState { socket, nodelay, retry_armed: false, _path: path };
        let handle = Handle::new(State::Listener(state), Callback::Listener(factory), site);
        let id = self.add_handle(handle);
        let Some(State::Listener(state)) = self.handles.get_mut(id).map(|h| &mut h.state) else {
            unreachable!("just inserted")
        };
        let source: &mut dyn mio::event::Source = match &mut state.socket {
            ListenSocket::Tcp(listener) => listener,
            ListenSocket::Unix(listener) => listener,
        };
        if let Err(err) = self.poll.registry().register(source, id.token(), mio::Interest::READABLE)
        {
            self.handles.remove(id);
            return Err(err.into());
        }
        self.set_active(id, true);
        Ok(Listener(id))
    }

    fn listener_mut(&mut self, id: HandleId) -> Option<&mut ListenerState> {
        match self.handles.get_mut(id) {
            Some(Handle { state: State::Listener(state), closing: false, .. }) => Some(state),
            _ => None,
        }
    }

    /// The accept path: take waiting connections until `WouldBlock` or the budget is spent.
    /// Called for a readiness event, from the pending phase, and by the retry timer.
    pub(crate) fn accept(&mut self, id: HandleId) {
        for _ in 0..ACCEPT_BUDGET {
            let Some(listener) = self.listener_mut(id) else { return };
            let nodelay = listener.nodelay;
            match listener.socket.accept() {
                Ok(socket) => self.adopt(id, socket, nodelay),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) => match classify(&err) {
                    AcceptError::Connection => {}
                    AcceptError::NoDescriptors => {
                        self.metrics.emfile_events += 1;
                        if !self.shed(id) {
                            self.retry_accept_later(id);
                        }
                        return;
                    }
                    AcceptError::Other => {
                        self.retry_accept_later(id);
                        return;
                    }
                },
            }
        }
        // Budget spent: connections may still be waiting, and no new edge will say so.
        self.pending.push_handle(id);
    }

    /// Makes an accepted socket a stream, asks the factory for its handler, and opens it.
    fn adopt(&mut self, listener: HandleId, socket: Socket, nodelay: bool) {
        if let (true, Socket::Tcp(tcp)) = (nodelay, &socket) {
            // Best effort: a socket that refuses it still works.
            let _ = tcp.set_nodelay(true);
        }
        let site = self.handles.get(listener).map_or(Location::caller(), |h| h.site);
        // If registration fails the socket is dropped: the client sees a close.
        let Ok(id) = self.insert_stream(socket, false, Callback::Taken, site) else { return };
        // The stream's callbacks are caused by the accept, which the listener's cause caused.
        let by = CallbackName::handle(Kind::Listener, TraceEvent::Accept, listener);
        let cause = self.trace.handle_cause(listener);
        let accepted = self.trace.record_for(Act::Accepted, site, by, cause);
        self.trace.set_handle_cause(id, accepted);
        dispatch::run_handle(self, listener, Event::Accept(Stream(id)));
        if matches!(self.handles.get(id).map(|h| &h.callback), Some(Callback::Taken)) {
            // The factory panicked (and its listener is closed): no handler, no stream.
            let _ = self.abort(Stream(id));
            return;
        }
        dispatch::run_handle(self, id, Event::Stream(StreamEvent::Open));
    }

    /// Out of descriptors: accept the waiting connections with the spare descriptor's slot and
    /// close them at once. Returns whether the backlog is now empty.
    fn shed(&mut self, id: HandleId) -> bool {
        let Some(spare) = self.spare_fd.take() else { return false };
        drop(spare);
        let mut drained = false;
        for _ in 0..ACCEPT_BUDGET {
            let Some(listener) = self.listener_mut(id) else { break };
            match listener.socket.accept() {
                Ok(socket) => drop(socket),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                Err(err) if matches!(classify(&err), AcceptError::Connection) => {}
                Err(_) => break,
            }
        }
        self.spare_fd = File::open("/dev/null").ok();
        drained && self.spare_fd.is_some()
    }

    /// Tries accepting again after [`ACCEPT_RETRY_DELAY`].
    fn retry_accept_later(&mut self, id: HandleId) {
        let Some(listener) = self.listener_mut(id) else { return };
        if listener.retry_armed {
            return;
        }
        listener.retry_armed = true;
        let timer = self.set_timeout(ACCEPT_RETRY_DELAY, move |core| {
            if let Some(listener) = core.listener_mut(id) {
                listener.retry_armed = false;
                core.accept(id);
            }
        });
        // The listener keeps the loop alive; its retry timer need not.
        let _ = self.unref(timer);
    }
}

fn boxed<H: StreamHandler>(mut factory: impl FnMut(Stream) -> H + 'static) -> AcceptFn {
    Box::new(move |stream| Box::new(factory(stream)))
}
