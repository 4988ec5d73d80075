//! What this node exchanges with one peer incarnation: the reliable channel and the
//! anti-entropy state. Both belong to a session with one run of the peer, so both are
//! reset together when the peer restarts.
//!
//! Both ends of a channel must start it afresh together, or one side's sequence numbers
//! fall outside the other's window (or inside it, as duplicates) and data is lost
//! silently. So each end names its session with a random number carried in every packet
//! (`src_session`, and `dst_session` for the peer's as last seen). A node that starts a
//! link afresh (a new peer, a forgotten and re-admitted one, a restart) picks a new
//! session; its peer, seeing a new session that does not know its own, starts its
//! channel afresh too but keeps its session name, so the exchange settles at once.
//! Packets naming an earlier session of this node are stragglers: their reliable frames
//! are dropped.
//!
//! Once the peer has named this node's session back (it receives what this node sends,
//! so the session is its), the session is *confirmed*, and a packet may start it afresh
//! only by naming this node's session too. A packet that names a new session of the peer
//! but none of this node's, or no session at all, is what an attacker who spoofs the
//! peer's address without seeing its traffic can send: its reliable frames are dropped
//! and the channel goes on. The peer that really started afresh learns this node's
//! session from the next packet it gets (it names the peer's earlier session, but the
//! peer's own is not confirmed yet), names it back, and the exchange settles one round
//! trip later.

use crate::congestion::INITIAL_WINDOW_DATAGRAMS;
use crate::config::Config;
use crate::messages::MessageOrder;
use crate::path::PathSize;
use crate::resend::{WriteKind, WritesInFlight};
use crate::seal::SEAL_OVERHEAD;
use crate::sync::{EncodedDelta, PeerSync};
use crate::time::us;
use crate::transport::{Channel, ChannelLimits, ReassemblyBudget, MIN_FRAGMENT};
use crate::wire::HEADER_LEN;

/// Upper bound of a packet's envelope around its frames: the sender's incarnation (8
/// bytes), the receiver's as a varint of up to 10, two sessions of 4, the frame count (up
/// to 3 bytes), an ack's tag, cumulative number (up to 10) and range count, with a byte
/// to spare.
const PACKET_ENVELOPE_BYTES: usize = 42;
/// Upper bound of one selective-ack range: two sequence numbers as varints of up to 10.
const ACK_RANGE_BYTES: usize = 20;
/// Upper bound of an ack's delay, a varint.
const ACK_DELAY_BYTES: usize = 10;
/// Upper bound of a data frame's fields besides its bytes: its tag, sequence number and
/// message id (varints of up to 10 bytes), fragment index and count (up to 5), the length
/// prefix (up to 3), with slack.
const DATA_FIELDS_BYTES: usize = 40;
/// The most ranges of an ack that rides on a datagram of data; an ack naming more gaps
/// goes in a datagram of its own. Room for the most an ack can name, kept in every
/// datagram, left them a seventh emptier, where only a lossy path makes acks name more
/// than a gap or two.
pub const PIGGYBACK_ACK_RANGES: usize = 2;
/// Room kept in each datagram besides a fragment's bytes, so that a fragment with a
/// piggybacked ack still fits `max_datagram_size`, sealed or not (the seal's room is kept
/// in plaintext meshes too, so a key installed at run time never makes a datagram too
/// large).
pub(crate) const DATAGRAM_OVERHEAD: usize = HEADER_LEN
    + SEAL_OVERHEAD
    + PACKET_ENVELOPE_BYTES
    + PIGGYBACK_ACK_RANGES * ACK_RANGE_BYTES
    + ACK_DELAY_BYTES
    + DATA_FIELDS_BYTES;

/// Upper bound of a [`Frame::Settled`](crate::wire::Frame::Settled): its tag and a
/// sequence number as a varint of up to 10 bytes.
pub(crate) const SETTLED_FRAME_BYTES: usize = 11;

/// What a data frame of `bytes` bytes takes of a packet's room (see [`packet_data_room`]).
pub(crate) fn data_frame_cost(bytes: usize) -> usize {
    bytes + DATA_FIELDS_BYTES
}

