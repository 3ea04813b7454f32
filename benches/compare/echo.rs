//! The echo section: `examples/echo.rs` against a hand-written C echo server on epoll (the
//! physical limit) and a Node.js one, under a load generator of our own that checks every
//! echoed byte.
//!
//! # What it runs
//!
//! - The reactor server: `target/release/examples/echo`, next to the bench's own binary,
//!   built by `$CARGO build --release --example echo` before the run (same target directory,
//!   so a stale server is never measured), unless `ECHO_BIN=/path/to/echo` names a binary to
//!   use as it is.
//! - The C peer, "epoll (C)": `benches/peers/epoll_server.c` run as `epoll_server echo`, what a
//!   careful C programmer writes for one core and the figure reactor is judged against: one
//!   thread, edge-triggered epoll, one 64 KiB read buffer for the loop, every read written back
//!   at once, the rest of a short write kept and reading stopped until it is flushed, Nagle off.
//!   The bench builds it with `cc -O2 -o target/peers/epoll_server
//!   benches/peers/epoll_server.c` (again only when the source is newer than the binary),
//!   unless `EPOLL_SERVER_BIN` names a binary to use as it is. Without `cc`, or if the build
//!   fails, the table has no epoll (C) column, and says so.
//! - The Node.js peer: `node benches/peers/echo.js` (`net.createServer`,
//!   `socket.pipe(socket)`, `noDelay` like reactor's listeners). `node` is looked up on `PATH`;
//!   without it the table has no node column, and says so.
//!
//! Each server listens on `127.0.0.1:0` and is started fresh for every run, pinned to CPU 0
//! with `taskset -c 0`. The load generator is this process, pinned (all its threads) to CPU 1
//! with `taskset -a -p -c 1` before it starts any thread, so server and generator never share
//! a core. Without `taskset` or a second CPU everything floats, and the header
//! says so.
//!
//! # Scenarios
//!
//! - ping-pong, 64-byte messages, on 1 connection and on 100: each connection has one message
//!   in flight; the next is sent once the echo is back and verified byte for byte. The 100
//!   connections are driven by one thread with blocking sockets, round robin (read the echo of
//!   connection i, send its next message), so 100 messages are always in flight and no epoll
//!   is needed on the generator's side.
//! - streaming: 16 KiB chunks written by one thread and read back by another on 1 connection;
//!   every byte checked against the pattern sent; MB/s is bytes echoed back (10^6 bytes).
//! - idle connections: after one warm-up connection, 10,000 connections each send and get back
//!   8 bytes (so the server has accepted and served each one); the server's VmRSS from
//!   `/proc/PID/status` is read before and after, and the difference divided by 10,000.
//!
//! Every timed run has a warm-up and then a measured window (the context's, as for HTTP). The server's CPU time over the window is utime + stime from
//! `/proc/PID/stat` (all its threads, in clock ticks of `getconf CLK_TCK`), reported per round
//! trip or per MB in microseconds, and as a share of one core beside the generator's own.
//!
//! The second table says where the CPU went in the windows: the server, the generator, and all
//! else on the machine (busy time in `/proc/stat` that is neither: other processes, and
//! interrupts, our own traffic's included). The header counts the windows in which all else
//! passed 25% of a core as disturbed. Where the generator is near 100% of its core, the
//! throughput row measures the generator as much as the server; the server's CPU per round
//! trip or per MB is then the figure to quote.
//!
//! Rounds are interleaved, reactor then epoll (C) then node, for each scenario of each round;
//! the table gives the median over rounds and the min–max, and the ratio of reactor's median to
//! each peer's. `reactor ÷ epoll (C)` on the server CPU rows is the figure to quote: how far
//! reactor is from the physical limit. Every echoed byte is checked, on every server (see the
//! scenarios), so a server that loses or garbles data fails the run. Every socket operation has
//! a 10 s timeout and every server is stopped with SIGTERM (and must exit 0 within 5 s) or, by
//! a drop guard on an error path, killed; so the run is bounded and leaves no process behind.

use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use crate::load::{
    self, DISTURBED, Peer, Res, Row, Server, Start, Usage, bars, connect, cpu_ticks, io_err,
    machine_busy_ticks, num, ratio, record, table, times,
};
use crate::plot;
use crate::{Ctx, Goal, Plot, Section};

