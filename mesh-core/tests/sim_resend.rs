//! Retransmissions of writes: a message of writes lost on the way is sent again as its
//! writes are now, without the values superseded meanwhile; data given up does not
//! leave the peer waiting on it for good; and a datagram lost on every try is given up
//! even while the peer acknowledges other data (the `resend` and `transport` modules).

use std::time::Duration;

use mesh_core::fault::FaultConfig;
use mesh_core::sim::Sim;
use mesh_core::wire::Frame;
use mesh_core::{Config, Value};

mod support;

fn config() -> Config {
    let mut c = Config::new("template", 0);
    c.heartbeat_interval = Duration::from_millis(100);
    c.peer_timeout = Duration::from_secs(1);
    c.initial_rto = Duration::from_millis(100);
    // Anti-entropy stays out of the way: what arrives comes through the pushes.
    c.sync_interval = Duration::from_secs(600);
    c
}

/// Drops every datagram longer than 300 bytes: writes of the values below, not the
/// heartbeats, so the peers stay alive to each other (and keep acknowledging other
/// data: the write is retransmitted, never given up).
fn writes_lost() -> FaultConfig {
    FaultConfig {
        max_datagram: Some(300),
        ..FaultConfig::default()
    }
}

/// 500 random printable characters, which compression leaves about as long.
fn value(seed: u64) -> Value {
    support::printable_value(&mut fastrand::Rng::with_seed(seed), 500)
}

fn counters(sim: &Sim, i: usize) -> mesh_core::status::Counters {
    sim.nodes[i].engine.as_ref().unwrap().status().counters
}

#[test]
fn a_write_superseded_before_its_retransmission_is_not_resent() {
    for seed in 1..=5 {
        let mut sim = Sim::new(2, config(), FaultConfig::default(), seed);
        sim.run_for(Duration::from_secs(3));
        let received_before = counters(&sim, 1).entries_received;
        sim.set_faults(writes_lost());
        sim.write(0, "k", Some(value(1)));
        sim.run_for(Duration::from_millis(100));
        sim.write(0, "k", Some(value(2)));
        sim.run_for(Duration::from_millis(100));
        sim.set_faults(FaultConfig::default());
        sim.run_for(Duration::from_secs(2));
        let node1 = sim.nodes[1].engine.as_ref().unwrap();
        assert_eq!(node1.get("k"), Some(&value(2)), "seed {seed}");
        // The first value went out once, and was lost; its retransmission, due after the
        // second write, carried the range without it.
        assert_eq!(
            counters(&sim, 1).entries_received - received_before,
            1,
            "seed {seed}: the superseded value arrived too"
        );
        assert!(counters(&sim, 0).superseded_not_resent >= 1, "seed {seed}");
    }
}

#[test]
fn a_write_superseded_before_its_stream_is_retransmitted_is_not_resent() {
    const KEYS: u64 = 20;
    for seed in 1..=5 {
        let mut sim = Sim::new(2, config(), FaultConfig::default(), seed);
        sim.run_for(Duration::from_secs(3));
        // Node 1 comes back empty, to be sent node 0's state by anti-entropy.
        sim.crash(1);
        for k in 0..KEYS {
            sim.write(0, &format!("k{k}"), Some(value(k)));
        }
        sim.run_for(Duration::from_millis(200));
        sim.set_faults(writes_lost());
        sim.restart(1);
        // The stream goes out, and is lost.
        let sent_before = counters(&sim, 0).bytes_sent;
        let mut waited = 0;
        while counters(&sim, 0).bytes_sent - sent_before < KEYS * 400 {
            assert!(waited < 50, "seed {seed}: the state was not streamed");
            sim.run_for(Duration::from_millis(10));
            waited += 1;
        }
        assert_eq!(counters(&sim, 1).entries_received, 0, "seed {seed}");
        sim.write(0, "k3", Some(value(100)));
        sim.run_for(Duration::from_millis(100));
        sim.set_faults(FaultConfig::default());
        sim.run_for(Duration::from_secs(2));
        let node1 = sim.nodes[1].engine.as_ref().unwrap();
        assert_eq!(node1.get("k3"), Some(&value(100)), "seed {seed}");
        assert_eq!(node1.get("k0"), Some(&value(0)), "seed {seed}");
        // Every key once, the one written again as it is now: the stream's
        // retransmission left the first value of k3 out.
        assert_eq!(
            counters(&sim, 1).entries_received,
            KEYS,
            "seed {seed}: the superseded value arrived too"
        );
        assert!(counters(&sim, 0).superseded_not_resent >= 1, "seed {seed}");
    }
}

