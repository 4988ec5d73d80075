//! SWIM wiring: the probe round, indirect probes, rumors in and out, leaving.
//!
//! The rules live in `members` and its submodules; this file turns their decisions into
//! datagrams, events and timers.

use std::net::SocketAddr;

use crate::event::Event;
use crate::members::awareness::Awareness;
use crate::members::probe::{Probe, Relays, Round, INDIRECT_PROBES};
use crate::members::rumors::{RumorQueue, MAX_PER_DATAGRAM};
use crate::members::{RumorChange, RumorOutcome};
use crate::status::PeerState;
use crate::time::Now;
use crate::timers::Timer;
use crate::wire::{Frame, GossipPeer, Rumor, RumorState};

use super::Engine;

/// Members told directly that this node leaves; the rest hear it from them.
const LEAVE_FANOUT: usize = 3;

/// Other dead members probed at once when one comes back (see `Engine::on_member_back`).
const HEAL_PROBES: usize = 8;

/// The failure detector's moving parts besides the member list.
#[derive(Debug, Default)]
pub(super) struct Swim {
    round: Round,
    probe: Option<Probe>,
    relays: Relays,
    awareness: Awareness,
    rumors: RumorQueue,
    /// This node announced that it leaves.
    leaving: bool,
    /// When dead members were last probed at once because one came back.
    heal_probed_us: Option<u64>,
}

impl Engine {
    /// The probe period, stretched by this node's health score, and the direct probe's
    /// timeout within it.
    fn probe_times(&self) -> (u64, u64) {
        let period = self.members.timing().heartbeat_us;
        let base_timeout = period / 2;
        let timeout = self.swim.awareness.scale(base_timeout);
        (period + (timeout - base_timeout), timeout)
    }

    /// Runs the probe round at `now`: indirect probes for an unanswered probe, the
    /// verdict at the end of a period, then the next probe.
    pub(super) fn on_probe_timer(&mut self, now: Now) {
        let t = now.mono_us;
        if let Some(probe) = self.swim.probe.as_mut() {
            if t < probe.end_us {
                let target = probe.target;
                if probe.retry_due(t) {
                    probe.retries += 1;
                    self.counters.probe_retries += 1;
                    self.send_heartbeat(now, target, true);
                }
                let indirect_due = self
                    .swim
                    .probe
                    .as_ref()
                    .is_some_and(|p| !p.acked && p.relays.is_empty() && t >= p.timeout_us);
                if indirect_due {
                    self.send_indirect_probes(target);
                }
                let at = self.swim.probe.as_ref().map(Probe::deadline_us);
                self.timers.set(Timer::Probe, at);
                return;
            }
            let Some(probe) = self.swim.probe.take() else {
                return;
            };
            if probe.acked {
                self.swim.awareness.better();
            } else if self.members.is_probe_target(&probe.target) {
                self.swim.awareness.worse();
                if let Some(rumor) = self.members.suspect(probe.target, t) {
                    self.swim.rumors.push(rumor);
                }
                self.touched.insert(probe.target);
            }
        }
        let members = &self.members;
        let target = self.swim.round.next_target(
            |a| members.is_probe_target(a),
            || members.probe_candidates(),
            &mut self.rng,
        );
        let (period, timeout) = self.probe_times();
        match target {
            Some(target) => {
                let probe = Probe {
                    target,
                    sent_us: t,
                    retry_us: t + timeout / 2,
                    retries: 0,
                    timeout_us: t + timeout,
                    end_us: t + period,
                    acked: false,
                    relays: Vec::new(),
                };
                self.timers.set(Timer::Probe, Some(probe.deadline_us()));
                self.swim.probe = Some(probe);
                self.send_heartbeat(now, target, true);
            }
            None => self.timers.set(Timer::Probe, Some(t + period)),
        }
    }

    /// Asks up to [`INDIRECT_PROBES`] other verified, alive members to probe `target`.
    fn send_indirect_probes(&mut self, target: SocketAddr) {
        // A member that never named itself cannot be asked about: it only waits for the
        // period's end (marked, or this timer would fire again at once).
        let node_id = self.members.get(&target).and_then(|m| m.node_id.clone());
        let mut helpers: Vec<SocketAddr> = self
            .members
            .reachable()
            .filter(|m| m.addr != target && m.state == PeerState::Alive)
            .map(|m| m.addr)
            .collect();
        self.rng.shuffle(&mut helpers);
        helpers.truncate(if node_id.is_some() {
            INDIRECT_PROBES
        } else {
            0
        });
        let node_id = node_id.unwrap_or_default();
        for &helper in &helpers {
            let inc = self.members.incarnation(&helper).unwrap_or(0);
            self.queue_packet(helper, inc, vec![Frame::PingReq(node_id.clone())]);
        }
        self.counters.indirect_probes += helpers.len() as u64;
        if let Some(probe) = self.swim.probe.as_mut() {
            // Marked even with no helper, so the probe waits for its period's end.
            probe.relays = if helpers.is_empty() {
                vec![target]
            } else {
                helpers
            };
        }
    }

