//! Drivers for fuzzing and for the property tests that keep the fuzz targets honest.
//!
//! Three targets, each a pure function of its input that returns `Err` with a reason
//! when an invariant breaks (and panics only where the code under test panics):
//!
//! - [`wire_case`]: the datagram and message codecs on arbitrary bytes, and the
//!   round trip of an arbitrary [`Packet`] and [`Message`].
//! - [`reassembly_case`]: fragments and timeouts into channels sharing one reassembly
//!   budget built the way the engine builds it.
//! - [`engine_case`]: a started [`Engine`] fed datagrams from a few sources (which may
//!   pass the address check first), raw bytes, time and local writes.
//!
//! The op types derive `arbitrary::Arbitrary` with the `arbitrary` feature; the
//! `*_from_bytes` functions turn raw fuzzer input into them (the last field, the list of
//! ops, takes every byte left), so `cargo fuzz` and the stable test in
//! `tests/fuzz_smoke.rs` drive exactly the same code.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::config::Config;
use crate::engine::Engine;
use crate::link::channel_limits;
use crate::time::Now;
use crate::transport::{Channel, ChannelLimits, Received, MAX_IN_FLIGHT_DATAGRAMS};
use crate::value::Value;
use crate::wire::{
    self, Ack, Data, Delta, Frame, GossipPeer, Group, Heartbeat, Message, Packet, SyncRequest,
    WireEntry, HEADER_LEN, KIND_PACKET, MAGIC, VERSION,
};

/// Why a case failed: the invariant broken, with the step it broke at.
pub type Failure = String;

// ----- shared building blocks --------------------------------------------------------

/// A number: mostly small (where collisions and edge cases live), sometimes any.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Num {
    /// `0..=255`.
    Small(u8),
    /// Near the top of the range: `u64::MAX - n`.
    Top(u8),
    /// Anything.
    Any(u64),
}

impl Num {
    /// The number.
    pub fn get(self) -> u64 {
        match self {
            Num::Small(n) => u64::from(n),
            Num::Top(n) => u64::MAX - u64::from(n),
            Num::Any(n) => n,
        }
    }
}

/// A socket address, v4 or v6.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum AddrSpec {
    /// An IPv4 address.
    V4(u32, u16),
    /// An IPv6 address.
    V6(u128, u16),
}

impl AddrSpec {
    /// The address.
    pub fn get(self) -> SocketAddr {
        match self {
            AddrSpec::V4(ip, port) => SocketAddr::from((Ipv4Addr::from(ip), port)),
            AddrSpec::V6(ip, port) => SocketAddr::from((Ipv6Addr::from(ip), port)),
        }
    }
}

/// A value of bounded depth.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ValueSpec {
    /// A scalar.
    Scalar(ScalarSpec),
    /// A list of scalars.
    List(Vec<ScalarSpec>),
    /// A map of scalars.
    Map(Vec<(String, ScalarSpec)>),
    /// Lists nested `n` deep around a null (past the depth limit for large `n`).
    Nested(u8),
}

/// A value without nesting.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ScalarSpec {
    /// `Null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float (NaN included).
    Float(f64),
    /// A string.
    String(String),
    /// Bytes.
    Bytes(Vec<u8>),
}

impl ScalarSpec {
    fn get(&self) -> Value {
        match self {
            ScalarSpec::Null => Value::Null,
            ScalarSpec::Bool(b) => Value::Bool(*b),
            ScalarSpec::Int(i) => Value::Int(*i),
            ScalarSpec::Float(f) => Value::Float(*f),
            ScalarSpec::String(s) => Value::String(s.clone()),
            ScalarSpec::Bytes(b) => Value::Bytes(b.clone()),
        }
    }
}

impl ValueSpec {
    /// The value.
    pub fn get(&self) -> Value {
        match self {
            ValueSpec::Scalar(s) => s.get(),
            ValueSpec::List(items) => Value::List(items.iter().map(ScalarSpec::get).collect()),
            ValueSpec::Map(items) => Value::Map(
                items
                    .iter()
                    .map(|(k, v)| (k.clone(), v.get()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ValueSpec::Nested(depth) => {
                let mut v = Value::Null;
                for _ in 0..*depth {
                    v = Value::List(vec![v]);
                }
                v
            }
        }
    }
}

/// A key: one of a few (so writes collide), or any string.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum KeySpec {
    /// `k0` to `k7`.
    Few(u8),
    /// Any string.
    Any(String),
}

impl KeySpec {
    /// The key.
    pub fn get(&self) -> String {
        match self {
            KeySpec::Few(n) => format!("k{}", n % 8),
            KeySpec::Any(s) => s.clone(),
        }
    }
}

/// A gossiped peer.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct GossipSpec {
    /// Its node id.
    pub node_id: String,
    /// Its address: one of the harness's sources, or any.
    pub addr: SourceOrAddr,
}

/// An address that is one of the engine case's sources, or any.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum SourceOrAddr {
    /// Source number `n % SOURCES`.
    Source(u8),
    /// Any address.
    Addr(AddrSpec),
}

impl SourceOrAddr {
    fn get(self) -> SocketAddr {
        match self {
            SourceOrAddr::Source(n) => source_addr(n),
            SourceOrAddr::Addr(a) => a.get(),
        }
    }
}

