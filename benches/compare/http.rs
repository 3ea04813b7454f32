//! The HTTP section: `examples/http.rs` against a hand-written C server on epoll (the physical
//! limit), a tokio server, nginx and Node.js's `http` module, under `wrk`.
//!
//! # What it runs
//!
//! - The reactor server: `target/release/examples/http`, next to the bench's own binary,
//!   built by `$CARGO build --release --example http` before the run (same target directory,
//!   so a stale server is never measured), unless `HTTP_BIN=/path/to/http` names a binary to
//!   use as it is. It runs as `http --idle-timeout 60000 127.0.0.1:0`: a kept-alive connection
//!   may sit idle 60 s instead of the default 5 s, so that the first of the 10,000 idle
//!   connections below is still open when the last one is (Node's and nginx's peers get the
//!   same 60 s; the C and tokio peers have no idle timeout).
//! - The C peer, "epoll (C)": `benches/peers/epoll_server.c` run as `epoll_server http`, what
//!   a careful C programmer writes for one core and the figure reactor is judged against: one
//!   thread, edge-triggered epoll, one 64 KiB read buffer for the loop, every complete request
//!   head of a read answered with the same fixed response (shaped byte for byte like
//!   reactor's, `Date` included) in one write, partial heads kept, keep-alive. It does not
//!   parse requests beyond finding the end of each head. Built with `cc -O2` into
//!   `target/peers/` unless `EPOLL_SERVER_BIN` names a binary; without `cc` the tables have no
//!   epoll (C) column, and say so.
//! - The tokio peer: `benches/peers/tokio_http/`, a project of its own (its empty
//!   `[workspace]` keeps tokio out of reactor's dependency tree): one current-thread runtime,
//!   one task per connection, `httparse`, every complete request in the read buffer answered
//!   in one write. Built with `$CARGO build --release --locked` into `target/peers/` (the
//!   first build fetches tokio from crates.io), unless `TOKIO_HTTP_BIN` names a binary.
//! - nginx, where it is installed (`nginx` on `PATH` or in `/usr/sbin`; Debian: `apt-get
//!   install nginx-light`), or where `NGINX_BIN` names it: one process (`master_process off`,
//!   `worker_processes 1`), access log off, `return 200 "Hello, World!"` for
//!   `/plaintext`, a 60 s keep-alive timeout and no limit on requests per connection. Its
//!   configuration is written into `target/peers/nginx/` at each start, with a port the
//!   harness picked (nginx cannot listen on port 0).
//! - The Node.js peer: `node benches/peers/http.js` (`http.createServer`, Nagle off, an idle
//!   keep-alive timeout of 60 s), if `node` is on `PATH`.
//! - The load generator: `wrk` (Debian's package `wrk`) on `PATH`. Without it the `wrk`
//!   scenarios are skipped, and the section says so in bold; the memory scenario still runs.
//!
//! All of them serve `GET /plaintext` as `Hello, World!` in `text/plain`, with keep-alive and
//! pipelining, on 127.0.0.1, started fresh for every run and pinned to CPU 0; `wrk` runs as
//! `taskset -c 1 wrk ...`.
//!
//! # Scenarios
//!
//! Every run first checks the server: one `GET /plaintext` on a fresh connection, then 16
//! pipelined in one write on the same connection; each response must be a `200` with a
//! `Content-Length` body of `Hello, World!` and no `Connection: close`. The size of the first
//! response (status line, headers and body) goes in the section, since it is what every
//! request costs on the wire.
//!
//! Section `http`:
//!
//! - plaintext: `wrk -t1 -c50 --latency` on `GET /plaintext`, keep-alive: 50 connections, one
//!   request in flight on each. p50 and p99 are `wrk`'s latency percentiles, which (since
//!   wrk 4) include its correction for coordinated omission.
//! - pipelined: the same with `-s benches/peers/pipeline.lua -- 16`: each connection writes 16
//!   requests at once and the next 16 once the 16 responses are in; `wrk` counts every
//!   response. It reports no latency here: wrk 4.1's correction assumes one request per
//!   round trip, adds its synthetic samples below the histogram's minimum when requests are
//!   pipelined, and then prints percentiles of 0 (its `stats_correct` and
//!   `stats_percentile`), so they mean nothing.
//! - idle keep-alive connections: after the check's connection, 10,000 connections each send
//!   one `GET /plaintext` and read the checked response, then stay open; the server's VmRSS
//!   from `/proc/PID/status` is read before and after, and the difference divided by 10,000.
//!   All 10,000 must still be open afterwards.
//!
//! Section `scaling`: the plaintext load at 10, 100, 1,000 and 10,000 connections (`wrk -t1
//! -cN`), for requests/s and server CPU per request as the connections grow.
//!
//! Each `wrk` run has a warm-up (`wrk` stopped with SIGINT after the context's warm-up) and
//! then a measured run of `wrk -d S`. Requests/s is `wrk`'s own figure. The server's CPU time
//! over the measured run is utime + stime from `/proc/PID/stat` (all its threads), read just
//! before `wrk` starts and just after it exits, divided by `wrk`'s count of requests: server
//! CPU per request in microseconds, the figure that does not depend on how fast the generator
//! is. `wrk`'s own CPU is this process's cutime + cstime (its reaped children) over the same
//! span.
//!
//! The second table says where the CPU went in the measured runs: the server, `wrk`, and all
//! else on the machine (busy time in `/proc/stat` that is neither: other processes, and
//! interrupts, our own traffic's included), with `wrk`'s error counts (socket errors plus
//! non-2xx responses) per run. Runs in which all else passed 25% of a core are counted as
//! disturbed. Where `wrk` is near 100% of its core, requests/s measures `wrk` as much as the
//! server; the server's CPU per request is then the figure to quote.
//!
//! Rounds are interleaved, every peer in turn for each scenario of each round; the tables give
//! the median over rounds and the min–max, and the ratio of reactor's median to each peer's.
//! Every socket operation has a 10 s timeout, every `wrk` run is killed if it outlives its
//! duration by 15 s, and every server is stopped with SIGTERM (and must exit 0 within 5 s) or,
//! by a drop guard on an error path, killed; so the run is bounded and leaves no process
//! behind.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use reactor::event_loop::TRACE_ENV;

