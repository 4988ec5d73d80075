//! Reliable, unordered delivery of messages of any size to one peer over datagrams.
//!
//! Sending: a message is cut into fragments that each fit a datagram; every fragment gets
//! a sequence number and stays in flight until acknowledged, retransmitted on timeout
//! (RTO from measured RTT, RFC 6298 style, backing off by 1.5x per retry) or sooner when
//! three later datagrams were acknowledged (fast retransmit), and given up after
//! `max_retries` once it has been unacknowledged for at least `min_give_up_us`:
//! anti-entropy repairs whatever it carried. Bytes and datagrams in flight
//! are bounded.
//!
//! Receiving: a bounded duplicate window (cumulative number plus the set received above
//! it, never more than [`RECV_WINDOW`] ahead); fragments reassembled under a memory cap
//! and an idle timeout. Messages are delivered as they complete, in any order: the
//! engine's messages are order-insensitive by design.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::wire::{Ack, Data};

/// Highest sequence number accepted above the cumulative one; later ones are dropped
/// unacknowledged (the sender retransmits them).
pub const RECV_WINDOW: u64 = 8192;
/// Most datagrams in flight to one peer, whatever their size.
pub const MAX_IN_FLIGHT_DATAGRAMS: usize = 4096;
/// Most selective-ack ranges per ack frame.
pub const MAX_ACK_RANGES: usize = 8;
/// Later datagrams acknowledged before an earlier one is retransmitted without waiting
/// for its timeout.
const FAST_RETRANSMIT_THRESHOLD: u64 = 3;

/// Timing and size limits of a channel.
#[derive(Clone, Debug)]
pub struct ChannelLimits {
    /// Retransmission timeout before any measurement, microseconds.
    pub initial_rto_us: u64,
    /// RTO floor, microseconds.
    pub min_rto_us: u64,
    /// RTO ceiling, microseconds.
    pub max_rto_us: u64,
    /// Retransmissions before giving up a datagram.
    pub max_retries: u32,
    /// Shortest time a datagram is retried before it may be given up, microseconds. A
    /// receiver pausing for a moment (a large merge, a scheduler hiccup) must not cost
    /// the data: only a peer silent this long is treated as unreachable.
    pub min_give_up_us: u64,
    /// Largest fragment payload, bytes.
    pub max_fragment: usize,
    /// Bytes in flight allowed.
    pub max_in_flight: usize,
    /// Bytes queued (not yet sent) allowed.
    pub max_queued: usize,
    /// Bytes of partial messages allowed.
    pub max_reassembly: usize,
    /// Idle time after which a partial message is dropped, microseconds.
    pub reassembly_timeout_us: u64,
}

/// Round-trip estimator (RFC 6298).
#[derive(Clone, Debug)]
pub struct RttEstimator {
    srtt_us: Option<u64>,
    rttvar_us: u64,
    rto_us: u64,
    min_rto_us: u64,
    max_rto_us: u64,
}

impl RttEstimator {
    fn new(limits: &ChannelLimits) -> RttEstimator {
        RttEstimator {
            srtt_us: None,
            rttvar_us: 0,
            rto_us: limits.initial_rto_us,
            min_rto_us: limits.min_rto_us,
            max_rto_us: limits.max_rto_us,
        }
    }

    /// Feeds one round-trip sample.
    pub fn sample(&mut self, rtt_us: u64) {
        match self.srtt_us {
            None => {
                self.srtt_us = Some(rtt_us);
                self.rttvar_us = rtt_us / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt_us);
                self.rttvar_us = (3 * self.rttvar_us + delta) / 4;
                self.srtt_us = Some((7 * srtt + rtt_us) / 8);
            }
        }
        let srtt = self.srtt_us.unwrap_or(rtt_us);
        self.rto_us =
            (srtt + (4 * self.rttvar_us).max(1_000)).clamp(self.min_rto_us, self.max_rto_us);
    }

    /// Smoothed RTT, once measured.
    pub fn srtt_us(&self) -> Option<u64> {
        self.srtt_us
    }

    fn backed_off(&self, retries: u32) -> u64 {
        let mut rto = self.rto_us as f64;
        for _ in 0..retries {
            rto *= 1.5;
        }
        (rto as u64).min(self.max_rto_us)
    }
}

