//! A tiny HTTP client: fetches one URL and prints the body.
//!
//! `cargo run --example http_get -- http://localhost:8080/` prints the response's status line
//! and headers on stderr and its body on stdout. It exits 0 when a complete response with a
//! status below 400 arrived, 1 otherwise (an error status, an unknown host, a refused
//! connection, a cut-off body, no answer within 30 s), and 2 on bad usage. Only `http://`
//! URLs: there is no TLS.
//!
//! The flow shows the loop's name resolution: [`Core::connect_host`] returns a stream at once,
//! the host name is resolved on the thread pool (`getaddrinfo` blocks), and each address is
//! tried in turn until one accepts. The request is written before that is known: the stream
//! queues it. The response is parsed as it comes: httparse reads the head, and the body is
//! framed by `Content-Length`, by chunked coding (with the server's own strict decoder), or by
//! the close.

use std::cell::Cell;
use std::io::{self, Write};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use reactor::http::body::{BodyDecoder, Decoded};
use reactor::http::parse::Framing;
use reactor::{Conn, Core, EventLoop, Stream, StreamHandler};

/// The most a response head may take.
const MAX_HEAD: usize = 64 * 1024;
/// How long the whole exchange may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// The parts of an `http://` URL.
#[derive(Debug, PartialEq)]
struct Url {
    host: String,
    port: u16,
    /// `host` or `host:port`, as the `Host` header wants it.
    authority: String,
    /// The path and query, `/` if empty.
    target: String,
}

/// Splits `http://host[:port][/path]`. IPv6 literals come in brackets: `http://[::1]:8080/`.
fn parse_url(url: &str) -> Result<Url, String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs are supported")?;
    let (authority, target) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let target = if target.starts_with('?') { format!("/{target}") } else { target.to_owned() };
    if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("the path contains spaces or control characters".into());
    }
    let (host, port) = match authority.rsplit_once(':') {
        // `[::1]` alone: the colon is inside the brackets.
        Some((host, port)) if !port.contains(']') => {
            (host, port.parse::<u16>().map_err(|_| format!("bad port {port:?}"))?)
        }
        _ => (authority, 80),
    };
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() || host.contains(['@', ' ', '/', '[', ']']) {
        return Err(format!("bad host {host:?}"));
    }
    Ok(Url { host: host.to_owned(), port, authority: authority.to_owned(), target })
}

/// Where the response is.
enum Phase {
    /// Collecting the head.
    Head(Vec<u8>),
    /// Decoding a body framed by length or chunks.
    Framed(BodyDecoder),
    /// Body until the server closes.
    UntilClose,
    /// The whole response is here.
    Done,
}

/// The client: sends the request on open, parses the response as it arrives.
struct Get {
    request: Vec<u8>,
    phase: Phase,
    status: u16,
    /// What to exit with; set once the outcome is known.
    outcome: Rc<Cell<Option<u8>>>,
}

impl Get {
    /// Ends with exit code `code`, reporting `why` if it failed.
    fn finish(&mut self, conn: &mut Conn<'_>, code: u8, why: Option<String>) {
        if let Some(why) = why {
            eprintln!("http_get: {why}");
        }
        self.outcome.set(Some(code));
        self.phase = Phase::Done;
        conn.close();
    }

    /// The head is complete in `buf` at `len`: print it, choose the body's framing.
    fn start_body(&mut self, conn: &mut Conn<'_>, buf: &[u8]) {
        let mut headers = [httparse::EMPTY_HEADER; 100];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return self.finish(conn, 1, Some("response head too large".into()));
            }
            Ok(httparse::Status::Partial) => {
                self.phase = Phase::Head(buf.to_vec());
                return;
            }
            Err(err) => return self.finish(conn, 1, Some(format!("bad response: {err}"))),
        };
        self.status = response.code.unwrap_or(0);
        let mut err = io::stderr().lock();
        let _ = writeln!(
            err,
            "HTTP/1.{} {} {}",
            response.version.unwrap_or(1),
            self.status,
            response.reason.unwrap_or("")
        );
        for header in response.headers.iter() {
            let _ = writeln!(err, "{}: {}", header.name, String::from_utf8_lossy(header.value));
        }
        drop(err);
        let framing = match framing(response.headers) {
            Ok(framing) => framing,
            Err(why) => return self.finish(conn, 1, Some(why)),
        };
        self.phase = match BodyDecoder::new(framing, u64::MAX) {
            Some(Ok(decoder)) => Phase::Framed(decoder),
            Some(Err(err)) => return self.finish(conn, 1, Some(format!("bad framing: {err}"))),
            None => Phase::UntilClose,
        };
        // Status codes that never have a body (RFC 9112 §6.3).
        if self.status == 204 || self.status == 304 || (100..200).contains(&self.status) {
            return self.done(conn);
        }
        self.body(conn, &buf[len..]);
    }

    /// Body bytes arrived.
    fn body(&mut self, conn: &mut Conn<'_>, mut data: &[u8]) {
        let mut out = io::stdout().lock();
        match &mut self.phase {
            Phase::UntilClose => {
                let _ = out.write_all(data);
            }
            Phase::Framed(decoder) => loop {
                match decoder.decode(data) {
                    Ok((used, Decoded::Data(chunk))) => {
                        let _ = out.write_all(chunk);
                        data = &data[used..];
                    }
                    Ok((_, Decoded::NeedMore)) => break,
                    Ok((_, Decoded::Done)) => {
                        drop(out);
                        return self.done(conn);
                    }
                    Err(err) => {
                        drop(out);
                        return self.finish(conn, 1, Some(format!("bad body: {err}")));
                    }
                }
            },
            Phase::Head(_) | Phase::Done => {}
        }
        let _ = out.flush();
    }

    /// The whole response is here.
    fn done(&mut self, conn: &mut Conn<'_>) {
        let _ = io::stdout().flush();
        let code = if self.status < 400 { 0 } else { 1 };
        self.finish(conn, code, None);
    }
}

