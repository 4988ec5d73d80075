//! Proving addresses: challenges to sources not verified yet, answers to challenges.

use std::net::SocketAddr;

use crate::time::Now;
use crate::wire::Frame;

use super::{Engine, Transmit};

/// Challenges of one datagram answered at most, so a datagram of a thousand
/// challenges draws a few answers.
const MAX_ANSWERS: usize = 2;

impl Engine {
    /// Whether a datagram from a source that must first prove its address (new, never
    /// verified, or announcing a new incarnation) carries the answer to this node's
    /// challenge. If not, the datagram changes nothing: it is counted and answered with
    /// a challenge bound to the incarnation it claims, together with answers to its own
    /// challenges and this node's heartbeat, within the amplification budget.
    pub(super) fn source_proven(
        &mut self,
        now: Now,
        from: SocketAddr,
        src_inc: u64,
        frames: &[Frame],
        received: usize,
    ) -> bool {
        let verifier = &mut self.verifier;
        let proven = frames.iter().find_map(|f| match f {
            Frame::Response(n) => verifier.verify(from, src_inc, *n, now.mono_us),
            _ => None,
        });
        if let Some(round_trip_us) = proven {
            // The first round trip to the peer, before any data: what a lost first
            // datagram of data waits before it is resent.
            if let Some(link) = self.links.get_mut(&from) {
                link.channel.seed_rtt(round_trip_us);
            }
            return true;
        }
        self.counters.dropped.unverified += 1;
        if frames.iter().any(|f| matches!(f, Frame::Response(_))) {
            // An answer to a challenge no longer pending (evicted by newer ones, or
            // expired) draws no new one: a burst of joiners past the pending bound would
            // otherwise evict, answer by answer, the challenges still waiting for theirs,
            // and none would ever be verified. The sender tries again with its next
            // probe, and each round verifies as many as are kept pending.
            return false;
        }
        // Remembered (not trusted): a real node still proving its address must block the
        // collection of tombstones it has not seen, and be gossiped to the others.
        let introduced = frames.iter().find_map(|f| match f {
            Frame::Heartbeat(hb) if !hb.node_id.is_empty() => Some(hb.node_id.as_str()),
            _ => None,
        });
        if let Some(node_id) = introduced {
            if self.members.note_unverified(from, node_id, now.mono_us) {
                self.add_link(from);
            }
        }
        let nonce = self
            .verifier
            .challenge(from, src_inc, now.mono_us, &mut self.rng);
        self.verifier.on_received(from, received);
        let mut reply: Vec<Frame> = frames
            .iter()
            .filter_map(|f| match f {
                Frame::Challenge(n) => Some(Frame::Response(*n)),
                _ => None,
            })
            .take(MAX_ANSWERS)
            .collect();
        reply.push(Frame::Challenge(nonce));
        // No session yet: the link, if any, belongs to what this source has not proved.
        // Never compressed: what an unverified source gets stays plain and small.
        let short = self.encode_packet(src_inc, (0, 0), reply.clone(), false);
        reply.push(self.introducing_heartbeat(from, now.mono_us));
        let full = self.encode_packet(src_inc, (0, 0), reply, false);
        // The heartbeat introduces this node at once if the budget allows; the challenge
        // alone is enough to go on.
        for payload in [full, short] {
            if self.verifier.may_send(from, payload.len()) {
                self.transmits.push_back(Transmit { dst: from, payload });
                break;
            }
        }
        false
    }

    /// Answers a verified member's challenge, with this node's heartbeat so the member
    /// knows at once who answered.
    pub(super) fn answer_challenge(&mut self, now: Now, from: SocketAddr, nonce: u64) {
        let dst_inc = self.members.incarnation(&from).unwrap_or(0);
        let heartbeat = self.introducing_heartbeat(from, now.mono_us);
        self.queue_packet(from, dst_inc, vec![Frame::Response(nonce), heartbeat]);
    }
}
