//! The replica: a last-writer-wins map with tombstones, indexed by origin so that the
//! writes a peer lacks can be found from its digest.
//!
//! Every entry carries `(hlc, origin, seq)`. The greater `(hlc, origin, seq)` wins, so
//! merge is commutative, associative and idempotent (see the property tests). An entry
//! that loses is forgotten at once; its `(origin, seq)` stays accounted for in the
//! version vector because the entry that beat it is held instead.
//!
//! An entry may carry an expiry (`expires`, an HLC timestamp: see `set_with_ttl`). Once
//! the node's clock reaches it, [`Replica::expire`] turns the entry into a tombstone *in
//! place*: same key, same `(hlc, origin, seq)`, same `expires`, value dropped. No new
//! write is made, so the version vector (and every fingerprint and digest derived from
//! it) does not change, and every node ends with the very same tombstone.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use ahash::RandomState;
use indexmap::map::RawEntryApiV1;
use indexmap::IndexMap;

use crate::collected::CollectedDeletes;
use crate::seq_index::SeqIndex;
use crate::store::{StoreLog, StoredVv};
use crate::value::Value;
use crate::version::{OriginId, VersionVector};

/// The lower end that marks a stored range as a retired origin's record `origin ≤ hi`:
/// no sequence number is 0, so no accounted range starts there. A build that predates
/// retirement reads the record as the range `1..=hi`, which accounts for the same writes.
const RETIRED_MARK: u64 = 0;

/// One key's current entry. `value == None` is a tombstone (the key was deleted).
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The value, or `None` for a tombstone.
    pub value: Option<Value>,
    /// Hybrid logical timestamp of the write.
    pub hlc: u64,
    /// Origin (node incarnation) that made the write.
    pub origin: OriginId,
    /// The origin's sequence number of the write.
    pub seq: u64,
    /// HLC timestamp at which the value expires (a write with a TTL), if any. An expired
    /// entry keeps it once turned into a tombstone.
    pub expires: Option<u64>,
}

impl Entry {
    /// The total order that decides conflicts: later timestamp wins, then higher origin.
    pub fn rank(&self) -> (u64, OriginId, u64) {
        (self.hlc, self.origin, self.seq)
    }

    /// Whether this entry beats `other`.
    pub fn wins_over(&self, other: &Entry) -> bool {
        self.rank() > other.rank()
    }

    /// Whether this entry's value has expired for a node whose clock reads `now_hlc`.
    pub fn is_expired_at(&self, now_hlc: u64) -> bool {
        self.expires.is_some_and(|e| e <= now_hlc)
    }

    /// When this entry stopped being live: its expiry for an expired value, its write
    /// for a delete. Tombstones age from it.
    pub fn dead_since(&self) -> u64 {
        self.expires.unwrap_or(self.hlc).max(self.hlc)
    }
}

/// What a merge did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The incoming entry won and replaced the key's entry (or created it).
    Applied {
        /// Whether the key held a live value before.
        was_live: bool,
    },
    /// The key already held this entry or a winning one.
    Ignored,
    /// A delete beats the incoming entry: the tombstone this replica held, or one it had
    /// collected and holds again now. The sender held a value this delete superseded.
    BeatenByDelete {
        /// The delete's origin.
        origin: OriginId,
        /// The delete's sequence number.
        seq: u64,
        /// Whether the delete had been collected: other nodes may hold the value too.
        revived: bool,
    },
}

/// Where a key is in the replica's table: its hash, and its index if it is held.
#[derive(Clone, Copy)]
struct Place {
    hash: u64,
    index: Option<usize>,
}

/// The replicated map.
#[derive(Debug)]
pub struct Replica {
    own_origin: OriginId,
    own_seq: u64,
    // aHash with random keys, not the standard SipHash: every write hashes its key a few
    // times on each replica (a sixth of a node's CPU under a steady write load), and
    // keys come from anyone who may write, so the hash stays keyed.
    //
    // An index map, not a hash map: a hash map that grows moves every entry into a new
    // table, hashing its key again, and the kernel zeroes each page of the new table
    // (a replica receiving 10,000 keys spent a seventh of its CPU there). Here growth
    // moves only a table of positions, with the hashes kept beside the entries, and the
    // entries' vector; a million keys take 311 MiB, against 379 in the hash map.
    entries: IndexMap<Arc<str>, Entry, RandomState>,
    /// Which key holds each write, for the entries currently held.
    by_origin: SeqIndex,
    tombstones: HashSet<Arc<str>, RandomState>,
    /// `(expires, key)` of every live entry with an expiry, soonest first.
    expiring: BTreeSet<(u64, Arc<str>)>,
    vv: VersionVector,
    /// The tombstones collected, until their grace runs out (see `collected`).
    collected: CollectedDeletes,
    state_version: u64,
    /// What changed since the store last took a batch; `None` without a store.
    pub(crate) store_log: Option<StoreLog>,
}

