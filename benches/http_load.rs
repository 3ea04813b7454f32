//! End to end: `examples/http.rs` against a hand-written C server on epoll (the physical
//! limit), a tokio server and Node.js's `http` module, under `wrk`, in one run, with the table
//! for a release note.
//!
//! `cargo bench --bench http_load` (about two and a half minutes), or
//! `cargo bench --bench http_load -- --quick` (under a minute: 3 rounds of 1 s windows).
//! Options after `--`: `--quick`, `--rounds N` (at least 3; default 5), `--secs S` (the
//! measured window of each `wrk` run, in whole seconds as `wrk -d` takes them; default 3). Run
//! without `--bench` (as `cargo test --benches` does) it does nothing.
//!
//! # What it runs
//!
//! - The reactor server: `target/release/examples/http`, next to this bench's own binary
//!   (`target/release/deps/http_load-*`). The bench first runs `$CARGO build --release
//!   --example http` (same target directory, so a stale server is never measured), unless
//!   `HTTP_BIN=/path/to/http` names a binary to use as it is. It runs as `http --idle-timeout
//!   60000 127.0.0.1:0`: a kept-alive connection may sit idle 60 s instead of the default 5 s,
//!   so that the first of the 10,000 idle connections below is still open when the last one
//!   is (Node's peer gets the same 60 s; the C and tokio peers have no idle timeout).
//! - The C peer, "epoll (C)": `benches/peers/epoll_server.c` run as `epoll_server http`, what a
//!   careful C programmer writes for one core and the figure reactor is judged against: one
//!   thread, edge-triggered epoll, one 64 KiB read buffer for the loop, every complete request
//!   head of a read answered with the same fixed response (shaped byte for byte like reactor's,
//!   `Date` included) in one write, partial heads kept, keep-alive. The bench builds it with
//!   `cc -O2 -o target/peers/epoll_server benches/peers/epoll_server.c` (again only when the
//!   source is newer than the binary), unless `EPOLL_SERVER_BIN` names a binary to use as it
//!   is. Without `cc`, or if the build fails, the table has no epoll (C) column, and says so.
//! - The tokio peer: `benches/peers/tokio_http/`, a project of its own (its empty
//!   `[workspace]` keeps tokio out of reactor's dependency tree): one current-thread runtime,
//!   one task per connection, `httparse`, every complete request in the read buffer answered in
//!   one write. The bench builds it with `$CARGO build --release --locked --manifest-path
//!   benches/peers/tokio_http/Cargo.toml` into `target/peers/` (cached there; the first build
//!   fetches tokio from crates.io), unless `TOKIO_HTTP_BIN` names a binary to use as it is. If
//!   the build fails the table has no tokio column, and says so.
//! - The Node.js peer: `node benches/peers/http.js` (`http.createServer`, Nagle off, an idle
//!   keep-alive timeout of 60 s). `node` is looked up on `PATH`; without it the table has no
//!   node column, and says so.
//! - The load generator for throughput and latency: `wrk` (Debian's package `wrk`), looked up
//!   on `PATH`. Without it the two `wrk` scenarios are skipped, and the header says so in bold;
//!   the memory scenario needs no `wrk` and still runs.
//!
//! All four servers serve `GET /plaintext` as `Hello, World!` in `text/plain`, with
//! keep-alive and pipelining. Each listens on `127.0.0.1:0` and is started fresh for every run,
//! pinned to CPU 0 with `taskset -c 0`; `wrk` runs as `taskset -c 1 wrk ...`, and this process
//! pins itself (all its threads) to CPU 1 with `taskset -a -p -c 1` once the builds are done,
//! so server and load never share a core. Without `taskset` or a second CPU everything floats,
//! and the header says so. Everything is on the loopback interface.
//!
//! # Scenarios
//!
//! Every run first checks the server: one `GET /plaintext` on a fresh connection, then 16
//! pipelined in one write on the same connection; each response must be a `200` with a
//! `Content-Length` body of `Hello, World!` and no `Connection: close`. The size of the first
//! response (status line, headers and body) goes in the header, since it is what every
//! request costs on the wire.
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
//!   All 10,000 must still be open afterwards. This process raises its `RLIMIT_NOFILE` soft
//!   limit to the hard one (`reactor::raise_fd_limit`) before it starts any server, so the
//!   servers inherit the raised limit too.
//!
//! Each `wrk` run has a warm-up (`wrk` stopped with SIGINT after 0.5 s; 0.25 s with
//! `--quick`) and then a measured run of `wrk -d S` (3 s; 1 s with `--quick`). Requests/s is
//! `wrk`'s own figure. The server's CPU time over the measured run is utime + stime from
//! `/proc/PID/stat` (all its threads, in clock ticks of `getconf CLK_TCK`), read just before
//! `wrk` starts and just after it exits, and divided by `wrk`'s count of requests: server CPU
//! per request in microseconds, the figure that does not depend on how fast the generator is.
//! `wrk`'s own CPU is this process's cutime + cstime (its reaped children) over the same span.
//!
//! The second table says where the CPU went in the measured runs: the server, `wrk`, and all
//! else on the machine (busy time in `/proc/stat` that is neither: other processes, and
//! interrupts, our own traffic's included), with `wrk`'s error counts (socket errors plus
//! non-2xx responses) per run. The header counts the runs in which all else passed 25% of a
//! core as disturbed. Where `wrk` is near 100% of its core, requests/s measures `wrk` as much
//! as the server; the server's CPU per request is then the figure to quote.
//!
//! Rounds are interleaved, reactor then epoll (C) then tokio then node, for each scenario of
//! each round; the table gives the median over rounds and the min–max, and the ratio of
//! reactor's median to each peer's. `reactor ÷ epoll (C)` on the server CPU per request rows is
//! the figure to quote: how far reactor is from the physical limit. Every socket operation has
//! a 10 s timeout, every `wrk` run is killed if it outlives its duration by 15 s, and every
//! server is stopped with SIGTERM (and must exit 0 within 5 s) or, by a drop guard on an error
//! path, killed; so the run is bounded and leaves no process behind.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

