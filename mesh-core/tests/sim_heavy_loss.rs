//! A path that loses 30% of datagrams each way: two nodes still exchange 40 KB of
//! incompressible values, within 10 s without jitter, 30 s with up to 20 ms of it, and
//! without stalling with up to 200 ms. Packed streams cross such a path as messages of
//! nine to sixteen fragments, which used to stall for minutes: acks naming the oldest
//! gaps, not the newest datagrams, gave round-trip samples of seconds, and the gaps a
//! burst left were resent one timeout at a time.
//!
//! At 10% loss, a mesh of five nodes just formed exchanges a thousand writes each within
//! a few dozen round trips in every seed: its channels know the round trip from the
//! address check before any data, a lost tail of a burst is resent once the first of it
//! is answered, and a datagram whose retransmission went unanswered goes twice.

use std::time::Duration;

mod support;

use mesh_core::fault::FaultConfig;
use mesh_core::sim::Sim;
use mesh_core::Value;

const KEYS: u64 = 100;
const VALUE_LEN: usize = 400;
const SEEDS: u64 = 40;

/// Seconds until two nodes hold each other's writes, on a path with `faults`; `None`
/// past `patience`.
fn exchange_seconds(seed: u64, faults: FaultConfig, patience: Duration) -> Option<u64> {
    let mut sim = Sim::new(2, support::fast_path_config(), FaultConfig::default(), seed);
    // Formed without loss: what is measured is the data's way, not the join's.
    sim.run_for(Duration::from_secs(5));
    sim.set_faults(faults);
    let mut rng = fastrand::Rng::with_seed(seed);
    for k in 0..KEYS {
        sim.write(0, &format!("a-{k:03}"), Some(Value::Int(k as i64)));
        sim.write(
            1,
            &format!("b-{k:03}"),
            Some(support::printable_value(&mut rng, VALUE_LEN)),
        );
    }
    for second in 1..=patience.as_secs() {
        sim.run_for(Duration::from_secs(1));
        let full = sim
            .nodes
            .iter()
            .filter_map(|n| n.engine.as_ref())
            .all(|e| e.status().data_keys == 2 * KEYS as usize);
        if full && sim.check_converged().is_ok() {
            return Some(second);
        }
    }
    None
}

/// Every seed converges within `patience` on a path losing 30% each way, with `delay`
/// plus up to `jitter` on every datagram.
fn check(delay: Duration, jitter: Duration, patience: Duration) {
    let faults = FaultConfig {
        loss_rate: 0.3,
        delay,
        jitter,
        ..FaultConfig::default()
    };
    let times: Vec<(u64, Option<u64>)> = (1..=SEEDS)
        .map(|seed| (seed, exchange_seconds(seed, faults.clone(), patience)))
        .collect();
    let stalled: Vec<u64> = times
        .iter()
        .filter(|(_, t)| t.is_none())
        .map(|(seed, _)| *seed)
        .collect();
    assert!(
        stalled.is_empty(),
        "seeds {stalled:?}: no exchange within {patience:?} ({delay:?} delay, {jitter:?} jitter)"
    );
    let mut seconds: Vec<u64> = times.iter().filter_map(|(_, t)| *t).collect();
    seconds.sort_unstable();
    println!(
        "{delay:?} + {jitter:?} jitter: median {} s, worst {} s",
        seconds[seconds.len() / 2],
        seconds[seconds.len() - 1]
    );
}

#[test]
fn a_lossy_path_without_jitter() {
    check(Duration::ZERO, Duration::ZERO, Duration::from_secs(10));
}

#[test]
fn a_lossy_path_with_jitter() {
    check(
        Duration::from_millis(5),
        Duration::from_millis(20),
        Duration::from_secs(30),
    );
}

#[test]
fn a_lossy_path_with_long_jitter() {
    // Round trips from 40 to 440 ms: each lost datagram costs a backed-off timeout.
    check(
        Duration::from_millis(20),
        Duration::from_millis(200),
        Duration::from_secs(180),
    );
}

/// Milliseconds until five nodes, each introduced to every other and writing 1,000
/// keys as soon as all see all alive, hold all 5,000 keys on a path that loses 10% of
/// datagrams with 0.1 to 0.2 ms of delay.
fn five_writers_ms(seed: u64) -> u64 {
    let mut c = mesh_core::Config::new("template", 0);
    c.sync_interval = Duration::from_secs(1);
    c.heartbeat_interval = Duration::from_secs(1);
    c.peer_timeout = Duration::from_secs(5);
    let path = FaultConfig {
        delay: Duration::from_micros(100),
        jitter: Duration::from_micros(100),
        ..FaultConfig::default()
    };
    let mut sim = Sim::new(5, c, path.clone(), seed);
    for i in 0..5 {
        for j in (0..5).filter(|&j| j != i) {
            sim.introduce(i, j);
        }
    }
    let all = |sim: &Sim, f: &dyn Fn(&mesh_core::Status) -> bool| {
        sim.nodes
            .iter()
            .filter_map(|n| n.engine.as_ref())
            .all(|e| f(&e.status()))
    };
    let mut formed_ms = 0;
    while !all(&sim, &|s| s.peers.alive_peers == 4) {
        sim.run_for(Duration::from_millis(1));
        formed_ms += 1;
        assert!(formed_ms < 5_000, "seed {seed}: not formed");
    }
    sim.set_faults(FaultConfig {
        loss_rate: 0.1,
        ..path
    });
    let mut rng = fastrand::Rng::with_seed(seed);
    for i in 0..5 {
        for k in 0..1_000 {
            let value = Value::String((0..100).map(|_| rng.alphanumeric()).collect());
            sim.write(i, &format!("n{i}/{k:04}"), Some(value));
        }
    }
    let mut ms = 0;
    while !all(&sim, &|s| s.data_keys == 5_000) {
        sim.run_for(Duration::from_millis(1));
        ms += 1;
        assert!(ms < 10_000, "seed {seed}: not converged in 10 s");
    }
    ms
}

#[test]
fn five_writers_at_ten_percent_loss_converge_without_a_long_tail() {
    let mut times: Vec<(u64, u64)> = (1..=40).map(|seed| (five_writers_ms(seed), seed)).collect();
    times.sort_unstable();
    println!(
        "10% loss, 5 x 1,000 writes: median {} ms, worst {} ms (seed {})",
        times[times.len() / 2].0,
        times[times.len() - 1].0,
        times[times.len() - 1].1
    );
    // Anti-entropy every second would repair anything by then: each seed converges by
    // the transport alone, well before it.
    let slow: Vec<&(u64, u64)> = times.iter().filter(|(ms, _)| *ms > 60).collect();
    assert!(slow.is_empty(), "(ms, seed) past 60 ms: {slow:?}");
}
