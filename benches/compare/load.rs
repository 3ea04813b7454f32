//! What the sections of the comparison share.
//!
//! - The machine: `/proc` readers (CPU ticks of a process and of the whole machine, fields of
//!   `/proc/PID/status`, the load average), commands' output, CPU pinning with `taskset`, and
//!   the lines of the page's header that describe the run and the machine.
//! - The servers: a [`Peer`] to run and the [`Server`] it runs as, on 127.0.0.1, pinned to
//!   CPU 0, and stopped with SIGTERM (by a drop guard on an error path too).
//! - The load: blocking connections with every operation bounded by [`IO_TIMEOUT`].
//! - The results: samples per metric and per peer, the Markdown tables of medians (min–max)
//!   and of reactor's ratios to each peer, and the bars of a plot.
//! - The binaries: the reactor examples under test, built next to the bench, and the C peer
//!   `benches/peers/epoll_server.c`, built into `target/peers`.
//!
//! What differs between the sections (scenarios, load generators, metrics and their labels)
//! stays in each section.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, ErrorKind};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Bound on every blocking read, write and connect.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a server's start (`listening on` printed).
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a server's exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Every error is a message for the user, prefixed with the section's name by `main`.
pub type Res<T> = Result<T, String>;

// ---------------------------------------------------------------------------------------------
// The machine
// ---------------------------------------------------------------------------------------------

/// Output of a command, trimmed, or `None` if it could not run or failed.
pub fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A file of `/proc`, whole; the error names the path.
pub fn read_proc(path: &str) -> Res<String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

/// The 1, 5 and 15 minute load averages of `/proc/loadavg`, or `?`.
pub fn load_average() -> String {
    read_proc("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Fields of `/proc/PID/stat` after the command name, which is in parentheses and may hold
/// spaces: field N of the line (1-based, as in proc(5)) is at index N - 3.
pub fn stat_fields(pid: &str) -> Res<Vec<u64>> {
    let path = format!("/proc/{pid}/stat");
    let stat = read_proc(&path)?;
    let rest = stat.rsplit_once(')').ok_or_else(|| format!("{path}: no ')'"))?.1;
    Ok(rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect())
}

/// utime + stime of a process (fields 14 and 15), all threads, in clock ticks.
pub fn cpu_ticks(pid: &str) -> Res<u64> {
    let f = stat_fields(pid)?;
    match (f.get(11), f.get(12)) {
        (Some(u), Some(s)) => Ok(u + s),
        _ => Err(format!("/proc/{pid}/stat: too few fields")),
    }
}

/// Busy time of all CPUs together (user, nice, system, irq, softirq, steal), in clock ticks.
pub fn machine_busy_ticks() -> Res<u64> {
    let stat = read_proc("/proc/stat")?;
    let line = stat.lines().find(|l| l.starts_with("cpu ")).ok_or("/proc/stat: no cpu line")?;
    let fields: Vec<u64> =
        line.split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
    Ok([0, 1, 2, 5, 6, 7].iter().filter_map(|&i| fields.get(i)).sum())
}

/// A line `Key:   value ...` of `/proc/PID/status`, the value's first word.
pub fn status_field(pid: &str, key: &str) -> Res<String> {
    let path = format!("/proc/{pid}/status");
    read_proc(&path)?
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':').map(str::trim))
        .and_then(|v| v.split_whitespace().next())
        .map(str::to_owned)
        .ok_or_else(|| format!("{path}: no {key}"))
}

/// Clock ticks per second (`getconf CLK_TCK`, or 100), the unit of the `/proc` CPU times.
pub fn clk_tck() -> f64 {
    output_of("getconf", &["CLK_TCK"]).and_then(|s| s.parse().ok()).unwrap_or(100.0)
}

/// Raises this process's fd limit (the servers inherit it), and fails if it is too low for
/// `idle` connections and some to spare.
pub fn raise_fd_limit(idle: usize) -> Res<()> {
    let fd_limit = reactor::raise_fd_limit().map_err(|e| format!("raise_fd_limit: {e}"))?;
    if fd_limit < (idle + 100) as u64 {
        return Err(format!("the fd limit is {fd_limit}; {idle} idle connections need more"));
    }
    Ok(())
}

