//! A static file server: the files under a directory, read on the thread pool.
//!
//! ```text
//! cargo run --release --example http_file -- DIR [ADDR]
//! ```
//!
//! ADDR defaults to `127.0.0.1:8080` (port 0 picks a free port). Prints `listening on ADDR` once
//! it is ready. On SIGINT or SIGTERM it shuts down gracefully: it stops accepting, closes idle
//! connections, lets the downloads in progress finish, and exits with status 0; a second signal
//! exits at once. Bad arguments, or a DIR that is not a directory: status 2 and a usage message.
//!
//! | request | answer |
//! |---|---|
//! | `GET` of a regular file under DIR | 200, the file, `Content-Type` from its extension, `Content-Length` |
//! | `GET` of a directory under DIR | its `index.html`, or 404 if it has none |
//! | `HEAD` of either | the same head, no body |
//! | a path that names no regular file inside DIR | 404 |
//! | a file the server may not open | 403 |
//! | another error of the file system | 500 |
//! | another method | 405 with `Allow: GET, HEAD` |
//!
//! # One request
//!
//! The loop thread never touches the file system. Each step that may block is a job on the
//! thread pool, and its result comes back to the loop thread as a callback:
//!
//! ```text
//!  loop thread                                   pool thread
//!  handle: method, then decode the path
//!    └─ queue_work ─────────────────────────────▶ open_inside: canonicalize DIR/path, check
//!                                                  that it is inside DIR, open it, fstat it
//!  opened ◀─────────────────────────────────────── the file and its length, or the io::Error
//!    ├─ an error: 404, 403 or 500
//!    └─ read_at(sent, 64 KiB) ──────────────────▶ pread
//!  on_read ◀────────────────────────────────────── the chunk
//!    └─ write it to the response
//!         ├─ more to send, write says go on:    read_at the next chunk
//!         ├─ more to send, write says stop:     on_drain, then read_at the next chunk
//!         └─ all sent (or the client has gone): end, close_file ──▶ close(2)
//! ```
//!
//! At most one read is in flight per download, and the next starts only when the response can
//! take its bytes: a client that stops reading stops the reads, and the server holds at most the
//! connection's high watermark and one chunk for it, however large the file. A file that fits
//! in one chunk is read once and sent with one `send`.
//!
//! # Paths
//!
//! The path of the request (its query is ignored) is percent-decoded one segment at a time. A
//! segment that decodes to `..`, or to something containing `/`, `\` or NUL, is refused with
//! 404: such a path could climb out of DIR, and "no such file here" is all a client needs to
//! hear. Empty and `.` segments are skipped, so `//etc/passwd` is `DIR/etc/passwd`; a final
//! `/` is kept, so `/file.txt/` is not the file. A directory is served with or without it.
//!
//! The rest is checked on the pool. `DIR/path` is canonicalized, which follows every symbolic
//! link, and must still be inside DIR (canonicalized at start): a link that points outside is
//! 404 too. Checking and opening are two steps, so after the open the server asks the kernel
//! which file it opened (`/proc/self/fd/N`) and checks that again: a directory swapped for a
//! link in between leads nowhere. Only regular files are served; a FIFO, a socket or a device
//! is 404, and files are opened with `O_NONBLOCK` so that opening a FIFO cannot hold a pool
//! thread until a writer comes.
//!
//! # When the file changes
//!
//! The length is taken when the file is opened and sent as `Content-Length`. If the file
//! shrinks during the download, that promise cannot be kept: the server sends what it could
//! read and closes the connection, so the client sees a short body, never a wrong one. If it
//! grows, the client gets the length it was promised.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use reactor::http::{Request, Response, Server, ServerConfig};
use reactor::signal::{SIGINT, SIGTERM};
use reactor::{Core, EventLoop};

const USAGE: &str = "usage: http_file DIR [ADDR]";

/// How much of a file one read on the pool takes: one read of the loop's, a few TCP windows.
const CHUNK: u64 = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// The loop thread: one request, from the handler to the last chunk.

/// The request handler: checks the method and the path, then opens the file on the pool.
fn handle(core: &mut Core, root: &Arc<Path>, req: &Request<'_>, res: Response) {
    let head_only = match req.method() {
        "GET" => false,
        "HEAD" => true,
        _ => return refuse(core, res, 405),
    };
    let Some(path) = relative_path(req.path()) else { return refuse(core, res, 404) };
    let root = root.clone();
    // Fails only if the pool cannot start a thread; `done` is then dropped with `res`, and the
    // server answers a dropped response with 500.
    let _ = core.queue_work(
        move || open_inside(&root, &path),
        move |core, opened| {
            // A job that panicked or was cancelled is an error like any other: 500.
            let opened = opened.unwrap_or_else(|err| Err(io::Error::other(err)));
            match opened {
                Ok(opened) => send_file(core, res, head_only, opened),
                Err(err) => refuse(core, res, status_for(&err)),
            }
        },
    );
}

/// A file on its way to a client: the open file, its length, and how much has been sent.
struct Body {
    file: Arc<File>,
    len: u64,
    sent: u64,
    content_type: &'static str,
}

