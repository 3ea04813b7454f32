//! Runs a command and streams its output as it comes, like a tiny process supervisor.
//!
//! `cargo run --example spawn -- CMD [ARGS...]`: starts CMD as a child process with its
//! standard output and error piped to the loop, copies each chunk to our own stdout or stderr
//! as it arrives, forwards SIGINT and SIGTERM to the child, and exits with the child's code
//! (128 + the signal number if a signal killed it, as shells report it). A command that cannot
//! be started is reported on stderr with exit code 127, as a shell does.
//!
//! The flow: `spawn` returns at once; the loop reads the child's two streams as any sockets
//! (their `on_data` runs for each chunk), the `SIGCHLD` self-pipe tells the loop when the
//! child has exited (`on_exit`), and `run()` returns once the exit is known and both streams
//! have reached their end.
//!
//! One shortcut, fine for a terminal: our own stdout and stderr are written with ordinary
//! blocking writes. A supervisor whose output goes into a slow pipe would open them as
//! non-blocking streams too, so that a stalled reader pauses the child instead of the loop.

use std::cell::RefCell;
use std::io::{self, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode, ExitStatus};
use std::rc::Rc;

use reactor::process::SpawnOptions;
use reactor::signal::{SIGINT, SIGTERM};
use reactor::{Conn, Core, EventLoop, StreamHandler};

/// Copies a child's output stream to one of ours.
struct CopyTo<W: Write>(W);

impl<W: Write + 'static> StreamHandler for CopyTo<W> {
    fn on_data(&mut self, _conn: &mut Conn<'_>, data: &[u8]) {
        // Our own stdout closed (`spawn ... | head`): nothing more to show, but the child
        // still runs to its end.
        let _ = self.0.write_all(data).and_then(|()| self.0.flush());
    }
}

/// The exit code a shell would give for `status`.
fn shell_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => 128u8.wrapping_add(signal as u8),
        (None, None) => 1,
    }
}

/// What to say about how the child ended, and the code to exit with.
fn report(status: io::Result<ExitStatus>) -> (String, u8) {
    match status {
        Ok(status) => match status.signal() {
            Some(signal) => (format!("killed by signal {signal}"), shell_code(status)),
            None => {
                (format!("exited with code {}", status.code().unwrap_or(-1)), shell_code(status))
            }
        },
        Err(err) => (format!("cannot collect the exit status: {err}"), 1),
    }
}

fn run(program: &str, args: &[String]) -> reactor::Result<u8> {
    let mut lp = EventLoop::new()?;
    let ended = Rc::new(RefCell::new(None));
    let on_exit = {
        let ended = ended.clone();
        move |_: &mut Core, _, status| *ended.borrow_mut() = Some(report(status))
    };
    let options = SpawnOptions::new().stdout(CopyTo(io::stdout())).stderr(CopyTo(io::stderr()));
    let child = lp.spawn(Command::new(program).args(args), options, on_exit)?;
    // Pass Ctrl-C and SIGTERM on to the child; it decides when to end, and we follow. The
    // signal handles must not keep the loop alive once the child is gone.
    for signum in [SIGINT, SIGTERM] {
        let forward = lp.signal(signum, move |core, _, signum| {
            let _ = core.process_kill(child.process, signum);
        })?;
        lp.unref(forward)?;
    }
    // Returns once the exit is known and both streams have reached their end: the exit can
    // come first, with output still on its way.
    lp.run()?;
    let (how, code) = ended.take().unwrap_or_else(|| ("ended unreported".to_owned(), 1));
    eprintln!("spawn: {how}");
    Ok(code)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((program, args)) = args.split_first() else {
        eprintln!("usage: spawn CMD [ARGS...]");
        return ExitCode::from(2);
    };
    match run(program, args) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("spawn: {program}: {err}");
            ExitCode::from(127)
        }
    }
}
