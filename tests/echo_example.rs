//! Black-box tests of the `echo` example (`examples/echo.rs`): the built example binary runs as
//! a child process on `127.0.0.1:0`, and the tests talk to it over real sockets and watch it
//! through `/proc` (descriptors, resident memory, CPU time).
//!
//! The contract under test, from the example's docs: it prints `listening on IP:PORT` once
//! ready, echoes every byte, answers a half-close with the rest of the echo and then a close,
//! pauses a client that does not read so that its memory stays bounded, holds 10,000+
//! connections on one thread, sheds connections it has no descriptor for without spinning,
//! exits with status 0 on SIGINT and SIGTERM, and exits non-zero with a message on stderr when
//! it cannot serve the address it was given.
//!
//! Every child is killed and reaped by a guard when its test ends, and every test is bounded
//! by a watchdog that kills all children and aborts the test binary instead of hanging.

mod util;

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use reactor::signal::{SIGINT, SIGTERM, kill};
use util::child::{
    EXIT_LIMIT, Process, Server, Watchdog, assert_same, example_binary, poll_until, random_bytes,
    run_captured, set_timeouts,
};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

// ---------------------------------------------------------------------------------------------
// 1. Ten thousand concurrent connections.

const CONNECTIONS: usize = 10_000;

#[test]
fn holds_ten_thousand_concurrent_connections_and_echoes_on_each() {
    let _watchdog = Watchdog::arm("ten thousand connections", Duration::from_secs(50));
    // The client side needs 10,000 descriptors too (the usual soft limit is 1024).
    let limit = reactor::raise_fd_limit().expect("raise this process's descriptor limit");
    assert!(
        limit >= (CONNECTIONS + 500) as u64,
        "this test needs {} descriptors but the hard limit (ulimit -Hn) is {limit}",
        CONNECTIONS + 500
    );

    // Started with the usual soft limit of 1024, as from a login shell: the server must raise
    // its own limit (it would inherit this process's raised one otherwise).
    let server = Server::spawn(limited_command(1024, limit));
    let server_limit = server.max_open_files();
    assert!(
        server_limit >= (CONNECTIONS + 100) as u64,
        "the echo server started with a soft limit of 1024 descriptors has {server_limit}; it \
         should have raised it to the hard limit, {limit}"
    );
    let rss_before = server.rss_kib();

    let started = Instant::now();
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let stream = TcpStream::connect(server.addr)
            .unwrap_or_else(|err| panic!("connection #{i} to {}: {err}", server.addr));
        set_timeouts(&stream);
        clients.push(stream);
    }
    let connected = started.elapsed();

    // Connects complete in the kernel; wait (bounded) until the server accepted every one.
    let accepted = poll_until(Duration::from_secs(20), || {
        let sockets = server.socket_count();
        (sockets >= CONNECTIONS).then_some(sockets)
    })
    .unwrap_or_else(|| {
        panic!(
            "the server holds only {} sockets 20 s after {CONNECTIONS} connects",
            server.socket_count()
        )
    });
    let rss_idle = server.rss_kib();

    for (i, client) in clients.iter_mut().enumerate() {
        client.write_all(&message(i)).unwrap_or_else(|err| panic!("write on #{i}: {err}"));
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let want = message(i);
        let mut got = vec![0; want.len()];
        client.read_exact(&mut got).unwrap_or_else(|err| panic!("echo on #{i}: {err}"));
        assert_eq!(got, want, "connection #{i} got someone else's echo");
    }
    let echoed = started.elapsed();

    // Every connection is still open on both sides: they were all held at once.
    let sockets_after = server.socket_count();
    assert!(
        sockets_after >= CONNECTIONS,
        "only {sockets_after} server sockets left after the echo round"
    );
    let rss_after = server.rss_kib();

    let per_conn = |rss: u64| (rss.saturating_sub(rss_before) * 1024) as f64 / CONNECTIONS as f64;
    eprintln!(
        "echo: {CONNECTIONS} connections: connected in {connected:?}, echoed on all in \
         {echoed:?}; server sockets at the peak: {accepted}"
    );
    eprintln!(
        "echo: server RSS {rss_before} KiB before, {rss_idle} KiB with {CONNECTIONS} idle \
         connections ({:.0} B per connection), {rss_after} KiB after one echo on each \
         ({:.0} B per connection)",
        per_conn(rss_idle),
        per_conn(rss_after)
    );
    for (what, rss) in [("idle", rss_idle), ("after an echo", rss_after)] {
        assert!(
            per_conn(rss) < 4096.0,
            "{:.0} bytes of server memory per {what} connection",
            per_conn(rss)
        );
    }
}

