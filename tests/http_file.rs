//! Black-box tests of the `http_file` example (`examples/http_file.rs`), the static file server:
//! the built binary runs as a child process on `127.0.0.1:0`, serving a fixture directory made
//! for each test under the system's temporary directory, and the tests talk to it over plain
//! `std::net` sockets.
//!
//! The contract under test, from the example's docs:
//!
//! - `http_file DIR [ADDR]` prints `listening on IP:PORT` once ready; bad arguments, or a DIR
//!   that is not a directory, exit with status 2 and a usage message on stderr; SIGTERM lets the
//!   downloads in progress finish, then exits with status 0.
//! - GET of a regular file: 200, its exact bytes, a `Content-Type` from its extension and its
//!   `Content-Length`; of a directory: its `index.html`, or 404. HEAD: the same head, no body.
//!   Another method: 405 with `Allow: GET, HEAD`.
//! - 404 for anything that names no regular file inside DIR: missing files, a file with a
//!   trailing `/`, FIFOs (which must not hold a pool thread either), symbolic-link loops, and
//!   every way out of DIR: `..` plain or percent-encoded, encoded slashes and backslashes, NUL,
//!   absolute paths and absolute-form targets, symbolic links to files or directories outside.
//!   A secret next to DIR never appears in any response. 403 for a file the server may not
//!   open: the tests run the server as an unprivileged user to show it (as root, `chmod 000`
//!   stops nobody), through `setpriv` when they run as root.
//! - A large file arrives intact, to a fast client and to one that stops reading for a while;
//!   while it has stopped, the server's memory stays far below the file's size (its reads wait
//!   for the client: backpressure), and the server serves others meanwhile. A client that goes
//!   away mid-download makes the server close the file. A file that shrinks mid-download ends
//!   with a short body and a close, never with wrong bytes.
//!
//! The example's pure functions (path decoding, content types, the status for an error) are
//! also tested as units: its source is compiled into this test as the module `example`.
//!
//! Every child is killed and reaped when its test ends, every test is bounded by a watchdog,
//! every socket read and write by a timeout, and every wait for the server by a bounded poll.
//! The binary must be built first: a plain `cargo test` does, `cargo test --test http_file`
//! alone does not (then run `cargo build --example http_file` before it).

mod util;

/// The example's source, for its pure functions; its `main` is not used here.
#[allow(dead_code)]
#[path = "../examples/http_file.rs"]
mod example;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reactor::signal::{SIGTERM, kill};
use util::child::{
    EXIT_LIMIT, IO_TIMEOUT, Server, Watchdog, assert_same, example_binary, poll_until,
    random_bytes, run_captured, set_timeouts,
};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// What lies next to the served directory, and must never be served.
const SECRET: &str = "TOP-SECRET-7f3a9c";

const HTML: &str = "text/html; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

// ---------------------------------------------------------------------------------------------
// 1. Files, types, HEAD, directories.

