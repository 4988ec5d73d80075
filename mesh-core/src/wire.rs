//! The wire format: a fixed 16-byte header, then a postcard-encoded [`Packet`].
//!
//! ```text
//!  0      2     3     4      5      6            10         12          16
//!  +------+-----+-----+------+------+------------+----------+-----------+-----------
//!  |magic |ver  |kind |flags |rsvd  | cluster id | pay. len | CRC-32    | payload...
//!  | "MS" | 6   | 1   | 0-7  | 0    | u32 BE     | u16 BE   | u32 BE    | postcard
//!  +------+-----+-----+------+------+------------+----------+-----------+-----------
//! ```
//!
//! The CRC covers the first 12 header bytes and the payload. `kind` 1 is a plain packet;
//! the `flags` bit [`FLAG_SEALED`] marks a payload sealed with the mesh's keyring
//! (authenticated encryption; its layout is in the `seal` module), [`FLAG_COMPRESSED`] a
//! zstd-compressed payload (the `compress` module). [`decode_packet`] refuses sealed
//! datagrams; the engine opens them through the `seal` module.
//! Decoding checks every length before reading; a bad datagram yields a [`DropReason`].

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::value::Value;
use crate::version::Digest;

pub(crate) mod entries;

/// First two bytes of every datagram.
pub const MAGIC: [u8; 2] = *b"MS";
/// Protocol version spoken. Version 2 added address verification (`Challenge` and
/// `Response` frames); version 1 nodes cannot join a version 2 mesh. Version 3 added the
/// expiry of writes with a TTL ([`WireEntry::expires`]) and user messages. Version 4 made
/// membership SWIM: heartbeats became probes and acks, with indirect probes
/// ([`Frame::PingReq`], [`Frame::IndirectAck`]) and piggybacked membership changes
/// ([`Frame::Rumors`]). Version 5 lets a sync request say what to stream back
/// ([`SyncRequest::want`]), so a lagging node is sent the state by one peer, and added
/// compressed payloads ([`FLAG_COMPRESSED`], [`FLAG_ACCEPTS_COMPRESSED`]). Version 6
/// derives a run's origin id from its node id and incarnation (the `origin` module)
/// instead of using the incarnation, which two nodes starting in the same millisecond
/// could share; the frames are unchanged. Version 7 has a heartbeat say how many members
/// its sender can name ([`Heartbeat::members`]), so a node that knows fewer is told more;
/// its acks state how long the receiver held them ([`Ack::delay_us`]): an ack now waits
/// a moment for company (the `transport` module), and the sender takes that wait off its
/// round-trip sample; and it added the broadcast tree's messages ([`Message::Gossip`],
/// [`Message::IHave`], [`Message::Graft`], [`Message::Prune`]; see the `broadcast` module).
/// Version 8 adds the tree's [`Message::Beacon`]. Version 9 makes the idle probe
/// smaller: incarnations, sessions and fingerprints, random in their low bits, are
/// fixed-width instead of varints (which spent a byte more on each), and a packet that
/// names the receiver's session leaves its incarnation out ([`Packet::dst_inc`] 0): a
/// session belongs to one run, so it names the run too. Its heartbeats leave the
/// sender's node id out once the receiver holds it ([`Heartbeat::node_id`]). Version 10
/// adds [`Message::Packed`]: a stream's or a burst's delta compressed whole before it is
/// cut into datagrams. Version 11 sends a group's entries column by column
/// ([`Group::entries`]), which compresses better, and adds the path probes
/// ([`Frame::PathProbe`], [`Frame::PathAnswer`]) that let a link's datagrams grow past
/// `max_datagram_size` where the path carries them. Version 12 adds [`Frame::Settled`]:
/// data given up or withdrawn no longer leaves the receiver waiting on it. Version 13
/// sends the tree's announcements as a frame ([`Frame::IHave`]) outside the reliable
/// channel: as messages, each drew an ack of its own, and announcements and their acks
/// made close to a third of a 100-node mesh's datagrams during a burst.
pub const VERSION: u8 = 13;
/// Header length in bytes.
pub const HEADER_LEN: usize = 16;
/// `kind` of a plain packet of frames.
pub const KIND_PACKET: u8 = 1;
/// Flag of sealed (encrypted and authenticated) payloads.
pub const FLAG_SEALED: u8 = 0x01;
/// Flag of a payload compressed with zstd (see the `compress` module); under a seal, the
/// plaintext is what is compressed.
pub const FLAG_COMPRESSED: u8 = 0x02;
/// Flag set by a sender that reads compressed payloads: peers compress to it only then.
pub const FLAG_ACCEPTS_COMPRESSED: u8 = 0x04;
/// Every flag this version knows.
const KNOWN_FLAGS: u8 = FLAG_SEALED | FLAG_COMPRESSED | FLAG_ACCEPTS_COMPRESSED;