/// A frame, with a few shapes that reach the engine's deeper paths.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum FrameSpec {
    /// An acknowledgement as given.
    Ack {
        /// Cumulative number.
        cumulative: Num,
        /// Ranges.
        ranges: Vec<(Num, Num)>,
    },
    /// Acknowledges everything the engine sent to this source so far.
    AckAll,
    /// A heartbeat.
    Heartbeat {
        /// Node id: `peer-N` for a few, or any.
        node_id: KeySpec,
        /// Fingerprint.
        fingerprint: Num,
        /// Asks for a reply.
        reply: bool,
        /// Members the source claims to name.
        members: Num,
        /// Gossip.
        gossip: Vec<GossipSpec>,
    },
    /// A data fragment as given (`seq` 0 is replaced by the source's next number).
    Data {
        /// Sequence number.
        seq: Num,
        /// Message id.
        msg_id: Num,
        /// Fragment index.
        frag: u32,
        /// Fragment count.
        frags: u32,
        /// Bytes.
        bytes: Vec<u8>,
    },
    /// A whole message in one data fragment, with the source's next sequence number.
    Message(MessageSpec),
    /// A challenge.
    Challenge(Num),
    /// A response: to the last challenge the engine sent this source, or any nonce.
    Response(Option<u64>),
}

/// A reliable message.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum MessageSpec {
    /// Writes, grouped as given (ranges and sequence numbers may disagree).
    Delta(Vec<GroupSpec>),
    /// Writes of one origin as a real sender groups them: consecutive sequence numbers
    /// from `first`, the range covering exactly them.
    Writes {
        /// Origin.
        origin: OriginSpec,
        /// First sequence number.
        first: u8,
        /// `(key, value or delete, timestamp)` of each write.
        writes: Vec<(KeySpec, Option<ValueSpec>, HlcSpec)>,
        /// Sent on the broadcast tree (a `Gossip`) rather than as a delta.
        gossip: bool,
    },
    /// A user message.
    User {
        /// Its per-session number.
        seq: Num,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// A digest.
    SyncRequest {
        /// `(origin, upto)` pairs.
        digest: Vec<(OriginSpec, Num)>,
        /// Asks for the digest back.
        reply: bool,
    },
    /// A message of the broadcast tree without writes.
    Tree(TreeSpec),
}

/// A message of the broadcast tree without writes (writes on the tree are
/// [`MessageSpec::Writes`] with `gossip` set).
#[derive(Clone, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum TreeSpec {
    /// Announced writes: `(origin, hi)` pairs.
    IHave(Vec<(OriginSpec, Num)>),
    /// Grafted ranges: `(origin, lo, hi)`.
    Graft(Vec<(OriginSpec, Num, Num)>),
    /// A prune.
    Prune,
    /// A beacon: `(root, round)`.
    Beacon(OriginSpec, Num),
}

/// An origin: the sender, the engine itself, or any.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum OriginSpec {
    /// The sending source's incarnation.
    Sender,
    /// The engine's own incarnation.
    Engine,
    /// Any.
    Any(Num),
}

/// A group of writes of one origin.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct GroupSpec {
    /// Origin.
    pub origin: OriginSpec,
    /// First sequence number covered.
    pub lo: Num,
    /// Last sequence number covered.
    pub hi: Num,
    /// Entries.
    pub entries: Vec<EntrySpec>,
}

/// One write.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct EntrySpec {
    /// Origin's sequence number.
    pub seq: Num,
    /// Timestamp: milliseconds from the engine's wall clock (negative: past), or any.
    pub hlc: HlcSpec,
    /// Key.
    pub key: KeySpec,
    /// Value; `None` deletes.
    pub value: Option<ValueSpec>,
}

/// A hybrid logical timestamp.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum HlcSpec {
    /// The engine's wall clock moved by this many milliseconds (within the allowed drift),
    /// with a logical counter.
    Near(i16, u16),
    /// Any.
    Any(u64),
}

/// What a frame or message is built in: the sender, the engine, the time.
struct Context {
    sender_inc: u64,
    engine_inc: u64,
    wall_ms: u64,
}

impl OriginSpec {
    fn get(self, cx: &Context) -> u64 {
        match self {
            OriginSpec::Sender => cx.sender_inc,
            OriginSpec::Engine => cx.engine_inc,
            OriginSpec::Any(n) => n.get(),
        }
    }
}

impl HlcSpec {
    fn get(self, cx: &Context) -> u64 {
        match self {
            HlcSpec::Near(ms, logical) => {
                (cx.wall_ms.saturating_add_signed(i64::from(ms)) << 16) | u64::from(logical)
            }
            HlcSpec::Any(n) => n,
        }
    }
}

