//! Deterministic simulation: many engines on a virtual network, in virtual time.
//!
//! Every datagram goes through the same [`FaultInjector`] rules as the real runtime's
//! socket edge (loss, duplication, reordering, corruption, delay and jitter), plus
//! partitions between groups of nodes, crashes with restarts, and per-node clock skew.
//! Time jumps straight to the next delivery or timer, so thousands of virtual seconds
//! run in about a real second, and a run is fully determined by its seed.
//!
//! [`Sim::check_converged`] compares every live replica with an oracle that knows every
//! write made: each key must hold the winning write among those that survived (writes
//! lost with a crashed node before reaching any peer are the only ones allowed to
//! vanish), and deleted keys must stay deleted.
//!
//! With `config.data_dir` set (the path is never touched), every node has a simulated
//! disk ([`disk::SimDisk`]): a crash keeps what was flushed, a restart reloads it, and
//! the oracle counts a write as surviving a crash if a disk holds it. The check also
//! requires that no `(origin, seq)` names two writes and that a node's clock never
//! issues a timestamp at or below the high-water mark on its disk.
//!
//! [`Sim::add_adversary`] puts an attacker on the network (see [`adversary`]); the check
//! then allows the writes it forged to win where they outrank the honest ones, and
//! requires everything else as before.

pub mod adversary;
pub mod disk;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use crate::config::Config;
use crate::engine::{Engine, MemoryReport};
use crate::fault::{FaultConfig, FaultInjector};
use crate::seal::NoncePrefix;
use crate::time::Now;
use crate::value::Value;

use adversary::{Adversary, AdversaryConfig};

/// Virtual wall clock at time zero (2026-01-01), so HLC timestamps look real.
const WALL_BASE_MS: u64 = 1_767_225_600_000;

/// Virtual address of node `i` (never used for real traffic).
fn sim_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 20_000 + i as u16))
}

/// Virtual address of the adversary, outside the nodes' range.
const ADVERSARY_ADDR: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 66)),
    6_666,
);

/// Members up to which a node's invariants are checked after every timeout, and its
/// memory measured after every step.
const FULL_CHECK_MEMBERS: usize = 256;

/// Virtual time between two walks over a node's members (an invariant check, a memory
/// measure): none below [`FULL_CHECK_MEMBERS`]; above it, 50 ms per member, so that the
/// checks of a thousand nodes of a thousand members each cost what the protocol does.
fn check_gap_us(engine: &Engine) -> u64 {
    let members = engine.member_count();
    if members <= FULL_CHECK_MEMBERS {
        0
    } else {
        members as u64 * 50_000
    }
}

/// Index standing for the adversary in a [`Flight`]'s `from` or `to`.
const ADVERSARY: usize = usize::MAX;

/// One simulated node.
#[derive(Debug)]
pub struct SimNode {
    /// Its engine, `None` while crashed.
    pub engine: Option<Engine>,
    /// Its virtual address.
    pub addr: SocketAddr,
    /// How far its wall clock is off, in milliseconds (may be negative).
    pub skew_ms: i64,
    /// Restarts so far.
    pub restarts: u32,
    /// Extra delay of a slow node, microseconds: added to every datagram it sends and
    /// receives, and to every timer it runs (0: a normal node).
    pub slow_us: u64,
}

