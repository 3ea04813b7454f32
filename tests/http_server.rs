//! The HTTP server through its library API, over real loopback sockets: what only a handler
//! written against `reactor::http` can show. Responses answered late, out of order, from
//! another connection's callback, after the client half-closed or after the connection is
//! gone, streamed (waiting for drain), dropped or invalid; streamed, aborted and refused
//! request bodies; the `ServerConfig` limits and timeouts; graceful shutdown; the pipeline
//! depth; a panicking handler.
//!
//! (The `http` example binary is tested as a black box in `tests/http_example.rs`.)
//!
//! Each test builds its own loop and [`Server`] on `127.0.0.1:0` and runs the loop on the test's
//! thread, while a client thread does blocking `std::net` I/O with read and write timeouts and
//! stops the loop when it is done (a client that fails an assertion stops it too, so that the
//! test fails at once). What the handler saw is recorded on the loop side and asserted after
//! the run, exactly. Every test body runs under [`within`] (or, for the shutdown tests, whose
//! `run()` must return by itself, under a [`Watchdog`]); nothing waits by sleeping, except the
//! client that deliberately paces its requests in the keep-alive timeout test.

mod util;

use std::cell::{Cell, OnceCell, RefCell};
use std::fmt::Debug;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use reactor::http::{
    Body, BodySink, Handler, MAX_PIPELINE, Request, Response, Server, ServerConfig,
};
use reactor::{Core, Error, EventLoop};
use util::{Watchdog, within};

/// How long one test body may take before it fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(15);

/// Read and write timeout of every client socket, and the longest a client waits for a
/// signal from the loop: on loopback, nothing happening for this long is a stall.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The timeouts of the tests that hit one.
const SHORT: Duration = Duration::from_millis(200);

const TEXT: &[(&str, &str)] = &[("Content-Type", "text/plain")];

/// What the loop side saw, in order.
type Log = Rc<RefCell<Vec<String>>>;

/// Responses a handler keeps to answer later, with the target of their request.
type Parked = Rc<RefCell<Vec<(String, Response)>>>;

/// One response a handler keeps to answer later.
type Held = Rc<RefCell<Option<Response>>>;

// ---------------------------------------------------------------------------------------------
// 1. Late answers keep their place in the line
// ---------------------------------------------------------------------------------------------

#[test]
fn responses_answered_late_by_a_timer_still_leave_in_request_order() {
    within(LIMIT, || {
        let completed = Log::default();
        let done = completed.clone();
        let handler = move |core: &mut Core, req: &Request<'_>, res: Response| {
            let target = req.target().to_owned();
            let done = done.clone();
            if req.path() == "/slow" {
                core.set_timeout(Duration::from_millis(100), move |core| {
                    done.borrow_mut().push(target.clone());
                    reply(core, res, &target);
                });
            } else {
                done.borrow_mut().push(target.clone());
                reply(core, res, &target);
            }
        };
        let mut fx = start(ServerConfig::default(), handler);
        let addr = fx.addr;
        let (bodies, elapsed) = serve(&mut fx.lp, move || {
            let mut client = Client::connect(addr);
            let started = Instant::now();
            client.send(gets(&["/slow?1", "/fast?2", "/slow?3", "/fast?4"]));
            let bodies: Vec<String> = (0..4).map(|_| client.ok_keep_alive()).collect();
            let elapsed = started.elapsed();
            // The connection goes on.
            client.send(get("/fast?5"));
            assert_eq!(client.ok_keep_alive(), "/fast?5");
            (bodies, elapsed)
        });
        assert_eq!(bodies, ["/slow?1", "/fast?2", "/slow?3", "/fast?4"]);
        // (The loop's clock counts whole milliseconds: a timer may fire up to 1 ms early.)
        assert!(elapsed >= Duration::from_millis(95), "the slow answers came after {elapsed:?}");
        // The fast ones were complete long before the slow ones: they waited their turn.
        assert_eq!(*completed.borrow(), ["/fast?2", "/fast?4", "/slow?1", "/slow?3", "/fast?5"]);
    });
}

// ---------------------------------------------------------------------------------------------
// 2. Completed in reverse order, delivered in request order
// ---------------------------------------------------------------------------------------------

#[test]
fn responses_completed_in_reverse_order_are_delivered_in_request_order() {
    const TARGETS: [&str; 5] = ["/send?0", "/stream?1", "/send?2", "/stream?3", "/send?4"];
    within(LIMIT, || {
        let completed = Log::default();
        let parked = Parked::default();
        let done = completed.clone();
        let handler = move |core: &mut Core, req: &Request<'_>, res: Response| {
            parked.borrow_mut().push((req.target().to_owned(), res));
            if parked.borrow().len() < TARGETS.len() {
                return;
            }
            let (parked, done) = (parked.clone(), done.clone());
            core.set_timeout(Duration::from_millis(10), move |core| {
                let all = std::mem::take(&mut *parked.borrow_mut());
                for (target, mut res) in all.into_iter().rev() {
                    done.borrow_mut().push(target.clone());
                    if target.starts_with("/stream") {
                        // Streamed out of turn: the pieces wait in the line too.
                        res.start(core, 200, TEXT).unwrap();
                        assert!(res.write(core, target.as_bytes()).unwrap());
                        assert!(res.write(core, b"!").unwrap());
                        res.end(core).unwrap();
                    } else {
                        reply(core, res, &target);
                    }
                }
            });
        };
        let mut fx = start(ServerConfig::default(), handler);
        let addr = fx.addr;
        let responses = serve(&mut fx.lp, move || {
            let mut client = Client::connect(addr);
            client.send(gets(&TARGETS));
            (0..TARGETS.len()).map(|_| client.response()).collect::<Vec<_>>()
        });
        for (resp, target) in responses.iter().zip(TARGETS) {
            assert_eq!(resp.status, 200, "{target}");
            assert!(!resp.closes(), "{target}");
            if target.starts_with("/stream") {
                assert_eq!(resp.text(), format!("{target}!"));
                assert_eq!(resp.chunks, Some(vec![target.len(), 1]), "{target}");
            } else {
                assert_eq!(resp.text(), target);
                assert_eq!(resp.chunks, None, "{target}");
            }
        }
        let mut reversed = TARGETS;
        reversed.reverse();
        assert_eq!(*completed.borrow(), reversed);
    });
}

// ---------------------------------------------------------------------------------------------
// 3. Answers from elsewhere: another connection, after a half-close, after the close
// ---------------------------------------------------------------------------------------------

#[test]
fn a_parked_response_is_completed_from_another_connections_request() {
    within(LIMIT, || {
        let (parked_tx, parked_rx) = mpsc::channel();
        let log = Log::default();
        let waiting = Held::default();
        let seen = log.clone();
        let handler = move |core: &mut Core, req: &Request<'_>, res: Response| {
            let route = (req.method(), req.path());
            match route {
                ("GET", "/wait") => {
                    *waiting.borrow_mut() = Some(res);
                    parked_tx.send(()).unwrap();
                }
                ("POST", "/notify") => {
                    let waiter = waiting.borrow_mut().take().expect("a waiter");
                    let other = waiter.stream() != res.stream();
                    seen.borrow_mut().push(format!("notify from another connection: {other}"));
                    let sent = waiter.send(core, 200, TEXT, req.body());
                    seen.borrow_mut().push(format!("waiter answered: {}", outcome(&sent)));
                    reply(core, res, "notified");
                }
                _ => reply(core, res, req.target()),
            }
        };
        let mut fx = start(ServerConfig::default(), handler);
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            let mut a = Client::connect(addr);
            a.send(get("/wait"));
            parked_rx.recv_timeout(IO_TIMEOUT).expect("the GET /wait to be parked");
            let mut b = Client::connect(addr);
            b.send(post("/notify", b"news"));
            assert_eq!(b.ok_keep_alive(), "notified");
            assert_eq!(a.ok_keep_alive(), "news");
            // Both go on, and neither got anything of the other's.
            a.send(get("/a"));
            b.send(get("/b"));
            assert_eq!(a.ok_keep_alive(), "/a");
            assert_eq!(b.ok_keep_alive(), "/b");
        });
        assert_eq!(
            *log.borrow(),
            ["notify from another connection: true", "waiter answered: Ok(())"]
        );
    });
}

#[test]
fn a_client_that_half_closes_after_its_request_still_gets_the_late_answer() {
    within(LIMIT, || {
        let log = Log::default();
        let seen = log.clone();
        let handler = move |core: &mut Core, req: &Request<'_>, res: Response| {
            let (seen, target) = (seen.clone(), req.target().to_owned());
            core.set_timeout(Duration::from_millis(50), move |core| {
                let sent = res.send(core, 200, TEXT, target.as_bytes());
                seen.borrow_mut().push(format!("{target}: {}", outcome(&sent)));
            });
        };
        let mut fx = start(ServerConfig::default(), handler);
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            let mut client = Client::connect(addr);
            client.send(gets(&["/late?1", "/late?2"]));
            client.socket.shutdown(Shutdown::Write).unwrap();
            // Both answers; the server closes after the last one.
            assert_eq!(client.response().text(), "/late?1");
            let last = client.response();
            assert_eq!(last.text(), "/late?2");
            assert_eq!(show(&client.eof()), "");
        });
        assert_eq!(*log.borrow(), ["/late?1: Ok(())", "/late?2: Ok(())"]);
    });
}