impl MessageSpec {
    fn build(&self, cx: &Context) -> Message {
        match self {
            MessageSpec::Delta(groups) => Message::Delta(Delta {
                groups: build_groups(groups, cx),
            }),
            MessageSpec::Tree(TreeSpec::IHave(items)) => {
                Message::IHave(items.iter().map(|(o, n)| (o.get(cx), n.get())).collect())
            }
            MessageSpec::Tree(TreeSpec::Graft(ranges)) => Message::Graft(
                ranges
                    .iter()
                    .map(|(o, lo, hi)| (o.get(cx), lo.get(), hi.get()))
                    .collect(),
            ),
            MessageSpec::Tree(TreeSpec::Prune) => Message::Prune,
            MessageSpec::Tree(TreeSpec::Beacon(root, round)) => {
                Message::Beacon(root.get(cx), round.get())
            }
            MessageSpec::Writes {
                origin,
                first,
                writes,
                gossip,
            } => {
                let lo = u64::from(*first).max(1);
                let delta = Delta {
                    groups: vec![Group {
                        origin: origin.get(cx),
                        lo,
                        hi: lo + (writes.len() as u64).max(1) - 1,
                        entries: writes
                            .iter()
                            .zip(lo..)
                            .map(|((key, value, hlc), seq)| WireEntry {
                                seq,
                                hlc: hlc.get(cx),
                                key: key.get().into(),
                                value: value.as_ref().map(ValueSpec::get),
                                expires: None,
                            })
                            .collect(),
                    }],
                };
                if *gossip {
                    Message::Gossip(delta)
                } else {
                    Message::Delta(delta)
                }
            }
            MessageSpec::User { seq, data } => Message::User(wire::UserMessage {
                seq: seq.get(),
                data: data.clone(),
            }),
            MessageSpec::SyncRequest { digest, reply } => Message::SyncRequest(SyncRequest {
                digest: digest.iter().map(|(o, n)| (o.get(cx), n.get())).collect(),
                reply: *reply,
                want: wire::Want::All,
                number: 0, // numbered when framed
            }),
        }
    }
}

/// The groups of a delta as given.
fn build_groups(groups: &[GroupSpec], cx: &Context) -> Vec<Group> {
    groups
        .iter()
        .map(|g| Group {
            origin: g.origin.get(cx),
            lo: g.lo.get(),
            hi: g.hi.get(),
            entries: g
                .entries
                .iter()
                .map(|e| WireEntry {
                    seq: e.seq.get(),
                    hlc: e.hlc.get(cx),
                    key: e.key.get().into(),
                    value: e.value.as_ref().map(ValueSpec::get),
                    expires: None,
                })
                .collect(),
        })
        .collect()
}

// ----- wire --------------------------------------------------------------------------

/// Input of the wire target.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum WireCase {
    /// Bytes decoded as a datagram (for the cluster in its header, and another) and as a
    /// message.
    Bytes(Vec<u8>),
    /// A payload behind a valid header, so the payload decoder is reached.
    Payload {
        /// Cluster id.
        cluster: u32,
        /// Payload bytes.
        payload: Vec<u8>,
    },
    /// A packet that must survive encoding then decoding.
    Packet {
        /// Cluster id.
        cluster: u32,
        /// Sender's incarnation.
        src_inc: u64,
        /// Receiver's incarnation.
        dst_inc: u64,
        /// Frames.
        frames: Vec<FrameSpec>,
    },
    /// A message that must survive encoding then decoding.
    Message(MessageSpec),
}

/// A datagram with a valid header (correct length and checksum) around `payload`.
pub fn with_header(cluster: u32, payload: &[u8]) -> Vec<u8> {
    with_header_flags(cluster, 0, payload)
}

