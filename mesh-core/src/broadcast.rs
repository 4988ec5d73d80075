//! The epidemic broadcast tree (Plumtree: Leitão, Pereira, Rodrigues, 2007) that carries
//! writes through a mesh larger than the push fanout.
//!
//! In a mesh of up to `push_fanout` peers a writer pushes each write to every peer
//! itself. Beyond that, pushing to all would cost the writer one datagram per member for
//! every write, so writes travel a spanning tree instead: each node sends what it
//! learnt to its *eager* neighbors (the tree) and only announces it (`IHave`) to its
//! *lazy* ones. A node receiving writes it already held from an eager neighbor prunes
//! that edge (`Prune`): the redundant edges of the overlay fall off the tree. A node
//! announced writes it still lacks after a short wait asks the announcer for them and
//! puts that edge back on the tree (`Graft`): the tree heals around a failed node
//! within a few round trips. Anti-entropy stays the repair path for the rest. A lazy
//! neighbor that showed it holds writes (it announced or sent them first) is not
//! announced them: on an edge off the tree, the end that had them later stays quiet.
//!
//! Neighbors: membership is full (every node knows every member), so the overlay needs
//! no membership protocol of its own. Each node ranks its members by a hash of the
//! unordered pair of their origins and takes the [`NEIGHBORS`] lowest; it grafts them
//! (an empty graft), and a node grafted or sent writes by a peer takes that peer as a
//! neighbor too. Edges are thus symmetric and the overlay is a random k-out graph,
//! connected with high probability, which every node draws the same way.
//!
//! The tree at the start: up to [`spanning::MAX_MEMBERS`] members, every node draws the
//! whole overlay and the same breadth-first spanning tree of it, and only that tree's
//! edges start eager, so the first writes after a mesh forms already travel a tree.
//! Past that, every overlay edge starts eager and the root (the member with the lowest
//! origin) floods a `Beacon` down the tree shortly after drawing its neighbors: a
//! duplicate beacon prunes its edge, so the tree is pruned before writes use it.
//!
//! On a drawn tree its edges stay on it: a graft only pulls the writes it names (on a
//! loaded machine the tree's copies come long after the announcements, and an edge
//! grafted on for good closed a cycle that carried every later write twice), and a
//! neighbor off the tree that sends writes already held is pruned each time. The graft
//! wait follows how late the tree's copies come after their announcements, estimated
//! like a round trip. A node sends each write on down the tree once, whichever path
//! brought it first; and while new writes still arrive, the engine holds its syncs
//! back for a wait at least this long (see `recent`).
//!
//! This module is sans-IO: it decides, the engine sends. Times come in as arguments.

mod spanning;

pub(crate) use spanning::{own_edges, OwnEdges};

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;

use crate::sync::SeqRange;
use crate::transport::RttEstimator;
use crate::version::{mix, OriginId, SeqSet, VersionVector};

/// Neighbors each node picks itself; those that picked it come on top.
pub(crate) const NEIGHBORS: usize = 4;
/// Most writes of one origin a graft is answered with: a node further behind is left to
/// anti-entropy, so a graft (honest or forged) never costs more than this.
pub(crate) const MAX_GRAFT_SPAN: u64 = 1_024;
/// Most bytes of writes one graft is answered with, all origins together.
pub(crate) const MAX_GRAFT_BYTES: usize = 256 * 1024;
/// Most ranges taken from one graft, and announcements from one `IHave`.
pub(crate) const MAX_ITEMS: usize = 64;
/// Most origins awaited at once from announcements; more are dropped (and counted):
/// anti-entropy brings them.
pub(crate) const MAX_MISSING: usize = 1_024;
/// Times a graft is put off because writes were still arriving: a burst down the tree
/// is waited for, a hole under constant traffic is not waited on for ever.
const MAX_DEFERRALS: u8 = 8;
/// Announcers remembered per awaited origin: the graft goes to the first, then the next.
const MAX_ANNOUNCERS: usize = 4;
/// Shortest wait between an announcement and the graft it may lead to: about the time a
/// write takes down a few levels of the tree, so a copy on its way is not asked twice.
pub(crate) const MIN_GRAFT_WAIT_US: u64 = 30_000;
/// Longest wait the tree's observed lag may set: a tree this slow is repaired by grafts
/// anyway, and a failed node must not keep the nodes below it waiting longer.
pub(crate) const MAX_GRAFT_WAIT_US: u64 = 1_000_000;
/// How long after members change the neighbors are drawn again when no write needs them
/// sooner: a mesh forming learns of members one by one, and each draw walks them all.
pub(crate) const PICK_DELAY_US: u64 = 1_000_000;
/// How long after its neighbors are drawn the root sends its beacon: time for the grafts
/// of the new picks, all over the mesh, to land first.
pub(crate) const BEACON_DELAY_US: u64 = 100_000;
/// Shortest time between two beacons this node forwards: a member forging beacons
/// (with new rounds or roots) floods the tree at most this often.
pub(crate) const BEACON_GAP_US: u64 = 500_000;