impl Replica {
    /// An empty replica whose local writes are stamped with `own_origin`.
    pub fn new(own_origin: OriginId) -> Replica {
        Replica {
            own_origin,
            own_seq: 0,
            entries: IndexMap::default(),
            by_origin: SeqIndex::default(),
            tombstones: HashSet::default(),
            expiring: BTreeSet::new(),
            vv: VersionVector::default(),
            collected: CollectedDeletes::default(),
            state_version: 0,
            store_log: None,
        }
    }

    /// This replica's origin id.
    pub fn own_origin(&self) -> OriginId {
        self.own_origin
    }

    /// Sequence number of the latest local write.
    pub fn own_seq(&self) -> u64 {
        self.own_seq
    }

    /// Records a local write (`None` deletes) stamped `hlc`. Returns whether the key held
    /// a live value before.
    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
    pub fn write_local(&mut self, key: &str, value: Option<Value>, hlc: u64) -> bool {
        self.write_local_expiring(key, value, hlc, None)
    }

    /// [`Replica::write_local`] with an expiry: the value expires at HLC `expires`.
    pub fn write_local_expiring(
        &mut self,
        key: &str,
        value: Option<Value>,
        hlc: u64,
        expires: Option<u64>,
    ) -> bool {
        self.own_seq += 1;
        let entry = Entry {
            value,
            hlc,
            origin: self.own_origin,
            seq: self.own_seq,
            expires,
        };
        let seq = self.own_seq;
        self.vv.insert_range(self.own_origin, seq, seq);
        if let Some(log) = self.store_log.as_mut() {
            log.touch_vv();
        }
        self.install(key, entry)
    }

    /// Merges an entry received from a peer.
    #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
    pub fn merge(&mut self, key: &str, entry: Entry) -> MergeOutcome {
        self.merge_shared(key, entry, || Arc::from(key))
    }

    /// [`Replica::merge`] of a key already shared, as decoded from the wire: a new key is
    /// stored without a copy.
    pub fn merge_shared_key(&mut self, key: &Arc<str>, entry: Entry) -> MergeOutcome {
        self.merge_shared(key, entry, || Arc::clone(key))
    }

    fn merge_shared(
        &mut self,
        key: &str,
        entry: Entry,
        shared: impl FnOnce() -> Arc<str>,
    ) -> MergeOutcome {
        // The key is hashed once, and the table probed once to find it (once more to
        // insert a new key, from the same hash): merging is most of a receiving node's
        // work, and each extra lookup of a key costs a cache miss in a large replica.
        let place = self.place_of(key);
        let was_live = match place.index.map(|i| &self.entries[i]) {
            Some(current) if !entry.wins_over(current) => {
                return match current.value {
                    None if current.rank() > entry.rank() => MergeOutcome::BeatenByDelete {
                        origin: current.origin,
                        seq: current.seq,
                        revived: false,
                    },
                    _ => MergeOutcome::Ignored,
                };
            }
            Some(current) => current.value.is_some(),
            None => false,
        };
        if was_live || self.collected.beating(key, entry.rank()).is_none() {
            self.install_at(place, entry, shared);
            return MergeOutcome::Applied { was_live };
        }
        // A write the collected delete superseded: the delete is held again, so it beats
        // this write here, and the sender may be sent it (see `Engine::claimed_by`).
        let Some(tombstone) = self.collected.take(key) else {
            return MergeOutcome::Ignored;
        };
        let (origin, seq) = (tombstone.origin, tombstone.seq);
        let same_write = tombstone.rank() == entry.rank();
        self.install_at(place, tombstone, shared);
        if same_write {
            MergeOutcome::Ignored
        } else {
            MergeOutcome::BeatenByDelete {
                origin,
                seq,
                revived: true,
            }
        }
    }

