//! The sans-IO protocol engine: every protocol decision, no socket, thread or clock.
//!
//! # Driving contract
//!
//! The driver owns the socket and the clock and calls, in any interleaving:
//!
//! - inputs: [`Engine::handle_datagram`] for each datagram received,
//!   [`Engine::handle_timeout`] once the time from [`Engine::poll_timeout`] has come;
//! - commands: [`Engine::set`], [`Engine::set_with_ttl`], [`Engine::delete`],
//!   [`Engine::add_bootstrap_peer`], [`Engine::start`], and [`Engine::expire`] before
//!   reading the replica between inputs;
//! - outputs, drained after every input or command: [`Engine::poll_transmit`] until
//!   `None` (datagrams to send), [`Engine::poll_event`] until `None` (events for the
//!   application), then [`Engine::poll_timeout`] (when to call `handle_timeout` next).
//!
//! Time comes in as [`Now`]; randomness from a generator seeded at construction. Given the
//! same seed and the same inputs at the same times, an engine makes the same decisions:
//! that is what the simulator relies on.
//!
//! # Rooms
//!
//! The engine is wiring. Each concern has its own module and the engine connects them:
//! `wire` (datagram codec), `transport` (reliable delivery, one channel per peer
//! session), `members` (who the peers are, liveness), `sync` (anti-entropy deltas),
//! `feed` (which peer streams this node what it lacks), `push` (pacing of local
//! writes), `broadcast` (the tree writes travel beyond the push fanout), `tombstones` (when deletes may be forgotten), `retire` (when an origin
//! leaves the digests),
//! `replica` (the LWW map), `hlc` (the clock) and `timers` (every deadline, in one
//! table).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use crate::broadcast::Broadcast;
use crate::config::Config;
use crate::error::{ConfigError, Error};
use crate::event::{ChangeOrigin, Event};
use crate::feed::{self, Ended, Feed};
use crate::frontier::Frontiers;
use crate::hlc::{HlcClock, LOGICAL_BITS};
use crate::link::{channel_limits, Link, SessionCheck};
use crate::members::{Admission, Heard, Identified, Members, Timing, Transition};
use crate::origin::origin_id;
use crate::propagation::PropagationLag;
use crate::push::Pushes;
use crate::recent::{self, RecentWrites};
use crate::replica::Replica;
use crate::retire::RetireRules;
use crate::seal::{NoncePrefix, Seal};
use crate::status::Counters;
use crate::sync::{self, Asked, EncodedDelta, PeerDigest, SeqRange, MIN_TRIGGERED_SYNC_GAP_US};
use crate::time::{us, Now};
use crate::timers::{Timer, TimerTable};
use crate::tombstones::TombstoneRules;
use crate::transport::{ChannelLimits, Received};
use crate::value::Value;
use crate::verify::Verifier;
use crate::wire::{self, Frame, Heartbeat, Message, SyncRequest};

/// How often dropped datagrams are logged, one line per reason: a flood of bad
/// datagrams costs one log line per reason and interval, not one per datagram.
const DROP_REPORT_INTERVAL_US: u64 = 10_000_000;

mod browse;
mod durable;
mod handshake;
mod keys;
mod path;
mod report;
mod resend;
mod swim;
mod transmit;
mod tree;
mod user;

pub use browse::{KeyEntry, KeyPage, KeyQuery};
pub use report::MemoryReport;

/// Longest TTL [`Engine::set_with_ttl`] accepts: 365 days. A value meant to outlive it
/// is written without a TTL (and deleted when done).
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub dst: SocketAddr,
    /// The datagram.
    pub payload: Vec<u8>,
}

/// The protocol state machine of one node.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    cluster: u32,
    incarnation: u64,
    rng: fastrand::Rng,
    clock: HlcClock,
    replica: Replica,
    /// How far each origin heard from directly vouched its writes go.
    frontiers: Frontiers,
    /// The one peer asked to stream everything this node lacks (see `feed`).
    feed: Feed,
    members: Members,
    /// One per member, same keys.
    links: BTreeMap<SocketAddr, Link>,
    limits: ChannelLimits,
    timers: TimerTable,
    /// Peers whose timer must be recomputed before the current call returns.
    touched: BTreeSet<SocketAddr>,
    /// Links that may have something to send: touched since they were last drained, or
    /// still busy. Producing datagrams visits these, not every link, so an idle member
    /// costs nothing per datagram in a mesh of thousands.
    sending: BTreeSet<SocketAddr>,
    pushes: Pushes,
    /// The broadcast tree writes travel in a mesh larger than the push fanout.
    broadcast: Broadcast,
    /// Other origins' writes too recent for a stream (see `recent`).
    recent: RecentWrites,
    /// Since when syncs have been held back while new writes arrived, if they are.
    syncs_held_since: Option<u64>,
    verifier: Verifier,
    tombstones: TombstoneRules,
    retire: RetireRules,
    /// Drop counters as of the last drop report.
    reported_drops: crate::status::DropCounters,
    started: bool,
    started_at_us: u64,
    /// First anti-entropy round and tombstone collection, armed at start.
    first_rounds_us: (u64, u64),
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    emit_events: bool,
    counters: Counters,
    /// Propagation lag of the remote writes applied.
    propagation: PropagationLag,
    /// The keyring and everything sealing needs (see `seal`).
    seal: Seal,
    /// The probe round, indirect probes, rumors (see `swim`).
    swim: swim::Swim,
}

impl Engine {
    /// A new engine. `incarnation` must differ between runs of the same node id (the
    /// runtime derives it from the wall clock) and be non-zero; `seed` drives every random
    /// choice. The replica writes under the origin id of this node id and incarnation
    /// (see `origin`). `nonce_prefix` starts every nonce this engine seals with: it must
    /// never repeat between engines sharing a key (draw it with [`NoncePrefix::from_os`]).
    pub fn new(
        config: Config,
        incarnation: u64,
        seed: u64,
        nonce_prefix: NoncePrefix,
        now: Now,
    ) -> Engine {
        let mut rng = fastrand::Rng::with_seed(seed);
        let first_sync = now.mono_us + jittered(&mut rng, us(config.sync_interval));
        let first_gc = now.mono_us + us(config.sync_interval);
        Engine {
            cluster: wire::cluster_id(&config.cluster),
            clock: HlcClock::new(config.max_clock_drift.as_millis() as u64),
            replica: Replica::new(origin_id(&config.node_id, incarnation.max(1)))
                .remembering_collected(config.max_collected_deletes),
            frontiers: Frontiers::default(),
            feed: Feed::default(),
            incarnation: incarnation.max(1),
            rng,
            members: Members::new(&config.node_id, Timing::new(&config), config.max_peers),
            links: BTreeMap::new(),
            limits: channel_limits(&config),
            timers: TimerTable::default(),
            touched: BTreeSet::new(),
            sending: BTreeSet::new(),
            pushes: Pushes::new(us(config.push_delay)),
            broadcast: Broadcast::default(),
            recent: RecentWrites::default(),
            syncs_held_since: None,
            // A challenge outlives any plausible round trip and a few lost answers.
            verifier: Verifier::new(2 * us(config.peer_timeout)),
            tombstones: TombstoneRules::new(&config),
            retire: RetireRules::new(&config),
            reported_drops: Default::default(),
            started: false,
            started_at_us: now.mono_us,
            first_rounds_us: (first_sync, first_gc),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            emit_events: true,
            counters: Counters::default(),
            propagation: PropagationLag::default(),
            seal: {
                let mut seal = Seal::new(&config.node_id, &config.keyring, nonce_prefix);
                seal.set_compression(config.compression);
                seal
            },
            swim: swim::Swim::default(),
            config,
        }
    }

