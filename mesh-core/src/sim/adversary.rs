//! A seeded attacker on the simulated network.
//!
//! The adversary is not a member: it has its own virtual address and is admitted only
//! the way a real attacker who owns an address is, by echoing the challenges nodes send
//! there. It sees every datagram the network delivers (a tap, as an attacker on the path
//! or on a shared segment would) and, every [`AdversaryConfig::interval`], sends a burst
//! of:
//!
//! - forged datagrams built from the public wire types: heartbeats claiming members' or
//!   new node ids with gossip of made-up addresses, incarnation bumps spoofed from
//!   members' addresses (`u64::MAX` and plausible ones), Deltas writing and deleting keys
//!   under made-up origins with timestamps up to the drift bound ahead (and, alone in
//!   their group, past it or with oversized keys), bare ranges, SyncRequests, and fragments with hostile fragment counts;
//! - replays of delivered datagrams, from their original (spoofed) source or its own;
//! - mutations of delivered datagrams: a bit flipped, truncated, extended, a header
//!   byte or the incarnations changed, with the checksum recomputed so the change
//!   reaches the payload decoder.
//!
//! In plaintext mode a verified peer, or anyone spoofing a member's address and
//! incarnation, can write anything: such writes are allowed to win. What plaintext mode
//! does not survive are forgeries that break what version vectors rely on: that one
//! `(origin, seq)` means one write everywhere (broken by claiming a member's origin, or
//! telling two nodes different things about one of its own), that an origin's writes
//! are accounted for as a prefix (broken by ranges leaving holes nobody can fill).
//! Honest replicas then stop exchanging what differs, or never stop resending. (Mixing
//! refused entries into groups beside taken ones used to be a third; nodes now account
//! for the taken ones one by one.) Those forgeries are behind
//! [`AdversaryConfig::claim_member_origins`], [`AdversaryConfig::equivocate`],
//! [`AdversaryConfig::leave_holes`] and [`AdversaryConfig::mix_refused_entries`], all
//! off by default. With them off the adversary keeps one ledger of what each of its
//! made-up origins wrote, sends groups that reach back to the origin's first sequence
//! number, and sends nothing whose content it cannot vouch for (see `Adversary::vet`),
//! so the oracle knows every write it made.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use crate::value::Value;
use crate::wire::{
    self, Ack, Data, Delta, Frame, GossipPeer, Group, Heartbeat, Message, Packet, SyncRequest,
    WireEntry, HEADER_LEN,
};

/// Delivered datagrams remembered for replays and mutations (a uniform sample).
const OBSERVED: usize = 512;
/// Made-up origins the adversary writes under at once.
const MADE_UP_ORIGINS: usize = 4;
/// Sequence numbers of one made-up origin before it is retired for a new one, which
/// keeps its groups (each reaching back to sequence number 1) small.
const LEDGER_SEQS: u64 = 24;

/// How the adversary behaves.
#[derive(Clone, Debug)]
pub struct AdversaryConfig {
    /// Virtual time between bursts.
    pub interval: Duration,
    /// Datagrams per burst, at most.
    pub burst: usize,
    /// Keys `k0..k{keys}` it writes, the honest writers' key space.
    pub keys: usize,
    /// Whether it answers challenges sent to its address (and so becomes a peer).
    pub verify: bool,
    /// Forged groups name members' origins, with sequence numbers they have not used yet
    /// (or a bare range over them). Origin frontiers keep a bare range from silencing a
    /// member on nodes that heard from it; a forged entry under a member's origin still
    /// names a write the member may later make differently, which splits replicas in
    /// plaintext mode: only origins that sign their writes would close that. Off by
    /// default.
    pub claim_member_origins: bool,
    /// Tells different nodes different things about one of its own `(origin, seq)`, and
    /// sends mutated messages whose content it cannot vouch for: splits honest replicas
    /// in plaintext mode. Off by default.
    pub equivocate: bool,
    /// Puts entries nodes refuse (oversized, or past the drift bound) in groups beside
    /// ones they take. Nodes now account for the taken ones one by one (they used to hold
    /// them unaccounted for, never offered on). Off by default: turning it on changes
    /// every seed's draws, and one of the 60 default seeds then meets a separate
    /// plaintext limit, a spoofer on the path taking a member's channel sequence numbers
    /// ahead of it, so the member's own datagrams with those numbers are acknowledged as
    /// duplicates and their partial messages linger until the reassembly timeout.
    pub mix_refused_entries: bool,
    /// Sends groups that do not reach back to sequence number 1, so a lost one leaves a
    /// hole no node can fill: every anti-entropy round then resends everything above
    /// it, forever, and the mesh never goes quiet. Off by default.
    pub leave_holes: bool,
}

