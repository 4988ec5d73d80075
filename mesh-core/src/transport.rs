//! Reliable, unordered delivery of messages of any size to one peer over datagrams.
//!
//! Sending: a message is cut into fragments that each fit a datagram; every fragment gets
//! a sequence number and stays in flight until acknowledged, retransmitted on timeout
//! (RTO from measured RTT, RFC 6298 style, backing off by 1.5x per retry) or sooner when
//! three later datagrams were acknowledged (fast retransmit) or an ack shows it overdue
//! (RACK's time rule), and given up after `max_retries` once it has been unacknowledged
//! for at least `min_give_up_us`: anti-entropy repairs whatever it carried. Bytes and
//! datagrams in flight are bounded.
//!
//! Abandoning: a datagram given up, or a message the engine withdraws because what it
//! carried is out of date ([`Channel::abandon_message`]), leaves a gap the receiver would
//! wait on for good, and after [`RECV_WINDOW`] more datagrams it would refuse everything.
//! So, as PR-SCTP's forward cumulative sequence number does (RFC 3758), the sender's
//! data then carries the number below which it sends nothing any more
//! ([`Channel::settled_to_announce`]) until the peer's acks show it moved past, and the
//! receiver stops waiting for those ([`Channel::on_settled`]).
//!
//! Pacing: what the congestion window allows goes out in bursts of about 2 ms at 5/4
//! of a window per round trip (see `pacing`), retransmissions included.
//!
//! Acknowledging: an ack waits a moment for more to acknowledge, or for a datagram to
//! the peer to ride with, as TCP's delayed ack does (RFC 1122 §4.2.3.2, RFC 5681 §4.2):
//! it is due once [`ACK_EVERY`] new datagrams arrived in order, or [`MAX_ACK_DELAY_US`]
//! after the first of them, and at once for a datagram out of order (it opens or fills a
//! gap) or a duplicate, whose ack tells the sender of a loss or stops a retransmission.
//! Any datagram to the peer carries a pending ack, due or not. Each ack says how long
//! the receiver held it since its largest datagram arrived, and the sender takes that
//! (at most [`MAX_ACK_DELAY_US`]) off its round-trip sample, so waiting inflates neither
//! the RTO nor the queueing the congestion controller looks for.
//!
//! Receiving: a bounded duplicate window (cumulative number plus the set received above
//! it, never more than [`RECV_WINDOW`] ahead); fragments reassembled under an idle
//! timeout and a lifetime ([`PARTIAL_LIFETIME_TIMEOUTS`]), at most [`MAX_PARTIALS_PER_PEER`] messages at a time, and within one
//! [`ReassemblyBudget`] shared by every channel of the node. Every byte reassembly
//! allocates is charged to it before it is allocated: each message's bookkeeping and
//! fragment slot table, then each fragment. Fragments that no real sender could have
//! produced are refused before anything is allocated. Messages are delivered as they
//! complete, in any order: the engine's messages are order-insensitive by design.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::mem::size_of;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::congestion::Congestion;
use crate::pacing::Pacer;
use crate::wire::{self, Ack, Data};

/// Longest an ack waits for more to acknowledge or a datagram to ride with, microseconds:
/// far below the smallest RTO, so the sender never times out for it.
pub const MAX_ACK_DELAY_US: u64 = 1_000;
/// New datagrams received in order that make an ack due at once (TCP acks every second
/// full segment).
pub const ACK_EVERY: u32 = 2;

/// An ack that says it was held longer than this since its largest datagram arrived
/// repeats an ack that was lost (a receiver acknowledges within [`MAX_ACK_DELAY_US`],
/// and this leaves room for a busy one's late timer): it gives no round-trip sample.
pub const REPEATED_ACK_DELAY_US: u64 = 25_000;

/// Highest sequence number accepted above the cumulative one; later ones are dropped
/// unacknowledged (the sender retransmits them).
pub const RECV_WINDOW: u64 = 8192;
/// Most datagrams in flight to one peer, whatever their size.
pub const MAX_IN_FLIGHT_DATAGRAMS: usize = 4096;
/// Most selective-ack ranges per ack frame.
pub const MAX_ACK_RANGES: usize = 8;
/// Most partially received messages kept per channel; a new message beyond it is refused
/// (and counted). A sender's messages larger than a fragment carry one entry each, and
/// only those with a fragment lost in flight stay partial for long: with the default
/// 128 KiB window that is a handful at a time, even under heavy loss.
pub const MAX_PARTIALS_PER_PEER: usize = 32;
/// Smallest fragment a sender cuts, whatever its datagram size: every fragment of a
/// message but the last carries at least this many bytes.
pub const MIN_FRAGMENT: usize = 64;
/// A partial message is dropped once this many reassembly timeouts old, however recently
/// a fragment of it arrived: one kept fresh by a trickle of fragments (a spoofer's, or an
/// honest message whose missing fragment's sequence number a spoofer took) would
/// otherwise hold its budget, and its place among [`MAX_PARTIALS_PER_PEER`], for good.
pub const PARTIAL_LIFETIME_TIMEOUTS: u64 = 2;
/// Bytes charged per slot of a message's fragment table.
const SLOT_BYTES: usize = size_of::<Option<Vec<u8>>>();
/// Bytes charged per partial message besides its slots and fragments: its entry in the
/// channel's table (key, value, hash table control bytes, with slack).
const PARTIAL_OVERHEAD: usize = size_of::<u64>() + size_of::<Partial>() + 32;

/// What reassembling a message of `message_len` bytes cut into `fragment`-byte pieces
/// costs at most: its bookkeeping, its slot table and its bytes.
pub(crate) fn reassembly_cost(message_len: usize, fragment: usize) -> usize {
    let frags = message_len.div_ceil(fragment.max(1)).max(1);
    frags
        .saturating_mul(SLOT_BYTES)
        .saturating_add(message_len)
        .saturating_add(PARTIAL_OVERHEAD)
}

/// Bytes of partial messages the whole node may hold, shared by all its channels: the
/// engine creates one and every channel charges what it allocates for reassembly to it,
/// and gives it back when a message completes or times out, or when the channel is
/// dropped (a peer restarted or removed). Clones share the same budget.
#[derive(Clone, Debug)]
pub struct ReassemblyBudget {
    shared: Arc<BudgetShared>,
}

#[derive(Debug)]
struct BudgetShared {
    limit: usize,
    used: AtomicUsize,
}

impl ReassemblyBudget {
    /// A budget of `limit` bytes, none of them used.
    pub fn new(limit: usize) -> ReassemblyBudget {
        ReassemblyBudget {
            shared: Arc::new(BudgetShared {
                limit,
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// Bytes allowed.
    pub fn limit(&self) -> usize {
        self.shared.limit
    }

    /// Bytes currently charged, all channels.
    #[cfg(any(test, feature = "test-util"))]
    pub fn used(&self) -> usize {
        self.shared.used.load(Ordering::Relaxed)
    }

    /// Charges `bytes` if they fit; returns whether they did.
    pub(crate) fn take(&self, bytes: usize) -> bool {
        let limit = self.shared.limit;
        self.shared
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&total| total <= limit)
            })
            .is_ok()
    }

    /// Gives back `bytes` charged earlier.
    pub(crate) fn give_back(&self, bytes: usize) {
        let before = self.shared.used.fetch_sub(bytes, Ordering::Relaxed);
        debug_assert!(before >= bytes, "gave back more than was charged");
    }
}

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
    /// Largest fragment payload, bytes, at the base datagram size.
    pub max_fragment: usize,
    /// The datagram size every link starts at (`max_datagram_size`), and the largest one
    /// it probes its path for (`max_probed_datagram_size`; see `path`).
    pub datagram_sizes: (usize, usize),
    /// Bytes in flight allowed.
    pub max_in_flight: usize,
    /// Bytes queued (not yet sent) allowed.
    pub max_queued: usize,
    /// Bytes of partial messages allowed, shared by every channel of the node; also the
    /// largest message accepted.
    pub reassembly: ReassemblyBudget,
    /// Idle time after which a partial message is dropped, microseconds.
    pub reassembly_timeout_us: u64,
}

/// Round-trip estimator (RFC 6298).
#[derive(Clone, Debug)]
pub struct RttEstimator {
    srtt_us: Option<u64>,
    /// The latest sample.
    latest_us: Option<u64>,
    /// Smallest raw sample seen: an ack delay is taken off only down to it.
    min_rtt_us: Option<u64>,
    rttvar_us: u64,
    rto_us: u64,
    min_rto_us: u64,
    max_rto_us: u64,
}

impl RttEstimator {
    fn new(limits: &ChannelLimits) -> RttEstimator {
        RttEstimator::bounded(limits.initial_rto_us, limits.min_rto_us, limits.max_rto_us)
    }

    /// An estimator whose timeout starts at `initial_us` and stays within
    /// `min_us..=max_us`.
    pub(crate) fn bounded(initial_us: u64, min_us: u64, max_us: u64) -> RttEstimator {
        RttEstimator {
            srtt_us: None,
            latest_us: None,
            min_rtt_us: None,
            rttvar_us: 0,
            rto_us: initial_us,
            min_rto_us: min_us,
            max_rto_us: max_us,
        }
    }

    /// Feeds one round-trip sample that includes `ack_delay_us` the receiver held its ack
    /// (capped at [`MAX_ACK_DELAY_US`]: a longer hold is the receiver's slowness, which
    /// the timeout must allow for); returns the sample with the delay taken off. The
    /// delay is taken off only while the rest is no shorter than the smallest round trip
    /// seen (RFC 9002 §5.3), so a peer overstating it cannot shrink the timeout below
    /// what the path takes.
    pub fn sample_with_delay(&mut self, rtt_us: u64, ack_delay_us: u64) -> u64 {
        let min_rtt = self.min_rtt_us.map_or(rtt_us, |m| m.min(rtt_us));
        self.min_rtt_us = Some(min_rtt);
        let delay = ack_delay_us.min(MAX_ACK_DELAY_US);
        let adjusted = if rtt_us >= min_rtt.saturating_add(delay) {
            rtt_us - delay
        } else {
            rtt_us
        };
        self.sample(adjusted);
        adjusted
    }