/// Room for data frames in one datagram whose fragments are at most `max_fragment`
/// bytes: what one full fragment takes. Small fragments to one peer share a datagram
/// while their [`data_frame_cost`]s fit it; the rest of the datagram is kept for the
/// header, the seal, the envelope and an ack of the most ranges, as for a full fragment.
pub(crate) fn packet_data_room(max_fragment: usize) -> usize {
    data_frame_cost(max_fragment)
}

/// Per-peer session state.
#[derive(Debug)]
pub(crate) struct Link {
    /// Reliable delivery to and from the peer.
    pub channel: Channel,
    /// Anti-entropy with the peer.
    pub sync: PeerSync,
    /// Order of user messages both ways; starts afresh with the channel.
    pub messages: MessageOrder,
    /// This node's name for the session (never 0).
    pub local_session: u32,
    /// The peer's name for it, once seen (0 before).
    pub remote_session: u32,
    /// Whether the peer has named `local_session` under `remote_session` (see the module
    /// docs).
    confirmed: bool,
    /// Whether the peer's latest datagram naming `local_session` said it reads
    /// compressed payloads.
    pub reads_compressed: bool,
    /// Whether the peer answered a probe of this session: it then holds this node's id
    /// (every probe carries it), and heartbeats to it leave the id out.
    pub knows_our_id: bool,
    /// The channel's id for the last sync request queued to the peer.
    request_queued: Option<u64>,
    /// The ranges of writes each message of writes on the channel covers (see `resend`).
    pub writes_in_flight: WritesInFlight,
    /// How large the datagrams to the peer may be. It outlives sessions: a peer that
    /// restarts is still at the end of the same path.
    pub path: PathSize,
}

/// What a packet's sessions say about the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SessionCheck {
    /// The current session (or the packet names none).
    Current,
    /// The packet belongs to an earlier session of this node: drop its reliable frames.
    Stale,
    /// The peer started afresh without knowing this session: the channel was started
    /// afresh to match, and what was in flight is gone (a sync repairs it).
    PeerRestarted,
    /// The packet names a session of the peer other than the confirmed one, or none,
    /// without naming this node's: drop its reliable frames, change nothing.
    Unproven,
}

impl Link {
    /// A link starting a session named `session` (non-zero).
    pub fn new(limits: &ChannelLimits, session: u32) -> Link {
        let (base, probed) = limits.datagram_sizes;
        Link {
            channel: Channel::new(limits.clone()),
            sync: PeerSync::default(),
            messages: MessageOrder::new(limits.reassembly.clone()),
            local_session: session.max(1),
            remote_session: 0,
            confirmed: false,
            reads_compressed: false,
            knows_our_id: false,
            request_queued: None,
            writes_in_flight: WritesInFlight::default(),
            path: PathSize::new(base, probed),
        }
    }

    /// Starts the channel afresh, cutting fragments for the path's datagram size.
    fn restart_channel(&mut self, limits: &ChannelLimits) {
        // The path is the same: its round trip still holds (as a TCP stack keeps it
        // per destination).
        let srtt = self.channel.rtt().srtt_us();
        self.channel = Channel::new(limits.clone());
        if let Some(srtt) = srtt {
            self.channel.seed_rtt(srtt);
        }
        self.channel.set_max_fragment(self.fragment_size());
        // Its message ids start again.
        self.writes_in_flight = WritesInFlight::default();
    }

    /// The largest fragment a datagram to the peer carries.
    pub fn fragment_size(&self) -> usize {
        fragment_size(self.path.datagram_size())
    }

    /// Whether the peer has named this node's session back: it reads what this node
    /// sends in it.
    pub fn is_confirmed(&self) -> bool {
        self.confirmed
    }

    /// Starts a new session named `session`, with a new incarnation of the peer.
    pub fn reset_session(&mut self, limits: &ChannelLimits, session: u32) {
        self.restart_channel(limits);
        self.messages = MessageOrder::new(limits.reassembly.clone());
        self.sync.reset_session();
        self.local_session = session.max(1);
        self.remote_session = 0;
        self.confirmed = false;
        // The new run says again whether it reads compressed payloads, and learns this
        // node's id again.
        self.reads_compressed = false;
        self.knows_our_id = false;
        self.request_queued = None;
    }

