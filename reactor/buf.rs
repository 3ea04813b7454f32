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

use std::collections::VecDeque;
use std::io::IoSlice;

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

    /// Drops the first `n` unsent bytes: the kernel took them.
    pub(crate) fn consume(&mut self, mut n: usize) {
        debug_assert!(n <= self.len);
        self.len -= n;
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
}
