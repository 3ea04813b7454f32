//! Byte streams: TCP and Unix-domain connections, driven by a handler object.
//!
//! ```no_run
//! use reactor::{Conn, EventLoop, StreamHandler};
//!
//! /// Node's `socket.pipe(socket)`: every byte goes back where it came from.
//! struct Echo;
//!
//! impl StreamHandler for Echo {
//!     fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
//!         // `false`: the peer is not reading and our queue is past its high watermark.
//!         if !conn.write(data) {
//!             conn.pause(); // stop reading from it until it catches up
//!         }
//!     }
//!
//!     fn on_drain(&mut self, conn: &mut Conn<'_>) {
//!         conn.resume(); // the queue went below its low watermark
//!     }
//! }
//!
//! let mut lp = EventLoop::new()?;
//! lp.listen_tcp("127.0.0.1:7000".parse().unwrap(), |_| Echo)?;
//! lp.run()?;
//! # Ok::<(), reactor::Error>(())
//! ```
//!
//! # The handler
//!
//! Each stream has one [`StreamHandler`]: a small state machine, like asyncio's `Protocol`, whose
//! methods the loop calls as things happen to the connection: [`on_open`] once it is connected,
//! [`on_data`] for each chunk read, [`on_eof`] when the peer half-closes, [`on_drain`] when a
//! full write queue has emptied below its low watermark, and [`on_close`] exactly once at the
//! end, with the error that ended the stream, if any. All but `on_data` have defaults.
//!
//! The other methods receive a [`Conn`]: the stream's own id plus the loop's [`Core`], through
//! which a handler writes, pauses, closes, and reaches everything else on the loop.
//!
//! # Reading
//!
//! Reads go into one buffer shared by the whole loop, and `on_data` borrows the bytes read: an
//! idle connection owns no buffer. Readiness is edge-triggered, so the loop reads until the
//! socket is empty (a short read or `WouldBlock`), or until [`READ_BUDGET`] bytes have been read
//! for this stream in this iteration. A stream stopped by the budget is continued in the next
//! iteration's pending phase: no edge is ever lost, and one fast sender cannot starve the rest.
//!
//! [`Conn::pause`] stops reading; the kernel's receive buffer then fills and TCP flow control
//! slows the sender down. [`Conn::resume`] reads again, catching up with data that arrived
//! meanwhile.
//!
//! # Writing and backpressure
//!
//! [`Core::write`] tries the socket at once when nothing is queued; only what the kernel does
//! not take is copied into the stream's write queue, flushed with `writev` when the socket
//! becomes writable. `write` returns `false` once the queue holds more than the high watermark
//! ([`DEFAULT_HIGH_WATER`], see [`Core::set_watermarks`]); `on_drain` follows when it falls to
//! the low watermark. Pausing on `false` and resuming in `on_drain` is the whole of
//! backpressure: memory stays bounded by the watermark plus one read.
//!
//! [`Core::write_with`] (and [`Conn::write_with`]) is `write` with a callback that runs once the
//! kernel has taken every byte of the write, or with the error that ended the stream first.
//!
//! # Ending a stream
//!
//! - [`Core::shutdown`] half-closes: a FIN is sent once the queue is flushed; reading goes on.
//! - [`Core::close`] (and [`Conn::close`]) is graceful: reading stops at once, queued output is
//!   flushed, then the socket is closed and `on_close` runs. A peer that does not read within
//!   [`CLOSE_TIMEOUT`] is cut off.
//! - [`Core::abort`] is abortive: queued output is dropped and the peer gets a RST.
//! - The peer's half-close is reported by `on_eof`, not as a close. The default `on_eof` closes
//!   gracefully (Node's `allowHalfOpen: false`). A stream whose both directions are finished
//!   closes by itself.
//!
//! Errors (reset by peer, refused connect, broken pipe) end the stream: `on_close` gets the error.
//!
//! [`on_open`]: StreamHandler::on_open
//! [`on_data`]: StreamHandler::on_data
//! [`on_eof`]: StreamHandler::on_eof
//! [`on_drain`]: StreamHandler::on_drain
//! [`on_close`]: StreamHandler::on_close

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::panic::Location;
use std::path::Path;
use std::time::Duration;