#[test]
fn files_are_served_with_their_exact_bytes_type_and_length() {
    let _watchdog = Watchdog::arm("files", Duration::from_secs(20));
    let fixture = Fixture::new("files");
    let binary: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let files: [(&str, &[u8], &str); 13] = [
        ("hello.txt", b"hello, world\n", TEXT),
        ("page.html", b"<p>page</p>", HTML),
        ("UPPER.HTM", b"<p>upper</p>", HTML),
        ("style.css", b"p { color: red }", "text/css; charset=utf-8"),
        ("app.mjs", b"export {}", "text/javascript; charset=utf-8"),
        ("data.json", b"{\"a\":1}", "application/json"),
        ("notes.md", b"# notes", "text/markdown; charset=utf-8"),
        ("image.png", &binary, "image/png"),
        ("photo.JPEG", &binary, "image/jpeg"),
        ("font.woff2", &binary, "font/woff2"),
        ("noext", b"no extension", "application/octet-stream"),
        ("with space.txt", b"spaced", TEXT),
        ("caf\u{e9}.txt", b"accented", TEXT),
    ];
    for (name, contents, _) in files {
        fixture.write(name, contents);
    }
    let server = start(&fixture.root);
    let mut client = Client::connect(server.addr);
    for (name, contents, content_type) in files {
        let target = format!("/{}", percent_encode(name));
        let resp = client.get(&target);
        expect_file(&resp, contents, content_type, &target);
    }
    // `.` and empty segments are skipped; the query is ignored; a link inside DIR is followed.
    for target in ["/./hello.txt", "//hello.txt", "/hello.txt?x=1", "/%68ello.txt", "/inside"] {
        expect_file(&client.get(target), b"hello, world\n", TEXT, target);
    }
    // Empty, and exactly one chunk of the server's reads (64 KiB) and one byte more.
    for (name, len) in [("empty.bin", 0), ("chunk.bin", 64 * KIB), ("chunk1.bin", 64 * KIB + 1)] {
        let contents = random_bytes(len, len as u64);
        fixture.write(name, &contents);
        let resp = client.get(&format!("/{name}"));
        expect_file(&resp, &contents, "application/octet-stream", name);
    }
}

#[test]
fn head_gets_the_head_of_get_and_no_body() {
    let _watchdog = Watchdog::arm("HEAD", Duration::from_secs(20));
    let fixture = Fixture::new("head");
    fixture.write("big.bin", &random_bytes(MIB, 1));
    let server = start(&fixture.root);
    let mut client = Client::connect(server.addr);
    for target in ["/hello.txt", "/", "/big.bin", "/sub/"] {
        let get = client.get(target);
        assert_eq!(get.status, 200, "GET {target}: {}", get.describe());
        client.send(&request("HEAD", target));
        let head = client.response(true);
        assert_eq!(head.status, 200, "HEAD {target}: {}", head.describe());
        assert_eq!(head.header("content-type"), get.header("content-type"), "HEAD {target}");
        assert_eq!(head.header("content-length"), get.header("content-length"), "HEAD {target}");
        // Had a body followed the HEAD response, this would read it as a status line.
        expect_file(&client.get("/hello.txt"), b"hello, world\n", TEXT, "after HEAD");
    }
}

