//! Pacing: on a path with a long round trip, a burst of writes leaves the writer spread
//! over the round trip in bursts of about 10 datagrams, not in trains as long as the
//! window lets out (the `pacing` module), and arrives as fast: 459 to 468 ms paced
//! against 455 to 462 unpaced for the burst below on a 50 ms round trip.

use std::time::Duration;

use mesh_core::fault::FaultConfig;
use mesh_core::sim::Sim;

mod support;

/// The most datagrams node 0 sent in one millisecond while a burst of 2,000 writes of
/// 400 random characters (about 800 KB) crossed a path of `latency_ms` each way.
fn largest_train(latency_ms: u64, seed: u64) -> u64 {
    let mut config = support::fast_path_config();
    // No probing of larger datagrams: the figures count datagrams of one size.
    config.max_probed_datagram_size = config.max_datagram_size;
    let mut sim = Sim::new(2, config, FaultConfig::default(), seed);
    sim.latency_us = latency_ms * 1_000;
    sim.run_for(Duration::from_secs(5));
    let mut rng = fastrand::Rng::with_seed(seed);
    for k in 0..2000 {
        sim.write(
            0,
            &format!("k{k:03}"),
            Some(support::printable_value(&mut rng, 400)),
        );
    }
    let sent = |sim: &Sim| {
        sim.nodes[0]
            .engine
            .as_ref()
            .unwrap()
            .status()
            .counters
            .datagrams_sent
    };
    let mut largest = 0;
    let mut waited = 0;
    while sim.nodes[1].engine.as_ref().unwrap().status().data_keys < 2000 {
        assert!(waited < 20_000, "seed {seed}: the burst did not arrive");
        let before = sent(&sim);
        sim.run_for(Duration::from_millis(1));
        largest = largest.max(sent(&sim) - before);
        waited += 1;
    }
    largest
}

#[test]
fn a_burst_on_a_long_round_trip_leaves_in_short_trains() {
    for seed in 1..=4 {
        let train = largest_train(25, seed);
        // Unpaced, the same bursts left in trains of 28 to 51 datagrams (seeds 1 to
        // 8); paced, 12 to 17: bursts of 10 and the trickle acks let out between them.
        assert!(
            train <= 20,
            "seed {seed}: {train} datagrams in one millisecond"
        );
        // Ten datagrams a burst, and a heartbeat or an ack besides.
    }
}
