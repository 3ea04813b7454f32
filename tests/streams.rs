//! Byte streams over real loopback sockets: echo, half-close, abortive close, backpressure,
//! read fairness, refused connects, Unix-domain streams, graceful close and its timeout,
//! pause/resume, shutdown, stale ids, panics and pipelining (in the spirit of libuv's
//! `test-tcp-*.c` and `test-pipe-*.c`).
//!
//! Servers are reactor loops on the test's thread; clients are blocking `std::net` sockets on
//! threads of their own, or reactor streams on the same loop when the test needs to know exactly
//! when a client acts. Every test body runs under [`within`], every blocking client socket has a
//! timeout, and nothing waits by sleeping.

mod util;

#[path = "../examples/echo.rs"]
#[allow(dead_code)]
mod echo;

use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use reactor::listener::ACCEPT_BUDGET;
use reactor::stream::{
    CLOSE_TIMEOUT, DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER, READ_BUDGET, READ_BUFFER_SIZE,
};
use reactor::{Conn, Core, Error, EventLoop, HandleId, Stream, StreamHandler};
use util::{new_loop, run_until, strict, within};

/// How long one test body may take before it fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(25);

/// Read and write timeout of every blocking client socket: on loopback, no byte moving for this
/// long means the server has stalled. A client that times out (or fails an assertion) makes the
/// server's loop fail too (see [`spawn_client`]), so a stall fails its test in seconds.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// 1. Echo
// ---------------------------------------------------------------------------------------------

#[test]
fn echo_returns_every_byte_of_random_payloads_on_200_concurrent_connections() {
    const CLIENTS: usize = 200;
    const SEED: u64 = 0x5eed_0001;
    within(LIMIT, || {
        let mut lp = new_loop();
        let (accepted, addr) = observed_server(&mut lp, CLIENTS, || echo::Echo);

        // Sizes from 1 byte to 1 MiB, spread over every power of two in between.
        let mut rng = Rng::new(SEED);
        let sizes: Vec<usize> = (0..CLIENTS)
            .map(|i| match i {
                0 => 1,
                1 => 1 << 20,
                _ => {
                    let bits = rng.below(21);
                    1 + rng.below(1 << bits) as usize
                }
            })
            .collect();
        // Every client holds its connection open until all of them are connected.
        let all_connected = Arc::new(Barrier::new(CLIENTS));
        let clients: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let all_connected = all_connected.clone();
                spawn_client(&lp, &format!("client {i}"), move || {
                    let payload = Rng::new(SEED + 1 + i as u64).bytes(size);
                    let mut socket = connect(addr);
                    all_connected.wait();
                    let mut writer = socket.try_clone().unwrap();
                    let writing = thread::spawn(move || {
                        writer.write_all(&payload).unwrap();
                        writer.shutdown(Shutdown::Write).unwrap();
                        payload
                    });
                    let echoed = read_to_eof(&mut socket);
                    let payload = writing.join().unwrap();
                    assert_same_bytes(&echoed, &payload, &format!("client {i} ({size} bytes)"));
                })
            })
            .collect();

        lp.run().unwrap();
        for client in clients {
            client.join().unwrap();
        }
        let conns = accepted.take();
        assert_eq!(conns.len(), CLIENTS);
        let mut echoed: Vec<usize> = conns.iter().map(|(_, ev)| ev.data_bytes()).collect();
        let mut sent = sizes.clone();
        echoed.sort_unstable();
        sent.sort_unstable();
        assert_eq!(echoed, sent, "the server read exactly what the clients sent");
        for (_, events) in &conns {
            assert_eq!(events.count(&Ev::Open), 1);
            assert_eq!(events.count(&Ev::Eof), 1);
            assert_eq!(events.closes(), [None], "{:?}", events.get());
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 2. Half-close
// ---------------------------------------------------------------------------------------------

#[test]
fn a_half_closed_client_gets_every_echoed_byte_then_eof_and_the_server_sees_one_eof() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let accepted = Accepted::default();
        let finish = Finish::after(1);
        let (a, f) = (accepted.clone(), finish.clone());
        let addrs = Rc::new(RefCell::new(Vec::new()));
        let ad = addrs.clone();
        let listener = lp
            .listen_tcp(localhost(), move |stream| {
                let ad = ad.clone();
                a.observe(
                    stream,
                    OnOpen(echo::Echo, move |conn: &mut Conn<'_>| {
                        let id = conn.id();
                        let local = conn.core().local_addr(id).unwrap();
                        ad.borrow_mut().push((conn.peer_addr().unwrap(), local));
                    }),
                )
                .then_finish(&f)
            })
            .unwrap();
        finish.close_also(listener);
        let addr = lp.local_addr(listener).unwrap();

        // Several MiB, so that the echo is usually still in flight when the EOF arrives: the
        // default on_eof must close gracefully, after the rest of it.
        let payload = Rng::new(2).bytes(3 << 20);
        let client = spawn_client(&lp, "client", move || {
            let mut socket = connect(addr);
            let client_addr = socket.local_addr().unwrap();
            let mut writer = socket.try_clone().unwrap();
            let writing = thread::spawn(move || {
                writer.write_all(&payload).unwrap();
                writer.shutdown(Shutdown::Write).unwrap();
                payload
            });
            let echoed = read_to_eof(&mut socket);
            let payload = writing.join().unwrap();
            assert_same_bytes(&echoed, &payload, "the echo");
            // EOF stays EOF.
            assert_eq!(socket.read(&mut [0; 16]).unwrap(), 0);
            (client_addr, payload.len())
        });

        lp.run().unwrap();
        let (client_addr, sent) = client.join().unwrap();
        let conns = accepted.take();
        assert_eq!(conns.len(), 1);
        let events = &conns[0].1;
        let got = events.get();
        assert_eq!(got.first(), Some(&Ev::Open));
        assert_eq!(events.data_bytes(), sent);
        assert_eq!(events.count(&Ev::Eof), 1, "{got:?}");
        assert_eq!(events.closes(), [None]);
        // Nothing but drains between the EOF and the close; the close is last.
        let eof = got.iter().position(|ev| *ev == Ev::Eof).unwrap();
        assert!(got[eof + 1..got.len() - 1].iter().all(|ev| *ev == Ev::Drain), "{got:?}");
        assert_eq!(got.last(), Some(&Ev::Close(None)));
        // The accepted stream knows both ends.
        assert_eq!(addrs.borrow()[0], (client_addr, addr));
    });
}

// ---------------------------------------------------------------------------------------------
// 3. Abortive close by the peer
// ---------------------------------------------------------------------------------------------

/// A client that sends `first`, waits for its echo, sends `second` and aborts at once.
struct AbortMidStream {
    first: Vec<u8>,
    second: Vec<u8>,
    echoed: usize,
}

impl StreamHandler for AbortMidStream {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.write(&self.first);
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        self.echoed += data.len();
        if self.echoed == self.first.len() {
            conn.write(&self.second);
            conn.abort();
        }
    }
}

#[test]
fn a_peer_that_aborts_mid_stream_ends_the_server_stream_once_with_connection_reset() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let (accepted, addr) = observed_server(&mut lp, 2, || echo::Echo);
        let aborter = Events::default();
        let handler = AbortMidStream {
            first: Rng::new(3).bytes(200_000),
            second: Rng::new(4).bytes(100_000),
            echoed: 0,
        };
        lp.connect_tcp(addr, aborter.wrap(handler)).unwrap();
        let a = accepted.clone();
        run_until(&mut lp, move || a.first_events().is_some_and(|ev| !ev.closes().is_empty()));

        // The aborting side: its own abort is no error.
        assert_eq!(aborter.get().first(), Some(&Ev::Open));
        assert_eq!(aborter.data_bytes(), 200_000);
        assert_eq!(aborter.closes(), [None]);
        // The server: ended once, by the reset (on Linux a RST is reported as ECONNRESET, never
        // as an EOF), after all of the first part and perhaps some of the second.
        let server = accepted.first_events().unwrap();
        assert_eq!(server.closes(), [Some(ErrorKind::ConnectionReset)], "{:?}", server.get());
        assert_eq!(server.count(&Ev::Eof), 0);
        assert!((200_000..=300_000).contains(&server.data_bytes()), "{:?}", server.get());

        // The loop goes on serving: a second client gets its echo and a clean close.
        let second = Events::default();
        let collected = Rc::new(RefCell::new(Vec::new()));
        lp.connect_tcp(addr, second.wrap(SendThenShutdown::new(b"still here", collected.clone())))
            .unwrap();
        lp.run().unwrap();
        assert_eq!(collected.borrow().as_slice(), b"still here");
        assert_eq!(second.closes(), [None]);
        let conns = accepted.take();
        assert_eq!(conns.len(), 2);
        assert_eq!(conns[1].1.get(), [Ev::Open, Ev::Data(10), Ev::Eof, Ev::Close(None)]);
        // Still exactly one end for the first.
        assert_eq!(conns[0].1.closes(), [Some(ErrorKind::ConnectionReset)]);
    });
}

// ---------------------------------------------------------------------------------------------
// 4. Backpressure against a slow reader
// ---------------------------------------------------------------------------------------------

/// What the server's queue looked like, sampled after every `on_data` and `on_drain`.
#[derive(Default, Debug)]
struct QueueStats {
    max_after_data: usize,
    max_at_drain: usize,
    pauses: usize,
    drains: usize,
}

/// `echo::Echo`, sampling its own queue.
struct SampledEcho {
    echo: echo::Echo,
    stats: Rc<RefCell<QueueStats>>,
    /// One message per pause, for the client.
    paused: mpsc::Sender<()>,
}

impl StreamHandler for SampledEcho {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        self.echo.on_data(conn, data);
        let queued = conn.queued_bytes();
        let mut stats = self.stats.borrow_mut();
        stats.max_after_data = stats.max_after_data.max(queued);
        // Past the high watermark `write` returned false, and `Echo` paused.
        if queued > DEFAULT_HIGH_WATER {
            stats.pauses += 1;
            let _ = self.paused.send(());
        }
    }

    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        {
            let mut stats = self.stats.borrow_mut();
            stats.drains += 1;
            stats.max_at_drain = stats.max_at_drain.max(conn.queued_bytes());
        }
        self.echo.on_drain(conn);
    }
}

