//! Writes with a completion callback (`Core::write_with`, `Conn::write_with`): when the callback
//! runs, in which order, with which outcome when the stream ends first, and what happens to it
//! when the write itself fails, panics, or the loop is dropped (in the spirit of libuv's
//! `test-tcp-write-*.c`).
//!
//! Servers are reactor streams; clients are blocking `std::net` sockets on threads of their
//! own, told by channels when to read, or reactor streams on the same loop. Every test body runs
//! under [`within`], every blocking socket has a timeout, and nothing waits by sleeping.

mod util;

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use reactor::{Conn, Core, Error, EventLoop, HandleId, Stream, StreamHandler, trace};
use util::{new_loop, run_until, strict, within};

/// How long one test body may take before it fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(25);

/// Read and write timeout of every blocking client socket.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// This file, as the loop reports it in callback sites.
const FILE: &str = "tests/write_with.rs";

/// A write larger than what the kernel buffers of a loopback connection hold by default
/// (4 MiB to send, up to 6 MiB to receive): most of it is queued while the peer does not read.
const BIG: usize = 16 << 20;

// ---------------------------------------------------------------------------------------------
// 1. A write the kernel takes at once
// ---------------------------------------------------------------------------------------------

#[test]
fn a_write_the_kernel_takes_at_once_completes_after_the_call_in_the_same_iterations_check_phase() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let log = Log::default();
        let l = log.clone();
        let addr = serve_one(&mut lp, &log, move |conn| {
            let id = conn.id();
            let l1 = l.clone();
            let below = conn.write_with(b"con", move |_, result| {
                l1.push(format!("conn written: {}", outcome(&result, id)));
            });
            l.push(format!("conn returned {below}, queued {}", conn.queued_bytes()));
            let l2 = l.clone();
            let below = conn
                .core()
                .write_with(id, b"core", move |_, result| {
                    l2.push(format!("core written: {}", outcome(&result, id)));
                })
                .unwrap();
            l.push(format!("core returned {below}, queued {}", conn.queued_bytes()));
        });
        // A check watcher marks the check phases: a completion that waited for the next
        // iteration would come after one of these.
        let l = log.clone();
        let check = lp.check(move |_, _| l.push("check phase"));
        lp.unref(check).unwrap();
        let mut client = connect(addr);

        let l = log.clone();
        run_until(&mut lp, move || l.contains("core written"));
        let log = log.take();
        let from = log.iter().position(|entry| entry.starts_with("conn returned")).unwrap();
        assert_eq!(
            log[from..from + 5],
            [
                "conn returned true, queued 0", // the kernel took it all, and it has not run yet
                "core returned true, queued 0",
                "conn written: Ok",
                "core written: Ok",
                "check phase", // the same iteration's check phase, after the deferred ones
            ],
            "{log:?}"
        );
        let mut got = [0; 7];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"concore");
    });
}

// ---------------------------------------------------------------------------------------------
// 2. A write queued behind a slow reader
// ---------------------------------------------------------------------------------------------

/// The most bytes the kernel may hold for one loopback connection: the send buffer's and the
/// receive buffer's autotuning limits (`tcp_wmem` and `tcp_rmem`, third field).
fn kernel_buffer_limit() -> usize {
    let max = |path: &str, default: usize| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.split_whitespace().nth(2)?.parse().ok())
            .unwrap_or(default)
    };
    max("/proc/sys/net/ipv4/tcp_wmem", 4 << 20) + max("/proc/sys/net/ipv4/tcp_rmem", 6 << 20)
}

