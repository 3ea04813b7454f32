//! Child processes: output and input streams, exit codes and signals, spawn errors, and no
//! zombie left behind, whether the handle is closed early or the loop is dropped.

use std::cell::RefCell;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::process::{Input, SpawnOptions};
use reactor::signal::SIGTERM;
use reactor::{Conn, Core, Error, EventLoop, Process, Stream, StreamHandler};

mod util;
use util::{Log, within};

/// Collects what a child writes on one stream, and logs the stream's life.
struct Collect {
    name: &'static str,
    out: Rc<RefCell<Vec<u8>>>,
    log: Log,
}

impl StreamHandler for Collect {
    fn on_open(&mut self, _conn: &mut Conn<'_>) {
        self.log.push(format!("{} open", self.name));
    }
    fn on_data(&mut self, _conn: &mut Conn<'_>, data: &[u8]) {
        self.out.borrow_mut().extend_from_slice(data);
    }
    fn on_close(&mut self, _core: &mut Core, _stream: Stream, error: Option<io::Error>) {
        self.log.push(format!("{} closed {:?}", self.name, error.map(|e| e.kind())));
    }
}

fn collect(name: &'static str, log: &Log) -> (Collect, Rc<RefCell<Vec<u8>>>) {
    let out = Rc::new(RefCell::new(Vec::new()));
    (Collect { name, out: out.clone(), log: log.clone() }, out)
}

fn sh(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.arg("-c").arg(script);
    command
}

type Exit = Rc<RefCell<Vec<io::Result<ExitStatus>>>>;

/// An `on_exit` that records every status it gets.
fn record(exits: &Exit) -> impl FnOnce(&mut Core, Process, io::Result<ExitStatus>) + 'static {
    let exits = exits.clone();
    move |_, _, status| exits.borrow_mut().push(status)
}