#[test]
fn a_client_that_reads_slowly_keeps_the_server_queue_under_high_water_plus_one_read() {
    // 256 MiB each way: about 0.3 s in a debug build on 2 cores.
    const TOTAL: u64 = 256 << 20;
    within(LIMIT, || {
        let mut lp = new_loop();
        let stats = Rc::new(RefCell::new(QueueStats::default()));
        let accepted = Accepted::default();
        let finish = Finish::after(1);
        let (paused_tx, paused_rx) = mpsc::channel();
        let (a, f, s) = (accepted.clone(), finish.clone(), stats.clone());
        let listener = lp
            .listen_tcp(localhost(), move |stream| {
                let handler =
                    SampledEcho { echo: echo::Echo, stats: s.clone(), paused: paused_tx.clone() };
                a.observe(stream, handler).then_finish(&f)
            })
            .unwrap();
        finish.close_also(listener);
        let addr = lp.local_addr(listener).unwrap();

        let client = spawn_client(&lp, "client", move || {
            let pattern = Pattern::new(5);
            let mut socket = connect(addr);
            let mut writer = socket.try_clone().unwrap();
            let writing = thread::spawn(move || {
                let pattern = Pattern::new(5);
                let mut chunk = vec![0; 1 << 20];
                let mut offset = 0;
                while offset < TOTAL {
                    let n = chunk.len().min((TOTAL - offset) as usize);
                    pattern.fill(offset, &mut chunk[..n]);
                    writer.write_all(&chunk[..n]).unwrap();
                    offset += n as u64;
                }
                writer.shutdown(Shutdown::Write).unwrap();
            });
            // Read in small bites, and at a few points stop reading altogether until the
            // server has paused since the last such stop: backpressure must engage, whatever
            // the kernel buffers can absorb. (Only early on: near the end the rest of the data
            // may fit in the kernel buffers, and the server would have no reason to pause.)
            let stalls = [8u64 << 20, 40 << 20, 72 << 20];
            let mut checker = Checker::new(pattern);
            let mut buf = vec![0; 16 * 1024];
            let mut stalled = 0;
            loop {
                if stalls.get(stalled).is_some_and(|&at| checker.offset >= at) {
                    stalled += 1;
                    let mut paused = false;
                    while paused_rx.try_recv().is_ok() {
                        paused = true;
                    }
                    if !paused {
                        paused_rx
                            .recv_timeout(IO_TIMEOUT)
                            .expect("the server never paused for a client that stopped reading");
                    }
                }
                let n = socket.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                checker.check(&buf[..n]);
            }
            writing.join().unwrap();
            checker.offset
        });

        lp.run().unwrap();
        let received = client.join().unwrap();
        assert_eq!(received, TOTAL, "every byte came back");
        let stats = stats.borrow();
        assert!(stats.pauses >= 3, "backpressure engaged at every stall: {stats:?}");
        assert!(stats.drains >= 3, "{stats:?}");
        assert!(
            stats.max_after_data <= DEFAULT_HIGH_WATER + READ_BUFFER_SIZE,
            "the queue stays within the high watermark plus one read: {stats:?}"
        );
        assert!(stats.max_at_drain <= DEFAULT_LOW_WATER, "{stats:?}");
        let conns = accepted.take();
        assert_eq!(conns[0].1.data_bytes() as u64, TOTAL);
        assert_eq!(conns[0].1.closes(), [None]);
    });
}

// ---------------------------------------------------------------------------------------------
// 5. Read fairness
// ---------------------------------------------------------------------------------------------

/// What the fairness scenario's loop saw, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// A prepare phase: the pending phase of this iteration is over, its poll phase is next.
    Prepare,
    /// A check phase: this iteration's poll phase is over.
    Check,
    /// The streamer's stream read this many bytes.
    Streamed(usize),
    /// The ping-pong stream read a ping.
    Ping,
}

/// The streamer's server side: checks every byte, and does per-byte work (an FNV-1a hash, as
/// a parser would) so that it is slower than the client writing.
struct SlowSink {
    log: Rc<RefCell<Vec<Seen>>>,
    checker: Checker,
    hash: u64,
    /// Set in `on_close`: (bytes read, their hash).
    done: Rc<Cell<Option<(u64, u64)>>>,
}

impl StreamHandler for SlowSink {
    fn on_data(&mut self, _: &mut Conn<'_>, data: &[u8]) {
        self.log.borrow_mut().push(Seen::Streamed(data.len()));
        self.checker.check(data);
        for &byte in data {
            self.hash = (self.hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
        }
    }

    fn on_close(&mut self, _: &mut Core, _: Stream, error: Option<io::Error>) {
        assert!(error.is_none(), "{error:?}");
        self.done.set(Some((self.checker.offset, self.hash)));
    }
}

/// The ping-pong stream's server side: echoes, logging each ping.
struct PingServer {
    log: Rc<RefCell<Vec<Seen>>>,
}

impl StreamHandler for PingServer {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        assert_eq!(data.len(), PING.len(), "one ping at a time");
        self.log.borrow_mut().push(Seen::Ping);
        conn.write(data);
    }
}

const PING: &[u8; 8] = b"ping\x00\x00\x00\x00";
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x100_0000_01b3;

/// The ping-pong client, on the server's loop: a ping, its pong, the next ping, until the
/// streamer is done. Tells the streamer thread to start after the first round trip.
struct Pinger {
    rounds: Rc<Cell<usize>>,
    start_streamer: Option<mpsc::Sender<()>>,
    streamer_done: Rc<Cell<Option<(u64, u64)>>>,
    pending: usize,
}

impl StreamHandler for Pinger {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.write(PING);
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        self.pending += data.len();
        assert!(self.pending <= PING.len());
        if self.pending < PING.len() {
            return;
        }
        self.pending = 0;
        self.rounds.set(self.rounds.get() + 1);
        if let Some(start) = self.start_streamer.take() {
            start.send(()).unwrap();
        }
        if self.streamer_done.get().is_some() {
            conn.close();
        } else {
            conn.write(PING);
        }
    }
}

/// One client streams 32 MiB at full speed to a slow sink while another plays ping-pong with
/// small messages, on one loop. Returns the loop's log and the number of round trips.
///
/// The streamer is a Unix-domain client writing its whole payload with one call: the kernel
/// holds several hundred KiB for the server at a time, more than one budget, and refills it as
/// the server takes it. Over loopback TCP the receive window is often smaller than one read
/// buffer, so a short read would end the read loop with or without a budget, and the tests
/// could not tell. The ping-pong client is a reactor stream on the same loop, so its round
/// trips take a fixed number of iterations.
fn fairness_scenario() -> (Vec<Seen>, usize) {
    const STREAMED: u64 = 32 << 20;
    let mut lp = new_loop();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let prepare = lp.prepare(move |_, _| l.borrow_mut().push(Seen::Prepare));
    let l = log.clone();
    let check = lp.check(move |_, _| l.borrow_mut().push(Seen::Check));
    lp.unref(prepare).unwrap();
    lp.unref(check).unwrap();

    let finish = Finish::after(2);
    let sink_done = Rc::new(Cell::new(None));
    let (l, f, d) = (log.clone(), finish.clone(), sink_done.clone());
    let sink_path = temp_socket_path("sink");
    let sink_listener = lp
        .listen_unix(&sink_path, move |_| {
            let sink = SlowSink {
                log: l.clone(),
                checker: Checker::new(Pattern::new(6)),
                hash: FNV_OFFSET,
                done: d.clone(),
            };
            Events::default().wrap(sink).then_finish(&f)
        })
        .unwrap();
    let (l, f) = (log.clone(), finish.clone());
    let ping_listener = lp
        .listen_tcp(localhost(), move |_| {
            Events::default().wrap(PingServer { log: l.clone() }).then_finish(&f)
        })
        .unwrap();
    for handle in [sink_listener.id(), ping_listener.id(), prepare.id(), check.id()] {
        finish.close_also(handle);
    }
    let ping_addr = lp.local_addr(ping_listener).unwrap();

    let (start_tx, start_rx) = mpsc::channel();
    let rounds = Rc::new(Cell::new(0));
    let pinger = Pinger {
        rounds: rounds.clone(),
        start_streamer: Some(start_tx),
        streamer_done: sink_done.clone(),
        pending: 0,
    };
    lp.connect_tcp(ping_addr, pinger).unwrap();
    let streamer = spawn_client(&lp, "streamer", move || {
        // Made in advance, and written with one call: the writer never stops to prepare
        // more.
        let mut payload = vec![0; STREAMED as usize];
        Pattern::new(6).fill(0, &mut payload);
        start_rx.recv_timeout(IO_TIMEOUT).unwrap();
        let mut socket = UnixStream::connect(&sink_path).unwrap();
        socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        socket.write_all(&payload).unwrap();
        socket.shutdown(Shutdown::Write).unwrap();
        read_to_eof(&mut socket).len()
    });

    lp.run().unwrap();
    assert_eq!(streamer.join().unwrap(), 0);
    let (received, _hash) = sink_done.get().expect("the sink closed");
    assert_eq!(received, STREAMED, "every byte arrived (and was checked)");
    let log = log.borrow().clone();
    (log, rounds.get())
}

#[test]
fn a_fast_sender_cannot_starve_a_ping_pong_connection() {
    within(LIMIT, || {
        let (log, rounds) = fairness_scenario();

        // One read() of a stream (a run of its reads with no phase in between: the pending
        // phase and the poll phase read a stream at most once each) stops once it has read the
        // budget, and the others get their turn. Without the budget it would read on until the
        // socket ran dry: here, hundreds of KiB at a time.
        let mut calls = Vec::new();
        for run in log.split(|seen| !matches!(seen, Seen::Streamed(_))) {
            calls.push(run.iter().map(streamed).sum::<usize>());
        }
        let longest = calls.iter().copied().max().unwrap();
        assert!(longest <= BUDGET_REACHED, "one read of the stream took {longest} bytes");
        // The scenario does what it is meant to: every read fills the 64 KiB buffer (the socket
        // is never short until the end), so the budget stops reads at exactly READ_BUDGET.
        assert!(calls.contains(&READ_BUDGET), "the budget was never reached: {calls:?}");

        // So the ping-pong connection is served while the stream is busy: round trips
        // complete between the first and the last read of the stream (one every two
        // iterations).
        let first = log.iter().position(|seen| matches!(seen, Seen::Streamed(_))).unwrap();
        let last = log.iter().rposition(|seen| matches!(seen, Seen::Streamed(_))).unwrap();
        let pings = log[first..last].iter().filter(|&&seen| seen == Seen::Ping).count();
        let reads = log[first..=last].iter().filter(|seen| matches!(seen, Seen::Streamed(_)));
        let reads = reads.count();
        assert!(pings >= 10, "only {pings} pings were served during {reads} reads of the stream");
        assert!(rounds > pings);
    });
}

