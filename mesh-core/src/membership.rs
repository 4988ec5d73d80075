//! Peers: who they are, whether they are alive, when to talk to them next.
//!
//! A peer's life: `Unknown` (a bootstrap or gossiped address never heard from) becomes
//! `Alive` on any valid datagram; silence past `peer_timeout` makes it `Suspect`, past
//! twice that `Dead`. Any datagram brings it back to `Alive`. Alive and suspect peers get
//! a heartbeat every `heartbeat_interval`; unknown and dead ones are probed with a backoff
//! that doubles up to `max_probe_interval`, so a healed partition reconnects by itself.
//! A peer that restarts comes back with a new incarnation: its channel is reset and it
//! is synced again.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use crate::status::PeerState;
use crate::transport::{Channel, ChannelLimits};
use crate::version::OriginId;

/// First probe interval for peers never heard from.
pub const FIRST_PROBE_US: u64 = 500_000;

/// What a failure detector step decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Nothing changed.
    None,
    /// Alive to suspect.
    Suspected,
    /// Suspect to dead: report the failure.
    Failed,
}

/// One peer.
#[derive(Debug)]
pub struct Peer {
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
    /// Current probe interval for unknown and dead peers.
    pub probe_interval_us: u64,
    /// Reliable channel with its current incarnation.
    pub channel: Channel,
    /// Its latest version-vector fingerprint (from heartbeats).
    pub fingerprint: Option<u64>,
    /// Its latest digest (from sync requests): origin to contiguous sequence.
    pub digest: Option<HashMap<OriginId, u64>>,
    /// Ranges still to stream to it: `(origin, lo, hi)`.
    pub stream: VecDeque<(OriginId, u64, u64)>,
    /// A sync with it is wanted at this time.
    pub sync_due_us: Option<u64>,
    /// Last sync round started with it.
    pub last_sync_us: Option<u64>,
}

impl Peer {
    /// A peer known only by address.
    pub fn new(addr: SocketAddr, bootstrap: bool, now_us: u64, limits: &ChannelLimits) -> Peer {
        Peer {
            addr,
            node_id: None,
            incarnation: 0,
            state: PeerState::Unknown,
            bootstrap,
            last_heard_us: None,
            next_heartbeat_us: now_us,
            probe_interval_us: FIRST_PROBE_US,
            channel: Channel::new(limits.clone()),
            fingerprint: None,
            digest: None,
            stream: VecDeque::new(),
            sync_due_us: None,
            last_sync_us: None,
        }
    }

    /// Forgets everything tied to the peer's previous incarnation.
    pub fn reset_session(&mut self, incarnation: u64, limits: &ChannelLimits) {
        self.incarnation = incarnation;
        self.channel = Channel::new(limits.clone());
        self.fingerprint = None;
        self.digest = None;
        self.stream.clear();
    }

    /// Whether writes should be pushed to it.
    pub fn is_reachable(&self) -> bool {
        matches!(self.state, PeerState::Alive | PeerState::Suspect) && self.incarnation != 0
    }

    /// When the failure detector next needs to look at it.
    pub fn next_transition_us(&self, timeout_us: u64) -> Option<u64> {
        let heard = self.last_heard_us?;
        match self.state {
            PeerState::Alive => Some(heard + timeout_us),
            PeerState::Suspect => Some(heard + 2 * timeout_us),
            PeerState::Unknown | PeerState::Dead => None,
        }
    }

    /// Applies the failure detector at `now_us`.
    pub fn check_liveness(
        &mut self,
        now_us: u64,
        timeout_us: u64,
        heartbeat_us: u64,
    ) -> Transition {
        let Some(heard) = self.last_heard_us else {
            return Transition::None;
        };
        let silent = now_us.saturating_sub(heard);
        match self.state {
            PeerState::Alive if silent >= timeout_us => {
                self.state = PeerState::Suspect;
                Transition::Suspected
            }
            PeerState::Suspect if silent >= 2 * timeout_us => {
                self.state = PeerState::Dead;
                self.probe_interval_us = heartbeat_us;
                self.next_heartbeat_us = now_us + self.probe_interval_us;
                Transition::Failed
            }
            _ => Transition::None,
        }
    }

    /// Plans the next heartbeat (alive, suspect) or probe (unknown, dead, with backoff).
    pub fn schedule_heartbeat(&mut self, now_us: u64, heartbeat_us: u64, max_probe_us: u64) {
        match self.state {
            PeerState::Alive | PeerState::Suspect => {
                self.next_heartbeat_us = now_us + heartbeat_us;
            }
            PeerState::Unknown | PeerState::Dead => {
                self.next_heartbeat_us = now_us + self.probe_interval_us;
                self.probe_interval_us = (self.probe_interval_us * 2).min(max_probe_us);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ChannelLimits {
        ChannelLimits {
            initial_rto_us: 500_000,
            min_rto_us: 10_000,
            max_rto_us: 8_000_000,
            max_retries: 5,
            min_give_up_us: 0,
            max_fragment: 1000,
            max_in_flight: 100_000,
            max_queued: 1_000_000,
            max_reassembly: 1_000_000,
            reassembly_timeout_us: 1_000_000,
        }
    }

    #[test]
    fn silence_leads_to_suspicion_then_failure() {
        let mut p = Peer::new("127.0.0.1:1".parse().unwrap(), false, 0, &limits());
        p.state = PeerState::Alive;
        p.last_heard_us = Some(0);
        assert_eq!(p.check_liveness(10, 100, 10), Transition::None);
        assert_eq!(p.next_transition_us(100), Some(100));
        assert_eq!(p.check_liveness(100, 100, 10), Transition::Suspected);
        assert_eq!(p.check_liveness(150, 100, 10), Transition::None);
        assert_eq!(p.check_liveness(200, 100, 10), Transition::Failed);
        assert_eq!(p.state, PeerState::Dead);
        assert_eq!(p.next_transition_us(100), None);
    }

    #[test]
    fn dead_peers_are_probed_with_backoff_up_to_a_cap() {
        let mut p = Peer::new("127.0.0.1:1".parse().unwrap(), true, 0, &limits());
        let mut now = 0;
        let mut gaps = Vec::new();
        for _ in 0..8 {
            p.schedule_heartbeat(now, 5, 4_000_000);
            gaps.push(p.next_heartbeat_us - now);
            now = p.next_heartbeat_us;
        }
        assert_eq!(gaps[0], FIRST_PROBE_US);
        assert_eq!(gaps[1], 2 * FIRST_PROBE_US);
        assert_eq!(*gaps.last().unwrap(), 4_000_000);
    }
}
