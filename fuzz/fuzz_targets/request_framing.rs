//! Fuzzes reactor's HTTP/1.1 request framing (`reactor::http::parse` and `reactor::http::body`)
//! the way a server drives it.
//!
//! The input's first byte chooses how the stream is cut into reads; the rest is the byte stream
//! a client sends on one connection: pipelined requests. The server loop buffers reads, calls
//! `parse_head` until it has a head, feeds the bytes after it to a `BodyDecoder` until `Done`,
//! and starts over with the next request; the first error ends the connection.
//!
//! Properties, checked on every input:
//!
//! 1. No panic, no hang: every call makes progress (a head has a length, `Data` is not empty,
//!    `NeedMore` consumed all its input), slices handed out lie inside the consumed input, and a
//!    body never exceeds its framing or `MAX_BODY`.
//! 2. Splitting invariance: the stream served whole, one byte per read, and in reads chosen by
//!    the first byte gives the same requests (spans, method, target, version, framing, body
//!    bytes) and the same ending (clean, incomplete, or the same error status).
//! 3. Strictness: every request reactor accepts is also accepted by [`reference`], a small
//!    independent reading of RFC 9112 written here (it never calls reactor), with the same head,
//!    framing and body bytes; every body byte reactor hands out is one the reference decodes.
//!    Reactor may refuse more than the reference (limits, `Expect`, codings it does not
//!    implement). Set `REQUEST_FRAMING_BENIGN=1` to print those refusals to stderr.
//!
//! `REQUEST_FRAMING_TOLERATE=name,name` switches off checks that reactor is known to fail, so
//! that fuzzing can go past them to other bugs; the names are listed on [`Tolerate`]. Nothing is
//! switched off by default.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use reactor::http::body::{BodyDecoder, Decoded};
use reactor::http::parse::{Framing, HeaderSlots, Version, parse_head};

/// Limits small enough that inputs of a few KiB reach them.
const MAX_HEAD: usize = 1024;
const MAX_HEADERS: usize = 32;
const MAX_BODY: u64 = 4096;

/// Byte-per-read serving re-parses the head on every byte: only for streams up to this long.
const BYTEWISE_UP_TO: usize = 2048;

fuzz_target!(init: init(), |data: &[u8]| check(data));

fn init() {
    tolerate();
    reference::self_test();
}

/// Checks switched off by `REQUEST_FRAMING_TOLERATE`, each a disagreement the first runs found
/// (all fixed in reactor since; kept to look past the next one):
///
/// - `target-chars`: request-target bytes outside RFC 3986 (`#`, `"`, `{`, UTF-8, a bad `%`);
/// - `target-form`: any authority in absolute-form (`http:///`, `http://a:b/`), and CONNECT with
///   origin-form or a non-numeric port;
/// - `host-value`: a Host value that is not `uri-host [ ":" port ]` (`a:b`, `%zz`, `::`);
/// - `version-status`, `oversize-status`: see the fields.
#[derive(Debug, Default)]
struct Tolerate {
    /// The reference's checks (`target-chars`, `target-form`, `host-value`).
    reference: reference::Lenience,
    /// `version-status`: a bad version may be answered 505 or 400 depending on the reads.
    version_status: bool,
    /// `oversize-status`: a head over the limit with a syntax error past the limit may be
    /// answered 431 or 400/505 depending on the reads.
    oversize_status: bool,
}

const TOLERABLE: &[&str] =
    &["target-chars", "target-form", "host-value", "version-status", "oversize-status"];

fn tolerate() -> &'static Tolerate {
    static TOLERATE: OnceLock<Tolerate> = OnceLock::new();
    TOLERATE.get_or_init(|| {
        let mut tolerate = Tolerate::default();
        let names = std::env::var("REQUEST_FRAMING_TOLERATE").unwrap_or_default();
        for name in names.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            match name {
                "target-chars" => tolerate.reference.target_chars = true,
                "host-value" => tolerate.reference.host_value = true,
                "target-form" => tolerate.reference.target_form = true,
                "version-status" => tolerate.version_status = true,
                "oversize-status" => tolerate.oversize_status = true,
                _ => panic!("REQUEST_FRAMING_TOLERATE: unknown {name:?}; known: {TOLERABLE:?}"),
            }
        }
        tolerate
    })
}

fn check(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else { return };
    let whole = serve(stream, Reads::whole());
    let chosen = serve(stream, Reads::from_control(control));
    assert_same(stream, &whole, &chosen, "in reads chosen by the control byte");
    if stream.len() <= BYTEWISE_UP_TO {
        let bytewise = serve(stream, Reads::bytewise());
        assert_same(stream, &whole, &bytewise, "one byte per read");
    }
    let expected = reference::parse(stream, &tolerate().reference);
    report_benign(stream, &whole, &expected);
    compare(stream, &whole, &expected);
}