/// [`with_header`] with header `flags`.
pub fn with_header_flags(cluster: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, KIND_PACKET, flags, 0]);
    out.extend_from_slice(&cluster.to_be_bytes());
    out.extend_from_slice(&(payload.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&out[..12]);
    hasher.update(payload);
    out.extend_from_slice(&hasher.finalize().to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Decodes `datagram` for `cluster`; whatever decodes must encode and decode back to
/// itself.
fn decode_datagram(cluster: u32, datagram: &[u8]) -> Result<(), Failure> {
    if let Ok(packet) = wire::decode_packet(cluster, datagram) {
        let again = wire::encode_packet(cluster, &packet);
        match wire::decode_packet(cluster, &again) {
            Ok(p) if p == packet => {}
            other => return Err(format!("decoded {packet:?}, re-encoded to {other:?}")),
        }
    }
    Ok(())
}

/// Decodes `bytes` as a message; whatever decodes must re-encode stably.
fn decode_message_bytes(bytes: &[u8]) -> Result<(), Failure> {
    if let Ok(message) = wire::decode_message(bytes) {
        let once = wire::encode_message(&message);
        let twice = wire::decode_message(&once)
            .map(|m| wire::encode_message(&m))
            .map_err(|e| format!("{message:?} re-encoded does not decode: {e:?}"))?;
        if once != twice {
            return Err(format!("{message:?} does not re-encode stably"));
        }
    }
    Ok(())
}

/// Runs one wire case.
pub fn wire_case(case: &WireCase) -> Result<(), Failure> {
    match case {
        WireCase::Bytes(bytes) => {
            decode_datagram(0, bytes)?;
            if bytes.len() >= 10 {
                let cluster = u32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
                decode_datagram(cluster, bytes)?;
            }
            decode_message_bytes(bytes)
        }
        WireCase::Payload { cluster, payload } => {
            decode_datagram(*cluster, &with_header(*cluster, payload))?;
            decode_message_bytes(payload)
        }
        WireCase::Packet {
            cluster,
            src_inc,
            dst_inc,
            frames,
        } => {
            let cx = Context {
                sender_inc: *src_inc,
                engine_inc: *dst_inc,
                wall_ms: 1_700_000_000_000,
            };
            let packet = Packet {
                src_inc: *src_inc,
                dst_inc: *dst_inc,
                src_session: 0,
                dst_session: 0,
                frames: frames
                    .iter()
                    .map(|f| build_frame(f, &cx, &mut SourceState::default()))
                    .collect(),
            };
            let datagram = wire::encode_packet(*cluster, &packet);
            let decoded = wire::decode_packet(*cluster, &datagram);
            if datagram.len() - HEADER_LEN <= usize::from(u16::MAX) {
                if decoded.as_ref() != Ok(&packet) {
                    return Err(format!("{packet:?} round-tripped to {decoded:?}"));
                }
            } else if decoded.is_ok() {
                return Err("a packet past the length field's range decoded".into());
            }
            Ok(())
        }
        WireCase::Message(spec) => {
            let cx = Context {
                sender_inc: 77,
                engine_inc: 1,
                wall_ms: 1_700_000_000_000,
            };
            let message = spec.build(&cx);
            let bytes = wire::encode_message(&message);
            let depth_ok = match &message {
                Message::Delta(d) | Message::Gossip(d) => d.groups.iter().all(|g| {
                    g.entries
                        .iter()
                        .all(|e| e.value.as_ref().is_none_or(|v| v.check_depth().is_ok()))
                }),
                Message::SyncRequest(_)
                | Message::User(_)
                | Message::IHave(_)
                | Message::Graft(_)
                | Message::Prune
                | Message::Beacon(..)
                | Message::Packed(_) => true,
            };
            match wire::decode_message(&bytes) {
                Ok(m) if wire::encode_message(&m) == bytes => Ok(()),
                Err(_) if !depth_ok => Ok(()), // too deep: refused, as it must be
                other => Err(format!("{message:?} round-tripped to {other:?}")),
            }
        }
    }
}

/// Runs a wire case read from raw fuzzer bytes.
#[cfg(feature = "arbitrary")]
pub fn wire_from_bytes(data: &[u8]) -> Result<(), Failure> {
    match <WireCase as arbitrary::Arbitrary>::arbitrary_take_rest(arbitrary::Unstructured::new(
        data,
    )) {
        Ok(case) => wire_case(&case),
        Err(_) => Ok(()),
    }
}

// ----- reassembly --------------------------------------------------------------------

/// Input of the reassembly target.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ReassemblyCase {
    /// Budget, in units of 256 bytes (0: 256 bytes).
    pub budget: u8,
    /// Channels sharing it, `1 + n % 3`.
    pub channels: u8,
    /// What happens.
    pub ops: Vec<ReassemblyOp>,
}

/// One step of a reassembly case.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ReassemblyOp {
    /// A fragment as given. `seq` `None` takes the channel's next number.
    Fragment {
        /// Channel, modulo their number.
        channel: u8,
        /// Sequence number.
        seq: Option<Num>,
        /// Message id.
        msg_id: u8,
        /// Fragment index.
        frag: u32,
        /// Fragment count.
        frags: u32,
        /// Length of its bytes (at most 4 KiB).
        len: u16,
    },
    /// A whole message of `len` bytes cut into `fragment`-byte pieces the way a sender
    /// cuts them, under a message id of its own (a sender never reuses one), delivered
    /// in a shuffled order, fragments whose bit in `skip` is set left out. Completed
    /// messages must come out byte for byte.
    Message {
        /// Channel, modulo their number.
        channel: u8,
        /// Length (at most 16 KiB).
        len: u16,
        /// Fragment size, at least the smallest a sender cuts.
        fragment: u16,
        /// Fragments left out (bit `i % 64` for fragment `i`).
        skip: u64,
        /// Shuffle seed.
        order: u64,
    },
    /// Time passes, milliseconds.
    Advance(u16),
    /// The channels' timers run.
    Timeout,
    /// A channel is replaced by a fresh one (its peer restarted).
    Reset(u8),
}

/// The limits a node with reassembly budget `budget` gives its channels.
fn reassembly_limits(budget: usize) -> ChannelLimits {
    let mut config = Config::new("fuzz", 0);
    config.max_reassembly = budget;
    channel_limits(&config)
}

struct ReassemblyRig {
    limits: ChannelLimits,
    channels: Vec<Channel>,
    next_seq: Vec<u64>,
    /// Last message id of the whole-message ops, above the ids fragment ops use.
    next_msg_id: u64,
    now_us: u64,
}

impl ReassemblyRig {
    fn check(&self, step: usize) -> Result<(), Failure> {
        let budget = &self.limits.reassembly;
        let held: usize = self.channels.iter().map(Channel::reassembly_bytes).sum();
        if budget.used() > budget.limit() {
            return Err(format!(
                "step {step}: budget used {} > limit {}",
                budget.used(),
                budget.limit()
            ));
        }
        if held != budget.used() {
            return Err(format!(
                "step {step}: channels hold {held} bytes, budget charged {}",
                budget.used()
            ));
        }
        Ok(())
    }

