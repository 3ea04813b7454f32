//! Black-box tests of the `http` example (`examples/http.rs`), the HTTP/1.1 server: the built
//! example binary runs as a child process on `127.0.0.1:0`, and the tests talk to it over raw
//! sockets, with `curl`, and with Python's `http.client`.
//!
//! The contract under test, from the example's docs:
//!
//! - Command line: `http [ADDR] [--header-timeout MS] [--idle-timeout MS] [--max-body BYTES]`,
//!   defaulting to 127.0.0.1:8080, 10000 ms, 5000 ms and 1048576 bytes. It prints
//!   `listening on IP:PORT` once ready; bad arguments exit with status 2 and a usage message on
//!   stderr; SIGINT and SIGTERM shut it down gracefully (idle connections closed, requests in
//!   flight finished with `Connection: close`, no new connections) with status 0.
//! - Routes: `GET /` and `GET /plaintext` answer `Hello, World!` as `text/plain`, `GET /json`
//!   `{"message":"Hello, World!"}` as `application/json`, `POST /echo` the request body as
//!   `application/octet-stream`, `GET /chunked` `Hello, World!` in several chunks; HEAD of a
//!   GET route gets the same headers and no body; an unknown path 404; a known path with the
//!   wrong method 405 with `Allow`. The query string does not take part in routing.
//! - Every response has an IMF-fixdate `Date` and Content-Length or chunked framing.
//!   Connections persist by default in HTTP/1.1 and only on request in HTTP/1.0;
//!   `Connection: close` is honoured; pipelined requests are answered in order. Request bodies
//!   are framed by Content-Length or chunked coding (extensions and trailers accepted).
//! - Hostile input is rejected with an exact status (400, 413, 417, 431, 501, 505) carrying
//!   `Connection: close`, after which the server closes cleanly: the client reads the whole
//!   response and then an EOF, not a reset, even with unread request bytes in flight. The
//!   server goes on serving everyone else.
//! - `Expect: 100-continue` gets `HTTP/1.1 100 Continue` before the body (or 413 instead when
//!   the declared body is too large). Slow heads and stalled bodies are cut off after
//!   `--header-timeout`, idle keep-alive connections after `--idle-timeout`.
//!
//! Where the contract leaves a choice (505 or 400 for an unsupported version, 408 or a bare
//! close for a timeout, whether an interim 100 precedes the answer to a client that sent its
//! body at once) the tests accept each allowed answer and nothing else.
//!
//! Every child is killed and reaped by a guard when its test ends, and every test is bounded
//! by a watchdog that kills all children and aborts the test binary instead of hanging. Every
//! socket read and write is bounded by a timeout, and timeouts are measured by blocking on a
//! read; the only sleeps pace deliberately slow clients or bounded polling loops. The tests
//! need `curl` and `python3` on the PATH, and fail saying so if either is missing. The binary
//! must be built first: a plain `cargo test` does, `cargo test --test http_example` does not
//! (then run `cargo build --example http` before it).

mod util;

use std::collections::BTreeSet;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reactor::signal::{SIGINT, SIGTERM, kill};
use util::child::{
    EXIT_LIMIT, IO_TIMEOUT, Process, Server, Watchdog, assert_same, example_binary, poll_until,
    random_bytes, run_captured, set_timeouts,
};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

const HELLO: &str = "Hello, World!";
const JSON: &str = r#"{"message":"Hello, World!"}"#;
const TEXT: &str = "text/plain";
const JSON_TYPE: &str = "application/json";
const OCTETS: &str = "application/octet-stream";

// ---------------------------------------------------------------------------------------------
// 1. Routes.

#[test]
fn get_routes_answer_their_exact_bodies_and_types() {
    let _watchdog = Watchdog::arm("GET routes", Duration::from_secs(20));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    for path in ["/", "/plaintext"] {
        let resp = client.request(&get(path));
        expect_response(&resp, 200, Some(TEXT), HELLO.as_bytes(), &format!("GET {path}"));
        assert_eq!(resp.framing, Framing::Length(HELLO.len()), "GET {path}: {}", resp.describe());
    }
    let resp = client.request(&get("/json"));
    expect_response(&resp, 200, Some(JSON_TYPE), JSON.as_bytes(), "GET /json");
    assert_eq!(resp.framing, Framing::Length(JSON.len()), "GET /json: {}", resp.describe());

    let resp = client.request(&get("/chunked"));
    expect_response(&resp, 200, None, HELLO.as_bytes(), "GET /chunked");
    assert_eq!(resp.framing, Framing::Chunked, "GET /chunked: {}", resp.describe());
    assert!(
        resp.chunks.len() >= 2,
        "GET /chunked: the body came in {} chunk(s) {:?}, not several",
        resp.chunks.len(),
        resp.chunks
    );
    // All of it on one keep-alive connection.
    expect_hello(&client.request(&get("/plaintext")), "GET /plaintext after /chunked");
}

#[test]
fn post_echo_answers_the_request_body() {
    let _watchdog = Watchdog::arm("POST /echo", Duration::from_secs(20));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    let binary: Vec<u8> = (0..=255u8).collect();
    for body in [&b"hello"[..], b"", b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", &binary] {
        let resp = client.request(&post("/echo", body));
        expect_echo(&resp, body, &format!("POST /echo with {}", show(body)));
    }
    // No Content-Length and no Transfer-Encoding: a request without a body.
    let resp = client.request(b"POST /echo HTTP/1.1\r\nHost: test\r\n\r\n");
    expect_echo(&resp, b"", "POST /echo without any body framing");
    expect_hello(&client.request(&get("/plaintext")), "GET /plaintext after the echoes");
}

#[test]
fn head_gets_the_get_headers_and_no_body() {
    let _watchdog = Watchdog::arm("HEAD", Duration::from_secs(20));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    for path in ["/", "/plaintext", "/json", "/chunked"] {
        let got = client.request(&get(path));
        assert_eq!(got.status, 200, "GET {path}: {}", got.describe());
        client.send(&request("HEAD", path));
        let head = client.read_head_response();
        assert_eq!(head.status, 200, "HEAD {path}: {}", head.describe());
        check_common(&head, &format!("HEAD {path}"));
        assert_eq!(
            comparable_headers(&head),
            comparable_headers(&got),
            "HEAD {path} and GET {path} have different headers (Date aside)"
        );
        // A body after the HEAD response would be read as the start of this one.
        let next = client.request(&get("/json"));
        expect_response(
            &next,
            200,
            Some(JSON_TYPE),
            JSON.as_bytes(),
            &format!("after HEAD {path}"),
        );
    }
}

#[test]
fn unknown_paths_get_404() {
    let _watchdog = Watchdog::arm("404", Duration::from_secs(20));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    let cases: [&[u8]; 7] = [
        b"GET /nope HTTP/1.1\r\nHost: test\r\n\r\n",
        b"GET /plaintext/ HTTP/1.1\r\nHost: test\r\n\r\n",
        b"GET /plaintextx HTTP/1.1\r\nHost: test\r\n\r\n",
        b"GET /PLAINTEXT HTTP/1.1\r\nHost: test\r\n\r\n",
        b"GET /nope?plaintext HTTP/1.1\r\nHost: test\r\n\r\n",
        b"HEAD /nope HTTP/1.1\r\nHost: test\r\n\r\n",
        b"POST /nope HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello",
    ];
    for raw in cases {
        let what = show(raw);
        client = answered_then_usable(server.addr, client, raw, 404, &what);
    }
}

#[test]
fn wrong_methods_get_405_with_allow() {
    let _watchdog = Watchdog::arm("405", Duration::from_secs(20));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    let get_routes = ["/", "/plaintext", "/json", "/chunked"];
    for path in get_routes {
        for method in ["POST", "PUT", "DELETE"] {
            let raw =
                format!("{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc");
            let what = format!("{method} {path}");
            let resp = answered(&mut client, raw.as_bytes(), false, 405, &what);
            assert_eq!(resp.header("allow"), Some("GET, HEAD"), "{what}: {}", resp.describe());
            client = usable_after(server.addr, client, &resp, &what);
        }
    }
    for (method, head) in [("GET", false), ("HEAD", true), ("PUT", false), ("DELETE", false)] {
        let raw = request(method, "/echo");
        let what = format!("{method} /echo");
        let resp = answered(&mut client, &raw, head, 405, &what);
        assert_eq!(resp.header("allow"), Some("POST"), "{what}: {}", resp.describe());
        client = usable_after(server.addr, client, &resp, &what);
    }
}

#[test]
fn query_strings_are_ignored_for_routing() {
    let _watchdog = Watchdog::arm("query strings", Duration::from_secs(20));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    expect_hello(&client.request(&get("/plaintext?x=1")), "GET /plaintext?x=1");
    expect_hello(&client.request(&get("/?a=b&c")), "GET /?a=b&c");
    expect_hello(&client.request(&get("/plaintext?")), "GET /plaintext?");
    let resp = client.request(&get("/json?message=other"));
    expect_response(&resp, 200, Some(JSON_TYPE), JSON.as_bytes(), "GET /json?message=other");
    let resp = client.request(&get("/chunked?x=%20"));
    expect_response(&resp, 200, None, HELLO.as_bytes(), "GET /chunked?x=%20");
    let resp = client.request(&post("/echo?x=1", b"queried"));
    expect_echo(&resp, b"queried", "POST /echo?x=1");
    let resp = client.request(&request("DELETE", "/echo?x=1"));
    assert_eq!(resp.status, 405, "DELETE /echo?x=1: {}", resp.describe());
}

