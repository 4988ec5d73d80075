//! Writes through the broadcast tree, in a mesh larger than the push fanout (see
//! `broadcast`): eager sends and announcements, forwarding what was new, prunes and
//! grafts.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;

use crate::broadcast::{
    self, BeaconOutcome, MAX_GRAFT_BYTES, MAX_GRAFT_SPAN, MAX_ITEMS, MIN_GRAFT_WAIT_US,
};
use crate::compress::{self, PACKED_CHUNK};
use crate::link::PIGGYBACK_ACK_RANGES;
use crate::resend::WriteKind;
use crate::sync::{self, EncodedDelta, SeqRange};
use crate::time::{us, Now};
use crate::timers::Timer;
use crate::wire::{self, Delta, Frame, Message};

use super::Engine;

impl Engine {
    /// The peers this node sends writes to eagerly on the broadcast tree (empty while
    /// the mesh is within the push fanout, or before the first write went by).
    pub fn tree_eager_peers(&self) -> Vec<SocketAddr> {
        let members = &self.members;
        self.broadcast.eager(&|a| members.is_reachable(a))
    }

    /// Whether writes travel the tree: more reachable peers than the push fanout.
    pub(super) fn tree_active(&self) -> bool {
        self.members
            .reachable()
            .nth(self.config.push_fanout)
            .is_some()
    }

    /// The reachable members changed at `now_us`: the neighbors are drawn again soon.
    pub(super) fn tree_members_changed(&mut self, now_us: u64) {
        self.broadcast.members_changed(now_us);
        self.arm_tree_timer(now_us);
    }

    /// Draws this node's own neighbors again if members changed, and grafts those newly
    /// picked, so they take this node as a neighbor too. The root (the member with the
    /// lowest origin) then sends a beacon down the tree.
    pub(super) fn pick_tree_neighbors(&mut self, now_us: u64) {
        if !self.broadcast.needs_pick() {
            return;
        }
        let own = self.replica.own_origin();
        let members: Vec<(SocketAddr, u64)> = self
            .members
            .reachable()
            .map(|m| (m.addr, m.origin))
            .collect();
        let picked = broadcast::pick_neighbors(own, members.iter().copied());
        let newly_picked = self.broadcast.set_picked(picked);
        match broadcast::own_edges(own, &members) {
            // Every node draws the same overlay and tree: no graft needed (one would put
            // an edge off the tree on it at the other end).
            Some(edges) => self.broadcast.set_tree(edges),
            None => {
                self.broadcast.set_undrawn();
                for addr in newly_picked {
                    self.send_tree_message(addr, &Message::Graft(Vec::new()));
                }
            }
        }
        let root = members
            .iter()
            .all(|&(_, origin)| origin == 0 || origin > own);
        if root {
            self.broadcast.schedule_beacon(now_us);
        }
    }

    /// The beacon `(root, round)` from `from`: forwarded down the tree if new, and its
    /// sender pruned if it came by another edge already. A tree drawn afresh has every
    /// edge of the overlay on it; pruned only by duplicate writes, the first burst from
    /// every node flooded the overlay before any prune came back.
    pub(super) fn on_beacon(&mut self, now: Now, from: SocketAddr, beacon: (u64, u64)) {
        match self.broadcast.on_beacon(from, beacon, now.mono_us) {
            BeaconOutcome::Duplicate(true) => {
                self.counters.prunes_sent += 1;
                self.send_tree_message(from, &Message::Prune);
            }
            BeaconOutcome::Duplicate(false) | BeaconOutcome::Ignore => {}
            BeaconOutcome::Forward => {
                if self.tree_active() {
                    self.pick_tree_neighbors(now.mono_us);
                    self.send_beacon(beacon, Some(from));
                }
            }
        }
        self.arm_tree_timer(now.mono_us);
    }

