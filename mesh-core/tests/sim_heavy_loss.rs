//! A path that loses 30% of datagrams each way: two nodes still exchange 40 KB of
//! incompressible values, within 10 s without jitter, 30 s with up to 20 ms of it, and
//! without stalling with up to 200 ms. Packed streams cross such a path as messages of
//! nine to sixteen fragments, which used to stall for minutes: acks naming the oldest
//! gaps, not the newest datagrams, gave round-trip samples of seconds, and the gaps a
//! burst left were resent one timeout at a time.

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