#[test]
fn a_response_that_outlives_its_connection_fails_with_closed_and_reaches_no_other() {
    within(LIMIT, || {
        let log = Log::default();
        let held = Held::default();
        let (parked_tx, parked_rx) = mpsc::channel();
        let seen = log.clone();
        let handler = move |core: &mut Core, req: &Request<'_>, res: Response| {
            if req.path() == "/late" {
                *held.borrow_mut() = Some(res);
                parked_tx.send(()).unwrap();
                return;
            }
            // The next connection (which reuses the first one's place in the server) answers
            // the first one's request.
            if let Some(stale) = held.borrow_mut().take() {
                let sent = stale.send(core, 200, TEXT, b"stale");
                seen.borrow_mut().push(format!("stale answer: {}", outcome(&sent)));
            }
            reply(core, res, req.target());
        };
        let mut fx = start(ServerConfig::default(), handler);
        let conns = watch_connections(&mut fx.lp, &fx.server);
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            let mut gone = Client::connect(addr);
            // `/first` is answered and left unread, so that the close below is a reset.
            gone.send(get("/first"));
            gone.send(get("/late"));
            parked_rx.recv_timeout(IO_TIMEOUT).expect("the request to be parked");
            conns.wait_for(1);
            reset(gone.socket);
            conns.wait_for(0);

            let mut next = Client::connect(addr);
            next.send(get("/next?1"));
            assert_eq!(next.ok_keep_alive(), "/next?1");
            next.send(get("/next?2"));
            assert_eq!(next.ok_keep_alive(), "/next?2");
        });
        assert_eq!(*log.borrow(), ["stale answer: Err(Closed)"]);
    });
}

// ---------------------------------------------------------------------------------------------
// 4. Streamed responses
// ---------------------------------------------------------------------------------------------

#[test]
fn streamed_responses_are_chunked_or_fixed_length_and_their_misuse_is_an_error() {
    within(LIMIT, || {
        let log = Log::default();
        let seen = log.clone();
        let handler = move |core: &mut Core, req: &Request<'_>, mut res: Response| {
            let name = format!("{} {}", req.method(), req.path());
            let note = |what: &str, result: String| {
                seen.borrow_mut().push(format!("{name}: {what}: {result}"));
            };
            match req.path() {
                "/chunked" => {
                    note("write before start", outcome(&res.write(core, b"x")));
                    res.start(core, 200, TEXT).unwrap();
                    note("start again", outcome(&res.start(core, 200, TEXT)));
                    assert!(res.write(core, b"hello ").unwrap());
                    assert!(res.write(core, b"").unwrap());
                    assert!(res.write(core, b"world").unwrap());
                    res.end(core).unwrap();
                }
                "/fixed" => {
                    let headers = [("Content-Type", "text/plain"), ("Content-Length", "11")];
                    res.start(core, 200, &headers).unwrap();
                    assert!(res.write(core, b"hello ").unwrap());
                    assert!(res.write(core, b"world").unwrap());
                    res.end(core).unwrap();
                }
                "/over" => {
                    res.start(core, 200, &[("Content-Length", "5")]).unwrap();
                    note("write 5 of 5", outcome(&res.write(core, b"hello")));
                    note("write 1 more", outcome(&res.write(core, b"!")));
                    note("end", outcome(&res.end(core)));
                }
                "/short" => {
                    res.start(core, 200, &[("Content-Length", "10")]).unwrap();
                    note("write 5 of 10", outcome(&res.write(core, b"hello")));
                    note("end", outcome(&res.end(core)));
                }
                other => panic!("unexpected {other}"),
            }
        };
        let mut fx = start(ServerConfig::default(), handler);
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            let mut client = Client::connect(addr);

            client.send(get("/chunked"));
            let resp = client.response();
            assert_eq!((resp.status, resp.text().as_str()), (200, "hello world"));
            assert_eq!(resp.chunks, Some(vec![6, 5]), "one chunk per non-empty write");
            assert_eq!(resp.header("content-length"), None);
            assert!(!resp.closes());

            client.send(get("/fixed"));
            let resp = client.response();
            assert_eq!((resp.status, resp.text().as_str()), (200, "hello world"));
            assert_eq!(resp.header("content-length"), Some("11"));
            assert_eq!(resp.header("transfer-encoding"), None);
            assert_eq!(resp.chunks, None);

            // HEAD: the same head, and not one body byte (not even the last chunk): the next
            // response starts right after it.
            for path in ["/chunked", "/fixed"] {
                client.send(request("HEAD", path, b""));
                let resp = client.head_response();
                assert_eq!(resp.status, 200, "HEAD {path}");
                if path == "/chunked" {
                    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
                } else {
                    assert_eq!(resp.header("content-length"), Some("11"));
                }
            }

            client.send(get("/over"));
            let resp = client.response();
            assert_eq!((resp.status, resp.text().as_str()), (200, "hello"));
            assert!(!resp.closes(), "a refused write does not break the framing");

            // Short of its Content-Length: the head and the bytes written, then the close.
            client.send(get("/short"));
            let resp = client.head_response();
            assert_eq!((resp.status, resp.header("content-length")), (200, Some("10")));
            let (rest, reset) = client.end();
            assert_eq!(show(&rest), "hello");
            assert!(!reset, "closed with a reset");

            // To an HTTP/1.0 client, a body without a length ends with the connection.
            let mut client = Client::connect(addr);
            client.send("GET /chunked HTTP/1.0\r\n\r\n");
            let resp = client.head_response();
            assert_eq!(resp.status, 200);
            assert_eq!(resp.header("transfer-encoding"), None);
            assert_eq!(resp.header("content-length"), None);
            assert!(resp.closes());
            assert_eq!(show(&client.eof()), "hello world");
        });
        let invalid = "Err(InvalidInput)";
        let mut want = Vec::new();
        for method in ["GET", "HEAD", "GET"] {
            want.push(format!("{method} /chunked: write before start: {invalid}"));
            want.push(format!("{method} /chunked: start again: {invalid}"));
        }
        let http10 = want.split_off(4);
        want.extend([
            "GET /over: write 5 of 5: Ok(true)".to_owned(),
            format!("GET /over: write 1 more: {invalid}"),
            "GET /over: end: Ok(())".to_owned(),
            "GET /short: write 5 of 10: Ok(true)".to_owned(),
            format!("GET /short: end: {invalid}"),
        ]);
        want.extend(http10);
        assert_eq!(*log.borrow(), want);
    });
}

// ---------------------------------------------------------------------------------------------
// 5. Dropped responses
// ---------------------------------------------------------------------------------------------

#[test]
fn a_response_dropped_unsent_is_answered_with_500_and_a_close() {
    within(LIMIT, || {
        let log = Log::default();
        let seen = log.clone();
        let handler = move |core: &mut Core, req: &Request<'_>, mut res: Response| {
            let path = req.path();
            match path {
                "/drop" => drop(res),
                "/drop-later" => {
                    let seen = seen.clone();
                    core.set_timeout(Duration::from_millis(50), move |_| {
                        seen.borrow_mut().push("dropped in a timer".to_owned());
                        drop(res);
                    });
                }
                "/drop-started" => {
                    res.start(core, 200, TEXT).unwrap();
                    assert!(res.write(core, b"part").unwrap());
                    drop(res);
                }
                _ => reply(core, res, req.target()),
            }
        };
        let mut fx = start(ServerConfig::default(), handler);
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            // Dropped in the handler, between two answered requests of one pipeline: the
            // first is answered, the 500 takes the second's place, and the connection ends
            // there.
            let mut client = Client::connect(addr);
            client.send(gets(&["/ok?1", "/drop", "/ok?3"]));
            assert_eq!(client.ok_keep_alive(), "/ok?1");
            client.expect_500_and_close("a response dropped in the handler");

            // Dropped later, in a timer.
            let mut client = Client::connect(addr);
            client.send(get("/drop-later"));
            client.expect_500_and_close("a response dropped in a timer");

            // Dropped after its head went out: the body is cut short by the close.
            let mut client = Client::connect(addr);
            client.send(get("/drop-started"));
            let resp = client.head_response();
            assert_eq!((resp.status, resp.header("transfer-encoding")), (200, Some("chunked")));
            let (rest, _reset) = client.end();
            assert_eq!(show(&rest), "4\\r\\npart\\r\\n", "no last chunk");
        });
        assert_eq!(*log.borrow(), ["dropped in a timer"]);
    });
}

