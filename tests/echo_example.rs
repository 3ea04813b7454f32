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

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use reactor::signal::{SIGINT, SIGTERM, kill};

/// How long one socket read or write may block before the test calls it a hang.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a child may take to print its `listening on` line, or to exit when told to.
const START_LIMIT: Duration = Duration::from_secs(10);
const EXIT_LIMIT: Duration = Duration::from_secs(10);

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
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut process = Process::spawn(cmd);
    let status = process.wait_timeout(EXIT_LIMIT).unwrap_or_else(|| {
        panic!("echo {args:?} still runs after {EXIT_LIMIT:?}; it should have failed")
    });
    let mut stdout = String::new();
    let mut stderr = String::new();
    process.child.stdout.take().unwrap().read_to_string(&mut stdout).expect("read stdout");
    process.child.stderr.take().unwrap().read_to_string(&mut stderr).expect("read stderr");
    eprintln!("echo {args:?}: {status}, stderr: {}", stderr.trim());
    (status, stdout, stderr)
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// The example binary: `target/<profile>/examples/echo`, next to this test binary's
/// `target/<profile>/deps/` directory. A plain `cargo test` builds it, but
/// `cargo test --test echo_example` alone does not (it builds only the selected target), so
/// the binary must exist and be newer than the sources it is built from: never a silent skip,
/// and never a stale binary.
fn echo_binary() -> PathBuf {
    static CHECKED: OnceLock<PathBuf> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let exe = std::env::current_exe().expect("locate the test binary");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .unwrap_or_else(|| panic!("unexpected test binary location {}", exe.display()));
        let echo = profile_dir.join("examples").join("echo");
        let build = "build it first with `cargo build --example echo` (same profile) or a plain \
                     `cargo test`; `cargo test --test echo_example` alone does not build examples";
        let built = std::fs::metadata(&echo)
            .and_then(|meta| meta.modified())
            .unwrap_or_else(|err| panic!("no echo example at {}: {err}; {build}", echo.display()));
        // Cargo's dependency file for the binary lists every source it was built from (paths
        // with spaces would be escaped; these have none).
        let dep_info = echo.with_extension("d");
        let deps = std::fs::read_to_string(&dep_info)
            .unwrap_or_else(|err| panic!("read {}: {err}; {build}", dep_info.display()));
        let sources = deps.lines().flat_map(|line| line.split_whitespace().skip(1));
        for source in sources.map(Path::new) {
            let changed = std::fs::metadata(source).and_then(|meta| meta.modified());
            // A source that is gone was removed from the build: the binary is stale too.
            let changed = changed.unwrap_or_else(|err| {
                panic!("{} is built from {}: {err}; {build}", echo.display(), source.display())
            });
            assert!(
                changed <= built,
                "{} is older than {}: {build}",
                echo.display(),
                source.display()
            );
        }
        echo
    })
    .clone()
}

/// The pids of the children alive right now, for the watchdog to kill before it aborts.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<u32>> {
    // A test that panicked while holding the lock leaves the list itself consistent.
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A child process that is killed and reaped when dropped. Its pid stays registered in
/// [`LIVE`] until it is reaped, so the watchdog never signals a recycled pid.
struct Process {
    child: Child,
}

impl Process {
    fn spawn(mut cmd: Command) -> Process {
        let mut live = live();
        let child = cmd.spawn().unwrap_or_else(|err| panic!("start {cmd:?}: {err}"));
        live.push(child.id());
        Process { child }
    }

    /// The exit status, if the child has exited (and is now reaped).
    fn try_wait(&mut self) -> Option<ExitStatus> {
        let mut live = live();
        let status = self.child.try_wait().expect("poll the child");
        if status.is_some() {
            live.retain(|&pid| pid != self.child.id());
        }
        status
    }

    /// Waits at most `limit` for the child to exit.
    fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        poll_until(limit, || self.try_wait())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let pid = self.child.id();
        {
            let mut live = live();
            if live.contains(&pid) {
                let _ = self.child.kill();
                live.retain(|&p| p != pid);
            }
        }
        let _ = self.child.wait();
    }
}

/// A running echo server and the address it announced.
struct Server {
    process: Process,
    addr: SocketAddr,
}