    // ----- commands ------------------------------------------------------------------

    /// Whether state-change and peer events are queued for [`Engine::poll_event`]. On by
    /// default; a driver with nobody listening turns them off to save memory.
    pub fn set_emit_state_events(&mut self, on: bool) {
        self.emit_events = on;
    }

    /// Starts talking to the network: bootstrap peers are contacted at once.
    pub fn start(&mut self, now: Now) {
        if self.started {
            return;
        }
        self.started = true;
        self.started_at_us = now.mono_us;
        // Values restored from a store may have expired while the node was down.
        self.expire(now);
        self.members.start(now.mono_us);
        self.touched.extend(self.links.keys().copied());
        if self.pushes.is_pending(self.replica.own_seq()) {
            self.timers.set(Timer::Push, Some(now.mono_us));
        }
        let (first_sync, first_gc) = self.first_rounds_us;
        self.timers.set(Timer::AntiEntropy, Some(first_sync));
        self.timers.set(Timer::CollectTombstones, Some(first_gc));
        self.arm_tree_timer(now.mono_us);
        self.timers.set(
            Timer::ReportDrops,
            Some(now.mono_us + DROP_REPORT_INTERVAL_US),
        );
        // Nodes started together do not probe in lockstep.
        let first_probe = self.rng.u64(0..=us(self.config.heartbeat_interval));
        self.timers
            .set(Timer::Probe, Some(now.mono_us + first_probe));
        self.refresh_timers();
    }

    /// Adds a peer address to contact (made canonical first: a v4-mapped IPv6 address is
    /// taken as the IPv4 address it maps, see [`crate::addr`]).
    pub fn add_bootstrap_peer(&mut self, now: Now, addr: SocketAddr) {
        let addr = crate::addr::canonical(addr);
        if self.members.add_bootstrap(addr, now.mono_us) {
            self.add_link(addr);
        }
        // A known member given as bootstrap is probed and kept from now on.
        self.touched.insert(addr);
        self.refresh_timers();
    }

    /// Withdraws the operator's word for a bootstrap address (a DNS seed that no longer
    /// resolves to it): a member never heard from there is forgotten at once; one that
    /// was is kept, but forgotten like any other member once it has been dead long
    /// enough. Returns whether a bootstrap member was there.
    pub fn remove_bootstrap_peer(&mut self, addr: SocketAddr) -> bool {
        let addr = crate::addr::canonical(addr);
        match self.members.unbootstrap(&addr) {
            None => false,
            Some(heard) => {
                if !heard {
                    self.remove_peer(addr);
                }
                self.touched.insert(addr);
                self.refresh_timers();
                true
            }
        }
    }

    /// The failure detector's view of the member at `addr` and its node id, if it is
    /// one; and, for `node_id`, whether a member of that id is alive or suspect at any
    /// address. The node driver watches its DNS seeds with it.
    pub fn seed_health(
        &self,
        addr: &SocketAddr,
    ) -> Option<(crate::status::PeerState, Option<&str>)> {
        let member = self.members.get(&crate::addr::canonical(*addr))?;
        Some((member.state, member.node_id.as_deref()))
    }

    /// Whether a member named `node_id` is alive or suspect, at any address.
    pub fn is_node_reachable(&self, node_id: &str) -> bool {
        self.members
            .iter()
            .any(|m| m.is_reachable() && m.node_id.as_deref() == Some(node_id))
    }

    /// Writes `value` under `key`.
    pub fn set(&mut self, now: Now, key: &str, value: Value) -> Result<(), Error> {
        self.set_expiring(now, key, value, None)
    }

    /// Writes `value` under `key` for `ttl`: the write carries its expiry, the HLC
    /// timestamp `ttl` after its own, to every node. Each node turns it into a tombstone
    /// (same identity, no new write) once its clock reaches that timestamp, reports a
    /// [`ChangeOrigin::Expired`] change, and collects it like a delete. A later write to
    /// the key wins as usual; one without a TTL makes the key permanent again.
    ///
    /// `ttl` must be positive and at most [`MAX_TTL`] (an [`Error::Config`] for field
    /// `ttl` otherwise); it counts in milliseconds, rounded up.
    pub fn set_with_ttl(
        &mut self,
        now: Now,
        key: &str,
        value: Value,
        ttl: Duration,
    ) -> Result<(), Error> {
        let ttl_ms = check_ttl(ttl)?;
        self.set_expiring(now, key, value, Some(ttl_ms))
    }

    /// Writes `value` under `key`, expiring `ttl_ms` after the write if given.
    fn set_expiring(
        &mut self,
        now: Now,
        key: &str,
        value: Value,
        ttl_ms: Option<u64>,
    ) -> Result<(), Error> {
        self.check_key(key)?;
        value.check_depth()?;
        let size = value.encoded_len();
        if size > self.config.max_value_size {
            return Err(Error::ValueTooLarge {
                size,
                max: self.config.max_value_size,
            });
        }
        self.write(now, key, Some(value), ttl_ms);
        Ok(())
    }

    /// Deletes `key`; returns whether it held a live value. Deleting a missing key still
    /// records the delete, so a concurrent older write elsewhere loses to it.
    pub fn delete(&mut self, now: Now, key: &str) -> Result<bool, Error> {
        self.check_key(key)?;
        Ok(self.write(now, key, None, None))
    }

    /// Turns the values whose TTL ran out by `now` into tombstones, reporting each as a
    /// [`ChangeOrigin::Expired`] change. Every input and write does it first, and
    /// [`Engine::poll_timeout`] includes the next expiry; a driver reading the replica
    /// between inputs calls it so reads are exact.
    pub fn expire(&mut self, now: Now) {
        for key in self.replica.expire(self.clock.now(now.wall_ms)) {
            self.emit(Event::StateChanged {
                key,
                value: None,
                origin: ChangeOrigin::Expired,
            });
        }
        self.arm_expiry(now);
    }

    /// Arms the expiry timer for the soonest expiry, on the monotonic clock.
    fn arm_expiry(&mut self, now: Now) {
        let at = self.replica.next_expiry().map(|expires| {
            // The first millisecond whose wall-clock reading reaches `expires`.
            let due_ms = expires.div_ceil(1 << LOGICAL_BITS);
            now.mono_us
                .saturating_add(due_ms.saturating_sub(now.wall_ms).saturating_mul(1000))
        });
        self.timers.set(Timer::Expire, at);
    }