/// A write the oracle knows of.
#[derive(Clone, Debug)]
struct Write {
    key: String,
    value: Option<Value>,
    rank: (u64, u64, u64),
    lost: bool,
    /// Expiry (HLC) of a write with a TTL.
    expires: Option<u64>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Flight {
    at_us: u64,
    order: u64,
    /// Sending node, or [`ADVERSARY`].
    from: usize,
    /// Receiving node, or [`ADVERSARY`].
    to: usize,
    /// Source address the datagram carries (a spoofing adversary picks it).
    src: SocketAddr,
    payload: Vec<u8>,
}

/// Why a simulation run failed its check.
#[derive(Debug, Clone, PartialEq)]
pub enum Divergence {
    /// Two live replicas differ.
    ReplicasDiffer {
        /// First node.
        a: usize,
        /// Second node.
        b: usize,
        /// A key where they differ.
        key: String,
    },
    /// A replica differs from what the writes imply (a lost or resurrected write).
    WrongValue {
        /// The node.
        node: usize,
        /// The key.
        key: String,
        /// What the oracle expects (`None`: deleted or never written).
        expected: Option<Value>,
        /// What the node holds.
        actual: Option<Value>,
    },
    /// An engine broke one of its own invariants (see `Engine::check_invariants`).
    Invariant {
        /// The node.
        node: usize,
        /// Virtual time, microseconds.
        at_us: u64,
        /// What is wrong.
        why: String,
    },
    /// A replica holds a write under an honest origin that no honest node made: a
    /// forgery inside an honest origin's sequence numbers.
    ForgedHonestWrite {
        /// The node.
        node: usize,
        /// The key.
        key: String,
        /// `(hlc, origin, seq)` of what the node holds.
        rank: (u64, u64, u64),
    },
    /// A replica holds a write under an origin no honest node ran with that the
    /// adversary did not send either.
    UnknownWrite {
        /// The node.
        node: usize,
        /// The key.
        key: String,
        /// `(hlc, origin, seq)` of what the node holds.
        rank: (u64, u64, u64),
    },
}

/// A simulated mesh.
#[derive(Debug)]
pub struct Sim {
    /// Virtual monotonic time, microseconds.
    pub now_us: u64,
    /// The nodes.
    pub nodes: Vec<SimNode>,
    config: Config,
    flights: BinaryHeap<Reverse<Flight>>,
    order: u64,
    injector: FaultInjector,
    /// Base one-way latency, microseconds.
    pub latency_us: u64,
    /// Group of each node while partitioned (`None`: fully connected).
    groups: Option<Vec<u8>>,
    rng: fastrand::Rng,
    writes: Vec<Write>,
    /// Datagrams delivered so far.
    pub delivered: u64,
    /// Largest protocol memory seen on any node.
    pub peak_memory: MemoryReport,
    /// Every datagram the nodes send from now on, once set to `Some` (for tests that
    /// decode what went out).
    pub recorded: Option<Vec<Vec<u8>>>,
    /// Each node's next timer, refreshed whenever the node is touched.
    timers: Vec<Option<u64>>,
    /// The same timers with each node's slowness added, by time, and the key each is
    /// filed under: the next one is found without a walk over a thousand nodes.
    due: BTreeSet<(u64, usize)>,
    due_keys: Vec<Option<u64>>,
    /// Node index by address.
    by_addr: HashMap<SocketAddr, usize>,
    /// When each node's invariants were last checked, and its memory last measured.
    checked_us: Vec<u64>,
    measured_us: Vec<u64>,
    /// The first invariant an engine broke, reported by [`Sim::check_converged`].
    violation: Option<Divergence>,
    /// The attacker, if any.
    adversary: Option<Adversary>,
    /// When the attacker acts next.
    adversary_timer: Option<u64>,
    /// Every incarnation (origin) honest nodes ran with.
    honest_origins: BTreeSet<u64>,
    /// Each node's disk, when the config has a `data_dir`.
    disks: Option<Vec<disk::SimDisk>>,
    /// Random low bits of each drawn incarnation (16, as the runtime draws).
    incarnation_random_bits: u32,
    /// Per node, a change to the shared configuration applied at each boot.
    config_edits: Vec<Option<fn(&mut Config)>>,
    /// Every `(origin, seq)` written, with the write's index.
    written: HashMap<(u64, u64), usize>,
    /// Restarts whose disk was discarded for being older than the tombstone grace.
    pub stale_discards: u32,
    /// User messages each node received, `(sender, data)`, in delivery order.
    pub inbox: Vec<Vec<(String, Vec<u8>)>>,
}

impl Sim {
    /// `n` nodes with `config` (node ids and ports are filled in), every node bootstrapped
    /// with the first one, all started, on a network with `faults`.
    pub fn new(n: usize, config: Config, faults: FaultConfig, seed: u64) -> Sim {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut sim = Sim {
            now_us: 0,
            nodes: Vec::with_capacity(n),
            config,
            flights: BinaryHeap::new(),
            order: 0,
            injector: FaultInjector::new(faults, rng.u64(..)),
            latency_us: 500,
            groups: None,
            rng: fastrand::Rng::with_seed(rng.u64(..)),
            writes: Vec::new(),
            delivered: 0,
            peak_memory: MemoryReport::default(),
            recorded: None,
            violation: None,
            timers: vec![None; n],
            due: BTreeSet::new(),
            due_keys: vec![None; n],
            by_addr: HashMap::with_capacity(n),
            checked_us: vec![0; n],
            measured_us: vec![0; n],
            adversary: None,
            adversary_timer: None,
            honest_origins: BTreeSet::new(),
            disks: None,
            incarnation_random_bits: 16,
            config_edits: vec![None; n],
            written: HashMap::new(),
            stale_discards: 0,
            inbox: vec![Vec::new(); n],
        };
        if sim.config.data_dir.is_some() {
            sim.disks = Some(vec![disk::SimDisk::default(); n]);
        }
        for i in 0..n {
            let addr = sim_addr(i);
            sim.by_addr.insert(addr, i);
            sim.nodes.push(SimNode {
                engine: None,
                addr,
                skew_ms: 0,
                restarts: 0,
                slow_us: 0,
            });
            sim.boot(i);
        }
        sim
    }

    /// Skews node `i`'s wall clock by `skew_ms`.
    pub fn set_skew(&mut self, i: usize, skew_ms: i64) {
        self.nodes[i].skew_ms = skew_ms;
    }