#[test]
fn a_stream_is_read_at_most_read_budget_bytes_per_iteration() {
    // stream.rs: the loop reads "until READ_BUDGET bytes have been read for this stream in this
    // iteration"; docs/streams.md: "a client streaming at full speed gets at most 256 KiB read
    // per iteration, then waits its turn behind every other ready connection".
    within(LIMIT, || {
        let (log, _) = fairness_scenario();
        // An iteration's reads: from one check phase to the next (closing, timers, pending,
        // idle, prepare, poll), split at its prepare phase into pending and poll.
        let worst = log
            .split(|&seen| seen == Seen::Check)
            .map(|iteration| {
                let mut phases = iteration.split(|&seen| seen == Seen::Prepare);
                let pending: usize = phases.next().unwrap_or(&[]).iter().map(streamed).sum();
                let poll: usize = phases.flatten().map(streamed).sum();
                (pending, poll)
            })
            .max_by_key(|&(pending, poll)| pending + poll)
            .unwrap();
        assert!(
            worst.0 + worst.1 <= BUDGET_REACHED,
            "one iteration read {} bytes of one stream ({} in its pending phase, {} more in its \
             poll phase); the budget is {READ_BUDGET}",
            worst.0 + worst.1,
            worst.0,
            worst.1
        );
    });
}

/// The most a stream can read before its budget stops it: reading stops once READ_BUDGET bytes
/// have been read, and the read that gets there may take up to a whole buffer.
const BUDGET_REACHED: usize = READ_BUDGET + READ_BUFFER_SIZE - 1;

/// The streamer's bytes in one log entry.
fn streamed(seen: &Seen) -> usize {
    if let Seen::Streamed(n) = seen { *n } else { 0 }
}

// ---------------------------------------------------------------------------------------------
// 6. Refused connect
// ---------------------------------------------------------------------------------------------

#[test]
fn a_refused_connect_reports_connection_refused_to_on_close_and_never_opens() {
    within(LIMIT, || {
        // A port that was free a moment ago, and on which nothing listens any more.
        let addr = std::net::TcpListener::bind(localhost()).unwrap().local_addr().unwrap();
        let mut lp = new_loop();
        let events = Events::default();
        let stream = lp.connect_tcp(addr, events.wrap(Discard)).unwrap();
        assert!(events.get().is_empty(), "the failure is never reported inside connect_tcp");
        lp.run().unwrap();
        assert_eq!(events.get(), [Ev::Close(Some(ErrorKind::ConnectionRefused))]);
        assert!(matches!(lp.write(stream, b"x"), Err(Error::Closed(id)) if id == stream.id()));
    });
}

#[test]
fn a_failed_connect_unix_reports_not_found_through_on_close_only() {
    within(LIMIT, || {
        let path = temp_socket_path("missing");
        let mut lp = new_loop();
        let events = Events::default();
        lp.connect_unix(&path, events.wrap(Discard)).unwrap();
        assert!(events.get().is_empty(), "not reported from inside connect_unix");
        lp.run().unwrap();
        assert_eq!(events.get(), [Ev::Close(Some(ErrorKind::NotFound))]);
    });
}

// ---------------------------------------------------------------------------------------------
// 7. Unix-domain streams
// ---------------------------------------------------------------------------------------------

#[test]
fn unix_domain_streams_echo_and_the_socket_file_goes_with_the_listener() {
    within(LIMIT, || {
        let path = temp_socket_path("echo");
        let mut lp = new_loop();
        let accepted = Accepted::default();
        let finish = Finish::after(2);
        let (a, f) = (accepted.clone(), finish.clone());
        let listener = lp
            .listen_unix(&path, move |stream| a.observe(stream, echo::Echo).then_finish(&f))
            .unwrap();
        finish.close_also(listener);
        assert!(path.exists());
        // The path is taken while the listener lives.
        match lp.listen_unix(&path, |_| Discard) {
            Err(Error::Io(err)) => assert_eq!(err.kind(), ErrorKind::AddrInUse),
            other => panic!("a second listener on the same path: {other:?}"),
        }
        assert!(lp.local_addr(listener).is_err(), "a Unix listener has no socket address");

        // A blocking client on a thread.
        let payload = Rng::new(7).bytes(2 << 20);
        let p = path.clone();
        let client = spawn_client(&lp, "client", move || {
            let mut socket = UnixStream::connect(&p).unwrap();
            socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
            let mut writer = socket.try_clone().unwrap();
            let writing = thread::spawn(move || {
                writer.write_all(&payload).unwrap();
                writer.shutdown(Shutdown::Write).unwrap();
                payload
            });
            let echoed = read_to_eof(&mut socket);
            assert_same_bytes(&echoed, &writing.join().unwrap(), "the Unix-domain echo");
        });
        // And a reactor client on the same loop.
        let collected = Rc::new(RefCell::new(Vec::new()));
        let reactor_client = Events::default();
        let stream = lp
            .connect_unix(
                &path,
                reactor_client.wrap(SendThenShutdown::new(b"over unix", collected.clone())),
            )
            .unwrap();
        assert!(lp.peer_addr(stream).is_err(), "no socket address on a Unix stream");
        assert!(lp.set_nodelay(stream, true).is_err());
        assert!(lp.set_keepalive(stream, Some(Duration::from_secs(60))).is_err());

        lp.run().unwrap();
        client.join().unwrap();
        assert_eq!(collected.borrow().as_slice(), b"over unix");
        assert_eq!(reactor_client.closes(), [None]);
        for (_, events) in accepted.take() {
            assert_eq!(events.closes(), [None]);
        }
        assert!(!path.exists(), "the socket file is removed once the listener is closed");
        // And the path can be listened on again.
        let again = lp.listen_unix(&path, |_| Discard).unwrap();
        lp.close(again).unwrap();
        lp.run().unwrap();
        assert!(!path.exists());
    });
}

// ---------------------------------------------------------------------------------------------
// 8. Graceful close flushes
// ---------------------------------------------------------------------------------------------

/// In `on_open`, writes a [`Pattern`] stream in 1 MiB pieces until at least `min` bytes are
/// written and `write` has said `false`, so that output is queued whatever the kernel buffers
/// hold (on loopback they take about 4 MB of an unread connection); then closes, and records
/// what the calls returned. Tells the client (if any) when to start reading.
struct SendAndClose {
    min: u64,
    seed: u64,
    sent: Rc<Cell<u64>>,
    log: Rc<RefCell<Vec<String>>>,
    go: Option<mpsc::Sender<()>>,
}

impl StreamHandler for SendAndClose {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let id = conn.id();
        let closed =
            |result: reactor::Result<()>| matches!(result, Err(Error::Closed(x)) if x == id.id());
        let pattern = Pattern::new(self.seed);
        let mut chunk = vec![0; 1 << 20];
        let mut offset = 0;
        loop {
            pattern.fill(offset, &mut chunk);
            let below = conn.write(&chunk);
            offset += chunk.len() as u64;
            if offset >= self.min && !below {
                break;
            }
        }
        self.sent.set(offset);
        let mut log = self.log.borrow_mut();
        log.push(format!("queued past high water: {}", conn.queued_bytes() > DEFAULT_HIGH_WATER));
        let l = self.log.clone();
        conn.core()
            .close_with(id, move |_| l.borrow_mut().push("close_with callback".into()))
            .unwrap();
        log.push(format!("Conn::write while closing: {}", conn.write(b"late")));
        log.push(format!(
            "Core::write while closing: Closed {}",
            closed(conn.core().write(id, b"late").map(drop))
        ));
        log.push(format!("close again: Closed {}", closed(conn.core().close(id))));
        log.push(format!("pause while closing: Closed {}", closed(conn.core().pause(id))));
        log.push(format!("queued while closing: {}", conn.queued_bytes()));
        if let Some(go) = &self.go {
            go.send(()).unwrap();
        }
    }

    fn on_data(&mut self, _: &mut Conn<'_>, _: &[u8]) {
        self.log.borrow_mut().push("on_data after close".into());
    }

    fn on_close(&mut self, _: &mut Core, _: Stream, error: Option<io::Error>) {
        self.log.borrow_mut().push(format!("on_close: {:?}", error.map(|e| e.kind())));
    }
}

/// A server that writes at least 4 MiB in `on_open` and then closes gracefully, with a client
/// that first sends `request` (if any), then waits until the server has closed before reading.
/// Returns the server's log, the bytes it sent, and what the client got: (bytes, how it ended).
fn graceful_close_case(
    seed: u64,
    request: Option<&'static [u8]>,
) -> (Vec<String>, u64, (u64, Result<(), ErrorKind>)) {
    let mut lp = new_loop();
    let (log, sent) = (Rc::new(RefCell::new(Vec::new())), Rc::new(Cell::new(0)));
    let finish = Finish::after(1);
    let (go_tx, go_rx) = mpsc::channel();
    let (l, s, f) = (log.clone(), sent.clone(), finish.clone());
    let listener = lp
        .listen_tcp(localhost(), move |_| {
            let (log, sent, go) = (l.clone(), s.clone(), Some(go_tx.clone()));
            let handler = SendAndClose { min: 4 << 20, seed, sent, log, go };
            Events::default().wrap(handler).then_finish(&f)
        })
        .unwrap();
    finish.close_also(listener);
    let addr = lp.local_addr(listener).unwrap();
    let client = spawn_client(&lp, "client", move || {
        let mut socket = connect(addr);
        if let Some(request) = request {
            socket.write_all(request).unwrap();
        }
        // Not reading before the server has written and closed.
        go_rx.recv_timeout(IO_TIMEOUT).unwrap();
        read_pattern(&mut socket, seed)
    });
    lp.run().unwrap();
    let received = client.join().unwrap();
    let log = log.borrow().clone();
    (log, sent.get(), received)
}

#[test]
fn a_graceful_close_delivers_all_queued_output_then_eof() {
    within(LIMIT, || {
        let (log, sent, received) = graceful_close_case(8, None);
        assert!(sent >= 4 << 20);
        assert_eq!(received, (sent, Ok(())), "every byte, then EOF");
        assert_eq!(
            log,
            [
                "queued past high water: true", // so the close has to flush
                "Conn::write while closing: false",
                "Core::write while closing: Closed true",
                "close again: Closed true",
                "pause while closing: Closed true",
                "queued while closing: 0",
                // No on_data: a closing stream reads no more.
                "on_close: None",
                "close_with callback",
            ]
        );
    });
}

#[test]
fn a_graceful_close_delivers_all_output_even_if_the_peer_sent_input_that_was_not_read() {
    // The same close, but the client sent a request first, which the server never read (it
    // closed in on_open, and a closing stream reads no more). docs/streams.md promises the
    // peer of a `close()` "every byte, then EOF". Closing a socket that holds unread input
    // makes Linux send a RST instead of a FIN and discard whatever of the output is still in
    // the kernel's send buffer, so the stream must not simply close(2) it.
    within(LIMIT, || {
        let (log, sent, received) = graceful_close_case(14, Some(b"GET / HTTP/1.1\r\n\r\n"));
        assert_eq!(log[0], "queued past high water: true");
        assert_eq!(log.last().unwrap(), "close_with callback");
        assert_eq!(received, (sent, Ok(())), "(bytes, end) the peer got: every byte, then EOF");
    });
}