    /// Installs `entry` under `key`; whether the key held a live value before.
    fn install(&mut self, key: &str, entry: Entry) -> bool {
        self.install_at(self.place_of(key), entry, || Arc::from(key))
    }

    /// Where `key` is in the table: hashed once, found with one probe.
    fn place_of(&self, key: &str) -> Place {
        let hash = self.entries.hasher().hash_one(key);
        let index = self
            .entries
            .raw_entry_v1()
            .index_from_hash(hash, |held| **held == *key);
        Place { hash, index }
    }

    /// Installs `entry` under the key found at `place`; `shared` gives the key's shared
    /// form when the key is new. Returns whether the key held a live value before.
    fn install_at(
        &mut self,
        place: Place,
        entry: Entry,
        shared: impl FnOnce() -> Arc<str>,
    ) -> bool {
        let (key, was_tombstone) = match place.index.and_then(|i| self.entries.get_index(i)) {
            Some((k, old)) => {
                let k = Arc::clone(k);
                let (origin, seq) = (old.origin, old.seq);
                let was_tombstone = old.value.is_none();
                if let (Some(expires), false) = (old.expires, was_tombstone) {
                    self.expiring.remove(&(expires, Arc::clone(&k)));
                }
                self.unindex(origin, seq);
                (k, was_tombstone)
            }
            None => (shared(), false),
        };
        // `tombstones` holds exactly the keys whose entry has no value.
        if entry.value.is_none() {
            if !was_tombstone {
                self.tombstones.insert(Arc::clone(&key));
            }
        } else {
            if was_tombstone {
                self.tombstones.remove(&key);
            }
            if let Some(expires) = entry.expires {
                self.expiring.insert((expires, Arc::clone(&key)));
            }
        }
        self.by_origin
            .insert(entry.origin, entry.seq, Arc::clone(&key));
        if let Some(log) = self.store_log.as_mut() {
            log.touch(&key);
        }
        self.collected.forget_beaten(&key, entry.rank());
        match place.index {
            Some(i) => self.entries[i] = entry,
            None => {
                self.entries
                    .raw_entry_mut_v1()
                    .from_hash(place.hash, |_| false)
                    .or_insert(key, entry);
            }
        }
        self.state_version += 1;
        place.index.is_some() && !was_tombstone
    }

    fn unindex(&mut self, origin: OriginId, seq: u64) {
        self.by_origin.remove(origin, seq);
    }

    /// Accounts for `lo..=hi` of `origin`: the caller has merged every entry of that
    /// range the sender held.
    pub fn cover(&mut self, origin: OriginId, lo: u64, hi: u64) {
        self.vv.insert_range(origin, lo, hi);
        if let Some(log) = self.store_log.as_mut() {
            log.touch_vv();
        }
    }

    /// Withdraws the accounting of `origin` above `cap`, the highest write the origin
    /// vouched for (see `frontier`), except for the entries held: what lies beyond was
    /// never written by that origin.
    pub fn withdraw_above(&mut self, origin: OriginId, cap: u64) {
        self.vv.withdraw_above(origin, cap);
        let held = self.by_origin.range(origin, cap.saturating_add(1), u64::MAX);
        for (seq, _) in held {
            self.vv.insert_range(origin, seq, seq);
        }
    }

    /// Whether any entry held was written by `origin`.
    pub fn holds_any_of(&self, origin: OriginId) -> bool {
        self.by_origin.contains_origin(origin)
    }

    /// Retires `origin` in the version vector (see `version`): only if no entry held
    /// names it and it is not this replica's own. Returns whether it was retired.
    pub fn retire(&mut self, origin: OriginId) -> bool {
        if origin == self.own_origin || self.holds_any_of(origin) || !self.vv.retire(origin) {
            return false;
        }
        if let Some(log) = self.store_log.as_mut() {
            log.touch_vv();
        }
        true
    }

    /// The soonest expiry of a live entry, if any.
    pub fn next_expiry(&self) -> Option<u64> {
        self.expiring.first().map(|(expires, _)| *expires)
    }