#[test]
fn a_queued_write_completes_only_once_the_slow_reader_has_taken_all_but_the_kernel_buffers() {
    within(LIMIT, || {
        // Twice what the kernel can hold: at least half must have been read by the client
        // when the callback runs.
        let total = (2 * kernel_buffer_limit()).clamp(BIG, 128 << 20);
        let mut lp = new_loop();
        let log = Log::default();
        let read = Arc::new(AtomicUsize::new(0));
        // (the server's queue, the bytes the client had read) when the callback ran.
        let seen = Rc::new(Cell::new(None));
        let (l, r, s) = (log.clone(), read.clone(), seen.clone());
        let addr = serve_one(&mut lp, &log, move |conn| {
            let id = conn.id();
            let (l1, r1) = (l.clone(), r.clone());
            let below = conn.write_with(&pattern(total), move |core, result| {
                s.set(Some((core.queued_bytes(id).unwrap(), r1.load(Ordering::SeqCst))));
                l1.push(format!("written: {}", outcome(&result, id)));
                core.close(id).unwrap();
            });
            l.push(format!("returned {below}, queued {}", conn.queued_bytes() > 0));
        });

        let (go, wait) = mpsc::channel::<()>();
        let client = thread::spawn(move || {
            let mut socket = connect(addr);
            wait.recv_timeout(IO_TIMEOUT).expect("told to read");
            let mut buf = vec![0; 64 * 1024];
            let mut got = Vec::with_capacity(total);
            loop {
                let n = socket.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                read.fetch_add(n, Ordering::SeqCst);
            }
            got
        });

        // The client reads nothing yet: however many iterations pass, the write is not done.
        let l = log.clone();
        run_until(&mut lp, move || l.contains("returned"));
        for _ in 0..20 {
            lp.run_nowait().unwrap();
        }
        assert_eq!(log.take(), ["returned false, queued true"]);
        assert!(seen.get().is_none());

        go.send(()).unwrap();
        lp.run().unwrap();
        assert_eq!(log.take(), ["written: Ok", "on_close: None"]);
        let (queued, read_then) = seen.get().unwrap();
        assert_eq!(queued, 0, "every byte had left the queue");
        // One read's bytes may be counted late.
        let unread = total - read_then.min(total);
        assert!(
            unread <= kernel_buffer_limit() + 64 * 1024,
            "only {read_then} of {total} bytes had been read: the callback ran early"
        );
        let got = client.join().unwrap();
        assert!(got == pattern(total), "the client got {} of {total} bytes, in order", got.len());
    });
}

// ---------------------------------------------------------------------------------------------
// 3. Order
// ---------------------------------------------------------------------------------------------

#[test]
fn completions_run_once_each_in_write_order_whether_sent_at_once_or_queued() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let log = Log::default();
        // (which write, the server's queue when its callback ran) in the order they ran.
        let done = Rc::new(RefCell::new(Vec::new()));
        let d = done.clone();
        // The bytes written after each write: its callback may not run while more than that
        // is queued.
        let sizes = [1, BIG, 3, 0, 1 << 20, 6];
        let addr = serve_one(&mut lp, &log, move |conn| {
            let id = conn.id();
            for (n, &size) in sizes.iter().enumerate() {
                let data = vec![n as u8; size];
                let d = d.clone();
                let callback = move |core: &mut Core, result: reactor::Result<()>| {
                    assert_eq!(outcome(&result, id), "Ok");
                    d.borrow_mut().push((n, core.queued_bytes(id).unwrap()));
                    if n == sizes.len() - 1 {
                        // The queue is empty now: this one goes straight out, and its
                        // callback still comes after the others.
                        let d = d.clone();
                        assert!(
                            core.write_with(id, b"last", move |core, result| {
                                assert_eq!(outcome(&result, id), "Ok");
                                d.borrow_mut().push((n + 1, core.queued_bytes(id).unwrap()));
                                core.close(id).unwrap();
                            })
                            .unwrap()
                        );
                    }
                };
                match n {
                    // Plain writes in between have no callback and change nothing.
                    4 => assert!(!conn.core().write(id, &data).unwrap()),
                    _ if n % 2 == 0 => {
                        conn.write_with(&data, callback);
                    }
                    _ => {
                        conn.core().write_with(id, &data, callback).unwrap();
                    }
                }
            }
        });
        let client = thread::spawn(move || read_to_eof(&mut connect(addr)));
        lp.run().unwrap();

        let done = done.borrow();
        let order: Vec<usize> = done.iter().map(|&(n, _)| n).collect();
        // Write 4 was a plain `write`.
        assert_eq!(order, [0, 1, 2, 3, 5, 6], "{done:?}");
        for &(n, queued) in done.iter() {
            let after: usize = sizes.iter().skip(n + 1).sum();
            assert!(queued <= after, "write {n} completed with {queued} bytes queued: {done:?}");
        }
        assert_eq!(log.take(), ["on_close: None"]);
        let got = client.join().unwrap();
        let want: usize = sizes.iter().sum::<usize>() + 4;
        assert_eq!(got.len(), want);
        assert!(got.ends_with(&[5, 5, 5, 5, 5, 5, b'l', b'a', b's', b't']));
    });
}