/// Writes announced to this node that it does not hold yet.
#[derive(Debug)]
struct Missing {
    /// Highest sequence number announced.
    hi: u64,
    /// The writes taken in (any origin's) when last checked: while they still arrive
    /// (a large burst down the tree), the graft is put off, up to [`MAX_DEFERRALS`] times.
    progress: u64,
    deferrals: u8,
    /// When `hi` was announced: the tree's copy arriving later is a sample of its lag.
    announced_us: u64,
    /// Whether a graft went out for it: the copy that ends it may be the graft's, no
    /// sample of the tree's lag then (as Karn's rule takes no round trip of a resend).
    grafted: bool,
    /// Who announced them, earliest first.
    announcers: VecDeque<SocketAddr>,
    /// When to graft the next announcer.
    due_us: u64,
}

/// A graft to send: to `peer`, for the writes of `origin` above `held` up to `hi`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct GraftDue {
    pub peer: SocketAddr,
    pub origin: OriginId,
    pub hi: u64,
}

/// What to send to one peer at a flush.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Outgoing {
    /// Writes to send eagerly.
    pub eager: Vec<SeqRange>,
    /// Writes to announce: `(origin, hi)`.
    pub announce: Vec<(OriginId, u64)>,
}

/// One node's view of the tree: neighbors, which of them are lazy, what is queued for
/// them and which announced writes it awaits.
#[derive(Debug, Default)]
pub(crate) struct Broadcast {
    /// The neighbors this node picked, by rank (see [`pick_neighbors`]).
    picked: Vec<SocketAddr>,
    /// Whether `picked` must be drawn again (members changed).
    stale: bool,
    /// When to draw them again at the latest.
    pick_due_us: Option<u64>,
    /// Peers that took this node as a neighbor (grafted it, or sent it writes).
    adopted: BTreeSet<SocketAddr>,
    /// Neighbors off the tree: announced to, not sent writes.
    lazy: BTreeSet<SocketAddr>,
    /// Queued for the next flush, by peer.
    queued: BTreeMap<SocketAddr, Outgoing>,
    /// Announced writes awaited, by origin.
    missing: BTreeMap<OriginId, Missing>,
    /// When the last flush went out.
    last_flush_us: Option<u64>,
    /// The last beacon taken: `(root, round)`.
    beacon: Option<(OriginId, u64)>,
    /// When this node last sent or forwarded a beacon.
    beacon_sent_us: Option<u64>,
    /// This node's last round as the root.
    own_round: u64,
    /// When this node, as the root, sends its next beacon.
    beacon_due_us: Option<u64>,
    /// This node's edges of the tree every node draws alike, if drawn (see
    /// `spanning`): these stay on the tree, and a graft elsewhere only pulls writes.
    drawn: Option<BTreeSet<SocketAddr>>,
    /// How late the tree's copies come after announcements of them.
    lag: GraftLag,
    /// Per origin, the writes this node has sent on down the tree.
    spread: HashMap<OriginId, SeqSet>,
    /// Per neighbor, the highest write of each origin it showed it holds (announced it,
    /// or sent it): announcing those back to it would tell it nothing.
    shown: HashMap<SocketAddr, HashMap<OriginId, u64>>,
}

/// The lag of the tree behind announcements, estimated like a round trip: the graft
/// wait is its timeout.
#[derive(Debug)]
struct GraftLag(RttEstimator);

impl Default for GraftLag {
    fn default() -> Self {
        GraftLag(RttEstimator::bounded(
            MIN_GRAFT_WAIT_US,
            MIN_GRAFT_WAIT_US,
            MAX_GRAFT_WAIT_US,
        ))
    }
}

/// What to do with a beacon received.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BeaconOutcome {
    /// New: forward it to the other eager neighbors.
    Forward,
    /// Taken already, from another neighbor: the sender is on a redundant edge, to be
    /// pruned (`true` if not pruned yet).
    Duplicate(bool),
    /// An older round, or too soon after the last beacon forwarded.
    Ignore,
}

impl Broadcast {
    /// Members changed at `now_us`: the picked neighbors are drawn again at the next
    /// use, or [`PICK_DELAY_US`] later.
    pub fn members_changed(&mut self, now_us: u64) {
        self.stale = true;
        self.pick_due_us.get_or_insert(now_us + PICK_DELAY_US);
    }

    /// When the neighbors must be drawn again at the latest.
    pub fn pick_at(&self) -> Option<u64> {
        self.pick_due_us
    }

    /// Whether the picked neighbors must be drawn again.
    pub fn needs_pick(&self) -> bool {
        self.stale || self.picked.is_empty()
    }

    /// Takes a new draw of picked neighbors; returns those newly picked, to graft. A
    /// peer that is a neighbor already (it grafted or pruned this node, or sent it
    /// writes) is not grafted: a graft would put back on the tree an edge a prune took
    /// off, and a mesh forming draws again each time it learns of a member.
    pub fn set_picked(&mut self, picked: Vec<SocketAddr>) -> Vec<SocketAddr> {
        let new = picked
            .iter()
            .filter(|a| !self.picked.contains(a) && !self.adopted.contains(a))
            .copied()
            .collect();
        self.picked = picked;
        self.stale = false;
        self.pick_due_us = None;
        new
    }

    /// Takes this node's edges of the tree every node draws alike (see `spanning`): the
    /// members that pick this node are its neighbors too, and only the tree's edges stay
    /// eager; prunes and grafts before this draw are forgotten.
    pub fn set_tree(&mut self, edges: OwnEdges) {
        for addr in edges.overlay {
            if !self.picked.contains(&addr) {
                self.adopted.insert(addr);
            }
        }
        self.lazy = self
            .picked
            .iter()
            .chain(&self.adopted)
            .filter(|a| !edges.tree.contains(a))
            .copied()
            .collect();
        self.drawn = Some(edges.tree);
    }