impl Body {
    /// The head of the response: the type, and the length the file had when it was opened.
    fn start(&self, core: &mut Core, res: &mut Response) -> reactor::Result<()> {
        let length = self.len.to_string();
        res.start(core, 200, &[("Content-Type", self.content_type), ("Content-Length", &length)])
    }
}

/// The file is open: answer a HEAD (or an empty file) at once, else start reading.
fn send_file(core: &mut Core, mut res: Response, head_only: bool, opened: Opened) {
    let Opened { file, len, content_type } = opened;
    let body = Body { file: Arc::new(file), len, sent: 0, content_type };
    if head_only || len == 0 {
        // `end` after the head alone: a HEAD response, or a body of length 0.
        if body.start(core, &mut res).is_ok() {
            let _ = res.end(core);
        }
        return close(core, body);
    }
    read_next(core, res, body);
}

/// Reads the next chunk on the pool; [`on_read`] goes on from there.
fn read_next(core: &mut Core, res: Response, body: Body) {
    let want = CHUNK.min(body.len - body.sent) as usize;
    let (file, offset) = (body.file.clone(), body.sent);
    // Fails only if the pool cannot start a thread: the response is then dropped, and the
    // server answers with 500 or, once the head is out, closes the connection.
    let _ = core.read_at(file, offset, want, move |core, read| {
        on_read(core, res, body, want, read);
    });
}

/// A chunk has been read: write it, then read the next one now, or once the client has
/// taken enough of what is queued for it.
fn on_read(
    core: &mut Core,
    mut res: Response,
    mut body: Body,
    want: usize,
    read: io::Result<Vec<u8>>,
) {
    let chunk = match read {
        Ok(chunk) => chunk,
        // Nothing sent yet: the error gets its status. Else the head has promised a length
        // that will not come: `end` fails and closes the connection.
        Err(err) if body.sent == 0 => return refuse_and_close(core, res, body, &err),
        Err(_) => return end(core, res, body),
    };
    if body.sent == 0 && chunk.len() as u64 == body.len {
        // The whole file in one read: one response in one write.
        let headers = [("Content-Type", body.content_type)];
        let _ = res.send(core, 200, &headers, &chunk);
        return close(core, body);
    }
    if body.sent == 0 && body.start(core, &mut res).is_err() {
        return close(core, body);
    }
    let more = match res.write(core, &chunk) {
        Ok(more) => more,
        Err(_) => return close(core, body), // the client has gone
    };
    body.sent += chunk.len() as u64;
    // A short read is the end of the file: it shrank since it was opened.
    if body.sent == body.len || chunk.len() < want {
        return end(core, res, body);
    }
    if more {
        return read_next(core, res, body);
    }
    // The client is behind: read the next chunk once it has caught up.
    res.on_drain(core, move |core, res| match res {
        Ok(res) => read_next(core, res, body),
        Err(_) => close(core, body), // the client has gone
    });
}

/// Ends the response (a short body closes the connection) and closes the file.
fn end(core: &mut Core, res: Response, body: Body) {
    let _ = res.end(core);
    close(core, body);
}

/// Answers an error that came before any byte of the file, and closes the file.
fn refuse_and_close(core: &mut Core, res: Response, body: Body, err: &io::Error) {
    refuse(core, res, status_for(err));
    close(core, body);
}

/// Closes the file on the pool: `close(2)` may block too.
fn close(core: &mut Core, body: Body) {
    // Fails only if the pool cannot start a thread: the file is then closed here, as it drops.
    let _ = core.close_file(body.file, |_, _| {});
}

/// Answers with an error status and a one-line reason.
fn refuse(core: &mut Core, res: Response, status: u16) {
    let text = ("Content-Type", "text/plain; charset=utf-8");
    let reason = format!("{}\n", reactor::http::response::reason(status).to_lowercase());
    let result = if status == 405 {
        res.send(core, status, &[text, ("Allow", "GET, HEAD")], reason.as_bytes())
    } else {
        res.send(core, status, &[text], reason.as_bytes())
    };
    // The only failure: the client has gone.
    let _ = result;
}

// ---------------------------------------------------------------------------------------------
// Paths, types and statuses: plain functions, no I/O. (`pub`: `tests/http_file.rs` compiles this file as
// a module to test them.)

/// The path under DIR that the request path names, or `None` if it could name something
/// outside DIR (see the [module docs](self)).
pub fn relative_path(path: &str) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for segment in path.split('/') {
        let name = percent_decode(segment)?;
        match name.as_slice() {
            b"" | b"." => {}
            b".." => return None,
            name if name.iter().any(|&b| matches!(b, b'/' | b'\\' | 0)) => return None,
            name => relative.push(OsStr::from_bytes(name)),
        }
    }
    if path.ends_with('/') && !relative.as_os_str().is_empty() {
        // `file.txt/` names a directory, so it is not the file (`NotADirectory`).
        relative.as_mut_os_string().push("/");
    }
    Some(relative)
}

