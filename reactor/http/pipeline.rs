//! The state a server shares between its connections, their responses and its timer: for each
//! connection, the line of responses it owes (so that pipelined responses leave in request
//! order, whenever each is completed) and the timeout it is waiting on.
//!
//! A connection's parser state lives in its stream handler ([`conn`](super::conn)); what lives
//! here is what a [`Response`](super::Response) held anywhere (in a timer, in another
//! connection's callback) must reach: one [`Entry`] per connection in a slab.
//!
//! # Order
//!
//! Requests are numbered as they are parsed. The response at the head of the line (`head_seq`)
//! writes straight to the stream (or, while its connection is being read, to the batch that
//! leaves in one write at the end of the read); a response completed before its turn is kept
//! in a slot until the ones before it are done. The common case, answering in the callback,
//! never touches a slot.
//!
//! # Drain
//!
//! A response that [`write`](super::Response::write) told to stop (`Ok(false)`) may wait with
//! [`on_drain`](super::Response::on_drain), Node's `'drain'`. What it waits for depends on
//! where it writes: at the head of the line, for its stream's queue (or the batch being
//! collected for it) to fall below the high watermark, which the stream reports with
//! `on_drain`; behind the head, for its turn, since its slot is written out only once the
//! responses before it are done (and then it may still wait for the stream). The waiters are
//! kept in the connection's rare part and checked where a block can clear: the stream
//! drained, a batch was written, the line moved on. A waiter found free is handed back through
//! [`Core::defer`], never inside the call that found it. When the connection closes the
//! waiters are handed back too, and their callbacks learn that the connection is gone.
//!
//! # Timeouts
//!
//! Every connection waiting on its client waits with one of four durations: for a request
//! head, for the next piece of a body, idle between requests, or lingering after our last
//! response. All connections waiting with the same duration form a list in deadline order, as
//! Node does for its timers: appending to the tail keeps the order, and refreshing a deadline
//! moves an entry to the tail in O(1). One timer per server fires at the earliest head of the
//! four lists, marks the expired connections and wakes them ([`Core::wake`]); each decides in
//! its own `on_wake` what the expiry means (408, or a close).

use std::collections::VecDeque;
use std::mem;
use std::time::{Duration, Instant};

use slab::Slab;

use super::date::{DATE_LEN, DateCache};
use crate::event_loop::Core;
use crate::handle::{Listener, Stream, Timer};
use crate::stream::DEFAULT_HIGH_WATER;
use crate::{Error, Remote, Result};

/// Requests a connection may have in flight (parsed, not yet answered) before the server
/// stops reading from it. Bounds the memory a pipelining client can make us hold; deep enough
/// for the 16-deep pipelines of benchmarks.
pub const MAX_PIPELINE: u32 = 64;

/// How long a connection we are closing waits for its client to close (reading and dropping
/// what it still sends, so that the kernel does not answer it with a reset that would destroy
/// our last response before the client read it).
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// Past this many bytes in a slot (a response completed out of turn), `write` reports
/// backpressure.
const SLOT_HIGH_WATER: usize = 64 * 1024;

/// What a connection waits for, each with its own timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The head of a request (or of the first one), within the header timeout.
    Head,
    /// The next piece of a request body, within the body timeout.
    Body,
    /// A new request on a kept-alive connection, within the idle timeout.
    Idle,
    /// The client's close after our last response, within [`LINGER_TIMEOUT`].
    Linger,
}

const WAITS: [Wait; 4] = [Wait::Head, Wait::Body, Wait::Idle, Wait::Linger];

const NIL: u32 = u32::MAX;

/// A response completed before its turn.
struct Slot {
    bytes: Vec<u8>,
    done: bool,
    close: bool,
}

/// A response waiting until it may write again ([`Response::on_drain`](super::Response::on_drain)).
pub(crate) struct Waiter {
    /// The response's place in the line.
    pub(crate) seq: u32,
    /// Hands the response to its callback; run through [`Core::defer`].
    pub(crate) deliver: Box<dyn FnOnce(&mut Core)>,
}