/// Why a datagram was dropped on receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Shorter than the header or than its declared length.
    Truncated,
    /// Not our magic number.
    BadMagic,
    /// Unknown protocol version, kind or flags.
    BadVersion,
    /// Checksum mismatch.
    BadChecksum,
    /// Another cluster's datagram.
    WrongCluster,
    /// Payload does not decode.
    Malformed,
    /// Not sealed by a keyholder: plaintext to a keyed node, sealed to a node without
    /// keys, or not opening under any installed key.
    Unauthenticated,
    /// Sealed by a keyholder, but its nonce was already accepted (a replay) or is too
    /// old to tell.
    Replayed,
}

/// One datagram's content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Packet {
    /// Sender's incarnation: changes when the sender restarts.
    #[serde(with = "postcard::fixint::le")]
    pub src_inc: u64,
    /// Receiver's incarnation as the sender knows it: 0 if unknown, and 0 when
    /// `dst_session` names the receiver's session, which already says which run of the
    /// receiver the packet is for.
    pub dst_inc: u64,
    /// The sender's session with the receiver: changes when the sender starts its
    /// channel with the receiver afresh (0: no session, e.g. a challenge).
    #[serde(with = "postcard::fixint::le")]
    pub src_session: u32,
    /// The receiver's session as the sender knows it (0 if unknown).
    #[serde(with = "postcard::fixint::le")]
    pub dst_session: u32,
    /// The frames.
    pub frames: Vec<Frame>,
}

/// A unit of meaning inside a packet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// Acknowledges reliable datagrams.
    Ack(Ack),
    /// Membership: liveness, identity, state fingerprint and gossip. Not retransmitted.
    Heartbeat(Heartbeat),
    /// One fragment of a reliable message. Retransmitted until acknowledged.
    Data(Data),
    /// "Prove you receive at your address": the receiver answers with a `Response`
    /// echoing the nonce. Sent to addresses not verified yet (see `verify`).
    Challenge(u64),
    /// Echoes a `Challenge`'s nonce.
    Response(u64),
    /// The address the sender asks to be gossiped at (its `advertise_addr`), sent beside
    /// each of its heartbeats; a heartbeat without one withdraws it. Added after version
    /// 2 without a version change: a node without `advertise_addr` never sends it, so
    /// it still speaks to every version 2 node, while version 2 nodes that predate this
    /// frame drop the datagrams carrying it (as `malformed`).
    Advertise(SocketAddr),
    /// SWIM's ping-req: "probe the member with this node id for me", sent when a direct
    /// probe went unanswered. The receiver probes it once and, if it answers, returns an
    /// [`Frame::IndirectAck`].
    PingReq(String),
    /// "The member you asked me to probe answered": its node id.
    IndirectAck(String),
    /// Membership changes, piggybacked on probes and acks (see `members::rumors`).
    Rumors(Vec<Rumor>),
    /// "Does the path carry datagrams this large?": a random number to echo in a
    /// [`Frame::PathAnswer`], and padding that makes the datagram the size probed (see
    /// the `path` module). Read only in a session the receiver shares.
    PathProbe(PathProbe),
    /// Echoes a [`Frame::PathProbe`]'s number.
    PathAnswer(#[serde(with = "postcard::fixint::le")] u64),
    /// "I send no data numbered up to this again": the sender gave up or withdrew some of
    /// it, and the receiver stops waiting for what it lacks there (see `transport`).
    /// Carried beside data, before it, until the sender's acks show the receiver moved
    /// past.
    Settled(u64),
    /// The broadcast tree's announcement to a neighbor off the tree: writes the sender
    /// holds, as `(origin, highest sequence number)` (see `broadcast`). Not
    /// retransmitted, so never acknowledged: an origin's next announcement names
    /// everything up to its newest write, and anti-entropy repairs what none names. Read
    /// only in a session the receiver shares, and at most `broadcast::MAX_ITEMS` of it.
    IHave(Vec<(u64, u64)>),
}

/// A probe of the path's datagram size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathProbe {
    /// The number to echo.
    #[serde(with = "postcard::fixint::le")]
    pub nonce: u64,
    /// Zeros that bring the datagram to the size probed.
    #[serde(with = "serde_bytes")]
    pub padding: Vec<u8>,
}

