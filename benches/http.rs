//! Micro-benchmarks of the HTTP layer, from the request parser to a whole request/response
//! round trip through the loop: `cargo bench --bench http` (under a minute), or
//! `cargo bench --bench http -- --quick` (a few seconds).
//!
//! - `http/parse_head`: [`parse_head`] (httparse plus the framing and target rules) on one
//!   complete head, with the server's default limits: `wrk GET` is the head `wrk` sends
//!   (`GET /plaintext`, `Host` only, 50 bytes); `browser GET` a browser's navigation with 10
//!   header fields and a cookie (about 500 bytes); `POST Content-Length` a JSON upload's head
//!   (with its body after it in the buffer, as the server sees it). Time per iteration is the
//!   cost of one head.
//! - `http/pipelined_heads`: 16 `wrk GET` heads in one buffer, parsed one after the other the
//!   way the server walks one read: 16 heads per iteration.
//! - `http/body`: [`BodyDecoder`] on a whole body: `Content-Length 1 KiB` (one call);
//!   `chunked 16 x 1 KiB` (16 chunks of 1 KiB, each size line with two extensions, one of them
//!   quoted, then the last chunk and a trailer field: every framing byte goes through the
//!   byte-at-a-time state machine); `chunked 16 x 1 KiB, 1 byte per call` (the same body fed one
//!   byte per `decode` call: a client trickling its upload, the worst case). Throughput is the
//!   body's bytes (the data handed out), not the framing's.
//! - `http/date`: [`imf_fixdate`], what the server's `Date` cache pays once a second.
//! - `http/server`: whole round trips on loopback TCP, in this thread: an [`EventLoop`] with a
//!   [`Server`] answering `GET /plaintext` with `Hello, World!` (the 115-byte response of
//!   `examples/http.rs`), and a non-blocking std `TcpStream` client that writes the requests
//!   and then alternates `run_nowait` with non-blocking reads until every response byte is in.
//!   One request per round trip, and 16 pipelined in one write. Beside each, the floor: the
//!   same client against a bare [`StreamHandler`] that answers every request with the same 115
//!   bytes, copied, without parsing anything (one write per read, as the server does). The
//!   difference is the HTTP layer's own cost per request: parsing, the handler call, the
//!   `Response` and its serialisation, the pipeline's bookkeeping. Both include the client's
//!   `write` and `read` and the kernel's loopback TCP in both directions.
//! - `http/stream_write`: [`Core::write`] of 115 bytes (one response) to a connected socket,
//!   straight to the kernel since nothing is queued: on a Unix-domain stream and on loopback
//!   TCP (`TCP_NODELAY`, as the server's streams). The peer drains after every 32 writes,
//!   outside the timing. Beside each, `writev(2)` alone of the same 115 bytes on the same kind
//!   of socket, from std, so the difference is the loop's own cost per write.
//!
//! Setup (sockets, loops, connections, inputs) is outside the timed part, and every input is
//! checked once before it is measured (the framing a head yields, the body a decoder hands
//! out, the exact response the server sends).

use std::cell::Cell;
use std::hint::black_box;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use reactor::http::body::{BodyDecoder, Decoded};
use reactor::http::date::imf_fixdate;
use reactor::http::parse::{Framing, HeaderSlots, parse_head};
use reactor::http::{Request, Response, Server, ServerConfig};
use reactor::{Conn, Core, EventLoop, Stream, StreamHandler};

/// The head `wrk` sends for `wrk http://127.0.0.1:8080/plaintext`.
const WRK_GET: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

/// A browser's navigation: 10 header fields, about 500 bytes.
const BROWSER_GET: &[u8] = b"GET /articles/2026/event-loops?page=2&sort=new HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.example.com/articles/2026\r\n\
Connection: keep-alive\r\n\
Cookie: session=3f9a1c0e8b7d4e2a9c6b5d4e3f2a1b0c; theme=dark; lang=en-US; consent=1\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Mode: navigate\r\n\
\r\n";

/// A JSON upload: its head, then its 27-byte body.
const POST_LENGTH: &[u8] = b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
Content-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"message\":\"Hello, World!\"}";

