//! Loop metrics and handle introspection: the counters, loop timing, handle counts, queued
//! bytes, `dump_handles`, `alive_reasons` and the JSON of a snapshot (see `reactor::metrics`).

mod util;

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reactor::metrics::{LAG_BUCKETS, LagHistogram};
use reactor::{AliveReason, Conn, EventLoop, StreamHandler};
use util::{Count, virtual_loop, within};

const MIB: usize = 1024 * 1024;

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A handler that ignores what it reads.
struct Discard;

impl StreamHandler for Discard {
    fn on_data(&mut self, _: &mut Conn<'_>, _: &[u8]) {}
}

/// Computes (does not sleep) for `duration`: a callback that blocks the loop.
fn spin(duration: Duration) {
    let start = Instant::now();
    while start.elapsed() < duration {
        std::hint::spin_loop();
    }
}

// ---------------------------------------------------------------------------------------------
// Counters.

#[test]
fn counters_count_iterations_and_the_events_each_poll_dispatched() {
    within(Duration::from_secs(10), || {
        let path = std::env::temp_dir()
            .join(format!("reactor-metrics-{}-events.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut lp = EventLoop::new().unwrap();
        let listener = lp.listen_unix(&path, |_| Discard).unwrap();

        lp.run_nowait().unwrap();
        lp.run_nowait().unwrap();
        let idle = lp.metrics();
        assert_eq!((idle.iterations, idle.events, idle.max_events_per_iteration), (2, 0, 0));
        assert_eq!(idle.events_per_iteration(), 0.0);

        // Three clients connect before the loop looks: one event for the listener, which
        // accepts all three.
        let mut clients: Vec<_> = (0..3).map(|_| UnixStream::connect(&path).unwrap()).collect();
        lp.run_nowait().unwrap();
        let accepted = lp.metrics();
        assert_eq!(accepted.handles.stream, 3, "all three accepted in one pass");
        assert_eq!((accepted.iterations, accepted.events), (3, 1));

        // Each client writes (into the stream's socket buffer, synchronously): one event per
        // stream, all in the next poll.
        for client in &mut clients {
            client.write_all(b"x").unwrap();
        }
        lp.run_nowait().unwrap();
        let read = lp.metrics();
        assert_eq!((read.iterations, read.events, read.max_events_per_iteration), (4, 4, 3));
        assert_eq!(read.events_per_iteration(), 1.0);
        lp.close(listener).unwrap();
    });
}

/// The child half of [`out_of_descriptors_counts_emfile_events`]: run in a process of its own
/// under a low descriptor limit, so that using up its descriptors disturbs no other test.
const EMFILE_CHILD: &str = "REACTOR_METRICS_EMFILE_CHILD";

#[test]
fn out_of_descriptors_counts_emfile_events() {
    if std::env::var_os(EMFILE_CHILD).is_some() {
        return emfile_child();
    }
    let output = within(Duration::from_secs(30), || {
        // `sh` lowers the soft limit, then becomes this test binary running this test alone.
        Command::new("sh")
            .arg("-c")
            .arg("ulimit -S -n 64 && exec \"$0\" \"$@\"")
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "out_of_descriptors_counts_emfile_events", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(EMFILE_CHILD, "1")
            .output()
            .unwrap()
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the child failed: {stdout}\n{stderr}");
    assert!(stdout.contains("emfile_events: 1\n"), "{stdout}\n{stderr}");
}

fn emfile_child() {
    let mut lp = EventLoop::new().unwrap();
    let listener = lp.listen_tcp(localhost(), |_| Discard).unwrap();
    let addr = lp.local_addr(listener).unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    // Use up every descriptor left: the listener's accept fails with EMFILE.
    let mut hoard = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => hoard.push(file),
            Err(err) if err.raw_os_error() == Some(libc::EMFILE) => break,
            Err(err) => panic!("unexpected error while using up descriptors: {err}"),
        }
        assert!(hoard.len() < 100_000, "the descriptor limit did not apply");
    }
    assert_eq!(lp.metrics().emfile_events, 0);
    lp.run_nowait().unwrap();
    let metrics = lp.metrics();
    assert_eq!(metrics.handles.stream, 0, "no descriptor, no stream");
    // The loop shed the connection with its spare descriptor: the client sees it closed.
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    match client.read(&mut [0; 16]) {
        Ok(0) => {}
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the shed connection was not closed: {other:?}"),
    }
    println!("emfile_events: {}", metrics.emfile_events);
}

// ---------------------------------------------------------------------------------------------
// Timing.

#[test]
fn with_timing_off_no_time_is_measured() {
    within(Duration::from_secs(10), || {
        let mut lp = EventLoop::new().unwrap();
        assert!(!lp.loop_timing(), "off by default");
        lp.set_timeout(Duration::from_millis(2), |_| spin(Duration::from_millis(1)));
        lp.run().unwrap();
        let metrics = lp.metrics();
        assert!(metrics.iterations >= 1);
        assert!(!metrics.timing);
        assert_eq!((metrics.idle, metrics.busy), (Duration::ZERO, Duration::ZERO));
        assert_eq!(metrics.phases.total(), Duration::ZERO);
        assert_eq!(metrics.lag, LagHistogram::default());
        assert_eq!(metrics.utilization(None), 0.0);
    });
}

#[test]
fn with_timing_on_the_wait_in_poll_is_idle_time() {
    within(Duration::from_secs(10), || {
        let started = Instant::now();
        let mut lp = EventLoop::builder().loop_timing(true).build().unwrap();
        assert!(lp.loop_timing());
        // The loop sleeps in poll for 20 ms: the sleep is what is measured.
        lp.set_timeout(Duration::from_millis(20), |_| {});
        lp.run().unwrap();
        let metrics = lp.metrics();
        let wall = started.elapsed();

        assert!(metrics.timing);
        assert!(metrics.idle >= Duration::from_millis(10), "idle {:?}", metrics.idle);
        assert!(metrics.busy > Duration::ZERO, "the phases took some time");
        assert!(metrics.idle + metrics.busy <= wall, "idle + busy is the time timing was on");
        assert!(metrics.phases.total() <= metrics.busy, "{metrics:?}");
        let utilization = metrics.utilization(None);
        assert!(utilization > 0.0 && utilization < 0.5, "utilization {utilization}");
        assert!(metrics.lag.count() >= 1, "a sample per poll after the first");
    });
}

#[test]
fn a_busy_callback_shows_in_the_lag_maximum_and_in_the_timers_phase() {
    within(Duration::from_secs(10), || {
        let mut lp = EventLoop::builder().loop_timing(true).build().unwrap();
        lp.run_nowait().unwrap(); // one poll, so that the next iteration's lag is measured
        let before = lp.metrics();
        lp.set_timeout(Duration::ZERO, |_| spin(Duration::from_millis(20)));
        lp.run().unwrap();
        let metrics = lp.metrics();

        let lag = &metrics.lag;
        assert!(lag.max() >= Duration::from_millis(20), "{lag:?}");
        assert!(lag.p99() >= Duration::from_millis(20) && lag.p99() <= lag.max(), "{lag:?}");
        // 20 ms = 20,000 µs falls in the bucket "under 32,768 µs" (2^15) or a later one.
        let slow: u64 = lag.counts()[15..].iter().sum();
        assert!(slow >= 1, "{lag:?}");
        assert!(metrics.phases.timers >= Duration::from_millis(20), "{:?}", metrics.phases);
        assert!(before.phases.timers < Duration::from_millis(20));
        assert!(metrics.phases.check < Duration::from_millis(20), "{:?}", metrics.phases);

        // Over the interval, the loop hardly waited at all.
        let utilization = metrics.utilization(Some(&before));
        assert!(utilization > 0.5, "utilization over the interval {utilization}");
    });
}

#[test]
fn timing_turned_off_keeps_its_times_and_measures_no_more() {
    within(Duration::from_secs(10), || {
        let mut lp = EventLoop::builder().loop_timing(true).build().unwrap();
        lp.set_timeout(Duration::from_millis(5), |core| core.set_loop_timing(false));
        lp.run().unwrap();
        assert!(!lp.loop_timing(), "turned off in a callback");
        let frozen = lp.metrics();
        assert!(frozen.idle > Duration::ZERO);

        lp.set_timeout(Duration::from_millis(5), |_| spin(Duration::from_millis(1)));
        lp.run().unwrap();
        let later = lp.metrics();
        assert_eq!(
            (later.idle, later.busy, later.phases),
            (frozen.idle, frozen.busy, frozen.phases)
        );
        assert_eq!(later.lag, frozen.lag);
        assert!(later.iterations > frozen.iterations, "the counters go on");

        lp.set_loop_timing(true);
        lp.set_timeout(Duration::from_millis(5), |_| {});
        lp.run().unwrap();
        assert!(lp.metrics().idle > frozen.idle, "on again: the times accumulate");
    });
}

// ---------------------------------------------------------------------------------------------
// Handles.

#[test]
fn a_snapshot_counts_handles_by_kind_and_state() {
    let mut lp = EventLoop::new().unwrap();
    let listener = lp.listen_tcp(localhost(), |_| Discard).unwrap();
    let addr = lp.local_addr(listener).unwrap();
    lp.set_timeout(Duration::from_secs(60), |_| {});
    let unarmed = lp.timer(|_, _| {});
    let idle = lp.idle(|_, _| {});
    lp.prepare(|_, _| {});
    lp.check(|_, _| {});
    let udp = lp.udp_bind(localhost(), |_, _, _, _| {}).unwrap();
    lp.unref(udp).unwrap();
    lp.connect_tcp(addr, Discard).unwrap();

    let counts = lp.metrics().handles;
    assert_eq!((counts.timer, counts.idle, counts.prepare, counts.check), (2, 1, 1, 1));
    assert_eq!((counts.listener, counts.udp, counts.stream), (1, 1, 1));
    assert_eq!((counts.signal, counts.process, counts.fs_watch), (0, 0, 0));
    assert_eq!(counts.total, 8);
    assert_eq!(counts.active, 7, "all but the unarmed timer");
    assert_eq!(counts.referenced, 7, "all but the UDP socket");
    assert_eq!(counts.closing, 0);
    assert_eq!(lp.metrics().connections(), 1);

    lp.close(idle).unwrap();
    lp.close(unarmed).unwrap();
    let counts = lp.metrics().handles;
    assert_eq!((counts.closing, counts.total, counts.active), (2, 8, 6));
    lp.run_nowait().unwrap();
    let counts = lp.metrics().handles;
    assert_eq!((counts.closing, counts.idle, counts.timer), (0, 0, 1), "freed");
    // The pass may have accepted the connection: a second stream.
    assert_eq!(counts.total, 6 + counts.stream - 1);
}

/// Writes `size` bytes when the connection opens, to a client that does not read.
struct Flood(usize);

impl StreamHandler for Flood {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.write(&vec![7; self.0]);
    }
    fn on_data(&mut self, _: &mut Conn<'_>, _: &[u8]) {}
}

#[test]
fn queued_write_bytes_are_what_a_stalled_client_has_not_taken() {
    within(Duration::from_secs(10), || {
        let mut lp = EventLoop::new().unwrap();
        let accepted = Rc::new(Cell::new(None));
        let seen = accepted.clone();
        let listener = lp
            .listen_tcp(localhost(), move |stream| {
                seen.set(Some(stream));
                Flood(8 * MIB)
            })
            .unwrap();
        let addr = lp.local_addr(listener).unwrap();
        let client = TcpStream::connect(addr).unwrap();
        assert_eq!(lp.metrics().queued_write_bytes, 0);
        let stream = loop {
            lp.run_once().unwrap(); // blocks until the listener's event: it is on its way
            if let Some(stream) = accepted.get() {
                break stream;
            }
        };
        let metrics = lp.metrics();
        let info = lp.handles_info().into_iter().find(|info| info.id == stream.id()).unwrap();
        let queued = lp.queued_bytes(stream).unwrap();
        assert!(queued > 0, "the kernel took all 8 MiB from a client that does not read");
        assert!(queued <= 8 * MIB);
        assert_eq!(metrics.queued_write_bytes, queued as u64);
        assert_eq!(info.queued_bytes, queued);
        assert!(lp.dump_handles().contains(&format!("queued {queued:>8} B")));
        drop(client);
    });
}

#[test]
fn dump_handles_shows_flags_kind_age_and_the_creating_site() {
    let mut lp = virtual_loop();
    let ticks = Count::new();
    let tick = ticks.clone();
    let (heartbeat, line) =
        (lp.set_interval(Duration::from_secs(1), move |_, _| tick.bump()), line!());
    lp.unref(heartbeat).unwrap();
    let unarmed = lp.timer(|_, _| {});
    let idle = lp.idle(|_, _| {});
    lp.close(idle).unwrap();
    let dump = lp.dump_handles();

    let lines: Vec<&str> = dump.lines().collect();
    assert_eq!(lines[0], "reactor: 3 handles (1 active, 2 referenced, 1 closing)", "{dump}");
    let site = format!("at {}:{line}:", file!());
    assert!(lines[1].starts_with(&format!("[-A-] timer{}", heartbeat.id())), "{dump}");
    assert!(lines[1].contains(" age        0 ms") && lines[1].contains(&site), "{dump}");
    assert!(lines[2].starts_with(&format!("[R--] timer{}", unarmed.id())), "{dump}");
    assert!(lines[3].starts_with(&format!("[R-C] idle{}", idle.id())), "{dump}");
    assert_eq!(lines[4], "alive, because:", "{dump}");
    assert_eq!(lines[5], "  1 close callback due", "{dump}");
    assert_eq!(lines.len(), 6, "{dump}");

    // Ages are in the loop's time: a virtual clock jumps one second to the interval's tick.
    lp.ref_(heartbeat).unwrap();
    while ticks.get() == 0 {
        lp.run_once().unwrap(); // the first pass runs the close callback, the next ticks
    }
    let info = lp.handles_info().into_iter().find(|info| info.id == heartbeat.id()).unwrap();
    assert_eq!(info.age, Duration::from_secs(1));
    assert!(lp.dump_handles().contains(" age     1000 ms"));
}

#[test]
fn alive_reasons_name_what_keeps_the_loop_alive_and_nothing_else() {
    within(Duration::from_secs(10), alive_reasons_body);
}

fn alive_reasons_body() {
    // A real clock: a virtual one would jump to the unreferenced timer while pool work keeps
    // the loop alive.
    let mut lp = EventLoop::new().unwrap();
    let referenced = lp.set_timeout(Duration::from_millis(10), |_| {});
    let unreferenced = lp.set_timeout(Duration::from_secs(3600), |_| {});
    lp.unref(unreferenced).unwrap();

    let reasons = lp.alive_reasons();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    let AliveReason::Handle(info) = &reasons[0] else { panic!("{reasons:?}") };
    assert_eq!((info.id, info.kind), (referenced.id(), "timer"));
    assert!((info.active && info.referenced && !info.closing));
    assert_eq!(info.site.file(), file!());
    let line = reasons[0].to_string();
    assert!(line.starts_with(&format!("timer{} is active and referenced", referenced.id())));
    assert!(!lp.dump_handles().contains(&format!("timer{} is", unreferenced.id())));

    // The reasons besides handles.
    lp.defer(|_| {});
    let remote = lp.remote();
    let ran = Count::new();
    let done = ran.clone();
    // The work waits for `release`, so that its `done` cannot be posted back meanwhile.
    let (release, gate) = mpsc::channel::<()>();
    let work = lp.queue_work(
        move || gate.recv_timeout(Duration::from_secs(10)).is_ok(),
        move |_, released| {
            assert_eq!(released, Ok(true));
            done.bump();
        },
    );
    work.unwrap();
    let reasons: Vec<String> = lp.alive_reasons().iter().map(ToString::to_string).collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert_eq!(reasons[1], "1 deferred callback to run");
    assert_eq!(reasons[2], "1 referenced Remote, 0 posted closures to run");
    assert_eq!(reasons[3], "1 piece of pool work whose done has not run");
    drop(remote);
    release.send(()).unwrap();

    lp.run().unwrap();
    assert_eq!(ran.get(), 1);
    assert!(!lp.alive());
    assert!(lp.alive_reasons().is_empty());
    assert!(lp.is_active(unreferenced), "still armed, but it does not count");
    assert!(lp.dump_handles().ends_with("not alive: nothing keeps the loop running\n"));
}

// ---------------------------------------------------------------------------------------------
// JSON.

#[test]
fn to_json_is_one_object_with_the_documented_keys() {
    within(Duration::from_secs(10), || {
        let mut lp = EventLoop::builder().loop_timing(true).build().unwrap();
        lp.set_timeout(Duration::from_millis(2), |_| {});
        lp.timer(|_, _| {});
        lp.run().unwrap();
        let metrics = lp.metrics();
        let text = metrics.to_json();
        let json = json::parse(&text).unwrap_or_else(|err| panic!("{err}: {text}"));

        let number = |key: &str| json.get(key).and_then(json::Value::number);
        for key in [
            "iterations",
            "events",
            "max_events_per_iteration",
            "idle_ns",
            "busy_ns",
            "utilization",
            "connections",
            "queued_write_bytes",
            "emfile_events",
            "panics",
            "slow_callbacks",
        ] {
            assert!(number(key).is_some(), "no number {key:?} in {text}");
        }
        assert_eq!(number("iterations"), Some(metrics.iterations as f64));
        assert_eq!(number("idle_ns"), Some(metrics.idle.as_nanos() as f64));
        assert!((0.0..=1.0).contains(&number("utilization").unwrap()));
        assert_eq!(json.get("timing"), Some(&json::Value::Bool(true)));

        let phases = json.get("phases_ns").unwrap();
        for key in ["timers", "pending", "idle", "prepare", "poll", "check", "closing"] {
            assert!(phases.get(key).and_then(json::Value::number).is_some(), "{key}: {text}");
        }
        let lag = json.get("lag").unwrap();
        for key in ["p50_us", "p99_us", "max_us", "count"] {
            assert!(lag.get(key).and_then(json::Value::number).is_some(), "{key}: {text}");
        }
        let (Some(json::Value::Array(uppers)), Some(json::Value::Array(counts))) =
            (lag.get("bucket_upper_us"), lag.get("counts"))
        else {
            panic!("lag buckets: {text}")
        };
        assert_eq!((uppers.len(), counts.len()), (LAG_BUCKETS, LAG_BUCKETS));
        assert_eq!(uppers[0].number(), Some(1.0));
        assert_eq!(uppers[LAG_BUCKETS - 1], json::Value::Null, "the open-ended bucket");
        let sum: f64 = counts.iter().filter_map(json::Value::number).sum();
        assert_eq!(lag.get("count").and_then(json::Value::number), Some(sum));

        let handles = json.get("handles").unwrap();
        for key in [
            "timer",
            "idle",
            "prepare",
            "check",
            "signal",
            "stream",
            "listener",
            "udp",
            "process",
            "fs_watch",
            "active",
            "referenced",
            "closing",
            "total",
        ] {
            assert!(handles.get(key).and_then(json::Value::number).is_some(), "{key}: {text}");
        }
        assert_eq!(handles.get("timer").and_then(json::Value::number), Some(1.0));
    });
}

/// Just enough of a JSON parser to check `to_json`: RFC 8259 values, strings without escapes
/// other than `\"` and `\\`, and nothing after the value.
mod json {
    #[derive(Debug, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        Number(f64),
        String(String),
        Array(Vec<Value>),
        Object(Vec<(String, Value)>),
    }

    impl Value {
        pub fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }

        pub fn number(&self) -> Option<f64> {
            match self {
                Value::Number(n) => Some(*n),
                _ => None,
            }
        }
    }

    pub fn parse(text: &str) -> Result<Value, String> {
        let mut parser = Parser { bytes: text.as_bytes(), at: 0 };
        let value = parser.value()?;
        parser.space();
        match parser.at == parser.bytes.len() {
            true => Ok(value),
            false => Err(format!("trailing text at byte {}", parser.at)),
        }
    }

    struct Parser<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl Parser<'_> {
        fn space(&mut self) {
            while self.bytes.get(self.at).is_some_and(u8::is_ascii_whitespace) {
                self.at += 1;
            }
        }

        fn eat(&mut self, byte: u8) -> Result<(), String> {
            self.space();
            match self.bytes.get(self.at) {
                Some(&b) if b == byte => {
                    self.at += 1;
                    Ok(())
                }
                _ => Err(format!("expected {:?} at byte {}", byte as char, self.at)),
            }
        }

        fn peek(&mut self) -> Option<u8> {
            self.space();
            self.bytes.get(self.at).copied()
        }

        fn value(&mut self) -> Result<Value, String> {
            match self.peek() {
                Some(b'{') => {
                    self.eat(b'{')?;
                    let mut fields = Vec::new();
                    if self.peek() == Some(b'}') {
                        self.at += 1;
                        return Ok(Value::Object(fields));
                    }
                    loop {
                        let key = self.string()?;
                        self.eat(b':')?;
                        if fields.iter().any(|(k, _)| *k == key) {
                            return Err(format!("duplicate key {key:?}"));
                        }
                        fields.push((key, self.value()?));
                        if self.peek() == Some(b',') {
                            self.at += 1;
                            continue;
                        }
                        self.eat(b'}')?;
                        return Ok(Value::Object(fields));
                    }
                }
                Some(b'[') => {
                    self.eat(b'[')?;
                    let mut items = Vec::new();
                    if self.peek() == Some(b']') {
                        self.at += 1;
                        return Ok(Value::Array(items));
                    }
                    loop {
                        items.push(self.value()?);
                        if self.peek() == Some(b',') {
                            self.at += 1;
                            continue;
                        }
                        self.eat(b']')?;
                        return Ok(Value::Array(items));
                    }
                }
                Some(b'"') => self.string().map(Value::String),
                Some(b't') => self.word("true", Value::Bool(true)),
                Some(b'f') => self.word("false", Value::Bool(false)),
                Some(b'n') => self.word("null", Value::Null),
                Some(b'-' | b'0'..=b'9') => {
                    let start = self.at;
                    while self.bytes.get(self.at).is_some_and(|b| b"+-.eE0123456789".contains(b)) {
                        self.at += 1;
                    }
                    let text = std::str::from_utf8(&self.bytes[start..self.at]).unwrap();
                    let valid = !text.starts_with("-.") && !text.starts_with('.');
                    match text.parse::<f64>() {
                        Ok(n) if valid && n.is_finite() => Ok(Value::Number(n)),
                        _ => Err(format!("bad number {text:?} at byte {start}")),
                    }
                }
                _ => Err(format!("expected a value at byte {}", self.at)),
            }
        }

        fn word(&mut self, word: &str, value: Value) -> Result<Value, String> {
            match self.bytes[self.at..].starts_with(word.as_bytes()) {
                true => {
                    self.at += word.len();
                    Ok(value)
                }
                false => Err(format!("expected {word} at byte {}", self.at)),
            }
        }

        fn string(&mut self) -> Result<String, String> {
            self.eat(b'"')?;
            let mut out = String::new();
            loop {
                match self.bytes.get(self.at) {
                    None => return Err("unterminated string".into()),
                    Some(b'"') => {
                        self.at += 1;
                        return Ok(out);
                    }
                    Some(b'\\') => {
                        match self.bytes.get(self.at + 1) {
                            Some(&b @ (b'"' | b'\\')) => out.push(b as char),
                            _ => return Err(format!("unsupported escape at byte {}", self.at)),
                        }
                        self.at += 2;
                    }
                    Some(&b) if b < 0x20 => return Err("control character in a string".into()),
                    Some(&b) => {
                        out.push(b as char);
                        self.at += 1;
                    }
                }
            }
        }
    }
}
