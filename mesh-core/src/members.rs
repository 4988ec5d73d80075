//! Members: who the peers are, whether they are alive, when to talk to them next.
//!
//! Liveness only: what a node exchanges with a peer (its reliable channel, its sync
//! state) lives elsewhere, keyed by the same address. Every method that changes the
//! member list says so in what it returns, so the engine can keep the rest in step and
//! the rules here are unit-tested without a network (as foca's `Members::apply` does).
//!
//! Failure detection is SWIM with Lifeguard's refinements. A member's life: `Unknown` (a
//! bootstrap or gossiped address never heard from) becomes `Alive` once it proves its
//! address. Alive and suspect members are probed in turn, one per protocol period (see
//! `probe`); a member that misses a probe and the indirect probes sent through others is
//! `Suspect`, and that is spread as a [`Rumor`] (see `rumors`). A suspicion lasts a
//! dynamic timeout (see `suspicion`) and ends in `Dead`, unless the member hears of it
//! and refutes it by raising its refutation count and spreading that it is alive.
//! Members learn each other's changes from rumors piggybacked on probes and acks, so a
//! member declared dead by one is dead for all. A member that stops announces `Left`.
//! Unknown members are probed with a backoff that doubles up to `max_probe_interval`.
//! Dead (and left) ones are probed in turn, all together about once per probe period,
//! so a healed partition is noticed within about one period however long it lasted, and
//! many dead members cost what one does.
//! A member that restarts comes back with a higher incarnation.

pub(crate) mod awareness;
#[cfg(test)]
mod properties;
pub(crate) mod probe;
pub(crate) mod rumors;
pub(crate) mod suspicion;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use crate::config::Config;
use crate::origin::origin_id;
use crate::status::PeerState;
use crate::time::us;
use crate::version::OriginId;
use crate::wire::{GossipPeer, Rumor, RumorState};

use self::suspicion::Suspicion;

/// First probe interval for members never heard from.
pub(crate) const FIRST_PROBE_US: u64 = 500_000;
/// Members named in one heartbeat to a newcomer (see [`Members::gossip_for`]), and the
/// most taken from one heartbeat: a heartbeat naming a thousand addresses fills nothing.
/// A joiner that hears a dozen names per answer instead of three learns a mesh of a
/// thousand in a few periods instead of minutes.
pub(crate) const NEWCOMER_GOSSIP: usize = 16;
/// Most bytes of node ids one heartbeat's gossip carries, so that long node ids never
/// push a heartbeat with its rumors past the datagram size.
const GOSSIP_ID_BYTES: usize = 256;
/// Once the mesh around this node settled, a member that can name as many members as
/// this node is told one name with about one probe in this many: settled views that
/// agree in size rarely differ, and a name on every probe was the largest part of an
/// idle probe (16 bytes of 72 with short node ids).
const STEADY_GOSSIP_ONE_IN: usize = 4;
/// Periods after a member proved its address during which, until it says how many
/// members it can name, every heartbeat to it names a few (see [`Members::gossip_for`]);
/// also how long a count it said stays fresh, and how long after a member last joined
/// the mesh around this node counts as still changing.
pub(crate) const NEWCOMER_PERIODS: u64 = 30;
/// Members not verified yet and not given by the operator (gossiped, or heard from
/// without proof), at most: neither gossip nor spoofed datagrams can make this node
/// remember or probe more addresses than this.
pub(crate) const MAX_UNVERIFIED: usize = 64;

/// Most node ids held back at once because a live member at another address holds them
/// (see [`Members::identify`]); beyond, a claim is refused outright.
const MAX_CLAIMS: usize = 16;
/// Longest suspicion timeout, in minimum suspicion timeouts (Lifeguard's α; memberlist's
/// `SuspicionMaxTimeoutMult`): how long a suspicion no other member confirms waits for
/// its refutation.
const SUSPICION_MAX_FACTOR: u64 = 6;
/// Furthest a rumor's refutation count may lead the one known: a member raises it by one
/// per refutation, so a far larger one is forged (and would shut the member's real
/// refutations out).
pub(crate) const MAX_REFUTATION_STEP: u32 = 64;

/// The failure detector's timing, in microseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    /// The protocol period: one member probed per period.
    pub heartbeat_us: u64,
    /// Shortest suspicion timeout in a small mesh (it grows with the log of the mesh
    /// size, as memberlist's does).
    pub timeout_us: u64,
    /// Longest pause between probes of an unknown or dead member.
    pub max_probe_us: u64,
    /// Silence after which a dead member not given as bootstrap is forgotten.
    pub forget_dead_us: u64,
}

impl Timing {
    /// The timing `config` asks for.
    pub fn new(config: &Config) -> Timing {
        Timing {
            heartbeat_us: us(config.heartbeat_interval),
            timeout_us: us(config.peer_timeout),
            max_probe_us: us(config.max_probe_interval),
            // A member is remembered as long as its tombstones are: forgetting it sooner
            // would let tombstones it never confirmed be collected.
            forget_dead_us: us(config.tombstone_grace),
        }
    }
}

/// What a failure detector step decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Nothing changed.
    None,
    /// Suspect to dead: report the failure.
    Failed,
    /// Forgotten: a gossiped address that never answered, or a member dead for longer
    /// than it is remembered. The engine drops what it holds for it.
    Forgotten,
}

/// One member.
#[derive(Debug)]
pub(crate) struct Member {
    /// Where it is reached.
    pub addr: SocketAddr,
    /// Its node id, once heard from.
    pub node_id: Option<String>,
    /// Its incarnation, once heard from (0 before).
    pub incarnation: u64,
    /// The origin its current run writes under, once both its node id and incarnation
    /// are known (0 before): see `origin`.
    pub origin: OriginId,
    /// Failure detector state.
    pub state: PeerState,
    /// How many times its current run refuted a suspicion of itself.
    pub refutation: u32,
    /// The suspicion, while it is suspected.
    pub suspicion: Option<Suspicion>,
    /// Given with `add_bootstrap_peer`.
    pub bootstrap: bool,
    /// Last valid datagram, monotonic microseconds.
    pub last_heard_us: Option<u64>,
    /// When to send the next heartbeat or probe.
    pub next_heartbeat_us: u64,
    /// Current probe interval for unknown and dead members.
    pub probe_interval_us: u64,
    /// When it was added (unverified members are forgotten after `forget_dead_us`).
    pub added_us: u64,
    /// Added because it contacted this node without proving its address: it is not
    /// probed (its own datagrams are answered with challenges instead).
    pub heard_unverified: bool,
    /// The address it advertises (its `advertise_addr`), named instead of `addr` when it
    /// is gossiped to others. This node itself keeps talking to `addr`.
    pub advertised: Option<SocketAddr>,
    /// Learnt of from gossip or a rumor, not from its own first datagram.
    pub gossiped: bool,
    /// When its current run proved its address.
    pub verified_us: u64,
    /// Whether its node id is the one its current run gave in its own heartbeat: a run
    /// keeps its id, so a later heartbeat naming another is not its own.
    pub named_by_itself: bool,
    /// How many members it said it can name, in its last heartbeat (`u32::MAX` until
    /// then: nothing to make up for).
    pub nameable: u32,
    /// When it said so.
    pub nameable_us: u64,
}

impl Member {
    fn new(addr: SocketAddr, bootstrap: bool, now_us: u64) -> Member {
        Member {
            addr,
            node_id: None,
            incarnation: 0,
            origin: 0,
            state: PeerState::Unknown,
            refutation: 0,
            suspicion: None,
            bootstrap,
            last_heard_us: None,
            next_heartbeat_us: now_us,
            probe_interval_us: FIRST_PROBE_US,
            added_us: now_us,
            heard_unverified: false,
            named_by_itself: false,
            advertised: None,
            gossiped: false,
            verified_us: now_us,
            nameable: u32::MAX,
            nameable_us: now_us,
        }
    }

    /// Recomputes `origin` after its node id or incarnation changed.
    fn refresh_origin(&mut self) {
        self.origin = match (&self.node_id, self.incarnation) {
            (Some(node_id), incarnation) if incarnation != 0 => origin_id(node_id, incarnation),
            _ => 0,
        };
    }

    /// Not verified, and not given by the operator.
    fn is_unverified_gossip(&self) -> bool {
        self.incarnation == 0 && !self.bootstrap
    }

    /// Whether writes should be pushed to it and syncs started with it.
    pub fn is_reachable(&self) -> bool {
        matches!(self.state, PeerState::Alive | PeerState::Suspect) && self.incarnation != 0
    }

    /// When the failure detector next needs to look at it.
    fn next_transition_us(&self, timing: Timing) -> Option<u64> {
        if self.is_unverified_gossip() {
            return Some(self.added_us.saturating_add(timing.forget_dead_us));
        }
        let heard = self.last_heard_us?;
        match self.state {
            PeerState::Suspect => self.suspicion.as_ref().map(|s| {
                let deadline = s.deadline_us();
                s.next_check_us(timing.heartbeat_us)
                    .map_or(deadline, |check| check.min(deadline))
            }),
            PeerState::Dead | PeerState::Left if !self.bootstrap => {
                Some(heard.saturating_add(timing.forget_dead_us))
            }
            PeerState::Unknown | PeerState::Alive | PeerState::Dead | PeerState::Left => None,
        }
    }

