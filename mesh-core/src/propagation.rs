//! How long remote writes took to reach this replica: from the wall-clock part of a
//! write's hybrid logical timestamp to the moment this node applied it.
//!
//! Fixed buckets, so the histogram costs a few words whatever the traffic, and sans-IO:
//! the engine passes the time of application in (its `now`). The figure includes the
//! difference between the writer's clock and ours, which is what an operator watching a
//! mesh wants to see too; a write stamped ahead of our clock counts as zero lag.

use serde::Serialize;

use crate::hlc;

/// Upper bounds of the buckets, in milliseconds (the last bucket, above these, is open).
pub const BUCKET_BOUNDS_MS: [u64; 15] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
];

/// A histogram of propagation lags of the remote writes applied so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PropagationLag {
    /// Writes per bucket (not cumulative): `buckets[i]` counts lags at most
    /// `BUCKET_BOUNDS_MS[i]` and above the previous bound; the last counts the rest.
    pub buckets: [u64; BUCKET_BOUNDS_MS.len() + 1],
    /// Writes recorded.
    pub count: u64,
    /// Sum of the recorded lags, in milliseconds.
    pub sum_ms: u64,
}

impl PropagationLag {
    /// Records a write stamped `hlc` applied at wall-clock `applied_wall_ms`.
    pub fn record(&mut self, hlc: u64, applied_wall_ms: u64) {
        let lag_ms = applied_wall_ms.saturating_sub(hlc::physical_ms(hlc));
        let bucket = BUCKET_BOUNDS_MS
            .iter()
            .position(|&bound| lag_ms <= bound)
            .unwrap_or(BUCKET_BOUNDS_MS.len());
        self.buckets[bucket] += 1;
        self.count += 1;
        self.sum_ms = self.sum_ms.saturating_add(lag_ms);
    }

    /// Each bucket's upper bound in milliseconds (`None` for the open last one) with its
    /// count, not cumulative.
    pub fn by_bucket(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        BUCKET_BOUNDS_MS
            .iter()
            .map(|&bound| Some(bound))
            .chain(std::iter::once(None))
            .zip(self.buckets.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(wall_ms: u64) -> u64 {
        wall_ms << hlc::LOGICAL_BITS | 7
    }

    #[test]
    fn lags_land_in_the_bucket_of_their_upper_bound() {
        let mut lag = PropagationLag::default();
        lag.record(stamp(1_000), 1_000); // 0 ms
        lag.record(stamp(1_000), 1_001); // 1 ms: bound inclusive
        lag.record(stamp(1_000), 1_003); // 3 ms -> the 5 ms bucket
        lag.record(stamp(1_000), 100_000); // 99 s -> open bucket
        assert_eq!(lag.buckets[0], 2);
        assert_eq!(lag.buckets[2], 1);
        assert_eq!(lag.buckets[BUCKET_BOUNDS_MS.len()], 1);
        assert_eq!(lag.count, 4);
        assert_eq!(lag.sum_ms, 1 + 3 + 99_000);
    }

    #[test]
    fn a_write_stamped_ahead_of_our_clock_counts_as_no_lag() {
        let mut lag = PropagationLag::default();
        lag.record(stamp(5_000), 4_000);
        assert_eq!((lag.buckets[0], lag.sum_ms), (1, 0));
    }

    #[test]
    fn buckets_list_every_bound_then_the_open_one() {
        let lag = PropagationLag::default();
        let bounds: Vec<Option<u64>> = lag.by_bucket().map(|(b, _)| b).collect();
        assert_eq!(bounds.len(), BUCKET_BOUNDS_MS.len() + 1);
        assert_eq!(bounds[0], Some(1));
        assert_eq!(bounds.last(), Some(&None));
    }
}
