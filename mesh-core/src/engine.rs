//! The sans-IO protocol engine: every protocol decision, no socket, thread or clock.
//!
//! # Driving contract
//!
//! The driver owns the socket and the clock and calls, in any interleaving:
//!
//! - inputs: [`Engine::handle_datagram`] for each datagram received,
//!   [`Engine::handle_timeout`] once the time from [`Engine::poll_timeout`] has come;
//! - commands: [`Engine::set`], [`Engine::delete`], [`Engine::add_bootstrap_peer`],
//!   [`Engine::start`];
//! - outputs, drained after every input or command: [`Engine::poll_transmit`] until
//!   `None` (datagrams to send), [`Engine::poll_event`] until `None` (events for the
//!   application), then [`Engine::poll_timeout`] (when to call `handle_timeout` next).
//!
//! Time comes in as [`Now`]; randomness from a generator seeded at construction. Given the
//! same seed and the same inputs at the same times, an engine makes the same decisions:
//! that is what the simulator relies on.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;

use crate::config::Config;
use crate::error::Error;
use crate::event::{ChangeOrigin, Event};
use crate::hlc::{physical_ms, HlcClock};
use crate::membership::{Peer, Transition, FIRST_PROBE_US};
use crate::replica::{Entry, MergeOutcome, Replica};
use crate::status::{Counters, PeerCounts, PeerInfo, PeerState, Status};
use crate::time::{us, Now};
use crate::transport::{ChannelLimits, Received};
use crate::value::Value;
use crate::version::OriginId;
use crate::wire::{
    self, Delta, DropReason, Frame, GossipPeer, Group, Heartbeat, Message, Packet, SyncRequest,
    WireEntry,
};

/// Room kept in each datagram for the header, the packet envelope, an ack and the data
/// frame's own fields.
const DATAGRAM_OVERHEAD: usize = wire::HEADER_LEN + 48 + 8 * 22 + 40;
/// Most peers remembered; datagrams from further addresses are ignored.
pub const MAX_PEERS: usize = 1024;
/// Peers named in one heartbeat's gossip.
const GOSSIP_FANOUT: usize = 3;
/// Shortest pause between two syncs with one peer started by triggers (lost data,
/// differing fingerprint); the periodic round is not limited by it.
const MIN_TRIGGERED_SYNC_GAP_US: u64 = 200_000;

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub dst: SocketAddr,
    /// The datagram.
    pub payload: Vec<u8>,
}

/// Memory the engine holds for protocol state, for bounds checks in tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryReport {
    /// Known peers.
    pub peers: usize,
    /// Datagrams in flight, all peers.
    pub in_flight: usize,
    /// Bytes queued for sending, all peers.
    pub queued_bytes: usize,
    /// Bytes of partial messages, all peers.
    pub reassembly_bytes: usize,
    /// Ranges waiting to be streamed, all peers.
    pub stream_ranges: usize,
    /// Transmits and events not yet polled.
    pub pending_outputs: usize,
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
    // Ordered, so iteration (and with it every seeded random choice) is deterministic.
    peers: BTreeMap<SocketAddr, Peer>,
    limits: ChannelLimits,
    started: bool,
    started_at_us: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    emit_events: bool,
    counters: Counters,
    next_sync_us: u64,
    next_gc_us: u64,
    push_due_us: Option<u64>,
    last_push_us: Option<u64>,
    pushed_upto: u64,
}