    fn check_key(&self, key: &str) -> Result<(), Error> {
        if key.len() > self.config.max_key_len {
            return Err(Error::KeyTooLong {
                len: key.len(),
                max: self.config.max_key_len,
            });
        }
        Ok(())
    }

    fn write(&mut self, now: Now, key: &str, value: Option<Value>, ttl_ms: Option<u64>) -> bool {
        self.expire(now);
        let hlc = self.clock.tick(now.wall_ms);
        let expires = ttl_ms.map(|ms| hlc.saturating_add(ms << LOGICAL_BITS));
        let event_value = value.as_ref().filter(|_| self.emit_events).cloned();
        let origin = match value {
            Some(_) => ChangeOrigin::LocalSet,
            None => ChangeOrigin::LocalDelete,
        };
        let was_live = self.replica.write_local_expiring(key, value, hlc, expires);
        self.emit(Event::StateChanged {
            key: key.to_owned(),
            value: event_value,
            origin,
        });
        if expires.is_some() {
            self.arm_expiry(now);
        }
        if self.started && self.timers.get(Timer::Push).is_none() {
            let slot = self.pushes.next_slot(now.mono_us);
            self.timers.set(Timer::Push, Some(slot));
        }
        was_live
    }

    // ----- inputs --------------------------------------------------------------------

    /// Processes one received datagram.
    /// `from` is made canonical first (see [`crate::addr`]).
    pub fn handle_datagram(&mut self, now: Now, from: SocketAddr, datagram: &[u8]) {
        self.expire(now);
        self.receive(now, crate::addr::canonical(from), datagram);
        // What arrived may have moved the clock past an expiry, or brought one due.
        self.expire(now);
        self.refresh_timers();
    }

    fn receive(&mut self, now: Now, from: SocketAddr, datagram: &[u8]) {
        self.counters.datagrams_received += 1;
        self.counters.bytes_received += datagram.len() as u64;
        let (packet, reads_compressed) =
            match self.seal.open_datagram(now, from, self.cluster, datagram) {
                Ok(opened) => opened,
                Err(reason) => return self.counters.dropped.count(reason),
            };
        if packet.src_inc == 0 {
            self.counters.dropped.malformed += 1;
            return;
        }
        // A datagram meant for an earlier run of this node: its acks and data belong to a
        // session that no longer exists, but its heartbeat still introduces the sender
        // (who must learn our new incarnation, or it would never reach us again). A
        // packet naming the receiver's session carries no incarnation: one naming a
        // session while this node holds no link with the sender is taken the same way.
        // One naming another session of a link this node holds is a straggler of that
        // link (see `link`), not made to ask for an answer: two nodes each naming a
        // session the other no longer holds would answer each other's answers forever.
        let mut frames = packet.frames;
        let earlier_run = if packet.dst_inc != 0 {
            packet.dst_inc != self.incarnation
        } else {
            packet.dst_session != 0 && !self.links.contains_key(&from)
        };
        if earlier_run {
            frames.retain(|f| {
                matches!(
                    f,
                    Frame::Heartbeat(_)
                        | Frame::Challenge(_)
                        | Frame::Response(_)
                        | Frame::Advertise(_)
                )
            });
            if frames.is_empty() {
                self.counters.dropped.stale += 1;
                return;
            }
            for frame in &mut frames {
                if let Frame::Heartbeat(hb) = frame {
                    hb.reply = true;
                }
            }
        }
        if packet.src_inc == self.incarnation
            && self.is_own_datagram(from, packet.src_session, &frames)
        {
            // Our own datagram looped back (a peer list naming ourselves).
            self.counters.dropped.stale += 1;
            return;
        }
        if !plausible_incarnation(packet.src_inc, now.wall_ms, &self.config) {
            self.counters.dropped.unverified += 1;
            return;
        }
        // A new address, or a new incarnation at a known one, counts only once it has
        // proved that it receives at that address (see `verify`).
        let known = self.members.incarnation(&from);
        if known.is_none_or(|inc| inc == 0 || packet.src_inc > inc)
            && !self.source_proven(now, from, packet.src_inc, &frames, datagram.len())
        {
            return;
        }
        match self.members.admit(from, packet.src_inc, now.mono_us) {
            Admission::Full => return,
            Admission::Stale => {
                self.counters.dropped.stale += 1;
                return;
            }
            Admission::Current => {
                // A challenge made for another incarnation claimed from this address (a
                // forged restart) is answered by the run this node holds, which echoes
                // any nonce: in plaintext, that answer copied under the claimed
                // incarnation would prove the claim, and the real run's datagrams would be
                // stale from then on. Answered by the real run, the challenge is void.
                for frame in &frames {
                    if let Frame::Response(nonce) = frame {
                        self.verifier.withdraw(from, *nonce);
                    }
                }
            }
            Admission::NewSession { restarted } => {
                let (limits, session) = (&self.limits, self.rng.u32(1..));
                let link = self
                    .links
                    .entry(from)
                    .or_insert_with(|| Link::new(limits, session));
                link.reset_session(limits, session);
                if restarted.is_some() {
                    link.sync.on_back(now.mono_us);
                } else {
                    link.sync.want_now(now.mono_us);
                }
                // Reachable from now on (a member named by rumors first, as most are to
                // a bootstrap node, is not newly identified later): neighbors are drawn
                // again.
                self.broadcast.forget(&from);
                self.tree_members_changed(now.mono_us);
                self.join_round(from);
                self.feed_lost(now.mono_us, from);
                if let Some(node_id) = restarted {
                    self.peer_back(node_id, from, "restarted");
                }
            }
        }
        self.touched.insert(from);
        if let Heard::Recovered { node_id } = self.members.mark_heard(from, now.mono_us) {
            if let Some(link) = self.links.get_mut(&from) {
                link.sync.on_back(now.mono_us);
            }
            self.on_member_back(now, from);
            if let Some(node_id) = node_id {
                self.peer_back(node_id, from, "recovered");
            }
        }
        // An answer in a session the peer shares shows it holds this node's id.
        let mut in_our_session = false;
        if let Some(link) = self.links.get_mut(&from) {
            let check = link.check_sessions(packet.src_session, packet.dst_session, &self.limits);
            in_our_session = matches!(check, SessionCheck::Current | SessionCheck::PeerRestarted)
                && packet.dst_session == link.local_session;
            // What the peer reads is taken only from a datagram naming this node's session:
            // a spoofer blind to it could otherwise make this node compress to a peer that
            // drops compressed payloads. Until then, nothing is compressed to it.
            if matches!(check, SessionCheck::Current | SessionCheck::PeerRestarted)
                && packet.dst_session == link.local_session
            {
                link.reads_compressed = reads_compressed;
            }
            let bulk_bytes = link.channel.bulk_bytes();
            if link.is_confirmed() && self.started && bulk_bytes > 0 {
                // Its path is worth probing (it carries messages of many datagrams), and
                // can be: the peer answers in this session. Most links of a large mesh
                // carry only probes and pushes, which one datagram holds.
                link.path.begin(now.mono_us, bulk_bytes);
            }
            match check {
                SessionCheck::Current => {}
                SessionCheck::Stale => {
                    // Acks and data of a channel this node has since started afresh.
                    frames.retain(|f| {
                        !matches!(f, Frame::Ack(_) | Frame::Data(_) | Frame::Settled(_))
                    });
                }
                SessionCheck::PeerRestarted => {
                    link.sync.on_back(now.mono_us);
                    self.feed_lost(now.mono_us, from);
                }
                SessionCheck::Unproven => {
                    // What a spoofer blind to the channel's sessions can send: its acks and
                    // data would reset, squat or forge the channel (see `link`).
                    let before = frames.len();
                    frames.retain(|f| {
                        !matches!(f, Frame::Ack(_) | Frame::Data(_) | Frame::Settled(_))
                    });
                    if frames.len() < before {
                        self.counters.dropped.stale += 1;
                    }
                }
            }
        }
        // A heartbeat states the sender's advertised address, or withdraws it by
        // carrying none.
        if frames.iter().any(|f| matches!(f, Frame::Heartbeat(_))) {
            let advertised = frames.iter().find_map(|f| match f {
                Frame::Advertise(addr) => Some(*addr),
                _ => None,
            });
            let believed = advertised.and_then(|a| believable_advertised(from, a));
            self.members.set_advertised(&from, believed);
        }
        let (mut ping_reqs, mut path_probes) = (0, 0);
        for frame in frames {
            match frame {
                Frame::Advertise(_) => {} // taken above, with the heartbeat
                Frame::Rumors(rumors) => self.on_rumors(now, rumors),
                // One relayed probe per datagram at most: a ping-req is no amplifier.
                Frame::PingReq(node_id) => {
                    ping_reqs += 1;
                    if ping_reqs == 1 {
                        self.on_ping_req(now, from, &node_id);
                    } else {
                        self.counters.dropped.rate_limited += 1;
                    }
                }
                Frame::IndirectAck(node_id) => self.on_indirect_ack(from, &node_id),
                Frame::Ack(ack) => {
                    if let Some(link) = self.links.get_mut(&from) {
                        link.channel.on_ack(&ack, now.mono_us);
                    }
                }
                Frame::Heartbeat(hb) => {
                    if in_our_session && !hb.reply {
                        if let Some(link) = self.links.get_mut(&from) {
                            link.knows_our_id = true;
                        }
                    }
                    self.on_answer(now, from);
                    self.on_heartbeat(now, from, hb)
                }
                Frame::Challenge(nonce) => self.answer_challenge(now, from, nonce),
                Frame::Response(_) => {} // the proof was checked above
                // Answered only in a session both ends share: an answer to a spoofer
                // would be a reflection, and it proves nothing about a path to one.
                Frame::PathProbe(probe) if in_our_session => {
                    path_probes += 1;
                    if path_probes == 1 {
                        self.on_path_probe(from, probe.nonce);
                    }
                }
                Frame::PathProbe(_) => self.counters.dropped.stale += 1,
                Frame::PathAnswer(nonce) if in_our_session => self.on_path_answer(now, from, nonce),
                Frame::PathAnswer(_) => self.counters.dropped.stale += 1,
                Frame::Settled(settled) => {
                    if let Some(link) = self.links.get_mut(&from) {
                        link.channel.on_settled(settled);
                    }
                }
                // As trusted as the channel's own data, which is read in the same
                // sessions only: an announcement draws a graft.
                Frame::IHave(items) if in_our_session => self.on_ihave(now, from, items),
                Frame::IHave(_) => self.counters.dropped.stale += 1,
                Frame::Data(data) => {
                    let Some(link) = self.links.get_mut(&from) else {
                        continue;
                    };
                    match link.channel.on_data(data, now.mono_us) {
                        Received::Message(bytes) => match self.decode_message(&bytes) {
                            Ok(message) => self.on_message(now, from, message),
                            Err(reason) => self.counters.dropped.count(reason),
                        },
                        Received::Duplicate => self.counters.dropped.duplicate += 1,
                        Received::Fragment | Received::Refused => {}
                    }
                }
            }
        }
    }

