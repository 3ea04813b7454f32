//! A TCP proxy: every client connection is relayed to an upstream server, byte for byte.
//!
//! `cargo run --release --example proxy -- LISTEN_ADDR UPSTREAM_ADDR`, e.g. in front of the echo
//! example: `cargo run --release --example proxy -- 127.0.0.1:7001 127.0.0.1:7000`. Prints
//! `listening on ADDR` once it is ready and exits with status 0 on SIGINT or SIGTERM.
//!
//! Each accepted client dials the upstream, and the two streams are coupled by one small
//! handler, [`Side`], on each end:
//!
//! - **Backpressure**: what one side reads is written to the other; when that write returns
//!   `false`, the reading side is paused until the other side's `on_drain` resumes it. Memory
//!   per connection stays bounded, however fast one end sends and however slow the other reads.
//! - **Half-close**: an EOF on one side shuts down the other's writing side; once both
//!   directions are done, the library closes both streams by itself.
//! - **Close**: when either side closes (or fails, or the upstream refuses the connect), the
//!   other is closed gracefully, after its queued output is delivered.
//!
//! Data a client sends before the upstream connect completes is queued by the library.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use reactor::signal::{SIGINT, SIGTERM};
use reactor::{Conn, Core, EventLoop, Stream, StreamHandler};

/// One end of a relayed connection: forwards what its stream reads to `peer`.
struct Side {
    /// The other stream. A client gets it in `on_open`, when it dials the upstream.
    peer: Option<Stream>,
    /// A client's upstream address, until `on_open` dials it.
    dial: Option<SocketAddr>,
}

impl StreamHandler for Side {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if let Some(upstream) = self.dial.take() {
            let back = Side { peer: Some(conn.id()), dial: None };
            match conn.core().connect_tcp(upstream, back) {
                Ok(peer) => self.peer = Some(peer),
                Err(_) => conn.close(),
            }
        }
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        let Some(peer) = self.peer else { return };
        // `false`: the peer's queue is past its high watermark, so stop reading until it
        // drains. (An error means the peer is closing; its `on_close` closes us.)
        if !conn.core().write(peer, data).unwrap_or(false) {
            conn.pause();
        }
    }

    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        // Our queue went down: the side that writes into it may read again.
        if let Some(peer) = self.peer {
            let _ = conn.core().resume(peer);
        }
    }

    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        // Pass the half-close on, and keep this side open: the reply may still be coming.
        if let Some(peer) = self.peer {
            let _ = conn.core().shutdown(peer);
        }
    }

    fn on_close(&mut self, core: &mut Core, _: Stream, _: Option<std::io::Error>) {
        // The other side goes too. (If it is closed or closing already, this is an `Err`.)
        if let Some(peer) = self.peer {
            let _ = core.close(peer);
        }
    }
}

fn serve(addr: SocketAddr, upstream: SocketAddr) -> reactor::Result<()> {
    reactor::raise_fd_limit()?; // two descriptors per client
    let mut lp = EventLoop::new()?;
    let listener = lp.listen_tcp(addr, move |_| Side { peer: None, dial: Some(upstream) })?;
    for signum in [SIGINT, SIGTERM] {
        lp.signal(signum, |core, _, _| core.stop())?;
    }
    // Printed last: a supervisor may signal us as soon as it has read this line.
    println!("listening on {}", lp.local_addr(listener)?);
    std::io::stdout().flush()?;
    lp.run()
}

/// `LISTEN_ADDR UPSTREAM_ADDR`, exactly.
fn parse_args() -> Option<(SocketAddr, SocketAddr)> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(upstream), None) = (args.next(), args.next(), args.next()) else {
        return None;
    };
    Some((addr.parse().ok()?, upstream.parse().ok()?))
}

fn main() -> ExitCode {
    let Some((addr, upstream)) = parse_args() else {
        eprintln!("usage: proxy LISTEN_ADDR UPSTREAM_ADDR (e.g. 127.0.0.1:7001 127.0.0.1:7000)");
        return ExitCode::from(2);
    };
    match serve(addr, upstream) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("proxy: {addr}: {err}");
            ExitCode::FAILURE
        }
    }
}