    /// Sends `beacon` to every eager neighbor but `except`.
    fn send_beacon(&mut self, (root, round): (u64, u64), except: Option<SocketAddr>) {
        let message = wire::encode_message(&Message::Beacon(root, round));
        for peer in self.tree_eager_peers() {
            if Some(peer) != except {
                self.send_encoded(peer, &message);
            }
        }
    }

    /// Pushes this node's new writes `range` down the tree.
    pub(super) fn push_by_tree(&mut self, now_us: u64, range: SeqRange) {
        self.pick_tree_neighbors(now_us);
        let members = &self.members;
        self.broadcast
            .spread(range, None, &|a| members.is_reachable(a));
        // Local writes are already paced by `push`: no second wait.
        self.flush_tree(now_us);
    }

    /// Writes received on the tree: merged like any delta, then what was new is
    /// forwarded on, and a sender that brought mostly writes already held is pruned.
    ///
    /// Plumtree prunes on a message that brought nothing new. Here a message gathers
    /// the writes of a slot, of several origins: in a burst nearly every one carries
    /// something new, and a rule of "nothing new" never pruned (20 nodes writing at
    /// once received each write about three times). A sender whose writes were mostly
    /// duplicates is on a redundant edge.
    pub(super) fn on_gossip(&mut self, now: Now, from: SocketAddr, delta: Delta) {
        let own = self.replica.own_origin();
        let vv = self.replica.version_vector();
        let (mut fresh, mut stale) = (0usize, 0usize);
        for group in &delta.groups {
            for entry in &group.entries {
                if group.origin != own && !vv.contains(group.origin, entry.seq) {
                    fresh += 1;
                } else {
                    stale += 1;
                }
            }
        }
        let spans: Vec<SeqRange> = delta
            .groups
            .iter()
            .filter(|g| g.origin != own && g.lo <= g.hi)
            .map(|g| (g.origin, g.lo, g.hi))
            .collect();
        self.on_delta(now, from, delta);
        for &(origin, _, hi) in &spans {
            let held = self.replica.version_vector().upto(origin);
            self.broadcast.on_delivered(origin, held, now.mono_us);
            self.broadcast.shown(from, origin, hi);
        }
        let forward = self
            .broadcast
            .take_unspread(self.replica.version_vector(), &spans);
        let useful = !forward.is_empty() && fresh >= stale;
        if self.broadcast.on_gossip(from, useful) {
            self.counters.prunes_sent += 1;
            self.send_tree_message(from, &Message::Prune);
        }
        if forward.is_empty() || !self.tree_active() {
            return;
        }
        self.pick_tree_neighbors(now.mono_us);
        let members = &self.members;
        for range in forward {
            self.broadcast
                .spread(range, Some(from), &|a| members.is_reachable(a));
        }
        self.arm_tree_timer(now.mono_us);
    }

    /// `from` announces writes: those still missing after a short wait are grafted.
    pub(super) fn on_ihave(&mut self, now: Now, from: SocketAddr, items: Vec<(u64, u64)>) {
        if items.len() > MAX_ITEMS {
            self.counters.dropped.rate_limited += 1;
        }
        let wait_us = self.graft_wait_us(&from);
        let own = self.replica.own_origin();
        for (origin, hi) in items.into_iter().take(MAX_ITEMS) {
            if origin == 0 {
                continue;
            }
            self.broadcast.shown(from, origin, hi);
            if origin == own {
                continue;
            }
            let held = self.replica.version_vector().upto(origin);
            let vv = self.replica.version_vector();
            let held = if vv.contains(origin, hi) { hi } else { held };
            let progress = self.counters.entries_received;
            if !self
                .broadcast
                .on_announce(from, (origin, hi), held, progress, now.mono_us, wait_us)
            {
                self.counters.dropped.rate_limited += 1;
            }
        }
        self.arm_tree_timer(now.mono_us);
    }