/// How the stream is cut into reads.
struct Reads {
    /// The largest read; `usize::MAX` for the whole stream at once.
    max: usize,
    /// xorshift32 state (never 0).
    state: u32,
}

impl Reads {
    fn whole() -> Self {
        Reads { max: usize::MAX, state: 1 }
    }

    fn bytewise() -> Self {
        Reads { max: 1, state: 1 }
    }

    /// The low 3 bits pick the largest read, the byte seeds the sizes.
    fn from_control(control: u8) -> Self {
        let max = [1, 2, 3, 5, 8, 16, 64, 512][usize::from(control & 7)];
        Reads { max, state: 0x9e37_79b9 ^ u32::from(control) }
    }

    fn next(&mut self) -> usize {
        if self.max == usize::MAX {
            return usize::MAX;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        1 + self.state as usize % self.max
    }
}

/// A request as the server saw it. Offsets are positions in the stream.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    start: usize,
    head_end: usize,
    method: String,
    target: String,
    minor: u8,
    framing: Framing,
    body: Vec<u8>,
    /// Where the body ended; `None` if it did not (error, or the stream ended).
    end: Option<usize>,
}

/// How the connection ended.
#[derive(Clone, Copy, Debug)]
enum End {
    /// The stream ended between two requests.
    Clean,
    /// The stream ended inside a head or a body.
    Incomplete,
    /// An error: the status and reason.
    Refused(u16, &'static str),
}

/// The same ending; errors compare by status only.
impl PartialEq for End {
    fn eq(&self, other: &End) -> bool {
        match (self, other) {
            (End::Clean, End::Clean) | (End::Incomplete, End::Incomplete) => true,
            (End::Refused(a, _), End::Refused(b, _)) => {
                let tolerate = tolerate();
                let statuses = [*a.min(b), *a.max(b)];
                a == b
                    || (tolerate.version_status && statuses == [400, 505])
                    || (tolerate.oversize_status && matches!(statuses, [400, 431] | [431, 505]))
            }
            _ => false,
        }
    }
}

#[derive(Debug, PartialEq)]
struct Outcome {
    requests: Vec<Request>,
    end: End,
}

/// The connection: the stream, what has been read of it, and the unconsumed buffer.
struct Conn<'s> {
    stream: &'s [u8],
    read: usize,
    reads: Reads,
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    offset: usize,
}

impl Conn<'_> {
    /// Reads the next piece into the buffer; false at the end of the stream.
    fn read(&mut self) -> bool {
        let left = self.stream.len() - self.read;
        if left == 0 {
            return false;
        }
        let n = self.reads.next().min(left);
        self.buf.extend_from_slice(&self.stream[self.read..self.read + n]);
        self.read += n;
        true
    }

    fn consume(&mut self, n: usize) {
        self.buf.drain(..n);
        self.offset += n;
    }
}

/// Serves the whole stream: requests until the first error or the end of the stream.
fn serve(stream: &[u8], reads: Reads) -> Outcome {
    let mut conn = Conn { stream, read: 0, reads, buf: Vec::new(), offset: 0 };
    let mut requests = Vec::new();
    let end = loop {
        if let Err(end) = serve_one(&mut conn, &mut requests) {
            break end;
        }
    };
    Outcome { requests, end }
}