/// How the body is framed: chunked if `Transfer-Encoding` ends in chunked, else the
/// `Content-Length`, else until the close.
fn framing(headers: &[httparse::Header<'_>]) -> Result<Framing, String> {
    let find = |name: &str| headers.iter().find(|h| h.name.eq_ignore_ascii_case(name));
    if let Some(te) = find("transfer-encoding") {
        let te = String::from_utf8_lossy(te.value).to_ascii_lowercase();
        return match te.rsplit(',').next().map(str::trim) {
            Some("chunked") => Ok(Framing::Chunked),
            _ => Ok(Framing::None), // until the close (RFC 9112 §6.3 item 4)
        };
    }
    match find("content-length") {
        Some(cl) => std::str::from_utf8(cl.value)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(Framing::Length)
            .ok_or_else(|| "bad Content-Length".to_owned()),
        None => Ok(Framing::None),
    }
}

impl StreamHandler for Get {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let request = std::mem::take(&mut self.request);
        conn.write(&request);
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        match &mut self.phase {
            Phase::Head(buf) if buf.is_empty() => self.start_body(conn, data),
            Phase::Head(buf) => {
                let mut buf = std::mem::take(buf);
                buf.extend_from_slice(data);
                self.start_body(conn, &buf);
            }
            Phase::Framed(_) | Phase::UntilClose => self.body(conn, data),
            Phase::Done => {}
        }
    }

    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        match self.phase {
            Phase::UntilClose => self.done(conn),
            Phase::Done => conn.close(),
            _ => self.finish(conn, 1, Some("the server closed before the response ended".into())),
        }
    }

    /// The loop ends after this by itself: the deadline timer is unreferenced.
    fn on_close(&mut self, _core: &mut Core, _stream: Stream, error: Option<io::Error>) {
        if self.outcome.get().is_none() {
            let why = error.map_or("connection closed".to_owned(), |err| err.to_string());
            eprintln!("http_get: {why}");
            self.outcome.set(Some(1));
        }
    }
}

fn fetch(url: &Url) -> reactor::Result<u8> {
    let mut lp = EventLoop::new()?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: reactor-http_get\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n",
        url.target, url.authority
    );
    let outcome = Rc::new(Cell::new(None));
    let get = Get {
        request: request.into_bytes(),
        phase: Phase::Head(Vec::new()),
        status: 0,
        outcome: outcome.clone(),
    };
    let stream = lp.connect_host(&url.host, url.port, get)?;
    let deadline = lp.set_timeout(DEADLINE, move |core| {
        eprintln!("http_get: no complete answer within {DEADLINE:?}");
        let _ = core.abort(stream);
    });
    lp.unref(deadline)?;
    lp.run()?;
    Ok(outcome.get().unwrap_or(1))
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(url), None) = (args.next(), args.next()) else {
        eprintln!("usage: http_get http://HOST[:PORT]/PATH");
        return ExitCode::from(2);
    };
    let url = match parse_url(&url) {
        Ok(url) => url,
        Err(why) => {
            eprintln!("http_get: {url}: {why}\nusage: http_get http://HOST[:PORT]/PATH");
            return ExitCode::from(2);
        }
    };
    match fetch(&url) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("http_get: {}: {err}", url.host);
            ExitCode::FAILURE
        }
    }
}
