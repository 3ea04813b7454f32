//! The tokio peer of `examples/http.rs`, for `benches/compare/http.rs`.
//!
//! `tokio_http [ADDR]` (ADDR defaults to 127.0.0.1:8080; port 0 picks a free port). Prints
//! `listening on IP:PORT` once it is ready and exits with status 0 on SIGINT or SIGTERM, like
//! the Rust example.
//!
//! What a small hand-written tokio server would be, with no framework: one current-thread
//! runtime (so one core, like reactor), one task per connection, `httparse` for the request
//! head. Each task owns a 4 KiB read buffer (grown up to 64 KiB only for a longer request) and
//! an output buffer (empty until the first answer): it parses every complete request in what
//! it has read, appends every response to the output buffer, and writes them all with one
//! `write_all`; so pipelined requests get their answers in one write, and keep-alive is the
//! default of HTTP/1.1. There is no idle timeout: a kept-alive connection stays until the
//! client closes it.
//!
//! Routes, as in the reactor example: `GET /plaintext` and `GET /` answer `Hello, World!` as
//! `text/plain`, `GET /json` answers `{"message":"Hello, World!"}`; any other path is a 404 and
//! any other method a 405. Every response has `Server`, `Date` (cached, rebuilt once a second),
//! `Content-Type` and `Content-Length`. A request with a `Content-Length` body has the body
//! skipped; one with `Transfer-Encoding` or a malformed head gets a 400 and the connection is
//! closed.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};

/// Initial read buffer of a connection.
const READ_BUF: usize = 4 * 1024;
/// Longest request (head and body) a connection accepts.
const MAX_REQUEST: usize = 64 * 1024;
/// Most headers in one request head.
const MAX_HEADERS: usize = 32;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".into());
    let addr: SocketAddr = match arg.parse() {
        Ok(addr) => addr,
        Err(_) => {
            eprintln!("tokio_http: {arg:?} is not an address like 127.0.0.1:8080");
            std::process::exit(2);
        }
    };
    // tokio's `bind` listens with a backlog of 1024, as reactor's listeners do.
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tokio_http: {addr}: {e}");
            std::process::exit(1);
        }
    };
    let (mut term, mut int) =
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("tokio_http: signals: {e}");
                std::process::exit(1);
            }
        };
    let bound = listener.local_addr().expect("a bound listener has an address");
    println!("listening on {bound}");
    let _ = std::io::stdout().flush();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream));
                }
                // Out of descriptors, or the peer went away before we took it: carry on.
                Err(e) => eprintln!("tokio_http: accept: {e}"),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
}

/// What one complete request asks for.
enum Answer {
    Plaintext,
    Json,
    NotFound,
    BadMethod,
}

const PLAINTEXT: &[u8] = b"Hello, World!";
const JSON: &[u8] = br#"{"message":"Hello, World!"}"#;

/// One connection: read, answer every complete request, write the answers at once, repeat.
async fn serve(mut stream: TcpStream) {
    // Like reactor's listeners, and node's `http` server: no Nagle delay on the answers.
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; READ_BUF];
    let mut filled = 0;
    // Grows to what one read's answers take, and stays so.
    let mut out = Vec::new();
    let mut date = Date::default();
    loop {
        if filled == buf.len() {
            if buf.len() >= MAX_REQUEST {
                let _ = stream.write_all(&response(&mut date, 431, "text/plain", b"", false)).await;
                return;
            }
            buf.resize((buf.len() * 2).min(MAX_REQUEST), 0);
        }
        let n = match stream.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        filled += n;
        let mut start = 0;
        let mut close = false;
        while start < filled {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            let head = match req.parse(&buf[start..filled]) {
                Ok(httparse::Status::Complete(head)) => head,
                Ok(httparse::Status::Partial) => break,
                Err(_) => {
                    out.extend_from_slice(&response(&mut date, 400, "text/plain", b"", false));
                    close = true;
                    break;
                }
            };
            let mut body = 0;
            let mut keep_alive = req.version == Some(1);
            for h in req.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    match std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse().ok()) {
                        Some(len) => body = len,
                        None => close = true,
                    }
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    close = true;
                } else if h.name.eq_ignore_ascii_case("connection") {
                    if h.value.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                        keep_alive = true;
                    }
                }
            }
            if close || head + body > MAX_REQUEST {
                out.extend_from_slice(&response(&mut date, 400, "text/plain", b"", false));
                close = true;
                break;
            }
            if start + head + body > filled {
                break; // the body is still on its way
            }
            let answer = match (req.method, req.path) {
                (Some("GET"), Some("/plaintext" | "/")) => Answer::Plaintext,
                (Some("GET"), Some("/json")) => Answer::Json,
                (Some("GET"), _) => Answer::NotFound,
                _ => Answer::BadMethod,
            };
            let (status, ctype, body_out) = match answer {
                Answer::Plaintext => (200, "text/plain", PLAINTEXT),
                Answer::Json => (200, "application/json", JSON),
                Answer::NotFound => (404, "text/plain", &b"Not Found"[..]),
                Answer::BadMethod => (405, "text/plain", &b"Method Not Allowed"[..]),
            };
            write_response(&mut out, &mut date, status, ctype, body_out, keep_alive);
            start += head + body;
            if !keep_alive {
                close = true;
                break;
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if close {
            let _ = stream.shutdown().await;
            return;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
    }
}

fn response(date: &mut Date, status: u16, ctype: &str, body: &[u8], keep_alive: bool) -> Vec<u8> {
    let mut out = Vec::new();
    write_response(&mut out, date, status, ctype, body, keep_alive);
    out
}

fn write_response(
    out: &mut Vec<u8>,
    date: &mut Date,
    status: u16,
    ctype: &str,
    body: &[u8],
    keep_alive: bool,
) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Request Header Fields Too Large",
    };
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nServer: tokio\r\nDate: {}\r\nContent-Type: {ctype}\r\n\
         Content-Length: {}\r\n{}\r\n",
        date.now(),
        body.len(),
        if keep_alive { "" } else { "Connection: close\r\n" },
    );
    out.extend_from_slice(body);
}

/// The `Date` header's value (RFC 9110's IMF-fixdate), rebuilt when the second changes.
#[derive(Default)]
struct Date {
    second: u64,
    text: String,
}

impl Date {
    fn now(&mut self) -> &str {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if secs != self.second || self.text.is_empty() {
            self.second = secs;
            self.text = imf_fixdate(secs);
        }
        &self.text
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` for seconds since the Unix epoch.
fn imf_fixdate(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = secs / 86_400;
    let (hh, mm, ss) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (never negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!(
        "{}, {d:02} {} {y} {hh:02}:{mm:02}:{ss:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize]
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn imf_fixdate() {
        assert_eq!(super::imf_fixdate(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(super::imf_fixdate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(super::imf_fixdate(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
