//! When an origin may be retired.
//!
//! Every run of every node is an origin, and the version vector accounts for each one's
//! writes; without retirement, digests and fingerprints grow with every restart in the
//! mesh's history. An origin `O` held as exactly `1..=n` is retired (replaced by the
//! record `O ≤ n`, see `version`) once:
//!
//! - no entry this node holds names `O`: each of its writes was superseded, or deleted
//!   and the tombstone collected;
//! - `O` is not this node's own origin, nor the incarnation of any member in the table
//!   (whatever its state: a failed member may come back and write on), nor vouched for
//!   by anyone (see `frontier`);
//! - every reachable member (alive or suspect, its address proven) sent a digest, and
//!   each either reports `O` at exactly `n` or does not name `O` at all (it retired `O`
//!   itself, or never heard of it and has nothing of it to send); a peer behind or ahead
//!   makes this node wait, so no node retires what another is still streaming to it or
//!   still lacks. A dead member, or an address that never proved itself, is not waited
//!   for: remembered for the tombstone grace, it would keep this node's digest apart
//!   from that of nodes that forgot it (or never heard of it), and the two would sync
//!   without end. One that comes back is synced with like any peer;
//! - the node is past the same warm-up as tombstone collection, so gossip had time to
//!   tell it the whole membership.
//!
//! Safety does not rest on that agreement: the record keeps `O`'s writes up to `n`
//! accounted for, so a late retransmission or a lagging peer's copy of one is dropped
//! exactly as the vector entry dropped it; a write above `n` brings `O` back. What the
//! agreement buys is convergence: every node ends with the same digest, so fingerprints
//! agree and no sync is triggered by an origin one side retired and the other kept.
//!
//! Records are never forgotten (forgetting one would let a returning node bring back a
//! superseded write of `O`), so they are bounded on their own: past `16 × max_origins`
//! records, nothing more is retired, and origins stay in the vector until `max_origins`
//! refuses new ones, the safe way to fail.

use std::collections::HashSet;

use crate::config::Config;
use crate::replica::Replica;
use crate::sync::PeerView;
use crate::time::us;
use crate::version::OriginId;

/// Retired records kept at most, per origin of `max_origins`.
const RECORDS_PER_ORIGIN: usize = 16;

/// The retirement rules, from the configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetireRules {
    warmup_us: u64,
    max_records: usize,
}

impl RetireRules {
    /// The rules `config` implies.
    pub fn new(config: &Config) -> RetireRules {
        RetireRules {
            // The tombstone collection's warm-up (see `tombstones`).
            warmup_us: (20 * us(config.heartbeat_interval)).max(2 * us(config.peer_timeout)),
            max_records: config.max_origins.saturating_mul(RECORDS_PER_ORIGIN),
        }
    }