    /// Queues deltas of writes to the peer, remembering what each covers (see `resend`);
    /// `false` if the queue filled up before all were queued.
    pub fn queue_deltas(&mut self, deltas: &[EncodedDelta]) -> bool {
        deltas.iter().all(|delta| {
            let id = self.channel.next_message_id();
            let queued = self.channel.send_message(&delta.bytes);
            if queued {
                self.writes_in_flight
                    .record(id, WriteKind::Delta, delta.covered.clone());
            }
            queued
        })
    }

    /// Queues a sync request (or the answer to one) to the peer; `false` if the queue
    /// was full.
    pub fn send_request(&mut self, message: &[u8]) -> bool {
        let id = self.channel.next_message_id();
        let queued = self.channel.send_message(message);
        if queued {
            self.request_queued = Some(id);
        }
        queued
    }

    /// Whether the last sync request queued to the peer has not started out yet: a
    /// channel held up by loss would otherwise pile up a request each round, every one
    /// of them queued ahead of the data they ask for, and the newest says all the
    /// older ones do.
    pub fn request_waiting(&self) -> bool {
        self.request_queued
            .is_some_and(|id| self.channel.waiting_to_start(id))
    }

    /// How many bytes of a stream to queue to the peer: `refill_below`, or while this node
    /// reads compressed payloads and does not yet know whether the peer does (it has not
    /// named this session back), no more than the first round trip sends. The rest then
    /// waits to be packed (see `compress`): a stream to a joiner used to go its first
    /// 128 KiB uncompressed.
    pub fn stream_room(&self, refill_below: usize, compresses: bool, datagram: usize) -> usize {
        if compresses && !self.confirmed {
            refill_below.min(INITIAL_WINDOW_DATAGRAMS * datagram)
        } else {
            refill_below
        }
    }

    /// Its sessions, channel and sync state in one line, for diagnostics.
    #[cfg(any(test, feature = "test-util"))]
    pub fn summary(&self) -> String {
        format!(
            "sessions {}/{} confirmed {} partial {} ordered {} next {:?} channel {:?} sync fp {:?} digest {:?} due {:?} last {:?} asked {:?} stream {:?}",
            self.local_session,
            self.remote_session,
            self.confirmed,
            self.channel.reassembly_bytes(),
            self.messages.buffered_bytes(),
            self.channel.next_timeout(),
            self.channel.stats(),
            self.sync.fingerprint,
            self.sync.digest.as_ref().map(|d| d.len()),
            self.sync.due_us,
            self.sync.last_us,
            self.sync.asked,
            self.sync.stream.len(),
        )
    }

    /// Checks the sessions a packet from the peer names (see the module docs).
    pub fn check_sessions(
        &mut self,
        src_session: u32,
        dst_session: u32,
        limits: &ChannelLimits,
    ) -> SessionCheck {
        let names_ours = dst_session == self.local_session;
        if dst_session != 0 && !names_ours {
            // A straggler, or the peer started afresh and still names this node's earlier
            // session: until confirmed, its session is taken so that the next packets name
            // it and the peer can name this node's back.
            if src_session != 0 && !self.confirmed {
                self.remote_session = src_session;
            }
            return SessionCheck::Stale;
        }
        if src_session == 0 {
            // Every packet of a link names the sender's session: reliable frames without
            // one are only taken before the peer's session is known.
            return if self.remote_session == 0 {
                SessionCheck::Current
            } else {
                SessionCheck::Unproven
            };
        }
        if src_session == self.remote_session {
            self.confirmed |= names_ours;
            return SessionCheck::Current;
        }
        if self.confirmed && !names_ours {
            return SessionCheck::Unproven;
        }
        let known = self.remote_session != 0;
        self.remote_session = src_session;
        self.confirmed = names_ours;
        if !known {
            return SessionCheck::Current;
        }
        // The peer has a new session. If it already names ours, it restarted its side to
        // match ours; otherwise its channel is new and ours must be too.
        self.restart_channel(limits);
        self.request_queued = None;
        self.messages = MessageOrder::new(limits.reassembly.clone());
        // Its new session may come with a member table that lost this node's id.
        self.knows_our_id = false;
        SessionCheck::PeerRestarted
    }
}

