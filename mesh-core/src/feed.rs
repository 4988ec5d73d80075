//! One stream per receiver: which peer streams this node what it lacks.
//!
//! Every sync request asks its receiver to stream back what the sender lacks. A node
//! that lags behind several peers (a joiner, a node back from a partition) sends one to
//! each of them, and each would stream it the whole difference. So the node keeps one
//! *feed*: the peer it asked first while no other was streaming to it. The feed is
//! asked for everything ([`Want::All`]); every other peer only for what lies above what
//! the feed holds ([`Want::Above`], from the feed's digest), or for nothing while the
//! feed's digest is not in yet ([`Want::Nothing`]). What lies beyond the feed is split
//! by origin: each such origin is asked of the first other peer whose digest shows it,
//! and of no other (its floor is the largest sequence number), so a node that lags
//! several peers each holding a part gets each part once.
//!
//! The decision is the receiver's alone, and nothing waits on anyone: a peer answers
//! every request as asked, and the only word this node relies on is the feed's own
//! digest, which says what the feed holds. The feed is dropped once this node holds
//! what it expected of it, when it makes no progress for a few retransmission timeouts
//! (at least [`MIN_STALL_US`], at most a sync interval), and when it fails, restarts or
//! is forgotten; then the peers asked for less are asked again (the engine does that).
//! Anti-entropy stays the repair path for anything else.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::sync::PeerDigest;
use crate::version::{OriginId, VersionVector};
use crate::wire::Want;

/// Shortest time without progress after which a feed counts as stalled: longer than
/// a busy receiver's or sender's pause, short against failure detection.
pub(crate) const MIN_STALL_US: u64 = 250_000;
/// Retransmission timeouts without progress after which a feed counts as stalled.
pub(crate) const STALL_RTOS: u64 = 4;

/// The peer streaming to this node, if any.
#[derive(Debug, Default)]
pub(crate) struct Feed {
    current: Option<Current>,
    /// Origins beyond the feed's part, each asked of one other peer while the feed
    /// lasts.
    assigned: HashMap<OriginId, SocketAddr>,
}

#[derive(Debug)]
struct Current {
    peer: SocketAddr,
    /// What it holds beyond this node, origin → contiguous prefix; `None` until its
    /// digest is in.
    expect: Option<HashMap<OriginId, u64>>,
    /// Time without progress after which it counts as stalled.
    stall_us: u64,
    /// When it was chosen or last made progress.
    progress_us: u64,
}

/// Why the feed ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// This node holds what it expected of it.
    Done,
    /// It stopped making progress, or its session ended: the peers asked for less must
    /// be asked again.
    Broken,
}