#[test]
fn every_response_has_a_current_imf_fixdate() {
    let _watchdog = Watchdog::arm("Date", Duration::from_secs(20));
    let server = Server::with_args(&["--max-body", "10"]);
    // `check_common`, which every expectation runs, checks the Date; this test makes sure it
    // sees every kind of response: 200s of each route, 404, 405, and the rejections.
    let mut client = Client::connect(server.addr);
    for raw in [get("/"), get("/json"), get("/chunked"), post("/echo", b"x"), get("/nope")] {
        let resp = client.request(&raw);
        check_common(&resp, &show(&raw));
    }
    client.send(&request("HEAD", "/json"));
    check_common(&client.read_head_response(), "HEAD /json");
    let resp = client.request(&request("POST", "/json"));
    check_common(&resp, "POST /json");
    for raw in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n",
    ] {
        let mut client = Client::connect(server.addr);
        client.send(raw);
        let resp = client.read_response();
        assert!(resp.status >= 400, "{}: {}", show(raw), resp.describe());
        check_common(&resp, &show(raw));
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Request bodies.

#[test]
fn chunked_request_bodies_with_extensions_and_trailers_are_decoded() {
    let _watchdog = Watchdog::arm("chunked bodies", Duration::from_secs(20));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    let cases: [(&[u8], &[u8]); 6] = [
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
        (b"5;name=value\r\nhello\r\n1;a;b=\"q\"\r\n!\r\n0;last\r\n\r\n", b"hello!"),
        (b"5\r\nhello\r\n0\r\nX-Trailer: one\r\nX-Other: two\r\n\r\n", b"hello"),
        (
            b"A\r\n0123456789\r\na\r\nabcdefghij\r\n005\r\nvwxyz\r\n0\r\n\r\n",
            b"0123456789abcdefghijvwxyz",
        ),
        (b"0\r\n\r\n", b""),
    ];
    for (chunks, body) in cases {
        let mut raw =
            b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        raw.extend_from_slice(chunks);
        let resp = client.request(&raw);
        expect_echo(&resp, body, &format!("a chunked POST /echo of {}", show(chunks)));
    }
    // Transfer-Encoding is case-insensitive.
    let raw = b"POST /echo HTTP/1.1\r\nHost: test\r\ntransfer-encoding: Chunked\r\n\r\n\
                3\r\nabc\r\n0\r\n\r\n";
    expect_echo(&client.request(raw), b"abc", "`transfer-encoding: Chunked`");
    expect_hello(&client.request(&get("/plaintext")), "GET /plaintext after the chunked bodies");
}

#[test]
fn identical_duplicate_content_lengths_are_accepted() {
    let _watchdog = Watchdog::arm("duplicate Content-Length", Duration::from_secs(20));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    let raw =
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello";
    expect_echo(&client.request(raw), b"hello", "two `Content-Length: 5` headers");
    expect_hello(&client.request(&get("/plaintext")), "GET /plaintext after it");
}

#[test]
fn framing_headers_with_optional_whitespace_are_accepted() {
    let _watchdog = Watchdog::arm("optional whitespace", Duration::from_secs(20));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    let cases: [&[u8]; 3] = [
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: \t 5 \t\r\n\r\nhello",
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length:5\r\n\r\nhello",
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding:  chunked \r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n",
    ];
    for raw in cases {
        expect_echo(&client.request(raw), b"hello", &show(raw));
    }
}

#[test]
fn one_mebibyte_echo_is_exact_with_content_length_and_chunked() {
    let _watchdog = Watchdog::arm("1 MiB echo", Duration::from_secs(30));
    // 1 MiB is the default --max-body: exactly at the limit, so accepted.
    let server = Server::start();
    let data = random_bytes(MIB, 0x9e37_79b9_7f4a_7c15);
    let mut client = Client::connect(server.addr);

    let head = format!("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {MIB}\r\n\r\n");
    let mut upload = head.into_bytes();
    upload.extend_from_slice(&data);
    let resp = client.request_while_uploading(upload);
    assert_eq!(resp.status, 200, "1 MiB POST /echo: {}", resp.describe());
    check_common(&resp, "1 MiB POST /echo");
    assert_eq!(resp.header("content-type"), Some(OCTETS), "1 MiB POST /echo: content type");
    assert_same(&resp.body, &data, "the echo of 1 MiB sent with Content-Length");

    // The same bytes in chunks of irregular sizes, on the same connection.
    let mut upload =
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let sizes = random_bytes(4096, 7);
    let (mut at, mut i) = (0, 0);
    while at < data.len() {
        let len = (1 + usize::from(sizes[i % sizes.len()]) * 64).min(data.len() - at);
        upload.extend_from_slice(format!("{len:x}\r\n").as_bytes());
        upload.extend_from_slice(&data[at..at + len]);
        upload.extend_from_slice(b"\r\n");
        at += len;
        i += 1;
    }
    upload.extend_from_slice(b"0\r\n\r\n");
    let resp = client.request_while_uploading(upload);
    assert_eq!(resp.status, 200, "1 MiB chunked POST /echo: {}", resp.describe());
    check_common(&resp, "1 MiB chunked POST /echo");
    assert_same(&resp.body, &data, &format!("the echo of 1 MiB sent in {i} chunks"));

    expect_hello(&client.request(&get("/plaintext")), "GET /plaintext after 2 MiB of echo");
}

// ---------------------------------------------------------------------------------------------
// 3. Connection management and pipelining.

#[test]
fn http11_keeps_the_connection_alive_by_default() {
    let _watchdog = Watchdog::arm("HTTP/1.1 keep-alive", Duration::from_secs(20));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    for i in 0..5 {
        let resp = client.request(&get("/plaintext"));
        expect_hello(&resp, &format!("request #{i} on one connection"));
        assert!(!resp.has_token("connection", "close"), "request #{i}: {}", resp.describe());
    }
}

#[test]
fn connection_close_is_honoured() {
    let _watchdog = Watchdog::arm("Connection: close", Duration::from_secs(20));
    let server = Server::start();
    let cases: [&[u8]; 3] = [
        b"GET /plaintext HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        b"GET /plaintext HTTP/1.1\r\nHost: test\r\nconnection: CLOSE\r\n\r\n",
        // A request pipelined behind it is never answered, and the close is still clean.
        b"GET /plaintext HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n\
          GET /json HTTP/1.1\r\nHost: test\r\n\r\n",
    ];
    for raw in cases {
        let what = show(raw);
        let mut client = Client::connect(server.addr);
        let resp = client.request(raw);
        expect_hello(&resp, &what);
        assert!(resp.has_token("connection", "close"), "{what}: {}", resp.describe());
        client.expect_closed(&what);
    }
    // The same after a POST whose body was read.
    let mut client = Client::connect(server.addr);
    let raw =
        b"POST /echo HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi";
    let resp = client.request(raw);
    expect_echo(&resp, b"hi", "POST /echo with Connection: close");
    assert!(resp.has_token("connection", "close"), "{}", resp.describe());
    client.expect_closed("POST /echo with Connection: close");
}

#[test]
fn http10_closes_unless_asked_to_keep_alive() {
    let _watchdog = Watchdog::arm("HTTP/1.0", Duration::from_secs(20));
    let server = Server::start();
    // HTTP/1.0 needs no Host.
    for raw in
        [&b"GET /plaintext HTTP/1.0\r\n\r\n"[..], b"GET /plaintext HTTP/1.0\r\nHost: t\r\n\r\n"]
    {
        let what = show(raw);
        let mut client = Client::connect(server.addr);
        expect_hello(&client.request(raw), &what);
        client.expect_closed(&what);
    }
    let mut client = Client::connect(server.addr);
    for (i, raw) in [
        &b"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"[..],
        b"POST /echo HTTP/1.0\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\nabc",
    ]
    .into_iter()
    .enumerate()
    {
        let what = format!("HTTP/1.0 keep-alive request #{i}: {}", show(raw));
        let resp = client.request(raw);
        assert_eq!(resp.status, 200, "{what}: {}", resp.describe());
        check_common(&resp, &what);
        assert!(
            resp.has_token("connection", "keep-alive"),
            "{what}: the response lacks `Connection: keep-alive`: {}",
            resp.describe()
        );
    }
    // And the next plain HTTP/1.0 request on it ends it.
    let raw = b"GET /json HTTP/1.0\r\n\r\n";
    let resp = client.request(raw);
    expect_response(&resp, 200, Some(JSON_TYPE), JSON.as_bytes(), "HTTP/1.0 without keep-alive");
    client.expect_closed("an HTTP/1.0 request without keep-alive on a kept-alive connection");
}

#[test]
fn a_client_that_half_closes_after_its_requests_still_gets_the_responses() {
    let _watchdog = Watchdog::arm("half-close", Duration::from_secs(20));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    let mut batch = get("/plaintext");
    batch.extend_from_slice(&post("/echo", b"before the FIN"));
    batch.extend_from_slice(&get("/json"));
    client.send(&batch);
    client.stream.shutdown(std::net::Shutdown::Write).expect("half-close");
    expect_hello(&client.read_response(), "the first request before a half-close");
    expect_echo(&client.read_response(), b"before the FIN", "the second request");
    let resp = client.read_response();
    expect_response(&resp, 200, Some(JSON_TYPE), JSON.as_bytes(), "the third request");
    client.expect_closed("three requests and a half-close");
}

#[test]
fn clients_that_vanish_mid_request_do_not_disturb_the_server() {
    let _watchdog = Watchdog::arm("vanishing clients", Duration::from_secs(20));
    let server = Server::start();
    let mut witness = Witness::new(server.addr);
    let partials: [&[u8]; 4] = [
        b"GET /plaintext HTTP/1.1\r\nHo",
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\nhalf",
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe",
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    ];
    for raw in partials {
        for reset in [false, true] {
            let mut client = Client::connect(server.addr);
            if reset {
                // A response left unread makes the close below a reset.
                client.send(b"GET /plaintext HTTP/1.1\r\nHost: test\r\n\r\n");
            }
            client.send(raw);
            if reset {
                reset_on_close(&client.stream);
            }
        }
    }
    // Many pipelined requests, then a reset without reading a byte of the responses: the
    // server's writes fail, and that must cost only this connection.
    let mut batch = Vec::new();
    for _ in 0..2000 {
        batch.extend_from_slice(&post("/echo", &[b'r'; 1000]));
    }
    let mut client = Client::connect(server.addr);
    client.send(&batch);
    reset_on_close(&client.stream);
    drop(client);
    witness.still_served("clients that vanished mid-request");
}

/// Makes the close of `stream` send a reset: waits (bounded by the read timeout) until a
/// response has arrived and leaves it unread. A socket closed with unread input is reset by the
/// kernel (RFC 2525 §2.17), which needs no `SO_LINGER` call through libc.
fn reset_on_close(stream: &TcpStream) {
    let mut byte = [0u8; 1];
    let peeked = stream.peek(&mut byte).expect("a response to leave unread before the reset");
    assert_eq!(peeked, 1, "the server closed instead of answering");
}

#[test]
fn two_hundred_pipelined_requests_are_answered_in_order() {
    let _watchdog = Watchdog::arm("pipelining", Duration::from_secs(20));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    const COUNT: usize = 200;
    let mut batch = Vec::new();
    for i in 0..COUNT {
        let raw = match i % 8 {
            0 => get("/"),
            1 => get(&format!("/plaintext?i={i}")),
            2 => get("/json"),
            3 => post("/echo", format!("body #{i}").as_bytes()),
            4 => request("HEAD", "/json"),
            5 => get("/chunked"),
            6 => format!(
                "POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
                 6\r\nchunk \r\n{:x}\r\n#{i}\r\n0\r\n\r\n",
                format!("#{i}").len()
            )
            .into_bytes(),
            _ => get("/plaintext"),
        };
        batch.extend_from_slice(&raw);
    }
    // The last one closes, so the test also sees that nothing follows the 201st response.
    batch.extend_from_slice(b"GET /json HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    client.send(&batch); // one write

    for i in 0..COUNT {
        let what = format!("pipelined request #{i}");
        match i % 8 {
            2 => {
                let resp = client.read_response();
                expect_response(&resp, 200, Some(JSON_TYPE), JSON.as_bytes(), &what);
            }
            3 => expect_echo(&client.read_response(), format!("body #{i}").as_bytes(), &what),
            4 => {
                let resp = client.read_head_response();
                assert_eq!(resp.status, 200, "{what} (HEAD /json): {}", resp.describe());
                check_common(&resp, &what);
                assert_eq!(resp.framing, Framing::Length(JSON.len()), "{what} (HEAD /json)");
            }
            5 => {
                let resp = client.read_response();
                expect_response(&resp, 200, None, HELLO.as_bytes(), &what);
                assert_eq!(resp.framing, Framing::Chunked, "{what}: {}", resp.describe());
            }
            6 => expect_echo(&client.read_response(), format!("chunk #{i}").as_bytes(), &what),
            _ => expect_hello(&client.read_response(), &what),
        }
    }
    let resp = client.read_response();
    expect_response(&resp, 200, Some(JSON_TYPE), JSON.as_bytes(), "the last pipelined request");
    client.expect_closed("the last pipelined request, with Connection: close");
}

#[test]
fn a_pipelining_client_that_does_not_read_is_paused_and_server_memory_stays_bounded() {
    let _watchdog = Watchdog::arm("pipelining without reading", Duration::from_secs(40));
    const REQUESTS: usize = 1024;
    const PIECE: usize = 64 * KIB;
    /// How much the server's resident memory may grow because of this one client.
    const RSS_GROWTH_LIMIT_KIB: u64 = 24 * 1024;
    let server = Server::start();
    let piece = random_bytes(PIECE, 0x2545_f491_4f6c_dd1d);
    let one = post("/echo", &piece);
    let mut client = Client::connect(server.addr);
    // A warm-up, so that the baseline includes the server's buffers for one echo.
    expect_echo(&client.request(&one), &piece, "the warm-up echo");
    let rss_base = server.rss_kib();

    // 64 MiB of pipelined echo requests, without reading: written until the writes make no
    // progress for a while. Socket buffers hold some of it; the server must hold little.
    let total = one.len() * REQUESTS;
    let mut sent = 0;
    client.stream.set_nonblocking(true).expect("make the stream non-blocking");
    let mut last_progress = Instant::now();
    while sent < total && last_progress.elapsed() < Duration::from_millis(200) {
        let at = sent % one.len();
        match client.stream.write(&one[at..]) {
            Ok(n) => {
                sent += n;
                last_progress = Instant::now();
            }
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                thread::sleep(Duration::from_millis(1)); // a bounded polling loop
            }
            Err(err) => panic!("write at {sent} of {total}: {err}"),
        }
    }
    let rss_blocked = server.rss_kib();
    eprintln!(
        "http: {} KiB of pipelined requests written before the client blocked; server RSS \
         {rss_base} KiB before, {rss_blocked} KiB with the client blocked",
        sent / KIB
    );
    assert!(
        rss_blocked < rss_base + RSS_GROWTH_LIMIT_KIB,
        "server RSS grew from {rss_base} KiB to {rss_blocked} KiB for a client that wrote {} KiB \
         of pipelined requests and read nothing",
        sent / KIB
    );

    // Then the rest is written while every response is read back.
    client.stream.set_nonblocking(false).expect("make the stream blocking");
    let mut writer = client.stream.try_clone().expect("clone the stream");
    let rest = thread::spawn(move || -> io::Result<()> {
        while sent < total {
            let at = sent % one.len();
            writer.write_all(&one[at..])?;
            sent += one.len() - at;
        }
        Ok(())
    });
    for i in 0..REQUESTS {
        let resp = client.read_response();
        if resp.status != 200 || resp.body != piece {
            panic!("pipelined echo #{i} of {REQUESTS}: {}", resp.describe());
        }
    }
    rest.join().expect("the writer panicked").expect("write the rest of the requests");
    expect_hello(&client.request(&get("/plaintext")), "GET /plaintext after 64 MiB of echoes");
}

#[test]
fn pipelined_uploads_larger_than_the_socket_buffers_are_answered_in_order() {
    let _watchdog = Watchdog::arm("pipelined uploads", Duration::from_secs(30));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    // 300 uploads of various sizes and framings in one stream, written while reading.
    let bodies: Vec<Vec<u8>> =
        (0..300).map(|i| random_bytes((i * 397) % (40 * KIB), i as u64 + 1)).collect();
    let mut upload = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        if i % 2 == 0 {
            upload.extend_from_slice(&post("/echo", body));
        } else {
            upload.extend_from_slice(
                b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n",
            );
            for chunk in body.chunks(5000) {
                upload.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                upload.extend_from_slice(chunk);
                upload.extend_from_slice(b"\r\n");
            }
            upload.extend_from_slice(b"0\r\n\r\n");
        }
    }
    let mut writer = client.stream.try_clone().expect("clone the stream");
    let sender = thread::spawn(move || writer.write_all(&upload));
    for (i, body) in bodies.iter().enumerate() {
        let resp = client.read_response();
        assert_eq!(resp.status, 200, "upload #{i}: {}", resp.describe());
        assert_same(&resp.body, body, &format!("the echo of pipelined upload #{i}"));
    }
    sender.join().expect("the upload thread panicked").expect("write the uploads");
}

