//! Panic isolation: a panicking callback is caught in `dispatch`, reported through the panic
//! hook, its handle closed, and the loop goes on.
//!
//! The standard panic hook still prints each caught panic on stderr; these tests leave it alone
//! because tests run in parallel and it is process-wide.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::thread;
use std::time::Duration;

use reactor::{Core, Error, EventLoop, HandleId, Idle, Timer};

/// How long a loop may run before the test fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(5);

/// This file, as the loop reports it in panic sites.
const FILE: &str = "tests/panics.rs";

/// A panic report, copied out of the borrowed `PanicReport` the hook receives.
#[derive(Debug)]
struct Seen {
    kind: &'static str,
    handle: Option<HandleId>,
    in_close: bool,
    file: &'static str,
    line: u32,
    message: String,
    display: String,
}

type Reports = Rc<RefCell<Vec<Seen>>>;

/// Installs a panic hook that records every report.
fn record_panics(lp: &mut EventLoop) -> Reports {
    let reports = Reports::default();
    let sink = reports.clone();
    lp.set_panic_hook(move |report| {
        sink.borrow_mut().push(Seen {
            kind: report.kind(),
            handle: report.handle(),
            in_close: report.in_close_callback(),
            file: report.site().file(),
            line: report.site().line(),
            message: report.message().to_owned(),
            display: report.to_string(),
        });
    });
    reports
}

/// Arms an unreferenced timer that stops the loop after [`LIMIT`] without keeping it alive.
/// Returns the flag it sets, which a test asserts is unset. (It cannot panic: the loop would
/// catch it.)
fn safety_net(core: &mut Core) -> Rc<Cell<bool>> {
    let fired = Rc::new(Cell::new(false));
    let flag = fired.clone();
    let net = core.set_timeout(LIMIT, move |core| {
        flag.set(true);
        core.stop();
    });
    core.unref(net).unwrap();
    fired
}

/// Runs the loop to the end; fails if it needed the safety net.
fn run(lp: &mut EventLoop) {
    let net = safety_net(lp);
    lp.run().unwrap();
    assert!(!net.get(), "run() did not return within {LIMIT:?}");
}

fn counter() -> Rc<Cell<u32>> {
    Rc::new(Cell::new(0))
}

fn bump(count: &Cell<u32>) {
    count.set(count.get() + 1);
}

/// Asserts the one-line `Display` names the kind, the site and the message.
fn assert_one_line(seen: &Seen) {
    assert!(!seen.display.contains('\n'), "{:?}", seen.display);
    assert!(seen.display.contains(seen.kind), "{:?}", seen.display);
    assert!(seen.display.contains(&format!("{}:{}", seen.file, seen.line)), "{:?}", seen.display);
    assert!(seen.display.contains(&seen.message), "{:?}", seen.display);
}

#[test]
fn a_panicking_timer_is_reported_and_closed_and_the_loop_goes_on() {
    let mut lp = EventLoop::new().unwrap();
    let reports = record_panics(&mut lp);
    let later = counter();
    let count = later.clone();
    let callback = move |core: &mut Core, _: Timer| {
        // Armed by the panicking callback itself: it must still fire.
        let count = count.clone();
        core.set_timeout(Duration::from_millis(1), move |_| bump(&count));
        panic!("timer boom");
    };
    let (timer, line) = (lp.timer(callback), line!());
    lp.timer_start(timer, Duration::ZERO, Duration::ZERO).unwrap();

    run(&mut lp);
    assert_eq!(later.get(), 1);
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1);
    let seen = &reports[0];
    assert_eq!(seen.kind, "timer");
    assert_eq!(seen.handle, Some(timer.id()));
    assert!(!seen.in_close);
    assert_eq!((seen.file, seen.line), (FILE, line));
    assert_eq!(seen.message, "timer boom");
    assert_one_line(seen);

    assert!(lp.is_closing(timer));
    let closed = |result| matches!(result, Err(Error::Closed(id)) if id == timer.id());
    assert!(closed(lp.timer_start(timer, Duration::ZERO, Duration::ZERO)));
    assert!(closed(lp.timer_again(timer)));
    assert!(closed(lp.close(timer)));
}

#[test]
fn a_repeating_timer_that_panics_does_not_fire_again() {
    let mut lp = EventLoop::new().unwrap();
    let reports = record_panics(&mut lp);
    let (calls, after) = (counter(), counter());
    let count = calls.clone();
    let interval = lp.set_interval(Duration::from_millis(1), move |_, _| {
        bump(&count);
        panic!("interval boom");
    });
    // Keeps the loop running well past the interval's next deadlines.
    let count = after.clone();
    lp.set_timeout(Duration::from_millis(20), move |_| bump(&count));

    run(&mut lp);
    assert_eq!((calls.get(), after.get()), (1, 1));
    assert_eq!(reports.borrow().len(), 1);
    assert_eq!(reports.borrow()[0].handle, Some(interval.id()));
    assert!(lp.is_closing(interval));
}