/// Requests per round trip in the pipelined benchmarks, as `benches/compare/http.rs` sends them.
const PIPELINE: usize = 16;

/// The response the server and the floor send for `/plaintext`, and the write benchmarks'
/// payload: status line, `Date`, `Content-Type`, `Content-Length`, `Hello, World!`.
const RESPONSE_LEN: usize = 115;

/// The server's default limits, which `parse_head` is called with.
fn limits() -> (usize, usize) {
    let config = ServerConfig::default();
    (config.max_head, config.max_headers)
}

/// Parses the head at the start of `bytes`: its framing and length.
fn parse_one(bytes: &[u8], max_head: usize, max_headers: usize) -> (Framing, usize) {
    let mut slots = HeaderSlots::new();
    let (head, len) = parse_head(bytes, &mut slots, max_head, max_headers).unwrap().unwrap();
    (head.framing(), len)
}

/// Parses every head in `buf` (requests without bodies), as the server walks one read; returns
/// how many there were.
fn parse_all(buf: &[u8], max_head: usize, max_headers: usize) -> usize {
    let mut rest = buf;
    let mut heads = 0;
    while !rest.is_empty() {
        let mut slots = HeaderSlots::new();
        let Ok(Some((head, len))) = parse_head(rest, &mut slots, max_head, max_headers) else {
            panic!("not a complete head")
        };
        black_box(head.path());
        rest = &rest[len..];
        heads += 1;
    }
    heads
}

fn parse_benches(c: &mut Criterion) {
    let (max_head, max_headers) = limits();
    let heads: [(&str, &[u8], Framing); 3] = [
        ("wrk GET", WRK_GET, Framing::None),
        ("browser GET", BROWSER_GET, Framing::None),
        ("POST Content-Length", POST_LENGTH, Framing::Length(27)),
    ];

    let mut group = c.benchmark_group("http/parse_head");
    configure(&mut group);
    group.throughput(Throughput::Elements(1));
    for (name, bytes, framing) in heads {
        let (got, len) = parse_one(bytes, max_head, max_headers);
        assert_eq!(got, framing, "{name}");
        let body = if let Framing::Length(n) = framing { n as usize } else { 0 };
        assert_eq!(len + body, bytes.len(), "{name}");
        group.bench_function(name, |b| {
            b.iter(|| parse_one(black_box(bytes), max_head, max_headers))
        });
    }
    group.finish();

    let pipelined = WRK_GET.repeat(PIPELINE);
    assert_eq!(parse_all(&pipelined, max_head, max_headers), PIPELINE);
    let mut group = c.benchmark_group("http/pipelined_heads");
    configure(&mut group);
    group.throughput(Throughput::Elements(PIPELINE as u64));
    group.bench_function("16 x wrk GET, one buffer", |b| {
        b.iter(|| parse_all(black_box(&pipelined), max_head, max_headers))
    });
    group.finish();
}

/// Body bytes per chunk, and chunks, in the chunked benchmarks.
const CHUNK: usize = 1024;
const CHUNKS: usize = 16;
/// The largest body the decoders accept: the server's default.
const MAX_BODY: u64 = 1024 * 1024;

/// `CHUNKS` chunks of `CHUNK` bytes with extensions, the last chunk, a trailer field, the end.
fn chunked_body() -> (Vec<u8>, Vec<u8>) {
    let mut wire = Vec::new();
    let mut body = Vec::new();
    for i in 0..CHUNKS {
        let data: Vec<u8> = (0..CHUNK).map(|j| b'a' + ((i + j) % 26) as u8).collect();
        write!(wire, "{CHUNK:x};seq={i};note=\"part of an upload\"\r\n").unwrap();
        wire.extend_from_slice(&data);
        wire.extend_from_slice(b"\r\n");
        body.extend_from_slice(&data);
    }
    wire.extend_from_slice(b"0\r\nX-Checksum: 0123abcd\r\n\r\n");
    (wire, body)
}

