//! The paths that readiness drives: an event's flush and read, the connect's completion, the
//! pending phase's continuation, and the end of every stream. `docs/streams.md` draws them.

use std::io::{self, IoSlice};
use std::mem;

use super::{CLOSE_TIMEOUT, DISCARD_LIMIT, Linger, READ_BUDGET, READ_BUFFER_SIZE, Socket};
use crate::Error;
use crate::buf::{MAX_IOVECS, WriteQueue};
use crate::deferred::Deferred;
use crate::dispatch::{self, Event, StreamEvent, Task};
use crate::event_loop::Core;
use crate::handle::{Handle, HandleId, State};
use crate::trace::Kind;

impl Core {
    /// A readiness event for stream `id`.
    pub(crate) fn stream_ready(&mut self, id: HandleId, event: &mio::event::Event) {
        let Some(state) = self.stream_mut(id) else { return };
        if state.finished {
            return;
        }
        if event.is_error() {
            let err = match state.socket.take_error() {
                Ok(Some(err)) | Err(err) => err,
                Ok(None) => io::Error::other("socket error"),
            };
            if state.connecting {
                self.connect_next(id, err);
            } else {
                self.finish_stream(id, Some(err), None);
            }
            return;
        }
        if state.connecting && !self.finish_connect(id) {
            return;
        }
        // Most events report the socket writable whether or not we have anything to send:
        // only a queue needs the write path.
        if event.is_writable() && self.stream_mut(id).is_some_and(|state| state.queue.is_some()) {
            self.flush(id);
        }
        if event.is_readable() || event.is_read_closed() {
            let pass = self.pending.pass();
            if let Some(state) = self.stream_mut(id) {
                state.read_ready = true;
                state.read_closed |= event.is_read_closed();
                // A stream on the pending list, or read from it in this iteration, has had its
                // budget for this iteration: it is read again in the next pending phase.
                if state.read_in_pass == pass {
                    self.queue_continue(id);
                } else if !state.queued_for_read {
                    self.read(id);
                }
            }
        }
    }

    /// Completes a connect: `true` if the stream is now open.
    fn finish_connect(&mut self, id: HandleId) -> bool {
        let Some(state) = self.stream_mut(id) else { return false };
        let checked = match state.socket.take_error() {
            Ok(Some(err)) | Err(err) => Err(err),
            Ok(None) => state.socket.check_connected(),
        };
        match checked {
            Ok(()) => state.connecting = false,
            // A spurious wake-up: still connecting.
            Err(err) if err.kind() == io::ErrorKind::NotConnected => return false,
            Err(err) => {
                self.connect_next(id, err);
                return false;
            }
        }
        if !self.addresses_left.is_empty() {
            self.addresses_left.remove(&id);
        }
        if self.handles.get(id).is_some_and(|handle| !handle.closing) {
            dispatch::run_handle(self, id, Event::Stream(StreamEvent::Open));
        }
        // Flush what was written before the connect completed (and a shutdown or close asked
        // for meanwhile).
        self.flush(id);
        self.stream_mut(id).is_some_and(|state| !state.finished)
    }

    /// Called from the pending phase: run a requested `on_wake`, then continue reading a
    /// stream stopped by its budget, or resumed.
    pub(crate) fn continue_stream(&mut self, id: HandleId) {
        let pass = self.pending.pass();
        let Some(state) = self.stream_mut(id) else { return };
        state.queued_for_read = false;
        if mem::take(&mut state.woken) {
            if self.handles.get(id).is_some_and(|handle| !handle.closing) {
                dispatch::run_handle(self, id, Event::Stream(StreamEvent::Wake));
            }
            // Woken only: the socket had nothing left to read.
            if !self.stream_mut(id).is_some_and(|state| state.read_ready) {
                return;
            }
        }
        if let Some(state) = self.stream_mut(id) {
            state.read_in_pass = pass;
            self.read(id);
        }
    }