    /// Whether `packet`, which carries this node's incarnation, is one of this node's own
    /// datagrams come back: it names the session this node opened with `from`, or this
    /// node's id. The incarnation alone does not tell: two nodes started in the same
    /// millisecond draw the same one about once in 65,536 pairs, and took each other's
    /// datagrams for their own, so they never met.
    fn is_own_datagram(&self, from: SocketAddr, src_session: u32, frames: &[Frame]) -> bool {
        let own_session = self
            .links
            .get(&from)
            .is_some_and(|l| src_session != 0 && src_session == l.local_session);
        own_session
            || frames
                .iter()
                .any(|f| matches!(f, Frame::Heartbeat(hb) if hb.node_id == self.config.node_id))
    }

    /// Handles timers due at `now`: retransmissions, heartbeats, failure detection,
    /// pushes, anti-entropy, tombstone collection.
    pub fn handle_timeout(&mut self, now: Now) {
        self.expire(now);
        self.on_timeout(now);
        self.refresh_timers();
    }

    fn on_timeout(&mut self, now: Now) {
        let t = now.mono_us;
        let due = self.timers.due_peers(t);
        let mut heartbeats = Vec::new();
        for addr in due {
            self.touched.insert(addr);
            if let Some(link) = self.links.get_mut(&addr) {
                link.channel.on_timeout(t);
                if std::mem::take(&mut link.channel.lost_data) {
                    link.sync.on_lost_data(t);
                }
            }
            self.path_timeout(now, addr);
            self.message_timeout(t, addr);
            if self.feed.check_stalled(&addr, t) == Some(Ended::Broken) {
                log::debug!("{}: the stream from {addr} stalled", self.config.node_id);
                self.ask_again(t, false);
            }
            let (transition, heartbeat) = self.members.on_timeout(addr, t, self.started);
            if transition == Transition::Forgotten {
                self.remove_peer(addr);
                continue;
            }
            if transition == Transition::Failed {
                self.spread_about(&addr);
                self.peer_gone(addr, "failed");
            }
            if let Some(reply) = heartbeat {
                heartbeats.push((addr, reply));
            }
        }
        for (addr, reply) in heartbeats {
            self.send_heartbeat(now, addr, reply);
        }
        if self.members.has_claims() {
            self.settle_claims(now);
        }
        if !self.started {
            return;
        }
        if self.timers.is_due(Timer::Probe, t) {
            self.on_probe_timer(now);
        }
        if self.timers.is_due(Timer::Push, t) {
            self.timers.set(Timer::Push, None);
            self.push_local_writes(t);
        }
        if self.timers.is_due(Timer::Broadcast, t) {
            self.timers.set(Timer::Broadcast, None);
            self.on_tree_timer(t);
        }
        let hold_syncs = self.hold_syncs(t);
        if hold_syncs.is_some() && self.timers.is_due(Timer::AntiEntropy, t) {
            self.timers.set(Timer::AntiEntropy, hold_syncs);
        }
        if self.timers.is_due(Timer::AntiEntropy, t) {
            let next = t + jittered(&mut self.rng, us(self.config.sync_interval));
            self.timers.set(Timer::AntiEntropy, Some(next));
            let members = self.members.iter().map(|m| m.origin).filter(|&o| o != 0);
            self.recent
                .checkpoint(self.replica.version_vector(), members);
            // Fingerprint first: a peer whose latest fingerprint (from probes, answers and
            // its requests) is ours already holds all this node holds; an idle,
            // converged mesh then sends no digests at all.
            let own = self.replica.version_vector().fingerprint();
            let candidates: Vec<SocketAddr> = self
                .members
                .reachable()
                .map(|m| m.addr)
                .filter(|addr| self.links.get(addr).is_some_and(|l| !l.sync.in_step(own)))
                .collect();
            if !candidates.is_empty() {
                // The round asks for the peer's fingerprint, not for a sync: what this
                // node heard of it may predate the last writes, and a digest costs about
                // ten bytes an origin each way. Its answer, if it differs, starts the
                // sync (see `PeerSync::on_fingerprint`); so may the question, at the peer.
                let pick = candidates[self.rng.usize(..candidates.len())];
                if let Some(link) = self.links.get_mut(&pick) {
                    link.sync.question();
                }
                self.send_heartbeat(now, pick, true);
            }
        }
        // Syncs due: with peers whose timer fired, and with those this very call asked one
        // of (a push that found a full queue); all of them are touched, in address order.
        let candidates: Vec<SocketAddr> = self.touched.iter().copied().collect();
        for addr in candidates {
            let Some(link) = self.links.get_mut(&addr) else {
                continue;
            };
            if let Some(until) = hold_syncs {
                link.sync.postpone(until);
            } else if link.sync.take_due(t) {
                self.start_sync(now, addr);
            }
        }
        if self.timers.is_due(Timer::ReportDrops, t) {
            self.timers
                .set(Timer::ReportDrops, Some(t + DROP_REPORT_INTERVAL_US));
            self.report_drops();
        }
        if self.timers.is_due(Timer::CollectTombstones, t) {
            self.timers.set(
                Timer::CollectTombstones,
                Some(t + us(self.config.sync_interval)),
            );
            let own = self.in_step_view();
            let digests = self.links.values().map(|l| l.sync.view_in_step(&own));
            let collected =
                self.tombstones
                    .collect(&mut self.replica, digests, now, self.started_at_us);
            if collected > 0 {
                log::debug!("{}: collected {collected} tombstones", self.config.node_id);
            }
            self.retire_origins(t);
        }
    }

