//! An HTTP/1.1 server, built on the public stream API only.
//!
//! ```no_run
//! use reactor::http::{Request, Response, Server, ServerConfig};
//! use reactor::{Core, EventLoop};
//!
//! fn hello(core: &mut Core, req: &Request<'_>, res: Response) {
//!     let body: &[u8] = if req.path() == "/" { b"Hello, World!" } else { b"?" };
//!     let _ = res.send(core, 200, &[("Content-Type", "text/plain")], body);
//! }
//!
//! let mut lp = EventLoop::new()?;
//! let server = Server::new(&mut lp, ServerConfig::default(), hello);
//! server.listen(&mut lp, "127.0.0.1:8080".parse().unwrap())?;
//! lp.run()?;
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! A [`Server`] calls its [`Handler`] once per request with a borrowed [`Request`] and an owned
//! [`Response`]; the handler answers at once, or keeps the response and answers later (from a
//! timer, another connection, pool work). Keep-alive and pipelining are on; responses leave in
//! request order, and the responses to the requests of one read leave in one write.
//!
//! The layers, each in its own file:
//!
//! - [`parse`]: the request head (httparse) and the framing rules that stop smuggling;
//! - [`body`]: the strict `Content-Length` / chunked body decoder;
//! - [`response`]: the [`Response`] and how a head is written;
//! - `pipeline`: what a server's connections share: the line of responses owed on each, and
//!   the timeout lists;
//! - `conn`: one connection's state machine, a [`StreamHandler`](crate::StreamHandler);
//! - [`date`]: the `Date` header, rendered once a second.
//!
//! `docs/http.md` draws the state machine and lists the rules with their RFC sections.

pub mod body;
mod conn;
pub mod date;
pub mod parse;
mod pipeline;
pub mod response;
mod server;

pub use parse::{Framing, Head, HttpError, Version};
pub use pipeline::{LINGER_TIMEOUT, MAX_PIPELINE};
pub use response::Response;
pub use server::{Body, BodySink, Handler, Request, Server, ServerConfig};