/// One request: its head, then its body. Pushes the request once it has a head.
fn serve_one(conn: &mut Conn<'_>, requests: &mut Vec<Request>) -> Result<(), End> {
    let start = conn.offset;
    let (mut request, len) = loop {
        let mut slots = HeaderSlots::new();
        match parse_head(&conn.buf, &mut slots, MAX_HEAD, MAX_HEADERS) {
            Ok(Some((head, len))) => {
                assert!(len > 0 && len <= conn.buf.len(), "head length {len} out of the buffer");
                assert!(len <= MAX_HEAD, "a head of {len} bytes is over max_head");
                // Every accessor, for panics.
                let _ = (head.path(), head.query(), head.header("host"), head.keep_alive());
                let _ = (head.headers().count(), head.expects_continue());
                let minor = match head.version() {
                    Version::Http10 => 0,
                    Version::Http11 => 1,
                };
                let request = Request {
                    start,
                    head_end: start + len,
                    method: head.method().to_owned(),
                    target: head.target().to_owned(),
                    minor,
                    framing: head.framing(),
                    body: Vec::new(),
                    end: None,
                };
                break (request, len);
            }
            Ok(None) => {
                assert!(conn.buf.len() <= MAX_HEAD, "parse_head waits past max_head");
                if !conn.read() {
                    return Err(if conn.buf.is_empty() { End::Clean } else { End::Incomplete });
                }
            }
            Err(err) => return Err(End::Refused(err.status, err.reason)),
        }
    };
    conn.consume(len);
    let result = match BodyDecoder::new(request.framing, MAX_BODY) {
        None => {
            assert_eq!(request.framing, Framing::None, "no decoder for a body");
            Ok(())
        }
        Some(Err(err)) => {
            assert!(
                matches!(request.framing, Framing::Length(n) if n > MAX_BODY),
                "BodyDecoder::new refused {:?} with {err}",
                request.framing
            );
            Err(End::Refused(err.status, err.reason))
        }
        Some(Ok(mut decoder)) => decode_body(conn, &mut decoder, &mut request.body),
    };
    if result.is_ok() {
        request.end = Some(conn.offset);
        if let Framing::Length(n) = request.framing {
            assert_eq!(request.body.len() as u64, n, "a Content-Length body of another length");
        }
    }
    requests.push(request);
    result
}

/// Feeds the buffer (and more reads) to the decoder until `Done`.
fn decode_body(
    conn: &mut Conn<'_>,
    decoder: &mut BodyDecoder,
    body: &mut Vec<u8>,
) -> Result<(), End> {
    enum Next {
        Again,
        Done,
        Read,
    }
    loop {
        let input = &conn.buf[..];
        let (used, decoded) =
            decoder.decode(input).map_err(|err| End::Refused(err.status, err.reason))?;
        assert!(used <= input.len(), "decode used {used} of {} bytes", input.len());
        let next = match decoded {
            Decoded::Data(data) => {
                assert!(!data.is_empty(), "empty Data: the caller would spin");
                let consumed = input[..used].as_ptr_range();
                let handed = data.as_ptr_range();
                assert!(
                    consumed.start <= handed.start && handed.end <= consumed.end,
                    "Data is not inside the {used} bytes consumed"
                );
                body.extend_from_slice(data);
                assert!(body.len() as u64 <= MAX_BODY, "a body over max_body handed out");
                Next::Again
            }
            Decoded::Done => {
                assert!(decoder.is_done(), "Done but not is_done()");
                Next::Done
            }
            Decoded::NeedMore => {
                assert_eq!(used, input.len(), "NeedMore left input unconsumed");
                assert!(!decoder.is_done(), "NeedMore but is_done()");
                Next::Read
            }
        };
        conn.consume(used);
        match next {
            Next::Again => {}
            Next::Done => return Ok(()),
            Next::Read if conn.read() => {}
            Next::Read => return Err(End::Incomplete),
        }
    }
}

fn assert_same(stream: &[u8], whole: &Outcome, other: &Outcome, how: &str) {
    assert!(
        whole == other,
        "served whole vs {how}: different outcomes\nwhole: {whole:?}\n{how}: {other:?}\nstream: {}",
        show(stream)
    );
}

/// Property 3: what reactor accepted, the reference accepts the same way.
fn compare(stream: &[u8], got: &Outcome, want: &reference::Outcome) {
    for (k, request) in got.requests.iter().enumerate() {
        let head = show(&stream[request.start..request.head_end]);
        let Some(expected) = want.requests.get(k) else {
            panic!(
                "reactor accepts the head of request {k}, the reference refuses it ({}):\n{head}",
                want.end
            );
        };
        assert_eq!(
            (request.start, request.head_end),
            (expected.start, expected.head_end),
            "request {k}: different head spans:\n{head}"
        );
        let framing = match expected.framing {
            reference::Framing::None => Framing::None,
            reference::Framing::Length(n) => Framing::Length(n),
            reference::Framing::Chunked => Framing::Chunked,
        };
        assert_eq!(
            (request.method.as_bytes(), request.target.as_bytes(), request.minor, request.framing),
            (&expected.method[..], &expected.target[..], expected.minor, framing),
            "request {k}: different heads:\n{head}"
        );
        match request.end {
            Some(end) => {
                assert!(
                    expected.end == Some(end),
                    "request {k}: reactor accepts the body ending at {end}, the reference {} ({})\n\
                     stream: {}",
                    expected.end.map_or("does not".into(), |end| format!("ends it at {end}")),
                    want.end,
                    show(stream)
                );
                assert!(
                    request.body == expected.body,
                    "request {k}: different bodies: reactor {}, reference {}",
                    show(&request.body),
                    show(&expected.body)
                );
            }
            None => assert!(
                expected.body.starts_with(&request.body),
                "request {k}: reactor hands out body bytes {} the reference does not decode ({}; \
                 it decodes {})\nstream: {}",
                show(&request.body),
                want.end,
                show(&expected.body),
                show(stream)
            ),
        }
    }
}