impl Default for AdversaryConfig {
    fn default() -> AdversaryConfig {
        AdversaryConfig {
            interval: Duration::from_millis(40),
            burst: 4,
            keys: 45,
            verify: true,
            claim_member_origins: false,
            equivocate: false,
            mix_refused_entries: false,
            leave_holes: false,
        }
    }
}

/// A datagram the adversary sends.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Source address it carries (its own, or a spoofed member's).
    pub src: SocketAddr,
    /// Destination.
    pub dst: SocketAddr,
    /// The bytes.
    pub payload: Vec<u8>,
}

/// A write the adversary sent; the oracle lets it win over lower-ranked honest writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Forged {
    /// The key.
    pub key: String,
    /// The value; `None` for a delete.
    pub value: Option<Value>,
    /// `(hlc, origin, seq)`.
    pub rank: (u64, u64, u64),
}

/// What the adversary did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdversaryStats {
    /// Datagrams sent.
    pub sent: u64,
    /// Forged datagrams among them.
    pub forged: u64,
    /// Replays among them.
    pub replayed: u64,
    /// Mutated datagrams among them.
    pub mutated: u64,
    /// Sent from a member's address.
    pub spoofed: u64,
    /// Challenges it answered for its own address.
    pub challenges_answered: u64,
    /// Datagrams nodes sent to its address.
    pub received: u64,
    /// Replays or mutations not sent because their content could not be vouched for.
    pub withheld: u64,
}

/// What it learned about a member from traffic.
#[derive(Clone, Debug, Default)]
struct Member {
    incarnation: u64,
    node_id: Option<String>,
    /// Highest Data sequence number seen from it, to anyone.
    max_seq: u64,
    /// Its own channel towards this member: last sequence number and message id used,
    /// and the member incarnation they belong to.
    own_seq: u64,
    own_msg: u64,
    own_session: u64,
}

#[derive(Clone, Debug)]
struct Observed {
    src: SocketAddr,
    dst: SocketAddr,
    payload: Vec<u8>,
}

/// One made-up origin's ledger: every sequence number it used, with the write it
/// carries or `None` if it was burned by a bare range. Sent groups always carry exactly
/// the ledger's entries of their range, so every node hears one consistent story.
#[derive(Clone, Debug, Default)]
struct Ledger {
    seqs: BTreeMap<u64, Option<WireEntry>>,
}

/// The attacker.
#[derive(Debug)]
pub struct Adversary {
    /// Its own address.
    pub addr: SocketAddr,
    config: AdversaryConfig,
    rng: fastrand::Rng,
    cluster: u32,
    incarnation: u64,
    drift_ms: u64,
    observed: Vec<Observed>,
    seen: u64,
    members: BTreeMap<SocketAddr, Member>,
    honest_origins: BTreeSet<u64>,
    ledgers: BTreeMap<u64, Ledger>,
    forged: Vec<Forged>,
    ghosts: u64,
    /// Made-up origins retired or used for one refused write: never used again.
    retired: BTreeSet<u64>,
    active: bool,
    /// What it did so far.
    pub stats: AdversaryStats,
}

impl Adversary {
    /// An adversary at `addr` against a mesh named `cluster` whose nodes refuse
    /// timestamps more than `drift` ahead; `wall_ms` is the current virtual wall clock.
    pub fn new(
        addr: SocketAddr,
        config: AdversaryConfig,
        cluster: &str,
        drift: Duration,
        wall_ms: u64,
        seed: u64,
    ) -> Adversary {
        let mut rng = fastrand::Rng::with_seed(seed);
        let incarnation = (wall_ms << 16) | rng.u64(1..0xffff);
        Adversary {
            addr,
            config,
            cluster: wire::cluster_id(cluster),
            incarnation,
            drift_ms: drift.as_millis() as u64,
            observed: Vec::new(),
            seen: 0,
            members: BTreeMap::new(),
            honest_origins: BTreeSet::new(),
            ledgers: BTreeMap::new(),
            forged: Vec::new(),
            ghosts: 0,
            retired: BTreeSet::new(),
            active: true,
            stats: AdversaryStats::default(),
            rng,
        }
    }

    /// Every write it sent (that a node may have taken).
    pub fn forged(&self) -> &[Forged] {
        &self.forged
    }

    /// Its configuration.
    pub fn config(&self) -> &AdversaryConfig {
        &self.config
    }

    /// Stops attacking (it still hears what is sent to it, and answers nothing).
    pub fn stop(&mut self) {
        self.active = false;
    }

    /// Whether it is still attacking.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Tells it an origin honest nodes write under. A real attacker learns these from
    /// the incarnations in the traffic it sees; the simulator tells it at once so that
    /// it never mistakes one for its own made-up origins.
    pub fn note_honest_origin(&mut self, origin: u64) {
        self.honest_origins.insert(origin);
        self.ledgers.remove(&origin);
    }

