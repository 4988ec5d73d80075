//! What this node exchanges with one peer incarnation: the reliable channel and the
//! anti-entropy state. Both belong to a session with one run of the peer, so both are
//! reset together when the peer restarts.

use crate::config::Config;
use crate::seal::SEAL_OVERHEAD;
use crate::sync::PeerSync;
use crate::time::us;
use crate::transport::{Channel, ChannelLimits, MAX_ACK_RANGES};
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
/// piggybacked ack of the most ranges still fits `max_datagram_size`, sealed or not (the
/// seal's room is kept in plaintext meshes too, so a key installed at run time never
/// makes a datagram too large).
pub(crate) const DATAGRAM_OVERHEAD: usize = HEADER_LEN
    + SEAL_OVERHEAD
    + PACKET_ENVELOPE_BYTES
    + MAX_ACK_RANGES * ACK_RANGE_BYTES
    + DATA_FIELDS_BYTES;
/// Smallest fragment, whatever the configured datagram size.
const MIN_FRAGMENT: usize = 64;

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

/// The transport's limits for `config`.
pub(crate) fn channel_limits(config: &Config) -> ChannelLimits {
    ChannelLimits {
        initial_rto_us: us(config.initial_rto),
        min_rto_us: us(config.min_rto),
        max_rto_us: us(config.max_rto),
        max_retries: config.max_retries,
        min_give_up_us: us(config.peer_timeout),
        max_fragment: config
            .max_datagram_size
            .saturating_sub(DATAGRAM_OVERHEAD)
            .max(MIN_FRAGMENT),
        max_in_flight: config.max_in_flight,
        max_queued: config.max_reassembly.max(4 * config.max_in_flight),
        max_reassembly: config.max_reassembly,
        reassembly_timeout_us: us(config.reassembly_timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, Ack, Data, Frame, Packet};

    fn largest_packet(limits: &ChannelLimits) -> Packet {
        Packet {
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
        }
    }

    #[test]
    fn a_full_fragment_with_the_largest_ack_fits_a_datagram() {
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
    fn a_full_sealed_fragment_with_the_largest_ack_fits_a_datagram() {
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
