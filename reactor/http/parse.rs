//! The request head: httparse reads the bytes, and this module applies the rules that decide
//! how the body is framed (RFC 9112 §6) and refuses everything ambiguous.
//!
//! ```
//! use reactor::http::parse::{Framing, HeaderSlots, parse_head};
//!
//! let mut slots = HeaderSlots::new();
//! let bytes = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
//! let (head, len) = parse_head(bytes, &mut slots, 8192, 100).unwrap().unwrap();
//! assert_eq!((head.method(), head.path()), ("POST", "/echo"));
//! assert_eq!(head.framing(), Framing::Length(5));
//! assert_eq!(&bytes[len..], b"hello");
//! ```
//!
//! The rules, each with the status it answers:
//!
//! | input | status | RFC 9112 |
//! |---|---|---|
//! | both `Content-Length` and `Transfer-Encoding` | 400 | §6.3 item 3 (smuggling) |
//! | `Content-Length` that is not `1*DIGIT`, overflows, or differs between fields | 400 | §6.3 item 5 |
//! | `Transfer-Encoding` whose last coding is not `chunked`, or `chunked` twice | 400 | §6.3 item 4, §7 |
//! | a transfer coding we do not implement (anything but `chunked`) | 501 | §6.1 |
//! | `Transfer-Encoding` in an HTTP/1.0 request | 400 | §6.1 |
//! | HTTP/1.1 without `Host`, several `Host` fields, or an invalid `Host` | 400 | §3.2 |
//! | a request-target in no form the method allows | 400 | §3.2 |
//! | a version other than HTTP/1.0 and HTTP/1.1 | 505 (400 if not `HTTP/d.d`) | RFC 9110 §15.6.6 |
//! | a head longer than the limit, or too many fields | 431 | RFC 6585 §5 |
//! | an `Expect` other than `100-continue` | 417 | RFC 9110 §10.1.1 |
//! | any other malformed line (httparse: bad token, bad value, obs-fold, space before `:`) | 400 | §5 |

use std::fmt;
use std::mem::MaybeUninit;

/// The most header fields a head may have, whatever the configuration says: the size of the
/// stack array the fields are parsed into (32 bytes each).
pub const MAX_HEADERS_CAP: usize = 256;

/// Why a request was refused: the status to answer with (and then close the connection), and
/// a short reason for the response body and for logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpError {
    /// The status code: 400, 408, 413, 417, 431, 501 or 505.
    pub status: u16,
    /// What was wrong, in a few words.
    pub reason: &'static str,
}

impl HttpError {
    pub(crate) const fn new(status: u16, reason: &'static str) -> Self {
        HttpError { status, reason }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.status)
    }
}

impl std::error::Error for HttpError {}

fn bad(reason: &'static str) -> HttpError {
    HttpError::new(400, reason)
}

/// How the body that follows a head is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (neither `Content-Length` nor `Transfer-Encoding`).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
}

/// The HTTP version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: one request per connection unless it asks for keep-alive.
    Http10,
    /// HTTP/1.1.
    Http11,
}

/// Stack storage for the header fields of one head, filled by [`parse_head`].
pub struct HeaderSlots<'b>([MaybeUninit<httparse::Header<'b>>; MAX_HEADERS_CAP]);

impl<'b> HeaderSlots<'b> {
    /// Uninitialised slots: costs nothing.
    pub fn new() -> Self {
        HeaderSlots([const { MaybeUninit::uninit() }; MAX_HEADERS_CAP])
    }
}

impl Default for HeaderSlots<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// A parsed, validated request head. Borrows the bytes it was parsed from.
#[derive(Debug)]
pub struct Head<'a> {
    method: &'a str,
    target: &'a str,
    /// The path of `target`, found once while the target is checked: handlers ask for it on
    /// every request, often more than once.
    path: &'a str,
    version: Version,
    headers: &'a [httparse::Header<'a>],
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
}