    /// Changes node `i`'s configuration from its next boot on (crash and restart it to
    /// apply the change now): for meshes whose nodes differ.
    pub fn configure(&mut self, i: usize, edit: fn(&mut Config)) {
        self.config_edits[i] = Some(edit);
    }

    /// Draws the incarnations of later boots with only `bits` (at most 16) random low
    /// bits: with 0, nodes started in the same virtual millisecond share one, as two real
    /// nodes started at once now and then do.
    pub fn set_incarnation_random_bits(&mut self, bits: u32) {
        self.incarnation_random_bits = bits.min(16);
    }

    /// Replaces the network's fault rules.
    pub fn set_faults(&mut self, faults: FaultConfig) {
        self.injector.set_config(faults);
    }

    /// Node `i`'s clock reading now (virtual time, with its skew).
    pub fn now_for(&self, i: usize) -> Now {
        let wall = (WALL_BASE_MS + self.now_us / 1000) as i64 + self.nodes[i].skew_ms;
        Now {
            mono_us: self.now_us,
            wall_ms: wall.max(0) as u64,
        }
    }

    fn boot(&mut self, i: usize) {
        let mut config = self.config.clone();
        config.node_id = format!("n{i}");
        config.port = self.nodes[i].addr.port();
        if let Some(edit) = self.config_edits[i] {
            edit(&mut config);
        }
        let now = self.now_for(i);
        // Incarnations grow with (virtual) time, as the runtime's do.
        let random = self.rng.u64(..) & ((1 << self.incarnation_random_bits) - 1);
        let mut incarnation = ((now.wall_ms << 16) | random).max(1);
        let grace_ms = self.config.tombstone_grace.as_millis() as u64;
        let loaded = match self.disks.as_mut() {
            Some(disks) => {
                let (snapshot, stale) = disks[i].open(now.wall_ms, grace_ms);
                incarnation = snapshot.next_incarnation(incarnation);
                disks[i].incarnation = incarnation;
                Some((snapshot, stale))
            }
            None => None,
        };
        let seed = self.rng.u64(..);
        // Nonce prefixes from the simulator's seed: distinct per boot, reproducible.
        let mut prefix = [0u8; 16];
        prefix[..8].copy_from_slice(&self.rng.u64(..).to_le_bytes());
        prefix[8..].copy_from_slice(&self.rng.u64(..).to_le_bytes());
        let mut engine = Engine::new(config, incarnation, seed, NoncePrefix(prefix), now);
        if let Some((snapshot, stale)) = loaded {
            engine.restore(snapshot);
            engine.record_store_changes();
            if stale {
                self.stale_discards += 1;
                // What only this disk kept is gone now.
                self.mark_lost();
            }
        }
        self.honest_origins.insert(engine.origin());
        if let Some(adversary) = self.adversary.as_mut() {
            adversary.note_honest_origin(engine.origin());
        }
        engine.set_emit_state_events(false);
        if i > 0 {
            engine.add_bootstrap_peer(now, self.nodes[0].addr);
        } else if self.nodes.len() > 1 || self.nodes[i].restarts > 0 {
            engine.add_bootstrap_peer(now, sim_addr(1));
        }
        engine.start(now);
        self.nodes[i].engine = Some(engine);
        self.flush(i);
    }

    /// Writes on node `i` (`None` deletes) and records it for the oracle.
    pub fn write(&mut self, i: usize, key: &str, value: Option<Value>) {
        self.write_inner(i, key, value, None);
    }

    /// Writes `value` with a TTL on node `i` and records it for the oracle, which
    /// expects the key gone once the virtual wall clock (without skew) passes its expiry.
    pub fn write_with_ttl(&mut self, i: usize, key: &str, value: Value, ttl: Duration) {
        self.write_inner(i, key, Some(value), Some(ttl));
    }

    fn write_inner(&mut self, i: usize, key: &str, value: Option<Value>, ttl: Option<Duration>) {
        let now = self.now_for(i);
        let Some(engine) = self.nodes[i].engine.as_mut() else {
            return;
        };
        match (&value, ttl) {
            (Some(v), Some(ttl)) => engine
                .set_with_ttl(now, key, v.clone(), ttl)
                .expect("valid write"),
            (Some(v), None) => engine.set(now, key, v.clone()).expect("valid write"),
            (None, _) => {
                engine.delete(now, key).expect("valid delete");
            }
        }
        let held = engine.replica().entry(key).expect("just written");
        let (rank, expires) = (held.rank(), held.expires);
        let floor = self.disks.as_ref().map_or(0, |d| d[i].hlc);
        if rank.0 <= floor {
            self.violation.get_or_insert(Divergence::Invariant {
                node: i,
                at_us: self.now_us,
                why: format!(
                    "write stamped {} at or below the disk's clock floor {floor}",
                    rank.0
                ),
            });
        }
        if let Some(earlier) = self.written.insert((rank.1, rank.2), self.writes.len()) {
            self.violation.get_or_insert(Divergence::Invariant {
                node: i,
                at_us: self.now_us,
                why: format!(
                    "(origin {}, seq {}) names two writes: {:?} and {key:?}",
                    rank.1, rank.2, self.writes[earlier].key
                ),
            });
        }
        self.writes.push(Write {
            key: key.to_owned(),
            value,
            rank,
            lost: false,
            expires,
        });
        self.flush(i);
    }