/// Decodes a whole body, `step` bytes of input per call at most (the input is all there):
/// returns the body's length, after checking that the decoder ends exactly at the input's end.
fn decode(framing: Framing, input: &[u8], step: usize) -> usize {
    let mut decoder = BodyDecoder::new(framing, MAX_BODY).unwrap().unwrap();
    let mut at = 0usize;
    let mut body = 0;
    loop {
        let end = input.len().min(at.saturating_add(step));
        let (used, decoded) = decoder.decode(&input[at..end]).unwrap();
        at += used;
        match decoded {
            Decoded::Data(data) => body += black_box(data).len(),
            Decoded::Done => break,
            Decoded::NeedMore => assert!(used > 0 || end == input.len(), "no progress"),
        }
    }
    assert_eq!(at, input.len());
    body
}

/// The body a decoder hands out, copied: to check the inputs once.
fn decoded_body(framing: Framing, input: &[u8], step: usize) -> Vec<u8> {
    let mut decoder = BodyDecoder::new(framing, MAX_BODY).unwrap().unwrap();
    let (mut at, mut body) = (0usize, Vec::new());
    loop {
        let end = input.len().min(at.saturating_add(step));
        let (used, decoded) = decoder.decode(&input[at..end]).unwrap();
        at += used;
        match decoded {
            Decoded::Data(data) => body.extend_from_slice(data),
            Decoded::Done => return body,
            Decoded::NeedMore => assert!(end < input.len(), "the body is incomplete"),
        }
    }
}

fn body_benches(c: &mut Criterion) {
    let fixed: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    let (chunked, chunked_data) = chunked_body();
    let length = Framing::Length(CHUNK as u64);
    assert_eq!(decoded_body(length, &fixed, usize::MAX), fixed);
    assert_eq!(decoded_body(Framing::Chunked, &chunked, usize::MAX), chunked_data);
    assert_eq!(decoded_body(Framing::Chunked, &chunked, 1), chunked_data);

    let mut group = c.benchmark_group("http/body");
    configure(&mut group);
    group.throughput(Throughput::Bytes(CHUNK as u64));
    group.bench_function("Content-Length 1 KiB", |b| {
        b.iter(|| decode(length, black_box(&fixed), usize::MAX))
    });
    group.throughput(Throughput::Bytes((CHUNK * CHUNKS) as u64));
    group.bench_function("chunked 16 x 1 KiB", |b| {
        b.iter(|| decode(Framing::Chunked, black_box(&chunked), usize::MAX))
    });
    group.bench_function("chunked 16 x 1 KiB, 1 byte per call", |b| {
        b.iter(|| decode(Framing::Chunked, black_box(&chunked), 1))
    });
    group.finish();
}

fn date_benches(c: &mut Criterion) {
    // 2026-11-22 23:59:59 UTC.
    let secs = 1_795_391_999;
    assert_eq!(&imf_fixdate(secs), b"Sun, 22 Nov 2026 23:59:59 GMT");
    let mut group = c.benchmark_group("http/date");
    configure(&mut group);
    group.throughput(Throughput::Elements(1));
    group.bench_function("imf_fixdate", |b| b.iter(|| imf_fixdate(black_box(secs))));
    group.finish();
}

/// Runs the loop without blocking until `done` says so; panics after 10 s.
fn pump(lp: &mut EventLoop, mut done: impl FnMut(&mut EventLoop) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(lp) {
        assert!(Instant::now() < deadline, "the loop did not get there in 10 s");
        lp.run_nowait().unwrap();
    }
}

/// `examples/http.rs`'s `/plaintext` route (anything else: 404).
fn plaintext(core: &mut Core, req: &Request<'_>, res: Response) {
    let _ = if req.path() == "/plaintext" {
        res.send(core, 200, &[("Content-Type", "text/plain")], b"Hello, World!")
    } else {
        res.send(core, 404, &[("Content-Type", "text/plain")], b"not found\n")
    };
}

/// The floor: answers every `request_len` bytes received with `reply`, in one write per read,
/// parsing nothing.
struct FixedReply {
    reply: Rc<[u8]>,
    request_len: usize,
    /// Bytes of an incomplete request received so far.
    partial: usize,
    out: Vec<u8>,
}