#[test]
fn a_directory_is_served_by_its_index_html() {
    let _watchdog = Watchdog::arm("index.html", Duration::from_secs(20));
    let fixture = Fixture::new("index");
    let server = start(&fixture.root);
    let mut client = Client::connect(server.addr);
    expect_file(&client.get("/"), b"<h1>home</h1>", HTML, "/");
    expect_file(&client.get("/sub/"), b"<h1>sub</h1>", HTML, "/sub/");
    expect_file(&client.get("/sub"), b"<h1>sub</h1>", HTML, "/sub");
    expect_file(&client.get("/sub/index.html"), b"<h1>sub</h1>", HTML, "/sub/index.html");
    // A directory without one: nothing to serve.
    for target in ["/empty/", "/empty"] {
        expect_status(&client.get(target), 404, target);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. What is not served.

#[test]
fn missing_files_and_paths_that_name_no_regular_file_get_404() {
    let _watchdog = Watchdog::arm("404", Duration::from_secs(20));
    let fixture = Fixture::new("missing");
    make_fifo(&fixture.root.join("fifo"));
    std::os::unix::fs::symlink("loop", fixture.root.join("loop")).expect("make a link loop");
    let server = start(&fixture.root);
    let mut client = Client::connect(server.addr);
    let long = format!("/{}", "n".repeat(300));
    let targets = ["/nope", "/sub/nope.txt", "/nope/hello.txt", "/hello.txt/", "/loop", &long];
    for target in targets {
        expect_status(&client.get(target), 404, target);
    }
    // A FIFO is not a regular file, and opening it must not wait for a writer: more FIFO
    // requests than the pool has threads, then a file, all answered.
    for n in 0..6 {
        expect_status(&client.get("/fifo"), 404, &format!("FIFO request {n}"));
    }
    expect_file(&client.get("/hello.txt"), b"hello, world\n", TEXT, "after the FIFOs");
}

#[test]
fn no_path_leads_out_of_the_directory() {
    let _watchdog = Watchdog::arm("traversal", Duration::from_secs(20));
    let fixture = Fixture::new("traversal");
    let server = start(&fixture.root);
    let mut seen = Vec::new();
    // Each on its own connection, since some are refused by the parser with a close.
    let mut ask = |raw: &[u8], want: u16| {
        let mut client = Client::connect(server.addr);
        client.send(raw);
        let resp = client.response(false);
        let what = show(raw);
        assert_eq!(resp.status, want, "{what}: {}", resp.describe());
        seen.push(resp.raw);
    };
    let refused_by_the_handler = [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/..%5csecret.txt",
        "/%5c..%5csecret.txt",
        "/sub/..",
        "/hello.txt%00.html",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/outside",
        "/outside-dir/secret.txt",
        "/sibling",
        "/../root/hello.txt",
    ];
    for target in refused_by_the_handler {
        ask(&get(target), 404);
    }
    // Absolute-form targets: their path is checked like any other.
    for target in ["http://test/../secret.txt", "http://test/%2e%2e/secret.txt"] {
        ask(&get(target), 404);
    }
    // Not even a request: the parser refuses a raw backslash and a malformed escape.
    for target in ["/..\\secret.txt", "/%2g%2e/secret.txt"] {
        ask(&get(target), 400);
    }
    for raw in &seen {
        assert!(find(raw, SECRET.as_bytes()).is_none(), "the secret was served: {}", show(raw));
    }
    // Still serving.
    expect_file(&Client::connect(server.addr).get("/hello.txt"), b"hello, world\n", TEXT, "after");
}

#[test]
fn other_methods_get_405_with_allow() {
    let _watchdog = Watchdog::arm("405", Duration::from_secs(20));
    let fixture = Fixture::new("methods");
    let server = start(&fixture.root);
    let mut client = Client::connect(server.addr);
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        let raw =
            format!("{method} /hello.txt HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc");
        client.send(raw.as_bytes());
        let resp = client.response(false);
        expect_status(&resp, 405, method);
        assert_eq!(resp.header("allow"), Some("GET, HEAD"), "{method}: {}", resp.describe());
    }
    // Unchanged.
    expect_file(&client.get("/hello.txt"), b"hello, world\n", TEXT, "after the 405s");
}

#[test]
fn a_file_the_server_may_not_open_gets_403() {
    let _watchdog = Watchdog::arm("403", Duration::from_secs(20));
    let fixture = Fixture::new("denied");
    fixture.write("private.txt", b"private");
    std::fs::create_dir(fixture.root.join("locked")).expect("make a directory");
    fixture.write("locked/inner.txt", b"inner");
    let none = std::fs::Permissions::from_mode(0o000);
    std::fs::set_permissions(fixture.root.join("private.txt"), none.clone()).expect("chmod 000");
    std::fs::set_permissions(fixture.root.join("locked"), none).expect("chmod 000");
    let server = start_unprivileged(&fixture.root);
    let mut client = Client::connect(server.addr);
    expect_status(&client.get("/private.txt"), 403, "a file it may not read");
    expect_status(&client.get("/locked/inner.txt"), 403, "a file in a directory it may not search");
    expect_file(&client.get("/hello.txt"), b"hello, world\n", TEXT, "a file it may read");
    drop(server);
    // Removable again by a user who is not root.
    let back = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(fixture.root.join("locked"), back).expect("chmod back");
}

// ---------------------------------------------------------------------------------------------
// 3. Large files and backpressure.

#[test]
fn a_large_file_arrives_intact() {
    let _watchdog = Watchdog::arm("large file", Duration::from_secs(60));
    let fixture = Fixture::new("large");
    let contents = random_bytes(32 * MIB, 32);
    fixture.write("large.bin", &contents);
    let server = start(&fixture.root);
    let mut client = Client::connect(server.addr);
    let resp = client.get("/large.bin");
    expect_file(&resp, &contents, "application/octet-stream", "/large.bin");
    // The connection goes on.
    expect_file(&client.get("/hello.txt"), b"hello, world\n", TEXT, "after the large file");
}

#[test]
fn a_client_that_stops_reading_stalls_its_download_and_the_server_holds_little_of_it() {
    let _watchdog = Watchdog::arm("backpressure", Duration::from_secs(60));
    let fixture = Fixture::new("stall");
    let contents = random_bytes(32 * MIB, 7);
    fixture.write("large.bin", &contents);
    let server = start(&fixture.root);
    // The baseline, with the pool started by a first request.
    let mut other = Client::connect(server.addr);
    expect_file(&other.get("/hello.txt"), b"hello, world\n", TEXT, "the first request");
    let baseline = server.rss_kib();

    let mut slow = Client::connect(server.addr);
    slow.send(&get("/large.bin"));
    let stalled = stalled_at(&server, &slow);
    let rss = server.rss_kib();
    eprintln!(
        "stalled with {} KiB in the sockets; server VmRSS {rss} KiB (baseline {baseline} KiB) \
         for a {} KiB file",
        stalled / 1024,
        contents.len() / KIB,
    );
    // A server that read the whole file would hold 32 MiB more. Reads wait for the client:
    // the queue's high watermark and a chunk, and the allocator's slack.
    let grown = rss.saturating_sub(baseline);
    assert!(grown < 8 * 1024, "the server grew by {grown} KiB while the client did not read");
    // The loop is not blocked by the stalled download: others are served.
    expect_file(&other.get("/hello.txt"), b"hello, world\n", TEXT, "during the stall");

    let resp = slow.response(false);
    expect_file(&resp, &contents, "application/octet-stream", "the stalled download");
}

#[test]
fn a_client_that_goes_away_mid_download_makes_the_server_close_the_file() {
    let _watchdog = Watchdog::arm("disconnect", Duration::from_secs(60));
    let fixture = Fixture::new("disconnect");
    fixture.write("large.bin", &random_bytes(32 * MIB, 3));
    let server = start(&fixture.root);
    assert_eq!(open_files_under(&server, &fixture.root), 0, "before the download");
    let mut client = Client::connect(server.addr);
    client.send(&get("/large.bin"));
    stalled_at(&server, &client);
    assert_eq!(open_files_under(&server, &fixture.root), 1, "during the download");
    // Gone with data unread: a reset.
    drop(client);
    let closed = poll_until(Duration::from_secs(10), || {
        (open_files_under(&server, &fixture.root) == 0).then_some(())
    });
    assert!(closed.is_some(), "the server still holds the file 10 s after the client went");
    expect_file(&Client::connect(server.addr).get("/hello.txt"), b"hello, world\n", TEXT, "after");
}

#[test]
fn a_file_that_shrinks_mid_download_ends_with_a_short_body_and_a_close() {
    let _watchdog = Watchdog::arm("shrink", Duration::from_secs(60));
    let fixture = Fixture::new("shrink");
    let contents = random_bytes(32 * MIB, 11);
    let path = fixture.write("large.bin", &contents);
    let server = start(&fixture.root);
    let mut client = Client::connect(server.addr);
    client.send(&get("/large.bin"));
    let head = client.response(true);
    assert_eq!(head.header("content-length"), Some("33554432"), "{}", head.describe());
    // The server has read a few MiB at most (the socket buffers'); the file loses its second
    // half.
    stalled_at(&server, &client);
    let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open to truncate");
    file.set_len(16 * MIB as u64).expect("truncate");
    let (rest, reset) = client.read_to_end();
    assert!(!reset, "a reset, after {} bytes", rest.len());
    assert_same(&rest, &contents[..16 * MIB], "the body of the shrunk file, then the close");
}

// ---------------------------------------------------------------------------------------------
// 4. The process.

#[test]
fn bad_arguments_exit_with_status_2_and_usage() {
    let _watchdog = Watchdog::arm("arguments", Duration::from_secs(40));
    let fixture = Fixture::new("arguments");
    let root = fixture.root.to_str().expect("a UTF-8 temporary path").to_owned();
    let file = format!("{root}/hello.txt");
    let missing = format!("{root}/no-such-directory");
    let cases: [Vec<&str>; 5] = [
        vec![],
        vec![&root, "127.0.0.1:0", "extra"],
        vec![&root, "not-an-address"],
        vec![&missing, "127.0.0.1:0"],
        vec![&file, "127.0.0.1:0"],
    ];
    let mut failures = Vec::new();
    for args in cases {
        let mut cmd = Command::new(example_binary("http_file"));
        cmd.args(&args);
        let Some((status, stdout, stderr)) = run_captured(cmd, Duration::from_secs(5)) else {
            failures.push(format!("{args:?}: still running after 5 s"));
            continue;
        };
        if status.code() != Some(2) || !stderr.contains("usage: http_file DIR [ADDR]") {
            failures.push(format!("{args:?}: {status}, stdout {stdout:?}, stderr {stderr:?}"));
        }
    }
    assert!(failures.is_empty(), "bad arguments must exit 2 with usage:\n{}", failures.join("\n"));
}

#[test]
fn sigterm_lets_a_stalled_download_finish_then_exits_0() {
    let _watchdog = Watchdog::arm("SIGTERM", Duration::from_secs(60));
    let fixture = Fixture::new("sigterm");
    let contents = random_bytes(16 * MIB, 5);
    fixture.write("large.bin", &contents);
    let mut server = start(&fixture.root);
    let mut idle = Client::connect(server.addr);
    expect_file(&idle.get("/hello.txt"), b"hello, world\n", TEXT, "the idle client");
    let mut slow = Client::connect(server.addr);
    slow.send(&get("/large.bin"));
    stalled_at(&server, &slow);

    kill(server.pid(), SIGTERM).expect("send SIGTERM");
    let (rest, _) = idle.read_to_end();
    assert!(rest.is_empty(), "the idle connection got {}", show(&rest));
    assert!(server.process.try_wait().is_none(), "the server exited mid-download");
    let resp = slow.response(false);
    expect_file(&resp, &contents, "application/octet-stream", "the download after SIGTERM");
    // Its head left before the signal: the connection closes after it all the same.
    let (rest, _) = slow.read_to_end();
    assert!(rest.is_empty(), "after the download: {}", show(&rest));
    let status: ExitStatus = server
        .process
        .wait_timeout(EXIT_LIMIT)
        .unwrap_or_else(|| panic!("the server still runs {EXIT_LIMIT:?} after SIGTERM"));
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status}");
}

