//! Outgoing datagrams: heartbeats, data fragments with piggybacked acks, standalone acks.
//!
//! Whatever goes to a peer carries the ack pending for it, due or not; an ack goes alone
//! only once due (the `transport` module says when), or when it names more gaps than
//! ride on a datagram of data (`link::PIGGYBACK_ACK_RANGES`). Data fragments to one peer share a
//! datagram while they fit it, so a burst of small messages (pushes, sync requests,
//! user messages) costs one datagram, not one each.

use std::net::SocketAddr;

use crate::link::{data_frame_cost, packet_data_room, PIGGYBACK_ACK_RANGES, SETTLED_FRAME_BYTES};
use crate::time::Now;
use crate::wire::{Frame, Heartbeat, Packet};

use super::{Engine, Transmit};

impl Engine {
    /// Sends a heartbeat to `addr`: a probe (`reply`) or an answer, with the rumors due;
    /// one to an address not verified yet carries a challenge, which its answer must echo
    /// before anything it says counts.
    pub(super) fn send_heartbeat(&mut self, now: Now, addr: SocketAddr, reply: bool) {
        let heartbeat = self.heartbeat_frame(addr, reply, now.mono_us);
        let dst_inc = self.members.get(&addr).map_or(0, |m| m.incarnation);
        let ack = self
            .links
            .get_mut(&addr)
            .and_then(|l| l.channel.take_pending_ack(now.mono_us));
        if ack.is_some() {
            // The ack's deadline is gone with it.
            self.touched.insert(addr);
        }
        // Rumors before the heartbeat: a probed member that reads it is suspected
        // refutes before it answers, and its answer carries the refutation.
        let rumors = self.rumors_for(addr);
        let mut frames: Vec<Frame> = ack
            .map(Frame::Ack)
            .into_iter()
            .chain(rumors)
            .chain([heartbeat])
            .collect();
        if dst_inc == 0 {
            let nonce = self.verifier.challenge(addr, 0, now.mono_us, &mut self.rng);
            frames.push(Frame::Challenge(nonce));
        }
        self.queue_packet(addr, dst_inc, frames);
    }

    /// This node's heartbeat for `to`: gossip only for a verified member, and the node
    /// id only until `to` showed it holds it (see [`Heartbeat::node_id`]).
    pub(super) fn heartbeat_frame(&mut self, to: SocketAddr, reply: bool, now_us: u64) -> Frame {
        let named = self.links.get(&to).is_some_and(|l| l.knows_our_id);
        self.heartbeat_naming(to, reply, now_us, !named)
    }

    /// [`Engine::heartbeat_frame`] with the node id whatever the link says, for a
    /// handshake: whoever challenges this node does not know its run, and its link may
    /// still be an earlier run's, which held the id.
    pub(super) fn introducing_heartbeat(&mut self, to: SocketAddr, now_us: u64) -> Frame {
        self.heartbeat_naming(to, false, now_us, true)
    }

    fn heartbeat_naming(&mut self, to: SocketAddr, reply: bool, now_us: u64, id: bool) -> Frame {
        Frame::Heartbeat(Heartbeat {
            node_id: if id {
                self.config.node_id.clone()
            } else {
                String::new()
            },
            fingerprint: self.replica.version_vector().fingerprint(),
            reply,
            members: self.members.nameable(),
            gossip: self.members.gossip_for(to, reply, now_us, &mut self.rng),
        })
    }