#[test]
fn a_malformed_request_inside_a_pipeline_ends_it_after_the_earlier_answers() {
    let _watchdog = Watchdog::arm("malformed request in a pipeline", Duration::from_secs(20));
    let server = Server::start();
    let mut witness = Witness::new(server.addr);
    let mut client = Client::connect(server.addr);
    let mut batch = get("/plaintext");
    batch.extend_from_slice(&post("/echo", b"second"));
    batch.extend_from_slice(b"GET /json HTTP/1.1\r\nHost: test\r\nBroken header\r\n\r\n");
    batch.extend_from_slice(&get("/")); // never answered
    client.send(&batch);
    expect_hello(&client.read_response(), "the first pipelined request");
    expect_echo(&client.read_response(), b"second", "the second pipelined request");
    let resp = client.read_response();
    assert_eq!(resp.status, 400, "the malformed third request: {}", resp.describe());
    check_common(&resp, "the malformed third request");
    assert!(resp.has_token("connection", "close"), "{}", resp.describe());
    client.expect_closed("a malformed request inside a pipeline");
    witness.still_served("a malformed request inside a pipeline");
}

#[test]
fn a_request_sent_one_byte_at_a_time_is_answered() {
    let _watchdog = Watchdog::arm("one byte at a time", Duration::from_secs(20));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    client.stream.set_nodelay(true).expect("set TCP_NODELAY");
    let slowly = |client: &mut Client, raw: &[u8]| {
        for &byte in raw {
            client.send(&[byte]);
            thread::sleep(Duration::from_millis(1)); // pacing the slow client, not a wait
        }
    };
    slowly(&mut client, &get("/plaintext"));
    expect_hello(&client.read_response(), "GET /plaintext one byte at a time");
    slowly(&mut client, &post("/echo", b"slow body"));
    expect_echo(&client.read_response(), b"slow body", "POST /echo one byte at a time");
    slowly(
        &mut client,
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
          4;ext=1\r\nslow\r\n6\r\n chunk\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    expect_echo(&client.read_response(), b"slow chunk", "a chunked POST one byte at a time");
    slowly(&mut client, &request("HEAD", "/json"));
    let resp = client.read_head_response();
    assert_eq!(resp.status, 200, "HEAD /json one byte at a time: {}", resp.describe());
    expect_hello(&client.request(&get("/")), "GET / after the slow requests");
}

#[test]
fn one_keep_alive_connection_serves_a_thousand_sequential_requests() {
    let _watchdog = Watchdog::arm("1000 sequential requests", Duration::from_secs(30));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    for i in 0..1000 {
        let what = format!("request #{i} on one connection");
        match i % 3 {
            0 => expect_hello(&client.request(&get("/plaintext")), &what),
            1 => {
                let resp = client.request(&get("/json"));
                expect_response(&resp, 200, Some(JSON_TYPE), JSON.as_bytes(), &what);
            }
            _ => {
                let body = format!("request {i}");
                expect_echo(
                    &client.request(&post("/echo", body.as_bytes())),
                    body.as_bytes(),
                    &what,
                );
            }
        }
    }
}

#[test]
fn a_thousand_concurrent_keep_alive_connections_are_each_served() {
    let _watchdog = Watchdog::arm("1000 concurrent connections", Duration::from_secs(40));
    const CONNECTIONS: usize = 1000;
    // Both ends are descriptors of this host, and the server inherits this process's limit.
    let limit = reactor::raise_fd_limit().expect("raise this process's descriptor limit");
    assert!(
        limit >= (2 * CONNECTIONS + 200) as u64,
        "this test needs {} descriptors but the hard limit (ulimit -Hn) is {limit}",
        2 * CONNECTIONS + 200
    );
    let server = Server::start();
    let mut clients: Vec<Client> = (0..CONNECTIONS).map(|_| Client::connect(server.addr)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.send(&post("/echo", format!("connection {i}").as_bytes()));
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let body = format!("connection {i}");
        expect_echo(&client.read_response(), body.as_bytes(), &format!("connection #{i}"));
    }
    // All of them still open, and each served again.
    for client in clients.iter_mut() {
        client.send(&get("/json"));
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let resp = client.read_response();
        expect_response(&resp, 200, Some(JSON_TYPE), JSON.as_bytes(), &format!("#{i}, again"));
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Hostile and malformed requests: the exact status, `Connection: close`, a clean close,
// and everyone else still served.

/// One test per request: it gets one of the statuses, then the connection is closed.
macro_rules! rejects {
    ($($name:ident: $request:expr => $($status:literal)|+;)*) => {$(
        #[test]
        fn $name() {
            let _watchdog = Watchdog::arm(stringify!($name), Duration::from_secs(30));
            let server = Server::start();
            assert_rejected(&server, $request, &[$($status),+]);
        }
    )*};
}

rejects! {
    rejects_content_length_with_transfer_encoding:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\
          Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" => 400;
    rejects_transfer_encoding_with_content_length:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\
          Content-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n" => 400;
    rejects_two_different_content_lengths:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n\
          hello!" => 400;
    rejects_content_length_with_a_plus_sign:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: +5\r\n\r\nhello" => 400;
    rejects_a_negative_content_length:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: -1\r\n\r\nhello" => 400;
    rejects_content_length_with_trailing_garbage:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5x\r\n\r\nhello" => 400;
    rejects_a_hexadecimal_content_length:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length:  0x5\r\n\r\nhello" => 400;
    rejects_an_empty_content_length:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: \r\n\r\nhello" => 400;
    rejects_an_overflowing_content_length:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 99999999999999999999999\r\n\r\n\
          hello" => 400;
    rejects_gzip_transfer_encoding:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\nhello" => 400;
    rejects_chunked_then_gzip_transfer_encoding:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n" => 400;
    rejects_an_unknown_transfer_encoding_with_501:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: foo\r\n\r\nhello" => 501;
    rejects_xchunked_transfer_encoding_with_501:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: xchunked\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n" => 501;
    rejects_gzip_then_chunked_transfer_encoding_with_501:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n" => 501;
    rejects_transfer_encoding_in_http10:
        b"POST /echo HTTP/1.0\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n" => 400;
    rejects_a_chunk_size_that_is_not_hexadecimal:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
          zz\r\nhello\r\n0\r\n\r\n" => 400;
    rejects_an_empty_chunk_size:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
          \r\nhello\r\n0\r\n\r\n" => 400;
    rejects_an_overflowing_chunk_size:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
          ffffffffffffffffff\r\nhello\r\n0\r\n\r\n" => 400;
    rejects_a_chunk_size_of_two_to_the_64:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
          10000000000000000\r\nhello\r\n0\r\n\r\n" => 400;
    rejects_chunk_data_not_followed_by_crlf:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhelloXX\r\n0\r\n\r\n" => 400;
    rejects_http11_without_host:
        b"GET /plaintext HTTP/1.1\r\nAccept: */*\r\n\r\n" => 400;
    rejects_two_hosts:
        b"GET /plaintext HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" => 400;
    rejects_a_space_before_the_colon:
        b"GET /plaintext HTTP/1.1\r\nHost : test\r\n\r\n" => 400;
    rejects_a_header_line_without_a_colon:
        b"GET /plaintext HTTP/1.1\r\nHost: test\r\nNoColonHere\r\n\r\n" => 400;
    rejects_a_nul_in_a_header_value:
        b"GET /plaintext HTTP/1.1\r\nHost: test\r\nX-Value: a\x00b\r\n\r\n" => 400;
    rejects_a_bare_cr_in_a_header_value:
        b"GET /plaintext HTTP/1.1\r\nHost: test\r\nX-Value: a\rb\r\n\r\n" => 400;
    rejects_obsolete_line_folding:
        b"GET /plaintext HTTP/1.1\r\nHost: test\r\nX-Folded: a\r\n b\r\n\r\n" => 400;
    rejects_a_request_line_without_a_version:
        b"GET /plaintext\r\nHost: test\r\n\r\n" => 400;
    rejects_a_request_line_with_two_spaces:
        b"GET  /plaintext HTTP/1.1\r\nHost: test\r\n\r\n" => 400;
    rejects_a_request_line_with_a_space_in_the_target:
        b"GET /plain text HTTP/1.1\r\nHost: test\r\n\r\n" => 400;
    rejects_a_lowercase_protocol_name:
        b"GET /plaintext http/1.1\r\nHost: test\r\n\r\n" => 400;
    rejects_binary_garbage:
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n" => 400;
    rejects_http_2_0:
        b"GET /plaintext HTTP/2.0\r\nHost: test\r\n\r\n" => 505 | 400;
    rejects_http_1_2:
        b"GET /plaintext HTTP/1.2\r\nHost: test\r\n\r\n" => 505 | 400;
    rejects_an_unknown_expectation_with_417:
        b"GET /plaintext HTTP/1.1\r\nHost: test\r\nExpect: something-else\r\n\r\n" => 417;
    rejects_an_unknown_expectation_on_a_post_with_417:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 200-ok\r\n\r\n\
          hello" => 417;
    rejects_two_transfer_encoding_headers_ending_in_gzip:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\
          Transfer-Encoding: gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n" => 400;
    rejects_a_space_before_the_colon_of_transfer_encoding:
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 15\r\n\
          Transfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" => 400;
    rejects_a_nul_in_the_target:
        b"GET /plain\x00text HTTP/1.1\r\nHost: test\r\n\r\n" => 400;
    rejects_an_invalid_header_name:
        b"GET /plaintext HTTP/1.1\r\nHost: test\r\nX(bad): 1\r\n\r\n" => 400;
    rejects_an_empty_header_name:
        b"GET /plaintext HTTP/1.1\r\nHost: test\r\n: value\r\n\r\n" => 400;
    rejects_whitespace_before_the_first_header:
        b"GET /plaintext HTTP/1.1\r\n Host: test\r\n\r\n" => 400;
}

#[test]
fn rejects_an_endless_chunk_extension() {
    let _watchdog = Watchdog::arm("endless chunk extension", Duration::from_secs(30));
    // Long timeouts: the answer must come from a size limit, not from a timer. The contract
    // names no status for this; any of these, with the close, will do.
    let server = Server::with_args(&["--header-timeout", "60000", "--idle-timeout", "60000"]);
    let mut raw =
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=".to_vec();
    raw.resize(raw.len() + 256 * KIB, b'x'); // and no end of the size line
    assert_rejected(&server, &raw, &[400, 413, 431]);
}

#[test]
fn rejects_endless_trailers() {
    let _watchdog = Watchdog::arm("endless trailers", Duration::from_secs(30));
    let server = Server::with_args(&["--header-timeout", "60000", "--idle-timeout", "60000"]);
    let mut raw = b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5\r\nhello\r\n0\r\n"
        .to_vec();
    for i in 0..4000 {
        raw.extend_from_slice(format!("X-Trailer-{i}: {}\r\n", "t".repeat(50)).as_bytes());
    }
    // No blank line: the trailer section never ends.
    assert_rejected(&server, &raw, &[400, 413, 431]);
}

#[test]
fn rejects_a_head_over_16_kib_with_431() {
    let _watchdog = Watchdog::arm("head over 16 KiB", Duration::from_secs(30));
    let server = Server::start();
    // One long header, complete.
    let raw = head_of_size(17 * KIB);
    assert_rejected(&server, &raw, &[431]);
    // Many ordinary headers adding up to more than 16 KiB.
    let mut raw = b"GET /plaintext HTTP/1.1\r\nHost: test\r\n".to_vec();
    for i in 0..90 {
        raw.extend_from_slice(format!("X-Field-{i}: {}\r\n", "v".repeat(200)).as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    assert_rejected(&server, &raw, &[431]);
}

#[test]
fn rejects_a_never_ending_head_with_431_once_it_passes_16_kib() {
    let _watchdog = Watchdog::arm("never-ending head", Duration::from_secs(30));
    // A long header timeout: the 431 must come from the size, not from a timer.
    let server = Server::with_args(&["--header-timeout", "60000", "--idle-timeout", "60000"]);
    let mut raw = b"GET /plaintext HTTP/1.1\r\nHost: test\r\nX-Endless: ".to_vec();
    raw.resize(20 * KIB, b'a'); // and no end of the line, nor of the head
    assert_rejected(&server, &raw, &[431]);
}

#[test]
fn a_head_of_exactly_16_kib_is_accepted_and_one_byte_more_is_not() {
    let _watchdog = Watchdog::arm("16 KiB head boundary", Duration::from_secs(30));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    let raw = head_of_size(16 * KIB);
    expect_hello(&client.request(&raw), "a request head of exactly 16384 bytes");
    assert_rejected(&server, &head_of_size(16 * KIB + 1), &[431]);
}

#[test]
fn a_hundred_header_fields_are_accepted_and_101_are_431() {
    let _watchdog = Watchdog::arm("header count", Duration::from_secs(30));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    expect_hello(&client.request(&head_with_fields(100)), "a request with 100 header fields");
    assert_rejected(&server, &head_with_fields(101), &[431]);
}

#[test]
fn a_content_length_over_the_limit_gets_413_before_the_body_is_sent() {
    let _watchdog = Watchdog::arm("413 at once", Duration::from_secs(30));
    let server = Server::with_args(&["--max-body", "1000"]);
    let mut client = Client::connect(server.addr);
    let at_limit = random_bytes(1000, 3);
    expect_echo(&client.request(&post("/echo", &at_limit)), &at_limit, "a 1000-byte body");
    // Only the head: the 413 must not wait for a body.
    let raw = b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 1001\r\n\r\n";
    assert_rejected(&server, raw, &[413]);
    // The default limit is 1 MiB.
    let server = Server::start();
    let raw = b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 1048577\r\n\r\n";
    assert_rejected(&server, raw, &[413]);
}

#[test]
fn a_chunked_body_gets_413_once_it_passes_the_limit() {
    let _watchdog = Watchdog::arm("413 chunked", Duration::from_secs(30));
    let server = Server::with_args(&["--max-body", "1000"]);
    let mut client = Client::connect(server.addr);
    let chunked = |parts: &[usize], last: bool| {
        let mut raw =
            b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for &len in parts {
            raw.extend_from_slice(format!("{len:x}\r\n{}\r\n", "c".repeat(len)).as_bytes());
        }
        if last {
            raw.extend_from_slice(b"0\r\n\r\n");
        }
        raw
    };
    let resp = client.request(&chunked(&[600, 400], true));
    expect_echo(&resp, "c".repeat(1000).as_bytes(), "a chunked body of exactly 1000 bytes");
    // 1200 bytes and no last chunk yet: the 413 must not wait for the end of the body.
    assert_rejected(&server, &chunked(&[600, 600], false), &[413]);
}

#[test]
fn a_413_is_read_whole_while_the_client_is_still_sending_its_body() {
    let _watchdog = Watchdog::arm("413 during upload", Duration::from_secs(30));
    let server = Server::with_args(&["--max-body", "1000"]);
    let mut witness = Witness::new(server.addr);
    let mut client = Client::connect(server.addr);
    const BODY: usize = 400 * KIB;
    // The head and the start of the body in one write, so that body bytes are waiting unread
    // when the server answers.
    const FIRST: usize = 128 * KIB;
    let mut first =
        format!("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {BODY}\r\n\r\n").into_bytes();
    first.resize(first.len() + FIRST, b'x');
    client.send(&first);
    // The client goes on sending its body for a while (about 150 ms), as clients that do not
    // wait for an early response do; the server must neither reset it nor lose the 413.
    let mut writer = client.stream.try_clone().expect("clone the stream");
    let sender = thread::spawn(move || -> Result<usize, (usize, io::Error)> {
        let piece = vec![b'x'; 8 * KIB];
        let mut sent = FIRST;
        while sent < BODY {
            writer.write_all(&piece).map_err(|err| (sent, err))?;
            sent += piece.len();
            thread::sleep(Duration::from_millis(4)); // pacing the uploader
        }
        Ok(sent)
    });
    let resp = client.try_read_response(false);
    let sent = sender.join().expect("the upload thread panicked");
    let resp = match resp {
        Ok(resp) => resp,
        Err(err) => panic!(
            "no complete 413 while uploading {BODY} bytes over a limit of 1000: {err} (the \
             uploader: {sent:?})"
        ),
    };
    assert_eq!(resp.status, 413, "{}", resp.describe());
    check_common(&resp, "the 413 during an upload");
    assert!(
        resp.has_token("connection", "close"),
        "413 without Connection: close: {}",
        resp.describe()
    );
    // A write error means a reset: the server closed with the body still arriving instead of
    // reading and discarding it until the client was done (a lingering close).
    if let Err((at, err)) = &sent {
        panic!(
            "after the 413, the upload failed at byte {at} of {BODY} with `{err}`: the server \
             reset the connection instead of a lingering close"
        );
    }
    client.expect_closed("the 413 during an upload");
    witness.still_served("a 413 during an upload");
}

// ---------------------------------------------------------------------------------------------
// 5. Expect: 100-continue.

#[test]
fn expect_100_continue_gets_100_before_the_body_and_200_after() {
    let _watchdog = Watchdog::arm("100-continue", Duration::from_secs(20));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
    );
    client.expect_exact(b"HTTP/1.1 100 Continue\r\n\r\n", "the interim response to Expect");
    client.send(b"hello world");
    expect_echo(&client.read_response(), b"hello world", "the body after 100 Continue");

    // Chunked, on the same connection.
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\
          Expect: 100-continue\r\n\r\n",
    );
    client.expect_exact(b"HTTP/1.1 100 Continue\r\n\r\n", "100 Continue for a chunked body");
    client.send(b"3\r\nabc\r\n0\r\n\r\n");
    expect_echo(&client.read_response(), b"abc", "the chunked body after 100 Continue");
    expect_hello(&client.request(&get("/plaintext")), "GET /plaintext after the 100s");
}

#[test]
fn expect_100_continue_over_the_limit_gets_413_instead() {
    let _watchdog = Watchdog::arm("100-continue 413", Duration::from_secs(20));
    let server = Server::with_args(&["--max-body", "1000"]);
    let raw = b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5000\r\n\
                Expect: 100-continue\r\n\r\n";
    let resp = assert_rejected(&server, raw, &[413]);
    assert_eq!(resp.status, 413, "the first response was not the 413: {}", resp.describe());
}

#[test]
fn expect_100_continue_with_the_body_already_sent_gets_one_200() {
    let _watchdog = Watchdog::arm("100-continue, eager client", Duration::from_secs(20));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    // Clients may send the body without waiting for the 100: an interim 100 is optional then.
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n\
          hello",
    );
    let mut resp = client.read_response();
    if resp.status == 100 {
        resp = client.read_response();
    }
    expect_echo(&resp, b"hello", "an Expect: 100-continue request sent with its body");
    // And with no body at all to wait for.
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n",
    );
    let mut resp = client.read_response();
    if resp.status == 100 {
        resp = client.read_response();
    }
    expect_echo(&resp, b"", "an Expect: 100-continue request with Content-Length: 0");
    expect_hello(&client.request(&get("/plaintext")), "GET /plaintext after it");
}

#[test]
fn expect_100_continue_in_http10_is_ignored() {
    let _watchdog = Watchdog::arm("100-continue, HTTP/1.0", Duration::from_secs(20));
    let server = Server::start();
    let mut client = Client::connect(server.addr);
    // RFC 9110 10.1.1: a server MUST NOT send a 100 to an HTTP/1.0 client.
    client.send(b"POST /echo HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello");
    let resp = client.read_response();
    expect_echo(&resp, b"hello", "an HTTP/1.0 request with Expect: 100-continue");
    client.expect_closed("an HTTP/1.0 request with Expect: 100-continue");
}

// ---------------------------------------------------------------------------------------------
// 6. Timeouts (slowloris).

/// The timeout given to the server in these tests, and the bounds on when its cut must come.
const SHORT: Duration = Duration::from_millis(300);
const NOT_BEFORE: Duration = Duration::from_millis(240);
const NOT_AFTER: Duration = Duration::from_secs(3);

#[test]
fn a_head_that_stops_arriving_is_cut_off_after_the_header_timeout() {
    let _watchdog = Watchdog::arm("slow head", Duration::from_secs(20));
    let server = Server::with_args(&["--header-timeout", "300", "--idle-timeout", "10000"]);
    let mut witness = Witness::new(server.addr);
    let mut client = Client::connect(server.addr);
    let started = Instant::now();
    client.send(b"GET /plaintext HTTP/1.1\r\nHost: te");
    let (elapsed, outcome) = client.wait_for_cut(started);
    check_cut(elapsed, &outcome, "a head that stopped halfway");

    // The same for the second request of a kept-alive connection: the header timeout (not
    // the idle one) runs from its first byte.
    let mut client = Client::connect(server.addr);
    expect_hello(&client.request(&get("/plaintext")), "the first request");
    let started = Instant::now();
    client.send(b"GET /json HTTP/1.1\r\n");
    let (elapsed, outcome) = client.wait_for_cut(started);
    check_cut(elapsed, &outcome, "a second head that stopped halfway");
    witness.still_served("a slow head");
}

#[test]
fn a_head_dribbled_a_byte_at_a_time_is_cut_off_after_the_header_timeout() {
    let _watchdog = Watchdog::arm("slowloris", Duration::from_secs(20));
    let server = Server::with_args(&["--header-timeout", "300", "--idle-timeout", "10000"]);
    let mut witness = Witness::new(server.addr);
    let mut client = Client::connect(server.addr);
    let started = Instant::now();
    client.send(b"GET /plaintext HTTP/1.1\r\nHost: test\r\nX-Slow: ");
    // Every byte is progress, but the head as a whole is late: the timer must not restart.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writer = client.stream.try_clone().expect("clone the stream");
    let dribbler = thread::spawn({
        let stop = stop.clone();
        move || {
            while !stop.load(Ordering::Relaxed) && writer.write_all(b"a").is_ok() {
                thread::sleep(Duration::from_millis(20)); // pacing the slow client
            }
        }
    });
    let (elapsed, outcome) = client.wait_for_cut(started);
    stop.store(true, Ordering::Relaxed);
    dribbler.join().expect("the dribbling thread panicked");
    check_cut(elapsed, &outcome, "a head dribbled one byte every 20 ms");
    witness.still_served("a dribbled head");
}

#[test]
fn a_connection_that_never_sends_a_byte_is_closed_after_the_timeout() {
    let _watchdog = Watchdog::arm("silent connection", Duration::from_secs(20));
    // Both timeouts alike: whichever the server applies to a new connection, it is 300 ms.
    let server = Server::with_args(&["--header-timeout", "300", "--idle-timeout", "300"]);
    let started = Instant::now();
    let mut client = Client::connect(server.addr);
    let (elapsed, outcome) = client.wait_for_cut(started);
    check_cut(elapsed, &outcome, "a connection that never sent a byte");
    // (No witness here: it would idle out too.)
    still_serves(server.addr);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let _watchdog = Watchdog::arm("idle timeout", Duration::from_secs(20));
    let server = Server::with_args(&["--idle-timeout", "300", "--header-timeout", "10000"]);
    // Activity keeps a connection: requests 100 ms apart for longer than the idle timeout.
    let mut busy = Client::connect(server.addr);
    for i in 0..8 {
        expect_hello(&busy.request(&get("/plaintext")), &format!("busy request #{i}"));
        thread::sleep(Duration::from_millis(100)); // pacing the client
    }
    // Then silence: the close must come after the idle timeout, with nothing sent.
    let mut client = Client::connect(server.addr);
    expect_hello(&client.request(&get("/plaintext")), "the request before the silence");
    let started = Instant::now();
    let (elapsed, outcome) = client.wait_for_cut(started);
    assert!(
        matches!(outcome, Cut::Eof),
        "an idle connection must be closed without a response; got {outcome:?}"
    );
    check_cut(elapsed, &outcome, "an idle keep-alive connection");
    still_serves(server.addr);
}

#[test]
fn a_stalled_body_is_cut_off_after_the_header_timeout_and_a_slow_one_is_not() {
    let _watchdog = Watchdog::arm("body stall", Duration::from_secs(20));
    let server = Server::with_args(&["--header-timeout", "300", "--idle-timeout", "10000"]);
    let mut witness = Witness::new(server.addr);
    // A body in pieces 100 ms apart, 800 ms in all: each gap is within the stall timeout.
    let mut client = Client::connect(server.addr);
    client.stream.set_nodelay(true).expect("set TCP_NODELAY");
    client.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 8\r\n\r\n");
    for byte in b"progress" {
        thread::sleep(Duration::from_millis(100)); // pacing the slow client
        client.send(&[*byte]);
    }
    expect_echo(&client.read_response(), b"progress", "a body in pieces 100 ms apart");

    // Half a body, then nothing.
    let mut client = Client::connect(server.addr);
    client.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nhello");
    let started = Instant::now();
    let (elapsed, outcome) = client.wait_for_cut(started);
    check_cut(elapsed, &outcome, "a body that stalled after 5 of 10 bytes");

    // The same with a chunked body.
    let mut client = Client::connect(server.addr);
    client.send(b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    let started = Instant::now();
    let (elapsed, outcome) = client.wait_for_cut(started);
    check_cut(elapsed, &outcome, "a chunked body that stalled inside a chunk");
    witness.still_served("stalled bodies");
}

/// How a connection was cut off.
#[derive(Debug)]
enum Cut {
    /// Closed with nothing sent.
    Eof,
    /// A 408 response, then the close.
    Response408,
    /// Reset.
    Reset,
}

/// Checks that a cut came after about [`SHORT`] (not before [`NOT_BEFORE`]).
#[track_caller]
fn check_cut(elapsed: Duration, outcome: &Cut, what: &str) {
    eprintln!("http: {what}: {outcome:?} after {elapsed:?} (timeout {SHORT:?})");
    assert!(
        elapsed >= NOT_BEFORE,
        "{what}: cut off after {elapsed:?}, before the {SHORT:?} timeout ({outcome:?})"
    );
    assert!(elapsed <= NOT_AFTER, "{what}: cut off only after {elapsed:?} ({outcome:?})");
}

// ---------------------------------------------------------------------------------------------
// 7. Real clients.

#[test]
fn curl_gets_every_route() {
    let _watchdog = Watchdog::arm("curl", Duration::from_secs(30));
    let server = Server::start();
    let base = format!("http://{}", server.addr);
    for (path, ctype, body) in
        [("/", TEXT, HELLO), ("/plaintext", TEXT, HELLO), ("/json", JSON_TYPE, JSON)]
    {
        let out = curl(&["-i", &format!("{base}{path}")]);
        let (status, headers, got) = parse_curl_output(&out, &format!("curl {path}"));
        assert_eq!(status, 200, "curl {path}");
        assert_eq!(header_of(&headers, "content-type"), Some(ctype), "curl {path}: {headers:?}");
        assert_eq!(got, body.as_bytes(), "curl {path}: body");
    }
    let out = curl(&["-i", &format!("{base}/missing")]);
    assert_eq!(parse_curl_output(&out, "curl /missing").0, 404, "curl /missing");
    let out = curl(&["-i", "-X", "DELETE", &format!("{base}/json")]);
    let (status, headers, _) = parse_curl_output(&out, "curl -X DELETE /json");
    assert_eq!(status, 405, "curl -X DELETE /json");
    assert_eq!(header_of(&headers, "allow"), Some("GET, HEAD"), "curl -X DELETE /json");
    let out = curl(&["-I", &format!("{base}/json")]);
    let (status, headers, body) = parse_curl_output(&out, "curl -I /json");
    assert_eq!(status, 200, "curl -I /json");
    assert_eq!(header_of(&headers, "content-length"), Some("27"), "curl -I /json: {headers:?}");
    assert!(body.is_empty(), "curl -I /json: a body {}", show(&body));

    // Three transfers, one connection: curl reuses it because the server keeps it alive.
    let urls = ["/plaintext", "/json", "/"].map(|path| format!("{base}{path}"));
    let mut args = vec!["-w", "%{http_code} %{num_connects}\\n"];
    for url in &urls {
        args.extend(["-o", "/dev/null", url.as_str()]);
    }
    let out = curl(&args);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "200 1\n200 0\n200 0\n",
        "curl with three URLs: `status connects` per transfer (0 connects: a reused connection)"
    );
}

#[test]
fn curl_posts_files_to_echo() {
    let _watchdog = Watchdog::arm("curl POST", Duration::from_secs(30));
    let server = Server::start();
    let url = format!("http://{}/echo", server.addr);
    // `-d @file` strips newlines, so this file has none.
    let text: Vec<u8> = (0..5000).map(|i| b"abcdefghij&key=value"[i % 20]).collect();
    let text_file = TempFile::new("text", &text);
    let out = curl(&["-d", &format!("@{}", text_file.path.display()), &url]);
    assert_same(&out, &text, "curl -d @file to /echo");

    // Binary, 300 KiB, with and without 100-continue (curl's own choice, then forced).
    let binary = random_bytes(300 * KIB, 11);
    let binary_file = TempFile::new("binary", &binary);
    let data = format!("@{}", binary_file.path.display());
    let out = curl(&["--data-binary", &data, "-H", "Content-Type: application/octet-stream", &url]);
    assert_same(&out, &binary, "curl --data-binary @file (300 KiB) to /echo");
    let out = curl(&["--data-binary", &data, "-H", "Expect: 100-continue", "-i", &url]);
    let (status, headers, body) = parse_curl_output(&out, "curl with Expect: 100-continue");
    assert_eq!(status, 200, "curl with Expect: 100-continue: {headers:?}");
    assert_same(&body, &binary, "curl --data-binary with Expect: 100-continue");
    let out = curl(&["--data-binary", &data, "-H", "Expect:", "-i", &url]);
    let (status, _, body) = parse_curl_output(&out, "curl without Expect");
    assert_eq!(status, 200, "curl without Expect");
    assert_same(&body, &binary, "curl --data-binary without Expect");
    // And chunked, from stdin-less upload with an explicit header.
    let out = curl(&["--data-binary", &data, "-H", "Transfer-Encoding: chunked", &url]);
    assert_same(&out, &binary, "curl --data-binary with Transfer-Encoding: chunked");
}

#[test]
fn curl_sees_the_chunks_of_chunked() {
    let _watchdog = Watchdog::arm("curl --raw", Duration::from_secs(30));
    let server = Server::start();
    let out = curl(&["-i", "--raw", &format!("http://{}/chunked", server.addr)]);
    let (status, headers, raw) = parse_curl_output(&out, "curl --raw /chunked");
    assert_eq!(status, 200, "curl --raw /chunked");
    assert_eq!(header_of(&headers, "transfer-encoding"), Some("chunked"), "{headers:?}");
    assert_eq!(header_of(&headers, "content-length"), None, "{headers:?}");
    let (body, chunks) = decode_chunked(&raw)
        .unwrap_or_else(|err| panic!("curl --raw /chunked: {err} in {}", show(&raw)));
    assert_eq!(body, HELLO.as_bytes(), "the decoded body of /chunked");
    assert!(chunks.len() >= 2, "/chunked came in {} chunk(s): {}", chunks.len(), show(&raw));
}

#[test]
fn python_http_client_makes_several_requests_on_one_connection() {
    let _watchdog = Watchdog::arm("python http.client", Duration::from_secs(30));
    let server = Server::start();
    const SCRIPT: &str = r#"
import http.client, sys
conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=10)
def call(method, path, show, shown=True, **kw):
    conn.request(method, path, **kw)
    r = conn.getresponse()
    body = r.read()
    print(method, path, r.status, r.getheader(show), body if shown else '-')
call('GET', '/plaintext', 'Content-Type')
first = conn.sock
call('GET', '/json', 'Content-Type')
call('POST', '/echo', 'Content-Type', body=b'python body')
call('POST', '/echo', 'Content-Length', body=iter([b'chunk one|', b'chunk two|', b'three']),
     headers={'Transfer-Encoding': 'chunked'}, encode_chunked=True)
call('GET', '/chunked', 'Transfer-Encoding')
call('HEAD', '/json', 'Content-Length')
call('DELETE', '/echo', 'Allow', shown=False)
print('same connection:', conn.sock is first)
call('GET', '/missing', 'X-None', shown=False)
"#;
    let ip = server.addr.ip().to_string();
    let port = server.addr.port().to_string();
    let mut cmd = Command::new("python3");
    cmd.args(["-c", SCRIPT, &ip, &port]);
    let out = run_tool(cmd, "python3");
    let want = [
        "GET /plaintext 200 text/plain b'Hello, World!'",
        "GET /json 200 application/json b'{\"message\":\"Hello, World!\"}'",
        "POST /echo 200 application/octet-stream b'python body'",
        "POST /echo 200 25 b'chunk one|chunk two|three'",
        "GET /chunked 200 chunked b'Hello, World!'",
        "HEAD /json 200 27 b''",
        "DELETE /echo 405 POST -",
        "same connection: True",
        "GET /missing 404 None -",
    ];
    let got = String::from_utf8_lossy(&out);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines, want, "python printed:\n{got}");
}