    /// `from` grafts this node: it is on the tree again, and is sent what it asked for
    /// of what this node holds: one range per origin (a range named twice is sent once),
    /// at most [`MAX_GRAFT_SPAN`] writes of it and [`MAX_GRAFT_BYTES`] in all.
    pub(super) fn on_graft(&mut self, now: Now, from: SocketAddr, asked: Vec<(u64, u64, u64)>) {
        self.broadcast.on_graft(from, !asked.is_empty());
        if asked.len() > MAX_ITEMS {
            self.counters.dropped.rate_limited += 1;
        }
        let mut wanted: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        for (origin, lo, hi) in asked.into_iter().take(MAX_ITEMS) {
            let range = wanted.entry(origin).or_insert((lo, hi));
            *range = (range.0.min(lo), range.1.max(hi));
        }
        let mut ranges = VecDeque::new();
        for (origin, (lo, hi)) in wanted {
            let held = self.replica.version_vector().upto(origin);
            let hi = hi.min(held);
            let lo = lo.max(1).max(hi.saturating_sub(MAX_GRAFT_SPAN - 1));
            if lo <= hi {
                ranges.push_back((origin, lo, hi));
            }
        }
        if !ranges.is_empty() {
            self.send_writes(from, ranges, MAX_GRAFT_BYTES);
        }
        self.arm_tree_timer(now.mono_us);
    }

    /// `from` prunes this node: it is announced to from now on.
    pub(super) fn on_prune(&mut self, from: SocketAddr) {
        self.broadcast.on_prune(from);
    }

    /// The tree's timer: sends what is queued once its slot has come, and grafts the
    /// announced writes still missing.
    pub(super) fn on_tree_timer(&mut self, now_us: u64) {
        if self.broadcast.pick_at().is_some_and(|at| at <= now_us) {
            if self.tree_active() {
                // A node that never writes still grafts its picks, so that the nodes
                // no one else picked are on the tree too.
                self.pick_tree_neighbors(now_us);
            } else {
                self.broadcast.set_picked(Vec::new());
            }
        }
        let own = self.replica.own_origin();
        if let Some(beacon) = self.broadcast.take_own_beacon(own, now_us) {
            if self.tree_active() {
                self.send_beacon(beacon, None);
            }
        }
        let slot_us = us(self.config.push_delay);
        if self
            .broadcast
            .flush_at(slot_us, now_us)
            .is_some_and(|at| at <= now_us)
        {
            self.flush_tree(now_us);
        }
        let wait_us = self.broadcast.graft_wait_us(MIN_GRAFT_WAIT_US);
        let vv = self.replica.version_vector();
        let members = &self.members;
        let due = self.broadcast.grafts_due(
            now_us,
            wait_us,
            |origin| vv.upto(origin),
            self.counters.entries_received,
            &|a| members.is_reachable(a),
        );
        for graft in due {
            let lo = self.replica.version_vector().upto(graft.origin) + 1;
            self.counters.grafts_sent += 1;
            let message = Message::Graft(vec![(graft.origin, lo, graft.hi)]);
            self.send_tree_message(graft.peer, &message);
        }
        self.arm_tree_timer(now_us);
    }

    /// Arms the tree's timer for its next flush or graft.
    pub(super) fn arm_tree_timer(&mut self, now_us: u64) {
        if !self.started {
            return;
        }
        let flush = self.broadcast.flush_at(us(self.config.push_delay), now_us);
        let at = [
            flush,
            self.broadcast.graft_at(),
            self.broadcast.pick_at(),
            self.broadcast.beacon_at(),
        ]
        .into_iter()
        .flatten()
        .min();
        self.timers.set(Timer::Broadcast, at);
    }