    /// Sees a datagram the network delivered.
    pub fn observe(&mut self, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        let Ok(packet) = wire::decode_packet(self.cluster, payload) else {
            // Corrupted in flight: not worth replaying, and its re-checksummed copy
            // would carry content no honest node sent.
            return;
        };
        self.learn(src, &packet);
        self.seen += 1;
        let copy = Observed {
            src,
            dst,
            payload: payload.to_vec(),
        };
        if self.observed.len() < OBSERVED {
            self.observed.push(copy);
        } else {
            let at = self.rng.u64(..self.seen) as usize;
            if at < OBSERVED {
                self.observed[at] = copy;
            }
        }
    }

    fn learn(&mut self, src: SocketAddr, packet: &Packet) {
        let member = self.members.entry(src).or_default();
        if packet.src_inc >= member.incarnation {
            member.incarnation = packet.src_inc;
        }
        for frame in &packet.frames {
            match frame {
                Frame::Heartbeat(hb) => member.node_id = Some(hb.node_id.clone()),
                Frame::Data(d) => member.max_seq = member.max_seq.max(d.seq),
                _ => {}
            }
        }
    }

    /// Receives what a node sent to its address: answers challenges (if configured to
    /// pass the address check) and sometimes acknowledges data.
    pub fn receive(&mut self, from: SocketAddr, payload: &[u8]) -> Vec<Outgoing> {
        self.stats.received += 1;
        let Ok(packet) = wire::decode_packet(self.cluster, payload) else {
            return Vec::new();
        };
        self.learn(from, &packet);
        if !self.active || !self.config.verify {
            return Vec::new();
        }
        let mut frames: Vec<Frame> = packet
            .frames
            .iter()
            .filter_map(|f| match f {
                Frame::Challenge(n) => Some(Frame::Response(*n)),
                _ => None,
            })
            .collect();
        self.stats.challenges_answered += frames.len() as u64;
        let top = packet
            .frames
            .iter()
            .filter_map(|f| match f {
                Frame::Data(d) => Some(d.seq),
                _ => None,
            })
            .max();
        // A peer that acknowledges only sometimes keeps nodes retransmitting to it.
        if let Some(top) = top.filter(|_| self.rng.bool()) {
            frames.push(Frame::Ack(Ack {
                cumulative: top,
                ranges: Vec::new(),
                delay_us: 0,
            }));
        }
        if frames.is_empty() {
            return Vec::new();
        }
        frames.push(self.own_heartbeat());
        let payload = self.own_packet(from, frames);
        self.stats.sent += 1;
        vec![Outgoing {
            src: self.addr,
            dst: from,
            payload,
        }]
    }

    /// One burst of attacks on `targets` (the members' addresses) at virtual wall time
    /// `wall_ms`.
    pub fn act(&mut self, wall_ms: u64, targets: &[SocketAddr]) -> Vec<Outgoing> {
        let mut out = Vec::new();
        if !self.active || targets.is_empty() {
            return out;
        }
        // Stays known to every node: an introduction they challenge, and a heartbeat.
        let dst = targets[self.rng.usize(..targets.len())];
        let hb = self.own_heartbeat();
        let payload = self.own_packet(dst, vec![hb]);
        out.push(Outgoing {
            src: self.addr,
            dst,
            payload,
        });
        for _ in 0..self.rng.usize(1..=self.config.burst.max(1)) {
            let dst = targets[self.rng.usize(..targets.len())];
            let sent = match self.rng.u32(..100) {
                0..=11 => self.forge_heartbeat(dst, targets),
                12..=19 => self.spoof_incarnation(wall_ms, dst, targets),
                20..=39 => self.forge_delta(wall_ms, dst, targets),
                40..=45 => self.forge_sync_request(dst),
                46..=53 => self.forge_fragments(dst, targets),
                54..=74 => self.replay(dst),
                _ => self.mutate(),
            };
            out.extend(sent);
        }
        self.stats.sent += out.len() as u64;
        out
    }

    fn own_heartbeat(&mut self) -> Frame {
        Frame::Heartbeat(Heartbeat {
            node_id: "mallory".to_owned(),
            fingerprint: self.rng.u64(..),
            reply: self.rng.bool(),
            members: self.rng.u32(..),
            gossip: Vec::new(),
        })
    }

    /// A packet from its own address to `dst`, carrying the incarnation it last heard.
    fn own_packet(&mut self, dst: SocketAddr, frames: Vec<Frame>) -> Vec<u8> {
        let dst_inc = self.members.get(&dst).map_or(0, |m| m.incarnation);
        wire::encode_packet(
            self.cluster,
            &Packet {
                src_inc: self.incarnation,
                dst_inc,
                src_session: 0,
                dst_session: 0,
                frames,
            },
        )
    }