// ---------------------------------------------------------------------------------------------
// 6. Invalid responses
// ---------------------------------------------------------------------------------------------

#[test]
fn invalid_statuses_and_headers_are_refused_and_the_client_gets_500() {
    const CASES: [&str; 8] = [
        "/crlf-value",
        "/content-length-in-send",
        "/transfer-encoding",
        "/bad-name",
        "/status-99",
        "/body-on-204",
        "/start-lf-value",
        "/start-status-1000",
    ];
    within(LIMIT, || {
        let log = Log::default();
        let seen = log.clone();
        let handler = move |core: &mut Core, req: &Request<'_>, mut res: Response| {
            let result = match req.path() {
                "/crlf-value" => res.send(core, 200, &[("X", "a\r\nb")], b"x"),
                "/content-length-in-send" => res.send(core, 200, &[("Content-Length", "1")], b"x"),
                "/transfer-encoding" => {
                    res.send(core, 200, &[("Transfer-Encoding", "chunked")], b"x")
                }
                "/bad-name" => res.send(core, 200, &[("Bad Name", "x")], b"x"),
                "/status-99" => res.send(core, 99, TEXT, b"x"),
                "/body-on-204" => res.send(core, 204, &[], b"x"),
                // A failed start leaves the response unsent: dropped, it is a 500.
                "/start-lf-value" => res.start(core, 200, &[("X", "a\nb")]),
                "/start-status-1000" => res.start(core, 1000, TEXT),
                other => panic!("unexpected {other}"),
            };
            seen.borrow_mut().push(format!("{}: {}", req.path(), outcome(&result)));
        };
        let mut fx = start(ServerConfig::default(), handler);
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            for path in CASES {
                let mut client = Client::connect(addr);
                client.send(get(path));
                let resp = client.expect_500_and_close(path);
                assert_eq!(resp.header("x"), None, "{path}: the refused header leaked");
            }
        });
        let want: Vec<String> = CASES.iter().map(|p| format!("{p}: Err(InvalidInput)")).collect();
        assert_eq!(*log.borrow(), want);
    });
}

// ---------------------------------------------------------------------------------------------
// 7. Streamed and refused request bodies
// ---------------------------------------------------------------------------------------------

/// Streams `/upload` bodies to a [`Counter`], refuses `/reject` bodies with 403, buffers the
/// rest.
struct Uploads {
    log: Log,
    /// The running total of each streamed body, sent after every piece.
    progress: mpsc::Sender<usize>,
}

impl Handler for Uploads {
    fn on_request(&mut self, core: &mut Core, req: &Request<'_>, res: Response) {
        self.log.borrow_mut().push(format!("request {} ({} bytes)", req.path(), req.body().len()));
        reply(core, res, req.target());
    }

    fn on_head(&mut self, _core: &mut Core, req: &Request<'_>) -> Body {
        self.log.borrow_mut().push(format!("head {}", req.path()));
        match req.path() {
            "/upload" => Body::Stream(Box::new(Counter {
                log: self.log.clone(),
                progress: self.progress.clone(),
                received: Vec::new(),
                pieces: 0,
            })),
            "/reject" => Body::Reject(403),
            _ => Body::Buffer,
        }
    }
}

/// What a [`Counter`] sends on its progress channel when its body is aborted.
const ABORTED: usize = usize::MAX;

/// Keeps what it is given, and answers with it.
struct Counter {
    log: Log,
    progress: mpsc::Sender<usize>,
    received: Vec<u8>,
    pieces: usize,
}

impl BodySink for Counter {
    fn on_data(&mut self, _core: &mut Core, data: &[u8]) {
        assert!(!data.is_empty(), "an empty piece");
        self.received.extend_from_slice(data);
        self.pieces += 1;
        let _ = self.progress.send(self.received.len());
    }

    fn on_end(self: Box<Self>, core: &mut Core, req: &Request<'_>, res: Response) {
        // Every write the client waited on is a read of its own, so a piece of its own at least.
        let pieces =
            if self.pieces >= 7 { "7 or more".to_owned() } else { self.pieces.to_string() };
        self.log.borrow_mut().push(format!(
            "end {} ({} bytes in the request, {} streamed in {pieces} pieces)",
            req.path(),
            req.body().len(),
            self.received.len()
        ));
        res.send(core, 200, &[("Content-Type", "application/octet-stream")], &self.received)
            .unwrap();
    }

    fn on_abort(self: Box<Self>, _core: &mut Core) {
        self.log.borrow_mut().push(format!("abort after {} bytes", self.received.len()));
        let _ = self.progress.send(ABORTED);
    }
}

#[test]
fn a_streamed_request_body_reaches_its_sink_whole_and_the_sink_answers() {
    within(LIMIT, || {
        let log = Log::default();
        let (progress, progress_rx) = mpsc::channel();
        let mut fx = start(ServerConfig::default(), Uploads { log: log.clone(), progress });
        let addr = fx.addr;
        let payload = pattern(100_000);
        serve(&mut fx.lp, move || {
            let progress = progress_rx;
            // Waits until the sink has had `total` bytes: the next write is a new read.
            let reached = |total: usize| loop {
                let got = progress.recv_timeout(IO_TIMEOUT).expect("body progress");
                assert!(got <= total, "the sink got {got} bytes of {total} sent");
                if got == total {
                    break;
                }
            };
            let mut client = Client::connect(addr);
            client.send(
                "POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\
                 Expect: 100-continue\r\n\r\n",
            );
            let resp = client.head_response();
            assert_eq!(resp.status, 100, "100 Continue before the body");
            // Chunks of several sizes, each in its own write; one split inside its data, one
            // inside its size line.
            let mut at = 0;
            for size in [1, 1000, 16_384, 30_000] {
                let data = &payload[at..at + size];
                client.send([format!("{size:x}\r\n").as_bytes(), data, b"\r\n"].concat());
                at += size;
                reached(at);
            }
            let size = 40_000;
            client.send([format!("{size:x}\r\n").as_bytes(), &payload[at..at + 123]].concat());
            reached(at + 123);
            client.send([&payload[at + 123..at + size], b"\r\n"].concat());
            at += size;
            reached(at);
            let rest = &payload[at..];
            let line = format!("{:x}\r\n", rest.len());
            client.send(&line.as_bytes()[..1]);
            client.send([&line.as_bytes()[1..], rest, b"\r\n0\r\n\r\n"].concat());
            let resp = client.response();
            assert_eq!(resp.status, 200);
            assert!(!resp.closes());
            assert_same(&resp.body, &payload, "the body the sink got");
            reached(payload.len());

            // And with a Content-Length, in two writes, on the same connection.
            let body = &payload[..5000];
            let head = "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n";
            client.send([head.as_bytes(), &body[..2000]].concat());
            reached(2000);
            client.send(&body[2000..]);
            let resp = client.response();
            assert_eq!(resp.status, 200);
            assert_same(&resp.body, body, "the second body the sink got");
        });
        assert_eq!(
            *log.borrow(),
            [
                "head /upload",
                "end /upload (0 bytes in the request, 100000 streamed in 7 or more pieces)",
                "head /upload",
                "end /upload (0 bytes in the request, 5000 streamed in 2 pieces)",
            ]
        );
    });
}

#[test]
fn a_body_rejected_in_on_head_gets_its_status_instead_of_100_continue() {
    within(LIMIT, || {
        let log = Log::default();
        let (progress, _progress_rx) = mpsc::channel();
        let mut fx = start(ServerConfig::default(), Uploads { log: log.clone(), progress });
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            let mut client = Client::connect(addr);
            client.send(
                "POST /reject HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\
                 Expect: 100-continue\r\n\r\n",
            );
            let resp = client.response();
            assert_eq!(resp.status, 403, "no 100 Continue, the refusal: {:?}", resp.headers);
            assert!(resp.closes());
            assert_eq!(show(&client.eof()), "");

            // Buffered bodies still reach on_request.
            let mut client = Client::connect(addr);
            client.send(post("/buffered", b"0123456789"));
            assert_eq!(client.ok_keep_alive(), "/buffered");
        });
        assert_eq!(
            *log.borrow(),
            ["head /reject", "head /buffered", "request /buffered (10 bytes)"]
        );
    });
}

