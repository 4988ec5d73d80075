//! SWIM's probe round (Das et al. 2002): one member probed per protocol period, taken in
//! turn from a list shuffled once per round, so every member is probed within two rounds
//! and a failed member is found by someone within about one period; and the relaying of
//! indirect probes for others, bounded so that a ping-req cannot become an amplifier.

use std::net::SocketAddr;

/// Members asked to probe a target indirectly when it missed a direct probe (SWIM's k).
pub(crate) const INDIRECT_PROBES: usize = 3;
/// Times an unanswered direct probe is sent again within its period: halfway to the
/// timeout, and with the indirect probes (memberlist sends its TCP fallback then). A
/// suspicion must reach the whole mesh and so must its refutation; at 10% loss a probe
/// with only its indirect probes fails 0.75% of the time, which in 1,000 nodes is 7.5
/// suspicions a second, more rumors than piggybacking can carry. With two retries it
/// fails 0.03% of the time. A lossless mesh never sends them.
pub(crate) const DIRECT_RETRIES: u8 = 2;
/// Indirect probes this node relays at once, at most.
pub(crate) const MAX_PENDING_RELAYS: usize = 8;
/// Indirect probes this node relays per protocol period, at most.
pub(crate) const RELAYS_PER_PERIOD: u32 = 4;

/// The probe of one member in the current protocol period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Probe {
    /// The member probed.
    pub target: SocketAddr,
    /// When the probe was sent.
    pub sent_us: u64,
    /// When the probe is sent again if no ack came (see [`DIRECT_RETRIES`]).
    pub retry_us: u64,
    /// Direct probes sent again so far.
    pub retries: u8,
    /// When indirect probes go out if no ack came.
    pub timeout_us: u64,
    /// When the period ends (the probe failed if no ack came).
    pub end_us: u64,
    /// An ack came, directly or through a relay.
    pub acked: bool,
    /// The members asked to probe the target for this node.
    pub relays: Vec<SocketAddr>,
}

impl Probe {
    /// The next moment this probe needs looking at.
    pub fn deadline_us(&self) -> u64 {
        if self.acked || !self.relays.is_empty() {
            self.end_us
        } else if self.retries == 0 && DIRECT_RETRIES > 0 {
            self.retry_us
        } else {
            self.timeout_us
        }
    }

    /// Whether the direct probe is due again at `now_us`: once halfway to the timeout,
    /// once more with the indirect probes.
    pub fn retry_due(&self, now_us: u64) -> bool {
        let at = if self.retries == 0 {
            self.retry_us
        } else {
            self.timeout_us
        };
        !self.acked && self.retries < DIRECT_RETRIES && now_us >= at
    }
}

/// The round-robin order of probes.
#[derive(Debug, Default)]
pub(crate) struct Round {
    order: Vec<SocketAddr>,
    next: usize,
}

impl Round {
    /// The next member to probe: the next of this round still `eligible`, or the first
    /// of a new round over `members`, shuffled.
    pub fn next_target(
        &mut self,
        eligible: impl Fn(&SocketAddr) -> bool,
        members: impl FnOnce() -> Vec<SocketAddr>,
        rng: &mut fastrand::Rng,
    ) -> Option<SocketAddr> {
        while self.next < self.order.len() {
            let addr = self.order[self.next];
            self.next += 1;
            if eligible(&addr) {
                return Some(addr);
            }
        }
        self.order = members();
        rng.shuffle(&mut self.order);
        self.next = 0;
        let first = self.order.first().copied()?;
        self.next = 1;
        Some(first)
    }

    /// A new member joins the round at a random place still ahead, so it is probed in
    /// this round rather than only after it.
    pub fn insert(&mut self, addr: SocketAddr, rng: &mut fastrand::Rng) {
        if self.order.contains(&addr) {
            return;
        }
        let at = rng.usize(self.next..=self.order.len());
        self.order.insert(at, addr);
    }
}

