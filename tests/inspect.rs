//! Black-box tests of the `inspect` example (`examples/inspect.rs`), the server that shows its
//! own loop metrics: the built example runs as a child process on `127.0.0.1:0`, the tests
//! talk to it over raw sockets, and one test loads its page in headless Chromium.
//!
//! The contract under test, from the example's docs:
//!
//! - Command line: `inspect [ADDR]`, defaulting to 127.0.0.1:8080. It prints
//!   `listening on IP:PORT` once ready; bad arguments exit with status 2 and a usage message on
//!   stderr; SIGINT and SIGTERM shut it down gracefully with status 0.
//! - `GET /metrics` is one JSON object with the agreed keys, loop timing on; its counters grow.
//!   `GET /block?ms=N` spins the loop N ms (N ≤ 2000, else 400), which shows as lag and busy
//!   time. `GET /handles` is the handle dump: the listener and the connections' streams.
//!   `GET /` is a self-contained HTML page that fetches `/metrics`. Other paths 404, other
//!   methods 405 with `Allow: GET, HEAD`.
//! - In a browser, the page plots the metrics: a screenshot of it shows the utilization line
//!   (colour `#e4572e`), and its DOM shows numbers from `/metrics`.
//!
//! # The browser test, and how it decides
//!
//! `the_page_plots_live_metrics_in_headless_chromium` runs Chromium headless on
//! `/?interval=100` with a virtual-time budget of 5 s: the page's timer fires as if 5 s had
//! passed, and virtual time waits for each fetch, a real request, so some 45 refreshes take
//! about 3 s. It counts the pixels of the utilization colour in the screenshot
//! (`tests/util/png_pixels.py`, a PNG decoder on Python's zlib) and requires
//! [`MIN_LINE_PIXELS`]. So that the check can fail for the right reason, the same page is also
//! loaded from a file, where its fetches fail and it plots nothing, and that screenshot must
//! stay under the minimum: what passes is the line, not the rest of the page. The DOM of the
//! live run (`--dump-dom`) must show the numbers the page rendered from `/metrics`, the handle
//! dump, and several points plotted.
//!
//! It needs `chromium` and `python3` on the PATH. Without them it prints why it is skipped and
//! passes, unless `REACTOR_REQUIRE_BROWSER=1` (CI sets it), when it fails saying so.
//!
//! Every child is killed and reaped by a guard when its test ends, and every test is bounded by
//! a watchdog that kills all children and aborts instead of hanging. The binary must be built
//! first: a plain `cargo test` does, `cargo test --test inspect` does not (then run
//! `cargo build --example inspect` before it).

mod util;

use std::cell::Cell;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reactor::signal::{SIGINT, SIGTERM, kill};
use util::child::{
    EXIT_LIMIT, Process, Server, Watchdog, example_binary, run_captured, set_timeouts,
};

/// The colour of the utilization line, as the page documents it.
const UTILIZATION_COLOUR: &str = "e4572e";

/// How far each channel of a pixel may be from [`UTILIZATION_COLOUR`] and still count.
const COLOUR_TOLERANCE: u8 = 8;

/// Pixels of the utilization colour a screenshot needs to pass. The line is 2.5 px wide, about
/// two exact pixels per pixel of length, with a point every 4.5 px: the 40 to 50 points of a
/// 5 s budget make 350 to 500. The page without data has the line's key, some 35; a line
/// through fewer than about fifteen points does not pass.
const MIN_LINE_PIXELS: usize = 120;

/// How long one Chromium run may take before the test kills it.
const CHROMIUM_LIMIT: Duration = Duration::from_secs(60);

fn start() -> Server {
    let mut cmd = Command::new(example_binary("inspect"));
    cmd.arg("127.0.0.1:0");
    Server::spawn(cmd)
}

// ---------------------------------------------------------------------------------------------
// 1. The routes.

