//! An indexed 4-ary min-heap: the timer queue libuv uses, with exact O(log n) removal.
//!
//! # The idea
//!
//! A min-heap is a tree in which every node is due no later than its children, so the
//! earliest timer is always at the root. It is stored in a plain array without pointers:
//! the children of node `i` are `4i + 1 ..= 4i + 4` and its parent is `(i - 1) / 4`.
//!
//! - **insert** appends the node at the end of the array and *sifts it up*: while it is
//!   earlier than its parent, the parent moves down into its place.
//! - **pop** takes the root, moves the last node into the root's place and *sifts it down*:
//!   while some child is earlier, the earliest child moves up into its place.
//! - **remove** of an arbitrary timer does the same at the timer's position, then sifts the
//!   moved node up *or* down, whichever direction restores the order.
//!
//! Removal needs to know where in the array a timer currently is. Nodes move on every sift,
//! so the heap keeps a second array, the *slots*: one per timer, at a stable index that the
//! [`Key`] names, holding the timer's current position in the heap. Every time a sift moves
//! a node, it writes the node's new position into its slot. (libuv gets the same effect with
//! an intrusive, pointer-based heap; an array is more compact and friendlier to the cache.)
//!
//! Why 4 children instead of 2? The tree is half as deep (log₄ n instead of log₂ n), so
//! sifting up, the common case for insertion, touches half as many nodes. Sifting down
//! compares four children per level instead of two, but the four sit next to each other
//! in memory (one 64-byte cache line holds 2⅔ nodes), so that costs little.
//!
//! Each heap node carries the full ordering key `(deadline, seq)`, so comparisons never
//! leave the heap array. Ties between equal deadlines are broken by `seq`, the insertion
//! number, which makes timers with equal deadlines fire in the order they were armed.
//!
//! # Invariants
//!
//! 1. Heap order: `nodes[i].key() >= nodes[(i - 1) / 4].key()` for every `i > 0`.
//! 2. Positions: for every node `n` at index `i`, `slots[n.slot].position == i`.
//! 3. A slot is free iff its `seq == VACANT`; free slots are chained through `position`.
//!
//! # Complexity
//!
//! | operation     | cost                                  |
//! |---------------|---------------------------------------|
//! | `insert`      | O(log n)                              |
//! | `remove`      | O(log n)                              |
//! | `pop_expired` | O(log n)                              |
//! | `next_wakeup` | O(1): the root's deadline, exactly    |
//!
//! Unlike a timing wheel, the heap's `next_wakeup` is always the exact earliest deadline,
//! so the loop never wakes up without a timer to fire.

// The loop uses only part of this API, and the benchmarks include this file as a module of
// their own, so not every item is used in every build.
#![allow(dead_code)]

/// Children per heap node.
const ARITY: usize = 4;
/// The end of the free list.
const NIL: u32 = u32::MAX;
/// The `seq` of a free slot. No insert ever gets it: that would take 2^64 inserts.
const VACANT: u64 = u64::MAX;

/// Opaque handle to a queued entry, returned by [`Heap::insert`].
///
/// A key is a slot index plus the entry's sequence number. Sequence numbers are never
/// reused, so a stale key (its entry already removed or fired, the slot reused by a later
/// insert) no longer matches and [`Heap::remove`] rejects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    index: u32,
    seq: u64,
}

/// One node of the heap array: the ordering key and the slot of its timer.
#[derive(Clone, Copy)]
struct Node {
    deadline: u64,
    seq: u64,
    slot: u32,
}

impl Node {
    /// The heap is ordered by this: deadline first, insertion order among equals.
    fn key(&self) -> (u64, u64) {
        (self.deadline, self.seq)
    }
}

/// Per-timer data at a stable index: the timer's value and where its node is.
#[derive(Clone, Copy)]
struct Slot<T> {
    /// The timer's sequence number, or `VACANT` for a free slot.
    seq: u64,
    /// Index of the timer's node in `nodes`. In a free slot: the next free slot, or `NIL`.
    position: u32,
    value: T,
}