    /// Feeds one round-trip sample.
    pub fn sample(&mut self, rtt_us: u64) {
        self.latest_us = Some(rtt_us);
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

    /// What a datagram's answer takes at most before it is overdue, once measured: the
    /// longer of the smoothed and the latest round trip (RFC 9002 §6.1.2), so a peer
    /// that just answered late (busy, or a queue grew) is given that long.
    fn expected_us(&self) -> Option<u64> {
        self.srtt_us.map(|srtt| srtt.max(self.latest_us.unwrap_or(0)))
    }

    /// The retransmission timeout before backoff.
    pub fn rto_us(&self) -> u64 {
        self.rto_us
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
    /// Timeouts taken: they set the backoff and when it is given up.
    retries: u32,
    /// Whether it went on the wire more than once (its acks are then ambiguous: no RTT
    /// sample).
    resent: bool,
    /// Timed out while an older datagram was being retransmitted, and not resent: it
    /// waits for that one's answer (see [`Channel::on_timeout`]).
    waiting: bool,
    deadline_us: u64,
}

#[derive(Debug)]
struct Partial {
    fragments: Vec<Option<Vec<u8>>>,
    missing: u32,
    /// Bytes of the fragments received.
    bytes: usize,
    /// Bytes charged to the budget: bookkeeping, slot table and fragments.
    charged: usize,
    /// Size of every fragment but the last, once one of them has arrived.
    fragment_size: Option<usize>,
    /// Size of the last fragment, once it has arrived.
    last_size: Option<usize>,
    last_update_us: u64,
    /// When its first fragment arrived.
    started_us: u64,
}

impl Partial {
    /// Whether a fragment of `size` bytes, the last one or not, agrees with the sizes
    /// already seen: all but the last fragment have one size, the last no more than it.
    fn fits_sizes(&self, size: usize, last: bool) -> bool {
        if last {
            self.fragment_size.is_none_or(|f| size <= f)
        } else {
            self.fragment_size.is_none_or(|f| size == f)
                && self.last_size.is_none_or(|l| l <= size)
        }
    }
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
    /// Messages withdrawn by the engine before they were acknowledged (see
    /// [`Channel::abandon_message`]).
    pub abandoned: u64,
    /// Losses taken as congestion: each halved the window or reset it.
    pub congestion_events: u64,
    /// Fragments refused by reassembly (impossible or inconsistent counts or sizes, too
    /// many partial messages, budget spent) and partial messages timed out.
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
    /// The peer's cumulative acknowledgement, as its acks last said.
    peer_cumulative: u64,
    /// The highest sequence number given up or abandoned: until the peer's cumulative
    /// acknowledgement reaches it, its data says what the receiver need not wait for.
    abandoned_through: u64,
    /// Fragments not yet acknowledged (nor given up) of each fragmented message started:
    /// the receiver may hold a partial message for each, so no more than
    /// [`MAX_PARTIALS_PER_PEER`] are started at a time, or it would refuse the next.
    open_fragmented: BTreeMap<u64, u32>,
    /// Fragmented messages queued or in flight whose bytes are compressed already (see
    /// [`Channel::is_compressed`]).
    compressed: BTreeSet<u64>,
    rtt: RttEstimator,
    congestion: Congestion,
    pacer: Pacer,
    /// When the pacer lets the next datagram go, if it held one back.
    paced_until: Option<u64>,
    /// A retransmission to put on the wire a second time (see `poll_data`).
    echo: Option<u64>,
    // Receiving.
    recv_cumulative: u64,
    recv_above: BTreeSet<u64>,
    /// When the pending ack must go out even alone; `None` when nothing waits for one.
    ack_due_us: Option<u64>,
    /// New datagrams received (in order or not) since the last ack went out.
    unacked: u32,
    /// The largest sequence number received, and when: an ack's delay counts from it.
    largest_received: (u64, u64),
    partials: HashMap<u64, Partial>,
    /// Bytes charged to the reassembly budget for `partials`.
    partial_bytes: usize,
    /// Set when a datagram was given up since the engine last looked.
    pub lost_data: bool,
    /// Bytes of the messages larger than one fragment queued so far: the channel
    /// carries bulk data, which a larger datagram size would cut into fewer datagrams.
    bulk_bytes: u64,
    stats: ChannelStats,
}

impl Channel {
    /// A fresh channel.
    pub fn new(limits: ChannelLimits) -> Channel {
        let rtt = RttEstimator::new(&limits);
        let congestion = Congestion::new(limits.max_fragment, limits.max_in_flight);
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
            peer_cumulative: 0,
            abandoned_through: 0,
            open_fragmented: BTreeMap::new(),
            compressed: BTreeSet::new(),
            rtt,
            congestion,
            pacer: Pacer::default(),
            paced_until: None,
            echo: None,
            recv_cumulative: 0,
            recv_above: BTreeSet::new(),
            ack_due_us: None,
            unacked: 0,
            largest_received: (0, 0),
            partials: HashMap::new(),
            partial_bytes: 0,
            lost_data: false,
            bulk_bytes: 0,
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
        if frags > 1 {
            self.bulk_bytes = self.bulk_bytes.saturating_add(message.len() as u64);
        }
        if frags > 1 && wire::is_packed(message) {
            self.compressed.insert(msg_id);
        }
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

    /// Bytes of the messages larger than one fragment queued to the peer so far (0: it
    /// never carried bulk data).
    pub fn bulk_bytes(&self) -> u64 {
        self.bulk_bytes
    }

    /// Cuts the messages queued from now on into fragments of at most `max_fragment`
    /// bytes (the path to the peer carries larger datagrams; see `path`). Those queued
    /// before keep their size. The congestion window counts in the new size.
    pub fn set_max_fragment(&mut self, max_fragment: usize) {
        self.limits.max_fragment = max_fragment.max(MIN_FRAGMENT);
        self.congestion.set_datagram(self.limits.max_fragment);
    }

    /// The oldest datagram in flight, if it carries more than `bytes` bytes of fragment:
    /// when it was first sent and how many timeouts it took.
    pub fn oldest_larger_than(&self, bytes: usize) -> Option<(u64, u32)> {
        let (_, entry) = self.in_flight.first_key_value()?;
        (entry.data.bytes.len() > bytes).then_some((entry.first_sent_us, entry.retries))
    }

    /// Whether the fragments of message `msg_id` carry bytes zstd compressed already (a
    /// packed message cut into fragments): compressing a datagram of them again only
    /// costs the time.
    pub fn is_compressed(&self, msg_id: u64) -> bool {
        self.compressed.contains(&msg_id)
    }

    /// The id [`Channel::send_message`] gives the next message it queues.
    pub fn next_message_id(&self) -> u64 {
        self.next_msg_id
    }

    /// Whether message `msg_id` was queued and none of it has been sent yet.
    pub fn waiting_to_start(&self, msg_id: u64) -> bool {
        // Messages leave the queue in the order of their ids, fragment 0 first.
        msg_id < self.next_msg_id
            && self
                .queue
                .front()
                .is_some_and(|d| d.msg_id < msg_id || (d.msg_id == msg_id && d.frag == 0))
    }

    /// Bytes waiting to be sent (not yet in flight).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Fragments waiting to be sent (not yet in flight).
    pub fn queued_fragments(&self) -> usize {
        self.queue.len()
    }

    /// Datagrams sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether fragments or retransmissions wait to be sent (in flight alone is not:
    /// only an ack or a timeout changes what can be sent then).
    pub fn has_unsent(&self) -> bool {
        !self.queue.is_empty() || !self.retransmit_due.is_empty() || self.echo.is_some()
    }

    /// Whether nothing is queued or in flight.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_empty()
    }

    /// The round-trip estimator.
    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }

    /// Takes a round trip measured outside the channel (by the exchange that proved the
    /// peer's address, or by the session before) while the channel has none of its own:
    /// data lost before its first acknowledgement is then resent after a few round
    /// trips, not after the initial timeout. Such a sample may be longer than the path's
    /// round trip, never shorter, so it is taken only if it shortens the timeout.
    pub fn seed_rtt(&mut self, rtt_us: u64) {
        if self.rtt.srtt_us.is_some() {
            return;
        }
        let mut seeded = self.rtt.clone();
        seeded.sample(rtt_us);
        if seeded.rto_us < self.rtt.rto_us {
            self.rtt = seeded;
        }
    }

    /// Counters.
    pub fn stats(&self) -> ChannelStats {
        ChannelStats {
            congestion_events: self.congestion.events(),
            ..self.stats
        }
    }

    /// Bytes held for partially received messages, bookkeeping included (what this channel
    /// has charged to the reassembly budget).
    pub fn reassembly_bytes(&self) -> usize {
        self.partial_bytes
    }

    /// The next data fragment to put on the wire: a due retransmission first, then new
    /// data while the in-flight window allows.
    pub fn poll_data(&mut self, now_us: u64) -> Option<Data> {
        // Set again below if the pacer holds this datagram back: a hold that has passed
        // must not stay among the deadlines, or it would be due for good.
        self.paced_until = None;
        if let Some(seq) = self.echo.take() {
            let size = self.in_flight.get(&seq).map(|e| e.size);
            match size {
                Some(size) if self.paced(now_us, size) => {
                    self.echo = Some(seq);
                    return None;
                }
                Some(size) => {
                    self.pacer.on_sent(size);
                    self.stats.retransmits += 1;
                    return self.in_flight.get(&seq).map(|e| e.data.clone());
                }
                None => {}
            }
        }
        while let Some(&seq) = self.retransmit_due.first() {
            let Some(entry) = self.in_flight.get(&seq) else {
                self.retransmit_due.pop_first();
                continue;
            };
            // The same rule as at a timeout: a datagram found lost again and again by
            // acknowledgements of later ones never reaches its timeout, as each resend
            // moves it on, and was resent for as long as the peer answered anything.
            // The caller looks at `lost_data` (and the changed deadlines) after polling.
            if self.past_retries(entry, now_us) {
                self.give_up(seq);
                continue;
            }
            let size = entry.size;
            if self.paced(now_us, size) {
                return None;
            }
            self.retransmit_due.pop_first();
            self.pacer.on_sent(size);
            let backed_off = |retries| self.rtt.backed_off(retries);
            if let Some(entry) = self.in_flight.get_mut(&seq) {
                // A retransmission before this one went unanswered: the path loses in
                // at least one direction, and each failure costs a longer timeout. Two
                // copies, and the acks of both, make another failure rare (at 10% loss
                // each way, 4% of round trips instead of 19%).
                if entry.resent {
                    self.echo = Some(seq);
                }
                self.deadlines.remove(&(entry.deadline_us, seq));
                entry.retries += 1;
                entry.resent = true;
                entry.waiting = false;
                entry.last_sent_us = now_us;
                entry.deadline_us = now_us + backed_off(entry.retries);
                self.deadlines.insert((entry.deadline_us, seq));
                self.stats.retransmits += 1;
                return Some(entry.data.clone());
            }
        }
        let next = self.queue.front()?;
        let next_size = next.bytes.len();
        let starts_fragmented = next.frags > 1 && !self.open_fragmented.contains_key(&next.msg_id);
        let window_open = self.in_flight.is_empty()
            || (self.bytes_in_flight + next_size <= self.congestion.window()
                && self.in_flight.len() < MAX_IN_FLIGHT_DATAGRAMS);
        if !window_open
            || (starts_fragmented && self.open_fragmented.len() >= MAX_PARTIALS_PER_PEER)
            || self.paced(now_us, next_size)
        {
            return None;
        }
        self.pacer.on_sent(next_size);
        let mut data = self.queue.pop_front()?;
        if starts_fragmented {
            self.open_fragmented.insert(data.msg_id, data.frags);
        }
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
                resent: false,
                waiting: false,
                deadline_us: now_us + self.rtt.rto_us,
            },
        );
        Some(data)
    }

    /// Whether the pacer holds back a datagram of `bytes` at `now_us` (see `pacing`);
    /// the channel's next timeout is then when it may go.
    fn paced(&mut self, now_us: u64, bytes: usize) -> bool {
        self.paced_until = self.pacer.delay(
            now_us,
            bytes,
            self.congestion.window(),
            self.rtt.srtt_us(),
            self.limits.max_fragment,
        );
        self.paced_until.is_some()
    }

    /// Whether the pacer held back the latest datagram the channel had to send.
    pub fn is_paced(&self) -> bool {
        self.paced_until.is_some() && self.has_unsent()
    }

    /// Processes an acknowledgement from the peer.
    pub fn on_ack(&mut self, ack: &Ack, now_us: u64) {
        self.peer_cumulative = self.peer_cumulative.max(ack.cumulative);
        let mut sample: Option<u64> = None;
        let largest_in_ack = ack
            .ranges
            .iter()
            .take(MAX_ACK_RANGES)
            .map(|&(_, hi)| hi)
            .fold(ack.cumulative, u64::max);
        let mut resent_acked = false;
        // The latest retransmission this ack answers, if the ack newly acknowledges
        // nothing else (see the time rule below).
        let mut answered_resend: Option<u64> = None;
        let mut original_acked = false;
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
                self.close_fragment(&entry.data);
                self.bytes_in_flight = self.bytes_in_flight.saturating_sub(entry.size);
                self.retransmit_due.remove(&seq);
                self.deadlines.remove(&(entry.deadline_us, seq));
                self.congestion.on_ack(entry.size, entry.last_sent_us);
                if seq > self.largest_acked {
                    self.largest_acked = seq;
                    self.largest_acked_sent_us = entry.last_sent_us;
                }
                resent_acked |= entry.resent;
                original_acked |= !entry.resent;
                // An answer sooner than the smallest round trip after the retransmission
                // went out is the original's (RFC 8985 §6.2, step 2).
                let answers_resend = entry.resent
                    && self
                        .rtt
                        .min_rtt_us
                        .is_some_and(|min| now_us.saturating_sub(entry.last_sent_us) >= min);
                if answers_resend {
                    answered_resend = answered_resend.max(Some(entry.last_sent_us));
                }
                // Only the ack's largest datagram gives a sample (RFC 9002 §5.1), and
                // only if it was never retransmitted (Karn): a smaller one newly
                // acknowledged may have arrived long before. Nor does an ack that
                // repeats a lost one: it was held far past the ack delay, and its round
                // trip would be the time between the datagrams that made the peer ack.
                if seq == largest_in_ack && !entry.resent && ack.delay_us <= REPEATED_ACK_DELAY_US
                {
                    sample = Some(now_us.saturating_sub(entry.last_sent_us));
                }
            }
        }
        // A second copy of a datagram now acknowledged is not worth sending.
        if self.echo.is_some_and(|seq| !self.in_flight.contains_key(&seq)) {
            self.echo = None;
        }
        if let Some(rtt) = sample {
            let rtt = self.rtt.sample_with_delay(rtt, ack.delay_us);
            self.congestion.on_rtt_sample(rtt);
        }
        if resent_acked {
            // The peer answers again. Those that waited behind the retransmission start
            // their timeouts afresh: a slow peer acknowledges them meanwhile, and a lost
            // one falls due then (or sooner, overtaken by later acknowledged datagrams).
            // Waiting was no silence of the peer's, so it counts towards no give-up.
            let rto = self.rtt.rto_us;
            for (&seq, entry) in self.in_flight.iter_mut().filter(|(_, e)| e.waiting) {
                self.deadlines.remove(&(entry.deadline_us, seq));
                entry.waiting = false;
                entry.retries = u32::from(entry.resent);
                entry.deadline_us = now_us + rto;
                self.deadlines.insert((entry.deadline_us, seq));
            }
        }
        // Fast retransmit: a datagram sent before one acknowledged three numbers above
        // it was lost. "Before" by more than a quarter round trip (RACK's reordering
        // window): datagrams sent together may arrive in any order, and one overtaken
        // by its neighbour is late, not lost. Once resent it is newer than that one, so
        // it is not resent again until a later datagram overtakes it too.
        //
        // A datagram sent with or before one acknowledged is lost, too, once it has gone
        // unanswered for a round trip and a reordering window (RACK's time rule, RFC
        // 8985 §6.2): among datagrams sent together, the gaps left once the rest was
        // acknowledged. Without it only timeouts resend them, the oldest first and one
        // at a time, a timeout per gap. The round trip is the longer of the smoothed and
        // the latest, so the rest of a burst a slow peer is still reading is not resent.
        //
        // An ack that answers a retransmission, and newly acknowledges nothing sent
        // only once, counts the retransmission as sent when it was resent: the peer has
        // read everything that reached it before that, so what was sent earlier and is
        // still unanswered was lost. This is the lost tail of a burst, which no later
        // datagram overtakes; a slow peer reading its backlog answers originals too.
        let threshold = self.largest_acked.saturating_sub(FAST_RETRANSMIT_THRESHOLD);
        let overtaken_at = self.largest_acked_sent_us;
        let answered_resend = answered_resend.filter(|_| !original_acked);
        let answered_at = answered_resend.map_or(overtaken_at, |at| at.max(overtaken_at));
        let reordering_us = self.rtt.srtt_us().unwrap_or(0) / 4;
        let overdue_before = self
            .rtt
            .expected_us()
            .map(|expected| now_us.saturating_sub(expected + reordering_us));
        // Past the largest acknowledged only an answered retransmission shows losses.
        let examined = if answered_resend.is_some() {
            u64::MAX
        } else {
            self.largest_acked
        };
        let lost: Vec<(u64, u64)> = self
            .in_flight
            .range(..examined)
            .filter(|&(&seq, e)| {
                let overtaken = seq <= threshold && e.last_sent_us + reordering_us < overtaken_at;
                let overdue = e.last_sent_us <= answered_at
                    && overdue_before.is_some_and(|before| e.last_sent_us < before);
                (overtaken || overdue) && !self.retransmit_due.contains(&seq)
            })
            .map(|(s, e)| (*s, e.last_sent_us))
            .collect();
        for (seq, sent_us) in lost {
            self.congestion.on_loss(sent_us, 0, now_us);
            self.retransmit_due.insert(seq);
        }
    }

    /// Notes that a fragment left flight (acknowledged or given up).
    fn close_fragment(&mut self, data: &Data) {
        if data.frags <= 1 {
            return;
        }
        if let Some(open) = self.open_fragmented.get_mut(&data.msg_id) {
            *open -= 1;
            if *open == 0 {
                self.open_fragmented.remove(&data.msg_id);
                self.compressed.remove(&data.msg_id);
            }
        }
    }

    /// Withdraws message `msg_id`: its fragments still queued or in flight are never
    /// sent again, and the receiver is told to stop waiting for them (see the module
    /// docs). Whether any of it was still unacknowledged.
    pub fn abandon_message(&mut self, msg_id: u64) -> bool {
        let queued_before = self.queue.len();
        let mut freed = 0;
        self.queue.retain(|d| {
            let keep = d.msg_id != msg_id;
            if !keep {
                freed += d.bytes.len();
            }
            keep
        });
        self.queued_bytes = self.queued_bytes.saturating_sub(freed);
        let seqs: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, e)| e.data.msg_id == msg_id)
            .map(|(&seq, _)| seq)
            .collect();
        for &seq in &seqs {
            if let Some(entry) = self.in_flight.remove(&seq) {
                self.bytes_in_flight = self.bytes_in_flight.saturating_sub(entry.size);
                self.retransmit_due.remove(&seq);
                self.deadlines.remove(&(entry.deadline_us, seq));
                self.abandoned_through = self.abandoned_through.max(seq);
            }
        }
        self.open_fragmented.remove(&msg_id);
        self.compressed.remove(&msg_id);
        let abandoned = !seqs.is_empty() || self.queue.len() < queued_before;
        if abandoned {
            self.stats.abandoned += 1;
        }
        abandoned
    }

    /// The messages with a fragment due for retransmission (see [`Channel::poll_data`]).
    pub fn messages_due_again(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .retransmit_due
            .iter()
            .filter_map(|seq| self.in_flight.get(seq))
            .map(|e| e.data.msg_id)
            .collect();
        ids.dedup();
        ids
    }

    /// The oldest message still queued or unacknowledged (the next one to be queued if
    /// none is): every message before it was delivered, given up or abandoned.
    pub fn oldest_outstanding_message(&self) -> u64 {
        // Fragments leave the queue in the order of their messages' ids and get rising
        // sequence numbers, so the oldest in flight is the lowest numbered.
        self.in_flight
            .first_key_value()
            .map(|(_, e)| e.data.msg_id)
            .or_else(|| self.queue.front().map(|d| d.msg_id))
            .unwrap_or(self.next_msg_id)
    }

    /// The number to carry in the next datagram of data, if the peer still waits on a
    /// datagram given up or abandoned: no sequence number up to it will be sent again.
    pub fn settled_to_announce(&self) -> Option<u64> {
        if self.abandoned_through <= self.peer_cumulative {
            return None;
        }
        let settled = self
            .in_flight
            .first_key_value()
            .map_or(self.next_seq - 1, |(&seq, _)| seq - 1);
        (settled > self.peer_cumulative).then_some(settled)
    }

    /// The peer sends no sequence number up to `settled` again: stop waiting for those
    /// not received. Bounded by the receive window, as data is.
    pub fn on_settled(&mut self, settled: u64) {
        let settled = settled.min(self.recv_cumulative + RECV_WINDOW);
        if settled <= self.recv_cumulative {
            return;
        }
        self.recv_above = self.recv_above.split_off(&(settled + 1));
        self.recv_cumulative = settled;
        while self.recv_above.first() == Some(&(self.recv_cumulative + 1)) {
            self.recv_above.pop_first();
            self.recv_cumulative += 1;
        }
    }

    /// Processes a data fragment; the caller acknowledges it via [`Channel::take_ack`].
    pub fn on_data(&mut self, data: Data, now_us: u64) -> Received {
        let seq = data.seq;
        if seq == 0 {
            return Received::Refused;
        }
        if seq <= self.recv_cumulative || self.recv_above.contains(&seq) {
            // The sender retransmitted: its ack was lost or late; send one at once.
            self.ack_at(now_us);
            return Received::Duplicate;
        }
        if seq > self.recv_cumulative + RECV_WINDOW {
            return Received::Refused;
        }
        let in_order = seq == self.recv_cumulative + 1 && self.recv_above.is_empty();
        let outcome = self.reassemble(data, now_us);
        // Accept the sequence number even when reassembly refused the message: the
        // sender must stop retransmitting it, and anti-entropy repairs the content.
        self.recv_above.insert(seq);
        while self.recv_above.first() == Some(&(self.recv_cumulative + 1)) {
            self.recv_above.pop_first();
            self.recv_cumulative += 1;
        }
        if seq > self.largest_received.0 {
            self.largest_received = (seq, now_us);
        }
        self.unacked += 1;
        if in_order && self.unacked < ACK_EVERY {
            self.ack_at(now_us + MAX_ACK_DELAY_US);
        } else {
            // Out of order (a gap opened or filled: the sender must hear of it now) or
            // enough to acknowledge.
            self.ack_at(now_us);
        }
        outcome
    }

    /// Makes an ack due by `due_us` (or earlier, if it already was).
    fn ack_at(&mut self, due_us: u64) {
        self.ack_due_us = Some(self.ack_due_us.map_or(due_us, |d| d.min(due_us)));
    }

    fn reassemble(&mut self, data: Data, now_us: u64) -> Received {
        if data.frags == 0 || data.frag >= data.frags {
            return self.refuse(None);
        }
        if data.frags == 1 {
            // Held to the same limit as a fragmented message, though it costs nothing
            // beyond this call: the limit is also the largest message accepted.
            if data.bytes.len() > self.limits.reassembly.limit() {
                return self.refuse(None);
            }
            return Received::Message(data.bytes);
        }
        let size = data.bytes.len();
        let last = data.frag + 1 == data.frags;
        if !self.plausible(data.frags, size, last) {
            return self.refuse(None);
        }
        let budget = &self.limits.reassembly;
        let partial = match self.partials.get_mut(&data.msg_id) {
            Some(p) => {
                if p.fragments.len() != data.frags as usize || !p.fits_sizes(size, last) {
                    // Fragments of one message disagree: not a real sender's.
                    return self.refuse(Some(data.msg_id));
                }
                p
            }
            None => {
                if self.partials.len() >= MAX_PARTIALS_PER_PEER {
                    return self.refuse(None);
                }
                let cost = PARTIAL_OVERHEAD + data.frags as usize * SLOT_BYTES;
                if !budget.take(cost) {
                    return self.refuse(None);
                }
                self.partial_bytes += cost;
                self.partials.entry(data.msg_id).or_insert(Partial {
                    fragments: vec![None; data.frags as usize],
                    missing: data.frags,
                    bytes: 0,
                    charged: cost,
                    fragment_size: None,
                    last_size: None,
                    last_update_us: now_us,
                    started_us: now_us,
                })
            }
        };
        if partial.fragments[data.frag as usize].is_some() {
            return Received::Fragment;
        }
        let cost = data.bytes.capacity();
        if !budget.take(cost) {
            return self.refuse(Some(data.msg_id));
        }
        if last {
            partial.last_size = Some(size);
        } else {
            partial.fragment_size = Some(size);
        }
        partial.charged += cost;
        partial.bytes += size;
        partial.missing -= 1;
        partial.last_update_us = now_us;
        self.partial_bytes += cost;
        partial.fragments[data.frag as usize] = Some(data.bytes);
        if partial.missing > 0 {
            return Received::Fragment;
        }
        let partial = self.partials.remove(&data.msg_id).expect("present");
        self.release(partial.charged);
        let mut message = Vec::with_capacity(partial.bytes);
        for fragment in partial.fragments.into_iter().flatten() {
            message.extend_from_slice(&fragment);
        }
        Received::Message(message)
    }

    /// Whether fragment of `size` bytes of a message of `frags` fragments could come from
    /// a real sender: every fragment of a fragmented message carries bytes, all but the
    /// last at least [`MIN_FRAGMENT`] and as many as each other, the last no more than
    /// the others; and the smallest message that makes must fit the budget.
    fn plausible(&self, frags: u32, size: usize, last: bool) -> bool {
        let max_message = self.limits.reassembly.limit() as u128;
        let (frags, size) = (u128::from(frags), size as u128);
        let smallest_message = if last {
            frags * size
        } else {
            (frags - 1) * size + 1
        };
        size > 0
            && (last || size >= MIN_FRAGMENT as u128)
            && frags <= max_message / MIN_FRAGMENT as u128 + 1
            && smallest_message <= max_message
    }

    /// Counts a refused fragment and drops message `msg_id`'s partial, if given.
    fn refuse(&mut self, msg_id: Option<u64>) -> Received {
        self.stats.reassembly_drops += 1;
        if let Some(p) = msg_id.and_then(|id| self.partials.remove(&id)) {
            self.release(p.charged);
        }
        Received::Refused
    }

    /// Gives `bytes` of partial messages back to the budget.
    fn release(&mut self, bytes: usize) {
        self.partial_bytes -= bytes;
        self.limits.reassembly.give_back(bytes);
    }

    /// The ack to send alone, if one is due at `now_us` (see the module docs).
    pub fn take_ack(&mut self, now_us: u64) -> Option<Ack> {
        if self.ack_due_us.is_none_or(|due| due > now_us) {
            return None;
        }
        self.take_pending_ack(now_us)
    }

    /// The ack to carry in a datagram going to the peer anyway, if anything was received
    /// since the last one, due or not.
    pub fn take_pending_ack(&mut self, now_us: u64) -> Option<Ack> {
        self.ack_due_us.take()?;
        self.unacked = 0;
        Some(self.current_ack(now_us))
    }

    /// Whether an acknowledgement is waiting to be sent.
    #[cfg(test)]
    pub fn ack_pending(&self) -> bool {
        self.ack_due_us.is_some()
    }

    fn current_ack(&self, now_us: u64) -> Ack {
        // The newest ranges, as QUIC's acks (RFC 9000 §13.2.4): with more gaps than an
        // ack holds, the oldest were in earlier acks, and the sender needs to hear of
        // its latest datagrams at once. An ack that left them out would acknowledge
        // them only once the gaps below filled, a round trip sample of seconds that
        // stretches the timeout which fills those gaps.
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for &seq in self.recv_above.iter().rev() {
            match ranges.last_mut() {
                Some((lo, _)) if *lo == seq + 1 => *lo = seq,
                _ => {
                    if ranges.len() == MAX_ACK_RANGES {
                        break;
                    }
                    ranges.push((seq, seq));
                }
            }
        }
        ranges.reverse();
        let largest = ranges.last().map_or(self.recv_cumulative, |&(_, hi)| hi);
        let (largest_received, received_us) = self.largest_received;
        // The delay is stated for the largest datagram acknowledged (with no range, the
        // cumulative one may be older than the largest received: none is stated then).
        let delay_us = if largest == largest_received {
            now_us.saturating_sub(received_us)
        } else {
            0
        };
        Ack {
            cumulative: self.recv_cumulative,
            ranges,
            delay_us,
        }
    }

    /// Earliest time this channel needs [`Channel::on_timeout`], or a delayed ack falls
    /// due ([`Channel::take_ack`]).
    pub fn next_timeout(&self) -> Option<u64> {
        // A datagram already due waits only for the pacer, whose hold is its deadline:
        // its own, passed, would be due again on every turn until the pacer let it go.
        let retransmit = self
            .deadlines
            .iter()
            .find(|(_, seq)| !self.retransmit_due.contains(seq))
            .map(|&(deadline, _)| deadline);
        let reassembly = self.partials.values().map(|p| self.expiry_of(p)).min();
        let paced = self.paced_until.filter(|_| self.has_unsent());
        [retransmit, reassembly, self.ack_due_us, paced]
            .into_iter()
            .flatten()
            .min()
    }

    /// Marks timed-out datagrams for retransmission, gives up those past the retry cap,
    /// and drops stale partial messages.
    ///
    /// Only the oldest datagram in flight is retransmitted on a timeout; the later ones
    /// that timed out with it wait for its answer, taking the timeout (backoff, retry
    /// count) without going on the wire. A peer that pauses (a busy process, a long
    /// merge) then costs one retransmission per timeout instead of its whole window
    /// sent twice, and the datagrams that waited still give round-trip samples, so the
    /// timeout learns the pause. Lost datagrams among them are found by the later
    /// datagrams acknowledged past them (fast retransmit) or by their next timeout.
    pub fn on_timeout(&mut self, now_us: u64) {
        // The pacer's hold is over: the datagram goes with the next poll, and the hold is
        // no deadline any more.
        if self.paced_until.is_some_and(|at| at <= now_us) {
            self.paced_until = None;
        }
        let mut given_up = Vec::new();
        let mut waiting = Vec::new();
        let oldest = self.in_flight.keys().next().copied();
        for &(deadline, seq) in &self.deadlines {
            if deadline > now_us {
                break;
            }
            match self.in_flight.get(&seq) {
                Some(entry) if self.past_retries(entry, now_us) => given_up.push(seq),
                Some(_) if Some(seq) != oldest => waiting.push(seq),
                Some(entry) => {
                    // Once per timeout: a datagram already due was counted when it fell due.
                    let newly_due = self.retransmit_due.insert(seq);
                    if newly_due {
                        self.congestion
                            .on_loss(entry.last_sent_us, entry.retries + 1, now_us);
                    }
                }
                None => {}
            }
        }
        for seq in waiting {
            let backed_off = |retries| self.rtt.backed_off(retries);
            if let Some(entry) = self.in_flight.get_mut(&seq) {
                self.deadlines.remove(&(entry.deadline_us, seq));
                entry.retries += 1;
                entry.waiting = true;
                entry.deadline_us = now_us + backed_off(entry.retries);
                self.deadlines.insert((entry.deadline_us, seq));
            }
        }
        for seq in given_up {
            self.give_up(seq);
        }
        let before = self.partials.len();
        let expired: Vec<u64> = self
            .partials
            .iter()
            .filter(|(_, p)| self.expiry_of(p) <= now_us)
            .map(|(&id, _)| id)
            .collect();
        let freed: usize = expired
            .iter()
            .filter_map(|id| self.partials.remove(id))
            .map(|p| p.charged)
            .sum();
        self.release(freed);
        self.stats.reassembly_drops += (before - self.partials.len()) as u64;
    }

    /// Whether `entry` was retried `max_retries` times and unacknowledged for
    /// `min_give_up_us`: it is given up rather than sent again.
    fn past_retries(&self, entry: &InFlight, now_us: u64) -> bool {
        entry.retries >= self.limits.max_retries
            && now_us.saturating_sub(entry.first_sent_us) >= self.limits.min_give_up_us
    }

    /// Gives datagram `seq` up: anti-entropy repairs what it carried.
    fn give_up(&mut self, seq: u64) {
        if let Some(entry) = self.in_flight.remove(&seq) {
            self.close_fragment(&entry.data);
            self.bytes_in_flight = self.bytes_in_flight.saturating_sub(entry.size);
            self.retransmit_due.remove(&seq);
            self.deadlines.remove(&(entry.deadline_us, seq));
            self.stats.given_up += 1;
            self.abandoned_through = self.abandoned_through.max(seq);
            self.lost_data = true;
        }
    }

    /// When partial message `p` is dropped: once idle for the reassembly timeout, or once
    /// [`PARTIAL_LIFETIME_TIMEOUTS`] timeouts old.
    fn expiry_of(&self, p: &Partial) -> u64 {
        let timeout = self.limits.reassembly_timeout_us;
        (p.last_update_us + timeout).min(p.started_us + PARTIAL_LIFETIME_TIMEOUTS * timeout)
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
                    || (self.bytes_in_flight + d.bytes.len() <= self.congestion.window()
                        && self.in_flight.len() < MAX_IN_FLIGHT_DATAGRAMS)
            }
        }
    }
}