    /// The read path: read into the loop's buffer and hand each chunk to `on_data`, until the
    /// socket is empty, the stream is paused or closing, or the budget is spent.
    ///
    /// A short read proves the socket empty, since new data raises a new edge, and saves the
    /// `read` that would return `WouldBlock`. Not so once the peer's FIN has been reported: its
    /// edge is spent, so the loop reads on until it sees the EOF itself.
    fn read(&mut self, id: HandleId) {
        let mut budget = READ_BUDGET;
        let mut buf = mem::take(&mut self.read_buf);
        if buf.is_empty() {
            buf = vec![0; READ_BUFFER_SIZE];
        }
        let emptied = loop {
            let Some(Handle { state: State::Stream(state), closing: false, .. }) =
                self.handles.get_mut(id)
            else {
                break true;
            };
            if state.paused || state.eof || state.connecting {
                break true;
            }
            if budget == 0 {
                break false;
            }
            match state.socket.read(&mut buf) {
                Ok(0) => {
                    (state.eof, state.read_ready) = (true, false);
                    dispatch::run_handle(self, id, Event::Stream(StreamEvent::Eof));
                    self.close_if_done(id);
                    break true;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    let drained = n < buf.len() && !state.read_closed;
                    if drained {
                        state.read_ready = false;
                    }
                    dispatch::run_handle(self, id, Event::Stream(StreamEvent::Data(&buf[..n])));
                    if drained {
                        break true;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    state.read_ready = false;
                    break true;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.finish_stream(id, Some(err), None);
                    break true;
                }
            }
        };
        self.read_buf = buf;
        if !emptied {
            // Budget spent with data left: under edge-triggered readiness no new event will
            // come for it, so the loop must come back by itself.
            self.queue_continue(id);
        }
    }

    /// The write path, on a writable event: flush the queue, then see what follows.
    fn flush(&mut self, id: HandleId) {
        if self.write_out(id) {
            self.after_write(id);
        }
    }

    /// Writes the queue out with `writev` until it is empty or the socket is full. Returns
    /// `false` if the stream failed (and is finished). Calls no user code: the `write_with`
    /// callbacks whose bytes are now sent go to the check phase.
    pub(super) fn write_out(&mut self, id: HandleId) -> bool {
        let Some(Handle { state: State::Stream(state), .. }) = self.handles.get_mut(id) else {
            return false;
        };
        if let Some(queue) = state.queue.as_mut() {
            while !queue.is_empty() {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let count = queue.io_slices(&mut slices);
                match state.socket.write_vectored(&slices[..count]) {
                    Ok(0) => {
                        let err = io::Error::from(io::ErrorKind::WriteZero);
                        self.finish_stream(id, Some(err), None);
                        return false;
                    }
                    Ok(n) => {
                        queue.consume(n);
                        // Before a later `writev` can fail: these bytes are the kernel's.
                        written(queue, &mut self.deferred);
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => {
                        self.finish_stream(id, Some(err), None);
                        return false;
                    }
                }
            }
            if queue.is_empty() {
                // Idle again: give the memory back. (Callbacks may be left in it: those of
                // empty writes made while connecting.)
                written(queue, &mut self.deferred);
                state.queue = None;
            }
        }
        !state.finished
    }

    /// What follows progress on the write side (in the poll phase only: `on_drain` is user
    /// code): `on_drain`, then a pending shutdown or graceful close.
    fn after_write(&mut self, id: HandleId) {
        let Some(handle) = self.handles.get_mut(id) else { return };
        let State::Stream(state) = &mut handle.state else { return };
        if state.needs_drain && state.queued() <= state.low_water as usize && !handle.closing {
            state.needs_drain = false;
            dispatch::run_handle(self, id, Event::Stream(StreamEvent::Drain));
        }
        self.end_writes(id);
    }

    /// Once the queue is empty: send the FIN a `shutdown` asked for, or finish a graceful
    /// close. Calls no user code, so `Core::shutdown` can use it too.
    pub(super) fn end_writes(&mut self, id: HandleId) {
        let Some(state) = self.stream_mut(id) else { return };
        if state.queue.is_some() || state.finished || state.connecting {
            return;
        }
        if state.linger.is_some() {
            // A graceful close was waiting for this.
            self.finish_graceful_close(id, None);
        } else if state.shutdown_requested && !state.shut_down {
            state.shut_down = true;
            match state.socket.shutdown_write() {
                Ok(()) => self.close_if_done(id),
                Err(err) => self.finish_stream(id, Some(err), None),
            }
        }
    }

    /// A stream finished in both directions closes by itself.
    fn close_if_done(&mut self, id: HandleId) {
        if let Some(state) = self.stream_mut(id) {
            if state.eof && state.shut_down && !state.finished {
                self.finish_stream(id, None, None);
            }
        }
    }

    /// `close` on a stream: stop reading now; close once the queue is flushed (or at once if
    /// it is empty). Called by [`Core::close`] after it marked the handle closing.
    pub(crate) fn close_stream(&mut self, id: HandleId, on_close: Option<Task>) {
        let Some(state) = self.stream_mut(id) else { return };
        state.paused = true;
        if state.queue.is_none() || matches!(state.socket, Socket::Failed) {
            self.finish_graceful_close(id, on_close);
            return;
        }
        let timer = self.set_timeout(CLOSE_TIMEOUT, move |core| {
            let err = io::Error::new(io::ErrorKind::TimedOut, "peer did not take queued output");
            core.finish_stream(id, Some(err), None);
        });
        // The stream keeps the loop alive while it flushes; its timer need not.
        let _ = self.unref(timer);
        if let Some(state) = self.stream_mut(id) {
            state.linger = Some(Box::new(Linger { on_close, timer }));
        }
    }

    /// The last step of a graceful close. Unread input is read and dropped first: closing a
    /// TCP socket whose receive buffer holds data makes the kernel send a RST instead of a FIN,
    /// and a RST can destroy the output the peer has not read yet. (A peer that goes on sending
    /// after this can still cause one; HTTP's lingering close is the full answer.)
    fn finish_graceful_close(&mut self, id: HandleId, on_close: Option<Task>) {
        let mut buf = mem::take(&mut self.read_buf);
        if buf.is_empty() {
            buf = vec![0; READ_BUFFER_SIZE];
        }
        // After the peer's EOF there is nothing left to drop.
        if let Some(state) = self.stream_mut(id).filter(|state| !state.eof) {
            for _ in 0..DISCARD_LIMIT / READ_BUFFER_SIZE {
                match state.socket.read(&mut buf) {
                    Ok(n) if n > 0 => {}
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    _ => break,
                }
            }
        }
        self.read_buf = buf;
        self.finish_stream(id, None, on_close);
    }

    /// The end of every stream: drop the queue, and put the handle on the closing list, where
    /// `on_close` runs and the socket is closed. `error` is what ended it; the `write_with`
    /// callbacks of unsent output get it too (a copy each), or `Error::Closed` without one,
    /// in the check phase.
    pub(crate) fn finish_stream(
        &mut self,
        id: HandleId,
        error: Option<io::Error>,
        mut on_close: Option<Task>,
    ) {
        let Some(handle) = self.handles.get_mut(id) else { return };
        let State::Stream(state) = &mut handle.state else { return };
        if state.finished {
            return;
        }
        state.finished = true;
        if let Some(queue) = state.queue.take() {
            for done in queue.into_done() {
                let err = match &error {
                    Some(err) => Error::Io(copy_error(err)),
                    None => Error::Closed(id),
                };
                self.deferred.push_as(done.into_task(Err(err)), Kind::WriteDone);
            }
        }
        handle.closing = true;
        if !self.addresses_left.is_empty() {
            self.addresses_left.remove(&id);
        }
        if let Some(linger) = state.linger.take() {
            let _ = self.close(linger.timer);
            on_close = on_close.or(linger.on_close);
        }
        self.set_active(id, false);
        self.closing.push(id, on_close, error);
    }
}

/// Hands the `write_with` callbacks whose bytes have all been sent to the check phase.
fn written(queue: &mut WriteQueue, deferred: &mut Deferred) {
    while let Some(done) = queue.pop_done() {
        deferred.push_as(done.into_task(Ok(())), Kind::WriteDone);
    }
}

/// An `io::Error` like `err`, for each of several callbacks (`io::Error` is not `Clone`): the
/// same OS error code, or the same kind and message.
fn copy_error(err: &io::Error) -> io::Error {
    match err.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(err.kind(), err.to_string()),
    }
}