    /// A packet spoofed from member `src` to `dst`, with `src`'s incarnation.
    fn spoofed_packet(&self, src: SocketAddr, dst: SocketAddr, frames: Vec<Frame>) -> Vec<u8> {
        let src_inc = self.members.get(&src).map_or(1, |m| m.incarnation.max(1));
        let dst_inc = self.members.get(&dst).map_or(0, |m| m.incarnation);
        wire::encode_packet(
            self.cluster,
            &Packet {
                src_inc,
                dst_inc,
                src_session: 0,
                dst_session: 0,
                frames,
            },
        )
    }

    /// Some member's address other than `dst`, if any.
    fn other(&mut self, dst: SocketAddr, targets: &[SocketAddr]) -> Option<SocketAddr> {
        let others: Vec<SocketAddr> = targets.iter().copied().filter(|a| *a != dst).collect();
        (!others.is_empty()).then(|| others[self.rng.usize(..others.len())])
    }

    fn made_up_addr(&mut self) -> SocketAddr {
        SocketAddr::from((
            [10, self.rng.u8(..), self.rng.u8(..), self.rng.u8(1..)],
            self.rng.u16(1..),
        ))
    }

    /// A node id: a member's (stolen) or a new one.
    fn some_node_id(&mut self) -> String {
        let known: Vec<String> = self
            .members
            .values()
            .filter_map(|m| m.node_id.clone())
            .collect();
        if !known.is_empty() && self.rng.bool() {
            known[self.rng.usize(..known.len())].clone()
        } else {
            self.ghosts += 1;
            format!("ghost-{}", self.ghosts)
        }
    }

    /// A heartbeat claiming an existing or new node id, with gossip of many made-up
    /// addresses (and some members' ids at made-up addresses), from its own address or
    /// spoofed from a member's.
    fn forge_heartbeat(&mut self, dst: SocketAddr, targets: &[SocketAddr]) -> Vec<Outgoing> {
        let count = if self.rng.u8(..4) == 0 {
            self.rng.usize(100..600)
        } else {
            self.rng.usize(1..12)
        };
        let gossip = (0..count)
            .map(|_| GossipPeer {
                node_id: self.some_node_id(),
                addr: if self.rng.u8(..8) == 0 {
                    targets[self.rng.usize(..targets.len())]
                } else {
                    self.made_up_addr()
                },
            })
            .collect();
        let hb = Frame::Heartbeat(Heartbeat {
            node_id: self.some_node_id(),
            fingerprint: self.rng.u64(..),
            reply: self.rng.bool(),
            members: self.rng.u32(..),
            gossip,
        });
        self.stats.forged += 1;
        let (src, payload) = match self.other(dst, targets).filter(|_| self.rng.bool()) {
            Some(src) => {
                self.stats.spoofed += 1;
                (src, self.spoofed_packet(src, dst, vec![hb]))
            }
            None => (self.addr, self.own_packet(dst, vec![hb])),
        };
        vec![Outgoing { src, dst, payload }]
    }

    /// A member's restart, spoofed from its address: `u64::MAX`, just above its
    /// incarnation, or a fresh one up to the drift bound ahead.
    fn spoof_incarnation(
        &mut self,
        wall_ms: u64,
        dst: SocketAddr,
        targets: &[SocketAddr],
    ) -> Vec<Outgoing> {
        let Some(src) = self.other(dst, targets) else {
            return Vec::new();
        };
        let known = self.members.get(&src).map_or(0, |m| m.incarnation);
        let src_inc = match self.rng.u8(..4) {
            0 => u64::MAX,
            1 => known.saturating_add(self.rng.u64(1..1000)),
            2 => ((wall_ms + self.rng.u64(..self.drift_ms.max(1))) << 16) | self.rng.u64(..0xffff),
            _ => (wall_ms << 16) | self.rng.u64(..0xffff),
        };
        let node_id = self
            .members
            .get(&src)
            .and_then(|m| m.node_id.clone())
            .unwrap_or_else(|| "n0".to_owned());
        let mut frames = vec![Frame::Heartbeat(Heartbeat {
            node_id,
            fingerprint: self.rng.u64(..),
            reply: true,
            members: 0,
            gossip: Vec::new(),
        })];
        if self.rng.bool() {
            // A guessed answer to a challenge it never saw.
            frames.push(Frame::Response(self.rng.u64(..)));
        }
        let dst_inc = self.members.get(&dst).map_or(0, |m| m.incarnation);
        let payload = wire::encode_packet(
            self.cluster,
            &Packet {
                src_inc,
                dst_inc,
                src_session: 0,
                dst_session: 0,
                frames,
            },
        );
        self.stats.forged += 1;
        self.stats.spoofed += 1;
        vec![Outgoing { src, dst, payload }]
    }

    fn forged_value(&mut self) -> Option<Value> {
        match self.rng.u8(..6) {
            0 => None,
            1 => Some(Value::from(format!("forged-{}", self.rng.u32(..)))),
            2 => Some(Value::Bytes(vec![0xee; self.rng.usize(..2000)])),
            _ => Some(Value::Int(self.rng.i64(..))),
        }
    }

