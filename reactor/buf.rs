//! The write queue: output a stream could not send yet.
//!
//! A write first goes straight to the socket; only the bytes the kernel did not take are
//! copied here, and the queue is flushed with one `writev` per writable event. A stream owns a
//! queue only while it has unsent output: an idle connection has none (the `Option<Box<_>>` in
//! its state is one null pointer).
//!
//! The queue is a list of chunks. Small writes are appended to the last chunk while it has
//! room, so a burst of tiny writes costs one allocation and one iovec, not one each; a large
//! write becomes a chunk of its own without being split.
//!
//! # Completions
//!
//! A write made with [`Core::write_with`] leaves its callback here, tagged with the offset of
//! the write's last byte counted from the queue's creation (`consumed` counts the same way).
//! Once `consumed` reaches that offset, the kernel has taken every byte of the write and of
//! those before it, and [`WriteQueue::pop_done`] hands the callback back, oldest first. A
//! queue is freed only when it is empty, and then every callback it held is due: no callback
//! outlives its queue except through `into_done`, when the stream ends with bytes unsent.
//! Streams that never use `write_with` pay an empty `VecDeque` in a queue that exists only
//! while output is pending, and one addition per `consume`.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::panic::Location;

use crate::Result;
use crate::dispatch::Task;
use crate::event_loop::Core;
use crate::trace::Cause;

/// Below this size a new chunk is given extra capacity, so the small writes that follow can
/// join it instead of allocating chunks of their own.
const MIN_CHUNK: usize = 4 * 1024;

/// How many chunks one `writev` hands the kernel. Linux allows 1024 (`IOV_MAX`); 64 chunks
/// already exceed a socket's send buffer in all but pathological cases, and the array lives on
/// the stack.
pub(crate) const MAX_IOVECS: usize = 64;

/// Unsent bytes, in order.
#[derive(Default)]
pub(crate) struct WriteQueue {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes at the front of `chunks[0]` that have already been sent.
    sent: usize,
    /// Unsent bytes in all chunks.
    len: usize,
    /// Bytes sent since the queue was created: the clock the completions' offsets are read on.
    consumed: u64,
    /// `write_with` callbacks waiting for their bytes, oldest first, each with the value of
    /// `consumed` at which it is due.
    done: VecDeque<(u64, OnWritten)>,
}

/// What [`Core::write_with`] calls back: the loop and the write's outcome.
pub(crate) type WrittenFn = Box<dyn FnOnce(&mut Core, Result<()>)>;

/// The callback of a [`Core::write_with`], waiting for the outcome of its write.
///
/// Like pool work's `done`, it is not a [`Task`] yet: the outcome it will be called with is
/// known only when the write finishes, one way or the other. Its site and cause are recorded
/// when the write is made, as [`Core::task`] records them.
pub(crate) struct OnWritten {
    callback: WrittenFn,
    site: &'static Location<'static>,
    cause: Cause,
}

impl OnWritten {
    pub(crate) fn new(callback: WrittenFn, site: &'static Location<'static>, cause: Cause) -> Self {
        OnWritten { callback, site, cause }
    }

    /// The callback, ready to run with `outcome`.
    pub(crate) fn into_task(self, outcome: Result<()>) -> Task {
        let OnWritten { callback, site, cause } = self;
        Task { run: Box::new(move |core: &mut Core| callback(core, outcome)), site, cause }
    }
}