    /// The mesh is too large to draw the tree: it is learnt from duplicates, grafts and
    /// the beacon instead.
    pub fn set_undrawn(&mut self) {
        self.drawn = None;
    }

    /// This node, the root, drew its neighbors at `now_us`: its beacon goes out
    /// [`BEACON_DELAY_US`] later.
    pub fn schedule_beacon(&mut self, now_us: u64) {
        self.beacon_due_us = Some(now_us + BEACON_DELAY_US);
    }

    /// When this node's beacon is due.
    pub fn beacon_at(&self) -> Option<u64> {
        self.beacon_due_us
    }

    /// This node's beacon, `own` its origin, if due at `now_us`.
    pub fn take_own_beacon(&mut self, own: OriginId, now_us: u64) -> Option<(OriginId, u64)> {
        if self.beacon_due_us.is_none_or(|at| at > now_us) {
            return None;
        }
        self.beacon_due_us = None;
        self.own_round += 1;
        let beacon = (own, self.own_round);
        self.beacon = Some(beacon);
        self.beacon_sent_us = Some(now_us);
        Some(beacon)
    }

    /// `from` sent the beacon `(root, round)` at `now_us`. A round is new if it is a
    /// later one of the root last heard, or of another root (the lowest origin changes
    /// when members come and go, and views of it differ for a while).
    pub fn on_beacon(
        &mut self,
        from: SocketAddr,
        beacon: (OriginId, u64),
        now_us: u64,
    ) -> BeaconOutcome {
        self.adopted.insert(from);
        if self.beacon == Some(beacon) {
            return BeaconOutcome::Duplicate(self.lazy.insert(from));
        }
        let older = self
            .beacon
            .is_some_and(|(root, round)| root == beacon.0 && round > beacon.1);
        let too_soon = self
            .beacon_sent_us
            .is_some_and(|at| now_us < at.saturating_add(BEACON_GAP_US));
        if older || too_soon {
            return BeaconOutcome::Ignore;
        }
        self.beacon = Some(beacon);
        self.beacon_sent_us = Some(now_us);
        BeaconOutcome::Forward
    }

    /// Forgets a peer that left the mesh (failed, restarted, forgotten).
    pub fn forget(&mut self, addr: &SocketAddr) {
        self.adopted.remove(addr);
        self.lazy.remove(addr);
        self.queued.remove(addr);
        self.shown.remove(addr);
        for missing in self.missing.values_mut() {
            missing.announcers.retain(|a| a != addr);
        }
        self.stale = true;
    }