    fn forged_key(&mut self) -> String {
        match self.rng.u8(..10) {
            0 => format!("adv-{}", self.rng.u8(..20)),
            _ => format!("k{}", self.rng.usize(..self.config.keys.max(1))),
        }
    }

    /// A timestamp from a little behind the wall clock to the drift bound ahead.
    fn forged_hlc(&mut self, wall_ms: u64) -> u64 {
        let ms = match self.rng.u8(..10) {
            0 => wall_ms.saturating_sub(self.rng.u64(..10_000)),
            // The nodes' clocks are skewed by up to a second: stay inside the bound.
            _ => wall_ms + self.rng.u64(..self.drift_ms.saturating_sub(1_500).max(1)),
        };
        (ms << 16) | self.rng.u64(..0xffff)
    }

    /// A write some or all nodes refuse: a key longer than any node accepts, or a
    /// timestamp past the drift bound. Alone in its group under an origin of its own,
    /// unless [`AdversaryConfig::mix_refused_entries`] is on: then appended to a ledger
    /// group, so a node takes the entries beside it and must account for them one by
    /// one, leaving the refused one open until it is sent again.
    fn refused_group(&mut self, wall_ms: u64) -> Group {
        let key = self.forged_key();
        let oversized = self.rng.bool();
        let (key, hlc) = if oversized {
            (
                format!("{key}{}", "x".repeat(2_000)),
                self.forged_hlc(wall_ms),
            )
        } else {
            // Just past the bound: some nodes take it at once, the rest once their
            // clocks catch up.
            let ms = wall_ms + self.drift_ms + self.rng.u64(1..20_000);
            (key, (ms << 16) | self.rng.u64(..0xffff))
        };
        let value = self.forged_value();
        if self.config.mix_refused_entries && !self.ledgers.is_empty() && self.rng.bool() {
            let mut group = self.ledger_group(wall_ms);
            let seq = group.hi + 1;
            let origin = group.origin;
            let entry = WireEntry {
                seq,
                hlc,
                key: key.clone().into(),
                value: value.clone(),
                expires: None,
            };
            // The ledger holds what some node may have taken, so that every later group
            // tells the same story about `seq`: a write past the drift bound is taken by
            // nodes whose clocks are ahead, and recording it as burned would tell the
            // others it never existed (an equivocation, which splits replicas in
            // plaintext mode). No node takes an oversized one: burned is the truth.
            if let Some(ledger) = self.ledgers.get_mut(&origin) {
                ledger.seqs.insert(seq, (!oversized).then(|| entry.clone()));
            }
            group.hi = seq;
            group.entries.push(entry);
            self.forged.push(Forged {
                key,
                value,
                rank: (hlc, origin, seq),
            });
            return group;
        }
        // An origin of its own, with this one write: whether a node takes it or not, no
        // node's account of the origin has a hole.
        let origin = self.made_up_origin(wall_ms);
        self.retired.insert(origin);
        let seq = 1;
        self.forged.push(Forged {
            key: key.clone(),
            value: value.clone(),
            rank: (hlc, origin, seq),
        });
        Group {
            origin,
            lo: seq,
            hi: seq,
            entries: vec![WireEntry {
                seq,
                hlc,
                key: key.into(),
                value,
                expires: None,
            }],
        }
    }

    fn made_up_origin(&mut self, wall_ms: u64) -> u64 {
        loop {
            let o = ((wall_ms - self.rng.u64(..3_600_000)) << 16) | self.rng.u64(..0xffff);
            if !self.honest_origins.contains(&o)
                && o != self.incarnation
                && !self.retired.contains(&o)
                && !self.ledgers.contains_key(&o)
            {
                return o;
            }
        }
    }

