//! Version vectors: for each origin (one incarnation of one node), which of its write
//! sequence numbers this replica has accounted for.
//!
//! "Accounted for" means: every write of that origin with that sequence number is either
//! held or known to be superseded. Digests exchange only the contiguous prefix; the few
//! ranges received out of order are kept (bounded) so they are not fetched again.
//!
//! An origin whose writes are all superseded everywhere may be *retired* (see
//! `retire`): its set `1..=n` is replaced by a record `origin ≤ n` that still accounts
//! for those writes, so a late copy of one is dropped as before, but is no longer sent
//! in digests nor counted in fingerprints. Anything of the origin above `n` brings the
//! origin back as `1..=n` plus what arrived.

use std::collections::HashMap;

/// Identifier of an origin: one incarnation of one node (random 64 bits).
pub type OriginId = u64;

/// Most out-of-order ranges remembered per origin. Forgetting one is safe: its writes
/// are simply sent again by the next anti-entropy round.
const MAX_EXTRA_RANGES: usize = 32;

/// The sequence numbers of one origin accounted for: `1..=upto` plus a few ranges above.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeqSet {
    upto: u64,
    /// Sorted, disjoint, non-adjacent inclusive ranges, all above `upto + 1`.
    extra: Vec<(u64, u64)>,
}

impl SeqSet {
    /// The contiguous prefix: every sequence number `1..=upto` is accounted for.
    pub fn upto(&self) -> u64 {
        self.upto
    }

    /// Whether `seq` is accounted for.
    pub fn contains(&self, seq: u64) -> bool {
        seq <= self.upto || self.extra.iter().any(|&(lo, hi)| lo <= seq && seq <= hi)
    }

    /// Accounts for the inclusive range `lo..=hi`.
    pub fn insert_range(&mut self, lo: u64, hi: u64) {
        if lo > hi || hi <= self.upto {
            return;
        }
        let lo = lo.max(self.upto + 1);
        // Merge with overlapping or adjacent ranges.
        let mut merged = (lo, hi);
        self.extra.retain(|&(a, b)| {
            let touches = a <= merged.1.saturating_add(1) && merged.0 <= b.saturating_add(1);
            if touches {
                merged = (merged.0.min(a), merged.1.max(b));
            }
            !touches
        });
        let at = self.extra.partition_point(|&(a, _)| a < merged.0);
        self.extra.insert(at, merged);
        if let Some(&(a, b)) = self.extra.first() {
            if a <= self.upto + 1 {
                self.upto = self.upto.max(b);
                self.extra.remove(0);
            }
        }
        self.extra.truncate(MAX_EXTRA_RANGES);
    }

    /// Stops accounting for every sequence number above `cap`.
    pub fn withdraw_above(&mut self, cap: u64) {
        self.upto = self.upto.min(cap);
        self.extra.retain_mut(|(lo, hi)| {
            *hi = (*hi).min(cap);
            *lo <= cap
        });
    }

    /// Whether the set is exactly `1..=upto`, nothing out of order above it.
    pub fn is_prefix(&self) -> bool {
        self.extra.is_empty()
    }

    /// Every accounted range, the prefix first (as `1..=upto`, skipped when empty).
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let prefix = (self.upto > 0).then_some((1, self.upto));
        prefix.into_iter().chain(self.extra.iter().copied())
    }
}

/// A version vector: origin to accounted sequence numbers, and the retired origins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionVector {
    origins: HashMap<OriginId, SeqSet>,
    /// Retired origins: every write of `origin` up to the value is accounted for.
    retired: HashMap<OriginId, u64>,
}

/// A digest: each origin's contiguous prefix. What a peer sends to say what it has.
pub type Digest = Vec<(OriginId, u64)>;

impl VersionVector {
    /// The set of one origin, if any of its writes are accounted for.
    pub fn get(&self, origin: OriginId) -> Option<&SeqSet> {
        self.origins.get(&origin)
    }

    /// The contiguous prefix of one origin (0 when unknown).
    pub fn upto(&self, origin: OriginId) -> u64 {
        self.origins.get(&origin).map_or(0, SeqSet::upto)
    }

    /// Whether `origin` is held (not retired, not unknown).
    pub fn holds(&self, origin: OriginId) -> bool {
        self.origins.contains_key(&origin)
    }

    /// Whether `(origin, seq)` is accounted for (a retired origin's included).
    pub fn contains(&self, origin: OriginId, seq: u64) -> bool {
        match self.origins.get(&origin) {
            Some(set) => set.contains(seq),
            None => self.retired.get(&origin).is_some_and(|&n| seq <= n),
        }
    }

    /// Whether `1..=n` of `origin` is accounted for (a retired origin's included).
    pub fn accounts_prefix(&self, origin: OriginId, n: u64) -> bool {
        n == 0
            || match self.origins.get(&origin) {
                Some(set) => set.upto >= n,
                None => self.retired.get(&origin).is_some_and(|&r| n <= r),
            }
    }

    /// Whether accounting for `lo..=hi` of `origin` would add an origin to the vector:
    /// one it does not hold, unless retired with the whole range at or below its
    /// record.
    pub fn would_add(&self, origin: OriginId, hi: u64) -> bool {
        !self.origins.contains_key(&origin)
            && self.retired.get(&origin).is_none_or(|&n| hi > n)
    }

    /// Accounts for `lo..=hi` of `origin`. A retired origin comes back, as `1..=n`
    /// plus the range, if the range goes beyond its record.
    pub fn insert_range(&mut self, origin: OriginId, lo: u64, hi: u64) {
        if lo > hi {
            return;
        }
        if let Some(&n) = self.retired.get(&origin) {
            if hi <= n {
                return;
            }
            self.retired.remove(&origin);
            self.origins.entry(origin).or_default().insert_range(1, n);
        }
        self.origins.entry(origin).or_default().insert_range(lo, hi);
    }