/// Pins this process, all its threads, to CPU 1. Returns whether it is pinned, and how it went
/// for the header.
pub fn pin_self(cpus: usize) -> (bool, String) {
    if cpus < 2 {
        return (false, format!("not pinned ({cpus} CPU)"));
    }
    let pid = std::process::id().to_string();
    let pinned = Command::new("taskset")
        .args(["-a", "-p", "-c", "1", &pid])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    match status_field("self", "Cpus_allowed_list") {
        Ok(list) if pinned && list == "1" => (
            true,
            "servers on CPU 0 (`taskset -c 0`); load generators and this process on CPU 1 \
             (`taskset -c 1`)"
                .into(),
        ),
        _ => (false, "not pinned (`taskset` missing or refused)".into()),
    }
}

/// A command, under `taskset -c CPU` if `pinned`.
pub fn pinned_command(argv: &[std::ffi::OsString], cpu: &str, pinned: bool) -> Command {
    if pinned {
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", cpu]).args(argv);
        cmd
    } else {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }
}

/// Waits for `child` to exit, up to `timeout`; past that, SIGKILL. Always reaps. `None` if it
/// had to be killed (or could not be waited for).
pub fn wait_or_kill(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Sends `signum`, then waits up to `timeout`; past that, SIGKILL. Always reaps.
pub fn signal_and_wait(child: &mut Child, signum: i32, timeout: Duration) -> Res<ExitStatus> {
    let _ = reactor::signal::kill(child.id(), signum);
    wait_or_kill(child, timeout)
        .ok_or_else(|| format!("still running {} s after the signal; killed", timeout.as_secs()))
}

/// The header's lines on the run and the machine: the command, the date and reactor's commit,
/// the machine, the pinning (as [`pin_self`] told it) and the load average before the run
/// (`load_before`) and now.
pub fn write_setup(out: &mut String, command: &str, cpus: usize, pinning: &str, load_before: &str) {
    let date = output_of("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|| "?".into());
    let kernel = read_proc("/proc/sys/kernel/osrelease").unwrap_or_else(|_| "?".into());
    let cpu_model = read_proc("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")?.split_once(':').map(|x| x.1.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "?".into());
    let git = output_of("git", &["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short", "HEAD"])
        .map(|head| {
            let dirty =
                output_of("git", &["-C", env!("CARGO_MANIFEST_DIR"), "status", "--porcelain"])
                    .is_some_and(|s| !s.is_empty());
            if dirty { format!("{head} + uncommitted changes") } else { head }
        })
        .unwrap_or_else(|| "?".into());
    let _ = writeln!(out, "- command: `{command}`");
    let _ = writeln!(out, "- date: {date}; reactor at {git}");
    let _ = writeln!(out, "- machine: `nproc` {cpus}, {cpu_model}, kernel {}", kernel.trim());
    let _ = writeln!(out, "- pinning: {pinning}");
    let _ = writeln!(
        out,
        "- load average (1, 5, 15 min): {load_before} before, {} after",
        load_average()
    );
}

/// The section's line on its rounds: how many, interleaved over which peers, the warm-up and
/// the measured window (`secs`), and how long the section took since `started`.
pub fn write_rounds(
    out: &mut String,
    ctx: &crate::Ctx,
    peers: &[Peer],
    secs: u64,
    started: Instant,
) {
    let names: Vec<&str> = peers.iter().map(|p| p.name).collect();
    let _ = writeln!(
        out,
        "- {} rounds (interleaved: {}, per scenario), each run on a fresh server: {:.2} s \
         warm-up, {secs} s measured; cells are median (min–max) over rounds; ratios are of the \
         medians; took {:.0} s",
        ctx.rounds,
        names.join(", "),
        ctx.warmup.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// The header's line on a peer: `Ok` with what runs, or `Err` with why the table has no
/// column for it.
pub fn write_peer(out: &mut String, name: &str, note: Result<&str, &str>) {
    let _ = match note {
        Ok(note) => writeln!(out, "- {name}: {note}"),
        Err(e) => writeln!(out, "- {name}: **{e}; no {name} column**"),
    };
}

// ---------------------------------------------------------------------------------------------
// The servers
// ---------------------------------------------------------------------------------------------

/// A server to measure, a column of the tables.
pub struct Peer {
    /// The column's name.
    pub name: &'static str,
    /// Program and arguments (before the address, for [`Start::PrintsAddr`]).
    pub argv: Vec<std::ffi::OsString>,
    /// How it is told where to listen, and how the harness learns it is ready.
    pub start: Start,
}

/// How a [`Peer`] starts.
pub enum Start {
    /// Run as `argv... 127.0.0.1:0`; it prints `listening on IP:PORT` once it listens.
    PrintsAddr,
    /// It needs a port of its own (nginx): the harness picks a free one, calls this with it for
    /// the arguments to append, and connects until the server accepts.
    Port(fn(u16) -> Res<Vec<std::ffi::OsString>>),
}

/// A running server. Dropping it stops it (SIGTERM, then SIGKILL) and reaps it.
pub struct Server {
    child: Option<Child>,
    pid: String,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `peer` on 127.0.0.1 (on CPU 0 if `pinned`) and waits until it listens.
    pub fn start(peer: &Peer, pinned: bool) -> Res<Server> {
        let mut cmd = pinned_command(&peer.argv, "0", pinned);
        let port = match peer.start {
            Start::PrintsAddr => {
                cmd.arg("127.0.0.1:0");
                None
            }
            Start::Port(args) => {
                let port = free_port()?;
                cmd.args(args(port)?);
                Some(port)
            }
        };
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("{}: cannot start: {e}", peer.name))?;
        // `taskset` execs the server, so the child's pid is the server's.
        let pid = child.id().to_string();
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut server = Server { child: Some(child), pid, addr: ([127, 0, 0, 1], 0).into() };
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            // Keep the pipe drained until the server exits.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        if let Some(port) = port {
            server.addr.set_port(port);
            server.wait_accepting(peer.name)?;
            return Ok(server);
        }
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(format!("{}: reading its stdout: {e}", peer.name)),
            Err(_) => return Err(format!("{}: no `listening on` within 10 s", peer.name)),
        };
        server.addr =
            line.trim().strip_prefix("listening on ").and_then(|a| a.parse().ok()).ok_or_else(
                || format!("{}: expected `listening on IP:PORT`, got {line:?}", peer.name),
            )?;
        Ok(server)
    }

    /// Connects until the server accepts, for at most [`START_TIMEOUT`]; fails at once if it
    /// exits.
    fn wait_accepting(&mut self, name: &str) -> Res<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&self.addr, IO_TIMEOUT).is_ok() {
                return Ok(());
            }
            let child = self.child.as_mut().expect("running");
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("{name}: exited with {status} before it listened"));
            }
            if Instant::now() > deadline {
                return Err(format!("{name}: not accepting on {} within 10 s", self.addr));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's CPU time so far, all threads, in clock ticks.
    pub fn cpu_ticks(&self) -> Res<u64> {
        cpu_ticks(&self.pid)
    }

    /// The server's resident memory (VmRSS), in KiB.
    pub fn rss_kib(&self) -> Res<u64> {
        let v = status_field(&self.pid, "VmRSS")?;
        v.parse().map_err(|_| format!("VmRSS {v:?}"))
    }

    /// SIGTERM, then waits; the server must exit with status 0 within 5 s.
    pub fn stop(mut self) -> Res<()> {
        let mut child = self.child.take().expect("not stopped yet");
        let status = signal_and_wait(&mut child, reactor::signal::SIGTERM, STOP_TIMEOUT)?;
        if status.success() { Ok(()) } else { Err(format!("exited with {status} on SIGTERM")) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = signal_and_wait(&mut child, reactor::signal::SIGTERM, STOP_TIMEOUT);
        }
    }
}