    /// Every neighbor, eager or lazy, that `reachable` allows.
    fn neighbors<'a>(
        &'a self,
        reachable: &'a dyn Fn(&SocketAddr) -> bool,
    ) -> impl Iterator<Item = SocketAddr> + 'a {
        let adopted = self.adopted.iter().filter(|a| !self.picked.contains(a));
        self.picked
            .iter()
            .chain(adopted)
            .copied()
            .filter(move |a| reachable(a))
    }

    /// The neighbors on the tree, reachable.
    pub fn eager(&self, reachable: &dyn Fn(&SocketAddr) -> bool) -> Vec<SocketAddr> {
        self.neighbors(reachable)
            .filter(|a| !self.lazy.contains(a))
            .collect()
    }

    /// Queues `range` (writes this node holds, new to it) for every neighbor but
    /// `except`: eagerly to those on the tree, as an announcement to the others.
    pub fn spread(
        &mut self,
        range: SeqRange,
        except: Option<SocketAddr>,
        reachable: &dyn Fn(&SocketAddr) -> bool,
    ) {
        let targets: Vec<SocketAddr> = self
            .neighbors(reachable)
            .filter(|a| Some(*a) != except)
            .collect();
        for peer in targets {
            if self.lazy.contains(&peer) {
                let (origin, _, hi) = range;
                if self.has_shown(&peer, origin, hi) {
                    continue;
                }
                let out = self.queued.entry(peer).or_default();
                match out.announce.iter_mut().find(|(o, _)| *o == origin) {
                    Some(entry) => entry.1 = entry.1.max(hi),
                    None => out.announce.push((origin, hi)),
                }
            } else {
                self.queued.entry(peer).or_default().eager.push(range);
            }
        }
    }

    /// `peer` showed it holds the writes of `origin` up to `hi` (it announced them, or
    /// sent them): they are not announced to it. At most [`MAX_MISSING`] origins are
    /// kept per peer; past that, announcements go as before.
    pub fn shown(&mut self, peer: SocketAddr, origin: OriginId, hi: u64) {
        let shown = self.shown.entry(peer).or_default();
        if shown.len() >= MAX_MISSING && !shown.contains_key(&origin) {
            return;
        }
        let known = shown.entry(origin).or_insert(hi);
        *known = (*known).max(hi);
    }

    /// Whether `peer` showed it holds the writes of `origin` up to `hi`.
    fn has_shown(&self, peer: &SocketAddr, origin: OriginId, hi: u64) -> bool {
        self.shown
            .get(peer)
            .and_then(|s| s.get(&origin))
            .is_some_and(|&known| known >= hi)
    }

    /// The writes of `spans` (ranges a message on the tree carried) that this node
    /// holds and has not sent on down the tree yet, to send on now. A write taken from
    /// another path first (a sync stream, a graft) is still sent on when the tree's own
    /// copy comes: the nodes below this one await it from here. One sent on already is
    /// not sent again.
    pub fn take_unspread(&mut self, held: &VersionVector, spans: &[SeqRange]) -> Vec<SeqRange> {
        if self.spread.len() > held.len() {
            // Origins retired or forgotten since.
            self.spread.retain(|&origin, _| held.get(origin).is_some());
        }
        let mut out = Vec::new();
        for &(origin, lo, hi) in spans {
            let Some(set) = held.get(origin) else {
                continue;
            };
            let spread = self.spread.entry(origin).or_default();
            let first = out.len();
            for (a, b) in set.ranges() {
                let (x, y) = (a.max(lo), b.min(hi));
                if x <= y {
                    out.extend(subtract(spread, x, y).map(|(x, y)| (origin, x, y)));
                }
            }
            for &(_, x, y) in &out[first..] {
                spread.insert_range(x, y);
            }
        }
        out
    }

    /// When the queue may be flushed: at once after a quiet spell, else one slot of
    /// `slot_us` after the last flush, so a burst of received writes costs one message
    /// per neighbor per slot.
    pub fn flush_at(&self, slot_us: u64, now_us: u64) -> Option<u64> {
        if self.queued.is_empty() {
            return None;
        }
        Some(now_us.max(self.last_flush_us.map_or(0, |t| t + slot_us)))
    }

    /// Everything queued, by peer.
    pub fn take_queued(&mut self, now_us: u64) -> BTreeMap<SocketAddr, Outgoing> {
        self.last_flush_us = Some(now_us);
        std::mem::take(&mut self.queued)
    }

    /// Writes arrived from `from` on the tree: `useful` if they were mostly new to this
    /// node. Returns whether `from` must be pruned: it sent writes already held, and is
    /// not pruned yet. Only a graft puts a pruned neighbor back on the tree: what a
    /// neighbor had queued before the prune reached it still arrives, and taking that
    /// for a reason to go eager again made edges flap under load.
    ///
    /// On a drawn tree its own edges are never pruned (a duplicate there is a pulled
    /// write that raced the tree's copy), and a neighbor off it is pruned at each
    /// duplicate it sends, pruned already or not: it sends eagerly only if it drew
    /// another tree or missed the prune, and no graft would ever tell it otherwise.
    pub fn on_gossip(&mut self, from: SocketAddr, useful: bool) -> bool {
        self.adopted.insert(from);
        if useful {
            return false;
        }
        match &self.drawn {
            Some(tree) if tree.contains(&from) => false,
            Some(_) => {
                self.lazy.insert(from);
                true
            }
            None => self.lazy.insert(from),
        }
    }

    /// `from` asked to be pruned: it stays a neighbor, announced to.
    pub fn on_prune(&mut self, from: SocketAddr) {
        self.adopted.insert(from);
        self.lazy.insert(from);
    }

    /// `from` grafted this node, asking for writes (`pull`) or not: it is a neighbor
    /// on the tree, unless this node drew the tree and the graft only pulls writes
    /// (see [`Broadcast::grafts_due`]).
    pub fn on_graft(&mut self, from: SocketAddr, pull: bool) {
        self.adopted.insert(from);
        if !(pull && self.drawn.is_some()) {
            self.lazy.remove(&from);
        }
    }

    /// `from` announced the writes of `origin` up to `hi`, of which this node holds the
    /// prefix up to `held`: awaited, grafted for at `now_us + wait_us` if still missing.
    /// Returns false if refused (too many origins awaited already).
    #[allow(clippy::too_many_arguments)]
    pub fn on_announce(
        &mut self,
        from: SocketAddr,
        (origin, hi): (OriginId, u64),
        held: u64,
        progress: u64,
        now_us: u64,
        wait_us: u64,
    ) -> bool {
        self.adopted.insert(from);
        if hi <= held {
            return true;
        }
        if !self.missing.contains_key(&origin) && self.missing.len() >= MAX_MISSING {
            return false;
        }
        let missing = self.missing.entry(origin).or_insert_with(|| Missing {
            hi,
            progress,
            deferrals: 0,
            announcers: VecDeque::new(),
            due_us: now_us + wait_us,
            announced_us: now_us,
            grafted: false,
        });
        if hi > missing.hi {
            missing.hi = hi;
            missing.announced_us = now_us;
        }
        if missing.announcers.len() < MAX_ANNOUNCERS && !missing.announcers.contains(&from) {
            missing.announcers.push_back(from);
        }
        true
    }

    /// Writes of `origin` arrived by the tree, this node now holding its prefix up to
    /// `held`, at `now_us`: if they end an announcement no graft was sent for, how
    /// long they came after it is a sample of the tree's lag.
    pub fn on_delivered(&mut self, origin: OriginId, held: u64, now_us: u64) {
        let Some(missing) = self.missing.get(&origin) else {
            return;
        };
        if missing.hi > held {
            return;
        }
        if !missing.grafted {
            self.lag.0.sample(now_us.saturating_sub(missing.announced_us));
        }
        self.missing.remove(&origin);
    }

    /// How long an announcement is given before its writes are grafted: `floor_us` at
    /// least, longer while the tree's copies lag announcements (a loaded machine), as a
    /// retransmission timeout follows round trips.
    pub fn graft_wait_us(&self, floor_us: u64) -> u64 {
        self.lag.0.rto_us().max(floor_us)
    }

    /// When the next awaited write is due for a graft.
    pub fn graft_at(&self) -> Option<u64> {
        self.missing.values().map(|m| m.due_us).min()
    }

    /// The grafts due at `now_us`, given what this node holds of each origin (`held`)
    /// and the writes it took in so far (`progress`): writes that came meanwhile are
    /// forgotten; while writes still arrive the graft is put off by `wait_us` (a few
    /// times at most); otherwise the first announcer left is grafted (and put on the
    /// tree), and the next one is tried `wait_us` later.
    pub fn grafts_due(
        &mut self,
        now_us: u64,
        wait_us: u64,
        held: impl Fn(OriginId) -> u64,
        progress: u64,
        reachable: &dyn Fn(&SocketAddr) -> bool,
    ) -> Vec<GraftDue> {
        let mut due = Vec::new();
        self.missing.retain(|&origin, missing| {
            let now_held = held(origin);
            if missing.hi <= now_held {
                return false;
            }
            if missing.due_us > now_us {
                return true;
            }
            if progress > missing.progress && missing.deferrals < MAX_DEFERRALS {
                missing.progress = progress;
                missing.deferrals += 1;
                missing.due_us = now_us + wait_us;
                return true;
            }
            missing.progress = progress;
            while let Some(peer) = missing.announcers.pop_front() {
                if reachable(&peer) {
                    missing.grafted = true;
                    due.push(GraftDue {
                        peer,
                        origin,
                        hi: missing.hi,
                    });
                    break;
                }
            }
            missing.due_us = now_us + wait_us;
            !missing.announcers.is_empty()
        });
        // On a drawn tree a graft only pulls the writes: the tree is slower than an
        // announcement on a loaded machine, and an edge put on the tree for it would
        // close a cycle that carries every later write twice.
        for graft in due.iter().filter(|_| self.drawn.is_none()) {
            self.adopted.insert(graft.peer);
            self.lazy.remove(&graft.peer);
        }
        due
    }

}

