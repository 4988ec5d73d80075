//! A simulated disk per node: what the node's store holds.
//!
//! The driver's store thread is modelled by [`SimDisk::flush_due`]: every
//! `flush_interval` of virtual time, the node's pending store batch is applied. A crash
//! keeps what was applied and loses the rest (the engine's unflushed changes die with
//! it); a restart loads the disk, as `Store::open` loads the file, including the
//! tombstone-grace rule.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::engine::Engine;
use crate::replica::Entry;
use crate::store::{Snapshot, StoreBatch, StoredVv};
use crate::time::Now;

/// One node's disk.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    entries: BTreeMap<String, Entry>,
    /// The collected deletes remembered.
    collected: BTreeMap<String, Entry>,
    vv: StoredVv,
    /// The clock's high-water mark on disk.
    pub hlc: u64,
    /// The last incarnation recorded.
    pub incarnation: u64,
    wall_ms: u64,
    next_flush_us: u64,
}

impl SimDisk {
    /// Applies `engine`'s pending batch if a flush is due at `now`.
    pub fn flush_due(&mut self, engine: &mut Engine, now: Now, interval_us: u64) {
        if now.mono_us < self.next_flush_us {
            return;
        }
        self.next_flush_us = now.mono_us + interval_us;
        if let Some(batch) = engine.take_store_batch(now) {
            self.apply(batch);
        }
    }

    fn apply(&mut self, batch: StoreBatch) {
        apply_changes(&mut self.entries, batch.changes);
        apply_changes(&mut self.collected, batch.collected);
        if let Some(vv) = batch.vv {
            self.vv = vv;
        }
        self.hlc = self.hlc.max(batch.hlc);
        self.wall_ms = self.wall_ms.max(batch.wall_ms);
    }

    /// Opens the disk for a run starting at wall time `wall_ms` (see `Store::open`):
    /// returns the snapshot to restore, and whether the state was discarded for being
    /// older than `grace_ms`.
    pub fn open(&mut self, wall_ms: u64, grace_ms: u64) -> (Snapshot, bool) {
        let stale = self.wall_ms > 0 && wall_ms.saturating_sub(self.wall_ms) > grace_ms;
        if stale {
            self.entries.clear();
            self.collected.clear();
            self.vv.clear();
        }
        self.wall_ms = self.wall_ms.max(wall_ms);
        let listed = |map: &BTreeMap<String, Entry>| {
            map.iter().map(|(k, e)| (k.clone(), e.clone())).collect()
        };
        let snapshot = Snapshot {
            entries: listed(&self.entries),
            collected: listed(&self.collected),
            vv: self.vv.clone(),
            hlc: self.hlc,
            incarnation: self.incarnation,
            wall_ms: self.wall_ms,
        };
        (snapshot, stale)
    }

    /// Whether the disk holds the write `(key, rank)` or one that beats it, or (for a
    /// delete) accounts for it.
    pub fn keeps(&self, key: &str, rank: (u64, u64, u64), is_delete: bool) -> bool {
        let (_, origin, seq) = rank;
        self.entries.get(key).is_some_and(|e| e.rank() >= rank)
            || (is_delete
                && self.vv.iter().any(|(o, ranges)| {
                    *o == origin && ranges.iter().any(|&(lo, hi)| lo <= seq && seq <= hi)
                }))
    }
}

/// Puts (`Some`) or removes (`None`) each key of `changes` in `map`.
fn apply_changes(map: &mut BTreeMap<String, Entry>, changes: Vec<(Arc<str>, Option<Entry>)>) {
    for (key, change) in changes {
        match change {
            Some(entry) => {
                map.insert(key.to_string(), entry);
            }
            None => {
                map.remove(key.as_ref());
            }
        }
    }
}