// ---------------------------------------------------------------------------------------------
// 4. The stream ends first
// ---------------------------------------------------------------------------------------------

/// Makes three writes whose callbacks log their outcome: `BIG` bytes, `BIG` bytes, nothing.
/// Returns whether more than the last `BIG` bytes were queued after them, so that even the
/// first write was not complete.
fn three_writes(conn: &mut Conn<'_>, log: &Log) -> bool {
    let id = conn.id();
    for (n, size) in [BIG, BIG, 0].into_iter().enumerate() {
        let l = log.clone();
        let below = conn.write_with(&vec![7; size], move |_, result| {
            l.push(format!("write {n}: {}", outcome(&result, id)));
        });
        assert!(!below);
    }
    conn.queued_bytes() > BIG
}

#[test]
fn abort_fails_each_outstanding_callback_once_with_closed_before_on_close() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let log = Log::default();
        let late = Rc::new(Cell::new(0));
        let (l, late_core) = (log.clone(), late.clone());
        let addr = serve_one(&mut lp, &log, move |conn| {
            let id = conn.id();
            assert!(three_writes(conn, &l), "the first write was still queued");
            conn.abort();
            // After the abort: `Conn::write_with` reports the error to its callback...
            let l1 = l.clone();
            let below = conn.write_with(b"late", move |_, result| {
                l1.push(format!("late conn write: {}", outcome(&result, id)));
            });
            assert!(!below);
            // ... `Core::write_with` returns it, and its callback is never called.
            let late = late_core.clone();
            let result = conn.core().write_with(id, b"late", move |_, _| late.set(1));
            assert!(matches!(result, Err(Error::Closed(closed)) if closed == id.id()));
            l.push("aborted");
        });
        let _client = connect(addr); // connected, never reading
        lp.run().unwrap();
        assert_eq!(
            log.take(),
            [
                "aborted",
                "write 0: Closed",
                "write 1: Closed",
                "write 2: Closed",
                "late conn write: Closed",
                "on_close: None",
            ]
        );
        assert_eq!(late.get(), 0);
    });
}

/// A client that does not read: it pauses as it opens.
struct Paused;

impl StreamHandler for Paused {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.pause();
    }

    fn on_data(&mut self, _: &mut Conn<'_>, _: &[u8]) {
        panic!("a paused stream read");
    }
}

#[test]
fn a_peer_reset_fails_each_outstanding_callback_once_with_the_error_on_close_gets() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let log = Log::default();
        let client = Rc::new(Cell::new(None));
        let (l, c) = (log.clone(), client.clone());
        let addr = serve_one(&mut lp, &log, move |conn| {
            assert!(three_writes(conn, &l), "the first write was still queued");
            // The client resets the connection: its abort sends a RST when its socket closes.
            let client: Stream = c.get().unwrap();
            conn.core().defer(move |core| core.abort(client).unwrap());
        });
        client.set(Some(lp.connect_tcp(addr, Paused).unwrap()));
        lp.run().unwrap();
        // Linux reports a RST on a socket with output pending as ECONNRESET.
        assert_eq!(
            log.take(),
            [
                "write 0: Io(ConnectionReset)",
                "write 1: Io(ConnectionReset)",
                "write 2: Io(ConnectionReset)",
                "on_close: Some(ConnectionReset)",
            ]
        );
    });
}