/// What the server shares about one connection.
pub(crate) struct Entry {
    pub(crate) stream: Stream,
    /// The number the next parsed request gets.
    pub(crate) next_seq: u32,
    /// The request whose response is at the head of the line.
    pub(crate) head_seq: u32,
    /// What only some connections need, boxed so that an idle connection pays 8 bytes for it.
    rare: Option<Box<Rare>>,
    /// Our last response is out (or queued) and the write side is shutting down; input is
    /// dropped.
    pub(crate) closing: bool,
    /// `closing` was set while the connection's output was batched: the handler shuts the
    /// stream down after it writes the batch.
    pub(crate) shutdown_owed: bool,
    /// The client half-closed: close once the responses owed are out.
    pub(crate) peer_eof: bool,
    /// The handler holds part of the next request's head (for the timeout to apply once the
    /// line is empty).
    pub(crate) partial: bool,
    /// Reading is paused until responses drain ([`MAX_PIPELINE`], or write backpressure).
    pub(crate) blocked: bool,
    /// A timeout passed (set by the timer, handled in `on_wake`).
    pub(crate) expired: Option<Wait>,
    /// The timeout list this entry is on, its neighbours there, and its deadline.
    list: Option<Wait>,
    prev: u32,
    next: u32,
    deadline: Instant,
}

/// The part of an [`Entry`] that exists only while it is needed.
#[derive(Default)]
struct Rare {
    /// Slots for `head_seq + 1 ..`: responses completed out of turn.
    early: VecDeque<Slot>,
    /// Responses dropped unanswered: (seq, whether their head was already sent).
    abandoned: Vec<(u32, bool)>,
    /// Responses waiting until they may write again.
    waiting: Vec<Waiter>,
}

impl Entry {
    /// Records a response dropped unanswered, for the connection's handler to answer.
    pub(crate) fn abandon(&mut self, seq: u32, started: bool) {
        self.rare.get_or_insert_default().abandoned.push((seq, started));
    }

    /// Whether a response was dropped unsent since the last [`Entry::take_abandoned`]: one
    /// test, made after every read.
    pub(crate) fn has_abandoned(&self) -> bool {
        self.rare.as_ref().is_some_and(|rare| !rare.abandoned.is_empty())
    }

    /// The responses dropped unanswered since the last call.
    pub(crate) fn take_abandoned(&mut self) -> Vec<(u32, bool)> {
        let Some(rare) = self.rare.as_mut() else { return Vec::new() };
        let abandoned = std::mem::take(&mut rare.abandoned);
        self.tidy();
        abandoned
    }

    /// Frees the rare part once it holds nothing.
    fn tidy(&mut self) {
        let empty = |rare: &Rare| {
            rare.early.is_empty() && rare.abandoned.is_empty() && rare.waiting.is_empty()
        };
        if self.rare.as_deref().is_some_and(empty) {
            self.rare = None;
        }
    }

    /// Requests parsed and not yet answered.
    pub(crate) fn in_flight(&self) -> u32 {
        self.next_seq.wrapping_sub(self.head_seq)
    }
}

#[derive(Clone, Copy)]
struct List {
    first: u32,
    last: u32,
}

/// Everything a server's connections share, behind one `RefCell` in
/// [`Shared`](super::server::Shared). Never borrowed while user code runs.
pub(crate) struct State {
    pub(crate) conns: Slab<Entry>,
    lists: [List; 4],
    durations: [Duration; 4],
    /// The server's one timeout timer, and the deadline it is armed for.
    timer: Timer,
    armed: Option<Instant>,
    /// The connection whose output is being batched (its read is being processed), and the
    /// batch.
    pub(crate) batching: Option<Stream>,
    pub(crate) batch: Vec<u8>,
    /// Reused for a response written outside a batch.
    scratch: Vec<u8>,
    date: DateCache,
    pub(crate) shutting_down: bool,
    pub(crate) listeners: Vec<Listener>,
    /// Wakes a connection whose response was dropped where no `Core` was at hand.
    pub(crate) remote: Remote,
}

