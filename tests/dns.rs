//! Names: `resolve` on the pool, `connect_host` by name, `connect_any` trying each address in
//! turn, and their errors (unknown host, refused connection, invalid names, close meanwhile).

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::time::Duration;

use reactor::{Conn, Core, Error, EventLoop, Stream, StreamHandler};

mod util;
use util::{BusyPool, Log, within};

/// Echoes everything back.
struct Echo;

impl StreamHandler for Echo {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        conn.write(data);
    }
}

/// A client that says `hello`, expects it back, closes, and logs its life.
struct Client {
    log: Log,
    got: Vec<u8>,
}

impl StreamHandler for Client {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let peer = conn.peer_addr().map(|addr| addr.ip().to_string()).unwrap_or_default();
        self.log.push(format!("open {peer}"));
    }
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        self.got.extend_from_slice(data);
        if self.got == b"hello" {
            self.log.push("echoed");
            conn.close();
        }
    }
    fn on_close(&mut self, _core: &mut Core, _stream: Stream, error: Option<io::Error>) {
        self.log.push(format!("closed {:?}", error.map(|e| e.kind())));
    }
}

fn client(log: &Log) -> Client {
    Client { log: log.clone(), got: Vec::new() }
}

/// A loop with an echo server on 127.0.0.1; its port.
fn loop_with_echo_server() -> (EventLoop, u16) {
    let mut lp = EventLoop::new().unwrap();
    let listener = lp.listen_tcp("127.0.0.1:0".parse().unwrap(), |_| Echo).unwrap();
    let port = lp.local_addr(listener).unwrap().port();
    lp.unref(listener).unwrap(); // the loop ends when the client does
    (lp, port)
}

/// A loopback address where nothing listens (bound, then released).
fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[test]
fn resolve_finds_localhost_with_the_port() {
    within(Duration::from_secs(20), || {
        let mut lp = EventLoop::new().unwrap();
        let got = Rc::new(RefCell::new(None));
        let sink = got.clone();
        lp.resolve("localhost", 8080, move |_, addrs| *sink.borrow_mut() = Some(addrs)).unwrap();
        lp.run().unwrap();
        let addrs = got.take().expect("done ran").unwrap();
        assert!(addrs.contains(&"127.0.0.1:8080".parse().unwrap()), "{addrs:?}");
        assert!(addrs.iter().all(|addr| addr.port() == 8080));
    });
}

#[test]
fn resolve_reports_an_unknown_host_in_its_callback() {
    within(Duration::from_secs(30), || {
        let mut lp = EventLoop::new().unwrap();
        let got = Rc::new(RefCell::new(None));
        let sink = got.clone();
        // `.invalid` is reserved never to resolve (RFC 2606).
        lp.resolve("no-such-host.invalid", 80, move |_, r| *sink.borrow_mut() = Some(r)).unwrap();
        lp.run().unwrap();
        assert!(got.take().expect("done ran").is_err());
    });
}

#[test]
fn invalid_host_names_are_refused_at_once() {
    let mut lp = EventLoop::new().unwrap();
    for host in ["", "local\0host"] {
        let resolved = lp.resolve(host, 80, |_, _| panic!("callback of a refused call"));
        let connected = lp.connect_host(host, 80, Echo);
        for result in [resolved.map(drop), connected.map(drop)] {
            match result {
                Err(Error::Io(err)) => assert_eq!(err.kind(), io::ErrorKind::InvalidInput),
                other => panic!("{host:?}: expected InvalidInput, got {other:?}"),
            }
        }
    }
    assert!(!lp.alive());
}

#[test]
fn connect_host_connects_by_name() {
    within(Duration::from_secs(20), || {
        let (mut lp, port) = loop_with_echo_server();
        let log = Log::new();
        let stream = lp.connect_host("localhost", port, client(&log)).unwrap();
        // Written before the name is even resolved: queued, then sent.
        lp.write(stream, b"hello").unwrap();
        lp.run().unwrap();
        assert_eq!(log.take(), ["open 127.0.0.1", "echoed", "closed None"]);
    });
}

#[test]
fn connect_host_reports_an_unknown_host_in_on_close() {
    within(Duration::from_secs(30), || {
        let mut lp = EventLoop::new().unwrap();
        let log = Log::new();
        lp.connect_host("no-such-host.invalid", 80, client(&log)).unwrap();
        lp.run().unwrap();
        let log = log.take();
        assert_eq!(log.len(), 1, "{log:?}");
        assert!(log[0].starts_with("closed Some("), "{log:?}");
        assert_ne!(log[0], "closed Some(ConnectionRefused)");
    });
}

#[test]
fn connect_host_reports_a_refused_connection_in_on_close() {
    within(Duration::from_secs(20), || {
        let mut lp = EventLoop::new().unwrap();
        let log = Log::new();
        lp.connect_host("127.0.0.1", refused_addr().port(), client(&log)).unwrap();
        lp.run().unwrap();
        assert_eq!(log.take(), ["closed Some(ConnectionRefused)"]);
    });
}

#[test]
fn connect_any_moves_on_from_a_refused_address_to_one_that_accepts() {
    within(Duration::from_secs(20), || {
        let (mut lp, port) = loop_with_echo_server();
        let log = Log::new();
        let good: SocketAddr = ([127, 0, 0, 1], port).into();
        let addrs = vec![refused_addr(), refused_addr(), good];
        let stream = lp.connect_any(addrs, client(&log)).unwrap();
        lp.write(stream, b"hello").unwrap();
        lp.run().unwrap();
        assert_eq!(log.take(), ["open 127.0.0.1", "echoed", "closed None"]);
    });
}

#[test]
fn connect_any_reports_the_last_error_when_every_address_fails() {
    within(Duration::from_secs(20), || {
        let mut lp = EventLoop::new().unwrap();
        let log = Log::new();
        lp.connect_any(vec![refused_addr(), refused_addr()], client(&log)).unwrap();
        lp.run().unwrap();
        assert_eq!(log.take(), ["closed Some(ConnectionRefused)"]);
        match lp.connect_any(Vec::new(), client(&log)) {
            Err(Error::Io(err)) => assert_eq!(err.kind(), io::ErrorKind::InvalidInput),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    });
}

#[test]
fn a_stream_closed_while_its_name_resolves_never_opens() {
    within(Duration::from_secs(20), || {
        let (mut lp, port) = loop_with_echo_server();
        let log = Log::new();
        let stream = lp.connect_host("localhost", port, client(&log)).unwrap();
        lp.close(stream).unwrap();
        lp.run().unwrap();
        assert_eq!(log.take(), ["closed None"]);
    });
}

#[test]
fn a_lookup_cancelled_while_queued_reports_interrupted() {
    within(Duration::from_secs(20), || {
        let mut lp = EventLoop::builder().thread_pool_size(1).build().unwrap();
        let busy = BusyPool::hold(&mut lp, |_, _| {});
        let got = Rc::new(RefCell::new(None));
        let sink = got.clone();
        let work = lp.resolve("localhost", 80, move |_, r| *sink.borrow_mut() = Some(r)).unwrap();
        lp.cancel_work(work).unwrap();
        busy.release();
        lp.run().unwrap();
        let err = got.take().expect("done ran").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
    });
}
