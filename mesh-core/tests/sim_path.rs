//! Datagram sizes that follow the path (DPLPMTUD, RFC 8899), in deterministic
//! simulation: links start at `max_datagram_size`, those that carry bulk data grow to
//! what a probe shows the path carries, never send data in datagrams the path drops,
//! and fall back when a path stops carrying the size it was probed at.

use std::time::Duration;

mod support;

use mesh_core::fault::FaultConfig;
use mesh_core::sim::Sim;
use mesh_core::wire::{self, Frame};
use mesh_core::Config;

const KEYS: u64 = 200;
const VALUE_LEN: usize = 400;

fn path_limit(max: Option<usize>) -> FaultConfig {
    FaultConfig {
        max_datagram: max,
        ..FaultConfig::default()
    }
}

/// The datagram size node `i` uses towards node `j`.
fn size(sim: &Sim, i: usize, j: usize) -> Option<usize> {
    let peer = sim.nodes[j].addr;
    sim.nodes[i].engine.as_ref()?.path_datagram_size(&peer)
}

/// Writes `KEYS` large values on node `from`, then runs until every node holds them;
/// `false` past `patience`.
fn burst(sim: &mut Sim, from: usize, prefix: &str, patience: Duration) -> bool {
    let want = sim.nodes[from].engine.as_ref().unwrap().status().data_keys + KEYS as usize;
    let mut rng = fastrand::Rng::with_seed(from as u64);
    for k in 0..KEYS {
        sim.write(
            from,
            &format!("{prefix}-{k:03}"),
            Some(support::printable_value(&mut rng, VALUE_LEN)),
        );
    }
    let step = Duration::from_millis(10);
    let mut waited = Duration::ZERO;
    while waited < patience {
        sim.run_for(step);
        waited += step;
        let done = sim
            .nodes
            .iter()
            .filter_map(|n| n.engine.as_ref())
            .all(|e| e.status().data_keys == want);
        if done {
            return true;
        }
    }
    false
}

/// Writes `parts` bursts of [`KEYS`] large values on node `from`, one after another
/// (about 80 KB each): a link must carry 16 times a rung's size before probing it.
fn bursts(sim: &mut Sim, from: usize, parts: &[&str]) -> bool {
    parts
        .iter()
        .all(|part| burst(sim, from, part, Duration::from_secs(10)))
}

/// The datagrams in `recorded` that carry data, and the longest of them.
fn data_datagrams(config: &Config, recorded: &[Vec<u8>]) -> (usize, usize) {
    let cluster = wire::cluster_id(&config.cluster);
    recorded
        .iter()
        .filter(|d| {
            wire::decode_packet(cluster, d)
                .is_ok_and(|p| p.frames.iter().any(|f| matches!(f, Frame::Data(_))))
        })
        .fold((0, 0), |(n, longest), d| (n + 1, longest.max(d.len())))
}

#[test]
fn links_that_carry_bulk_data_grow_to_the_largest_size_the_path_carries() {
    let config = support::fast_path_config();
    // The path's limit, what the link settles at, and the rung below that.
    for (limit, settles_at, below) in [
        (None, 16_384, 8_952),
        (Some(9_000), 8_952, 1_452),
        (Some(1_500), 1_452, 1_200),
    ] {
        for seed in 1..=3 {
            let mut sim = Sim::new(3, config.clone(), path_limit(limit), seed);
            assert_eq!(size(&sim, 0, 1), None, "no link before the mesh forms");
            sim.run_for(Duration::from_secs(3));
            for (i, j) in [(0, 1), (1, 0), (0, 2), (2, 1)] {
                assert_eq!(
                    size(&sim, i, j),
                    Some(1_200),
                    "seed {seed}: n{i} to n{j} carried no bulk data: not probed"
                );
            }
            // Node 0's bursts go in packed messages of many datagrams to both others:
            // about 330 KB, enough to pay for probing every rung.
            assert!(bursts(&mut sim, 0, &["a", "b", "c", "d"]));
            sim.run_for(Duration::from_secs(2));
            let peers = sim.nodes[0].engine.as_ref().unwrap().peers(sim.now_for(0));
            for j in [1, 2] {
                let at = format!("path {limit:?}, seed {seed}, n0 to n{j}");
                assert_eq!(size(&sim, 0, j), Some(settles_at), "{at}");
                let reported = peers.iter().find(|p| p.addr == sim.nodes[j].addr);
                let reported = reported.map(|p| p.datagram_size);
                assert_eq!(reported, Some(settles_at), "{at}: n0's status");
            }
            sim.recorded = Some(Vec::new());
            assert!(burst(&mut sim, 0, "e", Duration::from_secs(10)));
            let (n, longest) = data_datagrams(&config, &sim.recorded.take().unwrap());
            assert!(
                longest > below && longest <= settles_at,
                "path {limit:?}, seed {seed}: the longest of {n} datagrams of data is {longest} bytes"
            );
        }
    }
}