#[test]
fn a_streamed_body_that_never_completes_is_aborted_once() {
    within(LIMIT, || {
        let log = Log::default();
        let (progress, progress_rx) = mpsc::channel();
        let config = ServerConfig { body_timeout: SHORT, max_body: 100, ..ServerConfig::default() };
        let mut fx = start(config, Uploads { log: log.clone(), progress });
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            let next = || progress_rx.recv_timeout(IO_TIMEOUT).expect("body progress");
            let head = "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n";

            // The client goes away mid-body.
            let mut client = Client::connect(addr);
            client.send(format!("{head}0123"));
            assert_eq!(next(), 4);
            drop(client);
            assert_eq!(next(), ABORTED);

            // The body stalls: 408, and the sink hears of it.
            let mut client = Client::connect(addr);
            client.send(format!("{head}012345"));
            assert_eq!(next(), 6);
            let resp = client.response();
            assert_eq!(resp.status, 408);
            assert!(resp.closes());
            assert_eq!(show(&client.eof()), "");
            assert_eq!(next(), ABORTED);

            // Chunks past `max_body`: 413, and the sink hears of it.
            let mut client = Client::connect(addr);
            let chunked = "POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
            client.send([chunked.as_bytes(), b"32\r\n", &pattern(50), b"\r\n"].concat());
            assert_eq!(next(), 50);
            client.send("33\r\n");
            let resp = client.response();
            assert_eq!(resp.status, 413);
            assert!(resp.closes());
            assert_eq!(show(&client.eof()), "");
            assert_eq!(next(), ABORTED);

            // A Content-Length past it: 413 before the handler hears of the request at all.
            let mut client = Client::connect(addr);
            client.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n");
            let resp = client.response();
            assert_eq!(resp.status, 413);
            assert!(resp.closes());
            assert_eq!(show(&client.eof()), "");
        });
        assert_eq!(
            *log.borrow(),
            [
                "head /upload",
                "abort after 4 bytes",
                "head /upload",
                "abort after 6 bytes",
                "head /upload",
                "abort after 50 bytes"
            ]
        );
    });
}

// ---------------------------------------------------------------------------------------------
// 8. max_requests
// ---------------------------------------------------------------------------------------------

#[test]
fn max_requests_closes_the_connection_after_its_last_response() {
    within(LIMIT, || {
        let calls = Rc::new(Cell::new(0));
        let count = calls.clone();
        let handler = move |core: &mut Core, req: &Request<'_>, res: Response| {
            count.set(count.get() + 1);
            reply(core, res, req.target());
        };
        let config = ServerConfig { max_requests: Some(3), ..ServerConfig::default() };
        let mut fx = start(config, handler);
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            // One at a time.
            let mut client = Client::connect(addr);
            for i in 1..=3 {
                client.send(get(&format!("/?{i}")));
                let resp = client.response();
                assert_eq!((resp.status, resp.text()), (200, format!("/?{i}")));
                let connection = if i == 3 { Some("close") } else { None };
                assert_eq!(resp.header("connection"), connection, "response {i}");
            }
            assert_eq!(show(&client.eof()), "");

            // Pipelined: the fourth request is never answered.
            let mut client = Client::connect(addr);
            client.send(gets(&["/?a", "/?b", "/?c", "/?d"]));
            for target in ["/?a", "/?b"] {
                assert_eq!(client.ok_keep_alive(), target);
            }
            let resp = client.response();
            assert_eq!((resp.status, resp.text().as_str()), (200, "/?c"));
            assert!(resp.closes());
            assert_eq!(show(&client.eof()), "");
        });
        assert_eq!(calls.get(), 6);
    });
}

// ---------------------------------------------------------------------------------------------
// 9. max_connections
// ---------------------------------------------------------------------------------------------

#[test]
fn max_connections_turns_one_more_away_with_503_until_one_closes() {
    within(LIMIT, || {
        let calls = Rc::new(Cell::new(0));
        let count = calls.clone();
        let handler = move |core: &mut Core, req: &Request<'_>, res: Response| {
            count.set(count.get() + 1);
            reply(core, res, req.target());
        };
        let config = ServerConfig { max_connections: Some(2), ..ServerConfig::default() };
        let mut fx = start(config, handler);
        let addr = fx.addr;
        let conns = watch_connections(&mut fx.lp, &fx.server);
        let history = serve(&mut fx.lp, move || {
            let mut history = Vec::new();
            let mut first = Client::connect(addr);
            first.send(get("/first"));
            assert_eq!(first.ok_keep_alive(), "/first");
            history.push(conns.wait_for(1));
            let mut second = Client::connect(addr);
            second.send(get("/second"));
            assert_eq!(second.ok_keep_alive(), "/second");
            history.push(conns.wait_for(2));

            let mut third = Client::connect(addr);
            let resp = third.response();
            assert_eq!(resp.status, 503);
            assert!(resp.closes());
            assert_eq!(show(&third.eof()), "");

            // The two are still served.
            second.send(get("/second-again"));
            assert_eq!(second.ok_keep_alive(), "/second-again");

            drop(first);
            history.push(conns.wait_for(1));
            let mut fourth = Client::connect(addr);
            fourth.send(get("/fourth"));
            assert_eq!(fourth.ok_keep_alive(), "/fourth");
            history.push(conns.wait_for(2));
            conns.assert_quiet();
            history
        });
        assert_eq!(history, [1, 2, 1, 2], "the 503 never counted as a connection");
        assert_eq!(calls.get(), 4);
    });
}

// ---------------------------------------------------------------------------------------------
// 10. Graceful shutdown
// ---------------------------------------------------------------------------------------------

/// Parks `/late` and `/stream` responses, shuts the server down on `/shutdown` and answers
/// the parked ones `release_after` later; tells the client (`signals`) when it parks one or
/// gets an upload's head.
struct ShutdownApp {
    server: Rc<OnceCell<Server>>,
    late: Held,
    streaming: Held,
    release_after: Duration,
    signals: mpsc::Sender<&'static str>,
    log: Log,
}

impl Handler for ShutdownApp {
    fn on_request(&mut self, core: &mut Core, req: &Request<'_>, mut res: Response) {
        match req.path() {
            "/late" => {
                *self.late.borrow_mut() = Some(res);
                self.signals.send("late parked").unwrap();
            }
            "/stream" => {
                res.start(core, 200, TEXT).unwrap();
                assert!(res.write(core, b"before ").unwrap());
                *self.streaming.borrow_mut() = Some(res);
                self.signals.send("stream started").unwrap();
            }
            "/shutdown" => {
                let server = self.server.get().expect("the server");
                server.shutdown(core);
                self.log.borrow_mut().push(format!("shutdown: {} open", server.connections()));
                reply(core, res, "bye");
                let (late, streaming, log) =
                    (self.late.clone(), self.streaming.clone(), self.log.clone());
                core.set_timeout(self.release_after, move |core| {
                    if let Some(res) = late.borrow_mut().take() {
                        let sent = res.send(core, 200, TEXT, b"late");
                        log.borrow_mut().push(format!("late answer: {}", outcome(&sent)));
                    }
                    if let Some(mut res) = streaming.borrow_mut().take() {
                        let wrote = res.write(core, b"after");
                        let ended = res.end(core);
                        log.borrow_mut().push(format!(
                            "stream ended: {} {}",
                            outcome(&wrote),
                            outcome(&ended)
                        ));
                    }
                });
            }
            _ => reply(core, res, &format!("{} ({} bytes)", req.target(), req.body().len())),
        }
    }

    fn on_head(&mut self, _core: &mut Core, _req: &Request<'_>) -> Body {
        self.signals.send("upload head").unwrap();
        Body::Buffer
    }
}

/// A server running [`ShutdownApp`]: its loop, its address, the app's log and its signals.
fn shutdown_fixture(idle_timeout: Duration) -> (Fixture, Log, mpsc::Receiver<&'static str>) {
    let (signals, signals_rx) = mpsc::channel();
    let log = Log::default();
    let server = Rc::new(OnceCell::new());
    let app = ShutdownApp {
        server: server.clone(),
        late: Held::default(),
        streaming: Held::default(),
        release_after: Duration::from_millis(150),
        signals,
        log: log.clone(),
    };
    let config = ServerConfig { idle_timeout, ..ServerConfig::default() };
    let fx = start(config, app);
    assert!(server.set(fx.server.clone()).is_ok());
    (fx, log, signals_rx)
}

