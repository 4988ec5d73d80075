//! Retransmissions of writes carry what is current, not values superseded since.
//!
//! A message of writes (a push, direct or on the tree, or a message of an anti-entropy
//! stream) lost on the way is found out a retransmission timeout later, at
//! least [`min_rto`](crate::config::Config::min_rto) and often far more on a lossy path; a key
//! written meanwhile has a newer value, on its way to the same peer or already there. The
//! transport would resend the lost message's bytes as they were, the superseded value
//! with them. So the channel remembers which ranges of writes each message of writes
//! covers and how many entries it held of them; when one is due again and the replica
//! now holds fewer of those ranges, the message is withdrawn (see
//! `Channel::abandon_message`) and the ranges are sent again as they are now. A write
//! superseded there is left out: the range still accounts for its sequence number, as
//! anti-entropy's deltas do.

use std::collections::{BTreeMap, VecDeque};

use crate::replica::Replica;
use crate::sync::SeqRange;

/// How a message of writes travels, which its replacement keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteKind {
    /// A push straight from the writer to each peer, or a message of an anti-entropy
    /// stream (`Message::Delta`).
    Delta,
    /// A push along the broadcast tree, forwarded on by its receiver (`Message::Gossip`).
    Gossip,
}

/// The ranges of writes of one message, each with how many entries it carried.
#[derive(Debug)]
struct Covered {
    kind: WriteKind,
    ranges: Vec<(SeqRange, usize)>,
}

/// The ranges of writes of each message still queued or in flight on one channel.
#[derive(Debug, Default)]
pub(crate) struct WritesInFlight {
    messages: BTreeMap<u64, Covered>,
}

impl WritesInFlight {
    /// Message `msg_id`, of `kind`, covers these ranges, each with so many entries.
    pub fn record(&mut self, msg_id: u64, kind: WriteKind, ranges: Vec<(SeqRange, usize)>) {
        self.messages.insert(msg_id, Covered { kind, ranges });
    }

    /// Forgets the messages before `msg_id`: delivered, given up or withdrawn.
    pub fn forget_before(&mut self, msg_id: u64) {
        if self
            .messages
            .first_key_value()
            .is_some_and(|(&id, _)| id < msg_id)
        {
            self.messages = self.messages.split_off(&msg_id);
        }
    }

    /// Whether no message of writes is remembered.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The kind and ranges of message `msg_id`, taken out, if `replica` no longer holds
    /// all the entries it carried of them: some were superseded since it was sent.
    pub fn take_if_superseded(
        &mut self,
        msg_id: u64,
        replica: &Replica,
    ) -> Option<(WriteKind, VecDeque<SeqRange>)> {
        let covered = self.messages.get(&msg_id)?;
        let superseded = covered
            .ranges
            .iter()
            .any(|&((origin, lo, hi), held)| replica.held_in(origin, lo, hi) < held);
        if !superseded {
            return None;
        }
        let covered = self.messages.remove(&msg_id)?;
        Some((
            covered.kind,
            covered.ranges.into_iter().map(|(range, _)| range).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_forgotten_once_behind_the_oldest_outstanding() {
        let mut w = WritesInFlight::default();
        w.record(3, WriteKind::Delta, vec![((1, 1, 1), 1)]);
        w.record(5, WriteKind::Gossip, vec![((1, 2, 2), 1)]);
        w.forget_before(4);
        assert_eq!(w.messages.keys().copied().collect::<Vec<_>>(), vec![5]);
        w.forget_before(6);
        assert!(w.is_empty());
    }
}
