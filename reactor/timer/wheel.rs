//! A hierarchical timing wheel: the queue that holds the loop's armed timers.
//!
//! # The problem
//!
//! An event loop needs three things from its timer queue: *arm* a timer (insert), *cancel* it
//! (remove), and, once per iteration, *fire* every timer whose deadline has passed, earliest
//! first. Servers arm and cancel far more timers than they ever fire (every request arms a
//! timeout and almost always cancels it), so arming and cancelling must be cheap.
//!
//! A binary heap (libuv's choice) does all three in O(log n). A timing wheel does arm and
//! cancel in O(1) by not ordering timers against each other until they are about to fire.
//!
//! # The idea
//!
//! Picture a clock with 64 slots, one per millisecond: a timer due in 5 ms goes into the slot
//! 5 ahead of the hand. That only covers 64 ms, so we stack *levels*, each with 64 slots,
//! each slot 64 times wider than a slot of the level below:
//!
//! | level | one slot spans  | the level spans                       |
//! |-------|-----------------|---------------------------------------|
//! | 0     | 1 ms            | 64 ms                                 |
//! | 1     | 64 ms           | ~4.1 s                                |
//! | 2     | ~4.1 s          | ~4.4 min                              |
//! | 3     | ~4.4 min        | ~4.7 h                                |
//! | 4     | ~4.7 h          | ~12.4 days                            |
//! | 5     | ~12.4 days      | ~2.2 years                            |
//! | 6     | ~2.2 years      | ~139 years                            |
//! | 7     | ~139 years      | ~8,900 years                          |
//! | 8     | ~8,900 years    | ~570,000 years                        |
//! | 9     | ~570,000 years  | ~36.5 million years                   |
//! | 10    | ~36.5 M years   | all of `u64` (~585 M years, 16 slots) |
//!
//! Eleven levels of 6 bits cover 66 ≥ 64 bits, so *every* `u64` deadline, `u64::MAX`
//! included, has a home: there is no overflow list to special-case. (tokio stops at 6 levels
//! and clamps longer timeouts to about 2 years; the five extra levels here cost about 2 KiB
//! each and, while empty, one bitmap test each in [`Wheel::next_wakeup`].)
//!
//! Read the deadline and the wheel's current time, its *cursor*, as numbers written in base
//! 64: digit `L` of a time is `(time >> 6L) & 63`. An entry lives at the level of the highest
//! digit in which its deadline differs from the cursor, in the slot named by that digit of the
//! deadline. A deadline 5 ms away usually differs only in digit 0, so it lands in level 0; one
//! 3 hours away differs in digit 3, so it lands in level 3, in a slot that spans ~4.4 minutes.
//!
//! As the cursor moves forward it eventually reaches the start of that level-3 slot. Then the
//! slot is *cascaded*: its entries are taken out and placed again relative to the new cursor,
//! which puts them on lower levels, in finer slots. A level-0 slot holds entries with one
//! single deadline, so when the cursor reaches a level-0 slot its entries are simply due.
//!
//! # Data structures
//!
//! - Every entry lives in one `Vec` arena and is named by its `u32` index. Free cells form a
//!   linked free list, so indices are reused and the arena never shrinks below its peak.
//! - Each slot is an array (`Vec<u32>`) of entry indices, in insertion order, and every entry
//!   records its `position` in that array. Removing an entry overwrites its position with a
//!   *hole* (`NIL`), so the others keep their positions: O(1). When holes outnumber entries
//!   (by at least 16) the array is *compacted*: holes squeezed out, positions rewritten. That
//!   costs O(1) per removal when spread over the removals that made the holes, and keeps an
//!   array at most about twice as long as its number of entries.
//! - Each level keeps a 64-bit `occupied` bitmap, bit `s` set when slot `s` has an entry.
//!   Finding the next non-empty slot at or after the cursor is a mask and a `trailing_zeros`.
//! - A deadline earlier than the cursor (a timer armed "in the past") cannot be placed in the
//!   wheel at all. Such entries go to `overdue`, a small `BTreeMap` ordered by
//!   `(deadline, seq)`. The loop arms timers at `now + timeout ≥ cursor`, so this map is
//!   almost always empty and its O(log n) cost rarely paid.
//!
//! Why arrays and not intrusive doubly-linked lists, the textbook choice (tokio, Linux)?
//! Both are O(1), but cascading walks every entry of a slot, and entries armed at random
//! times are scattered through a large arena, so each one is a cache miss. In a linked list
//! the address of the next entry is only known once the current one has been loaded, so the
//! misses happen one after another (about 170 ns each on the machine this was measured on).
//! An array lists the next indices up front, and `cascade` first loads the deadlines of a
//! batch of 32 entries, loads that do not depend on each other, so the CPU overlaps their
//! misses, and only then moves them. In `cargo bench --bench timers` on that machine, firing
//! 1,000,000 timers took about 350 ms with linked lists, about 180 ms with arrays, and about
//! 80 ms with arrays and batched loads.
//!
//! An entry does not record its level or slot: they are a function of its deadline and the
//! cursor (invariant 2 below), recomputed when it must be removed. That keeps an entry at 24
//! bytes for a 4-byte value and 32 bytes for an 8-byte one, plus 4 bytes in its slot's array.
//!
//! # Invariants
//!
//! 1. `cursor <= now`, the largest time passed to [`Wheel::pop_expired`] so far. The cursor
//!    never moves past a time that still has entries: every entry with a deadline below the
//!    cursor was inserted after the cursor had passed it.
//! 2. An entry with `deadline < cursor` is in `overdue`. Any other entry is in slot
//!    `digit_L(deadline)` of level `L = level_for(cursor, deadline)`, at index `position` of
//!    that slot's array.
//! 3. On level 0 the cursor's own slot holds exactly the entries with `deadline == cursor`;
//!    slots before it are empty. On a higher level the cursor's own slot and those before it
//!    are empty (they were cascaded when the cursor reached them).
//! 4. Every slot array is sorted by sequence number. Arrays only grow at the end, and a new
//!    entry always has a larger `seq` than those already there: a direct insert has the
//!    largest `seq` ever handed out, and a cascade moves a whole sorted array, in order, into
//!    slots of a span the cursor has only just entered, which are therefore still empty.
//!    Holes and compaction keep the order of the others. `push` checks this in debug builds.
//!
//! Invariant 4 is what makes timers with equal deadlines fire in the order they were armed,
//! without ever sorting: when a level-0 slot comes due, its first entry has the smallest `seq`.
//!
//! # Firing
//!
//! [`Wheel::pop_expired`] returns overdue entries first (they are the earliest), then the
//! first entry of the cursor's level-0 slot. When both are empty it looks for the next
//! non-empty slot, lowest level first: any non-empty slot on level `L` starts before every
//! non-empty slot on level `L + 1`. If that slot starts after `now`, nothing is due and the
//! cursor jumps to `now`. That is safe: no slot starts in between, so every entry still
//! differs from the new cursor in the same highest digit, and invariant 2 keeps holding.
//! Otherwise the cursor moves to the slot's start and the slot either comes due (level 0) or
//! is cascaded (higher levels).
//!
//! # Complexity
//!
//! | operation       | cost                                                              |
//! |-----------------|-------------------------------------------------------------------|
//! | `insert`        | O(1) amortized; O(log n) when the deadline is before the cursor   |
//! | `remove`        | O(1) amortized; O(log n) when the deadline is before the cursor   |
//! | `pop_expired`   | O(levels) to find a slot, plus cascades                           |
//! | `next_wakeup`   | O(levels)                                                         |
//! | cascading       | each entry moves down at most once per level: O(levels) per entry |
//!
//! `levels` is the constant 11, and entries armed a few seconds ahead start on level 1 or 2,
//! so in practice an entry is moved once or twice before it fires.
//!
//! # The price: early wakeups
//!
//! [`Wheel::next_wakeup`] reports the *start* of the next non-empty slot, which is earlier
//! than the deadlines inside it when that slot is above level 0. A lone timer 3 hours away
//! makes the loop wake up once per level it is cascaded through (levels 3, 2 and 1) before
//! the wakeup that fires it; those wakeups fire nothing. With many timers the cost is shared,
//! since one cascade moves a whole slot. This keeps the promise the loop relies on: a call
//! to `pop_expired` at the reported time either returns an entry or moves `next_wakeup`
//! strictly later, so the loop never spins.