use crate::buf::{MAX_IOVECS, OnWritten, WriteQueue, WrittenFn};
use crate::dispatch::{Callback, Task};
use crate::error::is_transient;
use crate::event_loop::Core;
use crate::handle::{Handle, HandleId, State, Stream, Timer};
use crate::trace::{Act, Kind};
use crate::{Error, Result, sys};

mod connect;
mod paths;
mod socket;

pub(crate) use socket::Socket;

/// Size of the loop's one read buffer: the most `on_data` is given at once. 64 KiB matches the
/// largest chunk a loopback or LAN socket typically has ready, so one read usually drains it.
pub const READ_BUFFER_SIZE: usize = 64 * 1024;

/// How many bytes one stream may read per iteration before the others get their turn: four
/// full reads. Large enough that a bulk transfer pays one loop iteration per 256 KiB, small
/// enough that a ping-pong client next to it waits at most a few hundred microseconds.
pub const READ_BUDGET: usize = 4 * READ_BUFFER_SIZE;

/// Default high watermark: past this many queued bytes, `write` returns `false`.
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;
/// Default low watermark: `on_drain` runs when the queue falls to this many bytes.
pub const DEFAULT_LOW_WATER: usize = 16 * 1024;

/// The most unread input a graceful close reads and drops before closing (see
/// `finish_graceful_close`).
const DISCARD_LIMIT: usize = 1024 * 1024;

/// How long a graceful close waits for the peer to take the queued output before it gives up
/// and closes anyway (with [`io::ErrorKind::TimedOut`] in `on_close`).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection's state machine. The loop calls these methods on the loop thread, one at a
/// time, through the [dispatch module](crate::dispatch) (a panic closes the stream).
pub trait StreamHandler: 'static {
    /// The stream is connected: accepted by a listener, or an outgoing connect succeeded.
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// Bytes arrived. `data` is borrowed from the loop's read buffer: copy what must outlive
    /// the call.
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]);

    /// The peer half-closed: no more data will come, but it may still read. The default closes
    /// the stream gracefully (queued output is still delivered).
    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        conn.close();
    }

    /// The write queue, after `write` returned `false`, has fallen to the low watermark.
    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// Someone called [`Core::wake`] for this stream: its state changed outside its own
    /// callbacks (a reply computed elsewhere is ready, a deadline kept elsewhere passed). Runs
    /// once in the next pending phase, however many wakes came before it.
    fn on_wake(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// The stream is gone: closed by us, failed with `error`, or its connect failed (then
    /// `on_open` never ran). Called exactly once, in the closing phase; `stream` is stale by
    /// now.
    fn on_close(&mut self, core: &mut Core, stream: Stream, error: Option<io::Error>) {
        let _ = (core, stream, error);
    }
}

/// What a [`StreamHandler`] method gets: its stream, and the loop.
///
/// The calls mirror the `Core` calls that take a stream id, for the handler's own stream. They
/// cannot fail on a stream that is still open; once it is closing, writes are dropped and
/// report `false` (and `write_with` hands its callback the error), the rest do nothing.
pub struct Conn<'a> {
    core: &'a mut Core,
    stream: Stream,
}

impl<'a> Conn<'a> {
    pub(crate) fn new(core: &'a mut Core, stream: Stream) -> Self {
        Conn { core, stream }
    }

    /// This stream's id, to keep and use later through [`Core`].
    pub fn id(&self) -> Stream {
        self.stream
    }

    /// The loop: timers, other streams, everything.
    pub fn core(&mut self) -> &mut Core {
        self.core
    }

    /// The loop and this stream's id at once, for calls like `core.write(other, ..)` that need
    /// both (`f(conn.core(), conn.id())` does not borrow-check).
    pub fn split(&mut self) -> (&mut Core, Stream) {
        (self.core, self.stream)
    }

    /// Queues `data` (see [`Core::write`]). `false`: stop writing until `on_drain`.
    pub fn write(&mut self, data: &[u8]) -> bool {
        self.core.write(self.stream, data).unwrap_or(false)
    }