impl<'a> Head<'a> {
    /// The method, as sent (methods are case-sensitive).
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The request-target as sent: `/path?query`, an absolute URI, `*`, or an authority.
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// The path of the target, without the query: `/a/b` for `/a/b?c` and for
    /// `http://host/a/b?c`.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The query string after `?`, if any.
    pub fn query(&self) -> Option<&'a str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    /// HTTP/1.0 or HTTP/1.1.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The first header field called `name` (compared without regard to case).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        let headers: &'a [httparse::Header<'a>] = self.headers;
        headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
    }

    /// All header fields, in order, as (name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let headers: &'a [httparse::Header<'a>] = self.headers;
        headers.iter().map(|h| (h.name, h.value))
    }

    /// How the body is framed.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Whether the client wants the connection kept open after the response: the default for
    /// HTTP/1.1 unless it sent `Connection: close`; for HTTP/1.0 only with
    /// `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// The client sent `Expect: 100-continue` and waits for `100 Continue` before the body.
    pub fn expects_continue(&self) -> bool {
        self.expect_continue
    }
}

/// Parses one request head from the start of `buf`.
///
/// `Ok(None)`: the head is not complete yet (and not over `max_head` bytes).
/// `Ok(Some((head, len)))`: the head is the first `len` bytes; the body, if any, follows.
/// `Err`: the request must be refused with the error's status, and the connection closed.
pub fn parse_head<'b>(
    buf: &'b [u8],
    slots: &'b mut HeaderSlots<'b>,
    max_head: usize,
    max_headers: usize,
) -> Result<Option<(Head<'b>, usize)>, HttpError> {
    let max_headers = max_headers.clamp(1, MAX_HEADERS_CAP);
    // Only the first `max_head + 1` bytes are looked at, so that a head too long is a 431
    // however the bytes were split into reads (and not a 400 for a flaw past the limit).
    let buf = &buf[..buf.len().min(max_head.saturating_add(1))];
    let mut request = httparse::Request::new(&mut []);
    let parsed = request.parse_with_uninit_headers(buf, &mut slots.0[..max_headers]);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) if len <= max_head => len,
        Ok(httparse::Status::Complete(_)) => return Err(too_large()),
        Ok(httparse::Status::Partial) if buf.len() > max_head => return Err(too_large()),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::new(431, "too many header fields"));
        }
        Err(httparse::Error::Version) => {
            return match request_line(buf) {
                Some(line) => Err(version_error(line)),
                // httparse stops at the first byte that cannot be 1.0 or 1.1; whether it is
                // a 505 or a 400 depends on the rest of the line.
                None if buf.len() > max_head => Err(too_large()),
                None => Ok(None),
            };
        }
        Err(httparse::Error::Token) => return Err(bad("malformed request line")),
        Err(_) => return Err(bad("malformed header field")),
    };
    let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version)
    else {
        return Err(bad("malformed request line"));
    };
    let version = if minor == 1 { Version::Http11 } else { Version::Http10 };
    let path = check_target(method, target)?;
    let headers: &'b [httparse::Header<'b>] = request.headers;
    let fields = Fields::scan(headers, version)?;
    Ok(Some((
        Head {
            method,
            target,
            path,
            version,
            headers,
            framing: fields.framing,
            keep_alive: fields.keep_alive,
            expect_continue: fields.expect_continue,
        },
        len,
    )))
}

fn too_large() -> HttpError {
    HttpError::new(431, "request head too large")
}

/// The request line, once it is complete: after any empty lines, up to its LF (and without
/// its CR).
fn request_line(buf: &[u8]) -> Option<&[u8]> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let rest = &buf[start..];
    let line = &rest[..rest.iter().position(|&b| b == b'\n')?];
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

/// httparse says "bad version" for any version but 1.0 and 1.1: a well-formed `HTTP/d.d` is a
/// version we do not support (505), anything else a malformed request line (400).
fn version_error(line: &[u8]) -> HttpError {
    let mut parts = line.split(|&b| b == b' ');
    let (_method, _target, version) = (parts.next(), parts.next(), parts.next());
    match version.filter(|_| parts.next().is_none()) {
        Some([b'H', b'T', b'T', b'P', b'/', major, b'.', minor])
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            HttpError::new(505, "HTTP version not supported")
        }
        _ => bad("malformed HTTP version"),
    }
}