impl Feed {
    /// The feed's peer, if there is one.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.current.as_ref().map(|c| c.peer)
    }

    /// What the feed holds beyond this node, once its digest is in.
    pub fn expected(&self) -> Option<&HashMap<OriginId, u64>> {
        self.current.as_ref().and_then(|c| c.expect.as_ref())
    }

    /// Whether the feed's digest is still awaited.
    pub fn is_pending(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.expect.is_none())
    }

    /// What to ask `peer` for in a sync request sent at `now_us`. `theirs` is its digest
    /// when this request answers one of its own (so what it holds is known now), and
    /// `last` its latest digest known otherwise. With no feed, `peer` becomes the feed,
    /// unless its digest shows it holds nothing this node lacks. `stall_us` is how long
    /// it may then go without progress.
    pub fn want_for(
        &mut self,
        peer: SocketAddr,
        theirs: Option<&PeerDigest>,
        last: Option<&PeerDigest>,
        ours: &VersionVector,
        now_us: u64,
        stall_us: u64,
    ) -> Want {
        match &mut self.current {
            None => {
                let expect = theirs.map(|d| excess(d, ours));
                if expect.as_ref().is_none_or(|e| !e.is_empty()) {
                    self.current = Some(Current {
                        peer,
                        expect,
                        stall_us,
                        progress_us: now_us,
                    });
                }
                Want::All
            }
            Some(current) if current.peer == peer => {
                if let Some(theirs) = theirs {
                    current.expect = Some(excess(theirs, ours));
                }
                Want::All
            }
            Some(current) => match &current.expect {
                None => Want::Nothing,
                Some(expect) => {
                    if let Some(known) = theirs.or(last) {
                        claim(&mut self.assigned, expect, peer, known, ours);
                    }
                    let mut floors: Vec<(OriginId, u64)> =
                        expect.iter().map(|(&o, &upto)| (o, upto)).collect();
                    let elsewhere = self.assigned.iter().filter(|(_, p)| **p != peer);
                    floors.extend(elsewhere.map(|(&origin, _)| (origin, u64::MAX)));
                    floors.sort_unstable();
                    Want::Above(floors)
                }
            },
        }
    }

    /// Takes the digest of `peer`, asked for what lies beyond the feed: the origins it
    /// holds beyond the feed's part and asked of nobody else are its to stream.
    pub fn claim(&mut self, peer: SocketAddr, theirs: &PeerDigest, ours: &VersionVector) {
        if self.peer() == Some(peer) {
            return;
        }
        if let Some(expect) = self.current.as_ref().and_then(|c| c.expect.as_ref()) {
            claim(&mut self.assigned, expect, peer, theirs, ours);
        }
    }

    /// What this node expects to be streamed by the feed or by the peers other origins
    /// were asked of: origin → prefix (the largest sequence number for the latter).
    pub fn covered(&self) -> Option<HashMap<OriginId, u64>> {
        let expect = self.expected()?;
        let mut covered = expect.clone();
        covered.extend(self.assigned.keys().map(|&origin| (origin, u64::MAX)));
        Some(covered)
    }

    /// Takes a digest received from `peer`. Returns whether the feed's digest was
    /// awaited and is now in.
    pub fn on_digest(&mut self, peer: SocketAddr, theirs: &PeerDigest, ours: &VersionVector) -> bool {
        let Some(current) = self.current.as_mut().filter(|c| c.peer == peer) else {
            return false;
        };
        let was_pending = current.expect.is_none();
        current.expect = Some(excess(theirs, ours));
        was_pending
    }

    /// Takes the ranges `(origin, lo, hi)` of a delta from `peer`, before they are
    /// merged: the feed makes progress when one reaches into what it is expected to
    /// stream and beyond what this node accounts for.
    pub fn on_delta(
        &mut self,
        peer: SocketAddr,
        ranges: impl Iterator<Item = (OriginId, u64, u64)>,
        ours: &VersionVector,
        now_us: u64,
    ) {
        let Some(current) = self.current.as_mut().filter(|c| c.peer == peer) else {
            return;
        };
        let Some(expect) = &current.expect else {
            return;
        };
        let progress = ranges.into_iter().any(|(origin, lo, hi)| {
            expect
                .get(&origin)
                .is_some_and(|&top| lo <= top && hi > ours.upto(origin))
        });
        if progress {
            current.progress_us = now_us;
        }
    }

    /// Ends the feed if this node now holds everything it expected of it.
    pub fn check_done(&mut self, ours: &VersionVector) -> Option<Ended> {
        let expect = self.current.as_ref()?.expect.as_ref()?;
        let done = expect
            .iter()
            .all(|(&origin, &top)| ours.upto(origin) >= top);
        if done {
            self.end();
        }
        done.then_some(Ended::Done)
    }

    /// When the feed at `peer` counts as stalled, if `peer` is the feed.
    pub fn deadline(&self, peer: &SocketAddr) -> Option<u64> {
        let current = self.current.as_ref().filter(|c| c.peer == *peer)?;
        Some(current.progress_us.saturating_add(current.stall_us))
    }

    /// Ends the feed if it is `peer` and has stalled by `now_us`.
    pub fn check_stalled(&mut self, peer: &SocketAddr, now_us: u64) -> Option<Ended> {
        let stalled = self.deadline(peer).is_some_and(|at| at <= now_us);
        if stalled {
            self.end();
        }
        stalled.then_some(Ended::Broken)
    }

    /// The session of `peer` ended (it failed, restarted, left or was forgotten): its
    /// stream is gone. Ends the feed if it is `peer`; forgets the origins asked of it.
    pub fn lose(&mut self, peer: &SocketAddr) -> Option<Ended> {
        let lost = self.current.as_ref().is_some_and(|c| c.peer == *peer);
        if lost {
            self.end();
        }
        let before = self.assigned.len();
        self.assigned.retain(|_, p| p != peer);
        (lost || self.assigned.len() < before).then_some(Ended::Broken)
    }

    fn end(&mut self) {
        self.current = None;
        self.assigned.clear();
    }
}