    fn deliver(&mut self, channel: usize, seq: Option<u64>, data: Data) -> Received {
        let seq = seq.unwrap_or_else(|| {
            let s = self.next_seq[channel];
            self.next_seq[channel] += 1;
            s
        });
        self.channels[channel].on_data(Data { seq, ..data }, self.now_us)
    }
}

/// The bytes of message `msg_id` of `len` bytes, recognisable per position.
fn message_bytes(msg_id: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ msg_id)
        .collect()
}

/// Runs one reassembly case.
pub fn reassembly_case(case: &ReassemblyCase) -> Result<(), Failure> {
    let budget = 256 * (usize::from(case.budget) + 1);
    let limits = reassembly_limits(budget);
    let count = 1 + usize::from(case.channels % 3);
    let mut rig = ReassemblyRig {
        channels: (0..count).map(|_| Channel::new(limits.clone())).collect(),
        next_seq: vec![1; count],
        next_msg_id: 0x100,
        limits,
        now_us: 1_000_000,
    };
    rig.check(0)?;
    for (step, op) in case.ops.iter().enumerate() {
        match op {
            ReassemblyOp::Fragment {
                channel,
                seq,
                msg_id,
                frag,
                frags,
                len,
            } => {
                let channel = usize::from(*channel) % count;
                let data = Data {
                    seq: 0,
                    msg_id: u64::from(*msg_id),
                    frag: *frag,
                    frags: *frags,
                    bytes: vec![*msg_id; usize::from(*len % 4097)],
                };
                if let Received::Message(m) = rig.deliver(channel, seq.map(Num::get), data) {
                    // The budget is also the largest message accepted, whole or not.
                    if m.len() > budget {
                        return Err(format!(
                            "step {step}: a {}-byte message past the {budget}-byte budget",
                            m.len()
                        ));
                    }
                }
            }
            ReassemblyOp::Message {
                channel,
                len,
                fragment,
                skip,
                order,
            } => {
                let channel = usize::from(*channel) % count;
                let len = usize::from(*len % 16_385);
                let fragment = usize::from(*fragment).max(crate::transport::MIN_FRAGMENT);
                rig.next_msg_id += 1;
                let msg_id = rig.next_msg_id;
                let message = message_bytes(msg_id as u8, len);
                let pieces: Vec<&[u8]> = if message.is_empty() {
                    vec![&[]]
                } else {
                    message.chunks(fragment).collect()
                };
                let frags = pieces.len() as u32;
                let mut indices: Vec<usize> = (0..pieces.len()).collect();
                fastrand::Rng::with_seed(*order).shuffle(&mut indices);
                let complete = (0..pieces.len()).all(|i| skip & (1 << (i % 64)) == 0);
                let mut delivered = None;
                for i in indices {
                    if skip & (1 << (i % 64)) != 0 {
                        continue;
                    }
                    let data = Data {
                        seq: 0,
                        msg_id,
                        frag: i as u32,
                        frags,
                        bytes: pieces[i].to_vec(),
                    };
                    if let Received::Message(m) = rig.deliver(channel, None, data) {
                        if delivered.replace(m).is_some() {
                            return Err(format!("step {step}: message delivered twice"));
                        }
                    }
                    rig.check(step)?;
                }
                if let Some(m) = &delivered {
                    if !complete {
                        return Err(format!(
                            "step {step}: message delivered with fragments missing"
                        ));
                    }
                    if *m != message {
                        return Err(format!("step {step}: message delivered corrupted"));
                    }
                }
            }
            ReassemblyOp::Advance(ms) => rig.now_us += u64::from(*ms) * 1000,
            ReassemblyOp::Timeout => {
                let now = rig.now_us;
                for c in &mut rig.channels {
                    c.on_timeout(now);
                }
            }
            ReassemblyOp::Reset(n) => {
                let channel = usize::from(*n) % count;
                rig.channels[channel] = Channel::new(rig.limits.clone());
                rig.next_seq[channel] = 1;
            }
        }
        rig.check(step)?;
    }
    let end = rig.now_us + rig.limits.reassembly_timeout_us + 1;
    for c in &mut rig.channels {
        c.on_timeout(end);
    }
    rig.check(case.ops.len())?;
    if rig.limits.reassembly.used() != 0 {
        return Err(format!(
            "{} bytes still charged after every partial message timed out",
            rig.limits.reassembly.used()
        ));
    }
    drop(rig.channels);
    Ok(())
}

/// Runs a reassembly case read from raw fuzzer bytes.
#[cfg(feature = "arbitrary")]
pub fn reassembly_from_bytes(data: &[u8]) -> Result<(), Failure> {
    match <ReassemblyCase as arbitrary::Arbitrary>::arbitrary_take_rest(
        arbitrary::Unstructured::new(data),
    ) {
        Ok(case) => reassembly_case(&case),
        Err(_) => Ok(()),
    }
}

// ----- engine ------------------------------------------------------------------------

/// Sources datagrams come from.
pub const SOURCES: u8 = 4;

/// Source number `n % SOURCES`'s address.
pub fn source_addr(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1 + n % SOURCES], 7000))
}

/// Input of the engine target.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct EngineCase {
    /// Seed of the engine's random choices.
    pub seed: u64,
    /// What happens.
    pub ops: Vec<EngineOp>,
}