    /// Sends a user message from node `i` to the node named `peer_id`.
    pub fn send(&mut self, i: usize, peer_id: &str, data: &[u8]) -> crate::error::Result<()> {
        let now = self.now_for(i);
        let result = match self.nodes[i].engine.as_mut() {
            Some(engine) => engine.send_message(now, peer_id, data),
            None => Err(crate::error::Error::Stopped),
        };
        self.flush(i);
        result
    }

    /// Broadcasts a user message from node `i`; returns how many peers it went to.
    pub fn broadcast(&mut self, i: usize, data: &[u8]) -> crate::error::Result<usize> {
        let now = self.now_for(i);
        let result = match self.nodes[i].engine.as_mut() {
            Some(engine) => engine.broadcast_message(now, data),
            None => Err(crate::error::Error::Stopped),
        };
        self.flush(i);
        result
    }

    /// Stops node `i` as a node runtime does: it announces that it leaves, then its
    /// engine is gone (like a crash, except that the announcement is on its way).
    pub fn stop(&mut self, i: usize) {
        self.flush(i);
        let now = self.now_for(i);
        let Some(engine) = self.nodes[i].engine.as_mut() else {
            return;
        };
        engine.leave();
        let mut out = Vec::new();
        while engine.has_pending_transmits() {
            match engine.poll_transmit(now) {
                Some(t) => out.push(t),
                None => break,
            }
        }
        self.crash(i);
        self.route(i, out);
    }

    /// Crashes node `i`: its state is gone. Writes that no other live node accounts for
    /// (holds, beats, or has collected as a tombstone) are recorded as lost.
    pub fn crash(&mut self, i: usize) {
        if self.nodes[i].engine.take().is_none() {
            return;
        }
        self.set_timer(i, None);
        // Its datagrams still in the network die with it: otherwise a write judged lost
        // below could still arrive somewhere, and the oracle would be wrong.
        let flights = std::mem::take(&mut self.flights);
        self.flights = flights.into_iter().filter(|f| f.0.from != i).collect();
        self.mark_lost();
    }

    /// Marks as lost every write that no live node accounts for (holds, beats, or has
    /// collected as a tombstone) and no disk keeps.
    fn mark_lost(&mut self) {
        // Held or beaten by what is held, on a live node or a disk: decided first, since
        // whether a delete merely accounted for survives depends on what else was lost.
        let wall_hlc = (WALL_BASE_MS + self.now_us / 1000) << crate::hlc::LOGICAL_BITS;
        let mut accounted_only = Vec::new();
        for w in 0..self.writes.len() {
            // Any write may have lived only on this node by now (its author may have
            // crashed earlier, after handing it over), so every surviving write is checked.
            let write = &self.writes[w];
            if write.lost {
                continue;
            }
            // An expired write is a delete by now: its tombstone may be collected.
            let dead = write.value.is_none() || write.expires.is_some_and(|e| e <= wall_hlc);
            let on_disk = self
                .disks
                .as_ref()
                .is_some_and(|disks| disks.iter().any(|d| d.keeps(&write.key, write.rank, dead)));
            let (_, origin, seq) = write.rank;
            let mut held = false;
            let mut accounted = false;
            for engine in self.nodes.iter().filter_map(|n| n.engine.as_ref()) {
                let replica = engine.replica();
                held |= replica
                    .entry(&write.key)
                    .is_some_and(|entry| entry.rank() >= write.rank);
                accounted |= replica.version_vector().contains(origin, seq);
            }
            if on_disk || held {
                continue;
            }
            // A value write merely accounted for in a version vector does not survive:
            // its superseder may have been on the crashed node only. A delete accounted
            // for may be a tombstone already collected, which survives, unless a write
            // outranking it on the same key is lost: then the delete was accounted for
            // ahead of that superseder (see "Accounting ahead of holding" in
            // ARCHITECTURE.md) and went with it.
            if dead && accounted {
                accounted_only.push(w);
            } else {
                self.writes[w].lost = true;
            }
        }
        for w in accounted_only {
            let write = &self.writes[w];
            let superseder_lost = self
                .writes
                .iter()
                .any(|o| o.lost && o.key == write.key && o.rank > write.rank);
            if superseder_lost {
                self.writes[w].lost = true;
            }
        }
    }

    /// Restarts a crashed node `i` with an empty replica and a new incarnation.
    pub fn restart(&mut self, i: usize) {
        if self.nodes[i].engine.is_none() {
            self.nodes[i].restarts += 1;
            self.boot(i);
        }
    }

