//! File-system event handles: a callback for each change to a watched file or directory
//! (libuv's `uv_fs_event_t`, Node's `fs.watch`).
//!
//! ```
//! use reactor::{EventLoop, fs_event::FsEventKind};
//!
//! let dir = std::env::temp_dir().join(format!("reactor-fs-event-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! std::fs::create_dir(&dir)?;
//! let mut lp = EventLoop::new()?;
//! lp.fs_watch(&dir, |core, me, event| {
//!     // `name` is the entry inside the directory; `None` for the directory itself.
//!     println!("{:?} {:?}", event.kind, event.name); // Created Some("hello.txt")
//!     if event.kind == FsEventKind::Created {
//!         core.close(me).unwrap();
//!     }
//! })?;
//! // Make a change without blocking the loop: write the file on the thread pool.
//! lp.write_file(dir.join("hello.txt"), b"hi".to_vec(), |_, written| written.unwrap())?;
//! lp.run()?; // until the watch is closed
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The contract
//!
//! - [`Core::fs_watch`] watches one file or directory and starts at once. A watched
//!   **directory** reports changes to the entries directly inside it, with the entry's
//!   [`name`](FsEvent::name), and changes to the directory itself, with no name. A watched
//!   **file** reports changes to itself, with no name. Watching is **not recursive**: a change
//!   inside a subdirectory is not reported (watch the subdirectory too). A symbolic link is
//!   followed: its target is watched.
//! - Each change is one callback with an [`FsEvent`]; what happened is its [`FsEventKind`]. A
//!   rename inside watched directories is two events, [`MovedFrom`](FsEventKind::MovedFrom) and
//!   [`MovedTo`](FsEventKind::MovedTo), with the same non-zero [`cookie`](FsEvent::cookie); a
//!   move into or out of a watched directory is only the half that it sees.
//! - The kernel merges an event with the previous one if they are identical and the earlier
//!   one has not been read yet: ten quick writes may be one `Modified`.
//! - When the watched item itself is deleted, or its file system unmounted, the kernel ends the
//!   watch: the handle gets [`WatchEnded`](FsEventKind::WatchEnded) last, then becomes inactive
//!   (it no longer keeps the loop alive, like a stopped handle) but stays open until it is
//!   closed. A rename of the watched item does not end the watch
//!   ([`SelfMoved`](FsEventKind::SelfMoved)); [`Core::fs_watch_path`] still gives the old path.
//! - If events come faster than the loop reads them, the kernel's queue (`max_queued_events`,
//!   16,384 by default) fills up and further events are dropped. The loop never drops them
//!   silently: every active watch gets an [`Overflow`](FsEventKind::Overflow) event, after which
//!   it should rescan what it watches.
//! - Errors come back from [`Core::fs_watch`], and then the callback never runs: a missing path
//!   (`NotFound`), a path through a file (`NotADirectory`), no read permission
//!   (`PermissionDenied`), a path with a NUL byte (`InvalidInput`), or the per-user limit on
//!   watches, `/proc/sys/fs/inotify/max_user_watches`, reached (`StorageFull`: ENOSPC).
//! - Several handles may watch the same path (or the same inode through several paths): each
//!   gets every event, in the order they were created, and closing one leaves the others
//!   watching.
//! - [`Core::close`] stops the events at once, even those already read from the kernel in the
//!   same batch. An active, referenced watch keeps the loop alive; [`Core::unref`] works as for
//!   any handle.
//! - Events are read in the poll phase, at most [`FS_EVENT_BUDGET`] at a time (the pending
//!   phase of the next iteration reads on), so a callback that changes what it watches, and so
//!   makes another event, cannot starve the rest of the loop.
//!
//! # How it works: inotify
//!
//! Each loop has one inotify instance (`sys/inotify.rs`), made with the first
//! watch and registered with the poller on a reserved token, like the signal self-pipe. Each
//! watched inode is one kernel *watch*, known by its watch descriptor (`wd`). Watching an inode
//! the instance already watches returns the *same* descriptor (and replaces that watch's mask),
//! and `inotify_rm_watch` removes it for everyone. So the loop keeps a table from descriptor to
//! the handles on it, asks every watch for the same events so that a second handle cannot change
//! what a first one receives, and removes the kernel watch only when the last handle on it
//! closes. The kernel hands out descriptors cyclically, so a descriptor removed now is not
//! reused soon, and the events still queued for it are recognised as stale and dropped.
//!
//! # Other platforms
//!
//! inotify is Linux's; the other systems libuv runs on have their own interfaces, with
//! different limits:
//!
//! - **BSDs and macOS**: kqueue's `EVFILT_VNODE` filter, one open descriptor per watched file.
//!   It says *that* a directory changed (`NOTE_WRITE`), not which entry changed.
//! - **macOS**: FSEvents, which watches whole trees (recursive) through a run loop thread and
//!   coalesces changes by path; libuv uses it for directories.
//! - **Windows**: `ReadDirectoryChangesW`, recursive on request, with overlapped I/O on a
//!   directory handle; its buffer can overflow too.
//! - **Solaris/illumos**: event ports (`PORT_SOURCE_FILE`); **AIX**: AHAFS.
//!
//! inotify's own limits: it is not recursive (a tree needs one watch per directory, and a
//! directory created meanwhile can be missed); the number of watches per user is capped by
//! `max_user_watches`; identical unread events are coalesced and a full queue drops events;
//! it reports changes made through this kernel only, so changes made by another machine on a
//! network file system (NFS, SMB) or through `/proc`-like pseudo files go unseen; and a rename
//! is two events tied by a cookie, which may even arrive in different reads.