#[path = "support/load.rs"]
mod load;

use load::{
    Peer, Res, Row, STOP_TIMEOUT, Server, connect, io_err, machine_busy_ticks, num, pinned_command,
    record, signal_and_wait, table, wait_or_kill,
};

/// Connections of both `wrk` scenarios, all on one `wrk` thread.
const CONNS: usize = 50;
/// Requests per batch in the pipelined scenario.
const DEPTH: usize = 16;
/// Connections held open for the memory figure.
const IDLE: usize = 10_000;
/// Connections opened (and served) at a time while filling the server with idle ones; well
/// under the servers' listen backlog of 1024.
const IDLE_BATCH: usize = 100;
/// The reactor server's `--idle-timeout`, in milliseconds: longer than filling it with
/// [`IDLE`] connections can take. Node's peer has the same.
const IDLE_TIMEOUT_MS: &str = "60000";
/// How long a `wrk` run may outlive its duration before it is killed.
const WRK_GRACE: Duration = Duration::from_secs(15);
/// A measured run during which everything else on the machine (other processes and
/// interrupts) used more than this share of a core, in percent, is counted as disturbed.
const DISTURBED: f64 = 25.0;
/// The request of the checks and of the idle connections (`wrk` sends its own, much alike).
const REQUEST: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
/// The body every server must answer it with.
const BODY: &[u8] = b"Hello, World!";
/// Longest response head the checks accept.
const MAX_HEAD: usize = 8 * 1024;

fn main() -> ExitCode {
    load::exit_code("http_load", run())
}

struct Config {
    rounds: usize,
    warmup: Duration,
    /// Whole seconds, for `wrk -d`.
    secs: u64,
    /// The command line, as a user would type it.
    command: String,
}

/// `Some(config)` to run, `None` to do nothing (test mode, or a filter that is not ours).
fn parse_args() -> Res<Option<Config>> {
    let parse_secs = |value: &str| {
        let s: u64 = value.parse().map_err(|_| format!("bad --secs {value:?} (whole seconds)"))?;
        if !(1..=30).contains(&s) {
            return Err("--secs must be between 1 and 30".into());
        }
        Ok(s)
    };
    let Some(args) = load::parse_args("http_load", parse_secs)? else { return Ok(None) };
    let (default_rounds, warmup, default_secs) =
        if args.quick { (3, 0.25, 1) } else { (5, 0.5, 3) };
    Ok(Some(Config {
        rounds: args.rounds.unwrap_or(default_rounds),
        warmup: Duration::from_secs_f64(warmup),
        secs: args.secs.unwrap_or(default_secs),
        command: args.command,
    }))
}

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
fn read_responses(s: &mut TcpStream, count: usize) -> Res<usize> {
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
    /// Server and `wrk` CPU use, percent of one core.
    server_util: f64,
    gen_util: f64,
    /// Busy time of the machine that is neither (other processes, and interrupts, ours
    /// included), percent of one core: how disturbed the run was.
    other_util: f64,
}

