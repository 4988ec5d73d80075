//! Real mesh-sync nodes on 127.0.0.1 for the scenarios.

use std::time::{Duration, Instant};

use mesh_core::{Config, Counters, Node};

/// A node configuration with the library's defaults, bound to loopback on a free port.
pub fn config(id: &str) -> Config {
    let mut c = Config::new(id, 0);
    c.host = "127.0.0.1".into();
    c
}

/// `n` started nodes; each knows every other as a bootstrap peer, so the figures measure
/// replication, not discovery.
pub struct Mesh {
    pub nodes: Vec<Node>,
}

impl Mesh {
    pub fn new(n: usize, prefix: &str, tweak: impl Fn(&mut Config)) -> Mesh {
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                let mut c = config(&format!("{prefix}{i}"));
                tweak(&mut c);
                Node::new(c).expect("node")
            })
            .collect();
        for (i, node) in nodes.iter().enumerate() {
            for (j, other) in nodes.iter().enumerate() {
                if i != j {
                    node.add_bootstrap_addr(other.local_addr());
                }
            }
        }
        for node in &nodes {
            node.start().expect("start");
        }
        Mesh { nodes }
    }

    /// Waits until every node sees every other alive; returns how long that took.
    pub fn wait_formed(&self, patience: Duration) -> Option<Duration> {
        let want = self.nodes.len() - 1;
        let start = Instant::now();
        wait_for(patience, || {
            self.nodes
                .iter()
                .all(|n| n.status().peers.alive_peers >= want)
        })
        .then(|| start.elapsed())
    }

    /// Sum of every node's counters.
    pub fn counters(&self) -> Counters {
        let mut total = Counters::default();
        for node in &self.nodes {
            add(&mut total, &node.status().counters);
        }
        total
    }

    /// Whether every node holds `keys` live keys.
    pub fn all_hold(&self, keys: usize) -> bool {
        self.nodes.iter().all(|n| n.len() >= keys)
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        for node in &self.nodes {
            node.stop();
        }
    }
}

pub fn add(total: &mut Counters, c: &Counters) {
    total.datagrams_sent += c.datagrams_sent;
    total.bytes_sent += c.bytes_sent;
    total.datagrams_received += c.datagrams_received;
    total.bytes_received += c.bytes_received;
    total.retransmits += c.retransmits;
    total.given_up += c.given_up;
    total.superseded_not_resent += c.superseded_not_resent;
    total.deletes_returned += c.deletes_returned;
    total.congestion_events += c.congestion_events;
    total.entries_received += c.entries_received;
    total.entries_applied += c.entries_applied;
    total.sync_rounds += c.sync_rounds;
    total.write_messages_sent += c.write_messages_sent;
    total.grafts_sent += c.grafts_sent;
    total.prunes_sent += c.prunes_sent;
    total.messages_sent += c.messages_sent;
    total.messages_received += c.messages_received;
    total.indirect_probes += c.indirect_probes;
    total.probe_retries += c.probe_retries;
    total.heal_probes += c.heal_probes;
    total.refutations += c.refutations;
    total.peers_failed += c.peers_failed;
    total.peers_left += c.peers_left;
}

/// `after - before`, field by field.
pub fn diff(after: &Counters, before: &Counters) -> Counters {
    Counters {
        datagrams_sent: after.datagrams_sent - before.datagrams_sent,
        bytes_sent: after.bytes_sent - before.bytes_sent,
        datagrams_received: after.datagrams_received - before.datagrams_received,
        bytes_received: after.bytes_received - before.bytes_received,
        retransmits: after.retransmits - before.retransmits,
        given_up: after.given_up - before.given_up,
        superseded_not_resent: after.superseded_not_resent - before.superseded_not_resent,
        deletes_returned: after.deletes_returned - before.deletes_returned,
        congestion_events: after
            .congestion_events
            .saturating_sub(before.congestion_events),
        entries_received: after.entries_received - before.entries_received,
        entries_applied: after.entries_applied - before.entries_applied,
        sync_rounds: after.sync_rounds - before.sync_rounds,
        write_messages_sent: after.write_messages_sent - before.write_messages_sent,
        grafts_sent: after.grafts_sent - before.grafts_sent,
        prunes_sent: after.prunes_sent - before.prunes_sent,
        messages_sent: after.messages_sent - before.messages_sent,
        messages_received: after.messages_received - before.messages_received,
        indirect_probes: after.indirect_probes - before.indirect_probes,
        probe_retries: after.probe_retries - before.probe_retries,
        heal_probes: after.heal_probes - before.heal_probes,
        refutations: after.refutations - before.refutations,
        peers_failed: after.peers_failed - before.peers_failed,
        peers_left: after.peers_left - before.peers_left,
        dropped: after.dropped,
    }
}

/// Polls `cond` every millisecond until it holds or `patience` runs out.
pub fn wait_for(patience: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A 100-byte value of random letters and digits: compresses like real text, not like a
/// run of one byte, so a peer that compresses gains only what it would in use.
pub fn value_100(rng: &mut fastrand::Rng) -> String {
    (0..100).map(|_| rng.alphanumeric()).collect()
}