use std::collections::BTreeMap;
use std::mem;
use std::panic::Location;
use std::path::{Path, PathBuf};

use crate::dispatch::{self, Callback, Event};
use crate::event_loop::Core;
use crate::handle::{FsWatch, Handle, HandleId, State};
use crate::io::FS_EVENTS;
use crate::sys::inotify::{self, Inotify, Record};
use crate::{Error, Result};

/// How many events the loop handles in one go before the other handles get their turn; the
/// rest is read in the next iteration's pending phase. A callback that touches what it watches
/// makes a new event for every event, and reading "until the queue is empty" would then never
/// end. One event is one callback, as one posted closure is: the same bound as the inbox's
/// `POSTS_PER_ITERATION`.
pub const FS_EVENT_BUDGET: usize = 1024;

/// The size of one read. Holds at least 15 records with the longest names, and 256 without a
/// name (a watched file's events, an overflow). On the stack: names borrow from it while the
/// callbacks run.
const READ_SIZE: usize = 4096;
const _: () = assert!(READ_SIZE >= inotify::MIN_READ_BUFFER);

/// What every watch asks the kernel for (libuv asks for the same). All watches use one mask, so
/// a second watch of an inode, which replaces the mask of the shared kernel watch, changes
/// nothing for the first. `IN_IGNORED`, `IN_UNMOUNT` and `IN_Q_OVERFLOW` come unasked.
const WATCH_MASK: u32 = libc::IN_CREATE
    | libc::IN_MODIFY
    | libc::IN_ATTRIB
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_DELETE
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF;

/// The inotify bits that become an event for the watch's handles, in the order they are reported
/// if one record carries several. `IN_IGNORED` is handled apart: it ends the watch.
const KINDS: [(u32, FsEventKind); 9] = [
    (libc::IN_CREATE, FsEventKind::Created),
    (libc::IN_MODIFY, FsEventKind::Modified),
    (libc::IN_ATTRIB, FsEventKind::Attributes),
    (libc::IN_MOVED_FROM, FsEventKind::MovedFrom),
    (libc::IN_MOVED_TO, FsEventKind::MovedTo),
    (libc::IN_DELETE, FsEventKind::Deleted),
    (libc::IN_DELETE_SELF, FsEventKind::SelfDeleted),
    (libc::IN_MOVE_SELF, FsEventKind::SelfMoved),
    (libc::IN_UNMOUNT, FsEventKind::Unmounted),
];

/// What happened, as reported to a watch's callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FsEventKind {
    /// An entry was created in the watched directory (`IN_CREATE`).
    Created,
    /// The file, or an entry of the directory, was written to or truncated (`IN_MODIFY`).
    Modified,
    /// Metadata changed: permissions, owner, timestamps, link count, extended attributes
    /// (`IN_ATTRIB`). Deleting a watched file reports this first, for its link count.
    Attributes,
    /// An entry was renamed away from this name (`IN_MOVED_FROM`). Pairs with a
    /// [`MovedTo`](FsEventKind::MovedTo) of the same cookie if its new name is watched too.
    MovedFrom,
    /// An entry was renamed to this name (`IN_MOVED_TO`).
    MovedTo,
    /// An entry of the watched directory was deleted (`IN_DELETE`).
    Deleted,
    /// The watched item itself was deleted (`IN_DELETE_SELF`). [`WatchEnded`](Self::WatchEnded)
    /// follows.
    SelfDeleted,
    /// The watched item itself was renamed or moved (`IN_MOVE_SELF`). The watch goes on.
    SelfMoved,
    /// The file system holding the watched item was unmounted (`IN_UNMOUNT`).
    /// [`WatchEnded`](Self::WatchEnded) follows.
    Unmounted,
    /// The kernel ended the watch, because the item was deleted or unmounted (`IN_IGNORED`).
    /// The last event of the handle, which is now inactive but open until closed.
    WatchEnded,
    /// The kernel's event queue overflowed and events were lost (`IN_Q_OVERFLOW`). Every
    /// active watch of the loop gets it; rescan what you watch.
    Overflow,
}