use crate::load::{
    self, DISTURBED, Peer, Res, Row, STOP_TIMEOUT, Server, Start, Usage, bars, connect, io_err,
    machine_busy_ticks, num, pinned_command, ratio, record, signal_and_wait, table, times,
    wait_or_kill,
};
use crate::plot;
use crate::{Ctx, Goal, Plot, Section};

/// The column of reactor's server with causal tracing on (`REACTOR_TRACE=1`).
pub const TRACED: &str = "reactor traced";
/// Connections of the `http` section's `wrk` scenarios, all on one `wrk` thread.
const CONNS: usize = 50;
/// The connections of the scaling curve.
const SCALE: [usize; 4] = [10, 100, 1_000, 10_000];
/// The same, as the tables print them.
const SCALE_NAMES: [&str; 4] = ["10", "100", "1,000", "10,000"];
/// The shortest measured window of the scaling curve, in seconds: `wrk` opens its 10,000
/// connections inside the window, which takes about a second.
const SCALE_SECS: u64 = 4;
/// Requests per batch in the pipelined scenario.
const DEPTH: usize = 16;
/// Connections held open for the memory figure.
const IDLE: usize = 10_000;
/// Connections opened (and served) at a time while filling the server with idle ones; well
/// under the servers' listen backlog of 1024.
const IDLE_BATCH: usize = 100;
/// The reactor server's `--idle-timeout`, in milliseconds: longer than filling it with
/// [`IDLE`] connections can take. Node's and nginx's peers have the same.
const IDLE_TIMEOUT_MS: &str = "60000";
/// How long a `wrk` run may outlive its duration before it is killed.
const WRK_GRACE: Duration = Duration::from_secs(15);
/// The request of the checks and of the idle connections (`wrk` sends its own, much alike).
pub const REQUEST: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
/// The body every server must answer it with.
const BODY: &[u8] = b"Hello, World!";
/// Longest response head the checks accept.
const MAX_HEAD: usize = 8 * 1024;

// ---------------------------------------------------------------------------------------------
// The machine
// ---------------------------------------------------------------------------------------------

/// cutime + cstime of this process (fields 16 and 17): the CPU of its children that it has
/// waited for, in clock ticks.
fn children_ticks() -> Res<u64> {
    let f = load::stat_fields("self")?;
    match (f.get(13), f.get(14)) {
        (Some(u), Some(s)) => Ok(u + s),
        _ => Err("/proc/self/stat: too few fields".into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Checked requests, and the idle connections
// ---------------------------------------------------------------------------------------------

/// The start of `bytes`, printable, for an error message.
fn shown(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
    format!("{s:?}")
}

/// Length of the complete response at the start of `buf`, checked to be the answer to
/// [`REQUEST`]: `Ok(None)` while it is incomplete.
fn checked_response(buf: &[u8]) -> Res<Option<usize>> {
    let Some(head) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4) else {
        return if buf.len() > MAX_HEAD {
            Err(format!("no end of the response head in {MAX_HEAD} bytes: {}", shown(buf)))
        } else {
            Ok(None)
        };
    };
    let text = String::from_utf8_lossy(&buf[..head]);
    let mut lines = text.split("\r\n");
    let status: Vec<&str> = lines.next().unwrap_or("").splitn(3, ' ').collect();
    if status.len() < 2 || status[0] != "HTTP/1.1" || status[1] != "200" {
        return Err(format!("expected `HTTP/1.1 200`, got {}", shown(&buf[..head])));
    }
    let mut length = None;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "connection" if value.eq_ignore_ascii_case("close") => {
                return Err(format!("`Connection: close` on a keep-alive request: {text:?}"));
            }
            _ => {}
        }
    }
    let length = length.ok_or_else(|| format!("no Content-Length: {text:?}"))?;
    if buf.len() < head + length {
        return Ok(None);
    }
    let body = &buf[head..head + length];
    if body != BODY {
        return Err(format!("expected the body {:?}, got {}", shown(BODY), shown(body)));
    }
    Ok(Some(head + length))
}