impl State {
    /// `timer` fires [`State::expire`]; `remote` must not keep the loop alive (nor `timer`):
    /// the connections do that.
    pub(crate) fn new(timeouts: [Duration; 3], timer: Timer, remote: Remote) -> Self {
        let [header, body, idle] = timeouts;
        State {
            conns: Slab::new(),
            lists: [List { first: NIL, last: NIL }; 4],
            durations: [header, body, idle, LINGER_TIMEOUT],
            timer,
            armed: None,
            batching: None,
            batch: Vec::new(),
            scratch: Vec::new(),
            date: DateCache::new(),
            shutting_down: false,
            listeners: Vec::new(),
            remote,
        }
    }

    /// A new connection's entry; returns its key.
    pub(crate) fn insert(&mut self, stream: Stream, now: Instant) -> u32 {
        self.conns.insert(Entry {
            stream,
            next_seq: 0,
            head_seq: 0,
            rare: None,
            closing: false,
            shutdown_owed: false,
            peer_eof: false,
            partial: false,
            blocked: false,
            expired: None,
            list: None,
            prev: NIL,
            next: NIL,
            deadline: now,
        }) as u32
    }

    /// Removes a closed connection's entry. Returns its drain waiters, to be handed back
    /// (or dropped) by the caller once the state is no longer borrowed: they hold user code.
    pub(crate) fn remove(&mut self, key: u32) -> Vec<Waiter> {
        self.unlink(key);
        let rare = self.conns.try_remove(key as usize).and_then(|entry| entry.rare);
        rare.map(|rare| rare.waiting).unwrap_or_default()
    }

    /// The drain waiters of connection `key`, taken out of it (see [`State::remove`]).
    pub(crate) fn take_waiters(&mut self, key: u32, stream: Stream) -> Vec<Waiter> {
        let Ok(entry) = self.entry(key, stream) else { return Vec::new() };
        let Some(rare) = entry.rare.as_mut() else { return Vec::new() };
        let waiting = mem::take(&mut rare.waiting);
        entry.tidy();
        waiting
    }

    /// The entry of `key` if it still belongs to `stream` (keys are reused).
    pub(crate) fn entry(&mut self, key: u32, stream: Stream) -> Result<&mut Entry> {
        match self.conns.get_mut(key as usize) {
            Some(entry) if entry.stream == stream => Ok(entry),
            _ => Err(Error::Closed(stream.id())),
        }
    }

    /// The cached `Date` value for loop time `now`.
    pub(crate) fn date(&mut self, now: Instant) -> [u8; DATE_LEN] {
        *self.date.get(now)
    }

    // -----------------------------------------------------------------------------------------
    // The line of responses.

    /// Appends output for response `seq` of connection `key`: to the stream (or the batch) if
    /// it is at the head of the line, else to its slot. `Ok(false)` means backpressure.
    pub(crate) fn emit(
        &mut self,
        core: &mut Core,
        key: u32,
        stream: Stream,
        seq: u32,
        fill: impl FnOnce(&mut Vec<u8>, &[u8; DATE_LEN]),
    ) -> Result<bool> {
        let date = self.date(core.now());
        let entry = self.entry(key, stream)?;
        let ahead = seq.wrapping_sub(entry.head_seq);
        if ahead == 0 {
            return self.send(core, stream, |out| fill(out, &date));
        }
        let slot = slot(entry, ahead);
        fill(&mut slot.bytes, &date);
        Ok(slot.bytes.len() < SLOT_HIGH_WATER)
    }

