//! Members: who the peers are, whether they are alive, when to talk to them next.
//!
//! Liveness only: what a node exchanges with a peer (its reliable channel, its sync
//! state) lives elsewhere, keyed by the same address. Every method that changes the
//! member list says so in what it returns, so the engine can keep the rest in step and
//! the rules here are unit-tested without a network (as foca's `Members::apply` does).
//!
//! A member's life: `Unknown` (a bootstrap or gossiped address never heard from) becomes
//! `Alive` on any valid datagram; silence past `peer_timeout` makes it `Suspect`, past
//! twice that `Dead`. Any datagram brings it back to `Alive`. Alive and suspect members
//! get a heartbeat every `heartbeat_interval`. Unknown ones are probed with a backoff that
//! doubles up to `max_probe_interval`. Dead ones are probed in turn, all together about
//! once per heartbeat interval (each at most `max_probe_interval` apart), so a healed
//! partition is noticed within about one interval however long it lasted, and many dead
//! members cost what one does. A member that restarts comes back with a higher
//! incarnation.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::config::Config;
use crate::status::PeerState;
use crate::time::us;
use crate::wire::GossipPeer;

/// First probe interval for members never heard from.
pub(crate) const FIRST_PROBE_US: u64 = 500_000;
/// Most members remembered; datagrams from further addresses are ignored.
pub const MAX_PEERS: usize = 1024;
/// Members named in one heartbeat's gossip, and the most taken from one heartbeat: a
/// heartbeat naming a thousand addresses fills nothing.
const GOSSIP_FANOUT: usize = 3;
/// Members not verified yet and not given by the operator (gossiped, or heard from
/// without proof), at most: neither gossip nor spoofed datagrams can make this node
/// remember or probe more addresses than this.
pub(crate) const MAX_UNVERIFIED: usize = 64;

/// The failure detector's timing, in microseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    /// Period of heartbeats to alive and suspect members.
    pub heartbeat_us: u64,
    /// Silence after which a member is suspected (twice this: dead).
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
    /// Alive to suspect.
    Suspected,
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
    /// Failure detector state.
    pub state: PeerState,
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
}

impl Member {
    fn new(addr: SocketAddr, bootstrap: bool, now_us: u64) -> Member {
        Member {
            addr,
            node_id: None,
            incarnation: 0,
            state: PeerState::Unknown,
            bootstrap,
            last_heard_us: None,
            next_heartbeat_us: now_us,
            probe_interval_us: FIRST_PROBE_US,
            added_us: now_us,
            heard_unverified: false,
            advertised: None,
        }
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
            PeerState::Alive => Some(heard + timing.timeout_us),
            PeerState::Suspect => Some(heard + 2 * timing.timeout_us),
            PeerState::Dead if !self.bootstrap => {
                Some(heard.saturating_add(timing.forget_dead_us))
            }
            PeerState::Unknown | PeerState::Dead => None,
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
            PeerState::Alive if silent >= timing.timeout_us => {
                self.state = PeerState::Suspect;
                Transition::Suspected
            }
            PeerState::Suspect if silent >= 2 * timing.timeout_us => {
                self.state = PeerState::Dead;
                self.probe_interval_us = timing.heartbeat_us;
                self.next_heartbeat_us = now_us + self.probe_interval_us;
                Transition::Failed
            }
            PeerState::Dead
                if !self.bootstrap && silent >= timing.forget_dead_us =>
            {
                Transition::Forgotten
            }
            _ => Transition::None,
        }
    }

    /// Plans the next heartbeat (alive, suspect) or probe (unknown: with backoff; dead:
    /// in turn with the other dead members, see [`Members::dead_probe_us`]).
    fn schedule_heartbeat(&mut self, now_us: u64, timing: Timing, dead_probe_us: u64) {
        match self.state {
            PeerState::Alive | PeerState::Suspect => {
                self.next_heartbeat_us = now_us + timing.heartbeat_us;
            }
            PeerState::Dead => {
                self.next_heartbeat_us = now_us + dead_probe_us;
            }
            PeerState::Unknown => {
                self.next_heartbeat_us = now_us + self.probe_interval_us;
                self.probe_interval_us = (self.probe_interval_us * 2).min(timing.max_probe_us);
            }
        }
    }
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
}