#[test]
fn a_graceful_close_flushes_first_so_its_writes_complete_ok_before_on_close() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let log = Log::default();
        let l = log.clone();
        let addr = serve_one(&mut lp, &log, move |conn| {
            let id = conn.id();
            for n in 0..2 {
                let l = l.clone();
                conn.write_with(&pattern(BIG)[n * BIG / 2..(n + 1) * BIG / 2], move |_, result| {
                    l.push(format!("write {n}: {}", outcome(&result, id)));
                });
            }
            assert!(conn.queued_bytes() > BIG / 2, "the first write was still queued");
            conn.close();
            let l = l.clone();
            conn.write_with(b"after close", move |_, result| {
                l.push(format!("write after close: {}", outcome(&result, id)));
            });
        });
        let client = thread::spawn(move || read_to_eof(&mut connect(addr)));
        lp.run().unwrap();
        assert_eq!(
            log.take(),
            [
                "write after close: Closed", // refused at once
                "write 0: Ok",
                "write 1: Ok",
                "on_close: None",
            ]
        );
        assert!(client.join().unwrap() == pattern(BIG), "every byte, in order, then EOF");
    });
}

#[test]
fn a_graceful_close_that_times_out_fails_the_outstanding_callbacks_with_timed_out() {
    within(LIMIT, || {
        let mut lp = util::virtual_loop();
        lp.set_panic_hook(|report| panic!("{report}"));
        let log = Log::default();
        let l = log.clone();
        let addr = serve_one(&mut lp, &log, move |conn| {
            assert!(three_writes(conn, &l), "the first write was still queued");
            conn.close();
        });
        let _client = connect(addr); // connected, never reading
        lp.run().unwrap(); // the virtual clock jumps to the close timeout
        assert_eq!(
            log.take(),
            [
                "write 0: Io(TimedOut)",
                "write 1: Io(TimedOut)",
                "write 2: Io(TimedOut)",
                "on_close: Some(TimedOut)",
            ]
        );
    });
}

/// Logs `on_close`, and nothing else.
struct Closes(Log);

impl StreamHandler for Closes {
    fn on_data(&mut self, _: &mut Conn<'_>, _: &[u8]) {}

    fn on_close(&mut self, _: &mut Core, _: Stream, error: Option<std::io::Error>) {
        self.0.push(format!("on_close: {:?}", error.map(|err| err.kind())));
    }
}

#[test]
fn writes_made_while_connecting_fail_with_the_connects_error_if_it_fails() {
    within(LIMIT, || {
        // A port that was free a moment ago, and on which nothing listens any more.
        let addr = std::net::TcpListener::bind(localhost()).unwrap().local_addr().unwrap();
        let mut lp = new_loop();
        let log = Log::default();
        let stream = lp.connect_tcp(addr, Closes(log.clone())).unwrap();
        for (n, data) in [&b""[..], b"queued while connecting", b""].into_iter().enumerate() {
            let l = log.clone();
            let below = lp.write_with(stream, data, move |_, result| {
                l.push(format!("write {n}: {}", outcome(&result, stream)));
            });
            assert!(below.unwrap());
        }
        lp.run().unwrap();
        assert_eq!(
            log.take(),
            [
                // Even an empty write waits for the connect.
                "write 0: Io(ConnectionRefused)",
                "write 1: Io(ConnectionRefused)",
                "write 2: Io(ConnectionRefused)",
                "on_close: Some(ConnectionRefused)",
            ]
        );
    });
}

/// Logs `on_open`.
struct Opens(Log);

impl StreamHandler for Opens {
    fn on_open(&mut self, _: &mut Conn<'_>) {
        self.0.push("on_open");
    }