    /// Queues `data` and calls `on_written` once the kernel has taken all of it (see
    /// [`Core::write_with`]). `false`: stop writing until `on_drain`.
    ///
    /// Unlike `Core::write_with`, this cannot return an error, so on a stream that is closing
    /// (or shut down, or whose write fails at once) `on_written` gets it instead: it runs with
    /// the error `Core::write_with` would have returned, in the check phase, and the call
    /// returns `false` (Node's `socket.write(data, cb)` on a destroyed socket does the same).
    #[track_caller]
    pub fn write_with(
        &mut self,
        data: &[u8],
        on_written: impl FnOnce(&mut Core, Result<()>) + 'static,
    ) -> bool {
        let on_written = self.core.on_written(Box::new(on_written));
        match self.core.write_vectored(self.stream, &[data]) {
            Ok(below) => {
                self.core.wait_for_queue(self.stream.0, on_written);
                below
            }
            Err(err) => {
                self.core.deferred.push_as(on_written.into_task(Err(err)), Kind::WriteDone);
                false
            }
        }
    }

    /// Queues several buffers with one system call (see [`Core::write_vectored`]).
    pub fn write_vectored(&mut self, bufs: &[&[u8]]) -> bool {
        self.core.write_vectored(self.stream, bufs).unwrap_or(false)
    }

    /// Stops reading (see [`Core::pause`]).
    pub fn pause(&mut self) {
        let _ = self.core.pause(self.stream);
    }

    /// Reads again (see [`Core::resume`]).
    pub fn resume(&mut self) {
        let _ = self.core.resume(self.stream);
    }

    /// Half-closes once the queue is flushed (see [`Core::shutdown`]).
    pub fn shutdown(&mut self) {
        let _ = self.core.shutdown(self.stream);
    }

    /// Closes gracefully (see [`Core::close`]).
    pub fn close(&mut self) {
        let _ = self.core.close(self.stream);
    }

    /// Closes abortively (see [`Core::abort`]).
    pub fn abort(&mut self) {
        let _ = self.core.abort(self.stream);
    }

    /// Bytes queued and not yet taken by the kernel.
    pub fn queued_bytes(&self) -> usize {
        self.core.queued_bytes(self.stream).unwrap_or(0)
    }

    /// The peer's address (see [`Core::peer_addr`]).
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        self.core.peer_addr(self.stream)
    }
}

/// What the loop keeps for a stream besides its handler.
pub(crate) struct StreamState {
    socket: Socket,
    /// Unsent output; `None` while everything written has been sent.
    queue: Option<Box<WriteQueue>>,
    /// [`Core::wake`] was called; `on_wake` is due in the next pending phase.
    woken: bool,
    /// Set by a graceful close that had to wait for the queue to flush.
    linger: Option<Box<Linger>>,
    high_water: u32,
    low_water: u32,
    /// The connect has not completed yet; writes are queued.
    connecting: bool,
    /// Reading is stopped (`pause`, or closing).
    paused: bool,
    /// A readable edge was seen and the socket may still hold data.
    read_ready: bool,
    /// The stream is on the pending list to be read in the next iteration.
    queued_for_read: bool,
    /// The pending pass in which this stream was last read from the pending phase.
    read_in_pass: u32,
    /// An event said the peer has half-closed: read on to the EOF, even past a short read.
    /// Kept here because the event may come while reading is paused.
    read_closed: bool,
    /// The peer half-closed.
    eof: bool,
    /// `write` returned `false`; `on_drain` is owed once the queue falls to the low watermark.
    needs_drain: bool,
    /// `shutdown` was called: no more writes.
    shutdown_requested: bool,
    /// Our FIN has been sent.
    shut_down: bool,
    /// On the closing list: its close callback is due this iteration.
    finished: bool,
}

/// A graceful close waiting for the queue to flush.
struct Linger {
    on_close: Option<Task>,
    /// Bounds the wait (see [`CLOSE_TIMEOUT`]).
    timer: Timer,
}

impl StreamState {
    fn new(socket: Socket, connecting: bool) -> Self {
        StreamState {
            socket,
            queue: None,
            woken: false,
            linger: None,
            high_water: DEFAULT_HIGH_WATER as u32,
            low_water: DEFAULT_LOW_WATER as u32,
            connecting,
            paused: false,
            read_ready: false,
            queued_for_read: false,
            read_in_pass: 0,
            read_closed: false,
            eof: false,
            needs_drain: false,
            shutdown_requested: false,
            shut_down: false,
            finished: false,
        }
    }