/// Size of one ping-pong message.
const MSG: usize = 64;
/// Connections of the many-connection ping-pong.
const MANY: usize = 100;
/// Size of one streaming write.
const CHUNK: usize = 16 * 1024;
/// Connections held open for the memory figure.
const IDLE: usize = 10_000;
/// Connections opened (and served) at a time while filling the server with idle ones; well
/// under the servers' listen backlog of 1024.
const IDLE_BATCH: usize = 100;
/// Period of the streaming pattern: a prime, so that chunk and read boundaries keep shifting.
const PERIOD: usize = 251;
/// Read buffer of the streaming reader.
const READ_BUF: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// The load
// ---------------------------------------------------------------------------------------------

/// Message `seq` of connection `conn`: both numbers, then bytes that depend on both.
fn fill(buf: &mut [u8; MSG], conn: usize, seq: u64) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[8..16].copy_from_slice(&(conn as u64).to_le_bytes());
    for (k, b) in buf[16..].iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(k * 7 + conn) as u8;
    }
}

/// Ping-pong on `conns` connections, one message in flight on each, until `stop`; counts
/// verified round trips in `done`.
fn ping_pong(addr: SocketAddr, conns: usize, done: &AtomicU64, stop: &AtomicBool) -> Res<()> {
    let mut streams = (0..conns).map(|_| connect(addr)).collect::<Res<Vec<_>>>()?;
    let mut out = [0; MSG];
    let mut back = [0; MSG];
    let mut seq = vec![0u64; conns];
    for (i, s) in streams.iter_mut().enumerate() {
        fill(&mut out, i, 0);
        s.write_all(&out).map_err(io_err("ping-pong write"))?;
    }
    loop {
        let stopping = stop.load(Relaxed);
        for (i, s) in streams.iter_mut().enumerate() {
            s.read_exact(&mut back).map_err(io_err("ping-pong read"))?;
            fill(&mut out, i, seq[i]);
            if back != out {
                return Err(format!("ping-pong: connection {i}, message {}: wrong echo", seq[i]));
            }
            seq[i] += 1;
            if !stopping {
                fill(&mut out, i, seq[i]);
                s.write_all(&out).map_err(io_err("ping-pong write"))?;
            }
            done.fetch_add(1, Relaxed);
        }
        if stopping {
            return Ok(());
        }
    }
}

/// The stream's bytes from offset `off` on: `pattern[off % PERIOD..]`.
fn pattern() -> Vec<u8> {
    (0..PERIOD + READ_BUF.max(CHUNK)).map(|k| (k % PERIOD) as u8).collect()
}

/// One writer thread sends 16 KiB chunks until `stop`, then half-closes; this thread reads the
/// echo to its end, checks every byte, and counts them in `done`.
fn streaming(addr: SocketAddr, done: &AtomicU64, stop: &Arc<AtomicBool>) -> Res<()> {
    let stream = connect(addr)?;
    let mut writer = stream.try_clone().map_err(io_err("clone"))?;
    let pattern = Arc::new(pattern());
    let writer = {
        let (pattern, stop) = (Arc::clone(&pattern), Arc::clone(stop));
        thread::spawn(move || -> Res<u64> {
            let mut off = 0u64;
            while !stop.load(Relaxed) {
                let p = (off % PERIOD as u64) as usize;
                writer.write_all(&pattern[p..p + CHUNK]).map_err(io_err("stream write"))?;
                off += CHUNK as u64;
            }
            writer.shutdown(Shutdown::Write).map_err(io_err("shutdown"))?;
            Ok(off)
        })
    };
    let mut reader = &stream;
    let mut buf = vec![0; READ_BUF];
    let mut off = 0u64;
    let read = loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => break Err(format!("stream read: {e}")),
        };
        let p = (off % PERIOD as u64) as usize;
        if buf[..n] != pattern[p..p + n] {
            break Err(format!(
                "stream: wrong byte in the echo between {off} and {}",
                off + n as u64
            ));
        }
        off += n as u64;
        done.fetch_add(n as u64, Relaxed);
    };
    if read.is_err() {
        // Unblocks the writer if the server stopped reading.
        stop.store(true, Relaxed);
        let _ = stream.shutdown(Shutdown::Both);
    }
    let written = writer.join().map_err(|_| "stream writer panicked".to_owned())?;
    read?;
    let written = written?;
    if written != off {
        return Err(format!("stream: sent {written} bytes, got {off} back"));
    }
    Ok(())
}