/// A measured window during which everything else on the machine (other processes and
/// interrupts) used more than this share of a core, in percent, is counted as disturbed.
pub const DISTURBED: f64 = 25.0;

/// Where the CPU went during a measured window, each in percent of one core.
pub struct Usage {
    /// The server.
    pub server: f64,
    /// The load generator.
    pub generator: f64,
    /// Busy time of the machine that is neither (other processes, and interrupts, ours
    /// included): how disturbed the window was.
    pub other: f64,
}

impl Usage {
    /// From the clock ticks of the server, of the generator and of the whole machine (busy)
    /// over a window of `secs`.
    pub fn new(server: u64, generator: u64, machine: u64, tck: f64, secs: f64) -> Usage {
        let share = |ticks: u64| 100.0 * ticks as f64 / tck / secs;
        Usage {
            server: share(server),
            generator: share(generator),
            other: share(machine.saturating_sub(server + generator)),
        }
    }

    /// Whether the rest of the machine used more than [`DISTURBED`].
    pub fn disturbed(&self) -> bool {
        self.other > DISTURBED
    }

    /// The progress line's part, the generator called `generator`.
    pub fn describe(&self, generator: &str) -> String {
        format!(
            "CPU: server {:.0}%, {generator} {:.0}%, all else {:.0}%",
            self.server, self.generator, self.other
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The load
// ---------------------------------------------------------------------------------------------

/// A port on 127.0.0.1 that was free a moment ago: bound with port 0, then released. Another
/// process could take it in between; the server's start then fails with a clear error.
pub fn free_port() -> Res<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    Ok(listener.local_addr().map_err(|e| format!("local_addr: {e}"))?.port())
}

/// A blocking connection to `addr`, Nagle off, every operation bounded by [`IO_TIMEOUT`].
pub fn connect(addr: SocketAddr) -> Res<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| format!("timeout: {e}"))?;
    s.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| format!("timeout: {e}"))?;
    Ok(s)
}