    /// One group of a made-up origin, consistent with its ledger: new writes and burned
    /// sequence numbers are appended, and a range always carries exactly the ledger's
    /// entries in it.
    fn ledger_group(&mut self, wall_ms: u64) -> Group {
        if self.ledgers.len() < MADE_UP_ORIGINS {
            let origin = self.made_up_origin(wall_ms);
            self.ledgers.insert(origin, Ledger::default());
        }
        let origins: Vec<u64> = self.ledgers.keys().copied().collect();
        let origin = origins[self.rng.usize(..origins.len())];
        let top = self.ledgers[&origin]
            .seqs
            .keys()
            .last()
            .copied()
            .unwrap_or(0);
        // Extend the ledger: writes, or a bare range of burned sequence numbers.
        let fresh = self.rng.u64(1..6);
        let bare = self.rng.u8(..5) == 0;
        for seq in top + 1..=top + fresh {
            let entry = if bare {
                None
            } else {
                let key = self.forged_key();
                let value = self.forged_value();
                let hlc = self.forged_hlc(wall_ms);
                self.forged.push(Forged {
                    key: key.clone(),
                    value: value.clone(),
                    rank: (hlc, origin, seq),
                });
                Some(WireEntry {
                    seq,
                    hlc,
                    key: key.into(),
                    value,
                    expires: None,
                })
            };
            self.ledgers
                .get_mut(&origin)
                .expect("inserted above")
                .seqs
                .insert(seq, entry);
        }
        let hi = top + fresh;
        // From the first sequence number: whichever of its groups a node gets, the node
        // accounts for a prefix, as it does for an honest origin's.
        let lo = match self.rng.u8(..2) {
            0 if self.config.leave_holes => self.rng.u64(1..=hi),
            1 if self.config.leave_holes => top + 1,
            _ => 1,
        };
        let mut entries: Vec<WireEntry> = self.ledgers[&origin]
            .seqs
            .range(lo..=hi)
            .filter_map(|(_, e)| e.clone())
            .collect();
        if self.config.equivocate && !entries.is_empty() && self.rng.bool() {
            // Another story about a sequence number already told.
            let at = self.rng.usize(..entries.len());
            entries[at].key = self.forged_key().into();
            entries[at].value = Some(Value::Int(self.rng.i64(..)));
            let e = &entries[at];
            self.forged.push(Forged {
                key: e.key.to_string(),
                value: e.value.clone(),
                rank: (e.hlc, origin, e.seq),
            });
        }
        if hi >= LEDGER_SEQS {
            self.ledgers.remove(&origin);
            self.retired.insert(origin);
        }
        Group {
            origin,
            lo,
            hi,
            entries,
        }
    }

    /// A group under a member's origin, at sequence numbers it has not used yet (or a
    /// bare range over them).
    fn member_origin_group(&mut self, wall_ms: u64) -> Option<Group> {
        let origins: Vec<u64> = self.honest_origins.iter().copied().collect();
        if origins.is_empty() {
            return None;
        }
        let origin = origins[self.rng.usize(..origins.len())];
        let lo = self.rng.u64(1..400);
        let hi = lo + self.rng.u64(..50);
        let mut entries = Vec::new();
        if self.rng.bool() {
            let key = self.forged_key();
            let value = self.forged_value();
            let hlc = self.forged_hlc(wall_ms);
            self.forged.push(Forged {
                key: key.clone(),
                value: value.clone(),
                rank: (hlc, origin, hi),
            });
            entries.push(WireEntry {
                seq: hi,
                hlc,
                key: key.into(),
                value,
                expires: None,
            });
        }
        Some(Group {
            origin,
            lo,
            hi,
            entries,
        })
    }

    /// Data frames carrying `message` on its own channel to `dst`, or spoofed on member
    /// `src`'s channel to `dst` (just above the sequence numbers seen from it).
    fn data_frames(&mut self, src: SocketAddr, dst: SocketAddr, message: &[u8]) -> Vec<Frame> {
        let own = src == self.addr;
        let dst_inc = self.members.get(&dst).map_or(0, |m| m.incarnation);
        let (seq, msg_id) = if own {
            let m = self.members.entry(dst).or_default();
            if m.own_session != dst_inc {
                // The node restarted: a new session starts at sequence number 1.
                m.own_session = dst_inc;
                m.own_seq = 0;
                m.own_msg = 0;
            }
            m.own_msg += 1;
            (m.own_seq + 1, m.own_msg)
        } else {
            // Just ahead of the member's own numbers: taken, they make its next few
            // fragments look like duplicates to `dst` (the message is lost, anti-entropy
            // repairs it), which is the most a spoofer can do to its channel.
            let max_seq = self.members.get(&src).map_or(0, |m| m.max_seq);
            (max_seq + self.rng.u64(1..8), self.rng.u64(1..1000))
        };
        let pieces: Vec<&[u8]> = message.chunks(1_100).collect();
        let frames: Vec<Frame> = pieces
            .iter()
            .enumerate()
            .map(|(i, piece)| {
                Frame::Data(Data {
                    seq: seq + i as u64,
                    msg_id,
                    frag: i as u32,
                    frags: pieces.len() as u32,
                    bytes: piece.to_vec(),
                })
            })
            .collect();
        if own {
            let m = self.members.entry(dst).or_default();
            m.own_seq += frames.len() as u64;
        }
        frames
    }

    /// Writes and deletes under made-up origins (and, if configured, members'), with
    /// bare ranges, from its own address or spoofed from a member's.
    fn forge_delta(
        &mut self,
        wall_ms: u64,
        dst: SocketAddr,
        targets: &[SocketAddr],
    ) -> Vec<Outgoing> {
        let mut groups = Vec::new();
        for _ in 0..self.rng.usize(1..4) {
            let group = match self.rng.u8(..8) {
                0 | 1 if self.config.claim_member_origins => self.member_origin_group(wall_ms),
                2 => Some(self.refused_group(wall_ms)),
                _ => Some(self.ledger_group(wall_ms)),
            };
            groups.extend(group);
        }
        let message = wire::encode_message(&Message::Delta(Delta { groups }));
        self.stats.forged += 1;
        let src = match self.other(dst, targets).filter(|_| self.rng.u8(..4) == 0) {
            Some(src) => src,
            None => self.addr,
        };
        self.send_data(src, dst, &message)
    }