impl Server {
    /// The echo binary on `127.0.0.1:0`.
    fn start() -> Server {
        let mut cmd = Command::new(echo_binary());
        cmd.arg("127.0.0.1:0");
        Server::spawn(cmd)
    }

    /// Starts `cmd` and waits for its `listening on IP:PORT` line.
    fn spawn(mut cmd: Command) -> Server {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut process = Process::spawn(cmd);
        let stdout = process.child.stdout.take().expect("the child's stdout");
        let (line_tx, line_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            let _ = line_tx.send(stdout.read_line(&mut line).map(|_| line));
            // Keep draining, so that the child can never block on a full pipe.
            let _ = io::copy(&mut stdout, &mut io::sink());
        });
        let line = match line_rx.recv_timeout(START_LIMIT) {
            Ok(Ok(line)) => line,
            Ok(Err(err)) => panic!("read the server's stdout: {err}"),
            Err(_) => panic!("the server printed nothing within {START_LIMIT:?}"),
        };
        let Some(addr) = line.trim_end().strip_prefix("listening on ") else {
            let status = process.wait_timeout(Duration::from_secs(1));
            panic!("the server's first line is {line:?}, not `listening on IP:PORT` ({status:?})")
        };
        let addr = addr.parse().unwrap_or_else(|err| panic!("announced address {addr:?}: {err}"));
        Server { process, addr }
    }

    fn pid(&self) -> u32 {
        self.process.child.id()
    }

    fn proc_file(&self, name: &str) -> String {
        let path = format!("/proc/{}/{name}", self.pid());
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("read {path}: {err}"))
    }

    /// Resident memory in KiB (`VmRSS` of `/proc/<pid>/status`).
    fn rss_kib(&self) -> u64 {
        let status = self.proc_file("status");
        let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("a VmRSS line");
        line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmRSS in kB")
    }

    /// User plus system CPU time in clock ticks (`/proc/<pid>/stat` fields 14 and 15).
    fn cpu_ticks(&self) -> u64 {
        let stat = self.proc_file("stat");
        // Fields after the command name, which is in parentheses and may contain spaces;
        // the first of them is field 3 (the state).
        let rest = &stat[stat.rfind(')').expect("a stat line") + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields[n - 3].parse::<u64>().expect("a tick count");
        field(14) + field(15)
    }

    /// The soft limit on open files (`/proc/<pid>/limits`).
    fn max_open_files(&self) -> u64 {
        let limits = self.proc_file("limits");
        let line =
            limits.lines().find(|line| line.starts_with("Max open files")).expect("a limit line");
        line.split_whitespace().nth(3).and_then(|soft| soft.parse().ok()).expect("a soft limit")
    }

    /// How many of the server's descriptors are sockets.
    fn socket_count(&self) -> usize {
        let dir = format!("/proc/{}/fd", self.pid());
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("list {dir}: {err}"));
        entries
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count()
    }
}

/// Aborts the test binary, after killing every child, if still armed after `limit`: a hang
/// fails the run instead of blocking it, and leaves no server behind. Disarmed when dropped.
struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

impl Watchdog {
    fn arm(name: &'static str, limit: Duration) -> Watchdog {
        let (disarm, disarmed) = mpsc::channel::<()>();
        thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = disarmed.recv_timeout(limit) {
                eprintln!("watchdog: the {name} test is still running after {limit:?}; aborting");
                for &pid in live().iter() {
                    let _ = kill(pid, libc::SIGKILL);
                }
                std::process::abort();
            }
        });
        Watchdog { _disarm: disarm }
    }
}

/// Calls `f` until it returns `Some`, for at most `limit` (a bounded polling loop).
fn poll_until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = f() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A blocking connection whose reads and writes fail after [`IO_TIMEOUT`] instead of hanging.
fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap_or_else(|err| panic!("connect to {addr}: {err}"));
    set_timeouts(&stream);
    stream
}

fn set_timeouts(stream: &TcpStream) {
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("set a read timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("set a write timeout");
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

/// `len` pseudo-random bytes (xorshift64*), the same for the same seed.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        bytes.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// `assert_eq!` for large byte strings: reports lengths and the first difference, not the data.
fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: first wrong byte at offset {i} of {}", want.len());
    }
    assert_eq!(got.len(), want.len(), "{what}: length");
}
