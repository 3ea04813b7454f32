//! inotify(7): the Linux kernel's file-system event queue, and the parsing of what it returns.
//!
//! An inotify instance is a file descriptor holding a queue of events. Each *watch*
//! (`inotify_add_watch`) names one inode and a mask of the events wanted, and is known by a
//! *watch descriptor* (`wd`), a small integer; reading the descriptor returns whole
//! `struct inotify_event` records:
//!
//! ```text
//! struct inotify_event {
//!     int      wd;      // the watch the event belongs to (-1 for IN_Q_OVERFLOW)
//!     uint32_t mask;    // what happened: one IN_* bit, plus IN_ISDIR if the subject is a directory
//!     uint32_t cookie;  // pairs IN_MOVED_FROM with IN_MOVED_TO; 0 otherwise
//!     uint32_t len;     // the size of name, NUL padding included (0: no name)
//!     char     name[];  // the entry inside a watched directory, NUL-terminated and padded
//! };
//! ```
//!
//! The three calls are wrapped here; the records are parsed from the bytes with safe code,
//! field by field, so there is no pointer cast and no alignment to worry about. What the loop
//! does with the events is in [`fs_event`](crate::fs_event).

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The size of a record's fixed part: four 32-bit fields.
const HEADER: usize = 16;

/// One inotify instance. Closing it (on drop) removes all of its watches.
pub(crate) struct Inotify {
    /// A `File` only so that reading it is a safe `Read::read`.
    fd: File,
}

impl Inotify {
    /// Creates a non-blocking instance (`inotify_init1(IN_NONBLOCK | IN_CLOEXEC)`).
    pub(crate) fn new() -> io::Result<Inotify> {
        // SAFETY: `inotify_init1` takes flags only and has no memory-safety preconditions.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `inotify_init1` succeeded, so `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Inotify { fd: File::from(fd) })
    }

    /// The descriptor to register with the poller.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Watches `path` for the events in `mask` and returns the watch descriptor.
    ///
    /// Watching an inode that this instance already watches (through the same path or another
    /// one) returns that watch's descriptor again and replaces its mask.
    pub(crate) fn add_watch(&self, path: &Path, mask: u32) -> io::Result<i32> {
        let path = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "a path to watch contains a NUL byte")
        })?;
        // SAFETY: the descriptor is an open inotify instance and `path` is a NUL-terminated
        // string that outlives the call; the kernel only reads it.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), path.as_ptr(), mask) };
        if wd == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(wd)
    }

    /// Removes watch `wd`. The kernel then queues an `IN_IGNORED` event for it.
    pub(crate) fn rm_watch(&self, wd: i32) -> io::Result<()> {
        // SAFETY: two integers; an unknown `wd` is reported as EINVAL.
        if unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads as many whole records as fit into `buf`. `WouldBlock` when the queue is empty.
    /// `buf` must have room for the longest record ([`MIN_READ_BUFFER`]), or this fails with
    /// `InvalidInput` (EINVAL).
    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.fd).read(buf)
    }
}

/// The smallest buffer a read may use: one record with the longest name (`NAME_MAX` bytes and
/// a NUL).
pub(crate) const MIN_READ_BUFFER: usize = HEADER + 255 + 1;

/// One `struct inotify_event`, borrowed from the buffer it was read into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub(crate) wd: i32,
    pub(crate) mask: u32,
    pub(crate) cookie: u32,
    /// The name with its NUL padding removed; `None` when the record has no name.
    pub(crate) name: Option<&'a Path>,
}

/// The records in `buf`, the bytes of one read, in order. A truncated record at the end (the
/// kernel never returns one) ends the iteration.
pub(crate) fn records(buf: &[u8]) -> Records<'_> {
    Records { rest: buf }
}