/// Reads `count` responses to [`REQUEST`] from `s` and checks them; returns the size of the
/// first. Bytes past the last response are an error (the server answered more than asked).
pub fn read_responses(s: &mut TcpStream, count: usize) -> Res<usize> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0; 4096];
    let (mut done, mut first) = (0, 0);
    while done < count {
        while let Some(len) = checked_response(&buf)? {
            if done == 0 {
                first = len;
            }
            buf.drain(..len);
            done += 1;
            if done == count {
                break;
            }
        }
        if done == count {
            break;
        }
        let n = match s.read(&mut chunk) {
            Ok(0) => return Err(format!("connection closed after {done} of {count} responses")),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading response {} of {count}: {e}", done + 1)),
        };
        buf.extend_from_slice(&chunk[..n]);
    }
    if !buf.is_empty() {
        return Err(format!("{} bytes after the last response: {}", buf.len(), shown(&buf)));
    }
    Ok(first)
}

/// The check of every run: one request, then [`DEPTH`] pipelined in one write, on one
/// connection. Returns the connection (still open) and the size of the first response.
fn check(server: &Server) -> Res<(TcpStream, usize)> {
    let mut s = connect(server.addr)?;
    s.write_all(REQUEST).map_err(io_err("check: write"))?;
    let size = read_responses(&mut s, 1).map_err(|e| format!("check: GET /plaintext: {e}"))?;
    s.write_all(&REQUEST.repeat(DEPTH)).map_err(io_err("check: write"))?;
    read_responses(&mut s, DEPTH)
        .map_err(|e| format!("check: {DEPTH} pipelined GET /plaintext: {e}"))?;
    Ok((s, size))
}

/// Fills the server with [`IDLE`] served keep-alive connections, next to `warm` (the check's);
/// returns its VmRSS before and after, in KiB, and the connections (to be closed after the
/// server is stopped).
fn idle_connections(server: &Server, warm: TcpStream) -> Res<(u64, u64, Vec<TcpStream>)> {
    let before = server.rss_kib()?;
    let mut conns = Vec::with_capacity(IDLE + 1);
    while conns.len() < IDLE {
        let first = conns.len();
        for _ in first..(first + IDLE_BATCH).min(IDLE) {
            let mut s = connect(server.addr)?;
            s.write_all(REQUEST).map_err(io_err("idle write"))?;
            conns.push(s);
        }
        for (i, s) in conns.iter_mut().enumerate().skip(first) {
            read_responses(s, 1).map_err(|e| format!("idle connection {i}: {e}"))?;
        }
    }
    let after = server.rss_kib()?;
    // Still open and quiet, all of them: a read would block rather than see the end of the
    // stream, an error, or bytes nobody asked for.
    let (mut closed, mut unasked) = (0, 0);
    for s in &mut conns {
        s.set_nonblocking(true).map_err(io_err("nonblocking"))?;
        match s.read(&mut [0; 1]) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Ok(n) if n > 0 => unasked += 1,
            _ => closed += 1,
        }
    }
    if closed + unasked > 0 {
        return Err(format!(
            "of the {IDLE} idle connections, {closed} were closed (or reset) by the server and \
             {unasked} got bytes they did not ask for"
        ));
    }
    conns.push(warm);
    Ok((before, after, conns))
}

// ---------------------------------------------------------------------------------------------
// wrk
// ---------------------------------------------------------------------------------------------

/// A running `wrk`. Dropping it kills it and reaps it.
struct Wrk {
    child: Option<Child>,
    output: mpsc::Receiver<(String, String)>,
}

impl Wrk {
    fn start(args: &[String], pinned: bool) -> Res<Wrk> {
        let mut argv: Vec<OsString> = vec!["wrk".into()];
        argv.extend(args.iter().map(OsString::from));
        let mut child = pinned_command(&argv, "1", pinned)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start wrk: {e}"))?;
        let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let (tx, output) = mpsc::channel();
        thread::spawn(move || {
            let (mut out, mut err) = (String::new(), String::new());
            let errors = thread::spawn(move || {
                let _ = stderr.read_to_string(&mut err);
                err
            });
            let _ = stdout.read_to_string(&mut out);
            let _ = tx.send((out, errors.join().unwrap_or_default()));
        });
        Ok(Wrk { child: Some(child), output })
    }

    /// Waits for the exit (after SIGINT if `interrupt`), at most `timeout`; returns `wrk`'s
    /// stdout. `wrk` must have exited with status 0, or (if `interrupt`) died of the SIGINT:
    /// sent before `wrk` has set its handler, it kills it, which is fine for a warm-up.
    fn finish(mut self, interrupt: bool, timeout: Duration) -> Res<String> {
        let mut child = self.child.take().expect("not finished yet");
        let status = if interrupt {
            signal_and_wait(&mut child, reactor::signal::SIGINT, timeout)
        } else {
            wait_or_kill(&mut child, timeout)
                .ok_or_else(|| format!("wrk still running after {} s; killed", timeout.as_secs()))
        }?;
        let (out, err) = self
            .output
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| "wrk: its output did not close".to_owned())?;
        let interrupted = interrupt && status.signal() == Some(reactor::signal::SIGINT);
        if !status.success() && !interrupted {
            return Err(format!("wrk exited with {status}: {}{}", err.trim(), out.trim()));
        }
        Ok(out)
    }
}

