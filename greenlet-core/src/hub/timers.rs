//! The hub's timers: a min-heap of deadlines with lazy deletion.
//!
//! Entries live in a slab (`entries`); the heap holds `(deadline, seq, index)`
//! triples. Cancelling frees the slab entry and leaves the heap triple behind;
//! a popped triple whose `seq` no longer matches its slab entry is skipped.
//! Ordering is `(deadline, seq)`: timers with the same deadline fire in the
//! order they were armed. When dead triples outnumber live timers the heap is
//! rebuilt, so arm+cancel loops with long deadlines do not grow it forever.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Identifies one armed timer: a slab index plus the low 32 bits of the
/// sequence number that armed it (so a stale id never cancels a later timer
/// in the same slot; a collision would need 2^32 timers armed in one slab
/// entry while the stale id is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerId {
    index: u32,
    seq: u32,
}

#[derive(Debug)]
struct Entry<A> {
    seq: u64,
    /// Counted in [`Timers::referenced`] (keeps the loop alive).
    referenced: bool,
    action: A,
}

/// Deadline-ordered timers carrying an action `A`.
#[derive(Debug)]
pub(crate) struct Timers<A> {
    heap: BinaryHeap<Reverse<(Instant, u64, u32)>>,
    /// Slab of live entries; `None` slots are listed in `free`.
    entries: Vec<Option<Entry<A>>>,
    free: Vec<u32>,
    next_seq: u64,
    live: usize,
    referenced: usize,
}

impl<A> Timers<A> {
    pub(crate) const fn new() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            entries: Vec::new(),
            free: Vec::new(),
            next_seq: 0,
            live: 0,
            referenced: 0,
        }
    }

    /// Continues `other`'s sequence numbers, so ids handed out by `other`
    /// never match a timer of `self` (hub reset).
    pub(crate) fn continue_after<B>(&mut self, other: &Timers<B>) {
        self.next_seq = self.next_seq.max(other.next_seq);
    }

    /// Arms a timer firing at `deadline`.
    pub(crate) fn insert(&mut self, deadline: Instant, referenced: bool, action: A) -> TimerId {
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = Entry {
            seq,
            referenced,
            action,
        };
        let index = match self.free.pop() {
            Some(index) => {
                self.entries[index as usize] = Some(entry);
                index
            }
            None => {
                self.entries.push(Some(entry));
                u32::try_from(self.entries.len() - 1).expect("fewer than 2^32 live timers")
            }
        };
        self.heap.push(Reverse((deadline, seq, index)));
        self.live += 1;
        self.referenced += usize::from(referenced);
        TimerId {
            index,
            seq: seq as u32,
        }
    }

    /// Cancels a timer; returns its action if it had not fired yet.
    pub(crate) fn remove(&mut self, id: TimerId) -> Option<A> {
        let slot = self.entries.get_mut(id.index as usize)?;
        if slot.as_ref().is_some_and(|e| e.seq as u32 == id.seq) {
            let entry = slot.take().expect("checked just above");
            self.free.push(id.index);
            self.live -= 1;
            self.referenced -= usize::from(entry.referenced);
            self.maybe_compact();
            Some(entry.action)
        } else {
            None
        }
    }

    /// `true` while the timer is armed and has not fired.
    pub(crate) fn contains(&self, id: TimerId) -> bool {
        self.entries
            .get(id.index as usize)
            .and_then(Option::as_ref)
            .is_some_and(|e| e.seq as u32 == id.seq)
    }

    /// Pops the earliest timer due at or before `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<A> {
        while let Some(&Reverse((deadline, seq, index))) = self.heap.peek() {
            if deadline > now {
                return None;
            }
            self.heap.pop();
            let slot = &mut self.entries[index as usize];
            if slot.as_ref().is_some_and(|e| e.seq == seq) {
                let entry = slot.take().expect("checked just above");
                self.free.push(index);
                self.live -= 1;
                self.referenced -= usize::from(entry.referenced);
                return Some(entry.action);
            }
        }
        None
    }

    /// Deadline of the earliest live timer, dropping dead heap tops.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse((deadline, seq, index))) = self.heap.peek() {
            if self.entries[index as usize]
                .as_ref()
                .is_some_and(|e| e.seq == seq)
            {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Live timers.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Live timers that keep the loop alive.
    pub(crate) fn referenced(&self) -> usize {
        self.referenced
    }

    fn maybe_compact(&mut self) {
        if self.heap.len() > 64 && self.heap.len() > 4 * self.live {
            let entries = &self.entries;
            self.heap.retain(|Reverse((_, seq, index))| {
                entries[*index as usize]
                    .as_ref()
                    .is_some_and(|e| e.seq == *seq)
            });
        }
        if self.live == 0 {
            // Nothing live: release slab memory held by a burst.
            self.heap.clear();
            if self.entries.len() > 1024 {
                self.entries = Vec::new();
                self.free = Vec::new();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_deadline_then_arming_order() {
        let mut t = Timers::new();
        let now = Instant::now();
        t.insert(now + Duration::from_millis(2), true, "c");
        t.insert(now + Duration::from_millis(1), true, "a");
        t.insert(now + Duration::from_millis(1), true, "b");
        let later = now + Duration::from_millis(3);
        let fired: Vec<_> = std::iter::from_fn(|| t.pop_expired(later)).collect();
        assert_eq!(fired, ["a", "b", "c"]);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn cancelled_timers_never_fire_and_stale_ids_do_nothing() {
        let mut t = Timers::new();
        let now = Instant::now();
        let a = t.insert(now, true, 1);
        assert_eq!(t.remove(a), Some(1));
        assert_eq!(t.remove(a), None);
        let b = t.insert(now, false, 2);
        assert_eq!(
            t.remove(a),
            None,
            "stale id must not cancel the slot's new timer"
        );
        assert!(t.contains(b));
        assert_eq!(t.referenced(), 0);
        assert_eq!(t.pop_expired(now), Some(2));
        assert_eq!(t.pop_expired(now), None);
    }

    #[test]
    fn arm_cancel_loop_keeps_heap_small() {
        let mut t = Timers::new();
        let far = Instant::now() + Duration::from_secs(3600);
        let keep = t.insert(far, true, 0);
        for i in 0..100_000 {
            let id = t.insert(far, true, i);
            t.remove(id);
        }
        assert!(t.heap.len() < 1000, "heap grew to {}", t.heap.len());
        assert!(t.contains(keep));
    }
}