/// The keys `/metrics` must have, by path, with the kind of value each holds.
const KEYS: &[(&str, Kind)] = &[
    ("iterations", Kind::Count),
    ("events", Kind::Count),
    ("max_events_per_iteration", Kind::Count),
    ("idle_ns", Kind::Count),
    ("busy_ns", Kind::Count),
    ("utilization", Kind::Number),
    ("phases_ns.timers", Kind::Count),
    ("phases_ns.pending", Kind::Count),
    ("phases_ns.idle", Kind::Count),
    ("phases_ns.prepare", Kind::Count),
    ("phases_ns.poll", Kind::Count),
    ("phases_ns.check", Kind::Count),
    ("phases_ns.closing", Kind::Count),
    ("lag.p50_us", Kind::Count),
    ("lag.p99_us", Kind::Count),
    ("lag.max_us", Kind::Count),
    ("lag.count", Kind::Count),
    ("lag.bucket_upper_us", Kind::Array),
    ("lag.counts", Kind::Array),
    ("handles.timer", Kind::Count),
    ("handles.idle", Kind::Count),
    ("handles.prepare", Kind::Count),
    ("handles.check", Kind::Count),
    ("handles.signal", Kind::Count),
    ("handles.stream", Kind::Count),
    ("handles.listener", Kind::Count),
    ("handles.udp", Kind::Count),
    ("handles.process", Kind::Count),
    ("handles.fs_watch", Kind::Count),
    ("handles.active", Kind::Count),
    ("handles.referenced", Kind::Count),
    ("handles.closing", Kind::Count),
    ("handles.total", Kind::Count),
    ("connections", Kind::Count),
    ("queued_write_bytes", Kind::Count),
    ("emfile_events", Kind::Count),
    ("panics", Kind::Count),
    ("slow_callbacks", Kind::Count),
    ("timing", Kind::Bool),
];

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A whole number, zero or more.
    Count,
    Number,
    Bool,
    Array,
}

#[test]
fn metrics_is_one_json_object_with_the_agreed_keys() {
    let _watchdog = Watchdog::arm("metrics keys", Duration::from_secs(20));
    let server = start();
    let resp = fetch(server.addr, "GET", "/metrics");
    assert_eq!(resp.status, 200, "GET /metrics: {}", resp.describe());
    assert_eq!(resp.header("content-type"), Some("application/json"), "{}", resp.describe());
    let text = resp.text();
    let json = Json::parse(&text).unwrap_or_else(|err| panic!("/metrics: {err}:\n{text}"));
    let mut wrong = Vec::new();
    for &(path, kind) in KEYS {
        let ok = match (json.at(path), kind) {
            (Some(Json::Num(n)), Kind::Count) => *n >= 0.0 && n.fract() == 0.0,
            (Some(Json::Num(n)), Kind::Number) => n.is_finite(),
            (Some(Json::Bool(_)), Kind::Bool) => true,
            (Some(Json::Arr(_)), Kind::Array) => true,
            _ => false,
        };
        if !ok {
            wrong.push(format!("{path}: want {kind:?}, got {:?}", json.at(path)));
        }
    }
    assert!(wrong.is_empty(), "/metrics:\n{}\nin {text}", wrong.join("\n"));
    assert_eq!(json.at("timing"), Some(&Json::Bool(true)), "loop timing is on: {text}");
    let uppers = bucket_uppers(&json);
    let counts = json.numbers("lag.counts");
    assert_eq!(uppers.len(), counts.len(), "one count per lag bucket: {text}");
    assert!(uppers.windows(2).all(|w| w[0] < w[1]), "bucket bounds ascend: {uppers:?}");
    let counted: f64 = counts.iter().sum();
    assert_eq!(counted, json.num("lag.count"), "the buckets hold every lag sample: {text}");
    assert_eq!(json.num("handles.listener"), 1.0, "one listener: {text}");
    assert!(json.num("connections") >= 1.0, "this fetch's connection is open: {text}");
}

#[test]
fn counters_grow_between_two_fetches() {
    let _watchdog = Watchdog::arm("counters grow", Duration::from_secs(20));
    let server = start();
    let first = metrics(server.addr);
    let second = metrics(server.addr);
    for key in ["iterations", "events", "busy_ns", "idle_ns"] {
        assert!(
            second.num(key) > first.num(key),
            "{key} did not grow between two fetches: {} then {}",
            first.num(key),
            second.num(key)
        );
    }
    for key in ["lag.count", "lag.max_us", "max_events_per_iteration", "panics"] {
        assert!(second.num(key) >= first.num(key), "{key} went down");
    }
}

