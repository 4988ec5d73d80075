//! Datagrams per write: acknowledgements wait a moment for more data to ride with (at
//! most [`MAX_ACK_DELAY_US`], or until two datagrams arrived), and small messages to one
//! peer share a datagram, so a burst of writes costs far fewer datagrams than one ack per
//! data datagram and one datagram per message. A write still arrives within a round
//! trip: only acknowledgements wait, never data.

use std::time::Duration;

use mesh_core::fault::FaultConfig;
use mesh_core::sim::Sim;
use mesh_core::transport::MAX_ACK_DELAY_US;
use mesh_core::{Config, Value};

fn config() -> Config {
    let mut c = Config::new("template", 0);
    c.heartbeat_interval = Duration::from_secs(1);
    c.peer_timeout = Config::peer_timeout_for(c.heartbeat_interval);
    c.sync_interval = Duration::from_secs(1);
    c
}

/// A formed mesh of `n` nodes, round trips measured on every channel.
fn formed(n: usize, seed: u64) -> Sim {
    let mut sim = Sim::new(n, config(), FaultConfig::default(), seed);
    sim.run_for(Duration::from_secs(10));
    sim
}

/// Datagrams received by every node so far.
fn datagrams(sim: &Sim) -> u64 {
    sim.nodes
        .iter()
        .filter_map(|n| n.engine.as_ref())
        .map(|e| e.status().counters.datagrams_received)
        .sum()
}

fn value(rng: &mut fastrand::Rng) -> Value {
    Value::String((0..100).map(|_| rng.alphanumeric()).collect())
}

/// Datagrams received per write per receiving peer when every node of a mesh of `n`
/// writes `keys` keys at once, counted until converged and every acknowledgement is in.
/// `latency_us` is the one-way latency; the simulator adds up to a quarter of it as
/// jitter, so datagrams sent together arrive reordered unless it is below 4 µs.
fn burst_datagrams_per_write(n: usize, keys: usize, latency_us: u64, seed: u64) -> f64 {
    let mut sim = Sim::new(n, config(), FaultConfig::default(), seed);
    sim.latency_us = latency_us;
    sim.run_for(Duration::from_secs(10));
    let before = datagrams(&sim);
    let mut rng = fastrand::Rng::with_seed(seed);
    for i in 0..n {
        for k in 0..keys {
            let v = value(&mut rng);
            sim.write(i, &format!("n{i:02}/{k:05}"), Some(v));
        }
    }
    sim.run_until_converged(Duration::from_secs(30), Duration::from_millis(5))
        .unwrap_or_else(|d| panic!("seed {seed}: no convergence: {d:?}"));
    // The last acknowledgements, held back at most a millisecond.
    sim.run_for(Duration::from_millis(5));
    let received = datagrams(&sim) - before;
    received as f64 / (n * keys * (n - 1)) as f64
}

#[test]
fn a_write_burst_takes_fewer_datagrams() {
    for seed in 1..=3 {
        for keys in [60, 100] {
            // Jitter reorders the burst's datagrams, so most acks go at once (a gap
            // opened or filled); the saving is in fuller datagrams: a delta of short
            // writes held five, now six. One datagram of data per five writes and one ack
            // each made 0.40 datagrams per write per peer.
            let per_write = burst_datagrams_per_write(5, keys, 500, seed);
            eprintln!(
                "seed {seed}: 5 nodes x {keys} keys: {per_write:.4} datagrams per write per peer"
            );
            assert!(
                per_write < 0.36,
                "seed {seed}, {keys} keys: {per_write:.4} datagrams per write per peer"
            );
        }
    }
}

#[test]
fn a_burst_arriving_in_order_is_acknowledged_every_second_datagram() {
    for seed in 1..=3 {
        // No reordering: one ack per two datagrams of data, or none where it rides with
        // data going back. One ack per datagram made 0.40 here too.
        let per_write = burst_datagrams_per_write(5, 60, 3, seed);
        eprintln!("seed {seed}: in order: {per_write:.4} datagrams per write per peer");
        assert!(
            per_write < 0.27,
            "seed {seed}: {per_write:.4} datagrams per write per peer"
        );
    }
}

