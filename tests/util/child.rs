//! Helpers for the black-box tests that run a built example binary as a child process
//! (`echo_example` and `http_example`): finding the example next to the test binary and
//! checking that it is up to date, a guard that kills and reaps a child when dropped, a running
//! server with the address it announced and what `/proc` says about it, a watchdog that kills
//! every child and aborts the test binary instead of hanging, bounded polling, and the socket
//! and data helpers both tests use.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use reactor::signal::kill;

/// How long one socket read or write may block before the test calls it a hang.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a child may take to print its `listening on` line, or to exit when told to.
pub const START_LIMIT: Duration = Duration::from_secs(10);
pub const EXIT_LIMIT: Duration = Duration::from_secs(10);

/// The example binary `name`: `target/<profile>/examples/<name>`, next to this test binary's
/// `target/<profile>/deps/` directory. A plain `cargo test` builds it, but
/// `cargo test --test <name>_example` alone does not (it builds only the selected target), so
/// the binary must exist and be newer than the sources it is built from: never a silent skip,
/// and never a stale binary. Checked once per test binary.
pub fn example_binary(name: &str) -> PathBuf {
    static CHECKED: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    // A check that panicked left no entry: the next caller checks (and fails) again.
    let mut checked = CHECKED.lock().unwrap_or_else(PoisonError::into_inner);
    checked.entry(name.to_owned()).or_insert_with(|| check_example(name)).clone()
}

fn check_example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("locate the test binary");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap_or_else(|| panic!("unexpected test binary location {}", exe.display()));
    let binary = profile_dir.join("examples").join(name);
    let build = format!(
        "build it first with `cargo build --example {name}` (same profile) or a plain \
         `cargo test`; `cargo test --test {name}_example` alone does not build examples"
    );
    let built = std::fs::metadata(&binary)
        .and_then(|meta| meta.modified())
        .unwrap_or_else(|err| panic!("no {name} example at {}: {err}; {build}", binary.display()));
    // Cargo's dependency file for the binary lists every source it was built from (paths with
    // spaces would be escaped; these have none).
    let dep_info = binary.with_extension("d");
    let deps = std::fs::read_to_string(&dep_info)
        .unwrap_or_else(|err| panic!("read {}: {err}; {build}", dep_info.display()));
    let sources = deps.lines().flat_map(|line| line.split_whitespace().skip(1));
    for source in sources.map(Path::new) {
        let changed = std::fs::metadata(source).and_then(|meta| meta.modified());
        // A source that is gone was removed from the build: the binary is stale too.
        let changed = changed.unwrap_or_else(|err| {
            panic!("{} is built from {}: {err}; {build}", binary.display(), source.display())
        });
        assert!(
            changed <= built,
            "{} is older than {}: {build}",
            binary.display(),
            source.display()
        );
    }
    binary
}

/// The pids of the children alive right now, for the watchdog to kill before it aborts.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn live() -> MutexGuard<'static, Vec<u32>> {
    // A test that panicked while holding the lock leaves the list itself consistent.
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A child process that is killed and reaped when dropped. Its pid stays registered in
/// [`LIVE`] until it is reaped, so the watchdog never signals a recycled pid.
pub struct Process {
    pub child: Child,
}

impl Process {
    pub fn spawn(mut cmd: Command) -> Process {
        Process::try_spawn(&mut cmd).unwrap_or_else(|err| panic!("start {cmd:?}: {err}"))
    }

    pub fn try_spawn(cmd: &mut Command) -> io::Result<Process> {
        let mut live = live();
        let child = cmd.spawn()?;
        live.push(child.id());
        Ok(Process { child })
    }

    /// The exit status, if the child has exited (and is now reaped).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let mut live = live();
        let status = self.child.try_wait().expect("poll the child");
        if status.is_some() {
            live.retain(|&pid| pid != self.child.id());
        }
        status
    }

    /// Waits at most `limit` for the child to exit.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
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

/// Runs `cmd`, with its stdout and stderr captured, until it exits by itself: its status,
/// stdout and stderr, or `None` if it still runs after `limit` (it is then killed and reaped).
pub fn run_captured(mut cmd: Command, limit: Duration) -> Option<(ExitStatus, String, String)> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut process = Process::spawn(cmd);
    let status = process.wait_timeout(limit)?;
    let mut stdout = String::new();
    let mut stderr = String::new();
    process.child.stdout.take().unwrap().read_to_string(&mut stdout).expect("read stdout");
    process.child.stderr.take().unwrap().read_to_string(&mut stderr).expect("read stderr");
    Some((status, stdout, stderr))
}

/// A running example server and the address it announced. Each test file adds the
/// constructors for its own example.
pub struct Server {
    pub process: Process,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `cmd` and waits for its `listening on IP:PORT` line.
    pub fn spawn(mut cmd: Command) -> Server {
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

    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    fn proc_file(&self, name: &str) -> String {
        let path = format!("/proc/{}/{name}", self.pid());
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("read {path}: {err}"))
    }

    /// Resident memory in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = self.proc_file("status");
        let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("a VmRSS line");
        line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmRSS in kB")
    }

    /// User plus system CPU time in clock ticks (`/proc/<pid>/stat` fields 14 and 15).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = self.proc_file("stat");
        // Fields after the command name, which is in parentheses and may contain spaces;
        // the first of them is field 3 (the state).
        let rest = &stat[stat.rfind(')').expect("a stat line") + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields[n - 3].parse::<u64>().expect("a tick count");
        field(14) + field(15)
    }

    /// The soft limit on open files (`/proc/<pid>/limits`).
    pub fn max_open_files(&self) -> u64 {
        let limits = self.proc_file("limits");
        let line =
            limits.lines().find(|line| line.starts_with("Max open files")).expect("a limit line");
        line.split_whitespace().nth(3).and_then(|soft| soft.parse().ok()).expect("a soft limit")
    }

    /// How many of the server's descriptors are sockets.
    pub fn socket_count(&self) -> usize {
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
pub struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

impl Watchdog {
    pub fn arm(name: &'static str, limit: Duration) -> Watchdog {
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
pub fn poll_until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
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

/// Makes the stream's reads and writes fail after [`IO_TIMEOUT`] instead of hanging.
pub fn set_timeouts(stream: &TcpStream) {
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("set a read timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("set a write timeout");
}

/// `len` pseudo-random bytes (xorshift64*), the same for the same seed.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
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
#[track_caller]
pub fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: first wrong byte at offset {i} of {}", want.len());
    }
    assert_eq!(got.len(), want.len(), "{what}: length");
}