impl Drop for Channel {
    /// A channel dropped (its peer restarted or was removed) gives its partial messages'
    /// bytes back to the node's budget.
    fn drop(&mut self) {
        self.limits.reassembly.give_back(self.partial_bytes);
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
            max_fragment: MIN_FRAGMENT,
            datagram_sizes: (1_200, 1_200),
            max_in_flight: 100 * MIN_FRAGMENT,
            max_queued: 100_000,
            reassembly: ReassemblyBudget::new(10_000),
            reassembly_timeout_us: 1_000_000,
        }
    }

    #[test]
    fn a_channel_whose_path_grew_keeps_two_of_its_larger_datagrams_in_flight() {
        let mut a = Channel::new(limits());
        a.set_max_fragment(1_000);
        assert!(a.send_message(&[1; 1_000]));
        assert!(a.send_message(&[2; 1_000]));
        assert!(a.poll_data(0).is_some());
        assert!(
            a.poll_data(0).is_some(),
            "the window counts in the new datagram size"
        );
    }

    #[test]
    fn a_round_trip_measured_elsewhere_is_taken_only_before_one_of_its_own_and_if_shorter() {
        let mut a = Channel::new(limits());
        let initial = a.rtt().rto_us();
        a.seed_rtt(initial);
        assert_eq!(a.rtt().srtt_us(), None, "it would lengthen the timeout");
        a.seed_rtt(2_000);
        assert_eq!(a.rtt().srtt_us(), Some(2_000));
        assert!(a.rtt().rto_us() < initial);
        a.seed_rtt(1_000);
        assert_eq!(a.rtt().srtt_us(), Some(2_000), "one sample is enough");
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
        if let Some(ack) = b.take_pending_ack(now) {
            a.on_ack(&ack, now + 100);
        }
        delivered
    }

    #[test]
    fn large_message_is_fragmented_and_reassembled() {
        let (mut a, mut b) = (Channel::new(limits()), Channel::new(limits()));
        let message: Vec<u8> = (0..=255).cycle().take(1_000).collect();
        assert!(a.send_message(&message));
        // 16 fragments: the first 10 fill the initial window, the rest follow their acks.
        assert!(pump(&mut a, &mut b, 0, |_| false).is_empty());
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
        assert!(b.take_pending_ack(0).is_some());
        // A duplicate is acknowledged at once: its sender is retransmitting.
        assert_eq!(b.on_data(d, 10), Received::Duplicate);
        assert_eq!(
            b.take_ack(10),
            Some(Ack {
                cumulative: 1,
                ranges: vec![],
                delay_us: 10,
            })
        );
    }

    fn one(seq: u64) -> Data {
        frag(seq, seq, 0, 1, 8)
    }

    #[test]
    fn a_lone_datagram_is_acknowledged_after_the_delay_and_two_at_once() {
        let mut b = Channel::new(limits());
        b.on_data(one(1), 0);
        assert_eq!(b.take_ack(0), None, "one datagram waits for company");
        assert_eq!(b.next_timeout(), Some(MAX_ACK_DELAY_US));
        assert_eq!(b.take_ack(MAX_ACK_DELAY_US - 1), None);
        let ack = b.take_ack(MAX_ACK_DELAY_US).expect("due after the delay");
        assert_eq!((ack.cumulative, ack.delay_us), (1, MAX_ACK_DELAY_US));
        assert_eq!(b.next_timeout(), None, "nothing left to acknowledge");
        // Two in order: due at once, and the delay stated is the second one's.
        b.on_data(one(2), 5_000);
        assert_eq!(b.take_ack(5_000), None);
        b.on_data(one(3), 5_040);
        let ack = b.take_ack(5_060).expect("two datagrams are acknowledged at once");
        assert_eq!((ack.cumulative, ack.delay_us), (3, 20));
    }

    #[test]
    fn a_pending_ack_rides_with_any_datagram_before_it_is_due() {
        let mut b = Channel::new(limits());
        b.on_data(one(1), 0);
        assert_eq!(b.take_ack(100), None);
        let ack = b.take_pending_ack(100).expect("pending");
        assert_eq!((ack.cumulative, ack.delay_us), (1, 100));
        assert_eq!(b.take_ack(MAX_ACK_DELAY_US), None, "sent once, not again alone");
        assert_eq!(b.take_pending_ack(MAX_ACK_DELAY_US), None);
    }

    #[test]
    fn out_of_order_data_is_acknowledged_at_once() {
        let mut b = Channel::new(limits());
        // A gap opens: the sender must hear of it now.
        b.on_data(one(2), 0);
        let ack = b.take_ack(0).expect("a gap is acknowledged at once");
        assert_eq!((ack.cumulative, ack.ranges), (0, vec![(2, 2)]));
        // And closes: so must it.
        b.on_data(one(1), 30);
        let ack = b.take_ack(30).expect("a filled gap is acknowledged at once");
        assert_eq!((ack.cumulative, ack.ranges), (2, vec![]));
        // After it, in order again: the delay applies.
        b.on_data(one(3), 60);
        assert_eq!(b.take_ack(60), None);
    }

    #[test]
    fn the_ack_delay_is_taken_off_the_round_trip() {
        let (mut a, mut b) = (Channel::new(limits()), Channel::new(limits()));
        // Two datagrams, acknowledged at once: 100 µs round trips.
        let burst = send_burst(&mut a, 2);
        for d in burst {
            b.on_data(d, 50);
        }
        a.on_ack(&b.take_ack(50).unwrap(), 100);
        assert_eq!(a.rtt().srtt_us(), Some(100));
        // One datagram, its ack held the whole delay.
        assert!(a.send_message(&[9]));
        let d = a.poll_data(1_000).unwrap();
        b.on_data(d, 1_050);
        assert_eq!(b.take_ack(1_050), None);
        let ack = b.take_ack(1_050 + MAX_ACK_DELAY_US).unwrap();
        a.on_ack(&ack, 1_100 + MAX_ACK_DELAY_US);
        assert_eq!(a.rtt().srtt_us(), Some(100), "the held ack counted as path delay");
    }

    #[test]
    fn an_overstated_ack_delay_does_not_shrink_the_round_trip() {
        let (mut a, mut b) = (Channel::new(limits()), Channel::new(limits()));
        let burst = send_burst(&mut a, 2);
        for d in burst {
            b.on_data(d, 50);
        }
        a.on_ack(&b.take_ack(50).unwrap(), 100);
        // The next round trip takes 300 µs; the peer claims it held the ack 20 ms.
        assert!(a.send_message(&[9]));
        let d = a.poll_data(1_000).unwrap();
        b.on_data(d, 1_150);
        let mut ack = b.take_pending_ack(1_150).unwrap();
        ack.delay_us = 20_000;
        a.on_ack(&ack, 1_300);
        // Nothing taken off: 300 µs less any delay would fall below the 100 µs seen.
        assert_eq!(a.rtt().srtt_us(), Some((7 * 100 + 300) / 8));
    }

    #[test]
    fn an_ack_repeating_a_lost_one_gives_no_round_trip_sample() {
        let (mut a, mut b) = (Channel::new(limits()), Channel::new(limits()));
        let burst = send_burst(&mut a, 2);
        for d in burst {
            b.on_data(d, 50);
        }
        a.on_ack(&b.take_ack(50).unwrap(), 100);
        // The peer gets datagram 4 at once, but its ack is lost; when datagram 3 comes
        // 3 s later, the peer acknowledges both, naming 4 as the largest.
        let burst = send_burst_at(&mut a, 2, 1_000);
        b.on_data(burst[1].clone(), 1_050);
        b.take_pending_ack(1_050);
        b.on_data(burst[0].clone(), 3_001_000);
        let ack = b.take_pending_ack(3_001_000).unwrap();
        assert_eq!(ack.cumulative, 4);
        a.on_ack(&ack, 3_001_050);
        assert!(a.is_idle());
        assert_eq!(a.rtt().srtt_us(), Some(100), "a lost ack taken for a 3 s round trip");
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
        // Three retransmissions, the two after an unanswered one with a second copy.
        assert_eq!(a.stats().retransmits, 5);
        assert!(a.lost_data);
    }

    /// Gives up datagram 1 of `a` (dropped on every try).
    fn give_up_the_first(a: &mut Channel, b: &mut Channel) -> u64 {
        assert!(a.send_message(b"lost for good"));
        let mut now = 0;
        pump(a, b, now, |_| true);
        while a.stats().given_up == 0 {
            now = a.next_timeout().expect("in flight");
            a.on_timeout(now);
            pump(a, b, now, |_| true);
        }
        now
    }

    #[test]
    fn a_datagram_given_up_does_not_stall_the_receivers_window() {
        let (mut a, mut b) = (Channel::new(limits()), Channel::new(limits()));
        let mut now = give_up_the_first(&mut a, &mut b);
        // More than a receive window of datagrams after the gap: each is delivered, as
        // the sender tells the receiver to stop waiting for the one it gave up.
        let mut delivered = 0;
        for i in 0..RECV_WINDOW + 100 {
            assert!(a.send_message(&i.to_le_bytes()));
            now += 10;
            while let Some(d) = a.poll_data(now) {
                if let Some(settled) = a.settled_to_announce() {
                    b.on_settled(settled);
                }
                if let Received::Message(_) = b.on_data(d, now) {
                    delivered += 1;
                }
            }
            if let Some(ack) = b.take_pending_ack(now) {
                a.on_ack(&ack, now + 5);
            }
        }
        assert_eq!(delivered, RECV_WINDOW + 100);
        assert!(a.is_idle());
        // Once the receiver's acks showed it moved on, nothing more is announced.
        assert_eq!(a.settled_to_announce(), None);
        assert!(b.recv_above.is_empty());
    }

    #[test]
    fn a_message_abandoned_is_never_sent_again_and_the_receiver_moves_past_it() {
        let (mut a, mut b) = (Channel::new(limits()), Channel::new(limits()));
        // A message of three fragments, the second lost, and one of a fragment after it.
        let long: Vec<u8> = (0..=255).cycle().take(3 * MIN_FRAGMENT).collect();
        assert!(a.send_message(&long));
        assert!(a.send_message(b"after"));
        let got = pump(&mut a, &mut b, 0, |seq| seq == 2);
        assert_eq!(got, vec![b"after".to_vec()]);
        a.on_timeout(a.next_timeout().unwrap());
        assert_eq!(a.messages_due_again(), vec![1]);
        assert!(a.abandon_message(1));
        assert!(!a.abandon_message(1), "nothing of it is left");
        assert_eq!(a.stats().abandoned, 1);
        assert!(a.is_idle());
        assert_eq!(a.poll_data(1_000_000), None);
        assert_eq!(a.oldest_outstanding_message(), 3);
        // The receiver holds 1, 3 and 4, and waits on 2 until told.
        let settled = a.settled_to_announce().expect("the peer waits on 2");
        assert_eq!(settled, 4);
        b.on_settled(settled);
        assert!(b.recv_above.is_empty());
        assert_eq!(b.recv_cumulative, 4);
        assert!(a.send_message(b"next"));
        let next = a.poll_data(1_000_000).unwrap();
        assert_eq!(b.on_data(next, 1_000_000), Received::Message(b"next".to_vec()));
        a.on_ack(&b.take_pending_ack(1_000_000).unwrap(), 1_000_100);
        assert_eq!(a.settled_to_announce(), None);
    }

    #[test]
    fn a_settled_number_past_the_receive_window_moves_it_no_further() {
        let mut b = Channel::new(limits());
        b.on_settled(u64::MAX);
        assert_eq!(b.recv_cumulative, RECV_WINDOW);
        b.on_settled(3);
        assert_eq!(b.recv_cumulative, RECV_WINDOW);
    }

    #[test]
    fn window_starts_at_ten_datagrams_and_grows_to_the_ceiling() {
        let mut a = Channel::new(limits());
        assert!(a.send_message(&vec![7u8; 50_000]));
        let mut flights = Vec::new();
        for round in 0..6 {
            let now = round * 1_000;
            let mut last = 0;
            let mut sent = 0;
            while let Some(d) = a.poll_data(now) {
                last = d.seq;
                sent += 1;
            }
            assert!(!a.has_data_ready());
            flights.push(sent);
            let ack = Ack {
                cumulative: last,
                ranges: vec![],
                delay_us: 0,
            };
            a.on_ack(&ack, now + 100);
        }
        // Slow start doubles each round trip; 6400 bytes of ceiling / 64-byte fragments.
        assert_eq!(flights, vec![10, 20, 40, 80, 100, 100]);
    }

    #[test]
    fn queueing_losses_shrink_the_window_and_random_ones_do_not() {
        let mut a = Channel::new(limits());
        assert!(a.send_message(&vec![7u8; 60_000]));
        // Round trips of 100 µs, a datagram every 30 µs: datagram 1 lost, 2..=10
        // acknowledged.
        let flight = |a: &mut Channel, mut now| {
            let mut seqs = Vec::new();
            while let Some(d) = a.poll_data(now) {
                seqs.push(d.seq);
                now += 30;
            }
            seqs
        };
        let first = flight(&mut a, 0);
        assert_eq!(first.len(), 10);
        let ack = Ack {
            cumulative: 0,
            ranges: vec![(2, 10)],
            delay_us: 0,
        };
        a.on_ack(&ack, 370);
        assert_eq!(a.stats().congestion_events, 0, "loss without queueing");
        // The retransmission and new data go out; then a loss with the round trip grown
        // from 100 µs to 5 ms.
        let second = flight(&mut a, 400);
        let lost = second[1];
        let acked: Vec<u64> = second.iter().copied().filter(|&s| s != lost).collect();
        let ack = Ack {
            cumulative: second[0],
            ranges: vec![(acked[1], *acked.last().unwrap())],
            delay_us: 0,
        };
        a.on_ack(&ack, 400 + 30 * second.len() as u64 + 5_000);
        assert_eq!(a.stats().congestion_events, 1, "loss with queueing");
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

    fn frag(seq: u64, msg_id: u64, frag: u32, frags: u32, len: usize) -> Data {
        Data {
            seq,
            msg_id,
            frag,
            frags,
            bytes: vec![0; len],
        }
    }

    /// Feeds `fragments` to `b`; returns what each one came to.
    fn feed(b: &mut Channel, fragments: &[Data]) -> Vec<Received> {
        fragments
            .iter()
            .map(|d| b.on_data(d.clone(), 0))
            .collect()
    }

    fn refused_and_nothing_held(b: &Channel, drops: u64) {
        assert_eq!(b.stats().reassembly_drops, drops);
        assert_eq!(b.reassembly_bytes(), 0);
        assert_eq!(b.limits.reassembly.used(), 0);
    }

    #[test]
    fn impossible_fragment_numbers_are_refused() {
        let mut b = Channel::new(limits());
        let got = feed(
            &mut b,
            &[
                frag(1, 1, 0, 0, 10), // no fragments at all
                frag(2, 2, 3, 3, 10), // index past the count
                frag(3, 3, 1, 1, 10), // a whole message is fragment 0 of 1
                frag(4, 4, 7, 2, 64),
            ],
        );
        assert!(got.iter().all(|r| *r == Received::Refused), "{got:?}");
        refused_and_nothing_held(&b, 4);
        // Refused, but acknowledged: the sender must not retransmit them forever.
        assert_eq!(b.take_ack(0).unwrap().cumulative, 4);
    }

    #[test]
    fn empty_or_short_fragments_of_a_fragmented_message_are_refused() {
        let mut b = Channel::new(limits());
        let got = feed(
            &mut b,
            &[
                // The slot-table flood: empty fragments claiming many fragments.
                frag(1, 1, 0, 150, 0),
                frag(2, 2, 149, 150, 0),
                // Every fragment but the last carries at least MIN_FRAGMENT bytes.
                frag(3, 3, 0, 3, MIN_FRAGMENT - 1),
            ],
        );
        assert!(got.iter().all(|r| *r == Received::Refused), "{got:?}");
        refused_and_nothing_held(&b, 3);
    }

    #[test]
    fn counts_that_cannot_fit_the_largest_message_are_refused() {
        let mut b = Channel::new(limits());
        // 10,000 bytes allowed: 157 fragments of 64 bytes make at least 9,985 bytes,
        // 158 at least 10,049; a last fragment of 100 bytes means others of 100 or more.
        let got = feed(
            &mut b,
            &[
                frag(1, 1, 0, 158, 64),
                frag(2, 2, 100, 101, 100),
                frag(3, 3, 0, u32::MAX, 64),
            ],
        );
        assert!(got.iter().all(|r| *r == Received::Refused), "{got:?}");
        refused_and_nothing_held(&b, 3);
        assert_eq!(b.on_data(frag(4, 4, 0, 157, 64), 0), Received::Fragment);
        assert_eq!(b.on_data(frag(5, 5, 99, 100, 100), 0), Received::Fragment);
    }

    #[test]
    fn fragments_disagreeing_with_their_message_are_refused() {
        let agree = frag(1, 1, 0, 4, 64);
        let cases = [
            frag(2, 1, 1, 5, 64), // another fragment count
            frag(2, 1, 1, 4, 70), // another fragment size
            frag(2, 1, 3, 4, 65), // a last fragment larger than the others
        ];
        let mut drops = 0;
        for case in cases {
            let mut b = Channel::new(limits());
            assert_eq!(b.on_data(agree.clone(), 0), Received::Fragment);
            assert!(b.reassembly_bytes() > 0);
            assert_eq!(b.on_data(case.clone(), 0), Received::Refused, "{case:?}");
            drops += 1;
            // The whole message goes: it cannot be a real sender's.
            refused_and_nothing_held(&b, 1);
        }
        assert_eq!(drops, 3);
        // A middle fragment smaller than a last one already received.
        let mut b = Channel::new(limits());
        assert_eq!(b.on_data(frag(1, 1, 3, 4, 80), 0), Received::Fragment);
        assert_eq!(b.on_data(frag(2, 1, 0, 4, 64), 0), Received::Refused);
        refused_and_nothing_held(&b, 1);
    }

    #[test]
    fn a_partial_message_refreshed_without_end_is_dropped_at_its_lifetime() {
        let mut l = limits();
        l.reassembly = ReassemblyBudget::new(1 << 20);
        let timeout = l.reassembly_timeout_us;
        let mut b = Channel::new(l);
        // A message of many fragments, one arriving every half timeout: never idle for
        // the timeout, never complete.
        let mut now = 0;
        let mut frag_no = 0;
        while now < PARTIAL_LIFETIME_TIMEOUTS * timeout {
            let seq = u64::from(frag_no) + 1;
            assert_eq!(b.on_data(frag(seq, 7, frag_no, 1_000, 64), now), Received::Fragment);
            frag_no += 1;
            now += timeout / 2;
            assert!(b.next_timeout().is_some_and(|t| t <= PARTIAL_LIFETIME_TIMEOUTS * timeout));
            b.on_timeout(now);
        }
        refused_and_nothing_held(&b, 1);
    }

    #[test]
    fn partial_messages_per_peer_are_capped() {
        let mut l = limits();
        l.reassembly = ReassemblyBudget::new(1 << 20);
        let mut b = Channel::new(l);
        let mut seq = 0;
        let mut next = || {
            seq += 1;
            seq
        };
        for msg_id in 0..MAX_PARTIALS_PER_PEER as u64 {
            assert_eq!(b.on_data(frag(next(), msg_id, 0, 2, 64), 0), Received::Fragment);
        }
        let extra = MAX_PARTIALS_PER_PEER as u64;
        assert_eq!(b.on_data(frag(next(), extra, 0, 2, 64), 0), Received::Refused);
        assert_eq!(b.stats().reassembly_drops, 1);
        // Completing one makes room again.
        assert!(matches!(b.on_data(frag(next(), 0, 1, 2, 1), 0), Received::Message(m) if m.len() == 65));
        assert_eq!(b.on_data(frag(next(), extra, 0, 2, 64), 0), Received::Fragment);
    }

    #[test]
    fn the_budget_is_shared_and_charged_for_tables_and_bookkeeping() {
        let l = limits();
        let budget = l.reassembly.clone();
        let (mut a, mut b) = (Channel::new(l.clone()), Channel::new(l));
        // An empty-looking start still costs its slot table and bookkeeping.
        assert_eq!(a.on_data(frag(1, 1, 0, 100, 64), 0), Received::Fragment);
        let one = PARTIAL_OVERHEAD + 100 * SLOT_BYTES + 64;
        assert_eq!(a.reassembly_bytes(), one);
        assert_eq!(budget.used(), one);
        // The other channel draws on the same budget: it runs out for both.
        let mut seq = 0;
        let mut started = 1;
        loop {
            seq += 1;
            match b.on_data(frag(seq, seq, 0, 100, 64), 0) {
                Received::Fragment => started += 1,
                Received::Refused => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(started, 10_000 / one);
        assert!(budget.used() <= 10_000);
        assert_eq!(budget.used(), a.reassembly_bytes() + b.reassembly_bytes());
        assert_eq!(a.on_data(frag(2, 2, 0, 100, 64), 0), Received::Refused);
        assert_eq!(b.stats().reassembly_drops + a.stats().reassembly_drops, 2);
    }

    #[test]
    fn budget_bytes_come_back_on_completion_timeout_and_reset() {
        let l = limits();
        let budget = l.reassembly.clone();
        let mut b = Channel::new(l.clone());
        // Completion.
        assert_eq!(b.on_data(frag(1, 1, 0, 2, 64), 0), Received::Fragment);
        assert!(budget.used() > 0);
        assert!(matches!(b.on_data(frag(2, 1, 1, 2, 10), 0), Received::Message(_)));
        assert_eq!((b.reassembly_bytes(), budget.used()), (0, 0));
        // Timeout.
        assert_eq!(b.on_data(frag(3, 2, 0, 3, 64), 0), Received::Fragment);
        assert!(b.take_pending_ack(0).is_some(), "its deadline is the ack's till sent");
        assert_eq!(b.next_timeout(), Some(1_000_000));
        b.on_timeout(999_999);
        assert!(budget.used() > 0);
        b.on_timeout(1_000_000);
        assert_eq!((b.reassembly_bytes(), budget.used()), (0, 0));
        assert_eq!(b.stats().reassembly_drops, 1);
        // Reset: the peer restarted and its channel is replaced.
        assert_eq!(b.on_data(frag(4, 3, 0, 3, 64), 0), Received::Fragment);
        assert!(budget.used() > 0);
        b = Channel::new(l);
        assert_eq!((b.reassembly_bytes(), budget.used()), (0, 0));
    }

    #[test]
    fn the_largest_message_the_budget_allows_is_reassembled() {
        let mut l = limits();
        let message: Vec<u8> = (0..=255).cycle().take(5_000).collect();
        l.reassembly = ReassemblyBudget::new(reassembly_cost(message.len(), MIN_FRAGMENT));
        let budget = l.reassembly.clone();
        let (mut a, mut b) = (Channel::new(l.clone()), Channel::new(l));
        assert!(a.send_message(&message));
        let mut got = Vec::new();
        for now in 0..10 {
            got.extend(pump(&mut a, &mut b, now * 1_000, |_| false));
        }
        assert_eq!(got, vec![message]);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn fast_retransmit_on_three_later_acks() {
        let (mut a, mut b) = (Channel::new(limits()), Channel::new(limits()));
        assert!(a.send_message(&[0]));
        pump(&mut a, &mut b, 0, |seq| seq == 1);
        for i in 1..5u8 {
            assert!(a.send_message(&[i]));
        }
        pump(&mut a, &mut b, 1_000, |_| false);
        // Datagram 1 is due again long before its 500 ms timeout.
        assert!(a.has_data_ready());
        let got = pump(&mut a, &mut b, 2_000, |_| false);
        assert_eq!(got, vec![vec![0u8]]);
    }

    #[test]
    fn datagrams_sent_together_and_reordered_are_not_resent() {
        let (mut a, mut b) = (Channel::new(limits()), Channel::new(limits()));
        let burst = send_burst(&mut a, 5);
        // The first arrives last: overtaken by datagrams sent with it.
        for d in burst.iter().skip(1) {
            b.on_data(d.clone(), 500);
        }
        a.on_ack(&b.take_ack(500).unwrap(), 600);
        assert!(!a.has_data_ready(), "a reordered datagram taken for lost");
        b.on_data(burst[0].clone(), 700);
        a.on_ack(&b.take_ack(700).unwrap(), 800);
        assert!(a.is_idle());
        assert_eq!(a.stats().retransmits, 0);
    }

    #[test]
    fn gaps_in_a_burst_are_all_resent_once_an_ack_shows_them_overdue() {
        let (mut a, mut b) = channels_with_a_measured_round_trip();
        let burst = send_burst_at(&mut a, 8, 1_000);
        // Of datagrams 2 to 9, 3, 5 and 7 are lost, and so is every ack of the others.
        for d in burst.iter().filter(|d| d.seq % 2 == 0 || d.seq == 9) {
            b.on_data(d.clone(), 1_500);
        }
        b.take_pending_ack(1_500);
        // The timeout resends the oldest datagram alone; the ack of that duplicate shows
        // every gap overdue.
        let (resent, gaps) = answer_the_first_timeout(&mut a, &mut b);
        assert_eq!(resent, vec![2]);
        assert_eq!(gaps, vec![3, 5, 7], "gaps waited for timeouts of their own");
    }

    #[test]
    fn a_message_waits_to_start_until_its_first_fragment_is_sent() {
        let mut a = Channel::new(limits());
        assert!(!a.waiting_to_start(1), "never queued");
        let first = a.next_message_id();
        assert!(a.send_message(&[1; 3 * MIN_FRAGMENT]));
        let second = a.next_message_id();
        assert!(a.send_message(&[2]));
        assert!(a.waiting_to_start(first) && a.waiting_to_start(second));
        a.poll_data(0).unwrap();
        assert!(!a.waiting_to_start(first), "its first fragment is out");
        assert!(a.waiting_to_start(second));
        while a.poll_data(0).is_some() {}
        assert!(!a.waiting_to_start(second));
    }

    #[test]
    fn fragments_of_a_packed_message_are_known_compressed_until_delivered() {
        use crate::wire::{encode_message, Message};
        let (mut a, mut b) = (Channel::new(limits()), Channel::new(limits()));
        let packed = encode_message(&Message::Packed(serde_bytes::ByteBuf::from(vec![7; 200])));
        let plain = encode_message(&Message::IHave(vec![(1, 2); 40]));
        assert!(packed.len() > MIN_FRAGMENT && plain.len() > MIN_FRAGMENT);
        assert!(a.send_message(&packed) && a.send_message(&plain));
        let (packed_id, plain_id) = (1, 2);
        assert!(a.is_compressed(packed_id));
        assert!(!a.is_compressed(plain_id));
        let got = pump(&mut a, &mut b, 0, |_| false);
        assert_eq!(got, vec![packed, plain]);
        assert!(a.is_idle());
        assert!(!a.is_compressed(packed_id), "kept after its last fragment was acknowledged");
    }

    #[test]
    fn an_ack_with_more_gaps_than_it_holds_names_the_newest() {
        let mut b = Channel::new(limits());
        // Every odd datagram from 1 to 39 is lost: 20 gaps.
        for seq in (2..=40).step_by(2) {
            b.on_data(one(seq), 0);
        }
        let ack = b.take_pending_ack(0).unwrap();
        assert_eq!(ack.cumulative, 0);
        assert_eq!(ack.ranges.len(), MAX_ACK_RANGES);
        let expected: Vec<(u64, u64)> = (0..MAX_ACK_RANGES as u64)
            .rev()
            .map(|i| (40 - 2 * i, 40 - 2 * i))
            .collect();
        assert_eq!(ack.ranges, expected);
    }

    /// At `a`'s next timeout, what it resends; then, once `b` received that and its ack
    /// came back, what `a` finds due at once (sequence numbers).
    fn answer_the_first_timeout(a: &mut Channel, b: &mut Channel) -> (Vec<u64>, Vec<u64>) {
        let deadline = a.next_timeout().unwrap();
        a.on_timeout(deadline);
        let resent: Vec<Data> = std::iter::from_fn(|| a.poll_data(deadline)).collect();
        for d in &resent {
            b.on_data(d.clone(), deadline + 500);
        }
        a.on_ack(&b.take_pending_ack(deadline + 500).unwrap(), deadline + 1_000);
        let now = deadline + 1_000;
        let due = std::iter::from_fn(|| a.poll_data(now)).map(|d| d.seq).collect();
        (resent.iter().map(|d| d.seq).collect(), due)
    }

    /// Empties `a`'s pacer bucket at `now_us`, after letting it refill until then; what
    /// the pacer said of a one-byte datagram at that point.
    fn spend_the_pacer_at(a: &mut Channel, now_us: u64) -> Option<u64> {
        let (window, srtt, fragment) = (
            a.congestion.window(),
            a.rtt.srtt_us(),
            a.limits.max_fragment,
        );
        a.pacer.on_sent(usize::MAX);
        let delay = a.pacer.delay(now_us, 1, window, srtt, fragment);
        a.pacer.on_sent(usize::MAX);
        delay
    }

    /// Sends `n` one-byte messages from `a` at time 0 and returns them, undelivered.
    fn send_burst(a: &mut Channel, n: u8) -> Vec<Data> {
        send_burst_at(a, n, 0)
    }

    /// Sends `n` one-byte messages from `a` at `now_us` and returns them, undelivered.
    /// Two channels whose first exchange, at time 0, measured the round trip.
    fn channels_with_a_measured_round_trip() -> (Channel, Channel) {
        let (mut a, mut b) = (Channel::new(limits()), Channel::new(limits()));
        assert!(a.send_message(&[0]));
        pump(&mut a, &mut b, 0, |_| false);
        (a, b)
    }

    fn send_burst_at(a: &mut Channel, n: u8, now_us: u64) -> Vec<Data> {
        for i in 0..n {
            assert!(a.send_message(&[i]));
        }
        std::iter::from_fn(|| a.poll_data(now_us)).collect()
    }

    #[test]
    fn a_timeout_resends_only_the_oldest_datagram_of_a_slow_peer() {
        let (mut a, mut b) = (Channel::new(limits()), Channel::new(limits()));
        let burst = send_burst(&mut a, 8);
        assert_eq!(burst.len(), 8);
        // The peer is busy past the timeout: everything times out at once.
        let deadline = a.next_timeout().unwrap();
        a.on_timeout(deadline);
        let resent: Vec<Data> = std::iter::from_fn(|| a.poll_data(deadline)).collect();
        assert_eq!(resent.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![1]);
        // Then it reads its backlog and the retransmission, and answers.
        for d in burst.into_iter().chain(resent) {
            b.on_data(d, deadline + 1);
        }
        a.on_ack(&b.take_ack(deadline + 1).unwrap(), deadline + 2);
        assert!(a.is_idle());
        assert_eq!(a.stats().retransmits, 1);
    }

    #[test]
    fn datagrams_that_waited_behind_a_retransmission_are_resent_if_lost() {
        let (mut a, mut b) = (Channel::new(limits()), Channel::new(limits()));
        let burst = send_burst(&mut a, 4);
        // The last three are lost; the first is merely late.
        let mut now = a.next_timeout().unwrap();
        a.on_timeout(now);
        let resent: Vec<Data> = std::iter::from_fn(|| a.poll_data(now)).collect();
        assert_eq!(resent.len(), 1);
        b.on_data(burst[0].clone(), now + 1);
        a.on_ack(&b.take_pending_ack(now + 1).unwrap(), now + 2);
        let mut delivered = 1;
        for _ in 0..10 {
            if a.is_idle() {
                break;
            }
            now = a.next_timeout().unwrap();
            a.on_timeout(now);
            delivered += pump(&mut a, &mut b, now, |_| false).len();
        }
        assert!(a.is_idle(), "lost datagrams were never resent");
        assert_eq!(delivered, 4);
        assert_eq!(a.stats().given_up, 0);
    }

    #[test]
    fn a_lost_tail_is_resent_at_once_when_the_peer_answers_the_first_retransmission() {
        let (mut a, mut b) = channels_with_a_measured_round_trip();
        // The last four datagrams of a burst are lost: nothing acknowledged lies past
        // them to show the gaps.
        let burst = send_burst_at(&mut a, 6, 1_000);
        for d in &burst[..2] {
            b.on_data(d.clone(), 1_500);
        }
        a.on_ack(&b.take_pending_ack(1_500).unwrap(), 2_000);
        // The peer answers the retransmission, and nothing else: it holds nothing more,
        // so what was sent before the retransmission is lost.
        let (resent, tail) = answer_the_first_timeout(&mut a, &mut b);
        assert_eq!(resent, vec![4]);
        assert_eq!(tail, vec![5, 6, 7], "each waited for a timeout of its own");
    }

    #[test]
    fn a_datagram_whose_retransmission_went_unanswered_is_resent_twice() {
        let mut a = Channel::new(limits());
        assert!(a.send_message(&[1]));
        assert!(a.poll_data(0).is_some());
        let mut now = a.next_timeout().unwrap();
        a.on_timeout(now);
        let first: Vec<u64> = std::iter::from_fn(|| a.poll_data(now)).map(|d| d.seq).collect();
        assert_eq!(first, vec![1], "a first loss is resent once");
        // The retransmission or its ack was lost too: the path loses in at least one
        // direction, and a second copy makes a third failure in a row much rarer.
        now = a.next_timeout().unwrap();
        a.on_timeout(now);
        let second: Vec<u64> = std::iter::from_fn(|| a.poll_data(now)).map(|d| d.seq).collect();
        assert_eq!(second, vec![1, 1]);
        assert_eq!(a.stats().retransmits, 3);
    }

    #[test]
    fn a_second_copy_held_by_the_pacer_goes_when_the_pacer_lets_it() {
        // A measured round trip: the pacer paces only then.
        let (mut a, _) = channels_with_a_measured_round_trip();
        assert!(a.send_message(&[1]));
        assert!(a.poll_data(1_000).is_some());
        let mut now = 0;
        for _ in 0..2 {
            now = a.next_timeout().unwrap();
            a.on_timeout(now);
            a.poll_data(now).unwrap();
        }
        // The second retransmission went; the pacer's bucket is spent before its copy.
        spend_the_pacer_at(&mut a, now);
        assert!(a.poll_data(now).is_none(), "held by the pacer");
        let released = a.paced_until.unwrap();
        assert!(released < a.deadlines.first().unwrap().0);
        assert_eq!(a.next_timeout(), Some(released), "the pacer's hold is a deadline");
        assert_eq!(a.poll_data(released).map(|d| d.seq), Some(2));
    }

    #[test]
    fn a_retransmission_waiting_for_the_pacer_leaves_no_deadline_in_the_past() {
        let (mut a, mut b) = (Channel::new(limits()), Channel::new(limits()));
        // A round trip of 50 ms measured, so the pacer holds datagrams back.
        assert!(a.send_message(&[1]));
        b.on_data(a.poll_data(0).unwrap(), 0);
        a.on_ack(&b.take_pending_ack(0).unwrap(), 50_000);
        // A datagram lost; at its timeout, the pacer's bucket has just been spent.
        assert!(a.send_message(&[2]));
        let lost = a.poll_data(50_000).unwrap();
        let timeout = a.deadlines.first().unwrap().0;
        assert_eq!(spend_the_pacer_at(&mut a, timeout), None);
        a.on_timeout(timeout);
        assert!(a.poll_data(timeout).is_none(), "held by the pacer");
        // The retransmission's deadline has passed: the pacer's hold is the one left.
        let next = a.next_timeout().unwrap();
        assert!(next > timeout, "a deadline at {next} left standing at {timeout}");
        assert_eq!(a.poll_data(next).map(|d| d.seq), Some(lost.seq));
    }
}