    pub(crate) fn queued(&self) -> usize {
        self.queue.as_ref().map_or(0, |queue| queue.len())
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.tcp()?.local_addr()
    }
}

/// Streams: creating, reading, writing, ending.
impl Core {
    /// Connects to a TCP address without blocking. The handler's `on_open` runs once the
    /// connection is established; if it fails (refused, unreachable), `on_close` gets the error
    /// instead. Writes made before then are queued.
    #[track_caller]
    pub fn connect_tcp(&mut self, addr: SocketAddr, handler: impl StreamHandler) -> Result<Stream> {
        let socket = mio::net::TcpStream::connect(addr).map(Socket::Tcp);
        self.connect(socket, Box::new(handler), Location::caller())
    }

    /// Connects to a Unix-domain socket at `path`, as [`Core::connect_tcp`] does to an address.
    #[track_caller]
    pub fn connect_unix(
        &mut self,
        path: impl AsRef<Path>,
        handler: impl StreamHandler,
    ) -> Result<Stream> {
        let socket = mio::net::UnixStream::connect(path).map(Socket::Unix);
        self.connect(socket, Box::new(handler), Location::caller())
    }

    fn connect(
        &mut self,
        socket: io::Result<Socket>,
        handler: Box<dyn StreamHandler>,
        site: &'static Location<'static>,
    ) -> Result<Stream> {
        let (socket, error) = match socket {
            Ok(socket) => (socket, None),
            Err(err) => (Socket::Failed, Some(err)),
        };
        let id = self.insert_stream(socket, true, Callback::Stream(handler), site)?;
        if let Some(err) = error {
            // Like libuv, report even an immediate failure (refused, no such file) through the
            // handler, never from inside this call.
            self.finish_stream(id, Some(err), None);
        }
        Ok(Stream(id))
    }

    /// Stores a connected (or connecting) socket as a new, active stream handle and registers
    /// it for both directions, once: edge-triggered interest never needs changing.
    pub(crate) fn insert_stream(
        &mut self,
        socket: Socket,
        connecting: bool,
        callback: Callback,
        site: &'static Location<'static>,
    ) -> Result<HandleId> {
        let state = State::Stream(StreamState::new(socket, connecting));
        let id = self.add_handle(Handle::new(state, callback, site));
        let Some(State::Stream(stream)) = self.handles.get_mut(id).map(|h| &mut h.state) else {
            unreachable!("just inserted")
        };
        if let Some(source) = stream.socket.source() {
            let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
            if let Err(err) = self.poll.registry().register(source, id.token(), interest) {
                self.handles.remove(id);
                return Err(err.into());
            }
        }
        self.set_active(id, true);
        Ok(id)
    }

    /// Writes `data` to the stream: straight to the socket if nothing is queued, the rest into
    /// the write queue, flushed when the socket is writable. Returns `Ok(false)` when the queue
    /// is past the high watermark: stop writing until `on_drain`. Nothing is ever dropped while
    /// the stream is open. An empty `data` writes nothing and asks only that question (its
    /// `false` is followed by `on_drain` too).
    ///
    /// Errors: [`Error::Closed`] once the stream is closing (also after a write error, which
    /// `on_close` reports), and `BrokenPipe` after [`Core::shutdown`].
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> Result<bool> {
        self.write_vectored(stream, &[data])
    }