    /// `from` (verified) asks this node to probe the member named `node_id`: relayed
    /// only for a verified member, once, within the relay budget.
    pub(super) fn on_ping_req(&mut self, now: Now, from: SocketAddr, node_id: &str) {
        if !self.started {
            return;
        }
        let target = match self.members.by_node_id(node_id) {
            Some(m) if m.addr != from => m.addr,
            _ => {
                self.counters.dropped.rate_limited += 1;
                return;
            }
        };
        let (period, _) = self.probe_times();
        if !self
            .swim
            .relays
            .start(target, from, node_id, now.mono_us, period)
        {
            self.counters.dropped.rate_limited += 1;
            return;
        }
        self.send_heartbeat(now, target, true);
    }

    /// `from` says the member named `node_id` answered the probe it relayed.
    pub(super) fn on_indirect_ack(&mut self, from: SocketAddr, node_id: &str) {
        let Some(probe) = self.swim.probe.as_mut() else {
            return;
        };
        let named = self
            .members
            .get(&probe.target)
            .and_then(|m| m.node_id.as_deref())
            == Some(node_id);
        if named && probe.relays.contains(&from) {
            probe.acked = true;
        }
    }

    /// A heartbeat came from `from`: it answers this node's probe and any probe relayed
    /// for others.
    pub(super) fn on_answer(&mut self, now: Now, from: SocketAddr) {
        if let Some(probe) = self.swim.probe.as_mut() {
            if probe.target == from {
                probe.acked = true;
            }
        }
        for (requester, node_id) in self.swim.relays.answered(from, now.mono_us) {
            let inc = self.members.incarnation(&requester).unwrap_or(0);
            self.queue_packet(requester, inc, vec![Frame::IndirectAck(node_id)]);
        }
    }

    /// Takes the rumors a verified member sent (the first few only).
    pub(super) fn on_rumors(&mut self, now: Now, rumors: Vec<Rumor>) {
        let mut unknown: Vec<GossipPeer> = Vec::new();
        for rumor in rumors.into_iter().take(MAX_PER_DATAGRAM) {
            match self
                .members
                .apply_rumor(rumor, self.incarnation, now.mono_us)
            {
                RumorOutcome::Ignored => {}
                RumorOutcome::Refute => self.refute(),
                RumorOutcome::Unknown(peer) => unknown.push(peer),
                RumorOutcome::Outdated(addr) => self.spread_about(&addr),
                RumorOutcome::Changed {
                    addr,
                    change,
                    pass_on,
                } => {
                    self.swim.rumors.push(pass_on);
                    self.touched.insert(addr);
                    self.on_rumor_change(now, addr, change);
                }
            }
        }
        for added in self.members.merge_gossip(unknown, now.mono_us) {
            self.add_link(added);
        }
    }

    fn on_rumor_change(&mut self, now: Now, addr: SocketAddr, change: RumorChange) {
        let node_id = self.members.get(&addr).and_then(|m| m.node_id.clone());
        match change {
            RumorChange::Recovered => {
                if let Some(link) = self.links.get_mut(&addr) {
                    link.sync.on_back(now.mono_us);
                }
                self.swim.round.insert(addr, &mut self.rng);
                self.tree_members_changed(now.mono_us);
                self.on_member_back(now, addr);
                if let Some(node_id) = node_id {
                    self.peer_back(node_id, addr, "recovered");
                }
            }
            RumorChange::Failed => self.peer_gone(addr, "failed"),
            RumorChange::Left => self.peer_gone(addr, "left"),
            RumorChange::Refreshed | RumorChange::Suspected | RumorChange::Confirmed => {}
        }
    }