/// One change, as given to a watch's callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsEvent<'a> {
    /// What happened.
    pub kind: FsEventKind,
    /// The entry of the watched directory that the event is about; `None` when it is about the
    /// watched item itself (always, for a watched file), and for
    /// [`Overflow`](FsEventKind::Overflow). Borrowed from the loop's read buffer for the
    /// duration of the callback.
    pub name: Option<&'a Path>,
    /// Ties the two halves of a rename together ([`MovedFrom`](FsEventKind::MovedFrom) and
    /// [`MovedTo`](FsEventKind::MovedTo)); 0 for other events.
    pub cookie: u32,
    /// Whether the subject is a directory (`IN_ISDIR`), as the kernel reports it: set for
    /// entries of a watched directory; kernels differ for the watched item itself.
    pub is_dir: bool,
}

/// A watch's callback: its id and the event.
pub(crate) type FsWatchFn = Box<dyn FnMut(&mut Core, FsWatch, &FsEvent<'_>)>;

/// What the loop keeps for a watch besides its callback.
pub(crate) struct FsWatchState {
    /// The kernel watch this handle is on; `None` once the watch ended or was stopped.
    wd: Option<i32>,
    /// The path as given to `fs_watch`.
    path: PathBuf,
}

/// The loop's side of file-system events.
pub(crate) struct FsEvents {
    /// Created with the first watch; dropping it removes every kernel watch.
    inotify: Option<Inotify>,
    /// Watch descriptor -> the active handles on it, in the order they were created. Ordered
    /// so that an overflow reaches the handles in a stable order.
    watches: BTreeMap<i32, Vec<HandleId>>,
    /// Reused buffer for one event's handles.
    batch: Vec<HandleId>,
}

impl FsEvents {
    pub(crate) fn new() -> Self {
        FsEvents { inotify: None, watches: BTreeMap::new(), batch: Vec::new() }
    }
}

impl Core {
    /// Watches the file or directory at `path` and runs `callback` on the loop thread for each
    /// change, with the handle's id and the [`FsEvent`]. See the [module docs](self) for what is
    /// reported, and for the errors; when this returns an error, `callback` never runs.
    #[track_caller]
    pub fn fs_watch(
        &mut self,
        path: impl AsRef<Path>,
        callback: impl FnMut(&mut Core, FsWatch, &FsEvent<'_>) + 'static,
    ) -> Result<FsWatch> {
        let site = Location::caller();
        let path = path.as_ref();
        let wd = self.inotify()?.add_watch(path, WATCH_MASK)?;
        let state = FsWatchState { wd: Some(wd), path: path.to_path_buf() };
        let callback = Callback::FsWatch(Box::new(callback));
        let id = self.add_handle(Handle::new(State::FsWatch(state), callback, site));
        self.fs_events.watches.entry(wd).or_default().push(id);
        self.set_active(id, true);
        Ok(FsWatch(id))
    }

    /// The path the watch was created with (libuv's `uv_fs_event_getpath`). It is not updated
    /// when the watched item is renamed.
    pub fn fs_watch_path(&self, watch: FsWatch) -> Result<&Path> {
        match self.handles.get(watch.0) {
            Some(Handle { state: State::FsWatch(state), closing: false, .. }) => Ok(&state.path),
            _ => Err(Error::Closed(watch.0)),
        }
    }

    /// The loop's inotify instance, created and registered with the poller on first use.
    fn inotify(&mut self) -> Result<&Inotify> {
        let inotify = match self.fs_events.inotify.take() {
            Some(inotify) => inotify,
            None => {
                let inotify = Inotify::new()?;
                let mut source = mio::unix::SourceFd(&inotify.raw_fd());
                self.poll.registry().register(&mut source, FS_EVENTS, mio::Interest::READABLE)?;
                inotify
            }
        };
        Ok(self.fs_events.inotify.insert(inotify))
    }

    /// Stops a watch for good, as `close` does: the handle leaves its kernel watch, which is
    /// removed if it was the last one on it, and becomes inactive.
    pub(crate) fn fs_watch_stop(&mut self, id: HandleId) -> Result<()> {
        let handle = self.open_handle_mut(id)?;
        let State::FsWatch(state) = &mut handle.state else { return Err(Error::Closed(id)) };
        let Some(wd) = state.wd.take() else {
            return Ok(()); // stopped already, or the kernel ended the watch
        };
        self.set_active(id, false);
        let Some(watchers) = self.fs_events.watches.get_mut(&wd) else { return Ok(()) };
        watchers.retain(|&watcher| watcher != id);
        if watchers.is_empty() {
            self.fs_events.watches.remove(&wd);
            if let Some(inotify) = &self.fs_events.inotify {
                // EINVAL if the kernel ended the watch already (its IN_IGNORED is queued, not
                // yet read): then there is nothing left to remove.
                let _ = inotify.rm_watch(wd);
            }
        }
        Ok(())
    }

    /// The inotify descriptor is readable: read events until the queue is empty or
    /// [`FS_EVENT_BUDGET`] is spent (then the pending phase continues), and run the callbacks.
    pub(crate) fn read_fs_events(&mut self) {
        // Collect, then call: the records of one read are in this local buffer, which callbacks
        // cannot touch; the handles of each record are copied to `batch` before any is called.
        let mut buf = [0u8; READ_SIZE];
        let mut batch = mem::take(&mut self.fs_events.batch);
        let mut handled = 0;
        loop {
            if handled >= FS_EVENT_BUDGET {
                // Under edge-triggered readiness no new edge comes for events already queued.
                self.pending.push_fs_events();
                break;
            }
            let Some(inotify) = &self.fs_events.inotify else { break };
            let n = match inotify.read(&mut buf) {
                Ok(n) if n > 0 => n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                // WouldBlock: the queue is empty. Nothing else is expected from a read of an
                // inotify instance with a buffer this size; if it came, there is nothing to
                // retry, and a new event raises a new edge.
                _ => break,
            };
            for record in inotify::records(&buf[..n]) {
                handled += 1;
                self.deliver_fs_event(&record, &mut batch);
            }
        }
        self.fs_events.batch = batch;
    }

    /// Runs the callbacks for one inotify record.
    fn deliver_fs_event(&mut self, record: &Record<'_>, batch: &mut Vec<HandleId>) {
        let is_dir = record.mask & libc::IN_ISDIR != 0;
        let event = |kind| FsEvent { kind, name: record.name, cookie: record.cookie, is_dir };
        if record.mask & libc::IN_Q_OVERFLOW != 0 {
            batch.extend(self.fs_events.watches.values().flatten());
            self.run_fs_callbacks(batch, event(FsEventKind::Overflow));
        }
        for (_, kind) in KINDS.iter().filter(|(bit, _)| record.mask & bit != 0) {
            // Looked up again for each kind: a callback may have closed a watch on it.
            let Some(watchers) = self.fs_events.watches.get(&record.wd) else { return };
            batch.extend(watchers);
            self.run_fs_callbacks(batch, event(*kind));
        }
        if record.mask & libc::IN_IGNORED != 0 {
            // The kernel ended the watch. (A watch removed by `fs_watch_stop` is no longer in
            // the table, so its own IN_IGNORED finds nothing here.)
            let Some(watchers) = self.fs_events.watches.remove(&record.wd) else { return };
            for &id in &watchers {
                if let Some(Handle { state: State::FsWatch(state), .. }) = self.handles.get_mut(id)
                {
                    state.wd = None;
                }
                self.set_active(id, false);
            }
            // The handles are inactive now, but open: they get the event unless closing.
            for &id in &watchers {
                if !self.is_closing(id) {
                    dispatch::run_handle(self, id, Event::Fs(event(FsEventKind::WatchEnded)));
                }
            }
        }
    }

    /// Calls each handle of `batch` that is still active (an earlier callback may have closed
    /// it), then empties `batch`.
    fn run_fs_callbacks(&mut self, batch: &mut Vec<HandleId>, event: FsEvent<'_>) {
        for &id in batch.iter() {
            if self.is_active(id) {
                dispatch::run_handle(self, id, Event::Fs(event));
            }
        }
        batch.clear();
    }
}