// ---------------------------------------------------------------------------------------------
// 9. The close timeout
// ---------------------------------------------------------------------------------------------

#[test]
fn a_graceful_close_to_a_peer_that_does_not_read_times_out() {
    within(LIMIT, || {
        let mut lp = strict(util::virtual_loop());
        let (log, sent) = (Rc::new(RefCell::new(Vec::new())), Rc::new(Cell::new(0)));
        let finish = Finish::after(1);
        let (l, s, f) = (log.clone(), sent.clone(), finish.clone());
        let events = Events::default();
        let e = events.clone();
        let listener = lp
            .listen_tcp(localhost(), move |_| {
                let (log, sent) = (l.clone(), s.clone());
                let handler = SendAndClose { min: 16 << 20, seed: 9, sent, log, go: None };
                e.wrap(handler).then_finish(&f)
            })
            .unwrap();
        finish.close_also(listener);
        let addr = lp.local_addr(listener).unwrap();
        // Connected, and not reading until the server has given up.
        let mut socket = connect(addr);

        let (start, real_start) = (lp.now(), Instant::now());
        lp.run().unwrap();
        assert_eq!(events.closes(), [Some(ErrorKind::TimedOut)]);
        assert_eq!(events.get(), [Ev::Open, Ev::Close(Some(ErrorKind::TimedOut))]);
        assert!(lp.now() - start >= CLOSE_TIMEOUT, "the virtual clock jumped to the timeout");
        assert!(real_start.elapsed() < CLOSE_TIMEOUT / 3, "without waiting for it");
        let log = log.borrow();
        assert_eq!(log.first().map(String::as_str), Some("queued past high water: true"));
        assert_eq!(log[log.len() - 2..], ["on_close: Some(TimedOut)", "close_with callback"]);

        // What the kernel had taken before the close still arrives (checked byte by byte),
        // then a clean EOF: the socket was closed, not reset.
        let (received, end) = read_pattern(&mut socket, 9);
        assert_eq!(end, Ok(()));
        assert!(received > 0 && received < sent.get(), "{received} of {} bytes", sent.get());
    });
}

// ---------------------------------------------------------------------------------------------
// 10. Pause and resume
// ---------------------------------------------------------------------------------------------

/// Pauses itself in `on_open`; records what it reads.
struct PausedAtOpen {
    id: Rc<Cell<Option<Stream>>>,
    data: Rc<RefCell<Vec<u8>>>,
    calls: Rc<Cell<usize>>,
}

impl StreamHandler for PausedAtOpen {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.pause();
        self.id.set(Some(conn.id()));
    }

    fn on_data(&mut self, _: &mut Conn<'_>, data: &[u8]) {
        self.calls.set(self.calls.get() + 1);
        self.data.borrow_mut().extend_from_slice(data);
    }

    fn on_eof(&mut self, _: &mut Conn<'_>) {}
}

#[test]
fn while_paused_no_on_data_runs_and_resume_delivers_what_arrived_meanwhile() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let id = Rc::new(Cell::new(None));
        let data = Rc::new(RefCell::new(Vec::new()));
        let calls = Rc::new(Cell::new(0));
        let (i, d, c) = (id.clone(), data.clone(), calls.clone());
        let listener = lp
            .listen_tcp(localhost(), move |_| PausedAtOpen {
                id: i.clone(),
                data: d.clone(),
                calls: c.clone(),
            })
            .unwrap();
        let addr = lp.local_addr(listener).unwrap();
        let (send, to_client) = mpsc::channel::<Vec<u8>>();
        let (sent, from_client) = mpsc::channel::<()>();
        let client = spawn_client(&lp, "client", move || {
            let mut socket = connect(addr);
            for message in to_client {
                socket.write_all(&message).unwrap();
                sent.send(()).unwrap();
            }
        });

        let i = id.clone();
        run_until(&mut lp, move || i.get().is_some());
        let stream = id.get().unwrap();
        // Take the new stream's first (writable) edge, so that nothing else is pending.
        for _ in 0..3 {
            lp.run_nowait().unwrap();
        }
        send.send(b"while paused".to_vec()).unwrap();
        from_client.recv_timeout(IO_TIMEOUT).unwrap();
        // Blocks until the readable edge of that data arrives, and handles it: the stream is
        // paused, so nothing is read and the edge is spent.
        lp.run_once().unwrap();
        for _ in 0..3 {
            lp.run_nowait().unwrap();
        }
        assert_eq!(calls.get(), 0, "no on_data while paused");

        // No new edge will come: resume must remember that data is waiting.
        lp.resume(stream).unwrap();
        lp.run_nowait().unwrap();
        assert_eq!(data.borrow().as_slice(), b"while paused");
        assert_eq!(calls.get(), 1);

        // And reading goes on as usual after that.
        send.send(b" and after".to_vec()).unwrap();
        from_client.recv_timeout(IO_TIMEOUT).unwrap();
        let d = data.clone();
        run_until(&mut lp, move || d.borrow().len() == 22);
        assert_eq!(data.borrow().as_slice(), b"while paused and after");
        drop(send);
        client.join().unwrap();
        lp.close(listener).unwrap();
        lp.close(stream).unwrap();
        lp.run().unwrap();
    });
}

/// Pauses in every `on_data`: exactly one chunk per `resume`.
struct PauseEveryRead {
    checker: Checker,
    calls: Rc<Cell<usize>>,
    eof: Rc<Cell<bool>>,
    id: Rc<Cell<Option<Stream>>>,
    received: Rc<Cell<u64>>,
}

impl StreamHandler for PauseEveryRead {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.id.set(Some(conn.id()));
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        self.calls.set(self.calls.get() + 1);
        self.checker.check(data);
        self.received.set(self.checker.offset);
        conn.pause();
    }

    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        self.eof.set(true);
        conn.close();
    }
}

#[test]
fn pausing_inside_on_data_stops_reading_at_once_and_resume_reads_on_up_to_the_eof() {
    const TOTAL: u64 = 4 << 20;
    within(LIMIT, || {
        let mut lp = new_loop();
        let calls = Rc::new(Cell::new(0));
        let eof = Rc::new(Cell::new(false));
        let id = Rc::new(Cell::new(None));
        let received = Rc::new(Cell::new(0));
        let (c, e, i, r) = (calls.clone(), eof.clone(), id.clone(), received.clone());
        let listener = lp
            .listen_tcp(localhost(), move |_| PauseEveryRead {
                checker: Checker::new(Pattern::new(10)),
                calls: c.clone(),
                eof: e.clone(),
                id: i.clone(),
                received: r.clone(),
            })
            .unwrap();
        let addr = lp.local_addr(listener).unwrap();
        // The client writes everything and its FIN at once: data and EOF arrive while the
        // stream is paused, most of the time.
        let client = spawn_client(&lp, "client", move || {
            let mut socket = connect(addr);
            let mut data = vec![0; TOTAL as usize];
            Pattern::new(10).fill(0, &mut data);
            socket.write_all(&data).unwrap();
            socket.shutdown(Shutdown::Write).unwrap();
            read_to_eof(&mut socket).len()
        });

        let c = calls.clone();
        run_until(&mut lp, move || c.get() == 1);
        let stream = id.get().unwrap();
        let mut resumes = 0;
        while !eof.get() {
            let before = calls.get();
            // Nothing more is read while paused, however many iterations run.
            lp.run_nowait().unwrap();
            assert_eq!(calls.get(), before, "on_data ran on a paused stream");
            lp.resume(stream).unwrap();
            resumes += 1;
            let (c, e) = (calls.clone(), eof.clone());
            run_until(&mut lp, move || c.get() > before || e.get());
            assert!(calls.get() <= before + 1, "more than one on_data after one resume");
        }
        assert_eq!(calls.get(), resumes, "one read per resume, then the EOF");
        lp.close(listener).unwrap();
        lp.run().unwrap();
        assert_eq!(client.join().unwrap(), 0);
        assert_eq!(received.get(), TOTAL);
        assert!(calls.get() as u64 >= TOTAL / READ_BUFFER_SIZE as u64);
    });
}

// ---------------------------------------------------------------------------------------------
// 11. Shutdown
// ---------------------------------------------------------------------------------------------

/// Writes a large greeting and shuts down in `on_open`; reads on after that; does not close on
/// the peer's EOF (so the stream must close by itself).
struct GreetAndShutDown {
    greeting: Rc<Vec<u8>>,
    log: Rc<RefCell<Vec<String>>>,
    go: mpsc::Sender<()>,
}

impl StreamHandler for GreetAndShutDown {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let id = conn.id();
        let mut log = self.log.borrow_mut();
        log.push(format!("write: {}", conn.write(&self.greeting)));
        conn.shutdown();
        let err = conn.core().write(id, b"late").unwrap_err();
        log.push(match err {
            Error::Io(err) => format!("write after shutdown: {:?}", err.kind()),
            other => format!("write after shutdown: {other:?}"),
        });
        log.push(format!("Conn::write after shutdown: {}", conn.write(b"late")));
        log.push(format!("shutdown again: {:?}", conn.core().shutdown(id).is_ok()));
        self.go.send(()).unwrap();
    }

    fn on_data(&mut self, _: &mut Conn<'_>, data: &[u8]) {
        self.log.borrow_mut().push(format!("data: {}", String::from_utf8_lossy(data)));
    }

    fn on_eof(&mut self, _: &mut Conn<'_>) {
        self.log.borrow_mut().push("eof".into());
    }

    fn on_close(&mut self, _: &mut Core, _: Stream, error: Option<io::Error>) {
        self.log.borrow_mut().push(format!("close: {:?}", error.map(|e| e.kind())));
    }
}