/// An indexed 4-ary min-heap of values of type `T`, ordered by `(deadline, seq)`.
///
/// See the [module documentation](self) for the algorithm.
pub struct Heap<T> {
    /// The heap array; `nodes[0]` is the earliest entry.
    nodes: Vec<Node>,
    /// Per-timer slots, addressed by the index in a [`Key`].
    slots: Vec<Slot<T>>,
    /// Head of the free list of `slots`, or `NIL`.
    free: u32,
    /// Sequence number of the next insert.
    next_seq: u64,
    /// The largest `now` passed to `pop_expired` so far.
    now: u64,
}

impl<T: Copy> Default for Heap<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy> Heap<T> {
    /// Creates an empty heap.
    pub fn new() -> Self {
        Heap { nodes: Vec::new(), slots: Vec::new(), free: NIL, next_seq: 0, now: 0 }
    }

    /// Number of queued entries.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no entry is queued.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The sequence number the next [`insert`](Self::insert) will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Queues `value` to expire at `deadline` and returns the key that can remove it.
    ///
    /// Each insert gets the next sequence number (0, 1, 2, ...). Any deadline is accepted;
    /// one that has already passed is due at once. O(log n).
    pub fn insert(&mut self, deadline: u64, value: T) -> Key {
        let seq = self.next_seq;
        self.next_seq += 1;
        let position = u32::try_from(self.nodes.len()).expect("fewer than 2^32 timers");
        let slot = self.allocate(Slot { seq, position, value });
        self.nodes.push(Node { deadline, seq, slot });
        self.sift_up(position as usize);
        Key { index: slot, seq }
    }

