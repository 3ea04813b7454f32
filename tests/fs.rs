//! File-system calls on the thread pool: each operation, its error path, and cancellation.

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use reactor::EventLoop;

mod util;
use util::BusyPool;

/// A fresh directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("reactor-fs-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `lp` until its callbacks are done and returns what they recorded.
fn run<T>(mut lp: EventLoop, got: Rc<RefCell<Vec<T>>>) -> Vec<T> {
    lp.run().unwrap();
    got.take()
}

#[test]
fn write_then_read_a_file() {
    let dir = Scratch::new("write-read");
    let mut lp = EventLoop::new().unwrap();
    let got: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let (sink, path) = (got.clone(), dir.path("a.txt"));
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let expected = data.clone();
    lp.write_file(path.clone(), data, move |core, written| {
        written.unwrap();
        core.read_file(&path, move |_, read| sink.borrow_mut().push(read.unwrap())).unwrap();
    })
    .unwrap();
    assert_eq!(run(lp, got), [expected]);
}

#[test]
fn reading_a_missing_file_is_not_found() {
    let dir = Scratch::new("missing");
    let mut lp = EventLoop::new().unwrap();
    let got: Rc<RefCell<Vec<io::ErrorKind>>> = Rc::default();
    let sink = got.clone();
    lp.read_file(dir.path("nope"), move |_, r| sink.borrow_mut().push(r.unwrap_err().kind()))
        .unwrap();
    assert_eq!(run(lp, got), [io::ErrorKind::NotFound]);
}

#[test]
fn metadata_of_a_file_and_of_a_missing_one() {
    let dir = Scratch::new("metadata");
    std::fs::write(dir.path("f"), b"12345").unwrap();
    let mut lp = EventLoop::new().unwrap();
    let got: Rc<RefCell<Vec<String>>> = Rc::default();
    let sink = got.clone();
    lp.metadata(dir.path("f"), move |_, m| {
        let m = m.unwrap();
        sink.borrow_mut().push(format!("file {} {}", m.is_file(), m.len()));
    })
    .unwrap();
    let sink = got.clone();
    lp.metadata(dir.path("g"), move |_, m| {
        sink.borrow_mut().push(format!("{:?}", m.unwrap_err().kind()))
    })
    .unwrap();
    let mut got = run(lp, got);
    got.sort();
    assert_eq!(got, ["NotFound", "file true 5"]);
}