/// For `map_err`: an I/O error as a message, after `what`.
pub fn io_err(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

/// A bench's metric: a row of one of its two tables, which lists the rows in their order.
pub trait Row: Copy + Ord {
    /// The row's label, its first cell.
    fn label(self) -> String;

    /// Whether the row belongs to the second table (where the CPU went).
    fn is_util(self) -> bool;
}

/// Values per metric, per peer (index into the peers), in round order.
pub type Samples<M> = BTreeMap<M, Vec<Vec<f64>>>;

/// Adds a value of `metric` for peer `peer` of `peers`.
pub fn record<M: Row>(samples: &mut Samples<M>, peers: usize, peer: usize, metric: M, value: f64) {
    samples.entry(metric).or_insert_with(|| vec![Vec::new(); peers])[peer].push(value);
}

/// The median of `metric` for the peer named `name`, if it has values.
pub fn median_of<M: Row>(
    samples: &Samples<M>,
    peers: &[Peer],
    metric: M,
    name: &str,
) -> Option<f64> {
    let p = peers.iter().position(|peer| peer.name == name)?;
    let values = samples.get(&metric)?.get(p)?;
    (!values.is_empty()).then(|| median(values))
}

/// The ratio of the medians of `metric`, peer `a` to peer `b`, if both have values.
pub fn ratio<M: Row>(
    samples: &Samples<M>,
    peers: &[Peer],
    metric: M,
    a: &str,
    b: &str,
) -> Option<f64> {
    let (a, b) = (median_of(samples, peers, metric, a)?, median_of(samples, peers, metric, b)?);
    (b != 0.0).then(|| a / b)
}

/// A ratio for the goals table: `1.07×` or `n/a`.
pub fn times(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "n/a".into(), |r| format!("{r:.2}×"))
}

/// A bar per peer with values of `metric`: median and min–max, reactor highlighted.
pub fn bars<M: Row>(samples: &Samples<M>, peers: &[Peer], metric: M) -> Vec<crate::plot::Bar> {
    let Some(per_peer) = samples.get(&metric) else { return Vec::new() };
    peers
        .iter()
        .zip(per_peer)
        .filter(|(_, values)| !values.is_empty())
        .map(|(peer, values)| crate::plot::Bar {
            label: peer.name.into(),
            median: median(values),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            highlight: peer.name == "reactor",
        })
        .collect()
}