/// A distinct 12-byte message for connection `i`.
fn message(i: usize) -> Vec<u8> {
    format!("conn {i:06}\n").into_bytes()
}

// ---------------------------------------------------------------------------------------------
// 2. Out of descriptors (EMFILE).

/// The server's descriptor limit in the EMFILE test.
const FD_LIMIT: u64 = 64;

#[test]
fn out_of_descriptors_sheds_excess_connections_without_spinning_and_recovers() {
    let _watchdog = Watchdog::arm("EMFILE", Duration::from_secs(50));
    let server = Server::spawn(limited_command(FD_LIMIT, FD_LIMIT));
    assert_eq!(server.max_open_files(), FD_LIMIT, "the descriptor limit did not apply");

    // More connections than the server has descriptors for, one at a time: each either echoes
    // or is closed by the server, and none hangs.
    let mut established = Vec::new();
    let mut first_shed = None;
    let (cpu_start, started) = (server.cpu_ticks(), Instant::now());
    let cpu_share = || {
        let cpu = (server.cpu_ticks() - cpu_start) as f64 / clock_ticks_per_second() as f64;
        100.0 * cpu / started.elapsed().as_secs_f64()
    };
    for i in 0..100 {
        let mut stream = connect(server.addr);
        match round_trip(&mut stream, &message(i)) {
            Ok(()) => {
                if let Some(first) = first_shed {
                    panic!(
                        "connection #{i} was served after #{first} was shed, with no descriptor freed in between"
                    );
                }
                established.push(stream);
            }
            Err(err) if is_closed(&err) => {
                first_shed.get_or_insert(i);
            }
            Err(err) => panic!(
                "connection #{i} was neither served nor closed: {err} (the server used {:.0}% \
                 of a CPU meanwhile)",
                cpu_share()
            ),
        }
    }
    let served = established.len();
    eprintln!("echo: under a limit of {FD_LIMIT} descriptors, {served} of 100 connections served");
    assert!(
        (48..FD_LIMIT as usize).contains(&served),
        "{served} connections served under a limit of {FD_LIMIT} descriptors (expected about \
         {FD_LIMIT} minus the server's own dozen)"
    );

    // Excess connections keep arriving for a second; shedding them must cost next to nothing.
    let tick = clock_ticks_per_second();
    let window = Duration::from_secs(1);
    let cpu_before = server.cpu_ticks();
    let started = Instant::now();
    let mut shed = 0;
    while started.elapsed() < window {
        let mut stream = connect(server.addr);
        match round_trip(&mut stream, b"excess\n") {
            Ok(()) => panic!("an excess connection was served while the server had no descriptor"),
            Err(err) if is_closed(&err) => shed += 1,
            Err(err) => panic!("excess connection #{shed} was neither served nor closed: {err}"),
        }
        thread::sleep(Duration::from_millis(5)); // pacing: about 150 arrivals a second
    }
    let wall = started.elapsed();
    let cpu = (server.cpu_ticks() - cpu_before) as f64 / tick as f64;
    eprintln!(
        "echo: {shed} excess connections shed in {wall:?}; server CPU {:.0} ms ({:.1}%)",
        cpu * 1000.0,
        100.0 * cpu / wall.as_secs_f64()
    );
    assert!(shed >= 20, "only {shed} excess connections in {wall:?}");
    assert!(
        cpu < 0.3 * wall.as_secs_f64(),
        "the server used {cpu:.2} s of CPU in {wall:?} while shedding: a busy loop"
    );

    // The established connections were not disturbed.
    for (i, stream) in established.iter_mut().enumerate() {
        round_trip(stream, b"still here\n")
            .unwrap_or_else(|err| panic!("established connection #{i} after the storm: {err}"));
    }

    // Freeing descriptors is enough for accepting to resume, with no further help.
    drop(established);
    let recovered = poll_until(Duration::from_secs(5), || {
        let mut stream = connect(server.addr);
        round_trip(&mut stream, b"recovered\n").ok().map(|()| stream)
    });
    let Some(recovered) = recovered else {
        panic!("no new connection was served within 5 s of closing {served} connections")
    };
    // And all of the freed capacity is usable again.
    let mut again = vec![recovered];
    for i in 1..served {
        let stream = poll_until(Duration::from_secs(5), || {
            let mut stream = connect(server.addr);
            round_trip(&mut stream, &message(i)).ok().map(|()| stream)
        });
        again.push(stream.unwrap_or_else(|| {
            panic!("connection #{i} of {served} after the recovery was not served")
        }));
    }
}