// The loop uses only part of this API, and the benchmarks include this file as a module of
// their own, so not every item is used in every build.
#![allow(dead_code)]

use std::collections::BTreeMap;

/// Bits of a time consumed by one level: each level has `2^6 = 64` slots.
const LEVEL_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << LEVEL_BITS;
/// Mask that extracts one base-64 digit.
const DIGIT_MASK: u64 = SLOTS as u64 - 1;
/// Enough levels for 64-bit time: `11 * 6 = 66 >= 64`.
const LEVELS: usize = 11;
/// A hole in a slot array, and the end of the free list.
const NIL: u32 = u32::MAX;
/// The `seq` of a free arena cell. No insert ever gets it: that would take 2^64 inserts.
const VACANT: u64 = u64::MAX;
/// Compaction leaves small slot arrays alone: with fewer holes than this it is not worth it.
const MIN_HOLES_TO_COMPACT: usize = 16;
/// Entries whose deadlines a cascade loads before it moves any of them.
const CASCADE_BATCH: usize = 32;
/// An emptied slot array keeps its buffer for reuse, up to this many indices (1 KiB).
const RETAINED_CAPACITY: usize = 256;

/// Opaque handle to a queued entry, returned by [`Wheel::insert`].
///
/// A key is an arena index plus the entry's sequence number. Sequence numbers are never
/// reused, so a stale key (its entry already removed or fired, the cell reused by a later
/// insert) no longer matches and [`Wheel::remove`] rejects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    index: u32,
    seq: u64,
}

