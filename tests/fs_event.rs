//! File-system event handles, driven by real changes in a scratch directory.
//!
//! Every change is made from inside the loop (a zero timeout, or the callback of the event the
//! step before was waiting for), never from another thread and never after a sleep, so the
//! events and their order are exact. Each run is bounded twice: by an unreferenced timer that
//! stops the loop and fails the test with the events seen so far, and by `within`, in case the
//! loop blocks where no timer can wake it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reactor::fs_event::{FS_EVENT_BUDGET, FsEvent, FsEventKind};
use reactor::{Core, Error, EventLoop, FsWatch};

mod util;
use util::within;

/// How long one loop may run before the test fails.
const LIMIT: Duration = Duration::from_secs(10);

/// A fresh directory for one test (unique per process and test), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("reactor-fs-event-{}-{n}-{test}", std::process::id());
        let dir = std::env::temp_dir().join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn append(path: &Path, data: &[u8]) {
    fs::OpenOptions::new().append(true).open(path).unwrap().write_all(data).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// One step of a [`Script`]: how many events it causes, and the change that causes them.
type Step = (usize, Box<dyn FnOnce(&mut Core)>);

/// A sequence of changes and the log of the events they cause. Each step's change is made once
/// every event of the steps before it has arrived; a step that expects no events is followed
/// at once by the next.
struct Script {
    log: RefCell<Vec<String>>,
    steps: RefCell<VecDeque<Step>>,
    /// How many events the steps taken so far cause.
    due: Cell<usize>,
    /// Rename cookies in order of appearance: a log line names a cookie by its index (from 1),
    /// since the values themselves differ from run to run.
    cookies: RefCell<Vec<u32>>,
}

impl Script {
    fn new() -> Rc<Script> {
        Rc::new(Script {
            log: RefCell::default(),
            steps: RefCell::default(),
            due: Cell::new(0),
            cookies: RefCell::default(),
        })
    }

    /// Adds a step: `change` and the number of events it causes.
    fn then(&self, events: usize, change: impl FnOnce(&mut Core) + 'static) {
        self.steps.borrow_mut().push_back((events, Box::new(change)));
    }

    /// A watch callback that logs each event as `who kind [name] [(dir)] [(cookie n)]` and
    /// moves the script on.
    fn logger(
        self: &Rc<Self>,
        who: &'static str,
    ) -> impl FnMut(&mut Core, FsWatch, &FsEvent<'_>) + use<> {
        let script = self.clone();
        move |core, _, event| script.record(core, script.line(who, event))
    }

    fn line(&self, who: &str, event: &FsEvent<'_>) -> String {
        let mut line = format!("{who} {:?}", event.kind);
        if let Some(name) = event.name {
            line += &format!(" {}", name.display());
            if event.is_dir {
                line += " (dir)";
            }
        }
        if event.cookie != 0 {
            let mut cookies = self.cookies.borrow_mut();
            let n = match cookies.iter().position(|&c| c == event.cookie) {
                Some(i) => i + 1,
                None => {
                    cookies.push(event.cookie);
                    cookies.len()
                }
            };
            line += &format!(" (cookie {n})");
        }
        line
    }

    fn record(&self, core: &mut Core, line: String) {
        self.log.borrow_mut().push(line);
        self.advance(core);
    }

    /// Takes the next steps if every event awaited so far has arrived.
    fn advance(&self, core: &mut Core) {
        while self.log.borrow().len() == self.due.get() {
            let Some((events, change)) = self.steps.borrow_mut().pop_front() else { return };
            self.due.set(self.due.get() + events);
            change(core);
        }
    }

    /// Takes the first step from a zero timeout, runs the loop until it returns by itself, and
    /// returns the log. Fails if a step is left or the loop ran for longer than [`LIMIT`].
    fn run(self: &Rc<Self>, lp: &mut EventLoop) -> Vec<String> {
        let script = self.clone();
        lp.set_timeout(Duration::ZERO, move |core| script.advance(core));
        run_bounded(lp, &self.log);
        assert!(self.steps.borrow().is_empty(), "steps left; events: {:?}", self.log.borrow());
        self.log.take()
    }
}

/// Runs `lp` until it returns by itself; fails (showing `log`) if it still runs after
/// [`LIMIT`]. The timer that checks is unreferenced, so it does not keep the loop alive.
fn run_bounded(lp: &mut EventLoop, log: &RefCell<Vec<String>>) {
    let expired = Rc::new(Cell::new(false));
    let flag = expired.clone();
    let net = lp.set_timeout(LIMIT, move |core| {
        flag.set(true);
        core.stop();
    });
    lp.unref(net).unwrap();
    lp.run().unwrap();
    assert!(!expired.get(), "the loop still ran after {LIMIT:?}; events: {:?}", log.borrow());
    let _ = lp.close(net);
}

#[test]
fn changes_inside_a_watched_directory_are_reported_by_name() {
    within(LIMIT * 2, || {
        let dir = Scratch::new("dir");
        let (a, b, sub) = (dir.path("a"), dir.path("b"), dir.path("sub"));
        let mut lp = EventLoop::new().unwrap();
        let script = Script::new();
        let watch = lp.fs_watch(&dir.0, script.logger("w")).unwrap();
        assert!(lp.is_active(watch));
        assert_eq!(lp.fs_watch_path(watch).unwrap(), dir.0);

        let a2 = a.clone();
        script.then(1, move |_| drop(fs::File::create(&a2).unwrap()));
        let a2 = a.clone();
        script.then(1, move |_| append(&a2, b"x"));
        let a2 = a.clone();
        script.then(1, move |_| chmod(&a2, 0o600));
        let b2 = b.clone();
        script.then(2, move |_| fs::rename(&a, &b2).unwrap());
        script.then(1, move |_| fs::remove_file(&b).unwrap());
        let sub2 = sub.clone();
        script.then(1, move |_| fs::create_dir(&sub2).unwrap());
        script.then(1, move |_| fs::remove_dir(&sub).unwrap());
        script.then(0, move |core| core.close(watch).unwrap());

        assert_eq!(
            script.run(&mut lp),
            [
                "w Created a",
                "w Modified a",
                "w Attributes a",
                "w MovedFrom a (cookie 1)",
                "w MovedTo b (cookie 1)",
                "w Deleted b",
                "w Created sub (dir)",
                "w Deleted sub (dir)",
            ]
        );
        assert!(lp.is_closing(watch));
    });
}

#[test]
fn a_watched_file_reports_its_own_changes_until_it_is_deleted() {
    within(LIMIT * 2, || {
        let dir = Scratch::new("file");
        let (f, g) = (dir.path("f"), dir.path("g"));
        fs::write(&f, b"").unwrap();
        let mut lp = EventLoop::new().unwrap();
        let script = Script::new();
        let mut log = script.logger("f");
        let active_at_the_end = Rc::new(Cell::new(None));
        let seen = active_at_the_end.clone();
        let watch = lp
            .fs_watch(&f, move |core, me, event| {
                if event.kind == FsEventKind::WatchEnded {
                    seen.set(Some(core.is_active(me)));
                }
                log(core, me, event);
            })
            .unwrap();

        let f2 = f.clone();
        script.then(1, move |_| append(&f2, b"x"));
        let f2 = f.clone();
        script.then(1, move |_| chmod(&f2, 0o600));
        let g2 = g.clone();
        script.then(1, move |_| fs::rename(&f, &g2).unwrap());
        // Unlinking drops the link count (Attributes); the last link gone, the inode goes.
        script.then(3, move |_| fs::remove_file(&g).unwrap());

        // No close: the ended watch no longer keeps the loop alive, so `run` returns.
        assert_eq!(
            script.run(&mut lp),
            [
                "f Modified",
                "f Attributes",
                "f SelfMoved",
                "f Attributes",
                "f SelfDeleted",
                "f WatchEnded"
            ]
        );
        assert_eq!(active_at_the_end.get(), Some(false), "inactive when WatchEnded runs");
        assert!(!lp.is_active(watch));
        assert!(!lp.is_closing(watch), "open until closed");
        assert_eq!(lp.fs_watch_path(watch).unwrap(), dir.path("f"), "the path as given");
        lp.close(watch).unwrap();
        lp.run().unwrap();
        assert!(matches!(lp.fs_watch_path(watch), Err(Error::Closed(_))));
    });
}

#[test]
fn deleting_the_watched_directory_ends_the_watch_and_the_loop() {
    within(LIMIT * 2, || {
        let dir = Scratch::new("rmdir");
        fs::write(dir.path("inside"), b"").unwrap();
        let mut lp = EventLoop::new().unwrap();
        let script = Script::new();
        let watch = lp.fs_watch(&dir.0, script.logger("w")).unwrap();
        let path = dir.0.clone();
        script.then(3, move |_| fs::remove_dir_all(&path).unwrap());

        assert_eq!(script.run(&mut lp), ["w Deleted inside", "w SelfDeleted", "w WatchEnded"]);
        assert!(!lp.is_active(watch));
        lp.run().unwrap(); // frees the safety-net timer of `run_bounded`
        assert!(!lp.alive(), "the open watch does not keep the loop alive");
        assert!(lp.has_ref(watch).unwrap(), "still open and referenced, just inactive");
        let closed = Rc::new(Cell::new(false));
        let flag = closed.clone();
        lp.close_with(watch, move |_| flag.set(true)).unwrap();
        lp.run().unwrap();
        assert!(closed.get());
    });
}

#[test]
fn two_watches_of_one_directory_share_the_kernel_watch_but_close_apart() {
    within(LIMIT * 2, || {
        let dir = Scratch::new("shared");
        let mut lp = EventLoop::new().unwrap();
        let script = Script::new();
        // Two paths to one inode: inotify gives both the same watch descriptor.
        let first = lp.fs_watch(&dir.0, script.logger("first")).unwrap();
        let second = lp.fs_watch(dir.0.join("."), script.logger("second")).unwrap();

        let x = dir.path("x");
        script.then(2, move |_| fs::write(&x, b"").unwrap());
        // Closing the first must not remove the kernel watch the second is on.
        let y = dir.path("y");
        script.then(1, move |core| {
            core.close(first).unwrap();
            fs::create_dir(&y).unwrap();
        });
        // A third watch of the inode, made after the first closed, joins the second.
        let third = Rc::new(Cell::new(None));
        let (slot, dir_path, z) = (third.clone(), dir.0.clone(), dir.path("z"));
        let logger = script.logger("third");
        script.then(2, move |core| {
            slot.set(Some(core.fs_watch(&dir_path, logger).unwrap()));
            fs::write(&z, b"").unwrap();
        });
        let slot = third.clone();
        script.then(0, move |core| {
            core.close(second).unwrap();
            core.close(slot.get().unwrap()).unwrap();
        });

        assert_eq!(
            script.run(&mut lp),
            [
                "first Created x",
                "second Created x",
                "second Created y (dir)",
                "second Created z",
                "third Created z"
            ]
        );
    });
}

#[test]
fn watches_closed_in_a_callback_get_no_more_events_even_of_the_same_batch() {
    within(LIMIT * 2, || {
        let dir = Scratch::new("close-in-cb");
        let mut lp = EventLoop::new().unwrap();
        let script = Script::new();
        // The closer closes itself and the victim, which comes after it on the same kernel
        // watch: the victim was already collected for this very event, and must be skipped.
        let victim = Rc::new(Cell::new(None));
        let closed = Rc::new(Cell::new(0));
        let (target, count, mut log) = (victim.clone(), closed.clone(), script.logger("closer"));
        lp.fs_watch(&dir.0, move |core, me, event| {
            for id in [me, target.get().unwrap()] {
                let count = count.clone();
                core.close_with(id, move |_| count.set(count.get() + 1)).unwrap();
            }
            assert!(core.is_closing(me));
            log(core, me, event);
        })
        .unwrap();
        victim.set(Some(lp.fs_watch(&dir.0, script.logger("victim")).unwrap()));
        let other = lp.fs_watch(&dir.0, script.logger("other")).unwrap();

        // Two changes in one step: both events are read in one batch, and the closer must not
        // get the second one although it was already read.
        let (x, y) = (dir.path("x"), dir.path("y"));
        script.then(3, move |_| {
            fs::write(&x, b"").unwrap();
            fs::write(&y, b"").unwrap();
        });
        script.then(0, move |core| core.close(other).unwrap());

        assert_eq!(script.run(&mut lp), ["closer Created x", "other Created x", "other Created y"]);
        assert_eq!(closed.get(), 2);
    });
}

#[test]
fn watching_what_cannot_be_watched_is_an_error_and_never_calls_back() {
    within(LIMIT * 2, || {
        let dir = Scratch::new("errors");
        fs::write(dir.path("file"), b"").unwrap();
        let mut lp = EventLoop::new().unwrap();
        let called = Rc::new(Cell::new(false));
        let mut watch = |path: PathBuf| {
            let called = called.clone();
            match lp.fs_watch(path, move |_, _, _| called.set(true)) {
                Err(Error::Io(err)) => err.kind(),
                other => panic!("expected an I/O error, got {other:?}"),
            }
        };
        assert_eq!(watch(dir.path("missing")), io::ErrorKind::NotFound);
        assert_eq!(watch(dir.path("file/child")), io::ErrorKind::NotADirectory);
        assert_eq!(watch(dir.path("nul\0byte")), io::ErrorKind::InvalidInput);
        // Running as root, a permission error cannot be provoked; a non-root run checks it.
        if fs::read_dir("/root").is_err() {
            assert_eq!(watch(PathBuf::from("/root/x")), io::ErrorKind::PermissionDenied);
        }

        // No handle was left behind, so there is nothing to wait for, and nothing calls back
        // even when the missing path appears.
        assert!(!lp.alive());
        fs::write(dir.path("missing"), b"").unwrap();
        lp.run().unwrap();
        assert!(!called.get());
    });
}

#[test]
fn a_closed_watch_is_a_stale_id() {
    within(LIMIT * 2, || {
        let dir = Scratch::new("stale");
        let mut lp = EventLoop::new().unwrap();
        let called = Rc::new(Cell::new(false));
        let flag = called.clone();
        let watch = lp.fs_watch(&dir.0, move |_, _, _| flag.set(true)).unwrap();
        lp.close(watch).unwrap();
        assert!(matches!(lp.close(watch), Err(Error::Closed(_))));
        assert!(matches!(lp.fs_watch_path(watch), Err(Error::Closed(_))));
        assert!(!lp.is_active(watch));
        // A change right after `close`, in the same iteration: it reaches nobody, neither
        // through the closing handle nor later, once its slot is free.
        fs::write(dir.path("after"), b"").unwrap();
        lp.run_nowait().unwrap();
        lp.fs_watch(dir.path("after"), |_, _, _| {}).map(|w| lp.close(w)).unwrap().unwrap();
        lp.run_nowait().unwrap();
        assert!(!called.get());
        assert!(matches!(lp.unref(watch), Err(Error::Closed(_))));
    });
}

#[test]
fn an_unreferenced_watch_works_without_keeping_the_loop_alive() {
    within(LIMIT * 2, || {
        let dir = Scratch::new("unref");
        let mut lp = EventLoop::new().unwrap();
        let script = Script::new();
        // While nothing else is alive, `run` returns at once.
        let keep_alive = Rc::new(Cell::new(None));
        let (holder, mut log) = (keep_alive.clone(), script.logger("w"));
        let watch = lp
            .fs_watch(&dir.0, move |core, me, event| {
                log(core, me, event);
                // The event came: let the loop end.
                if let Some(timer) = holder.take() {
                    core.close(timer).unwrap();
                }
            })
            .unwrap();
        lp.unref(watch).unwrap();
        assert!(!lp.alive());
        run_bounded(&mut lp, &script.log);
        assert!(lp.is_active(watch));
        assert!(!lp.has_ref(watch).unwrap());

        // Unreferenced, it still gets events while something else keeps the loop running.
        keep_alive.set(Some(lp.set_timeout(LIMIT * 10, |_| {})));
        let x = dir.path("x");
        script.then(1, move |_| fs::write(&x, b"").unwrap());
        assert_eq!(script.run(&mut lp), ["w Created x"]);

        lp.ref_(watch).unwrap();
        assert!(lp.alive());
        lp.close(watch).unwrap();
        lp.run().unwrap();
        assert!(!lp.alive());
    });
}

#[test]
fn a_full_kernel_queue_is_reported_to_every_watch() {
    let max: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(usize::MAX);
    if max > 1 << 20 {
        eprintln!("max_queued_events is {max}: too many events to overflow quickly; skipped");
        return;
    }
    within(LIMIT * 6, move || {
        let dir = Scratch::new("overflow");
        let (a, b, f) = (dir.path("a"), dir.path("b"), dir.path("f"));
        for path in [&a, &b, &f] {
            fs::write(path, b"").unwrap();
        }
        let mut lp = EventLoop::new().unwrap();
        // What each watch saw: its attribute changes counted, its other events listed.
        type Seen = Vec<(usize, Vec<String>)>;
        let seen: Rc<RefCell<Seen>> = Rc::default();
        let overflowed = Rc::new(Cell::new(0));
        let mut watches = Vec::new();
        for (i, path) in [dir.0.clone(), dir.0.join("."), f.clone()].into_iter().enumerate() {
            seen.borrow_mut().push((0, Vec::new()));
            let (seen, overflowed) = (seen.clone(), overflowed.clone());
            let watch = lp.fs_watch(path, move |core, _, event| {
                let (attributes, others) = &mut seen.borrow_mut()[i];
                match event.kind {
                    FsEventKind::Attributes => *attributes += 1,
                    kind => others.push(format!("{kind:?} {:?}", event.name)),
                }
                if event.kind == FsEventKind::Overflow {
                    overflowed.set(overflowed.get() + 1);
                    if overflowed.get() == 3 {
                        core.stop();
                    }
                }
            });
            watches.push(watch.unwrap());
        }
        // More changes than the queue holds, made before the loop reads any. Alternating two
        // names keeps the kernel from merging them.
        lp.set_timeout(Duration::ZERO, move |_| {
            for i in 0..max + 16 {
                chmod(if i % 2 == 0 { &a } else { &b }, 0o600 | (i as u32 % 2) << 2);
            }
        });
        run_bounded(&mut lp, &RefCell::default());

        // The queue held `max` events, then the overflow: the directory's two watches (one
        // kernel watch) got all of them, the file's watch only the overflow.
        let overflow = vec!["Overflow None".to_owned()];
        assert_eq!(
            *seen.borrow(),
            [(max, overflow.clone()), (max, overflow.clone()), (0, overflow)]
        );
        for watch in watches {
            assert!(lp.is_active(watch), "an overflow does not end a watch");
            lp.close(watch).unwrap();
        }
        lp.run().unwrap();
    });
}

#[test]
fn a_watch_that_changes_what_it_watches_does_not_starve_the_loop() {
    within(LIMIT * 2, || {
        let dir = Scratch::new("feedback");
        let f = dir.path("f");
        fs::write(&f, b"").unwrap();
        let mut lp = EventLoop::new().unwrap();
        let events = Rc::new(Cell::new(0));
        let count = events.clone();
        let path = f.clone();
        // Every event makes the next one: the kernel queue is never empty for long.
        lp.fs_watch(&f, move |core, me, _| {
            count.set(count.get() + 1);
            chmod(&path, 0o600 | (count.get() as u32 % 2) << 2);
            if count.get() == 1 {
                // Due in the next iteration's timer phase, which must come.
                core.set_timeout(Duration::ZERO, move |core| core.close(me).unwrap());
            }
        })
        .unwrap();
        lp.set_timeout(Duration::ZERO, move |_| chmod(&f, 0o644));
        run_bounded(&mut lp, &RefCell::default());
        // One read returns the one event there is, whose callback makes the next: exactly one
        // budget's worth runs before the timer's turn comes.
        assert_eq!(events.get(), FS_EVENT_BUDGET);
    });
}

#[test]
fn a_panicking_watch_callback_is_reported_and_closes_its_watch() {
    within(LIMIT * 2, || {
        let dir = Scratch::new("panic");
        let mut lp = EventLoop::new().unwrap();
        let reports = Rc::new(RefCell::new(Vec::new()));
        let sink = reports.clone();
        lp.set_panic_hook(move |report| sink.borrow_mut().push((report.kind(), report.handle())));
        let watch = lp.fs_watch(&dir.0, |_, _, _| panic!("boom")).unwrap();
        let x = dir.path("x");
        lp.set_timeout(Duration::ZERO, move |_| fs::write(&x, b"").unwrap());
        run_bounded(&mut lp, &RefCell::default());
        assert_eq!(*reports.borrow(), [("fs_watch", Some(watch.id()))]);
        assert!(lp.is_closing(watch));
    });
}