    /// Gives node `i` node `j`'s address as a bootstrap peer, as a node started with a
    /// list of the mesh's nodes has.
    pub fn introduce(&mut self, i: usize, j: usize) {
        let now = self.now_for(i);
        let addr = self.nodes[j].addr;
        if let Some(engine) = self.nodes[i].engine.as_mut() {
            engine.add_bootstrap_peer(now, addr);
        }
        self.flush(i);
    }

    /// Splits the mesh: `groups[i]` is node i's side; only nodes on the same side talk.
    pub fn partition(&mut self, groups: Vec<u8>) {
        self.groups = Some(groups);
    }

    /// Ends any partition.
    pub fn heal(&mut self) {
        self.groups = None;
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        // Partitions split the mesh, not the attacker off it.
        a == ADVERSARY || b == ADVERSARY || self.groups.as_ref().is_none_or(|g| g[a] == g[b])
    }

    /// Puts an attacker on the network (see [`adversary`]), acting from now on.
    pub fn add_adversary(&mut self, config: AdversaryConfig, seed: u64) {
        let wall_ms = WALL_BASE_MS + self.now_us / 1000;
        let mut adversary = Adversary::new(
            ADVERSARY_ADDR,
            config,
            &self.config.cluster,
            self.config.max_clock_drift,
            wall_ms,
            seed,
        );
        for &origin in &self.honest_origins {
            adversary.note_honest_origin(origin);
        }
        self.adversary_timer = Some(self.now_us);
        self.adversary = Some(adversary);
    }

    /// The attacker, if any.
    pub fn adversary(&self) -> Option<&Adversary> {
        self.adversary.as_ref()
    }

    /// Stops the attacker: it sends nothing more (what it sent may still be in flight).
    pub fn stop_adversary(&mut self) {
        if let Some(adversary) = self.adversary.as_mut() {
            adversary.stop();
        }
        self.adversary_timer = None;
    }

    /// Puts the attacker's datagrams on the network, through the same faults.
    fn send_adversary(&mut self, out: Vec<adversary::Outgoing>) {
        for o in out {
            let Some(to) = self.nodes.iter().position(|n| n.addr == o.dst) else {
                continue;
            };
            for delivery in self.injector.outgoing(&o.dst, &o.payload) {
                self.order += 1;
                let jitter = self.rng.u64(0..=self.latency_us / 4);
                self.flights.push(Reverse(Flight {
                    at_us: self.now_us + self.latency_us + jitter + delivery.delay_us,
                    order: self.order,
                    from: ADVERSARY,
                    to,
                    src: o.src,
                    payload: delivery.payload,
                }));
            }
        }
    }

    /// Drains node `i`'s transmits into the network.
    fn flush(&mut self, i: usize) {
        let now = self.now_for(i);
        let mut out = Vec::new();
        if let Some(engine) = self.nodes[i].engine.as_mut() {
            while let Some(t) = engine.poll_transmit(now) {
                out.push(t);
            }
            while let Some(event) = engine.poll_event() {
                if let crate::event::Event::Message { sender, data } = event {
                    self.inbox[i].push((sender, data));
                }
            }
            if let Some(disks) = self.disks.as_mut() {
                let interval = crate::time::us(self.config.flush_interval);
                disks[i].flush_due(engine, now, interval);
            }
            let mut sent_bytes = 0;
            for t in &out {
                sent_bytes += t.payload.len() as u64;
            }
            if let Some(recorded) = self.recorded.as_mut() {
                recorded.extend(out.iter().map(|t| t.payload.clone()));
            }
            engine.record_sent(out.len() as u64, sent_bytes);
            let next = engine.poll_timeout();
            // A walk over every link: for a node with hundreds of members, spaced out.
            let measured = &mut self.measured_us[i];
            let measure = self.now_us >= measured.saturating_add(check_gap_us(engine));
            if measure {
                *measured = self.now_us;
                let m = engine.memory();
                let p = &mut self.peak_memory;
                p.in_flight = p.in_flight.max(m.in_flight);
                p.queued_bytes = p.queued_bytes.max(m.queued_bytes);
                p.reassembly_bytes = p.reassembly_bytes.max(m.reassembly_bytes);
                p.peers = p.peers.max(m.peers);
                p.stream_ranges = p.stream_ranges.max(m.stream_ranges);
                p.member_bytes = p.member_bytes.max(m.member_bytes);
            }
            self.set_timer(i, next);
        }
        self.route(i, out);
    }

    /// Records node `i`'s next timer.
    fn set_timer(&mut self, i: usize, at: Option<u64>) {
        self.timers[i] = at;
        let key = at.map(|t| t.saturating_add(self.nodes[i].slow_us));
        if self.due_keys[i] == key {
            return;
        }
        if let Some(old) = self.due_keys[i] {
            self.due.remove(&(old, i));
        }
        if let Some(key) = key {
            self.due.insert((key, i));
        }
        self.due_keys[i] = key;
    }

