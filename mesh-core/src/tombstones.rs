//! When a tombstone may be forgotten.
//!
//! A tombstone is collected once every peer this node knows (reachable or not, with or
//! without a node id yet) has confirmed in its last digest that it accounted for the
//! delete, and the delete is older than two sync intervals; or in any case after
//! `tombstone_grace`. A peer never heard from, or restarted since its last digest, has no
//! digest and blocks collection: collecting early would let a node that missed the
//! delete keep the old value forever, since the collector's version vector already
//! accounts for the delete. A freshly started node waits until gossip had time to tell
//! it the whole membership.
//!
//! Nor does a node collect while a peer's digest accounts for writes its own version
//! vector does not. One of them may be an older write of the deleted key, still on its
//! way here (a push retransmitted, a stream queued before the delete): the tombstone
//! beats it, but once collected nothing would, and this node alone would take the old
//! value back while every peer skips it as accounted for.
//!
//! A node nobody here knows can neither confirm nor hold collection back. What is
//! collected is remembered until the grace (see `collected`), so that an older value such
//! a node offers later still loses to the delete.
//!
//! A value written with a TTL becomes a tombstone when it expires (see `replica`) and is
//! collected by the same rules, its age counted from its expiry.

use crate::config::Config;
use crate::hlc::physical_ms;
use crate::replica::{Entry, Replica};
use crate::sync::PeerView;
#[cfg(test)]
use crate::sync::PeerDigest;
use crate::time::{us, Now};

/// The collection rules, from the configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TombstoneRules {
    grace_ms: u64,
    min_age_ms: u64,
    warmup_us: u64,
}

impl TombstoneRules {
    /// The rules `config` implies.
    pub fn new(config: &Config) -> TombstoneRules {
        TombstoneRules {
            grace_ms: config.tombstone_grace.as_millis() as u64,
            min_age_ms: 2 * config.sync_interval.as_millis() as u64,
            // Long enough for gossip to spread the membership to a new node.
            warmup_us: (20 * us(config.heartbeat_interval)).max(2 * us(config.peer_timeout)),
        }
    }

