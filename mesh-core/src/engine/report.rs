//! What the engine tells about itself: reads of the replica, status, peers, memory.

use std::collections::BTreeMap;

use crate::propagation::PropagationLag;
#[cfg(any(test, feature = "test-util"))]
use crate::replica::Replica;
use crate::status::{Counters, PeerCounts, PeerInfo, PeerState, Status};
use crate::time::Now;
#[cfg(any(test, feature = "test-util"))]
use crate::timers::Timer;
use crate::value::Value;

use super::Engine;

/// Fixed bytes of one member's session: its link and its entries in the link table and
/// the timer table (kept by deadline and by time).
const LINK_BYTES: usize = std::mem::size_of::<(std::net::SocketAddr, crate::link::Link)>()
    + 2 * std::mem::size_of::<(crate::timers::Timer, u64)>();

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
    /// Bytes of bookkeeping held for the members, whatever their traffic: each member's
    /// entry, node id and index places, and its session's fixed part (buffers that
    /// grow with traffic are counted above).
    pub member_bytes: usize,
}

impl Engine {
    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// This run's incarnation: orders this node's runs, and is what its packets carry.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The origin id this run's writes carry (derived from the node id and incarnation).
    pub fn origin(&self) -> u64 {
        self.replica.own_origin()
    }

    /// The replica (read-only).
    #[cfg(any(test, feature = "test-util"))]
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

    /// Propagation lag of the remote writes applied so far.
    pub fn propagation_lag(&self) -> PropagationLag {
        self.propagation
    }

    /// Protocol memory in use.
    pub fn memory(&self) -> MemoryReport {
        let mut report = MemoryReport {
            peers: self.members.len(),
            pending_outputs: self.transmits.len() + self.events.len(),
            member_bytes: self.members.bytes() + self.links.len() * LINK_BYTES,
            ..MemoryReport::default()
        };
        for link in self.links.values() {
            report.in_flight += link.channel.in_flight();
            report.queued_bytes += link.channel.queued_bytes();
            report.reassembly_bytes +=
                link.channel.reassembly_bytes() + link.messages.buffered_bytes();
            report.stream_ranges += link.sync.stream.len();
        }
        report
    }

    /// Members known, whatever their state.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Status snapshot (`port` and `running` are the runtime's to fill).
    pub fn status(&self) -> Status {
        let mut peers = PeerCounts {
            total_peers: self.members.len(),
            ..PeerCounts::default()
        };
        for member in self.members.iter() {
            match member.state {
                PeerState::Alive => peers.alive_peers += 1,
                PeerState::Suspect => peers.suspect_peers += 1,
                PeerState::Dead | PeerState::Left => peers.dead_peers += 1,
                PeerState::Unknown => {}
            }
            peers.bootstrap_peers += usize::from(member.bootstrap);
        }
        let mut pending_acks = 0;
        let mut counters = self.counters;
        for link in self.links.values() {
            pending_acks += link.channel.in_flight();
            let stats = link.channel.stats();
            counters.retransmits += stats.retransmits;
            counters.given_up += stats.given_up;
            counters.congestion_events += stats.congestion_events;
            counters.dropped.reassembly += stats.reassembly_drops;
        }
        Status {
            node_id: self.config.node_id.clone(),
            port: self.config.port,
            running: self.started,
            state_version: self.replica.state_version(),
            data_keys: self.replica.live_len(),
            tombstones: self.replica.tombstone_len(),
            collected_deletes: self.replica.collected_len(),
            peers,
            pending_acks,
            hlc: self.clock.last(),
            counters,
            storage: None,
        }
    }

    /// Every known peer.
    pub fn peers(&self, now: Now) -> Vec<PeerInfo> {
        let mut list: Vec<PeerInfo> = self
            .members
            .iter()
            .filter_map(|m| {
                let link = self.links.get(&m.addr)?;
                let channel = &link.channel;
                Some(PeerInfo {
                    node_id: m.node_id.clone(),
                    addr: m.addr,
                    advertised_addr: m.advertised,
                    state: m.state,
                    bootstrap: m.bootstrap,
                    rtt_ms: channel.rtt().srtt_us().map(|v| v as f64 / 1000.0),
                    last_seen_ms: m
                        .last_heard_us
                        .map(|t| now.mono_us.saturating_sub(t) / 1000),
                    pending_acks: channel.in_flight(),
                    datagram_size: link.path.datagram_size(),
                })
            })
            .collect();
        list.sort_by(|a, b| a.node_id.cmp(&b.node_id).then(a.addr.cmp(&b.addr)));
        list
    }