/// `segment` with each `%XX` replaced by its byte; `None` if a `%` is not followed by two hex
/// digits (the server's parser refuses those already).
fn percent_decode(segment: &str) -> Option<Vec<u8>> {
    let mut bytes = segment.bytes();
    let mut decoded = Vec::with_capacity(segment.len());
    while let Some(byte) = bytes.next() {
        if byte != b'%' {
            decoded.push(byte);
            continue;
        }
        let high = hex_value(bytes.next()?)?;
        let low = hex_value(bytes.next()?)?;
        decoded.push(high << 4 | low);
    }
    Some(decoded)
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|value| value as u8)
}

/// The `Content-Type` for a file name, from its extension (any case).
pub fn content_type(path: &Path) -> &'static str {
    let extension = path.extension().and_then(OsStr::to_str).map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("md") => "text/markdown; charset=utf-8",
        Some("csv") => "text/csv; charset=utf-8",
        Some("xml") => "application/xml",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("wasm") => "application/wasm",
        Some("pdf") => "application/pdf",
        Some("mp4") => "video/mp4",
        Some("woff") => "font/woff",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// The status for an error of the file system: 404 for a path that names nothing (a missing
/// file, a file where a directory was expected, a symbolic-link loop, a name too long, a path
/// outside DIR), 403 for a file the server may not open, 500 for anything else.
pub fn status_for(err: &io::Error) -> u16 {
    match err.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => 404,
        io::ErrorKind::PermissionDenied => 403,
        _ if matches!(err.raw_os_error(), Some(libc::ELOOP | libc::ENAMETOOLONG)) => 404,
        _ => 500,
    }
}

// ---------------------------------------------------------------------------------------------
// The pool thread: finding and opening the file.

/// What the pool hands back for a request that names a file.
struct Opened {
    file: File,
    len: u64,
    content_type: &'static str,
}

/// On a pool thread: opens the regular file that `path` names under `root` (canonical), or
/// fails with the error that says why not (`NotFound` for a path that leads outside `root`).
fn open_inside(root: &Path, path: &Path) -> io::Result<Opened> {
    let mut path = root.join(path).canonicalize()?;
    check_inside(root, &path)?;
    if path.is_dir() {
        path = path.join("index.html").canonicalize()?;
        check_inside(root, &path)?;
    }
    // O_NONBLOCK: opening a FIFO for reading would wait for a writer. (Reads of a regular file
    // ignore the flag.)
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "not a regular file"));
    }
    // What the kernel opened, whatever changed since `canonicalize`.
    check_inside(root, &fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?)?;
    Ok(Opened { file, len: metadata.len(), content_type: content_type(&path) })
}

/// `NotFound` unless `path` is `root` or under it (both canonical).
fn check_inside(root: &Path, path: &Path) -> io::Result<()> {
    if path.starts_with(root) {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::NotFound, "outside the served directory"))
    }
}

// ---------------------------------------------------------------------------------------------
// The process: arguments, the loop, signals.

fn parse_args(args: impl Iterator<Item = String>) -> Result<(PathBuf, SocketAddr), String> {
    let args: Vec<String> = args.collect();
    let (dir, addr) = match args.as_slice() {
        [dir] => (dir, None),
        [dir, addr] => (dir, Some(addr)),
        [] => return Err("no directory given".to_owned()),
        [_, _, extra, ..] => return Err(format!("unexpected argument {extra:?}")),
    };
    let addr = match addr {
        None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        Some(addr) => {
            addr.parse().map_err(|_| format!("{addr:?} is not an address like 127.0.0.1:8080"))?
        }
    };
    Ok((PathBuf::from(dir), addr))
}

/// DIR, canonical: the prefix every served file must have.
fn served_root(dir: &Path) -> Result<PathBuf, String> {
    let root = dir.canonicalize().map_err(|err| format!("{}: {err}", dir.display()))?;
    if !root.is_dir() {
        return Err(format!("{}: not a directory", dir.display()));
    }
    Ok(root)
}

fn serve(root: PathBuf, addr: SocketAddr) -> reactor::Result<()> {
    reactor::raise_fd_limit()?;
    let mut lp = EventLoop::new()?;
    let root: Arc<Path> = Arc::from(root);
    let handler = move |core: &mut Core, req: &Request<'_>, res: Response| {
        handle(core, &root, req, res);
    };
    let server = Server::new(&mut lp, ServerConfig::default(), handler);
    let listener = server.listen(&mut lp, addr)?;
    // First signal: graceful shutdown. A second one meanwhile: stop at once.
    server.shutdown_on_signals(&mut lp, &[SIGINT, SIGTERM])?;
    println!("listening on {}", lp.local_addr(listener)?);
    io::stdout().flush()?;
    lp.run()
}

fn main() -> ExitCode {
    let checked =
        parse_args(std::env::args().skip(1)).and_then(|(dir, addr)| Ok((served_root(&dir)?, addr)));
    let (root, addr) = match checked {
        Ok(checked) => checked,
        Err(message) => {
            eprintln!("http_file: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match serve(root, addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("http_file: {addr}: {err}");
            ExitCode::FAILURE
        }
    }
}
