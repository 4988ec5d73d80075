//! Bytes per write: a burst of writes reaches each peer about once, in about as many
//! bytes as it takes to encode, even when the receivers answer late. A paused receiver
//! must not make its senders resend their whole window, datagrams reordered in flight
//! must not be taken for lost, and anti-entropy must not stream again what pushes carry,
//! nor race a slow broadcast tree.

use std::time::Duration;

use mesh_core::fault::FaultConfig;
use mesh_core::sim::Sim;
use mesh_core::{Config, Counters, Value};

const NODES: usize = 20;
const KEYS: usize = 100;
/// Key (`n19/00042`) and value (100 characters) of each write.
const WRITE_BYTES: f64 = 109.0;
/// A push fanout covering the mesh: every writer pushes to every peer itself.
const DIRECT: usize = NODES;
/// The default push fanout: writes travel the broadcast tree.
const TREE: usize = 8;

fn config() -> Config {
    let mut c = Config::new("template", 0);
    c.heartbeat_interval = Duration::from_secs(1);
    c.peer_timeout = Config::peer_timeout_for(c.heartbeat_interval);
    c.sync_interval = Duration::from_secs(1);
    c
}

fn totals(sim: &Sim) -> Counters {
    let mut t = Counters::default();
    for e in sim.nodes.iter().filter_map(|n| n.engine.as_ref()) {
        let c = e.status().counters;
        t.entries_received += c.entries_received;
        t.datagrams_received += c.datagrams_received;
        t.bytes_received += c.bytes_received;
        t.retransmits += c.retransmits;
    }
    t
}

/// What a burst cost: every node writes [`KEYS`] keys at once, every node answering
/// `slow_us` later than the round trip it measured before.
struct Burst {
    /// Entries received per entry needed (each write by every node but its writer).
    received_per_needed: f64,
    /// Bytes received per entry needed.
    bytes_per_needed: f64,
    /// Retransmissions per entry needed: per datagram would count packing that fills
    /// fewer datagrams as more retransmission.
    retransmits_per_needed: f64,
}

/// `fanout`: the push fanout; below [`NODES`] - 1, writes travel the broadcast tree.
fn burst(slow_us: u64, seed: u64, fanout: usize) -> Burst {
    let mut c = config();
    c.push_fanout = fanout;
    let mut sim = Sim::new(NODES, c, FaultConfig::default(), seed);
    // Formed, with round trips measured on every channel.
    sim.run_for(Duration::from_secs(10));
    // Past the push fanout, writes travel the broadcast tree, whose first writes flood
    // the overlay until its redundant edges are pruned.
    for i in 0..NODES {
        sim.write(i, &format!("warm/{i}"), Some(Value::Int(0)));
        sim.run_for(Duration::from_millis(200));
    }
    write_burst(&mut sim, slow_us, seed, Duration::from_millis(20))
}

/// Every node of `sim` writes [`KEYS`] keys at once, answering `slow_us` late, and the
/// mesh runs until converged (checked every `check_every`): what that cost.
fn write_burst(sim: &mut Sim, slow_us: u64, seed: u64, check_every: Duration) -> Burst {
    let nodes = sim.nodes.len();
    for node in &mut sim.nodes {
        node.slow_us = slow_us;
    }
    let before = totals(sim);
    let mut rng = fastrand::Rng::with_seed(seed);
    for i in 0..nodes {
        for k in 0..KEYS {
            let value: String = (0..100).map(|_| rng.alphanumeric()).collect();
            sim.write(i, &format!("n{i:02}/{k:05}"), Some(Value::String(value)));
        }
    }
    sim.run_until_converged(Duration::from_secs(60), check_every)
        .unwrap_or_else(|d| panic!("seed {seed}: no convergence: {d:?}"));
    let after = totals(sim);
    let needed = (nodes * KEYS * (nodes - 1)) as f64;
    Burst {
        received_per_needed: (after.entries_received - before.entries_received) as f64 / needed,
        bytes_per_needed: (after.bytes_received - before.bytes_received) as f64 / needed,
        retransmits_per_needed: (after.retransmits - before.retransmits) as f64 / needed,
    }
}