    /// Marks response `seq` complete; `close`: the connection closes after it. Moves the line
    /// on as far as completed responses allow.
    pub(crate) fn finish(
        &mut self,
        core: &mut Core,
        key: u32,
        stream: Stream,
        seq: u32,
        close: bool,
    ) -> Result<()> {
        let entry = self.entry(key, stream)?;
        let ahead = seq.wrapping_sub(entry.head_seq);
        if ahead != 0 {
            let slot = slot(entry, ahead);
            (slot.done, slot.close) = (true, close);
            return Ok(());
        }
        let mut close = close;
        loop {
            let entry = self.entry(key, stream)?;
            entry.head_seq = entry.head_seq.wrapping_add(1);
            if close {
                if let Some(rare) = entry.rare.as_mut() {
                    rare.early.clear();
                }
                entry.tidy();
                self.start_close(core, key, stream);
                // Responses after this one will never be sent: tell those that wait.
                self.wake_drained(core, key, stream);
                return Ok(());
            }
            // The next response in line: send what it has so far.
            let Some(next) = entry.rare.as_mut().and_then(|rare| rare.early.pop_front()) else {
                break;
            };
            entry.tidy();
            self.send(core, stream, |out| out.extend_from_slice(&next.bytes))?;
            if !next.done {
                // Still streaming: it is the head of the line now, and writes to the stream.
                self.wake_drained(core, key, stream);
                return Ok(());
            }
            close = next.close;
        }
        let now = core.now();
        let shutting_down = self.shutting_down;
        let entry = self.entry(key, stream)?;
        // Nothing more is owed, and nothing more will be asked: the client half-closed, or
        // the server is shutting down and no next request has begun to arrive.
        let last = entry.peer_eof || (shutting_down && !entry.partial);
        if entry.in_flight() == 0 && last {
            self.start_close(core, key, stream);
        } else if entry.in_flight() == 0 && entry.list.is_none() {
            let wait = if entry.partial { Wait::Head } else { Wait::Idle };
            self.wait(core, key, wait, false, now);
        }
        let entry = self.entry(key, stream)?;
        if entry.blocked && entry.in_flight() < MAX_PIPELINE {
            let _ = core.wake(stream);
        }
        // The head of the line has moved on: a response that waited for its turn may be free.
        self.wake_drained(core, key, stream);
        Ok(())
    }

    /// Output for the head of the line: into the batch if this connection's read is being
    /// processed, else straight to the stream.
    fn send(
        &mut self,
        core: &mut Core,
        stream: Stream,
        fill: impl FnOnce(&mut Vec<u8>),
    ) -> Result<bool> {
        if self.batching == Some(stream) {
            fill(&mut self.batch);
            return Ok(self.batch.len() <= DEFAULT_HIGH_WATER);
        }
        self.scratch.clear();
        fill(&mut self.scratch);
        core.write(stream, &self.scratch)
    }

    /// Our last response is complete: half-close once it is out, and linger for the client's
    /// close.
    pub(crate) fn start_close(&mut self, core: &mut Core, key: u32, stream: Stream) {
        let batching = self.batching == Some(stream);
        let Ok(entry) = self.entry(key, stream) else { return };
        if entry.closing {
            return;
        }
        entry.closing = true;
        if batching {
            entry.shutdown_owed = true;
        } else {
            let _ = core.shutdown(stream);
        }
        let now = core.now();
        self.wait(core, key, Wait::Linger, true, now);
    }

    // -----------------------------------------------------------------------------------------
    // Drain.

    /// Hands `waiter` back at once (deferred) if its response may write now, else keeps it
    /// until [`State::wake_drained`] finds it free.
    pub(crate) fn wait_drain(&mut self, core: &mut Core, key: u32, stream: Stream, waiter: Waiter) {
        if !self.blocked(core, key, stream, waiter.seq) {
            return core.defer(waiter.deliver);
        }
        match self.entry(key, stream) {
            Ok(entry) => entry.rare.get_or_insert_default().waiting.push(waiter),
            Err(_) => core.defer(waiter.deliver),
        }
    }

    /// Hands back (deferred) every waiter of connection `key` whose response may write again.
    /// Called where a block can clear: the stream drained, a batch was written, the line moved
    /// on. Costs one test on a connection with nothing waiting.
    pub(crate) fn wake_drained(&mut self, core: &mut Core, key: u32, stream: Stream) {
        let waiting = match self.entry(key, stream) {
            Ok(Entry { rare: Some(rare), .. }) if !rare.waiting.is_empty() => {
                mem::take(&mut rare.waiting)
            }
            _ => return,
        };
        let mut still = Vec::new();
        for waiter in waiting {
            if self.blocked(core, key, stream, waiter.seq) {
                still.push(waiter);
            } else {
                core.defer(waiter.deliver);
            }
        }
        if let Ok(entry) = self.entry(key, stream) {
            entry.rare.get_or_insert_default().waiting = still;
            entry.tidy();
        }
    }