impl Drop for Wrk {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What one `wrk` run printed.
struct WrkReport {
    requests: u64,
    rate: f64,
    /// Percentiles in microseconds, if printed (`--latency`) and not 0.
    p50: Option<f64>,
    p99: Option<f64>,
    /// Socket errors (connect, read, write, timeout) and non-2xx-or-3xx responses.
    errors: u64,
}

/// A duration as `wrk` prints it (`242.00us`, `1.24ms`, `2.00s`, `1.50m`), in microseconds.
fn wrk_time_us(s: &str) -> Option<f64> {
    let units = [("us", 1.0), ("ms", 1e3), ("s", 1e6), ("m", 60e6), ("h", 3600e6)];
    units.iter().find_map(|(unit, scale)| Some(s.strip_suffix(unit)?.parse::<f64>().ok()? * scale))
}

fn parse_wrk(out: &str) -> Res<WrkReport> {
    let mut report = WrkReport { requests: 0, rate: 0.0, p50: None, p99: None, errors: 0 };
    let number = |s: &str| s.trim().trim_end_matches(',').parse::<u64>().unwrap_or(0);
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [n, "requests", "in", ..] => report.requests = number(n),
            ["Requests/sec:", rate] => report.rate = rate.parse().unwrap_or(0.0),
            ["50%", t] => report.p50 = wrk_time_us(t).filter(|&t| t > 0.0),
            ["99%", t] => report.p99 = wrk_time_us(t).filter(|&t| t > 0.0),
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                report.errors += rest.iter().skip(1).step_by(2).map(|n| number(n)).sum::<u64>();
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => report.errors += number(n),
            _ => {}
        }
    }
    if report.requests == 0 || report.rate <= 0.0 {
        return Err(format!("wrk: no requests done, or output not understood:\n{out}"));
    }
    Ok(report)
}

/// One measured `wrk` run.
struct Window {
    wrk: WrkReport,
    /// Server CPU microseconds per request.
    cpu_us: f64,
    /// Where the CPU went.
    usage: Usage,
}

/// A `wrk` scenario: the keep-alive load on some connections, or the pipelined one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Load {
    /// One request in flight on each of [`CONNS`] connections.
    Plain,
    /// [`DEPTH`] requests in flight on each of [`CONNS`] connections.
    Pipelined,
    /// One request in flight on each of `SCALE[i]` connections.
    Conns(usize),
}

impl Load {
    fn conns(self) -> usize {
        match self {
            Load::Plain | Load::Pipelined => CONNS,
            Load::Conns(i) => SCALE[i],
        }
    }

    fn name(self) -> String {
        match self {
            Load::Plain => format!("plaintext, {CONNS} conns"),
            Load::Pipelined => format!("pipelined ×{DEPTH}, {CONNS} conns"),
            Load::Conns(i) => format!("plaintext, {} conns", SCALE_NAMES[i]),
        }
    }
}

/// `wrk`'s arguments for a load: `-d` `secs`, or a minute for a warm-up (which is stopped
/// early with SIGINT). A response slower than 10 s counts as a timeout error (wrk's default
/// of 2 s is too short for 10,000 connections on one `wrk` thread).
fn wrk_args(load: Load, addr: SocketAddr, secs: Option<u64>) -> Vec<String> {
    let mut args = vec!["-t1".to_owned(), format!("-c{}", load.conns())];
    args.extend([format!("-d{}s", secs.unwrap_or(60)), "--timeout".into(), "10s".into()]);
    if load == Load::Pipelined {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/pipeline.lua");
        args.extend(["-s".into(), script.display().to_string()]);
    } else {
        args.push("--latency".into());
    }
    args.push(format!("http://{addr}/plaintext"));
    if load == Load::Pipelined {
        args.extend(["--".into(), DEPTH.to_string()]);
    }
    args
}

/// The measured window of a load, in whole seconds.
fn window(ctx: &Ctx, load: Load) -> u64 {
    match load {
        Load::Conns(_) => ctx.secs.max(SCALE_SECS),
        _ => ctx.secs,
    }
}

/// Warm-up (a `wrk` stopped after `ctx.warmup`), then the measured `wrk` run.
fn timed(ctx: &Ctx, server: &Server, load: Load) -> Res<Window> {
    let warm = Wrk::start(&wrk_args(load, server.addr, None), ctx.pinned)?;
    thread::sleep(ctx.warmup);
    warm.finish(true, STOP_TIMEOUT).map_err(|e| format!("warm-up: {e}"))?;

    let snapshot = || -> Res<(Instant, u64, u64, u64)> {
        Ok((Instant::now(), server.cpu_ticks()?, children_ticks()?, machine_busy_ticks()?))
    };
    let secs = window(ctx, load);
    let (t0, s0, g0, m0) = snapshot()?;
    let wrk = Wrk::start(&wrk_args(load, server.addr, Some(secs)), ctx.pinned)?;
    let out = wrk.finish(false, Duration::from_secs(secs) + WRK_GRACE)?;
    let (t1, s1, g1, m1) = snapshot()?;
    let wrk = parse_wrk(&out)?;
    let secs = (t1 - t0).as_secs_f64();
    let server_secs = (s1 - s0) as f64 / ctx.tck;
    Ok(Window {
        cpu_us: server_secs * 1e6 / wrk.requests as f64,
        usage: Usage::new(s1 - s0, g1 - g0, m1 - m0, ctx.tck, secs),
        wrk,
    })
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

/// A row of the tables: the first table's figures per load, then the idle memory, then the
/// second table's (where the CPU went) per load.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Metric {
    Figure(Load, Figure),
    IdleBytes,
    IdleBase,
    Where(Load, Where),
}

