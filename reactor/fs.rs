//! Files without blocking the loop: file-system calls run on the [thread pool](crate::pool),
//! and their result comes back to a callback on the loop thread as an `io::Result`.
//!
//! ```
//! use reactor::EventLoop;
//!
//! let mut lp = EventLoop::new()?;
//! let path = std::env::temp_dir().join(format!("reactor-fs-doc-{}", std::process::id()));
//! let again = path.clone();
//! lp.write_file(&path, b"hello".to_vec(), move |core, written| {
//!     written.expect("write");
//!     core.read_file(&again, |_, read| assert_eq!(read.expect("read"), b"hello")).unwrap();
//! })?;
//! lp.run()?;
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Each call queues one job with [`Core::queue_work`] and returns its [`Work`], which
//! [`Core::cancel_work`] accepts while the job waits for a thread. The callback gets the
//! operation's own `io::Error` (not found, permission denied, ...). A cancelled job's callback
//! gets an error of kind `Interrupted`, and a job that panicked (it should not: these are
//! plain `std::fs` calls) an error of kind `Other`. Paths are copied into the job, so the caller
//! keeps its own.
//!
//! The calls are whole operations, like Node's `fs.readFile`: [`Core::read_file`],
//! [`Core::write_file`], [`Core::metadata`], [`Core::create_dir`], [`Core::read_dir`],
//! [`Core::rename`] and [`Core::remove_file`].

use std::fs::{self, DirEntry, Metadata};
use std::io;
use std::path::Path;

use crate::Result;
use crate::event_loop::Core;
use crate::pool::{Work, WorkError};

/// The `io::Error` a callback gets for a job that did not complete.
fn work_error(err: WorkError) -> io::Error {
    let kind = match err {
        WorkError::Cancelled => io::ErrorKind::Interrupted,
        WorkError::Panicked(_) => io::ErrorKind::Other,
    };
    io::Error::new(kind, err)
}

impl Core {
    /// Runs the file-system call `op` on the pool, and `done` with its result.
    #[track_caller]
    fn fs_job<T, Op, Done>(&mut self, op: Op, done: Done) -> Result<Work>
    where
        T: Send + 'static,
        Op: FnOnce() -> io::Result<T> + Send + 'static,
        Done: FnOnce(&mut Core, io::Result<T>) + 'static,
    {
        self.queue_work(op, move |core, result| {
            done(core, result.unwrap_or_else(|e| Err(work_error(e))))
        })
    }

    /// Reads the whole file at `path` (`std::fs::read`).
    #[track_caller]
    pub fn read_file(
        &mut self,
        path: impl AsRef<Path>,
        done: impl FnOnce(&mut Core, io::Result<Vec<u8>>) + 'static,
    ) -> Result<Work> {
        let path = path.as_ref().to_path_buf();
        self.fs_job(move || fs::read(path), done)
    }

    /// Creates or truncates the file at `path` and writes `data` to it (`std::fs::write`).
    #[track_caller]
    pub fn write_file(
        &mut self,
        path: impl AsRef<Path>,
        data: Vec<u8>,
        done: impl FnOnce(&mut Core, io::Result<()>) + 'static,
    ) -> Result<Work> {
        let path = path.as_ref().to_path_buf();
        self.fs_job(move || fs::write(path, data), done)
    }

    /// The metadata of `path`, following symbolic links (`std::fs::metadata`, `stat(2)`).
    #[track_caller]
    pub fn metadata(
        &mut self,
        path: impl AsRef<Path>,
        done: impl FnOnce(&mut Core, io::Result<Metadata>) + 'static,
    ) -> Result<Work> {
        let path = path.as_ref().to_path_buf();
        self.fs_job(move || fs::metadata(path), done)
    }

    /// Creates the directory `path`; its parent must exist (`std::fs::create_dir`).
    #[track_caller]
    pub fn create_dir(
        &mut self,
        path: impl AsRef<Path>,
        done: impl FnOnce(&mut Core, io::Result<()>) + 'static,
    ) -> Result<Work> {
        let path = path.as_ref().to_path_buf();
        self.fs_job(move || fs::create_dir(path), done)
    }

    /// The entries of the directory `path`, sorted by name (`std::fs::read_dir`, collected on
    /// the pool thread; `.` and `..` are not included).
    #[track_caller]
    pub fn read_dir(
        &mut self,
        path: impl AsRef<Path>,
        done: impl FnOnce(&mut Core, io::Result<Vec<DirEntry>>) + 'static,
    ) -> Result<Work> {
        let path = path.as_ref().to_path_buf();
        self.fs_job(
            move || {
                let mut entries = fs::read_dir(path)?.collect::<io::Result<Vec<_>>>()?;
                entries.sort_by_key(DirEntry::file_name);
                Ok(entries)
            },
            done,
        )
    }

    /// Renames `from` to `to`, replacing `to` if it is a file (`std::fs::rename`).
    #[track_caller]
    pub fn rename(
        &mut self,
        from: impl AsRef<Path>,
        to: impl AsRef<Path>,
        done: impl FnOnce(&mut Core, io::Result<()>) + 'static,
    ) -> Result<Work> {
        let (from, to) = (from.as_ref().to_path_buf(), to.as_ref().to_path_buf());
        self.fs_job(move || fs::rename(from, to), done)
    }

    /// Removes the file `path` (`std::fs::remove_file`, `unlink(2)`).
    #[track_caller]
    pub fn remove_file(
        &mut self,
        path: impl AsRef<Path>,
        done: impl FnOnce(&mut Core, io::Result<()>) + 'static,
    ) -> Result<Work> {
        let path = path.as_ref().to_path_buf();
        self.fs_job(move || fs::remove_file(path), done)
    }
}
