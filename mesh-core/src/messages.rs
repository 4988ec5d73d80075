//! User messages: application bytes sent to one peer over its reliable channel, never
//! stored in the replicated state.
//!
//! The transport delivers messages reliably but in any order (a message whose datagram
//! was lost completes after later ones). User messages must arrive in the order they
//! were sent, so each carries a per-session sequence number and the receiver holds the
//! ones that arrive early in a bounded reorder buffer until the gap before them fills.
//!
//! The buffer's bytes are charged to the node's reassembly budget, the one partial
//! fragmented messages are charged to, so a peer sending out of order cannot make the
//! node hold more than that budget. A message too far ahead, or not fitting the budget,
//! is dropped and counted. The transport may give a datagram up (its peer silent for
//! long): the gap it leaves is skipped once it has stalled delivery for `gap_us`, and
//! the messages missing are counted as dropped.
//!
//! The numbering lives with the link's channel: both start afresh together when either
//! end starts a new session (a restart), and messages in flight then are lost.

use std::collections::BTreeMap;

use crate::transport::{ReassemblyBudget, RECV_WINDOW};

/// Farthest ahead of the next expected number a message is accepted; the transport never
/// has more datagrams than that outstanding, so an honest sender never goes past it.
pub(crate) const REORDER_WINDOW: u64 = RECV_WINDOW;
/// Bytes charged per buffered message besides its bytes (map entry, vector header).
const BUFFERED_OVERHEAD: usize = 64;
/// Most fragments queued (not yet sent) to one peer for user messages to be accepted:
/// beyond it `send` answers "queue full" rather than growing the queue.
pub(crate) const MAX_QUEUED_FRAGMENTS: usize = 65_536;

/// What became of a received user message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Accepted (delivered now or buffered).
    Accepted,
    /// Dropped: a duplicate, too far ahead, or no room in the budget.
    Dropped,
}

/// Per-link numbering of user messages, both ways.
#[derive(Debug)]
pub(crate) struct MessageOrder {
    /// Number of the next message sent (from 1).
    next_send: u64,
    /// Number of the next message to deliver (from 1).
    next_recv: u64,
    /// Messages received ahead of `next_recv`.
    pending: BTreeMap<u64, Vec<u8>>,
    /// Bytes charged to the budget for `pending`.
    charged: usize,
    /// Since when delivery has waited for `next_recv` with messages buffered.
    stalled_since_us: Option<u64>,
    budget: ReassemblyBudget,
}

impl MessageOrder {
    /// Fresh numbering; buffered bytes are charged to `budget`.
    pub(crate) fn new(budget: ReassemblyBudget) -> MessageOrder {
        MessageOrder {
            next_send: 1,
            next_recv: 1,
            pending: BTreeMap::new(),
            charged: 0,
            stalled_since_us: None,
            budget,
        }
    }

    /// The number the next message sent will carry.
    pub(crate) fn peek_send(&self) -> u64 {
        self.next_send
    }

    /// Records that the message numbered [`MessageOrder::peek_send`] was queued.
    pub(crate) fn commit_send(&mut self) {
        self.next_send += 1;
    }

