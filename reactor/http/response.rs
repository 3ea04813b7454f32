//! The response: status, headers and body, sent in one call or in pieces, now or later.
//!
//! A [`Response`] is an owned value: answer in the request callback, or move it into a timer,
//! another connection's handler, or a closure that runs when pool work completes. Responses on
//! one connection leave in request order whatever order they are completed in.
//!
//! ```
//! use std::time::Duration;
//! use reactor::http::{Request, Response};
//! use reactor::Core;
//!
//! fn handle(core: &mut Core, req: &Request<'_>, res: Response) {
//!     if req.path() == "/slow" {
//!         // Answer in 100 ms; other requests on the connection wait their turn behind it.
//!         core.set_timeout(Duration::from_millis(100), move |core| {
//!             let _ = res.send(core, 200, &[("Content-Type", "text/plain")], b"late\n");
//!         });
//!     } else {
//!         let _ = res.send(core, 200, &[("Content-Type", "text/plain")], b"now\n");
//!     }
//! }
//! ```
//!
//! Framing is the server's: `send` sets `Content-Length`; `start` with no `Content-Length`
//! streams with chunked coding (or, to an HTTP/1.0 client, until the close). The server adds
//! `Date`, and `Connection` when the connection will close (or to an HTTP/1.0 client that
//! asked for keep-alive). A response dropped without being sent is answered with 500, or, if
//! its head was already sent, its connection is closed: a client never waits forever.

use std::io;
use std::rc::Rc;

use super::date::DATE_LEN;
use super::parse::{LINE_SAFE, TCHAR, all_in};
use super::pipeline::Waiter;
use super::server::Shared;
use crate::event_loop::Core;
use crate::handle::Stream;
use crate::{Error, Result};

/// How the body of a started response is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Progress {
    /// Nothing sent yet.
    Fresh,
    /// Head sent; chunks follow.
    Chunked,
    /// Head sent with `Content-Length`; this many bytes still owed.
    Fixed(u64),
    /// Head sent to an HTTP/1.0 client with no length: the body ends with the connection.
    UntilClose,
    /// Complete.
    Done,
}

/// The answer to one request. See the [module docs](self).
#[must_use = "a dropped Response is answered with 500"]
pub struct Response {
    shared: Rc<Shared>,
    key: u32,
    stream: Stream,
    seq: u32,
    /// A HEAD request: headers only.
    head_only: bool,
    /// HTTP/1.0 client: no chunked coding.
    http10: bool,
    /// The connection may stay open after this response.
    keep_alive: bool,
    progress: Progress,
}

impl Response {
    pub(crate) fn new(
        shared: Rc<Shared>,
        key: u32,
        stream: Stream,
        seq: u32,
        head_only: bool,
        http10: bool,
        keep_alive: bool,
    ) -> Self {
        Response {
            shared,
            key,
            stream,
            seq,
            head_only,
            http10,
            keep_alive,
            progress: Progress::Fresh,
        }
    }

    pub(crate) fn seq(&self) -> u32 {
        self.seq
    }

    /// The same response, closing the connection after it.
    pub(crate) fn closing(mut self) -> Self {
        self.keep_alive = false;
        self
    }

    /// Drops the response without answering: its connection is closing.
    pub(crate) fn discard(mut self) {
        self.progress = Progress::Done;
    }

    /// The connection this response goes out on.
    pub fn stream(&self) -> Stream {
        self.stream
    }