/// One arena cell: a queued entry, or a free cell when `seq == VACANT`.
#[derive(Clone, Copy)]
struct Entry<T> {
    deadline: u64,
    /// Insertion order; breaks ties between equal deadlines. `VACANT` for a free cell.
    seq: u64,
    /// Index of this entry in its slot's array. In a free cell: the next free cell, or `NIL`.
    position: u32,
    value: T,
}

/// A slot: the arena indices of its entries, in insertion (= `seq`) order.
struct Slot {
    /// Entry indices; a removed entry leaves a hole (`NIL`) so the others keep their places.
    indices: Vec<u32>,
    /// Everything before this position is a hole (entries popped from the front).
    front: u32,
    /// Number of entries, i.e. of indices that are not holes.
    live: u32,
}

impl Slot {
    const EMPTY: Slot = Slot { indices: Vec::new(), front: 0, live: 0 };

    /// Forgets every index, keeping a modest buffer for the next entries.
    fn clear(&mut self) {
        self.indices.clear();
        self.indices.shrink_to(RETAINED_CAPACITY);
        self.front = 0;
        self.live = 0;
    }
}

/// One level of the wheel: 64 slots and a bitmap of the non-empty ones.
struct Level {
    /// Bit `s` is set iff `slots[s]` has an entry.
    occupied: u64,
    slots: [Slot; SLOTS],
}

impl Level {
    const EMPTY: Level = Level { occupied: 0, slots: [Slot::EMPTY; SLOTS] };
}

/// The next non-empty slot: where it is and the time at which it starts.
struct NextSlot {
    level: usize,
    slot: usize,
    start: u64,
}

/// A hierarchical timing wheel of values of type `T`, ordered by `(deadline, seq)`.
///
/// See the [module documentation](self) for the algorithm.
pub struct Wheel<T> {
    /// All entries, queued or free, addressed by `u32` index.
    entries: Vec<Entry<T>>,
    /// Head of the free list of `entries`, or `NIL`.
    free: u32,
    /// Number of queued entries.
    len: usize,
    /// Sequence number of the next insert.
    next_seq: u64,
    /// The wheel's current time: where the hand of every level points.
    cursor: u64,
    /// The largest `now` passed to `pop_expired` so far.
    now: u64,
    /// The levels, boxed so that a `Wheel` itself stays small (they take ~22 KiB).
    levels: Box<[Level; LEVELS]>,
    /// Entries whose deadline was already behind the cursor when they were inserted.
    overdue: BTreeMap<(u64, u64), u32>,
}

impl<T: Copy> Default for Wheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy> Wheel<T> {
    /// Creates an empty wheel whose cursor is at time 0.
    pub fn new() -> Self {
        Wheel {
            entries: Vec::new(),
            free: NIL,
            len: 0,
            next_seq: 0,
            cursor: 0,
            now: 0,
            levels: Box::new([Level::EMPTY; LEVELS]),
            overdue: BTreeMap::new(),
        }
    }

    /// Number of queued entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The sequence number the next [`insert`](Self::insert) will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Queues `value` to expire at `deadline` and returns the key that can remove it.
    ///
    /// Each insert gets the next sequence number (0, 1, 2, ...). Any deadline is accepted:
    /// one that has already passed is due at once, and one far in the future (up to
    /// `u64::MAX`) simply starts on a high level. O(1), or O(log n) for a deadline that is
    /// already behind the cursor.
    pub fn insert(&mut self, deadline: u64, value: T) -> Key {
        let seq = self.next_seq;
        self.next_seq += 1;
        let index = self.allocate(Entry { deadline, seq, position: NIL, value });
        if deadline < self.cursor {
            self.overdue.insert((deadline, seq), index);
        } else {
            self.push(index, deadline);
        }
        self.len += 1;
        Key { index, seq }
    }