impl Window {
    fn cpu(&self) -> String {
        format!(
            "CPU: server {:.0}%, wrk {:.0}%, all else {:.0}%",
            self.server_util, self.gen_util, self.other_util
        )
    }
}

/// `wrk`'s arguments for a scenario: `-d` `secs`, or a minute for a warm-up (which is stopped
/// early with SIGINT).
fn wrk_args(pipelined: bool, addr: SocketAddr, secs: Option<u64>) -> Vec<String> {
    let mut args: Vec<String> = ["-t1", &format!("-c{CONNS}")].map(str::to_owned).to_vec();
    args.push(format!("-d{}s", secs.unwrap_or(60)));
    if pipelined {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/pipeline.lua");
        args.extend(["-s".into(), script.display().to_string()]);
    } else {
        args.push("--latency".into());
    }
    args.push(format!("http://{addr}/plaintext"));
    if pipelined {
        args.extend(["--".into(), DEPTH.to_string()]);
    }
    args
}

/// Warm-up (a `wrk` stopped after `cfg.warmup`), then the measured `wrk` run.
fn timed(cfg: &Config, server: &Server, pinned: bool, pipelined: bool, tck: f64) -> Res<Window> {
    let warm = Wrk::start(&wrk_args(pipelined, server.addr, None), pinned)?;
    thread::sleep(cfg.warmup);
    warm.finish(true, STOP_TIMEOUT).map_err(|e| format!("warm-up: {e}"))?;

    let snapshot = || -> Res<(Instant, u64, u64, u64)> {
        Ok((Instant::now(), server.cpu_ticks()?, children_ticks()?, machine_busy_ticks()?))
    };
    let (t0, s0, g0, m0) = snapshot()?;
    let wrk = Wrk::start(&wrk_args(pipelined, server.addr, Some(cfg.secs)), pinned)?;
    let out = wrk.finish(false, Duration::from_secs(cfg.secs) + WRK_GRACE)?;
    let (t1, s1, g1, m1) = snapshot()?;
    let wrk = parse_wrk(&out)?;
    let secs = (t1 - t0).as_secs_f64();
    let server_secs = (s1 - s0) as f64 / tck;
    Ok(Window {
        cpu_us: server_secs * 1e6 / wrk.requests as f64,
        server_util: 100.0 * server_secs / secs,
        gen_util: 100.0 * (g1 - g0) as f64 / tck / secs,
        other_util: 100.0 * (m1 - m0).saturating_sub((s1 - s0) + (g1 - g0)) as f64 / tck / secs,
        wrk,
    })
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Metric {
    PlainRate,
    PlainP50,
    PlainP99,
    PlainCpu,
    PipeRate,
    PipeCpu,
    IdleBytes,
    IdleBase,
    PlainUtil,
    PlainGen,
    PlainOther,
    PlainErrors,
    PipeUtil,
    PipeGen,
    PipeOther,
    PipeErrors,
}

impl Row for Metric {
    fn label(self) -> &'static str {
        match self {
            Metric::PlainRate => "plaintext, 50 conns: requests/s (higher is better)",
            Metric::PlainP50 => "plaintext, 50 conns: latency p50, µs (lower)",
            Metric::PlainP99 => "plaintext, 50 conns: latency p99, µs (lower)",
            Metric::PlainCpu => "plaintext, 50 conns: server CPU µs per request (lower)",
            Metric::PipeRate => "pipelined ×16, 50 conns: requests/s (higher)",
            Metric::PipeCpu => "pipelined ×16, 50 conns: server CPU µs per request (lower)",
            Metric::IdleBytes => "10,000 idle keep-alive conns: server RSS bytes per conn (lower)",
            Metric::IdleBase => "server RSS before them (one conn open), MiB (lower)",
            Metric::PlainUtil => "plaintext: server CPU, % of a core",
            Metric::PlainGen => "plaintext: wrk CPU, % of a core",
            Metric::PlainOther => "plaintext: all else (other processes, interrupts), % of a core",
            Metric::PlainErrors => "plaintext: wrk errors (socket + non-2xx) per run",
            Metric::PipeUtil => "pipelined: server CPU, % of a core",
            Metric::PipeGen => "pipelined: wrk CPU, % of a core",
            Metric::PipeOther => "pipelined: all else, % of a core",
            Metric::PipeErrors => "pipelined: wrk errors (socket + non-2xx) per run",
        }
    }

    /// Whether the row belongs to the second table (where the CPU went).
    fn is_util(self) -> bool {
        self >= Metric::PlainUtil
    }
}