/// The parts of `lo..=hi` that `set` does not account for, lowest first.
fn subtract(set: &SeqSet, lo: u64, hi: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
    let mut next = Some(lo);
    set.ranges()
        .map(Some)
        .chain([None])
        .filter_map(move |range| {
            let from = next?;
            match range {
                Some((a, _)) if a > hi => {
                    next = None;
                    Some((from, hi))
                }
                Some((a, b)) => {
                    if b < from {
                        return None;
                    }
                    next = b.checked_add(1).filter(|&n| n <= hi);
                    (a > from).then(|| (from, a - 1))
                }
                None => {
                    next = None;
                    Some((from, hi))
                }
            }
        })
}

/// The [`NEIGHBORS`] members (given as `(address, origin)`) with the lowest hash of
/// their unordered pair of origins with `own`, lowest first. Both ends of a pair hash it
/// alike, so whether `a` ranks `b` low is no secret from `b`, and a node cannot pick a
/// favorable place in the overlay without changing its origin.
pub(crate) fn pick_neighbors(
    own: OriginId,
    members: impl Iterator<Item = (SocketAddr, OriginId)>,
) -> Vec<SocketAddr> {
    let mut ranked: Vec<(u64, SocketAddr)> = members
        .filter(|&(_, origin)| origin != 0 && origin != own)
        .map(|(addr, origin)| (pair_hash(own, origin), addr))
        .collect();
    let k = NEIGHBORS.min(ranked.len());
    if k == 0 {
        return Vec::new();
    }
    ranked.select_nth_unstable(k - 1);
    ranked.truncate(k);
    ranked.sort_unstable();
    ranked.into_iter().map(|(_, addr)| addr).collect()
}