#[test]
fn blocking_the_loop_shows_as_lag_and_busy_time() {
    let _watchdog = Watchdog::arm("block", Duration::from_secs(20));
    let server = start();
    let before = metrics(server.addr);
    let start = Instant::now();
    let resp = fetch(server.addr, "GET", "/block?ms=50");
    let took = start.elapsed();
    assert_eq!(resp.status, 200, "GET /block?ms=50: {}", resp.describe());
    assert!(took >= Duration::from_millis(50), "/block?ms=50 answered after {took:?}");
    let after = metrics(server.addr);
    let busy = after.num("busy_ns") - before.num("busy_ns");
    assert!(busy >= 50e6, "busy_ns grew by {busy} ns over a 50 ms block");
    let max_us = after.num("lag.max_us");
    assert!(max_us >= 50_000.0, "lag max is {max_us} us after a 50 ms block");
    // The page computes per-interval lag from bucket deltas: the block is in them.
    let late = lag_samples_at_least(&after, 50_000.0) - lag_samples_at_least(&before, 50_000.0);
    assert!(late >= 1.0, "no new lag sample in a bucket reaching 50 ms: {after:?}");
}

/// How many lag samples are in buckets whose upper bound is at least `us`.
fn lag_samples_at_least(metrics: &Json, us: f64) -> f64 {
    let uppers = bucket_uppers(metrics);
    let counts = metrics.numbers("lag.counts");
    uppers.iter().zip(&counts).filter(|&(&upper, _)| upper >= us).map(|(_, &count)| count).sum()
}

/// The lag buckets' upper bounds in µs; the last bucket's is `null`, unbounded.
fn bucket_uppers(metrics: &Json) -> Vec<f64> {
    let Some(Json::Arr(items)) = metrics.at("lag.bucket_upper_us") else {
        panic!("lag.bucket_upper_us is not an array: {metrics:?}")
    };
    let last = items.len().saturating_sub(1);
    let upper = |(i, item): (usize, &Json)| match item {
        Json::Num(us) => *us,
        Json::Null if i == last => f64::INFINITY,
        other => panic!("lag.bucket_upper_us[{i}] is {other:?}"),
    };
    items.iter().enumerate().map(upper).collect()
}

#[test]
fn handles_lists_the_listener_and_the_streams() {
    let _watchdog = Watchdog::arm("handles", Duration::from_secs(20));
    let server = start();
    // A kept-alive connection the server has read a request from: a stream now.
    let mut idle = connect(server.addr);
    idle.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").expect("send a request");
    assert_eq!(read_response(&mut idle).status, 200);
    let resp = fetch(server.addr, "GET", "/handles");
    assert_eq!(resp.status, 200, "GET /handles: {}", resp.describe());
    let content_type = resp.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{}", resp.describe());
    let dump = resp.text();
    // One line per handle, `[flags] kind#id …`, then why the loop is alive.
    let handles: Vec<&str> = dump.lines().filter(|line| line.starts_with('[')).collect();
    let listeners = handles.iter().filter(|line| line.contains("listener")).count();
    let streams = handles.iter().filter(|line| line.contains("stream")).count();
    assert_eq!(listeners, 1, "the dump shows {listeners} listener(s), not one:\n{dump}");
    // The kept-alive connection and this request's.
    assert!(streams >= 2, "the dump shows {streams} stream(s), not two or more:\n{dump}");
    assert!(dump.contains("alive"), "the dump does not say why the loop is alive:\n{dump}");
}

#[test]
fn the_page_is_self_contained_html_that_fetches_metrics() {
    let _watchdog = Watchdog::arm("page", Duration::from_secs(20));
    let server = start();
    let resp = fetch(server.addr, "GET", "/");
    assert_eq!(resp.status, 200, "GET /: {}", resp.describe());
    assert_eq!(resp.header("content-type"), Some("text/html; charset=utf-8"));
    let page = resp.text();
    assert!(page.to_lowercase().starts_with("<!doctype html>"), "not an HTML page");
    for needed in ["fetch(\"/metrics\"", "fetch(\"/handles\"", "<svg", "#e4572e", "interval"] {
        assert!(page.contains(needed), "the page lacks {needed:?}");
    }
    // Nothing from elsewhere: the machine that runs it may have no internet.
    for outside in ["<script src", "<link", "@import", "url(", "src=\"http", "href=\"http"] {
        assert!(!page.contains(outside), "the page loads something from outside: {outside:?}");
    }
    // The query string does not take part in routing.
    assert_eq!(fetch(server.addr, "GET", "/?interval=100").body, resp.body);
}