/// Checks a burst's cost: at most `max_retransmits` retransmissions per write per
/// receiving peer, each
/// write received at most `max_copies` times, at about its encoded size per receiving
/// peer.
fn assert_burst_cost(b: &Burst, seed: u64, max_retransmits: f64, max_copies: f64) {
    assert!(
        b.retransmits_per_needed < max_retransmits,
        "seed {seed}: {:.4} retransmissions per write per receiving peer",
        b.retransmits_per_needed
    );
    assert!(
        b.received_per_needed < max_copies,
        "seed {seed}: {:.3} entries received per entry needed",
        b.received_per_needed
    );
    assert!(
        b.bytes_per_needed < 1.5 * WRITE_BYTES,
        "seed {seed}: {:.1} bytes per write per receiving peer",
        b.bytes_per_needed
    );
}

#[test]
fn a_burst_costs_about_its_encoded_size_per_receiving_peer() {
    for seed in 1..=3 {
        // Datagrams of a burst sent together and reordered in flight were taken for lost:
        // about one datagram in seven was sent twice (0.02 retransmissions a write).
        let direct = burst(0, seed, DIRECT);
        assert_burst_cost(&direct, seed, 0.001, 1.05);
        assert_burst_cost(&burst(0, seed, TREE), seed, 0.001, 1.05);
        // A burst is pushed in chunks compressed whole: fewer bytes than the writes
        // (117 bytes a write when each datagram was compressed alone, 95 packed, 89 with
        // sequence numbers and timestamps sent as differences).
        assert!(
            direct.bytes_per_needed < WRITE_BYTES,
            "seed {seed}: {:.1} bytes per write per receiving peer",
            direct.bytes_per_needed
        );
    }
}

#[test]
fn receivers_answering_late_are_not_sent_the_burst_twice() {
    for seed in 1..=3 {
        // Every receiver 5 ms behind the 1 ms round trip its senders measured: each of
        // their datagrams times out at least once: a timeout resends only the oldest
        // datagram in flight, so about one write in a hundred is sent again.
        assert_burst_cost(&burst(5_000, seed, DIRECT), seed, 0.02, 1.05);
        // Through the tree, an announcement outruns a burst held up by the slow hops
        // below it now and then, and the graft that follows brings part of the burst
        // a second time: 1.02 to 1.16 copies over seeds 1 to 12 since acks wait up to
        // 1 ms for company (1.02 to 1.06 over seeds 1 to 3 before).
        // Each hop of the tree answers late, so twice to three times as many there.
        assert_burst_cost(&burst(5_000, seed, TREE), seed, 0.04, 1.20);
    }
}

#[test]
fn syncs_started_while_pushes_drain_do_not_stream_them_again() {
    for seed in 1..=2 {
        // A small send window and 50 ms more round trip: each push of 1,000 writes takes
        // about two seconds to drain, and every node's sync rounds (1 s) fall within it.
        let mut c = config();
        c.max_in_flight = 8 * 1024;
        let mut sim = Sim::new(8, c, FaultConfig::default(), seed);
        sim.run_for(Duration::from_secs(10));
        for node in &mut sim.nodes {
            node.slow_us = 25_000;
        }
        let before = totals(&sim);
        let mut rng = fastrand::Rng::with_seed(seed);
        for i in 0..8 {
            for k in 0..1_000 {
                let value: String = (0..100).map(|_| rng.alphanumeric()).collect();
                sim.write(i, &format!("n{i:02}/{k:05}"), Some(Value::String(value)));
            }
        }
        sim.run_until_converged(Duration::from_secs(120), Duration::from_millis(50))
            .unwrap_or_else(|d| panic!("seed {seed}: no convergence: {d:?}"));
        let after = totals(&sim);
        let needed = (8 * 1_000 * 7) as f64;
        let received = (after.entries_received - before.entries_received) as f64 / needed;
        // Streams beside the pushes brought 1.027 copies of each write here; under load,
        // with pushes queued for seconds, 1.4 to 1.9 (BENCHMARKS.md).
        assert!(
            received < 1.015,
            "seed {seed}: {received:.3} entries received per entry needed"
        );
    }
}