#[test]
fn data_given_up_leaves_no_gap_the_peer_waits_on() {
    let mut sim = Sim::new(2, config(), FaultConfig::default(), 7);
    sim.run_for(Duration::from_secs(3));
    // Cut off for longer than the sender retries a datagram, though not so long that
    // the nodes forget each other: the link, and its sequence numbers, go on after.
    sim.partition(vec![0, 1]);
    sim.write(0, "lost", Some(value(3)));
    let mut waited = 0;
    while counters(&sim, 0).given_up == 0 {
        assert!(waited < 100, "the write was never given up");
        sim.run_for(Duration::from_millis(100));
        waited += 1;
    }
    sim.heal();
    // More writes than the receive window holds, each in a datagram of its own: a
    // receiver still waiting on the datagram given up would refuse those past its window.
    let writes = mesh_core::transport::RECV_WINDOW + 200;
    for k in 0..writes {
        sim.write(0, &format!("k{k:05}"), Some(Value::Int(k as i64)));
        sim.run_for(Duration::from_millis(2));
    }
    sim.run_for(Duration::from_secs(2));
    let node1 = sim.nodes[1].engine.as_ref().unwrap();
    let held = (0..writes)
        .filter(|k| node1.get(&format!("k{k:05}")).is_some())
        .count();
    assert_eq!(held as u64, writes);
    assert!(counters(&sim, 0).datagrams_sent >= writes);
}

#[test]
fn a_datagram_lost_on_every_try_is_given_up_though_the_peer_acks_other_data() {
    let mut sim = Sim::new(2, config(), FaultConfig::default(), 5);
    sim.run_for(Duration::from_secs(3));
    sim.set_faults(writes_lost());
    sim.write(0, "too large for the path", Some(value(4)));
    // Retried at least `max_retries` times and unacknowledged for `peer_timeout` (1 s),
    // it is given up, and anti-entropy is asked to help, though each ack of the peer's
    // heartbeats and syncs found it lost again and resent it before its timeout.
    sim.run_for(Duration::from_secs(5));
    let c = counters(&sim, 0);
    assert!(
        c.given_up >= 1,
        "{} retransmissions, none given up",
        c.retransmits
    );
}

#[test]
fn a_second_copy_of_a_retransmission_goes_in_a_datagram_of_its_own() {
    let mut sim = Sim::new(2, config(), FaultConfig::default(), 3);
    sim.run_for(Duration::from_secs(3));
    sim.set_faults(writes_lost());
    sim.recorded = Some(Vec::new());
    // Small enough that two copies would fit one datagram.
    let write = support::printable_value(&mut fastrand::Rng::with_seed(9), 400);
    sim.write(0, "k", Some(write));
    sim.run_for(Duration::from_millis(300));
    let cluster = mesh_core::wire::cluster_id(&config().cluster);
    let mut sends: std::collections::BTreeMap<u64, usize> = Default::default();
    for datagram in sim.recorded.take().unwrap() {
        let Ok(packet) = mesh_core::wire::decode_packet(cluster, &datagram) else {
            continue;
        };
        let seqs: Vec<u64> = packet
            .frames
            .iter()
            .filter_map(|f| match f {
                Frame::Data(d) if d.bytes.len() > 300 => Some(d.seq),
                _ => None,
            })
            .collect();
        let mut distinct = seqs.clone();
        distinct.dedup();
        assert_eq!(distinct, seqs, "copies share a datagram, and its fate");
        for seq in seqs {
            *sends.entry(seq).or_default() += 1;
        }
    }
    // One datagram carries the write: sent, resent, then resent in two copies at each
    // further try.
    assert_eq!(sends.len(), 1, "{sends:?}");
    let tries = sends.values().next().copied().unwrap_or(0);
    assert!(tries >= 5, "{tries} transmissions in 300 ms of losses");
}