    /// Whether response `seq` of connection `key` must wait before it writes more. At the
    /// head of the line: while the stream's queue is past its high watermark (an empty write
    /// asks, and makes the stream owe an `on_drain`), or, while the connection's read is being
    /// processed, the batch is. Behind the head: while its slot holds [`SLOT_HIGH_WATER`]
    /// bytes or more; only the line moving on empties it. A connection that is gone or
    /// closing blocks nobody: its waiters are handed back and learn it.
    fn blocked(&mut self, core: &mut Core, key: u32, stream: Stream, seq: u32) -> bool {
        let batch = (self.batching == Some(stream)).then_some(self.batch.len());
        let entry = match self.entry(key, stream) {
            Ok(entry) if !entry.closing => entry,
            _ => return false,
        };
        let ahead = seq.wrapping_sub(entry.head_seq);
        if ahead != 0 {
            let early = entry.rare.as_ref().and_then(|rare| rare.early.get(ahead as usize - 1));
            return early.is_some_and(|slot| slot.bytes.len() >= SLOT_HIGH_WATER);
        }
        match batch {
            Some(len) => len > DEFAULT_HIGH_WATER,
            None => matches!(core.write(stream, &[]), Ok(false)),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Timeouts.

    /// Puts connection `key` on the list for `wait`. If it is on that list already, its
    /// deadline moves to `now` + the timeout only with `refresh`.
    pub(crate) fn wait(
        &mut self,
        core: &mut Core,
        key: u32,
        wait: Wait,
        refresh: bool,
        now: Instant,
    ) {
        let Some(entry) = self.conns.get(key as usize) else { return };
        if entry.list == Some(wait) && !refresh {
            return;
        }
        self.unlink(key);
        let deadline = now + self.durations[wait as usize];
        let list = &mut self.lists[wait as usize];
        let last = list.last;
        if last == NIL {
            list.first = key;
        }
        list.last = key;
        if last != NIL {
            self.conns[last as usize].next = key;
        }
        let entry = &mut self.conns[key as usize];
        (entry.list, entry.prev, entry.next, entry.deadline) = (Some(wait), last, NIL, deadline);
        if self.armed.is_none_or(|armed| deadline < armed) {
            self.arm(core, deadline, now);
        }
    }

    /// Takes connection `key` off its timeout list: it waits for nothing the client owes.
    pub(crate) fn unlink(&mut self, key: u32) {
        let Some(entry) = self.conns.get_mut(key as usize) else { return };
        let Some(wait) = entry.list.take() else { return };
        let (prev, next) = (entry.prev, entry.next);
        match prev {
            NIL => self.lists[wait as usize].first = next,
            prev => self.conns[prev as usize].next = next,
        }
        match next {
            NIL => self.lists[wait as usize].last = prev,
            next => self.conns[next as usize].prev = prev,
        }
    }

    fn arm(&mut self, core: &mut Core, deadline: Instant, now: Instant) {
        let _ =
            core.timer_start(self.timer, deadline.saturating_duration_since(now), Duration::ZERO);
        self.armed = Some(deadline);
    }

    /// The timer fired: mark and wake every connection whose deadline has passed, then arm
    /// for the earliest deadline left.
    pub(crate) fn expire(&mut self, core: &mut Core) {
        let now = core.now();
        self.armed = None;
        let mut earliest: Option<Instant> = None;
        for wait in WAITS {
            loop {
                let first = self.lists[wait as usize].first;
                if first == NIL {
                    break;
                }
                let entry = &self.conns[first as usize];
                if entry.deadline > now {
                    earliest = Some(earliest.map_or(entry.deadline, |e| e.min(entry.deadline)));
                    break;
                }
                let stream = entry.stream;
                self.unlink(first);
                self.conns[first as usize].expired = Some(wait);
                let _ = core.wake(stream);
            }
        }
        if let Some(deadline) = earliest {
            self.arm(core, deadline, now);
        }
    }
}

/// The slot of the response `ahead` places behind the head of the line.
fn slot(entry: &mut Entry, ahead: u32) -> &mut Slot {
    let early = &mut entry.rare.get_or_insert_default().early;
    while early.len() < ahead as usize {
        early.push_back(Slot { bytes: Vec::new(), done: false, close: false });
    }
    &mut early[ahead as usize - 1]
}