    /// Removes the entry named by `key` and returns its value, or `None` if the key is stale
    /// (its entry was already removed or popped). O(1), or O(log n) for an overdue entry.
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let entry = self.entries.get(key.index as usize)?;
        if entry.seq != key.seq {
            return None;
        }
        if entry.deadline < self.cursor {
            self.overdue.remove(&(entry.deadline, entry.seq));
        } else {
            self.unlink(key.index);
        }
        self.len -= 1;
        Some(self.release(key.index))
    }

    /// A time at which [`pop_expired`](Self::pop_expired) should be called next, or `None`
    /// when the wheel is empty.
    ///
    /// Never later than the earliest deadline, but possibly earlier: for a slot above level
    /// 0 it is the slot's start. Progress still holds: a call to `pop_expired(now, limit)`
    /// with `now >= next_wakeup()` and `limit >= next_seq()` either returns an entry or makes
    /// `next_wakeup()` strictly later than `now`.
    pub fn next_wakeup(&self) -> Option<u64> {
        if let Some((&(deadline, _), _)) = self.overdue.first_key_value() {
            return Some(deadline);
        }
        self.next_slot().map(|next| next.start)
    }

    /// Removes and returns the earliest entry, `(deadline, value)`, if it is due.
    ///
    /// The earliest entry is the one with the smallest `(deadline, seq)`. It is returned if
    /// `deadline <= now` and `seq < seq_limit`; otherwise nothing is returned. `now` never
    /// goes backwards: a smaller `now` than in an earlier call counts as that earlier one.
    ///
    /// The loop takes `seq_limit = next_seq()` before it starts firing, so that a timer
    /// armed by a timer callback waits for the next iteration even if it is already due.
    pub fn pop_expired(&mut self, now: u64, seq_limit: u64) -> Option<(u64, T)> {
        self.now = self.now.max(now);

        // Overdue entries have deadlines behind the cursor, so they come before all others.
        if let Some((&(deadline, seq), &index)) = self.overdue.first_key_value() {
            if seq >= seq_limit {
                return None;
            }
            self.overdue.pop_first();
            self.len -= 1;
            return Some((deadline, self.release(index)));
        }

        loop {
            let Some(next) = self.next_slot() else {
                self.cursor = self.now;
                return None;
            };
            if next.start > self.now {
                // Nothing is due. No slot starts before `next.start`, so the cursor may jump
                // to `now` without skipping any entry (invariant 1).
                self.cursor = self.now;
                return None;
            }
            self.cursor = next.start;
            if next.level > 0 {
                self.cascade(next.level, next.slot);
                continue;
            }
            // A level-0 slot holds a single deadline; its first entry has the smallest seq.
            let first = self.first_in_slot(next.slot);
            let entry = self.entries[first as usize];
            if entry.seq >= seq_limit {
                return None;
            }
            self.unlink(first);
            self.len -= 1;
            return Some((entry.deadline, self.release(first)));
        }
    }

    /// Finds the first non-empty slot at or after the cursor, lowest level first.
    fn next_slot(&self) -> Option<NextSlot> {
        for (level, Level { occupied, .. }) in self.levels.iter().enumerate() {
            let cursor_slot = digit(self.cursor, level);
            debug_assert_eq!(
                occupied & !(u64::MAX << cursor_slot),
                0,
                "slots behind the cursor are empty"
            );
            let ahead = occupied & (u64::MAX << cursor_slot);
            if ahead != 0 {
                let slot = ahead.trailing_zeros() as usize;
                return Some(NextSlot { level, slot, start: slot_start(self.cursor, level, slot) });
            }
        }
        None
    }

    /// The first entry of a non-empty level-0 slot, skipping the holes at its front.
    fn first_in_slot(&mut self, slot: usize) -> u32 {
        let array = &mut self.levels[0].slots[slot];
        while array.indices[array.front as usize] == NIL {
            array.front += 1;
        }
        array.indices[array.front as usize]
    }

    /// Takes every entry out of a higher-level slot and places it again relative to the
    /// cursor, which has just reached the slot's start: each lands on a lower level.
    fn cascade(&mut self, level: usize, slot: usize) {
        let mut moving = std::mem::replace(&mut self.levels[level].slots[slot], Slot::EMPTY);
        self.levels[level].occupied &= !(1 << slot);
        for batch in moving.indices[moving.front as usize..].chunks(CASCADE_BATCH) {
            // Touch the batch's entries first: these loads do not depend on each other, so
            // the CPU overlaps their cache misses. Pushing right away would serialize them,
            // because where an entry goes depends on its deadline. See "Why arrays" above.
            let mut deadlines = [0; CASCADE_BATCH];
            for (deadline, &index) in deadlines.iter_mut().zip(batch) {
                if index != NIL {
                    *deadline = self.entries[index as usize].deadline;
                }
            }
            for (&deadline, &index) in deadlines.iter().zip(batch) {
                if index != NIL {
                    self.push(index, deadline);
                }
            }
        }
        // Every entry went to a lower level, so the slot is still empty: give its buffer back.
        moving.clear();
        self.levels[level].slots[slot] = moving;
    }

    /// Appends entry `index`, due at `deadline >= cursor`, to the end of its slot.
    fn push(&mut self, index: u32, deadline: u64) {
        let seq = self.entries[index as usize].seq;
        debug_assert!(deadline >= self.cursor && deadline == self.entries[index as usize].deadline);
        let level = level_for(self.cursor, deadline);
        let slot = digit(deadline, level);
        let array = &mut self.levels[level].slots[slot];
        debug_assert!(
            array
                .indices
                .iter()
                .rev()
                .find(|&&last| last != NIL)
                .is_none_or(|&last| self.entries[last as usize].seq < seq),
            "slot arrays are sorted by seq (invariant 4)"
        );
        self.entries[index as usize].position = array.indices.len() as u32;
        array.indices.push(index);
        array.live += 1;
        self.levels[level].occupied |= 1 << slot;
    }

    /// Takes entry `index` (with `deadline >= cursor`) out of its slot, leaving a hole.
    fn unlink(&mut self, index: u32) {
        let Entry { deadline, position, .. } = self.entries[index as usize];
        let level = level_for(self.cursor, deadline);
        let slot = digit(deadline, level);
        let array = &mut self.levels[level].slots[slot];
        array.indices[position as usize] = NIL;
        array.live -= 1;
        let holes = array.indices.len() - array.live as usize;
        if array.live == 0 {
            array.clear();
            self.levels[level].occupied &= !(1 << slot);
        } else if holes > array.live as usize + MIN_HOLES_TO_COMPACT {
            // Squeeze out the holes, keeping the order, and tell the moved entries.
            array.indices.retain(|&index| index != NIL);
            array.front = 0;
            for (position, &index) in array.indices.iter().enumerate() {
                self.entries[index as usize].position = position as u32;
            }
        }
    }

    /// Stores `entry` in a free arena cell (or a new one) and returns its index.
    fn allocate(&mut self, entry: Entry<T>) -> u32 {
        if self.free == NIL {
            let index = u32::try_from(self.entries.len())
                .ok()
                .filter(|&index| index != NIL)
                .expect("a timer wheel holds fewer than 2^32 - 1 entries");
            self.entries.push(entry);
            index
        } else {
            let index = self.free;
            self.free = self.entries[index as usize].position;
            self.entries[index as usize] = entry;
            index
        }
    }

    /// Puts arena cell `index` on the free list and returns the value it held.
    fn release(&mut self, index: u32) -> T {
        let entry = &mut self.entries[index as usize];
        entry.seq = VACANT;
        entry.position = self.free;
        self.free = index;
        entry.value
    }
}