impl StreamHandler for FixedReply {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        self.partial += data.len();
        let requests = self.partial / self.request_len;
        self.partial %= self.request_len;
        match requests {
            0 => {}
            1 => {
                conn.write(&self.reply);
            }
            n => {
                self.out.clear();
                for _ in 0..n {
                    self.out.extend_from_slice(&self.reply);
                }
                conn.write(&self.out);
            }
        }
    }
}

/// A loop with one server (or floor) on loopback TCP, and one connected client.
struct RoundTrips {
    lp: EventLoop,
    client: TcpStream,
    /// Exactly `PIPELINE` responses' room: the client never reads past what it waits for.
    buf: Vec<u8>,
}

impl RoundTrips {
    /// Connects a client to `addr`, served by `lp`; `accepted` says when the loop has it.
    fn connect(
        mut lp: EventLoop,
        addr: SocketAddr,
        accepted: impl Fn(&mut EventLoop) -> bool,
    ) -> Self {
        // The kernel completes the handshake from the listener's backlog.
        let client = TcpStream::connect(addr).unwrap();
        client.set_nodelay(true).unwrap();
        client.set_nonblocking(true).unwrap();
        pump(&mut lp, accepted);
        RoundTrips { lp, client, buf: vec![0; PIPELINE * RESPONSE_LEN] }
    }

    /// An `http::Server` with the `/plaintext` route; timeouts of an hour, so that the
    /// connection is still open however long the benchmark runs.
    fn server() -> Self {
        let mut lp = EventLoop::new().unwrap();
        let hour = Duration::from_secs(3600);
        let config = ServerConfig {
            header_timeout: hour,
            idle_timeout: hour,
            body_timeout: hour,
            ..ServerConfig::default()
        };
        let server = Server::new(&mut lp, config, plaintext);
        let listener = server.listen(&mut lp, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = lp.local_addr(listener).unwrap();
        let mut this = RoundTrips::connect(lp, addr, move |_| server.connections() == 1);
        this.check_server_response();
        this
    }

    /// The floor, replying with the server's own response.
    fn floor(reply: &[u8]) -> Self {
        let mut lp = EventLoop::new().unwrap();
        let reply: Rc<[u8]> = reply.into();
        let accepted = Rc::new(Cell::new(false));
        let flag = accepted.clone();
        let factory = move |_| {
            flag.set(true);
            FixedReply { reply: reply.clone(), request_len: WRK_GET.len(), partial: 0, out: vec![] }
        };
        let listener = lp.listen_tcp("127.0.0.1:0".parse().unwrap(), factory).unwrap();
        let addr = lp.local_addr(listener).unwrap();
        RoundTrips::connect(lp, addr, move |_| accepted.get())
    }

    /// Writes `requests` `wrk GET`s in one write, then runs the loop and reads until all their
    /// responses are in. The responses are left in `buf`.
    fn round_trip(&mut self, requests: &[u8], responses: usize) {
        // A few hundred bytes always fit in the socket buffer of a connection whose peer has
        // read everything so far.
        assert_eq!(self.client.write(requests).unwrap(), requests.len());
        let want = responses * RESPONSE_LEN;
        let mut got = 0;
        while got < want {
            self.lp.run_nowait().unwrap();
            while got < want {
                match self.client.read(&mut self.buf[got..want]) {
                    Ok(0) => panic!("the server closed the connection"),
                    Ok(n) => got += n,
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) => panic!("read: {err}"),
                }
            }
        }
    }