// ---------------------------------------------------------------------------------------------
// 8. The process: arguments and signals.

#[test]
fn bad_arguments_exit_with_status_2_and_usage() {
    let _watchdog = Watchdog::arm("bad arguments", Duration::from_secs(40));
    // Each list has an address of port 0, so that a wrongly accepted list binds no fixed port.
    let cases: [&[&str]; 9] = [
        &["127.0.0.1:0", "--bogus"],
        &["127.0.0.1:0", "--header-timeout"],
        &["127.0.0.1:0", "--header-timeout", "abc"],
        &["127.0.0.1:0", "--idle-timeout", "-1"],
        &["127.0.0.1:0", "--idle-timeout", "1.5"],
        &["127.0.0.1:0", "--max-body", "lots"],
        &["127.0.0.1:0", "--max-body"],
        &["not-an-addr"],
        &["127.0.0.1:0", "127.0.0.1:0"],
    ];
    let mut failures = Vec::new();
    for args in cases {
        let (status, stdout, stderr) = run_to_exit(args);
        if status.code() != Some(2) || !stderr.to_lowercase().contains("usage") {
            failures.push(format!("{args:?}: {status}, stdout {stdout:?}, stderr {stderr:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "bad arguments must exit with status 2 and a usage message on stderr:\n{}",
        failures.join("\n")
    );
}

#[test]
fn sigterm_finishes_uploads_closes_idle_connections_and_exits_0() {
    let _watchdog = Watchdog::arm("graceful SIGTERM", Duration::from_secs(30));
    let mut server = Server::start();
    // An idle keep-alive connection.
    let mut idle = Client::connect(server.addr);
    expect_hello(&idle.request(&get("/plaintext")), "the idle client's request");
    // An upload in progress: the head and half of the body, all of it read by the server.
    const BODY: usize = 200 * KIB;
    let body = random_bytes(BODY, 5);
    let mut uploader = Client::connect(server.addr);
    uploader.send(
        format!("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {BODY}\r\n\r\n").as_bytes(),
    );
    uploader.send(&body[..BODY / 2]);
    let local = uploader.stream.local_addr().expect("the uploader's address");
    let read_all = poll_until(Duration::from_secs(5), || {
        (unread_by_server(server.addr, local) == Some(0)).then_some(())
    });
    assert!(
        read_all.is_some(),
        "the server has not read the first half of the upload within 5 s ({:?} bytes unread)",
        unread_by_server(server.addr, local)
    );

    kill(server.pid(), SIGTERM).expect("send SIGTERM");
    idle.expect_closed("SIGTERM, on an idle keep-alive connection");
    // The listener is closed by now: connect fails, or is closed without an answer.
    refused_or_unanswered(server.addr, "after SIGTERM");
    assert!(server.process.try_wait().is_none(), "the server exited with an upload in progress");

    uploader.send(&body[BODY / 2..]);
    let resp = uploader.read_response();
    assert_eq!(resp.status, 200, "the upload finished after SIGTERM: {}", resp.describe());
    check_common(&resp, "the upload finished after SIGTERM");
    assert_same(&resp.body, &body, "the echo of the upload finished after SIGTERM");
    assert!(
        resp.has_token("connection", "close"),
        "the response finished after SIGTERM lacks `Connection: close`: {}",
        resp.describe()
    );
    uploader.expect_closed("the response finished after SIGTERM");
    let status = server
        .process
        .wait_timeout(EXIT_LIMIT)
        .unwrap_or_else(|| panic!("the server still runs {EXIT_LIMIT:?} after SIGTERM"));
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status}");
}

#[test]
fn sigint_closes_idle_connections_and_exits_0() {
    let _watchdog = Watchdog::arm("SIGINT", Duration::from_secs(30));
    let mut server = Server::start();
    let mut idle = Client::connect(server.addr);
    expect_hello(&idle.request(&get("/plaintext")), "the idle client's request");
    kill(server.pid(), SIGINT).expect("send SIGINT");
    idle.expect_closed("SIGINT, on an idle keep-alive connection");
    let status = server
        .process
        .wait_timeout(EXIT_LIMIT)
        .unwrap_or_else(|| panic!("the server still runs {EXIT_LIMIT:?} after SIGINT"));
    assert_eq!(status.code(), Some(0), "exit status after SIGINT: {status}");
}

/// After the server stopped listening: a new connection is refused, or closed (or reset)
/// without any response to a request sent on it.
#[track_caller]
fn refused_or_unanswered(addr: SocketAddr, when: &str) {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, IO_TIMEOUT) else {
        return;
    };
    set_timeouts(&stream);
    let _ = stream.write_all(&get("/plaintext"));
    let mut buf = [0; 256];
    match read_once(&mut stream, &mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("a new connection {when} was answered: {}", show(&buf[..n])),
        Err(err) if is_timeout(&err) => {
            panic!("a new connection {when} was accepted and left open {IO_TIMEOUT:?}")
        }
        Err(_) => {} // reset
    }
}

/// How many bytes the server's end of the connection from `client` has received and not yet
/// read, from `/proc/net/tcp` (this host's IPv4 sockets); `None` if there is no such socket.
fn unread_by_server(server: SocketAddr, client: SocketAddr) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    // Addresses are `IIIIIIII:PPPP`: the IPv4 address as a native-endian u32, then the port.
    let parse = |field: &str| -> Option<SocketAddr> {
        let (ip, port) = field.split_once(':')?;
        let ip = u32::from_str_radix(ip, 16).ok()?;
        let port = u16::from_str_radix(port, 16).ok()?;
        Some(SocketAddr::from((Ipv4Addr::from(ip.to_ne_bytes()), port)))
    };
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, remote) = (parse(fields.get(1)?)?, parse(fields.get(2)?)?);
        if local != server || remote != client {
            return None;
        }
        let (_, rx_queue) = fields.get(4)?.split_once(':')?;
        u64::from_str_radix(rx_queue, 16).ok()
    })
}