impl Engine {
    /// A new engine. `incarnation` must differ between runs of the same node id (the
    /// runtime derives it from the wall clock) and be non-zero; `seed` drives every random
    /// choice. The replica's origin id is the incarnation.
    pub fn new(config: Config, incarnation: u64, seed: u64, now: Now) -> Engine {
        let limits = ChannelLimits {
            initial_rto_us: us(config.initial_rto),
            min_rto_us: us(config.min_rto),
            max_rto_us: us(config.max_rto),
            max_retries: config.max_retries,
            min_give_up_us: us(config.peer_timeout),
            max_fragment: config
                .max_datagram_size
                .saturating_sub(DATAGRAM_OVERHEAD)
                .max(64),
            max_in_flight: config.max_in_flight,
            max_queued: config.max_reassembly.max(4 * config.max_in_flight),
            max_reassembly: config.max_reassembly,
            reassembly_timeout_us: us(config.reassembly_timeout),
        };
        let mut rng = fastrand::Rng::with_seed(seed);
        let first_sync = now.mono_us + jittered(&mut rng, us(config.sync_interval));
        Engine {
            cluster: wire::cluster_id(&config.cluster),
            clock: HlcClock::new(config.max_clock_drift.as_millis() as u64),
            replica: Replica::new(incarnation.max(1)),
            incarnation: incarnation.max(1),
            rng,
            peers: BTreeMap::new(),
            limits,
            started: false,
            started_at_us: now.mono_us,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            emit_events: true,
            counters: Counters::default(),
            next_sync_us: first_sync,
            next_gc_us: now.mono_us + us(config.sync_interval),
            push_due_us: None,
            last_push_us: None,
            pushed_upto: 0,
            config,
        }
    }

