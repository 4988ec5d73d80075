//! Messages of writes due for retransmission after their writes were superseded: sent
//! again as they are now (see `resend`).

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::resend::WriteKind;
use crate::sync::{self, SeqRange};

use super::Engine;

impl Engine {
    /// For every link with data to send: withdraws each message of writes due for
    /// retransmission whose writes were superseded since it was sent, and queues what its
    /// ranges hold now in its place.
    pub(super) fn refresh_superseded_writes(&mut self) {
        let mut again = Vec::new();
        for addr in &self.sending {
            let Some(link) = self.links.get_mut(addr) else {
                continue;
            };
            let writes = &mut link.writes_in_flight;
            writes.forget_before(link.channel.oldest_outstanding_message());
            if writes.is_empty() {
                continue;
            }
            for msg_id in link.channel.messages_due_again() {
                if let Some((kind, ranges)) = writes.take_if_superseded(msg_id, &self.replica) {
                    if link.channel.abandon_message(msg_id) {
                        again.push((*addr, kind, ranges));
                    }
                }
            }
        }
        for (addr, kind, ranges) in again {
            self.counters.superseded_not_resent += 1;
            match kind {
                WriteKind::Gossip => self.send_writes(addr, ranges, usize::MAX),
                WriteKind::Delta => self.send_deltas(addr, ranges),
            }
        }
    }

    /// Queues the writes of `ranges` to `addr` as deltas (packed if the peer reads them).
    pub(super) fn send_deltas(&mut self, addr: SocketAddr, ranges: VecDeque<SeqRange>) {
        let budget = self.limits.max_fragment;
        let codec = self.seal.codec();
        let Some(link) = self.links.get_mut(&addr) else {
            return;
        };
        let collected = link.sync.sends_collected();
        let deltas = match codec.filter(|_| link.reads_compressed) {
            Some(codec) => sync::packed_deltas(&self.replica, ranges, budget, codec, collected),
            None => sync::encoded_deltas(&self.replica, ranges, budget, collected),
        };
        if !link.queue_deltas(&deltas) {
            link.sync.want_eventually();
        }
        self.counters.write_messages_sent += deltas.len() as u64;
    }
}