/// A hash of the unordered pair `{a, b}`.
fn pair_hash(a: OriginId, b: OriginId) -> u64 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    mix(mix(lo) ^ hi.rotate_left(17))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], i))
    }

    fn all(_: &SocketAddr) -> bool {
        true
    }

    #[test]
    fn pair_hash_is_symmetric_and_picks_are_the_lowest() {
        assert_eq!(pair_hash(3, 99), pair_hash(99, 3));
        let members: Vec<(SocketAddr, OriginId)> = (1..50).map(|i| (addr(i), i as u64)).collect();
        let picked = pick_neighbors(1000, members.iter().copied());
        assert_eq!(picked.len(), NEIGHBORS);
        let mut hashes: Vec<u64> = members.iter().map(|&(_, o)| pair_hash(1000, o)).collect();
        hashes.sort_unstable();
        let got: Vec<u64> = picked
            .iter()
            .map(|a| pair_hash(1000, a.port() as u64))
            .collect();
        assert_eq!(got, hashes[..NEIGHBORS]);
        assert!(pick_neighbors(5, [(addr(1), 0), (addr(2), 5)].into_iter()).is_empty());
    }

    #[test]
    fn the_overlay_of_a_thousand_nodes_is_connected() {
        // Edges picked by either end: what the grafts of the picks make symmetric.
        let n = 1000u64;
        let mut edges: Vec<Vec<usize>> = vec![Vec::new(); n as usize];
        for i in 1..=n {
            let others = (1..=n).filter(|&j| j != i).map(|j| (addr(j as u16), j));
            for a in pick_neighbors(i, others) {
                let j = a.port() as usize;
                edges[i as usize - 1].push(j - 1);
                edges[j - 1].push(i as usize - 1);
            }
        }
        let mut seen = vec![false; n as usize];
        let mut stack = vec![0];
        seen[0] = true;
        while let Some(v) = stack.pop() {
            for &w in &edges[v] {
                if !std::mem::replace(&mut seen[w], true) {
                    stack.push(w);
                }
            }
        }
        assert!(seen.iter().all(|&s| s));
        // A node's degree is its picks plus a binomial number of pickers: a tail, but a
        // short one, and the mean stays under twice the picks.
        let most = edges.iter().map(Vec::len).max().unwrap();
        assert!(most <= 5 * NEIGHBORS, "a node with {most} neighbors");
        let mean = edges.iter().map(Vec::len).sum::<usize>() as f64 / n as f64;
        assert!(mean <= 2.0 * NEIGHBORS as f64, "{mean} neighbors on average");
    }

    #[test]
    fn writes_go_eagerly_on_the_tree_and_are_announced_off_it() {
        let mut b = Broadcast::default();
        assert!(b.needs_pick());
        b.members_changed(10);
        assert_eq!(b.pick_at(), Some(10 + PICK_DELAY_US));
        assert_eq!(b.set_picked(vec![addr(1), addr(2)]), vec![addr(1), addr(2)]);
        assert_eq!(b.set_picked(vec![addr(2), addr(3)]), vec![addr(3)]);
        assert!(!b.needs_pick());
        assert_eq!(b.pick_at(), None);
        b.on_graft(addr(9), false);
        b.on_prune(addr(3));
        b.spread((7, 1, 4), Some(addr(2)), &all);
        b.spread((7, 5, 6), Some(addr(2)), &all);
        assert_eq!(b.flush_at(1000, 50), Some(50));
        let out = b.take_queued(50);
        assert_eq!(out.keys().copied().collect::<Vec<_>>(), vec![addr(3), addr(9)]);
        assert_eq!(out[&addr(9)].eager, vec![(7, 1, 4), (7, 5, 6)]);
        assert_eq!(out[&addr(3)].announce, vec![(7, 6)], "announcements merge");
        assert!(out[&addr(3)].eager.is_empty());
        b.spread((7, 7, 7), None, &all);
        assert_eq!(b.flush_at(1000, 60), Some(1050), "a burst waits for the slot");
        let unreachable = |a: &SocketAddr| *a != addr(9);
        assert_eq!(b.eager(&unreachable), vec![addr(2)]);
    }

    #[test]
    fn a_neighbor_off_the_tree_is_not_announced_what_it_showed_it_holds() {
        let mut b = Broadcast::default();
        b.set_picked(vec![addr(1), addr(2)]);
        b.on_prune(addr(1));
        b.on_prune(addr(2));
        b.shown(addr(1), 7, 6);
        b.spread((7, 1, 6), None, &all);
        b.spread((8, 1, 2), None, &all);
        let out = b.take_queued(0);
        assert_eq!(out[&addr(1)].announce, vec![(8, 2)], "7 up to 6 it announced");
        assert_eq!(out[&addr(2)].announce, vec![(7, 6), (8, 2)]);
        b.spread((7, 7, 7), None, &all);
        let out = b.take_queued(1);
        assert_eq!(out[&addr(1)].announce, vec![(7, 7)], "a later write goes");
        b.forget(&addr(1));
        b.set_picked(vec![addr(1), addr(2)]);
        b.on_prune(addr(1));
        b.spread((7, 1, 6), None, &all);
        let out = b.take_queued(2);
        assert_eq!(out[&addr(1)].announce, vec![(7, 6)], "forgotten with the peer");
    }

    #[test]
    fn what_a_neighbor_showed_is_kept_for_a_bounded_number_of_origins() {
        let mut b = Broadcast::default();
        for origin in 1..=MAX_MISSING as u64 + 10 {
            b.shown(addr(1), origin, 5);
        }
        assert_eq!(b.shown[&addr(1)].len(), MAX_MISSING);
        b.shown(addr(1), 1, 9);
        assert!(b.has_shown(&addr(1), 1, 9), "a known origin still rises");
        assert!(!b.has_shown(&addr(1), MAX_MISSING as u64 + 5, 5));
    }

    #[test]
    fn a_duplicate_prunes_once_and_only_a_graft_puts_the_sender_back_on_the_tree() {
        let mut b = Broadcast::default();
        b.set_picked(vec![addr(1)]);
        assert!(!b.on_gossip(addr(5), true));
        assert_eq!(b.eager(&all), vec![addr(1), addr(5)]);
        assert!(b.on_gossip(addr(1), false), "nothing new: prune it");
        assert_eq!(b.eager(&all), vec![addr(5)]);
        assert!(!b.on_gossip(addr(1), false), "pruned already");
        assert!(!b.on_gossip(addr(1), true));
        assert_eq!(b.eager(&all), vec![addr(5)], "sent before it was pruned");
        b.on_graft(addr(1), false);
        assert_eq!(b.eager(&all), vec![addr(1), addr(5)]);
    }

    #[test]
    fn an_announced_write_still_missing_is_grafted_from_each_announcer_in_turn() {
        let mut b = Broadcast::default();
        b.on_prune(addr(1));
        b.on_prune(addr(2));
        assert!(b.on_announce(addr(1), (7, 10), 4, 0, 100, 50));
        assert!(b.on_announce(addr(2), (7, 12), 4, 0, 110, 50));
        assert!(b.on_announce(addr(2), (8, 3), 3, 0, 110, 50), "held: not awaited");
        assert_eq!(b.graft_at(), Some(150));
        assert!(b.grafts_due(149, 50, |_| 4, 0, &all).is_empty());
        let due = b.grafts_due(150, 50, |_| 4, 0, &all);
        assert_eq!(
            due,
            vec![GraftDue {
                peer: addr(1),
                origin: 7,
                hi: 12
            }]
        );
        assert_eq!(b.eager(&all), vec![addr(1)], "grafted: on the tree again");
        assert_eq!(b.graft_at(), Some(200));
        let due = b.grafts_due(200, 50, |_| 4, 0, &all);
        assert_eq!(due[0].peer, addr(2));
        assert_eq!(b.graft_at(), None, "no announcer left: anti-entropy's turn");
        // Writes still arriving: put off; then stalled: grafted.
        b.on_announce(addr(1), (8, 100), 10, 0, 300, 50);
        assert!(b.grafts_due(350, 50, |_| 60, 7, &all).is_empty());
        assert_eq!(b.graft_at(), Some(400));
        assert_eq!(b.grafts_due(400, 50, |_| 60, 7, &all).len(), 1);
        b.grafts_due(10_000, 50, |_| 100, 7, &all);
        // Put off a few times at most under constant traffic.
        b.on_announce(addr(1), (8, 200), 100, 7, 20_000, 50);
        let mut at = 20_050;
        for progress in 8..8 + u64::from(MAX_DEFERRALS) {
            assert!(b.grafts_due(at, 50, |_| 100, progress, &all).is_empty());
            at += 50;
        }
        assert_eq!(b.grafts_due(at, 50, |_| 100, 99, &all).len(), 1);
        b.grafts_due(100_000, 50, |_| 200, 99, &all);
        // Arrived meanwhile: nothing to graft.
        b.on_announce(addr(1), (9, 5), 0, 0, 300, 50);
        assert!(b.grafts_due(400, 50, |_| 5, 0, &all).is_empty());
        assert_eq!(b.graft_at(), None);
    }

    #[test]
    fn drawing_again_does_not_graft_a_pruned_neighbor() {
        let mut b = Broadcast::default();
        b.on_prune(addr(1));
        assert_eq!(b.set_picked(vec![addr(1), addr(2)]), vec![addr(2)]);
        assert_eq!(b.eager(&all), vec![addr(2)], "still off the tree");
    }

    #[test]
    fn a_duplicate_beacon_prunes_its_sender_and_beacons_are_rate_limited() {
        let mut b = Broadcast::default();
        b.set_picked(vec![addr(1), addr(2), addr(3)]);
        assert_eq!(b.on_beacon(addr(1), (5, 1), 0), BeaconOutcome::Forward);
        assert_eq!(b.on_beacon(addr(2), (5, 1), 10), BeaconOutcome::Duplicate(true));
        assert_eq!(b.on_beacon(addr(2), (5, 1), 20), BeaconOutcome::Duplicate(false));
        assert_eq!(b.eager(&all), vec![addr(1), addr(3)]);
        assert_eq!(
            b.on_beacon(addr(3), (5, 2), 30),
            BeaconOutcome::Ignore,
            "a new round within the gap"
        );
        let later = BEACON_GAP_US;
        assert_eq!(b.on_beacon(addr(3), (5, 0), later), BeaconOutcome::Ignore, "older");
        assert_eq!(b.on_beacon(addr(3), (5, 2), later), BeaconOutcome::Forward);
        assert_eq!(
            b.on_beacon(addr(1), (4, 1), 2 * later),
            BeaconOutcome::Forward,
            "another root"
        );
        // The root's own beacon.
        let mut root = Broadcast::default();
        assert_eq!(root.take_own_beacon(4, 0), None, "not scheduled");
        root.schedule_beacon(100);
        assert_eq!(root.beacon_at(), Some(100 + BEACON_DELAY_US));
        assert_eq!(root.take_own_beacon(4, 100), None, "not due");
        assert_eq!(root.take_own_beacon(4, 100 + BEACON_DELAY_US), Some((4, 1)));
        assert_eq!(root.beacon_at(), None);
        assert_eq!(
            root.on_beacon(addr(1), (4, 1), 100 + BEACON_DELAY_US + 5),
            BeaconOutcome::Duplicate(true),
            "its own beacon coming back around a cycle"
        );
    }

    #[test]
    fn awaited_origins_are_bounded() {
        let mut b = Broadcast::default();
        for origin in 0..MAX_MISSING as u64 {
            assert!(b.on_announce(addr(1), (origin + 1, 5), 0, 0, 0, 10));
        }
        assert!(!b.on_announce(addr(1), (u64::MAX, 5), 0, 0, 0, 10));
        assert!(b.on_announce(addr(2), (1, 9), 0, 0, 0, 10), "a known origin still");
        b.forget(&addr(1));
        assert_eq!(b.grafts_due(10, 10, |_| 0, 0, &all).len(), 1);
    }

    /// A node drawn with tree edges to 1 and 2, and overlay edges to 1 to 4.
    fn drawn() -> Broadcast {
        let mut b = Broadcast::default();
        b.set_picked(vec![addr(1), addr(3)]);
        b.set_tree(OwnEdges {
            overlay: [addr(1), addr(2), addr(3), addr(4)].into(),
            tree: [addr(1), addr(2)].into(),
        });
        b
    }

    #[test]
    fn on_a_drawn_tree_a_graft_pulls_writes_and_changes_no_edge() {
        let mut b = drawn();
        assert_eq!(b.eager(&all), vec![addr(1), addr(2)]);
        assert!(b.on_announce(addr(3), (7, 10), 0, 0, 0, 50));
        let due = b.grafts_due(50, 50, |_| 0, 0, &all);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].peer, addr(3));
        assert_eq!(b.eager(&all), vec![addr(1), addr(2)], "the grafted edge stays lazy");
        b.on_graft(addr(4), true);
        assert_eq!(b.eager(&all), vec![addr(1), addr(2)], "so does the grafting one");
        // An empty graft is a peer that drew no tree asking to be on it.
        b.on_graft(addr(4), false);
        assert_eq!(b.eager(&all), vec![addr(1), addr(2), addr(4)]);
    }

    #[test]
    fn on_a_drawn_tree_duplicates_prune_only_the_edges_off_it_and_every_time() {
        let mut b = drawn();
        assert!(!b.on_gossip(addr(1), false), "a tree edge is never pruned");
        assert_eq!(b.eager(&all), vec![addr(1), addr(2)]);
        assert!(b.on_gossip(addr(3), false), "off the tree");
        assert!(
            b.on_gossip(addr(3), false),
            "still sending eagerly: it missed the prune or drew another tree"
        );
        assert!(!b.on_gossip(addr(3), true), "a pulled write it was asked for");
    }

    #[test]
    fn writes_are_sent_on_down_the_tree_once_whichever_path_brought_them_first() {
        let mut b = Broadcast::default();
        let mut held = VersionVector::default();
        held.insert_range(7, 1, 10);
        // 1 to 10 came by a sync stream: the tree's copy of 3 to 12 (11 and 12 refused)
        // is still sent on, the part held.
        assert_eq!(b.take_unspread(&held, &[(7, 3, 12)]), vec![(7, 3, 10)]);
        assert!(b.take_unspread(&held, &[(7, 1, 10)]).iter().eq(&[(7, 1, 2)]));
        assert!(b.take_unspread(&held, &[(7, 1, 10)]).is_empty(), "sent on already");
        held.insert_range(7, 11, 20);
        held.insert_range(9, 1, 2);
        assert_eq!(
            b.take_unspread(&held, &[(7, 5, 15), (9, 1, 5), (8, 1, 1)]),
            vec![(7, 11, 15), (9, 1, 2)]
        );
    }

    #[test]
    fn subtracting_keeps_the_gaps_of_a_range() {
        let mut set = SeqSet::default();
        assert_eq!(subtract(&set, 3, 9).collect::<Vec<_>>(), vec![(3, 9)]);
        set.insert_range(1, 4);
        set.insert_range(8, 10);
        set.insert_range(14, 15);
        assert_eq!(
            subtract(&set, 1, 20).collect::<Vec<_>>(),
            vec![(5, 7), (11, 13), (16, 20)]
        );
        assert_eq!(subtract(&set, 9, 12).collect::<Vec<_>>(), vec![(11, 12)]);
        assert_eq!(subtract(&set, 2, 3).count(), 0);
        set.insert_range(16, u64::MAX);
        assert_eq!(subtract(&set, 12, u64::MAX).collect::<Vec<_>>(), vec![(12, 13)]);
    }

    #[test]
    fn the_graft_wait_follows_how_late_the_tree_brings_what_was_announced() {
        let mut b = Broadcast::default();
        assert_eq!(b.graft_wait_us(MIN_GRAFT_WAIT_US), MIN_GRAFT_WAIT_US);
        // Copies coming 400 ms after their announcements, on a loaded machine.
        for i in 0..20u64 {
            let at = i * 1_000_000;
            b.on_announce(addr(1), (7, i + 1), i, 0, at, 30_000);
            b.on_delivered(7, i + 1, at + 400_000);
        }
        let wait = b.graft_wait_us(MIN_GRAFT_WAIT_US);
        assert!((400_000..=MAX_GRAFT_WAIT_US).contains(&wait), "{wait}");
        // A copy that may be a graft's answer is no sample.
        let mut c = Broadcast::default();
        c.on_announce(addr(1), (7, 5), 0, 0, 0, 30_000);
        assert_eq!(c.grafts_due(30_000, 30_000, |_| 0, 0, &all).len(), 1);
        c.on_delivered(7, 5, 900_000);
        assert_eq!(c.graft_wait_us(MIN_GRAFT_WAIT_US), MIN_GRAFT_WAIT_US);
    }
}