    // ----- outputs -------------------------------------------------------------------

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self, now: Now) -> Option<Transmit> {
        if self.transmits.is_empty() && self.started {
            self.produce(now);
            self.refresh_timers();
        }
        self.transmits.pop_front()
    }

    /// The next event for the application, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Engine::handle_timeout`] must next be called (monotonic microseconds).
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.next()
    }

    /// Whether every local write has been pushed and every reliable datagram to a
    /// reachable peer acknowledged. Drivers wait for this (briefly) before shutting down,
    /// so a write made just before a stop is not lost with the process.
    pub fn is_flushed(&self) -> bool {
        let unpushed = self.pushes.is_pending(self.replica.own_seq());
        let mut reachable = self.members.reachable().peekable();
        if unpushed && reachable.peek().is_some() {
            return false;
        }
        reachable.all(|m| self.links.get(&m.addr).is_none_or(|l| l.channel.is_idle()))
    }

    /// Pushes pending local writes at the next opportunity instead of after `push_delay`.
    pub fn flush_pushes(&mut self, now: Now) {
        if self.started && self.pushes.is_pending(self.replica.own_seq()) {
            self.timers.set(Timer::Push, Some(now.mono_us));
        }
    }

    /// Records datagrams the driver actually put on the wire.
    pub fn record_sent(&mut self, datagrams: u64, bytes: u64) {
        self.counters.datagrams_sent += datagrams;
        self.counters.bytes_sent += bytes;
    }

    // ----- internals -----------------------------------------------------------------

    fn emit(&mut self, event: Event) {
        if self.emit_events {
            self.events.push_back(event);
        }
    }

    /// Reports a peer heard again after a failure or a restart.
    fn peer_back(&mut self, node_id: String, addr: SocketAddr, how: &str) {
        log::info!("{}: peer {node_id} at {addr} {how}", self.config.node_id);
        self.emit(Event::PeerRecovered { node_id, addr });
    }

    /// Acts on what naming the member at `from` `node_id` changed.
    fn on_identified(&mut self, now: Now, from: SocketAddr, node_id: &str, identified: Identified) {
        for moved in identified.removed {
            self.remove_peer(moved);
        }
        if !identified.newly {
            return;
        }
        if let Some(link) = self.links.get_mut(&from) {
            link.sync.want_now(now.mono_us);
        }
        if !self.members.was_gossiped(&from) {
            // It joined through this node: the mesh hears of it from here.
            self.spread_about(&from);
        }
        self.tree_members_changed(now.mono_us);
        log::info!(
            "{}: discovered peer {node_id} at {from}",
            self.config.node_id
        );
        self.emit(Event::PeerDiscovered {
            node_id: node_id.to_owned(),
            addr: from,
        });
    }

    /// Names the members whose node id claims were held back while the id's holder
    /// lived, now that it does not (see `Members::identify`).
    fn settle_claims(&mut self, now: Now) {
        for (addr, node_id, identified) in self.members.settle_claims() {
            // A sync is wanted with it now: its timer is filed again.
            self.touched.insert(addr);
            self.on_identified(now, addr, &node_id, identified);
        }
    }

    fn add_link(&mut self, addr: SocketAddr) {
        let session = self.rng.u32(1..);
        self.links.insert(addr, Link::new(&self.limits, session));
        self.touched.insert(addr);
    }

    fn remove_peer(&mut self, addr: SocketAddr) {
        self.members.remove(&addr);
        self.broadcast.forget(&addr);
        self.frontiers.forget(&addr);
        self.links.remove(&addr);
        self.touched.insert(addr);
        self.feed_lost(0, addr);
    }

    fn on_heartbeat(&mut self, now: Now, from: SocketAddr, hb: Heartbeat) {
        if hb.node_id == self.config.node_id {
            // Another process runs with our node id, or we were given our own address.
            // From a member that named itself otherwise, it is spoofed: the member stays.
            if self.members.named_itself(&from) {
                self.counters.dropped.conflicts += 1;
                return;
            }
            log::warn!(
                "{}: heard from {from} claiming our own node id; ignoring it",
                self.config.node_id
            );
            return self.remove_peer(from);
        }
        let own_fingerprint = self.replica.version_vector().fingerprint();
        // No id: the sender holds that this node knows it already.
        let identified = if hb.node_id.is_empty() {
            Default::default()
        } else {
            self.members.identify(from, &hb.node_id)
        };
        if identified.refused {
            self.counters.dropped.conflicts += 1;
        }
        self.members.note_nameable(&from, hb.members, now.mono_us);
        self.on_identified(now, from, &hb.node_id, identified);
        let min_gap_us = MIN_TRIGGERED_SYNC_GAP_US.max(us(self.config.heartbeat_interval) / 2);
        if let Some(link) = self.links.get_mut(&from) {
            let idle = link.channel.is_idle();
            link.sync.on_fingerprint(
                hb.fingerprint,
                own_fingerprint,
                idle,
                min_gap_us,
                now.mono_us,
            );
        }
        for added in self.members.merge_gossip(hb.gossip, now.mono_us) {
            self.add_link(added);
        }
        if hb.reply && self.started {
            self.send_heartbeat(now, from, false);
        }
    }

    /// Decodes a reliable message, unpacking it if it came compressed whole. This node
    /// said it reads compressed payloads only if it has the contexts to, so a packed
    /// message to one without them is malformed.
    fn decode_message(&mut self, bytes: &[u8]) -> Result<Message, wire::DropReason> {
        match wire::decode_message(bytes)? {
            Message::Packed(packed) => self
                .seal
                .codec()
                .ok_or(wire::DropReason::Malformed)?
                .unpack(&packed),
            message => Ok(message),
        }
    }

    fn on_message(&mut self, now: Now, from: SocketAddr, message: Message) {
        match message {
            Message::Delta(delta) => self.on_delta(now, from, delta),
            Message::Gossip(delta) => self.on_gossip(now, from, delta),
            Message::IHave(items) => self.on_ihave(now, from, items),
            Message::Graft(ranges) => self.on_graft(now, from, ranges),
            Message::Prune => self.on_prune(from),
            Message::Beacon(root, round) => self.on_beacon(now, from, (root, round)),
            // Unpacked on arrival (`decode_message`).
            Message::Packed(_) => self.counters.dropped.malformed += 1,
            Message::User(message) => self.on_user_message(now, from, message),
            Message::SyncRequest(request) => {
                // A digest names the origins its sender holds: past the cap on origins
                // (and the members' runs, taken beyond it), it is no honest node's, and
                // would be kept whole for the peer until its next request.
                let most = self.config.max_origins.saturating_mul(2) + self.members.len();
                let above = match &request.want {
                    wire::Want::Above(prefixes) => prefixes.len(),
                    _ => 0,
                };
                if request.digest.len().max(above) > most {
                    self.counters.dropped.origins += 1;
                    return;
                }
                if let Some(origin) = self.members.origin(&from) {
                    // Its own writes are all in its prefix; no entry means none yet.
                    let own = request.digest.iter().find(|(o, _)| *o == origin);
                    self.vouch(origin, from, own.map_or(0, |&(_, upto)| upto));
                }
                self.on_sync_request(now, from, request)
            }
        }
    }

    /// Merges writes received from `from`, pushed, streamed or forwarded.
    pub(super) fn on_delta(&mut self, now: Now, from: SocketAddr, delta: wire::Delta) {
        let own_writes = self.members.origin(&from).and_then(|origin| {
            let groups = delta.groups.iter().filter(|g| g.origin == origin);
            groups.map(|g| g.hi).max().map(|top| (origin, top))
        });
        if let Some((origin, top)) = own_writes {
            self.vouch(origin, from, top);
        }
        let ranges = delta.groups.iter().map(|g| (g.origin, g.lo, g.hi));
        self.feed
            .on_delta(from, ranges, self.replica.version_vector(), now.mono_us);
        let applied_before = self.counters.entries_applied;
        let members = &self.members;
        let is_member = |origin| members.iter().any(|m| m.origin == origin);
        let rules = sync::MergeRules {
            config: &self.config,
            frontiers: &self.frontiers,
            wall_ms: now.wall_ms,
            is_member: &is_member,
        };
        let won = sync::merge_delta(
            delta,
            &mut self.replica,
            &mut self.clock,
            &rules,
            &mut self.counters,
            &mut self.propagation,
            self.emit_events.then_some(&mut self.events),
        );
        self.send_deletes_that_won(from, won);
        if self.counters.entries_applied > applied_before {
            self.recent.note_arrival(now.mono_us);
        }
        let feed = self.feed.peer();
        if self
            .feed
            .check_done(self.replica.version_vector())
            .is_some()
        {
            self.touched.extend(feed);
        }
    }

    /// Sends the deletes that beat values received from `from` to the peers that may
    /// hold those values while accounting for the deletes (see `collected`): the sender,
    /// if it says it accounts for them; and for a delete collected here and held again,
    /// every other reachable peer, whatever its last digest said. A node that joined
    /// after the collection accounted for the delete from an empty range, and may have
    /// taken the value since, or take it later: it keeps the delete either way.
    fn send_deletes_that_won(&mut self, from: SocketAddr, won: sync::DeletesThatWon) {
        if won.held.is_empty() && won.revived.is_empty() {
            return;
        }
        let own = self.in_step_view();
        let mut sends = Vec::new();
        let all: Vec<sync::SeqRange> = won.held.iter().chain(&won.revived).copied().collect();
        sends.push((from, self.claimed_by(from, &all, &own)));
        if !won.revived.is_empty() {
            for member in self.members.reachable().filter(|m| m.addr != from) {
                sends.push((member.addr, won.revived.clone()));
            }
        }
        for (addr, deletes) in sends {
            if !deletes.is_empty() {
                self.counters.deletes_returned += deletes.len() as u64;
                self.send_deltas(addr, deletes.into());
            }
        }
    }

    /// The deletes of `deletes` that the peer at `addr` says it accounts for (its last
    /// digest, or `own`, this node's, if their fingerprints agree). A peer that lacks a
    /// delete is streamed it by anti-entropy; a value replayed by anyone else earns
    /// nothing.
    fn claimed_by(
        &self,
        addr: SocketAddr,
        deletes: &[sync::SeqRange],
        own: &(u64, PeerDigest),
    ) -> Vec<sync::SeqRange> {
        let Some(view) = self.links.get(&addr).and_then(|l| l.sync.view_in_step(own)) else {
            return Vec::new();
        };
        deletes
            .iter()
            .copied()
            .filter(|&(origin, seq, _)| view.accounts(origin).is_some_and(|upto| upto >= seq))
            .collect()
    }

    /// Retires the origins whose writes are superseded everywhere (see `retire`).
    fn retire_origins(&mut self, now_us: u64) {
        let in_use: std::collections::HashSet<u64> = self
            .members
            .iter()
            .map(|m| m.origin)
            .filter(|&origin| origin != 0)
            .chain(self.frontiers.origins())
            .collect();
        let own = self.in_step_view();
        // The word of every member that can answer: one that is dead, or never proved
        // its address (a gossiped name, a spoofed one), would hold retirement off for as
        // long as it is remembered, and with it the agreement of fingerprints with the
        // nodes that do not remember it. It syncs again when it comes back.
        let members = &self.members;
        let peers = self
            .links
            .iter()
            .filter(|(addr, _)| members.is_reachable(addr))
            .map(|(_, l)| l.sync.view_in_step(&own));
        let retired = self.retire.retire(
            &mut self.replica,
            peers,
            &in_use,
            now_us,
            self.started_at_us,
        );
        if retired > 0 {
            log::debug!("{}: retired {retired} origins", self.config.node_id);
        }
    }

    /// Takes the word of the peer at `from`, whose current run is `origin`, that its
    /// writes go up to `seq`, and withdraws any accounting beyond the origin's frontier.
    fn vouch(&mut self, origin: u64, from: SocketAddr, seq: u64) {
        if origin == self.replica.own_origin() || origin == 0 {
            return;
        }
        if let Some(cap) = self.frontiers.vouch(origin, from, seq) {
            self.replica.withdraw_above(origin, cap);
        }
    }

    fn on_sync_request(&mut self, now: Now, from: SocketAddr, request: SyncRequest) {
        // This node's writes that its next direct push carries to every reachable member,
        // this peer among them: a stream leaves them out.
        let unpushed_from = (!self.tree_active() && self.members.is_reachable(&from))
            .then(|| self.pushes.pushed_upto() + 1);
        let Some(link) = self.links.get_mut(&from) else {
            return;
        };
        if !link.sync.admit_request(now.mono_us) {
            self.counters.dropped.rate_limited += 1;
            return;
        }
        if !link.sync.take_if_latest(request.number) {
            // Overtaken by a later request: its digest is older and its want outdated.
            return;
        }
        let theirs: PeerDigest = request.digest.into_iter().collect();
        let ours = self.replica.version_vector();
        let feed_before = self.feed.peer();
        let feed_answered = self.feed.on_digest(from, &theirs, ours);
        if link.sync.asked == Asked::Above {
            // It streams what lies beyond the feed and was asked of nobody else.
            self.feed.claim(from, &theirs, ours);
        }
        let idle = link.channel.is_idle();
        // Writes an origin still pushes itself, to a peer that has heard of it: directly,
        // or down the broadcast tree, whose grafts repair what a failed node on the way
        // dropped (see `broadcast`). Not to a peer back lately (a healed partition, a
        // restart): the pushes made while it was away missed it.
        let (own, members, recent) = (self.replica.own_origin(), &self.members, &self.recent);
        let named: std::collections::HashSet<u64> = theirs.keys().copied().collect();
        let away_lately = link.sync.back_since(
            now.mono_us
                .saturating_sub(2 * us(self.config.sync_interval)),
        );
        let pushes_itself = |origin| {
            !away_lately
                && origin != own
                && named.contains(&origin)
                && members
                    .reachable()
                    .any(|m| m.origin == origin && m.addr != from)
        };
        let settled = |range: SeqRange| match unpushed_from {
            Some(unpushed) if range.0 == own => {
                (range.1 < unpushed).then_some((own, range.1, range.2.min(unpushed - 1)))
            }
            _ => recent.settled_part(range, pushes_itself),
        };
        link.sync
            .on_request(theirs, request.want, ours, idle, settled);
        if request.reply && !link.request_waiting() {
            let stall_us = stall_us(&self.config, link);
            let theirs = link.sync.digest.as_ref();
            let want = self
                .feed
                .want_for(from, theirs, theirs, ours, now.mono_us, stall_us);
            link.sync.asked = Asked::of(&want);
            let message = wire::encode_message(&Message::SyncRequest(SyncRequest {
                digest: ours.digest(),
                reply: false,
                want,
                number: link.sync.next_request_number(),
            }));
            link.send_request(&message);
        } else if !request.reply && self.owes_more(&from) {
            // It answered a request that asked it for less than it holds beyond what
            // anyone streams now.
            if let Some(link) = self.links.get_mut(&from) {
                link.sync.want_now(now.mono_us);
            }
        }
        self.feed.check_done(self.replica.version_vector());
        self.touched.extend(feed_before);
        self.touched.extend(self.feed.peer());
        if feed_answered {
            // The feed's digest is in: ask those told to wait for what it does not hold.
            self.ask_again(now.mono_us, true);
        }
    }

    /// Whether the peer at `addr`, last asked for nothing, or for what lies above a feed
    /// that has ended since, holds more than this node and the current feed's stream.
    fn owes_more(&self, addr: &SocketAddr) -> bool {
        let Some(sync) = self.links.get(addr).map(|l| &l.sync) else {
            return false;
        };
        let restricted = match sync.asked {
            Asked::All => false,
            Asked::Nothing => !self.feed.is_pending(),
            Asked::Above => self.feed.peer().is_none(),
        };
        let covered = self.feed.covered();
        restricted
            && sync.digest.as_ref().is_some_and(|theirs| {
                feed::holds_more(theirs, self.replica.version_vector(), covered.as_ref())
            })
    }

    /// Asks again, from `due_us` on (0: at once), the peers that were asked for less
    /// than they hold beyond this node and the current feed's stream: those asked for
    /// nothing, and with `only_waiting` unset those asked for what lay above a feed that
    /// is gone.
    fn ask_again(&mut self, due_us: u64, only_waiting: bool) {
        let ours = self.replica.version_vector();
        let covered = self.feed.covered();
        let feed = self.feed.peer();
        for (addr, link) in &mut self.links {
            let asked = link.sync.asked;
            if asked == Asked::All || (only_waiting && asked == Asked::Above) {
                continue;
            }
            if Some(*addr) == feed {
                continue;
            }
            let more = link
                .sync
                .digest
                .as_ref()
                .is_some_and(|theirs| feed::holds_more(theirs, ours, covered.as_ref()));
            if more {
                link.sync.want_now(due_us);
                self.touched.insert(*addr);
            }
        }
    }

    /// The session of the peer at `addr` ended (it restarted, failed, left or was
    /// forgotten): if it was the feed, or was given origins beyond it, its stream is
    /// gone and the peers asked for less are asked again.
    pub(super) fn feed_lost(&mut self, due_us: u64, addr: SocketAddr) {
        if self.feed.lose(&addr).is_some() {
            self.touched.insert(addr);
            self.ask_again(due_us, false);
        }
    }

    fn start_sync(&mut self, now: Now, addr: SocketAddr) {
        if !self.members.is_reachable(&addr) {
            return;
        }
        let Some(link) = self.links.get_mut(&addr) else {
            return;
        };
        if link.request_waiting() {
            // The request still queued says what this one would, and goes first.
            return;
        }
        let stall_us = stall_us(&self.config, link);
        let ours = self.replica.version_vector();
        let feed_before = self.feed.peer();
        let last = link.sync.digest.as_ref();
        let want = self
            .feed
            .want_for(addr, None, last, ours, now.mono_us, stall_us);
        link.sync.asked = Asked::of(&want);
        let message = wire::encode_message(&Message::SyncRequest(SyncRequest {
            digest: ours.digest(),
            reply: true,
            want,
            number: link.sync.next_request_number(),
        }));
        self.touched.extend(feed_before);
        self.touched.extend(self.feed.peer());
        if link.send_request(&message) {
            link.sync.last_us = Some(now.mono_us);
            self.counters.sync_rounds += 1;
        }
        self.sending.insert(addr);
    }

    /// Until when syncs due at `t` are held back, if they are: while writes new to this
    /// node still arrive (pushed by their writers, down the broadcast tree, or in a
    /// stream), a sync would race them (the peer streams what is on its way, which then
    /// comes twice), but never for longer than a sync interval in a row, so a write
    /// lost on the way is repaired under steady traffic too. Writes count as still
    /// arriving for a quiet spell after the last, longer while the tree lags.
    fn hold_syncs(&mut self, t: u64) -> Option<u64> {
        let quiet_us = self.broadcast.graft_wait_us(recent::ARRIVAL_QUIET_US);
        let Some(until) = self.recent.arriving_until(t, quiet_us) else {
            self.syncs_held_since = None;
            return None;
        };
        let since = *self.syncs_held_since.get_or_insert(t);
        if t.saturating_sub(since) >= us(self.config.sync_interval) {
            self.syncs_held_since = Some(t);
            return None;
        }
        Some(until)
    }

    /// This node's fingerprint and digest: what a peer in step with it accounts for
    /// (see [`sync::PeerSync::view_in_step`]).
    fn in_step_view(&self) -> (u64, PeerDigest) {
        let vv = self.replica.version_vector();
        (vv.fingerprint(), vv.digest().into_iter().collect())
    }

    fn push_local_writes(&mut self, now_us: u64) {
        let own_seq = self.replica.own_seq();
        let Some(range) = self.pushes.take(now_us, self.replica.own_origin(), own_seq) else {
            return;
        };
        // With no one to push to, the range is still marked pushed (anti-entropy brings
        // it to later peers) but never encoded: a lone node writes at full speed.
        if self.members.reachable().next().is_none() {
            return;
        }
        if self.tree_active() {
            return self.push_by_tree(now_us, range);
        }
        // Encoded once for the peers that read compressed payloads and once for those
        // that do not, each only if some peer needs it.
        let budget = self.limits.max_fragment;
        let (mut plain, mut packed) = (None, None);
        let ranges = VecDeque::from([range]);
        for member in self.members.reachable() {
            let Some(link) = self.links.get_mut(&member.addr) else {
                continue;
            };
            self.sending.insert(member.addr);
            let messages: &Vec<EncodedDelta> =
                match self.seal.codec().filter(|_| link.reads_compressed) {
                    Some(codec) => packed.get_or_insert_with(|| {
                        sync::packed_deltas(&self.replica, ranges.clone(), budget, codec, false)
                    }),
                    None => plain.get_or_insert_with(|| {
                        sync::encoded_deltas(&self.replica, ranges.clone(), budget, false)
                    }),
                };
            let queued = link.queue_deltas(messages);
            self.counters.write_messages_sent += messages.len() as u64;
            if queued {
                // On its way: a sync request meanwhile does not stream it again.
                link.sync.note_sent(range);
            } else {
                // Queue full: the peer is slow or gone; anti-entropy will catch it up.
                link.sync.want_eventually();
                self.touched.insert(member.addr);
            }
        }
    }

    /// Recomputes the timer of every peer touched since the last call.
    fn refresh_timers(&mut self) {
        for addr in std::mem::take(&mut self.touched) {
            self.sending.insert(addr);
            let deadline = self.peer_deadline(&addr);
            self.timers.set(Timer::Peer(addr), deadline);
        }
    }

    /// The earliest of a peer's deadlines: its channel's, its failure detector's and, once
    /// started, its heartbeat's and its pending sync's.
    fn peer_deadline(&self, addr: &SocketAddr) -> Option<u64> {
        let link = self.links.get(addr)?;
        let sync = link.sync.due_us.filter(|_| self.started);
        let member = self.members.next_deadline(addr, self.started);
        let messages = link.messages.next_timeout(self.message_gap_us());
        let feed = self.feed.deadline(addr).filter(|_| self.started);
        let path = link
            .path
            .next_timeout()
            .filter(|_| self.started && link.is_confirmed());
        [
            link.channel.next_timeout(),
            member,
            sync,
            messages,
            feed,
            path,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// Whether an incarnation (wall-clock milliseconds in its high bits) could be real:
/// not further ahead of this node's clock than the drift allowed. A forged incarnation
/// far in the future would otherwise shut out every later run of the node it names.
fn plausible_incarnation(incarnation: u64, wall_ms: u64, config: &Config) -> bool {
    let drift_ms = config.max_clock_drift.as_millis() as u64;
    incarnation >> 16 <= wall_ms.saturating_add(drift_ms)
}

/// A TTL in milliseconds (rounded up), if it is positive and at most [`MAX_TTL`].
fn check_ttl(ttl: Duration) -> Result<u64, Error> {
    if ttl.is_zero() {
        return Err(ConfigError::new("ttl", "must be positive").into());
    }
    if ttl > MAX_TTL {
        return Err(ConfigError::new(
            "ttl",
            format!(
                "must be at most {} s (365 days), got {} s",
                MAX_TTL.as_secs(),
                ttl.as_secs()
            ),
        )
        .into());
    }
    Ok(ttl.as_nanos().div_ceil(1_000_000) as u64)
}

/// The address `from` advertises, if it may be gossiped: a unicast address with a port,
/// and a loopback one only from a loopback source (a remote node advertising 127.0.0.1
/// is misconfigured, and third parties would probe themselves). Anything else a
/// verified member advertises is believed as far as a gossiped address is: third
/// parties probe it and verify it before anything heard there counts.
fn believable_advertised(from: SocketAddr, advertised: SocketAddr) -> Option<SocketAddr> {
    let advertised = crate::addr::canonical(advertised);
    if !crate::addr::is_peer_addr(&advertised) {
        return None;
    }
    if advertised.ip().is_loopback() && !from.ip().is_loopback() {
        return None;
    }
    Some(advertised)
}

/// How long the feed at `link` may go without progress: a few retransmission timeouts,
/// at least `feed::MIN_STALL_US`, at most a sync interval.
fn stall_us(config: &Config, link: &Link) -> u64 {
    let rto_us = link.channel.rtt().rto_us();
    let ceiling = us(config.sync_interval).max(feed::MIN_STALL_US);
    (feed::STALL_RTOS * rto_us).clamp(feed::MIN_STALL_US, ceiling)
}

/// `base` with ±10% random jitter, so nodes started together do not stay in lockstep.
fn jittered(rng: &mut fastrand::Rng, base: u64) -> u64 {
    let spread = base / 10;
    base - spread + rng.u64(0..=2 * spread)
}