#[test]
fn after_shutdown_writes_fail_the_peer_sees_eof_and_reading_goes_on() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let greeting = Rc::new(Rng::new(11).bytes(8 << 20));
        let log = Rc::new(RefCell::new(Vec::new()));
        let finish = Finish::after(1);
        let (go_tx, go_rx) = mpsc::channel();
        let (g, l, f) = (greeting.clone(), log.clone(), finish.clone());
        let listener = lp
            .listen_tcp(localhost(), move |_| {
                let handler =
                    GreetAndShutDown { greeting: g.clone(), log: l.clone(), go: go_tx.clone() };
                Events::default().wrap(handler).then_finish(&f)
            })
            .unwrap();
        finish.close_also(listener);
        let addr = lp.local_addr(listener).unwrap();
        let client = spawn_client(&lp, "client", move || {
            let mut socket = connect(addr);
            // Not reading before the server has written: most of the greeting is queued when
            // the server shuts down.
            go_rx.recv_timeout(IO_TIMEOUT).unwrap();
            // The whole greeting, then the server's FIN.
            let greeting = read_to_eof(&mut socket);
            // Our direction is still open.
            socket.write_all(b"after your FIN").unwrap();
            socket.shutdown(Shutdown::Write).unwrap();
            assert_eq!(socket.read(&mut [0; 16]).unwrap(), 0);
            greeting
        });
        lp.run().unwrap();
        assert_same_bytes(&client.join().unwrap(), &greeting, "the greeting");
        assert_eq!(
            log.borrow().as_slice(),
            [
                "write: false", // 8 MiB: queued past the high watermark at the shutdown
                "write after shutdown: BrokenPipe",
                "Conn::write after shutdown: false",
                "shutdown again: true",
                "data: after your FIN",
                "eof",
                // Both directions finished: the stream closed by itself.
                "close: None",
            ]
        );
    });
}

/// Answers the peer's EOF with a reply and a shutdown, without closing.
struct ReplyOnEof {
    request: Vec<u8>,
}

impl StreamHandler for ReplyOnEof {
    fn on_data(&mut self, _: &mut Conn<'_>, data: &[u8]) {
        self.request.extend_from_slice(data);
    }

    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        let reply = format!("got {} bytes", self.request.len());
        conn.write(reply.as_bytes());
        conn.shutdown();
    }
}

#[test]
fn a_stream_closes_by_itself_once_the_peer_and_we_have_both_shut_down() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let (accepted, addr) = observed_server(&mut lp, 1, || ReplyOnEof { request: Vec::new() });
        let client = spawn_client(&lp, "client", move || {
            let mut socket = connect(addr);
            socket.write_all(&[7; 1000]).unwrap();
            socket.shutdown(Shutdown::Write).unwrap();
            read_to_eof(&mut socket)
        });
        lp.run().unwrap();
        assert_eq!(client.join().unwrap(), b"got 1000 bytes");
        let events = accepted.first_events().unwrap();
        assert_eq!(events.data_bytes(), 1000);
        assert_eq!(events.count(&Ev::Eof), 1);
        assert_eq!(events.get().last(), Some(&Ev::Close(None)));
    });
}

// ---------------------------------------------------------------------------------------------
// 12. Stale ids
// ---------------------------------------------------------------------------------------------

#[test]
fn calls_on_a_closed_and_freed_stream_return_closed_and_never_reach_a_new_stream() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let (accepted, addr) = observed_server(&mut lp, 1, || echo::Echo);
        let client = spawn_client(&lp, "client", move || {
            let mut socket = connect(addr);
            socket.shutdown(Shutdown::Write).unwrap();
            read_to_eof(&mut socket)
        });
        lp.run().unwrap();
        assert!(client.join().unwrap().is_empty());
        let (old, events) = accepted.take().remove(0);
        assert_eq!(events.get(), [Ev::Open, Ev::Eof, Ev::Close(None)]);

        let closed = |result: Result<(), Error>, what: &str| match result {
            Err(Error::Closed(id)) => assert_eq!(id, old.id(), "{what}"),
            other => panic!("{what} on a freed stream: {other:?}"),
        };
        closed(lp.write(old, b"x").map(drop), "write");
        closed(lp.write_vectored(old, &[b"x", b"y"]).map(drop), "write_vectored");
        closed(lp.pause(old), "pause");
        closed(lp.resume(old), "resume");
        closed(lp.shutdown(old), "shutdown");
        closed(lp.abort(old), "abort");
        closed(lp.close(old), "close");
        closed(lp.queued_bytes(old).map(drop), "queued_bytes");
        closed(lp.set_watermarks(old, 10, 5), "set_watermarks");
        closed(lp.set_nodelay(old, true), "set_nodelay");
        closed(lp.set_keepalive(old, None), "set_keepalive");
        closed(lp.peer_addr(old).map(drop), "peer_addr");
        closed(lp.local_addr(old).map(drop), "local_addr");
        assert!(lp.is_closing(old));
        assert!(!lp.is_active(old));

        // A new stream (which may well reuse the slot) is untouched by calls on the old id.
        let new_events = Events::default();
        let collected = Rc::new(RefCell::new(Vec::new()));
        let server = std::net::TcpListener::bind(localhost()).unwrap();
        let peer_addr = server.local_addr().unwrap();
        let new = lp
            .connect_tcp(
                peer_addr,
                new_events.wrap(SendThenShutdown::new(b"new", collected.clone())),
            )
            .unwrap();
        assert_ne!(new.id(), old.id());
        closed(lp.abort(old), "abort");
        closed(lp.close(old), "close");
        let peer = spawn_client(&lp, "peer", move || {
            let (mut socket, _) = server.accept().unwrap();
            socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let got = read_to_eof(&mut socket);
            socket.write_all(&got).unwrap();
        });
        lp.run().unwrap();
        peer.join().unwrap();
        assert_eq!(collected.borrow().as_slice(), b"new");
        assert_eq!(new_events.closes(), [None]);
    });
}

#[test]
fn set_watermarks_rejects_low_above_high_and_stream_options_apply_to_tcp() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let server = std::net::TcpListener::bind(localhost()).unwrap();
        let addr = server.local_addr().unwrap();
        let results = Rc::new(RefCell::new(Vec::new()));
        let r = results.clone();
        let stream = lp
            .connect_tcp(
                addr,
                OnOpen(Discard, move |conn: &mut Conn<'_>| {
                    let id = conn.id();
                    let core = conn.core();
                    let mut r = r.borrow_mut();
                    r.push(match core.set_watermarks(id, 10, 11) {
                        Err(Error::Io(err)) => format!("{:?}", err.kind()),
                        other => format!("{other:?}"),
                    });
                    r.push(format!("{:?}", core.set_watermarks(id, 11, 11).is_ok()));
                    r.push(format!("{:?}", core.set_nodelay(id, false).is_ok()));
                    r.push(format!(
                        "{:?}",
                        core.set_keepalive(id, Some(Duration::from_secs(30))).is_ok()
                    ));
                    r.push(format!("{:?}", core.set_keepalive(id, None).is_ok()));
                    r.push(format!("{:?}", core.peer_addr(id).unwrap() == addr));
                    conn.close();
                }),
            )
            .unwrap();
        let peer = spawn_client(&lp, "peer", move || {
            let (mut socket, _) = server.accept().unwrap();
            socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            read_to_eof(&mut socket)
        });
        lp.run().unwrap();
        assert!(peer.join().unwrap().is_empty());
        assert_eq!(
            results.borrow().as_slice(),
            ["InvalidInput", "true", "true", "true", "true", "true"]
        );
        assert!(matches!(lp.write(stream, b""), Err(Error::Closed(_))));
    });
}

// ---------------------------------------------------------------------------------------------
// 13. Panics
// ---------------------------------------------------------------------------------------------

/// Echoes, and panics on "boom".
struct PanicOnBoom;

impl StreamHandler for PanicOnBoom {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        if data == b"boom" {
            panic!("boom in on_data");
        }
        conn.write(data);
    }
}

#[test]
fn a_panic_in_on_data_closes_only_that_stream_and_is_reported_as_a_stream_panic() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let reports = Rc::new(RefCell::new(Vec::new()));
        let r = reports.clone();
        lp.set_panic_hook(move |report| {
            r.borrow_mut().push((
                report.kind(),
                report.handle(),
                report.message().to_owned(),
                report.site().file(),
                report.in_close_callback(),
            ));
        });
        let (accepted, addr) = observed_server(&mut lp, 2, || PanicOnBoom);
        let client = spawn_client(&lp, "client", move || {
            let mut boom = connect(addr);
            boom.write_all(b"boom").unwrap();
            // The panic closes the server's side: gracefully, and it had read all we sent.
            let after_boom = boom.read(&mut [0; 16]).map_err(|e| e.kind());
            let mut fine = connect(addr);
            fine.write_all(b"fine").unwrap();
            let mut echo = [0; 4];
            fine.read_exact(&mut echo).unwrap();
            fine.shutdown(Shutdown::Write).unwrap();
            (after_boom, echo, read_to_eof(&mut fine).len())
        });
        lp.run().unwrap();
        let (after_boom, echo, rest) = client.join().unwrap();
        assert_eq!(after_boom, Ok(0), "the client of the panicking stream sees an EOF");
        assert_eq!((&echo, rest), (b"fine", 0));
        let conns = accepted.take();
        assert_eq!(conns.len(), 2);
        let (boom_stream, boom_events) = &conns[0];
        assert_eq!(boom_events.get(), [Ev::Open, Ev::Data(4), Ev::Close(None)]);
        assert_eq!(conns[1].1.count(&Ev::Eof), 1);
        assert_eq!(conns[1].1.closes(), [None]);
        assert_eq!(
            reports.borrow().as_slice(),
            [("stream", Some(boom_stream.id()), "boom in on_data".to_owned(), FILE, false)]
        );
    });
}

// ---------------------------------------------------------------------------------------------
// 14. Pipelining
// ---------------------------------------------------------------------------------------------

/// A line protocol: answers every `req N\n` with `res N\n`, one `write` per line in even reads,
/// one `write_vectored` per 16 lines in odd reads; pauses on `false` like `Echo`. It starts
/// with a large banner, so that the replies go through the write queue behind it, and tells the
/// client to start reading once its first replies are queued.
struct LineServer {
    banner: u64,
    partial: Vec<u8>,
    reads: usize,
    queued_at_first_reply: Rc<Cell<usize>>,
    go: Option<mpsc::Sender<()>>,
}

impl StreamHandler for LineServer {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let mut banner = vec![0; self.banner as usize];
        Pattern::new(15).fill(0, &mut banner);
        conn.write(&banner);
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        self.partial.extend_from_slice(data);
        let complete = self.partial.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let replies: Vec<Vec<u8>> = self.partial[..complete]
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| {
                let n = line.strip_prefix(b"req ").expect("a request line");
                [&b"res "[..], n, b"\n"].concat()
            })
            .collect();
        self.partial.drain(..complete);
        self.reads += 1;
        if self.reads == 1 {
            self.queued_at_first_reply.set(conn.queued_bytes());
        }
        let mut below = true;
        if self.reads % 2 == 0 {
            for reply in &replies {
                below &= conn.write(reply);
            }
        } else {
            for group in replies.chunks(16) {
                let bufs: Vec<&[u8]> = group.iter().map(Vec::as_slice).collect();
                below &= conn.write_vectored(&bufs);
            }
        }
        if let Some(go) = self.go.take() {
            go.send(()).unwrap();
        }
        if !below {
            conn.pause();
        }
    }

    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        conn.resume();
    }
}