    /// Collects what the rules allow, given what every known peer accounts for (`None`
    /// for a peer without a digest); returns how many tombstones went.
    pub fn collect<'a>(
        &self,
        replica: &mut Replica,
        digests: impl Iterator<Item = Option<PeerView<'a>>>,
        now: Now,
        started_at_us: u64,
    ) -> usize {
        let warmed_up = now.mono_us.saturating_sub(started_at_us) >= self.warmup_us;
        let digests: Vec<Option<PeerView>> = digests.collect();
        let ours = replica.version_vector();
        let caught_up = digests
            .iter()
            .flatten()
            .all(|d| d.reported_all().all(|(origin, upto)| ours.accounts_prefix(origin, upto)));
        let everyone_confirmed = |entry: &Entry| {
            warmed_up
                && caught_up
                && !digests.is_empty()
                && digests.iter().all(|d| {
                    d.is_some_and(|d| d.accounts(entry.origin).is_some_and(|upto| upto >= entry.seq))
                })
        };
        replica.forget_collected_before(now.wall_ms.saturating_sub(self.grace_ms));
        replica.collect_tombstones(|entry| {
            // An expired value's tombstone ages from its expiry, a delete's from its write.
            let age_ms = now.wall_ms.saturating_sub(physical_ms(entry.dead_since()));
            age_ms >= self.grace_ms || (age_ms >= self.min_age_ms && everyone_confirmed(entry))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const WALL: u64 = 1_767_225_600_000;

    fn setup() -> (TombstoneRules, Replica) {
        let mut config = Config::new("n", 0);
        config.sync_interval = Duration::from_secs(1);
        config.heartbeat_interval = Duration::from_millis(100);
        config.peer_timeout = Duration::from_millis(500);
        config.tombstone_grace = Duration::from_secs(60);
        let mut replica = Replica::new(4);
        replica.write_local("gone", None, WALL << 16);
        (TombstoneRules::new(&config), replica)
    }

    fn at(secs: u64) -> Now {
        Now {
            mono_us: secs * 1_000_000,
            wall_ms: WALL + secs * 1000,
        }
    }

    #[test]
    fn every_known_peer_must_confirm() {
        let (rules, mut replica) = setup();
        let confirmed: PeerDigest = [(4, 1)].into_iter().collect();
        let behind: PeerDigest = [(4, 0)].into_iter().collect();
        let peers = [Some(PeerView::of(&confirmed)), Some(PeerView::of(&behind)), None];
        assert_eq!(rules.collect(&mut replica, peers.into_iter(), at(5), 0), 0);
        let peers = [Some(PeerView::of(&confirmed)), None];
        assert_eq!(rules.collect(&mut replica, peers.into_iter(), at(5), 0), 0);
        assert_eq!(rules.collect(&mut replica, std::iter::empty(), at(5), 0), 0);
        let peers = [Some(PeerView::of(&confirmed)), Some(PeerView::of(&confirmed))];
        assert_eq!(rules.collect(&mut replica, peers.into_iter(), at(5), 0), 1);
        assert_eq!(replica.tombstone_len(), 0);
    }

    #[test]
    fn not_while_a_peer_accounts_for_writes_this_node_lacks() {
        let (rules, mut replica) = setup();
        // A peer holds write 5 of origin 9, which this node never saw: an older write of
        // the deleted key may be on its way, which only the tombstone can beat.
        let ahead: PeerDigest = [(4, 1), (9, 5)].into_iter().collect();
        let peers = || [Some(PeerView::of(&ahead))].into_iter();
        assert_eq!(rules.collect(&mut replica, peers(), at(5), 0), 0);
        replica.cover(9, 1, 4);
        assert_eq!(rules.collect(&mut replica, peers(), at(5), 0), 0, "1..=4 only");
        replica.cover(9, 5, 5);
        assert_eq!(rules.collect(&mut replica, peers(), at(5), 0), 1);
    }

    #[test]
    fn not_before_the_warm_up_nor_younger_than_two_rounds() {
        let (rules, mut replica) = setup();
        let confirmed: PeerDigest = [(4, 1)].into_iter().collect();
        let peers = || [Some(PeerView::of(&confirmed))].into_iter();
        assert_eq!(rules.collect(&mut replica, peers(), at(1), 0), 0, "1 s old");
        assert_eq!(rules.collect(&mut replica, peers(), at(5), 4_000_000), 0, "warming up");
        assert_eq!(rules.collect(&mut replica, peers(), at(5), 0), 1);
    }

    #[test]
    fn an_expired_value_ages_from_its_expiry() {
        let (rules, mut replica) = setup();
        replica.collect_tombstones(|_| true);
        // Written at WALL, expiring 30 s later.
        let hlc = WALL << 16;
        replica.write_local_expiring("ttl", Some(crate::value::Value::Int(1)), hlc, Some(hlc + (30_000 << 16)));
        let confirmed: PeerDigest = [(4, 2)].into_iter().collect();
        let peers = || [Some(PeerView::of(&confirmed))].into_iter();
        assert_eq!(rules.collect(&mut replica, peers(), at(10), 0), 0, "live");
        assert_eq!(replica.expire((WALL + 30_000) << 16), vec!["ttl".to_owned()]);
        assert_eq!(rules.collect(&mut replica, peers(), at(31), 0), 0, "expired 1 s ago");
        assert_eq!(rules.collect(&mut replica, peers(), at(32), 0), 1, "two rounds old");
        assert!(replica.entry("ttl").is_none());
        // Unconfirmed, it waits for the grace, counted from the expiry too.
        replica.write_local_expiring("ttl", Some(crate::value::Value::Int(1)), hlc + 1, Some(hlc + (30_000 << 16)));
        replica.expire(u64::MAX);
        assert_eq!(rules.collect(&mut replica, [None].into_iter(), at(89), 0), 0);
        assert_eq!(rules.collect(&mut replica, [None].into_iter(), at(90), 0), 1);
    }

    #[test]
    fn the_grace_collects_whatever_peers_say() {
        let (rules, mut replica) = setup();
        assert_eq!(rules.collect(&mut replica, [None].into_iter(), at(59), 0), 0);
        assert_eq!(rules.collect(&mut replica, [None].into_iter(), at(60), 0), 1);
    }
}