    /// Puts datagrams node `i` sent on the network.
    fn route(&mut self, i: usize, out: Vec<crate::engine::Transmit>) {
        let src = self.nodes[i].addr;
        for t in out {
            let to = if self.adversary.as_ref().is_some_and(|a| a.addr == t.dst) {
                ADVERSARY
            } else {
                let Some(&to) = self.by_addr.get(&t.dst) else {
                    continue;
                };
                to
            };
            if !self.connected(i, to) {
                continue;
            }
            for delivery in self.injector.outgoing(&t.dst, &t.payload) {
                self.order += 1;
                let jitter = self.rng.u64(0..=self.latency_us / 4);
                let slow = self.nodes[i].slow_us + self.nodes.get(to).map_or(0, |n| n.slow_us);
                self.flights.push(Reverse(Flight {
                    at_us: self.now_us + self.latency_us + jitter + delivery.delay_us + slow,
                    order: self.order,
                    from: i,
                    to,
                    src,
                    payload: delivery.payload,
                }));
            }
        }
    }

    /// Sends raw bytes to node `to` as if from `from_addr` (garbage injection).
    pub fn inject(&mut self, to: usize, from_addr: SocketAddr, payload: &[u8]) {
        let now = self.now_for(to);
        if let Some(engine) = self.nodes[to].engine.as_mut() {
            engine.handle_datagram(now, from_addr, payload);
        }
        self.flush(to);
    }

