//! Dissemination: membership changes waiting to be piggybacked, each sent a limited
//! number of times (memberlist's `queue.go`, SWIM's infection-style spreading).
//!
//! A rumor is retransmitted `RETRANSMIT_MULT · ⌈log10(n + 1)⌉` times, enough for an
//! epidemic to reach all `n` members with high probability; the least-sent rumors go
//! first (the newest among equals), a few per datagram. A newer rumor about a node
//! replaces the one queued, so the queue holds at most one rumor per member.

use std::collections::BTreeMap;

use crate::wire::Rumor;

/// λ in memberlist's retransmission rule.
pub(crate) const RETRANSMIT_MULT: u32 = 4;
/// Rumors piggybacked on one datagram, at most.
pub(crate) const MAX_PER_DATAGRAM: usize = 8;
/// Encoded bytes of rumors on one datagram, at most (well inside one MTU with the rest).
pub(crate) const MAX_BYTES_PER_DATAGRAM: usize = 512;

#[derive(Debug)]
struct Queued {
    rumor: Rumor,
    sent: u32,
    /// When it was queued (a counter): newer first among equally sent rumors.
    order: u64,
}

/// Rumors waiting to be sent, one per node id.
#[derive(Debug, Default)]
pub(crate) struct RumorQueue {
    queued: BTreeMap<String, Queued>,
    counter: u64,
}

impl RumorQueue {
    /// Queues `rumor`, replacing any rumor queued about the same node.
    pub fn push(&mut self, rumor: Rumor) {
        self.counter += 1;
        let order = self.counter;
        self.queued.insert(
            rumor.node_id.clone(),
            Queued {
                rumor,
                sent: 0,
                order,
            },
        );
    }

    /// Rumors queued.
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    /// How many times each rumor is sent in a mesh of `members` members.
    pub fn limit(members: usize) -> u32 {
        let log = ((members + 1) as f64).log10().ceil().max(1.0) as u32;
        RETRANSMIT_MULT * log
    }

    /// The rumors for the next datagram, least sent and newest first, bounded in number
    /// and bytes; each counts as sent once more and is dropped at its limit.
    pub fn take(&mut self, members: usize) -> Vec<Rumor> {
        if self.queued.is_empty() {
            return Vec::new();
        }
        let mut order: Vec<(&String, u32, u64)> = self
            .queued
            .iter()
            .map(|(id, q)| (id, q.sent, q.order))
            .collect();
        order.sort_by_key(|&(_, sent, newer)| (sent, std::cmp::Reverse(newer)));
        let chosen: Vec<String> = order
            .into_iter()
            .take(MAX_PER_DATAGRAM)
            .map(|(id, _, _)| id.clone())
            .collect();
        let limit = Self::limit(members);
        let mut rumors = Vec::new();
        let mut bytes = 0;
        for id in chosen {
            let Some(q) = self.queued.get_mut(&id) else {
                continue;
            };
            let size = encoded_len(&q.rumor);
            if bytes + size > MAX_BYTES_PER_DATAGRAM {
                break;
            }
            bytes += size;
            rumors.push(q.rumor.clone());
            q.sent += 1;
            if q.sent >= limit {
                self.queued.remove(&id);
            }
        }
        rumors
    }
}

/// Upper bound of a rumor's encoded size.
pub(crate) fn encoded_len(rumor: &Rumor) -> usize {
    // Varint lengths and numbers at their widest, a v6 address with its tag and port.
    rumor.node_id.len() + rumor.by.len() + 2 * 5 + 19 + 10 + 5 + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::RumorState;

    fn rumor(id: &str, refutation: u32) -> Rumor {
        Rumor {
            node_id: id.into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            incarnation: 1,
            refutation,
            state: RumorState::Alive,
            by: String::new(),
        }
    }

    #[test]
    fn each_rumor_is_sent_lambda_log_n_times_then_dropped() {
        let mut q = RumorQueue::default();
        q.push(rumor("a", 0));
        let limit = RumorQueue::limit(100);
        assert_eq!(limit, 3 * RETRANSMIT_MULT);
        for _ in 0..limit {
            assert_eq!(q.take(100).len(), 1);
        }
        assert!(q.take(100).is_empty());
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn least_sent_and_newest_go_first_and_a_datagram_carries_a_bounded_number() {
        let mut q = RumorQueue::default();
        for i in 0..20 {
            q.push(rumor(&format!("n{i:02}"), 0));
        }
        let first = q.take(1000);
        assert_eq!(first.len(), MAX_PER_DATAGRAM);
        assert_eq!(first[0].node_id, "n19", "newest first");
        let second = q.take(1000);
        assert!(
            second.iter().all(|r| !first.contains(r)),
            "unsent rumors before resent ones"
        );
        q.push(rumor("n19", 1));
        assert_eq!(q.take(1000)[0], rumor("n19", 1), "a newer rumor replaces, unsent");
    }

    #[test]
    fn long_node_ids_fill_a_datagram_by_bytes() {
        let mut q = RumorQueue::default();
        for i in 0..8 {
            q.push(rumor(&format!("{i}{}", "x".repeat(200)), 0));
        }
        let taken = q.take(10);
        assert!(taken.len() < MAX_PER_DATAGRAM);
        let bytes: usize = taken.iter().map(encoded_len).sum();
        assert!(bytes <= MAX_BYTES_PER_DATAGRAM);
    }
}