// ---------------------------------------------------------------------------------------------
// 5. The example's pure functions.

#[test]
fn request_paths_decode_to_paths_inside_the_directory_or_to_none() {
    let decoded = |path: &str| example::relative_path(path).map(|p| p.display().to_string());
    let cases: [(&str, Option<&str>); 16] = [
        ("/", Some("")),
        ("/a/b.txt", Some("a/b.txt")),
        ("/a/./b.txt", Some("a/b.txt")),
        ("//a//b.txt", Some("a/b.txt")),
        ("/a/", Some("a/")),
        ("/with%20space", Some("with space")),
        ("/caf%C3%A9", Some("caf\u{e9}")),
        ("/%2e", Some("")),
        ("/...", Some("...")),
        ("/..", None),
        ("/a/../b", None),
        ("/%2E%2e", None),
        ("/a%2fb", None),
        ("/a%5Cb", None),
        ("/a%00b", None),
        ("/%zz", None),
    ];
    for (path, want) in cases {
        assert_eq!(decoded(path).as_deref(), want, "{path}");
    }
    // Never an absolute path, which `join` would put in place of DIR.
    for path in ["//etc/passwd", "/%2fetc/passwd", "///"] {
        assert!(example::relative_path(path).is_none_or(|p| p.is_relative()), "{path}");
    }
}