    /// Applies the failure detector at `now_us`.
    fn check_liveness(&mut self, now_us: u64, timing: Timing) -> Transition {
        // Remembered as long as tombstones are: a real node that could not prove its
        // address yet (partitioned, lossy) must still block the collection of deletes it
        // has not seen, or it would bring them back.
        if self.is_unverified_gossip()
            && now_us.saturating_sub(self.added_us) >= timing.forget_dead_us
        {
            return Transition::Forgotten;
        }
        let Some(heard) = self.last_heard_us else {
            return Transition::None;
        };
        let silent = now_us.saturating_sub(heard);
        match self.state {
            PeerState::Suspect
                if self
                    .suspicion
                    .as_ref()
                    .is_some_and(|s| s.deadline_us() <= now_us) =>
            {
                self.die(PeerState::Dead, now_us, timing);
                Transition::Failed
            }
            PeerState::Dead | PeerState::Left
                if !self.bootstrap && silent >= timing.forget_dead_us =>
            {
                Transition::Forgotten
            }
            _ => Transition::None,
        }
    }

    /// Makes it dead or left, probed from one period on.
    fn die(&mut self, state: PeerState, now_us: u64, timing: Timing) {
        self.state = state;
        self.suspicion = None;
        self.probe_interval_us = timing.heartbeat_us;
        self.next_heartbeat_us = now_us + self.probe_interval_us;
    }

    /// Plans the next probe outside the probe round: unknown members with backoff; dead
    /// and left ones in turn with the others (see [`Members::dead_probe_us`]). Alive and
    /// suspect members are probed by the round instead.
    fn schedule_heartbeat(&mut self, now_us: u64, timing: Timing, dead_probe_us: u64) {
        match self.state {
            PeerState::Alive | PeerState::Suspect => {
                self.next_heartbeat_us = u64::MAX;
            }
            PeerState::Dead | PeerState::Left => {
                self.next_heartbeat_us = now_us + dead_probe_us;
            }
            PeerState::Unknown => {
                self.next_heartbeat_us = now_us + self.probe_interval_us;
                self.probe_interval_us = (self.probe_interval_us * 2).min(timing.max_probe_us);
            }
        }
    }
}

/// The rumor stating what `member` is now, if it has a node id and a state to tell.
fn rumor_of(member: &Member) -> Option<Rumor> {
    let state = match member.state {
        PeerState::Unknown => return None,
        PeerState::Alive => RumorState::Alive,
        PeerState::Suspect => RumorState::Suspect,
        PeerState::Dead => RumorState::Dead,
        PeerState::Left => RumorState::Left,
    };
    Some(Rumor {
        node_id: member.node_id.clone()?,
        addr: member.advertised.unwrap_or(member.addr),
        incarnation: member.incarnation,
        refutation: member.refutation,
        state,
        by: String::new(),
    })
}

/// How a datagram's sender incarnation was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// An unknown address while the member list is full: ignore the datagram.
    Full,
    /// Older than the incarnation known: a straggler from a previous run.
    Stale,
    /// The incarnation already known.
    Current,
    /// A new session: the first incarnation heard from this address, or a restart. The
    /// peer's session state must be reset and a sync started.
    NewSession {
        /// The node id of a member that restarted (`None` on a first contact, or when the
        /// restarted member had never introduced itself).
        restarted: Option<String>,
    },
}

/// What hearing from a member changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Heard {
    /// It was alive already, or unknown or suspect and is alive now.
    Alive,
    /// It was dead: it recovered (start a sync; report it if it has a node id).
    Recovered {
        /// Its node id, if it ever introduced itself.
        node_id: Option<String>,
    },
}

/// What a heartbeat's identity changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Identified {
    /// The sender's node id is new at this address.
    pub newly: bool,
    /// Other addresses that held the same node id, forgotten (the node moved).
    pub removed: Vec<SocketAddr>,
    /// The node id was not taken: the member named itself otherwise in its current run,
    /// or a live member at another address holds the id (the claim is held back until
    /// that one is dead, see [`Members::settle_claims`]).
    pub refused: bool,
}

/// What a rumor changed about a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RumorChange {
    /// It refuted a suspicion: alive again (it was suspected, or nothing changed but
    /// its refutation count).
    Refreshed,
    /// It was dead or had left and is alive: report it, start a sync.
    Recovered,
    /// Newly suspected.
    Suspected,
    /// Suspected by one more member: its suspicion timeout shrank.
    Confirmed,
    /// Declared dead: report the failure.
    Failed,
    /// It left: report it.
    Left,
}

/// What taking a rumor did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RumorOutcome {
    /// Old news, another run's, implausible, or about a member this node cannot place.
    Ignored,
    /// It says this node is suspected or dead: this node refutes it by spreading that
    /// it is alive (its refutation count is raised past the rumor's).
    Refute,
    /// An alive node not known yet: to be taken as gossip (verified before it counts).
    Unknown(GossipPeer),
    /// A suspicion or failure the member at this address has since refuted: whoever
    /// spreads it missed the refutation, so this node spreads what it knows again.
    Outdated(SocketAddr),
    /// It changed the member at `addr`; `pass_on` spreads the news further.
    Changed {
        /// The member.
        addr: SocketAddr,
        /// What changed.
        change: RumorChange,
        /// The rumor to spread, naming the member where this node reaches it.
        pass_on: Rumor,
    },
}

/// Every member of the mesh this node knows, by address.
#[derive(Debug)]
pub(crate) struct Members {
    own_id: String,
    /// How many times this node refuted a suspicion of itself in this run.
    own_refutation: u32,
    timing: Timing,
    /// Most members remembered (`Config::max_peers`).
    max_peers: usize,
    // Ordered, so iteration (and with it every seeded random choice) is deterministic.
    members: BTreeMap<SocketAddr, Member>,
    /// Members with a node id, by node id (in address order): rumors and relayed probes
    /// name members by id, and a mesh of thousands cannot afford a walk per lookup.
    by_id: HashMap<String, Vec<SocketAddr>>,
    /// Members with a node id, in no particular order, to draw gossip from at random
    /// without walking them all; `named_at` is each one's place in it.
    named: Vec<SocketAddr>,
    named_at: HashMap<SocketAddr, usize>,
    /// Bytes of the node ids indexed.
    id_bytes: usize,
    /// When the next dead (or left) member may be probed: one per period.
    dead_slot_us: u64,
    /// Members neither verified nor given by the operator, counted as they change.
    unverified: usize,
    /// When a member last joined this node's table: while the mesh around it still
    /// changes, every probe names a member (see [`Members::gossip_for`]).
    last_added_us: Option<u64>,
    /// Node ids claimed by members while a live member at another address held them,
    /// by claimant: taken once the holder is dead.
    claims: HashMap<SocketAddr, String>,
}

impl Members {
    /// An empty member list for the node `own_id`.
    pub fn new(own_id: &str, timing: Timing, max_peers: usize) -> Members {
        Members {
            own_id: own_id.to_owned(),
            own_refutation: 0,
            timing,
            max_peers,
            members: BTreeMap::new(),
            by_id: HashMap::new(),
            named: Vec::new(),
            named_at: HashMap::new(),
            id_bytes: 0,
            dead_slot_us: 0,
            unverified: 0,
            last_added_us: None,
            claims: HashMap::new(),
        }
    }

    /// Bytes of bookkeeping the member list holds, its indexes included: what each
    /// member costs whatever its traffic (its channel's buffers are counted apart).
    pub fn bytes(&self) -> usize {
        let entry = std::mem::size_of::<(SocketAddr, Member)>();
        let index_entry = std::mem::size_of::<(String, Vec<SocketAddr>)>()
            + std::mem::size_of::<SocketAddr>() * 2
            + std::mem::size_of::<(SocketAddr, usize)>();
        // Twice the ids: the index keeps its own copy of each.
        let claims: usize = self
            .claims
            .values()
            .map(|id| std::mem::size_of::<(SocketAddr, String)>() + id.len())
            .sum();
        self.members.len() * entry + 2 * self.id_bytes + self.named.len() * index_entry + claims
    }

    /// Remembers `addr`, which introduced itself as `node_id` without proving its
    /// address yet, as an unverified member: it is gossiped and blocks tombstone
    /// collection like any member never heard from, but counts for nothing else until it
    /// proves its address. Returns whether it was added (bounded by [`MAX_UNVERIFIED`]).
    pub fn note_unverified(&mut self, addr: SocketAddr, node_id: &str, now_us: u64) -> bool {
        if self.members.contains_key(&addr) || node_id == self.own_id {
            return false;
        }
        if self.unverified() >= MAX_UNVERIFIED {
            return false;
        }
        let mut member = Member::new(addr, false, now_us);
        // Named only if no live member holds the id: its verified heartbeats claim it
        // otherwise (see `identify`).
        if !self.held_alive_elsewhere(addr, node_id) {
            member.node_id = Some(node_id.to_owned());
        }
        member.refresh_origin();
        member.heard_unverified = true;
        // Never probed: a spoofed introduction must not make this node send anything.
        member.next_heartbeat_us = u64::MAX;
        self.insert(member)
    }

    /// The incarnation of the member at `addr` (0: never heard from), if it is one.
    pub fn incarnation(&self, addr: &SocketAddr) -> Option<u64> {
        self.members.get(addr).map(|m| m.incarnation)
    }

    /// The origin the current run of the member at `addr` writes under, once its node id
    /// and incarnation are known.
    pub fn origin(&self, addr: &SocketAddr) -> Option<OriginId> {
        self.members.get(addr).map(|m| m.origin).filter(|&o| o != 0)
    }

    /// The member at `addr`.
    pub fn get(&self, addr: &SocketAddr) -> Option<&Member> {
        self.members.get(addr)
    }

    /// Every member, in address order.
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Members writes are pushed to, in address order.
    pub fn reachable(&self) -> impl Iterator<Item = &Member> {
        self.members.values().filter(|m| m.is_reachable())
    }

