//! What this node exchanges with one peer incarnation: the reliable channel and the
//! anti-entropy state. Both belong to a session with one run of the peer, so both are
//! reset together when the peer restarts.

use crate::config::Config;
use crate::sync::PeerSync;
use crate::time::us;
use crate::transport::{Channel, ChannelLimits, ReassemblyBudget, MAX_ACK_RANGES, MIN_FRAGMENT};
use crate::wire::HEADER_LEN;

/// Upper bound of a packet's envelope around its frames: two incarnations as varints of
/// up to 10 bytes each, the frame count and tags, and an ack's cumulative number.
const PACKET_ENVELOPE_BYTES: usize = 48;
/// Upper bound of one selective-ack range: two sequence numbers as varints, with slack.
const ACK_RANGE_BYTES: usize = 22;
/// Upper bound of a data frame's fields besides its bytes: sequence number and message
/// id (varints of up to 10 bytes), fragment index and count (up to 5), the length prefix.
const DATA_FIELDS_BYTES: usize = 40;
/// Room kept in each datagram besides a fragment's bytes, so that a fragment with a
/// piggybacked ack of the most ranges still fits `max_datagram_size`.
pub(crate) const DATAGRAM_OVERHEAD: usize =
    HEADER_LEN + PACKET_ENVELOPE_BYTES + MAX_ACK_RANGES * ACK_RANGE_BYTES + DATA_FIELDS_BYTES;

/// Per-peer session state.
#[derive(Debug)]
pub(crate) struct Link {
    /// Reliable delivery to and from the peer.
    pub channel: Channel,
    /// Anti-entropy with the peer.
    pub sync: PeerSync,
}

impl Link {
    /// A link with no session yet.
    pub fn new(limits: &ChannelLimits) -> Link {
        Link {
            channel: Channel::new(limits.clone()),
            sync: PeerSync::default(),
        }
    }

    /// Starts a session with a new incarnation of the peer.
    pub fn reset_session(&mut self, limits: &ChannelLimits) {
        self.channel = Channel::new(limits.clone());
        self.sync.reset_session();
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

    #[test]
    fn a_full_fragment_with_the_largest_ack_fits_a_datagram() {
        let config = Config::new("n", 0);
        let limits = channel_limits(&config);
        let packet = Packet {
            src_inc: u64::MAX,
            dst_inc: u64::MAX,
            frames: vec![
                Frame::Ack(Ack {
                    cumulative: u64::MAX,
                    ranges: vec![(u64::MAX, u64::MAX); MAX_ACK_RANGES],
                }),
                Frame::Data(Data {
                    seq: u64::MAX,
                    msg_id: u64::MAX,
                    frag: u32::MAX,
                    frags: u32::MAX,
                    bytes: vec![0xff; limits.max_fragment],
                }),
            ],
        };
        let datagram = wire::encode_packet(u32::MAX, &packet);
        assert!(
            datagram.len() <= config.max_datagram_size,
            "{} > {}",
            datagram.len(),
            config.max_datagram_size
        );
    }
}