#[test]
fn a_long_transfer_is_carried_in_larger_datagrams_before_the_probe_delay_is_out() {
    let config = support::fast_path_config();
    for seed in 1..=3 {
        let mut sim = Sim::new(3, config.clone(), FaultConfig::default(), seed);
        sim.run_for(Duration::from_secs(3));
        sim.recorded = Some(Vec::new());
        let start_us = sim.now_us;
        // About 490 KB of values, in bursts that follow one another.
        assert!(bursts(&mut sim, 0, &["a", "b", "c", "d", "e", "f"]));
        let took_us = sim.now_us - start_us;
        assert!(
            took_us < mesh_core::path::FIRST_PROBE_DELAY_US,
            "seed {seed}: the transfer took {took_us} us"
        );
        // The link climbed every rung to the ceiling while the transfer went on.
        let (n, longest) = data_datagrams(&config, &sim.recorded.take().unwrap());
        assert!(
            longest > 8_952 && longest <= config.max_probed_datagram_size,
            "seed {seed}: the longest of {n} datagrams of data is {longest} bytes"
        );
    }
}

#[test]
fn a_link_settles_at_what_its_path_carries_and_never_sends_data_it_drops() {
    let config = support::fast_path_config();
    for (limit, settles_at) in [
        (9_000, 8_952),
        (2_000, 1_452),
        (1_400, 1_326),
        (1_300, 1_200),
        (1_200, 1_200),
    ] {
        let mut sim = Sim::new(2, config.clone(), path_limit(Some(limit)), 7);
        sim.recorded = Some(Vec::new());
        assert!(
            bursts(&mut sim, 1, &["a", "b", "c", "d"]),
            "path of {limit}"
        );
        // At most three probes of each of two sizes, each given at least 100 ms.
        sim.run_for(Duration::from_secs(3));
        assert_eq!(size(&sim, 1, 0), Some(settles_at), "path of {limit}");
        assert!(bursts(&mut sim, 1, &["e"]), "path of {limit}");
        let (n, longest) = data_datagrams(&config, &sim.recorded.take().unwrap());
        assert!(
            longest <= settles_at,
            "path of {limit}: a datagram of data of {longest} bytes (of {n})"
        );
        sim.check_converged().expect("converged");
    }
}

#[test]
fn a_path_that_stops_carrying_its_probed_size_falls_back_and_converges() {
    let config = support::fast_path_config();
    for seed in 1..=3 {
        let mut sim = Sim::new(2, config.clone(), FaultConfig::default(), seed);
        assert!(bursts(&mut sim, 0, &["a", "b", "c", "d"]));
        sim.run_for(Duration::from_secs(2));
        assert_eq!(size(&sim, 0, 1), Some(16_384), "seed {seed}");
        // A route change: the path now drops what the probe proved it carried.
        sim.set_faults(path_limit(Some(1_250)));
        assert!(
            burst(&mut sim, 0, "e", Duration::from_secs(20)),
            "seed {seed}: the burst never arrived"
        );
        assert_eq!(
            size(&sim, 0, 1),
            Some(1_200),
            "seed {seed}: back to the base"
        );
        sim.check_converged().expect("converged");
    }
}

#[test]
fn no_probing_when_the_ceiling_is_the_base() {
    let mut config = support::fast_path_config();
    config.max_probed_datagram_size = config.max_datagram_size;
    let mut sim = Sim::new(2, config.clone(), FaultConfig::default(), 3);
    sim.recorded = Some(Vec::new());
    assert!(burst(&mut sim, 0, "a", Duration::from_secs(10)));
    sim.run_for(Duration::from_secs(2));
    assert!(burst(&mut sim, 0, "b", Duration::from_secs(10)));
    assert_eq!(size(&sim, 0, 1), Some(1_200));
    let recorded = sim.recorded.take().unwrap();
    assert!(recorded.iter().all(|d| d.len() <= 1_200));
}
