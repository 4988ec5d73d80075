//! Origin frontiers: how far each origin's writes go, on the origin's own word.
//!
//! A Delta group says "these are all the entries I hold of origin X in `lo..=hi`", and
//! the receiver accounts for the whole range once it merged them, so that writes the
//! sender no longer holds (superseded, hence absent from the group) are not asked for
//! again. The part of a range that no entry fills is a claim, not evidence: a member
//! that credits `1..=2^62` of another node's origin would make every receiver treat that
//! node's future writes as already seen, and silence it until it restarts.
//!
//! Only an origin knows how far its writes go. So a node remembers, for each origin it
//! hears from directly (a peer whose incarnation *is* that origin), the highest sequence
//! number the peer vouched for: the prefix of its own origin in its digest, or the top of
//! a range of its own writes it sent. Empty parts of a range beyond that frontier are not
//! accounted for; the entries a group carries always are, one by one.
//!
//! Anyone may claim an incarnation, so several addresses can vouch for one origin: the
//! frontier is the lowest of their claims. A low claim only makes this node ask again
//! for superseded writes; no claim lets a range run past what the real origin vouched.
//! An origin nobody vouched for (one that stopped before this node met it) has no
//! frontier, and its ranges are taken as the sender gives them, as before. Nor has one
//! whose node failed: it can no longer raise its frontier, and its last writes may still
//! be on their way through other nodes.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::version::OriginId;

/// Most addresses remembered as vouching for one origin. Beyond it new claimants are
/// ignored: the frontier only ever comes from the first few, the real origin among them
/// unless it was crowded out by impostors before it ever spoke, which needs the
/// impostors to be members first.
const MAX_VOUCHERS: usize = 4;

/// The frontier of every origin heard from directly.
#[derive(Debug, Default)]
pub(crate) struct Frontiers {
    /// origin -> (address, highest sequence number it vouched for).
    vouched: HashMap<OriginId, Vec<(SocketAddr, u64)>>,
    /// address -> the origin it vouches for (its current incarnation).
    origin_of: HashMap<SocketAddr, OriginId>,
}

impl Frontiers {
    /// The highest sequence number of `origin` that may be accounted for without an
    /// entry in hand, or `None` when no one vouched for the origin.
    pub fn cap(&self, origin: OriginId) -> Option<u64> {
        self.vouched
            .get(&origin)
            .and_then(|v| v.iter().map(|&(_, seq)| seq).min())
    }

    /// Every origin someone vouched for.
    pub fn origins(&self) -> impl Iterator<Item = OriginId> + '_ {
        self.vouched.keys().copied()
    }

    /// Records that the peer at `addr`, whose incarnation is `origin`, vouched for its
    /// writes up to `seq`. Returns the frontier when it is new or went down, so the
    /// caller can withdraw what it accounted for beyond it.
    pub fn vouch(&mut self, origin: OriginId, addr: SocketAddr, seq: u64) -> Option<u64> {
        if let Some(previous) = self.origin_of.insert(addr, origin) {
            if previous != origin {
                // The address restarted: its old origin's frontier is no longer vouched.
                self.withdraw(previous, addr);
            }
        }
        let before = self.cap(origin);
        let vouchers = self.vouched.entry(origin).or_default();
        if let Some((_, top)) = vouchers.iter_mut().find(|(a, _)| *a == addr) {
            // A claim only grows: a digest sent before a later push may arrive after it.
            *top = (*top).max(seq);
        } else if vouchers.len() < MAX_VOUCHERS {
            vouchers.push((addr, seq));
        }
        let after = self.cap(origin);
        match (before, after) {
            (None, Some(cap)) => Some(cap),
            (Some(b), Some(a)) if a < b => Some(a),
            _ => None,
        }
    }

    /// Forgets what `addr` vouched for (the peer failed or is gone).
    pub fn forget(&mut self, addr: &SocketAddr) {
        if let Some(origin) = self.origin_of.remove(addr) {
            self.withdraw(origin, *addr);
        }
    }

    fn withdraw(&mut self, origin: OriginId, addr: SocketAddr) {
        if let Some(vouchers) = self.vouched.get_mut(&origin) {
            vouchers.retain(|(a, _)| *a != addr);
            if vouchers.is_empty() {
                self.vouched.remove(&origin);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn an_origin_nobody_vouched_for_has_no_frontier() {
        let f = Frontiers::default();
        assert_eq!(f.cap(7), None);
    }

    #[test]
    fn the_frontier_grows_with_the_origins_own_claims() {
        let mut f = Frontiers::default();
        assert_eq!(f.vouch(7, addr(1), 10), Some(10), "a new frontier is reported");
        assert_eq!(f.vouch(7, addr(1), 15), None, "growth needs no withdrawal");
        assert_eq!(f.cap(7), Some(15));
        assert_eq!(f.vouch(7, addr(1), 12), None, "an older claim arriving late");
        assert_eq!(f.cap(7), Some(15));
    }

    #[test]
    fn an_impostor_can_lower_the_frontier_but_never_raise_it() {
        let mut f = Frontiers::default();
        f.vouch(7, addr(1), 10);
        assert_eq!(f.vouch(7, addr(2), 1 << 62), None);
        assert_eq!(f.cap(7), Some(10));
        assert_eq!(f.vouch(7, addr(3), 3), Some(3), "a lower claim is reported");
        assert_eq!(f.cap(7), Some(3));
    }

    #[test]
    fn claimants_beyond_the_limit_are_ignored() {
        let mut f = Frontiers::default();
        for port in 1..=MAX_VOUCHERS as u16 {
            f.vouch(7, addr(port), 100);
        }
        assert_eq!(f.vouch(7, addr(99), 1), None);
        assert_eq!(f.cap(7), Some(100));
    }

    #[test]
    fn a_restarted_or_forgotten_address_no_longer_vouches() {
        let mut f = Frontiers::default();
        f.vouch(7, addr(1), 10);
        f.vouch(8, addr(1), 2);
        assert_eq!(f.cap(7), None, "the address moved on to a new incarnation");
        assert_eq!(f.cap(8), Some(2));
        f.forget(&addr(1));
        assert_eq!(f.cap(8), None);
        assert!(f.vouched.is_empty() && f.origin_of.is_empty());
    }
}