    fn on_data(&mut self, _: &mut Conn<'_>, _: &[u8]) {}
}

#[test]
fn an_empty_write_made_while_connecting_completes_after_on_open() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let log = Log::default();
        let addr = serve_one(&mut lp, &Log::default(), |conn| conn.close());
        // By name, even an IP literal: the lookup on the pool keeps the stream connecting for
        // an iteration or more, during which nothing has reached the kernel.
        let stream = lp.connect_host("127.0.0.1", addr.port(), Opens(log.clone())).unwrap();
        let l = log.clone();
        let below = lp.write_with(stream, b"", move |_, result| {
            l.push(format!("written: {}", outcome(&result, stream)));
        });
        assert!(below.unwrap());
        lp.run().unwrap();
        assert_eq!(log.take(), ["on_open", "written: Ok"]);
    });
}

// ---------------------------------------------------------------------------------------------
// 5. Writes that fail at once
// ---------------------------------------------------------------------------------------------

#[test]
fn a_write_with_that_returns_an_error_drops_its_callback_without_calling_it() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let log = Log::default();
        let stream = Rc::new(Cell::new(None));
        let s = stream.clone();
        let addr = serve_one(&mut lp, &log, move |conn| s.set(Some(conn.id())));
        let _client = connect(addr);
        let s = stream.clone();
        run_until(&mut lp, move || s.get().is_some());
        let stream = stream.get().unwrap();

        // Each callback holds a clone of `token`: once the count is back to one, every
        // callback has been dropped.
        let token = Rc::new(());
        let called = Rc::new(Cell::new(0));
        let attempt = |lp: &mut EventLoop| {
            let (t, c) = (token.clone(), called.clone());
            lp.write_with(stream, b"x", move |_, _| {
                let _held = &t;
                c.set(c.get() + 1);
            })
        };

        // After shutdown: `BrokenPipe`, as `write` says.
        lp.shutdown(stream).unwrap();
        let err = attempt(&mut lp).unwrap_err();
        assert!(matches!(&err, Error::Io(err) if err.kind() == ErrorKind::BrokenPipe), "{err}");
        // Closing, then closed and freed: `Closed`.
        lp.close(stream).unwrap();
        assert!(matches!(attempt(&mut lp), Err(Error::Closed(id)) if id == stream.id()));
        lp.run().unwrap();
        assert!(matches!(attempt(&mut lp), Err(Error::Closed(id)) if id == stream.id()));

        assert_eq!(Rc::strong_count(&token), 1, "every callback was dropped");
        lp.run().unwrap();
        assert_eq!(called.get(), 0);
        assert_eq!(log.take(), ["on_close: None"]);
    });
}

/// Shuts down as it opens, then tries `Conn::write_with`.
struct ShutThenWrite(Log);

impl StreamHandler for ShutThenWrite {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.shutdown();
        let (id, log) = (conn.id(), self.0.clone());
        let below = conn.write_with(b"x", move |_, result| {
            log.push(format!("written: {}", outcome(&result, id)));
        });
        self.0.push(format!("returned {below}"));
        conn.close();
    }

    fn on_data(&mut self, _: &mut Conn<'_>, _: &[u8]) {}
}

#[test]
fn conn_write_with_after_shutdown_returns_false_and_hands_the_error_to_its_callback_later() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let log = Log::default();
        let addr = serve_one(&mut lp, &Log::default(), |_| {});
        lp.connect_tcp(addr, ShutThenWrite(log.clone())).unwrap();
        lp.run().unwrap();
        assert_eq!(log.take(), ["returned false", "written: Io(BrokenPipe)"]);
    });
}

// ---------------------------------------------------------------------------------------------
// 6. Panics, tracing, and a loop dropped with callbacks outstanding
// ---------------------------------------------------------------------------------------------