/// An incarnation a source claims.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum IncSpec {
    /// The source's current one (set by its last `Introduce`; 100 + source before).
    Current,
    /// One of a few: `100 + n % 8`.
    Few(u8),
    /// Any.
    Any(u64),
}

/// The receiver's incarnation a packet names.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum DstIncSpec {
    /// Unknown (0).
    Zero,
    /// The engine's.
    Engine,
    /// Any.
    Any(u64),
}

/// One step of an engine case.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum EngineOp {
    /// The source passes the address check with this incarnation, the way a real peer
    /// does: a heartbeat, then the echo of the challenge it draws (if it draws one).
    Introduce {
        /// Source.
        src: u8,
        /// Incarnation.
        inc: IncSpec,
    },
    /// A packet from a source.
    Packet {
        /// Source.
        src: u8,
        /// Sender incarnation.
        src_inc: IncSpec,
        /// Receiver incarnation.
        dst_inc: DstIncSpec,
        /// Frames.
        frames: Vec<FrameSpec>,
    },
    /// A message cut into fragments of `fragment` bytes, each in its own datagram from
    /// the source's current incarnation; fragments whose bit in `skip` is set are lost.
    Fragmented {
        /// Source.
        src: u8,
        /// Message.
        message: MessageSpec,
        /// Fragment size (at least the smallest a sender cuts).
        fragment: u16,
        /// Lost fragments.
        skip: u32,
    },
    /// Raw bytes from a source.
    Raw {
        /// Source.
        src: u8,
        /// Bytes.
        bytes: Vec<u8>,
    },
    /// A payload behind a valid header from a source.
    Payload {
        /// Source.
        src: u8,
        /// Payload.
        payload: Vec<u8>,
    },
    /// A payload marked compressed behind a valid header from a source: zstd-compressed
    /// first if `encode` (a valid frame of any content), or as it is (a frame the
    /// decompressor must refuse).
    Compressed {
        /// Source.
        src: u8,
        /// Payload, before compression.
        payload: Vec<u8>,
        /// Whether to compress it.
        encode: bool,
    },
    /// Time passes (milliseconds); every timer due meanwhile runs at its time.
    Advance(u16),
    /// A local write.
    Set {
        /// Key.
        key: KeySpec,
        /// Value.
        value: ValueSpec,
    },
    /// A local delete.
    Delete(KeySpec),
    /// A bootstrap peer is added.
    Bootstrap(SourceOrAddr),
}

/// What the harness remembers of one source.
#[derive(Debug, Default)]
struct SourceState {
    inc: u64,
    next_seq: u64,
    next_msg_id: u64,
    nonce: Option<u64>,
    /// Highest data sequence number the engine sent this source.
    engine_seq: u64,
}

fn build_frame(spec: &FrameSpec, cx: &Context, source: &mut SourceState) -> Frame {
    let mut next_seq = || {
        source.next_seq += 1;
        source.next_seq
    };
    match spec {
        FrameSpec::Ack { cumulative, ranges } => Frame::Ack(Ack {
            cumulative: cumulative.get(),
            ranges: ranges.iter().map(|(a, b)| (a.get(), b.get())).collect(),
            delay_us: 0,
        }),
        FrameSpec::AckAll => Frame::Ack(Ack {
            cumulative: source.engine_seq,
            ranges: Vec::new(),
            delay_us: 0,
        }),
        FrameSpec::Heartbeat {
            node_id,
            fingerprint,
            reply,
            members,
            gossip,
        } => Frame::Heartbeat(Heartbeat {
            node_id: match node_id {
                KeySpec::Few(n) => format!("peer-{}", n % 8),
                KeySpec::Any(s) => s.clone(),
            },
            fingerprint: fingerprint.get(),
            reply: *reply,
            members: members.get() as u32,
            gossip: gossip
                .iter()
                .map(|g| GossipPeer {
                    node_id: g.node_id.clone(),
                    addr: g.addr.get(),
                })
                .collect(),
        }),
        FrameSpec::Data {
            seq,
            msg_id,
            frag,
            frags,
            bytes,
        } => Frame::Data(Data {
            seq: match seq.get() {
                0 => next_seq(),
                s => s,
            },
            msg_id: msg_id.get(),
            frag: *frag,
            frags: *frags,
            bytes: bytes.clone(),
        }),
        FrameSpec::Message(m) => {
            let mut message = m.build(cx);
            if let Message::SyncRequest(request) = &mut message {
                // Numbered in the order sent, as a real peer's are.
                request.number = source.next_msg_id + 1;
            }
            let bytes = wire::encode_message(&message);
            let seq = next_seq();
            source.next_msg_id += 1;
            Frame::Data(Data {
                seq,
                msg_id: source.next_msg_id,
                frag: 0,
                frags: 1,
                bytes,
            })
        }
        FrameSpec::Challenge(n) => Frame::Challenge(n.get()),
        FrameSpec::Response(n) => Frame::Response(n.or(source.nonce).unwrap_or(0)),
    }
}

/// Out-of-order ranges a version vector keeps per origin (`version::MAX_EXTRA_RANGES`).
const MAX_EXTRA_RANGES: usize = 32;