/// A membership change about one node, spread by piggybacking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rumor {
    /// The node it is about.
    pub node_id: String,
    /// Where the node is reached (its advertised address if it has one).
    pub addr: SocketAddr,
    /// The node's run (its packets' `src_inc`): a rumor about another run is stale or
    /// premature and is ignored.
    pub incarnation: u64,
    /// How many times this run refuted a suspicion of itself: a newer refutation
    /// overrides any older rumor.
    pub refutation: u32,
    /// What is said of it.
    pub state: RumorState,
    /// For a suspicion, the node id of the member that suspects (independent
    /// suspicions shorten the timeout); empty otherwise.
    pub by: String,
}

/// What a [`Rumor`] says of a node. At one refutation, later states override earlier
/// ones: alive < suspect < dead, left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RumorState {
    /// Alive (a refutation, a join or a recovery).
    Alive,
    /// Suspected of having failed.
    Suspect,
    /// Declared failed.
    Dead,
    /// Left on purpose.
    Left,
}

/// Cumulative plus selective acknowledgement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Every sequence number up to and including this one was received.
    pub cumulative: u64,
    /// Inclusive ranges received above `cumulative`, lowest first.
    pub ranges: Vec<(u64, u64)>,
    /// Microseconds between the arrival of the largest datagram acknowledged and this
    /// ack's sending (0 if unknown).
    pub delay_us: u64,
}

/// Liveness and identity announcement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Sender's node id; empty once the receiver answered a probe of the current session
    /// (it holds the id then, and an idle probe is that much smaller). Never empty in a
    /// valid configuration, so empty means "as before".
    pub node_id: String,
    /// Fingerprint of the sender's version vector: peers that differ start a sync.
    #[serde(with = "postcard::fixint::le")]
    pub fingerprint: u64,
    /// Asks the receiver to answer with a heartbeat at once (used to introduce oneself).
    pub reply: bool,
    /// How many members the sender can name: a receiver that can name more sends it
    /// more names, so two nodes that never met still hear of each other.
    pub members: u32,
    /// A few peers the sender knows alive, so the mesh discovers itself.
    pub gossip: Vec<GossipPeer>,
}

/// A peer named in gossip.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GossipPeer {
    /// Its node id.
    pub node_id: String,
    /// Its address: the one it advertises, or else the one the gossiper reaches it at
    /// (IPv4 or IPv6: postcard encodes the family, the 4 or 16 address bytes and the
    /// port; an IPv6 scope id is not carried).
    pub addr: SocketAddr,
}

/// A fragment of a reliable message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Data {
    /// Per-channel datagram sequence number (acknowledged, deduplicated).
    pub seq: u64,
    /// Per-channel message number.
    pub msg_id: u64,
    /// Index of this fragment.
    pub frag: u32,
    /// Number of fragments of the message.
    pub frags: u32,
    /// This fragment's bytes of the postcard-encoded [`Message`].
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// A reliable message between two engines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Writes, grouped by origin with the ranges they account for.
    Delta(Delta),
    /// "Here is what I have": the receiver streams back what the sender lacks.
    SyncRequest(SyncRequest),
    /// Application bytes for the receiver's `on_message` callbacks, not stored.
    User(UserMessage),
    /// Writes travelling the broadcast tree: merged like a [`Message::Delta`], and what
    /// was new forwarded on (see `broadcast`).
    Gossip(Delta),
    /// "I hold the writes of these origins up to these sequence numbers", as a reliable
    /// message. Since version 13 announcements travel as [`Frame::IHave`]; this one is
    /// still read alike, and keeps its place among the variants.
    IHave(Vec<(u64, u64)>),
    /// "Send me these writes eagerly from now on": puts the sender back on the tree and
    /// asks for the ranges `(origin, lo, hi)` it missed (none: only the first part).
    Graft(Vec<(u64, u64, u64)>),
    /// "You sent me writes I held already": takes the sender off the tree, announcing
    /// only from then on.
    Prune,
    /// The tree's beacon `(root, round)`: flooded down the tree by its root (the member
    /// with the lowest origin) after the neighbors were drawn, so that its redundant
    /// edges are pruned by a duplicate beacon rather than by the first burst of writes.
    Beacon(u64, u64),
    /// Another message, postcard-encoded and compressed with zstd as a whole (see
    /// `compress`): sent only to a peer that said it reads compressed payloads, never
    /// nested.
    Packed(serde_bytes::ByteBuf),
}