/// What `/proc` says of `pid`: `None` once it is gone (reaped), else its state letter (`Z`
/// for a zombie).
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ...": the state follows the last ')', since comm may contain one.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Waits, at most `limit`, for `pid` to be reaped; its last state if it was not.
fn wait_until_gone(pid: u32, limit: Duration) -> Result<(), Option<char>> {
    let deadline = Instant::now() + limit;
    loop {
        match proc_state(pid) {
            None => return Ok(()),
            Some(state) if Instant::now() > deadline => return Err(Some(state)),
            // Polling another process's state: there is nothing to wait on instead.
            Some(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

#[test]
fn output_arrives_on_its_streams_and_the_exit_code_on_exit() {
    within(Duration::from_secs(20), || {
        let mut lp = EventLoop::new().unwrap();
        let log = Log::new();
        let (stdout, out) = collect("stdout", &log);
        let (stderr, err) = collect("stderr", &log);
        let exits = Exit::default();
        let options = SpawnOptions::new().stdout(stdout).stderr(stderr);
        let child = lp.spawn(&mut sh("echo hello; echo oops >&2; exit 3"), options, record(&exits));
        let child = child.unwrap();
        assert!(child.stdin.is_none() && child.stdout.is_some() && child.stderr.is_some());
        assert_eq!(lp.process_pid(child.process).unwrap(), child.pid);
        lp.run().unwrap();

        assert_eq!(&out.borrow()[..], b"hello\n");
        assert_eq!(&err.borrow()[..], b"oops\n");
        let exits = exits.borrow();
        assert_eq!(exits.len(), 1);
        assert_eq!(exits[0].as_ref().unwrap().code(), Some(3));
        let mut log = log.take();
        log.sort();
        assert_eq!(log, ["stderr closed None", "stderr open", "stdout closed None", "stdout open"]);
        // The exit was reported: the handle closed itself, and the child is reaped.
        assert!(matches!(lp.process_pid(child.process), Err(Error::Closed(_))));
        assert_eq!(proc_state(child.pid), None);
    });
}

/// Writes `data` to its stream with backpressure, then shuts it down.
struct Feed {
    data: Rc<Vec<u8>>,
    sent: usize,
}

impl Feed {
    fn pump(&mut self, conn: &mut Conn<'_>) {
        while self.sent < self.data.len() {
            let end = (self.sent + 16 * 1024).min(self.data.len());
            let more = conn.write(&self.data[self.sent..end]);
            self.sent = end;
            if !more {
                return; // on_drain continues
            }
        }
        conn.shutdown();
    }
}

impl StreamHandler for Feed {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.pump(conn);
    }
    fn on_data(&mut self, _conn: &mut Conn<'_>, _data: &[u8]) {}
    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        self.pump(conn);
    }
}

#[test]
fn stdin_takes_a_megabyte_with_backpressure_and_shutdown_ends_it() {
    within(Duration::from_secs(20), || {
        let mut lp = EventLoop::new().unwrap();
        let log = Log::new();
        let data: Rc<Vec<u8>> = Rc::new((0..1 << 20).map(|i: u32| (i * 7 % 251) as u8).collect());
        let (stdout, out) = collect("stdout", &log);
        let feed = Feed { data: data.clone(), sent: 0 };
        let exits = Exit::default();
        let options = SpawnOptions::new().stdin(feed).stdout(stdout);
        lp.spawn(&mut Command::new("cat"), options, record(&exits)).unwrap();
        lp.run().unwrap();
        assert_eq!(out.borrow().len(), data.len());
        assert!(out.borrow()[..] == data[..], "cat's output differs from its input");
        assert!(exits.borrow()[0].as_ref().unwrap().success());
    });
}

#[test]
fn a_command_that_does_not_exist_fails_at_spawn_and_never_exits() {
    let mut lp = EventLoop::new().unwrap();
    let exits = Exit::default();
    let log = Log::new();
    let (stdout, _) = collect("stdout", &log);
    let options = SpawnOptions::new().stdout(stdout).stdin(Input);
    let err =
        lp.spawn(&mut Command::new("/nonexistent/command"), options, record(&exits)).unwrap_err();
    match err {
        Error::Io(err) => assert_eq!(err.kind(), io::ErrorKind::NotFound),
        other => panic!("expected NotFound, got {other:?}"),
    }
    // Nothing was left behind to keep the loop alive, and no callback ran.
    assert!(!lp.alive());
    lp.run().unwrap();
    assert!(exits.borrow().is_empty());
    assert_eq!(log.take(), Vec::<String>::new());
}

#[test]
fn a_child_killed_by_a_signal_reports_the_signal() {
    within(Duration::from_secs(20), || {
        let mut lp = EventLoop::new().unwrap();
        let exits = Exit::default();
        let child = lp.spawn(Command::new("sleep").arg("30"), SpawnOptions::new(), record(&exits));
        let child = child.unwrap();
        lp.process_kill(child.process, 0).unwrap(); // signal 0: it exists
        lp.process_kill(child.process, SIGTERM).unwrap();
        lp.run().unwrap();
        let exits = exits.borrow();
        let status = exits[0].as_ref().unwrap();
        assert_eq!((status.code(), status.signal()), (None, Some(SIGTERM)));
        // Once the exit is reported the pid may be reused: killing is refused.
        assert!(matches!(lp.process_kill(child.process, SIGTERM), Err(Error::Closed(_))));
    });
}

#[test]
fn many_children_each_report_their_own_exit_once() {
    within(Duration::from_secs(30), || {
        let mut lp = EventLoop::new().unwrap();
        let codes = Rc::new(RefCell::new(Vec::new()));
        for code in 0..20 {
            let codes = codes.clone();
            let on_exit = move |_: &mut Core, _, status: io::Result<ExitStatus>| {
                codes.borrow_mut().push((code, status.unwrap().code()));
            };
            lp.spawn(&mut sh(&format!("exit {code}")), SpawnOptions::new(), on_exit).unwrap();
        }
        lp.run().unwrap();
        let mut codes = codes.take();
        codes.sort();
        let expected: Vec<_> = (0..20).map(|code| (code, Some(code))).collect();
        assert_eq!(codes, expected);
    });
}

#[test]
fn a_child_whose_handle_was_closed_is_still_reaped() {
    within(Duration::from_secs(20), || {
        let mut lp = EventLoop::new().unwrap();
        let exits = Exit::default();
        // `read` waits for stdin: the child exits when we shut it down.
        let options = SpawnOptions::new().stdin(Input);
        let child = lp.spawn(&mut sh("read line"), options, record(&exits)).unwrap();
        lp.close(child.process).unwrap();
        lp.shutdown(child.stdin.unwrap()).unwrap();
        // Keep the loop turning until the child is gone from /proc, which happens only when
        // the loop reaps it on SIGCHLD (the closure never sleeps; `within` bounds the wait).
        let pid = child.pid;
        lp.set_interval(Duration::from_millis(1), move |core, me| {
            if proc_state(pid).is_none() {
                core.close(me).unwrap();
            }
        });
        lp.run().unwrap();
        assert_eq!(proc_state(pid), None);
        assert!(exits.borrow().is_empty(), "a closed handle reported an exit");
    });
}

#[test]
fn dropping_the_loop_leaves_no_zombie() {
    let mut lp = EventLoop::new().unwrap();
    // Exits as soon as its stdin closes, which dropping the loop does.
    let options = SpawnOptions::new().stdin(Input);
    let child = lp.spawn(&mut sh("read line"), options, |_, _, _| {}).unwrap();
    // And one that would run for long, killed because it asked to be.
    let options = SpawnOptions::new().kill_on_drop(true);
    let sleeper = lp.spawn(Command::new("sleep").arg("30"), options, |_, _, _| {}).unwrap();
    assert!(proc_state(child.pid).is_some() && proc_state(sleeper.pid).is_some());
    drop(lp);
    assert_eq!(wait_until_gone(child.pid, Duration::from_secs(10)), Ok(()));
    assert_eq!(wait_until_gone(sleeper.pid, Duration::from_secs(10)), Ok(()));
}

#[test]
fn an_unreferenced_child_does_not_keep_the_loop_alive() {
    let mut lp = EventLoop::new().unwrap();
    let options = SpawnOptions::new().kill_on_drop(true);
    let child = lp.spawn(Command::new("sleep").arg("30"), options, |_, _, _| {}).unwrap();
    lp.unref(child.process).unwrap();
    assert!(!lp.alive());
    lp.run().unwrap(); // returns at once
    drop(lp);
    assert_eq!(wait_until_gone(child.pid, Duration::from_secs(10)), Ok(()));
}

#[test]
fn a_bad_signal_number_is_refused() {
    let mut lp = EventLoop::new().unwrap();
    let options = SpawnOptions::new().kill_on_drop(true);
    let child = lp.spawn(Command::new("sleep").arg("30"), options, |_, _, _| {}).unwrap();
    match lp.process_kill(child.process, 1000) {
        Err(Error::Io(err)) => assert_eq!(err.kind(), io::ErrorKind::InvalidInput),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    lp.close(child.process).unwrap();
    lp.run().unwrap();
    drop(lp);
    assert_eq!(wait_until_gone(child.pid, Duration::from_secs(10)), Ok(()));
}