#[test]
fn content_types_follow_the_extension_in_any_case() {
    let cases = [
        ("a.html", HTML),
        ("a.HTM", HTML),
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.svg", "image/svg+xml"),
        ("a.wasm", "application/wasm"),
        ("a.tar.gz", "application/octet-stream"),
        ("README", "application/octet-stream"),
        (".txt", "application/octet-stream"),
    ];
    for (name, want) in cases {
        assert_eq!(example::content_type(Path::new(name)), want, "{name}");
    }
}

#[test]
fn file_system_errors_map_to_404_403_and_500() {
    let os = io::Error::from_raw_os_error;
    let cases = [
        (io::Error::from(ErrorKind::NotFound), 404),
        (os(libc::ENOENT), 404),
        (os(libc::ENOTDIR), 404),
        (os(libc::ELOOP), 404),
        (os(libc::ENAMETOOLONG), 404),
        (os(libc::EACCES), 403),
        (os(libc::EPERM), 403),
        (os(libc::EIO), 500),
        (os(libc::EMFILE), 500),
        (io::Error::other("a job that panicked"), 500),
    ];
    for (err, want) in cases {
        assert_eq!(example::status_for(&err), want, "{err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers: the fixture.

/// A directory for one test: `base/root` is served, `base/secret.txt` must never be, and
/// `base/rootx/` is a sibling whose name starts like the root's. Removed when dropped.
///
/// ```text
/// base/secret.txt                    SECRET
/// base/rootx/secret.txt              SECRET
/// base/root/index.html               <h1>home</h1>
/// base/root/hello.txt                hello, world\n
/// base/root/sub/index.html           <h1>sub</h1>
/// base/root/empty/                   (no index.html)
/// base/root/inside -> hello.txt
/// base/root/outside -> ../secret.txt
/// base/root/outside-dir -> ..
/// base/root/sibling -> ../rootx/secret.txt
/// ```
struct Fixture {
    base: PathBuf,
    /// Canonical, as the server compares it.
    root: PathBuf,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("reactor-http-file-{}-{n}-{tag}", std::process::id());
        let base = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&base);
        for dir in ["root/sub", "root/empty", "rootx"] {
            std::fs::create_dir_all(base.join(dir)).expect("make the fixture's directories");
        }
        let base = base.canonicalize().expect("the fixture's path");
        let fixture = Fixture { root: base.join("root"), base };
        std::fs::write(fixture.base.join("secret.txt"), SECRET).expect("write the secret");
        std::fs::write(fixture.base.join("rootx/secret.txt"), SECRET).expect("write the secret");
        fixture.write("index.html", b"<h1>home</h1>");
        fixture.write("hello.txt", b"hello, world\n");
        fixture.write("sub/index.html", b"<h1>sub</h1>");
        for (link, target) in [
            ("inside", "hello.txt"),
            ("outside", "../secret.txt"),
            ("outside-dir", ".."),
            ("sibling", "../rootx/secret.txt"),
        ] {
            std::os::unix::fs::symlink(target, fixture.root.join(link)).expect("make a link");
        }
        fixture
    }

    /// Writes `contents` to `name` under the served root; returns its path.
    fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.root.join(name);
        std::fs::write(&path, contents).unwrap_or_else(|err| panic!("write {name}: {err}"));
        path
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Makes a FIFO at `path` with `mkfifo(1)` (the standard library has no call for it, and the
/// tests use no `unsafe`).
fn make_fifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("run mkfifo (coreutils)");
    assert!(status.success(), "mkfifo {}: {status}", path.display());
}

// ---------------------------------------------------------------------------------------------
// Helpers: the server process.

/// The example serving `root` on `127.0.0.1:0`.
fn start(root: &Path) -> Server {
    let mut cmd = Command::new(example_binary("http_file"));
    cmd.arg(root).arg("127.0.0.1:0");
    Server::spawn(cmd)
}

/// The example serving `root` as a user who is not root: as `nobody` (uid and gid 65534)
/// through `setpriv` when the tests run as root, else as the user running them.
fn start_unprivileged(root: &Path) -> Server {
    let binary = example_binary("http_file");
    let euid = std::fs::metadata("/proc/self").expect("stat /proc/self").uid();
    let mut cmd = if euid == 0 {
        let found = Command::new("setpriv").arg("--version").output();
        assert!(
            found.is_ok_and(|out| out.status.success()),
            "running as root: this test needs setpriv (util-linux) to start the server as an \
             unprivileged user, since root may open any file"
        );
        // The build directory may sit under a directory `nobody` cannot enter (`/root`):
        // run a copy from beside the fixture, in the world-searchable temporary directory.
        let base = root.parent().expect("the fixture's base directory");
        let copy = base.join("http_file");
        std::fs::copy(&binary, &copy).expect("copy the example next to the fixture");
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
            .expect("make the copy executable by all");
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(copy);
        cmd
    } else {
        Command::new(binary)
    };
    cmd.arg(root).arg("127.0.0.1:0");
    Server::spawn(cmd)
}

/// How many of the server's descriptors are files under `root`.
fn open_files_under(server: &Server, root: &Path) -> usize {
    let dir = format!("/proc/{}/fd", server.pid());
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("list {dir}: {err}"));
    entries
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.starts_with(root))
        .count()
}

