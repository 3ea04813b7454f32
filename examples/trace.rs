//! Causal traces, slow callbacks and the watchdog, shown on one small request.
//!
//! ```text
//! cargo run --example trace
//! ```
//!
//! A server and its client run on one loop, with tracing on. The client sends `hello`. The
//! server's data callback sets a request id as context and arms a timer; the timer queues
//! work on the thread pool (upper-casing the text); the work's `done` writes the answer with
//! a completion callback. That callback prints its causal chain and the request id it sees.
//! Then a callback three steps down from a timer panics, and the loop's panic report carries
//! the chain. Last, a callback blocks the loop for 300 ms: the watchdog reports it while it
//! is stuck, and the slow-callback check after it returns. Exits 0 when all of that happened.
//! `docs/tracing.md` shows and explains the output.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::trace::{self, Chain};
use reactor::{Conn, Core, EventLoop, Stream, StreamHandler};

/// The context value: which request a callback works for.
struct RequestId(u32);

/// Prints a chain one step per line.
fn show(title: &str, chain: &Chain) {
    println!("{title}:\n  {}", chain.to_string().replace(" <- ", "\n  <- "));
}

/// The server's connection: upper-cases what it gets, by way of a timer and the pool.
struct Upper {
    requests: u32,
}

impl StreamHandler for Upper {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        self.requests += 1;
        let text = data.to_vec();
        let (core, stream) = conn.split();
        core.set_context(RequestId(self.requests));
        core.set_timeout(Duration::from_millis(1), move |core| upper_on_pool(core, stream, text));
    }
}

fn upper_on_pool(core: &mut Core, stream: Stream, text: Vec<u8>) {
    let work = move || text.to_ascii_uppercase();
    let done = move |core: &mut Core, upper: Result<Vec<u8>, reactor::WorkError>| {
        let upper = upper.expect("the work does not panic");
        let written = |core: &mut Core, result: reactor::Result<()>| {
            result.expect("the answer is written");
            show("chain of the write completion", &trace::current(core));
            let id = core.context::<RequestId>().map(|id| id.0);
            println!("request id seen there: {id:?}\n");
        };
        let _ = core.write_with(stream, &upper, written);
    };
    core.queue_work(work, done).expect("the pool starts");
}

/// The client: sends `hello`, prints the answer, and closes.
struct Client;

impl StreamHandler for Client {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.write(b"hello");
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        println!("client got {:?}\n", String::from_utf8_lossy(data));
        conn.close();
    }
}

/// A panic three callbacks down from a timer: timer, deferred, pool work's `done`.
fn panic_deep_down(core: &mut Core) {
    core.defer(|core| {
        let done = |_: &mut Core, _: Result<(), reactor::WorkError>| panic!("deep down");
        core.queue_work(|| (), done).expect("the pool starts");
    });
}

/// Blocks the loop for 300 ms.
fn block(_: &mut Core) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(300) {
        std::hint::spin_loop();
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("trace: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> reactor::Result<bool> {
    let mut lp = EventLoop::builder().tracing(true).build()?;
    // Keep the standard hook quiet: the loop's report below says it all.
    std::panic::set_hook(Box::new(|_| {}));
    let panics = Rc::new(RefCell::new(0));
    let seen = panics.clone();
    lp.set_panic_hook(move |report| {
        show("panic report", report.chain());
        println!("  ({report})\n");
        *seen.borrow_mut() += 1;
    });

    let any_port: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let listener = lp.listen_tcp(any_port, |_| Upper { requests: 0 })?;
    let addr = lp.local_addr(listener)?;
    let client = lp.connect_tcp(addr, Client)?;
    lp.set_timeout(Duration::from_millis(5), panic_deep_down);

    // Run until the client has its answer and the panic was reported.
    while !lp.is_closing(client) || *panics.borrow() == 0 {
        lp.run_once()?;
    }
    lp.close(listener)?;

    // Blocked-loop detection.
    let (reports, watchdog) = std::sync::mpsc::channel();
    lp.start_watchdog(Duration::from_millis(100), move |blocked| {
        let _ = reports.send(blocked.to_string());
    })?;
    let slow = Rc::new(RefCell::new(Vec::new()));
    let sink = slow.clone();
    lp.set_slow_callback_threshold(Some(Duration::from_millis(50)));
    lp.set_slow_callback_hook(move |report| sink.borrow_mut().push(report.to_string()));
    lp.set_timeout(Duration::ZERO, block);
    lp.run()?;
    lp.stop_watchdog();

    let blocked: Vec<String> = watchdog.try_iter().collect();
    println!("watchdog, while the loop was stuck:\n  {}\n", blocked.join("\n  "));
    println!("slow-callback check, after:\n  {}", slow.borrow().join("\n  "));
    Ok(blocked.len() == 1 && slow.borrow().len() == 1)
}