/// Whether `theirs` holds something beyond `ours` and beyond `covered` (what another
/// peer is expected to stream).
pub(crate) fn holds_more(
    theirs: &PeerDigest,
    ours: &VersionVector,
    covered: Option<&HashMap<OriginId, u64>>,
) -> bool {
    theirs.iter().any(|(origin, &upto)| {
        let streamed = covered.and_then(|c| c.get(origin)).copied().unwrap_or(0);
        upto > ours.upto(*origin).max(streamed)
    })
}

/// Gives `peer` every origin of `theirs` beyond `ours` and the feed's part (`expect`)
/// that is nobody's yet.
fn claim(
    assigned: &mut HashMap<OriginId, SocketAddr>,
    expect: &HashMap<OriginId, u64>,
    peer: SocketAddr,
    theirs: &PeerDigest,
    ours: &VersionVector,
) {
    for (&origin, &upto) in theirs {
        let streamed = expect.get(&origin).copied().unwrap_or(0);
        if upto > ours.upto(origin).max(streamed) {
            assigned.entry(origin).or_insert(peer);
        }
    }
}

/// The prefixes of `theirs` beyond `ours`.
fn excess(theirs: &PeerDigest, ours: &VersionVector) -> HashMap<OriginId, u64> {
    theirs
        .iter()
        .filter(|(origin, &upto)| upto > ours.upto(**origin))
        .map(|(&origin, &upto)| (origin, upto))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn digest(pairs: &[(OriginId, u64)]) -> PeerDigest {
        pairs.iter().copied().collect()
    }

    #[test]
    fn the_first_peer_asked_streams_everything_the_others_nothing_until_it_answers() {
        let ours = VersionVector::default();
        let mut feed = Feed::default();
        assert_eq!(feed.want_for(addr(1), None, None, &ours, 0, 100), Want::All);
        assert_eq!(feed.peer(), Some(addr(1)));
        assert_eq!(feed.want_for(addr(2), None, None, &ours, 0, 100), Want::Nothing);
        assert!(feed.on_digest(addr(1), &digest(&[(7, 10), (8, 5)]), &ours));
        assert!(!feed.on_digest(addr(2), &digest(&[(7, 12)]), &ours));
        assert_eq!(
            feed.want_for(addr(2), None, None, &ours, 0, 100),
            Want::Above(vec![(7, 10), (8, 5)])
        );
        assert_eq!(feed.want_for(addr(1), None, None, &ours, 0, 100), Want::All);
    }

    #[test]
    fn origins_beyond_the_feed_are_asked_of_one_other_peer_each() {
        let ours = VersionVector::default();
        let mut feed = Feed::default();
        feed.want_for(addr(1), Some(&digest(&[(7, 10)])), None, &ours, 0, 100);
        // Peer 2 holds origin 8, peer 3 origins 8 and 9: 8 is asked of peer 2 only.
        let two = digest(&[(7, 10), (8, 5)]);
        let three = digest(&[(7, 10), (8, 5), (9, 4)]);
        assert_eq!(
            feed.want_for(addr(2), Some(&two), None, &ours, 0, 100),
            Want::Above(vec![(7, 10)])
        );
        assert_eq!(
            feed.want_for(addr(3), None, Some(&three), &ours, 0, 100),
            Want::Above(vec![(7, 10), (8, u64::MAX)])
        );
        assert_eq!(
            feed.want_for(addr(2), None, None, &ours, 0, 100),
            Want::Above(vec![(7, 10), (9, u64::MAX)])
        );
        let covered = feed.covered().unwrap();
        assert_eq!(covered[&8], u64::MAX);
        assert!(!holds_more(&three, &ours, Some(&covered)));
        // Peer 2 goes: origin 8 is nobody's until asked again.
        assert_eq!(feed.lose(&addr(2)), Some(Ended::Broken));
        assert_eq!(feed.peer(), Some(addr(1)), "the feed stays");
        assert!(holds_more(&three, &ours, feed.covered().as_ref()));
    }

    #[test]
    fn a_peer_holding_nothing_new_is_not_made_the_feed() {
        let mut ours = VersionVector::default();
        ours.insert_range(7, 1, 10);
        let mut feed = Feed::default();
        let theirs = digest(&[(7, 10)]);
        assert_eq!(feed.want_for(addr(1), Some(&theirs), None, &ours, 0, 100), Want::All);
        assert_eq!(feed.peer(), None);
    }

    #[test]
    fn the_feed_ends_when_its_part_is_held() {
        let mut ours = VersionVector::default();
        let mut feed = Feed::default();
        let theirs = digest(&[(7, 10)]);
        feed.want_for(addr(1), Some(&theirs), None, &ours, 0, 100);
        assert_eq!(feed.check_done(&ours), None);
        ours.insert_range(7, 1, 10);
        assert_eq!(feed.check_done(&ours), Some(Ended::Done));
        assert_eq!(feed.peer(), None);
    }

    #[test]
    fn a_feed_without_progress_stalls_and_progress_keeps_it() {
        let mut ours = VersionVector::default();
        let mut feed = Feed::default();
        feed.want_for(addr(1), Some(&digest(&[(7, 10)])), None, &ours, 0, 100);
        assert_eq!(feed.deadline(&addr(1)), Some(100));
        assert_eq!(feed.deadline(&addr(2)), None);
        // A push of later writes of another origin is no progress on the stream.
        feed.on_delta(addr(1), [(9, 1, 3)].into_iter(), &ours, 50);
        assert_eq!(feed.deadline(&addr(1)), Some(100));
        feed.on_delta(addr(1), [(7, 1, 4)].into_iter(), &ours, 60);
        ours.insert_range(7, 1, 4);
        assert_eq!(feed.deadline(&addr(1)), Some(160));
        // Writes already accounted for are no progress either.
        feed.on_delta(addr(1), [(7, 1, 4)].into_iter(), &ours, 90);
        assert_eq!(feed.check_stalled(&addr(1), 159), None);
        assert_eq!(feed.check_stalled(&addr(1), 160), Some(Ended::Broken));
        assert_eq!(feed.peer(), None);
    }

    #[test]
    fn a_pending_feed_stalls_if_its_answer_never_comes() {
        let ours = VersionVector::default();
        let mut feed = Feed::default();
        feed.want_for(addr(1), None, None, &ours, 10, 100);
        assert!(feed.is_pending());
        assert_eq!(feed.check_stalled(&addr(1), 110), Some(Ended::Broken));
        assert_eq!(feed.want_for(addr(2), None, None, &ours, 120, 100), Want::All);
        assert_eq!(feed.peer(), Some(addr(2)));
    }

    #[test]
    fn losing_the_feeds_session_ends_it() {
        let ours = VersionVector::default();
        let mut feed = Feed::default();
        feed.want_for(addr(1), None, None, &ours, 0, 100);
        assert_eq!(feed.lose(&addr(2)), None);
        assert_eq!(feed.lose(&addr(1)), Some(Ended::Broken));
        assert_eq!(feed.peer(), None);
    }

    #[test]
    fn holds_more_looks_beyond_what_the_feed_streams() {
        let mut ours = VersionVector::default();
        ours.insert_range(7, 1, 3);
        let covered: HashMap<OriginId, u64> = [(7, 10)].into_iter().collect();
        assert!(!holds_more(&digest(&[(7, 10)]), &ours, Some(&covered)));
        assert!(holds_more(&digest(&[(7, 11)]), &ours, Some(&covered)));
        assert!(holds_more(&digest(&[(8, 1)]), &ours, Some(&covered)));
        assert!(holds_more(&digest(&[(7, 10)]), &ours, None));
        assert!(!holds_more(&digest(&[(7, 3)]), &ours, None));
    }
}