    /// Fills the transmit queue: for every link that may have something to send, sync
    /// chunks into its channel if it has room, then its ready data, as many fragments
    /// to a datagram as fit, the first datagram carrying the pending ack; or the ack
    /// alone, if due.
    pub(super) fn produce(&mut self, now: Now) {
        let refill_below = self.limits.max_in_flight;
        let mut packets = Vec::new();
        self.sending.extend(self.touched.iter().copied());
        self.refresh_superseded_writes();
        let sending: Vec<SocketAddr> = self.sending.iter().copied().collect();
        for addr in sending {
            let Some(link) = self.links.get_mut(&addr) else {
                self.sending.remove(&addr);
                continue;
            };
            // The path's size, as probed (see `path`).
            let budget = link.fragment_size();
            let room = packet_data_room(budget);
            let codec = self.seal.codec();
            let stream_room = link.stream_room(refill_below, codec.is_some(), budget);
            let codec = codec.filter(|_| link.reads_compressed);
            link.sync.refill(
                &self.replica,
                (&mut link.channel, &mut link.writes_in_flight),
                (budget, stream_room),
                codec,
            );
            let dst_inc = self.members.get(&addr).map_or(0, |m| m.incarnation);
            let mut frames: Vec<Frame> = Vec::new();
            // Frame bytes in the datagram, and those of them compressed already.
            let (mut used, mut compressed) = (0, 0);
            // What the peer need not wait for any more, said once with this pass's data.
            let mut settled = link.channel.settled_to_announce();
            while let Some(data) = link.channel.poll_data(now.mono_us) {
                let cost = data_frame_cost(data.bytes.len());
                // A second copy of a retransmission (see `Channel::poll_data`) is worth
                // something only in a datagram of its own.
                let copy = frames
                    .iter()
                    .any(|f| matches!(f, Frame::Data(d) if d.seq == data.seq));
                if used > 0 && (used + cost > room || copy) {
                    let worth = 2 * compressed < used;
                    packets.push((addr, dst_inc, std::mem::take(&mut frames), worth));
                    (used, compressed) = (0, 0);
                }
                if frames.is_empty() {
                    match link.channel.take_pending_ack(now.mono_us) {
                        // Too many gaps to ride on data (see `PIGGYBACK_ACK_RANGES`).
                        Some(ack) if ack.ranges.len() > PIGGYBACK_ACK_RANGES => {
                            packets.push((addr, dst_inc, vec![Frame::Ack(ack)], false));
                        }
                        ack => frames.extend(ack.map(Frame::Ack)),
                    }
                    // Before the data it concerns, in its datagram if there is room.
                    if let Some(settled) = settled.take() {
                        if cost + SETTLED_FRAME_BYTES <= room {
                            frames.push(Frame::Settled(settled));
                            used += SETTLED_FRAME_BYTES;
                        } else {
                            packets.push((addr, dst_inc, vec![Frame::Settled(settled)], false));
                        }
                    }
                }
                if link.channel.is_compressed(data.msg_id) {
                    compressed += cost;
                }
                frames.push(Frame::Data(data));
                used += cost;
            }
            if frames.is_empty() {
                frames.extend(link.channel.take_ack(now.mono_us).map(Frame::Ack));
            }
            if link.channel.is_paced() || link.channel.lost_data {
                // Its timer must wake it when the pacer lets the rest go, or, a datagram
                // given up instead of resent, to ask anti-entropy for help.
                self.touched.insert(addr);
            }
            if !frames.is_empty() {
                // Data sent or an ack taken: the link's deadline moved.
                self.touched.insert(addr);
                packets.push((addr, dst_inc, frames, 2 * compressed < used || used == 0));
            }
            // Anything still waiting to go out keeps it here; anything that could let
            // more out (an ack or other datagram from the peer, a timeout, a write)
            // touches it again.
            if !link.channel.has_unsent() && link.sync.stream.is_empty() {
                self.sending.remove(&addr);
            }
        }
        for (addr, dst_inc, frames, worth_compressing) in packets {
            self.queue_packet_compressing(addr, dst_inc, frames, worth_compressing);
        }
    }

    /// Queues a packet to `dst`, naming the sessions of its link if it has one.
    pub(super) fn queue_packet(&mut self, dst: SocketAddr, dst_inc: u64, frames: Vec<Frame>) {
        self.queue_packet_compressing(dst, dst_inc, frames, true);
    }

    /// [`Engine::queue_packet`], trying compression only if `worth_compressing` (unset:
    /// most of the packet's bytes are compressed already) and the peer reads it.
    fn queue_packet_compressing(
        &mut self,
        dst: SocketAddr,
        dst_inc: u64,
        frames: Vec<Frame>,
        worth_compressing: bool,
    ) {
        let sessions = self
            .links
            .get(&dst)
            .map_or((0, 0), |l| (l.local_session, l.remote_session));
        let compress =
            worth_compressing && self.links.get(&dst).is_some_and(|l| l.reads_compressed);
        let payload = self.encode_packet(dst_inc, sessions, frames, compress);
        self.transmits.push_back(Transmit { dst, payload });
    }

    /// Encodes a packet with `(src_session, dst_session)`, compressed if `compress` (the
    /// receiver reads compressed payloads) and it wins. A packet with a heartbeat carries
    /// this node's advertised address too, if it has one.
    pub(super) fn encode_packet(
        &mut self,
        dst_inc: u64,
        (src_session, dst_session): (u32, u32),
        mut frames: Vec<Frame>,
        compress: bool,
    ) -> Vec<u8> {
        if let Some(advertised) = self.config.advertise_addr {
            if frames.iter().any(|f| matches!(f, Frame::Heartbeat(_))) {
                frames.push(Frame::Advertise(advertised));
            }
        }
        let packet = self.plain_packet(dst_inc, (src_session, dst_session), frames);
        self.seal.seal_packet_for(self.cluster, &packet, compress)
    }

    /// The packet of `frames` with `(src_session, dst_session)`, before it is sealed.
    pub(super) fn plain_packet(
        &self,
        dst_inc: u64,
        (src_session, dst_session): (u32, u32),
        frames: Vec<Frame>,
    ) -> Packet {
        Packet {
            src_inc: self.incarnation,
            // The receiver's session names its run: the incarnation would add 8 bytes to
            // every datagram of a link, idle probes included, and tell it nothing more.
            dst_inc: if dst_session == 0 { dst_inc } else { 0 },
            src_session,
            dst_session,
            frames,
        }
    }
}