#[test]
fn shutdown_closes_idle_connections_finishes_requests_in_flight_and_lets_run_return() {
    // On the test's thread, so that `run()` returning by itself is what ends the test.
    let watchdog = Watchdog::arm(Duration::from_secs(10));
    // Idle connections must be closed by the shutdown, not by the idle timeout.
    let (mut fx, log, signals) = shutdown_fixture(Duration::from_secs(30));
    let addr = fx.addr;
    let client = spawn_client(&fx.lp, move || {
        let signal = || signals.recv_timeout(IO_TIMEOUT).expect("a signal from the handler");
        let mut late = Client::connect(addr);
        late.send(get("/late"));
        assert_eq!(signal(), "late parked");
        let mut idle = Client::connect(addr);
        idle.send(get("/idle"));
        assert_eq!(idle.ok_keep_alive(), "/idle (0 bytes)");
        let mut upload = Client::connect(addr);
        upload.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234");
        assert_eq!(signal(), "upload head");

        let mut trigger = Client::connect(addr);
        trigger.send(get("/shutdown"));
        let resp = trigger.response();
        assert_eq!((resp.status, resp.text().as_str()), (200, "bye"));
        assert!(resp.closes(), "a response given during the shutdown says close");
        assert_eq!(show(&trigger.eof()), "");

        // The idle connection is closed without a word, and no new one is accepted.
        assert_eq!(show(&idle.eof()), "");
        let refused = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map(|_| ());
        assert_eq!(refused.map_err(|e| e.kind()), Err(ErrorKind::ConnectionRefused));

        // The upload finishes, and is answered with a close.
        upload.send("56789");
        let resp = upload.response();
        assert_eq!((resp.status, resp.text().as_str()), (200, "/upload (10 bytes)"));
        assert!(resp.closes());
        assert_eq!(show(&upload.eof()), "");

        // The late answer arrives, with a close.
        let resp = late.response();
        assert_eq!((resp.status, resp.text().as_str()), (200, "late"));
        assert!(resp.closes());
        assert_eq!(show(&late.eof()), "");
        // Dropping the sockets ends the last connections: then `run()` must return.
    });
    let started = Instant::now();
    fx.lp.run().unwrap();
    let ran = started.elapsed();
    join(client);
    drop(watchdog);
    assert_eq!(fx.server.connections(), 0);
    assert_eq!(*log.borrow(), ["shutdown: 4 open", "late answer: Ok(())"]);
    assert!(ran < Duration::from_secs(5), "run() took {ran:?}");
}

#[test]
fn a_response_streaming_when_shutdown_begins_closes_its_connection_when_it_ends() {
    let watchdog = Watchdog::arm(Duration::from_secs(10));
    let (mut fx, log, signals) = shutdown_fixture(Duration::from_secs(30));
    let addr = fx.addr;
    let client = spawn_client(&fx.lp, move || {
        let mut streaming = Client::connect(addr);
        streaming.send(get("/stream"));
        assert_eq!(signals.recv_timeout(IO_TIMEOUT), Ok("stream started"));
        let mut trigger = Client::connect(addr);
        trigger.send(get("/shutdown"));
        assert_eq!(trigger.response().text(), "bye");
        assert_eq!(show(&trigger.eof()), "");

        let resp = streaming.response();
        assert_eq!((resp.status, resp.text().as_str()), (200, "before after"));
        // Its head went out before the shutdown, so it could not say close; the server must
        // close it once the body is complete (the idle timeout is 30 s).
        streaming.socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let (rest, reset) = streaming.try_end().unwrap_or_else(|err| {
            panic!("the connection is still open 2 s after its last response: {err}")
        });
        assert_eq!((show(&rest).as_str(), reset), ("", false));
    });
    fx.lp.run().unwrap();
    join(client);
    drop(watchdog);
    assert_eq!(fx.server.connections(), 0);
    assert_eq!(*log.borrow(), ["shutdown: 2 open", "stream ended: Ok(true) Ok(())"]);
}

// ---------------------------------------------------------------------------------------------
// 11. Pipeline depth
// ---------------------------------------------------------------------------------------------

#[test]
fn the_server_stops_reading_at_max_pipeline_requests_in_flight() {
    const REQUESTS: usize = 200;
    within(LIMIT, || {
        let calls = Rc::new(Cell::new(0usize));
        let at_release = Rc::new(Cell::new(None));
        let released = Rc::new(Cell::new(false));
        let parked = Parked::default();
        let (count, seen, free) = (calls.clone(), at_release.clone(), released.clone());
        let handler = move |core: &mut Core, req: &Request<'_>, res: Response| {
            count.set(count.get() + 1);
            if free.get() {
                return reply(core, res, req.target());
            }
            parked.borrow_mut().push((req.target().to_owned(), res));
            if count.get() == MAX_PIPELINE as usize {
                // Give the server time to read more (it must not), then answer them all.
                let (count, seen, free, parked) =
                    (count.clone(), seen.clone(), free.clone(), parked.clone());
                core.set_timeout(Duration::from_millis(200), move |core| {
                    seen.set(Some(count.get()));
                    free.set(true);
                    for (target, res) in std::mem::take(&mut *parked.borrow_mut()) {
                        reply(core, res, &target);
                    }
                });
            }
        };
        let mut fx = start(ServerConfig::default(), handler);
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            let targets: Vec<String> = (0..REQUESTS).map(|i| format!("/?{i}")).collect();
            let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
            let mut client = Client::connect(addr);
            client.send(gets(&targets));
            for target in targets {
                assert_eq!(client.ok_keep_alive(), target);
            }
        });
        assert_eq!(at_release.get(), Some(MAX_PIPELINE as usize), "handler calls when released");
        assert_eq!(calls.get(), REQUESTS);
    });
}

// ---------------------------------------------------------------------------------------------
// 12. A pipeline in one read is answered in one write
// ---------------------------------------------------------------------------------------------

#[test]
fn a_hundred_requests_in_one_write_get_a_hundred_responses_together() {
    const REQUESTS: usize = 100;
    within(LIMIT, || {
        let calls = Rc::new(Cell::new(0));
        let count = calls.clone();
        let handler = move |core: &mut Core, req: &Request<'_>, res: Response| {
            count.set(count.get() + 1);
            reply(core, res, req.target());
        };
        let mut fx = start(ServerConfig::default(), handler);
        let addr = fx.addr;
        let first_read = serve(&mut fx.lp, move || {
            let targets: Vec<String> = (0..REQUESTS).map(|i| format!("/?{i}")).collect();
            let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
            let mut client = Client::connect(addr);
            client.send(gets(&targets));
            // One read from the socket: the responses left in one write, so on loopback they
            // arrive as one segment, all at once.
            assert!(client.fill(), "EOF instead of responses");
            let first_read = client.buf.len();
            for target in targets {
                assert_eq!(client.ok_keep_alive(), target);
            }
            assert!(client.buf.is_empty(), "{}", show(&client.buf));
            (first_read, client.consumed)
        });
        let (first_read, total) = first_read;
        assert_eq!(first_read, total, "the first read had {first_read} of {total} bytes");
        assert_eq!(calls.get(), REQUESTS);
    });
}

// ---------------------------------------------------------------------------------------------
// 13. Timeouts
// ---------------------------------------------------------------------------------------------

/// A server answering every request with its target, with `config`.
fn echo_target_server(config: ServerConfig) -> Fixture {
    start(config, |core: &mut Core, req: &Request<'_>, res: Response| {
        reply(core, res, req.target());
    })
}

/// Asserts that `elapsed` is `timeout`, give or take the loop's millisecond timers and a busy
/// machine.
#[track_caller]
fn assert_about(elapsed: Duration, timeout: Duration, what: &str) {
    let early = timeout - Duration::from_millis(5);
    let late = timeout + Duration::from_secs(2);
    assert!(elapsed >= early && elapsed < late, "{what} after {elapsed:?}, not ~{timeout:?}");
}

#[test]
fn a_partial_head_gets_408_and_a_close_after_the_header_timeout() {
    within(LIMIT, || {
        let config = ServerConfig { header_timeout: SHORT, ..ServerConfig::default() };
        let mut fx = echo_target_server(config);
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            let started = Instant::now();
            let mut client = Client::connect(addr);
            client.send("GET / HTTP/1.1\r\nHost: t\r\n");
            let resp = client.response();
            assert_about(started.elapsed(), SHORT, "408");
            assert_eq!(resp.status, 408);
            assert!(resp.closes());
            assert_eq!(show(&client.eof()), "");

            // Nothing at all: a close, without a response.
            let started = Instant::now();
            let mut client = Client::connect(addr);
            assert_eq!(show(&client.eof()), "");
            assert_about(started.elapsed(), SHORT, "the close of a silent connection");
        });
    });
}

#[test]
fn an_idle_connection_is_closed_without_a_response_after_the_idle_timeout() {
    within(LIMIT, || {
        let config = ServerConfig { idle_timeout: SHORT, ..ServerConfig::default() };
        let mut fx = echo_target_server(config);
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            let mut client = Client::connect(addr);
            let started = Instant::now();
            client.send(get("/"));
            assert_eq!(client.ok_keep_alive(), "/");
            assert_eq!(show(&client.eof()), "");
            assert_about(started.elapsed(), SHORT, "the idle close");
        });
    });
}

#[test]
fn a_stalled_body_gets_408_after_the_body_timeout() {
    within(LIMIT, || {
        let config = ServerConfig { body_timeout: SHORT, ..ServerConfig::default() };
        let mut fx = echo_target_server(config);
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            let mut client = Client::connect(addr);
            client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n012");
            let started = Instant::now();
            client.send("345");
            let resp = client.response();
            assert_about(started.elapsed(), SHORT, "408");
            assert_eq!(resp.status, 408);
            assert!(resp.closes());
            assert_eq!(show(&client.eof()), "");
        });
    });
}

