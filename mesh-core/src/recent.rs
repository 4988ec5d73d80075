//! Writes of other origins that reached this node lately, which a stream to a peer
//! leaves out.
//!
//! A live origin pushes each write to every member itself, and its transport resends
//! what is lost or, giving up, starts a sync with that member. A peer that lacks such a
//! write moments after it was made most likely has it on its way from its origin: a
//! third node streaming it too sends it twice (under load, most of a burst). So a
//! stream carries another reachable origin's writes only once this node has held them
//! since the checkpoint before last, one to two sync intervals; a peer still lacking
//! them then missed the push, and gets them in that round. Beyond the push fanout the
//! origin's writes travel the broadcast tree instead, which repairs its own losses with
//! grafts (see `broadcast`): the same holds.

use std::collections::HashMap;

use crate::sync::SeqRange;
use crate::version::{OriginId, VersionVector};

/// Shortest quiet after new writes arrived before a sync may start: a burst comes in
/// waves a push slot or a few round trips apart.
pub(crate) const ARRIVAL_QUIET_US: u64 = 100_000;

/// Per origin, the highest sequence number held at the last two checkpoints; and when
/// writes new to this node last arrived.
#[derive(Debug, Default)]
pub(crate) struct RecentWrites {
    older: HashMap<OriginId, u64>,
    newer: HashMap<OriginId, u64>,
    arrived_us: Option<u64>,
}

impl RecentWrites {
    /// Notes what `ours` holds now of each origin, and of each of `members` (their
    /// current origins) that it holds nothing of yet; called once per sync interval.
    pub fn checkpoint(&mut self, ours: &VersionVector, members: impl Iterator<Item = OriginId>) {
        self.older = std::mem::take(&mut self.newer);
        self.newer = members.map(|origin| (origin, 0)).collect();
        for (origin, set) in ours.iter() {
            if let Some((_, hi)) = set.ranges().last() {
                self.newer.insert(origin, hi);
            }
        }
    }

    /// Writes new to this node arrived at `now_us`, by any path.
    pub fn note_arrival(&mut self, now_us: u64) {
        self.arrived_us = Some(now_us);
    }

    /// Until when, seen at `now_us`, writes count as still arriving, if they do:
    /// `quiet_us` after the last new one.
    pub fn arriving_until(&self, now_us: u64, quiet_us: u64) -> Option<u64> {
        let until = self.arrived_us? + quiet_us;
        (now_us < until).then_some(until)
    }

    /// `range` less the writes that arrived since the checkpoint before last, if its
    /// origin is one `pushes_itself` says still pushes its own writes. An origin absent
    /// from that checkpoint is not cut: this node knows nothing of how its writes came.
    pub fn settled_part(
        &self,
        (origin, lo, hi): SeqRange,
        pushes_itself: impl Fn(OriginId) -> bool,
    ) -> Option<SeqRange> {
        let Some(&settled) = self.older.get(&origin).filter(|_| pushes_itself(origin)) else {
            return Some((origin, lo, hi));
        };
        (lo <= settled).then_some((origin, lo, hi.min(settled)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_count_as_arriving_for_a_quiet_spell_after_the_last() {
        let mut recent = RecentWrites::default();
        assert_eq!(recent.arriving_until(0, ARRIVAL_QUIET_US), None);
        recent.note_arrival(1_000);
        assert_eq!(
            recent.arriving_until(1_000, ARRIVAL_QUIET_US),
            Some(1_000 + ARRIVAL_QUIET_US)
        );
        assert_eq!(
            recent.arriving_until(1_000 + ARRIVAL_QUIET_US, ARRIVAL_QUIET_US),
            None
        );
        assert_eq!(
            recent.arriving_until(1_000 + ARRIVAL_QUIET_US, 2 * ARRIVAL_QUIET_US),
            Some(1_000 + 2 * ARRIVAL_QUIET_US)
        );
    }

    #[test]
    fn writes_newer_than_the_checkpoint_before_last_are_cut_for_origins_that_push() {
        let mut vv = VersionVector::default();
        let mut recent = RecentWrites::default();
        vv.insert_range(7, 1, 10);
        recent.checkpoint(&vv, [9].into_iter());
        vv.insert_range(7, 11, 20);
        assert_eq!(recent.settled_part((7, 5, 20), |_| true), Some((7, 5, 20)));
        recent.checkpoint(&vv, [9].into_iter());
        vv.insert_range(7, 21, 30);
        vv.insert_range(9, 1, 4);
        assert_eq!(recent.settled_part((7, 5, 30), |_| true), Some((7, 5, 10)));
        assert_eq!(recent.settled_part((7, 11, 30), |_| true), None);
        assert_eq!(
            recent.settled_part((7, 11, 30), |_| false),
            Some((7, 11, 30))
        );
        assert_eq!(recent.settled_part((8, 1, 3), |_| true), Some((8, 1, 3)));
        // A member heard of before it wrote anything: all its writes are recent.
        assert_eq!(recent.settled_part((9, 1, 4), |_| true), None);
        recent.checkpoint(&vv, std::iter::empty());
        assert_eq!(
            recent.settled_part((7, 11, 30), |_| true),
            Some((7, 11, 20))
        );
    }
}