/// Values per metric, per peer (index into the peers), in round order.
type Samples = load::Samples<Metric>;

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// The tokio peer: `TOKIO_HTTP_BIN`, or built now into `target/peers`. `Err` is the note for
/// the header, the reason there is no tokio column.
fn tokio_binary() -> Res<(PathBuf, String)> {
    if let Some(found) = load::env_binary("TOKIO_HTTP_BIN") {
        return found;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/tokio_http");
    let target = load::profile_dir()?.parent().ok_or("odd current_exe path")?.join("peers");
    let bin = target.join("release").join("tokio_http");
    let command = "cargo build --release --locked --manifest-path \
                   benches/peers/tokio_http/Cargo.toml";
    eprintln!("http_load: {command} (into {})", target.display());
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

fn run() -> Res<()> {
    let Some(cfg) = parse_args()? else { return Ok(()) };
    let started = Instant::now();
    let load_before = load::load_average();
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let (http, http_note) = load::example_binary("http_load", "HTTP_BIN", "http")?;
    let epoll = load::epoll_binary("http_load", "http");
    if let Err(e) = &epoll {
        eprintln!("http_load: no epoll (C) column: {e}");
    }
    let tokio = tokio_binary();
    if let Err(e) = &tokio {
        eprintln!("http_load: no tokio column: {e}");
    }
    let (pinned, pinning) = load::pin_self(
        cpus,
        "servers on CPU 0 (`taskset -c 0`), `wrk` and this process on CPU 1 (`taskset -c 1`)",
    );
    load::raise_fd_limit(IDLE)?;
    let tck = load::clk_tck();
    // `wrk -v` prints `wrk VERSION [epoll] Copyright ...` and its usage, and exits with 1.
    let wrk_version = Command::new("wrk").arg("-v").output().ok().and_then(|out| {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let first = text.lines().next().filter(|l| l.starts_with("wrk"))?;
        Some(first.split(" Copyright").next().unwrap_or(first).trim().to_owned())
    });
    if wrk_version.is_none() {
        eprintln!("http_load: no `wrk` on PATH (Debian: apt-get install wrk); memory only");
    }

    let node_version = load::output_of("node", &["--version"]);
    let reactor_argv = vec![http.into(), "--idle-timeout".into(), IDLE_TIMEOUT_MS.into()];
    let mut peers = vec![Peer { name: "reactor", argv: reactor_argv }];
    if let Ok((bin, _)) = &epoll {
        peers.push(Peer { name: "epoll (C)", argv: vec![bin.into(), "http".into()] });
    }
    if let Ok((bin, _)) = &tokio {
        peers.push(Peer { name: "tokio", argv: vec![bin.into()] });
    }
    if node_version.is_some() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/http.js");
        peers.push(Peer { name: "node", argv: vec!["node".into(), script.into()] });
    }

    let mut samples = Samples::new();
    // Response sizes, per peer, as first seen.
    let mut sizes = vec![0; peers.len()];
    // Measured runs, those where the rest of the machine used more than DISTURBED, and those
    // where wrk saw errors.
    let (mut windows, mut disturbed, mut with_errors) = (0, 0, 0);
    let n = peers.len();
    let scenarios: &[&str] =
        if wrk_version.is_some() { &["plaintext", "pipelined", "idle"] } else { &["idle"] };
    for round in 1..=cfg.rounds {
        for &name in scenarios {
            for (p, peer) in peers.iter().enumerate() {
                let server = Server::start(peer, pinned)?;
                let what = format!("round {round}/{}, {name}, {}", cfg.rounds, peer.name);
                let (conn, size) = check(&server).map_err(|e| format!("{what}: {e}"))?;
                if sizes[p] == 0 {
                    sizes[p] = size;
                }
                if name == "idle" {
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
                        "http_load: {what}: {} bytes per idle connection, {:.1} MiB before \
                         (filled in {:.1} s)",
                        num(per_conn),
                        before as f64 / 1024.0,
                        filling.elapsed().as_secs_f64()
                    );
                    continue;
                }
                drop(conn);
                let pipelined = name == "pipelined";
                let w = timed(&cfg, &server, pinned, pipelined, tck)
                    .map_err(|e| format!("{what}: {e}"))?;
                server.stop().map_err(|e| format!("{what}: {e}"))?;
                windows += 1;
                disturbed += usize::from(w.other_util > DISTURBED);
                with_errors += usize::from(w.wrk.errors > 0);
                let [rate, cpu, util, generator, other, errors] = if pipelined {
                    [
                        Metric::PipeRate,
                        Metric::PipeCpu,
                        Metric::PipeUtil,
                        Metric::PipeGen,
                        Metric::PipeOther,
                        Metric::PipeErrors,
                    ]
                } else {
                    [
                        Metric::PlainRate,
                        Metric::PlainCpu,
                        Metric::PlainUtil,
                        Metric::PlainGen,
                        Metric::PlainOther,
                        Metric::PlainErrors,
                    ]
                };
                record(&mut samples, n, p, rate, w.wrk.rate);
                record(&mut samples, n, p, cpu, w.cpu_us);
                record(&mut samples, n, p, util, w.server_util);
                record(&mut samples, n, p, generator, w.gen_util);
                record(&mut samples, n, p, other, w.other_util);
                record(&mut samples, n, p, errors, w.wrk.errors as f64);
                let mut latency = String::new();
                if !pipelined {
                    // Record both or neither, so that the two rows have the same rounds.
                    if let (Some(p50), Some(p99)) = (w.wrk.p50, w.wrk.p99) {
                        record(&mut samples, n, p, Metric::PlainP50, p50);
                        record(&mut samples, n, p, Metric::PlainP99, p99);
                        latency = format!(", p50 {} µs, p99 {} µs", num(p50), num(p99));
                    } else {
                        latency = ", no latency percentiles from wrk".into();
                    }
                }
                eprintln!(
                    "http_load: {what}: {} requests/s{latency}, {} µs server CPU each, {} \
                     wrk errors; {}",
                    num(w.wrk.rate),
                    num(w.cpu_us),
                    w.wrk.errors,
                    w.cpu()
                );
            }
        }
    }

    let mut out = String::new();
    let names: Vec<&str> = peers.iter().map(|p| p.name).collect();
    let _ = writeln!(out, "\n## HTTP: {}\n", names.join(" vs "));
    load::write_setup(&mut out, &cfg.command, cpus, &pinning, &load_before);
    load::write_peer(&mut out, "reactor", Ok(&http_note));
    let epoll_note = epoll.as_ref().map(|(_, note)| note.as_str()).map_err(String::as_str);
    load::write_peer(&mut out, "epoll (C)", epoll_note);
    let tokio_note = tokio.as_ref().map(|(_, note)| note.as_str()).map_err(String::as_str);
    load::write_peer(&mut out, "tokio", tokio_note);
    let node_note = node_version.map(|v| format!("{v}, `benches/peers/http.js`"));
    let node_note = node_note.as_deref().ok_or("`node --version` failed (not on PATH?)");
    load::write_peer(&mut out, "node", node_note);
    let sizes: Vec<String> =
        names.iter().zip(&sizes).map(|(name, size)| format!("{name} {size} B")).collect();
    let _ = writeln!(
        out,
        "- response to `GET /plaintext` (status line, headers, body): {}",
        sizes.join(", ")
    );
    match &wrk_version {
        Some(v) => {
            let secs = cfg.secs;
            let _ = writeln!(
                out,
                "- load: {v}; plaintext `wrk -t1 -c{CONNS} -d{secs}s --latency \
                 http://ADDR/plaintext`; pipelined `wrk -t1 -c{CONNS} -d{secs}s -s \
                 benches/peers/pipeline.lua http://ADDR/plaintext -- {DEPTH}` (no latency: \
                 wrk's percentiles are broken under pipelining)"
            );
        }
        None => {
            let _ = writeln!(
                out,
                "- load: **no `wrk` on PATH (Debian: `apt-get install wrk`): the plaintext and \
                 pipelined scenarios were skipped**"
            );
        }
    }
    let _ = writeln!(
        out,
        "- {} rounds (interleaved: {}, per scenario), each run on a fresh server: {:.2} s \
         warm-up, {} s measured; cells are median (min–max) over rounds; ratios are of the \
         medians; took {:.0} s",
        cfg.rounds,
        names.join(", "),
        cfg.warmup.as_secs_f64(),
        cfg.secs,
        started.elapsed().as_secs_f64()
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
    print!("{out}");
    Ok(())
}
