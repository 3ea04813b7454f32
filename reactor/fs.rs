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
//! Whole operations, like Node's `fs.readFile`: [`Core::read_file`], [`Core::write_file`],
//! [`Core::metadata`], [`Core::create_dir`], [`Core::read_dir`], [`Core::rename`] and
//! [`Core::remove_file`].
//!
//! And open files, for reading or writing a file in pieces (a large file served in chunks):
//! [`Core::open`] gives a `File` (shared as an `Arc<File>`, since each job needs its own
//! handle on it), [`Core::read_at`] and [`Core::write_at`] work at an offset (`pread(2)`,
//! `pwrite(2)`, so that jobs on one file do not share a position), and [`Core::close_file`] closes
//! it on the pool too, since `close(2)` can block on some file systems.

use std::fs::{self, DirEntry, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

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

    /// Opens `path` with `options` (`OpenOptions::open`); the `File` is the callback's.
    #[track_caller]
    pub fn open(
        &mut self,
        path: impl AsRef<Path>,
        options: OpenOptions,
        done: impl FnOnce(&mut Core, io::Result<File>) + 'static,
    ) -> Result<Work> {
        let path = path.as_ref().to_path_buf();
        self.fs_job(move || options.open(path), done)
    }

    /// Reads up to `len` bytes of `file` at `offset` (`pread(2)`); fewer only at the end of
    /// the file, and none there.
    #[track_caller]
    pub fn read_at(
        &mut self,
        file: Arc<File>,
        offset: u64,
        len: usize,
        done: impl FnOnce(&mut Core, io::Result<Vec<u8>>) + 'static,
    ) -> Result<Work> {
        self.fs_job(
            move || {
                let mut buf = vec![0; len];
                let mut filled = 0;
                // `pread` may return less than asked before the end (a signal, a pipe-like
                // file): read on until the buffer is full or a read returns 0.
                while filled < len {
                    match file.read_at(&mut buf[filled..], offset + filled as u64) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                buf.truncate(filled);
                Ok(buf)
            },
            done,
        )
    }

    /// Writes all of `data` to `file` at `offset` (`pwrite(2)`, repeated until all is
    /// written).
    #[track_caller]
    pub fn write_at(
        &mut self,
        file: Arc<File>,
        offset: u64,
        data: Vec<u8>,
        done: impl FnOnce(&mut Core, io::Result<()>) + 'static,
    ) -> Result<Work> {
        self.fs_job(move || file.write_all_at(&data, offset), done)
    }

    /// Drops this `Arc` of `file` on the pool: the file is closed there if it was the last
    /// one, so a `close(2)` that blocks (on a network file system, say) blocks a pool thread
    /// and not the loop. `close(2)`'s own error is not reported (std's `File` has no call for
    /// it); where durability matters, `sync_all` through [`Core::queue_work`] first.
    #[track_caller]
    pub fn close_file(
        &mut self,
        file: Arc<File>,
        done: impl FnOnce(&mut Core, io::Result<()>) + 'static,
    ) -> Result<Work> {
        self.fs_job(
            move || {
                drop(file);
                Ok(())
            },
            done,
        )
    }
}