#[test]
fn a_panic_in_on_written_is_reported_as_write_done_and_the_stream_and_loop_go_on() {
    within(LIMIT, || {
        let mut lp = EventLoop::new().unwrap();
        let reports = Rc::new(RefCell::new(Vec::new()));
        let sink = reports.clone();
        lp.set_panic_hook(move |report| {
            let site = (report.site().file(), report.site().line());
            sink.borrow_mut().push((report.kind(), report.handle(), site, report.message().into()));
        });
        let log = Log::default();
        let line = Rc::new(Cell::new(0));
        let (l, w) = (log.clone(), line.clone());
        let addr = serve_one(&mut lp, &log, move |conn| {
            let id = conn.id();
            w.set(line!() + 1);
            conn.write_with(b"one", |_, _| panic!("boom in on_written"));
            let l = l.clone();
            conn.write_with(b"two", move |core, result| {
                l.push(format!("second: {}", outcome(&result, id)));
                // Still open: the panic closed nothing.
                assert!(core.write_with(id, b"three", |_, _| {}).unwrap());
                core.close(id).unwrap();
            });
        });
        let client = thread::spawn(move || read_to_eof(&mut connect(addr)));
        lp.run().unwrap();
        let message = String::from("boom in on_written");
        assert_eq!(reports.take(), [("write done", None, (FILE, line.get()), message)]);
        assert_eq!(log.take(), ["second: Ok", "on_close: None"]);
        assert_eq!(client.join().unwrap(), b"onetwothree");
    });
}

#[test]
fn a_traced_write_done_callback_names_the_users_write_with_call_as_its_cause() {
    within(LIMIT, || {
        let mut lp = strict(EventLoop::builder().tracing(true).build().unwrap());
        let log = Log::default();
        let chains = Rc::new(RefCell::new(Vec::new()));
        let lines = Rc::new(RefCell::new(Vec::new()));
        let (c, n) = (chains.clone(), lines.clone());
        let addr = serve_one(&mut lp, &log, move |conn| {
            let id = conn.id();
            let c1 = c.clone();
            n.borrow_mut().push(line!() + 1);
            conn.write_with(b"at once", move |core, _| c1.borrow_mut().push(chain(core)));
            let c2 = c.clone();
            let big = vec![1; BIG];
            let core = conn.core();
            n.borrow_mut().push(line!() + 1);
            let below = core.write_with(id, &big, move |core, _| c2.borrow_mut().push(chain(core)));
            assert!(!below.unwrap());
            conn.abort(); // the second fails: its chain is the same
        });
        let _client = connect(addr);
        lp.run().unwrap();
        let (chains, lines) = (chains.take(), lines.take());
        assert_eq!(chains.len(), 2);
        for (chain, line) in chains.iter().zip(lines) {
            let site = format!("({FILE}:{line}:");
            assert!(chain.starts_with(&format!("write done callback {site}")), "{chain}");
            assert!(chain.contains(" <- queued write in open callback of stream#"), "{chain}");
            assert_eq!(chain.matches(&site).count(), 2, "{chain}");
            assert!(chain.contains(" <- accepted by listener#"), "{chain}");
        }
    });
}

fn chain(core: &Core) -> String {
    trace::current(core).to_string()
}

