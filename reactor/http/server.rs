//! The server: configuration, the handler a server calls, and the server handle itself.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::ops::Deref;
use std::rc::{Rc, Weak};
use std::time::Duration;

use super::conn::HttpConn;
use super::parse::Head;
use super::pipeline::State;
use super::response::Response;
use crate::Result;
use crate::event_loop::Core;
use crate::handle::Listener;
use crate::listener::ListenOptions;

/// A server's limits and timeouts. `ServerConfig::default()` has the values below; every
/// limit, when reached, is answered with the status given and a close.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Longest request head (request line and header fields), in bytes: 16 KiB, as Node.
    /// Longer: 431.
    pub max_head: usize,
    /// Most header fields in a head: 100 (at most [`MAX_HEADERS_CAP`](super::parse::MAX_HEADERS_CAP)).
    /// More: 431.
    pub max_headers: usize,
    /// Largest request body, buffered or streamed: 1 MiB. Larger: 413, before the body is
    /// read when `Content-Length` says so.
    pub max_body: u64,
    /// Time from a connection's first byte of a request head (or from its accept) to the end
    /// of the head: 10 s. Past it (slowloris): 408 and close, or only a close if nothing came.
    pub header_timeout: Duration,
    /// Time a kept-alive connection may sit between requests: 5 s, then it is closed.
    pub idle_timeout: Duration,
    /// Time a request body may go without progress: 10 s. Past it: 408 and close.
    pub body_timeout: Duration,
    /// Requests served on one connection before the server closes it (the last response
    /// says `Connection: close`); `None`: no limit.
    pub max_requests: Option<u32>,
    /// Connections served at once; one more is answered with 503 and closed. `None`: no limit
    /// (but the process's descriptor limit).
    pub max_connections: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_head: 16 * 1024,
            max_headers: 100,
            max_body: 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            max_requests: None,
            max_connections: None,
        }
    }
}

/// A request as the handler sees it: the parsed [`Head`] (method, target, headers, …) and,
/// when the body was buffered, the body. Borrowed for the call: copy what must outlive it.
pub struct Request<'a> {
    pub(crate) head: Head<'a>,
    pub(crate) body: &'a [u8],
}

impl<'a> Request<'a> {
    /// The body: complete when the handler is called with a buffered body; empty for a
    /// request without one, and in [`Handler::on_head`] and [`BodySink::on_end`].
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}

impl<'a> Deref for Request<'a> {
    type Target = Head<'a>;

    fn deref(&self) -> &Head<'a> {
        &self.head
    }
}

/// What the server does with a request's body, decided by [`Handler::on_head`].
pub enum Body {
    /// Read it whole (up to [`ServerConfig::max_body`]), then call [`Handler::on_request`].
    Buffer,
    /// Hand it to this sink piece by piece as it arrives.
    Stream(Box<dyn BodySink>),
    /// Do not read it: answer with this status (and close), as for an upload the handler
    /// refuses before it is sent. A client that sent `Expect: 100-continue` gets this
    /// instead of `100 Continue`.
    Reject(u16),
}

/// Takes a streamed request body (see [`Body::Stream`]).
pub trait BodySink: 'static {
    /// The next piece of the body.
    fn on_data(&mut self, core: &mut Core, data: &[u8]);

    /// The body is complete: answer the request.
    fn on_end(self: Box<Self>, core: &mut Core, req: &Request<'_>, res: Response);

    /// The body will not complete: the client went away, stalled past the body timeout, or
    /// broke the framing (it has been answered with the error, and the connection closes).
    fn on_abort(self: Box<Self>, core: &mut Core) {
        let _ = core;
    }
}

/// What a server calls for each request. A closure
/// `FnMut(&mut Core, &Request<'_>, Response)` is a handler that buffers every body.
pub trait Handler: 'static {
    /// A complete request (body buffered). Answer now or later through `res`.
    fn on_request(&mut self, core: &mut Core, req: &Request<'_>, res: Response);

    /// A request with a body has its head: choose how to take the body. The default buffers
    /// it. Not called for requests without a body.
    fn on_head(&mut self, core: &mut Core, req: &Request<'_>) -> Body {
        let _ = (core, req);
        Body::Buffer
    }
}