/// An application message (see `messages`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserMessage {
    /// Per-session number, from 1: the receiver delivers in this order.
    pub seq: u64,
    /// The application's bytes.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// Writes of one or more origins.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// One group per origin range.
    pub groups: Vec<Group>,
}

/// The entries the sender holds of `origin` with sequence numbers in `lo..=hi`: all of
/// them, so the receiver may account for the whole range once it merged them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The origin.
    pub origin: u64,
    /// First sequence number covered.
    pub lo: u64,
    /// Last sequence number covered.
    pub hi: u64,
    /// The entries held in that range, in sequence order, sent column by column, each
    /// sequence number and timestamp as the difference from the entry before it (the
    /// `entries` module).
    #[serde(with = "entries")]
    pub entries: Vec<WireEntry>,
}

/// One write on the wire.
#[derive(Clone, Debug, PartialEq)]
pub struct WireEntry {
    /// Origin's sequence number.
    pub seq: u64,
    /// Hybrid logical timestamp.
    pub hlc: u64,
    /// The key, shared: a key received is stored as it was decoded, and one sent out is
    /// the replica's own, so neither is copied per entry.
    pub key: Arc<str>,
    /// The value; `None` for a delete, or for a value expired at the sender.
    pub value: Option<Value>,
    /// HLC timestamp at which the value expires (a write with a TTL), if any.
    pub expires: Option<u64>,
}

impl WireEntry {
    /// Upper bound of this entry's encoded size.
    pub fn encoded_len(&self) -> usize {
        30 + self.key.len()
            + self.value.as_ref().map_or(1, Value::encoded_len)
            + if self.expires.is_some() { 11 } else { 1 }
    }
}

/// Digest exchange starting an anti-entropy round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// What the sender has: each origin's contiguous prefix.
    pub digest: Digest,
    /// Asks the receiver to send its own digest back, so the exchange goes both ways.
    pub reply: bool,
    /// What the receiver is to stream back of what the digest lacks.
    pub want: Want,
    /// The sender's number for this request in the session, from 1: a request that
    /// arrives after a later one (a retransmission, reordering) is stale, and its digest
    /// and want are not taken.
    pub number: u64,
}

/// What the sender of a [`SyncRequest`] asks to be streamed of what it lacks. The
/// receiver does as asked and waits on nothing; the sender decides, so that a node
/// lagging behind several peers is sent each write by one of them (see `feed`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Want {
    /// Everything the receiver holds beyond the digest.
    All,
    /// Only what lies above these prefixes, origin by origin (or above the digest's,
    /// where that is higher): another peer is streaming the rest.
    Above(Digest),
    /// Nothing for now: another peer was just asked, and its answer says what it will
    /// stream.
    Nothing,
}

/// Cluster id carried in every header: a CRC-32 of the cluster name.
pub fn cluster_id(name: &str) -> u32 {
    crc32fast::hash(name.as_bytes())
}

/// Encodes a packet into a plaintext datagram, uncompressed.
// The engine encodes through `seal`; tests, benches and fuzzers use this.
#[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
pub fn encode_packet(cluster: u32, packet: &Packet) -> Vec<u8> {
    // Serializing plain structs into a Vec cannot fail; an empty payload is the fallback.
    let mut out = postcard::to_extend(packet, vec![0u8; HEADER_LEN])
        .unwrap_or_else(|_| vec![0u8; HEADER_LEN]);
    let payload_len = out.len() - HEADER_LEN;
    write_header(&mut out, cluster, 0, payload_len);
    write_checksum(&mut out);
    out
}

/// A plaintext datagram of `payload` (an encoded packet, compressed if `flags` say so).
pub(crate) fn plain_datagram(cluster: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.resize(HEADER_LEN, 0);
    out.extend_from_slice(payload);
    write_header(&mut out, cluster, flags, payload.len());
    write_checksum(&mut out);
    out
}

/// A packet's postcard encoding, without header (what a sealed datagram encrypts).
pub fn encode_payload(packet: &Packet) -> Vec<u8> {
    postcard::to_allocvec(packet).unwrap_or_default()
}

/// Writes header bytes 0..12 (everything but the CRC) into `out[..HEADER_LEN]`.
pub(crate) fn write_header(out: &mut [u8], cluster: u32, flags: u8, payload_len: usize) {
    out[0..2].copy_from_slice(&MAGIC);
    out[2] = VERSION;
    out[3] = KIND_PACKET;
    out[4] = flags;
    out[5] = 0;
    out[6..10].copy_from_slice(&cluster.to_be_bytes());
    out[10..12].copy_from_slice(&(payload_len.min(u16::MAX as usize) as u16).to_be_bytes());
}