/// A figure of the first table.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Figure {
    Rate,
    P50,
    P99,
    Cpu,
}

/// A figure of the second table.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Where {
    Server,
    Wrk,
    Other,
    Errors,
}

impl Row for Metric {
    fn label(self) -> String {
        match self {
            Metric::Figure(load, figure) => {
                let what = match figure {
                    Figure::Rate => "requests/s (higher is better)",
                    Figure::P50 => "latency p50, µs (lower)",
                    Figure::P99 => "latency p99, µs (lower)",
                    Figure::Cpu => "server CPU µs per request (lower)",
                };
                format!("{}: {what}", load.name())
            }
            Metric::IdleBytes => {
                "10,000 idle keep-alive conns: server RSS bytes per conn (lower)".into()
            }
            Metric::IdleBase => "server RSS before them (one conn open), MiB (lower)".into(),
            Metric::Where(load, what) => {
                let what = match what {
                    Where::Server => "server CPU, % of a core",
                    Where::Wrk => "wrk CPU, % of a core",
                    Where::Other => "all else (other processes, interrupts), % of a core",
                    Where::Errors => "wrk errors (socket + non-2xx) per run",
                };
                format!("{}: {what}", load.name())
            }
        }
    }

    fn is_util(self) -> bool {
        matches!(self, Metric::Where(..))
    }
}

/// Values per metric, per peer (index into the peers), in round order.
type Samples = load::Samples<Metric>;

// ---------------------------------------------------------------------------------------------
// The peers
// ---------------------------------------------------------------------------------------------

/// The tokio peer: `TOKIO_HTTP_BIN`, or built now into `target/peers`. `Err` is the note for
/// the section, the reason there is no tokio column.
pub fn tokio_binary() -> Res<(PathBuf, String)> {
    if let Some(found) = load::env_binary("TOKIO_HTTP_BIN") {
        return found;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/tokio_http");
    let target = load::profile_dir()?.parent().ok_or("odd current_exe path")?.join("peers");
    let bin = target.join("release").join("tokio_http");
    let command = "cargo build --release --locked --manifest-path \
                   benches/peers/tokio_http/Cargo.toml";
    eprintln!("compare: {command} (into {})", target.display());
    let status = Command::new(load::cargo())
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&dir)
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err(format!("`{command}` failed ({status}); see the build's output above"));
    }
    if !bin.is_file() {
        return Err(format!("built, but {} is missing", bin.display()));
    }
    Ok((bin.clone(), format!("`{}` (built by `{command}`)", bin.display())))
}

/// nginx: `NGINX_BIN`, or `nginx` on `PATH` or in `/usr/sbin`, with its version. `Err` is the
/// reason there is no nginx column.
fn nginx_binary() -> Res<(PathBuf, String)> {
    let (bin, how) = match load::env_binary("NGINX_BIN") {
        Some(found) => found?,
        None => {
            let on_path = std::env::var_os("PATH").into_iter().flat_map(|p| {
                std::env::split_paths(&p).map(|dir| dir.join("nginx")).collect::<Vec<_>>()
            });
            let bin = on_path
                .chain([PathBuf::from("/usr/sbin/nginx")])
                .find(|p| p.is_file())
                .ok_or("not installed (Debian: `apt-get install nginx-light`)")?;
            let how = format!("`{}`", bin.display());
            (bin, how)
        }
    };
    // `nginx -v` prints `nginx version: nginx/1.22.1` on stderr.
    let out = Command::new(&bin).arg("-v").output().map_err(|e| format!("nginx -v: {e}"))?;
    let version = String::from_utf8_lossy(&out.stderr).trim().replace("nginx version: ", "");
    Ok((bin, format!("{version}, {how}, one process (`master_process off`), access log off")))
}

/// nginx's arguments for a start on `port`: its configuration, written now into
/// `target/peers/nginx/` (over the last run's: one server runs at a time).
fn nginx_args(port: u16) -> Res<Vec<OsString>> {
    let dir = load::profile_dir()?.parent().ok_or("odd current_exe path")?.join("peers/nginx");
    std::fs::create_dir_all(dir.join("tmp")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let d = dir.display();
    let conf = format!(
        "# Written by benches/compare/http.rs for one run on port {port}.
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 20000; }}
http {{
    access_log off;
    keepalive_timeout {secs}s;
    keepalive_requests 1000000000;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        location = /plaintext {{
            default_type text/plain;
            return 200 \"Hello, World!\";
        }}
    }}
}}
",
        secs = IDLE_TIMEOUT_MS.parse::<u64>().unwrap_or(60_000) / 1000
    );
    let file = dir.join("nginx.conf");
    std::fs::write(&file, conf).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(vec!["-p".into(), dir.clone().into(), "-c".into(), file.into()])
}

