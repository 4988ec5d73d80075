//! Each link's datagram size: probing the path for a larger one, answering the peer's
//! probes, and falling back when a path stops carrying what it was probed at (the
//! `path` module has the search itself).

use std::net::SocketAddr;

use crate::link::fragment_size;
use crate::path::Probe;
use crate::seal::SEAL_OVERHEAD;
use crate::time::Now;
use crate::wire::{self, Frame, PathProbe};

use super::Engine;

/// Timeouts the oldest datagram in flight takes, while larger than a datagram of the
/// base size carries and while the peer answers datagrams sent after it, before the
/// path is suspected of no longer carrying the larger size (and probed again).
pub(super) const BLACK_HOLE_TIMEOUTS: u32 = 4;

impl Engine {
    /// A peer's timer fired: checks its path for a black hole, and sends the probe due.
    pub(super) fn path_timeout(&mut self, now: Now, addr: SocketAddr) {
        let t = now.mono_us;
        let heard = self.members.get(&addr).and_then(|m| m.last_heard_us);
        let Some(link) = self.links.get_mut(&addr) else {
            return;
        };
        if !self.started || !link.is_confirmed() {
            return;
        }
        let base = link.path.base();
        let size = link.path.datagram_size();
        // A datagram the base size would not carry, timed out again and again while the
        // peer answered datagrams sent after it: the path may have lost the larger size.
        let stuck = link.channel.oldest_larger_than(fragment_size(base)).filter(
            |&(first_sent_us, timeouts)| {
                timeouts >= BLACK_HOLE_TIMEOUTS && heard.is_some_and(|h| h > first_sent_us)
            },
        );
        if let Some((first_sent_us, _)) = stuck {
            link.path.suspect(first_sent_us);
        }
        if link.path.on_timeout(t) {
            log::info!(
                "{}: the path to {addr} stopped carrying {size}-byte datagrams: back to {base}",
                self.config.node_id,
            );
            // What is in flight was cut for the larger size: the session starts afresh
            // (the peer follows), and anti-entropy repairs what it lost.
            let session = self.rng.u32(1..);
            link.reset_session(&self.limits, session);
            link.sync.on_back(t);
            self.feed_lost(t, addr);
            return;
        }
        let timeout = link.channel.rtt().rto_us();
        if let Some(probe) = link.path.poll_probe(t, &mut self.rng, timeout) {
            self.send_path_probe(addr, probe);
        }
    }

    /// Sends `probe`: a datagram of exactly its size, padded.
    fn send_path_probe(&mut self, addr: SocketAddr, probe: Probe) {
        let dst_inc = self.members.get(&addr).map_or(0, |m| m.incarnation);
        let Some(link) = self.links.get(&addr) else {
            return;
        };
        let sessions = (link.local_session, link.remote_session);
        let sealed = if self.seal.is_sealing() {
            SEAL_OVERHEAD
        } else {
            0
        };
        let mut padding = 0;
        // The padding's length prefix grows with it: settle its length in a few tries.
        for _ in 0..3 {
            let frame = Frame::PathProbe(PathProbe {
                nonce: probe.nonce,
                padding: vec![0; padding],
            });
            let packet = self.plain_packet(dst_inc, sessions, vec![frame]);
            let len = wire::encode_packet(self.cluster, &packet).len() + sealed;
            if len == probe.size {
                break;
            }
            padding = (padding + probe.size).saturating_sub(len);
        }
        let frame = Frame::PathProbe(PathProbe {
            nonce: probe.nonce,
            padding: vec![0; padding],
        });
        // Never compressed: zeros would shrink it to nothing.
        let payload = self.encode_packet(dst_inc, sessions, vec![frame], false);
        self.transmits
            .push_back(super::Transmit { dst: addr, payload });
    }

    /// The peer at `from` probed the path: echoes its number, in a datagram of its own.
    pub(super) fn on_path_probe(&mut self, from: SocketAddr, nonce: u64) {
        let dst_inc = self.members.get(&from).map_or(0, |m| m.incarnation);
        self.queue_packet(from, dst_inc, vec![Frame::PathAnswer(nonce)]);
    }

    /// The peer at `from` answered a probe: the link's new messages are cut for the
    /// size it proved.
    pub(super) fn on_path_answer(&mut self, now: Now, from: SocketAddr, nonce: u64) {
        let Some(link) = self.links.get_mut(&from) else {
            return;
        };
        if link.path.on_answer(nonce, now.mono_us) {
            let fragment = link.fragment_size();
            link.channel.set_max_fragment(fragment);
        }
    }
}