    /// Sends the whole response: `status`, `headers` (names and values as given; no
    /// `Content-Length`, `Transfer-Encoding` or `Date`, which the server sets), and `body`.
    ///
    /// Fails with [`Error::Closed`] if the connection is gone, and with an
    /// [`io::ErrorKind::InvalidInput`] error for a status outside 200-999, a header that
    /// would break the framing or contains CR, LF or NUL (the client then gets a 500).
    pub fn send(
        mut self,
        core: &mut Core,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<()> {
        let asks_close = check(status, headers, true)?;
        let no_body = bodiless(status);
        if no_body && !body.is_empty() {
            return Err(invalid("a 204 or 304 response has no body"));
        }
        let close = self.closes(asks_close);
        let head_only = self.head_only;
        let framing = if no_body { Framing::None } else { Framing::Length(body.len() as u64) };
        self.progress = Progress::Done;
        let mut state = self.shared.state.borrow_mut();
        state.emit(core, self.key, self.stream, self.seq, |out, date| {
            head(out, status, headers, framing, close, self.http10 && !close, date);
            if !head_only {
                out.extend_from_slice(body);
            }
        })?;
        state.finish(core, self.key, self.stream, self.seq, close)
    }

    /// Sends the head of a response whose body follows with [`write`](Response::write) and
    /// [`end`](Response::end). With a `Content-Length` among `headers` the body must be
    /// exactly that long; without, it is sent chunked (to an HTTP/1.0 client: delimited by
    /// the close).
    pub fn start(&mut self, core: &mut Core, status: u16, headers: &[(&str, &str)]) -> Result<()> {
        if self.progress != Progress::Fresh {
            return Err(invalid("the response has already started"));
        }
        let asks_close = check(status, headers, false)?;
        let length =
            match headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("content-length")) {
                Some((_, value)) => {
                    Some(value.trim().parse::<u64>().map_err(|_| invalid("bad Content-Length"))?)
                }
                None => None,
            };
        let (framing, progress) = match length {
            _ if bodiless(status) => (Framing::None, Progress::Fixed(0)),
            Some(n) => (Framing::Given, Progress::Fixed(n)),
            None if self.http10 => (Framing::UntilClose, Progress::UntilClose),
            None => (Framing::Chunked, Progress::Chunked),
        };
        if progress == Progress::UntilClose {
            self.keep_alive = false;
        }
        let close = self.closes(asks_close);
        self.keep_alive &= !close;
        self.progress = progress;
        let http10 = self.http10;
        self.shared.state.borrow_mut().emit(
            core,
            self.key,
            self.stream,
            self.seq,
            |out, date| {
                head(out, status, headers, framing, close, http10 && !close, date);
            },
        )?;
        Ok(())
    }

    /// Sends a piece of the body (after [`start`](Response::start)). `Ok(false)`: the
    /// connection's output is past its high watermark (the piece is kept all the same); write
    /// no more until [`on_drain`](Response::on_drain) hands the response back.
    pub fn write(&mut self, core: &mut Core, data: &[u8]) -> Result<bool> {
        let chunked = match self.progress {
            Progress::Chunked => true,
            Progress::UntilClose => false,
            Progress::Fixed(left) if data.len() as u64 <= left => {
                self.progress = Progress::Fixed(left - data.len() as u64);
                false
            }
            Progress::Fixed(_) => return Err(invalid("more body than the Content-Length")),
            Progress::Fresh => return Err(invalid("write before start")),
            Progress::Done => return Err(invalid("write after end")),
        };
        if data.is_empty() || self.head_only {
            return Ok(true);
        }
        self.shared.state.borrow_mut().emit(core, self.key, self.stream, self.seq, |out, _| {
            if chunked {
                push_hex(out, data.len() as u64);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            } else {
                out.extend_from_slice(data);
            }
        })
    }

    /// Hands the response back to `callback` once it may write again: Node's
    /// `res.write() === false` then `'drain'`.
    ///
    /// The callback runs exactly once, never inside this call: in the check phase (through
    /// [`Core::defer`]) once the response's output has drained, which is at once if it is not
    /// blocked now. It gets `Ok(response)`, or [`Error::Closed`] if the connection closed (or
    /// will send no more responses) before then; the response is then dropped, which is
    /// harmless, and the callback is the place to release what the body was made from.
    ///
    /// ```
    /// use reactor::http::Response;
    /// use reactor::Core;
    ///
    /// /// Sends `left` more 16 KiB pieces, pausing whenever the client falls behind.
    /// fn pump(core: &mut Core, mut res: Response, mut left: usize) {
    ///     while left > 0 {
    ///         left -= 1;
    ///         match res.write(core, &[b'x'; 16 * 1024]) {
    ///             Ok(true) => {}
    ///             Ok(false) => {
    ///                 return res.on_drain(core, move |core, res| {
    ///                     if let Ok(res) = res {
    ///                         pump(core, res, left);
    ///                     } // else: the client has gone; nothing to clean up here
    ///                 });
    ///             }
    ///             Err(_) => return, // the client has gone
    ///         }
    ///     }
    ///     let _ = res.end(core);
    /// }
    /// ```
    ///
    /// What "drained" means depends on where the response stands in its connection's line
    /// (see the `pipeline` module): at the head, its bytes go to the stream, and it waits for
    /// the stream's queue to fall to its low watermark; behind the head (a response written
    /// before the responses to earlier requests are done), its bytes wait in a slot, and it
    /// waits until the responses before it are done and its slot has gone out to the stream.
    pub fn on_drain(
        self,
        core: &mut Core,
        callback: impl FnOnce(&mut Core, Result<Response>) + 'static,
    ) {
        let (shared, key, stream, seq) = (self.shared.clone(), self.key, self.stream, self.seq);
        let deliver = Box::new(move |core: &mut Core| self.deliver(core, callback));
        shared.state.borrow_mut().wait_drain(core, key, stream, Waiter { seq, deliver });
    }