/// Waits until `client`'s download has stalled: output waits on both sides of the connection
/// (in the server's send queue and in the client's receive queue) and neither has changed for
/// three polls in a row (the server waits for the client). Returns the bytes sent and not read.
fn stalled_at(server: &Server, client: &Client) -> u64 {
    let local = client.stream.local_addr().expect("the client's address");
    let mut last = (0, 0);
    let mut same = 0;
    let stalled = poll_until(Duration::from_secs(10), || {
        let (_, unread) = queues(local, server.addr)?;
        let (unsent, _) = queues(server.addr, local)?;
        same = if (unsent, unread) == last { same + 1 } else { 0 };
        last = (unsent, unread);
        (unsent > 0 && unread > 0 && same >= 3).then_some(unsent + unread)
    });
    stalled.unwrap_or_else(|| panic!("the download did not stall within 10 s ({last:?} queued)"))
}

/// The send and receive queues, in bytes, of the socket `local` connected to `remote`, from
/// `/proc/net/tcp`; `None` if there is no such socket.
fn queues(local: SocketAddr, remote: SocketAddr) -> Option<(u64, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    // Addresses are `IIIIIIII:PPPP`: the IPv4 address as a native-endian u32, then the port.
    let parse = |field: &str| -> Option<SocketAddr> {
        let (ip, port) = field.split_once(':')?;
        let ip = u32::from_str_radix(ip, 16).ok()?;
        let port = u16::from_str_radix(port, 16).ok()?;
        Some(SocketAddr::from((Ipv4Addr::from(ip.to_ne_bytes()), port)))
    };
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if parse(fields.get(1)?)? != local || parse(fields.get(2)?)? != remote {
            return None;
        }
        let (tx, rx) = fields.get(4)?.split_once(':')?;
        Some((u64::from_str_radix(tx, 16).ok()?, u64::from_str_radix(rx, 16).ok()?))
    })
}