#[derive(Clone, Debug)]
struct InFlight {
    data: Data,
    size: usize,
    first_sent_us: u64,
    last_sent_us: u64,
    retries: u32,
    deadline_us: u64,
}

#[derive(Debug)]
struct Partial {
    fragments: Vec<Option<Vec<u8>>>,
    missing: u32,
    bytes: usize,
    last_update_us: u64,
}

/// What happened to a received data fragment.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// A fragment accepted; the message is not complete yet.
    Fragment,
    /// The last missing fragment: here is the whole message.
    Message(Vec<u8>),
    /// Already received (acknowledged again).
    Duplicate,
    /// Refused: too far ahead of the window, or reassembly limits exceeded.
    Refused,
}

/// Counters a channel reports to the engine.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChannelStats {
    /// Datagrams retransmitted.
    pub retransmits: u64,
    /// Datagrams given up.
    pub given_up: u64,
    /// Partial messages dropped (limits or timeout).
    pub reassembly_drops: u64,
}

/// Reliable channel state with one peer incarnation.
#[derive(Debug)]
pub struct Channel {
    limits: ChannelLimits,
    // Sending.
    next_seq: u64,
    next_msg_id: u64,
    queue: VecDeque<Data>,
    queued_bytes: usize,
    in_flight: BTreeMap<u64, InFlight>,
    bytes_in_flight: usize,
    retransmit_due: BTreeSet<u64>,
    /// `(deadline, seq)` of every datagram in flight, earliest first.
    deadlines: BTreeSet<(u64, u64)>,
    largest_acked: u64,
    largest_acked_sent_us: u64,
    rtt: RttEstimator,
    // Receiving.
    recv_cumulative: u64,
    recv_above: BTreeSet<u64>,
    ack_pending: bool,
    partials: HashMap<u64, Partial>,
    partial_bytes: usize,
    /// Set when a datagram was given up since the engine last looked.
    pub lost_data: bool,
    stats: ChannelStats,
}

impl Channel {
    /// A fresh channel.
    pub fn new(limits: ChannelLimits) -> Channel {
        let rtt = RttEstimator::new(&limits);
        Channel {
            limits,
            next_seq: 1,
            next_msg_id: 1,
            queue: VecDeque::new(),
            queued_bytes: 0,
            in_flight: BTreeMap::new(),
            bytes_in_flight: 0,
            retransmit_due: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            largest_acked: 0,
            largest_acked_sent_us: 0,
            rtt,
            recv_cumulative: 0,
            recv_above: BTreeSet::new(),
            ack_pending: false,
            partials: HashMap::new(),
            partial_bytes: 0,
            lost_data: false,
            stats: ChannelStats::default(),
        }
    }

    /// Queues a message for reliable delivery. Returns `false` (and queues nothing) when
    /// the send queue is full.
    pub fn send_message(&mut self, message: &[u8]) -> bool {
        if self.queued_bytes + message.len() > self.limits.max_queued {
            return false;
        }
        let chunk = self.limits.max_fragment.max(1);
        let frags = message.len().div_ceil(chunk).max(1);
        let msg_id = self.next_msg_id;
        self.next_msg_id += 1;
        for (i, piece) in message.chunks(chunk).enumerate() {
            self.queue.push_back(Data {
                seq: 0,
                msg_id,
                frag: i as u32,
                frags: frags as u32,
                bytes: piece.to_vec(),
            });
        }
        if message.is_empty() {
            self.queue.push_back(Data {
                seq: 0,
                msg_id,
                frag: 0,
                frags: 1,
                bytes: Vec::new(),
            });
        }
        self.queued_bytes += message.len();
        true
    }