/// The peers of this section, in column order, and the lines that say what each one is (or
/// why it is missing).
fn peers(
    ctx: &Ctx,
    http: &(PathBuf, String),
    tokio: &Res<(PathBuf, String)>,
) -> (Vec<Peer>, String) {
    let mut notes = String::new();
    let reactor_argv = vec![http.0.clone().into(), "--idle-timeout".into(), IDLE_TIMEOUT_MS.into()];
    let mut peers =
        vec![Peer { name: "reactor", argv: reactor_argv.clone(), start: Start::PrintsAddr }];
    load::write_peer(&mut notes, "reactor", Ok(&http.1));
    // The same binary with causal tracing on: the cost of tracing, measured in the same run.
    let traced_argv = [vec!["env".into(), format!("{TRACE_ENV}=1").into()], reactor_argv].concat();
    peers.push(Peer { name: TRACED, argv: traced_argv, start: Start::PrintsAddr });
    load::write_peer(&mut notes, TRACED, Ok(&format!("the same binary run with `{TRACE_ENV}=1`")));
    let mut add = |name: &'static str, found: Res<(Vec<OsString>, String)>, start: Start| {
        load::write_peer(
            &mut notes,
            name,
            found.as_ref().map(|f| f.1.as_str()).map_err(|e| e.as_str()),
        );
        if let Ok((argv, _)) = found {
            peers.push(Peer { name, argv, start });
        }
    };
    let epoll = ctx.epoll.clone().map(|(bin, note)| {
        (vec![bin.into(), "http".into()], format!("`epoll_server http`, {note}"))
    });
    add("epoll (C)", epoll, Start::PrintsAddr);
    add("tokio", tokio.clone().map(|(bin, note)| (vec![bin.into()], note)), Start::PrintsAddr);
    let nginx = nginx_binary().map(|(bin, note)| (vec![bin.into()], note));
    add("nginx", nginx, Start::Port(nginx_args));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/http.js");
    let node = load::output_of("node", &["--version"])
        .map(|v| (vec!["node".into(), script.into()], format!("{v}, `benches/peers/http.js`")))
        .ok_or_else(|| "`node --version` failed (not on PATH?)".to_owned());
    add("node", node, Start::PrintsAddr);
    (peers, notes)
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// The section `http`, or with `scaling` the section `scaling`.
pub fn run(
    ctx: &Ctx,
    http: &(PathBuf, String),
    tokio: &Res<(PathBuf, String)>,
    scaling: bool,
) -> Res<Section> {
    let started = Instant::now();
    let tag = if scaling { "scaling" } else { "http" };
    // `wrk -v` prints `wrk VERSION [epoll] Copyright ...` and its usage, and exits with 1.
    let wrk_version = Command::new("wrk").arg("-v").output().ok().and_then(|out| {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let first = text.lines().next().filter(|l| l.starts_with("wrk"))?;
        Some(first.split(" Copyright").next().unwrap_or(first).trim().to_owned())
    });
    if wrk_version.is_none() {
        eprintln!("compare: {tag}: no `wrk` on PATH (Debian: apt-get install wrk)");
    }
    let (peers, notes) = peers(ctx, http, tokio);

    // One run per (scenario, peer) in each round; `None` is the idle-memory scenario.
    let scenarios: Vec<Option<Load>> = match (scaling, wrk_version.is_some()) {
        (true, true) => (0..SCALE.len()).map(|i| Some(Load::Conns(i))).collect(),
        (true, false) => Vec::new(),
        (false, true) => vec![Some(Load::Plain), Some(Load::Pipelined), None],
        (false, false) => vec![None],
    };
    let mut samples = Samples::new();
    // Response sizes, per peer, as first seen.
    let mut sizes = vec![0; peers.len()];
    // Measured runs, those where the rest of the machine used more than DISTURBED, and those
    // where wrk saw errors.
    let (mut windows, mut disturbed, mut with_errors) = (0, 0, 0);
    let n = peers.len();
    for round in 1..=ctx.rounds {
        for &scenario in &scenarios {
            for (p, peer) in peers.iter().enumerate() {
                let server = Server::start(peer, ctx.pinned)?;
                let name = scenario.map_or_else(|| "idle".to_owned(), Load::name);
                let what = format!("{tag}: round {round}/{}, {name}, {}", ctx.rounds, peer.name);
                let (conn, size) = check(&server).map_err(|e| format!("{what}: {e}"))?;
                if sizes[p] == 0 {
                    sizes[p] = size;
                }
                let Some(load) = scenario else {
                    let filling = Instant::now();
                    let (before, after, conns) =
                        idle_connections(&server, conn).map_err(|e| format!("{what}: {e}"))?;
                    let per_conn = after.saturating_sub(before) as f64 * 1024.0 / IDLE as f64;
                    record(&mut samples, n, p, Metric::IdleBytes, per_conn);
                    record(&mut samples, n, p, Metric::IdleBase, before as f64 / 1024.0);
                    // Stop the server first: its side closes, ours leaves no TIME_WAIT.
                    server.stop().map_err(|e| format!("{what}: {e}"))?;
                    drop(conns);
                    eprintln!(
                        "compare: {what}: {} bytes per idle connection, {:.1} MiB before \
                         (filled in {:.1} s)",
                        num(per_conn),
                        before as f64 / 1024.0,
                        filling.elapsed().as_secs_f64()
                    );
                    continue;
                };
                drop(conn);
                let w = timed(ctx, &server, load).map_err(|e| format!("{what}: {e}"))?;
                server.stop().map_err(|e| format!("{what}: {e}"))?;
                windows += 1;
                disturbed += usize::from(w.usage.disturbed());
                with_errors += usize::from(w.wrk.errors > 0);
                let mut put = |metric, value| record(&mut samples, n, p, metric, value);
                put(Metric::Figure(load, Figure::Rate), w.wrk.rate);
                put(Metric::Figure(load, Figure::Cpu), w.cpu_us);
                put(Metric::Where(load, Where::Server), w.usage.server);
                put(Metric::Where(load, Where::Wrk), w.usage.generator);
                put(Metric::Where(load, Where::Other), w.usage.other);
                put(Metric::Where(load, Where::Errors), w.wrk.errors as f64);
                let mut latency = String::new();
                if load != Load::Pipelined {
                    // Record both or neither, so that the two rows have the same rounds.
                    if let (Some(p50), Some(p99)) = (w.wrk.p50, w.wrk.p99) {
                        put(Metric::Figure(load, Figure::P50), p50);
                        put(Metric::Figure(load, Figure::P99), p99);
                        latency = format!(", p50 {} µs, p99 {} µs", num(p50), num(p99));
                    } else {
                        latency = ", no latency percentiles from wrk".into();
                    }
                }
                eprintln!(
                    "compare: {what}: {} requests/s{latency}, {} µs server CPU each, {} wrk \
                     errors; {}",
                    num(w.wrk.rate),
                    num(w.cpu_us),
                    w.wrk.errors,
                    w.usage.describe("wrk")
                );
            }
        }
    }

    let mut out = String::new();
    let names: Vec<&str> = peers.iter().map(|p| p.name).collect();
    out.push_str(&notes);
    let sizes: Vec<String> =
        names.iter().zip(&sizes).map(|(name, size)| format!("{name} {size} B")).collect();
    let _ = writeln!(
        out,
        "- response to `GET /plaintext` (status line, headers, body): {}",
        sizes.join(", ")
    );
    let secs = ctx.secs;
    match (&wrk_version, scaling) {
        (Some(v), false) => {
            let _ = writeln!(
                out,
                "- load: {v}; plaintext `wrk -t1 -c{CONNS} -d{secs}s --timeout 10s --latency \
                 http://ADDR/plaintext`; pipelined `wrk -t1 -c{CONNS} -d{secs}s --timeout 10s -s \
                 benches/peers/pipeline.lua http://ADDR/plaintext -- {DEPTH}` (no latency: \
                 wrk's percentiles are broken under pipelining)"
            );
        }
        (Some(v), true) => {
            let _ = writeln!(
                out,
                "- load: {v}; `wrk -t1 -cN -d{}s --timeout 10s --latency \
                 http://ADDR/plaintext` for N in {} (`wrk` opens its connections inside the \
                 measured window, so the accepts are in the figures)",
                secs.max(SCALE_SECS),
                SCALE_NAMES.join(", ")
            );
        }
        (None, _) => {
            let _ = writeln!(
                out,
                "- load: **no `wrk` on PATH (Debian: `apt-get install wrk`): the `wrk` \
                 scenarios were skipped**"
            );
        }
    }
    load::write_rounds(
        &mut out,
        ctx,
        &peers,
        if scaling { secs.max(SCALE_SECS) } else { secs },
        started,
    );
    if windows > 0 {
        let _ = writeln!(
            out,
            "- disturbed runs (the rest of the machine above {DISTURBED}% of a core, see the \
             \"all else\" rows): {disturbed} of {windows}"
        );
        let errors = if with_errors == 0 {
            "none".to_owned()
        } else {
            format!("**{with_errors} of {windows} runs had some; see the errors rows**")
        };
        let _ = writeln!(out, "- runs with wrk errors (socket errors or non-2xx): {errors}");
    }
    out.push('\n');
    table(&mut out, &samples, &peers, false);
    if windows > 0 {
        out.push_str("\nWhere the CPU went during the measured runs, and wrk's errors:\n\n");
        table(&mut out, &samples, &peers, true);
    }

    let (plots, goals) =
        if scaling { scaling_results(&samples, &peers) } else { http_results(&samples, &peers) };
    let title = if scaling {
        format!("HTTP scaling: {}", names.join(" vs "))
    } else {
        format!("HTTP: {}", names.join(" vs "))
    };
    Ok(Section { title, markdown: out, plots, goals })
}