/// With `REQUEST_FRAMING_BENIGN` set: prints, on one line, each request reactor refuses that
/// the reference accepts (the head, or the whole request if reactor refused its body).
fn report_benign(stream: &[u8], got: &Outcome, want: &reference::Outcome) {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    if !*ENABLED.get_or_init(|| std::env::var_os("REQUEST_FRAMING_BENIGN").is_some()) {
        return;
    }
    let End::Refused(status, reason) = got.end else { return };
    let (k, in_body) = match got.requests.last() {
        Some(last) if last.end.is_none() => (got.requests.len() - 1, true),
        _ => (got.requests.len(), false),
    };
    let Some(expected) = want.requests.get(k) else { return };
    if in_body && expected.end.is_none() {
        return;
    }
    let end = expected.end.unwrap_or(expected.head_end).min(expected.start + 400);
    let part = if in_body { "body" } else { "head" };
    eprintln!("BENIGN {status} {reason:?} ({part}): {}", show(&stream[expected.start..end]));
}

fn show(bytes: &[u8]) -> String {
    const MAX: usize = 600;
    let mut shown = bytes[..bytes.len().min(MAX)].escape_ascii().to_string();
    if bytes.len() > MAX {
        shown += &format!("... ({} bytes)", bytes.len());
    }
    format!("\"{shown}\"")
}

/// An independent, deliberately plain reading of the HTTP/1.1 request grammar (RFC 9112, with
/// RFC 9110 for the fields and RFC 3986 for the request-target), strict where the RFCs allow a
/// choice, with two leniencies httparse also has: bare LF line ends in the head, and empty
/// lines before a request-line (§2.2). It knows no limits and decodes only `chunked`.
mod reference {
    use std::fmt;
    use std::net::Ipv6Addr;

    /// Checks switched off (see `Tolerate`).
    #[derive(Debug, Default)]
    pub struct Lenience {
        /// `target-chars`: any VCHAR or obs-text in the request-target, not just RFC 3986's.
        pub target_chars: bool,
        /// `target-form`: any authority in absolute-form (empty, bad port); CONNECT with
        /// origin-form, or with anything but `/` after the `:`.
        pub target_form: bool,
        /// `host-value`: any Host field value, not just `uri-host [ ":" port ]`.
        pub host_value: bool,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Framing {
        None,
        /// Saturates at `u64::MAX`: such a body never completes anyway.
        Length(u64),
        Chunked,
    }

    #[derive(Debug)]
    pub struct Request {
        pub start: usize,
        pub head_end: usize,
        pub method: Vec<u8>,
        pub target: Vec<u8>,
        pub minor: u8,
        pub framing: Framing,
        /// The body decoded so far (all of it if `end` is set).
        pub body: Vec<u8>,
        pub end: Option<usize>,
    }

    #[derive(Debug, PartialEq, Eq)]
    pub enum End {
        Clean,
        Incomplete,
        Invalid { at: usize, why: &'static str },
    }

    impl fmt::Display for End {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                End::Clean => write!(f, "the stream ends cleanly"),
                End::Incomplete => write!(f, "the stream ends inside a request"),
                End::Invalid { at, why } => write!(f, "invalid at byte {at}: {why}"),
            }
        }
    }

    #[derive(Debug)]
    pub struct Outcome {
        /// Every request whose head is valid; the last one may have a bad or unfinished body.
        pub requests: Vec<Request>,
        pub end: End,
    }

    /// Why parsing stopped.
    enum Stop {
        Incomplete,
        Invalid(usize, &'static str),
    }

    type Step<T> = Result<T, Stop>;

    struct Cursor<'s> {
        s: &'s [u8],
        pos: usize,
        lenience: &'s Lenience,
    }

    impl<'s> Cursor<'s> {
        fn peek(&self) -> Step<u8> {
            self.s.get(self.pos).copied().ok_or(Stop::Incomplete)
        }

        fn invalid<T>(&self, why: &'static str) -> Step<T> {
            Err(Stop::Invalid(self.pos, why))
        }

        fn expect(&mut self, byte: u8, why: &'static str) -> Step<()> {
            if self.peek()? != byte {
                return self.invalid(why);
            }
            self.pos += 1;
            Ok(())
        }