#[test]
fn a_busy_keep_alive_connection_outlives_the_idle_timeout() {
    const IDLE: Duration = Duration::from_millis(400);
    within(LIMIT, || {
        let config = ServerConfig { idle_timeout: IDLE, ..ServerConfig::default() };
        let mut fx = echo_target_server(config);
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            let mut client = Client::connect(addr);
            let started = Instant::now();
            let mut last = started;
            let mut i = 0;
            while started.elapsed() < 2 * IDLE {
                last = Instant::now();
                client.send(get(&format!("/?{i}")));
                assert_eq!(client.ok_keep_alive(), format!("/?{i}"));
                i += 1;
                // Pacing, not synchronisation: a request every third of the idle timeout.
                thread::sleep(IDLE / 3);
            }
            assert_eq!(show(&client.eof()), "");
            assert_about(last.elapsed(), IDLE, "the idle close after the last request");
        });
    });
}

// ---------------------------------------------------------------------------------------------
// 14. A panicking handler
// ---------------------------------------------------------------------------------------------

#[test]
fn a_panic_in_the_handler_closes_only_its_connection() {
    within(LIMIT, || {
        let handler = |core: &mut Core, req: &Request<'_>, res: Response| {
            if req.path() == "/panic" {
                panic!("boom");
            }
            reply(core, res, req.target());
        };
        let mut fx = start(ServerConfig::default(), handler);
        let reports = Log::default();
        let sink = reports.clone();
        fx.lp.set_panic_hook(move |report| sink.borrow_mut().push(report.to_string()));
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            let mut other = Client::connect(addr);
            other.send(get("/other?1"));
            assert_eq!(other.ok_keep_alive(), "/other?1");

            // A request answered, then one that panics, in one read.
            let mut victim = Client::connect(addr);
            victim.send(gets(&["/ok?victim", "/panic"]));
            let (rest, _reset) = victim.end();
            // What it may get is its first answer, and nothing else.
            let rest = show(&rest);
            let first_answer_only = rest.starts_with("HTTP/1.1 200 OK\\r\\n")
                && rest.ends_with("\\r\\n\\r\\n/ok?victim")
                && rest.matches("HTTP/1.1").count() == 1;
            assert!(rest.is_empty() || first_answer_only, "the victim got {rest}");

            // The connection that was open goes on, and gets its own answers only.
            for i in 2..4 {
                other.send(get(&format!("/other?{i}")));
                assert_eq!(other.ok_keep_alive(), format!("/other?{i}"));
            }
            // A new one is served.
            let mut new = Client::connect(addr);
            new.send(get("/new"));
            assert_eq!(new.ok_keep_alive(), "/new");
        });
        let reports = reports.borrow();
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert!(reports[0].contains("boom"), "{reports:?}");
    });
}

// ---------------------------------------------------------------------------------------------
// 15. Backpressure: a streamed response waits for its output to drain
// ---------------------------------------------------------------------------------------------

/// The size of each piece a [`pump`] writes.
const PIECE: usize = 16 * 1024;

/// A streamed body larger than anything the loopback socket buffers can absorb (the receive
/// window of a client that does not read stays small, the send buffer grows to 4 MiB at most).
const LARGE: usize = 64 * 1024 * 1024;

/// What a [`pump`] tells the client thread.
#[derive(Debug, PartialEq)]
enum Pumped {
    /// `write` said stop after this many body bytes, with this many bytes queued on the
    /// stream; the pump waits for drain.
    Blocked(usize, usize),
    /// A drain callback learned that the connection is gone.
    Closed,
}

/// What the pumps of a test saw, on the loop side.
#[derive(Default)]
struct Probe {
    /// `on_drain` calls, and their callbacks by outcome.
    waits: Cell<usize>,
    drained: Cell<usize>,
    closed: Cell<usize>,
    /// The most the stream held queued after a write.
    max_queued: Cell<usize>,
    /// Set while `on_drain` runs: its callback must never run inside it.
    inside: Cell<bool>,
    events: RefCell<Option<mpsc::Sender<Pumped>>>,
    log: Log,
}

impl Probe {
    fn tell(&self, event: Pumped) {
        if let Some(events) = self.events.borrow().as_ref() {
            let _ = events.send(event);
        }
    }
}

/// The bytes `from..from + len` of a [`pattern`] body, made piece by piece.
fn pattern_at(from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(|i| (i % 251) as u8).collect()
}

/// Streams bytes `sent..total` of a pattern body in [`PIECE`]s; when `write` says stop, waits
/// for drain and goes on from its callback. Ends the response at `total`.
fn pump(core: &mut Core, mut res: Response, mut sent: usize, total: usize, probe: Rc<Probe>) {
    while sent < total {
        let len = PIECE.min(total - sent);
        let Ok(more) = res.write(core, &pattern_at(sent, len)) else {
            // The connection is gone (the client reset it while we were writing).
            probe.log.borrow_mut().push(format!("write failed after {sent}"));
            return probe.tell(Pumped::Closed);
        };
        sent += len;
        let queued = core.queued_bytes(res.stream()).expect("the stream is open");
        probe.max_queued.set(probe.max_queued.get().max(queued));
        if !more && sent < total {
            probe.waits.set(probe.waits.get() + 1);
            probe.tell(Pumped::Blocked(sent, queued));
            probe.log.borrow_mut().push(format!("blocked after {sent}"));
            probe.inside.set(true);
            let again = probe.clone();
            res.on_drain(core, move |core, res| {
                assert!(!again.inside.get(), "the drain callback ran inside on_drain");
                match res {
                    Ok(res) => {
                        again.drained.set(again.drained.get() + 1);
                        pump(core, res, sent, total, again);
                    }
                    Err(err) => {
                        assert!(matches!(err, Error::Closed(_)), "{err}");
                        again.closed.set(again.closed.get() + 1);
                        again.log.borrow_mut().push(format!("closed after {sent}"));
                        again.tell(Pumped::Closed);
                    }
                }
            });
            probe.inside.set(false);
            return;
        }
    }
    res.end(core).expect("end the body");
    probe.log.borrow_mut().push(format!("ended at {sent}"));
}

/// Checks that `body` is the first `len` bytes of a [`pattern`], comparing a period at a time
/// (64 MiB byte by byte is slow in a debug build).
#[track_caller]
fn assert_pattern(body: &[u8], len: usize, what: &str) {
    let period = pattern(251 * 256);
    for (i, piece) in body.chunks(period.len()).enumerate() {
        if piece != &period[..piece.len()] {
            assert_same(
                piece,
                &period[..piece.len()],
                &format!("{what}, from {}", i * period.len()),
            );
        }
    }
    assert_eq!(body.len(), len, "{what}: length");
}

/// Starts a [`pump`] of `total` bytes with a `Content-Length`.
fn start_pump(core: &mut Core, mut res: Response, total: usize, probe: Rc<Probe>) {
    let length = total.to_string();
    let headers = [("Content-Type", "application/octet-stream"), ("Content-Length", &length)];
    res.start(core, 200, &headers).expect("start the body");
    pump(core, res, 0, total, probe);
}

/// A server that answers `GET /large` with a [`LARGE`] pumped body (any other path with a
/// 256 KiB one); and the probe, whose events go to the returned receiver.
fn pump_server() -> (Fixture, Rc<Probe>, mpsc::Receiver<Pumped>) {
    let probe = Rc::new(Probe::default());
    let (events, rx) = mpsc::channel();
    *probe.events.borrow_mut() = Some(events);
    let pumps = probe.clone();
    let handler = move |core: &mut Core, req: &Request<'_>, res: Response| {
        let total = if req.path() == "/large" { LARGE } else { 256 * 1024 };
        start_pump(core, res, total, pumps.clone());
    };
    (start(ServerConfig::default(), handler), probe, rx)
}

#[test]
fn a_large_response_to_a_client_that_does_not_read_waits_for_drain_and_resumes() {
    within(LIMIT, || {
        let (mut fx, probe, events) = pump_server();
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            let mut client = Client::connect(addr);
            client.send(get("/large"));
            // Not a byte read yet: the server must stop by itself, long before the end, with
            // output queued on the stream (the first stop may be the read's batch).
            let sent = loop {
                match events.recv_timeout(IO_TIMEOUT).expect("the server to block") {
                    Pumped::Blocked(sent, queued) if queued > 0 => break sent,
                    Pumped::Blocked(..) => {}
                    Pumped::Closed => panic!("the connection closed"),
                }
            };
            assert!(sent < LARGE / 4, "the server wrote {sent} bytes before it blocked");
            // Now read it all: the server resumes whenever the client catches up.
            let resp = client.response();
            assert_eq!(resp.status, 200);
            assert_pattern(&resp.body, LARGE, "the large body");
            // The connection goes on.
            client.send(get("/small"));
            assert_pattern(&client.response().body, 256 * 1024, "the next body");
        });
        let (waits, drained) = (probe.waits.get(), probe.drained.get());
        assert!(waits >= 2, "the pumps waited {waits} times");
        assert_eq!((drained, probe.closed.get()), (waits, 0), "one callback per wait");
        // Bounded memory: the high watermark, plus the piece that crossed it.
        let max = probe.max_queued.get();
        let bound = reactor::stream::DEFAULT_HIGH_WATER + PIECE;
        assert!(max <= bound, "the stream held {max} bytes queued, over {bound}");
        let log = probe.log.borrow();
        assert_eq!(log.iter().filter(|line| line.starts_with("ended at")).count(), 2, "{log:?}");
    });
}