#[test]
fn pipelined_small_writes_arrive_in_order() {
    const LINES: usize = 30_000;
    const BANNER: u64 = 16 << 20; // more than the kernel buffers take: the rest is queued
    within(LIMIT, || {
        let mut lp = new_loop();
        let accepted = Accepted::default();
        let finish = Finish::after(1);
        let queued = Rc::new(Cell::new(0));
        let (go_tx, go_rx) = mpsc::channel();
        let (a, f, q) = (accepted.clone(), finish.clone(), queued.clone());
        let listener = lp
            .listen_tcp(localhost(), move |stream| {
                let server = LineServer {
                    banner: BANNER,
                    partial: Vec::new(),
                    reads: 0,
                    queued_at_first_reply: q.clone(),
                    go: Some(go_tx.clone()),
                };
                a.observe(stream, server).then_finish(&f)
            })
            .unwrap();
        finish.close_also(listener);
        let addr = lp.local_addr(listener).unwrap();
        let client = spawn_client(&lp, "client", move || {
            let mut socket = connect(addr);
            let requests: Vec<u8> =
                (0..LINES).flat_map(|i| format!("req {i}\n").into_bytes()).collect();
            let mut writer = socket.try_clone().unwrap();
            // All requests in one write: the server gets them in 64 KiB reads, cut mid-line.
            let writing = thread::spawn(move || {
                writer.write_all(&requests).unwrap();
                writer.shutdown(Shutdown::Write).unwrap();
            });
            go_rx.recv_timeout(IO_TIMEOUT).unwrap();
            let mut banner = vec![0; BANNER as usize];
            socket.read_exact(&mut banner).unwrap();
            Checker::new(Pattern::new(15)).check(&banner);
            let replies = read_to_eof(&mut socket);
            writing.join().unwrap();
            replies
        });
        lp.run().unwrap();
        let replies = client.join().unwrap();
        let want: Vec<u8> = (0..LINES).flat_map(|i| format!("res {i}\n").into_bytes()).collect();
        assert_same_bytes(&replies, &want, "the replies");
        assert!(queued.get() > 0, "the replies were queued behind the banner");
        assert_eq!(accepted.first_events().unwrap().closes(), [None]);
    });
}

/// Answers each request with `count` numbered lines in one `write_vectored`, then shuts down.
struct VectoredLines {
    count: usize,
}

impl StreamHandler for VectoredLines {
    fn on_data(&mut self, conn: &mut Conn<'_>, _: &[u8]) {
        let lines: Vec<String> = (0..self.count).map(|i| format!("{i:03}\n")).collect();
        let bufs: Vec<&[u8]> = lines.iter().map(|line| line.as_bytes()).collect();
        assert!(conn.write_vectored(&bufs), "400 bytes are far below the high watermark");
        conn.shutdown();
    }
}

#[test]
fn one_write_vectored_of_more_buffers_than_one_writev_takes_is_delivered_in_full() {
    // 100 buffers of 4 bytes, written in answer to a request: one writev takes at most 64
    // buffers (the loop's MAX_IOVECS), and the kernel takes all of them. The other 36 must not
    // wait for a writable edge: none will come, since the socket never filled up. (Written in
    // on_open they would get away with it: a new stream's registration raises a writable event.)
    const LINES: usize = 100;
    within(LIMIT, || {
        let mut lp = new_loop();
        let finish = Finish::after(1);
        let f = finish.clone();
        let listener = lp
            .listen_tcp(localhost(), move |_| {
                Events::default().wrap(VectoredLines { count: LINES }).then_finish(&f)
            })
            .unwrap();
        finish.close_also(listener);
        let addr = lp.local_addr(listener).unwrap();
        let client = spawn_client(&lp, "client", move || {
            let mut socket = connect(addr);
            socket.write_all(b"lines, please\n").unwrap();
            // (Stays open: the server's EOF must come from its own shutdown.)
            read_until_end(&mut socket)
        });
        lp.run().unwrap();
        let (received, end) = client.join().unwrap();
        let want: String = (0..LINES).map(|i| format!("{i:03}\n")).collect();
        assert!(
            received.len() == want.len() && end.is_ok(),
            "the client got {} of {} bytes, then {end:?} instead of an EOF",
            received.len(),
            want.len()
        );
        assert_same_bytes(&received, want.as_bytes(), "the lines");
    });
}

// ---------------------------------------------------------------------------------------------
// More of the documented contract
// ---------------------------------------------------------------------------------------------

#[test]
fn writes_and_a_shutdown_made_before_the_connect_completes_are_delivered_after_on_open() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let server = std::net::TcpListener::bind(localhost()).unwrap();
        let addr = server.local_addr().unwrap();
        let events = Events::default();
        let collected = Rc::new(RefCell::new(Vec::new()));
        let stream = lp.connect_tcp(addr, events.wrap(Collect(collected.clone()))).unwrap();
        let payload = Rng::new(12).bytes(1 << 20);
        assert!(lp.write(stream, &payload[..1000]).unwrap(), "queued: below the watermark");
        assert!(!lp.write(stream, &payload[1000..]).unwrap(), "queued: past the watermark");
        assert_eq!(lp.queued_bytes(stream).unwrap(), payload.len());
        lp.shutdown(stream).unwrap();
        assert!(events.get().is_empty());
        let peer = spawn_client(&lp, "peer", move || {
            let (mut socket, _) = server.accept().unwrap();
            socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let got = read_to_eof(&mut socket);
            socket.write_all(b"thanks").unwrap();
            got
        });
        lp.run().unwrap();
        assert_same_bytes(&peer.join().unwrap(), &payload, "what was written while connecting");
        assert_eq!(collected.borrow().as_slice(), b"thanks");
        let got = events.get();
        assert_eq!(got.first(), Some(&Ev::Open));
        // The queue went past the high watermark before the connect, so an on_drain is owed.
        assert_eq!(events.count(&Ev::Drain), 1, "{got:?}");
        // Our FIN was sent, then the peer's EOF: the default on_eof closes.
        assert_eq!(got[got.len() - 2..], [Ev::Eof, Ev::Close(None)]);
    });
}

#[test]
fn closing_a_connecting_stream_runs_only_its_close_callbacks_and_still_flushes() {
    // close.rs: "`close` stops the handle at once ..., so none of its callbacks runs after
    // `close` returns, except the close callbacks." A stream closed while its connect is in
    // progress must therefore never see `on_open`; being graceful, it still delivers what was
    // written before the close.
    within(LIMIT, || {
        let mut lp = new_loop();
        let server = std::net::TcpListener::bind(localhost()).unwrap();
        let addr = server.local_addr().unwrap();
        let events = Events::default();
        let stream = lp.connect_tcp(addr, events.wrap(Discard)).unwrap();
        lp.write(stream, b"written while connecting").unwrap();
        lp.close(stream).unwrap();
        let peer = spawn_client(&lp, "peer", move || {
            let (mut socket, _) = server.accept().unwrap();
            socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            read_to_eof(&mut socket)
        });
        lp.run().unwrap();
        assert_eq!(peer.join().unwrap(), b"written while connecting");
        assert_eq!(events.get(), [Ev::Close(None)], "on_open ran on a stream closed before it");
    });
}

/// Writes `payload` in `on_open`, closes gracefully, and aborts the close at once.
struct CloseThenAbort {
    payload: Rc<Vec<u8>>,
    log: Rc<RefCell<Vec<String>>>,
}

impl StreamHandler for CloseThenAbort {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.write(&self.payload);
        conn.close();
        let id = conn.id();
        let result = conn.core().abort(id);
        self.log.borrow_mut().push(format!("abort while closing: {result:?}"));
        let l = self.log.clone();
        conn.core().defer(move |_| l.borrow_mut().push("check phase".into()));
    }

    fn on_data(&mut self, _: &mut Conn<'_>, _: &[u8]) {}

    fn on_close(&mut self, _: &mut Core, _: Stream, error: Option<io::Error>) {
        self.log.borrow_mut().push(format!("on_close: {:?}", error.map(|e| e.kind())));
    }
}

#[test]
fn abort_cuts_a_graceful_close_short_and_resets_the_peer() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let payload = Rc::new(Rng::new(13).bytes(16 << 20));
        let log = Rc::new(RefCell::new(Vec::new()));
        let finish = Finish::after(1);
        let (p, l, f) = (payload.clone(), log.clone(), finish.clone());
        let listener = lp
            .listen_tcp(localhost(), move |_| {
                Events::default()
                    .wrap(CloseThenAbort { payload: p.clone(), log: l.clone() })
                    .then_finish(&f)
            })
            .unwrap();
        finish.close_also(listener);
        let addr = lp.local_addr(listener).unwrap();
        let mut socket = connect(addr);
        lp.run().unwrap();
        assert_eq!(
            log.borrow().as_slice(),
            ["abort while closing: Ok(())", "check phase", "on_close: None"],
            "on_close runs in the closing phase of the same iteration"
        );
        // The peer reads what had reached it, then the reset.
        let mut received = 0;
        let mut buf = vec![0; 1 << 16];
        let end = loop {
            match socket.read(&mut buf) {
                Ok(0) => break Ok(0),
                Ok(n) => {
                    assert_eq!(buf[..n], payload[received..received + n]);
                    received += n;
                }
                Err(err) => break Err(err.kind()),
            }
        };
        assert_eq!(end, Err(ErrorKind::ConnectionReset));
        assert!(received < payload.len());
    });
}

/// Stops writing on `false`; checks its queue in `on_drain`; then writes a last line and closes.
struct Watermarks {
    high: usize,
    low: usize,
    chunk: Vec<u8>,
    log: Rc<RefCell<Vec<String>>>,
    go: mpsc::Sender<()>,
}

impl StreamHandler for Watermarks {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let id = conn.id();
        conn.core().set_watermarks(id, self.high, self.low).unwrap();
        loop {
            if !conn.write(&self.chunk) {
                break;
            }
        }
        let queued = conn.queued_bytes();
        self.log.borrow_mut().push(format!("false past high: {}", queued > self.high));
        self.go.send(()).unwrap();
    }

    fn on_data(&mut self, _: &mut Conn<'_>, _: &[u8]) {}

    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        let queued = conn.queued_bytes();
        self.log.borrow_mut().push(format!("drain at or below low: {}", queued <= self.low));
        conn.write(b"END");
        conn.close();
    }
}