    /// Gives the response to an [`on_drain`](Response::on_drain) callback, or tells it the
    /// connection is gone.
    fn deliver(self, core: &mut Core, callback: impl FnOnce(&mut Core, Result<Response>)) {
        let open = !core.is_closing(self.stream) && {
            let mut state = self.shared.state.borrow_mut();
            state.entry(self.key, self.stream).is_ok_and(|entry| !entry.closing)
        };
        if open {
            return callback(core, Ok(self));
        }
        let id = self.stream.id();
        self.discard();
        callback(core, Err(Error::Closed(id)));
    }

    /// Completes a started response. With a `Content-Length` not yet reached, the framing is
    /// broken: the connection is closed after what was sent, and the call fails.
    pub fn end(mut self, core: &mut Core) -> Result<()> {
        let progress = std::mem::replace(&mut self.progress, Progress::Done);
        let (close, result) = match progress {
            Progress::Chunked => {
                if !self.head_only {
                    let mut state = self.shared.state.borrow_mut();
                    state.emit(core, self.key, self.stream, self.seq, |out, _| {
                        out.extend_from_slice(b"0\r\n\r\n");
                    })?;
                }
                (!self.keep_alive, Ok(()))
            }
            Progress::Fixed(0) => (!self.keep_alive, Ok(())),
            Progress::Fixed(_) if self.head_only => (!self.keep_alive, Ok(())),
            Progress::Fixed(left) => (true, Err(invalid_owned(format!("body {left} bytes short")))),
            Progress::UntilClose => (true, Ok(())),
            Progress::Fresh => {
                self.progress = Progress::Fresh;
                return Err(invalid("end before start"));
            }
            Progress::Done => return Err(invalid("end after end")),
        };
        self.shared.state.borrow_mut().finish(core, self.key, self.stream, self.seq, close)?;
        result
    }

    /// Whether the connection closes after this response; `asks_close` from [`check`].
    fn closes(&self, asks_close: bool) -> bool {
        asks_close || !self.keep_alive || self.shared.state.borrow().shutting_down
    }
}

impl Drop for Response {
    fn drop(&mut self) {
        if self.progress == Progress::Done {
            return;
        }
        let started = self.progress != Progress::Fresh;
        // Dropped while the server state is borrowed (cannot happen in this module's own
        // code paths), or after the connection closed: nothing to do.
        let Ok(mut state) = self.shared.state.try_borrow_mut() else { return };
        let Ok(entry) = state.entry(self.key, self.stream) else { return };
        entry.abandon(self.seq, started);
        // The connection's handler answers for it in `on_wake`; a `Core` is not at hand here.
        let stream = self.stream;
        let _ = state.remote.post(move |core| {
            let _ = core.wake(stream);
        });
    }
}

/// How a head frames its body.
#[derive(Clone, Copy)]
pub(crate) enum Framing {
    /// `Content-Length: n`.
    Length(u64),
    /// The handler's own `Content-Length` is among the headers.
    Given,
    Chunked,
    UntilClose,
    /// 1xx, 204, 304: no body and no length.
    None,
}