    /// Removes the entry named by `key` and returns its value, or `None` if the key is stale
    /// (its entry was already removed or popped). O(log n).
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get(key.index as usize)?;
        if slot.seq != key.seq {
            return None;
        }
        self.remove_at(slot.position as usize);
        Some(self.release(key.index))
    }

    /// The earliest deadline, or `None` when the heap is empty. O(1).
    ///
    /// This is exact, so a call to [`pop_expired`](Self::pop_expired) at this time returns
    /// an entry (unless the `seq_limit` holds it back).
    pub fn next_wakeup(&self) -> Option<u64> {
        self.nodes.first().map(|root| root.deadline)
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
        let root = *self.nodes.first()?;
        if root.deadline > self.now || root.seq >= seq_limit {
            return None;
        }
        self.remove_at(0);
        Some((root.deadline, self.release(root.slot)))
    }

    /// Removes the node at `position`: the last node takes its place and is sifted up or
    /// down to restore heap order.
    fn remove_at(&mut self, position: usize) {
        self.nodes.swap_remove(position);
        if position == self.nodes.len() {
            return; // it was the last node: nothing moved
        }
        let moved = self.nodes[position];
        if position > 0 && moved.key() < self.nodes[(position - 1) / ARITY].key() {
            self.sift_up(position);
        } else {
            self.sift_down(position);
        }
    }

    /// Moves the node at `position` up until its parent is not later than it.
    ///
    /// Instead of swapping at every level, parents move down into the "hole" and the node
    /// is written once, at its final place.
    fn sift_up(&mut self, mut position: usize) {
        let node = self.nodes[position];
        while position > 0 {
            let parent = (position - 1) / ARITY;
            if self.nodes[parent].key() <= node.key() {
                break;
            }
            self.place(position, self.nodes[parent]);
            position = parent;
        }
        self.place(position, node);
    }

    /// Moves the node at `position` down until none of its children is earlier than it.
    fn sift_down(&mut self, mut position: usize) {
        let node = self.nodes[position];
        let len = self.nodes.len();
        loop {
            let first_child = position * ARITY + 1;
            if first_child >= len {
                break;
            }
            let children = first_child..(first_child + ARITY).min(len);
            let earliest =
                children.min_by_key(|&child| self.nodes[child].key()).expect("at least one child");
            if node.key() <= self.nodes[earliest].key() {
                break;
            }
            self.place(position, self.nodes[earliest]);
            position = earliest;
        }
        self.place(position, node);
    }

    /// Writes `node` at `position` and records that position in the node's slot.
    fn place(&mut self, position: usize, node: Node) {
        self.nodes[position] = node;
        self.slots[node.slot as usize].position = position as u32;
    }

    /// Stores `slot` in a free slot (or a new one) and returns its index.
    fn allocate(&mut self, slot: Slot<T>) -> u32 {
        if self.free == NIL {
            let index = u32::try_from(self.slots.len())
                .ok()
                .filter(|&index| index != NIL)
                .expect("a timer heap holds fewer than 2^32 - 1 entries");
            self.slots.push(slot);
            index
        } else {
            let index = self.free;
            self.free = self.slots[index as usize].position;
            self.slots[index as usize] = slot;
            index
        }
    }

    /// Puts slot `index` on the free list and returns the value it held.
    fn release(&mut self, index: u32) -> T {
        let slot = &mut self.slots[index as usize];
        slot.seq = VACANT;
        slot.position = self.free;
        self.free = index;
        slot.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Pops everything due at `now` the way the loop does, with the limit taken up front.
    fn drain(heap: &mut Heap<u32>, now: u64) -> Vec<(u64, u32)> {
        let limit = heap.next_seq();
        std::iter::from_fn(|| heap.pop_expired(now, limit)).collect()
    }

    /// Fires everything, sleeping until `next_wakeup` each time, like the loop.
    fn run_to_completion(heap: &mut Heap<u32>) -> Vec<(u64, u32)> {
        let mut fired = Vec::new();
        let mut now = 0;
        while let Some(wakeup) = heap.next_wakeup() {
            now = now.max(wakeup);
            fired.extend(drain(heap, now));
        }
        fired
    }

    /// Checks invariants 1 and 2 of the module documentation.
    fn assert_heap_invariants(heap: &Heap<u32>) {
        for (i, node) in heap.nodes.iter().enumerate() {
            if i > 0 {
                assert!(heap.nodes[(i - 1) / ARITY].key() <= node.key(), "heap order at {i}");
            }
            assert_eq!(heap.slots[node.slot as usize].position as usize, i);
            assert_eq!(heap.slots[node.slot as usize].seq, node.seq);
        }
    }

    #[test]
    fn entries_are_small() {
        assert_eq!(std::mem::size_of::<Node>(), 24);
        assert_eq!(std::mem::size_of::<Slot<u32>>(), 16);
        assert_eq!(std::mem::size_of::<Slot<u64>>(), 24);
    }

    #[test]
    fn empty_heap() {
        let mut heap = Heap::<u32>::new();
        assert!(heap.is_empty());
        assert_eq!(heap.next_wakeup(), None);
        assert_eq!(heap.pop_expired(u64::MAX, u64::MAX), None);
    }

    #[test]
    fn fires_in_deadline_order_and_not_early() {
        let mut heap = Heap::new();
        for (value, deadline) in [(0, 300), (1, 5), (2, 70), (3, 5000), (4, 64)] {
            heap.insert(deadline, value);
        }
        assert_eq!(heap.len(), 5);
        assert_eq!(heap.next_wakeup(), Some(5));
        assert_eq!(drain(&mut heap, 4), vec![]);
        assert_eq!(drain(&mut heap, 69), vec![(5, 1), (64, 4)]);
        assert_eq!(drain(&mut heap, 4999), vec![(70, 2), (300, 0)]);
        assert_eq!(drain(&mut heap, 5000), vec![(5000, 3)]);
        assert!(heap.is_empty());
    }

    #[test]
    fn equal_deadlines_fire_in_insertion_order() {
        let mut heap = Heap::new();
        // Interleave with other deadlines so that sifts reorder the array a lot.
        for value in 0..40 {
            heap.insert(1000 + (value % 4) as u64 * 7, value);
        }
        let expected: Vec<(u64, u32)> =
            (0..4).flat_map(|k| (0..10).map(move |i| (1000 + k * 7, (i * 4 + k) as u32))).collect();
        assert_eq!(run_to_completion(&mut heap), expected);
    }

    #[test]
    fn seq_limit_holds_back_later_inserts() {
        let mut heap = Heap::new();
        heap.insert(10, 0);
        let limit = heap.next_seq();
        assert_eq!(heap.pop_expired(10, limit), Some((10, 0)));
        heap.insert(10, 1);
        assert_eq!(heap.pop_expired(10, limit), None);
        assert_eq!(heap.pop_expired(10, heap.next_seq()), Some((10, 1)));
    }

    #[test]
    fn seq_limit_applies_to_the_earliest_entry_only() {
        let mut heap = Heap::new();
        heap.insert(6, 0);
        let limit = heap.next_seq();
        heap.insert(5, 1);
        assert_eq!(heap.pop_expired(6, limit), None);
        assert_eq!(heap.pop_expired(6, 2), Some((5, 1)));
        assert_eq!(heap.pop_expired(6, 2), Some((6, 0)));
    }

    #[test]
    fn past_deadlines_are_due_at_once_in_order() {
        let mut heap = Heap::new();
        assert_eq!(drain(&mut heap, 1000), vec![]);
        heap.insert(1000, 0);
        heap.insert(500, 1);
        heap.insert(10, 2);
        let cancelled = heap.insert(20, 3);
        heap.insert(999, 4);
        heap.insert(0, 5);
        heap.insert(10, 6);
        assert_eq!(heap.next_wakeup(), Some(0));
        assert_eq!(heap.remove(cancelled), Some(3));
        assert_eq!(
            drain(&mut heap, 1000),
            vec![(0, 5), (10, 2), (10, 6), (500, 1), (999, 4), (1000, 0)]
        );
    }

    #[test]
    fn smaller_now_counts_as_the_largest_seen() {
        let mut heap = Heap::new();
        assert_eq!(heap.pop_expired(100, 0), None);
        heap.insert(50, 0);
        heap.insert(100, 1);
        heap.insert(101, 2);
        assert_eq!(drain(&mut heap, 10), vec![(50, 0), (100, 1)]);
    }

    #[test]
    fn far_future_and_max_deadlines() {
        let year = 365 * 24 * 3600 * 1000;
        let deadlines = [u64::MAX, u64::MAX - 1, 1 << 63, 3 * year, 1000 * year, u64::MAX];
        let mut heap = Heap::new();
        for (value, &deadline) in deadlines.iter().enumerate() {
            heap.insert(deadline, value as u32);
        }
        assert_eq!(heap.next_wakeup(), Some(3 * year));
        assert_eq!(drain(&mut heap, 3 * year - 1), vec![]);
        let mut expected: Vec<(u64, u32)> = deadlines
            .iter()
            .enumerate()
            .map(|(value, &deadline)| (deadline, value as u32))
            .collect();
        expected.sort();
        assert_eq!(run_to_completion(&mut heap), expected);
        heap.insert(u64::MAX, 7);
        heap.insert(3, 8);
        assert_eq!(drain(&mut heap, 0), vec![(3, 8), (u64::MAX, 7)]);
    }

    #[test]
    fn stale_keys_are_rejected() {
        let mut heap = Heap::new();
        let popped = heap.insert(5, 0);
        assert_eq!(drain(&mut heap, 5), vec![(5, 0)]);
        let reused = heap.insert(9, 1); // takes the freed slot
        assert_eq!(reused.index, popped.index);
        assert_eq!(heap.remove(popped), None);
        assert_eq!(heap.len(), 1);

        assert_eq!(heap.remove(reused), Some(1));
        assert_eq!(heap.remove(reused), None);
        let again = heap.insert(9, 2);
        assert_eq!(again.index, reused.index);
        assert_eq!(heap.remove(reused), None);
        assert_eq!(heap.remove(popped), None);
        assert_eq!(drain(&mut heap, 9), vec![(9, 2)]);
    }

    #[test]
    fn removal_sifts_up_or_down() {
        // Removing a node lets the last node fill the hole. Depending on the values that
        // node must move up or down; check both by removing every position once.
        for victim in 0..30u32 {
            let mut heap = Heap::new();
            let keys: Vec<Key> =
                (0..30u32).map(|v| heap.insert(((v * 17) % 31) as u64, v)).collect();
            assert_eq!(heap.remove(keys[victim as usize]), Some(victim));
            assert_heap_invariants(&heap);
            let fired: Vec<u32> = run_to_completion(&mut heap).iter().map(|f| f.1).collect();
            let mut expected: Vec<u32> = (0..30).filter(|&v| v != victim).collect();
            expected.sort_by_key(|&v| (v * 17) % 31);
            assert_eq!(fired, expected);
        }
    }

    #[test]
    fn next_wakeup_is_exact() {
        let mut heap = Heap::new();
        heap.insert(5000, 0);
        assert_eq!(heap.next_wakeup(), Some(5000));
        assert_eq!(drain(&mut heap, 4999), vec![]);
        assert_eq!(drain(&mut heap, 5000), vec![(5000, 0)]);
        assert_eq!(heap.next_wakeup(), None);
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

    /// The heap next to the obviously correct model it must agree with.
    struct Differential {
        heap: Heap<u32>,
        /// The reference: queued entries ordered by `(deadline, seq)`, value = seq.
        model: BTreeMap<(u64, u64), u32>,
        /// Key and deadline of every insert ever made, indexed by seq.
        inserted: Vec<(Key, u64)>,
        /// Largest `now` passed so far.
        now: u64,
    }

    impl Differential {
        fn insert(&mut self, deadline: u64) {
            let seq = self.heap.next_seq();
            assert_eq!(seq, self.inserted.len() as u64);
            let key = self.heap.insert(deadline, seq as u32);
            self.model.insert((deadline, seq), seq as u32);
            self.inserted.push((key, deadline));
        }

        fn remove(&mut self, seq: usize) {
            let (key, deadline) = self.inserted[seq];
            let expected = self.model.remove(&(deadline, seq as u64));
            assert_eq!(self.heap.remove(key), expected, "remove seq {seq}");
        }

        /// One `pop_expired` call, checked against the model, plus the progress check.
        fn pop(&mut self, now: u64, limit: u64) -> Option<(u64, u32)> {
            self.now = self.now.max(now);
            let expected = match self.model.first_key_value() {
                Some((&(deadline, seq), &value)) if deadline <= self.now && seq < limit => {
                    self.model.pop_first();
                    Some((deadline, value))
                }
                _ => None,
            };
            let actual = self.heap.pop_expired(now, limit);
            assert_eq!(actual, expected, "pop_expired({now}, {limit})");
            let nothing_due =
                self.model.first_key_value().is_none_or(|(&(deadline, _), _)| deadline > self.now);
            if actual.is_none() && nothing_due {
                let wakeup = self.heap.next_wakeup();
                assert!(wakeup.is_none_or(|w| w > self.now), "no progress at {now}");
            }
            actual
        }

        fn check(&self) {
            assert_eq!(self.heap.len(), self.model.len());
            assert_eq!(self.heap.is_empty(), self.model.is_empty());
            let earliest = self.model.first_key_value().map(|(&(d, _), _)| d);
            assert_eq!(self.heap.next_wakeup(), earliest);
        }
    }

    /// A deadline relative to `now`, mixing near, far, equal, past and extreme values.
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
        let mut t = Differential {
            heap: Heap::new(),
            model: BTreeMap::new(),
            inserted: Vec::new(),
            now: 0,
        };
        let mut now = rng.below(1 << 20);
        for step in 0..steps {
            match rng.below(100) {
                0..=39 => t.insert(random_deadline(&mut rng, now)),
                40..=59 if !t.inserted.is_empty() => {
                    let count = t.inserted.len() as u64;
                    let seq = if rng.below(2) == 0 {
                        count - 1 - rng.below(count.min(50))
                    } else {
                        rng.below(count)
                    };
                    t.remove(seq as usize);
                }
                60..=69 => {
                    let limit = rng.below(t.heap.next_seq() + 1);
                    t.pop(now, limit);
                }
                70..=89 => {
                    now = now.saturating_add(match rng.below(4) {
                        0 => rng.below(3),
                        1 | 2 => rng.below(100),
                        _ => rng.below(10_000),
                    });
                    let limit = t.heap.next_seq();
                    while t.pop(now, limit).is_some() {
                        if rng.below(4) == 0 {
                            t.insert(random_deadline(&mut rng, now));
                        }
                    }
                }
                90..=95 => {
                    // Sleep until next_wakeup (when it is not absurdly far) and fire.
                    let near = now.saturating_add(1 << 24);
                    if let Some(wakeup) = t.heap.next_wakeup().filter(|&w| w < near) {
                        now = now.max(wakeup);
                        let limit = t.heap.next_seq();
                        while t.pop(now, limit).is_some() {}
                    }
                }
                _ => {
                    let limit = t.heap.next_seq();
                    t.pop(now.saturating_sub(rng.below(1000)), limit);
                }
            }
            t.check();
            if step % 1000 == 0 {
                assert_heap_invariants(&t.heap);
            }
        }
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
}