#[test]
fn head_of_each_route_gets_the_get_headers_and_no_body() {
    let _watchdog = Watchdog::arm("HEAD", Duration::from_secs(20));
    let server = start();
    for path in ["/", "/handles", "/block?ms=1", "/metrics"] {
        let resp = fetch(server.addr, "HEAD", path);
        assert_eq!(resp.status, 200, "HEAD {path}: {}", resp.describe());
        assert!(resp.body.is_empty(), "HEAD {path} has a body: {}", resp.describe());
        assert!(resp.header("content-type").is_some(), "HEAD {path}: {}", resp.describe());
    }
    let get = fetch(server.addr, "GET", "/");
    let head = fetch(server.addr, "HEAD", "/");
    assert_eq!(head.header("content-length"), Some(get.body.len().to_string().as_str()));
}

#[test]
fn wrong_paths_methods_and_block_times_get_404_405_and_400() {
    let _watchdog = Watchdog::arm("errors", Duration::from_secs(20));
    let server = start();
    for path in ["/nope", "/metrics/", "/METRICS", "/index.html", "/block/1"] {
        let resp = fetch(server.addr, "GET", path);
        assert_eq!(resp.status, 404, "GET {path}: {}", resp.describe());
    }
    for path in ["/", "/metrics", "/handles", "/block?ms=1"] {
        for method in ["POST", "PUT", "DELETE"] {
            let resp = fetch(server.addr, method, path);
            assert_eq!(resp.status, 405, "{method} {path}: {}", resp.describe());
            assert_eq!(resp.header("allow"), Some("GET, HEAD"), "{method} {path}");
        }
    }
    for query in ["", "?", "?ms", "?ms=", "?ms=abc", "?ms=-1", "?ms=1.5", "?ms=2001", "?n=5"] {
        let resp = fetch(server.addr, "GET", &format!("/block{query}"));
        assert_eq!(resp.status, 400, "GET /block{query}: {}", resp.describe());
    }
    for query in ["?ms=0", "?x=1&ms=2", "?ms=3&x=1"] {
        let resp = fetch(server.addr, "GET", &format!("/block{query}"));
        assert_eq!(resp.status, 200, "GET /block{query}: {}", resp.describe());
    }
}

#[test]
fn bad_arguments_exit_with_status_2_and_usage() {
    let _watchdog = Watchdog::arm("bad arguments", Duration::from_secs(30));
    // Each list that holds an address has port 0: a list wrongly accepted binds no fixed port.
    let cases: [&[&str]; 5] = [
        &["not-an-addr"],
        &["127.0.0.1"],
        &["127.0.0.1:0", "127.0.0.1:0"],
        &["--port", "0"],
        &["127.0.0.1:0", "--bogus"],
    ];
    let mut failures = Vec::new();
    for args in cases {
        let mut cmd = Command::new(example_binary("inspect"));
        cmd.args(args);
        let (status, stdout, stderr) = run_captured(cmd, EXIT_LIMIT)
            .unwrap_or_else(|| panic!("inspect {args:?} still runs after {EXIT_LIMIT:?}"));
        if status.code() != Some(2) || !stderr.contains("usage") {
            failures.push(format!("{args:?}: {status}, stdout {stdout:?}, stderr {stderr:?}"));
        }
    }
    assert!(failures.is_empty(), "want status 2 and a usage:\n{}", failures.join("\n"));
}