/// The echo binary on `127.0.0.1:0`, started with descriptor limits `soft` and `hard`, by
/// `prlimit` (util-linux) or else a shell's `ulimit`. Both exec the binary, so the child's pid
/// is the server's.
fn limited_command(soft: u64, hard: u64) -> Command {
    let has_prlimit = Command::new("prlimit")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    let mut cmd;
    if has_prlimit {
        cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={soft}:{hard}"));
    } else {
        // The soft limit first: a hard limit below the soft one is refused.
        cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -S -n {soft} && ulimit -H -n {hard} && exec \"$0\" \"$@\""));
    }
    cmd.arg(echo_binary()).arg("127.0.0.1:0");
    cmd
}

/// Whether an error means the server closed the connection (a FIN or a RST).
fn is_closed(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
    )
}

/// The tick rate of `/proc/<pid>/stat`'s CPU times (`getconf CLK_TCK`).
fn clock_ticks_per_second() -> u64 {
    let output = Command::new("getconf").arg("CLK_TCK").output();
    let ticks = output
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    ticks.unwrap_or_else(|| {
        eprintln!("echo: `getconf CLK_TCK` failed; assuming Linux's USER_HZ of 100");
        100
    })
}

// ---------------------------------------------------------------------------------------------
// 3. Half-close.

#[test]
fn half_close_gets_the_whole_echo_then_eof() {
    let _watchdog = Watchdog::arm("half-close", Duration::from_secs(30));
    let server = Server::start();
    let data = random_bytes(MIB, 0x9e37_79b9_7f4a_7c15);

    let mut stream = connect(server.addr);
    let mut writer = stream.try_clone().expect("clone the stream");
    let sent = data.clone();
    // Written from another thread: the echo must be read while the upload is still going.
    let upload = thread::spawn(move || -> io::Result<()> {
        writer.write_all(&sent)?;
        writer.shutdown(Shutdown::Write)
    });

    let mut echo = Vec::with_capacity(data.len());
    let read = stream.read_to_end(&mut echo);
    upload.join().expect("the upload thread panicked").expect("upload 1 MiB and half-close");
    read.unwrap_or_else(|err| panic!("after {} bytes of echo: {err} (no EOF?)", echo.len()));
    assert_same(&echo, &data, "the echo of 1 MiB");
}

// ---------------------------------------------------------------------------------------------
// 4. A client that does not read.

/// How much the server's resident memory may grow because of one client that does not read.
const RSS_GROWTH_LIMIT_KIB: u64 = 8 * 1024;
/// How long writes must make no progress before the client counts as blocked.
const STALL: Duration = Duration::from_millis(100);
/// More than any plausible amount of socket buffering: a write phase getting this far means
/// the server never pushed back.
const CYCLE_CAP: usize = 256 * MIB;