/// The median of `values`, which must not be empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Three significant digits or more, with thousands separators.
pub fn num(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let decimals = match v.abs() {
        x if x >= 100.0 => 0,
        x if x >= 10.0 => 1,
        x if x >= 1.0 => 2,
        _ => 3,
    };
    let s = format!("{v:.decimals$}");
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// A table cell: the median, then the min–max, or `n/a` without values.
pub fn cell(values: &[f64]) -> String {
    if values.is_empty() {
        return "n/a".into();
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{} ({}–{})", num(median(values)), num(min), num(max))
}

/// The table of the first (`util` false) or second kind. The first has, for each peer after
/// reactor (the first), a column with the ratio of reactor's median to that peer's.
pub fn table<M: Row>(out: &mut String, samples: &Samples<M>, peers: &[Peer], util: bool) {
    let names: Vec<&str> = peers.iter().map(|p| p.name).collect();
    // A ratio of CPU shares says nothing by itself; the first table's rows have one.
    let ratios: Vec<&str> = if util { Vec::new() } else { names[1..].to_vec() };
    let _ = write!(out, "| scenario | {} |", names.join(" | "));
    for other in &ratios {
        let _ = write!(out, " reactor ÷ {other} |");
    }
    out.push('\n');
    out.push_str(&"|---".repeat(1 + names.len() + ratios.len()));
    out.push_str("|\n");
    for (metric, per_peer) in samples.iter().filter(|(m, _)| m.is_util() == util) {
        let _ = write!(out, "| {} |", metric.label());
        for values in per_peer {
            let _ = write!(out, " {} |", cell(values));
        }
        for values in per_peer.iter().skip(1).take(ratios.len()) {
            let (a, b) = (median(&per_peer[0]), median(values));
            let both = !per_peer[0].is_empty() && !values.is_empty() && b != 0.0;
            let ratio = if both { format!("{:.2}", a / b) } else { "—".into() };
            let _ = write!(out, " {ratio} |");
        }
        out.push('\n');
    }
}

// ---------------------------------------------------------------------------------------------
// The binaries
// ---------------------------------------------------------------------------------------------

/// `target/<profile>` of the bench's binary (`target/<profile>/deps/<bench>-<hash>`).
pub fn profile_dir() -> Res<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    exe.parent().and_then(Path::parent).map(Path::to_path_buf).ok_or("odd current_exe path".into())
}

/// The cargo that runs the bench (`$CARGO`), or `cargo` on `PATH`.
pub fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The binary the environment variable `var` names, with the note for the header, if it is
/// set: `Err` if there is no such file.
pub fn env_binary(var: &str) -> Option<Res<(PathBuf, String)>> {
    let bin = PathBuf::from(std::env::var_os(var)?);
    let note = format!("`{var}={}` (used as it is)", bin.display());
    Some(if bin.is_file() { Ok((bin, note)) } else { Err(format!("{note}: no such file")) })
}

/// The reactor server `examples/<example>.rs`: the binary `var` names, or built now next to
/// the bench (`target/<profile>/examples/<example>`), with the note for the header.
pub fn example_binary(var: &str, example: &str) -> Res<(PathBuf, String)> {
    if let Some(found) = env_binary(var) {
        return found;
    }
    let bin = profile_dir()?.join("examples").join(example);
    let build = format!("cargo build --release --example {example}");
    eprintln!("compare: {build}");
    let status = Command::new(cargo())
        .args(["build", "--release", "--example", example])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err(format!("{build}: {status}"));
    }
    if !bin.is_file() {
        return Err(format!(
            "built, but {} is missing; set {var} to the {example} binary",
            bin.display()
        ));
    }
    let note = format!("`{}` (built by `{build}`)", bin.display());
    Ok((bin, note))
}

/// The C peer (run as `epoll_server echo` or `epoll_server http`): `EPOLL_SERVER_BIN`, or
/// built now into `target/peers` (or found there, newer than its source). `Err` is the note
/// for the header, the reason there is no epoll (C) column.
pub fn epoll_binary() -> Res<(PathBuf, String)> {
    if let Some(found) = env_binary("EPOLL_SERVER_BIN") {
        return found;
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/epoll_server.c");
    let dir = profile_dir()?.parent().ok_or("odd current_exe path")?.join("peers");
    let bin = dir.join("epoll_server");
    let command = format!("cc -O2 -o {} benches/peers/epoll_server.c", bin.display());
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let cached = matches!((modified(&src), modified(&bin)), (Some(s), Some(b)) if b >= s);
    if !cached {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // Built under another name and renamed, so that a concurrent run never sees half a
        // binary.
        let tmp = dir.join(format!("epoll_server.{}.tmp", std::process::id()));
        eprintln!("compare: {command}");
        let status = Command::new("cc").arg("-O2").arg("-o").arg(&tmp).arg(&src).status();
        match status {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err("no `cc` on PATH (Debian: `apt-get install gcc`)".into());
            }
            Err(e) => return Err(format!("running cc: {e}")),
            Ok(status) if !status.success() => {
                let _ = std::fs::remove_file(&tmp);
                return Err(format!("`{command}` failed ({status}); see its output above"));
            }
            Ok(_) => std::fs::rename(&tmp, &bin).map_err(|e| format!("{}: {e}", bin.display()))?,
        }
    }
    let cc = output_of("cc", &["--version"])
        .and_then(|v| v.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "`cc --version` failed".into());
    let how = if cached { "built earlier by" } else { "built by" };
    Ok((bin, format!("{how} `{command}` ({cc})")))
}