/// RFC 9112 §3.2: origin-form for every method, absolute-form too (a proxy's form that servers
/// must accept), authority-form only for CONNECT, asterisk-form only for OPTIONS. Every
/// character is checked against RFC 3986: no fragment, no bytes outside its sets, and `%`
/// only before two hex digits. Returns the target's path (see [`Head::path`]).
fn check_target<'a>(method: &str, target: &'a str) -> Result<&'a str, HttpError> {
    let bytes = target.as_bytes();
    // The common case, `/` and path bytes only: valid, and all path (`?` and `%` are not
    // PATH bytes). One branch-free pass instead of the general checks and the split below.
    if bytes.first() == Some(&b'/') && method != "CONNECT" && all_in(bytes, PATH) {
        return Ok(target);
    }
    let ok = if method == "CONNECT" {
        // authority-form: host ":" port, both present.
        matches!(split_port(bytes), Some((host, Some(port))) if !host.is_empty() && !port.is_empty())
            && valid_host(bytes)
    } else if bytes == b"*" {
        method == "OPTIONS"
    } else if bytes.starts_with(b"/") {
        valid_path_query(bytes)
    } else {
        absolute_form(bytes)
    };
    if ok { Ok(path_of(target)) } else { Err(bad("invalid request-target")) }
}

/// The path of a request-target, without the query: `/a/b` for `/a/b?c` and for
/// `http://host/a/b?c`.
fn path_of(target: &str) -> &str {
    // Absolute-form: the path starts at the first `/` after the authority.
    let absolute = (!target.starts_with('/')).then(|| target.find("://")).flatten();
    let path = match absolute {
        Some(scheme_end) => {
            let rest = &target[scheme_end + 3..];
            rest.find('/').map_or("/", |slash| &rest[slash..])
        }
        None => target,
    };
    path.bytes().position(|b| b == b'?').map_or(path, |q| &path[..q])
}

/// `http://authority/path?query` (or https): a non-empty host, no userinfo.
fn absolute_form(target: &[u8]) -> bool {
    let rest = match target.iter().position(|&b| b == b':') {
        Some(colon) if target[..colon].eq_ignore_ascii_case(b"http") => &target[colon..],
        Some(colon) if target[..colon].eq_ignore_ascii_case(b"https") => &target[colon..],
        _ => return false,
    };
    let Some(rest) = rest.strip_prefix(b"://") else { return false };
    let end = rest.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host_present = split_port(authority).is_some_and(|(host, _)| !host.is_empty());
    let path_ok = match path {
        [] => true,
        [b'?', query @ ..] => percent_ok(query, QUERY),
        _ => valid_path_query(path),
    };
    host_present && valid_host(authority) && path_ok
}

/// `absolute-path [ "?" query ]`: pchars and `/`, then pchars, `/` and `?`.
fn valid_path_query(target: &[u8]) -> bool {
    match target.iter().position(|&b| b == b'?') {
        Some(q) => percent_ok(&target[..q], PATH) && percent_ok(&target[q + 1..], QUERY),
        None => percent_ok(target, PATH),
    }
}

/// Byte classes, as one lookup table so that checking a byte on the hot path is one load.
/// This one: `tchar` (RFC 9110 §5.6.2), the characters of a token.
pub(crate) const TCHAR: u8 = 1;
/// `pchar` without `%` (RFC 3986 §3.3): unreserved, sub-delims, `:` and `@`; and `/`.
const PATH: u8 = 2;
/// What a query may hold besides percent-encoding: a path's bytes and `?`.
const QUERY: u8 = 4;
/// A registered name or IPv4 address: unreserved and sub-delims.
const HOST: u8 = 8;
/// Every byte but CR, LF and NUL: what a response header value may hold (CR and LF would
/// end the line early, and NUL is refused by many clients).
pub(crate) const LINE_SAFE: u8 = 16;