/// Every member of the mesh this node knows, by address.
#[derive(Debug)]
pub(crate) struct Members {
    own_id: String,
    timing: Timing,
    // Ordered, so iteration (and with it every seeded random choice) is deterministic.
    members: BTreeMap<SocketAddr, Member>,
}

impl Members {
    /// An empty member list for the node `own_id`.
    pub fn new(own_id: &str, timing: Timing) -> Members {
        Members {
            own_id: own_id.to_owned(),
            timing,
            members: BTreeMap::new(),
        }
    }

    /// Remembers `addr`, which introduced itself as `node_id` without proving its
    /// address yet, as an unverified member: it is gossiped and blocks tombstone
    /// collection like any member never heard from, but counts for nothing else until it
    /// proves its address. Returns whether it was added (bounded by [`MAX_UNVERIFIED`]).
    pub fn note_unverified(&mut self, addr: SocketAddr, node_id: &str, now_us: u64) -> bool {
        if self.members.contains_key(&addr) || node_id == self.own_id {
            return false;
        }
        let unverified = self.members.values().filter(|m| m.is_unverified_gossip()).count();
        if unverified >= MAX_UNVERIFIED {
            return false;
        }
        let mut member = Member::new(addr, false, now_us);
        member.node_id = Some(node_id.to_owned());
        member.heard_unverified = true;
        // Never probed: a spoofed introduction must not make this node send anything.
        member.next_heartbeat_us = u64::MAX;
        self.insert(member)
    }

    /// The incarnation of the member at `addr` (0: never heard from), if it is one.
    pub fn incarnation(&self, addr: &SocketAddr) -> Option<u64> {
        self.members.get(addr).map(|m| m.incarnation)
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
        Some(member.incarnation != 0)
    }

    /// Forgets the member at `addr`; returns whether there was one.
    pub fn remove(&mut self, addr: &SocketAddr) -> bool {
        self.members.remove(addr).is_some()
    }