/// Digit `level` of `time` in base 64: its slot on that level.
fn digit(time: u64, level: usize) -> usize {
    ((time >> (level as u32 * LEVEL_BITS)) & DIGIT_MASK) as usize
}

/// The level of an entry due at `deadline` when the cursor is at `cursor`: the level of the
/// highest base-64 digit in which the two differ (level 0 if they are equal).
fn level_for(cursor: u64, deadline: u64) -> usize {
    // Setting the low 6 bits sends "differ only in digit 0, or not at all" to level 0.
    let differing = (cursor ^ deadline) | DIGIT_MASK;
    let highest_bit = u64::BITS - 1 - differing.leading_zeros();
    (highest_bit / LEVEL_BITS) as usize
}

/// The time at which `slot` of `level` starts, for the span of that level that contains
/// `cursor`.
fn slot_start(cursor: u64, level: usize, slot: usize) -> u64 {
    let slot_bits = level as u32 * LEVEL_BITS;
    let span_bits = slot_bits + LEVEL_BITS;
    let span_start = if span_bits >= u64::BITS {
        0 // the top level spans all of time
    } else {
        cursor >> span_bits << span_bits
    };
    span_start + ((slot as u64) << slot_bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pops everything due at `now` the way the loop does, with the limit taken up front.
    fn drain(wheel: &mut Wheel<u32>, now: u64) -> Vec<(u64, u32)> {
        let limit = wheel.next_seq();
        std::iter::from_fn(|| wheel.pop_expired(now, limit)).collect()
    }

    /// Fires everything, sleeping until `next_wakeup` each time, like the loop.
    fn run_to_completion(wheel: &mut Wheel<u32>) -> Vec<(u64, u32)> {
        let mut fired = Vec::new();
        let mut now = 0;
        while let Some(wakeup) = wheel.next_wakeup() {
            now = now.max(wakeup);
            fired.extend(drain(wheel, now));
        }
        fired
    }

    #[test]
    fn entry_is_small() {
        assert_eq!(std::mem::size_of::<Entry<u32>>(), 24);
        assert_eq!(std::mem::size_of::<Entry<u64>>(), 32);
    }

    #[test]
    fn level_table() {
        assert_eq!(level_for(0, 0), 0);
        assert_eq!(level_for(0, 63), 0);
        assert_eq!(level_for(0, 64), 1);
        assert_eq!(level_for(60, 70), 1);
        assert_eq!(level_for(64, 127), 0);
        assert_eq!(level_for(0, 4095), 1);
        assert_eq!(level_for(0, 4096), 2);
        assert_eq!(level_for(0, u64::MAX), 10);
        assert_eq!(digit(u64::MAX, 10), 15);
        assert_eq!(slot_start(0, 10, 15), 15 << 60);
        assert_eq!(slot_start(5000, 1, 14), 4096 + 14 * 64);
    }

    #[test]
    fn empty_wheel() {
        let mut wheel = Wheel::<u32>::new();
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_wakeup(), None);
        assert_eq!(wheel.pop_expired(u64::MAX, u64::MAX), None);
    }

    #[test]
    fn fires_in_deadline_order_and_not_early() {
        let mut wheel = Wheel::new();
        for (value, deadline) in [(0, 300), (1, 5), (2, 70), (3, 5000), (4, 64)] {
            wheel.insert(deadline, value);
        }
        assert_eq!(wheel.len(), 5);
        assert_eq!(drain(&mut wheel, 4), vec![]);
        assert_eq!(drain(&mut wheel, 69), vec![(5, 1), (64, 4)]);
        assert_eq!(drain(&mut wheel, 4999), vec![(70, 2), (300, 0)]);
        assert_eq!(drain(&mut wheel, 5000), vec![(5000, 3)]);
        assert!(wheel.is_empty());
    }

    #[test]
    fn equal_deadlines_fire_in_insertion_order() {
        let mut wheel = Wheel::new();
        for value in 0..10 {
            wheel.insert(1000, value);
        }
        let fired = run_to_completion(&mut wheel);
        assert_eq!(fired, (0..10).map(|v| (1000, v)).collect::<Vec<_>>());
    }

    #[test]
    fn cascaded_and_direct_inserts_keep_insertion_order() {
        // The same deadline is armed while the cursor approaches it, so the four entries
        // start on levels 3, 2, 1 and 0, and the early ones reach level 0 by cascading.
        let deadline = 3 * 262_144 + 5 * 4096 + 7 * 64 + 9;
        let mut wheel = Wheel::new();
        wheel.insert(deadline, 0);
        assert_eq!(drain(&mut wheel, 3 * 262_144 + 1), vec![]);
        wheel.insert(deadline, 1);
        assert_eq!(drain(&mut wheel, 3 * 262_144 + 5 * 4096 + 1), vec![]);
        wheel.insert(deadline, 2);
        assert_eq!(drain(&mut wheel, deadline - 2), vec![]);
        wheel.insert(deadline, 3);
        wheel.insert(deadline - 1, 4);
        assert_eq!(drain(&mut wheel, deadline - 1), vec![(deadline - 1, 4)]);
        wheel.insert(deadline, 5);
        assert_eq!(
            drain(&mut wheel, deadline),
            (0..4).chain([5]).map(|v| (deadline, v)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn seq_limit_holds_back_later_inserts() {
        let mut wheel = Wheel::new();
        wheel.insert(10, 0);
        let limit = wheel.next_seq();
        assert_eq!(wheel.pop_expired(10, limit), Some((10, 0)));
        // Armed "inside a callback" at the current time: must wait for the next round.
        wheel.insert(10, 1);
        assert_eq!(wheel.pop_expired(10, limit), None);
        assert_eq!(wheel.next_wakeup(), Some(10));
        assert_eq!(wheel.pop_expired(10, wheel.next_seq()), Some((10, 1)));
    }

    #[test]
    fn seq_limit_applies_to_the_earliest_entry_only() {
        let mut wheel = Wheel::new();
        wheel.insert(6, 0);
        let limit = wheel.next_seq();
        wheel.insert(5, 1);
        // The earliest entry (5, seq 1) is held back, so nothing is returned.
        assert_eq!(wheel.pop_expired(6, limit), None);
        assert_eq!(wheel.pop_expired(6, 2), Some((5, 1)));
        assert_eq!(wheel.pop_expired(6, 2), Some((6, 0)));
    }

    #[test]
    fn past_deadlines_are_due_at_once_in_order() {
        let mut wheel = Wheel::new();
        assert_eq!(drain(&mut wheel, 1000), vec![]);
        wheel.insert(1000, 0);
        wheel.insert(500, 1);
        wheel.insert(10, 2);
        let cancelled = wheel.insert(20, 3);
        wheel.insert(999, 4);
        wheel.insert(0, 5);
        wheel.insert(10, 6);
        assert_eq!(wheel.next_wakeup(), Some(0));
        assert_eq!(wheel.remove(cancelled), Some(3));
        assert_eq!(
            drain(&mut wheel, 1000),
            vec![(0, 5), (10, 2), (10, 6), (500, 1), (999, 4), (1000, 0)]
        );
    }

    #[test]
    fn smaller_now_counts_as_the_largest_seen() {
        let mut wheel = Wheel::new();
        assert_eq!(wheel.pop_expired(100, 0), None);
        wheel.insert(50, 0);
        wheel.insert(100, 1);
        wheel.insert(101, 2);
        assert_eq!(drain(&mut wheel, 10), vec![(50, 0), (100, 1)]);
    }

    #[test]
    fn far_future_and_max_deadlines() {
        let year = 365 * 24 * 3600 * 1000;
        let deadlines =
            [u64::MAX, u64::MAX - 1, 1 << 63, 3 * year, 1000 * year, (1 << 40) + 12345, u64::MAX];
        let mut wheel = Wheel::new();
        for (value, &deadline) in deadlines.iter().enumerate() {
            wheel.insert(deadline, value as u32);
        }
        assert!(wheel.next_wakeup().unwrap() <= 3 * year);
        assert_eq!(drain(&mut wheel, 3 * year - 1), vec![]);
        let mut expected: Vec<(u64, u32)> = deadlines
            .iter()
            .enumerate()
            .map(|(value, &deadline)| (deadline, value as u32))
            .collect();
        expected.sort();
        assert_eq!(run_to_completion(&mut wheel), expected);
        assert_eq!(wheel.next_wakeup(), None);

        // After the cursor has reached u64::MAX, everything is due immediately.
        wheel.insert(u64::MAX, 7);
        wheel.insert(3, 8);
        assert_eq!(drain(&mut wheel, 0), vec![(3, 8), (u64::MAX, 7)]);
    }

    #[test]
    fn stale_keys_are_rejected() {
        let mut wheel = Wheel::new();
        let popped = wheel.insert(5, 0);
        assert_eq!(drain(&mut wheel, 5), vec![(5, 0)]);
        let reused = wheel.insert(9, 1); // takes the freed cell
        assert_eq!(reused.index, popped.index);
        assert_eq!(wheel.remove(popped), None);
        assert_eq!(wheel.len(), 1);

        assert_eq!(wheel.remove(reused), Some(1));
        assert_eq!(wheel.remove(reused), None);
        let again = wheel.insert(9, 2);
        assert_eq!(again.index, reused.index);
        assert_eq!(wheel.remove(reused), None);
        assert_eq!(wheel.remove(popped), None);
        assert_eq!(drain(&mut wheel, 9), vec![(9, 2)]);
    }

    #[test]
    fn removal_from_every_position_of_a_slot() {
        let mut wheel = Wheel::new();
        let keys: Vec<Key> = (0..5).map(|v| wheel.insert(7, v)).collect();
        assert_eq!(wheel.remove(keys[2]), Some(2)); // middle
        assert_eq!(wheel.remove(keys[0]), Some(0)); // head
        assert_eq!(wheel.remove(keys[4]), Some(4)); // tail
        assert_eq!(drain(&mut wheel, 7), vec![(7, 1), (7, 3)]);
        assert_eq!(wheel.next_wakeup(), None);
    }

    #[test]
    fn next_wakeup_makes_progress() {
        let mut wheel = Wheel::new();
        wheel.insert(5000, 0);
        // The entry sits on level 2, in the slot that starts at 4096.
        assert_eq!(wheel.next_wakeup(), Some(4096));
        assert_eq!(drain(&mut wheel, 4096), vec![]);
        // Cascaded to level 1, slot starting at 4992; then to level 0.
        assert_eq!(wheel.next_wakeup(), Some(4992));
        assert_eq!(drain(&mut wheel, 4992), vec![]);
        assert_eq!(wheel.next_wakeup(), Some(5000));
        assert_eq!(drain(&mut wheel, 5000), vec![(5000, 0)]);
        assert_eq!(wheel.next_wakeup(), None);
    }

    /// A tiny deterministic PRNG (xorshift64), so the tests need no `rand` crate.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound
        }
    }

    /// The wheel next to the obviously correct model it must agree with.
    struct Differential {
        wheel: Wheel<u32>,
        /// The reference: queued entries ordered by `(deadline, seq)`, value = seq.
        model: BTreeMap<(u64, u64), u32>,
        /// Key and deadline of every insert ever made, indexed by seq.
        inserted: Vec<(Key, u64)>,
        /// Largest `now` passed so far.
        now: u64,
    }

    impl Differential {
        fn new() -> Self {
            Differential {
                wheel: Wheel::new(),
                model: BTreeMap::new(),
                inserted: Vec::new(),
                now: 0,
            }
        }

        fn insert(&mut self, deadline: u64) {
            let seq = self.wheel.next_seq();
            assert_eq!(seq, self.inserted.len() as u64);
            let key = self.wheel.insert(deadline, seq as u32);
            self.model.insert((deadline, seq), seq as u32);
            self.inserted.push((key, deadline));
        }

        fn remove(&mut self, seq: usize) {
            let (key, deadline) = self.inserted[seq];
            let expected = self.model.remove(&(deadline, seq as u64));
            assert_eq!(self.wheel.remove(key), expected, "remove seq {seq}");
        }

        /// One `pop_expired` call, checked against the model. On `None` also checks
        /// progress: if nothing in the model is due, `next_wakeup` must be after `now`.
        fn pop(&mut self, now: u64, limit: u64) -> Option<(u64, u32)> {
            self.now = self.now.max(now);
            let expected = match self.model.first_key_value() {
                Some((&(deadline, seq), &value)) if deadline <= self.now && seq < limit => {
                    self.model.pop_first();
                    Some((deadline, value))
                }
                _ => None,
            };
            let actual = self.wheel.pop_expired(now, limit);
            assert_eq!(actual, expected, "pop_expired({now}, {limit})");
            let nothing_due =
                self.model.first_key_value().is_none_or(|(&(deadline, _), _)| deadline > self.now);
            if actual.is_none() && nothing_due {
                let wakeup = self.wheel.next_wakeup();
                assert!(wakeup.is_none_or(|w| w > self.now), "no progress at {now}");
            }
            actual
        }

        fn check(&self) {
            assert_eq!(self.wheel.len(), self.model.len());
            assert_eq!(self.wheel.is_empty(), self.model.is_empty());
            match (self.wheel.next_wakeup(), self.model.first_key_value()) {
                (None, None) => {}
                (Some(wakeup), Some((&(deadline, _), _))) => assert!(wakeup <= deadline),
                (wakeup, first) => panic!("next_wakeup {wakeup:?} but earliest is {first:?}"),
            }
        }
    }

    /// A deadline relative to `now`, mixing every case the wheel treats differently.
    fn random_deadline(rng: &mut XorShift, now: u64) -> u64 {
        match rng.below(20) {
            0..=6 => now.saturating_add(rng.below(70)),
            7..=9 => now.saturating_add(rng.below(5000)),
            10 => now.saturating_add(rng.below(300)) & !63, // equal, aligned deadlines
            11 => now.saturating_sub(rng.below(100)),       // in the past
            12 => now,
            13 => u64::MAX - rng.below(2),
            14 => now.saturating_add(rng.below(1 << 40)),
            15 => rng.next(),
            _ => now.saturating_add(rng.below(300_000)),
        }
    }

    fn differential(seed: u64, steps: usize) {
        let mut rng = XorShift(seed);
        let mut t = Differential::new();
        let mut now = rng.below(1 << 20);
        for _ in 0..steps {
            match rng.below(100) {
                0..=39 => t.insert(random_deadline(&mut rng, now)),
                40..=59 if !t.inserted.is_empty() => {
                    // Mostly recent entries (usually still queued), sometimes any (often stale).
                    let count = t.inserted.len() as u64;
                    let seq = if rng.below(2) == 0 {
                        count - 1 - rng.below(count.min(50))
                    } else {
                        rng.below(count)
                    };
                    t.remove(seq as usize);
                }
                60..=69 => {
                    let limit = rng.below(t.wheel.next_seq() + 1);
                    t.pop(now, limit);
                }
                70..=89 => {
                    // Advance the clock and run a timer phase; callbacks arm new timers.
                    now = now.saturating_add(match rng.below(4) {
                        0 => rng.below(3),
                        1 | 2 => rng.below(100),
                        _ => rng.below(10_000),
                    });
                    let limit = t.wheel.next_seq();
                    while t.pop(now, limit).is_some() {
                        if rng.below(4) == 0 {
                            t.insert(random_deadline(&mut rng, now));
                        }
                    }
                }
                90..=95 => {
                    // Sleep until next_wakeup (when it is not absurdly far) and fire.
                    let near = now.saturating_add(1 << 24);
                    if let Some(wakeup) = t.wheel.next_wakeup().filter(|&w| w < near) {
                        now = now.max(wakeup);
                        let limit = t.wheel.next_seq();
                        while t.pop(now, limit).is_some() {}
                    }
                }
                _ => {
                    // A stale, smaller `now` must count as the largest one seen.
                    let limit = t.wheel.next_seq();
                    t.pop(now.saturating_sub(rng.below(1000)), limit);
                }
            }
            t.check();
        }
        // Finally fire everything that is left, in order.
        while t.pop(u64::MAX, u64::MAX).is_some() {}
        assert!(t.model.is_empty());
        t.check();
    }

    #[test]
    fn differential_against_btreemap() {
        for seed in [1, 2, 3, 0x9E37_79B9_7F4A_7C15, 0xDEAD_BEEF] {
            differential(seed, 20_000);
        }
    }

    #[test]
    fn differential_with_crowded_slots() {
        // Thousands of entries share four deadlines, so slots grow large, removals leave
        // many holes (and trigger compactions) while pops take entries from the front.
        for seed in [4, 5, 6] {
            let mut rng = XorShift(seed);
            let mut t = Differential::new();
            let base = 100_000 + rng.below(10_000);
            let deadlines = [base, base + 1, base + 100, base + 5000];
            for _ in 0..3000 {
                t.insert(deadlines[rng.below(4) as usize]);
            }
            let mut now = base - 1;
            for _ in 0..20_000 {
                match rng.below(10) {
                    0..=5 => t.remove(rng.below(t.inserted.len() as u64) as usize),
                    6 | 7 => t.insert(deadlines[rng.below(4) as usize].max(now)),
                    _ => {
                        now += rng.below(2) * rng.below(4);
                        let limit = rng.below(t.wheel.next_seq() + 1);
                        t.pop(now, limit);
                    }
                }
                t.check();
            }
            while t.pop(u64::MAX, u64::MAX).is_some() {}
            t.check();
        }
    }

    #[test]
    fn differential_with_a_large_clock() {
        // Start near the top of time so that deadlines saturate at u64::MAX.
        let mut wheel = Wheel::new();
        assert_eq!(wheel.pop_expired(u64::MAX - 100_000, 0), None);
        let mut rng = XorShift(77);
        let mut model = BTreeMap::new();
        for seq in 0..2000u64 {
            let deadline = random_deadline(&mut rng, u64::MAX - 100_000);
            wheel.insert(deadline, seq as u32);
            model.insert((deadline, seq), seq as u32);
        }
        let expected: Vec<(u64, u32)> = model.iter().map(|(&(d, _), &v)| (d, v)).collect();
        let fired = run_to_completion(&mut wheel);
        assert_eq!(fired, expected);
    }
}
