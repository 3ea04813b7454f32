//! Black-box tests of the example programs: each runs as a child process on a free port
//! (`127.0.0.1:0`), and the tests talk to it over real sockets.
//!
//! A plain `cargo test` builds the examples before it runs the integration tests; the
//! binaries are in `target/<profile>/examples/`, next to this test's `deps/` directory.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use reactor::signal::{SIGTERM, kill};

/// The bound on every wait: a broken example fails its test instead of hanging it.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A running example, killed (if still running) and reaped when dropped.
struct Server {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    /// Gives the first line of the child's stdout, then disconnects once that is closed,
    /// i.e. once the child has exited.
    stdout_closed: mpsc::Receiver<String>,
}

impl Server {
    /// Starts example `name` with `args` and waits for its `listening on ADDR` line.
    fn start(name: &'static str, args: &[&str]) -> Server {
        let mut child = Command::new(example_path(name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start example {name}: {err}"));
        // A thread reads the first line, then drains stdout until the child exits.
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (line_tx, stdout_closed) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            if stdout.read_line(&mut line).is_ok() && !line.is_empty() {
                let _ = line_tx.send(line);
                let _ = io::copy(&mut stdout, &mut io::sink());
            }
        });
        let mut server = Server { name, child, addr: ([0, 0, 0, 0], 0).into(), stdout_closed };
        let line = match server.stdout_closed.recv_timeout(TIMEOUT) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("{name} printed nothing in {TIMEOUT:?}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("{name} exited before listening: {:?}", server.child.wait())
            }
        };
        let addr = line.trim_end().strip_prefix("listening on ");
        server.addr = match addr.and_then(|addr| addr.parse().ok()) {
            Some(addr) => addr,
            None => panic!("{name}: expected `listening on ADDR`, got {line:?}"),
        };
        server
    }

    /// Sends SIGTERM and returns the exit status, which must come within [`TIMEOUT`].
    fn terminate(mut self) -> ExitStatus {
        kill(self.child.id(), SIGTERM).expect("send SIGTERM");
        if let Err(mpsc::RecvTimeoutError::Timeout) = self.stdout_closed.recv_timeout(TIMEOUT) {
            panic!("{} did not exit within {TIMEOUT:?} of SIGTERM", self.name);
        }
        // Its stdout is closed: the process is exiting, so this wait is short.
        self.child.wait().expect("wait for the example")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target/<profile>/examples/<name>`, found from this test binary in `target/<profile>/deps/`.
fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps");
    let path = dir.join("examples").join(name);
    assert!(
        path.is_file(),
        "example binary {} is missing: run a plain `cargo test` (which builds the examples) \
         or `cargo build --examples` first",
        path.display()
    );
    path
}

/// A TCP connection whose reads and writes give up after [`TIMEOUT`].
fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Reads until EOF (a read timeout fails the test).
fn read_to_eof(mut stream: &TcpStream) -> Vec<u8> {
    let mut data = Vec::new();
    stream.read_to_end(&mut data).expect("read to EOF");
    data
}

/// The echo example, and the proxy in front of it.
fn proxied_echo() -> (Server, Server) {
    let echo = Server::start("echo", &["127.0.0.1:0"]);
    let proxy = Server::start("proxy", &["127.0.0.1:0", &echo.addr.to_string()]);
    (echo, proxy)
}

#[test]
fn proxy_relays_a_mebibyte_byte_exact() {
    let (_echo, proxy) = proxied_echo();
    let stream = connect(proxy.addr);
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    // Write and read at once: the echo pauses a client that does not read.
    let mut writer = stream.try_clone().unwrap();
    let sent = data.clone();
    let sender = thread::spawn(move || {
        writer.write_all(&sent).expect("write 1 MiB");
        writer.shutdown(Shutdown::Write).expect("shutdown");
    });
    let echoed = read_to_eof(&stream);
    sender.join().unwrap();
    assert_eq!(echoed.len(), data.len());
    assert!(echoed == data, "the echo came back altered");
    assert!(proxy.terminate().success());
}

#[test]
fn proxy_propagates_half_close() {
    let (_echo, proxy) = proxied_echo();
    let mut stream = connect(proxy.addr);
    stream.write_all(b"first, ").unwrap();
    stream.write_all(b"then the FIN").unwrap();
    // Our FIN reaches the echo through the proxy; the echo sends the rest back and closes,
    // and that EOF comes back through the proxy too.
    stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&stream), b"first, then the FIN");
    assert!(proxy.terminate().success());
}

#[test]
fn proxy_closes_the_client_when_the_upstream_refuses() {
    // A port that was free a moment ago: nothing listens there now.
    let refused = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let proxy = Server::start("proxy", &["127.0.0.1:0", &refused.to_string()]);
    let start = Instant::now();
    let mut stream = connect(proxy.addr);
    let _ = stream.write_all(b"anyone there?");
    let mut buf = [0; 64];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Err(err) if err.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(5), "closed only after {:?}", start.elapsed());
    assert!(proxy.terminate().success());
}

#[test]
fn proxy_rejects_bad_arguments_with_status_2() {
    for args in [&[][..], &["127.0.0.1:0"], &["127.0.0.1:0", "nowhere"], &["a", "b", "c"]] {
        let output = Command::new(example_path("proxy")).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "args {args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("usage"), "args {args:?}");
    }
}

/// A chat client reading line by line.
struct ChatClient {
    stream: TcpStream,
    lines: BufReader<TcpStream>,
}

impl ChatClient {
    /// Connects and checks the greeting: `* you are {name}`.
    fn join(addr: SocketAddr, name: &str) -> ChatClient {
        let stream = connect(addr);
        let lines = BufReader::new(stream.try_clone().unwrap());
        let mut client = ChatClient { stream, lines };
        client.expect(&format!("* you are {name}"));
        client
    }

    fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).unwrap();
    }

    /// The next line, without its `\n`.
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.lines.read_line(&mut line).expect("read a chat line");
        assert!(line.ends_with('\n'), "a line cut short: {line:?}");
        line.pop();
        line
    }

    /// Reads the next line and checks that it is `expected`.
    fn expect(&mut self, expected: &str) {
        assert_eq!(self.line(), expected);
    }

    /// The server closed the connection (an EOF, or a reset if it closed with our data
    /// unread).
    fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        match self.lines.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "unexpected {:?}", String::from_utf8_lossy(&rest)),
            Err(err) => assert_eq!(err.kind(), io::ErrorKind::ConnectionReset),
        }
    }
}

/// A chat server with three members, every join announced and read.
fn chat_room() -> (Server, [ChatClient; 3]) {
    let chat = Server::start("chat", &["127.0.0.1:0"]);
    let mut one = ChatClient::join(chat.addr, "user1");
    let mut two = ChatClient::join(chat.addr, "user2");
    one.expect("* user2 joined");
    let three = ChatClient::join(chat.addr, "user3");
    one.expect("* user3 joined");
    two.expect("* user3 joined");
    (chat, [one, two, three])
}

#[test]
fn chat_broadcasts_to_the_others_and_announces_leaves() {
    let (chat, [mut one, mut two, mut three]) = chat_room();
    one.send("hello\n");
    two.expect("user1: hello");
    three.expect("user1: hello");
    // Each sender's next line is someone else's message: it did not get its own.
    two.send("hi\n");
    one.expect("user2: hi");
    three.expect("user2: hi");
    three.send("hey\n");
    one.expect("user3: hey");
    two.expect("user3: hey");
    one.send("bye\n");
    two.expect("user1: bye");
    three.expect("user1: bye");
    drop(two);
    one.expect("* user2 left");
    three.expect("* user2 left");
    assert!(chat.terminate().success());
}

#[test]
fn chat_holds_a_partial_line_until_its_newline() {
    let (chat, [mut one, mut two, mut three]) = chat_room();
    one.send("par");
    two.send("meanwhile\n");
    three.expect("user2: meanwhile");
    one.send("tial");
    two.send("still waiting\n");
    three.expect("user2: still waiting");
    one.send(" line\nand a second\n");
    // Had any fragment gone out on its own, it would come first.
    three.expect("user1: partial line");
    three.expect("user1: and a second");
    two.expect("user1: partial line");
    two.expect("user1: and a second");
    assert!(chat.terminate().success());
}

#[test]
fn chat_disconnects_a_client_whose_line_is_too_long() {
    let (chat, [mut one, two, mut three]) = chat_room();
    three.send(&"x".repeat(5000));
    three.expect("line too long");
    three.expect_closed();
    // None of it reached the others: their next line is the leave.
    one.expect("* user3 left");
    drop(two);
    one.expect("* user2 left");
    assert!(chat.terminate().success());
}

#[test]
fn chat_cuts_off_a_member_that_does_not_read() {
    let (chat, [mut slow, mut talker, mut listener]) = chat_room();
    // `slow` never reads. Once the kernel buffers towards it are full and 64 KiB more are
    // queued for it, the server cuts it off rather than buffer more. Bounded at 64 MB sent.
    let text = "y".repeat(1000);
    let mut left = false;
    for _ in 0..6400 {
        // Small batches, all read at once by `listener`, so that it is never the slow one.
        talker.send(&format!("{text}\n").repeat(10));
        let mut pending = 10;
        while pending > 0 {
            match listener.line() {
                line if line == "* user1 left" => left = true,
                line => {
                    assert_eq!(line, format!("user2: {text}"));
                    pending -= 1;
                }
            }
        }
        if left {
            break;
        }
    }
    assert!(left, "the member that does not read was never cut off");
    talker.expect("* user1 left");
    // It gets what the kernel held for it, then the reset (or an EOF).
    let mut rest = Vec::new();
    match slow.lines.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(err) => assert_eq!(err.kind(), io::ErrorKind::ConnectionReset),
    }
    // The room goes on without it.
    talker.send("still here\n");
    listener.expect("user2: still here");
    assert!(chat.terminate().success());
}

/// How a socket read timeout shows on Unix.
fn is_timeout(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

#[test]
fn udp_echo_returns_datagrams_of_every_size() {
    let server = Server::start("udp_echo", &["127.0.0.1:0"]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(server.addr).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = vec![0; 65536];
    for i in 0..100usize {
        // Empty, the largest IPv4 payload, and a spread in between.
        let size = match i {
            0 => 0,
            1 => 65507,
            _ => i * 7919 % 9000,
        };
        let datagram: Vec<u8> = (0..size).map(|j| (i * 31 + j) as u8).collect();
        // Loopback does not lose datagrams in practice; if one is lost, send it again.
        let echoed = (0..5).any(|_| {
            socket.send(&datagram).expect("send");
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) if buf[..n] == datagram[..] => return true,
                    // The late echo of an earlier attempt.
                    Ok(_) => continue,
                    Err(err) if is_timeout(&err) => return false,
                    Err(err) => panic!("recv: {err}"),
                }
            }
        });
        assert!(echoed, "datagram {i} ({size} bytes) never came back");
    }
    assert!(server.terminate().success());
}

#[test]
fn sigterm_makes_each_example_exit_0() {
    for name in ["proxy", "chat", "udp_echo"] {
        let args: &[&str] = match name {
            "proxy" => &["127.0.0.1:0", "127.0.0.1:9"],
            _ => &["127.0.0.1:0"],
        };
        let status = Server::start(name, args).terminate();
        assert_eq!(status.code(), Some(0), "{name}: {status}");
    }
    // The echo example has printed its address before installing its signal handlers; a
    // connection served proves its loop is running, and so its handlers are in place.
    let echo = Server::start("echo", &["127.0.0.1:0"]);
    let mut stream = connect(echo.addr);
    stream.write_all(b"ping").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&stream), b"ping");
    let status = echo.terminate();
    assert_eq!(status.code(), Some(0), "echo: {status}");
}

/// Runs example `name` with `args` to its end (killed, and the test failed, after
/// [`TIMEOUT`]); its status and what it printed.
fn run_to_end(name: &str, args: &[&str]) -> (ExitStatus, String, String) {
    let child = Command::new(example_path(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start example {name}: {err}"));
    let pid = child.id();
    let (done, output) = mpsc::channel();
    thread::spawn(move || done.send(child.wait_with_output()));
    match output.recv_timeout(TIMEOUT) {
        Ok(Ok(out)) => {
            let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
            (out.status, text(out.stdout), text(out.stderr))
        }
        Ok(Err(err)) => panic!("{name}: {err}"),
        Err(_) => {
            let _ = kill(pid, 9); // SIGKILL
            panic!("{name} {args:?} did not finish within {TIMEOUT:?}");
        }
    }
}

#[test]
fn spawn_streams_the_childs_output_and_exits_with_its_code() {
    let script = "echo out; echo err >&2; echo more; exit 7";
    let (status, out, err) = run_to_end("spawn", &["sh", "-c", script]);
    assert_eq!(status.code(), Some(7), "stderr: {err}");
    assert_eq!(out, "out\nmore\n");
    assert!(err.starts_with("err\n") && err.contains("exited with code 7"), "{err:?}");
}

#[test]
fn spawn_reports_a_killing_signal_as_128_plus_its_number() {
    let (status, _, err) = run_to_end("spawn", &["sh", "-c", "kill -TERM $$"]);
    assert_eq!(status.code(), Some(128 + SIGTERM));
    assert!(err.contains("killed by signal 15"), "{err:?}");
}

#[test]
fn spawn_of_a_missing_command_exits_127_and_bad_usage_2() {
    let (status, _, err) = run_to_end("spawn", &["/nonexistent/command"]);
    assert_eq!(status.code(), Some(127));
    assert!(err.contains("/nonexistent/command") && err.contains("No such file"), "{err:?}");
    let (status, _, err) = run_to_end("spawn", &[]);
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("usage"), "{err:?}");
}

#[test]
fn http_get_fetches_from_the_http_example_by_name() {
    let server = Server::start("http", &["127.0.0.1:0"]);
    let port = server.addr.port();
    let url = format!("http://localhost:{port}/");
    let (status, out, err) = run_to_end("http_get", &[&url]);
    assert!(status.success(), "stderr: {err}");
    assert_eq!(out, "Hello, World!");
    assert!(err.starts_with("HTTP/1.1 200 OK\n") && err.contains("Content-Length: 13"), "{err}");
    // A chunked body is decoded.
    let (status, out, err) = run_to_end("http_get", &[&format!("http://127.0.0.1:{port}/chunked")]);
    assert!(status.success(), "stderr: {err}");
    assert_eq!(out, "Hello, World!");
    assert!(err.contains("Transfer-Encoding: chunked"), "{err}");
    // An error status is a failure, with its body still printed.
    let (status, _, err) = run_to_end("http_get", &[&format!("http://localhost:{port}/nope")]);
    assert_eq!(status.code(), Some(1));
    assert!(err.starts_with("HTTP/1.1 404"), "{err}");
}

#[test]
fn http_get_reports_refused_connections_unknown_hosts_and_bad_urls() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (status, out, err) = run_to_end("http_get", &[&format!("http://localhost:{port}/")]);
    assert_eq!((status.code(), out.as_str()), (Some(1), ""));
    assert!(err.contains("refused"), "{err:?}");
    let (status, _, err) = run_to_end("http_get", &["http://no-such-host.invalid/"]);
    assert_eq!(status.code(), Some(1));
    assert!(err.starts_with("http_get: "), "{err:?}");
    for bad in ["https://localhost/", "localhost:80", "http://:80/", "http://h:99999/"] {
        let (status, _, err) = run_to_end("http_get", &[bad]);
        assert_eq!(status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("usage"), "{bad}: {err:?}");
    }
}

#[test]
fn trace_prints_the_chains_of_a_write_a_panic_and_a_blocked_loop() {
    let (status, out, err) = run_to_end("trace", &[]);
    assert!(status.success(), "{status}\n{out}\n{err}");
    let steps = |title: &str| -> Vec<String> {
        let start = out.find(title).unwrap_or_else(|| panic!("no {title:?} in\n{out}"));
        out[start..]
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .map(str::to_owned)
            .collect()
    };
    // The write completion's chain, step by step (the lines are the example's).
    let write = steps("chain of the write completion:");
    let kinds: Vec<&str> = write.iter().map(|l| l.trim().split(" (").next().unwrap()).collect();
    assert_eq!(kinds.len(), 6, "{out}");
    assert_eq!(kinds[0], "write done callback");
    assert_eq!(kinds[1], "<- queued write in work done callback");
    assert!(kinds[2].starts_with("<- queued work in callback of timer#"), "{out}");
    assert!(kinds[3].starts_with("<- armed in data callback of stream#"), "{out}");
    assert!(kinds[4].starts_with("<- accepted by listener#"), "{out}");
    assert_eq!(kinds[5], "<- created");
    assert!(write.iter().all(|l| l.contains("(examples/trace.rs:")), "{out}");
    assert!(out.contains("request id seen there: Some(1)"), "{out}");
    assert!(out.contains("client got \"HELLO\""), "{out}");
    let panic = steps("panic report:");
    assert!(panic[0].trim().starts_with("work done callback ("), "{out}");
    assert!(panic[1].contains("<- queued work in deferred callback"), "{out}");
    assert!(panic.iter().any(|l| l.contains("deep down")), "{out}");
    assert!(out.contains("reactor: loop blocked for "), "{out}");
    assert!(out.contains("reactor: slow callback, "), "{out}");
}