/// Writes the CRC of header bytes 0..12 and the payload into header bytes 12..16.
pub(crate) fn write_checksum(out: &mut [u8]) {
    let crc = checksum(&out[..12], &out[HEADER_LEN..]);
    out[12..16].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
fn seal_header(cluster: u32, mut out: Vec<u8>) -> Vec<u8> {
    let payload_len = out.len() - HEADER_LEN;
    write_header(&mut out, cluster, 0, payload_len);
    write_checksum(&mut out);
    out
}

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header);
    hasher.update(payload);
    hasher.finalize()
}

/// Checks a datagram's header, length, checksum and cluster; returns its flags.
pub fn check_header(cluster: u32, datagram: &[u8]) -> Result<u8, DropReason> {
    if datagram.len() < HEADER_LEN {
        return Err(DropReason::Truncated);
    }
    if datagram[0..2] != MAGIC {
        return Err(DropReason::BadMagic);
    }
    let flags = datagram[4];
    if datagram[2] != VERSION || datagram[3] != KIND_PACKET || flags & !KNOWN_FLAGS != 0 {
        return Err(DropReason::BadVersion);
    }
    let declared = u16::from_be_bytes([datagram[10], datagram[11]]) as usize;
    let payload = &datagram[HEADER_LEN..];
    if payload.len() != declared {
        return Err(DropReason::Truncated);
    }
    let crc = u32::from_be_bytes([datagram[12], datagram[13], datagram[14], datagram[15]]);
    if checksum(&datagram[..12], payload) != crc {
        return Err(DropReason::BadChecksum);
    }
    let their_cluster = u32::from_be_bytes([datagram[6], datagram[7], datagram[8], datagram[9]]);
    if their_cluster != cluster {
        return Err(DropReason::WrongCluster);
    }
    Ok(flags)
}

/// Decodes a plaintext packet payload (after [`check_header`], or once opened).
pub fn decode_payload(payload: &[u8]) -> Result<Packet, DropReason> {
    postcard::from_bytes(payload).map_err(|_| DropReason::Malformed)
}

/// Decodes a plaintext datagram, checking header, length, cluster and checksum before the
/// payload. A sealed datagram is refused as [`DropReason::Unauthenticated`]: opening it
/// takes the keyring.
// The engine opens datagrams through `seal`; tests, benches and fuzzers use this.
#[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
pub fn decode_packet(cluster: u32, datagram: &[u8]) -> Result<Packet, DropReason> {
    let flags = check_header(cluster, datagram)?;
    if flags & FLAG_SEALED != 0 {
        return Err(DropReason::Unauthenticated);
    }
    if flags & FLAG_COMPRESSED != 0 {
        let mut codec = crate::compress::Codec::new().ok_or(DropReason::Malformed)?;
        return decode_payload(&codec.decompress(&datagram[HEADER_LEN..])?);
    }
    decode_payload(&datagram[HEADER_LEN..])
}

/// Encodes a reliable message.
pub fn encode_message(message: &Message) -> Vec<u8> {
    postcard::to_allocvec(message).unwrap_or_default()
}

/// The first byte of an encoded [`Message::Packed`]: postcard writes the variant's index.
const PACKED_TAG: u8 = 8;

/// Whether `message` (an encoded [`Message`]) is a packed one, whose bytes zstd has
/// compressed already: the datagrams carrying it are not worth another try.
pub fn is_packed(message: &[u8]) -> bool {
    message.first() == Some(&PACKED_TAG)
}