/// Memory bounds the engine must stay within, given the configuration the harness
/// builds.
fn memory_bounds(engine: &Engine, config: &Config) -> Result<(), Failure> {
    let m = engine.memory();
    let origins = engine.replica().version_vector().len();
    let limits = channel_limits(config);
    let peers = m.peers;
    let checks = [
        ("peers", m.peers, config.max_peers),
        (
            "reassembly bytes",
            m.reassembly_bytes,
            config.max_reassembly,
        ),
        (
            "datagrams in flight",
            m.in_flight,
            peers * MAX_IN_FLIGHT_DATAGRAMS,
        ),
        // A channel refuses a message that would take its queue past the limit.
        ("queued bytes", m.queued_bytes, peers * limits.max_queued),
        // A stream is what the peer lacks of this node's version vector when it asked:
        // at most a prefix and the out-of-order ranges kept of each origin known.
        (
            "stream ranges",
            m.stream_ranges,
            peers * (origins + 1) * (1 + MAX_EXTRA_RANGES),
        ),
        ("pending outputs after draining", m.pending_outputs, 0),
    ];
    for (what, got, bound) in checks {
        if got > bound {
            return Err(format!("{what}: {got} > {bound} ({m:?})"));
        }
    }
    Ok(())
}

/// The configuration the engine target runs with: short timers so that time reaches
/// them, and a reassembly budget small enough to be spent.
pub fn engine_config() -> Config {
    let mut c = Config::new("target", 0);
    c.sync_interval = Duration::from_millis(500);
    c.heartbeat_interval = Duration::from_millis(200);
    c.peer_timeout = Duration::from_secs(1);
    c.initial_rto = Duration::from_millis(100);
    c.max_probe_interval = Duration::from_secs(1);
    c.reassembly_timeout = Duration::from_secs(5);
    c.max_value_size = 64 * 1024;
    c.max_reassembly = 0;
    c.fit_reassembly();
    c
}

/// Most timer rounds at one instant before the engine is deemed to spin.
const MAX_ROUNDS_AT_ONE_TIME: usize = 1_000;

struct EngineRig {
    engine: Engine,
    config: Config,
    cluster: u32,
    now: Now,
    sources: Vec<SourceState>,
}

impl EngineRig {
    fn drain(&mut self) {
        while let Some(t) = self.engine.poll_transmit(self.now) {
            let Some(n) = (0..SOURCES).find(|&n| source_addr(n) == t.dst) else {
                continue;
            };
            let Ok(packet) = wire::decode_packet(self.cluster, &t.payload) else {
                continue;
            };
            let source = &mut self.sources[usize::from(n)];
            for frame in &packet.frames {
                match frame {
                    Frame::Challenge(nonce) => source.nonce = Some(*nonce),
                    Frame::Data(d) => source.engine_seq = source.engine_seq.max(d.seq),
                    _ => {}
                }
            }
        }
        while self.engine.poll_event().is_some() {}
    }

    fn check(&self, step: usize) -> Result<(), Failure> {
        self.engine
            .check_invariants()
            .map_err(|e| format!("step {step}: {e}"))?;
        memory_bounds(&self.engine, &self.config).map_err(|e| format!("step {step}: {e}"))
    }

    fn inc(&self, src: u8, spec: IncSpec) -> u64 {
        match spec {
            IncSpec::Current => self.sources[usize::from(src % SOURCES)].inc,
            IncSpec::Few(n) => 100 + u64::from(n % 8),
            IncSpec::Any(n) => n,
        }
    }

    fn context(&self, sender_inc: u64) -> Context {
        Context {
            sender_inc,
            engine_inc: self.engine.incarnation(),
            wall_ms: self.now.wall_ms,
        }
    }

    fn receive(&mut self, src: u8, datagram: &[u8]) {
        self.engine
            .handle_datagram(self.now, source_addr(src), datagram);
        self.drain();
    }

    fn packet(&mut self, src: u8, src_inc: u64, dst_inc: u64, frames: Vec<Frame>) {
        let datagram = wire::encode_packet(
            self.cluster,
            &Packet {
                src_inc,
                dst_inc,
                src_session: 0,
                dst_session: 0,
                frames,
            },
        );
        self.receive(src, &datagram);
    }