#[test]
fn small_messages_to_one_peer_share_a_datagram() {
    for seed in 1..=3 {
        let mut sim = formed(2, seed);
        let before = datagrams(&sim);
        // Ten small messages queued before the engine is next polled, as a runtime busy
        // elsewhere queues them.
        let now = sim.now_for(0);
        let engine = sim.nodes[0].engine.as_mut().expect("running");
        let sent: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 20]).collect();
        let (last, first) = sent.split_last().expect("ten");
        for m in first {
            engine.send_message(now, "n1", m).expect("queued");
        }
        // The last one through the simulator, which then polls the engine.
        sim.send(0, "n1", last).expect("queued");
        sim.run_for(Duration::from_millis(5));
        let got: Vec<Vec<u8>> = sim.inbox[1].iter().map(|(_, m)| m.clone()).collect();
        assert_eq!(got, sent, "seed {seed}: every message, in order");
        let used = datagrams(&sim) - before;
        eprintln!("seed {seed}: 10 small messages: {used} datagrams");
        // One datagram of data, one ack.
        assert_eq!(
            used, 2,
            "seed {seed}: {used} datagrams for ten small messages"
        );
    }
}

#[test]
fn a_lone_write_is_acknowledged_within_the_ack_delay() {
    for seed in 1..=3 {
        let mut sim = formed(2, seed);
        let mut rng = fastrand::Rng::with_seed(seed);
        let start = sim.now_us;
        let v = value(&mut rng);
        sim.write(0, "lone", Some(v));
        // One datagram to the peer, nothing to ride with: its ack waits the delay, no more.
        let limit = start + 2 * (sim.latency_us + sim.latency_us / 4) + MAX_ACK_DELAY_US + 1_000;
        let flushed = loop {
            sim.run_for(Duration::from_micros(50));
            let e = sim.nodes[0].engine.as_ref().expect("running");
            if e.is_flushed() {
                break sim.now_us;
            }
            assert!(
                sim.now_us <= limit,
                "seed {seed}: not acknowledged by {limit} µs"
            );
        };
        let seen = sim.nodes[1].engine.as_ref().expect("running").get("lone");
        assert!(seen.is_some(), "seed {seed}: the write did not arrive");
        eprintln!("seed {seed}: acknowledged after {} µs", flushed - start);
    }
}

/// A channel that has carried no data yet still knows the round trip, from the
/// exchange that proved the peer's address: the first datagram of data lost on it is
/// resent after a few round trips, not after `initial_rto`.
#[test]
fn the_handshake_measures_the_round_trip_before_any_data() {
    let mut c = config();
    // No anti-entropy round carries data while the mesh forms.
    c.sync_interval = Duration::from_secs(600);
    let path = FaultConfig {
        delay: Duration::from_millis(5),
        ..FaultConfig::default()
    };
    for seed in 1..=5 {
        let mut sim = Sim::new(3, c.clone(), path.clone(), seed);
        // Every node introduced to every other, as an application that lists them all
        // does, and looked at as soon as all see all alive.
        for i in 0..3 {
            for j in 0..3 {
                if i != j {
                    sim.introduce(i, j);
                }
            }
        }
        let formed = |sim: &Sim| {
            sim.nodes
                .iter()
                .filter_map(|n| n.engine.as_ref())
                .all(|e| e.status().peers.alive_peers == 2)
        };
        for _ in 0..2_000 {
            if formed(&sim) {
                break;
            }
            sim.run_for(Duration::from_millis(1));
        }
        assert!(formed(&sim), "seed {seed}: not formed in 2 s");
        for (i, node) in sim.nodes.iter().enumerate() {
            let node = node.engine.as_ref().unwrap();
            for peer in node.peers(sim.now_for(i)) {
                let rtt = peer.rtt_ms.unwrap_or_else(|| {
                    panic!("seed {seed}: no round trip to {} measured", peer.addr)
                });
                assert!((10.0..15.0).contains(&rtt), "seed {seed}: {rtt} ms");
            }
        }
    }
}