/// One timed run's window.
struct Window {
    /// Units of work (round trips or bytes) per second.
    rate: f64,
    /// Server CPU microseconds per unit of work.
    cpu_us_per_unit: f64,
    /// Where the CPU went.
    usage: Usage,
}

/// Runs `work` on its own thread: warm-up, measured window, stop, join (the join checks the
/// work's own verification).
fn timed<F>(ctx: &Ctx, server: &Server, work: F) -> Res<Window>
where
    F: FnOnce(&AtomicU64, &Arc<AtomicBool>) -> Res<()> + Send + 'static,
{
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (done, stop) = (Arc::clone(&done), Arc::clone(&stop));
        thread::spawn(move || {
            let r = work(&done, &stop);
            stop.store(true, Relaxed);
            r
        })
    };
    let snapshot = || -> Res<(Instant, u64, u64, u64, u64)> {
        let (t, work) = (Instant::now(), done.load(Relaxed));
        Ok((t, work, server.cpu_ticks()?, cpu_ticks("self")?, machine_busy_ticks()?))
    };
    let measured = (|| {
        thread::sleep(ctx.warmup);
        let a = snapshot()?;
        thread::sleep(Duration::from_secs(ctx.secs));
        let b = snapshot()?;
        Ok::<_, String>((a, b))
    })();
    stop.store(true, Relaxed);
    worker.join().map_err(|_| "load generator panicked".to_owned())??;
    let ((t0, w0, s0, g0, m0), (t1, w1, s1, g1, m1)) = measured?;
    if w1 <= w0 {
        return Err("no work done in the window".into());
    }
    let secs = (t1 - t0).as_secs_f64();
    let work = (w1 - w0) as f64;
    let server_secs = (s1 - s0) as f64 / ctx.tck;
    Ok(Window {
        rate: work / secs,
        cpu_us_per_unit: server_secs * 1e6 / work,
        usage: Usage::new(s1 - s0, g1 - g0, m1 - m0, ctx.tck, secs),
    })
}