static CLASSES: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    const fn any(set: &[u8], b: u8) -> bool {
        let mut i = 0;
        while i < set.len() {
            if set[i] == b {
                return true;
            }
            i += 1;
        }
        false
    }
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let unreserved = c.is_ascii_alphanumeric() || any(b"-._~", c);
        let sub_delim = any(b"!$&'()*+,;=", c);
        let mut class = 0;
        if c.is_ascii_alphanumeric() || any(b"!#$%&'*+-.^_`|~", c) {
            class |= TCHAR;
        }
        if unreserved || sub_delim || any(b":@/", c) {
            class |= PATH | QUERY;
        }
        if c == b'?' {
            class |= QUERY;
        }
        if unreserved || sub_delim {
            class |= HOST;
        }
        if !any(b"\r\n\0", c) {
            class |= LINE_SAFE;
        }
        table[b] = class;
        b += 1;
    }
    table
}

/// `tchar` (RFC 9110 §5.6.2): the characters of a token.
pub(crate) fn is_tchar(b: u8) -> bool {
    CLASSES[b as usize] & TCHAR != 0
}

/// Every byte of `bytes` is in `class` (one of the bits above).
///
/// The classes of all the bytes are ANDed together and tested once at the end: no branch per
/// byte, so the loop costs about two instructions a byte. Stopping early at a bad byte would
/// only pay off for bad input, which is rare and gets no fast answer anyway.
pub(crate) fn all_in(bytes: &[u8], class: u8) -> bool {
    bytes.iter().fold(class, |common, &b| common & CLASSES[b as usize]) != 0
}

/// Every byte is in `class`, or is a `%` followed by two hex digits.
fn percent_ok(bytes: &[u8], class: u8) -> bool {
    // Most strings have no `%` at all: one branch-free pass, then the byte-by-byte walk
    // only for those that need it.
    if all_in(bytes, class) {
        return true;
    }
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if CLASSES[b as usize] & class != 0 {
            i += 1;
        } else if b == b'%'
            && bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
        {
            i += 3;
        } else {
            return false;
        }
    }
    true
}

/// Splits `host[:port]` (the host may be an IPv6 literal in brackets); `None` if malformed.
fn split_port(authority: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let host_end = if authority.starts_with(b"[") {
        authority.iter().position(|&b| b == b']')? + 1
    } else {
        authority.iter().position(|&b| b == b':').unwrap_or(authority.len())
    };
    let (host, rest) = authority.split_at(host_end);
    match rest {
        [] => Some((host, None)),
        [b':', port @ ..] if port.iter().all(u8::is_ascii_digit) => Some((host, Some(port))),
        _ => None,
    }
}

/// What the header fields say about framing and the connection.
struct Fields {
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
}

/// The transfer codings RFC 9110 registers besides `chunked`. We decode none of them, but a
/// known coding last in the list is a framing error (400) rather than an unknown one (501).
const KNOWN_CODINGS: [&str; 5] = ["gzip", "x-gzip", "deflate", "compress", "x-compress"];

