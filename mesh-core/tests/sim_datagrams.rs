//! Datagram sizes: a burst of large writes goes out in nearly full datagrams, and no
//! datagram is ever longer than `max_datagram_size`, even when the acks riding on the
//! data name many gaps. Each datagram carries a header, an envelope and a fragment's
//! fields besides its data: the fewer the datagrams, the fewer of those, and of the
//! system calls and interrupts that move them.

use std::time::Duration;

mod support;

use mesh_core::fault::FaultConfig;
use mesh_core::link::PIGGYBACK_ACK_RANGES;
use mesh_core::sim::Sim;
use mesh_core::wire::{self, Frame};

const KEYS: u64 = 300;
const VALUE_LEN: usize = 400;

fn holds_everything(sim: &Sim, keys: usize) -> bool {
    sim.nodes
        .iter()
        .filter_map(|n| n.engine.as_ref())
        .all(|e| e.status().data_keys == keys)
}

#[test]
fn a_burst_of_large_writes_goes_out_in_nearly_full_datagrams() {
    let config = support::fast_path_config();
    let max = config.max_datagram_size;
    for seed in 1..=5 {
        let mut sim = Sim::new(2, config.clone(), FaultConfig::default(), seed);
        sim.run_for(Duration::from_secs(3));
        let before = sim.nodes[0].engine.as_ref().unwrap().status().counters;
        let mut rng = fastrand::Rng::with_seed(seed);
        for k in 0..KEYS {
            sim.write(
                0,
                &format!("k-{k:03}"),
                Some(support::printable_value(&mut rng, VALUE_LEN)),
            );
        }
        let mut waited = 0;
        while !holds_everything(&sim, KEYS as usize) {
            assert!(waited < 10_000, "seed {seed}: the burst did not arrive");
            sim.run_for(Duration::from_millis(1));
            waited += 1;
        }
        let after = sim.nodes[0].engine.as_ref().unwrap().status().counters;
        let datagrams = after.datagrams_sent - before.datagrams_sent;
        let mean = (after.bytes_sent - before.bytes_sent) as f64 / datagrams as f64;
        // The writer's datagrams in that time: the burst's, and a probe or two.
        assert!(
            mean >= 0.8 * max as f64,
            "seed {seed}: {datagrams} datagrams of {mean:.0} bytes on average, of {max} allowed"
        );
    }
}

#[test]
fn acks_naming_many_gaps_do_not_ride_on_data_and_no_datagram_is_too_long() {
    let faults = FaultConfig {
        loss_rate: 0.3,
        ..FaultConfig::default()
    };
    let config = support::fast_path_config();
    let cluster = wire::cluster_id(&config.cluster);
    let (mut alone, mut riding) = (0, 0);
    for seed in 1..=5 {
        let mut sim = Sim::new(2, config.clone(), FaultConfig::default(), seed);
        sim.run_for(Duration::from_secs(3));
        sim.set_faults(faults.clone());
        sim.recorded = Some(Vec::new());
        // Both ways at once: every datagram of data has an ack to carry, and at 30% loss
        // those acks name several gaps.
        let mut rng = fastrand::Rng::with_seed(seed);
        for k in 0..KEYS {
            sim.write(
                0,
                &format!("a-{k:03}"),
                Some(support::printable_value(&mut rng, VALUE_LEN)),
            );
            sim.write(
                1,
                &format!("b-{k:03}"),
                Some(support::printable_value(&mut rng, VALUE_LEN)),
            );
        }
        sim.run_for(Duration::from_secs(30));
        assert!(
            holds_everything(&sim, 2 * KEYS as usize),
            "seed {seed}: no exchange within 30 s"
        );
        for datagram in sim.recorded.take().unwrap() {
            // The links' paths carry up to the probed size (see `sim_path`).
            assert!(
                datagram.len() <= config.max_probed_datagram_size,
                "seed {seed}: a datagram of {} bytes, {} allowed",
                datagram.len(),
                config.max_probed_datagram_size
            );
            let packet = wire::decode_packet(cluster, &datagram).expect("plaintext packet");
            let data = packet.frames.iter().any(|f| matches!(f, Frame::Data(_)));
            for frame in &packet.frames {
                if let Frame::Ack(ack) = frame {
                    if ack.ranges.len() > PIGGYBACK_ACK_RANGES {
                        assert!(
                            !data,
                            "seed {seed}: {} ranges ride on data",
                            ack.ranges.len()
                        );
                        alone += 1;
                    } else if data {
                        riding += 1;
                    }
                }
            }
        }
    }
    // The path was lossy enough for both kinds to occur.
    assert!(
        alone > 0 && riding > 0,
        "{alone} acks alone, {riding} on data"
    );
}