        /// The (possibly empty) run of bytes from here that satisfy `pred`.
        fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'s [u8] {
            let start = self.pos;
            while self.s.get(self.pos).is_some_and(|&b| pred(b)) {
                self.pos += 1;
            }
            &self.s[start..self.pos]
        }

        /// `1*tchar`, or `why`.
        fn token(&mut self, why: &'static str) -> Step<&'s [u8]> {
            let token = self.take_while(is_tchar);
            if token.is_empty() {
                self.peek()?;
                return self.invalid(why);
            }
            Ok(token)
        }

        /// OWS / BWS.
        fn ows(&mut self) {
            self.take_while(|b| b == b' ' || b == b'\t');
        }

        fn crlf(&mut self) -> Step<()> {
            self.expect(b'\r', "expected CRLF")?;
            self.expect(b'\n', "CR not followed by LF")
        }

        /// A line end in the head: CRLF, or a bare LF (RFC 9112 §2.2 allows recognising it).
        fn head_eol(&mut self) -> Step<()> {
            match self.peek()? {
                b'\r' => {
                    self.pos += 1;
                    self.expect(b'\n', "CR not followed by LF")
                }
                b'\n' => {
                    self.pos += 1;
                    Ok(())
                }
                _ => self.invalid("expected the end of the line"),
            }
        }
    }

    pub fn parse(stream: &[u8], lenience: &Lenience) -> Outcome {
        let mut c = Cursor { s: stream, pos: 0, lenience };
        let mut requests: Vec<Request> = Vec::new();
        let stop = loop {
            if c.pos == stream.len() {
                return Outcome { requests, end: End::Clean };
            }
            let start = c.pos;
            let head = match head(&mut c) {
                Ok(head) => head,
                Err(stop) => break stop,
            };
            requests.push(Request {
                start,
                head_end: c.pos,
                method: head.method,
                target: head.target,
                minor: head.minor,
                framing: head.framing,
                body: Vec::new(),
                end: None,
            });
            let request = requests.last_mut().expect("just pushed");
            match body(&mut c, head.framing, &mut request.body) {
                Ok(()) => request.end = Some(c.pos),
                Err(stop) => break stop,
            }
        };
        let end = match stop {
            Stop::Incomplete => End::Incomplete,
            Stop::Invalid(at, why) => End::Invalid { at, why },
        };
        Outcome { requests, end }
    }

    struct Head {
        method: Vec<u8>,
        target: Vec<u8>,
        minor: u8,
        framing: Framing,
    }

    /// `request-line *( field-line CRLF ) CRLF`, and what the fields say about framing.
    fn head(c: &mut Cursor<'_>) -> Step<Head> {
        while matches!(c.peek()?, b'\r' | b'\n') {
            c.head_eol()?;
        }
        // request-line = method SP request-target SP HTTP-version
        let method = c.token("method is not a token")?;
        c.expect(b' ', "method not followed by one SP")?;
        let target = c.take_while(|b| b > b' ' && b != 0x7f);
        if target.is_empty() {
            c.peek()?;
            return c.invalid("empty or malformed request-target");
        }
        let target_at = c.pos - target.len();
        c.expect(b' ', "request-target not followed by one SP")?;
        for &b in b"HTTP/1." {
            c.expect(b, "HTTP-version is not HTTP/1.0 or HTTP/1.1")?;
        }
        let minor = match c.peek()? {
            b'0' => 0,
            b'1' => 1,
            _ => return c.invalid("HTTP-version is not HTTP/1.0 or HTTP/1.1"),
        };
        c.pos += 1;
        c.head_eol()?;
        let fields = fields(c, false)?;
        if !valid_target(method, target, c.lenience) {
            return Err(Stop::Invalid(target_at, "request-target in no form allowed"));
        }
        let framing = framing(c, &fields, minor)?;
        Ok(Head { method: method.to_vec(), target: target.to_vec(), minor, framing })
    }