/// Decodes a reliable message.
pub fn decode_message(bytes: &[u8]) -> Result<Message, DropReason> {
    postcard::from_bytes(bytes).map_err(|_| DropReason::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_packed_messages_are_known_packed() {
        let packed = Message::Packed(serde_bytes::ByteBuf::from(vec![1, 2, 3]));
        assert!(is_packed(&encode_message(&packed)));
        for other in [
            Message::Prune,
            Message::Beacon(1, 2),
            Message::IHave(vec![(8, 8)]),
            Message::Delta(Delta { groups: vec![] }),
        ] {
            assert!(!is_packed(&encode_message(&other)), "{other:?}");
        }
        assert!(!is_packed(&[]));
    }

    fn sample() -> Packet {
        Packet {
            src_inc: 7,
            dst_inc: 9,
            src_session: 0,
            dst_session: 0,
            frames: vec![
                Frame::Ack(Ack {
                    cumulative: 3,
                    ranges: vec![(5, 6)],
                    delay_us: 250,
                }),
                Frame::Heartbeat(Heartbeat {
                    node_id: "n1".into(),
                    fingerprint: 42,
                    reply: true,
                    members: 300,
                    gossip: vec![GossipPeer {
                        node_id: "n2".into(),
                        addr: "127.0.0.1:5000".parse().unwrap(),
                    }],
                }),
                Frame::Data(Data {
                    seq: 4,
                    msg_id: 1,
                    frag: 0,
                    frags: 1,
                    bytes: vec![1, 2, 3],
                }),
            ],
        }
    }

    #[test]
    fn ipv6_gossip_and_advertised_addresses_round_trip() {
        let mut packet = sample();
        let v6: SocketAddr = "[fd00::2]:7000".parse().unwrap();
        if let Frame::Heartbeat(hb) = &mut packet.frames[1] {
            hb.gossip.push(GossipPeer {
                node_id: "n3".into(),
                addr: v6,
            });
        }
        packet.frames.push(Frame::Advertise("[2001:db8::5]:7001".parse().unwrap()));
        let bytes = encode_packet(5, &packet);
        assert_eq!(decode_packet(5, &bytes).unwrap(), packet);
    }

    #[test]
    fn packets_round_trip() {
        let bytes = encode_packet(5, &sample());
        assert_eq!(decode_packet(5, &bytes).unwrap(), sample());
    }

    #[test]
    fn every_header_fault_has_its_reason() {
        let good = encode_packet(5, &sample());
        assert_eq!(decode_packet(5, &good[..10]), Err(DropReason::Truncated));
        assert_eq!(decode_packet(6, &good), Err(DropReason::WrongCluster));
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(decode_packet(5, &bad), Err(DropReason::BadMagic));
        let mut bad = good.clone();
        bad[2] = 99;
        assert_eq!(decode_packet(5, &bad), Err(DropReason::BadVersion));
        let mut bad = good.clone();
        bad[4] = 0x08;
        assert_eq!(decode_packet(5, &bad), Err(DropReason::BadVersion), "an unknown flag");
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 0x40;
        assert_eq!(decode_packet(5, &bad), Err(DropReason::BadChecksum));
        let mut bad = good.clone();
        bad.push(0);
        assert_eq!(decode_packet(5, &bad), Err(DropReason::Truncated));
    }

    #[test]
    fn valid_header_with_garbage_payload_is_malformed() {
        let mut out = vec![0u8; HEADER_LEN];
        out.extend_from_slice(&[0xff; 40]);
        let datagram = seal_header(5, out);
        assert_eq!(decode_packet(5, &datagram), Err(DropReason::Malformed));
    }

    #[test]
    fn a_message_nesting_values_past_the_limit_is_malformed() {
        let entry = |value| {
            encode_message(&Message::Delta(Delta {
                groups: vec![Group {
                    origin: 1,
                    lo: 1,
                    hi: 1,
                    entries: vec![WireEntry {
                        seq: 1,
                        hlc: 1,
                        key: "k".into(),
                        value: Some(value),
                        expires: None,
                    }],
                }],
            }))
        };
        let mut at_limit = Value::Null;
        for _ in 0..crate::value::MAX_DEPTH {
            at_limit = Value::List(vec![at_limit]);
        }
        let bytes = entry(at_limit.clone());
        assert!(matches!(decode_message(&bytes), Ok(Message::Delta(_))));
        let bytes = entry(Value::List(vec![at_limit]));
        assert_eq!(decode_message(&bytes), Err(DropReason::Malformed));
        // Far deeper, as an attacker writes it: lists of one (`06 01`) around a null.
        let mut bytes = entry(Value::Null);
        bytes.pop();
        bytes.extend_from_slice(&[6, 1].repeat(50_000));
        bytes.push(0);
        assert_eq!(decode_message(&bytes), Err(DropReason::Malformed));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_packet(5, &bytes);
            let _ = decode_message(&bytes);
        }

        #[test]
        fn flipping_any_bit_is_detected(at in 0usize..1000, bit in 0u8..8) {
            let good = encode_packet(5, &sample());
            let mut bad = good.clone();
            let at = at % bad.len();
            bad[at] ^= 1 << bit;
            prop_assert!(decode_packet(5, &bad).is_err());
        }
    }
}