    /// Runs the network and every timer for `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now_us + crate::time::us(duration);
        // A node made slow since its timer was filed is filed again.
        for i in 0..self.nodes.len() {
            self.set_timer(i, self.timers[i]);
        }
        loop {
            let next_flight = self.flights.peek().map(|f| f.0.at_us);
            let next_timer = self.due.first().map(|&(at, _)| at);
            let next = [next_flight, next_timer, self.adversary_timer]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|t| *t <= end) else {
                self.now_us = end;
                return;
            };
            self.now_us = self.now_us.max(next);
            while self
                .flights
                .peek()
                .is_some_and(|f| f.0.at_us <= self.now_us)
            {
                let Some(Reverse(flight)) = self.flights.pop() else {
                    break;
                };
                if !self.connected(flight.from, flight.to) {
                    continue;
                }
                if flight.to == ADVERSARY {
                    let out = match self.adversary.as_mut() {
                        Some(a) => a.receive(flight.src, &flight.payload),
                        None => Vec::new(),
                    };
                    self.send_adversary(out);
                    continue;
                }
                let now = self.now_for(flight.to);
                if let Some(engine) = self.nodes[flight.to].engine.as_mut() {
                    engine.handle_datagram(now, flight.src, &flight.payload);
                    self.delivered += 1;
                    if flight.from != ADVERSARY {
                        if let Some(a) = self.adversary.as_mut() {
                            a.observe(flight.src, self.nodes[flight.to].addr, &flight.payload);
                        }
                    }
                }
                self.flush(flight.to);
            }
            if self.adversary_timer.is_some_and(|t| t <= self.now_us) {
                let targets: Vec<SocketAddr> = self.nodes.iter().map(|n| n.addr).collect();
                let wall_ms = WALL_BASE_MS + self.now_us / 1000;
                let out = match self.adversary.as_mut() {
                    Some(a) => {
                        let interval = crate::time::us(a.config().interval).max(1);
                        self.adversary_timer = Some(self.now_us + interval);
                        a.act(wall_ms, &targets)
                    }
                    None => Vec::new(),
                };
                self.send_adversary(out);
            }
            // In node order, as a walk over every node would take them.
            let mut due: Vec<usize> = self
                .due
                .iter()
                .take_while(|&&(at, _)| at <= self.now_us)
                .map(|&(_, i)| i)
                .collect();
            due.sort_unstable();
            for i in due {
                let now = self.now_for(i);
                {
                    if let Some(engine) = self.nodes[i].engine.as_mut() {
                        engine.handle_timeout(now);
                        // After a timeout rather than after every datagram: often
                        // enough to catch a stale timer, cheap enough for 50 nodes. A
                        // check walks every member, so a node with hundreds is checked
                        // less often.
                        let checked = &mut self.checked_us[i];
                        let due = self.now_us >= checked.saturating_add(check_gap_us(engine));
                        if due {
                            *checked = self.now_us;
                        }
                        let checks = if due {
                            engine.check_invariants()
                        } else {
                            Ok(())
                        };
                        if let Err(why) = checks {
                            self.violation.get_or_insert(Divergence::Invariant {
                                node: i,
                                at_us: self.now_us,
                                why,
                            });
                        }
                    }
                    self.flush(i);
                }
            }
        }
    }

    /// What the writes imply: for each key ever written, the surviving winner's value
    /// (`None` if it is a delete, or a write whose TTL ran out by the virtual wall clock).
    pub fn expected(&self) -> BTreeMap<String, Option<Value>> {
        let mut best: HashMap<&str, &Write> = HashMap::new();
        for w in self.writes.iter().filter(|w| !w.lost) {
            let slot = best.entry(&w.key).or_insert(w);
            if w.rank > slot.rank {
                *slot = w;
            }
        }
        let wall_hlc = (WALL_BASE_MS + self.now_us / 1000) << crate::hlc::LOGICAL_BITS;
        best.into_iter()
            .map(|(k, w)| {
                let expired = w.expires.is_some_and(|e| e <= wall_hlc);
                (k.to_owned(), w.value.clone().filter(|_| !expired))
            })
            .collect()
    }

    /// Checks that every live replica equals every other and the oracle.
    pub fn check_converged(&self) -> Result<(), Divergence> {
        if let Some(violation) = &self.violation {
            return Err(violation.clone());
        }
        // A keyed mesh owes the attacker nothing: its forgeries never land, so the strict
        // oracle below holds as if the network were merely faulty.
        let plaintext = self.config.keyring.is_empty();
        if let Some(adversary) = self.adversary.as_ref().filter(|_| plaintext) {
            return self.check_against(adversary);
        }
        let expected = self.expected();
        let live: Vec<(usize, BTreeMap<String, Value>)> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.engine.as_ref().map(|e| (i, e.snapshot())))
            .collect();
        for (i, snapshot) in &live {
            let keys: BTreeSet<&String> = snapshot.keys().chain(expected.keys()).collect();
            for key in keys {
                let want = expected.get(key).cloned().flatten();
                let have = snapshot.get(key).cloned();
                if want != have {
                    return Err(Divergence::WrongValue {
                        node: *i,
                        key: key.clone(),
                        expected: want,
                        actual: have,
                    });
                }
            }
        }
        if let Some(((a, sa), rest)) = live.split_first() {
            for (b, sb) in rest {
                replicas_agree(*a, sa, *b, sb)?;
            }
        }
        Ok(())
    }

    /// The check with an adversary on the network: honest replicas agree with each other,
    /// and each key holds its surviving honest winner unless a forged write outranks it
    /// (plaintext offers no integrity against a verified peer, so forgeries may win).
    /// Every write held must be an honest one the oracle knows or one the adversary
    /// sent; a key may be missing only if its winner is a delete, honest or forged.
    /// A write judged lost with a crashed node may come back: the adversary keeps
    /// copies of what it saw and replays them, which is no fault of the mesh.
    fn check_against(&self, adversary: &Adversary) -> Result<(), Divergence> {
        type Rank = (u64, u64, u64);
        let honest: HashMap<(&str, Rank), &Write> = self
            .writes
            .iter()
            .map(|w| ((w.key.as_str(), w.rank), w))
            .collect();
        let mut best: HashMap<&str, &Write> = HashMap::new();
        for w in self.writes.iter().filter(|w| !w.lost) {
            let slot = best.entry(&w.key).or_insert(w);
            if w.rank > slot.rank {
                *slot = w;
            }
        }
        let forged: HashMap<(&str, Rank), &Option<Value>> = adversary
            .forged()
            .iter()
            .map(|f| ((f.key.as_str(), f.rank), &f.value))
            .collect();
        let live: Vec<(usize, &Engine)> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.engine.as_ref().map(|e| (i, e)))
            .collect();
        for &(i, engine) in &live {
            let snapshot = engine.snapshot();
            let keys: BTreeSet<&str> = snapshot
                .keys()
                .map(String::as_str)
                .chain(best.keys().copied())
                .collect();
            for key in keys {
                let want = best.get(key);
                let wrong = || Divergence::WrongValue {
                    node: i,
                    key: key.to_owned(),
                    expected: want.and_then(|w| w.value.clone()),
                    actual: snapshot.get(key).cloned(),
                };
                match engine.replica().entry(key) {
                    Some(entry) if self.honest_origins.contains(&entry.origin) => {
                        let Some(held) = honest.get(&(key, entry.rank())) else {
                            return Err(Divergence::ForgedHonestWrite {
                                node: i,
                                key: key.to_owned(),
                                rank: entry.rank(),
                            });
                        };
                        // The winner, or a lost write the adversary brought back over it.
                        let winner = want.is_none_or(|w| w.rank == held.rank)
                            || (held.lost && want.is_some_and(|w| held.rank > w.rank));
                        if !winner {
                            return Err(wrong());
                        }
                    }
                    Some(entry) => {
                        if forged.get(&(key, entry.rank())) != Some(&&entry.value) {
                            return Err(Divergence::UnknownWrite {
                                node: i,
                                key: key.to_owned(),
                                rank: entry.rank(),
                            });
                        }
                        if want.is_some_and(|w| w.rank > entry.rank()) {
                            return Err(wrong());
                        }
                    }
                    None => {
                        // A collected tombstone: the winner was a delete.
                        let deleted = want.is_none_or(|w| {
                            w.value.is_none()
                                || adversary
                                    .forged()
                                    .iter()
                                    .any(|f| f.key == key && f.value.is_none() && f.rank > w.rank)
                                || self.writes.iter().any(|d| {
                                    d.lost && d.key == key && d.value.is_none() && d.rank > w.rank
                                })
                        });
                        if !deleted {
                            return Err(wrong());
                        }
                    }
                }
            }
        }
        if let Some(((a, ea), rest)) = live.split_first() {
            let sa = ea.snapshot();
            for (b, eb) in rest {
                replicas_agree(*a, &sa, *b, &eb.snapshot())?;
            }
        }
        Ok(())
    }

    /// Runs until converged or `limit` of virtual time passed; returns the virtual time
    /// it took, or the last divergence.
    pub fn run_until_converged(
        &mut self,
        limit: Duration,
        step: Duration,
    ) -> Result<Duration, Divergence> {
        let start = self.now_us;
        loop {
            match self.check_converged() {
                Ok(()) => return Ok(Duration::from_micros(self.now_us - start)),
                Err(d) if self.now_us - start >= crate::time::us(limit) => return Err(d),
                Err(_) => self.run_for(step),
            }
        }
    }

    /// A report on `key` for a failed check: every write of it the oracle knows, with
    /// whether it was judged lost, and each live node's entry for it.
    pub fn describe_key(&self, key: &str) -> String {
        let mut out = String::new();
        for w in self.writes.iter().filter(|w| w.key == key) {
            let (hlc, origin, seq) = w.rank;
            out += &format!(
                "\n  write {:?} by origin {origin} seq {seq} hlc {hlc}{}",
                w.value,
                if w.lost { " (lost)" } else { "" }
            );
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(engine) = node.engine.as_ref() {
                let entry = engine.replica().entry(key);
                let held = entry.map(|e| (&e.value, e.origin, e.seq, e.hlc));
                // Writes of the key the node's version vector does not account for: a
                // node that accounts for a write it does not hold never asks for it.
                let vv = engine.replica().version_vector();
                let unaccounted: Vec<String> = self
                    .writes
                    .iter()
                    .filter(|w| w.key == key && !vv.contains(w.rank.1, w.rank.2))
                    .map(|w| format!("{}/{}", w.rank.1, w.rank.2))
                    .collect();
                out += &format!(
                    "\n  node {i} ({}): {held:?}; unaccounted {unaccounted:?}; links:{}",
                    node.addr,
                    engine.describe_links()
                );
            }
        }
        out
    }

    /// Where each live node's version vector differs from node `i`'s, origin by origin
    /// (the ranges held, or the prefix retired), for a failed check: two nodes that
    /// account differently never agree on a fingerprint.
    pub fn describe_version_vectors(&self, i: usize) -> String {
        use std::collections::BTreeMap;
        let accounts = |node: &SimNode| -> BTreeMap<u64, String> {
            let Some(engine) = node.engine.as_ref() else {
                return BTreeMap::new();
            };
            let vv = engine.replica().version_vector();
            vv.iter()
                .map(|(origin, set)| (origin, format!("{:?}", set.ranges().collect::<Vec<_>>())))
                .chain(
                    vv.retired()
                        .map(|(origin, n)| (origin, format!("retired <= {n}"))),
                )
                .collect()
        };
        let mine = accounts(&self.nodes[i]);
        let mut out = String::new();
        for (j, node) in self.nodes.iter().enumerate() {
            if j == i || node.engine.is_none() {
                continue;
            }
            let theirs = accounts(node);
            let origins: std::collections::BTreeSet<u64> =
                mine.keys().chain(theirs.keys()).copied().collect();
            let differ: Vec<String> = origins
                .into_iter()
                .filter(|o| mine.get(o) != theirs.get(o))
                .map(|o| format!("{o}: {:?} vs {:?}", mine.get(&o), theirs.get(&o)))
                .collect();
            if !differ.is_empty() {
                out += &format!("\n  node {i} vs node {j}: {}", differ.join("; "));
            }
        }
        out
    }

    /// Number of writes made, and how many were lost with crashed nodes.
    pub fn write_counts(&self) -> (usize, usize) {
        (
            self.writes.len(),
            self.writes.iter().filter(|w| w.lost).count(),
        )
    }

    /// A random number generator derived from the simulation's seed, for scenarios.
    pub fn rng(&mut self) -> &mut fastrand::Rng {
        &mut self.rng
    }
}

/// Whether the replicas of nodes `a` and `b` hold the same live keys and values; if not,
/// names a key where they differ.
fn replicas_agree(
    a: usize,
    sa: &BTreeMap<String, Value>,
    b: usize,
    sb: &BTreeMap<String, Value>,
) -> Result<(), Divergence> {
    if sa == sb {
        return Ok(());
    }
    let key = sa
        .iter()
        .find(|(k, v)| sb.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .or_else(|| sb.keys().find(|k| !sa.contains_key(*k)).cloned())
        .unwrap_or_default();
    Err(Divergence::ReplicasDiffer { a, b, key })
}