/// The `http` section's plots and goals.
fn http_results(samples: &Samples, peers: &[Peer]) -> (Vec<Plot>, Vec<Goal>) {
    let cpu = |load| Metric::Figure(load, Figure::Cpu);
    let plots = vec![
        Plot {
            name: "http-plaintext-cpu",
            title: "HTTP keep-alive, 50 connections: server CPU per request".into(),
            svg: plot::bar_chart(
                "HTTP keep-alive (wrk -t1 -c50): server CPU per request",
                "µs per request (lower is better)",
                &bars(samples, peers, cpu(Load::Plain)),
            ),
        },
        Plot {
            name: "http-pipelined-cpu",
            title: "HTTP pipelined ×16, 50 connections: server CPU per request".into(),
            svg: plot::bar_chart(
                "HTTP pipelined ×16 (wrk -t1 -c50): server CPU per request",
                "µs per request (lower is better)",
                &bars(samples, peers, cpu(Load::Pipelined)),
            ),
        },
        Plot {
            name: "http-p99",
            title: "HTTP keep-alive, 50 connections: p99 latency".into(),
            svg: plot::bar_chart(
                "HTTP keep-alive (wrk -t1 -c50): latency p99",
                "µs (lower is better)",
                &bars(samples, peers, Metric::Figure(Load::Plain, Figure::P99)),
            ),
        },
        Plot {
            name: "http-idle-memory",
            title: "Server memory per idle keep-alive connection, at 10,000".into(),
            svg: plot::bar_chart(
                "10,000 idle keep-alive connections: server RSS per connection",
                "bytes per connection (lower is better)",
                &bars(samples, peers, Metric::IdleBytes),
            ),
        },
    ];
    let plain = cpu(Load::Plain);
    let vs_c = ratio(samples, peers, plain, "reactor", "epoll (C)");
    let vs_tokio = ratio(samples, peers, plain, "reactor", "tokio");
    let node_vs = ratio(samples, peers, plain, "node", "reactor");
    let pipe = ratio(samples, peers, cpu(Load::Pipelined), "reactor", "epoll (C)");
    let p99 = Metric::Figure(Load::Plain, Figure::P99);
    let p99_vs_c = ratio(samples, peers, p99, "reactor", "epoll (C)");
    let idle = load::median_of(samples, peers, Metric::IdleBytes, "reactor");
    let traced = ratio(samples, peers, plain, TRACED, "reactor");
    let goals = vec![
        Goal::at_most(
            "Causal tracing on: HTTP keep-alive server CPU per request ≤ 1.03× tracing off",
            traced,
            1.03,
            times(traced),
        ),
        Goal::at_most(
            "HTTP keep-alive: server CPU per request ≤ 1.05× epoll (C)",
            vs_c,
            1.05,
            times(vs_c),
        ),
        Goal::at_most(
            "HTTP keep-alive: server CPU per request ≤ tokio's",
            vs_tokio,
            1.0,
            times(vs_tokio),
        ),
        Goal::at_least(
            "HTTP keep-alive: server CPU per request ≥ 2× better than node's",
            node_vs,
            2.0,
            format!("node uses {}", times(node_vs)),
        ),
        Goal::at_most(
            "HTTP pipelined ×16: server CPU per request ≤ 1.1× epoll (C)",
            pipe,
            1.1,
            times(pipe),
        ),
        Goal::at_most(
            "HTTP keep-alive: p99 latency ≤ 1.2× epoll (C)",
            p99_vs_c,
            1.2,
            times(p99_vs_c),
        ),
        Goal::at_most(
            "Memory per idle keep-alive connection at 10,000 ≤ 256 B",
            idle,
            256.0,
            idle.map_or_else(|| "n/a".into(), |b| format!("{} B", num(b))),
        ),
    ];
    (plots, goals)
}