#[test]
fn a_panicking_idle_callback_is_reported_and_its_handle_closed() {
    let mut lp = EventLoop::new().unwrap();
    let reports = record_panics(&mut lp);
    let calls = counter();
    let count = calls.clone();
    let callback = move |_: &mut Core, _: Idle| {
        bump(&count);
        panic!("idle boom");
    };
    let (idle, line) = (lp.idle(callback), line!());

    run(&mut lp); // an idle handle left open would spin until the safety net
    assert_eq!(calls.get(), 1);
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1);
    let seen = &reports[0];
    assert_eq!((seen.kind, seen.handle), ("idle", Some(idle.id())));
    assert_eq!((seen.file, seen.line), (FILE, line));
    assert_eq!(seen.message, "idle boom");
    assert_one_line(seen);
    assert!(matches!(lp.idle_start(idle), Err(Error::Closed(_))));
}

#[test]
fn a_panicking_deferred_callback_is_reported_without_a_handle() {
    let mut lp = EventLoop::new().unwrap();
    let reports = record_panics(&mut lp);
    let ((), line) = (lp.defer(|_| panic!("deferred boom")), line!());
    let after = counter();
    let count = after.clone();
    lp.defer(move |_| bump(&count)); // queued behind the panicking one

    run(&mut lp);
    assert_eq!(after.get(), 1);
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1);
    let seen = &reports[0];
    assert_eq!((seen.kind, seen.handle, seen.in_close), ("deferred", None, false));
    assert_eq!((seen.file, seen.line), (FILE, line));
    assert_eq!(seen.message, "deferred boom");
    assert_one_line(seen);
}

#[test]
fn a_panicking_close_callback_is_reported_as_one() {
    let mut lp = EventLoop::new().unwrap();
    let reports = record_panics(&mut lp);
    let timer = lp.timer(|_, _| {});
    let (closed, line) = (lp.close_with(timer, |_| panic!("close boom")), line!());
    closed.unwrap();
    let after = counter();
    let count = after.clone();
    lp.set_timeout(Duration::from_millis(1), move |_| bump(&count));

    run(&mut lp);
    assert_eq!(after.get(), 1);
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1);
    let seen = &reports[0];
    assert_eq!((seen.kind, seen.handle, seen.in_close), ("timer", Some(timer.id()), true));
    assert_eq!((seen.file, seen.line), (FILE, line)); // the close_with call, not the timer's
    assert_eq!(seen.message, "close boom");
    assert_one_line(seen);
    assert!(seen.display.contains("close callback"), "{:?}", seen.display);
    assert!(lp.is_closing(timer));
}

#[test]
fn a_panicking_posted_closure_is_reported_without_a_handle() {
    let mut lp = EventLoop::new().unwrap();
    let reports = record_panics(&mut lp);
    let remote = lp.remote();
    let poster = thread::spawn(move || {
        let (posted, line) = (remote.post(|_| panic!("posted boom")), line!());
        posted.unwrap();
        line
    });

    run(&mut lp);
    let line = poster.join().unwrap();
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1);
    let seen = &reports[0];
    assert_eq!((seen.kind, seen.handle, seen.in_close), ("posted", None, false));
    assert_eq!((seen.file, seen.line), (FILE, line));
    assert_eq!(seen.message, "posted boom");
    assert_one_line(seen);
}

#[test]
fn a_formatted_panic_message_is_reported_in_full() {
    let mut lp = EventLoop::new().unwrap();
    let reports = record_panics(&mut lp);
    let step = 3;
    // panic! with arguments carries a String payload, not a &str.
    lp.set_timeout(Duration::ZERO, move |_| panic!("step {step} of {} failed", step + 1));

    run(&mut lp);
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].message, "step 3 of 4 failed");
    assert!(reports[0].display.contains("step 3 of 4 failed"), "{:?}", reports[0].display);
}

#[test]
fn the_default_hook_does_not_stop_the_loop() {
    let mut lp = EventLoop::new().unwrap(); // no set_panic_hook: the report goes to stderr
    let panicking = lp.set_timeout(Duration::ZERO, |_| panic!("unhooked boom"));
    let after = counter();
    let count = after.clone();
    lp.set_timeout(Duration::from_millis(1), move |_| bump(&count));

    run(&mut lp);
    assert_eq!(after.get(), 1);
    assert!(lp.is_closing(panicking));
}
