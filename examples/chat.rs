//! A line-based chat room: every line a client sends goes to everyone else.
//!
//! `cargo run --release --example chat [-- ADDR]` (ADDR defaults to `127.0.0.1:7002`; port 0
//! picks a free port), then `nc 127.0.0.1 7002` from a few terminals. Prints `listening on ADDR`
//! once it is ready and exits with status 0 on SIGINT or SIGTERM.
//!
//! Each connection is named `user1`, `user2`... and told its name (`* you are user3`). Every
//! complete line it sends reaches every *other* member as `user3: text`; joins and leaves are
//! announced as `* user3 joined` and `* user3 left`.
//!
//! Two rules keep the server's memory bounded whatever clients do:
//!
//! - **Long lines**: a line is buffered until its `\n`, up to [`MAX_LINE`] bytes; a client that
//!   goes past that is told `line too long` and disconnected.
//! - **Slow readers**: a member whose write queue goes past the high watermark (64 KiB, on top
//!   of what the kernel buffers) is not reading its messages. Rather than buffer without limit
//!   for it, the server cuts it off (IRC's "SendQ exceeded"), and the room is told it left.

use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;

use reactor::signal::{SIGINT, SIGTERM};
use reactor::{Conn, Core, EventLoop, Stream, StreamHandler};

/// The longest line a client may send, without its `\n`.
const MAX_LINE: usize = 4096;

/// Everyone connected. One thread, so an `Rc<RefCell<..>>` shared by the handlers will do.
type Room = Rc<RefCell<Vec<Stream>>>;

/// Sends `msg` to every member of the room but `from`.
fn broadcast(core: &mut Core, room: &Room, from: Stream, msg: &[u8]) {
    // `write` and `abort` never call back into a handler, so the room can stay borrowed.
    for &member in room.borrow().iter().filter(|&&member| member != from) {
        // `Ok(false)`: a slow reader, cut off; its `on_close` says it left. `Err`: it is
        // already leaving.
        if let Ok(false) = core.write(member, msg) {
            let _ = core.abort(member);
        }
    }
}

/// One member's connection.
struct Member {
    name: String,
    /// The start of a line whose `\n` has not arrived yet.
    partial: Vec<u8>,
    room: Room,
}

impl StreamHandler for Member {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let me = conn.id();
        self.room.borrow_mut().push(me);
        conn.write(format!("* you are {}\n", self.name).as_bytes());
        let joined = format!("* {} joined\n", self.name);
        broadcast(conn.core(), &self.room, me, joined.as_bytes());
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        let me = conn.id();
        self.partial.extend_from_slice(data);
        let mut rest = &self.partial[..];
        // Only a `\n` within the first MAX_LINE + 1 bytes ends a line short enough.
        while let Some(end) = rest.iter().take(MAX_LINE + 1).position(|&byte| byte == b'\n') {
            let msg = [self.name.as_bytes(), b": ", &rest[..=end]].concat();
            broadcast(conn.core(), &self.room, me, &msg);
            rest = &rest[end + 1..];
        }
        if rest.len() > MAX_LINE {
            conn.write(b"line too long\n");
            conn.close();
            return;
        }
        let used = self.partial.len() - rest.len();
        self.partial.drain(..used);
    }

    fn on_close(&mut self, core: &mut Core, me: Stream, _: Option<std::io::Error>) {
        self.room.borrow_mut().retain(|&member| member != me);
        broadcast(core, &self.room, me, format!("* {} left\n", self.name).as_bytes());
    }
}

fn serve(addr: SocketAddr) -> reactor::Result<()> {
    let mut lp = EventLoop::new()?;
    let room = Room::default();
    let mut count = 0;
    let listener = lp.listen_tcp(addr, move |_| {
        count += 1;
        Member { name: format!("user{count}"), partial: Vec::new(), room: room.clone() }
    })?;
    for signum in [SIGINT, SIGTERM] {
        lp.signal(signum, |core, _, _| core.stop())?;
    }
    // Printed last: a supervisor may signal us as soon as it has read this line.
    println!("listening on {}", lp.local_addr(listener)?);
    std::io::stdout().flush()?;
    lp.run()
}

fn main() -> ExitCode {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:7002".to_owned());
    let Ok(addr) = arg.parse::<SocketAddr>() else {
        eprintln!("chat: {arg:?} is not an address like 127.0.0.1:7002\nusage: chat [ADDR]");
        return ExitCode::from(2);
    };
    match serve(addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("chat: {addr}: {err}");
            ExitCode::FAILURE
        }
    }
}
