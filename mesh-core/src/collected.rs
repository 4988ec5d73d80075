//! What a replica remembers of the tombstones it collected, until `tombstone_grace`.
//!
//! A tombstone is collected on the word of every peer this node knows. A node nobody on
//! this side knew (partitioned away while every node that knew it restarted) may still
//! hold an older value of the deleted key, and offer it once the partition heals. This
//! node's version vector does not account for that value (it never saw it), so without
//! the tombstone nothing would beat it, and the delete would be lost here. So the replica
//! keeps each collected tombstone's key and identity, outside its entries: an arriving
//! write of that key that the delete beats brings the tombstone back instead.
//!
//! The node that offered the value still holds it, and so may another node cut off with
//! it, which once the value has spread is asked for it by nobody. A peer that accounts
//! for nothing yet holds no value to save; one that does may. So a stream to a peer
//! whose digest names anything carries the collected deletes it lacks, as tombstones
//! (see `sync::build_delta`), rather than an empty range that would have it account for
//! them as they are; a fresh node joining is sent none.
//!
//! With a store, the remembered deletes are kept on disk too (see `store`): a node that
//! restarts from its disk still beats what it collected.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use ahash::RandomState;

use crate::hlc::physical_ms;
use crate::replica::Entry;
use crate::seq_index::SeqIndex;
use crate::version::OriginId;

/// Collected tombstones, by key, until their grace has run out.
#[derive(Debug)]
pub(crate) struct CollectedDeletes {
    /// Most remembered: past it, the oldest collected are forgotten first.
    cap: usize,
    by_key: HashMap<Arc<str>, Entry, RandomState>,
    /// Which key each remembered delete was of, for the streams.
    by_origin: SeqIndex,
    /// `(dead_since, key)` in the order the tombstones were collected, which is roughly
    /// the order of their age: one collected late is forgotten late, never early.
    order: VecDeque<(u64, Arc<str>)>,
    /// Keys remembered or forgotten since the store last took them; `None` without a
    /// store.
    changed: Option<HashSet<Arc<str>, RandomState>>,
}

impl Default for CollectedDeletes {
    fn default() -> CollectedDeletes {
        CollectedDeletes::new(usize::MAX)
    }
}

impl CollectedDeletes {
    /// Remembers at most `cap` collected tombstones.
    pub fn new(cap: usize) -> CollectedDeletes {
        CollectedDeletes {
            cap,
            by_key: HashMap::default(),
            by_origin: SeqIndex::default(),
            order: VecDeque::new(),
            changed: None,
        }
    }

    /// Starts noting which keys are remembered or forgotten, for the store.
    pub fn record_changes(&mut self) {
        self.changed.get_or_insert_with(HashSet::default);
    }

    /// Keys remembered or forgotten since the last call, each once.
    pub fn take_changed(&mut self) -> Vec<Arc<str>> {
        self.changed
            .as_mut()
            .map(|changed| changed.drain().collect())
            .unwrap_or_default()
    }

    /// Whether keys changed since [`CollectedDeletes::take_changed`] last ran.
    pub fn has_changes(&self) -> bool {
        self.changed.as_ref().is_some_and(|c| !c.is_empty())
    }