#[test]
fn sigterm_and_sigint_close_idle_connections_and_exit_0() {
    let _watchdog = Watchdog::arm("signals", Duration::from_secs(30));
    for signal in [SIGTERM, SIGINT] {
        let mut server = start();
        let mut idle = connect(server.addr);
        idle.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").expect("send a request");
        assert_eq!(read_response(&mut idle).status, 200);
        kill(server.pid(), signal).expect("send the signal");
        let mut rest = Vec::new();
        let read = idle.read_to_end(&mut rest);
        assert!(
            matches!(read, Ok(0)),
            "signal {signal}: the idle connection was not closed: {read:?}"
        );
        let status = server
            .process
            .wait_timeout(EXIT_LIMIT)
            .unwrap_or_else(|| panic!("still running {EXIT_LIMIT:?} after signal {signal}"));
        assert_eq!(status.code(), Some(0), "exit status after signal {signal}: {status}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The page in a browser.

#[test]
fn the_page_plots_live_metrics_in_headless_chromium() {
    let _watchdog = Watchdog::arm("headless Chromium", Duration::from_secs(240));
    let Some(tools) = BrowserTools::find() else { return };
    let dir = TempDir::new("browser");
    let server = start();
    let live = format!("http://{}/?interval=100", server.addr);

    let began = Instant::now();
    // One run gives both the screenshot and the DOM, of the same moment.
    let shot = dir.path.join("live.png");
    let flags = [format!("--screenshot={}", shot.display()), "--dump-dom".to_owned()];
    let dom = tools.chromium(&dir, "live", &flags, &live);
    let (width, height, line) = tools.count_pixels(&shot);
    assert_eq!((width, height), (1000, 700), "the screenshot's size");

    // The control: the same page, loaded from a file, where every fetch fails and nothing is
    // plotted. It must fail the check, or the check does not see the line.
    let page = fetch(server.addr, "GET", "/").body;
    let file = dir.path.join("page.html");
    std::fs::write(&file, page).expect("save the page");
    let control = dir.path.join("control.png");
    let url = format!("file://{}?interval=100", file.display());
    tools.chromium(&dir, "control", &[format!("--screenshot={}", control.display())], &url);
    let (_, _, blank) = tools.count_pixels(&control);
    eprintln!(
        "inspect: {line} pixels of #{UTILIZATION_COLOUR} on the live page, {blank} on the page \
         without data (minimum {MIN_LINE_PIXELS})"
    );
    assert!(
        blank < MIN_LINE_PIXELS,
        "the page without data has {blank} pixels of the line's colour: the check cannot fail \
         (kept in {})",
        dir.keep().display()
    );
    assert!(
        line >= MIN_LINE_PIXELS,
        "the screenshot has {line} pixels of #{UTILIZATION_COLOUR}, fewer than \
         {MIN_LINE_PIXELS}: the utilization line is missing (kept in {})",
        dir.keep().display()
    );

    // The DOM: numbers rendered from /metrics, and several refreshes plotted.
    let iterations = dom_number(&dom, "iterations");
    let now = metrics(server.addr);
    assert!(
        iterations > 0.0 && iterations < now.num("iterations"),
        "the page shows {iterations} iterations; the loop is at {} now",
        now.num("iterations")
    );
    let handles = dom_text(&dom, "handles");
    assert!(handles.contains('·'), "the page shows handles {handles:?}");
    let points = dom_attribute(&dom, "plot-util", "data-points");
    assert!(points >= 5.0, "the page plotted {points} utilization points, not several refreshes");
    assert!(dom_text(&dom, "dump").contains("listener"), "the handle dump is not on the page");
    assert_eq!(dom_text(&dom, "status"), "live", "the page's status");
    eprintln!("inspect: the browser test took {:?}", began.elapsed());
}

/// Chromium and Python, found on the PATH.
struct BrowserTools {
    chromium: PathBuf,
    python: PathBuf,
}

impl BrowserTools {
    /// The tools, or `None` (after saying so) when one is missing and
    /// `REACTOR_REQUIRE_BROWSER=1` is not set; with it, a missing tool fails the test.
    fn find() -> Option<BrowserTools> {
        let chromium = find_program("chromium");
        let python = find_program("python3");
        let missing = match (&chromium, &python) {
            (None, _) => "chromium",
            (_, None) => "python3",
            (Some(chromium), Some(python)) => {
                return Some(BrowserTools { chromium: chromium.clone(), python: python.clone() });
            }
        };
        let required = std::env::var_os("REACTOR_REQUIRE_BROWSER").is_some_and(|v| v == "1");
        assert!(!required, "REACTOR_REQUIRE_BROWSER=1, but {missing} is not installed (PATH)");
        // Straight to stderr: the test harness captures `eprintln!` of a passing test.
        let _ = writeln!(
            std::io::stderr(),
            "the_page_plots_live_metrics_in_headless_chromium skipped: {missing} not installed \
             (set REACTOR_REQUIRE_BROWSER=1 to require it)"
        );
        None
    }

    /// Runs headless Chromium on `url` with `extra` flags, bounded by [`CHROMIUM_LIMIT`], in a
    /// fresh profile; its stdout.
    fn chromium(&self, dir: &TempDir, name: &str, extra: &[String], url: &str) -> String {
        let profile = dir.path.join(format!("profile-{name}"));
        let out = dir.path.join(format!("{name}.out"));
        let err = dir.path.join(format!("{name}.err"));
        let mut cmd = Command::new(&self.chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1000,700",
            "--virtual-time-budget=5000",
        ]);
        cmd.arg(format!("--user-data-dir={}", profile.display()));
        cmd.args(extra).arg(url);
        // Files, not pipes: nobody has to drain them while Chromium runs.
        cmd.stdin(Stdio::null())
            .stdout(File::create(&out).expect("create the stdout file"))
            .stderr(File::create(&err).expect("create the stderr file"));
        let mut process = Process::spawn(cmd);
        let status = process.wait_timeout(CHROMIUM_LIMIT);
        let stderr = std::fs::read_to_string(&err).unwrap_or_default();
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let status = status.unwrap_or_else(|| {
            panic!("chromium ({name}) still runs after {CHROMIUM_LIMIT:?}:\n{}", tail.join("\n"))
        });
        assert!(status.success(), "chromium ({name}): {status}:\n{}", tail.join("\n"));
        std::fs::read_to_string(&out).expect("read chromium's stdout")
    }

    /// `(width, height, pixels of the utilization colour)` of a PNG.
    fn count_pixels(&self, png: &Path) -> (u32, u32, usize) {
        let mut cmd = Command::new(&self.python);
        cmd.arg("-c").arg(include_str!("util/png_pixels.py")).arg(png);
        cmd.args([UTILIZATION_COLOUR, &COLOUR_TOLERANCE.to_string()]);
        let (status, stdout, stderr) =
            run_captured(cmd, Duration::from_secs(60)).expect("png_pixels.py finishes in 60 s");
        assert!(status.success(), "png_pixels.py {}: {status}: {stderr}", png.display());
        let fields: Vec<usize> =
            stdout.split_whitespace().filter_map(|field| field.parse().ok()).collect();
        match fields[..] {
            [width, height, count] => (width as u32, height as u32, count),
            _ => panic!("png_pixels.py printed {stdout:?}"),
        }
    }
}

/// `name` in one of the PATH's directories.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|file| file.is_file())
}

/// The text of the element with `id` in a dumped DOM (one without child elements).
fn dom_text(dom: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let at = dom.find(&marker).unwrap_or_else(|| panic!("no element {id} in the DOM"));
    let rest = &dom[at..];
    let start = rest.find('>').expect("the element's tag ends") + 1;
    let end = rest[start..].find('<').expect("the element ends");
    rest[start..start + end].replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
}

/// The number shown in the element with `id` (`12,345`).
fn dom_number(dom: &str, id: &str) -> f64 {
    let text = dom_text(dom, id);
    text.replace(',', "").parse().unwrap_or_else(|_| panic!("element {id} shows {text:?}"))
}

/// A numeric attribute of the element with `id`.
fn dom_attribute(dom: &str, id: &str, attribute: &str) -> f64 {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no element {id}"));
    let tag = &dom[dom[..at].rfind('<').expect("a tag")..];
    let tag = &tag[..tag.find('>').expect("the tag ends")];
    let marker = format!("{attribute}=\"");
    let start = tag.find(&marker).unwrap_or_else(|| panic!("{id} has no {attribute}: {tag}"));
    let value = &tag[start + marker.len()..];
    let value = &value[..value.find('"').expect("the attribute ends")];
    value.parse().unwrap_or_else(|_| panic!("{id}'s {attribute} is {value:?}"))
}

/// A directory of its own under the system's temporary directory, removed when dropped unless
/// [kept](TempDir::keep) for a failure's evidence.
struct TempDir {
    path: PathBuf,
    keep: Cell<bool>,
}

impl TempDir {
    fn new(name: &str) -> TempDir {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        let path = std::env::temp_dir()
            .join(format!("reactor-inspect-{name}-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|err| panic!("create {}: {err}", path.display()));
        TempDir { path, keep: Cell::new(false) }
    }

    /// Keeps the directory, and gives its path to report.
    fn keep(&self) -> &Path {
        self.keep.set(true);
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep.get() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. A small HTTP client and a small JSON reader.

/// A connection whose reads and writes give up after `IO_TIMEOUT`.
fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap_or_else(|err| panic!("connect {addr}: {err}"));
    set_timeouts(&stream);
    stream.set_nodelay(true).expect("set TCP_NODELAY");
    stream
}

/// `METHOD path` on a connection of its own, closed after the answer.
fn fetch(addr: SocketAddr, method: &str, path: &str) -> Response {
    let mut stream = connect(addr);
    let request = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send the request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap_or_else(|err| panic!("{method} {path}: read: {err}"));
    let (mut resp, head_len) = parse_head(&raw).unwrap_or_else(|| {
        panic!("{method} {path}: no response head in {:?}", String::from_utf8_lossy(&raw))
    });
    resp.body = raw[head_len..].to_vec();
    if method != "HEAD" {
        let length = resp.header("content-length").and_then(|len| len.parse::<usize>().ok());
        assert_eq!(length, Some(resp.body.len()), "{method} {path}: {}", resp.describe());
    }
    resp
}

/// `/metrics`, parsed.
fn metrics(addr: SocketAddr) -> Json {
    let resp = fetch(addr, "GET", "/metrics");
    assert_eq!(resp.status, 200, "GET /metrics: {}", resp.describe());
    let text = resp.text();
    Json::parse(&text).unwrap_or_else(|err| panic!("/metrics: {err}:\n{text}"))
}

/// Reads one response with a `Content-Length` from a kept-alive connection.
fn read_response(stream: &mut TcpStream) -> Response {
    let mut raw = Vec::new();
    let mut buf = [0; 4096];
    loop {
        if let Some((mut resp, head_len)) = parse_head(&raw) {
            let length: usize =
                resp.header("content-length").and_then(|len| len.parse().ok()).unwrap_or(0);
            if raw.len() >= head_len + length {
                resp.body = raw[head_len..head_len + length].to_vec();
                return resp;
            }
        }
        let n = stream.read(&mut buf).expect("read a response");
        assert!(n > 0, "the connection closed mid-response: {:?}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// The first header `name` (any case).
    fn header(&self, name: &str) -> Option<&str> {
        let mut all = self.headers.iter();
        all.find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a UTF-8 body")
    }

    fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(200).collect();
        format!("{} {:?} {body:?}", self.status, self.headers)
    }
}

/// The status and headers of a complete head at the start of `raw`, and the head's length.
fn parse_head(raw: &[u8]) -> Option<(Response, usize)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&raw[..end]).expect("an ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_owned(), value.trim().to_owned()))
        .collect();
    Some((Response { status, headers, body: Vec::new() }, end))
}

/// A JSON value: enough of RFC 8259 to check what `/metrics` sends.
#[derive(Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// Parses one JSON value, with nothing after it but whitespace.
    fn parse(text: &str) -> Result<Json, String> {
        let mut reader = JsonReader { bytes: text.as_bytes(), pos: 0 };
        let value = reader.value(0)?;
        reader.space();
        match reader.pos == reader.bytes.len() {
            true => Ok(value),
            false => Err(format!("trailing bytes at {}", reader.pos)),
        }
    }

    /// The value at a dotted path of object keys (`lag.max_us`).
    fn at(&self, path: &str) -> Option<&Json> {
        path.split('.').try_fold(self, |value, key| match value {
            Json::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        })
    }

    /// The number at `path`, which must be one.
    #[track_caller]
    fn num(&self, path: &str) -> f64 {
        match self.at(path) {
            Some(Json::Num(n)) => *n,
            other => panic!("{path} is {other:?}, not a number"),
        }
    }

    /// The array of numbers at `path`.
    #[track_caller]
    fn numbers(&self, path: &str) -> Vec<f64> {
        let Some(Json::Arr(items)) = self.at(path) else { panic!("{path} is not an array") };
        let number = |item: &Json| match item {
            Json::Num(n) => *n,
            other => panic!("{path} holds {other:?}, not only numbers"),
        };
        items.iter().map(number).collect()
    }
}

struct JsonReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl JsonReader<'_> {
    fn space(&mut self) {
        while self.bytes.get(self.pos).is_some_and(|b| b" \t\r\n".contains(b)) {
            self.pos += 1;
        }
    }

    fn error<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.pos))
    }

    fn eat(&mut self, literal: &str) -> bool {
        let found = self.bytes[self.pos..].starts_with(literal.as_bytes());
        if found {
            self.pos += literal.len();
        }
        found
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > 64 {
            return self.error("nested too deep");
        }
        self.space();
        match self.bytes.get(self.pos) {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Json::Str),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ if self.eat("true") => Ok(Json::Bool(true)),
            _ if self.eat("false") => Ok(Json::Bool(false)),
            _ if self.eat("null") => Ok(Json::Null),
            _ => self.error("expected a value"),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, String> {
        self.pos += 1;
        let mut members = Vec::new();
        self.space();
        if self.eat("}") {
            return Ok(Json::Obj(members));
        }
        loop {
            self.space();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return self.error("expected a key");
            }
            let key = self.string()?;
            if members.iter().any(|(k, _)| *k == key) {
                return self.error(&format!("duplicate key {key:?}"));
            }
            self.space();
            if !self.eat(":") {
                return self.error("expected ':'");
            }
            members.push((key, self.value(depth + 1)?));
            self.space();
            if self.eat("}") {
                return Ok(Json::Obj(members));
            }
            if !self.eat(",") {
                return self.error("expected ',' or '}'");
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json, String> {
        self.pos += 1;
        let mut items = Vec::new();
        self.space();
        if self.eat("]") {
            return Ok(Json::Arr(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.space();
            if self.eat("]") {
                return Ok(Json::Arr(items));
            }
            if !self.eat(",") {
                return self.error("expected ',' or ']'");
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(&byte) = self.bytes.get(self.pos) else { return self.error("open string") };
            self.pos += 1;
            match byte {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&escape) = self.bytes.get(self.pos) else {
                        return self.error("open escape");
                    };
                    self.pos += 1;
                    match escape {
                        b'"' | b'\\' | b'/' => out.push(escape as char),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hex = self.bytes.get(self.pos..self.pos + 4);
                            let hex = hex.and_then(|hex| std::str::from_utf8(hex).ok());
                            let Some(unit) = hex.and_then(|h| u32::from_str_radix(h, 16).ok())
                            else {
                                return self.error("bad \\u escape");
                            };
                            self.pos += 4;
                            // Surrogates are not needed here; keep the string well-formed.
                            out.push(char::from_u32(unit).unwrap_or('\u{fffd}'));
                        }
                        _ => return self.error("bad escape"),
                    }
                }
                0..=0x1f => return self.error("control character in a string"),
                _ => {
                    // A whole UTF-8 sequence: the input is a &str, so it is valid.
                    let start = self.pos - 1;
                    let mut end = self.pos;
                    while self.bytes.get(end).is_some_and(|b| b & 0xc0 == 0x80) {
                        end += 1;
                    }
                    out.push_str(std::str::from_utf8(&self.bytes[start..end]).expect("UTF-8"));
                    self.pos = end;
                }
            }
        }
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.pos;
        let digits = |reader: &mut Self| {
            let from = reader.pos;
            while reader.bytes.get(reader.pos).is_some_and(u8::is_ascii_digit) {
                reader.pos += 1;
            }
            reader.pos - from
        };
        self.eat("-");
        let whole = digits(self);
        if whole == 0 || (whole > 1 && self.bytes[self.pos - whole] == b'0') {
            return self.error("bad number");
        }
        if self.eat(".") && digits(self) == 0 {
            return self.error("bad fraction");
        }
        if self.eat("e") || self.eat("E") {
            let _ = self.eat("+") || self.eat("-");
            if digits(self) == 0 {
                return self.error("bad exponent");
            }
        }
        let text = std::str::from_utf8(&self.bytes[start..self.pos]).expect("ASCII");
        text.parse().map(Json::Num).map_err(|err| format!("{text}: {err}"))
    }
}

#[test]
fn the_json_reader_itself() {
    let value = Json::parse(r#" {"a": [1, -2.5e3, true, null], "b": {"c": "x\"\u00e9y"}} "#);
    let value = value.expect("valid JSON");
    let a = [Json::Num(1.0), Json::Num(-2500.0), Json::Bool(true), Json::Null];
    assert_eq!(value.at("a"), Some(&Json::Arr(a.into())));
    assert_eq!(value.at("b.c"), Some(&Json::Str("x\"\u{e9}y".into())));
    assert_eq!(value.at("b.d"), None);
    let bad = [
        "",
        "{",
        "{\"a\":1,}",
        "[1,]",
        "01",
        "1.",
        "-",
        "1e",
        r#""\x""#,
        "{\"a\":1}x",
        "{\"a\":1,\"a\":2}",
        "tru",
        "\"a\nb\"",
        "{a:1}",
        "[1 2]",
    ];
    for text in bad {
        assert!(Json::parse(text).is_err(), "{text:?} was accepted");
    }
}