    /// [`Core::write`], and `on_written` runs once every byte of `data` (and of everything
    /// written to the stream before it) has been handed to the kernel: libuv's `uv_write`
    /// callback, Node's `socket.write(data, cb)`. Returns what `write` returns: `Ok(false)`
    /// asks to stop writing until `on_drain`; `on_written` runs either way.
    ///
    /// ```no_run
    /// # use reactor::{EventLoop, StreamHandler, Conn};
    /// # struct Quiet;
    /// # impl StreamHandler for Quiet { fn on_data(&mut self, _: &mut Conn<'_>, _: &[u8]) {} }
    /// # let mut lp = EventLoop::new()?;
    /// # let stream = lp.connect_tcp("127.0.0.1:7000".parse().unwrap(), Quiet)?;
    /// lp.write_with(stream, b"bye\n", move |core, result| {
    ///     if result.is_ok() {
    ///         let _ = core.close(stream); // every byte is out: now close
    ///     }
    /// })?;
    /// # Ok::<(), reactor::Error>(())
    /// ```
    ///
    /// The rules:
    ///
    /// - `on_written` never runs inside this call (nor does libuv's inside `uv_write`). When
    ///   the kernel takes all of `data` at once, it runs in the check phase of this iteration
    ///   (of the next one if this call is made in the check or closing phase), as deferred
    ///   callbacks do. When some of `data` is queued, it runs in the check phase of the
    ///   iteration whose poll phase flushed the last byte.
    /// - The callbacks of one stream run in the order of their writes. An empty `data` is
    ///   written once everything before it is, and the stream is connected (writes made while
    ///   it connects wait for the connect).
    /// - `Ok(())` means the kernel has the bytes, not that the peer has read them. A graceful
    ///   [`Core::close`] flushes the queue first, so writes made before it still complete
    ///   with `Ok(())`.
    /// - If the stream ends before the bytes are flushed, each outstanding `on_written` runs
    ///   exactly once with an error: the error that ended the stream (the one `on_close`
    ///   gets: a reset, a broken pipe, the close timeout's `TimedOut`, a failed connect) as
    ///   [`Error::Io`], or [`Error::Closed`] if it ended without one ([`Core::abort`]). They
    ///   run in the check phase, before `on_close`; only a stream ended *during* the check
    ///   phase (by a deferred, check or write callback) gets its `on_close` first, as its
    ///   write callbacks wait for the next iteration's check phase.
    /// - When this call returns an error, `on_written` is dropped and never called (a call
    ///   that fails never invokes its callback). The errors are `write`'s: [`Error::Closed`] on
    ///   a closing or freed stream (also when this very write failed, which `on_close` then
    ///   reports), `BrokenPipe` after [`Core::shutdown`]. ([`Conn::write_with`], which returns
    ///   no error, gives it to `on_written` instead.)
    /// - A panic in `on_written` is caught and reported like a deferred callback's (its
    ///   [kind](crate::PanicReport::kind) is `"write done"`); the stream is not closed.
    /// - If the loop is dropped first, outstanding callbacks are dropped without running.
    ///
    /// The callbacks wait in the stream's write queue, which exists only while output is
    /// unsent; a stream that never calls `write_with` pays for them only an empty list in that
    /// queue (see `docs/streams.md`).
    #[track_caller]
    pub fn write_with(
        &mut self,
        stream: Stream,
        data: &[u8],
        on_written: impl FnOnce(&mut Core, Result<()>) + 'static,
    ) -> Result<bool> {
        let on_written = self.on_written(Box::new(on_written));
        // Registered only once the write has succeeded: a failed flush in `write_vectored`
        // must not call it with an error while this call returns one.
        let below = self.write_vectored(stream, &[data])?;
        self.wait_for_queue(stream.0, on_written);
        Ok(below)
    }

    /// Hands `on_written` to stream `id`'s queue, due once what is queued now has been sent;
    /// with nothing queued, to the check phase. A stream still connecting gets a queue even
    /// for an empty write: until it is connected, nothing has reached the kernel.
    fn wait_for_queue(&mut self, id: HandleId, on_written: OnWritten) {
        let queue = match self.handles.get_mut(id) {
            Some(Handle { state: State::Stream(state), .. })
                if state.queue.is_some() || state.connecting =>
            {
                state.queue.get_or_insert_with(Box::default)
            }
            _ => {
                self.deferred.push_as(on_written.into_task(Ok(())), Kind::WriteDone);
                return;
            }
        };
        queue.push_done(on_written);
    }

    /// A `write_with` callback, with the act that queued it recorded at the caller's site.
    #[track_caller]
    fn on_written(&self, callback: WrittenFn) -> OnWritten {
        let site = Location::caller();
        OnWritten::new(callback, site, self.trace.record(Act::Wrote, site))
    }