// ---------------------------------------------------------------------------------------------
// Helpers: the client.

fn request(method: &str, target: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}

fn get(target: &str) -> Vec<u8> {
    request("GET", target)
}

/// `name` as a request path segment: bytes outside `[A-Za-z0-9._-]` percent-encoded.
fn percent_encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A blocking client connection with timeouts, and what it has read and not yet parsed.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A response as read: status, headers (names in lowercase), body, and every byte of it.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    raw: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        let mut values = self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let value = values.next();
        assert!(values.next().is_none(), "two {name} fields: {}", self.describe());
        value
    }

    /// The head and the start of the body, for messages.
    fn describe(&self) -> String {
        let head = self.raw.len() - self.body.len();
        show(&self.raw[..head + self.body.len().min(200)])
    }
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
        set_timeouts(&stream);
        Client { stream, buf: Vec::new() }
    }

    #[track_caller]
    fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).expect("send");
    }

    #[track_caller]
    fn get(&mut self, target: &str) -> Resp {
        self.send(&get(target));
        self.response(false)
    }

    /// Reads once more into the buffer; `false` at EOF.
    #[track_caller]
    fn fill(&mut self) -> bool {
        let mut chunk = vec![0; 256 * KIB];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => panic!("read: {err} after {} bytes", self.buf.len()),
            }
        }
    }

    /// The next response; `head_only`: it has no body (the answer to a HEAD).
    #[track_caller]
    fn response(&mut self, head_only: bool) -> Resp {
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            assert!(self.fill(), "EOF before a response head: {}", show(&self.buf));
        };
        let head = String::from_utf8(self.buf[..end].to_vec()).expect("an ASCII head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = match status_line.split(' ').collect::<Vec<_>>()[..] {
            ["HTTP/1.1", code, ..] => code.parse().expect("a status code"),
            _ => panic!("not a status line: {status_line:?}"),
        };
        let headers: Vec<(String, String)> = lines
            .filter(|line| !line.is_empty())
            .map(|line| {
                let (name, value) = line.split_once(':').expect("a header field");
                (name.to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        let mut resp = Resp { status, headers, body: Vec::new(), raw: Vec::new() };
        assert_eq!(resp.header("transfer-encoding"), None, "{}", show(head.as_bytes()));
        let length = if head_only {
            0
        } else {
            let length = resp.header("content-length").expect("a Content-Length");
            length.parse::<usize>().expect("a length")
        };
        while self.buf.len() < end + length {
            assert!(self.fill(), "EOF with {} of {length} body bytes", self.buf.len() - end);
        }
        resp.raw = self.buf.drain(..end + length).collect();
        resp.body = resp.raw[end..].to_vec();
        resp
    }

    /// Reads until the server closes; returns what came and whether it ended with a reset.
    fn read_to_end(&mut self) -> (Vec<u8>, bool) {
        let mut chunk = vec![0; 256 * KIB];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return (std::mem::take(&mut self.buf), false),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == ErrorKind::ConnectionReset => {
                    return (std::mem::take(&mut self.buf), true);
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => panic!("read: {err} after {} bytes", self.buf.len()),
            }
        }
    }
}

#[track_caller]
fn expect_status(resp: &Resp, status: u16, what: &str) {
    assert_eq!(resp.status, status, "{what}: {}", resp.describe());
    assert_eq!(resp.header("content-type"), Some(TEXT), "{what}: {}", resp.describe());
}

#[track_caller]
fn expect_file(resp: &Resp, contents: &[u8], content_type: &str, what: &str) {
    assert_eq!(resp.status, 200, "{what}: {}", resp.describe());
    assert_eq!(resp.header("content-type"), Some(content_type), "{what}: {}", resp.describe());
    let length = contents.len().to_string();
    assert_eq!(resp.header("content-length"), Some(length.as_str()), "{what}");
    // Compared as a whole first: a byte-by-byte search only when they differ.
    if resp.body != contents {
        assert_same(&resp.body, contents, what);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Bytes as text, with CR and LF escaped.
fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\r', "\\r").replace('\n', "\\n")
}
