//! The HTTP/1.1 server: the project's main job.
//!
//! ```text
//! cargo run --release --example http [-- ADDR] [--header-timeout MS] [--idle-timeout MS]
//!                                           [--max-body BYTES]
//! ```
//!
//! ADDR defaults to `127.0.0.1:8080` (port 0 picks a free port); the timeouts default to
//! 10000 ms (a request head must arrive within it; a request body may not stall longer) and
//! 5000 ms (a kept-alive connection may sit idle that long), the body limit to 1048576 bytes.
//! Prints `listening on ADDR` once it is ready. On SIGINT or SIGTERM it shuts down gracefully:
//! it stops accepting, closes idle connections, finishes the requests in progress (uploads
//! included), and exits with status 0. A second signal exits at once. Bad arguments: status
//! 2 and a usage message.
//!
//! | route | answer |
//! |---|---|
//! | `GET /`, `GET /plaintext` | 200 `text/plain` `Hello, World!` |
//! | `GET /json` | 200 `application/json` `{"message":"Hello, World!"}` |
//! | `POST /echo` | 200 `application/octet-stream`, the request body |
//! | `GET /chunked` | 200 `text/plain`, `Hello, World!` in four chunks |
//! | `HEAD` of a GET route | the GET's headers, no body |
//! | another method on a route | 405 with `Allow` |
//! | any other path | 404 |

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use reactor::http::{Request, Response, Server, ServerConfig};
use reactor::signal::{SIGINT, SIGTERM};
use reactor::{Core, EventLoop};

const USAGE: &str =
    "usage: http [ADDR] [--header-timeout MS] [--idle-timeout MS] [--max-body BYTES]";

const TEXT: (&str, &str) = ("Content-Type", "text/plain");

/// The routes above.
fn route(core: &mut Core, req: &Request<'_>, res: Response) {
    let get = matches!(req.method(), "GET" | "HEAD");
    let result = match req.path() {
        "/" | "/plaintext" if get => res.send(core, 200, &[TEXT], b"Hello, World!"),
        "/json" if get => {
            let json = ("Content-Type", "application/json");
            res.send(core, 200, &[json], br#"{"message":"Hello, World!"}"#)
        }
        "/chunked" if get => chunked(core, res),
        "/echo" if req.method() == "POST" => {
            res.send(core, 200, &[("Content-Type", "application/octet-stream")], req.body())
        }
        "/" | "/plaintext" | "/json" | "/chunked" => {
            res.send(core, 405, &[TEXT, ("Allow", "GET, HEAD")], b"method not allowed\n")
        }
        "/echo" => res.send(core, 405, &[TEXT, ("Allow", "POST")], b"method not allowed\n"),
        _ => res.send(core, 404, &[TEXT], b"not found\n"),
    };
    // The only failure: the client has gone.
    let _ = result;
}

/// A body of unknown length, sent in pieces: chunked framing.
fn chunked(core: &mut Core, mut res: Response) -> reactor::Result<()> {
    res.start(core, 200, &[TEXT])?;
    for piece in ["Hello", ", ", "World", "!"] {
        res.write(core, piece.as_bytes())?;
    }
    res.end(core)
}

/// Command-line options.
struct Options {
    addr: SocketAddr,
    config: ServerConfig,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut addr = None;
    let mut config = ServerConfig::default();
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            let value = args.next().ok_or_else(|| format!("{name} needs a value"))?;
            value.parse::<u64>().map_err(|_| format!("{name}: {value:?} is not a number"))
        };
        match arg.as_str() {
            "--header-timeout" => {
                let ms = Duration::from_millis(number("--header-timeout")?);
                (config.header_timeout, config.body_timeout) = (ms, ms);
            }
            "--idle-timeout" => {
                config.idle_timeout = Duration::from_millis(number("--idle-timeout")?)
            }
            "--max-body" => config.max_body = number("--max-body")?,
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            _ if addr.is_some() => return Err(format!("unexpected argument {arg:?}")),
            _ => {
                let parsed = arg.parse::<SocketAddr>();
                addr = Some(
                    parsed.map_err(|_| format!("{arg:?} is not an address like 127.0.0.1:8080"))?,
                );
            }
        }
    }
    let addr = addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    Ok(Options { addr, config })
}

fn serve(options: Options) -> reactor::Result<()> {
    reactor::raise_fd_limit()?;
    let mut lp = EventLoop::new()?;
    let server = Server::new(&mut lp, options.config, route);
    let listener = server.listen(&mut lp, options.addr)?;
    // First signal: graceful shutdown. A second one meanwhile: stop at once.
    server.shutdown_on_signals(&mut lp, &[SIGINT, SIGTERM])?;
    println!("listening on {}", lp.local_addr(listener)?);
    std::io::stdout().flush()?;
    lp.run()
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("http: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let addr = options.addr;
    match serve(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("http: {addr}: {err}");
            ExitCode::FAILURE
        }
    }
}