    /// Bytes held for messages received out of order, overhead included.
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.charged
    }

    /// Takes message `seq`; appends what can be delivered now, in order, to `out`.
    pub(crate) fn receive(
        &mut self,
        seq: u64,
        data: Vec<u8>,
        now_us: u64,
        out: &mut Vec<Vec<u8>>,
    ) -> Arrival {
        if seq < self.next_recv || self.pending.contains_key(&seq) {
            return Arrival::Dropped;
        }
        if seq == self.next_recv {
            out.push(data);
            self.next_recv += 1;
            self.drain(out);
            self.stalled_since_us = (!self.pending.is_empty()).then_some(now_us);
            return Arrival::Accepted;
        }
        let cost = data.len().saturating_add(BUFFERED_OVERHEAD);
        if seq - self.next_recv > REORDER_WINDOW || !self.budget.take(cost) {
            return Arrival::Dropped;
        }
        self.charged += cost;
        self.pending.insert(seq, data);
        self.stalled_since_us.get_or_insert(now_us);
        Arrival::Accepted
    }

    /// When a stalled gap is to be skipped, if delivery waits on one.
    pub(crate) fn next_timeout(&self, gap_us: u64) -> Option<u64> {
        self.stalled_since_us.map(|t| t.saturating_add(gap_us))
    }

    /// Skips a gap that stalled delivery for `gap_us`, appending what follows it to
    /// `out`. Returns how many messages were given up as lost.
    pub(crate) fn on_timeout(&mut self, now_us: u64, gap_us: u64, out: &mut Vec<Vec<u8>>) -> u64 {
        if self.next_timeout(gap_us).is_none_or(|t| t > now_us) {
            return 0;
        }
        let Some(&first) = self.pending.keys().next() else {
            self.stalled_since_us = None;
            return 0;
        };
        let lost = first - self.next_recv;
        self.next_recv = first;
        self.drain(out);
        self.stalled_since_us = (!self.pending.is_empty()).then_some(now_us);
        lost
    }

    /// Moves the messages that follow on from `next_recv` to `out`.
    fn drain(&mut self, out: &mut Vec<Vec<u8>>) {
        while let Some(data) = self.pending.remove(&self.next_recv) {
            let cost = data.len() + BUFFERED_OVERHEAD;
            self.charged -= cost;
            self.budget.give_back(cost);
            out.push(data);
            self.next_recv += 1;
        }
    }
}

impl Drop for MessageOrder {
    /// Gives the buffered messages' bytes back to the node's budget.
    fn drop(&mut self) {
        self.budget.give_back(self.charged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(limit: usize) -> (MessageOrder, ReassemblyBudget) {
        let budget = ReassemblyBudget::new(limit);
        (MessageOrder::new(budget.clone()), budget)
    }

    #[test]
    fn early_messages_wait_for_the_gap_then_follow_in_order() {
        let (mut o, budget) = order(1 << 20);
        let mut out = Vec::new();
        assert_eq!(o.receive(3, vec![3], 0, &mut out), Arrival::Accepted);
        assert_eq!(o.receive(2, vec![2], 0, &mut out), Arrival::Accepted);
        assert!(out.is_empty());
        assert!(budget.used() > 0);
        assert_eq!(o.receive(1, vec![1], 5, &mut out), Arrival::Accepted);
        assert_eq!(out, vec![vec![1], vec![2], vec![3]]);
        assert_eq!(budget.used(), 0);
        assert_eq!(o.next_timeout(10), None);
        assert_eq!(o.receive(2, vec![2], 5, &mut out), Arrival::Dropped, "duplicate");
    }

    #[test]
    fn a_stalled_gap_is_skipped_after_the_timeout() {
        let (mut o, budget) = order(1 << 20);
        let mut out = Vec::new();
        o.receive(1, vec![1], 0, &mut out);
        o.receive(4, vec![4], 100, &mut out);
        o.receive(5, vec![5], 150, &mut out);
        assert_eq!(o.next_timeout(1000), Some(1100));
        assert_eq!(o.on_timeout(1099, 1000, &mut out), 0);
        assert_eq!(o.on_timeout(1100, 1000, &mut out), 2, "2 and 3 are lost");
        assert_eq!(out, vec![vec![1], vec![4], vec![5]]);
        assert_eq!(o.receive(2, vec![2], 1200, &mut out), Arrival::Dropped);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn the_buffer_is_bounded_by_window_and_budget() {
        let (mut o, budget) = order(1000);
        let mut out = Vec::new();
        assert_eq!(
            o.receive(REORDER_WINDOW + 2, vec![0], 0, &mut out),
            Arrival::Dropped
        );
        assert_eq!(o.receive(2, vec![0; 800], 0, &mut out), Arrival::Accepted);
        assert_eq!(o.receive(3, vec![0; 800], 0, &mut out), Arrival::Dropped);
        assert!(budget.used() <= 1000);
        drop(o);
        assert_eq!(budget.used(), 0, "dropping the link gives the bytes back");
    }
}