/// Largest fragment payload cut for datagrams of `max_datagram_size` bytes.
pub(crate) fn fragment_size(max_datagram_size: usize) -> usize {
    max_datagram_size
        .saturating_sub(DATAGRAM_OVERHEAD)
        .max(MIN_FRAGMENT)
}

/// The transport's limits for `config`, with a fresh reassembly budget: the engine calls
/// it once, and every channel it creates shares that budget.
pub(crate) fn channel_limits(config: &Config) -> ChannelLimits {
    ChannelLimits {
        initial_rto_us: us(config.initial_rto),
        min_rto_us: us(config.min_rto),
        max_rto_us: us(config.max_rto),
        max_retries: config.max_retries,
        min_give_up_us: us(config.peer_timeout),
        max_fragment: fragment_size(config.max_datagram_size),
        datagram_sizes: (config.max_datagram_size, config.max_probed_datagram_size),
        max_in_flight: config.max_in_flight,
        max_queued: config.max_reassembly.max(4 * config.max_in_flight),
        reassembly: ReassemblyBudget::new(config.max_reassembly),
        reassembly_timeout_us: us(config.reassembly_timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, Ack, Data, Frame, Packet};

    fn limits() -> ChannelLimits {
        channel_limits(&Config::new("n", 0))
    }

    #[test]
    fn both_ends_start_afresh_together_and_settle() {
        let limits = limits();
        let mut a = Link::new(&limits, 10);
        let mut b = Link::new(&limits, 20);
        // First contact: each adopts the other's session, and confirms it once named back.
        assert_eq!(b.check_sessions(10, 0, &limits), SessionCheck::Current);
        assert_eq!(a.check_sessions(20, 10, &limits), SessionCheck::Current);
        assert_eq!(b.check_sessions(10, 20, &limits), SessionCheck::Current);
        // `a` starts afresh (it forgot `b` and re-admitted it).
        a = Link::new(&limits, 11);
        assert_eq!(
            b.check_sessions(11, 0, &limits),
            SessionCheck::Unproven,
            "a new session naming none of b's proves nothing"
        );
        assert_eq!(
            a.check_sessions(20, 10, &limits),
            SessionCheck::Stale,
            "b's packets name a's old session"
        );
        assert_eq!(a.remote_session, 20, "but a learns b's from them");
        assert_eq!(b.check_sessions(11, 20, &limits), SessionCheck::PeerRestarted);
        assert_eq!(b.local_session, 20, "b keeps its name, so nothing bounces back");
        assert_eq!(a.check_sessions(20, 11, &limits), SessionCheck::Current);
        assert_eq!(b.check_sessions(11, 20, &limits), SessionCheck::Current);
    }

    #[test]
    fn a_channel_started_afresh_keeps_the_round_trip_of_the_path() {
        let limits = limits();
        let mut a = Link::new(&limits, 10);
        a.channel.seed_rtt(2_000);
        a.reset_session(&limits, 11);
        assert_eq!(a.channel.rtt().srtt_us(), Some(2_000));
        // A link that never measured one starts a new session without one.
        let mut b = Link::new(&limits, 20);
        b.reset_session(&limits, 21);
        assert_eq!(b.channel.rtt().srtt_us(), None);
    }

    #[test]
    fn a_confirmed_session_is_restarted_only_by_a_packet_naming_it() {
        let limits = limits();
        let mut b = Link::new(&limits, 20);
        assert_eq!(b.check_sessions(10, 20, &limits), SessionCheck::Current);
        // Blind packets: a new session of the peer, or none, naming none of b's.
        assert_eq!(b.check_sessions(99, 0, &limits), SessionCheck::Unproven);
        assert_eq!(b.check_sessions(0, 0, &limits), SessionCheck::Unproven);
        assert_eq!(b.check_sessions(99, 7, &limits), SessionCheck::Stale);
        assert_eq!(b.remote_session, 10, "the confirmed session stands");
        assert_eq!(b.check_sessions(10, 0, &limits), SessionCheck::Current);
    }

    #[test]
    fn packets_without_sessions_change_nothing() {
        let limits = limits();
        let mut a = Link::new(&limits, 10);
        assert_eq!(a.check_sessions(0, 0, &limits), SessionCheck::Current);
        assert_eq!(a.remote_session, 0);
    }

    fn largest_packet(limits: &ChannelLimits) -> Packet {
        Packet {
            src_inc: u64::MAX,
            dst_inc: u64::MAX,
            src_session: u32::MAX,
            dst_session: u32::MAX,
            frames: vec![
                Frame::Ack(Ack {
                    cumulative: u64::MAX,
                    ranges: vec![(u64::MAX, u64::MAX); PIGGYBACK_ACK_RANGES],
                    delay_us: u64::MAX,
                }),
                Frame::Data(Data {
                    seq: u64::MAX,
                    msg_id: u64::MAX,
                    frag: u32::MAX,
                    frags: u32::MAX,
                    bytes: vec![0xff; limits.max_fragment],
                }),
            ],
        }
    }

    /// The fullest packet of small data frames the engine builds, with the largest ack
    /// it lets ride on data, and a [`Frame::Settled`] if `settled`.
    fn largest_coalesced_packet(
        limits: &ChannelLimits,
        frame_bytes: usize,
        settled: bool,
    ) -> Packet {
        let mut packet = largest_packet(limits);
        packet.frames.truncate(1);
        let mut used = 0;
        if settled {
            packet.frames.push(Frame::Settled(u64::MAX));
            used += SETTLED_FRAME_BYTES;
        }
        while used + data_frame_cost(frame_bytes) <= packet_data_room(limits.max_fragment) {
            used += data_frame_cost(frame_bytes);
            packet.frames.push(Frame::Data(Data {
                seq: u64::MAX,
                msg_id: u64::MAX,
                frag: u32::MAX,
                frags: u32::MAX,
                bytes: vec![0xff; frame_bytes],
            }));
        }
        packet
    }

    #[test]
    fn small_fragments_sharing_a_datagram_fit_it() {
        use crate::seal::{Key, NoncePrefix, Seal};
        for size in [1200, 9000, crate::config::MAX_DATAGRAM_SIZE] {
            let mut config = Config::new("n", 0);
            config.max_datagram_size = size;
            let limits = channel_limits(&config);
            let key = Key::from_bytes(&[7; 32]).unwrap();
            let mut seal = Seal::new("n", &[key], NoncePrefix([1; 16]));
            for (frame_bytes, settled) in [0, 1, 17, 100, limits.max_fragment / 2]
                .into_iter()
                .flat_map(|b| [(b, false), (b, true)])
            {
                let packet = largest_coalesced_packet(&limits, frame_bytes, settled);
                let plain = wire::encode_packet(u32::MAX, &packet);
                let sealed = seal.seal_packet(u32::MAX, &packet);
                assert!(plain.len() <= size, "{} > {size}", plain.len());
                assert!(sealed.len() <= size, "{} > {size}", sealed.len());
            }
        }
    }

    #[test]
    fn a_full_fragment_with_the_largest_piggybacked_ack_fits_a_datagram() {
        let config = Config::new("n", 0);
        let limits = channel_limits(&config);
        let datagram = wire::encode_packet(u32::MAX, &largest_packet(&limits));
        assert!(
            datagram.len() <= config.max_datagram_size,
            "{} > {}",
            datagram.len(),
            config.max_datagram_size
        );
    }

    #[test]
    fn a_full_sealed_fragment_with_the_largest_piggybacked_ack_fits_a_datagram() {
        use crate::seal::{Key, NoncePrefix, Seal};
        for size in [1200, 9000, crate::config::MAX_DATAGRAM_SIZE] {
            let mut config = Config::new("n", 0);
            config.max_datagram_size = size;
            let limits = channel_limits(&config);
            let key = Key::from_bytes(&[7; 32]).unwrap();
            let mut seal = Seal::new("n", &[key], NoncePrefix([1; 16]));
            let datagram = seal.seal_packet(u32::MAX, &largest_packet(&limits));
            assert!(datagram.len() <= size, "{} > {size}", datagram.len());
        }
    }
}