    /// Retires what the rules allow, given what every known peer reports (`None` for a
    /// peer without a digest) and the origins still in use (`in_use`: members'
    /// incarnations and vouched origins); returns how many origins were retired.
    pub fn retire<'a>(
        &self,
        replica: &mut Replica,
        peers: impl Iterator<Item = Option<PeerView<'a>>>,
        in_use: &HashSet<OriginId>,
        now_us: u64,
        started_at_us: u64,
    ) -> usize {
        if now_us.saturating_sub(started_at_us) < self.warmup_us {
            return 0;
        }
        let Some(peers) = peers.collect::<Option<Vec<PeerView>>>() else {
            return 0; // a peer without a digest: its word is missing
        };
        if peers.is_empty() {
            return 0;
        }
        let own = replica.own_origin();
        let vv = replica.version_vector();
        let room = self.max_records.saturating_sub(vv.retired_len());
        let mut candidates: Vec<OriginId> = vv
            .iter()
            .filter(|(origin, set)| {
                *origin != own
                    && set.is_prefix()
                    && !in_use.contains(origin)
                    && !replica.holds_any_of(*origin)
                    && set.ranges().next().is_some_and(|(_, n)| {
                        peers.iter().all(|p| p.reported(*origin).is_none_or(|m| m == n))
                    })
            })
            .map(|(origin, _)| origin)
            .collect();
        // Sorted so the records kept when room runs out do not depend on hash order.
        candidates.sort_unstable();
        candidates.truncate(room);
        candidates
            .into_iter()
            .filter(|&origin| replica.retire(origin))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sync::PeerDigest;
    use crate::value::Value;

    fn rules() -> RetireRules {
        let mut config = Config::new("n", 0);
        config.heartbeat_interval = Duration::from_millis(100);
        config.peer_timeout = Duration::from_millis(500);
        config.max_origins = 2;
        RetireRules::new(&config)
    }

    const LATER: u64 = 10_000_000;

    /// A replica of origin 1 that accounts for origin 8 up to 3 and holds a write of 9
    /// that superseded 8's.
    fn replica() -> Replica {
        let mut r = Replica::new(1);
        let entry = |origin, seq, hlc| crate::replica::Entry {
            value: Some(Value::Int(0)),
            hlc,
            origin,
            seq,
            expires: None,
        };
        r.merge("k", entry(8, 3, 10));
        r.cover(8, 1, 3);
        r.merge("k", entry(9, 1, 20));
        r.cover(9, 1, 1);
        r
    }

    #[test]
    fn every_peer_must_report_the_same_prefix_or_none() {
        let rules = rules();
        let none = HashSet::new();
        let same: PeerDigest = [(8, 3), (9, 1)].into_iter().collect();
        let behind: PeerDigest = [(8, 2), (9, 1)].into_iter().collect();
        let retired: PeerDigest = [(9, 1)].into_iter().collect();
        let mut r = replica();
        let peers = [Some(PeerView::of(&same)), Some(PeerView::of(&behind))];
        assert_eq!(rules.retire(&mut r, peers.into_iter(), &none, LATER, 0), 0);
        let peers = [Some(PeerView::of(&same)), None];
        assert_eq!(rules.retire(&mut r, peers.into_iter(), &none, LATER, 0), 0);
        assert_eq!(rules.retire(&mut r, std::iter::empty(), &none, LATER, 0), 0);
        let peers = [Some(PeerView::of(&same)), Some(PeerView::of(&retired))];
        assert_eq!(rules.retire(&mut r, peers.into_iter(), &none, 1_000, 0), 0, "warming up");
        assert_eq!(rules.retire(&mut r, peers.into_iter(), &none, LATER, 0), 1);
        let vv = r.version_vector();
        assert_eq!(vv.len(), 1, "9 only, which a held entry names");
        assert!(vv.contains(8, 3) && vv.retired_len() == 1);
    }

    #[test]
    fn an_origin_in_use_is_kept() {
        let rules = rules();
        let same: PeerDigest = [(8, 3), (9, 1)].into_iter().collect();
        let mut r = replica();
        let member: HashSet<OriginId> = [8].into_iter().collect();
        let peers = || [Some(PeerView::of(&same))].into_iter();
        assert_eq!(rules.retire(&mut r, peers(), &member, LATER, 0), 0);
        // Room for 32 records with max_origins = 2.
        assert_eq!(rules.retire(&mut r, peers(), &HashSet::new(), LATER, 0), 1);
    }

    #[test]
    fn records_past_the_bound_stop_retirement() {
        let rules = RetireRules {
            warmup_us: 0,
            max_records: 1,
        };
        let mut r = replica();
        r.cover(7, 1, 1);
        r.cover(6, 1, 1);
        let nobody: PeerDigest = PeerDigest::new();
        let peers = || [Some(PeerView::of(&nobody))].into_iter();
        assert_eq!(rules.retire(&mut r, peers(), &HashSet::new(), LATER, 0), 1);
        assert_eq!(rules.retire(&mut r, peers(), &HashSet::new(), LATER, 0), 0);
        assert_eq!(r.version_vector().retired_len(), 1);
        assert!(r.version_vector().contains(6, 1), "retired first, in origin order");
    }
}