/// Fills the server with [`IDLE`] served connections; returns its VmRSS before and after, in
/// KiB, and the connections (to be closed after the server is stopped).
fn idle_connections(server: &Server) -> Res<(u64, u64, Vec<TcpStream>)> {
    // One connection first, so that what the first connection costs once (read buffer, JIT,
    // lazily built tables) is not spread over the 10,000.
    let mut warm = connect(server.addr)?;
    let mut back = [0; 8];
    warm.write_all(b"warm-up!").map_err(io_err("idle write"))?;
    warm.read_exact(&mut back).map_err(io_err("idle read"))?;
    let before = server.rss_kib()?;
    let mut conns = Vec::with_capacity(IDLE + 1);
    while conns.len() < IDLE {
        let first = conns.len();
        for i in first..(first + IDLE_BATCH).min(IDLE) {
            let mut s = connect(server.addr)?;
            s.write_all(&(i as u64).to_le_bytes()).map_err(io_err("idle write"))?;
            conns.push(s);
        }
        for (i, s) in conns.iter_mut().enumerate().skip(first) {
            s.read_exact(&mut back).map_err(io_err("idle read"))?;
            if back != (i as u64).to_le_bytes() {
                return Err(format!("idle connection {i}: wrong echo"));
            }
        }
    }
    let after = server.rss_kib()?;
    conns.push(warm);
    Ok((before, after, conns))
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Metric {
    Pp1Rate,
    Pp1Cpu,
    PpManyRate,
    PpManyCpu,
    StreamRate,
    StreamCpu,
    IdleBytes,
    IdleBase,
    Pp1Util,
    Pp1Gen,
    Pp1Other,
    PpManyUtil,
    PpManyGen,
    PpManyOther,
    StreamUtil,
    StreamGen,
    StreamOther,
}

impl Row for Metric {
    fn label(self) -> String {
        let label = match self {
            Metric::Pp1Rate => "ping-pong 64 B, 1 conn: round trips/s (higher is better)",
            Metric::Pp1Cpu => "ping-pong 64 B, 1 conn: server CPU µs per round trip (lower)",
            Metric::PpManyRate => "ping-pong 64 B, 100 conns: round trips/s (higher)",
            Metric::PpManyCpu => "ping-pong 64 B, 100 conns: server CPU µs per round trip (lower)",
            Metric::StreamRate => "streaming 16 KiB, 1 conn: MB/s echoed (higher)",
            Metric::StreamCpu => "streaming 16 KiB, 1 conn: server CPU µs per MB (lower)",
            Metric::IdleBytes => "10,000 idle conns: server RSS bytes per conn (lower)",
            Metric::IdleBase => "server RSS before them (one conn open), MiB (lower)",
            Metric::Pp1Util => "ping-pong, 1 conn: server CPU, % of a core",
            Metric::Pp1Gen => "ping-pong, 1 conn: load generator CPU, % of a core",
            Metric::PpManyUtil => "ping-pong, 100 conns: server CPU, % of a core",
            Metric::PpManyGen => "ping-pong, 100 conns: load generator CPU, % of a core",
            Metric::StreamUtil => "streaming: server CPU, % of a core",
            Metric::StreamGen => "streaming: load generator CPU, % of a core",
            Metric::Pp1Other => {
                "ping-pong, 1 conn: all else (other processes, interrupts), % of a core"
            }
            Metric::PpManyOther => "ping-pong, 100 conns: all else, % of a core",
            Metric::StreamOther => "streaming: all else, % of a core",
        };
        label.into()
    }

    /// Whether the row belongs to the second table (where the CPU went).
    fn is_util(self) -> bool {
        self >= Metric::Pp1Util
    }
}

/// Values per metric, per peer (index into the peers), in round order.
type Samples = load::Samples<Metric>;

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// The echo section.
pub fn run(ctx: &Ctx, echo: &(PathBuf, String)) -> Res<Section> {
    let started = Instant::now();
    let mut notes = String::new();
    let mut peers =
        vec![Peer { name: "reactor", argv: vec![echo.0.clone().into()], start: Start::PrintsAddr }];
    load::write_peer(&mut notes, "reactor", Ok(&echo.1));
    match &ctx.epoll {
        Ok((bin, note)) => {
            let argv = vec![bin.into(), "echo".into()];
            peers.push(Peer { name: "epoll (C)", argv, start: Start::PrintsAddr });
            load::write_peer(&mut notes, "epoll (C)", Ok(&format!("`epoll_server echo`, {note}")));
        }
        Err(e) => load::write_peer(&mut notes, "epoll (C)", Err(e)),
    }
    match load::output_of("node", &["--version"]) {
        Some(v) => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/echo.js");
            let argv = vec!["node".into(), script.into()];
            peers.push(Peer { name: "node", argv, start: Start::PrintsAddr });
            load::write_peer(&mut notes, "node", Ok(&format!("{v}, `benches/peers/echo.js`")));
        }
        None => load::write_peer(&mut notes, "node", Err("`node --version` failed (not on PATH?)")),
    }

    let mut samples = Samples::new();
    // Timed windows, and those where the rest of the machine used more than DISTURBED.
    let (mut windows, mut disturbed) = (0, 0);
    let n = peers.len();
    for round in 1..=ctx.rounds {
        for (scenario, name) in
            ["ping-pong 1", "ping-pong 100", "streaming", "idle"].into_iter().enumerate()
        {
            for (p, peer) in peers.iter().enumerate() {
                let server = Server::start(peer, ctx.pinned)?;
                let addr = server.addr;
                let what = format!("echo: round {round}/{}, {name}, {}", ctx.rounds, peer.name);
                let progress = match scenario {
                    0 | 1 => {
                        let conns = if scenario == 0 { 1 } else { MANY };
                        let w = timed(ctx, &server, move |done, stop| {
                            ping_pong(addr, conns, done, stop)
                        })
                        .map_err(|e| format!("{what}: {e}"))?;
                        windows += 1;
                        disturbed += usize::from(w.usage.disturbed());
                        let [rate, cpu, util, generator, other] = if scenario == 0 {
                            [
                                Metric::Pp1Rate,
                                Metric::Pp1Cpu,
                                Metric::Pp1Util,
                                Metric::Pp1Gen,
                                Metric::Pp1Other,
                            ]
                        } else {
                            [
                                Metric::PpManyRate,
                                Metric::PpManyCpu,
                                Metric::PpManyUtil,
                                Metric::PpManyGen,
                                Metric::PpManyOther,
                            ]
                        };
                        record(&mut samples, n, p, rate, w.rate);
                        record(&mut samples, n, p, cpu, w.cpu_us_per_unit);
                        record(&mut samples, n, p, util, w.usage.server);
                        record(&mut samples, n, p, generator, w.usage.generator);
                        record(&mut samples, n, p, other, w.usage.other);
                        let (rate, cpu) = (num(w.rate), num(w.cpu_us_per_unit));
                        format!(
                            "{rate} round trips/s, {cpu} µs server CPU each; {}",
                            w.usage.describe("generator")
                        )
                    }
                    2 => {
                        let w = timed(ctx, &server, move |done, stop| streaming(addr, done, stop))
                            .map_err(|e| format!("{what}: {e}"))?;
                        windows += 1;
                        disturbed += usize::from(w.usage.disturbed());
                        let mb_s = w.rate / 1e6;
                        let us_per_mb = w.cpu_us_per_unit * 1e6;
                        record(&mut samples, n, p, Metric::StreamRate, mb_s);
                        record(&mut samples, n, p, Metric::StreamCpu, us_per_mb);
                        record(&mut samples, n, p, Metric::StreamUtil, w.usage.server);
                        record(&mut samples, n, p, Metric::StreamGen, w.usage.generator);
                        record(&mut samples, n, p, Metric::StreamOther, w.usage.other);
                        let (rate, cpu) = (num(mb_s), num(us_per_mb));
                        format!(
                            "{rate} MB/s, {cpu} µs server CPU per MB; {}",
                            w.usage.describe("generator")
                        )
                    }
                    _ => {
                        let (before, after, conns) =
                            idle_connections(&server).map_err(|e| format!("{what}: {e}"))?;
                        let per_conn = after.saturating_sub(before) as f64 * 1024.0 / IDLE as f64;
                        record(&mut samples, n, p, Metric::IdleBytes, per_conn);
                        record(&mut samples, n, p, Metric::IdleBase, before as f64 / 1024.0);
                        // Stop the server first: its side closes, ours leaves no TIME_WAIT.
                        server.stop().map_err(|e| format!("{what}: {e}"))?;
                        drop(conns);
                        eprintln!(
                            "compare: {what}: {} bytes per idle connection, {:.1} MiB before",
                            num(per_conn),
                            before as f64 / 1024.0
                        );
                        continue;
                    }
                };
                server.stop().map_err(|e| format!("{what}: {e}"))?;
                eprintln!("compare: {what}: {progress}");
            }
        }
    }

    let mut out = notes;
    let names: Vec<&str> = peers.iter().map(|p| p.name).collect();
    load::write_rounds(&mut out, ctx, &peers, ctx.secs, started);
    let _ = writeln!(
        out,
        "- disturbed windows (the rest of the machine above {DISTURBED}% of a core, see the \
         \"all else\" rows): {disturbed} of {windows}"
    );
    out.push('\n');
    table(&mut out, &samples, &peers, false);
    out.push_str("\nWhere the CPU went during the measured windows:\n\n");
    table(&mut out, &samples, &peers, true);

    let plots = vec![
        Plot {
            name: "echo-pingpong-cpu",
            title: "Echo ping-pong, 100 connections: server CPU per round trip".into(),
            svg: plot::bar_chart(
                "Echo ping-pong 64 B, 100 connections: server CPU per round trip",
                "µs per round trip (lower is better)",
                &bars(&samples, &peers, Metric::PpManyCpu),
            ),
        },
        Plot {
            name: "echo-streaming-cpu",
            title: "Echo streaming 16 KiB chunks: server CPU per MB".into(),
            svg: plot::bar_chart(
                "Echo streaming 16 KiB chunks: server CPU per MB echoed",
                "µs per MB (lower is better)",
                &bars(&samples, &peers, Metric::StreamCpu),
            ),
        },
    ];
    let pp = ratio(&samples, &peers, Metric::PpManyCpu, "reactor", "epoll (C)");
    let stream = ratio(&samples, &peers, Metric::StreamCpu, "reactor", "epoll (C)");
    let goals = vec![
        Goal::at_most(
            "Echo ping-pong, 100 connections: server CPU per round trip ≤ 1.05× epoll (C)",
            pp,
            1.05,
            times(pp),
        ),
        Goal::at_most(
            "Echo streaming: server CPU per MB ≤ 1.1× epoll (C)",
            stream,
            1.1,
            times(stream),
        ),
    ];
    Ok(Section { title: format!("Echo: {}", names.join(" vs ")), markdown: out, plots, goals })
}