    /// Sends everything queued on the tree: writes to eager neighbors, announcements to
    /// lazy ones, one message of each per peer.
    fn flush_tree(&mut self, now_us: u64) {
        // Most eager neighbors are sent the same ranges (all that arrived, but to the
        // neighbor it came from): each set is encoded and compressed once.
        let mut encoded: HashMap<(Vec<SeqRange>, bool), Vec<EncodedDelta>> = HashMap::new();
        for (peer, out) in self.broadcast.take_queued(now_us) {
            if !out.eager.is_empty() {
                let packs = self.links.get(&peer).is_some_and(|l| l.reads_compressed);
                let messages = match encoded.entry((out.eager, packs)) {
                    Entry::Occupied(known) => known.into_mut(),
                    Entry::Vacant(new) => {
                        let ranges = new.key().0.iter().copied().collect();
                        new.insert(self.encode_gossip(ranges, usize::MAX, packs))
                    }
                };
                self.queue_gossip(peer, messages);
            }
            if !out.announce.is_empty() {
                self.announce(peer, &out.announce, now_us);
            }
        }
        self.arm_tree_timer(now_us);
    }

    /// Announces `items` to `peer` in [`Frame::IHave`]s, outside the reliable channel:
    /// as many frames as the path's datagram holds, each in a datagram of its own, an ack
    /// due to the peer riding on the first.
    fn announce(&mut self, peer: SocketAddr, items: &[(u64, u64)], now_us: u64) {
        let dst_inc = self.members.get(&peer).map_or(0, |m| m.incarnation);
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        // The room a fragment of data gets: the rest is kept for the header, the seal,
        // the envelope and a piggybacked ack.
        let room = link.fragment_size();
        let mut ack = link.channel.take_pending_ack(now_us);
        if ack.is_some() {
            // The ack's deadline is gone with it.
            self.touched.insert(peer);
        }
        if let Some(big) = ack.take_if(|a| a.ranges.len() > PIGGYBACK_ACK_RANGES) {
            self.queue_packet(peer, dst_inc, vec![Frame::Ack(big)]);
        }
        for chunk in announcement_chunks(items, room) {
            let frames = ack
                .take()
                .map(Frame::Ack)
                .into_iter()
                .chain([Frame::IHave(chunk.to_vec())])
                .collect();
            self.queue_packet(peer, dst_inc, frames);
        }
    }

    /// Sends the writes of `ranges` to `peer` on the tree, up to about `budget` bytes
    /// (what is left out is anti-entropy's).
    pub(super) fn send_writes(
        &mut self,
        peer: SocketAddr,
        ranges: VecDeque<SeqRange>,
        budget: usize,
    ) {
        let packs = self.links.get(&peer).is_some_and(|l| l.reads_compressed);
        let messages = self.encode_gossip(ranges, budget, packs);
        self.queue_gossip(peer, &messages);
    }

    /// The writes of `ranges` as tree messages of about a datagram each (a packed chunk
    /// each, if `packs`: the peer reads compressed payloads), up to about `budget` bytes.
    fn encode_gossip(
        &mut self,
        mut ranges: VecDeque<SeqRange>,
        budget: usize,
        packs: bool,
    ) -> Vec<EncodedDelta> {
        let mut spent = 0usize;
        let fits = self.limits.max_fragment;
        let mut messages = Vec::new();
        while !ranges.is_empty() && spent < budget {
            let codec = self.seal.codec().filter(|_| packs);
            let chunk = if codec.is_some() {
                PACKED_CHUNK.max(fits)
            } else {
                fits
            };
            let delta = sync::build_delta(&self.replica, &mut ranges, chunk, false);
            let covered = sync::covered_by(&delta);
            let message = wire::encode_message(&Message::Gossip(delta));
            let bytes = compress::pack_for(codec, message, fits);
            spent += bytes.len();
            messages.push(EncodedDelta { bytes, covered });
        }
        messages
    }