    /// A member held dead is back: a partition healed, or it was only slow. It is
    /// probed at once, so that it hears this node's refutation (this node was likely
    /// held dead on its side too) without waiting for its turn in the round; and, at
    /// most once per period, up to [`HEAL_PROBES`] other dead members are probed at once
    /// rather than one per period in turn, since a healed partition brings them back
    /// together. Each probe carries the rumor of its target's death, which it refutes
    /// in its answer; so within a few round trips of the first member heard back, both
    /// sides hold each other alive and sync.
    pub(super) fn on_member_back(&mut self, now: Now, addr: SocketAddr) {
        self.send_heartbeat(now, addr, true);
        let period = self.members.timing().heartbeat_us;
        let due = self
            .swim
            .heal_probed_us
            .is_none_or(|at| now.mono_us.saturating_sub(at) >= period);
        if !due {
            return;
        }
        let dead = self.members.dead_to_probe_now(now.mono_us, HEAL_PROBES);
        if dead.is_empty() {
            return;
        }
        self.swim.heal_probed_us = Some(now.mono_us);
        for target in dead {
            self.counters.heal_probes += 1;
            self.send_heartbeat(now, target, true);
            self.touched.insert(target);
        }
    }

    /// Reports the member at `addr` failed or departed (`how`).
    pub(super) fn peer_gone(&mut self, addr: SocketAddr, how: &str) {
        // A failed origin can no longer raise its frontier: its last writes, still
        // travelling between other nodes, must not be refused as ahead of it.
        self.frontiers.forget(&addr);
        self.broadcast.forget(&addr);
        self.feed_lost(0, addr);
        let Some(node_id) = self.members.get(&addr).and_then(|m| m.node_id.clone()) else {
            return;
        };
        log::info!("{}: peer {node_id} at {addr} {how}", self.config.node_id);
        let event = if how == "left" {
            self.counters.peers_left += 1;
            Event::PeerLeft { node_id, addr }
        } else {
            self.counters.peers_failed += 1;
            Event::PeerFailed { node_id, addr }
        };
        self.emit(event);
    }

    /// Someone says this node is suspected, dead or gone: it says otherwise (or, leaving,
    /// that it left).
    fn refute(&mut self) {
        let state = if self.swim.leaving {
            RumorState::Left
        } else {
            self.swim.awareness.worse();
            self.counters.refutations += 1;
            RumorState::Alive
        };
        let own = self
            .members
            .own_rumor(self.incarnation, self.config.advertise_addr, state);
        self.swim.rumors.push(own);
    }

    /// Spreads what this node says of the member at `addr` now (a failure, a join).
    pub(super) fn spread_about(&mut self, addr: &SocketAddr) {
        if let Some(rumor) = self.members.rumor_about(addr) {
            self.swim.rumors.push(rumor);
        }
    }

    /// A new member joins the probe round.
    pub(super) fn join_round(&mut self, addr: SocketAddr) {
        self.swim.round.insert(addr, &mut self.rng);
    }

    /// The rumors frame for a datagram to `to`, if there is news for it: what this node
    /// thinks of `to` if that is suspect or worse (so it can refute at once), then the
    /// queue's next rumors. Only verified members hear about the membership.
    pub(super) fn rumors_for(&mut self, to: SocketAddr) -> Option<Frame> {
        let member = self.members.get(&to).filter(|m| m.incarnation != 0)?;
        let mut rumors = Vec::new();
        if matches!(
            member.state,
            PeerState::Suspect | PeerState::Dead | PeerState::Left
        ) {
            rumors.extend(self.members.rumor_about(&to));
        }
        rumors.extend(self.swim.rumors.take(self.members.len() + 1));
        (!rumors.is_empty()).then_some(Frame::Rumors(rumors))
    }

    /// Announces that this node leaves: a `left` rumor to a few alive members at once
    /// (they spread it), and on whatever it still sends. The driver calls it on stop.
    pub fn leave(&mut self) {
        if !self.started || self.swim.leaving {
            return;
        }
        self.swim.leaving = true;
        let own = self.members.own_rumor(
            self.incarnation,
            self.config.advertise_addr,
            RumorState::Left,
        );
        let mut targets: Vec<SocketAddr> = self.members.probe_candidates();
        self.rng.shuffle(&mut targets);
        targets.truncate(LEAVE_FANOUT);
        for addr in targets {
            let inc = self.members.incarnation(&addr).unwrap_or(0);
            self.queue_packet(addr, inc, vec![Frame::Rumors(vec![own.clone()])]);
        }
        self.swim.rumors.push(own);
    }

    /// Datagrams queued and not yet taken by the driver.
    pub fn has_pending_transmits(&self) -> bool {
        !self.transmits.is_empty()
    }

    /// This node's health score (Lifeguard's awareness): 0 is healthy; higher means it
    /// missed acks or had to refute suspicions, and stretches its probe timeouts.
    pub fn health_score(&self) -> u32 {
        self.swim.awareness.score()
    }

    /// Membership rumors waiting to be piggybacked.
    pub fn queued_rumors(&self) -> usize {
        self.swim.rumors.len()
    }
}
