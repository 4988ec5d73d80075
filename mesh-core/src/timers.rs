//! The engine's timers, all in one table.
//!
//! Every deadline the engine keeps is an entry here, so [`TimerTable::next`] (what
//! `Engine::poll_timeout` returns) is a lookup rather than a walk over every peer, and a
//! timeout only visits what is due. Each peer has a single entry: the earliest of its
//! channel's retransmission and reassembly deadlines, its failure detector's next
//! transition, its next heartbeat and its pending sync; the engine recomputes it whenever
//! it touches that peer.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;

/// One thing the engine has to do at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// Push local writes to peers.
    Push,
    /// Flush the broadcast tree's queue, or graft writes announced and still missing.
    Broadcast,
    /// Start a periodic anti-entropy round with a random peer.
    AntiEntropy,
    /// Collect tombstones every peer has confirmed.
    CollectTombstones,
    /// Turn values whose TTL ran out into tombstones.
    Expire,
    /// Log what was dropped since the last report.
    ReportDrops,
    /// The probe round: the next probe, indirect probes, or a probe's verdict.
    Probe,
    /// Something about one peer: retransmission, liveness, heartbeat or sync.
    Peer(SocketAddr),
}

/// Deadlines (monotonic microseconds) by timer, with an index ordered by time.
#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    deadlines: HashMap<Timer, u64>,
    by_time: BTreeSet<(u64, Timer)>,
}

impl TimerTable {
    /// Arms `timer` for `at`, or disarms it with `None`.
    pub(crate) fn set(&mut self, timer: Timer, at: Option<u64>) {
        let previous = match at {
            Some(at) => self.deadlines.insert(timer, at),
            None => self.deadlines.remove(&timer),
        };
        if previous == at {
            return;
        }
        if let Some(previous) = previous {
            self.by_time.remove(&(previous, timer));
        }
        if let Some(at) = at {
            self.by_time.insert((at, timer));
        }
    }

    /// When `timer` is due, if armed.
    pub(crate) fn get(&self, timer: Timer) -> Option<u64> {
        self.deadlines.get(&timer).copied()
    }

    /// Whether `timer` is armed and due at `now_us`.
    pub(crate) fn is_due(&self, timer: Timer, now_us: u64) -> bool {
        self.get(timer).is_some_and(|at| at <= now_us)
    }

    /// The earliest deadline of all.
    pub(crate) fn next(&self) -> Option<u64> {
        self.by_time.first().map(|&(at, _)| at)
    }

    /// Peers with a deadline at or before `now_us`, in address order (the order the
    /// engine's seeded random choices depend on).
    pub(crate) fn due_peers(&self, now_us: u64) -> Vec<SocketAddr> {
        let mut due: Vec<SocketAddr> = self
            .by_time
            .iter()
            .take_while(|&&(at, _)| at <= now_us)
            .filter_map(|&(_, timer)| match timer {
                Timer::Peer(addr) => Some(addr),
                _ => None,
            })
            .collect();
        due.sort_unstable();
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn next_is_the_earliest_armed_deadline() {
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::AntiEntropy, Some(50));
        t.set(Timer::Peer(addr(1)), Some(30));
        t.set(Timer::Push, Some(40));
        assert_eq!(t.next(), Some(30));
        t.set(Timer::Peer(addr(1)), Some(60));
        assert_eq!(t.next(), Some(40));
        t.set(Timer::Push, None);
        assert_eq!(t.next(), Some(50));
    }

    #[test]
    fn rearming_replaces_the_old_deadline() {
        let mut t = TimerTable::default();
        t.set(Timer::Push, Some(10));
        t.set(Timer::Push, Some(10));
        t.set(Timer::Push, Some(20));
        assert_eq!(t.get(Timer::Push), Some(20));
        assert!(!t.is_due(Timer::Push, 19));
        assert!(t.is_due(Timer::Push, 20));
        t.set(Timer::Push, None);
        assert_eq!(t.next(), None);
        assert!(!t.is_due(Timer::Push, u64::MAX));
    }

    #[test]
    fn due_peers_come_in_address_order_and_only_when_due() {
        let mut t = TimerTable::default();
        t.set(Timer::Peer(addr(3)), Some(5));
        t.set(Timer::Peer(addr(1)), Some(9));
        t.set(Timer::Peer(addr(2)), Some(11));
        t.set(Timer::AntiEntropy, Some(1));
        let v6 = SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 7));
        t.set(Timer::Peer(v6), Some(10));
        assert_eq!(t.due_peers(4), vec![]);
        assert_eq!(t.due_peers(10), vec![addr(1), addr(3), v6]);
        assert_eq!(t.due_peers(u64::MAX), vec![addr(1), addr(2), addr(3), v6]);
    }
}