    /// Field lines up to and including the empty line: `field-name ":" OWS field-value OWS`.
    /// `crlf_only` for trailers, where the body's strict CRLF rule applies.
    fn fields<'s>(c: &mut Cursor<'s>, crlf_only: bool) -> Step<Vec<(&'s [u8], &'s [u8])>> {
        let mut fields = Vec::new();
        loop {
            match c.peek()? {
                b'\r' | b'\n' => {
                    if crlf_only {
                        c.crlf()?
                    } else {
                        c.head_eol()?
                    }
                    return Ok(fields);
                }
                b' ' | b'\t' => return c.invalid("whitespace before a field line (obs-fold?)"),
                _ => {}
            }
            let name = c.token("field-name is not a token")?;
            c.expect(b':', "field-name not followed by ':'")?;
            c.ows();
            let value = c.take_while(|b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80);
            if crlf_only {
                c.crlf()?
            } else {
                c.head_eol()?
            }
            fields.push((name, trim(value)));
        }
    }

    /// RFC 9112 §6.1–6.3 and §3.2 (Host), for a request.
    fn framing(c: &Cursor<'_>, fields: &[(&[u8], &[u8])], minor: u8) -> Step<Framing> {
        let invalid = |why| Err(Stop::Invalid(c.pos, why));
        let mut hosts = Vec::new();
        let mut length: Option<u64> = None;
        let mut transfer_encoding = false;
        let mut codings: Vec<&[u8]> = Vec::new();
        for &(name, value) in fields {
            if name.eq_ignore_ascii_case(b"host") {
                hosts.push(value);
            } else if name.eq_ignore_ascii_case(b"content-length") {
                // Content-Length = 1*DIGIT; several fields only with the same value.
                if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                    return invalid("Content-Length is not 1*DIGIT");
                }
                let n = value
                    .iter()
                    .fold(0u64, |n, &d| n.saturating_mul(10).saturating_add(u64::from(d - b'0')));
                if length.is_some_and(|m| m != n) {
                    return invalid("Content-Length fields differ");
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                transfer_encoding = true;
                codings.extend(value.split(|&b| b == b',').map(trim).filter(|c| !c.is_empty()));
            }
        }
        match hosts[..] {
            [] if minor == 1 => return invalid("HTTP/1.1 without Host"),
            [] => {}
            [host] if c.lenience.host_value || host_port(host, false, false).is_some() => {}
            [_] => return invalid("Host is not uri-host [ \":\" port ]"),
            _ => return invalid("more than one Host"),
        }
        if !transfer_encoding {
            return Ok(length.map_or(Framing::None, Framing::Length));
        }
        if length.is_some() {
            return invalid("both Content-Length and Transfer-Encoding");
        }
        if minor == 0 {
            return invalid("Transfer-Encoding in HTTP/1.0");
        }
        // chunked, final and once; we decode no other coding, so only `chunked` alone.
        match codings[..] {
            [coding] if coding.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
            _ => invalid("Transfer-Encoding is not exactly chunked"),
        }
    }

    fn body(c: &mut Cursor<'_>, framing: Framing, body: &mut Vec<u8>) -> Step<()> {
        match framing {
            Framing::None => Ok(()),
            Framing::Length(n) => data(c, n, body),
            Framing::Chunked => chunked(c, body),
        }
    }

    /// `n` bytes of data (what there is of them if the stream ends first).
    fn data(c: &mut Cursor<'_>, n: u64, body: &mut Vec<u8>) -> Step<()> {
        let available = c.s.len() - c.pos;
        let take = usize::try_from(n).map_or(available, |n| n.min(available));
        body.extend_from_slice(&c.s[c.pos..c.pos + take]);
        c.pos += take;
        if (take as u64) < n { Err(Stop::Incomplete) } else { Ok(()) }
    }

    /// RFC 9112 §7.1: `*chunk last-chunk trailer-section CRLF`.
    fn chunked(c: &mut Cursor<'_>, body: &mut Vec<u8>) -> Step<()> {
        loop {
            // chunk-size = 1*HEXDIG (at most 16 digits, so it fits u64)
            let digits = c.take_while(|b| b.is_ascii_hexdigit());
            if digits.is_empty() {
                c.peek()?;
                return c.invalid("chunk-size is not 1*HEXDIG");
            }
            if digits.len() > 16 {
                return c.invalid("chunk-size over 16 digits");
            }
            let size = digits.iter().fold(0u64, |n, &d| n << 4 | hex(d));
            chunk_ext(c)?;
            c.crlf()?;
            if size == 0 {
                break;
            }
            data(c, size, body)?;
            c.crlf()?;
        }
        fields(c, true)?;
        Ok(())
    }

    /// `chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )`,
    /// `chunk-ext-val = token / quoted-string`.
    fn chunk_ext(c: &mut Cursor<'_>) -> Step<()> {
        loop {
            let before = c.pos;
            c.ows();
            if c.peek()? != b';' {
                c.pos = before;
                return Ok(());
            }
            c.pos += 1;
            c.ows();
            c.token("chunk-ext-name is not a token")?;
            let after_name = c.pos;
            c.ows();
            if c.peek()? != b'=' {
                c.pos = after_name;
                continue;
            }
            c.pos += 1;
            c.ows();
            if c.peek()? == b'"' {
                quoted_string(c)?;
            } else {
                c.token("chunk-ext-val is neither token nor quoted-string")?;
            }
        }
    }

    /// `DQUOTE *( qdtext / quoted-pair ) DQUOTE`.
    fn quoted_string(c: &mut Cursor<'_>) -> Step<()> {
        c.expect(b'"', "expected DQUOTE")?;
        loop {
            let b = c.peek()?;
            c.pos += 1;
            match b {
                b'"' => return Ok(()),
                b'\\' => {
                    // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                    let q = c.peek()?;
                    if !(q == b'\t' || (b' '..=b'~').contains(&q) || q >= 0x80) {
                        return c.invalid("bad quoted-pair");
                    }
                    c.pos += 1;
                }
                // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
                b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => {}
                _ => {
                    c.pos -= 1;
                    return c.invalid("byte not allowed in a quoted-string");
                }
            }
        }
    }

    /// RFC 9112 §3.2: origin-form, absolute-form (http and https, non-empty host: RFC 9110
    /// §4.2), authority-form for CONNECT and only it (RFC 9110 §9.3.6), asterisk-form for
    /// OPTIONS and only it.
    fn valid_target(method: &[u8], target: &[u8], lenience: &Lenience) -> bool {
        let any = lenience.target_chars;
        let chars = |s: &[u8], extra: &[u8]| any || uri_chars(s, extra);
        let lax = lenience.target_form;
        if method == b"CONNECT" {
            let lax_form = || {
                let origin = target.first() == Some(&b'/');
                origin || (target.contains(&b':') && !target.contains(&b'/'))
            };
            return host_port(target, true, any).is_some() || (lax && lax_form());
        }
        if target == b"*" {
            return method == b"OPTIONS";
        }
        if target.first() == Some(&b'/') {
            let (path, query) = split(target, b'?');
            return chars(path, b":@/") && query.is_none_or(|q| chars(q, b":@/?"));
        }
        let lower = target.to_ascii_lowercase();
        let skip = if lower.starts_with(b"http://") {
            7
        } else if lower.starts_with(b"https://") {
            8
        } else {
            return false;
        };
        if lax {
            return chars(&target[skip..], b":@/?[]");
        }
        let (rest, query) = split(&target[skip..], b'?');
        let slash = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(slash);
        let host_and_port = match split(authority, b'@') {
            (userinfo, Some(host_and_port)) if chars(userinfo, b":") => host_and_port,
            (_, Some(_)) => return false,
            (host_and_port, None) => host_and_port,
        };
        host_port(host_and_port, false, any).is_some_and(|host| !host.is_empty())
            && chars(path, b":@/")
            && query.is_none_or(|q| chars(q, b":@/?"))
    }

    /// `uri-host [ ":" port ]` (the `":" port` required if `port_required`); the host. With
    /// `any_chars`, a reg-name may have any byte but `:`.
    fn host_port(value: &[u8], port_required: bool, any_chars: bool) -> Option<&[u8]> {
        let split_at = if value.first() == Some(&b'[') {
            value.iter().position(|&b| b == b']')? + 1
        } else {
            value.iter().position(|&b| b == b':').unwrap_or(value.len())
        };
        let (host, rest) = value.split_at(split_at);
        let port_ok = match rest {
            [] => !port_required,
            [b':', port @ ..] => port.iter().all(u8::is_ascii_digit),
            _ => false,
        };
        let host_ok = match host {
            [b'[', literal @ .., b']'] => ip_literal(literal),
            // reg-name (an IPv4address is one too)
            _ => any_chars || uri_chars(host, b""),
        };
        (port_ok && host_ok).then_some(host)
    }

    /// `IPv6address / IPvFuture`.
    fn ip_literal(literal: &[u8]) -> bool {
        if let [b'v' | b'V', rest @ ..] = literal {
            let (version, text) = split(rest, b'.');
            return !version.is_empty()
                && version.iter().all(u8::is_ascii_hexdigit)
                && text.is_some_and(|t| !t.is_empty() && uri_chars_no_pct(t, b":"));
        }
        std::str::from_utf8(literal).is_ok_and(|s| s.parse::<Ipv6Addr>().is_ok())
    }

    /// `*( unreserved / pct-encoded / sub-delims / extra )`.
    fn uri_chars(s: &[u8], extra: &[u8]) -> bool {
        let mut i = 0;
        while i < s.len() {
            if s[i] == b'%' {
                let pct = s.get(i + 1..i + 3);
                if !pct.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
            } else if uri_chars_no_pct(&s[i..=i], extra) {
                i += 1;
            } else {
                return false;
            }
        }
        true
    }

    /// `*( unreserved / sub-delims / extra )`.
    fn uri_chars_no_pct(s: &[u8], extra: &[u8]) -> bool {
        s.iter().all(|&b| {
            b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) || extra.contains(&b)
        })
    }

    fn split(s: &[u8], at: u8) -> (&[u8], Option<&[u8]>) {
        match s.iter().position(|&b| b == at) {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        }
    }

    fn is_tchar(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
    }

    fn hex(d: u8) -> u64 {
        u64::from(match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => d - b'A' + 10,
        })
    }

    fn trim(value: &[u8]) -> &[u8] {
        let ows = |b: &u8| *b == b' ' || *b == b'\t';
        let start = value.iter().position(|b| !ows(b)).unwrap_or(value.len());
        let end = value.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
        &value[start..end]
    }

    /// Checks the reference itself on known cases, once per process.
    pub fn self_test() {
        let post =
            |fields: &str, body: &str| format!("POST / HTTP/1.1\r\nHost: a\r\n{fields}\r\n{body}");
        let chunked = |body: &str| post("Transfer-Encoding: chunked\r\n", body);
        let valid: Vec<(String, &str)> = vec![
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n".into(), ""),
            ("\r\n\nGET /a/b?c=d/?e HTTP/1.1\nHost: a.example:8080\n\n".into(), ""),
            ("GET / HTTP/1.0\r\n\r\n".into(), ""),
            ("GET / HTTP/1.1\r\nHost: a\r\nX:\r\nY: \t v\u{e9} w \t\r\n\r\n".into(), ""),
            ("OPTIONS * HTTP/1.1\r\nHost: \r\n\r\n".into(), ""),
            ("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n".into(), ""),
            ("GET http://u@a.example/x%20y?q HTTP/1.1\r\nHost: [::1]:80\r\n\r\n".into(), ""),
            (post("Content-Length: 5\r\ncontent-length: 05\r\n", "hello"), "hello"),
            (post("Transfer-Encoding: ,Chunked ,\r\n", "0\r\n\r\n"), ""),
            (
                chunked("5 ; a = b ;c=\"d\\\"e\"\r\nhello\r\n1;x\r\n!\r\n00\r\nT: v\r\n\r\n"),
                "hello!",
            ),
        ];
        for (input, body) in &valid {
            let outcome = parse(input.as_bytes(), &Lenience::default());
            let got: Vec<u8> = outcome.requests.iter().flat_map(|r| r.body.clone()).collect();
            assert!(
                outcome.end == End::Clean && outcome.requests.len() == 1 && got == body.as_bytes(),
                "reference self-test: {input:?} should be valid: {outcome:?}"
            );
        }
        let invalid: Vec<String> = [
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a:b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: %zz\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n",
            "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
            "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.2\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\rHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
            "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /a\"b HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET a HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
            "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ]
        .into_iter()
        .map(String::from)
        .chain([
            post("Content-Length: 1\r\nContent-Length: 2\r\n", "ab"),
            post("Content-Length: +1\r\n", "a"),
            post("Content-Length: 1, 1\r\n", "a"),
            post("Content-Length: 1\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"),
            post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"),
            post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"),
        ])
        .chain(
            [
                "5 \r\nhello\r\n0\r\n\r\n",
                "5;\r\nhello\r\n0\r\n\r\n",
                "5;a \r\nhello\r\n0\r\n\r\n",
                "5;a=\r\nhello\r\n0\r\n\r\n",
                "5;a=\"b\r\nhello\r\n0\r\n\r\n",
                "5\nhello\r\n0\r\n\r\n",
                "5\r\nhelloX\r\n0\r\n\r\n",
                "5\r\nhello\n0\r\n\r\n",
                "0x5\r\nhello\r\n0\r\n\r\n",
                "-5\r\nhello\r\n0\r\n\r\n",
                "00000000000000005\r\nhello\r\n0\r\n\r\n",
                "0\r\nT: v\n\r\n",
                "0\r\nBad Trailer\r\n\r\n",
                "0\r\n\n",
            ]
            .into_iter()
            .map(chunked),
        )
        .collect();
        for input in &invalid {
            let outcome = parse(input.as_bytes(), &Lenience::default());
            assert!(
                matches!(outcome.end, End::Invalid { .. }),
                "reference self-test: {input:?} should be invalid: {outcome:?}"
            );
        }
    }
}