#[test]
fn write_returns_false_past_the_high_watermark_and_on_drain_follows_at_the_low_one() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let log = Rc::new(RefCell::new(Vec::new()));
        let finish = Finish::after(1);
        let (go_tx, go_rx) = mpsc::channel();
        let (l, f) = (log.clone(), finish.clone());
        let listener = lp
            .listen_tcp(localhost(), move |_| {
                let handler = Watermarks {
                    high: 32 * 1024,
                    low: 4 * 1024,
                    chunk: vec![b'w'; 4096],
                    log: l.clone(),
                    go: go_tx.clone(),
                };
                Events::default().wrap(handler).then_finish(&f)
            })
            .unwrap();
        finish.close_also(listener);
        let addr = lp.local_addr(listener).unwrap();
        let client = spawn_client(&lp, "client", move || {
            let mut socket = connect(addr);
            // Read only once the server's queue is past its high watermark.
            go_rx.recv_timeout(IO_TIMEOUT).unwrap();
            read_to_eof(&mut socket)
        });
        lp.run().unwrap();
        let received = client.join().unwrap();
        assert!(received.ends_with(b"END"));
        assert!(received[..received.len() - 3].iter().all(|&b| b == b'w'));
        assert_eq!((received.len() - 3) % 4096, 0);
        assert_eq!(
            log.borrow().as_slice(),
            ["false past high: true", "drain at or below low: true"]
        );
    });
}

/// Queues more than 16 KiB under the default watermarks, then lowers the high one below
/// that: only an empty write can then ask whether to stop, and its `false` owes an `on_drain`.
struct EmptyWriteAsks {
    log: Rc<RefCell<Vec<String>>>,
    go: mpsc::Sender<()>,
}

impl StreamHandler for EmptyWriteAsks {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        while conn.queued_bytes() <= 16 * 1024 {
            assert!(conn.write(&[b'e'; 4096]), "under the default high watermark");
        }
        let id = conn.id();
        conn.core().set_watermarks(id, 8 * 1024, 4 * 1024).unwrap();
        let queued = conn.queued_bytes();
        self.log.borrow_mut().push(format!("empty write: {}", conn.write(b"")));
        assert_eq!(conn.queued_bytes(), queued, "an empty write queues nothing");
        self.go.send(()).unwrap();
    }

    fn on_data(&mut self, _: &mut Conn<'_>, _: &[u8]) {}

    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        let queued = conn.queued_bytes();
        self.log.borrow_mut().push(format!("drain at or below low: {}", queued <= 4 * 1024));
        conn.close();
    }
}

#[test]
fn an_empty_write_that_returns_false_is_followed_by_on_drain() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let log = Rc::new(RefCell::new(Vec::new()));
        let finish = Finish::after(1);
        let (go_tx, go_rx) = mpsc::channel();
        let (l, f) = (log.clone(), finish.clone());
        let listener = lp
            .listen_tcp(localhost(), move |_| {
                let handler = EmptyWriteAsks { log: l.clone(), go: go_tx.clone() };
                Events::default().wrap(handler).then_finish(&f)
            })
            .unwrap();
        finish.close_also(listener);
        let addr = lp.local_addr(listener).unwrap();
        let client = spawn_client(&lp, "client", move || {
            let mut socket = connect(addr);
            go_rx.recv_timeout(IO_TIMEOUT).unwrap();
            read_to_eof(&mut socket)
        });
        lp.run().unwrap();
        let received = client.join().unwrap();
        assert!(received.len() > 16 * 1024 && received.iter().all(|&b| b == b'e'));
        assert_eq!(log.borrow().as_slice(), ["empty write: false", "drain at or below low: true"]);
    });
}

/// Says hello in `on_open`.
struct Hello;

impl StreamHandler for Hello {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.write(b"hello");
    }

    fn on_data(&mut self, _: &mut Conn<'_>, _: &[u8]) {}
}

/// Aborts on the first data; then, in `on_close` (when its socket is gone), runs `after`.
struct AbortOnData {
    after: Option<LoopTask>,
}

impl StreamHandler for AbortOnData {
    fn on_data(&mut self, conn: &mut Conn<'_>, _: &[u8]) {
        conn.abort();
    }

    fn on_close(&mut self, core: &mut Core, _: Stream, error: Option<io::Error>) {
        assert!(error.is_none());
        (self.after.take().unwrap())(core);
    }
}

#[test]
fn a_write_into_a_reset_connection_ends_the_stream_with_the_error_in_on_close() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let (accepted, addr) = observed_server(&mut lp, 1, || Hello);
        // A client on the loop resets the connection once the server has said hello; in its
        // on_close, its socket closed and the RST sent, the server writes into the connection.
        let write_result = Rc::new(RefCell::new(None));
        let (w, a) = (write_result.clone(), accepted.clone());
        let after = move |core: &mut Core| {
            let server = a.first().unwrap().0;
            let result = core.write(server, &[1; 100_000]);
            *w.borrow_mut() = Some(match result {
                Err(Error::Closed(id)) if id == server.id() => "Closed".to_owned(),
                other => format!("{other:?}"),
            });
        };
        lp.connect_tcp(addr, AbortOnData { after: Some(Box::new(after)) }).unwrap();
        lp.run().unwrap();
        let events = accepted.first_events().unwrap();
        assert_eq!(events.closes(), [Some(ErrorKind::ConnectionReset)], "{:?}", events.get());
        // On loopback the RST is processed within the close(2) that sends it, so the write
        // itself fails: Closed, and on_close gets the write's error.
        assert_eq!(write_result.borrow().as_deref(), Some("Closed"));
    });
}

// ---------------------------------------------------------------------------------------------
// Listeners
// ---------------------------------------------------------------------------------------------

#[test]
fn a_listener_accepts_at_most_accept_budget_connections_per_iteration() {
    const WAITING: usize = ACCEPT_BUDGET + 36;
    within(LIMIT, || {
        let mut lp = new_loop();
        let opened = Rc::new(Cell::new(0));
        let o = opened.clone();
        let listener = lp
            .listen_tcp(localhost(), move |_| {
                let o = o.clone();
                OnOpen(Discard, move |_: &mut Conn<'_>| o.set(o.get() + 1))
            })
            .unwrap();
        let addr = lp.local_addr(listener).unwrap();
        // A blocking connect returns once the kernel has queued the connection for accept.
        let clients: Vec<TcpStream> = (0..WAITING).map(|_| connect(addr)).collect();
        lp.run_nowait().unwrap();
        assert_eq!(opened.get(), ACCEPT_BUDGET, "one readiness event, one budget of accepts");
        lp.run_nowait().unwrap();
        assert_eq!(opened.get(), WAITING, "the rest in the next iteration's pending phase");
        drop(clients);
        lp.close(listener).unwrap();
        lp.run().unwrap(); // each stream gets its EOF and closes
    });
}

#[test]
fn a_panicking_factory_closes_its_listener_and_resets_the_connection() {
    within(LIMIT, || {
        let mut lp = EventLoop::new().unwrap();
        let reports = Rc::new(RefCell::new(Vec::new()));
        let r = reports.clone();
        lp.set_panic_hook(move |report| {
            r.borrow_mut().push((report.kind(), report.handle(), report.message().to_owned()));
        });
        let listener = lp
            .listen_tcp(localhost(), |_: Stream| -> Discard { panic!("no handler for you") })
            .unwrap();
        let addr = lp.local_addr(listener).unwrap();
        let mut socket = connect(addr);
        lp.run().unwrap();
        assert_eq!(
            reports.borrow().as_slice(),
            [("listener", Some(listener.id()), "no handler for you".to_owned())]
        );
        assert!(matches!(lp.local_addr(listener), Err(Error::Closed(_))), "the listener is gone");
        // The connection it accepted had no handler: aborted.
        assert_eq!(socket.read(&mut [0; 1]).map_err(|e| e.kind()), Err(ErrorKind::ConnectionReset));
        assert_eq!(
            TcpStream::connect(addr).map(drop).map_err(|e| e.kind()),
            Err(ErrorKind::ConnectionRefused),
            "nothing listens any more"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// This file, as panic reports name it.
const FILE: &str = "tests/streams.rs";

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A blocking client connection with timeouts.
fn connect(addr: SocketAddr) -> TcpStream {
    let socket = TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    socket
}

/// Reads until EOF; any error (a timeout included) fails the test.
#[track_caller]
fn read_to_eof(socket: &mut impl Read) -> Vec<u8> {
    let (all, end) = read_until_end(socket);
    if let Err(err) = end {
        panic!("no EOF: {err:?} after {} bytes", all.len());
    }
    all
}

/// Reads a [`Pattern`] stream until EOF or an error, checking every byte; returns how many
/// arrived and what ended them.
fn read_pattern(socket: &mut impl Read, seed: u64) -> (u64, Result<(), ErrorKind>) {
    let mut checker = Checker::new(Pattern::new(seed));
    let mut buf = vec![0; 64 * 1024];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => return (checker.offset, Ok(())),
            Ok(n) => checker.check(&buf[..n]),
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return (checker.offset, Err(err.kind())),
        }
    }
}

/// Reads until EOF or an error, and says which ended it.
fn read_until_end(socket: &mut impl Read) -> (Vec<u8>, Result<(), ErrorKind>) {
    let mut all = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => return (all, Ok(())),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return (all, Err(err.kind())),
        }
    }
}

/// Spawns a client thread. If it panics (a failed assertion, a read that timed out), it posts
/// a panic to the loop, which the strict panic hook (see [`strict`]) raises out of `run`: the
/// test fails at once instead of at its time limit.
fn spawn_client<T: Send + 'static>(
    core: &Core,
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    let mut remote = core.remote();
    remote.unref();
    let guard = FailLoopOnPanic(remote, name.to_owned());
    let body = move || {
        let _guard = guard;
        f()
    };
    // A small stack: hundreds of clients run at once.
    thread::Builder::new().name(name.to_owned()).stack_size(256 * 1024).spawn(body).unwrap()
}

/// See [`spawn_client`].
struct FailLoopOnPanic(reactor::Remote, String);

impl Drop for FailLoopOnPanic {
    fn drop(&mut self) {
        if thread::panicking() {
            let name = self.1.clone();
            let _ = self.0.post(move |_| panic!("client thread {name:?} failed (see above)"));
        }
    }
}

/// Asserts byte-for-byte equality, reporting the first difference instead of both buffers.
#[track_caller]
fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes, want {}; first differing byte at {first:?}",
            got.len(),
            want.len()
        );
    }
}

/// A unique path for a Unix-domain socket under the temporary directory.
fn temp_socket_path(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("reactor-streams-{}-{name}-{n}.sock", std::process::id()))
}

/// xorshift64: a small, seeded, reproducible source of test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes()[..chunk.len()]);
        }
        bytes
    }
}

/// A long stream that is cheap to produce and to check in a debug build: one random block,
/// repeated, each repetition starting with its own index, so that a lost, repeated or reordered
/// piece shows. The block length is a prime (65,519), so block edges wander through the reads.
struct Pattern {
    block: Vec<u8>,
}