/// Steps until every node of `sim` sees every other alive; returns how long it took.
fn form(sim: &mut Sim, seed: u64) -> Duration {
    let n = sim.nodes.len();
    let step = Duration::from_millis(5);
    let mut waited = Duration::ZERO;
    while !sim.nodes.iter().all(|node| {
        node.engine
            .as_ref()
            .is_some_and(|e| e.status().peers.alive_peers >= n - 1)
    }) {
        sim.run_for(step);
        waited += step;
        assert!(waited < Duration::from_secs(30), "seed {seed}: not formed");
    }
    waited
}

/// A mesh of `nodes` with the default push fanout, formed, then a burst from every
/// node at once (see [`write_burst`]): how long forming took, and what the burst cost.
fn burst_once_formed(
    nodes: usize,
    seed: u64,
    slow_us: u64,
    check_every: Duration,
) -> (Duration, Burst) {
    let mut sim = Sim::new(nodes, config(), FaultConfig::default(), seed);
    let formed = form(&mut sim, seed);
    (formed, write_burst(&mut sim, slow_us, seed, check_every))
}

#[test]
fn a_writer_does_not_stream_the_burst_its_push_is_about_to_carry() {
    // Every node meets every other and syncs with it as the mesh forms. A request that
    // reached a writer between its burst and the push of it (held up to `push_delay`)
    // was streamed the whole burst, which the push then sent again: 1.048 copies per
    // write on 3 of these 20 seeds before, receivers 2 ms late.
    for seed in 1..=20 {
        let (formed, burst) = burst_once_formed(5, seed, 2_000, Duration::from_millis(5));
        let received = burst.received_per_needed;
        assert!(
            received < 1.01,
            "seed {seed}, formed in {formed:?}: {received:.3} entries received per entry needed"
        );
    }
}

#[test]
fn a_burst_as_soon_as_the_mesh_forms_reaches_each_node_about_once() {
    // Past the push fanout, writes travel the broadcast tree. Drawn with every edge of
    // its overlay on it, the tree learnt which edges are redundant only from duplicate
    // writes: a burst from every node of 50 as soon as they all knew each other went out
    // before any prune came back and flooded the overlay (1.59 to 1.67 copies of each
    // write on these seeds). Every node now draws the same spanning tree of the overlay.
    for seed in 1..=3 {
        let (formed, b) = burst_once_formed(50, seed, 0, Duration::from_millis(20));
        assert!(
            b.received_per_needed < 1.10,
            "seed {seed}, formed in {formed:?}: {:.3} entries received per entry needed",
            b.received_per_needed
        );
    }
}

#[test]
fn a_burst_down_a_slow_tree_is_neither_grafted_nor_synced_twice() {
    // Links of 50 to 75 ms make the tree's copies come well after the announcements of
    // them, as a loaded machine does on real sockets. Grafts fired first and put edges
    // off the tree on it for good, anti-entropy streamed what the tree was bringing,
    // and a write a sync brought first was never sent on down the tree: 2.49 copies of
    // each write on seed 1, with 3,048 grafts. Since the tree's copies are packed in
    // chunks of many writes, a chunk completes later than its first datagram would have,
    // and more copies arrive: 1.13 and 1.03 on seeds 1 and 2 (1.03 and 1.06 before
    // packing), in 102 and 91 bytes a write per receiving peer (161 before packing). The
    // copies range from 1.03 to 1.28 over seeds 1 to 8.
    for seed in 1..=2 {
        let faults = FaultConfig {
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(25),
            ..FaultConfig::default()
        };
        let mut sim = Sim::new(50, config(), faults, seed);
        let formed = form(&mut sim, seed);
        let b = write_burst(&mut sim, 0, seed, Duration::from_millis(20));
        assert!(
            b.received_per_needed < 1.15,
            "seed {seed}, formed in {formed:?}: {:.3} entries received per entry needed",
            b.received_per_needed
        );
        assert!(
            b.bytes_per_needed < 1.2 * WRITE_BYTES,
            "seed {seed}: {:.1} bytes per write per receiving peer",
            b.bytes_per_needed
        );
    }
}