    /// Sends `message` as Data from `src` (its own address or a spoofed one): one
    /// datagram per fragment.
    fn send_data(&mut self, src: SocketAddr, dst: SocketAddr, message: &[u8]) -> Vec<Outgoing> {
        let frames = self.data_frames(src, dst, message);
        if src != self.addr {
            self.stats.spoofed += 1;
        }
        frames
            .into_iter()
            .map(|f| {
                let payload = if src == self.addr {
                    self.own_packet(dst, vec![f])
                } else {
                    self.spoofed_packet(src, dst, vec![f])
                };
                Outgoing { src, dst, payload }
            })
            .collect()
    }

    /// A digest claiming far less or far more than it holds: the node streams to it.
    fn forge_sync_request(&mut self, dst: SocketAddr) -> Vec<Outgoing> {
        let mut digest: Vec<(u64, u64)> = self
            .honest_origins
            .iter()
            .map(|&o| (o, if self.rng.bool() { 0 } else { self.rng.u64(..) }))
            .collect();
        for _ in 0..self.rng.usize(..200) {
            digest.push((self.rng.u64(..), self.rng.u64(..)));
        }
        let reply = self.rng.bool();
        let want = match self.rng.u8(..4) {
            0 => wire::Want::Nothing,
            1 => wire::Want::Above(digest.iter().map(|&(o, _)| (o, self.rng.u64(..))).collect()),
            _ => wire::Want::All,
        };
        let number = self.rng.u64(..4);
        let message = wire::encode_message(&Message::SyncRequest(SyncRequest {
            digest,
            reply,
            want,
            number,
        }));
        self.stats.forged += 1;
        self.send_data(self.addr, dst, &message)
    }

    /// Fragments no honest sender cuts: zero or huge fragment counts, indexes past the
    /// count, counts that disagree within one message, oversized pieces, a message never
    /// completed; garbage bytes, which no node can decode into a write.
    fn forge_fragments(&mut self, dst: SocketAddr, targets: &[SocketAddr]) -> Vec<Outgoing> {
        let src = match self.other(dst, targets).filter(|_| self.rng.u8(..4) == 0) {
            Some(src) => src,
            None => self.addr,
        };
        let mut frames = self.data_frames(src, dst, &[0xff; 8]);
        let Some(Frame::Data(template)) = frames.pop() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for i in 0..self.rng.u64(1..6) {
            let (frag, frags) = match self.rng.u8(..6) {
                0 => (0, 0),
                1 => (self.rng.u32(..), u32::MAX),
                2 => (5, 3),
                3 => (i as u32, 1_000_000),
                4 => (i as u32, 2 + i as u32),
                _ => (self.rng.u32(..4), self.rng.u32(1..5)),
            };
            let len = if self.rng.u8(..4) == 0 {
                self.rng.usize(..60_000)
            } else {
                self.rng.usize(..1_200)
            };
            let data = Data {
                seq: template.seq + i,
                msg_id: template.msg_id,
                frag,
                frags,
                // 0xff is no variant of `Message`: whatever is reassembled is dropped.
                bytes: vec![0xff; len],
            };
            let payload = if src == self.addr {
                self.own_packet(dst, vec![Frame::Data(data)])
            } else {
                self.spoofed_packet(src, dst, vec![Frame::Data(data)])
            };
            out.push(Outgoing { src, dst, payload });
        }
        if src == self.addr {
            // `data_frames` counted the template's sequence number; these replace it.
            let m = self.members.entry(dst).or_default();
            m.own_seq = template.seq + out.len() as u64 - 1;
        } else {
            self.stats.spoofed += 1;
        }
        self.stats.forged += 1;
        out
    }

    fn pick_observed(&mut self) -> Option<Observed> {
        (!self.observed.is_empty())
            .then(|| self.observed[self.rng.usize(..self.observed.len())].clone())
    }