impl Pattern {
    fn new(seed: u64) -> Pattern {
        Pattern { block: Rng::new(seed).bytes(65_519) }
    }

    /// The bytes at `offset..offset + buf.len()` of the stream.
    fn fill(&self, mut offset: u64, mut buf: &mut [u8]) {
        let len = self.block.len() as u64;
        while !buf.is_empty() {
            let (index, at) = (offset / len, (offset % len) as usize);
            let n = buf.len().min(self.block.len() - at);
            let (head, rest) = buf.split_at_mut(n);
            head.copy_from_slice(&self.block[at..at + n]);
            if at < 8 {
                let end = (at + n).min(8);
                head[..end - at].copy_from_slice(&index.to_le_bytes()[at..end]);
            }
            offset += n as u64;
            buf = rest;
        }
    }
}

/// Checks a received [`Pattern`] stream piece by piece.
struct Checker {
    pattern: Pattern,
    offset: u64,
    want: Vec<u8>,
}

impl Checker {
    fn new(pattern: Pattern) -> Checker {
        Checker { pattern, offset: 0, want: Vec::new() }
    }

    #[track_caller]
    fn check(&mut self, data: &[u8]) {
        self.want.resize(data.len(), 0);
        self.pattern.fill(self.offset, &mut self.want);
        if data != self.want.as_slice() {
            let at = data.iter().zip(&self.want).position(|(a, b)| a != b).unwrap();
            panic!("stream byte {} differs from what was sent", self.offset + at as u64);
        }
        self.offset += data.len() as u64;
    }
}

/// What a stream's handler was told, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Open,
    Data(usize),
    Eof,
    Drain,
    Close(Option<ErrorKind>),
}

/// A shared record of one stream's [`Ev`]s.
#[derive(Clone, Default)]
struct Events(Rc<RefCell<Vec<Ev>>>);

impl Events {
    fn push(&self, ev: Ev) {
        self.0.borrow_mut().push(ev);
    }

    fn get(&self) -> Vec<Ev> {
        self.0.borrow().clone()
    }

    fn count(&self, ev: &Ev) -> usize {
        self.0.borrow().iter().filter(|e| *e == ev).count()
    }

    fn data_bytes(&self) -> usize {
        self.0.borrow().iter().map(|ev| if let Ev::Data(n) = ev { *n } else { 0 }).sum()
    }

    fn closes(&self) -> Vec<Option<ErrorKind>> {
        self.0
            .borrow()
            .iter()
            .filter_map(|ev| if let Ev::Close(k) = ev { Some(*k) } else { None })
            .collect()
    }

    /// Wraps `inner` so that its calls are recorded here.
    fn wrap<H: StreamHandler>(&self, inner: H) -> Observe<H> {
        Observe { inner, events: self.clone(), then: Vec::new() }
    }
}

type AfterClose = Box<dyn FnOnce(&mut Core, Option<&io::Error>)>;

/// Something to do on the loop, later.
type LoopTask = Box<dyn FnOnce(&mut Core)>;

/// A handler wrapped to record every call into its [`Events`], and to run closures after its
/// `on_close`.
struct Observe<H> {
    inner: H,
    events: Events,
    then: Vec<AfterClose>,
}

impl<H> Observe<H> {
    fn then(mut self, f: impl FnOnce(&mut Core, Option<&io::Error>) + 'static) -> Self {
        self.then.push(Box::new(f));
        self
    }

    fn then_finish(self, finish: &Finish) -> Self {
        let finish = finish.clone();
        self.then(move |core, _| finish.done(core))
    }
}

impl<H: StreamHandler> StreamHandler for Observe<H> {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.events.push(Ev::Open);
        self.inner.on_open(conn);
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        self.events.push(Ev::Data(data.len()));
        self.inner.on_data(conn, data);
    }

    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        self.events.push(Ev::Eof);
        self.inner.on_eof(conn);
    }

    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        self.events.push(Ev::Drain);
        self.inner.on_drain(conn);
    }

    fn on_close(&mut self, core: &mut Core, stream: Stream, error: Option<io::Error>) {
        self.events.push(Ev::Close(error.as_ref().map(io::Error::kind)));
        // The contract: "`stream` is stale by now".
        let stale =
            matches!(core.queued_bytes(stream), Err(Error::Closed(id)) if id == stream.id());
        assert!(stale, "on_close got a stream id that still works");
        for then in self.then.drain(..) {
            then(core, error.as_ref());
        }
        self.inner.on_close(core, stream, error);
    }
}

/// A TCP listener on `lp` whose streams get handlers from `make`, each recorded in the returned
/// `Accepted`; once `finishes` streams have closed, the listener is closed too, so the loop
/// ends. Returns the address to connect to.
fn observed_server<H: StreamHandler>(
    lp: &mut EventLoop,
    finishes: usize,
    mut make: impl FnMut() -> H + 'static,
) -> (Accepted, SocketAddr) {
    let accepted = Accepted::default();
    let finish = Finish::after(finishes);
    let (a, f) = (accepted.clone(), finish.clone());
    let listener = lp
        .listen_tcp(localhost(), move |stream| a.observe(stream, make()).then_finish(&f))
        .unwrap();
    finish.close_also(listener);
    (accepted, lp.local_addr(listener).unwrap())
}

/// Every stream a listener accepted, with its [`Events`].
#[derive(Clone, Default)]
struct Accepted(Rc<RefCell<Vec<(Stream, Events)>>>);

impl Accepted {
    /// For a listener's factory: records the new stream and wraps its handler.
    fn observe<H: StreamHandler>(&self, stream: Stream, inner: H) -> Observe<H> {
        let events = Events::default();
        self.0.borrow_mut().push((stream, events.clone()));
        events.wrap(inner)
    }

    fn take(&self) -> Vec<(Stream, Events)> {
        std::mem::take(&mut self.0.borrow_mut())
    }

    fn first(&self) -> Option<(Stream, Events)> {
        self.0.borrow().first().cloned()
    }

    fn first_events(&self) -> Option<Events> {
        self.first().map(|(_, events)| events)
    }
}

/// Closes some handles (listeners, typically) once `n` streams have closed, so that `run()`
/// returns.
#[derive(Clone)]
struct Finish(Rc<RefCell<(usize, Vec<HandleId>)>>);

impl Finish {
    fn after(n: usize) -> Finish {
        Finish(Rc::new(RefCell::new((n, Vec::new()))))
    }

    fn close_also(&self, handle: impl Into<HandleId>) {
        self.0.borrow_mut().1.push(handle.into());
    }

    fn done(&self, core: &mut Core) {
        let handles = {
            let mut state = self.0.borrow_mut();
            assert!(state.0 > 0, "more streams closed than expected");
            state.0 -= 1;
            if state.0 > 0 {
                return;
            }
            std::mem::take(&mut state.1)
        };
        for handle in handles {
            core.close(handle).unwrap();
        }
    }
}

/// Reads and ignores everything.
struct Discard;

impl StreamHandler for Discard {
    fn on_data(&mut self, _: &mut Conn<'_>, _: &[u8]) {}
}

/// Collects everything it reads.
struct Collect(Rc<RefCell<Vec<u8>>>);

impl StreamHandler for Collect {
    fn on_data(&mut self, _: &mut Conn<'_>, data: &[u8]) {
        self.0.borrow_mut().extend_from_slice(data);
    }
}

/// Sends a message and shuts down in `on_open`, and collects the reply up to the EOF.
struct SendThenShutdown {
    message: &'static [u8],
    collected: Rc<RefCell<Vec<u8>>>,
}

impl SendThenShutdown {
    fn new(message: &'static [u8], collected: Rc<RefCell<Vec<u8>>>) -> Self {
        SendThenShutdown { message, collected }
    }
}

impl StreamHandler for SendThenShutdown {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        assert!(conn.write(self.message));
        conn.shutdown();
    }

    fn on_data(&mut self, _: &mut Conn<'_>, data: &[u8]) {
        self.collected.borrow_mut().extend_from_slice(data);
    }
}

/// A handler with an extra `on_open` step.
struct OnOpen<H, F>(H, F);

impl<H: StreamHandler, F: FnMut(&mut Conn<'_>) + 'static> StreamHandler for OnOpen<H, F> {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.0.on_open(conn);
        (self.1)(conn);
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        self.0.on_data(conn, data);
    }

    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        self.0.on_eof(conn);
    }

    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        self.0.on_drain(conn);
    }

    fn on_close(&mut self, core: &mut Core, stream: Stream, error: Option<io::Error>) {
        self.0.on_close(core, stream, error);
    }
}

// ---------------------------------------------------------------------------------------------
// Waking a stream from outside its handler
// ---------------------------------------------------------------------------------------------

/// Counts `on_wake` calls and remembers its stream.
struct Wakeable {
    me: Rc<Cell<Option<Stream>>>,
    wakes: Rc<Cell<usize>>,
}

impl StreamHandler for Wakeable {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.me.set(Some(conn.id()));
    }

    fn on_data(&mut self, _: &mut Conn<'_>, _: &[u8]) {}

    fn on_wake(&mut self, _: &mut Conn<'_>) {
        self.wakes.set(self.wakes.get() + 1);
    }
}

#[test]
fn wakes_coalesce_into_one_on_wake_that_runs_later_and_a_closed_stream_cannot_be_woken() {
    within(LIMIT, || {
        let mut lp = new_loop();
        let (me, wakes) = (Rc::new(Cell::new(None)), Rc::new(Cell::new(0)));
        let (m, w) = (me.clone(), wakes.clone());
        let listener = lp
            .listen_tcp(localhost(), move |_| Wakeable { me: m.clone(), wakes: w.clone() })
            .unwrap();
        let _client = connect(lp.local_addr(listener).unwrap());
        let m = me.clone();
        run_until(&mut lp, move || m.get().is_some());
        let stream = me.get().unwrap();

        // Three wakes from a timer callback: none runs inside `wake`, one runs afterwards.
        let inside = Rc::new(Cell::new(usize::MAX));
        let (w, i) = (wakes.clone(), inside.clone());
        lp.set_timeout(Duration::ZERO, move |core| {
            for _ in 0..3 {
                core.wake(stream).unwrap();
            }
            i.set(w.get());
        });
        let w = wakes.clone();
        run_until(&mut lp, move || w.get() > 0);
        // A few more iterations: no second call comes.
        for _ in 0..3 {
            lp.run_nowait().unwrap();
        }
        assert_eq!((inside.get(), wakes.get()), (0, 1));

        lp.close(stream).unwrap();
        assert!(matches!(lp.wake(stream), Err(Error::Closed(_))));
        lp.close(listener).unwrap();
        lp.run().unwrap();
        assert_eq!(wakes.get(), 1);
    });
}
