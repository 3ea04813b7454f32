//! A UDP echo server: every datagram goes back to its sender, unchanged.
//!
//! `cargo run --release --example udp_echo [-- ADDR]` (ADDR defaults to `127.0.0.1:7003`; port
//! 0 picks a free port), then `nc -u 127.0.0.1 7003`. Prints `listening on ADDR` once it is
//! ready and exits with status 0 on SIGINT or SIGTERM.
//!
//! There are no connections: one socket serves every client, and the receive callback gets
//! each datagram with its sender's address. When the socket's send buffer is full, echoes are
//! queued up to a bound; past it they are dropped, as the network itself may drop any datagram.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use reactor::EventLoop;
use reactor::signal::{SIGINT, SIGTERM};

fn serve(addr: SocketAddr) -> reactor::Result<()> {
    let mut lp = EventLoop::new()?;
    let socket = lp.udp_bind(addr, |core, me, data, sender| {
        // An error (a full send queue) only loses this echo.
        let _ = core.udp_send_to(me, data, sender);
    })?;
    for signum in [SIGINT, SIGTERM] {
        lp.signal(signum, |core, _, _| core.stop())?;
    }
    // Printed last: a supervisor may signal us as soon as it has read this line.
    println!("listening on {}", lp.local_addr(socket)?);
    std::io::stdout().flush()?;
    lp.run()
}

fn main() -> ExitCode {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:7003".to_owned());
    let Ok(addr) = arg.parse::<SocketAddr>() else {
        eprintln!(
            "udp_echo: {arg:?} is not an address like 127.0.0.1:7003\nusage: udp_echo [ADDR]"
        );
        return ExitCode::from(2);
    };
    match serve(addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("udp_echo: {addr}: {err}");
            ExitCode::FAILURE
        }
    }
}