    // ----- getters -------------------------------------------------------------------

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// This run's incarnation (also the origin id of its writes).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The replica (read-only).
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// The live value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.replica.get(key)
    }

    /// Every live key and value.
    pub fn snapshot(&self) -> BTreeMap<String, Value> {
        self.replica.snapshot()
    }

    /// Every live key.
    pub fn keys(&self) -> Vec<String> {
        self.replica.keys()
    }

    /// Number of live keys.
    pub fn live_keys(&self) -> usize {
        self.replica.live_len()
    }

    /// Counters so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Protocol memory in use.
    pub fn memory(&self) -> MemoryReport {
        let mut report = MemoryReport {
            peers: self.peers.len(),
            pending_outputs: self.transmits.len() + self.events.len(),
            ..MemoryReport::default()
        };
        for peer in self.peers.values() {
            report.in_flight += peer.channel.in_flight();
            report.queued_bytes += peer.channel.queued_bytes();
            report.reassembly_bytes += peer.channel.reassembly_bytes();
            report.stream_ranges += peer.stream.len();
        }
        report
    }

    /// Status snapshot (`port` and `running` are the runtime's to fill).
    pub fn status(&self) -> Status {
        let mut peers = PeerCounts {
            total_peers: self.peers.len(),
            ..PeerCounts::default()
        };
        let mut pending_acks = 0;
        let mut counters = self.counters;
        for peer in self.peers.values() {
            match peer.state {
                PeerState::Alive => peers.alive_peers += 1,
                PeerState::Suspect => peers.suspect_peers += 1,
                PeerState::Dead => peers.dead_peers += 1,
                PeerState::Unknown => {}
            }
            if peer.bootstrap {
                peers.bootstrap_peers += 1;
            }
            pending_acks += peer.channel.in_flight();
            let stats = peer.channel.stats();
            counters.retransmits += stats.retransmits;
            counters.given_up += stats.given_up;
            counters.dropped.reassembly += stats.reassembly_drops;
        }
        Status {
            node_id: self.config.node_id.clone(),
            port: self.config.port,
            running: self.started,
            state_version: self.replica.state_version(),
            data_keys: self.replica.live_len(),
            tombstones: self.replica.tombstone_len(),
            peers,
            pending_acks,
            hlc: self.clock.last(),
            counters,
        }
    }

    /// Every known peer.
    pub fn peers(&self, now: Now) -> Vec<PeerInfo> {
        let mut list: Vec<PeerInfo> = self
            .peers
            .values()
            .map(|p| PeerInfo {
                node_id: p.node_id.clone(),
                addr: p.addr,
                state: p.state,
                bootstrap: p.bootstrap,
                rtt_ms: p.channel.rtt().srtt_us().map(|v| v as f64 / 1000.0),
                last_seen_ms: p
                    .last_heard_us
                    .map(|t| now.mono_us.saturating_sub(t) / 1000),
                pending_acks: p.channel.in_flight(),
            })
            .collect();
        list.sort_by(|a, b| a.node_id.cmp(&b.node_id).then(a.addr.cmp(&b.addr)));
        list
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
        for peer in self.peers.values_mut() {
            peer.next_heartbeat_us = now.mono_us;
        }
        if self.replica.own_seq() > self.pushed_upto {
            self.push_due_us = Some(now.mono_us);
        }
    }

    /// Adds a peer address to contact.
    pub fn add_bootstrap_peer(&mut self, now: Now, addr: SocketAddr) {
        if let Some(peer) = self.peers.get_mut(&addr) {
            peer.bootstrap = true;
            return;
        }
        if self.peers.len() >= MAX_PEERS {
            return;
        }
        let peer = Peer::new(addr, true, now.mono_us, &self.limits);
        self.peers.insert(addr, peer);
    }

    /// Writes `value` under `key`.
    pub fn set(&mut self, now: Now, key: &str, value: Value) -> Result<(), Error> {
        self.check_key(key)?;
        value.check_depth()?;
        let size = value.encoded_len();
        if size > self.config.max_value_size {
            return Err(Error::ValueTooLarge {
                size,
                max: self.config.max_value_size,
            });
        }
        self.write(now, key, Some(value));
        Ok(())
    }

    /// Deletes `key`; returns whether it held a live value. Deleting a missing key still
    /// records the delete, so a concurrent older write elsewhere loses to it.
    pub fn delete(&mut self, now: Now, key: &str) -> Result<bool, Error> {
        self.check_key(key)?;
        Ok(self.write(now, key, None))
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

    fn write(&mut self, now: Now, key: &str, value: Option<Value>) -> bool {
        let hlc = self.clock.tick(now.wall_ms);
        let event_value = if self.emit_events {
            value.clone()
        } else {
            None
        };
        let deleting = value.is_none();
        let was_live = self.replica.write_local(key, value, hlc);
        if self.emit_events {
            self.events.push_back(Event::StateChanged {
                key: key.to_owned(),
                value: event_value,
                origin: if deleting {
                    ChangeOrigin::LocalDelete
                } else {
                    ChangeOrigin::LocalSet
                },
            });
        }
        if self.started && self.push_due_us.is_none() {
            // Like Nagle's algorithm: a write after a quiet spell goes out at once; writes
            // in a burst are gathered into one push per `push_delay`.
            let next_slot = self
                .last_push_us
                .map_or(0, |t| t + us(self.config.push_delay));
            self.push_due_us = Some(now.mono_us.max(next_slot));
        }
        was_live
    }

    // ----- inputs --------------------------------------------------------------------

    /// Processes one received datagram.
    pub fn handle_datagram(&mut self, now: Now, from: SocketAddr, datagram: &[u8]) {
        self.counters.datagrams_received += 1;
        self.counters.bytes_received += datagram.len() as u64;
        let packet = match wire::decode_packet(self.cluster, datagram) {
            Ok(p) => p,
            Err(reason) => {
                self.count_drop(reason);
                return;
            }
        };
        if packet.src_inc == 0 {
            self.counters.dropped.malformed += 1;
            return;
        }
        // A datagram meant for an earlier run of this node: its acks and data belong to a
        // session that no longer exists, but its heartbeat still introduces the sender
        // (who must learn our new incarnation, or it would never reach us again).
        let mut frames = packet.frames;
        if packet.dst_inc != 0 && packet.dst_inc != self.incarnation {
            frames.retain(|f| matches!(f, Frame::Heartbeat(_)));
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
        if packet.src_inc == self.incarnation {
            // Our own datagram looped back (a peer list naming ourselves).
            self.counters.dropped.stale += 1;
            return;
        }
        if !self.peers.contains_key(&from) {
            if self.peers.len() >= MAX_PEERS {
                return;
            }
            let peer = Peer::new(from, false, now.mono_us, &self.limits);
            self.peers.insert(from, peer);
        }
        if !self.admit_incarnation(now, from, packet.src_inc) {
            self.counters.dropped.stale += 1;
            return;
        }
        self.mark_heard(now, from);
        for frame in frames {
            match frame {
                Frame::Ack(ack) => {
                    if let Some(peer) = self.peers.get_mut(&from) {
                        peer.channel.on_ack(&ack, now.mono_us);
                    }
                }
                Frame::Heartbeat(hb) => self.on_heartbeat(now, from, hb),
                Frame::Data(data) => {
                    let Some(peer) = self.peers.get_mut(&from) else {
                        continue;
                    };
                    match peer.channel.on_data(data, now.mono_us) {
                        Received::Message(bytes) => match wire::decode_message(&bytes) {
                            Ok(message) => self.on_message(now, from, message),
                            Err(reason) => self.count_drop(reason),
                        },
                        Received::Duplicate => self.counters.dropped.duplicate += 1,
                        Received::Fragment | Received::Refused => {}
                    }
                }
            }
        }
    }

    /// Handles timers due at `now`: retransmissions, heartbeats, failure detection,
    /// pushes, anti-entropy, tombstone collection.
    pub fn handle_timeout(&mut self, now: Now) {
        let t = now.mono_us;
        let timeout_us = us(self.config.peer_timeout);
        let heartbeat_us = us(self.config.heartbeat_interval);
        let max_probe_us = us(self.config.max_probe_interval);
        let mut heartbeats = Vec::new();
        let mut failed = Vec::new();
        for peer in self.peers.values_mut() {
            peer.channel.on_timeout(t);
            if std::mem::take(&mut peer.channel.lost_data) {
                let earliest = peer
                    .last_sync_us
                    .map_or(t, |s| s + MIN_TRIGGERED_SYNC_GAP_US);
                peer.sync_due_us.get_or_insert(earliest.max(t));
            }
            if peer.check_liveness(t, timeout_us, heartbeat_us) == Transition::Failed {
                failed.push((peer.node_id.clone(), peer.addr));
            }
            if self.started && peer.next_heartbeat_us <= t {
                heartbeats.push(peer.addr);
                peer.schedule_heartbeat(t, heartbeat_us, max_probe_us);
            }
        }
        for (node_id, addr) in failed {
            if let Some(node_id) = node_id {
                log::info!("{}: peer {node_id} at {addr} failed", self.config.node_id);
                self.emit(Event::PeerFailed { node_id, addr });
            }
        }
        for addr in heartbeats {
            self.send_heartbeat(
                addr,
                self.peers
                    .get(&addr)
                    .is_some_and(|p| p.state != PeerState::Alive),
            );
        }
        if !self.started {
            return;
        }
        if self.push_due_us.is_some_and(|d| d <= t) {
            self.push_due_us = None;
            self.last_push_us = Some(t);
            self.push_local_writes();
        }
        if self.next_sync_us <= t {
            self.next_sync_us = t + jittered(&mut self.rng, us(self.config.sync_interval));
            let candidates: Vec<SocketAddr> = self
                .peers
                .values()
                .filter(|p| p.is_reachable())
                .map(|p| p.addr)
                .collect();
            if !candidates.is_empty() {
                let pick = candidates[self.rng.usize(..candidates.len())];
                self.start_sync(now, pick);
            }
        }
        let due: Vec<SocketAddr> = self
            .peers
            .values()
            .filter(|p| p.sync_due_us.is_some_and(|d| d <= t))
            .map(|p| p.addr)
            .collect();
        for addr in due {
            if let Some(peer) = self.peers.get_mut(&addr) {
                peer.sync_due_us = None;
            }
            self.start_sync(now, addr);
        }
        if self.next_gc_us <= t {
            self.next_gc_us = t + us(self.config.sync_interval);
            self.collect_tombstones(now);
        }
    }

    // ----- outputs -------------------------------------------------------------------

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self, now: Now) -> Option<Transmit> {
        if self.transmits.is_empty() && self.started {
            self.produce(now);
        }
        self.transmits.pop_front()
    }

    /// The next event for the application, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Engine::handle_timeout`] must next be called (monotonic microseconds).
    pub fn poll_timeout(&self) -> Option<u64> {
        let timeout_us = us(self.config.peer_timeout);
        let mut earliest = self.push_due_us;
        let mut consider = |t: Option<u64>| {
            if let Some(t) = t {
                earliest = Some(earliest.map_or(t, |e: u64| e.min(t)));
            }
        };
        for peer in self.peers.values() {
            consider(peer.channel.next_timeout());
            consider(peer.next_transition_us(timeout_us));
            if self.started {
                consider(Some(peer.next_heartbeat_us));
                consider(peer.sync_due_us);
            }
        }
        if self.started {
            consider(Some(self.next_sync_us));
            consider(Some(self.next_gc_us));
        }
        earliest
    }

    /// Time after start during which tombstones are not collected on confirmation, so
    /// gossip can spread the membership to this node first.
    fn membership_warmup_us(&self) -> u64 {
        (20 * us(self.config.heartbeat_interval)).max(2 * us(self.config.peer_timeout))
    }

    /// Whether every local write has been pushed and every reliable datagram to a
    /// reachable peer acknowledged. Drivers wait for this (briefly) before shutting down,
    /// so a write made just before a stop is not lost with the process.
    pub fn is_flushed(&self) -> bool {
        let reachable = || self.peers.values().filter(|p| p.is_reachable());
        let unpushed = self.replica.own_seq() > self.pushed_upto;
        !(unpushed && reachable().next().is_some()) && reachable().all(|p| p.channel.is_idle())
    }

    /// Pushes pending local writes at the next opportunity instead of after `push_delay`.
    pub fn flush_pushes(&mut self, now: Now) {
        if self.started && self.replica.own_seq() > self.pushed_upto {
            self.push_due_us = Some(now.mono_us);
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

    fn count_drop(&mut self, reason: DropReason) {
        let d = &mut self.counters.dropped;
        match reason {
            DropReason::Truncated => d.truncated += 1,
            DropReason::BadMagic => d.bad_magic += 1,
            DropReason::BadVersion => d.bad_version += 1,
            DropReason::BadChecksum => d.bad_checksum += 1,
            DropReason::WrongCluster => d.wrong_cluster += 1,
            DropReason::Malformed => d.malformed += 1,
        }
    }

    /// Accepts the sender's incarnation: the same as known, a first one, or a newer one
    /// (the peer restarted: its session is reset). Older ones are stale datagrams.
    fn admit_incarnation(&mut self, now: Now, from: SocketAddr, src_inc: u64) -> bool {
        let Some(peer) = self.peers.get_mut(&from) else {
            return false;
        };
        if peer.incarnation == src_inc {
            return true;
        }
        if peer.incarnation > src_inc {
            return false;
        }
        let restarted = peer.incarnation != 0;
        peer.reset_session(src_inc, &self.limits);
        peer.sync_due_us = Some(now.mono_us);
        if restarted {
            if let Some(node_id) = peer.node_id.clone() {
                log::info!(
                    "{}: peer {node_id} at {from} restarted",
                    self.config.node_id
                );
                peer.state = PeerState::Alive;
                self.emit(Event::PeerRecovered {
                    node_id,
                    addr: from,
                });
            }
        }
        true
    }

    fn mark_heard(&mut self, now: Now, from: SocketAddr) {
        let heartbeat_us = us(self.config.heartbeat_interval);
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        peer.last_heard_us = Some(now.mono_us);
        let previous = peer.state;
        if previous == PeerState::Alive {
            return;
        }
        peer.state = PeerState::Alive;
        peer.probe_interval_us = FIRST_PROBE_US;
        peer.next_heartbeat_us = peer.next_heartbeat_us.min(now.mono_us + heartbeat_us);
        if previous == PeerState::Dead {
            peer.sync_due_us = Some(now.mono_us);
            if let Some(node_id) = peer.node_id.clone() {
                log::info!(
                    "{}: peer {node_id} at {from} recovered",
                    self.config.node_id
                );
                self.emit(Event::PeerRecovered {
                    node_id,
                    addr: from,
                });
            }
        }
    }

    fn on_heartbeat(&mut self, now: Now, from: SocketAddr, hb: Heartbeat) {
        if hb.node_id == self.config.node_id {
            // Another process runs with our node id, or we were given our own address.
            log::warn!(
                "{}: heard from {from} claiming our own node id; ignoring it",
                self.config.node_id
            );
            self.peers.remove(&from);
            return;
        }
        let own_fingerprint = self.replica.version_vector().fingerprint();
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        let newly_identified = peer.node_id.as_deref() != Some(hb.node_id.as_str());
        if newly_identified {
            peer.node_id = Some(hb.node_id.clone());
            peer.sync_due_us = Some(now.mono_us);
        }
        peer.fingerprint = Some(hb.fingerprint);
        // Differing fingerprints are expected while our pushes are still on their way:
        // only a difference seen with nothing in flight calls for a sync.
        if hb.fingerprint != own_fingerprint && peer.sync_due_us.is_none() && peer.channel.is_idle()
        {
            let earliest = peer.last_sync_us.map_or(now.mono_us, |s| {
                s + MIN_TRIGGERED_SYNC_GAP_US.max(us(self.config.heartbeat_interval) / 2)
            });
            peer.sync_due_us = Some(earliest.max(now.mono_us));
        }
        if newly_identified {
            // The same node id at another address: it moved (restarted on a new port).
            self.peers.retain(|addr, p| {
                *addr == from || p.node_id.as_deref() != Some(hb.node_id.as_str())
            });
            log::info!(
                "{}: discovered peer {} at {from}",
                self.config.node_id,
                hb.node_id
            );
            self.emit(Event::PeerDiscovered {
                node_id: hb.node_id.clone(),
                addr: from,
            });
        }
        for gossiped in hb.gossip {
            if gossiped.node_id == self.config.node_id
                || self.peers.contains_key(&gossiped.addr)
                || self.peers.len() >= MAX_PEERS
                || self
                    .peers
                    .values()
                    .any(|p| p.node_id.as_deref() == Some(gossiped.node_id.as_str()))
            {
                continue;
            }
            let peer = Peer::new(gossiped.addr, false, now.mono_us, &self.limits);
            self.peers.insert(gossiped.addr, peer);
        }
        if hb.reply && self.started {
            self.send_heartbeat(from, false);
        }
    }

    fn on_message(&mut self, now: Now, from: SocketAddr, message: Message) {
        match message {
            Message::Delta(delta) => self.apply_delta(now, delta),
            Message::SyncRequest(request) => self.on_sync_request(from, request),
        }
    }

    fn apply_delta(&mut self, now: Now, delta: Delta) {
        let own = self.replica.own_origin();
        for group in delta.groups {
            if group.origin == own {
                continue; // our own writes: we hold them, or we are a later incarnation
            }
            let mut complete = true;
            for entry in group.entries {
                self.counters.entries_received += 1;
                // Already accounted for: held, beaten by what is held, or a delete whose
                // tombstone is collected. A late retransmission of an old write must not
                // bring back a value deleted since.
                if self
                    .replica
                    .version_vector()
                    .contains(group.origin, entry.seq)
                {
                    continue;
                }
                if entry.key.len() > self.config.max_key_len
                    || entry
                        .value
                        .as_ref()
                        .is_some_and(|v| v.encoded_len() > self.config.max_value_size)
                {
                    self.counters.dropped.oversized += 1;
                    complete = false;
                    continue;
                }
                if self.clock.observe(entry.hlc, now.wall_ms).is_err() {
                    self.counters.dropped.clock_drift += 1;
                    complete = false;
                    continue;
                }
                let key = entry.key;
                let new_value = if self.emit_events {
                    entry.value.clone()
                } else {
                    None
                };
                let now_live = entry.value.is_some();
                let merged = self.replica.merge(
                    &key,
                    Entry {
                        value: entry.value,
                        hlc: entry.hlc,
                        origin: group.origin,
                        seq: entry.seq,
                    },
                );
                if let MergeOutcome::Applied { was_live } = merged {
                    self.counters.entries_applied += 1;
                    if was_live || now_live {
                        self.emit(Event::StateChanged {
                            key,
                            value: new_value,
                            origin: ChangeOrigin::Sync,
                        });
                    }
                }
            }
            // Only a group merged in full may be accounted for: a refused entry must be
            // offered again by the next anti-entropy round.
            if complete && group.lo >= 1 && group.lo <= group.hi {
                self.replica.cover(group.origin, group.lo, group.hi);
            }
        }
    }

    fn on_sync_request(&mut self, from: SocketAddr, request: SyncRequest) {
        let theirs: HashMap<OriginId, u64> = request.digest.into_iter().collect();
        let mut ranges = VecDeque::new();
        for (origin, set) in self.replica.version_vector().iter() {
            let their_upto = theirs.get(&origin).copied().unwrap_or(0);
            for (lo, hi) in set.ranges() {
                if hi > their_upto {
                    ranges.push_back((origin, lo.max(their_upto + 1), hi));
                }
            }
        }
        // Stream oldest origins first is not needed; sort for determinism.
        ranges.make_contiguous().sort_unstable();
        let reply = request
            .reply
            .then(|| self.replica.version_vector().digest());
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        peer.digest = Some(theirs);
        peer.stream = ranges;
        if let Some(digest) = reply {
            let message = wire::encode_message(&Message::SyncRequest(SyncRequest {
                digest,
                reply: false,
            }));
            peer.channel.send_message(&message);
        }
    }

    fn start_sync(&mut self, now: Now, addr: SocketAddr) {
        let digest = self.replica.version_vector().digest();
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        if !peer.is_reachable() {
            return;
        }
        let message = wire::encode_message(&Message::SyncRequest(SyncRequest {
            digest,
            reply: true,
        }));
        if peer.channel.send_message(&message) {
            peer.last_sync_us = Some(now.mono_us);
            self.counters.sync_rounds += 1;
        }
    }

    fn push_local_writes(&mut self) {
        let own_seq = self.replica.own_seq();
        if own_seq <= self.pushed_upto {
            return;
        }
        let mut ranges =
            VecDeque::from([(self.replica.own_origin(), self.pushed_upto + 1, own_seq)]);
        self.pushed_upto = own_seq;
        let mut messages = Vec::new();
        while !ranges.is_empty() {
            let delta = build_delta(&self.replica, &mut ranges, self.limits.max_fragment);
            messages.push(wire::encode_message(&Message::Delta(delta)));
        }
        for peer in self.peers.values_mut().filter(|p| p.is_reachable()) {
            for message in &messages {
                if !peer.channel.send_message(message) {
                    // Queue full: the peer is slow or gone; anti-entropy will catch it up.
                    peer.sync_due_us.get_or_insert(0);
                    break;
                }
            }
        }
    }

    fn send_heartbeat(&mut self, addr: SocketAddr, reply: bool) {
        let fingerprint = self.replica.version_vector().fingerprint();
        let mut known: Vec<GossipPeer> = self
            .peers
            .values()
            // Dead peers too: a node that joins during a partition must still learn the
            // whole membership, or it could collect tombstones others never saw.
            .filter(|p| p.addr != addr)
            .filter_map(|p| {
                p.node_id.as_ref().map(|id| GossipPeer {
                    node_id: id.clone(),
                    addr: p.addr,
                })
            })
            .collect();
        known.sort_by_key(|p| p.addr);
        let mut gossip = Vec::new();
        while gossip.len() < GOSSIP_FANOUT && !known.is_empty() {
            gossip.push(known.swap_remove(self.rng.usize(..known.len())));
        }
        let dst_inc = self.peers.get(&addr).map_or(0, |p| p.incarnation);
        let ack = self.peers.get_mut(&addr).and_then(|p| p.channel.take_ack());
        let mut frames = Vec::with_capacity(2);
        if let Some(ack) = ack {
            frames.push(Frame::Ack(ack));
        }
        frames.push(Frame::Heartbeat(Heartbeat {
            node_id: self.config.node_id.clone(),
            fingerprint,
            reply,
            gossip,
        }));
        let packet = Packet {
            src_inc: self.incarnation,
            dst_inc,
            frames,
        };
        self.transmits.push_back(Transmit {
            dst: addr,
            payload: wire::encode_packet(self.cluster, &packet),
        });
    }

    /// Fills the transmit queue: sync chunks into channels with room, then every
    /// channel's ready data (with acks piggybacked) and standalone acks.
    fn produce(&mut self, now: Now) {
        let max_fragment = self.limits.max_fragment;
        let refill_below = self.limits.max_in_flight;
        let addrs: Vec<SocketAddr> = self.peers.keys().copied().collect();
        for addr in addrs {
            let Some(peer) = self.peers.get_mut(&addr) else {
                continue;
            };
            while !peer.stream.is_empty() && peer.channel.queued_bytes() < refill_below {
                let delta = build_delta(&self.replica, &mut peer.stream, max_fragment);
                let message = wire::encode_message(&Message::Delta(delta));
                if !peer.channel.send_message(&message) {
                    break;
                }
            }
            let dst_inc = peer.incarnation;
            while let Some(data) = peer.channel.poll_data(now.mono_us) {
                let mut frames = Vec::with_capacity(2);
                if let Some(ack) = peer.channel.take_ack() {
                    frames.push(Frame::Ack(ack));
                }
                frames.push(Frame::Data(data));
                let packet = Packet {
                    src_inc: self.incarnation,
                    dst_inc,
                    frames,
                };
                self.transmits.push_back(Transmit {
                    dst: addr,
                    payload: wire::encode_packet(self.cluster, &packet),
                });
            }
            if let Some(ack) = peer.channel.take_ack() {
                let packet = Packet {
                    src_inc: self.incarnation,
                    dst_inc,
                    frames: vec![Frame::Ack(ack)],
                };
                self.transmits.push_back(Transmit {
                    dst: addr,
                    payload: wire::encode_packet(self.cluster, &packet),
                });
            }
        }
    }

    /// Drops tombstones every peer has confirmed (or older than the grace).
    ///
    /// Confirmation is judged against every peer this node knows, reachable or not, with
    /// or without a node id yet: a peer never heard from, or restarted since its last
    /// digest, has no digest and blocks collection. Collecting early would let a node
    /// that missed the delete keep the old value forever, since the collector's version
    /// vector already accounts for the delete. A freshly started node waits until gossip
    /// had time to tell it the whole membership.
    fn collect_tombstones(&mut self, now: Now) {
        let grace_ms = self.config.tombstone_grace.as_millis() as u64;
        let min_age_ms = 2 * self.config.sync_interval.as_millis() as u64;
        let warmed_up =
            now.mono_us.saturating_sub(self.started_at_us) >= self.membership_warmup_us();
        let digests: Vec<Option<&HashMap<OriginId, u64>>> =
            self.peers.values().map(|p| p.digest.as_ref()).collect();
        let everyone_confirmed = |entry: &Entry| {
            warmed_up
                && !digests.is_empty()
                && digests.iter().all(|d| {
                    d.is_some_and(|d| d.get(&entry.origin).is_some_and(|&upto| upto >= entry.seq))
                })
        };
        let collected = self.replica.collect_tombstones(|entry| {
            let age_ms = now.wall_ms.saturating_sub(physical_ms(entry.hlc));
            age_ms >= grace_ms || (age_ms >= min_age_ms && everyone_confirmed(entry))
        });
        if collected > 0 {
            log::debug!("{}: collected {collected} tombstones", self.config.node_id);
        }
    }
}

/// Builds one delta of at most about `budget` bytes from the front of `ranges`,
/// consuming what it covers. Always makes progress: a single entry larger than the
/// budget travels alone (fragmented by the transport).
fn build_delta(
    replica: &Replica,
    ranges: &mut VecDeque<(OriginId, u64, u64)>,
    budget: usize,
) -> Delta {
    let mut delta = Delta::default();
    let mut size = 8;
    let mut any_entry = false;
    while let Some(&(origin, lo, hi)) = ranges.front() {
        let mut entries = Vec::new();
        let mut covered_to = hi;
        for (key, entry) in replica.entries_of(origin, lo, hi) {
            let wire_entry = WireEntry {
                seq: entry.seq,
                hlc: entry.hlc,
                key: key.to_owned(),
                value: entry.value.clone(),
            };
            let len = wire_entry.encoded_len();
            if any_entry && size + len > budget {
                covered_to = entry.seq - 1;
                break;
            }
            size += len;
            any_entry = true;
            entries.push(wire_entry);
        }
        size += 32;
        if covered_to >= lo {
            delta.groups.push(Group {
                origin,
                lo,
                hi: covered_to,
                entries,
            });
        }
        if covered_to == hi {
            ranges.pop_front();
        } else {
            if let Some(front) = ranges.front_mut() {
                front.1 = covered_to + 1;
            }
            break;
        }
        if size >= budget {
            break;
        }
    }
    delta
}

/// `base` with ±10% random jitter, so nodes started together do not stay in lockstep.
fn jittered(rng: &mut fastrand::Rng, base: u64) -> u64 {
    let spread = base / 10;
    base - spread + rng.u64(0..=2 * spread)
}
