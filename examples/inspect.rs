//! An HTTP server that shows its own event loop: live loop metrics, plotted in the browser.
//!
//! ```text
//! cargo run --release --example inspect [-- ADDR]
//! ```
//!
//! ADDR defaults to `127.0.0.1:8080` (port 0 picks a free port). Prints `listening on ADDR`
//! once it is ready; open `http://ADDR/` in a browser. The loop runs with loop timing on
//! ([`reactor::Builder::loop_timing`]), so that idle and busy time, the time per phase and the
//! loop lag are measured. On SIGINT or SIGTERM it shuts down gracefully and exits with status 0
//! (a second signal exits at once); bad arguments: status 2 and a usage message.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | 200 `text/html`: the page below ([`inspect.html`](inspect.html)) |
//! | `GET /metrics` | 200 `application/json`: [`Core::metrics`]`().to_json()`, a snapshot |
//! | `GET /handles` | 200 `text/plain`: [`Core::dump_handles`], the handles, why the loop lives |
//! | `GET /block?ms=N` | spins N ms (0 to 2000) *in the handler*, then 200; 400 for another N |
//! | `HEAD` of a GET route | the GET's headers, no body |
//! | another method on a route | 405 with `Allow: GET, HEAD` |
//! | any other path | 404 |
//!
//! `/block` is a deliberate demonstration of what a loop must never do: while it spins, the
//! one loop thread serves nobody else, so every other request waits. Ask for
//! `/block?ms=500` while the page is open and watch the plot: utilization jumps, the lag of
//! that interval is at least 500 ms, and a callback slower than 100 ms is counted (and
//! reported on stderr) as a slow callback.
//!
//! The page fetches `/metrics` and `/handles` once a second (`/?interval=MS` for another
//! period, 50 ms to 60 s) and keeps the last 120 points. It plots three series in inline SVG:
//!
//! - **loop utilization** per interval, Δ`busy_ns` / (Δ`busy_ns` + Δ`idle_ns`) between two
//!   snapshots, as a line of colour `#e4572e` (the tests find the plot in a screenshot by
//!   that colour, which nothing else on the page is drawn with but the line's small key);
//! - **loop lag** per interval, in ms: the p99 of the interval's lag samples (a sample is one
//!   iteration's busy time, from the return of poll to the next poll), from the Δcounts of the
//!   histogram's buckets (`#2e86ab`);
//! - **open connections** at each fetch (`#3f8f5a`).
//!
//! Beside them: the loop's counters (iterations, events per iteration, lag p50/p99/max since
//! the start, handles, queued write bytes, panics, slow callbacks, EMFILE events), the busy
//! time of the interval by phase, the handles by kind, and the handle dump. The page is one
//! self-contained file, no scripts or styles from elsewhere, compiled into the binary.
//! `docs/inspect.png` is a screenshot of it.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use reactor::http::{Request, Response, Server, ServerConfig};
use reactor::signal::{SIGINT, SIGTERM};
use reactor::{Core, EventLoop};

const USAGE: &str = "usage: inspect [ADDR]";

/// The page, with its script and styles.
const PAGE: &str = include_str!("inspect.html");

/// The longest `/block` asked for: long enough to see, short enough not to look like a hang.
const MAX_BLOCK_MS: u64 = 2000;

/// A callback slower than this is counted (`slow_callbacks`) and reported on stderr.
const SLOW_CALLBACK: Duration = Duration::from_millis(100);

const TEXT: (&str, &str) = ("Content-Type", "text/plain");
const NO_STORE: (&str, &str) = ("Cache-Control", "no-store");

/// The routes above.
fn route(core: &mut Core, req: &Request<'_>, res: Response) {
    let get = matches!(req.method(), "GET" | "HEAD");
    let result = match req.path() {
        "/" if get => {
            res.send(core, 200, &[("Content-Type", "text/html; charset=utf-8")], PAGE.as_bytes())
        }
        "/metrics" if get => {
            let json = core.metrics().to_json();
            res.send(core, 200, &[("Content-Type", "application/json"), NO_STORE], json.as_bytes())
        }
        "/handles" if get => {
            let dump = core.dump_handles();
            let headers = [("Content-Type", "text/plain; charset=utf-8"), NO_STORE];
            res.send(core, 200, &headers, dump.as_bytes())
        }
        "/block" if get => match block_ms(req.query()) {
            Some(ms) => {
                busy_wait(Duration::from_millis(ms));
                let message = format!("blocked the loop for {ms} ms\n");
                res.send(core, 200, &[TEXT, NO_STORE], message.as_bytes())
            }
            None => {
                let message = format!("/block needs ?ms=N with N from 0 to {MAX_BLOCK_MS}\n");
                res.send(core, 400, &[TEXT], message.as_bytes())
            }
        },
        "/" | "/metrics" | "/handles" | "/block" => {
            res.send(core, 405, &[TEXT, ("Allow", "GET, HEAD")], b"method not allowed\n")
        }
        _ => res.send(core, 404, &[TEXT], b"not found\n"),
    };
    // The only failure: the client has gone.
    let _ = result;
}

/// The `ms` of a `/block` query: `ms=N` among `&`-separated pairs, N at most [`MAX_BLOCK_MS`].
fn block_ms(query: Option<&str>) -> Option<u64> {
    let mut pairs = query?.split('&').filter_map(|pair| pair.split_once('='));
    let (_, value) = pairs.find(|&(name, _)| name == "ms")?;
    value.parse::<u64>().ok().filter(|&ms| ms <= MAX_BLOCK_MS)
}

/// Spins for `duration` on the loop's thread: the loop is blocked, and busy, all along. (A
/// sleep would block it too, but a spin is what a heavy computation looks like.)
fn busy_wait(duration: Duration) {
    let until = Instant::now() + duration;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<SocketAddr, String> {
    let addr = match args.next() {
        None => return Ok(SocketAddr::from(([127, 0, 0, 1], 8080))),
        Some(flag) if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
        Some(arg) => {
            arg.parse().map_err(|_| format!("{arg:?} is not an address like 127.0.0.1:8080"))?
        }
    };
    match args.next() {
        Some(extra) => Err(format!("unexpected argument {extra:?}")),
        None => Ok(addr),
    }
}

fn serve(addr: SocketAddr) -> reactor::Result<()> {
    reactor::raise_fd_limit()?;
    let mut lp = EventLoop::builder().loop_timing(true).build()?;
    lp.set_slow_callback_threshold(Some(SLOW_CALLBACK));
    let server = Server::new(&mut lp, ServerConfig::default(), route);
    let listener = server.listen(&mut lp, addr)?;
    // First signal: graceful shutdown. A second one meanwhile: stop at once.
    server.shutdown_on_signals(&mut lp, &[SIGINT, SIGTERM])?;
    println!("listening on {}", lp.local_addr(listener)?);
    std::io::stdout().flush()?;
    lp.run()
}

fn main() -> ExitCode {
    let addr = match parse_args(std::env::args().skip(1)) {
        Ok(addr) => addr,
        Err(message) => {
            eprintln!("inspect: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match serve(addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("inspect: {addr}: {err}");
            ExitCode::FAILURE
        }
    }
}