/// Counts its drops.
struct DropCount(Rc<Cell<usize>>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn dropping_the_loop_drops_outstanding_callbacks_without_running_them() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let log = Log::default();
        let (dropped, ran) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let streams = Rc::new(RefCell::new(Vec::new()));
        let s = streams.clone();
        let listener = lp
            .listen_tcp(localhost(), move |stream| {
                s.borrow_mut().push(stream);
                Discard
            })
            .unwrap();
        let addr = lp.local_addr(listener).unwrap();
        let _clients = [connect(addr), connect(addr)]; // never reading
        let s = streams.clone();
        run_until(&mut lp, move || s.borrow().len() == 2);
        let streams = streams.take();

        // One waits in a write queue, one in the check phase's queue: neither has run when
        // the loop goes.
        let (d, r) = (DropCount(dropped.clone()), ran.clone());
        let below = lp.write_with(streams[0], &vec![0; BIG], move |_, _| {
            let _held = &d;
            r.set(r.get() + 1);
        });
        assert!(!below.unwrap());
        let (d, r) = (DropCount(dropped.clone()), ran.clone());
        let below = lp.write_with(streams[1], b"small", move |_, _| {
            let _held = &d;
            r.set(r.get() + 1);
        });
        assert!(below.unwrap());
        assert_eq!(lp.queued_bytes(streams[1]).unwrap(), 0, "sent at once, callback pending");
        drop(lp);
        assert_eq!((dropped.get(), ran.get()), (2, 0));
        assert!(log.take().is_empty());
    });
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// What callbacks did, in order.
#[derive(Clone, Default)]
struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    fn push(&self, entry: impl Into<String>) {
        self.0.borrow_mut().push(entry.into());
    }

    fn take(&self) -> Vec<String> {
        self.0.take()
    }

    fn contains(&self, prefix: &str) -> bool {
        self.0.borrow().iter().any(|entry| entry.starts_with(prefix))
    }
}

/// A write's outcome, short: `Ok`, `Closed` (of `stream`, checked), or `Io(kind)`.
fn outcome(result: &reactor::Result<()>, stream: Stream) -> String {
    match result {
        Ok(()) => "Ok".into(),
        Err(Error::Closed(id)) => {
            assert_eq!(*id, stream.id(), "Closed names the stream");
            "Closed".into()
        }
        Err(Error::Io(err)) => format!("Io({:?})", err.kind()),
        Err(err) => format!("{err:?}"),
    }
}

/// What a [`Server`] does as it opens.
type OpenFn = Box<dyn FnOnce(&mut Conn<'_>)>;

/// The server side of one connection: runs `open` in `on_open`, ignores input, logs
/// `on_close`.
struct Server {
    open: Option<OpenFn>,
    log: Log,
}

impl StreamHandler for Server {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if let Some(open) = self.open.take() {
            open(conn);
        }
    }

    fn on_data(&mut self, _: &mut Conn<'_>, _: &[u8]) {}

    fn on_close(&mut self, _: &mut Core, _: Stream, error: Option<std::io::Error>) {
        self.log.push(format!("on_close: {:?}", error.map(|err| err.kind())));
    }
}

/// Listens on loopback for one connection, served by a [`Server`] running `open`; the listener
/// closes once it has accepted it.
fn serve_one(
    lp: &mut EventLoop,
    log: &Log,
    open: impl FnOnce(&mut Conn<'_>) + 'static,
) -> SocketAddr {
    let open: Rc<Cell<Option<OpenFn>>> = Rc::new(Cell::new(Some(Box::new(open))));
    let listener = Rc::new(Cell::new(None));
    let (l, log) = (listener.clone(), log.clone());
    let id = lp
        .listen_tcp(localhost(), move |_| {
            let open = open.take().expect("one connection");
            let listener: HandleId = l.get().unwrap();
            let open = Box::new(move |conn: &mut Conn<'_>| {
                conn.core().close(listener).unwrap();
                open(conn);
            });
            Server { open: Some(open), log: log.clone() }
        })
        .unwrap();
    listener.set(Some(id.id()));
    lp.local_addr(id).unwrap()
}

/// Reads and ignores everything.
struct Discard;

impl StreamHandler for Discard {
    fn on_data(&mut self, _: &mut Conn<'_>, _: &[u8]) {}
}

/// `len` bytes that show a lost, repeated or reordered piece: each 4-byte word is its index.
fn pattern(len: usize) -> Vec<u8> {
    (0..len.div_ceil(4) as u32).flat_map(u32::to_le_bytes).take(len).collect()
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let socket = TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    socket
}

fn read_to_eof(socket: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    socket.read_to_end(&mut got).unwrap();
    got
}