    /// A delivered datagram sent again later: from its original source (spoofed) to its
    /// original or another destination, or from its own address with its own channel's
    /// sequence numbers.
    fn replay(&mut self, dst: SocketAddr) -> Vec<Outgoing> {
        let Some(seen) = self.pick_observed() else {
            return Vec::new();
        };
        if self.rng.bool() {
            let to = if self.rng.u8(..3) == 0 { dst } else { seen.dst };
            if !self.vet(&seen.payload, &seen.payload, false) {
                return Vec::new();
            }
            self.stats.replayed += 1;
            self.stats.spoofed += 1;
            return vec![Outgoing {
                src: seen.src,
                dst: to,
                payload: seen.payload,
            }];
        }
        let Ok(packet) = wire::decode_packet(self.cluster, &seen.payload) else {
            return Vec::new();
        };
        let mut frames = Vec::new();
        for frame in packet.frames {
            match frame {
                // Whole messages only: fragments of several messages under its one
                // channel could reassemble into content no honest node sent.
                Frame::Data(d) if d.frags == 1 => {
                    frames.extend(self.data_frames(self.addr, dst, &d.bytes))
                }
                Frame::Data(_) => {}
                other => frames.push(other),
            }
        }
        if frames.is_empty() {
            return Vec::new();
        }
        self.stats.replayed += 1;
        let payload = self.own_packet(dst, frames);
        vec![Outgoing {
            src: self.addr,
            dst,
            payload,
        }]
    }

    /// A delivered datagram with one change, re-checksummed, from its original source.
    fn mutate(&mut self) -> Vec<Outgoing> {
        let Some(seen) = self.pick_observed() else {
            return Vec::new();
        };
        let mut bytes = seen.payload.clone();
        match self.rng.u8(..7) {
            0 | 1 => {
                let at = self
                    .rng
                    .usize(HEADER_LEN.min(bytes.len())..bytes.len().max(1));
                if at < bytes.len() {
                    bytes[at] ^= 1 << self.rng.u8(..8);
                }
            }
            2 => bytes.truncate(self.rng.usize(HEADER_LEN..=bytes.len().max(HEADER_LEN))),
            3 => {
                let n = self.rng.usize(1..200);
                bytes.extend((0..n).map(|_| self.rng.u8(..)));
            }
            4 => {
                // Version, kind, flags, reserved or cluster id.
                let at = self.rng.usize(2..10);
                bytes[at] = self.rng.u8(..);
            }
            _ => {
                let Ok(mut packet) = wire::decode_packet(self.cluster, &bytes) else {
                    return Vec::new();
                };
                let known = packet.src_inc;
                match self.rng.u8(..6) {
                    0 => packet.src_inc = u64::MAX,
                    1 => packet.src_inc = known.wrapping_add(1),
                    2 => packet.src_inc = 0,
                    3 => packet.dst_inc = self.rng.u64(..),
                    4 => packet.dst_inc = 0,
                    // A packet naming no session of the receiver's: what a sender that
                    // has not heard from it yet sends.
                    _ => packet.dst_session = 0,
                }
                bytes = wire::encode_packet(self.cluster, &packet);
            }
        }
        if bytes.len() >= HEADER_LEN {
            let len = (bytes.len() - HEADER_LEN).min(u16::MAX as usize) as u16;
            if self.rng.u8(..8) != 0 {
                bytes[10..12].copy_from_slice(&len.to_be_bytes());
            }
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&bytes[..12]);
            hasher.update(&bytes[HEADER_LEN..]);
            let crc = hasher.finalize();
            bytes[12..16].copy_from_slice(&crc.to_be_bytes());
        }
        if !self.vet(&seen.payload, &bytes, true) {
            return Vec::new();
        }
        self.stats.mutated += 1;
        self.stats.spoofed += 1;
        vec![Outgoing {
            src: seen.src,
            dst: seen.dst,
            payload: bytes,
        }]
    }

    /// Whether `sent`, derived from the delivered datagram `original`, carries only
    /// content an honest node sent or content no node can take for a write. Sent from a
    /// member's address, a Data frame reaches the payload decoder when its sequence
    /// number is new on that channel (a restarted receiver, an edited `dst_inc` or
    /// `dst_session`, a fragment refused the first time): then its bytes must be the original's and the
    /// message whole, or not decode at all. With [`AdversaryConfig::equivocate`] on,
    /// anything goes.
    fn vet(&mut self, original: &[u8], sent: &[u8], mutated: bool) -> bool {
        if self.config.equivocate {
            return true;
        }
        let Ok(packet) = wire::decode_packet(self.cluster, sent) else {
            return true;
        };
        let genuine: Vec<Vec<u8>> = wire::decode_packet(self.cluster, original)
            .map(|p| {
                p.frames
                    .into_iter()
                    .filter_map(|f| match f {
                        Frame::Data(d) => Some(d.bytes),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ok = packet.frames.iter().all(|f| match f {
            Frame::Data(d) => {
                let whole = d.frags == 1 && d.frag == 0;
                let same = genuine.contains(&d.bytes);
                if mutated || (packet.dst_inc == 0 && packet.dst_session == 0) {
                    // A new session (or an edited frame) may take it: only whole genuine
                    // messages, or bytes that do not decode.
                    whole && (same || wire::decode_message(&d.bytes).is_err())
                } else {
                    same
                }
            }
            _ => true,
        });
        if !ok {
            self.stats.withheld += 1;
        }
        ok
    }
}