#[test]
fn a_response_streamed_out_of_turn_waits_for_its_turn_then_for_the_stream() {
    within(LIMIT, || {
        let probe = Rc::new(Probe::default());
        let held = Held::default();
        let pumps = probe.clone();
        let handler = move |core: &mut Core, req: &Request<'_>, res: Response| {
            if req.path() == "/first" {
                *held.borrow_mut() = Some(res);
                return;
            }
            // Behind `/first`: the body goes into a slot, which says stop at 64 KiB, and
            // stays stopped until `/first` is answered, a while later.
            start_pump(core, res, 4 * 1024 * 1024, pumps.clone());
            let (held, log) = (held.clone(), pumps.log.clone());
            core.set_timeout(Duration::from_millis(50), move |core| {
                log.borrow_mut().push("first answered".to_owned());
                let first = held.borrow_mut().take().expect("the first request, held");
                reply(core, first, "first");
            });
        };
        let mut fx = start(ServerConfig::default(), handler);
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            let mut client = Client::connect(addr);
            client.send(gets(&["/first", "/second"]));
            assert_eq!(client.ok_keep_alive(), "first");
            let resp = client.response();
            assert_pattern(&resp.body, 4 * 1024 * 1024, "the second body");
        });
        let log = probe.log.borrow();
        // The slot's bound: the head (under 100 bytes) and four pieces reach 64 KiB.
        assert_eq!(log[..2], ["blocked after 65536", "first answered"], "{log:?}");
        assert_eq!(log.last().map(String::as_str), Some("ended at 4194304"), "{log:?}");
        assert_eq!((probe.drained.get(), probe.closed.get()), (probe.waits.get(), 0));
    });
}

#[test]
fn a_response_waiting_for_drain_learns_once_that_its_connection_was_closed() {
    within(LIMIT, || {
        let probe = Rc::new(Probe::default());
        let pumps = probe.clone();
        let handler = move |core: &mut Core, _: &Request<'_>, res: Response| {
            let stream = res.stream();
            start_pump(core, res, LARGE, pumps.clone());
            // The pump waits for drain (the batch of this read is past the high watermark);
            // the server closes the connection, as a write timeout would, before it drains.
            assert_eq!(pumps.waits.get(), 1, "the pump waits");
            core.abort(stream).expect("abort the connection");
        };
        let mut fx = start(ServerConfig::default(), handler);
        let conns = watch_connections(&mut fx.lp, &fx.server);
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            let mut client = Client::connect(addr);
            client.send(get("/large"));
            let (_, reset) = client.end();
            assert!(reset, "the abort is a reset");
            conns.wait_for(1);
            conns.wait_for(0);
        });
        assert_eq!(*probe.log.borrow(), ["blocked after 65536", "closed after 65536"]);
        assert_eq!((probe.waits.get(), probe.drained.get(), probe.closed.get()), (1, 0, 1));
    });
}

#[test]
fn a_client_that_resets_a_stalled_response_is_noticed_once() {
    within(LIMIT, || {
        let (mut fx, probe, events) = pump_server();
        let conns = watch_connections(&mut fx.lp, &fx.server);
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            let mut client = Client::connect(addr);
            client.send(get("/large"));
            conns.wait_for(1);
            // Blocked on the stream (not only on the first read's batch): the client's
            // buffers are full, and it reads nothing.
            loop {
                match events.recv_timeout(IO_TIMEOUT).expect("the server to block") {
                    Pumped::Blocked(_, queued) if queued > 0 => break,
                    Pumped::Blocked(..) => {}
                    Pumped::Closed => panic!("closed before the client closed"),
                }
            }
            // Closed with the response unread: a reset, noticed by a write or by the wait.
            drop(client);
            loop {
                match events.recv_timeout(IO_TIMEOUT).expect("the pump to hear of the close") {
                    Pumped::Closed => break,
                    Pumped::Blocked(..) => {}
                }
            }
            conns.wait_for(0);
        });
        let log = probe.log.borrow();
        let gone = |line: &&String| line.starts_with("closed") || line.starts_with("write failed");
        assert_eq!(log.iter().filter(gone).count(), 1, "{log:?}");
        assert!(gone(&log.last().expect("a log")), "{log:?}");
        assert_eq!(probe.waits.get(), probe.drained.get() + probe.closed.get(), "{log:?}");
    });
}

#[test]
fn a_response_waiting_behind_one_that_closes_the_connection_learns_it_is_closed() {
    within(LIMIT, || {
        let probe = Rc::new(Probe::default());
        let held = Held::default();
        let pumps = probe.clone();
        let handler = move |core: &mut Core, req: &Request<'_>, res: Response| {
            if req.path() == "/first" {
                *held.borrow_mut() = Some(res);
                return;
            }
            start_pump(core, res, 1024 * 1024, pumps.clone());
            let held = held.clone();
            core.set_timeout(Duration::from_millis(20), move |core| {
                let first = held.borrow_mut().take().expect("the first request, held");
                // The handler closes the connection after the first response: the second
                // will never be sent.
                let headers = [("Content-Type", "text/plain"), ("Connection", "close")];
                first.send(core, 200, &headers, b"first").expect("answer the first");
            });
        };
        let mut fx = start(ServerConfig::default(), handler);
        let addr = fx.addr;
        serve(&mut fx.lp, move || {
            let mut client = Client::connect(addr);
            client.send(gets(&["/first", "/second"]));
            let resp = client.response();
            assert_eq!((resp.status, resp.text().as_str()), (200, "first"));
            assert!(resp.closes());
            assert_eq!(show(&client.eof()), "");
        });
        assert_eq!(*probe.log.borrow(), ["blocked after 65536", "closed after 65536"]);
        assert_eq!((probe.waits.get(), probe.drained.get(), probe.closed.get()), (1, 0, 1));
    });
}

#[test]
fn a_loop_dropped_while_a_response_waits_for_drain_frees_the_response_and_its_callback() {
    within(LIMIT, || {
        let (mut fx, probe, events) = pump_server();
        let gone = Rc::downgrade(&probe);
        drop(probe);
        let addr = fx.addr;
        let client = serve(&mut fx.lp, move || {
            let mut client = Client::connect(addr);
            client.send(get("/large"));
            loop {
                match events.recv_timeout(IO_TIMEOUT).expect("the server to block") {
                    Pumped::Blocked(_, queued) if queued > 0 => break,
                    Pumped::Blocked(..) => {}
                    Pumped::Closed => panic!("the connection closed"),
                }
            }
            // Kept open until the loop is gone.
            client
        });
        // The waiting response holds the server, which holds it: dropping the loop must end
        // that cycle, or the probe (held by the server's handler and the drain callback)
        // would outlive everything.
        drop(fx);
        assert!(gone.upgrade().is_none(), "the server and its drain waiter were leaked");
        drop(client);
    });
}

// ---------------------------------------------------------------------------------------------
// Helpers: the loop side
// ---------------------------------------------------------------------------------------------

/// A server on a fresh loop, on an ephemeral loopback port.
struct Fixture {
    lp: EventLoop,
    server: Server,
    addr: SocketAddr,
}

/// A loop serving `handler` with `config`. A panic in a callback fails the test: the panic hook
/// raises it out of `run()`.
fn start(config: ServerConfig, handler: impl Handler) -> Fixture {
    let mut lp = EventLoop::new().expect("create a loop");
    lp.set_panic_hook(|report| panic!("{report}"));
    let server = Server::new(&mut lp, config, handler);
    let listener = server.listen(&mut lp, "127.0.0.1:0".parse().unwrap()).expect("listen");
    let addr = lp.local_addr(listener).expect("the listener's address");
    Fixture { lp, server, addr }
}

/// Answers 200 with `body` as text.
fn reply(core: &mut Core, res: Response, body: &str) {
    res.send(core, 200, TEXT, body.as_bytes()).expect("send a response");
}

/// A call's result as the tests compare it: `Ok(value)`, or the error's kind.
fn outcome<T: Debug>(result: &reactor::Result<T>) -> String {
    match result {
        Ok(value) => format!("Ok({value:?})"),
        Err(Error::Io(err)) => format!("Err({:?})", err.kind()),
        Err(Error::Closed(_)) => "Err(Closed)".to_owned(),
        Err(err) => format!("Err({err})"),
    }
}