    /// The remembered tombstone of `key`.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.by_key.get(key)
    }

    /// Remembers `tombstones` loaded from the store, as they were remembered when written.
    /// All of them, even past the cap: the next delete collected brings it back to the
    /// cap, and that change reaches the store, where dropping them here would not.
    pub fn restore(&mut self, mut tombstones: Vec<(Arc<str>, Entry)>) {
        tombstones.sort_by_key(|(_, e)| e.dead_since());
        for (key, entry) in tombstones {
            self.order.push_back((entry.dead_since(), Arc::clone(&key)));
            self.by_origin
                .insert(entry.origin, entry.seq, Arc::clone(&key));
            if let Some(old) = self.by_key.insert(key, entry) {
                self.by_origin.remove(old.origin, old.seq);
            }
        }
    }

    fn note_changed(&mut self, key: &Arc<str>) {
        if let Some(changed) = self.changed.as_mut() {
            if !changed.contains(key) {
                changed.insert(Arc::clone(key));
            }
        }
    }

    /// Remembers the tombstone `entry` of `key`, just collected.
    pub fn remember(&mut self, key: Arc<str>, entry: Entry) {
        debug_assert!(entry.value.is_none());
        if self.cap > 0 {
            self.order.push_back((entry.dead_since(), Arc::clone(&key)));
            self.by_origin
                .insert(entry.origin, entry.seq, Arc::clone(&key));
            self.note_changed(&key);
            if let Some(old) = self.by_key.insert(key, entry) {
                self.by_origin.remove(old.origin, old.seq);
            }
        }
        // Past the cap (one restored from the store may be), the oldest go. The queue keeps a place for a key brought back or collected again until that
        // place reaches its front: bounded too, or a key collected and brought back over
        // and over (a forger of old values can do it) would grow it for the whole grace.
        while self.by_key.len() > self.cap || self.order.len() > self.cap.saturating_mul(2) {
            let Some((dead_since, key)) = self.order.pop_front() else {
                break;
            };
            self.take_if_queued(&key, dead_since);
        }
    }

    /// Takes `key`'s tombstone out if it is the one queued as dead since `dead_since`:
    /// the key may have been collected again since, or brought back.
    fn take_if_queued(&mut self, key: &str, dead_since: u64) {
        if self.by_key.get(key).is_some_and(|t| t.dead_since() == dead_since) {
            self.take(key);
        }
    }

    /// The collected tombstones of `origin` with sequence numbers in `lo..=hi`, in order.
    pub fn of(
        &self,
        origin: OriginId,
        lo: u64,
        hi: u64,
    ) -> impl Iterator<Item = (&Arc<str>, &Entry)> + '_ {
        self.by_origin
            .range(origin, lo, hi)
            .filter_map(move |(_, key)| self.by_key.get(key.as_ref()).map(|e| (key, e)))
    }

    /// Forgets the tombstone of `key` if `rank` beats it: the key holds a later write.
    pub fn forget_beaten(&mut self, key: &str, rank: (u64, u64, u64)) {
        if self.by_key.is_empty() {
            return;
        }
        if self.by_key.get(key).is_some_and(|t| t.rank() < rank) {
            self.take(key);
        }
    }

    /// The collected tombstone of `key` if it ranks at least as high as `rank`: the same
    /// write, or one that superseded it.
    pub fn beating(&self, key: &str, rank: (u64, u64, u64)) -> Option<&Entry> {
        // Most replicas collected nothing lately: no key is hashed for them.
        if self.by_key.is_empty() {
            return None;
        }
        self.by_key.get(key).filter(|t| t.rank() >= rank)
    }

    /// Takes the tombstone of `key` out (it is held again).
    pub fn take(&mut self, key: &str) -> Option<Entry> {
        let (key, entry) = self.by_key.remove_entry(key)?;
        self.by_origin.remove(entry.origin, entry.seq);
        self.note_changed(&key);
        Some(entry)
    }

    /// Forgets the tombstones dead since before `cutoff_ms` (wall clock).
    pub fn forget_dead_before(&mut self, cutoff_ms: u64) {
        while let Some((dead_since, _)) = self.order.front() {
            if physical_ms(*dead_since) >= cutoff_ms {
                break;
            }
            let Some((dead_since, key)) = self.order.pop_front() else {
                break;
            };
            self.take_if_queued(&key, dead_since);
        }
    }

    /// How many collected tombstones are remembered.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::LOGICAL_BITS;

    fn tombstone(ms: u64, origin: u64, seq: u64) -> Entry {
        Entry {
            value: None,
            hlc: ms << LOGICAL_BITS,
            origin,
            seq,
            expires: None,
        }
    }

    #[test]
    fn beats_older_writes_and_the_same_one_only() {
        let mut c = CollectedDeletes::default();
        let t = tombstone(1_000, 5, 3);
        c.remember(Arc::from("k"), t.clone());
        assert!(c.beating("k", ((999 << LOGICAL_BITS), 9, 9)).is_some());
        assert!(c.beating("k", t.rank()).is_some(), "the same write");
        assert!(c.beating("k", ((1_001 << LOGICAL_BITS), 1, 1)).is_none());
        assert!(c.beating("other", (0, 0, 0)).is_none());
    }

    #[test]
    fn forgets_what_died_before_the_cutoff() {
        let mut c = CollectedDeletes::default();
        c.remember(Arc::from("a"), tombstone(1_000, 1, 1));
        c.remember(Arc::from("b"), tombstone(2_000, 1, 2));
        c.forget_dead_before(1_500);
        assert_eq!(c.len(), 1);
        assert!(c.beating("a", (0, 0, 0)).is_none());
        assert!(c.beating("b", (0, 0, 0)).is_some());
    }

    #[test]
    fn past_the_cap_the_oldest_collected_go_first() {
        let mut c = CollectedDeletes::new(2);
        c.remember(Arc::from("a"), tombstone(1_000, 1, 1));
        c.remember(Arc::from("b"), tombstone(2_000, 1, 2));
        c.remember(Arc::from("c"), tombstone(3_000, 1, 3));
        assert_eq!(c.len(), 2);
        assert!(c.beating("a", (0, 0, 0)).is_none());
        assert_eq!(c.of(1, 1, 3).map(|(_, e)| e.seq).collect::<Vec<_>>(), [2, 3]);
        let mut none = CollectedDeletes::new(0);
        none.remember(Arc::from("a"), tombstone(1_000, 1, 1));
        assert_eq!(none.len(), 0);
        // Loaded under a larger cap: the next collection forgets them all.
        none.restore(vec![(Arc::from("b"), tombstone(900, 1, 2))]);
        none.record_changes();
        none.remember(Arc::from("c"), tombstone(1_000, 1, 3));
        assert_eq!(none.len(), 0);
        assert_eq!(none.take_changed(), [Arc::<str>::from("b")]);
    }

    #[test]
    fn a_key_collected_and_brought_back_over_and_over_stays_bounded() {
        let mut c = CollectedDeletes::new(3);
        for round in 0..100 {
            c.remember(Arc::from("k"), tombstone(1_000 + round, 1, round + 1));
            c.take("k");
        }
        assert!(c.order.len() <= 6, "{} places queued", c.order.len());
        c.remember(Arc::from("k"), tombstone(5_000, 1, 500));
        assert!(c.beating("k", (0, 0, 0)).is_some());
    }

    #[test]
    fn listed_by_origin_in_sequence_order_until_taken_or_beaten() {
        let mut c = CollectedDeletes::default();
        c.remember(Arc::from("b"), tombstone(1_000, 5, 7));
        c.remember(Arc::from("a"), tombstone(1_000, 5, 3));
        c.remember(Arc::from("c"), tombstone(1_000, 6, 4));
        let seqs = |c: &CollectedDeletes| c.of(5, 1, 10).map(|(_, e)| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(&c), [3, 7]);
        assert_eq!(c.of(5, 4, 6).count(), 0);
        c.take("a");
        assert_eq!(seqs(&c), [7]);
        c.forget_beaten("b", (999 << LOGICAL_BITS, 9, 9));
        assert_eq!(seqs(&c), [7], "an older write beats nothing");
        c.forget_beaten("b", (1_001 << LOGICAL_BITS, 1, 1));
        assert_eq!(seqs(&c), Vec::<u64>::new());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn the_store_is_told_of_every_key_remembered_or_forgotten() {
        let changed = |c: &mut CollectedDeletes| {
            let mut keys: Vec<String> = c.take_changed().iter().map(|k| k.to_string()).collect();
            keys.sort();
            keys
        };
        let mut c = CollectedDeletes::new(2);
        c.remember(Arc::from("before"), tombstone(500, 1, 9));
        assert!(!c.has_changes(), "nothing noted without a store");
        c.record_changes();
        c.remember(Arc::from("a"), tombstone(1_000, 1, 1));
        c.remember(Arc::from("b"), tombstone(2_000, 1, 2));
        // Past the cap: "before" is forgotten, and that is a change too.
        assert_eq!(changed(&mut c), ["a", "b", "before"]);
        assert!(!c.has_changes());
        c.take("a");
        c.forget_dead_before(3_000);
        assert_eq!(changed(&mut c), ["a", "b"]);
        // What the store loaded is not a change, even past the cap.
        c.restore(vec![
            (Arc::from("x"), tombstone(1_000, 2, 1)),
            (Arc::from("y"), tombstone(900, 2, 2)),
            (Arc::from("z"), tombstone(800, 2, 3)),
        ]);
        assert!(!c.has_changes());
        assert_eq!(c.len(), 3);
        c.remember(Arc::from("w"), tombstone(4_000, 2, 4));
        assert_eq!(c.len(), 2);
        assert_eq!(changed(&mut c), ["w", "y", "z"], "the oldest loaded go first");
    }

    #[test]
    fn a_key_collected_again_is_kept_until_its_newer_tombstone_expires() {
        let mut c = CollectedDeletes::default();
        c.remember(Arc::from("k"), tombstone(1_000, 1, 1));
        c.take("k");
        c.remember(Arc::from("k"), tombstone(3_000, 1, 2));
        c.forget_dead_before(2_000);
        assert!(c.beating("k", (0, 0, 0)).is_some());
        c.forget_dead_before(3_001);
        assert_eq!(c.len(), 0);
    }
}