    /// Whether `addr` is a reachable member.
    pub fn is_reachable(&self, addr: &SocketAddr) -> bool {
        self.members.get(addr).is_some_and(Member::is_reachable)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Adds a bootstrap address, or marks a known one as bootstrap. Returns whether a
    /// member was added.
    pub fn add_bootstrap(&mut self, addr: SocketAddr, now_us: u64) -> bool {
        if let Some(member) = self.members.get_mut(&addr) {
            if member.is_unverified_gossip() {
                self.unverified -= 1;
            }
            member.bootstrap = true;
            // The operator vouches for it: probe it, even if it was a stranger.
            member.next_heartbeat_us = member.next_heartbeat_us.min(now_us);
            return false;
        }
        self.insert(Member::new(addr, true, now_us))
    }

    /// Records the address the member at `addr` advertises (`None`: none).
    pub fn set_advertised(&mut self, addr: &SocketAddr, advertised: Option<SocketAddr>) {
        if let Some(member) = self.members.get_mut(addr) {
            member.advertised = advertised;
        }
    }

    /// Takes back the bootstrap mark of the member at `addr`. Returns `None` if it was no
    /// bootstrap member, else whether it was ever verified (heard from).
    pub fn unbootstrap(&mut self, addr: &SocketAddr) -> Option<bool> {
        let member = self.members.get_mut(addr).filter(|m| m.bootstrap)?;
        member.bootstrap = false;
        if member.is_unverified_gossip() {
            self.unverified += 1;
        }
        Some(member.incarnation != 0)
    }

    /// Forgets the member at `addr`; returns whether there was one.
    pub fn remove(&mut self, addr: &SocketAddr) -> bool {
        self.take(addr).is_some()
    }

    /// Once the node starts, every member outside the probe round is contacted at once.
    pub fn start(&mut self, now_us: u64) {
        for member in self.members.values_mut() {
            if !matches!(member.state, PeerState::Alive | PeerState::Suspect) {
                member.next_heartbeat_us = now_us;
            }
        }
    }

    /// Takes the sender incarnation `src_inc` of a datagram from `from`, adding the
    /// address as a member first if it is new: the same incarnation as known, a first
    /// one, or a newer one (the peer restarted) are accepted; older ones are stale.
    pub fn admit(&mut self, from: SocketAddr, src_inc: u64, now_us: u64) -> Admission {
        if !self.members.contains_key(&from) && !self.insert(Member::new(from, false, now_us)) {
            return Admission::Full;
        }
        let Some(member) = self.members.get_mut(&from) else {
            return Admission::Full;
        };
        if member.incarnation == src_inc {
            return Admission::Current;
        }
        if member.incarnation > src_inc {
            return Admission::Stale;
        }
        let restarted = member.incarnation != 0;
        if member.is_unverified_gossip() {
            self.unverified -= 1;
        }
        member.incarnation = src_inc;
        member.refresh_origin();
        member.verified_us = now_us;
        // A new run has refuted nothing yet, and is not what was suspected.
        member.refutation = 0;
        member.suspicion = None;
        member.heard_unverified = false;
        member.named_by_itself = false;
        let restarted = if restarted {
            member.node_id.clone().inspect(|_| {
                member.state = PeerState::Alive;
                member.next_heartbeat_us = u64::MAX;
            })
        } else {
            None
        };
        Admission::NewSession { restarted }
    }

    /// Records a valid datagram from `from`.
    pub fn mark_heard(&mut self, from: SocketAddr, now_us: u64) -> Heard {
        let Some(member) = self.members.get_mut(&from) else {
            return Heard::Alive;
        };
        member.last_heard_us = Some(now_us);
        let previous = member.state;
        // A suspected, dead or departed member comes back by refuting that (see
        // `apply_rumor`): its word is what the rest of the mesh goes by. One that never
        // named itself cannot be named in a rumor, so hearing from it is enough.
        let refutes = previous == PeerState::Unknown || member.node_id.is_none();
        if previous == PeerState::Alive || !refutes {
            return Heard::Alive;
        }
        member.state = PeerState::Alive;
        member.suspicion = None;
        member.probe_interval_us = FIRST_PROBE_US;
        member.next_heartbeat_us = u64::MAX;
        if matches!(previous, PeerState::Dead | PeerState::Left) {
            Heard::Recovered {
                node_id: member.node_id.clone(),
            }
        } else {
            Heard::Alive
        }
    }

    /// Records the node id a heartbeat from `from` announces. The same node id at another
    /// address means the node moved (restarted on a new port): the old address is
    /// forgotten, or only unnamed if the operator gave it.
    ///
    /// Nothing proves who sends a plaintext heartbeat, so an id claim takes nothing away
    /// from a live member (as memberlist refuses a conflicting address while the holder
    /// lives): a member that named itself in its current run keeps its name, and an id
    /// held by a live member elsewhere is held back as a claim until that member is
    /// dead. Else anyone could make two nodes forget each other for good.
    pub fn identify(&mut self, from: SocketAddr, node_id: &str) -> Identified {
        let Some(member) = self.members.get(&from) else {
            return Identified::default();
        };
        if member.node_id.as_deref() == Some(node_id) {
            // Named before it proved its address, or by gossip: now on its own word.
            if let Some(member) = self.members.get_mut(&from) {
                member.named_by_itself = true;
            }
            return Identified::default();
        }
        let refused = Identified {
            refused: true,
            ..Identified::default()
        };
        if member.named_by_itself {
            return refused;
        }
        if self.held_alive_elsewhere(from, node_id) {
            if self.claims.len() < MAX_CLAIMS || self.claims.contains_key(&from) {
                self.claims.insert(from, node_id.to_owned());
            }
            return refused;
        }
        self.take_name(from, node_id)
    }

    /// Whether a live member at an address other than `addr` holds `node_id`.
    fn held_alive_elsewhere(&self, addr: SocketAddr, node_id: &str) -> bool {
        self.by_id.get(node_id).is_some_and(|addrs| {
            addrs
                .iter()
                .filter(|a| **a != addr)
                .any(|a| self.members.get(a).is_some_and(Member::is_reachable))
        })
    }

    /// Names the member at `addr` `node_id` on its own word, taking the id from any
    /// other address that held it.
    fn take_name(&mut self, addr: SocketAddr, node_id: &str) -> Identified {
        let holders: Vec<SocketAddr> = self
            .by_id
            .get(node_id)
            .into_iter()
            .flatten()
            .copied()
            .filter(|a| *a != addr)
            .collect();
        self.name(addr, node_id);
        self.claims.remove(&addr);
        if let Some(member) = self.members.get_mut(&addr) {
            member.named_by_itself = true;
        }
        let mut removed = Vec::new();
        for holder in holders {
            if self.members.get(&holder).is_some_and(|m| m.bootstrap) {
                // The operator's word for the address stands; only the name moves.
                self.unname(holder);
            } else {
                self.take(&holder);
                removed.push(holder);
            }
        }
        Identified {
            newly: true,
            removed,
            refused: false,
        }
    }

    /// Whether node id claims are held back (see [`Members::identify`]).
    pub fn has_claims(&self) -> bool {
        !self.claims.is_empty()
    }

    /// Takes the held-back claims whose holder is no longer alive and whose claimant is
    /// (a claim is forgotten with its claimant). Returns each claimant named, with its id
    /// and what naming it changed.
    pub fn settle_claims(&mut self) -> Vec<(SocketAddr, String, Identified)> {
        let claims: Vec<(SocketAddr, String)> = self.claims.drain().collect();
        let mut settled = Vec::new();
        for (addr, node_id) in claims {
            let claimant_reachable = self.members.get(&addr).is_some_and(Member::is_reachable);
            if !claimant_reachable || self.held_alive_elsewhere(addr, &node_id) {
                self.claims.insert(addr, node_id);
            } else {
                let identified = self.take_name(addr, &node_id);
                settled.push((addr, node_id, identified));
            }
        }
        settled
    }

    /// Whether the member at `addr` named itself in its current run: a datagram from its
    /// address claiming another id is not its own (a run keeps its id).
    pub fn named_itself(&self, addr: &SocketAddr) -> bool {
        self.members.get(addr).is_some_and(|m| m.named_by_itself)
    }

    /// Adds the gossiped members not known yet (by address or by node id), from the first
    /// few entries only and while few gossiped addresses are still unverified; returns the
    /// addresses added.
    pub fn merge_gossip(&mut self, gossip: Vec<GossipPeer>, now_us: u64) -> Vec<SocketAddr> {
        let mut added = Vec::new();
        // Counted only when something is new: in a formed mesh gossip names known members.
        let mut unverified = None;
        for mut gossiped in gossip.into_iter().take(NEWCOMER_GOSSIP) {
            gossiped.addr = crate::addr::canonical(gossiped.addr);
            if !crate::addr::is_peer_addr(&gossiped.addr) {
                continue;
            }
            if gossiped.node_id == self.own_id
                || self.members.contains_key(&gossiped.addr)
                || self.by_id.contains_key(&gossiped.node_id)
            {
                continue;
            }
            let count = *unverified.get_or_insert_with(|| self.unverified());
            if count >= MAX_UNVERIFIED {
                break;
            }
            let mut member = Member::new(gossiped.addr, false, now_us);
            member.gossiped = true;
            if self.insert(member) {
                added.push(gossiped.addr);
                unverified = Some(count + 1);
            }
        }
        added
    }

    /// How many members this node can name (and gossip): equal on two nodes that know
    /// the same members, each counting the other and not itself.
    pub fn nameable(&self) -> u32 {
        u32::try_from(self.named.len()).unwrap_or(u32::MAX)
    }

    /// Notes how many members the member at `addr` said it can name, at `now_us`.
    pub fn note_nameable(&mut self, addr: &SocketAddr, nameable: u32, now_us: u64) {
        if let Some(member) = self.members.get_mut(addr) {
            member.nameable = nameable;
            member.nameable_us = now_us;
        }
    }

    /// Random identified members other than `to`, dead ones included: a node that joins
    /// during a partition must still learn the whole membership, or it could collect
    /// tombstones others never saw. Members that said they can name fewer members than
    /// this node lack some, and every heartbeat to them names [`NEWCOMER_GOSSIP`]
    /// (within [`GOSSIP_ID_BYTES`] of ids); so do members that proved their address
    /// within the last [`NEWCOMER_PERIODS`] periods and have not said yet. Without the
    /// count, two members that missed each other while the mesh formed would wait for
    /// one of the others' single names to be the right one: about as many periods as
    /// there are members. Others get one name per probe and none per answer, which
    /// keeps repairing views; once no member joined this node's table for as long (the
    /// mesh around it settled), one name with about one probe in
    /// [`STEADY_GOSSIP_ONE_IN`], at a small, flat idle cost. (A member verified lately
    /// that names as many as this node is no newcomer: in a large mesh, members first
    /// exchange datagrams for hundreds of periods after it formed, and telling each of
    /// them 16 names for 30 periods doubled the idle traffic of 1,000 nodes.)
    pub fn gossip_for(
        &self,
        to: SocketAddr,
        probe: bool,
        now_us: u64,
        rng: &mut fastrand::Rng,
    ) -> Vec<GossipPeer> {
        // Membership is revealed only to verified members.
        let Some(receiver) = self.members.get(&to).filter(|m| m.incarnation != 0) else {
            return Vec::new();
        };
        let newcomer_us = self.timing.heartbeat_us.saturating_mul(NEWCOMER_PERIODS);
        let settled = self
            .last_added_us
            .is_none_or(|at| now_us.saturating_sub(at) >= newcomer_us);
        // Once the mesh around this node settled, a count is taken only while fresh: in
        // a large mesh two members exchange datagrams once in hundreds of periods, and a
        // count said while the mesh formed would have the first exchange after it carry
        // 16 names needlessly. A member that still lacks some says so in each probe, and
        // the answers fill it. While the mesh forms, old counts still count: probes to a
        // member that lacked names are half of what it learns from.
        let fresh = !settled || now_us.saturating_sub(receiver.nameable_us) < newcomer_us;
        let lacks_some = receiver.nameable < self.nameable() && fresh;
        // Until the receiver said how many it can name, a member that proved its address
        // lately is taken for a newcomer; after that, its count tells.
        let newcomer = receiver.nameable == u32::MAX
            && now_us.saturating_sub(receiver.verified_us) < newcomer_us;
        let fanout = if lacks_some || newcomer {
            NEWCOMER_GOSSIP
        } else if probe && (!settled || rng.usize(..STEADY_GOSSIP_ONE_IN) == 0) {
            1
        } else {
            return Vec::new();
        };
        // Distinct random places in `named`, `to` skipped: a partial Fisher-Yates over
        // the places drawn so far, so the cost is the fanout's, not the mesh's.
        let mut drawn: Vec<usize> = Vec::new();
        let mut swapped: HashMap<usize, usize> = HashMap::new();
        let len = self.named.len();
        let mut i = 0;
        while drawn.len() < fanout && i < len {
            let j = rng.usize(i..len);
            let at_j = *swapped.get(&j).unwrap_or(&j);
            let at_i = *swapped.get(&i).unwrap_or(&i);
            swapped.insert(j, at_i);
            i += 1;
            if self.named[at_j] != to {
                drawn.push(at_j);
            }
        }
        let mut id_bytes = 0;
        drawn
            .into_iter()
            .filter_map(|at| self.members.get(&self.named[at]))
            .filter_map(|m| {
                m.node_id.as_ref().map(|id| GossipPeer {
                    node_id: id.clone(),
                    addr: m.advertised.unwrap_or(m.addr),
                })
            })
            .enumerate()
            .take_while(|(n, peer)| {
                id_bytes += peer.node_id.len();
                *n == 0 || id_bytes <= GOSSIP_ID_BYTES
            })
            .map(|(_, peer)| peer)
            .collect()
    }

    /// Runs the failure detector on `addr` at `now_us` and, once the node is started,
    /// schedules its heartbeat if due. Returns the transition, and whether a heartbeat is
    /// due (with `reply` asked of members not known alive).
    pub fn on_timeout(
        &mut self,
        addr: SocketAddr,
        now_us: u64,
        started: bool,
    ) -> (Transition, Option<bool>) {
        let timing = self.timing;
        let Some(member) = self.members.get_mut(&addr) else {
            return (Transition::None, None);
        };
        let transition = member.check_liveness(now_us, timing);
        if transition == Transition::Forgotten {
            self.take(&addr);
            return (transition, None);
        }
        if started && member.state == PeerState::Suspect {
            // Probed by the round, and directly just before the suspicion ends: a
            // heartbeat due from before it was suspected is not (it would stay due).
            member.next_heartbeat_us = u64::MAX;
            let check = member
                .suspicion
                .as_mut()
                .is_some_and(|s| s.take_check(now_us, timing.heartbeat_us));
            return (transition, check.then_some(true));
        }
        if !(started && member.next_heartbeat_us <= now_us) {
            return (transition, None);
        }
        let dead = matches!(member.state, PeerState::Dead | PeerState::Left);
        if dead && now_us < self.dead_slot_us {
            // Another dead member was probed less than a period ago: this one waits
            // for the next free slot, so members that died together are not probed
            // together (and then not at all for as many periods).
            member.next_heartbeat_us = self.dead_slot_us;
            return (transition, None);
        }
        // Counting the dead walks every member: only for a dead member's probe.
        let dead_probe_us = if dead {
            self.dead_slot_us = now_us.saturating_add(timing.heartbeat_us);
            self.dead_probe_us()
        } else {
            0
        };
        let Some(member) = self.members.get_mut(&addr) else {
            return (transition, None);
        };
        if matches!(member.state, PeerState::Alive | PeerState::Suspect) {
            // Probed by the round.
            member.next_heartbeat_us = u64::MAX;
            return (transition, None);
        }
        member.schedule_heartbeat(now_us, timing, dead_probe_us);
        (transition, Some(true))
    }

    /// Up to `max` dead members (not departed ones), those whose turn comes soonest
    /// first, to probe now rather than in turn: one that died with them came back, and a
    /// partition heals for all of them at once. Their turns start over from `now_us`.
    pub fn dead_to_probe_now(&mut self, now_us: u64, max: usize) -> Vec<SocketAddr> {
        let mut dead: Vec<(u64, SocketAddr)> = self
            .members
            .values()
            .filter(|m| m.state == PeerState::Dead && m.incarnation != 0)
            .map(|m| (m.next_heartbeat_us, m.addr))
            .collect();
        dead.sort_unstable();
        dead.truncate(max);
        let dead_probe_us = self.dead_probe_us();
        for (_, addr) in &dead {
            if let Some(member) = self.members.get_mut(addr) {
                member.next_heartbeat_us = now_us.saturating_add(dead_probe_us);
            }
        }
        dead.into_iter().map(|(_, addr)| addr).collect()
    }

    /// How often each dead member is probed: all of them together about once per
    /// heartbeat interval, so a healed partition is noticed within about one interval
    /// while probing many dead members costs no more than probing one. No cap per
    /// member: with a thousand dead (a tenth of a large mesh cut off) a cap would make
    /// the rate grow with their number, as memberlist's reconnect (one dead member per
    /// interval) does not.
    fn dead_probe_us(&self) -> u64 {
        let dead = self
            .members
            .values()
            .filter(|m| matches!(m.state, PeerState::Dead | PeerState::Left))
            .count() as u64;
        self.timing.heartbeat_us.saturating_mul(dead.max(1))
    }

    /// The member's next deadline: its failure detector's next transition and, once the
    /// node is started, its next heartbeat.
    pub fn next_deadline(&self, addr: &SocketAddr, started: bool) -> Option<u64> {
        let member = self.members.get(addr)?;
        let transition = member.next_transition_us(self.timing);
        // Alive and suspect members are probed by the round (`u64::MAX`: not here).
        let heartbeat = started
            .then_some(member.next_heartbeat_us)
            .filter(|&at| at != u64::MAX);
        [transition, heartbeat].into_iter().flatten().min()
    }

    /// The failure detector's timing.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Whether the member at `addr` was learnt of from gossip or a rumor rather than
    /// from its own first datagram.
    pub fn was_gossiped(&self, addr: &SocketAddr) -> bool {
        self.members.get(addr).is_some_and(|m| m.gossiped)
    }

    /// Members the probe round covers: verified, alive or suspected.
    pub fn probe_candidates(&self) -> Vec<SocketAddr> {
        self.members
            .values()
            .filter(|m| m.is_reachable())
            .map(|m| m.addr)
            .collect()
    }

    /// Whether the probe round covers the member at `addr`.
    pub fn is_probe_target(&self, addr: &SocketAddr) -> bool {
        self.is_reachable(addr)
    }

    /// The verified member named `node_id`, if any.
    pub fn by_node_id(&self, node_id: &str) -> Option<&Member> {
        self.by_id
            .get(node_id)?
            .iter()
            .filter_map(|addr| self.members.get(addr))
            .find(|m| m.incarnation != 0)
    }

    /// The first member (in address order) named `node_id`, verified or not.
    fn named_addr(&self, node_id: &str) -> Option<SocketAddr> {
        self.by_id.get(node_id)?.first().copied()
    }

    /// Members neither verified nor given by the operator.
    fn unverified(&self) -> usize {
        self.unverified
    }

    /// Members ever verified: the mesh size as this node sees it, itself excluded.
    fn verified(&self) -> usize {
        self.members.values().filter(|m| m.incarnation != 0).count()
    }

    /// A new suspicion raised at `now_us` by `by`, its timeouts growing with the log of
    /// the mesh size.
    fn new_suspicion(&self, by: &str, now_us: u64) -> Suspicion {
        let n = self.verified();
        let scale = ((n + 1) as f64).log10().max(1.0);
        let min_us = (self.timing.timeout_us as f64 * scale) as u64;
        Suspicion::new(now_us, by, n, min_us, min_us * SUSPICION_MAX_FACTOR)
    }

    /// The member at `addr` missed a probe and every indirect probe at `now_us`: it is
    /// suspected, or this node's suspicion confirms one already held. Returns the rumor to
    /// spread, if there is news and the member has a node id to be named by.
    pub fn suspect(&mut self, addr: SocketAddr, now_us: u64) -> Option<Rumor> {
        let own_id = self.own_id.clone();
        let fresh = self.new_suspicion(&own_id, now_us);
        let period_us = self.timing.heartbeat_us;
        let member = self.members.get_mut(&addr)?;
        match member.state {
            PeerState::Alive => {
                member.state = PeerState::Suspect;
                member.suspicion = Some(fresh);
            }
            PeerState::Suspect => {
                let confirmed = member
                    .suspicion
                    .get_or_insert(fresh)
                    .confirm(&own_id, now_us, period_us);
                if !confirmed {
                    return None;
                }
            }
            _ => return None,
        }
        let mut rumor = rumor_of(member)?;
        rumor.by = own_id;
        Some(rumor)
    }

    /// What this node would say of the member at `addr` (a dead or suspected member is
    /// told so with each probe, so it can refute at once: Lifeguard's buddy system).
    pub fn rumor_about(&self, addr: &SocketAddr) -> Option<Rumor> {
        let member = self.members.get(addr)?;
        let mut rumor = rumor_of(member)?;
        if member.state == PeerState::Suspect {
            rumor.by = self.own_id.clone();
        }
        Some(rumor)
    }

    /// This node's own rumor: its run `incarnation`, its refutation count, `state`.
    pub fn own_rumor(
        &self,
        incarnation: u64,
        advertised: Option<SocketAddr>,
        state: RumorState,
    ) -> Rumor {
        Rumor {
            node_id: self.own_id.clone(),
            // Receivers hearing it from this node take the datagram's source instead;
            // those hearing it relayed take the address they were told.
            addr: advertised.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
            incarnation,
            refutation: self.own_refutation,
            state,
            by: String::new(),
        }
    }

    /// Takes `rumor`, heard at `now_us`; `own_incarnation` is this node's run. A rumor
    /// about another run than the one known, or with an implausible refutation count,
    /// changes nothing; otherwise a newer refutation count wins and, at one count, dead
    /// and left override suspect, which overrides alive.
    pub fn apply_rumor(&mut self, rumor: Rumor, own_incarnation: u64, now_us: u64) -> RumorOutcome {
        if rumor.node_id == self.own_id {
            return self.about_self(&rumor, own_incarnation);
        }
        // A suspicion counts the verified members: a walk, so only for suspect rumors.
        let fresh = (rumor.state == RumorState::Suspect).then(|| self.new_suspicion(&rumor.by, now_us));
        let timing = self.timing;
        let Some(member) = self
            .named_addr(&rumor.node_id)
            .and_then(|addr| self.members.get_mut(&addr))
        else {
            return match rumor.state {
                RumorState::Alive => RumorOutcome::Unknown(GossipPeer {
                    node_id: rumor.node_id,
                    addr: rumor.addr,
                }),
                _ => RumorOutcome::Ignored,
            };
        };
        if member.incarnation == 0
            || member.incarnation != rumor.incarnation
            || rumor.refutation > member.refutation.saturating_add(MAX_REFUTATION_STEP)
        {
            return RumorOutcome::Ignored;
        }
        if rumor.refutation < member.refutation {
            // Whoever still spreads this missed the refutation, and may still suspect.
            return if rumor.state == RumorState::Alive {
                RumorOutcome::Ignored
            } else {
                RumorOutcome::Outdated(member.addr)
            };
        }
        let newer = rumor.refutation > member.refutation;
        let previous = member.state;
        let gone = matches!(previous, PeerState::Dead | PeerState::Left);
        let change = match rumor.state {
            RumorState::Alive if newer => {
                member.state = PeerState::Alive;
                member.suspicion = None;
                member.probe_interval_us = FIRST_PROBE_US;
                member.next_heartbeat_us = u64::MAX;
                if gone {
                    RumorChange::Recovered
                } else {
                    RumorChange::Refreshed
                }
            }
            RumorState::Suspect if gone => return RumorOutcome::Ignored,
            RumorState::Suspect if previous == PeerState::Suspect && !newer => {
                let Some(fresh) = fresh else {
                    return RumorOutcome::Ignored;
                };
                let confirmed = member
                    .suspicion
                    .get_or_insert(fresh)
                    .confirm(&rumor.by, now_us, timing.heartbeat_us);
                if !confirmed {
                    return RumorOutcome::Ignored;
                }
                RumorChange::Confirmed
            }
            RumorState::Suspect if previous != PeerState::Unknown => {
                member.state = PeerState::Suspect;
                member.suspicion = fresh;
                member.next_heartbeat_us = u64::MAX;
                RumorChange::Suspected
            }
            RumorState::Dead | RumorState::Left if !gone && previous != PeerState::Unknown => {
                let (state, change) = if rumor.state == RumorState::Dead {
                    (PeerState::Dead, RumorChange::Failed)
                } else {
                    (PeerState::Left, RumorChange::Left)
                };
                member.die(state, now_us, timing);
                change
            }
            _ => return RumorOutcome::Ignored,
        };
        member.refutation = rumor.refutation;
        let pass_on = Rumor {
            addr: member.advertised.unwrap_or(member.addr),
            ..rumor
        };
        RumorOutcome::Changed {
            addr: member.addr,
            change,
            pass_on,
        }
    }

    /// A rumor about this node: one saying it is suspected, dead or gone is refuted.
    fn about_self(&mut self, rumor: &Rumor, own_incarnation: u64) -> RumorOutcome {
        if rumor.state == RumorState::Alive
            || rumor.incarnation != own_incarnation
            || rumor.refutation > self.own_refutation.saturating_add(MAX_REFUTATION_STEP)
        {
            return RumorOutcome::Ignored;
        }
        if rumor.refutation >= self.own_refutation {
            self.own_refutation = rumor.refutation.saturating_add(1);
        }
        RumorOutcome::Refute
    }

    fn insert(&mut self, member: Member) -> bool {
        if self.members.len() >= self.max_peers {
            return false;
        }
        let addr = member.addr;
        let node_id = member.node_id.clone();
        if member.is_unverified_gossip() {
            self.unverified += 1;
        }
        self.last_added_us = Some(member.added_us);
        self.members.insert(addr, member);
        if let Some(node_id) = node_id {
            self.index(addr, node_id);
        }
        true
    }

    /// Names the member at `addr` `node_id`, in the member and in the indexes.
    fn name(&mut self, addr: SocketAddr, node_id: &str) {
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        let previous = member.node_id.replace(node_id.to_owned());
        member.refresh_origin();
        if let Some(previous) = previous {
            self.unindex(addr, &previous);
        }
        self.index(addr, node_id.to_owned());
    }

    /// Takes the node id of the member at `addr` away, from the member and the indexes.
    fn unname(&mut self, addr: SocketAddr) {
        let Some(member) = self.members.get_mut(&addr) else {
            return;
        };
        let previous = member.node_id.take();
        member.named_by_itself = false;
        member.refresh_origin();
        if let Some(previous) = previous {
            self.unindex(addr, &previous);
        }
    }

    fn index(&mut self, addr: SocketAddr, node_id: String) {
        self.id_bytes += node_id.len();
        let addrs = self.by_id.entry(node_id).or_default();
        if let Err(at) = addrs.binary_search(&addr) {
            addrs.insert(at, addr);
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = self.named_at.entry(addr) {
            slot.insert(self.named.len());
            self.named.push(addr);
        }
    }

    fn unindex(&mut self, addr: SocketAddr, node_id: &str) {
        self.id_bytes = self.id_bytes.saturating_sub(node_id.len());
        if let Some(addrs) = self.by_id.get_mut(node_id) {
            addrs.retain(|a| *a != addr);
            if addrs.is_empty() {
                self.by_id.remove(node_id);
            }
        }
        if let Some(at) = self.named_at.remove(&addr) {
            self.named.swap_remove(at);
            if let Some(moved) = self.named.get(at) {
                self.named_at.insert(*moved, at);
            }
        }
    }

    /// Forgets the member at `addr`, indexes included.
    fn take(&mut self, addr: &SocketAddr) -> Option<Member> {
        let member = self.members.remove(addr)?;
        self.claims.remove(addr);
        if member.is_unverified_gossip() {
            self.unverified -= 1;
        }
        if let Some(node_id) = &member.node_id {
            self.unindex(*addr, node_id);
        }
        Some(member)
    }

    /// Whether the indexes agree with the members (checked by the simulator).
    #[cfg(any(test, feature = "test-util"))]
    pub fn check_indexes(&self) -> Result<(), String> {
        let unverified = self.members.values().filter(|m| m.is_unverified_gossip()).count();
        if unverified != self.unverified {
            return Err(format!("{unverified} unverified members, {} counted", self.unverified));
        }
        let named = self.members.values().filter(|m| m.node_id.is_some()).count();
        if named != self.named.len() || named != self.named_at.len() {
            return Err(format!(
                "{named} named members, {} in the gossip index",
                self.named.len()
            ));
        }
        for (node_id, addrs) in &self.by_id {
            for addr in addrs {
                let holds = self.members.get(addr).and_then(|m| m.node_id.as_deref());
                if holds != Some(node_id.as_str()) {
                    return Err(format!("index names {addr} {node_id}, it is {holds:?}"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member list bound small enough to fill in a test.
    const MAX: usize = 300;

    const TIMING: Timing = Timing {
        heartbeat_us: 10,
        timeout_us: 100,
        max_probe_us: 4_000_000,
        forget_dead_us: 1_000_000,
    };

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn gossip(id: &str, port: u16) -> GossipPeer {
        GossipPeer {
            node_id: id.to_owned(),
            addr: addr(port),
        }
    }

    /// A verified, identified member at `port`, heard at `now`.
    fn known(m: &mut Members, port: u16, now: u64) {
        m.admit(addr(port), 7, now);
        m.mark_heard(addr(port), now);
        m.identify(addr(port), &format!("n{port}"));
    }

    #[test]
    fn a_missed_probe_leads_to_suspicion_then_failure_not_silence() {
        let mut m = Members::new("me", TIMING, MAX);
        assert_eq!(
            m.admit(addr(1), 7, 0),
            Admission::NewSession { restarted: None }
        );
        assert_eq!(m.mark_heard(addr(1), 0), Heard::Alive);
        m.identify(addr(1), "a");
        assert_eq!(m.next_deadline(&addr(1), true), None, "silence decides nothing");
        assert_eq!(m.on_timeout(addr(1), 10_000, true), (Transition::None, None));
        let rumor = m.suspect(addr(1), 10_000).expect("a rumor to spread");
        assert_eq!((rumor.state, rumor.by.as_str()), (RumorState::Suspect, "me"));
        assert_eq!(m.get(&addr(1)).unwrap().state, PeerState::Suspect);
        assert!(m.is_reachable(&addr(1)), "a suspect is still written to");
        // A small mesh gives no confirmations: the shortest timeout at once; the suspect
        // is probed directly in each of the last three periods before it.
        let deadline = 10_000 + TIMING.timeout_us;
        for k in (1..=3).rev() {
            let check = deadline - k * TIMING.heartbeat_us;
            assert_eq!(m.next_deadline(&addr(1), true), Some(check));
            assert_eq!(m.on_timeout(addr(1), check, true), (Transition::None, Some(true)));
        }
        assert_eq!(m.next_deadline(&addr(1), true), Some(deadline));
        assert_eq!(m.on_timeout(addr(1), 10_050, true).0, Transition::None);
        assert_eq!(m.on_timeout(addr(1), 10_100, true).0, Transition::Failed);
        assert_eq!(m.get(&addr(1)).unwrap().state, PeerState::Dead);
        assert!(!m.is_reachable(&addr(1)));
        assert_eq!(m.mark_heard(addr(1), 10_200), Heard::Alive, "a named member must refute");
        assert_eq!(m.get(&addr(1)).unwrap().state, PeerState::Dead);
    }

    fn rumor(id: &str, inc: u64, refutation: u32, state: RumorState, by: &str) -> Rumor {
        Rumor {
            node_id: id.into(),
            addr: addr(99),
            incarnation: inc,
            refutation,
            state,
            by: by.into(),
        }
    }

    #[test]
    fn a_suspected_node_refutes_with_a_higher_refutation_count() {
        let mut m = Members::new("me", TIMING, MAX);
        let outcome = m.apply_rumor(rumor("me", 5, 0, RumorState::Suspect, "x"), 5, 0);
        assert_eq!(outcome, RumorOutcome::Refute);
        let own = m.own_rumor(5, None, RumorState::Alive);
        assert_eq!(own.refutation, 1);
        // Old news about this node is refuted again, without raising the count.
        assert_eq!(
            m.apply_rumor(rumor("me", 5, 0, RumorState::Dead, "x"), 5, 0),
            RumorOutcome::Refute
        );
        assert_eq!(m.own_rumor(5, None, RumorState::Alive).refutation, 1);
        for ignored in [
            rumor("me", 4, 3, RumorState::Dead, ""),
            rumor("me", 5, 3, RumorState::Alive, ""),
            rumor("me", 5, 1 + MAX_REFUTATION_STEP + 1, RumorState::Dead, ""),
        ] {
            assert_eq!(m.apply_rumor(ignored, 5, 0), RumorOutcome::Ignored);
        }
        assert_eq!(m.own_rumor(5, None, RumorState::Alive).refutation, 1);
    }

    #[test]
    fn rumors_follow_refutation_counts_then_state_precedence() {
        let mut m = Members::new("me", TIMING, MAX);
        known(&mut m, 1, 0);
        let changed = |o: RumorOutcome| match o {
            RumorOutcome::Changed { change, .. } => Some(change),
            _ => None,
        };
        let suspect = m.apply_rumor(rumor("n1", 7, 0, RumorState::Suspect, "b"), 1, 10);
        assert_eq!(changed(suspect), Some(RumorChange::Suspected));
        let alive = m.apply_rumor(rumor("n1", 7, 0, RumorState::Alive, ""), 1, 11);
        assert_eq!(alive, RumorOutcome::Ignored, "alive at the same count loses");
        let refuted = m.apply_rumor(rumor("n1", 7, 1, RumorState::Alive, ""), 1, 12);
        assert_eq!(changed(refuted), Some(RumorChange::Refreshed));
        assert_eq!(m.get(&addr(1)).unwrap().state, PeerState::Alive);
        let stale = m.apply_rumor(rumor("n1", 7, 0, RumorState::Dead, ""), 1, 13);
        assert_eq!(stale, RumorOutcome::Outdated(addr(1)), "an older count loses");
        assert_eq!(m.get(&addr(1)).unwrap().state, PeerState::Alive);
        let other_run = m.apply_rumor(rumor("n1", 8, 5, RumorState::Dead, ""), 1, 13);
        assert_eq!(other_run, RumorOutcome::Ignored, "another run's rumor");
        let forged = m.apply_rumor(
            rumor("n1", 7, 2 + MAX_REFUTATION_STEP, RumorState::Dead, ""),
            1,
            13,
        );
        assert_eq!(forged, RumorOutcome::Ignored, "an implausible count");
        let dead = m.apply_rumor(rumor("n1", 7, 1, RumorState::Dead, ""), 1, 14);
        assert_eq!(changed(dead), Some(RumorChange::Failed), "dead beats alive");
        let late = m.apply_rumor(rumor("n1", 7, 1, RumorState::Suspect, "c"), 1, 15);
        assert_eq!(late, RumorOutcome::Ignored, "no suspicion of the dead");
        let back = m.apply_rumor(rumor("n1", 7, 2, RumorState::Alive, ""), 1, 16);
        assert_eq!(changed(back), Some(RumorChange::Recovered));
        let left = m.apply_rumor(rumor("n1", 7, 2, RumorState::Left, ""), 1, 17);
        assert_eq!(changed(left), Some(RumorChange::Left));
        assert_eq!(m.get(&addr(1)).unwrap().state, PeerState::Left);
    }

    #[test]
    fn independent_suspicions_shorten_the_timeout_and_repeats_do_not() {
        let mut m = Members::new("me", TIMING, MAX);
        for port in 1..=10 {
            known(&mut m, port, 0);
        }
        m.apply_rumor(rumor("n1", 7, 0, RumorState::Suspect, "n2"), 1, 0);
        let first = m.next_deadline(&addr(1), true).unwrap();
        let again = m.apply_rumor(rumor("n1", 7, 0, RumorState::Suspect, "n2"), 1, 0);
        assert_eq!(again, RumorOutcome::Ignored);
        assert_eq!(m.next_deadline(&addr(1), true), Some(first));
        let confirmed = m.apply_rumor(rumor("n1", 7, 0, RumorState::Suspect, "n3"), 1, 0);
        assert!(matches!(
            confirmed,
            RumorOutcome::Changed { change: RumorChange::Confirmed, .. }
        ));
        assert!(m.next_deadline(&addr(1), true).unwrap() < first);
        assert!(m.suspect(addr(1), 0).is_some(), "this node's own miss confirms too");
    }

    #[test]
    fn rumors_about_unknown_nodes_are_only_gossip_and_never_about_strangers() {
        let mut m = Members::new("me", TIMING, MAX);
        let alive = m.apply_rumor(rumor("new", 3, 0, RumorState::Alive, ""), 1, 0);
        assert!(matches!(alive, RumorOutcome::Unknown(GossipPeer { .. })));
        assert_eq!(m.len(), 0, "nothing remembered before merge_gossip's bounds");
        let dead = m.apply_rumor(rumor("new", 3, 0, RumorState::Dead, ""), 1, 0);
        assert_eq!(dead, RumorOutcome::Ignored);
        m.add_bootstrap(addr(4), 0);
        m.identify(addr(4), "unverified");
        let suspect = m.apply_rumor(rumor("unverified", 0, 0, RumorState::Suspect, ""), 1, 0);
        assert_eq!(suspect, RumorOutcome::Ignored, "nothing about members not verified");
    }

    #[test]
    fn unknown_members_are_probed_with_backoff_up_to_a_cap() {
        let mut m = Members::new("me", TIMING, MAX);
        m.add_bootstrap(addr(1), 0);
        let mut now = 0;
        let mut gaps = Vec::new();
        for _ in 0..8 {
            let (_, heartbeat) = m.on_timeout(addr(1), now, true);
            assert_eq!(heartbeat, Some(true), "an unknown member is asked to reply");
            let next = m.next_deadline(&addr(1), true).unwrap();
            gaps.push(next - now);
            now = next;
        }
        assert_eq!(gaps[0], FIRST_PROBE_US);
        assert_eq!(gaps[1], 2 * FIRST_PROBE_US);
        assert_eq!(*gaps.last().unwrap(), TIMING.max_probe_us);
    }

    /// Makes `port` a known member, then lets it fail.
    fn failed_member(m: &mut Members, port: u16, now: u64) {
        m.add_bootstrap(addr(port), now);
        known(m, port, now);
        m.suspect(addr(port), now);
        // Three direct probes of the suspect, then the deadline.
        for _ in 0..3 {
            let check = m.next_deadline(&addr(port), true).unwrap();
            assert_eq!(m.on_timeout(addr(port), check, true), (Transition::None, Some(true)));
        }
        let deadline = m.next_deadline(&addr(port), true).unwrap();
        assert_eq!(m.on_timeout(addr(port), deadline, true).0, Transition::Failed);
    }

    /// Probe gaps of a dead member, from `now`.
    fn probe_gaps(m: &mut Members, port: u16, mut now: u64, probes: usize) -> Vec<u64> {
        let mut gaps = Vec::new();
        for _ in 0..probes {
            let next = m.next_deadline(&addr(port), true).unwrap();
            gaps.push(next - now);
            now = next;
            let (_, heartbeat) = m.on_timeout(addr(port), now, true);
            assert_eq!(heartbeat, Some(true), "a dead member is asked to reply");
        }
        gaps
    }

    #[test]
    fn a_dead_member_is_probed_every_interval_without_backing_off() {
        let mut m = Members::new("me", TIMING, MAX);
        failed_member(&mut m, 1, 0);
        let gaps = probe_gaps(&mut m, 1, TIMING.timeout_us, 20);
        // The first probe follows the failure by one interval, as does every later one:
        // a healed partition is noticed within one heartbeat interval however long it was.
        assert!(
            gaps.iter().all(|&g| g == TIMING.heartbeat_us),
            "gaps between probes: {gaps:?}"
        );
    }

    #[test]
    fn many_dead_members_share_one_probe_per_interval() {
        let mut m = Members::new("me", TIMING, MAX);
        for port in 1..=5 {
            failed_member(&mut m, port, 0);
        }
        let start = TIMING.timeout_us;
        // After one round at the old pace, each is probed every 5 intervals: five dead
        // members cost what one does.
        let gaps = probe_gaps(&mut m, 3, start, 6);
        assert!(
            gaps[1..].iter().all(|&g| g == 5 * TIMING.heartbeat_us),
            "gaps between probes: {gaps:?}"
        );
    }

    #[test]
    fn many_dead_members_are_probed_at_one_per_interval_past_the_backoff_cap() {
        // A cap of 3 intervals per member would probe 10 dead members 10 / 3 times per
        // interval: the rate would grow with the number of dead.
        let timing = Timing {
            max_probe_us: 3 * TIMING.heartbeat_us,
            ..TIMING
        };
        let mut m = Members::new("me", timing, MAX);
        for port in 1..=10 {
            failed_member(&mut m, port, 0);
        }
        let start = timing.timeout_us;
        let gaps = probe_gaps(&mut m, 4, start, 5);
        assert!(
            gaps[1..].iter().all(|&g| g == 10 * timing.heartbeat_us),
            "gaps between probes: {gaps:?}"
        );
    }

    #[test]
    fn members_that_die_together_are_probed_one_per_interval() {
        let mut m = Members::new("me", TIMING, MAX);
        let ports: Vec<u16> = (1..=4).collect();
        for &port in &ports {
            m.add_bootstrap(addr(port), 0);
            known(&mut m, port, 0);
            m.suspect(addr(port), 0);
        }
        // All four fail at the same instant, as a partition makes them.
        let failed_at = TIMING.timeout_us;
        for &port in &ports {
            assert_eq!(m.on_timeout(addr(port), failed_at, true).0, Transition::Failed);
        }
        // Drive every member's timer as the engine does; count probes per interval.
        let mut probes_at = Vec::new();
        let mut now = failed_at;
        let end = failed_at + 40 * TIMING.heartbeat_us;
        while now < end {
            for &port in &ports {
                if m.next_deadline(&addr(port), true).is_some_and(|at| at <= now)
                    && m.on_timeout(addr(port), now, true).1.is_some()
                {
                    probes_at.push(now);
                }
            }
            now += 1;
        }
        let periods: Vec<u64> = probes_at
            .iter()
            .map(|at| (at - failed_at) / TIMING.heartbeat_us)
            .collect();
        let mut per_period = std::collections::BTreeMap::new();
        for p in &periods {
            *per_period.entry(*p).or_insert(0) += 1;
        }
        assert!(
            per_period.values().all(|&count| count == 1),
            "probes per interval: {per_period:?}"
        );
        // And every interval after the first has its probe: a heal is noticed within one.
        assert!(
            (1..40).all(|p| per_period.contains_key(&p)),
            "intervals without a probe: {per_period:?}"
        );
    }

    #[test]
    fn heartbeats_wait_for_start() {
        let mut m = Members::new("me", TIMING, MAX);
        m.add_bootstrap(addr(1), 5);
        assert_eq!(m.next_deadline(&addr(1), false), None);
        assert_eq!(m.on_timeout(addr(1), 5, false), (Transition::None, None));
        m.start(9);
        assert_eq!(m.next_deadline(&addr(1), true), Some(9));
    }

    #[test]
    fn incarnations_only_move_forward() {
        let mut m = Members::new("me", TIMING, MAX);
        assert!(matches!(
            m.admit(addr(1), 5, 0),
            Admission::NewSession { restarted: None }
        ));
        m.mark_heard(addr(1), 0);
        assert_eq!(m.admit(addr(1), 5, 1), Admission::Current);
        assert_eq!(m.admit(addr(1), 4, 1), Admission::Stale);
        // A restart of a member that never introduced itself is a new session, unnamed.
        assert_eq!(
            m.admit(addr(1), 6, 2),
            Admission::NewSession { restarted: None }
        );
        m.identify(addr(1), "peer");
        assert_eq!(
            m.admit(addr(1), 9, 3),
            Admission::NewSession {
                restarted: Some("peer".into())
            }
        );
        assert_eq!(m.get(&addr(1)).unwrap().incarnation, 9);
    }

    #[test]
    fn a_node_id_at_a_new_address_replaces_the_old_one() {
        let mut m = Members::new("me", TIMING, MAX);
        m.admit(addr(1), 1, 0);
        m.identify(addr(1), "peer");
        m.admit(addr(2), 2, 0);
        let summary = m.identify(addr(2), "peer");
        assert!(summary.newly);
        assert_eq!(summary.removed, vec![addr(1)]);
        assert!(m.get(&addr(1)).is_none());
        assert_eq!(m.identify(addr(2), "peer"), Identified::default());
    }

    #[test]
    fn a_node_id_held_by_a_live_member_is_claimed_only_once_that_member_is_dead() {
        let mut m = Members::new("me", TIMING, MAX);
        m.admit(addr(1), 1, 0);
        m.mark_heard(addr(1), 0);
        m.identify(addr(1), "peer");
        m.admit(addr(2), 2, 0);
        m.mark_heard(addr(2), 0);
        let claim = m.identify(addr(2), "peer");
        assert!(claim.refused && !claim.newly && claim.removed.is_empty());
        assert_eq!(m.get(&addr(1)).unwrap().node_id.as_deref(), Some("peer"));
        assert_eq!(m.get(&addr(2)).unwrap().node_id, None);
        assert!(m.settle_claims().is_empty(), "the holder still lives");
        m.members.get_mut(&addr(1)).unwrap().state = PeerState::Dead;
        let settled = m.settle_claims();
        assert_eq!(settled.len(), 1);
        let (at, id, identified) = &settled[0];
        assert_eq!((*at, id.as_str()), (addr(2), "peer"));
        assert_eq!(identified.removed, vec![addr(1)]);
        assert!(!m.has_claims());
        m.check_indexes().unwrap();
    }

    #[test]
    fn a_member_that_named_itself_keeps_its_name_until_it_restarts() {
        let mut m = Members::new("me", TIMING, MAX);
        m.admit(addr(1), 1, 0);
        m.identify(addr(1), "peer");
        assert!(m.identify(addr(1), "other").refused);
        assert_eq!(m.get(&addr(1)).unwrap().node_id.as_deref(), Some("peer"));
        // Another run at the address may be another node.
        m.admit(addr(1), 2, 0);
        assert!(m.identify(addr(1), "other").newly);
        m.check_indexes().unwrap();
    }

    #[test]
    fn a_bootstrap_address_loses_only_its_name_to_a_node_that_moved() {
        let mut m = Members::new("me", TIMING, MAX);
        m.add_bootstrap(addr(1), 0);
        m.admit(addr(1), 1, 0);
        m.identify(addr(1), "peer");
        m.members.get_mut(&addr(1)).unwrap().state = PeerState::Dead;
        m.admit(addr(2), 2, 0);
        let moved = m.identify(addr(2), "peer");
        assert!(moved.newly && moved.removed.is_empty());
        let kept = m.get(&addr(1)).expect("the operator's address stays");
        assert_eq!(kept.node_id, None);
        m.check_indexes().unwrap();
    }

    #[test]
    fn gossip_adds_only_unknown_members_and_never_ourselves() {
        let mut m = Members::new("me", TIMING, MAX);
        m.admit(addr(1), 1, 0);
        m.identify(addr(1), "a");
        let added = m.merge_gossip(
            vec![
                gossip("me", 9),
                gossip("a", 3),
                gossip("c", 4),
                gossip("b", 1),
            ],
            0,
        );
        assert_eq!(added, vec![addr(4)]);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn one_heartbeat_adds_a_few_addresses_and_gossip_adds_a_bounded_number() {
        let mut m = Members::new("me", TIMING, MAX);
        let flood: Vec<GossipPeer> = (0..1_100).map(|i| gossip(&format!("f{i}"), 10_000 + i)).collect();
        assert_eq!(m.merge_gossip(flood, 0).len(), NEWCOMER_GOSSIP);
        for round in 0..100u16 {
            let batch = (0..3).map(|i| gossip(&format!("g{round}-{i}"), 20_000 + round * 3 + i));
            m.merge_gossip(batch.collect(), 0);
        }
        assert_eq!(m.len(), MAX_UNVERIFIED);
    }

    #[test]
    fn unverified_members_are_remembered_as_long_as_tombstones_then_forgotten() {
        let mut m = Members::new("me", TIMING, MAX);
        m.merge_gossip(vec![gossip("ghost", 9)], 0);
        m.add_bootstrap(addr(1), 0);
        assert!(m.note_unverified(addr(7), "stranger", 0));
        assert_eq!(m.next_deadline(&addr(7), true), Some(TIMING.forget_dead_us));
        assert_eq!(m.on_timeout(addr(7), 10, true).1, None, "a stranger is never probed");
        assert_eq!(m.on_timeout(addr(9), 10, true).1, Some(true), "a gossiped one is");
        let later = TIMING.forget_dead_us;
        assert_eq!(m.on_timeout(addr(9), later, true), (Transition::Forgotten, None));
        assert_eq!(m.on_timeout(addr(7), later, true), (Transition::Forgotten, None));
        assert_ne!(m.on_timeout(addr(1), later, true).0, Transition::Forgotten, "bootstrap stays");
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn a_stranger_that_proves_its_address_becomes_a_member() {
        let mut m = Members::new("me", TIMING, MAX);
        assert!(m.note_unverified(addr(7), "stranger", 0));
        assert!(!m.note_unverified(addr(7), "stranger", 0), "once");
        assert!(!m.note_unverified(addr(8), "me", 0), "never ourselves");
        assert_eq!(m.admit(addr(7), 5, 3), Admission::NewSession { restarted: None });
        m.mark_heard(addr(7), 3);
        assert!(m.is_reachable(&addr(7)));
        assert!(m.probe_candidates().contains(&addr(7)), "probed by the round from now on");
        assert_eq!(m.next_deadline(&addr(7), true), None);
    }

    #[test]
    fn dead_members_are_forgotten_after_the_tombstone_grace_unless_bootstrap() {
        let mut m = Members::new("me", TIMING, MAX);
        for port in [1, 2] {
            known(&mut m, port, 0);
        }
        m.add_bootstrap(addr(2), 0);
        for port in [1, 2] {
            m.suspect(addr(port), 0);
            assert_eq!(m.on_timeout(addr(port), TIMING.timeout_us, false).0, Transition::Failed);
        }
        assert_eq!(m.next_deadline(&addr(1), false), Some(TIMING.forget_dead_us));
        assert_eq!(
            m.on_timeout(addr(1), TIMING.forget_dead_us, false).0,
            Transition::Forgotten
        );
        assert_eq!(m.on_timeout(addr(2), TIMING.forget_dead_us, false).0, Transition::None);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn steady_answers_name_no_members_and_steady_probes_one_now_and_then() {
        let mut m = Members::new("me", TIMING, MAX);
        for port in 1..=4 {
            known(&mut m, port, 0);
        }
        let mut rng = fastrand::Rng::with_seed(1);
        let later = NEWCOMER_PERIODS * TIMING.heartbeat_us;
        assert!(!m.gossip_for(addr(1), false, 0, &mut rng).is_empty(), "a newcomer");
        assert!(m.gossip_for(addr(1), false, later, &mut rng).is_empty());
        let named: Vec<usize> = (0..400)
            .map(|_| m.gossip_for(addr(1), true, later, &mut rng).len())
            .collect();
        assert!(named.iter().all(|&n| n <= 1), "one name at most: {named:?}");
        let with_one = named.iter().filter(|&&n| n == 1).count();
        assert!((60..=140).contains(&with_one), "about one probe in four: {with_one} of 400");
        assert_eq!(m.gossip_for(addr(1), true, 0, &mut rng).len(), 3, "all there are");
        // A member verified lately: the mesh still changes, every probe names one.
        known(&mut m, 5, later);
        let changing: Vec<usize> = (0..20)
            .map(|_| m.gossip_for(addr(1), true, later + 1, &mut rng).len())
            .collect();
        assert!(changing.iter().all(|&n| n == 1), "{changing:?}");
        let settled = 2 * later;
        let named = (0..40)
            .filter(|_| !m.gossip_for(addr(1), true, settled, &mut rng).is_empty())
            .count();
        assert!(named < 25, "settled again: {named} of 40 probes named one");
    }

    #[test]
    fn a_member_that_names_fewer_members_is_told_many_names_until_it_catches_up() {
        let mut m = Members::new("me", TIMING, MAX);
        for port in 1..=40 {
            known(&mut m, port, 0);
        }
        let mut rng = fastrand::Rng::with_seed(1);
        let later = NEWCOMER_PERIODS * TIMING.heartbeat_us;
        assert_eq!(m.nameable(), 40);
        m.note_nameable(&addr(1), 39, later);
        assert_eq!(m.gossip_for(addr(1), false, later, &mut rng).len(), NEWCOMER_GOSSIP, "an answer");
        assert_eq!(m.gossip_for(addr(1), true, later, &mut rng).len(), NEWCOMER_GOSSIP, "a probe");
        m.note_nameable(&addr(1), 40, later);
        assert!(m.gossip_for(addr(1), false, later, &mut rng).is_empty(), "caught up");
        m.note_nameable(&addr(1), 41, later);
        let most = (0..40)
            .map(|_| m.gossip_for(addr(1), true, later, &mut rng).len())
            .max();
        assert_eq!(most, Some(1), "knows more: a name now and then, no more");
        // A count said long ago is not taken: the member has likely caught up since.
        m.note_nameable(&addr(1), 39, later);
        let long_after = later + NEWCOMER_PERIODS * TIMING.heartbeat_us;
        assert!(m.gossip_for(addr(1), false, long_after, &mut rng).is_empty(), "stale");
    }

    #[test]
    fn membership_is_gossiped_only_to_verified_members() {
        let mut m = Members::new("me", TIMING, MAX);
        m.admit(addr(1), 1, 0);
        m.identify(addr(1), "a");
        m.admit(addr(2), 1, 0);
        m.identify(addr(2), "b");
        m.add_bootstrap(addr(3), 0);
        let mut rng = fastrand::Rng::with_seed(1);
        assert!(m.gossip_for(addr(3), true, 0, &mut rng).is_empty());
        assert!(m.gossip_for(addr(4), true, 0, &mut rng).is_empty());
        assert_eq!(m.gossip_for(addr(1), true, 0, &mut rng).len(), 1);
    }

    #[test]
    fn members_are_gossiped_at_their_advertised_address() {
        let mut m = Members::new("me", TIMING, MAX);
        m.admit(addr(1), 1, 0);
        m.identify(addr(1), "a");
        m.admit(addr(2), 1, 0);
        m.identify(addr(2), "b");
        let public: SocketAddr = "[2001:db8::5]:7000".parse().unwrap();
        m.set_advertised(&addr(2), Some(public));
        let mut rng = fastrand::Rng::with_seed(1);
        let g = m.gossip_for(addr(1), true, 0, &mut rng);
        assert_eq!(g, vec![GossipPeer { node_id: "b".into(), addr: public }]);
        assert_eq!(m.get(&addr(2)).unwrap().addr, addr(2), "still reached where it is heard");
        m.set_advertised(&addr(2), None);
        assert_eq!(m.gossip_for(addr(1), true, 0, &mut rng)[0].addr, addr(2), "withdrawn");
    }

    #[test]
    fn gossiped_addresses_are_canonical_and_unicast() {
        let mut m = Members::new("me", TIMING, MAX);
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:4".parse().unwrap();
        let gossip = vec![
            GossipPeer { node_id: "x".into(), addr: mapped },
            GossipPeer { node_id: "y".into(), addr: "0.0.0.0:5".parse().unwrap() },
            GossipPeer { node_id: "z".into(), addr: "[::1]:6".parse().unwrap() },
        ];
        assert_eq!(
            m.merge_gossip(gossip, 0),
            vec![addr(4), "[::1]:6".parse().unwrap()]
        );
    }

    #[test]
    fn a_bootstrap_mark_can_be_taken_back() {
        let mut m = Members::new("me", TIMING, MAX);
        m.add_bootstrap(addr(1), 0);
        assert_eq!(m.unbootstrap(&addr(1)), Some(false), "never heard from");
        assert_eq!(m.unbootstrap(&addr(1)), None, "no longer bootstrap");
        m.add_bootstrap(addr(2), 0);
        m.admit(addr(2), 3, 0);
        assert_eq!(m.unbootstrap(&addr(2)), Some(true));
    }

    #[test]
    fn the_member_list_is_bounded() {
        let mut m = Members::new("me", TIMING, MAX);
        for port in 0..MAX as u16 {
            m.add_bootstrap(addr(port + 1), 0);
        }
        assert_eq!(m.admit(addr(60_000), 1, 0), Admission::Full);
        assert!(m
            .merge_gossip(vec![gossip("x", 60_001)], 0)
            .is_empty());
        assert_eq!(m.len(), MAX);
    }

    #[test]
    fn gossip_names_identified_members_other_than_the_receiver() {
        let mut m = Members::new("me", TIMING, MAX);
        for port in 1..=5 {
            m.admit(addr(port), 1, 0);
            if port != 5 {
                m.identify(addr(port), &format!("n{port}"));
            }
        }
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..20 {
            let g = m.gossip_for(addr(1), true, 0, &mut rng);
            assert_eq!(g.len(), 3, "every named member but the receiver");
            assert!(g.iter().all(|p| p.addr != addr(1) && p.addr != addr(5)));
        }
    }
}