#[test]
fn create_dir_read_dir_rename_and_remove() {
    let dir = Scratch::new("dirs");
    let mut lp = EventLoop::new().unwrap();
    let got: Rc<RefCell<Vec<String>>> = Rc::default();
    let (sink, d) = (got.clone(), dir.path("sub"));
    lp.create_dir(d.clone(), move |core, made| {
        made.unwrap();
        std::fs::write(d.join("b"), b"").unwrap();
        std::fs::write(d.join("a"), b"").unwrap();
        let (from, to) = (d.join("a"), d.join("c"));
        core.rename(&from, &to, move |core, renamed| {
            renamed.unwrap();
            core.remove_file(d.join("b"), move |core, removed| {
                removed.unwrap();
                core.read_dir(&d, move |_, entries| {
                    let names = entries.unwrap().iter().map(|e| e.file_name()).collect::<Vec<_>>();
                    sink.borrow_mut().push(format!("{names:?}"));
                })
                .unwrap();
            })
            .unwrap();
        })
        .unwrap();
    })
    .unwrap();
    assert_eq!(run(lp, got), [r#"["c"]"#]);
}

#[test]
fn the_error_paths_of_create_dir_rename_remove_and_read_dir() {
    let dir = Scratch::new("errors");
    std::fs::write(dir.path("file"), b"x").unwrap();
    let mut lp = EventLoop::new().unwrap();
    let got: Rc<RefCell<Vec<String>>> = Rc::default();
    let record = |what: &'static str| {
        let sink = got.clone();
        move |_: &mut reactor::Core, r: io::Result<()>| {
            sink.borrow_mut().push(format!("{what}: {:?}", r.unwrap_err().kind()));
        }
    };
    // A directory that exists already; one whose parent is a file.
    lp.create_dir(dir.path("file"), record("mkdir existing")).unwrap();
    lp.create_dir(dir.path("file/sub"), record("mkdir under a file")).unwrap();
    lp.rename(dir.path("nope"), dir.path("x"), record("rename missing")).unwrap();
    lp.remove_file(dir.path("nope"), record("unlink missing")).unwrap();
    let sink = got.clone();
    lp.read_dir(dir.path("file"), move |_, r| {
        sink.borrow_mut().push(format!("readdir of a file: {:?}", r.unwrap_err().kind()));
    })
    .unwrap();
    let mut got = run(lp, got);
    got.sort();
    assert_eq!(
        got,
        [
            "mkdir existing: AlreadyExists",
            "mkdir under a file: NotADirectory",
            "readdir of a file: NotADirectory",
            "rename missing: NotFound",
            "unlink missing: NotFound",
        ]
    );
}

#[test]
fn a_cancelled_file_call_reports_interrupted() {
    let dir = Scratch::new("cancel");
    // One pool thread, held by a job until the test lets it go, so the read stays queued.
    let mut lp = EventLoop::builder().thread_pool_size(1).build().unwrap();
    let busy = BusyPool::hold(&mut lp, |_, _| {});
    let got: Rc<RefCell<Vec<io::ErrorKind>>> = Rc::default();
    let sink = got.clone();
    let read = lp
        .read_file(Path::new(&dir.path("never")), move |_, r| {
            sink.borrow_mut().push(r.unwrap_err().kind())
        })
        .unwrap();
    lp.cancel_work(read).unwrap();
    busy.release();
    assert_eq!(run(lp, got), [io::ErrorKind::Interrupted]);
}

#[test]
fn an_open_file_is_written_and_read_at_offsets_then_closed() {
    let dir = Scratch::new("open");
    let path = dir.path("pieces");
    let mut lp = EventLoop::new().unwrap();
    let got: Rc<RefCell<Vec<String>>> = Rc::default();
    let sink = got.clone();
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(true);
    lp.open(&path, options, move |core, file| {
        let file = std::sync::Arc::new(file.unwrap());
        // The second half first: writes at an offset need no shared position.
        core.write_at(file.clone(), 5, b"world".to_vec(), move |core, r| {
            r.unwrap();
            core.write_at(file.clone(), 0, b"hello".to_vec(), move |core, r| {
                r.unwrap();
                // Asking past the end gives what is there.
                core.read_at(file.clone(), 0, 100, move |core, read| {
                    sink.borrow_mut().push(String::from_utf8(read.unwrap()).unwrap());
                    core.close_file(file, move |_, closed| {
                        closed.unwrap();
                        sink.borrow_mut().push("closed".into());
                    })
                    .unwrap();
                })
                .unwrap();
            })
            .unwrap();
        })
        .unwrap();
    })
    .unwrap();
    assert_eq!(run(lp, got), ["helloworld", "closed"]);
    assert_eq!(std::fs::read(&path).unwrap(), b"helloworld");
}

#[test]
fn reading_at_the_end_gives_nothing_and_opening_a_missing_file_fails() {
    let dir = Scratch::new("open-errors");
    std::fs::write(dir.path("short"), b"abc").unwrap();
    let file = std::sync::Arc::new(std::fs::File::open(dir.path("short")).unwrap());
    let mut lp = EventLoop::new().unwrap();
    let got: Rc<RefCell<Vec<String>>> = Rc::default();
    let sink = got.clone();
    lp.read_at(file, 3, 10, move |_, r| {
        sink.borrow_mut().push(format!("at end: {:?}", r.unwrap()))
    })
    .unwrap();
    let sink = got.clone();
    lp.open(dir.path("missing"), std::fs::OpenOptions::new().read(true).clone(), move |_, r| {
        sink.borrow_mut().push(format!("open: {:?}", r.unwrap_err().kind()));
    })
    .unwrap();
    let mut got = run(lp, got);
    got.sort();
    assert_eq!(got, ["at end: []", "open: NotFound"]);
}

/// Whether this process runs as root, whom file modes do not stop (`/proc/self/status`).
fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status.lines().find_map(|line| line.strip_prefix("Uid:"));
    uid.and_then(|ids| ids.split_whitespace().nth(1)) == Some("0")
}

#[test]
fn permission_denied_reaches_the_callback() {
    let dir = Scratch::new("denied");
    let mut lp = EventLoop::new().unwrap();
    let got: Rc<RefCell<Vec<io::ErrorKind>>> = Rc::default();
    // Even root may not unlink a procfs entry: the kernel answers EPERM, which Rust counts as
    // `PermissionDenied` like EACCES.
    let sink = got.clone();
    lp.remove_file("/proc/self/stat", move |_, r| sink.borrow_mut().push(r.unwrap_err().kind()))
        .unwrap();
    let mut expected = vec![io::ErrorKind::PermissionDenied];
    // File modes stop everyone but root (test runs in CI containers usually are root).
    if !is_root() {
        use std::os::unix::fs::PermissionsExt;
        let secret = dir.path("secret");
        std::fs::write(&secret, b"x").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
        let sink = got.clone();
        lp.read_file(secret, move |_, r| sink.borrow_mut().push(r.unwrap_err().kind())).unwrap();
        expected.push(io::ErrorKind::PermissionDenied);
    }
    assert_eq!(run(lp, got), expected);
}