    /// Bytes waiting to be sent (not yet in flight).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Datagrams sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether nothing is queued or in flight.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_empty()
    }

    /// The round-trip estimator.
    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }

    /// Counters.
    pub fn stats(&self) -> ChannelStats {
        self.stats
    }

    /// Bytes held for partially received messages.
    pub fn reassembly_bytes(&self) -> usize {
        self.partial_bytes
    }

    /// The next data fragment to put on the wire: a due retransmission first, then new
    /// data while the in-flight window allows.
    pub fn poll_data(&mut self, now_us: u64) -> Option<Data> {
        while let Some(seq) = self.retransmit_due.pop_first() {
            let backed_off = |retries| self.rtt.backed_off(retries);
            if let Some(entry) = self.in_flight.get_mut(&seq) {
                self.deadlines.remove(&(entry.deadline_us, seq));
                entry.retries += 1;
                entry.last_sent_us = now_us;
                entry.deadline_us = now_us + backed_off(entry.retries);
                self.deadlines.insert((entry.deadline_us, seq));
                self.stats.retransmits += 1;
                return Some(entry.data.clone());
            }
        }
        let next_size = self.queue.front()?.bytes.len();
        let window_open = self.in_flight.is_empty()
            || (self.bytes_in_flight + next_size <= self.limits.max_in_flight
                && self.in_flight.len() < MAX_IN_FLIGHT_DATAGRAMS);
        if !window_open {
            return None;
        }
        let mut data = self.queue.pop_front()?;
        self.queued_bytes = self.queued_bytes.saturating_sub(data.bytes.len());
        data.seq = self.next_seq;
        self.next_seq += 1;
        self.bytes_in_flight += next_size;
        self.deadlines.insert((now_us + self.rtt.rto_us, data.seq));
        self.in_flight.insert(
            data.seq,
            InFlight {
                data: data.clone(),
                size: next_size,
                first_sent_us: now_us,
                last_sent_us: now_us,
                retries: 0,
                deadline_us: now_us + self.rtt.rto_us,
            },
        );
        Some(data)
    }

    /// Processes an acknowledgement from the peer.
    pub fn on_ack(&mut self, ack: &Ack, now_us: u64) {
        let mut newest_sample: Option<(u64, u64)> = None;
        let mut acked: Vec<u64> = self
            .in_flight
            .range(..=ack.cumulative)
            .map(|(s, _)| *s)
            .collect();
        for &(lo, hi) in ack.ranges.iter().take(MAX_ACK_RANGES) {
            if lo <= hi {
                acked.extend(self.in_flight.range(lo..=hi).map(|(s, _)| *s));
            }
        }
        for seq in acked {
            if let Some(entry) = self.in_flight.remove(&seq) {
                self.bytes_in_flight = self.bytes_in_flight.saturating_sub(entry.size);
                self.retransmit_due.remove(&seq);
                self.deadlines.remove(&(entry.deadline_us, seq));
                if seq > self.largest_acked {
                    self.largest_acked = seq;
                    self.largest_acked_sent_us = entry.last_sent_us;
                }
                // Karn: only datagrams never retransmitted give unambiguous samples.
                if entry.retries == 0 && newest_sample.is_none_or(|(s, _)| seq > s) {
                    newest_sample = Some((seq, now_us.saturating_sub(entry.last_sent_us)));
                }
            }
        }
        if let Some((_, rtt)) = newest_sample {
            self.rtt.sample(rtt);
        }
        // Fast retransmit: a datagram sent no later than one acknowledged three numbers
        // above it was lost. Once resent it is newer than that one, so it is not resent
        // again until a later datagram overtakes it too.
        let threshold = self.largest_acked.saturating_sub(FAST_RETRANSMIT_THRESHOLD);
        let overtaken_at = self.largest_acked_sent_us;
        let lost: Vec<u64> = self
            .in_flight
            .range(..=threshold)
            .filter(|(_, e)| e.last_sent_us <= overtaken_at)
            .map(|(s, _)| *s)
            .collect();
        self.retransmit_due.extend(lost);
    }

    /// Processes a data fragment; the caller acknowledges it via [`Channel::take_ack`].
    pub fn on_data(&mut self, data: Data, now_us: u64) -> Received {
        let seq = data.seq;
        if seq == 0 {
            return Received::Refused;
        }
        if seq <= self.recv_cumulative || self.recv_above.contains(&seq) {
            self.ack_pending = true;
            return Received::Duplicate;
        }
        if seq > self.recv_cumulative + RECV_WINDOW {
            return Received::Refused;
        }
        let outcome = self.reassemble(data, now_us);
        // Accept the sequence number even when reassembly refused the message: the
        // sender must stop retransmitting it, and anti-entropy repairs the content.
        self.recv_above.insert(seq);
        while self.recv_above.first() == Some(&(self.recv_cumulative + 1)) {
            self.recv_above.pop_first();
            self.recv_cumulative += 1;
        }
        self.ack_pending = true;
        outcome
    }

    fn reassemble(&mut self, data: Data, now_us: u64) -> Received {
        if data.frags <= 1 {
            return Received::Message(data.bytes);
        }
        let max_frags = (self.limits.max_reassembly / self.limits.max_fragment.max(1)).max(2);
        if data.frag >= data.frags || data.frags as usize > max_frags + 1 {
            self.stats.reassembly_drops += 1;
            return Received::Refused;
        }
        if self.partial_bytes + data.bytes.len() > self.limits.max_reassembly {
            self.stats.reassembly_drops += 1;
            if let Some(p) = self.partials.remove(&data.msg_id) {
                self.partial_bytes -= p.bytes;
            }
            return Received::Refused;
        }
        let partial = self.partials.entry(data.msg_id).or_insert_with(|| Partial {
            fragments: vec![None; data.frags as usize],
            missing: data.frags,
            bytes: 0,
            last_update_us: now_us,
        });
        if partial.fragments.len() != data.frags as usize {
            return Received::Refused;
        }
        let slot = &mut partial.fragments[data.frag as usize];
        if slot.is_some() {
            return Received::Fragment;
        }
        partial.bytes += data.bytes.len();
        partial.missing -= 1;
        partial.last_update_us = now_us;
        self.partial_bytes += data.bytes.len();
        *slot = Some(data.bytes);
        if partial.missing > 0 {
            return Received::Fragment;
        }
        let partial = self.partials.remove(&data.msg_id).expect("present");
        self.partial_bytes -= partial.bytes;
        let mut message = Vec::with_capacity(partial.bytes);
        for fragment in partial.fragments.into_iter().flatten() {
            message.extend_from_slice(&fragment);
        }
        Received::Message(message)
    }

    /// The acknowledgement to send, if anything was received since the last one.
    pub fn take_ack(&mut self) -> Option<Ack> {
        if !self.ack_pending {
            return None;
        }
        self.ack_pending = false;
        Some(self.current_ack())
    }

    /// Whether an acknowledgement is waiting to be sent.
    #[cfg(test)]
    pub fn ack_pending(&self) -> bool {
        self.ack_pending
    }

    fn current_ack(&self) -> Ack {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for &seq in &self.recv_above {
            match ranges.last_mut() {
                Some((_, hi)) if *hi + 1 == seq => *hi = seq,
                _ => {
                    if ranges.len() == MAX_ACK_RANGES {
                        break;
                    }
                    ranges.push((seq, seq));
                }
            }
        }
        Ack {
            cumulative: self.recv_cumulative,
            ranges,
        }
    }

    /// Earliest time this channel needs [`Channel::on_timeout`].
    pub fn next_timeout(&self) -> Option<u64> {
        let retransmit = self.deadlines.first().map(|&(deadline, _)| deadline);
        let reassembly = self
            .partials
            .values()
            .map(|p| p.last_update_us + self.limits.reassembly_timeout_us)
            .min();
        [retransmit, reassembly].into_iter().flatten().min()
    }

    /// Marks timed-out datagrams for retransmission, gives up those past the retry cap,
    /// and drops stale partial messages.
    pub fn on_timeout(&mut self, now_us: u64) {
        let mut given_up = Vec::new();
        for &(deadline, seq) in &self.deadlines {
            if deadline > now_us {
                break;
            }
            match self.in_flight.get(&seq) {
                Some(entry)
                    if entry.retries >= self.limits.max_retries
                        && now_us.saturating_sub(entry.first_sent_us)
                            >= self.limits.min_give_up_us =>
                {
                    given_up.push(seq)
                }
                Some(_) => {
                    self.retransmit_due.insert(seq);
                }
                None => {}
            }
        }
        for seq in given_up {
            if let Some(entry) = self.in_flight.remove(&seq) {
                self.bytes_in_flight = self.bytes_in_flight.saturating_sub(entry.size);
                self.retransmit_due.remove(&seq);
                self.deadlines.remove(&(entry.deadline_us, seq));
                self.stats.given_up += 1;
                self.lost_data = true;
            }
        }
        let timeout = self.limits.reassembly_timeout_us;
        let before = self.partials.len();
        let mut freed = 0;
        self.partials.retain(|_, p| {
            let keep = p.last_update_us + timeout > now_us;
            if !keep {
                freed += p.bytes;
            }
            keep
        });
        self.partial_bytes -= freed;
        self.stats.reassembly_drops += (before - self.partials.len()) as u64;
    }

    /// Whether a retransmission or new data can be sent now.
    #[cfg(test)]
    pub fn has_data_ready(&self) -> bool {
        if !self.retransmit_due.is_empty() {
            return true;
        }
        match self.queue.front() {
            None => false,
            Some(d) => {
                self.in_flight.is_empty()
                    || (self.bytes_in_flight + d.bytes.len() <= self.limits.max_in_flight
                        && self.in_flight.len() < MAX_IN_FLIGHT_DATAGRAMS)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ChannelLimits {
        ChannelLimits {
            initial_rto_us: 500_000,
            min_rto_us: 10_000,
            max_rto_us: 8_000_000,
            max_retries: 3,
            min_give_up_us: 0,
            max_fragment: 10,
            max_in_flight: 1_000,
            max_queued: 100_000,
            max_reassembly: 1_000,
            reassembly_timeout_us: 1_000_000,
        }
    }

    /// Moves every datagram from `a` to `b` (optionally dropping some) and acks back.
    fn pump(
        a: &mut Channel,
        b: &mut Channel,
        now: u64,
        drop: impl Fn(u64) -> bool,
    ) -> Vec<Vec<u8>> {
        let mut delivered = Vec::new();
        while let Some(d) = a.poll_data(now) {
            if drop(d.seq) {
                continue;
            }
            if let Received::Message(m) = b.on_data(d, now) {
                delivered.push(m);
            }
        }
        if let Some(ack) = b.take_ack() {
            a.on_ack(&ack, now + 100);
        }
        delivered
    }

    #[test]
    fn large_message_is_fragmented_and_reassembled() {
        let (mut a, mut b) = (Channel::new(limits()), Channel::new(limits()));
        let message: Vec<u8> = (0..95).collect();
        assert!(a.send_message(&message));
        let got = pump(&mut a, &mut b, 0, |_| false);
        assert_eq!(got, vec![message]);
        assert!(a.is_idle());
        assert_eq!(a.rtt().srtt_us(), Some(100));
    }

    #[test]
    fn lost_datagrams_are_retransmitted_after_the_timeout() {
        let (mut a, mut b) = (Channel::new(limits()), Channel::new(limits()));
        assert!(a.send_message(b"hello world, twice"));
        assert!(pump(&mut a, &mut b, 0, |seq| seq == 1).is_empty());
        assert_eq!(a.in_flight(), 1);
        let deadline = a.next_timeout().unwrap();
        assert_eq!(deadline, 500_000);
        a.on_timeout(deadline);
        let got = pump(&mut a, &mut b, deadline, |_| false);
        assert_eq!(got, vec![b"hello world, twice".to_vec()]);
        assert_eq!(a.stats().retransmits, 1);
        assert!(a.is_idle());
    }

    #[test]
    fn duplicates_are_detected_and_reacked() {
        let mut b = Channel::new(limits());
        let d = Data {
            seq: 1,
            msg_id: 1,
            frag: 0,
            frags: 1,
            bytes: vec![1],
        };
        assert_eq!(b.on_data(d.clone(), 0), Received::Message(vec![1]));
        b.take_ack();
        assert_eq!(b.on_data(d, 0), Received::Duplicate);
        assert_eq!(
            b.take_ack(),
            Some(Ack {
                cumulative: 1,
                ranges: vec![]
            })
        );
    }

    #[test]
    fn gives_up_after_the_retry_cap() {
        let mut a = Channel::new(limits());
        assert!(a.send_message(b"x"));
        let mut now = 0;
        a.poll_data(now);
        for _ in 0..10 {
            now = a.next_timeout().unwrap_or(now);
            a.on_timeout(now);
            while a.poll_data(now).is_some() {}
        }
        assert!(a.is_idle());
        assert_eq!(a.stats().given_up, 1);
        assert_eq!(a.stats().retransmits, 3);
        assert!(a.lost_data);
    }

    #[test]
    fn window_bounds_bytes_in_flight() {
        let mut a = Channel::new(limits());
        assert!(a.send_message(&vec![7u8; 5_000]));
        let mut sent = 0;
        while a.poll_data(0).is_some() {
            sent += 1;
        }
        assert_eq!(sent, 100); // 1000 bytes of window / 10-byte fragments
        assert!(!a.has_data_ready());
    }

    #[test]
    fn far_ahead_sequence_numbers_are_refused() {
        let mut b = Channel::new(limits());
        let d = Data {
            seq: RECV_WINDOW + 5,
            msg_id: 1,
            frag: 0,
            frags: 1,
            bytes: vec![],
        };
        assert_eq!(b.on_data(d, 0), Received::Refused);
        assert!(!b.ack_pending());
    }

    #[test]
    fn reassembly_memory_is_capped_and_times_out() {
        let mut b = Channel::new(limits());
        // A message claiming far more fragments than the cap allows.
        let d = Data {
            seq: 1,
            msg_id: 1,
            frag: 0,
            frags: 1_000_000,
            bytes: vec![0; 10],
        };
        assert_eq!(b.on_data(d, 0), Received::Refused);
        let d = Data {
            seq: 2,
            msg_id: 2,
            frag: 0,
            frags: 3,
            bytes: vec![0; 10],
        };
        assert_eq!(b.on_data(d, 0), Received::Fragment);
        assert_eq!(b.reassembly_bytes(), 10);
        b.on_timeout(2_000_000);
        assert_eq!(b.reassembly_bytes(), 0);
        assert_eq!(b.stats().reassembly_drops, 2);
    }

    #[test]
    fn fast_retransmit_on_three_later_acks() {
        let (mut a, mut b) = (Channel::new(limits()), Channel::new(limits()));
        for i in 0..5u8 {
            assert!(a.send_message(&[i]));
        }
        pump(&mut a, &mut b, 0, |seq| seq == 1);
        // Datagram 1 is due again long before its 500 ms timeout.
        assert!(a.has_data_ready());
        let got = pump(&mut a, &mut b, 1_000, |_| false);
        assert_eq!(got, vec![vec![0u8]]);
    }
}
