//! An echo server: every byte a client sends comes back on the same connection.
//!
//! `cargo run --release --example echo [-- ADDR]` (ADDR defaults to `127.0.0.1:7000`; port 0
//! picks a free port). Prints `listening on ADDR` once it is ready, holds 10,000+ connections
//! on one thread, and exits with status 0 on SIGINT or SIGTERM.
//!
//! When a client half-closes, the rest of its echo is sent and then the server closes its side
//! (the default `on_eof`). A client that sends without reading gets paused once 64 KiB of its
//! echo is queued, so the server's memory stays bounded whatever it sends.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use reactor::signal::{SIGINT, SIGTERM};
use reactor::{Conn, EventLoop, StreamHandler};

/// The echo protocol: Node's `socket.pipe(socket)`, backpressure included.
pub struct Echo;

impl StreamHandler for Echo {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        // `false`: the client is not reading and its queue is past the high watermark.
        if !conn.write(data) {
            conn.pause();
        }
    }

    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        conn.resume();
    }
}

fn serve(addr: SocketAddr) -> reactor::Result<()> {
    // 10,000 connections need 10,000 descriptors; the usual soft limit is 1024.
    reactor::raise_fd_limit()?;
    let mut lp = EventLoop::new()?;
    let listener = lp.listen_tcp(addr, |_| Echo)?;
    // Handlers first: whoever reads the line below may signal at once.
    for signum in [SIGINT, SIGTERM] {
        lp.signal(signum, |core, _, _| core.stop())?;
    }
    println!("listening on {}", lp.local_addr(listener)?);
    std::io::stdout().flush()?;
    lp.run()
}

fn main() -> ExitCode {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:7000".to_owned());
    let Ok(addr) = arg.parse::<SocketAddr>() else {
        eprintln!("echo: {arg:?} is not an address like 127.0.0.1:7000\nusage: echo [ADDR]");
        return ExitCode::from(2);
    };
    match serve(addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("echo: {addr}: {err}");
            ExitCode::FAILURE
        }
    }
}