    /// Once the node starts, every member is contacted at once.
    pub fn start(&mut self, now_us: u64) {
        for member in self.members.values_mut() {
            member.next_heartbeat_us = now_us;
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
        member.incarnation = src_inc;
        member.heard_unverified = false;
        let restarted = if restarted {
            member.node_id.clone().inspect(|_| member.state = PeerState::Alive)
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
        if previous == PeerState::Alive {
            return Heard::Alive;
        }
        member.state = PeerState::Alive;
        member.probe_interval_us = FIRST_PROBE_US;
        member.next_heartbeat_us = member
            .next_heartbeat_us
            .min(now_us + self.timing.heartbeat_us);
        if previous == PeerState::Dead {
            Heard::Recovered {
                node_id: member.node_id.clone(),
            }
        } else {
            Heard::Alive
        }
    }

    /// Records the node id a heartbeat from `from` announces. The same node id at another
    /// address means the node moved (restarted on a new port): the old address is
    /// forgotten.
    pub fn identify(&mut self, from: SocketAddr, node_id: &str) -> Identified {
        let Some(member) = self.members.get_mut(&from) else {
            return Identified::default();
        };
        if member.node_id.as_deref() == Some(node_id) {
            return Identified::default();
        }
        member.node_id = Some(node_id.to_owned());
        let removed: Vec<SocketAddr> = self
            .members
            .iter()
            .filter(|(addr, m)| **addr != from && m.node_id.as_deref() == Some(node_id))
            .map(|(addr, _)| *addr)
            .collect();
        for addr in &removed {
            self.members.remove(addr);
        }
        Identified {
            newly: true,
            removed,
        }
    }

    /// Adds the gossiped members not known yet (by address or by node id), from the first
    /// few entries only and while few gossiped addresses are still unverified; returns the
    /// addresses added.
    pub fn merge_gossip(&mut self, gossip: Vec<GossipPeer>, now_us: u64) -> Vec<SocketAddr> {
        let mut added = Vec::new();
        let mut unverified = self.members.values().filter(|m| m.is_unverified_gossip()).count();
        for mut gossiped in gossip.into_iter().take(GOSSIP_FANOUT) {
            if unverified >= MAX_UNVERIFIED {
                break;
            }
            gossiped.addr = crate::addr::canonical(gossiped.addr);
            if !crate::addr::is_peer_addr(&gossiped.addr) {
                continue;
            }
            if gossiped.node_id == self.own_id
                || self.members.contains_key(&gossiped.addr)
                || self
                    .members
                    .values()
                    .any(|m| m.node_id.as_deref() == Some(gossiped.node_id.as_str()))
            {
                continue;
            }
            if self.insert(Member::new(gossiped.addr, false, now_us)) {
                added.push(gossiped.addr);
                unverified += 1;
            }
        }
        added
    }

    /// Up to [`GOSSIP_FANOUT`] random identified members other than `to`, dead ones
    /// included: a node that joins during a partition must still learn the whole
    /// membership, or it could collect tombstones others never saw.
    pub fn gossip_for(&self, to: SocketAddr, rng: &mut fastrand::Rng) -> Vec<GossipPeer> {
        // Membership is revealed only to verified members.
        if self.members.get(&to).is_none_or(|m| m.incarnation == 0) {
            return Vec::new();
        }
        let mut known: Vec<GossipPeer> = self
            .members
            .values()
            .filter(|m| m.addr != to)
            .filter_map(|m| {
                m.node_id.as_ref().map(|id| GossipPeer {
                    node_id: id.clone(),
                    addr: m.advertised.unwrap_or(m.addr),
                })
            })
            .collect();
        let mut gossip = Vec::new();
        while gossip.len() < GOSSIP_FANOUT && !known.is_empty() {
            gossip.push(known.swap_remove(rng.usize(..known.len())));
        }
        gossip
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
            self.members.remove(&addr);
            return (transition, None);
        }
        if !(started && member.next_heartbeat_us <= now_us) {
            return (transition, None);
        }
        // Counting the dead walks every member: only for a dead member's probe.
        let dead_probe_us = if member.state == PeerState::Dead {
            self.dead_probe_us()
        } else {
            0
        };
        let Some(member) = self.members.get_mut(&addr) else {
            return (transition, None);
        };
        member.schedule_heartbeat(now_us, timing, dead_probe_us);
        (transition, Some(member.state != PeerState::Alive))
    }

    /// How often each dead member is probed: all of them together about once per
    /// heartbeat interval, so a healed partition is noticed within about one interval
    /// while probing many dead members costs no more than probing one (up to
    /// `max_probe_us` each).
    fn dead_probe_us(&self) -> u64 {
        let dead = self
            .members
            .values()
            .filter(|m| m.state == PeerState::Dead)
            .count() as u64;
        let Timing {
            heartbeat_us,
            max_probe_us,
            ..
        } = self.timing;
        (heartbeat_us * dead.max(1)).clamp(heartbeat_us, max_probe_us.max(heartbeat_us))
    }

    /// The member's next deadline: its failure detector's next transition and, once the
    /// node is started, its next heartbeat.
    pub fn next_deadline(&self, addr: &SocketAddr, started: bool) -> Option<u64> {
        let member = self.members.get(addr)?;
        let transition = member.next_transition_us(self.timing);
        let heartbeat = started.then_some(member.next_heartbeat_us);
        [transition, heartbeat].into_iter().flatten().min()
    }

    fn insert(&mut self, member: Member) -> bool {
        if self.members.len() >= MAX_PEERS {
            return false;
        }
        self.members.insert(member.addr, member);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn silence_leads_to_suspicion_then_failure() {
        let mut m = Members::new("me", TIMING);
        assert_eq!(
            m.admit(addr(1), 7, 0),
            Admission::NewSession { restarted: None }
        );
        assert_eq!(m.mark_heard(addr(1), 0), Heard::Alive);
        assert_eq!(m.on_timeout(addr(1), 10, false).0, Transition::None);
        assert_eq!(m.next_deadline(&addr(1), false), Some(100));
        assert_eq!(m.on_timeout(addr(1), 100, false).0, Transition::Suspected);
        assert_eq!(m.on_timeout(addr(1), 150, false).0, Transition::None);
        assert_eq!(m.on_timeout(addr(1), 200, false).0, Transition::Failed);
        assert_eq!(m.get(&addr(1)).unwrap().state, PeerState::Dead);
        assert_eq!(
            m.next_deadline(&addr(1), false),
            Some(TIMING.forget_dead_us),
            "only forgetting is left to decide"
        );
        assert!(!m.is_reachable(&addr(1)));
        assert_eq!(
            m.mark_heard(addr(1), 300),
            Heard::Recovered { node_id: None }
        );
        assert!(m.is_reachable(&addr(1)));
    }

    #[test]
    fn unknown_members_are_probed_with_backoff_up_to_a_cap() {
        let mut m = Members::new("me", TIMING);
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
        m.admit(addr(port), 7, now);
        m.mark_heard(addr(port), now);
        m.on_timeout(addr(port), now + TIMING.timeout_us, true);
        assert_eq!(
            m.on_timeout(addr(port), now + 2 * TIMING.timeout_us, true).0,
            Transition::Failed
        );
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
        let mut m = Members::new("me", TIMING);
        failed_member(&mut m, 1, 0);
        let gaps = probe_gaps(&mut m, 1, 2 * TIMING.timeout_us, 20);
        // The first probe follows the failure by one interval, as does every later one:
        // a healed partition is noticed within one heartbeat interval however long it was.
        assert!(
            gaps.iter().all(|&g| g == TIMING.heartbeat_us),
            "gaps between probes: {gaps:?}"
        );
    }

    #[test]
    fn many_dead_members_share_one_probe_per_interval() {
        let mut m = Members::new("me", TIMING);
        for port in 1..=5 {
            failed_member(&mut m, port, 0);
        }
        let start = 2 * TIMING.timeout_us;
        // After one round at the old pace, each is probed every 5 intervals: five dead
        // members cost what one does.
        let gaps = probe_gaps(&mut m, 3, start, 6);
        assert!(
            gaps[1..].iter().all(|&g| g == 5 * TIMING.heartbeat_us),
            "gaps between probes: {gaps:?}"
        );
    }

    #[test]
    fn heartbeats_wait_for_start() {
        let mut m = Members::new("me", TIMING);
        m.add_bootstrap(addr(1), 5);
        assert_eq!(m.next_deadline(&addr(1), false), None);
        assert_eq!(m.on_timeout(addr(1), 5, false), (Transition::None, None));
        m.start(9);
        assert_eq!(m.next_deadline(&addr(1), true), Some(9));
    }

    #[test]
    fn incarnations_only_move_forward() {
        let mut m = Members::new("me", TIMING);
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
        let mut m = Members::new("me", TIMING);
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
    fn gossip_adds_only_unknown_members_and_never_ourselves() {
        let mut m = Members::new("me", TIMING);
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
        let mut m = Members::new("me", TIMING);
        let flood: Vec<GossipPeer> = (0..1_100).map(|i| gossip(&format!("f{i}"), 10_000 + i)).collect();
        assert_eq!(m.merge_gossip(flood, 0).len(), GOSSIP_FANOUT);
        for round in 0..100u16 {
            let batch = (0..3).map(|i| gossip(&format!("g{round}-{i}"), 20_000 + round * 3 + i));
            m.merge_gossip(batch.collect(), 0);
        }
        assert_eq!(m.len(), MAX_UNVERIFIED);
    }

    #[test]
    fn unverified_members_are_remembered_as_long_as_tombstones_then_forgotten() {
        let mut m = Members::new("me", TIMING);
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
        let mut m = Members::new("me", TIMING);
        assert!(m.note_unverified(addr(7), "stranger", 0));
        assert!(!m.note_unverified(addr(7), "stranger", 0), "once");
        assert!(!m.note_unverified(addr(8), "me", 0), "never ourselves");
        assert_eq!(m.admit(addr(7), 5, 3), Admission::NewSession { restarted: None });
        m.mark_heard(addr(7), 3);
        assert!(m.is_reachable(&addr(7)));
        assert_eq!(m.next_deadline(&addr(7), true), Some(3 + TIMING.heartbeat_us));
    }

    #[test]
    fn dead_members_are_forgotten_after_the_tombstone_grace_unless_bootstrap() {
        let mut m = Members::new("me", TIMING);
        for port in [1, 2] {
            m.admit(addr(port), 1, 0);
            m.mark_heard(addr(port), 0);
        }
        m.add_bootstrap(addr(2), 0);
        for port in [1, 2] {
            m.on_timeout(addr(port), 100, false);
            assert_eq!(m.on_timeout(addr(port), 200, false).0, Transition::Failed);
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
    fn membership_is_gossiped_only_to_verified_members() {
        let mut m = Members::new("me", TIMING);
        m.admit(addr(1), 1, 0);
        m.identify(addr(1), "a");
        m.admit(addr(2), 1, 0);
        m.identify(addr(2), "b");
        m.add_bootstrap(addr(3), 0);
        let mut rng = fastrand::Rng::with_seed(1);
        assert!(m.gossip_for(addr(3), &mut rng).is_empty());
        assert!(m.gossip_for(addr(4), &mut rng).is_empty());
        assert_eq!(m.gossip_for(addr(1), &mut rng).len(), 1);
    }

    #[test]
    fn members_are_gossiped_at_their_advertised_address() {
        let mut m = Members::new("me", TIMING);
        m.admit(addr(1), 1, 0);
        m.identify(addr(1), "a");
        m.admit(addr(2), 1, 0);
        m.identify(addr(2), "b");
        let public: SocketAddr = "[2001:db8::5]:7000".parse().unwrap();
        m.set_advertised(&addr(2), Some(public));
        let mut rng = fastrand::Rng::with_seed(1);
        let g = m.gossip_for(addr(1), &mut rng);
        assert_eq!(g, vec![GossipPeer { node_id: "b".into(), addr: public }]);
        assert_eq!(m.get(&addr(2)).unwrap().addr, addr(2), "still reached where it is heard");
        m.set_advertised(&addr(2), None);
        assert_eq!(m.gossip_for(addr(1), &mut rng)[0].addr, addr(2), "withdrawn");
    }

    #[test]
    fn gossiped_addresses_are_canonical_and_unicast() {
        let mut m = Members::new("me", TIMING);
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
        let mut m = Members::new("me", TIMING);
        m.add_bootstrap(addr(1), 0);
        assert_eq!(m.unbootstrap(&addr(1)), Some(false), "never heard from");
        assert_eq!(m.unbootstrap(&addr(1)), None, "no longer bootstrap");
        m.add_bootstrap(addr(2), 0);
        m.admit(addr(2), 3, 0);
        assert_eq!(m.unbootstrap(&addr(2)), Some(true));
    }

    #[test]
    fn the_member_list_is_bounded() {
        let mut m = Members::new("me", TIMING);
        for port in 0..MAX_PEERS as u16 {
            m.add_bootstrap(addr(port + 1), 0);
        }
        assert_eq!(m.admit(addr(60_000), 1, 0), Admission::Full);
        assert!(m
            .merge_gossip(vec![gossip("x", 60_001)], 0)
            .is_empty());
        assert_eq!(m.len(), MAX_PEERS);
    }

    #[test]
    fn gossip_names_identified_members_other_than_the_receiver() {
        let mut m = Members::new("me", TIMING);
        for port in 1..=5 {
            m.admit(addr(port), 1, 0);
            if port != 5 {
                m.identify(addr(port), &format!("n{port}"));
            }
        }
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..20 {
            let g = m.gossip_for(addr(1), &mut rng);
            assert_eq!(g.len(), GOSSIP_FANOUT);
            assert!(g.iter().all(|p| p.addr != addr(1) && p.addr != addr(5)));
        }
    }
}
