//! Outgoing datagrams: heartbeats, data fragments with piggybacked acks, standalone acks.

use std::net::SocketAddr;

use crate::time::Now;
use crate::wire::{Frame, Heartbeat, Packet};

use super::{Engine, Transmit};

impl Engine {
    pub(super) fn send_heartbeat(&mut self, addr: SocketAddr, reply: bool) {
        let fingerprint = self.replica.version_vector().fingerprint();
        let gossip = self.members.gossip_for(addr, &mut self.rng);
        let dst_inc = self.members.get(&addr).map_or(0, |m| m.incarnation);
        let ack = self.links.get_mut(&addr).and_then(|l| l.channel.take_ack());
        let heartbeat = Frame::Heartbeat(Heartbeat {
            node_id: self.config.node_id.clone(),
            fingerprint,
            reply,
            gossip,
        });
        let frames = ack.map(Frame::Ack).into_iter().chain([heartbeat]).collect();
        self.queue_packet(addr, dst_inc, frames);
    }

    /// Fills the transmit queue: sync chunks into channels with room, then every
    /// channel's ready data (with acks piggybacked) and standalone acks.
    pub(super) fn produce(&mut self, now: Now) {
        let budget = self.limits.max_fragment;
        let refill_below = self.limits.max_in_flight;
        let mut packets = Vec::new();
        for (&addr, link) in &mut self.links {
            link.sync
                .refill(&self.replica, &mut link.channel, budget, refill_below);
            let dst_inc = self.members.get(&addr).map_or(0, |m| m.incarnation);
            while let Some(data) = link.channel.poll_data(now.mono_us) {
                self.touched.insert(addr);
                let ack = link.channel.take_ack().map(Frame::Ack);
                let frames = ack.into_iter().chain([Frame::Data(data)]).collect();
                packets.push((addr, dst_inc, frames));
            }
            if let Some(ack) = link.channel.take_ack() {
                packets.push((addr, dst_inc, vec![Frame::Ack(ack)]));
            }
        }
        for (addr, dst_inc, frames) in packets {
            self.queue_packet(addr, dst_inc, frames);
        }
    }

    fn queue_packet(&mut self, dst: SocketAddr, dst_inc: u64, frames: Vec<Frame>) {
        let packet = Packet {
            src_inc: self.incarnation,
            dst_inc,
            frames,
        };
        self.transmits.push_back(Transmit {
            dst,
            payload: self.seal.seal_packet(self.cluster, &packet),
        });
    }
}