#[test]
fn a_client_that_does_not_read_is_paused_and_server_memory_stays_bounded() {
    let _watchdog = Watchdog::arm("non-reading client", Duration::from_secs(50));
    let server = Server::start();
    // One warm-up echo, so that the baseline includes the loop's shared read buffer.
    let mut stream = connect(server.addr);
    round_trip(&mut stream, b"warm-up\n").expect("warm-up echo");
    let rss_base = server.rss_kib();
    let mut rss_peak = rss_base;
    let mut check_rss = |when: &str| {
        let rss = server.rss_kib();
        rss_peak = rss_peak.max(rss);
        assert!(
            rss < rss_base + RSS_GROWTH_LIMIT_KIB,
            "server RSS grew from {rss_base} KiB to {rss} KiB {when}"
        );
    };

    // A stream position's byte is `pattern[position % pattern.len()]`.
    let pattern = random_bytes(MIB + 13, 0x2545_f491_4f6c_dd1d);
    let mut sent = 0; // stream position of the next byte to write
    let mut cycles = Vec::new();
    while sent < 100 * MIB || cycles.len() < 2 {
        // Write without reading until the writes make no progress for a while.
        stream.set_nonblocking(true).expect("make the stream non-blocking");
        let start = sent;
        let mut last_progress = Instant::now();
        let mut next_check = sent;
        loop {
            let at = sent % pattern.len();
            match stream.write(&pattern[at..]) {
                Ok(0) => panic!("the server stopped taking bytes after {sent} (write returned 0)"),
                Ok(n) => {
                    sent += n;
                    last_progress = Instant::now();
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => {
                    if last_progress.elapsed() >= STALL {
                        break;
                    }
                    thread::sleep(Duration::from_millis(1)); // a bounded polling loop
                }
                Err(err) => panic!("write at stream position {sent}: {err}"),
            }
            if sent >= next_check {
                check_rss(&format!("with {} MiB unread", (sent - start) / MIB));
                next_check = sent + 4 * MIB;
            }
            assert!(
                sent - start < CYCLE_CAP,
                "{} MiB written without reading and the server still takes more: it never \
                 paused",
                CYCLE_CAP / MIB
            );
        }
        check_rss(&format!("with {} KiB unread, the client blocked", (sent - start) / KIB));

        // Then read all of it back.
        stream.set_nonblocking(false).expect("make the stream blocking");
        let mut received = start;
        let mut buf = vec![0; 256 * KIB];
        while received < sent {
            let want = buf.len().min(sent - received);
            let n = stream.read(&mut buf[..want]).unwrap_or_else(|err| {
                panic!("read at stream position {received} of {sent}: {err}")
            });
            assert!(n > 0, "EOF at stream position {received} of {sent}");
            if let Err(offset) = check_pattern(&pattern, received, &buf[..n]) {
                panic!("wrong echo byte at stream position {offset}");
            }
            received += n;
        }
        check_rss("after reading everything back");
        cycles.push(sent - start);
    }
    eprintln!(
        "echo: {} MiB through a non-reading client in {} cycles (largest {} KiB unread); \
         server RSS {rss_base} KiB at the start, {rss_peak} KiB at the peak",
        sent / MIB,
        cycles.len(),
        cycles.iter().max().unwrap() / KIB,
    );
}

/// Checks `data` against the cyclic `pattern` from stream position `offset`; the error is the
/// position of the first wrong byte.
fn check_pattern(pattern: &[u8], offset: usize, data: &[u8]) -> Result<(), usize> {
    let mut done = 0;
    while done < data.len() {
        let at = (offset + done) % pattern.len();
        let len = (pattern.len() - at).min(data.len() - done);
        let (got, want) = (&data[done..done + len], &pattern[at..at + len]);
        if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
            return Err(offset + done + i);
        }
        done += len;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 5. Signals.

#[test]
fn sigterm_exits_with_status_zero() {
    exits_cleanly_on(SIGTERM, "SIGTERM");
}

#[test]
fn sigint_exits_with_status_zero() {
    exits_cleanly_on(SIGINT, "SIGINT");
}

fn exits_cleanly_on(signum: i32, name: &'static str) {
    let _watchdog = Watchdog::arm(name, Duration::from_secs(30));
    let mut server = Server::start();
    // Serving, with a connection open when the signal arrives.
    let mut stream = connect(server.addr);
    round_trip(&mut stream, b"before the signal\n").expect("echo before the signal");
    kill(server.pid(), signum).unwrap_or_else(|err| panic!("send {name}: {err}"));
    let status = server
        .process
        .wait_timeout(EXIT_LIMIT)
        .unwrap_or_else(|| panic!("the server still runs {EXIT_LIMIT:?} after {name}"));
    assert_eq!(status.code(), Some(0), "exit status after {name}: {status}");
}

/// "Ready" covers the signals too: a supervisor may stop the server as soon as it printed its
/// line. One trial is a race, so the test makes many, alternating the two signals, and signals
/// from the thread that reads the line, as early as a supervisor could.
#[test]
fn a_signal_right_after_the_ready_line_exits_with_status_zero() {
    let _watchdog = Watchdog::arm("signal right after ready", Duration::from_secs(40));
    let trials = 40;
    let mut failures = std::collections::BTreeMap::<String, usize>::new();
    for trial in 0..trials {
        let (signum, name) = if trial % 2 == 0 { (SIGTERM, "SIGTERM") } else { (SIGINT, "SIGINT") };
        let mut cmd = Command::new(echo_binary());
        cmd.arg("127.0.0.1:0").stdin(Stdio::null()).stdout(Stdio::piped());
        let mut process = Process::spawn(cmd);
        let mut stdout = BufReader::new(process.child.stdout.take().expect("the child's stdout"));
        let mut line = String::new();
        // Blocking, bounded by the watchdog.
        stdout.read_line(&mut line).expect("read the server's stdout");
        assert!(line.starts_with("listening on "), "the server's first line is {line:?}");
        kill(process.child.id(), signum).unwrap_or_else(|err| panic!("send {name}: {err}"));
        let status = process
            .wait_timeout(EXIT_LIMIT)
            .unwrap_or_else(|| panic!("the server still runs {EXIT_LIMIT:?} after {name}"));
        if status.code() != Some(0) {
            *failures.entry(format!("{name} -> {status}")).or_default() += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {trials} servers signalled right after printing `listening on` did not exit \
         with status 0: {failures:?}",
        failures.values().sum::<usize>()
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Addresses it cannot serve.

#[test]
fn a_bad_address_exits_non_zero_with_a_message() {
    let _watchdog = Watchdog::arm("bad address", Duration::from_secs(40));
    // Not addresses, and (192.0.2.0/24 is TEST-NET-1) an address this host does not have.
    for arg in ["not-an-addr", "127.0.0.1", "127.0.0.1:99999", "", "192.0.2.1:0"] {
        let (status, stdout, stderr) = run_to_exit(&[arg]);
        assert!(!status.success(), "echo {arg:?} exited with {status}");
        assert!(!stderr.trim().is_empty(), "echo {arg:?} exited with {status} but said nothing");
        assert!(!stdout.contains("listening on"), "echo {arg:?} said {stdout:?}");
    }
}

#[test]
fn an_address_in_use_exits_non_zero_with_a_message() {
    let _watchdog = Watchdog::arm("address in use", Duration::from_secs(30));
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a listener");
    let addr = taken.local_addr().unwrap().to_string();
    let (status, stdout, stderr) = run_to_exit(&[&addr]);
    assert!(!status.success(), "echo {addr} exited with {status} though {addr} is taken");
    assert!(!stderr.trim().is_empty(), "echo {addr} exited with {status} but said nothing");
    assert!(!stdout.contains("listening on"), "echo {addr} said {stdout:?}");
    drop(taken);
}

/// Runs the echo binary with `args` until it exits by itself (bounded); returns its status,
/// stdout and stderr.
fn run_to_exit(args: &[&str]) -> (ExitStatus, String, String) {
    let mut cmd = Command::new(echo_binary());
    cmd.args(args);
    let (status, stdout, stderr) = run_captured(cmd, EXIT_LIMIT).unwrap_or_else(|| {
        panic!("echo {args:?} still runs after {EXIT_LIMIT:?}; it should have failed")
    });
    eprintln!("echo {args:?}: {status}, stderr: {}", stderr.trim());
    (status, stdout, stderr)
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// The echo example binary, checked to be built and up to date (see [`example_binary`]).
fn echo_binary() -> PathBuf {
    example_binary("echo")
}

impl Server {
    /// The echo binary on `127.0.0.1:0`.
    fn start() -> Server {
        let mut cmd = Command::new(echo_binary());
        cmd.arg("127.0.0.1:0");
        Server::spawn(cmd)
    }
}

/// A blocking connection whose reads and writes fail after [`IO_TIMEOUT`](util::child::IO_TIMEOUT) instead of hanging.
fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap_or_else(|err| panic!("connect to {addr}: {err}"));
    set_timeouts(&stream);
    stream
}

/// Writes `msg` and reads back exactly its echo.
fn round_trip(stream: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    stream.write_all(msg)?;
    let mut echo = vec![0; msg.len()];
    stream.read_exact(&mut echo)?;
    if echo != msg {
        return Err(io::Error::other(format!("sent {msg:?}, got back {echo:?}")));
    }
    Ok(())
}