    /// Turns every live entry whose expiry is at or below `now_hlc` into a tombstone with
    /// the same identity (see the module docs); returns their keys, soonest expiry first
    /// (ties in key order). The version vector does not change.
    pub fn expire(&mut self, now_hlc: u64) -> Vec<String> {
        let mut expired = Vec::new();
        while let Some((expires, key)) = self.expiring.first().cloned() {
            if expires > now_hlc {
                break;
            }
            self.expiring.pop_first();
            if let Some(entry) = self.entries.get_mut(key.as_ref()) {
                entry.value = None;
            }
            self.tombstones.insert(Arc::clone(&key));
            if let Some(log) = self.store_log.as_mut() {
                log.touch(&key);
            }
            self.state_version += 1;
            expired.push(key.to_string());
        }
        expired
    }

    /// The live value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.get(key).and_then(|e| e.value.as_ref())
    }

    /// The entry of `key`, tombstones included.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// The entries held of `origin` with sequence numbers in `lo..=hi`, in order.
    pub fn entries_of(
        &self,
        origin: OriginId,
        lo: u64,
        hi: u64,
    ) -> impl Iterator<Item = (&Arc<str>, &Entry)> + '_ {
        self.by_origin
            .range(origin, lo, hi)
            .filter_map(move |(_, key)| self.entries.get(key.as_ref()).map(|e| (key, e)))
    }

    /// [`Replica::entries_of`], and with `collected` the tombstones collected in that
    /// range and still remembered (see `collected`), in sequence order.
    pub fn entries_to_send(
        &self,
        origin: OriginId,
        lo: u64,
        hi: u64,
        collected: bool,
    ) -> impl Iterator<Item = (&Arc<str>, &Entry)> + '_ {
        let mut held = self.entries_of(origin, lo, hi).peekable();
        let mut gone = collected
            .then(|| self.collected.of(origin, lo, hi))
            .into_iter()
            .flatten()
            .peekable();
        std::iter::from_fn(move || match (held.peek(), gone.peek()) {
            (Some(h), Some(g)) if g.1.seq < h.1.seq => gone.next(),
            (Some(_), _) => held.next(),
            (None, _) => gone.next(),
        })
    }

    /// How many entries of `origin` with sequence numbers in `lo..=hi` are held.
    pub fn held_in(&self, origin: OriginId, lo: u64, hi: u64) -> usize {
        self.by_origin.range(origin, lo, hi).count()
    }

    /// Every live key and value.
    pub fn snapshot(&self) -> BTreeMap<String, Value> {
        self.entries
            .iter()
            .filter_map(|(k, e)| e.value.as_ref().map(|v| (k.to_string(), v.clone())))
            .collect()
    }

    /// Every live key.
    pub fn keys(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, e)| e.value.is_some())
            .map(|(k, _)| k.to_string())
            .collect()
    }

    /// Every entry, tombstones included, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> + '_ {
        self.entries.iter().map(|(k, e)| (k.as_ref(), e))
    }

    /// Number of live keys.
    pub fn live_len(&self) -> usize {
        self.entries.len() - self.tombstones.len()
    }

    /// Number of tombstones.
    pub fn tombstone_len(&self) -> usize {
        self.tombstones.len()
    }

    /// Changes applied so far, local and remote.
    pub fn state_version(&self) -> u64 {
        self.state_version
    }

    /// The version vector.
    pub fn version_vector(&self) -> &VersionVector {
        &self.vv
    }

    /// Installs entries and a version vector loaded from the store (before any write).
    pub(crate) fn restore(&mut self, entries: Vec<(String, Entry)>, vv: &StoredVv) {
        self.entries.reserve(entries.len());
        for (key, entry) in entries {
            self.install(&key, entry);
        }
        self.restore_vv(vv);
    }

    /// Remembers the collected tombstones the store kept (see `collected`), but for keys
    /// held again: the store writes a key's entry and its collected tombstone's removal
    /// together, so only a damaged store has both.
    pub(crate) fn restore_collected(&mut self, tombstones: Vec<(String, Entry)>) {
        let tombstones = tombstones
            .into_iter()
            .filter(|(key, _)| !self.entries.contains_key(key.as_str()))
            .map(|(key, entry)| (Arc::from(key), entry))
            .collect();
        self.collected.restore(tombstones);
    }

    fn restore_vv(&mut self, vv: &StoredVv) {
        for (origin, ranges) in vv {
            for &(lo, hi) in ranges {
                if lo == RETIRED_MARK {
                    self.vv.restore_retired(*origin, hi);
                } else {
                    self.vv.insert_range(*origin, lo, hi);
                }
            }
        }
    }

    /// The version vector as the store keeps it.
    pub(crate) fn stored_vv(&self) -> StoredVv {
        let mut vv: StoredVv = self
            .vv
            .iter()
            .map(|(origin, set)| (origin, set.ranges().collect()))
            .chain(
                self.vv
                    .retired()
                    .map(|(origin, n)| (origin, vec![(RETIRED_MARK, n)])),
            )
            .collect();
        vv.sort_unstable();
        vv
    }

    /// The entry of `key`, tombstones included (what the store writes).
    pub(crate) fn stored_entry(&self, key: &str) -> Option<Entry> {
        self.entries.get(key).cloned()
    }

    /// Starts noting the collected tombstones remembered and forgotten, for the store.
    pub(crate) fn record_collected_changes(&mut self) {
        self.collected.record_changes();
    }

    /// The keys whose collected tombstone was remembered or forgotten since the last
    /// call, each with the tombstone remembered now (what the store writes).
    pub(crate) fn take_collected_changes(&mut self) -> Vec<(Arc<str>, Option<Entry>)> {
        self.collected
            .take_changed()
            .into_iter()
            .map(|key| {
                let entry = self.collected.get(&key).cloned();
                (key, entry)
            })
            .collect()
    }

    /// Whether collected tombstones were remembered or forgotten since the last
    /// [`Replica::take_collected_changes`].
    pub(crate) fn has_collected_changes(&self) -> bool {
        self.collected.has_changes()
    }

    /// Removes the tombstones `collectable` accepts; returns how many.
    pub fn collect_tombstones(&mut self, mut collectable: impl FnMut(&Entry) -> bool) -> usize {
        let doomed: Vec<Arc<str>> = self
            .tombstones
            .iter()
            .filter(|k| self.entries.get(k.as_ref()).is_some_and(&mut collectable))
            .cloned()
            .collect();
        for key in &doomed {
            if let Some(log) = self.store_log.as_mut() {
                log.touch(key);
            }
            self.tombstones.remove(key);
            if let Some(entry) = self.entries.swap_remove(key) {
                self.unindex(entry.origin, entry.seq);
                self.collected.remember(Arc::clone(key), entry);
            }
        }
        doomed.len()
    }

    /// This replica, remembering at most `cap` collected tombstones (see `collected`).
    pub fn remembering_collected(mut self, cap: usize) -> Replica {
        self.collected = CollectedDeletes::new(cap);
        self
    }

    /// Forgets the collected tombstones dead since before `cutoff_ms` (wall clock): past
    /// the grace, a node that still holds a value they superseded is past saving here.
    pub fn forget_collected_before(&mut self, cutoff_ms: u64) {
        self.collected.forget_dead_before(cutoff_ms);
    }

    /// Whether a collected tombstone of `key` ranking at least `rank` is remembered.
    pub fn remembers_collected(&self, key: &str, rank: (u64, OriginId, u64)) -> bool {
        self.collected.beating(key, rank).is_some()
    }

    /// How many collected tombstones are still remembered.
    pub fn collected_len(&self) -> usize {
        self.collected.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use proptest::prelude::*;

    fn entry(value: Option<i64>, hlc: u64, origin: u64, seq: u64) -> Entry {
        Entry {
            value: value.map(Value::Int),
            hlc,
            origin,
            seq,
            expires: None,
        }
    }

    #[test]
    fn withdrawing_beyond_a_frontier_keeps_the_entries_held() {
        let mut r = Replica::new(1);
        let entry = |seq| Entry {
            value: Some(Value::Int(seq as i64)),
            hlc: seq,
            origin: 8,
            seq,
            expires: None,
        };
        r.merge("a", entry(2));
        r.merge("b", entry(40));
        r.cover(8, 1, 1 << 62);
        r.withdraw_above(8, 5);
        let vv = r.version_vector();
        assert!(vv.contains(8, 5), "up to the frontier stays");
        assert!(vv.contains(8, 40), "an entry held beyond it stays accounted for");
        assert!(!vv.contains(8, 6) && !vv.contains(8, 41), "the rest is withdrawn");
    }

    #[test]
    fn only_an_origin_nothing_held_names_retires_and_the_store_keeps_its_record() {
        let mut r = Replica::new(1);
        r.write_local("mine", Some(Value::Int(0)), 5);
        r.merge("a", entry(Some(1), 10, 8, 1));
        r.cover(8, 1, 3);
        assert!(!r.retire(1), "never our own origin");
        assert!(!r.retire(8), "an entry still names it");
        r.merge("a", entry(Some(2), 20, 9, 1));
        r.cover(9, 1, 1);
        assert!(r.retire(8));
        assert!(r.version_vector().contains(8, 3));
        let stored = r.stored_vv();
        assert!(stored.contains(&(8, vec![(RETIRED_MARK, 3)])));
        let mut back = Replica::new(2);
        back.restore(Vec::new(), &stored);
        assert_eq!(back.version_vector().retired_len(), 1);
        assert!(back.version_vector().contains(8, 3) && !back.version_vector().contains(8, 4));
        assert_eq!(back.version_vector().digest(), r.version_vector().digest());
    }

    #[test]
    fn a_collected_delete_beats_an_older_value_arriving_later() {
        let mut r = Replica::new(1);
        r.merge("k", entry(None, 50, 8, 4));
        assert_eq!(r.collect_tombstones(|_| true), 1);
        assert!(r.entry("k").is_none());
        // An older value this node never saw: the delete is held again instead.
        assert_eq!(
            r.merge("k", entry(Some(7), 40, 9, 2)),
            MergeOutcome::BeatenByDelete { origin: 8, seq: 4, revived: true }
        );
        assert_eq!(r.entry("k"), Some(&entry(None, 50, 8, 4)));
        assert_eq!(r.collected_len(), 0, "held, not remembered twice");
        // A later write takes the key as usual.
        assert_eq!(r.collect_tombstones(|_| true), 1);
        assert_eq!(r.merge("k", entry(Some(9), 60, 9, 3)), MergeOutcome::Applied { was_live: false });
        assert_eq!(r.get("k"), Some(&Value::Int(9)));
    }

    #[test]
    fn a_held_delete_beating_a_value_names_itself() {
        let mut r = Replica::new(1);
        r.merge("k", entry(None, 50, 8, 4));
        assert_eq!(
            r.merge("k", entry(Some(7), 40, 9, 2)),
            MergeOutcome::BeatenByDelete { origin: 8, seq: 4, revived: false }
        );
        assert_eq!(r.merge("k", entry(None, 50, 8, 4)), MergeOutcome::Ignored, "the same write");
        r.merge("v", entry(Some(1), 50, 8, 5));
        assert_eq!(r.merge("v", entry(Some(2), 40, 9, 3)), MergeOutcome::Ignored, "a value beats it");
    }

    #[test]
    fn collected_deletes_are_forgotten_after_the_grace() {
        let mut r = Replica::new(1);
        let ms = |ms: u64| ms << crate::hlc::LOGICAL_BITS;
        r.merge("k", entry(None, ms(1_000), 8, 4));
        r.collect_tombstones(|_| true);
        r.forget_collected_before(1_000);
        assert_eq!(r.collected_len(), 1);
        r.forget_collected_before(1_001);
        assert_eq!(r.collected_len(), 0);
        let outcome = r.merge("k", entry(Some(7), ms(900), 9, 2));
        assert_eq!(outcome, MergeOutcome::Applied { was_live: false });
    }

    #[test]
    fn later_write_wins_and_loser_leaves_the_index() {
        let mut r = Replica::new(1);
        r.write_local("k", Some(Value::Int(1)), 10);
        assert_eq!(
            r.merge("k", entry(Some(2), 20, 2, 1)),
            MergeOutcome::Applied { was_live: true }
        );
        assert_eq!(
            r.merge("k", entry(Some(3), 15, 3, 1)),
            MergeOutcome::Ignored
        );
        assert_eq!(r.get("k"), Some(&Value::Int(2)));
        assert_eq!(r.entries_of(1, 1, 10).count(), 0);
        assert_eq!(r.entries_of(2, 1, 10).count(), 1);
    }

    #[test]
    fn a_shared_key_is_stored_and_sent_without_a_copy() {
        let mut r = Replica::new(1);
        let key: Arc<str> = Arc::from("k");
        assert_eq!(
            r.merge_shared_key(&key, entry(Some(1), 10, 2, 1)),
            MergeOutcome::Applied { was_live: false }
        );
        let (held, _) = r.entries_of(2, 1, 1).next().expect("held");
        assert!(Arc::ptr_eq(held, &key), "the key decoded is the key kept");
        // A later write to a key held keeps the first allocation.
        let again: Arc<str> = Arc::from("k");
        assert_eq!(
            r.merge_shared_key(&again, entry(Some(2), 20, 2, 2)),
            MergeOutcome::Applied { was_live: true }
        );
        let (held, _) = r.entries_of(2, 2, 2).next().expect("held");
        assert!(Arc::ptr_eq(held, &key));
        assert_eq!(r.merge_shared_key(&again, entry(Some(3), 5, 2, 3)), MergeOutcome::Ignored);
    }

    #[test]
    fn tombstones_hide_and_are_collected() {
        let mut r = Replica::new(1);
        r.write_local("k", Some(Value::Int(1)), 10);
        assert!(r.write_local("k", None, 11));
        assert_eq!(r.get("k"), None);
        assert_eq!((r.live_len(), r.tombstone_len()), (0, 1));
        assert_eq!(r.collect_tombstones(|_| true), 1);
        assert_eq!(r.tombstone_len(), 0);
        assert!(r.entry("k").is_none());
        assert_eq!(r.version_vector().upto(1), 2);
    }

    fn arb_entry() -> impl Strategy<Value = (u8, Entry)> {
        (
            0u8..4,
            proptest::option::of(0i64..5),
            0u64..8,
            0u64..3,
            1u64..50,
        )
            .prop_map(|(k, v, hlc, origin, seq)| (k, entry(v, hlc, origin, seq)))
    }

    fn state_of(ops: &[(u8, Entry)]) -> Vec<(String, Option<Entry>)> {
        let mut r = Replica::new(99);
        for (k, e) in ops {
            r.merge(&k.to_string(), e.clone());
        }
        (0u8..4)
            .map(|k| (k.to_string(), r.entry(&k.to_string()).cloned()))
            .collect()
    }

    proptest! {
        // Applying the same set of writes in any order, any number of times, gives the
        // same state: merge is commutative, associative and idempotent.
        #[test]
        fn merge_is_order_and_duplicate_insensitive(
            ops in proptest::collection::vec(arb_entry(), 0..30),
            seed in any::<u64>(),
        ) {
            // Entries with equal rank must be identical for the law to be meaningful.
            let mut ops = ops;
            let mut seen = HashMap::new();
            ops.retain(|(_, e)| *seen.entry(e.rank()).or_insert_with(|| e.clone()) == *e);
            let mut shuffled = ops.clone();
            let mut rng = fastrand::Rng::with_seed(seed);
            rng.shuffle(&mut shuffled);
            let mut doubled = ops.clone();
            doubled.extend(shuffled.iter().cloned());
            prop_assert_eq!(state_of(&ops), state_of(&shuffled));
            prop_assert_eq!(state_of(&ops), state_of(&doubled));
        }

        // Merging replica A into B and B into A gives the same state (pairwise merge of
        // whole states, the associativity used by anti-entropy).
        #[test]
        fn state_merge_is_symmetric(
            a in proptest::collection::vec(arb_entry(), 0..20),
            b in proptest::collection::vec(arb_entry(), 0..20),
            c in proptest::collection::vec(arb_entry(), 0..20),
        ) {
            let mut all: Vec<_> = a.iter().chain(&b).chain(&c).cloned().collect();
            let mut seen = HashMap::new();
            all.retain(|(_, e)| *seen.entry(e.rank()).or_insert_with(|| e.clone()) == *e);
            let keep = |v: &Vec<(u8, Entry)>| -> Vec<(u8, Entry)> {
                v.iter().filter(|x| all.contains(x)).cloned().collect()
            };
            let (a, b, c) = (keep(&a), keep(&b), keep(&c));
            let ab_c: Vec<_> = a.iter().chain(&b).chain(&c).cloned().collect();
            let a_bc: Vec<_> = b.iter().chain(&c).chain(&a).cloned().collect();
            prop_assert_eq!(state_of(&ab_c), state_of(&a_bc));
        }
    }
}