/// Writes a response head: status line, `Date`, the handler's headers, framing, `Connection`.
pub(crate) fn head(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &str)],
    framing: Framing,
    close: bool,
    keep_alive_header: bool,
    date: &[u8; DATE_LEN],
) {
    if (100..=999).contains(&status) {
        // Every status we send has three digits (RFC 9110 §15): write them into a
        // fixed-size line, one store, rather than through `push_decimal`'s loop and copy.
        let digit = |n: u16| b'0' + (n % 10) as u8;
        let mut line = *b"HTTP/1.1 000 ";
        line[9..12].copy_from_slice(&[digit(status / 100), digit(status / 10), digit(status)]);
        out.extend_from_slice(&line);
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(out, u64::from(status));
        out.push(b' ');
    }
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("connection") {
            continue; // ours, below
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(n) => push_content_length(out, n),
        Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Framing::Given | Framing::UntilClose | Framing::None => {}
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if keep_alive_header {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Validates a handler's status and headers. `send`: `Content-Length` is the server's too.
///
/// `Ok(true)`: a `Connection` header asks to close the connection. Found here, in the one
/// walk over the headers that every response needs anyway.
fn check(status: u16, headers: &[(&str, &str)], send: bool) -> Result<bool> {
    if !(200..=999).contains(&status) {
        return Err(invalid("status must be 200-999 (the server sends 100 Continue itself)"));
    }
    let mut asks_close = false;
    for (name, value) in headers {
        // Byte-class checks through parse.rs's table, branch-free: a handler sends the same
        // few headers with every response, so this runs for each of them every time.
        if name.is_empty() || !all_in(name.as_bytes(), TCHAR) {
            return Err(invalid("header name is not a token"));
        }
        if !all_in(value.as_bytes(), LINE_SAFE) {
            return Err(invalid("header value contains CR, LF or NUL"));
        }
        let reserved = name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("date")
            || (send && name.eq_ignore_ascii_case("content-length"));
        if reserved {
            return Err(invalid(
                "Content-Length, Transfer-Encoding and Date are set by the server",
            ));
        }
        if name.eq_ignore_ascii_case("connection") {
            asks_close |= value.split(',').any(|token| token.trim().eq_ignore_ascii_case("close"));
        }
    }
    Ok(asks_close)
}

fn bodiless(status: u16) -> bool {
    status == 204 || status == 304
}

fn invalid(message: &'static str) -> Error {
    Error::Io(io::Error::new(io::ErrorKind::InvalidInput, message))
}

fn invalid_owned(message: String) -> Error {
    Error::Io(io::Error::new(io::ErrorKind::InvalidInput, message))
}

/// Appends the field `Content-Length: n` and its CRLF.
///
/// The line is built from its end in a stack buffer (CRLF, the digits from the last, then
/// the name in front of them) and appended with one copy: one call and one length check
/// instead of three of each.
fn push_content_length(out: &mut Vec<u8>, mut n: u64) {
    const NAME: &[u8] = b"Content-Length: ";
    // The name, the 20 digits of `u64::MAX`, CRLF.
    let mut line = [0u8; NAME.len() + 20 + 2];
    let mut start = line.len() - 2;
    line[start..].copy_from_slice(b"\r\n");
    loop {
        start -= 1;
        line[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    start -= NAME.len();
    line[start..start + NAME.len()].copy_from_slice(NAME);
    out.extend_from_slice(&line[start..]);
}

/// Appends `n` in decimal.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn push_hex(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// The reason phrase for a status (RFC 9110 §15); clients ignore it, people read it.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_framed_by_the_server() {
        let date = *b"Sun, 22 Nov 2026 12:00:00 GMT";
        let mut out = Vec::new();
        head(
            &mut out,
            200,
            &[("Content-Type", "text/plain")],
            Framing::Length(13),
            false,
            false,
            &date,
        );
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nDate: Sun, 22 Nov 2026 12:00:00 GMT\r\nContent-Type: text/plain\r\n\
              Content-Length: 13\r\n\r\n"
        );
        out.clear();
        head(&mut out, 404, &[], Framing::Chunked, true, false, &date);
        assert!(out.ends_with(b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"));
        for (n, field) in [(0, "0"), (7, "7"), (1234, "1234"), (u64::MAX, "18446744073709551615")] {
            let mut out = Vec::new();
            push_content_length(&mut out, n);
            assert_eq!(out, format!("Content-Length: {field}\r\n").as_bytes());
        }
        out.clear();
        head(&mut out, 1000, &[], Framing::None, false, false, &date);
        assert!(out.starts_with(b"HTTP/1.1 1000 Unknown\r\n"));
        let mut hex = Vec::new();
        push_hex(&mut hex, 0x1f40);
        push_decimal(&mut hex, 0);
        assert_eq!(hex, b"1f400");
    }

    #[test]
    fn bad_headers_are_refused() {
        assert!(check(200, &[("X", "a\r\nInjected: 1")], true).is_err());
        assert!(check(200, &[("Bad Name", "v")], true).is_err());
        assert!(check(200, &[("Content-Length", "5")], true).is_err());
        assert!(check(200, &[("Content-Length", "5")], false).is_ok());
        assert!(check(101, &[], true).is_err());
        assert_eq!(check(200, &[("Connection", "Upgrade, Close")], true).ok(), Some(true));
        assert_eq!(check(200, &[("Connection", "closed")], true).ok(), Some(false));
    }
}