impl<F> Handler for F
where
    F: FnMut(&mut Core, &Request<'_>, Response) + 'static,
{
    fn on_request(&mut self, core: &mut Core, req: &Request<'_>, res: Response) {
        self(core, req, res)
    }
}

/// What a server's connections, responses and timer share.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) handler: RefCell<Box<dyn Handler>>,
    pub(crate) state: RefCell<State>,
}

/// An HTTP/1.1 server on a loop. Cheap to clone; all clones are the same server.
///
/// ```no_run
/// use reactor::EventLoop;
/// use reactor::http::{Server, ServerConfig};
///
/// let mut lp = EventLoop::new()?;
/// let server = Server::new(&mut lp, ServerConfig::default(), |core: &mut reactor::Core, req: &reactor::http::Request<'_>, res: reactor::http::Response| {
///     let _ = res.send(core, 200, &[("Content-Type", "text/plain")], b"Hello, World!");
/// });
/// server.listen(&mut lp, "127.0.0.1:8080".parse().unwrap())?;
/// lp.run()?;
/// # Ok::<(), reactor::Error>(())
/// ```
#[derive(Clone)]
pub struct Server {
    shared: Rc<Shared>,
}

impl Server {
    /// A server calling `handler` for each request. It serves once it [listens](Server::listen).
    pub fn new(core: &mut Core, config: ServerConfig, handler: impl Handler) -> Server {
        let timeouts = [config.header_timeout, config.body_timeout, config.idle_timeout];
        // The timer holds the server weakly; neither it nor the remote keeps the loop alive:
        // connections do that.
        let shared = Rc::new_cyclic(|weak: &Weak<Shared>| {
            let weak = weak.clone();
            let timer = core.timer(move |core, _| {
                if let Some(shared) = weak.upgrade() {
                    shared.state.borrow_mut().expire(core);
                }
            });
            let _ = core.unref(timer);
            let mut remote = core.remote();
            remote.unref();
            Shared {
                config,
                handler: RefCell::new(Box::new(handler)),
                state: RefCell::new(State::new(timeouts, timer, remote)),
            }
        });
        Server { shared }
    }

    /// Accepts connections on `addr` (port 0 picks one; see [`Core::local_addr`]).
    pub fn listen(&self, core: &mut Core, addr: SocketAddr) -> Result<Listener> {
        self.listen_with(core, addr, ListenOptions::default())
    }

    /// [`listen`](Server::listen) with a backlog and socket options.
    pub fn listen_with(
        &self,
        core: &mut Core,
        addr: SocketAddr,
        options: ListenOptions,
    ) -> Result<Listener> {
        let shared = self.shared.clone();
        let listener = core
            .listen_tcp_with(addr, &options, move |stream| HttpConn::new(shared.clone(), stream))?;
        self.shared.state.borrow_mut().listeners.push(listener);
        Ok(listener)
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.shared.state.borrow().conns.len()
    }

    /// Graceful shutdown: stops accepting, closes idle connections, and lets each request in
    /// progress (an upload included) finish; its response says `Connection: close`. Once the
    /// last connection is gone the server holds nothing that keeps the loop alive, so `run()`
    /// returns if nothing else does.
    pub fn shutdown(&self, core: &mut Core) {
        let (listeners, streams) = {
            let mut state = self.shared.state.borrow_mut();
            state.shutting_down = true;
            let streams: Vec<_> = state.conns.iter().map(|(_, entry)| entry.stream).collect();
            (std::mem::take(&mut state.listeners), streams)
        };
        for listener in listeners {
            let _ = core.close(listener);
        }
        for stream in streams {
            let _ = core.wake(stream);
        }
    }

    /// What a server process does on `SIGINT` and `SIGTERM`: the first of `signals` to arrive
    /// starts a graceful [`shutdown`](Server::shutdown); another one meanwhile stops the loop
    /// at once. The signal handles are unreferenced, so once the last connection has gone
    /// nothing keeps the loop alive and `run()` returns.
    ///
    /// Errors: a signal that cannot be watched (see [`Core::signal`]).
    pub fn shutdown_on_signals(&self, core: &mut Core, signals: &[i32]) -> Result<()> {
        for &signum in signals {
            let server = self.clone();
            let mut shutting_down = false;
            let signal = core.signal(signum, move |core, _, _| {
                if shutting_down {
                    return core.stop();
                }
                shutting_down = true;
                server.shutdown(core);
            })?;
            core.unref(signal)?;
        }
        Ok(())
    }
}