    /// [`Core::write`] for several buffers, sent with one `writev` (a response head and body,
    /// say).
    pub fn write_vectored(&mut self, stream: Stream, bufs: &[&[u8]]) -> Result<bool> {
        let id = stream.0;
        let state = self.open_stream_mut(id)?;
        if state.shutdown_requested {
            let err = io::Error::new(io::ErrorKind::BrokenPipe, "write after shutdown");
            return Err(err.into());
        }
        let total: usize = bufs.iter().map(|buf| buf.len()).sum();
        if total == 0 {
            // An empty write asks "may I write?"; a `false` owes an `on_drain`, as for any
            // other write.
            let below = state.queued() <= state.high_water as usize;
            state.needs_drain |= !below;
            return Ok(below);
        }
        let mut sent = 0;
        let idle = state.queue.is_none() && !state.connecting;
        if idle && bufs.len() <= MAX_IOVECS {
            // Writes try first: most of the time the kernel takes everything and nothing is
            // copied. (A partial write means the socket is full, so a writable edge will come
            // for the rest.)
            let written = match bufs {
                // The common case, without filling a 64-entry iovec array first.
                [one] => state.socket.write_vectored(&[IoSlice::new(one)]),
                _ => {
                    let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                    for (slice, buf) in slices.iter_mut().zip(bufs) {
                        *slice = IoSlice::new(buf);
                    }
                    state.socket.write_vectored(&slices[..bufs.len()])
                }
            };
            match written {
                Ok(n) => sent = n,
                Err(err) if is_transient(&err) => {}
                Err(err) => {
                    self.finish_stream(id, Some(err), None);
                    return Err(Error::Closed(id));
                }
            }
            if sent == total {
                return Ok(true);
            }
        }
        let queue = state.queue.get_or_insert_with(Box::default);
        let mut skip = sent;
        for buf in bufs {
            let taken = skip.min(buf.len());
            queue.push(&buf[taken..]);
            skip -= taken;
        }
        if idle && bufs.len() > MAX_IOVECS {
            // Too many buffers for one `writev`: the kernel may take all those offered without
            // filling up, and then no writable edge would come for the rest. Flush now.
            if !self.write_out(id) {
                return Err(Error::Closed(id));
            }
        }
        let Some(state) = self.stream_mut(id) else { return Err(Error::Closed(id)) };
        let below = state.queued() <= state.high_water as usize;
        state.needs_drain |= !below;
        Ok(below)
    }

    /// Sets the stream's watermarks: `write` returns `false` above `high` queued bytes, and
    /// `on_drain` runs when the queue falls to `low`. `low` must not exceed `high`.
    pub fn set_watermarks(&mut self, stream: Stream, high: usize, low: usize) -> Result<()> {
        if low > high || high > u32::MAX as usize {
            let err = io::Error::new(io::ErrorKind::InvalidInput, "need low <= high < 4 GiB");
            return Err(err.into());
        }
        let state = self.open_stream_mut(stream.0)?;
        (state.high_water, state.low_water) = (high as u32, low as u32);
        Ok(())
    }

    /// Bytes queued on the stream and not yet taken by the kernel.
    pub fn queued_bytes(&self, stream: Stream) -> Result<usize> {
        match self.handles.get(stream.0).map(|h| (&h.state, h.closing)) {
            Some((State::Stream(state), false)) => Ok(state.queued()),
            _ => Err(Error::Closed(stream.0)),
        }
    }

    /// Stops reading from the stream: no `on_data` until [`Core::resume`]. The kernel buffers
    /// what arrives meanwhile, then TCP flow control stops the sender.
    pub fn pause(&mut self, stream: Stream) -> Result<()> {
        self.open_stream_mut(stream.0)?.paused = true;
        Ok(())
    }

    /// Reads again after [`Core::pause`]. Data that arrived meanwhile is read in the next
    /// iteration (its edge has passed, so the loop remembers it).
    pub fn resume(&mut self, stream: Stream) -> Result<()> {
        let id = stream.0;
        let state = self.open_stream_mut(id)?;
        state.paused = false;
        if state.read_ready && !state.eof {
            self.queue_continue(id);
        }
        Ok(())
    }

    /// Asks for the stream's [`StreamHandler::on_wake`] to run in the next pending phase. The
    /// way code outside the handler (a timer, another connection, a closure posted from
    /// another thread) hands it work: change the state the handler shares, then wake it. Wakes
    /// before the call coalesce into one; the call never runs inside `wake` itself.
    pub fn wake(&mut self, stream: Stream) -> Result<()> {
        let id = stream.0;
        let state = self.open_stream_mut(id)?;
        if !state.woken {
            state.woken = true;
            self.queue_continue(id);
        }
        Ok(())
    }