// ---------------------------------------------------------------------------------------------
// Helpers: requests and expectations.

fn request(method: &str, path: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}

fn get(path: &str) -> Vec<u8> {
    request("GET", path)
}

fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut raw =
        format!("POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n", body.len())
            .into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// A complete `GET /plaintext` whose head is exactly `total` bytes long, padded in one header.
fn head_of_size(total: usize) -> Vec<u8> {
    let prefix = "GET /plaintext HTTP/1.1\r\nHost: test\r\nX-Pad: ";
    let suffix = "\r\n\r\n";
    let raw = format!("{prefix}{}{suffix}", "a".repeat(total - prefix.len() - suffix.len()));
    assert_eq!(raw.len(), total);
    raw.into_bytes()
}

/// A `GET /plaintext` with `fields` header fields in all, Host included.
fn head_with_fields(fields: usize) -> Vec<u8> {
    let mut raw = b"GET /plaintext HTTP/1.1\r\nHost: test\r\n".to_vec();
    for i in 1..fields {
        raw.extend_from_slice(format!("X-Field-{i}: {i}\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    raw
}

/// A byte string for messages: escaped, and shortened if long.
fn show(bytes: &[u8]) -> String {
    const LIMIT: usize = 160;
    let escaped = bytes[..bytes.len().min(LIMIT)].escape_ascii().to_string();
    if bytes.len() > LIMIT {
        format!("b\"{escaped}\"... ({} bytes)", bytes.len())
    } else {
        format!("b\"{escaped}\"")
    }
}

/// What every response must have: a current IMF-fixdate `Date` (1xx aside), and a length or
/// chunked framing (1xx, 204 and 304 aside), not both.
#[track_caller]
fn check_common(resp: &Response, what: &str) {
    if (100..200).contains(&resp.status) {
        return;
    }
    let dates = resp.all("date");
    assert!(dates.len() == 1, "{what}: {} Date headers: {}", dates.len(), resp.describe());
    let Some(date) = parse_imf_fixdate(dates[0]) else {
        panic!("{what}: `Date: {}` is not an IMF-fixdate: {}", dates[0], resp.describe())
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock").as_secs() as i64;
    assert!(
        (date - now).abs() <= 5,
        "{what}: `Date: {}` is {} s away from now",
        dates[0],
        date - now
    );
    if resp.status != 204 && resp.status != 304 {
        assert!(
            resp.framing != Framing::Missing,
            "{what}: neither Content-Length nor chunked framing: {}",
            resp.describe()
        );
    }
}

/// Checks status, content type (if given), body and the common rules.
#[track_caller]
fn expect_response(
    resp: &Response,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    what: &str,
) {
    assert_eq!(resp.status, status, "{what}: status of {}", resp.describe());
    check_common(resp, what);
    if let Some(content_type) = content_type {
        assert_eq!(
            resp.header("content-type"),
            Some(content_type),
            "{what}: content type of {}",
            resp.describe()
        );
    }
    if resp.body != body {
        panic!("{what}: expected the body {}, got {}", show(body), resp.describe());
    }
}

#[track_caller]
fn expect_hello(resp: &Response, what: &str) {
    expect_response(resp, 200, Some(TEXT), HELLO.as_bytes(), what);
}

#[track_caller]
fn expect_echo(resp: &Response, body: &[u8], what: &str) {
    expect_response(resp, 200, Some(OCTETS), body, what);
}

/// The headers to compare between a HEAD and a GET: all but Date, names in lower case.
fn comparable_headers(resp: &Response) -> BTreeSet<(String, String)> {
    resp.headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("date"))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
        .collect()
}

/// Sends `raw` on `client` and checks that the answer has `status` and the common rules.
#[track_caller]
fn answered(client: &mut Client, raw: &[u8], head: bool, status: u16, what: &str) -> Response {
    client.send(raw);
    let resp = if head { client.read_head_response() } else { client.read_response() };
    assert_eq!(resp.status, status, "{what}: {}", resp.describe());
    check_common(&resp, what);
    resp
}

/// After a response that is not a rejection: if it says `Connection: close`, the server closes
/// and a new client is returned; otherwise the same connection must go on serving.
#[track_caller]
fn usable_after(addr: SocketAddr, mut client: Client, resp: &Response, what: &str) -> Client {
    if resp.has_token("connection", "close") {
        client.expect_closed(what);
        return Client::connect(addr);
    }
    expect_hello(&client.request(&get("/plaintext")), &format!("GET /plaintext after {what}"));
    client
}

#[track_caller]
fn answered_then_usable(
    addr: SocketAddr,
    mut client: Client,
    raw: &[u8],
    status: u16,
    what: &str,
) -> Client {
    let head = raw.starts_with(b"HEAD ");
    let resp = answered(&mut client, raw, head, status, what);
    usable_after(addr, client, &resp, what)
}

/// Sends a hostile `request` on a fresh connection and checks that it gets one of `want`,
/// with `Connection: close`, and then a clean close; and that a keep-alive client connected
/// before the attack, and a new client, are still served. Returns the response.
#[track_caller]
fn assert_rejected(server: &Server, request: &[u8], want: &[u16]) -> Response {
    let what = format!("the request {}", show(request));
    let mut witness = Witness::new(server.addr);
    let mut client = Client::connect(server.addr);
    client.send(request);
    let resp = match client.try_read_response(false) {
        Ok(resp) => resp,
        Err(err) => panic!("{what}: expected a {want:?} response, got {}", describe_error(&err)),
    };
    assert!(
        want.contains(&resp.status),
        "{what}: expected status {want:?}, got {}",
        resp.describe()
    );
    check_common(&resp, &what);
    assert!(
        resp.has_token("connection", "close"),
        "{what}: the {} response lacks `Connection: close`: {}",
        resp.status,
        resp.describe()
    );
    client.expect_closed(&format!("the {} response to {what}", resp.status));
    witness.still_served(&what);
    resp
}

/// A keep-alive client that was served before an attack and must still be served after it.
struct Witness {
    client: Client,
    addr: SocketAddr,
}

impl Witness {
    #[track_caller]
    fn new(addr: SocketAddr) -> Witness {
        let mut client = Client::connect(addr);
        expect_hello(&client.request(&get("/plaintext")), "the witness's request before");
        Witness { client, addr }
    }

    #[track_caller]
    fn still_served(&mut self, after: &str) {
        let resp = self.client.request(&get("/json"));
        let what = format!("a keep-alive client connected before {after}");
        expect_response(&resp, 200, Some(JSON_TYPE), JSON.as_bytes(), &what);
        still_serves(self.addr);
    }
}

/// A fresh connection gets `GET /plaintext` answered.
#[track_caller]
fn still_serves(addr: SocketAddr) {
    let mut client = Client::connect(addr);
    expect_hello(&client.request(&get("/plaintext")), "a fresh client");
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) into seconds since the epoch,
/// checking the day name against the date.
fn parse_imf_fixdate(text: &str) -> Option<i64> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let b = text.as_bytes();
    if !text.is_ascii() || b.len() != 29 || &text[3..5] != ", " || &text[25..] != " GMT" {
        return None;
    }
    if b[7] != b' ' || b[11] != b' ' || b[16] != b' ' || b[19] != b':' || b[22] != b':' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = &text[range];
        if !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let day = number(5..7)?;
    let month = MONTHS.iter().position(|&m| m == &text[8..11])? as i64 + 1;
    let year = number(12..16)?;
    let (hour, minute, second) = (number(17..19)?, number(20..22)?, number(23..25)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=month_days[month as usize - 1]).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    // 1970-01-01 was a Thursday.
    if DAYS[(days + 3).rem_euclid(7) as usize] != &text[..3] {
        return None;
    }
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

#[test]
fn the_date_parser_itself() {
    assert_eq!(parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
    assert_eq!(parse_imf_fixdate("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
    assert_eq!(parse_imf_fixdate("Thu, 29 Feb 2024 12:00:00 GMT"), Some(1_709_208_000));
    assert_eq!(parse_imf_fixdate("Mon, 06 Nov 1994 08:49:37 GMT"), None); // wrong day name
    assert_eq!(parse_imf_fixdate("Sunday, 06-Nov-94 08:49:37 GMT"), None); // RFC 850
    assert_eq!(parse_imf_fixdate("Sun Nov  6 08:49:37 1994"), None); // asctime
    assert_eq!(parse_imf_fixdate("Sun, 6 Nov 1994 08:49:37 GMT"), None);
    assert_eq!(parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 UTC"), None);
    assert_eq!(
        decode_chunked(b"5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nT: 1\r\n\r\n").map(|d| d.0),
        Ok(b"hello!".to_vec())
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers: the client side of HTTP/1.1 over a raw socket.

/// How a response delimits its body, by its headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    /// Neither: the body runs until the close.
    Missing,
}

#[derive(Debug)]
struct Response {
    status: u16,
    status_line: String,
    headers: Headers,
    framing: Framing,
    body: Vec<u8>,
    /// The sizes of the chunks of a chunked body.
    chunks: Vec<usize>,
}

impl Response {
    /// The value of header `name` (case-insensitive), if it appears exactly once.
    fn header(&self, name: &str) -> Option<&str> {
        match self.all(name)[..] {
            [value] => Some(value),
            _ => None,
        }
    }

    fn all(&self, name: &str) -> Vec<&str> {
        header_values(&self.headers, name)
    }

    /// Whether the comma-separated header `name` has `token` (both case-insensitive).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.all(name)
            .iter()
            .flat_map(|value| value.split(','))
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    }

    fn describe(&self) -> String {
        let headers: Vec<String> =
            self.headers.iter().map(|(name, value)| format!("{name}: {value}")).collect();
        format!("`{}` [{}] body {}", self.status_line, headers.join(" | "), show(&self.body))
    }
}

fn header_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
        .collect()
}

fn header_of<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    match header_values(headers, name)[..] {
        [value] => Some(value),
        _ => None,
    }
}

/// Header fields as received, in order: names as sent, values without surrounding whitespace.
type Headers = Vec<(String, String)>;

/// Parses a response head (status line and header lines, without the blank line).
fn parse_head(head: &[u8]) -> Result<(u16, String, Headers), String> {
    let text = std::str::from_utf8(head).map_err(|_| format!("a non-UTF-8 head {}", show(head)))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_string();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let status = match code.parse::<u16>() {
        Ok(status) if matches!(version, "HTTP/1.1" | "HTTP/1.0") && code.len() == 3 => status,
        _ => return Err(format!("a malformed status line in the head {}", show(head))),
    };
    let mut headers = Vec::new();
    for line in lines {
        match line.split_once(':') {
            Some((name, value)) if !name.is_empty() && !name.contains([' ', '\t']) => {
                headers.push((name.to_string(), value.trim_matches([' ', '\t']).to_string()));
            }
            _ => {
                return Err(format!("a malformed header line {line:?} in the head {}", show(head)));
            }
        }
    }
    Ok((status, status_line, headers))
}

fn framing_of(headers: &[(String, String)]) -> Result<Framing, String> {
    let te = header_values(headers, "transfer-encoding");
    let cl = header_values(headers, "content-length");
    match (&te[..], &cl[..]) {
        ([], []) => Ok(Framing::Missing),
        ([], [length]) => length
            .parse()
            .map(Framing::Length)
            .map_err(|_| format!("an invalid Content-Length {length:?}")),
        ([], _) => Err(format!("several Content-Length headers {cl:?}")),
        (_, []) => {
            let last = te.last().and_then(|value| value.rsplit(',').next()).unwrap_or("");
            if last.trim().eq_ignore_ascii_case("chunked") {
                Ok(Framing::Chunked)
            } else {
                Err(format!("a Transfer-Encoding {te:?} that does not end in chunked"))
            }
        }
        _ => Err(format!("both Transfer-Encoding {te:?} and Content-Length {cl:?}")),
    }
}

/// Decodes a whole chunked body (with its last chunk and trailers): the data and chunk sizes.
fn decode_chunked(raw: &[u8]) -> Result<(Vec<u8>, Vec<usize>), String> {
    let mut body = Vec::new();
    let mut chunks = Vec::new();
    let mut rest = raw;
    let line = |rest: &mut &[u8]| -> Result<Vec<u8>, String> {
        let end = find(rest, b"\r\n").ok_or("a line without CRLF")?;
        let line = rest[..end].to_vec();
        *rest = &rest[end + 2..];
        Ok(line)
    };
    loop {
        let size_line = line(&mut rest)?;
        let size = parse_chunk_size(&size_line)?;
        if size == 0 {
            while !line(&mut rest)?.is_empty() {} // trailers
            if !rest.is_empty() {
                return Err(format!("{} bytes after the last chunk", rest.len()));
            }
            return Ok((body, chunks));
        }
        if rest.len() < size + 2 || &rest[size..size + 2] != b"\r\n" {
            return Err(format!("a chunk of {size} bytes not followed by CRLF"));
        }
        body.extend_from_slice(&rest[..size]);
        chunks.push(size);
        rest = &rest[size + 2..];
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<usize, String> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = std::str::from_utf8(digits).map_err(|_| format!("chunk size {}", show(line)))?;
    usize::from_str_radix(digits.trim_end_matches([' ', '\t']), 16)
        .map_err(|_| format!("an invalid chunk size line {}", show(line)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn describe_error(err: &io::Error) -> String {
    if is_timeout(err) {
        format!("nothing (complete) within {IO_TIMEOUT:?}")
    } else if err.kind() == ErrorKind::ConnectionReset {
        format!("a connection reset ({err})")
    } else {
        err.to_string()
    }
}

/// A client connection: raw bytes out, parsed responses in.
struct Client {
    stream: TcpStream,
    /// Bytes received and not yet parsed.
    buf: Vec<u8>,
}

impl Client {
    #[track_caller]
    fn connect(addr: SocketAddr) -> Client {
        let stream = match TcpStream::connect(addr) {
            Ok(stream) => stream,
            Err(err) => panic!("connect to {addr}: {err}"),
        };
        set_timeouts(&stream);
        Client { stream, buf: Vec::new() }
    }

    #[track_caller]
    fn send(&mut self, bytes: &[u8]) {
        if let Err(err) = self.stream.write_all(bytes) {
            panic!("sending {}: {}", show(bytes), describe_error(&err));
        }
    }

    #[track_caller]
    fn request(&mut self, raw: &[u8]) -> Response {
        self.send(raw);
        self.read_response()
    }

    /// Sends `upload` from another thread while reading the response here.
    #[track_caller]
    fn request_while_uploading(&mut self, upload: Vec<u8>) -> Response {
        let mut writer = self.stream.try_clone().expect("clone the stream");
        let sender = thread::spawn(move || writer.write_all(&upload));
        let resp = self.try_read_response(false);
        let sent = sender.join().expect("the upload thread panicked");
        match (resp, sent) {
            (Ok(resp), Ok(())) => resp,
            (resp, sent) => panic!("an upload: response {resp:?}, upload {sent:?}"),
        }
    }

    /// Reads more bytes into the buffer; `false` at EOF.
    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = vec![0; 64 * KIB];
        let n = read_once(&mut self.stream, &mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    fn eof_error(&self, what: &str) -> io::Error {
        io::Error::new(
            ErrorKind::UnexpectedEof,
            format!("the connection closed in the middle of {what}, after {}", show(&self.buf)),
        )
    }

    /// Takes the bytes up to `delim` (which is consumed, not returned).
    fn take_until(&mut self, delim: &[u8], limit: usize, what: &str) -> io::Result<Vec<u8>> {
        loop {
            if let Some(at) = find(&self.buf, delim) {
                let taken = self.buf[..at].to_vec();
                self.buf.drain(..at + delim.len());
                return Ok(taken);
            }
            if self.buf.len() > limit {
                let msg =
                    format!("no end of {what} in {} bytes: {}", self.buf.len(), show(&self.buf));
                return Err(io::Error::new(ErrorKind::InvalidData, msg));
            }
            if !self.fill()? {
                return Err(self.eof_error(what));
            }
        }
    }

    fn take_exact(&mut self, n: usize, what: &str) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill()? {
                return Err(self.eof_error(what));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads one response; `head_request` says it answers a HEAD (so it has no body).
    fn try_read_response(&mut self, head_request: bool) -> io::Result<Response> {
        let invalid = |msg: String| io::Error::new(ErrorKind::InvalidData, msg);
        let head = self.take_until(b"\r\n\r\n", 64 * KIB, "a response head")?;
        let (status, status_line, headers) = parse_head(&head).map_err(invalid)?;
        let framing = framing_of(&headers).map_err(invalid)?;
        let mut resp = Response {
            status,
            status_line,
            headers,
            framing,
            body: Vec::new(),
            chunks: Vec::new(),
        };
        if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
            return Ok(resp);
        }
        match framing {
            Framing::Length(n) => resp.body = self.take_exact(n, "a body")?,
            Framing::Chunked => loop {
                let line = self.take_until(b"\r\n", 4 * KIB, "a chunk size line")?;
                let size = parse_chunk_size(&line).map_err(invalid)?;
                if size == 0 {
                    while !self.take_until(b"\r\n", 16 * KIB, "the trailers")?.is_empty() {}
                    break;
                }
                let mut data = self.take_exact(size + 2, "a chunk")?;
                if !data.ends_with(b"\r\n") {
                    return Err(invalid(format!("a chunk not followed by CRLF: {}", show(&data))));
                }
                data.truncate(size);
                resp.body.extend_from_slice(&data);
                resp.chunks.push(size);
            },
            Framing::Missing => {
                while self.fill()? {}
                resp.body = std::mem::take(&mut self.buf);
            }
        }
        Ok(resp)
    }

    #[track_caller]
    fn read_response(&mut self) -> Response {
        match self.try_read_response(false) {
            Ok(resp) => resp,
            Err(err) => panic!("expected a response, got {}", describe_error(&err)),
        }
    }

    #[track_caller]
    fn read_head_response(&mut self) -> Response {
        match self.try_read_response(true) {
            Ok(resp) => resp,
            Err(err) => panic!("expected a response to HEAD, got {}", describe_error(&err)),
        }
    }

    /// Reads exactly `want` and nothing else yet.
    #[track_caller]
    fn expect_exact(&mut self, want: &[u8], what: &str) {
        match self.take_exact(want.len(), what) {
            Ok(got) if got == want => {}
            Ok(got) => panic!("{what}: expected {}, got {}", show(want), show(&got)),
            Err(err) => panic!("{what}: expected {}, got {}", show(want), describe_error(&err)),
        }
    }

    /// Checks that the server closes the connection cleanly (EOF, not a reset) within
    /// [`IO_TIMEOUT`], sending nothing more.
    #[track_caller]
    fn expect_closed(&mut self, after: &str) {
        if !self.buf.is_empty() {
            panic!("after {after}: unexpected bytes {}", show(&self.buf));
        }
        let mut byte = [0; 1024];
        match read_once(&mut self.stream, &mut byte) {
            Ok(0) => {}
            Ok(n) => panic!("after {after}: expected a close, got the bytes {}", show(&byte[..n])),
            Err(err) if is_timeout(&err) => {
                panic!("after {after}: expected a close, but it is still open {IO_TIMEOUT:?} later")
            }
            Err(err) => panic!(
                "after {after}: expected a clean close (EOF), got {} (did the server close with \
                 unread input instead of a lingering close?)",
                describe_error(&err)
            ),
        }
    }

    /// Waits (up to [`NOT_AFTER`] after `started`) for the server to cut this connection off:
    /// a 408 and a close, a bare close, or a reset. Returns when it came and how.
    #[track_caller]
    fn wait_for_cut(&mut self, started: Instant) -> (Duration, Cut) {
        let left = NOT_AFTER.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
        self.stream.set_read_timeout(Some(left)).expect("set a read timeout");
        let outcome = match self.fill() {
            Ok(false) => Cut::Eof,
            Ok(true) => {
                let elapsed = started.elapsed();
                self.stream.set_read_timeout(Some(IO_TIMEOUT)).expect("set a read timeout");
                let resp = self.read_response();
                assert_eq!(resp.status, 408, "a cut-off connection got {}", resp.describe());
                check_common(&resp, "a 408");
                assert!(resp.has_token("connection", "close"), "408 without Connection: close");
                self.expect_closed("a 408");
                return (elapsed, Cut::Response408);
            }
            Err(err) if is_timeout(&err) => {
                panic!("the connection was not cut off within {:?}", started.elapsed())
            }
            Err(_) => Cut::Reset,
        };
        (started.elapsed(), outcome)
    }
}

/// One `read`, retried if a signal interrupts it: a socket with a receive timeout fails with
/// EINTR even for signals with SA_RESTART, and even when the process is merely stopped and
/// continued (signal(7)).
fn read_once(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            result => return result,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers: external clients.

/// Runs `curl -sS --http1.1` with `args` and returns its stdout; fails on a non-zero exit.
#[track_caller]
fn curl(args: &[&str]) -> Vec<u8> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--http1.1", "--max-time", "10"]).args(args);
    run_tool(cmd, "curl")
}

/// Runs a tool to its exit (bounded), and returns its stdout; fails with a clear message if
/// the tool is not installed, or if it exits non-zero.
#[track_caller]
fn run_tool(mut cmd: Command, name: &str) -> Vec<u8> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut process = match Process::try_spawn(&mut cmd) {
        Ok(process) => process,
        Err(err) if err.kind() == ErrorKind::NotFound => panic!(
            "`{name}` is not installed (or not on PATH); these tests need it, and CI installs it"
        ),
        Err(err) => panic!("start {cmd:?}: {err}"),
    };
    let mut stdout = process.child.stdout.take().expect("the tool's stdout");
    let mut stderr = process.child.stderr.take().expect("the tool's stderr");
    let out = thread::spawn(move || {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).map(|_| buf)
    });
    let err = thread::spawn(move || {
        let mut buf = String::new();
        let _ = stderr.read_to_string(&mut buf);
        buf
    });
    let Some(status) = process.wait_timeout(Duration::from_secs(20)) else {
        panic!("{cmd:?} still runs after 20 s")
    };
    let stdout = out.join().expect("the stdout reader").expect("read the tool's stdout");
    let stderr = err.join().expect("the stderr reader");
    assert!(status.success(), "{cmd:?}: {status}; stderr: {stderr}; stdout: {}", show(&stdout));
    stdout
}

/// Splits the output of `curl -i` into the final status, headers and body (skipping 1xx).
#[track_caller]
fn parse_curl_output(out: &[u8], what: &str) -> (u16, Headers, Vec<u8>) {
    let mut rest = out;
    loop {
        let Some(end) = find(rest, b"\r\n\r\n") else {
            panic!("{what}: no response head in {}", show(out))
        };
        let (status, _, headers) = match parse_head(&rest[..end]) {
            Ok(head) => head,
            Err(err) => panic!("{what}: {err}"),
        };
        rest = &rest[end + 4..];
        if !(100..200).contains(&status) {
            return (status, headers, rest.to_vec());
        }
    }
}

/// A file in the temporary directory, removed when dropped.
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    fn new(tag: &str, contents: &[u8]) -> TempFile {
        let name = format!("reactor-http-test-{}-{tag}", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents)
            .unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
        TempFile { path }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers: the server process.

/// Runs the http binary with `args` until it exits by itself (bounded); returns its status,
/// stdout and stderr.
fn run_to_exit(args: &[&str]) -> (ExitStatus, String, String) {
    let mut cmd = Command::new(http_binary());
    cmd.args(args);
    let limit = Duration::from_secs(3);
    run_captured(cmd, limit).unwrap_or_else(|| {
        panic!("http {args:?} still runs after {limit:?}; it should have refused the arguments")
    })
}

/// The http example binary, checked to be built and up to date (see [`example_binary`]).
fn http_binary() -> PathBuf {
    example_binary("http")
}

impl Server {
    /// The http binary on `127.0.0.1:0` with the default limits.
    fn start() -> Server {
        Server::with_args(&[])
    }

    /// The http binary on `127.0.0.1:0` with `args` after the address; waits for its
    /// `listening on IP:PORT` line.
    fn with_args(args: &[&str]) -> Server {
        let mut cmd = Command::new(http_binary());
        cmd.arg("127.0.0.1:0").args(args);
        Server::spawn(cmd)
    }
}