/// The iterator returned by [`records`].
pub(crate) struct Records<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        let header = self.rest.get(..HEADER)?;
        let field = |i: usize| {
            let mut bytes = [0u8; 4];
            bytes.copy_from_slice(&header[4 * i..4 * i + 4]);
            u32::from_ne_bytes(bytes)
        };
        let (wd, mask, cookie, len) = (field(0) as i32, field(1), field(2), field(3) as usize);
        let Some(padded) = self.rest.get(HEADER..HEADER + len) else {
            self.rest = &[];
            return None;
        };
        self.rest = &self.rest[HEADER + len..];
        let name = match padded.iter().position(|&b| b == 0) {
            Some(end) => &padded[..end],
            None => padded,
        };
        let name = (!name.is_empty()).then(|| Path::new(OsStr::from_bytes(name)));
        Some(Record { wd, mask, cookie, name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes the kernel would return for one record, its name padded to 16 bytes.
    fn record(wd: i32, mask: u32, cookie: u32, name: &str) -> Vec<u8> {
        let len = if name.is_empty() { 0 } else { (name.len() + 1).next_multiple_of(16) };
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&wd.to_ne_bytes());
        bytes.extend_from_slice(&mask.to_ne_bytes());
        bytes.extend_from_slice(&cookie.to_ne_bytes());
        bytes.extend_from_slice(&(len as u32).to_ne_bytes());
        bytes.extend_from_slice(name.as_bytes());
        bytes.resize(HEADER + len, 0);
        bytes
    }

    #[test]
    fn records_are_parsed_in_order_with_their_padding_removed() {
        let buf = [
            record(1, libc::IN_MOVED_FROM, 7, "a"),
            record(1, libc::IN_MOVED_TO, 7, "exactly-16-bytes"), // the NUL needs a second block
            record(2, libc::IN_DELETE_SELF, 0, ""),
            record(-1, libc::IN_Q_OVERFLOW, 0, ""),
        ]
        .concat();
        let got: Vec<_> = records(&buf).collect();
        let expected = [
            Record { wd: 1, mask: libc::IN_MOVED_FROM, cookie: 7, name: Some(Path::new("a")) },
            Record {
                wd: 1,
                mask: libc::IN_MOVED_TO,
                cookie: 7,
                name: Some(Path::new("exactly-16-bytes")),
            },
            Record { wd: 2, mask: libc::IN_DELETE_SELF, cookie: 0, name: None },
            Record { wd: -1, mask: libc::IN_Q_OVERFLOW, cookie: 0, name: None },
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn a_truncated_record_ends_the_batch() {
        let mut buf =
            [record(1, libc::IN_CREATE, 0, "kept"), record(1, libc::IN_CREATE, 0, "cut")].concat();
        buf.truncate(buf.len() - 1);
        let names: Vec<_> = records(&buf).map(|r| r.name).collect();
        assert_eq!(names, [Some(Path::new("kept"))]);
        assert_eq!(records(&buf[..HEADER - 1]).count(), 0);
    }

    #[test]
    fn a_real_instance_reports_a_created_file() {
        let dir = std::env::temp_dir().join(format!("reactor-inotify-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let inotify = Inotify::new().unwrap();
        let mut buf = [0u8; MIN_READ_BUFFER];
        assert_eq!(inotify.read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);

        let wd = inotify.add_watch(&dir, libc::IN_CREATE).unwrap();
        assert_eq!(inotify.add_watch(&dir.join("."), libc::IN_CREATE).unwrap(), wd, "same inode");
        std::fs::write(dir.join("new"), b"").unwrap();
        let n = inotify.read(&mut buf).unwrap();
        let got: Vec<_> = records(&buf[..n]).collect();
        let created = Record { wd, mask: libc::IN_CREATE, cookie: 0, name: Some(Path::new("new")) };
        assert_eq!(got, [created]);

        inotify.rm_watch(wd).unwrap();
        let n = inotify.read(&mut buf).unwrap();
        let got: Vec<_> = records(&buf[..n]).map(|r| (r.wd, r.mask)).collect();
        assert_eq!(got, [(wd, libc::IN_IGNORED)]);
        assert_eq!(inotify.rm_watch(wd).unwrap_err().raw_os_error(), Some(libc::EINVAL));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