    /// Logs, one line per reason, what was dropped since the last report. Drops that
    /// normal operation produces (duplicates, stragglers of an earlier run, the first
    /// datagram of a peer not verified yet) go to the debug level; the rest is a warning.
    pub(super) fn report_drops(&mut self) {
        for (level, line) in self.drop_report() {
            log::log!(level, "{line}");
        }
    }

    /// The lines [`Engine::report_drops`] logs.
    fn drop_report(&mut self) -> Vec<(log::Level, String)> {
        let now = self.status().counters.dropped;
        let before = std::mem::replace(&mut self.reported_drops, now);
        let mut lines = Vec::new();
        for ((reason, count), (_, was)) in now.by_reason().into_iter().zip(before.by_reason()) {
            let new = count.saturating_sub(was);
            if new == 0 {
                continue;
            }
            let level = match reason {
                "duplicate" | "stale" | "unverified" => log::Level::Debug,
                _ => log::Level::Warn,
            };
            lines.push((
                level,
                format!(
                    "{}: dropped {new} datagrams or entries ({reason}) in the last {} s",
                    self.config.node_id,
                    super::DROP_REPORT_INTERVAL_US / 1_000_000
                ),
            ));
        }
        lines
    }

    /// The largest datagram the path to `addr` is known to carry (see `path`), if this
    /// node holds a link with it.
    #[cfg(any(test, feature = "test-util"))]
    pub fn path_datagram_size(&self, addr: &std::net::SocketAddr) -> Option<usize> {
        self.links.get(addr).map(|l| l.path.datagram_size())
    }

    /// The peer asked to stream everything this node lacks, if any (see `feed`).
    #[cfg(any(test, feature = "test-util"))]
    pub fn sync_feed(&self) -> Option<std::net::SocketAddr> {
        self.feed.peer()
    }

    /// Checks what the engine's bookkeeping promises: one link per member, a feed only
    /// among them, and every peer's timer equal to its deadline recomputed from scratch
    /// (a code path that forgets to refresh a peer's timer shows up here). The
    /// simulator calls it.
    #[cfg(any(test, feature = "test-util"))]
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.members.len() != self.links.len() {
            return Err(format!(
                "{} members but {} links",
                self.members.len(),
                self.links.len()
            ));
        }
        if let Some(feed) = self.feed.peer().filter(|f| !self.links.contains_key(f)) {
            return Err(format!("the feed {feed} has no link"));
        }
        self.members.check_indexes()?;
        for addr in self.links.keys() {
            let armed = self.timers.get(Timer::Peer(*addr));
            let due = self.peer_deadline(addr);
            if armed != due {
                return Err(format!(
                    "timer of {addr} is {armed:?}, its deadline {due:?}"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Engine {
    /// One line per member, for a failed simulation's report: what the failure detector
    /// holds of it, then its link's sessions, buffers and sync state.
    pub fn describe_links(&self) -> String {
        let mut out = format!("{} members", self.members.len());
        for m in self.members.iter() {
            out += &format!(
                "\n    {} {:?} inc {} heard {:?} bootstrap {} unverified {} gossiped {}; {}",
                m.addr,
                m.state,
                m.incarnation,
                m.last_heard_us,
                m.bootstrap,
                m.heard_unverified,
                m.gossiped,
                self.links
                    .get(&m.addr)
                    .map_or_else(|| "no link".to_owned(), |l| l.summary())
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::engine::Engine;
    use crate::time::Now;

    #[test]
    fn a_flood_of_bad_datagrams_is_one_line_per_reason() {
        let now = Now {
            mono_us: 0,
            wall_ms: 1_767_225_600_000,
        };
        let mut engine = Engine::new(
            Config::new("n", 0),
            1,
            1,
            crate::seal::NoncePrefix([1; 16]),
            now,
        );
        let from = "127.0.0.1:9".parse().unwrap();
        for _ in 0..1_000 {
            engine.handle_datagram(now, from, b"not a datagram at all");
            engine.handle_datagram(now, from, b"MS");
        }
        let lines = engine.drop_report();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0]
            .1
            .contains("dropped 1000 datagrams or entries (truncated)"));
        assert!(lines[1].1.contains("(bad_magic)"));
        assert!(lines.iter().all(|(level, _)| *level == log::Level::Warn));
        assert!(
            engine.drop_report().is_empty(),
            "nothing new, nothing logged"
        );
    }
}