impl Fields {
    fn scan(headers: &[httparse::Header<'_>], version: Version) -> Result<Fields, HttpError> {
        let mut length: Option<u64> = None;
        let mut codings = Codings::default();
        let mut hosts = 0;
        let (mut close, mut keep_alive_token) = (false, false);
        let mut expect_continue = false;
        for header in headers {
            let name = header.name;
            let value = trim(header.value);
            if name.eq_ignore_ascii_case("content-length") {
                let n = parse_length(value)?;
                if length.is_some_and(|previous| previous != n) {
                    return Err(bad("conflicting Content-Length fields"));
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                codings.add(value)?;
            } else if name.eq_ignore_ascii_case("host") {
                hosts += 1;
                if !valid_host(value) {
                    return Err(bad("invalid Host"));
                }
            } else if name.eq_ignore_ascii_case("connection") {
                for token in list(value) {
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if name.eq_ignore_ascii_case("expect") {
                if value.eq_ignore_ascii_case(b"100-continue") {
                    // An HTTP/1.0 client cannot have meant it (RFC 9110 §10.1.1).
                    expect_continue = version == Version::Http11;
                } else {
                    return Err(HttpError::new(417, "unsupported expectation"));
                }
            }
        }
        if hosts > 1 {
            return Err(bad("more than one Host field"));
        }
        if hosts == 0 && version == Version::Http11 {
            return Err(bad("HTTP/1.1 request without Host"));
        }
        let framing = match (codings.seen, length) {
            (false, None) => Framing::None,
            (false, Some(n)) => Framing::Length(n),
            (true, Some(_)) => return Err(bad("both Content-Length and Transfer-Encoding")),
            (true, None) if version == Version::Http10 => {
                return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
            }
            (true, None) => codings.framing()?,
        };
        let keep_alive = match version {
            Version::Http11 => !close,
            Version::Http10 => keep_alive_token && !close,
        };
        Ok(Fields { framing, keep_alive, expect_continue })
    }
}

/// The transfer codings of all `Transfer-Encoding` fields, in order.
#[derive(Default)]
struct Codings {
    seen: bool,
    /// A coding nobody registered.
    unknown: bool,
    /// A registered coding other than chunked (we decode none).
    other: bool,
    chunked: usize,
    last_is_chunked: bool,
}

impl Codings {
    fn add(&mut self, value: &[u8]) -> Result<(), HttpError> {
        self.seen = true;
        let mut any = false;
        for coding in value.split(|&b| b == b',') {
            let coding = trim(coding);
            if coding.is_empty() {
                continue;
            }
            any = true;
            // Parameters (`;q=…`) are not allowed on chunked; on others, ignore them.
            let name = coding.split(|&b| b == b';').next().map(trim).unwrap_or_default();
            let chunked = coding.eq_ignore_ascii_case(b"chunked");
            if chunked {
                self.chunked += 1;
            } else if KNOWN_CODINGS.iter().any(|known| name.eq_ignore_ascii_case(known.as_bytes()))
            {
                self.other = true;
            } else {
                self.unknown = true;
            }
            self.last_is_chunked = chunked;
        }
        if any { Ok(()) } else { Err(bad("empty Transfer-Encoding")) }
    }

    fn framing(&self) -> Result<Framing, HttpError> {
        if self.unknown {
            Err(HttpError::new(501, "unsupported transfer coding"))
        } else if !self.last_is_chunked || self.chunked > 1 {
            Err(bad("Transfer-Encoding must end in a single chunked"))
        } else if self.other {
            // `gzip, chunked`: framed correctly, but we would have to decode the gzip.
            Err(HttpError::new(501, "unsupported transfer coding"))
        } else {
            Ok(Framing::Chunked)
        }
    }
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6): no sign, no spaces, no list, no overflow.
fn parse_length(value: &[u8]) -> Result<u64, HttpError> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(bad("invalid Content-Length"));
    }
    Ok(value.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// `Host = uri-host [ ":" port ]` (RFC 9110 §7.2), or empty: a registered name or IPv4
/// address (unreserved characters, sub-delims, percent-encoding), or an IPv6 literal in
/// brackets, then an optional port of digits.
fn valid_host(value: &[u8]) -> bool {
    // The common case, a name or IPv4 address without port or percent-encoding, in one
    // branch-free pass: `:`, `[` and `%` are not HOST bytes, so the general check below
    // would say the same.
    if all_in(value, HOST) {
        return true;
    }
    let Some((host, _port)) = split_port(value) else { return false };
    match host {
        [b'[', literal @ .., b']'] => std::str::from_utf8(literal)
            .is_ok_and(|literal| literal.parse::<std::net::Ipv6Addr>().is_ok()),
        _ => percent_ok(host, HOST),
    }
}

/// The elements of a comma-separated list, trimmed, empty ones skipped.
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim).filter(|token| !token.is_empty())
}

/// `value` without leading and trailing spaces and tabs (OWS).
pub(crate) fn trim(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &value[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Option<(Framing, bool, usize)>, u16> {
        let mut slots = HeaderSlots::new();
        match parse_head(bytes, &mut slots, 8192, 100) {
            Ok(Some((head, len))) => Ok(Some((head.framing(), head.keep_alive(), len))),
            Ok(None) => Ok(None),
            Err(err) => Err(err.status),
        }
    }

    fn status(head: &str) -> u16 {
        match parse(head.as_bytes()) {
            Ok(Some(_)) => 200,
            Ok(None) => 0,
            Err(status) => status,
        }
    }

    #[test]
    fn framing_of_valid_heads() {
        let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(parse(get), Ok(Some((Framing::None, true, get.len()))));
        let post = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0042\r\n\r\n";
        assert_eq!(parse(post), Ok(Some((Framing::Length(42), true, post.len()))));
        let same = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(parse(same).unwrap().unwrap().0, Framing::Length(3));
        let chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n";
        assert_eq!(parse(chunked).unwrap().unwrap().0, Framing::Chunked);
        let http10 = b"GET / HTTP/1.0\r\n\r\n";
        assert_eq!(parse(http10), Ok(Some((Framing::None, false, http10.len()))));
        let kept = b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
        assert!(parse(kept).unwrap().unwrap().1);
        let closed = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n";
        assert!(!parse(closed).unwrap().unwrap().1);
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
    }

    #[test]
    fn smuggling_and_malformed_heads_are_refused() {
        let cases: &[(&str, u16)] = &[
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3x\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", 400),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nNo colon\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            ("GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET foo HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417),
            ("GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: %zz\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: ::\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: [2:1]:80\r\n\r\n", 400),
            ("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET http://a:b/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("CONNECT a:b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET /a{b} HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("\r\nGET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ];
        for (head, expected) in cases {
            assert_eq!(status(head), *expected, "{head:?}");
        }
        assert_eq!(status("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
        assert_eq!(status("CONNECT a.b:443 HTTP/1.1\r\nHost: a.b:443\r\n\r\n"), 200);
        assert_eq!(status("GET /a%20b?c=d/e?f HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"), 200);
        assert_eq!(status("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 200);
        // The version of a partial line is judged once the line is complete.
        assert_eq!(status("GET / HTTP/2"), 0);
        assert_eq!(status("GET http://a/b?c HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
    }

    #[test]
    fn limits_answer_431() {
        let mut slots = HeaderSlots::new();
        let long = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "y".repeat(200));
        assert_eq!(parse_head(long.as_bytes(), &mut slots, 100, 100).unwrap_err().status, 431);
        let mut slots = HeaderSlots::new();
        let partial = "GET / HTTP/1.1\r\nX: y".repeat(10);
        assert_eq!(parse_head(partial.as_bytes(), &mut slots, 100, 100).unwrap_err().status, 431);
        let mut slots = HeaderSlots::new();
        let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", "X: y\r\n".repeat(5));
        assert_eq!(parse_head(many.as_bytes(), &mut slots, 8192, 5).unwrap_err().status, 431);
    }

    #[test]
    fn path_and_query() {
        let mut slots = HeaderSlots::new();
        let bytes = b"GET http://h:80/p/q?x=1 HTTP/1.1\r\nHost: h\r\n\r\n";
        let (head, _) = parse_head(bytes, &mut slots, 8192, 100).unwrap().unwrap();
        assert_eq!((head.path(), head.query()), ("/p/q", Some("x=1")));
        let mut slots = HeaderSlots::new();
        let bytes = b"GET /a?b HTTP/1.1\r\nHost: h\r\nX-Y: z \r\n\r\n";
        let (head, _) = parse_head(bytes, &mut slots, 8192, 100).unwrap().unwrap();
        assert_eq!((head.path(), head.query()), ("/a", Some("b")));
        assert_eq!(head.header("x-y"), Some(&b"z"[..]));
    }
}