    /// Queues tree messages of writes to `peer`.
    fn queue_gossip(&mut self, peer: SocketAddr, messages: &[EncodedDelta]) {
        for message in messages {
            let msg_id = self.links.get(&peer).map(|l| l.channel.next_message_id());
            let queued = self.send_encoded(peer, &message.bytes);
            self.counters.write_messages_sent += 1;
            let Some(link) = self.links.get_mut(&peer) else {
                return;
            };
            if !queued {
                // Queue full: the peer is slow or gone; anti-entropy catches it up.
                link.sync.want_eventually();
                return;
            }
            // On its way: a sync request meanwhile does not stream it again.
            for &(range, _) in &message.covered {
                link.sync.note_sent(range);
            }
            if let Some(msg_id) = msg_id {
                link.writes_in_flight
                    .record(msg_id, WriteKind::Gossip, message.covered.clone());
            }
        }
    }

    /// Queues `message` on the reliable channel to `peer`; whether it was queued.
    fn send_tree_message(&mut self, peer: SocketAddr, message: &Message) -> bool {
        self.send_encoded(peer, &wire::encode_message(message))
    }

    /// Queues an encoded message on the reliable channel to `peer`; whether it was.
    fn send_encoded(&mut self, peer: SocketAddr, message: &[u8]) -> bool {
        let Some(link) = self.links.get_mut(&peer) else {
            return false;
        };
        let queued = link.channel.send_message(message);
        self.sending.insert(peer);
        self.touched.insert(peer);
        queued
    }

    /// How long an announcement from `from` is given before its writes are grafted:
    /// two retransmission timeouts to it (round trip and its variation: a loaded path
    /// waits longer), at least [`MIN_GRAFT_WAIT_US`], and longer while the tree's
    /// copies lag announcements (see [`broadcast::Broadcast::graft_wait_us`]).
    fn graft_wait_us(&self, from: &SocketAddr) -> u64 {
        let rto = self.links.get(from).map_or(0, |l| l.channel.rtt().rto_us());
        self.broadcast.graft_wait_us(MIN_GRAFT_WAIT_US.max(2 * rto))
    }
}

/// Bytes of an announcement frame besides its items: its tag and the item count.
const ANNOUNCEMENT_FIELDS_BYTES: usize = 4;

/// `items` cut into announcements of at most [`MAX_ITEMS`] items and `room` bytes each.
fn announcement_chunks(items: &[(u64, u64)], room: usize) -> Vec<&[(u64, u64)]> {
    let mut chunks = Vec::new();
    let (mut start, mut used) = (0, ANNOUNCEMENT_FIELDS_BYTES);
    for (i, item) in items.iter().enumerate() {
        let cost = postcard::experimental::serialized_size(item).unwrap_or(20);
        if i > start && (i - start == MAX_ITEMS || used + cost > room) {
            chunks.push(&items[start..i]);
            (start, used) = (i, ANNOUNCEMENT_FIELDS_BYTES);
        }
        used += cost;
    }
    if start < items.len() {
        chunks.push(&items[start..]);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_are_cut_by_items_and_by_room() {
        let items: Vec<(u64, u64)> = (0..150).map(|i| (u64::MAX - i, 1 << 30)).collect();
        let sizes = |room| -> Vec<usize> {
            announcement_chunks(&items, room)
                .iter()
                .map(|c| c.len())
                .collect()
        };
        // Each item takes 10 + 5 bytes: a large room holds MAX_ITEMS of them.
        assert_eq!(
            sizes(10_000),
            vec![MAX_ITEMS, MAX_ITEMS, 150 - 2 * MAX_ITEMS]
        );
        // 304 bytes hold the fields and 20 items.
        assert_eq!(sizes(304), [vec![20; 7], vec![10]].concat());
        // An item larger than the room still goes, alone.
        assert_eq!(sizes(1).len(), 150);
        assert!(announcement_chunks(&[], 1_000).is_empty());
        for chunk in announcement_chunks(&items, 304) {
            let frame = postcard::to_allocvec(&Frame::IHave(chunk.to_vec())).unwrap();
            assert!(frame.len() <= 304, "{} bytes", frame.len());
        }
    }
}