/// The `scaling` section's plots and goal.
fn scaling_results(samples: &Samples, peers: &[Peer]) -> (Vec<Plot>, Vec<Goal>) {
    let series = |figure| -> Vec<plot::Series> {
        peers
            .iter()
            .enumerate()
            .map(|(p, peer)| plot::Series {
                name: peer.name.into(),
                highlight: peer.name == "reactor",
                points: (0..SCALE.len())
                    .filter_map(|i| {
                        let values =
                            samples.get(&Metric::Figure(Load::Conns(i), figure))?.get(p)?;
                        (!values.is_empty()).then(|| plot::Point {
                            x: SCALE[i] as f64,
                            median: load::median(values),
                            min: values.iter().copied().fold(f64::INFINITY, f64::min),
                            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                        })
                    })
                    .collect(),
            })
            .collect()
    };
    let plots = vec![
        Plot {
            name: "scaling-rate",
            title: "HTTP keep-alive: requests/s by connections".into(),
            svg: plot::line_chart(
                "HTTP keep-alive (wrk -t1): requests/s by connections",
                "connections",
                "requests/s",
                true,
                &series(Figure::Rate),
            ),
        },
        Plot {
            name: "scaling-cpu",
            title: "HTTP keep-alive: server CPU per request by connections".into(),
            svg: plot::line_chart(
                "HTTP keep-alive (wrk -t1): server CPU per request by connections",
                "connections",
                "server CPU µs per request",
                true,
                &series(Figure::Cpu),
            ),
        },
    ];
    let rate = |i, peer| {
        load::median_of(samples, peers, Metric::Figure(Load::Conns(i), Figure::Rate), peer)
    };
    let scale = |peer| rate(1, peer).zip(rate(3, peer)).map(|(a, b)| b / a);
    let wrk = load::median_of(samples, peers, Metric::Where(Load::Conns(3), Where::Wrk), "reactor");
    let shown = match (rate(1, "reactor"), rate(3, "reactor")) {
        (Some(a), Some(b)) => {
            // Beside it, the same ratio for the physical limit, and how busy the generator
            // was: on two cores, one `wrk` thread may be what runs out first.
            let mut shown =
                format!("{} at 10,000 ÷ {} at 100 = {}", num(b), num(a), times(scale("reactor")));
            if let Some(c) = scale("epoll (C)") {
                let _ = write!(shown, " (epoll (C): {})", times(Some(c)));
            }
            if let Some(wrk) = wrk {
                let _ = write!(shown, "; wrk at {wrk:.0}% of its core at 10,000");
            }
            shown
        }
        _ => "n/a".into(),
    };
    let goal = Goal::at_least(
        "Scaling: requests/s at 10,000 connections ≥ 0.8× at 100",
        scale("reactor"),
        0.8,
        shown,
    );
    (plots, vec![goal])
}