impl WriteQueue {
    /// Unsent bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `data`.
    pub(crate) fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.len += data.len();
        if let Some(last) = self.chunks.back_mut() {
            if last.capacity() - last.len() >= data.len() {
                last.extend_from_slice(data);
                return;
            }
        }
        let mut chunk = Vec::with_capacity(data.len().max(MIN_CHUNK));
        chunk.extend_from_slice(data);
        self.chunks.push_back(chunk);
    }

    /// Fills `slices` with the unsent bytes, front first, and returns how many it filled.
    pub(crate) fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for (i, (slot, chunk)) in slices.iter_mut().zip(&self.chunks).enumerate() {
            let skip = if i == 0 { self.sent } else { 0 };
            *slot = IoSlice::new(&chunk[skip..]);
            filled += 1;
        }
        filled
    }

    /// Registers `on_written`, due once every byte pushed so far has been consumed.
    pub(crate) fn push_done(&mut self, on_written: OnWritten) {
        self.done.push_back((self.consumed + self.len as u64, on_written));
    }

    /// The oldest completion whose bytes have all been consumed, if any.
    pub(crate) fn pop_done(&mut self) -> Option<OnWritten> {
        match self.done.front() {
            Some(&(end, _)) if end <= self.consumed => self.done.pop_front().map(|(_, done)| done),
            _ => None,
        }
    }

    /// The completions still waiting, oldest first: the stream ended before their bytes were
    /// sent.
    pub(crate) fn into_done(self) -> impl Iterator<Item = OnWritten> {
        self.done.into_iter().map(|(_, done)| done)
    }

    /// Drops the first `n` unsent bytes: the kernel took them.
    pub(crate) fn consume(&mut self, mut n: usize) {
        debug_assert!(n <= self.len);
        self.len -= n;
        self.consumed += n as u64;
        while n > 0 {
            let front = self.chunks.front().expect("consumed more than was queued");
            let left = front.len() - self.sent;
            if n < left {
                self.sent += n;
                return;
            }
            n -= left;
            self.sent = 0;
            self.chunks.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(queue: &WriteQueue) -> Vec<u8> {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let n = queue.io_slices(&mut slices);
        slices[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn small_writes_share_a_chunk_and_large_ones_do_not_split() {
        let mut queue = WriteQueue::default();
        queue.push(b"ab");
        queue.push(b"cd");
        assert_eq!(queue.chunks.len(), 1);
        queue.push(&[b'x'; MIN_CHUNK * 2]);
        assert_eq!(queue.chunks.len(), 2);
        assert_eq!(queue.len(), 4 + MIN_CHUNK * 2);
        assert_eq!(&contents(&queue)[..5], b"abcdx");
    }

    #[test]
    fn consume_moves_through_and_across_chunks() {
        let mut queue = WriteQueue::default();
        queue.push(b"hello");
        queue.push(&[b'.'; MIN_CHUNK]);
        queue.push(b"world");
        queue.consume(3);
        assert_eq!(&contents(&queue)[..2], b"lo");
        queue.consume(2 + MIN_CHUNK);
        assert_eq!(contents(&queue), b"world");
        queue.consume(5);
        assert!(queue.is_empty());
        assert!(queue.chunks.is_empty());
    }

    /// A completion told apart from others by its site, the line that made it. It is never
    /// run.
    #[track_caller]
    fn completion() -> (OnWritten, u32) {
        let site = Location::caller();
        (OnWritten::new(Box::new(|_, _| unreachable!()), site, None), site.line())
    }

    fn line(done: Option<OnWritten>) -> Option<u32> {
        done.map(|done| done.site.line())
    }

    #[test]
    fn a_completion_is_due_once_its_last_byte_and_all_before_it_are_consumed() {
        let mut queue = WriteQueue::default();
        queue.push(b"hello");
        let (first, first_line) = completion();
        queue.push_done(first);
        queue.push(&[b'.'; MIN_CHUNK]);
        let (second, second_line) = completion();
        queue.push_done(second);
        // Nothing pushed between: due at the same offset, and still in order.
        let (third, third_line) = completion();
        queue.push_done(third);
        queue.push(b"tail");
        let (fourth, fourth_line) = completion();
        queue.push_done(fourth);

        assert!(line(queue.pop_done()).is_none());
        queue.consume(4);
        assert!(line(queue.pop_done()).is_none(), "one byte of the first write is unsent");
        queue.consume(1);
        assert_eq!(line(queue.pop_done()), Some(first_line));
        assert!(line(queue.pop_done()).is_none());
        queue.consume(MIN_CHUNK);
        assert_eq!(line(queue.pop_done()), Some(second_line));
        assert_eq!(line(queue.pop_done()), Some(third_line));
        assert!(line(queue.pop_done()).is_none());
        queue.consume(3);
        let left: Vec<u32> = queue.into_done().map(|done| done.site.line()).collect();
        assert_eq!(left, [fourth_line], "the unsent write's completion is left");
    }
}