/// An indirect probe relayed for another member.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Relay {
    target: SocketAddr,
    requester: SocketAddr,
    node_id: String,
    until_us: u64,
}

/// Indirect probes this node relays: at most one probe per request, a bounded number
/// pending, a bounded number per period.
#[derive(Debug, Default)]
pub(crate) struct Relays {
    pending: Vec<Relay>,
    /// Relays started in the current period, and when that period started.
    started: u32,
    period_start_us: u64,
}

impl Relays {
    /// Whether a relay to `target` for `requester` may start at `now_us` (a period
    /// lasting `period_us`); if so it is recorded until the end of the period.
    pub fn start(
        &mut self,
        target: SocketAddr,
        requester: SocketAddr,
        node_id: &str,
        now_us: u64,
        period_us: u64,
    ) -> bool {
        self.pending.retain(|r| r.until_us > now_us);
        if now_us >= self.period_start_us.saturating_add(period_us) {
            self.period_start_us = now_us;
            self.started = 0;
        }
        let duplicate = self
            .pending
            .iter()
            .any(|r| r.target == target && r.requester == requester);
        if duplicate
            || self.started >= RELAYS_PER_PERIOD
            || self.pending.len() >= MAX_PENDING_RELAYS
        {
            return false;
        }
        self.started += 1;
        self.pending.push(Relay {
            target,
            requester,
            node_id: node_id.to_owned(),
            until_us: now_us.saturating_add(period_us),
        });
        true
    }

    /// `from` answered: the requesters waiting for it, with the node id they asked about.
    pub fn answered(&mut self, from: SocketAddr, now_us: u64) -> Vec<(SocketAddr, String)> {
        let mut done = Vec::new();
        self.pending.retain(|r| {
            if r.until_us <= now_us {
                return false;
            }
            if r.target == from {
                done.push((r.requester, r.node_id.clone()));
                return false;
            }
            true
        });
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn every_member_is_probed_once_per_round() {
        let mut round = Round::default();
        let mut rng = fastrand::Rng::with_seed(3);
        let members: Vec<SocketAddr> = (1..=5).map(addr).collect();
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(round.next_target(|_| true, || members.clone(), &mut rng).unwrap());
        }
        seen.sort();
        assert_eq!(seen, members);
    }

    #[test]
    fn members_gone_are_skipped_and_newcomers_probed_this_round() {
        let mut round = Round::default();
        let mut rng = fastrand::Rng::with_seed(3);
        let members: Vec<SocketAddr> = (1..=4).map(addr).collect();
        let first = round.next_target(|_| true, || members.clone(), &mut rng).unwrap();
        round.insert(addr(9), &mut rng);
        let gone = if first == addr(2) { addr(3) } else { addr(2) };
        let mut rest = Vec::new();
        while let Some(a) = round.next_target(|a| *a != gone, Vec::new, &mut rng) {
            rest.push(a);
        }
        assert!(rest.contains(&addr(9)), "{rest:?}");
        assert!(!rest.contains(&gone), "{rest:?}");
        assert_eq!(rest.len(), 3, "{rest:?}");
    }

    #[test]
    fn relays_are_bounded_per_period_and_one_per_request() {
        let mut r = Relays::default();
        assert!(r.start(addr(1), addr(2), "t", 0, 100));
        assert!(!r.start(addr(1), addr(2), "t", 1, 100), "a repeated request");
        let started = (3..20).filter(|p| r.start(addr(1), addr(*p), "t", 2, 100)).count();
        assert_eq!(started as u32, RELAYS_PER_PERIOD - 1);
        assert_eq!(r.answered(addr(1), 5).len(), RELAYS_PER_PERIOD as usize);
        assert!(r.answered(addr(1), 6).is_empty(), "answered once");
        assert!(!r.start(addr(1), addr(30), "t", 50, 100), "the period's budget is spent");
        assert!(r.start(addr(1), addr(30), "t", 100, 100), "a new period");
        assert!(r.answered(addr(1), 200).is_empty(), "expired with its period");
    }
}