    /// One request, then 16 pipelined: each response is the expected 115 bytes.
    fn check_server_response(&mut self) {
        self.round_trip(WRK_GET, 1);
        let text = String::from_utf8(self.buf[..RESPONSE_LEN].to_vec()).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nDate: "), "{text:?}");
        assert!(text.ends_with("\r\nContent-Length: 13\r\n\r\nHello, World!"), "{text:?}");
        assert!(text.contains("\r\nContent-Type: text/plain\r\n"), "{text:?}");
        self.round_trip(&WRK_GET.repeat(PIPELINE), PIPELINE);
        for reply in self.buf.chunks(RESPONSE_LEN) {
            assert!(reply.starts_with(b"HTTP/1.1 200 OK\r\n") && reply.ends_with(b"World!"));
        }
        // Nothing more: the next round trip's bytes are its own.
        self.lp.run_nowait().unwrap();
        let mut extra = [0u8; 1];
        let err = self.client.read(&mut extra).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    fn response(&self) -> Vec<u8> {
        self.buf[..RESPONSE_LEN].to_vec()
    }
}

impl Drop for RoundTrips {
    fn drop(&mut self) {
        let _ = self.client.shutdown(Shutdown::Both);
    }
}

fn server_benches(c: &mut Criterion) {
    let one = WRK_GET.to_vec();
    let sixteen = WRK_GET.repeat(PIPELINE);
    let mut server = RoundTrips::server();
    let mut floor = RoundTrips::floor(&server.response());

    let mut group = c.benchmark_group("http/server");
    configure(&mut group);
    group.throughput(Throughput::Elements(1));
    group.bench_function("plaintext, 1 per round trip", |b| b.iter(|| server.round_trip(&one, 1)));
    group.bench_function("floor: fixed reply, 1 per round trip", |b| {
        b.iter(|| floor.round_trip(&one, 1))
    });
    group.throughput(Throughput::Elements(PIPELINE as u64));
    group.bench_function("plaintext, 16 pipelined per round trip", |b| {
        b.iter(|| server.round_trip(&sixteen, PIPELINE))
    });
    group.bench_function("floor: fixed reply, 16 pipelined per round trip", |b| {
        b.iter(|| floor.round_trip(&sixteen, PIPELINE))
    });
    group.finish();
}

/// Writes per timed batch; the peer drains after each, untimed. 32 small writes stay far
/// below the socket buffers, so every write goes straight to the kernel.
const WRITE_BATCH: u64 = 32;

/// Something that can write the 115-byte payload once, and a peer that drains it.
trait Writer {
    fn write_once(&mut self, payload: &[u8]);
    /// Reads `bytes` on the peer's side (and lets the loop see its events).
    fn drain(&mut self, bytes: usize, scratch: &mut [u8]);
}

/// The loop's side of a connected stream: `Core::write`.
struct LoopWriter<P> {
    lp: EventLoop,
    stream: Stream,
    peer: P,
}

impl<P: Read> Writer for LoopWriter<P> {
    fn write_once(&mut self, payload: &[u8]) {
        assert!(self.lp.write(self.stream, payload).unwrap());
    }
    fn drain(&mut self, bytes: usize, scratch: &mut [u8]) {
        assert_eq!(self.lp.queued_bytes(self.stream).unwrap(), 0, "a write was queued");
        self.peer.read_exact(&mut scratch[..bytes]).unwrap();
        self.lp.run_nowait().unwrap();
    }
}

/// The baseline: `writev(2)` from std on the same kind of socket.
struct RawWriter<S> {
    socket: S,
    peer: S,
}

impl<S> Writer for RawWriter<S>
where
    for<'a> &'a S: Write,
    S: Read,
{
    fn write_once(&mut self, payload: &[u8]) {
        let written = (&self.socket).write_vectored(&[IoSlice::new(payload)]).unwrap();
        assert_eq!(written, payload.len());
    }
    fn drain(&mut self, bytes: usize, scratch: &mut [u8]) {
        self.peer.read_exact(&mut scratch[..bytes]).unwrap();
    }
}

/// A stream handler that does nothing: the write benchmarks' streams never receive.
struct Quiet;

impl StreamHandler for Quiet {
    fn on_data(&mut self, _: &mut Conn<'_>, _: &[u8]) {}
}

/// A loop with a listener whose one accepted stream is returned, once `connect` has connected.
fn accepted_stream<P>(
    mut lp: EventLoop,
    listen: impl FnOnce(&mut EventLoop, Rc<Cell<Option<Stream>>>) -> reactor::Listener,
    connect: impl FnOnce(&mut EventLoop, reactor::Listener) -> P,
) -> LoopWriter<P> {
    let slot = Rc::new(Cell::new(None));
    let listener = listen(&mut lp, slot.clone());
    let peer = connect(&mut lp, listener);
    pump(&mut lp, |_| slot.get().is_some());
    lp.close(listener).unwrap();
    lp.run_nowait().unwrap();
    LoopWriter { lp, stream: slot.get().unwrap(), peer }
}

/// A socket path of this process's own in the temporary directory.
fn socket_path() -> PathBuf {
    let path = std::env::temp_dir().join(format!("reactor-bench-http-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn unix_loop_writer() -> LoopWriter<UnixStream> {
    let path = socket_path();
    let connect_to = path.clone();
    accepted_stream(
        EventLoop::new().unwrap(),
        move |lp, slot| {
            let factory = move |stream| {
                slot.set(Some(stream));
                Quiet
            };
            lp.listen_unix(&path, factory).unwrap()
        },
        move |_, _| UnixStream::connect(connect_to).unwrap(),
    )
}

fn tcp_loop_writer() -> LoopWriter<TcpStream> {
    accepted_stream(
        EventLoop::new().unwrap(),
        |lp, slot| {
            let factory = move |stream| {
                slot.set(Some(stream));
                Quiet
            };
            lp.listen_tcp("127.0.0.1:0".parse().unwrap(), factory).unwrap()
        },
        |lp, listener| TcpStream::connect(lp.local_addr(listener).unwrap()).unwrap(),
    )
}

fn tcp_pair() -> RawWriter<TcpStream> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (socket, _) = listener.accept().unwrap();
    socket.set_nodelay(true).unwrap();
    RawWriter { socket, peer }
}

/// Times `iters` writes of `payload`, in batches of `WRITE_BATCH` with a drain after each.
fn time_writes(writer: &mut impl Writer, payload: &[u8], iters: u64) -> Duration {
    let mut scratch = vec![0u8; WRITE_BATCH as usize * payload.len()];
    let mut elapsed = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let batch = left.min(WRITE_BATCH);
        let started = Instant::now();
        for _ in 0..batch {
            writer.write_once(black_box(payload));
        }
        elapsed += started.elapsed();
        writer.drain(batch as usize * payload.len(), &mut scratch);
        left -= batch;
    }
    elapsed
}

fn stream_write_benches(c: &mut Criterion) {
    let payload: Vec<u8> = (0..RESPONSE_LEN).map(|i| b'a' + (i % 26) as u8).collect();
    let mut unix = unix_loop_writer();
    let mut tcp = tcp_loop_writer();
    let (socket, peer) = UnixStream::pair().unwrap();
    let mut raw_unix = RawWriter { socket, peer };
    let mut raw_tcp = tcp_pair();
    // Check the payload arrives whole through each.
    let check = |writer: &mut dyn Writer| {
        let mut scratch = vec![0u8; payload.len()];
        writer.write_once(&payload);
        writer.drain(payload.len(), &mut scratch);
        assert_eq!(scratch, payload);
    };
    check(&mut unix);
    check(&mut tcp);
    check(&mut raw_unix);
    check(&mut raw_tcp);

    let mut group = c.benchmark_group("http/stream_write");
    configure(&mut group);
    group.throughput(Throughput::Elements(1));
    let payload = &payload[..];
    group.bench_function("Core::write 115 B, unix", |b| {
        b.iter_custom(|iters| time_writes(&mut unix, payload, iters))
    });
    group.bench_function("writev(2) alone 115 B, unix", |b| {
        b.iter_custom(|iters| time_writes(&mut raw_unix, payload, iters))
    });
    group.bench_function("Core::write 115 B, tcp", |b| {
        b.iter_custom(|iters| time_writes(&mut tcp, payload, iters))
    });
    group.bench_function("writev(2) alone 115 B, tcp", |b| {
        b.iter_custom(|iters| time_writes(&mut raw_tcp, payload, iters))
    });
    group.finish();
}

/// Every group: 50 samples, half a second of warm-up, two seconds of measurement.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
}

criterion_group!(
    benches,
    parse_benches,
    body_benches,
    date_benches,
    server_benches,
    stream_write_benches
);
criterion_main!(benches);