    /// Half-closes the stream: no more writes; once the queue is flushed, a FIN tells the peer
    /// that no more data will come. Reading goes on until the peer's own EOF.
    pub fn shutdown(&mut self, stream: Stream) -> Result<()> {
        let id = stream.0;
        let state = self.open_stream_mut(id)?;
        state.shutdown_requested = true;
        self.end_writes(id);
        Ok(())
    }

    /// Closes the stream abortively: queued output is dropped and the peer gets a RST (TCP;
    /// a Unix-domain peer sees an ordinary close). `on_close` runs in this iteration's closing
    /// phase. Works on a stream that is closing gracefully, to cut the wait short.
    pub fn abort(&mut self, stream: Stream) -> Result<()> {
        let id = stream.0;
        let state = self.stream_mut(id).ok_or(Error::Closed(id))?;
        if state.finished {
            return Err(Error::Closed(id));
        }
        if let Socket::Tcp(socket) = &state.socket {
            // If this fails, the socket closes with a FIN instead: still closed.
            let _ = sys::net::set_linger_zero(socket);
        }
        self.finish_stream(id, None, None);
        Ok(())
    }

    /// Turns Nagle's algorithm off (`true`) or on for a TCP stream. Accepted streams start with
    /// it off (see [`ListenOptions`](crate::ListenOptions)).
    pub fn set_nodelay(&mut self, stream: Stream, nodelay: bool) -> Result<()> {
        Ok(self.open_stream_mut(stream.0)?.socket.tcp()?.set_nodelay(nodelay)?)
    }

    /// TCP keepalive: probe an idle connection after `idle` (and every `idle` after that), or
    /// never with `None` (the default).
    pub fn set_keepalive(&mut self, stream: Stream, idle: Option<Duration>) -> Result<()> {
        let socket = self.open_stream_mut(stream.0)?.socket.tcp()?;
        Ok(sys::net::set_keepalive(socket, idle)?)
    }

    /// The remote address of a TCP stream.
    pub fn peer_addr(&self, stream: Stream) -> Result<SocketAddr> {
        match self.handles.get(stream.0).map(|h| &h.state) {
            Some(State::Stream(state)) => Ok(state.socket.tcp()?.peer_addr()?),
            _ => Err(Error::Closed(stream.0)),
        }
    }

    /// The local address of a TCP stream, a TCP listener or a UDP socket (for a listener bound
    /// to port 0, this is where the port it got shows up).
    pub fn local_addr(&self, handle: impl Into<HandleId>) -> Result<SocketAddr> {
        let id = handle.into();
        let addr = match self.handles.get(id).map(|h| &h.state) {
            Some(State::Stream(state)) => state.local_addr(),
            Some(State::Listener(state)) => state.local_addr(),
            Some(State::Udp(state)) => state.local_addr(),
            _ => return Err(Error::Closed(id)),
        };
        Ok(addr?)
    }

    fn stream_mut(&mut self, id: HandleId) -> Option<&mut StreamState> {
        match self.handles.get_mut(id) {
            Some(Handle { state: State::Stream(state), .. }) => Some(state),
            _ => None,
        }
    }

    fn open_stream_mut(&mut self, id: HandleId) -> Result<&mut StreamState> {
        match self.handles.get_mut(id) {
            Some(Handle { state: State::Stream(state), closing: false, .. }) => Ok(state),
            _ => Err(Error::Closed(id)),
        }
    }

    /// Puts the stream on the pending list (once), to be woken or read in the next iteration.
    pub(crate) fn queue_continue(&mut self, id: HandleId) {
        if let Some(state) = self.stream_mut(id) {
            if !state.queued_for_read {
                state.queued_for_read = true;
                self.pending.push_handle(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Idle connections' memory is benchmarked: what a stream keeps beside its handler must
    /// not grow (`write_with`'s bookkeeping lives in the write queue for that reason).
    #[test]
    fn a_stream_state_is_64_bytes() {
        assert_eq!(std::mem::size_of::<StreamState>(), 64);
    }
}