    /// Retires `origin` if its set is exactly `1..=n` with `n > 0`: from now on only
    /// the record `origin ≤ n` remains. Returns whether it was retired.
    pub fn retire(&mut self, origin: OriginId) -> bool {
        let Some(set) = self.origins.get(&origin) else {
            return false;
        };
        if !set.is_prefix() || set.upto == 0 {
            return false;
        }
        let n = set.upto;
        self.origins.remove(&origin);
        self.retired.insert(origin, n);
        true
    }

    /// Records `origin` as retired at `n` (restoring from a store); an origin the vector
    /// holds stays as it is.
    pub fn restore_retired(&mut self, origin: OriginId, n: u64) {
        if !self.origins.contains_key(&origin) {
            let record = self.retired.entry(origin).or_default();
            *record = (*record).max(n);
        }
    }

    /// Every retired origin and the prefix its record accounts for.
    pub fn retired(&self) -> impl Iterator<Item = (OriginId, u64)> + '_ {
        self.retired.iter().map(|(o, n)| (*o, *n))
    }

    /// Number of retired origins.
    pub fn retired_len(&self) -> usize {
        self.retired.len()
    }

    /// Stops accounting for the sequence numbers of `origin` above `cap`.
    pub fn withdraw_above(&mut self, origin: OriginId, cap: u64) {
        if let Some(set) = self.origins.get_mut(&origin) {
            set.withdraw_above(cap);
        }
    }

    /// Every origin and its set.
    pub fn iter(&self) -> impl Iterator<Item = (OriginId, &SeqSet)> {
        self.origins.iter().map(|(o, s)| (*o, s))
    }

    /// Number of origins held (retired ones excluded).
    pub fn len(&self) -> usize {
        self.origins.len()
    }

    /// Whether no origin is held.
    #[cfg(any(test, feature = "test-util"))]
    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// The digest (contiguous prefixes), sorted by origin so equal vectors give equal
    /// digests.
    pub fn digest(&self) -> Digest {
        let mut d: Digest = self
            .origins
            .iter()
            .filter(|(_, s)| s.upto > 0)
            .map(|(o, s)| (*o, s.upto))
            .collect();
        d.sort_unstable();
        d
    }

    /// A 64-bit fingerprint of the digest, carried in heartbeats so peers notice they
    /// differ without exchanging whole digests.
    pub fn fingerprint(&self) -> u64 {
        fingerprint_of(self.origins.iter().map(|(o, s)| (*o, s.upto)))
    }
}

/// The fingerprint of a digest given as `(origin, contiguous prefix)` pairs, in any
/// order: equal to [`VersionVector::fingerprint`] of a vector with that digest.
pub(crate) fn fingerprint_of(digest: impl Iterator<Item = (OriginId, u64)>) -> u64 {
    // Order-independent: a sum of per-origin mixes.
    digest
        .filter(|&(_, upto)| upto > 0)
        .fold(0u64, |acc, (o, upto)| acc.wrapping_add(mix(o ^ mix(upto))))
}

/// SplitMix64 finaliser: a cheap, well-spread 64-bit mix.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn out_of_order_ranges_join_the_prefix() {
        let mut s = SeqSet::default();
        s.insert_range(5, 6);
        assert_eq!(s.upto(), 0);
        assert!(s.contains(5) && !s.contains(4));
        s.insert_range(1, 4);
        assert_eq!(s.upto(), 6);
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![(1, 6)]);
    }

    #[test]
    fn a_retired_origin_stays_accounted_for_and_comes_back_above_its_record() {
        let mut vv = VersionVector::default();
        vv.insert_range(7, 1, 5);
        vv.insert_range(8, 1, 2);
        vv.insert_range(8, 4, 4);
        assert!(!vv.retire(8), "a set with a hole is not a prefix");
        let before = vv.fingerprint();
        assert!(vv.retire(7));
        assert_eq!(vv.len(), 1);
        assert_eq!(vv.digest(), vec![(8, 2)], "no longer in the digest");
        assert_ne!(vv.fingerprint(), before);
        assert!(vv.contains(7, 1) && vv.contains(7, 5) && !vv.contains(7, 6));
        assert!(!vv.would_add(7, 5), "a late copy adds nothing");
        vv.insert_range(7, 2, 5);
        assert_eq!(vv.retired_len(), 1);
        assert!(vv.would_add(7, 6));
        vv.insert_range(7, 8, 8);
        assert_eq!(vv.retired_len(), 0, "a write above the record brings it back");
        assert_eq!(vv.upto(7), 5);
        assert!(vv.contains(7, 8) && !vv.contains(7, 6));
    }

    proptest! {
        #[test]
        fn seqset_matches_a_plain_set(ranges in proptest::collection::vec((1u64..200, 0u64..10), 0..30)) {
            let mut s = SeqSet::default();
            let mut model = std::collections::BTreeSet::new();
            for (lo, len) in ranges {
                s.insert_range(lo, lo + len);
                model.extend(lo..=lo + len);
            }
            // The prefix is exact; extra ranges may only be forgotten, never invented.
            let mut upto = 0;
            while model.contains(&(upto + 1)) { upto += 1; }
            prop_assert_eq!(s.upto(), upto);
            for seq in 1..220 {
                if s.contains(seq) { prop_assert!(model.contains(&seq)); }
            }
        }
    }
}