/// Runs the loop on this thread while `client` runs on its own; when the client is done it
/// stops the loop. Returns what the client returned.
fn serve<T: Send + 'static>(lp: &mut EventLoop, client: impl FnOnce() -> T + Send + 'static) -> T {
    let mut stopper = lp.remote();
    stopper.unref();
    let client = spawn_client(lp, move || {
        let value = client();
        let _ = stopper.post(|core| core.stop());
        value
    });
    lp.run().expect("run the loop");
    join(client)
}

/// Spawns a client thread. If it panics (a failed assertion, a read that timed out), it stops
/// the loop, so that `run()` returns and the test fails on [`join`].
fn spawn_client<T: Send + 'static>(
    core: &Core,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    let mut remote = core.remote();
    remote.unref();
    let guard = StopOnPanic(remote);
    thread::Builder::new()
        .name("client".to_owned())
        .spawn(move || {
            let _guard = guard;
            f()
        })
        .unwrap()
}

/// See [`spawn_client`].
struct StopOnPanic(reactor::Remote);

impl Drop for StopOnPanic {
    fn drop(&mut self) {
        if thread::panicking() {
            let _ = self.0.post(|core| core.stop());
        }
    }
}

/// Joins a client thread, failing with its panic.
fn join<T>(client: thread::JoinHandle<T>) -> T {
    client.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Every change of `server.connections()`, as the loop sees it before and after each poll.
struct ConnectionCount(mpsc::Receiver<usize>);

fn watch_connections(lp: &mut EventLoop, server: &Server) -> ConnectionCount {
    let (changes, rx) = mpsc::channel();
    let last = Cell::new(0);
    let server = server.clone();
    let observe = Rc::new(move || {
        let now = server.connections();
        if last.replace(now) != now {
            let _ = changes.send(now);
        }
    });
    let (before, after) = (observe.clone(), observe);
    let prepare = lp.prepare(move |_, _| before());
    let check = lp.check(move |_, _| after());
    lp.unref(prepare).unwrap();
    lp.unref(check).unwrap();
    ConnectionCount(rx)
}

impl ConnectionCount {
    /// Waits for the next change; it must be to `want`.
    #[track_caller]
    fn wait_for(&self, want: usize) -> usize {
        let got = self.0.recv_timeout(IO_TIMEOUT).expect("a change of the connection count");
        assert_eq!(got, want, "the connection count");
        got
    }

    /// No change is waiting.
    #[track_caller]
    fn assert_quiet(&self) {
        assert_eq!(self.0.try_recv().ok(), None, "an unexpected change of the connection count");
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers: the client side
// ---------------------------------------------------------------------------------------------

fn request(method: &str, target: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: t\r\n").into_bytes();
    if !body.is_empty() {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn get(target: &str) -> Vec<u8> {
    request("GET", target, b"")
}

fn post(target: &str, body: &[u8]) -> Vec<u8> {
    request("POST", target, body)
}

/// GET requests for `targets`, pipelined: to be sent in one write.
fn gets(targets: &[&str]) -> Vec<u8> {
    targets.iter().flat_map(|target| get(target)).collect()
}

/// A blocking client connection with read and write timeouts, and the bytes read from it that
/// no response has taken yet.
struct Client {
    socket: TcpStream,
    buf: Vec<u8>,
    /// Bytes taken by the responses read so far.
    consumed: usize,
}

/// A response as the client read it. Header names are lowercase.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The chunk sizes, for a chunked body.
    chunks: Option<Vec<usize>>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        let mut values = self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let value = values.next();
        assert_eq!(values.next(), None, "two {name} fields: {:?}", self.headers);
        value
    }

    fn closes(&self) -> bool {
        self.header("connection") == Some("close")
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a text body")
    }
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let socket = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
        socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        socket.set_nodelay(true).unwrap();
        Client { socket, buf: Vec::new(), consumed: 0 }
    }

    #[track_caller]
    fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.socket.write_all(bytes.as_ref()).expect("send");
    }

    /// Reads once more into the buffer; `false` at EOF. Fails on an error or a timeout.
    #[track_caller]
    fn fill(&mut self) -> bool {
        let mut chunk = vec![0; 256 * 1024];
        loop {
            match self.socket.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => panic!("read: {err} after {:?}", show(&self.buf)),
            }
        }
    }

    #[track_caller]
    fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill(), "EOF with {} of {n} bytes: {}", self.buf.len(), show(&self.buf));
        }
        self.consumed += n;
        self.buf.drain(..n).collect()
    }

    /// The next CRLF-terminated line, without its CRLF.
    #[track_caller]
    fn line(&mut self) -> String {
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                break i;
            }
            assert!(self.fill(), "EOF in a line: {}", show(&self.buf));
        };
        let line = self.take(end + 2);
        String::from_utf8(line[..end].to_vec()).expect("an ASCII line")
    }

    /// The next response, body included.
    #[track_caller]
    fn response(&mut self) -> Resp {
        self.read_response(false)
    }

    /// The next response, which has no body (to a HEAD request, or one to be read apart).
    #[track_caller]
    fn head_response(&mut self) -> Resp {
        self.read_response(true)
    }

    #[track_caller]
    fn read_response(&mut self, head_only: bool) -> Resp {
        let status_line = self.line();
        let status = match status_line.split(' ').collect::<Vec<_>>()[..] {
            ["HTTP/1.1", code, ..] => code.parse().expect("a status code"),
            _ => panic!("not a status line: {status_line:?}"),
        };
        let mut headers = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("a header field");
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        let mut resp = Resp { status, headers, body: Vec::new(), chunks: None };
        if head_only || status < 200 || status == 204 || status == 304 {
            return resp;
        }
        if let Some(coding) = resp.header("transfer-encoding") {
            assert_eq!(coding, "chunked");
            assert_eq!(resp.header("content-length"), None, "both framings");
            let mut sizes = Vec::new();
            loop {
                let size = usize::from_str_radix(&self.line(), 16).expect("a chunk size");
                if size == 0 {
                    assert_eq!(self.line(), "", "trailers");
                    break;
                }
                let data = self.take(size);
                resp.body.extend_from_slice(&data);
                sizes.push(size);
                assert_eq!(self.take(2), b"\r\n");
            }
            resp.chunks = Some(sizes);
        } else {
            let length = resp.header("content-length").expect("a framed response");
            resp.body = self.take(length.parse().expect("a length"));
        }
        resp
    }

    /// The next response: 200, keeping the connection; returns its body.
    #[track_caller]
    fn ok_keep_alive(&mut self) -> String {
        let resp = self.response();
        assert_eq!(resp.status, 200, "{resp:?}");
        assert!(!resp.closes(), "{resp:?}");
        resp.text()
    }

    /// The next response is a 500 with a close, then EOF.
    #[track_caller]
    fn expect_500_and_close(&mut self, what: &str) -> Resp {
        let resp = self.response();
        assert_eq!(resp.status, 500, "{what}: {resp:?}");
        assert!(resp.closes(), "{what}: {resp:?}");
        assert_eq!(show(&self.eof()), "", "{what}: after the 500");
        resp
    }

    /// Reads to the end of the connection, which must be an EOF; returns what was left.
    #[track_caller]
    fn eof(&mut self) -> Vec<u8> {
        let (rest, reset) = self.end();
        assert!(!reset, "a reset instead of an EOF, after {}", show(&rest));
        rest
    }

    /// Reads to the end of the connection; returns what was left and whether it ended with a
    /// reset rather than an EOF.
    #[track_caller]
    fn end(&mut self) -> (Vec<u8>, bool) {
        self.try_end().unwrap_or_else(|err| panic!("the server did not close: {err}"))
    }

    fn try_end(&mut self) -> std::io::Result<(Vec<u8>, bool)> {
        let mut chunk = vec![0; 64 * 1024];
        loop {
            match self.socket.read(&mut chunk) {
                Ok(0) => return Ok((std::mem::take(&mut self.buf), false)),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == ErrorKind::ConnectionReset => {
                    return Ok((std::mem::take(&mut self.buf), true));
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }
}

/// Closes `socket` with a reset instead of a FIN: waits (bounded by the read timeout) until a
/// response has arrived and drops the socket with it unread, which makes the kernel send a
/// reset (RFC 2525 §2.17) without a `SO_LINGER` call through libc.
fn reset(socket: TcpStream) {
    let mut byte = [0u8; 1];
    let peeked = socket.peek(&mut byte).expect("a response to leave unread before the reset");
    assert_eq!(peeked, 1, "the server closed instead of answering");
    drop(socket);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Bytes as text, with CR and LF escaped.
fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\r', "\\r").replace('\n', "\\n")
}

/// `len` bytes of a pattern that repeats only every 251 bytes.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Byte-for-byte equality, reporting the first difference instead of both buffers.
#[track_caller]
fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: first wrong byte at offset {i} of {}", want.len());
    }
    assert_eq!(got.len(), want.len(), "{what}: length");
}