    fn apply(&mut self, step: usize, op: &EngineOp) -> Result<(), Failure> {
        match op {
            EngineOp::Introduce { src, inc } => {
                let src = src % SOURCES;
                let inc = self.inc(src, *inc);
                self.sources[usize::from(src)].nonce = None;
                let hello = Frame::Heartbeat(Heartbeat {
                    node_id: format!("peer-{src}"),
                    fingerprint: 0,
                    reply: false,
                    members: 0,
                    gossip: Vec::new(),
                });
                self.packet(src, inc, 0, vec![hello]);
                if let Some(nonce) = self.sources[usize::from(src)].nonce {
                    self.packet(src, inc, 0, vec![Frame::Response(nonce)]);
                }
                let source = &mut self.sources[usize::from(src)];
                if source.inc != inc {
                    *source = SourceState {
                        inc,
                        ..SourceState::default()
                    };
                }
            }
            EngineOp::Packet {
                src,
                src_inc,
                dst_inc,
                frames,
            } => {
                let src = src % SOURCES;
                let src_inc = self.inc(src, *src_inc);
                let dst_inc = match dst_inc {
                    DstIncSpec::Zero => 0,
                    DstIncSpec::Engine => self.engine.incarnation(),
                    DstIncSpec::Any(n) => *n,
                };
                let cx = self.context(src_inc);
                let frames: Vec<Frame> = frames
                    .iter()
                    .map(|f| build_frame(f, &cx, &mut self.sources[usize::from(src)]))
                    .collect();
                self.packet(src, src_inc, dst_inc, frames);
            }
            EngineOp::Fragmented {
                src,
                message,
                fragment,
                skip,
            } => {
                let src = src % SOURCES;
                let inc = self.sources[usize::from(src)].inc;
                let message = message.build(&self.context(inc));
                let bytes = wire::encode_message(&message);
                let fragment = usize::from(*fragment).max(crate::transport::MIN_FRAGMENT);
                let pieces: Vec<&[u8]> = bytes.chunks(fragment).collect();
                let source = &mut self.sources[usize::from(src)];
                source.next_msg_id += 1;
                let msg_id = source.next_msg_id;
                for (i, piece) in pieces.iter().enumerate() {
                    let source = &mut self.sources[usize::from(src)];
                    source.next_seq += 1;
                    let data = Data {
                        seq: source.next_seq,
                        msg_id,
                        frag: i as u32,
                        frags: pieces.len() as u32,
                        bytes: piece.to_vec(),
                    };
                    if skip & (1 << (i % 32)) == 0 {
                        let dst_inc = self.engine.incarnation();
                        self.packet(src, inc, dst_inc, vec![Frame::Data(data)]);
                        self.check(step)?;
                    }
                }
            }
            EngineOp::Raw { src, bytes } => self.receive(src % SOURCES, bytes),
            EngineOp::Payload { src, payload } => {
                let datagram = with_header(self.cluster, payload);
                self.receive(src % SOURCES, &datagram);
            }
            EngineOp::Compressed {
                src,
                payload,
                encode,
            } => {
                let body = if *encode {
                    zstd::bulk::compress(payload, 1).unwrap_or_default()
                } else {
                    payload.clone()
                };
                let datagram = with_header_flags(self.cluster, wire::FLAG_COMPRESSED, &body);
                self.receive(src % SOURCES, &datagram);
            }
            EngineOp::Advance(ms) => {
                let target = self.now.after_us(u64::from(*ms) * 1000);
                let mut rounds = 0;
                let mut last = self.now.mono_us;
                while let Some(due) = self.engine.poll_timeout() {
                    if due > target.mono_us {
                        break;
                    }
                    let at = due.max(self.now.mono_us);
                    if at == last {
                        rounds += 1;
                        if rounds > MAX_ROUNDS_AT_ONE_TIME {
                            return Err(format!(
                                "step {step}: timer due at {due} still due after \
                                 {MAX_ROUNDS_AT_ONE_TIME} rounds at {at}"
                            ));
                        }
                    } else {
                        rounds = 0;
                        last = at;
                    }
                    self.now = self.now.after_us(at - self.now.mono_us);
                    self.engine.handle_timeout(self.now);
                    self.drain();
                    self.check(step)?;
                }
                self.now = target;
                self.engine.handle_timeout(self.now);
                self.drain();
            }
            EngineOp::Set { key, value } => {
                let _ = self.engine.set(self.now, &key.get(), value.get());
                self.drain();
            }
            EngineOp::Delete(key) => {
                let _ = self.engine.delete(self.now, &key.get());
                self.drain();
            }
            EngineOp::Bootstrap(addr) => {
                self.engine.add_bootstrap_peer(self.now, addr.get());
                self.drain();
            }
        }
        self.check(step)
    }
}

/// Runs one engine case; returns the engine it drove.
pub fn engine_case(case: &EngineCase) -> Result<Engine, Failure> {
    let config = engine_config();
    config
        .validate()
        .map_err(|e| format!("harness config: {e}"))?;
    let now = Now {
        mono_us: 1_000_000,
        wall_ms: 1_700_000_000_000,
    };
    let cluster = wire::cluster_id(&config.cluster);
    let mut engine = Engine::new(
        config.clone(),
        1,
        case.seed,
        crate::seal::NoncePrefix([3; 16]),
        now,
    );
    engine.start(now);
    let mut rig = EngineRig {
        engine,
        config,
        cluster,
        now,
        sources: (0..SOURCES)
            .map(|n| SourceState {
                inc: 100 + u64::from(n),
                ..SourceState::default()
            })
            .collect(),
    };
    rig.drain();
    rig.check(0)?;
    for (step, op) in case.ops.iter().enumerate() {
        rig.apply(step, op)?;
    }
    Ok(rig.engine)
}

/// Runs an engine case read from raw fuzzer bytes.
#[cfg(feature = "arbitrary")]
pub fn engine_from_bytes(data: &[u8]) -> Result<(), Failure> {
    match <EngineCase as arbitrary::Arbitrary>::arbitrary_take_rest(arbitrary::Unstructured::new(
        data,
    )) {
        Ok(case) => engine_case(&case).map(drop),
        Err(_) => Ok(()),
    }
}
