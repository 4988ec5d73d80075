//! The engine's side of durability: it records what changed, the driver writes it.
//!
//! The engine never touches a file (see `store`): [`Engine::restore`] takes what the
//! driver loaded, and [`Engine::take_store_batch`] hands over what changed since the last
//! batch, as one consistent cut of the replica.

use super::Engine;
use crate::store::{Snapshot, StoreBatch, StoreLog};
use crate::time::Now;

impl Engine {
    /// Installs a replica loaded from the store (see [`crate::store::Store::open`]): its
    /// entries, its version vector and the clock's high-water mark, so reads work at once
    /// and the clock never goes back across a restart, and the collected deletes it still
    /// remembered (see `collected`). Call it on a new engine, before any write and before
    /// [`Engine::start`].
    pub fn restore(&mut self, snapshot: Snapshot) {
        let newest = snapshot.entries.iter().map(|(_, e)| e.hlc).max();
        self.clock.raise_to(snapshot.hlc.max(newest.unwrap_or(0)));
        self.replica.restore(snapshot.entries, &snapshot.vv);
        self.replica.restore_collected(snapshot.collected);
    }

    /// Starts recording changes for [`Engine::take_store_batch`]. Without it (the
    /// default, no store) nothing is recorded.
    pub fn record_store_changes(&mut self) {
        if self.replica.store_log.is_none() {
            self.replica.store_log = Some(StoreLog::default());
        }
        self.replica.record_collected_changes();
    }

    /// What changed since the last batch, if anything is due: changed keys, collected
    /// deletes remembered or forgotten, the version vector if it changed, the clock's
    /// high-water mark, and the time (refreshed on disk at least every
    /// `tombstone_grace / 16`, at most every minute, while idle).
    pub fn take_store_batch(&mut self, now: Now) -> Option<StoreBatch> {
        let touch_ms = StoreLog::touch_interval_ms(self.config.tombstone_grace);
        let hlc = self.clock.last();
        let collected_changed = self.replica.has_collected_changes();
        let log = self.replica.store_log.as_mut()?;
        if !collected_changed && !log.due(hlc, now.wall_ms, touch_ms) {
            return None;
        }
        let (keys, vv_changed) = log.take(hlc, now.wall_ms);
        let changes = keys
            .into_iter()
            .map(|key| {
                let entry = self.replica.stored_entry(&key);
                (key, entry)
            })
            .collect();
        let vv = vv_changed.then(|| self.replica.stored_vv());
        Some(StoreBatch {
            changes,
            collected: self.replica.take_collected_changes(),
            vv,
            hlc,
            wall_ms: now.wall_ms,
        })
    }

    /// Batches taken so far by [`Engine::take_store_batch`]: a change made now is in
    /// batch number `store_batches_taken() + 1`.
    pub fn store_batches_taken(&self) -> u64 {
        self.replica.store_log.as_ref().map_or(0, |log| log.taken)
    }

    /// Whether changes wait for the next batch.
    pub fn has_store_changes(&self) -> bool {
        self.replica
            .store_log
            .as_ref()
            .is_some_and(|log| log.is_dirty())
            || self.replica.has_collected_changes()
    }
}
