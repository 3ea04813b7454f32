//! The handle slab, and the one place where stale ids are rejected.
//!
//! `slab::Slab` reuses the slot of a removed entry for the next insert, which is what keeps the
//! table compact. A bare slot index would therefore be ambiguous after a close: a late event or
//! a kept id for the old handle would reach the new one. So every slot also has a generation,
//! kept in a side table that survives removal: removing an entry bumps its slot's generation,
//! and [`Slots::get`] only answers when the id's generation is the slot's current one (the same
//! idea as calloop's `token.rs`).

use slab::Slab;

use crate::handle::{Handle, HandleId};

/// The loop's handles, addressed by generation-checked ids.
pub(crate) struct Slots {
    slab: Slab<Handle>,
    /// `generations[slot]` is the generation of the handle in `slot`, or of the next one to
    /// occupy it: the memory of a slot while it is vacant. Only ever grows; a slot's entry is
    /// bumped each time its handle is removed.
    generations: Vec<u32>,
}

impl Slots {
    pub(crate) fn new() -> Self {
        Slots { slab: Slab::new(), generations: Vec::new() }
    }

    /// Stores a handle and returns its id.
    pub(crate) fn insert(&mut self, mut handle: Handle) -> HandleId {
        let slot = self.slab.vacant_key();
        if slot == self.generations.len() {
            self.generations.push(0);
        }
        handle.generation = self.generations[slot];
        let id = HandleId {
            // Memory runs out long before four billion handles exist at once.
            slot: u32::try_from(slot).expect("more than u32::MAX live handles"),
            generation: handle.generation,
        };
        self.slab.insert(handle);
        id
    }

    /// The handle behind `id`, or `None` if `id` is stale.
    pub(crate) fn get(&self, id: HandleId) -> Option<&Handle> {
        self.slab.get(id.slot as usize).filter(|handle| handle.generation == id.generation)
    }

    /// Mutable version of [`Slots::get`].
    pub(crate) fn get_mut(&mut self, id: HandleId) -> Option<&mut Handle> {
        self.slab.get_mut(id.slot as usize).filter(|handle| handle.generation == id.generation)
    }

    /// Frees the slot. From now on `id` (and every copy of it) is stale.
    pub(crate) fn remove(&mut self, id: HandleId) -> Option<Handle> {
        self.get(id)?;
        let generation = &mut self.generations[id.slot as usize];
        *generation = generation.wrapping_add(1);
        Some(self.slab.remove(id.slot as usize))
    }

    /// How many handles exist, closing ones included.
    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// Every handle with its id, in slot order (for [`Core::handles_info`](crate::Core) and
    /// the metrics' handle counts).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (HandleId, &Handle)> {
        self.slab.iter().map(|(slot, handle)| {
            (HandleId { slot: slot as u32, generation: handle.generation }, handle)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::Callback;
    use crate::handle::State;
    use std::panic::Location;

    fn handle() -> Handle {
        Handle::new(State::Signal(0), Callback::Taken, Location::caller())
    }

    #[test]
    fn a_reused_slot_does_not_answer_to_the_old_id() {
        let mut slots = Slots::new();
        let old = slots.insert(handle());
        assert!(slots.remove(old).is_some());
        let new = slots.insert(handle());
        assert_eq!(new.slot, old.slot, "the slab reuses the freed slot");
        assert_ne!(new.generation, old.generation);
        assert!(slots.get(old).is_none());
        assert!(slots.get_mut(old).is_none());
        assert!(slots.remove(old).is_none(), "removing a stale id frees nothing");
        assert!(slots.get(new).is_some());
        assert_eq!(slots.len(), 1);
    }

    #[test]
    fn ids_from_beyond_the_table_are_rejected() {
        let slots = Slots::new();
        assert!(slots.get(HandleId { slot: 3, generation: 0 }).is_none());
    }
}
