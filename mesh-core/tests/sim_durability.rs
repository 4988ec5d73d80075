//! Seeded simulations of nodes with disks: crashes keep what was flushed and lose the
//! unflushed tail, restarts reload the disk. The oracle requires every write that a disk
//! or a live node kept to survive, no delete to come back, no `(origin, seq)` to name two
//! writes, and no clock to issue a timestamp at or below its disk's high-water mark.
//!
//! `MESH_SIM_DISK_SEEDS=N` runs N seeds (default 40), `MESH_SIM_SEED=S` replays one,
//! `MESH_SIM_TRACE=1` prints one line per seed.

use std::path::PathBuf;
use std::time::Duration;

mod support;

use mesh_core::fault::FaultConfig;
use mesh_core::sim::Sim;
use mesh_core::{Config, Value};

fn disk_config() -> Config {
    let mut c = support::sim_config();
    // The simulator never touches the path: it only gives every node a disk.
    c.data_dir = Some(PathBuf::from("/sim"));
    c.flush_interval = Duration::from_millis(10);
    c
}

struct Outcome {
    nodes: usize,
    writes: usize,
    lost: usize,
    crashes: u32,
}

fn run_seed(seed: u64) -> Result<Outcome, String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let n = [2, 3, 3, 4, 5, 7][rng.usize(..6)];
    let faults = support::mild_faults(&mut rng);
    let mut config = disk_config();
    config.flush_interval = Duration::from_millis([1, 10, 50][rng.usize(..3)]);
    let mut sim = Sim::new(n, config, faults, rng.u64(..));
    for i in 0..n {
        sim.set_skew(i, rng.i64(-500..=500));
    }
    sim.run_for(Duration::from_secs(3));
    let keys = 3 + rng.usize(..20);
    let mut down: Vec<(usize, u32)> = Vec::new();
    let mut crashes = 0;
    for step in 0..150u32 {
        let roll = rng.u32(..100);
        let node = rng.usize(..n);
        if roll < 60 {
            sim.write(
                node,
                &format!("k{}", rng.usize(..keys)),
                Some(Value::Int(rng.i64(..))),
            );
        } else if roll < 75 {
            sim.write(node, &format!("k{}", rng.usize(..keys)), None);
        } else if roll < 85 && !down.iter().any(|d| d.0 == node) {
            // Often a node crashes right after writing, before or after its flush; with
            // n == 2 both nodes may be down at once, so only the disks keep the state.
            sim.crash(node);
            crashes += 1;
            down.push((node, step + 1 + rng.u32(..20)));
        }
        down.retain(|&(i, until)| {
            let back = step >= until;
            if back {
                sim.restart(i);
            }
            !back
        });
        sim.run_for(Duration::from_millis(rng.u64(..60)));
    }
    for (i, _) in down {
        sim.restart(i);
    }
    sim.run_until_converged(Duration::from_secs(120), Duration::from_millis(250))
        .map_err(|d| format!("did not converge: {d:?}{}", support::describe(&sim, &d)))?;
    sim.run_for(Duration::from_secs(5));
    sim.check_converged()
        .map_err(|d| format!("diverged after quiescence: {d:?}"))?;
    let (writes, lost) = sim.write_counts();
    Ok(Outcome {
        nodes: n,
        writes,
        lost,
        crashes,
    })
}

#[test]
fn seeded_crashes_with_disks_lose_nothing_kept() {
    let seeds = support::seeds_from_env("MESH_SIM_SEED", "MESH_SIM_DISK_SEEDS", 40);
    let trace = std::env::var_os("MESH_SIM_TRACE").is_some();
    let mut failures = Vec::new();
    let (mut writes, mut lost, mut crashes) = (0, 0, 0);
    for &seed in &seeds {
        match run_seed(seed) {
            Ok(o) => {
                if trace {
                    eprintln!(
                        "seed {seed}: ok nodes={} writes={} lost={} crashes={}",
                        o.nodes, o.writes, o.lost, o.crashes
                    );
                }
                writes += o.writes;
                lost += o.lost;
                crashes += o.crashes;
            }
            Err(why) => {
                eprintln!(
                    "seed {seed} failed: {why}\n  replay: MESH_SIM_SEED={seed} cargo test -p mesh-core --test sim_durability -- --nocapture"
                );
                failures.push(seed);
            }
        }
    }
    eprintln!(
        "{} seeds, {} failed; {writes} writes, {crashes} crashes, {lost} writes lost unflushed",
        seeds.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "seeds failed: {failures:?}");
}

#[test]
fn a_lone_node_restarts_from_its_disk() {
    // One node: nothing but its disk can keep its writes.
    let mut sim = Sim::new(1, disk_config(), FaultConfig::default(), 3);
    sim.run_for(Duration::from_secs(1));
    sim.write(0, "kept", Some(Value::Int(1)));
    sim.write(0, "gone", Some(Value::Int(2)));
    sim.write(0, "gone", None);
    sim.run_for(Duration::from_millis(100));
    sim.write(0, "unflushed", Some(Value::Int(3)));
    sim.crash(0);
    sim.restart(0);
    let engine = sim.nodes[0].engine.as_ref().unwrap();
    assert_eq!(engine.get("kept"), Some(&Value::Int(1)));
    assert_eq!(engine.get("gone"), None);
    assert_eq!(engine.get("unflushed"), None, "the unflushed tail is lost");
    assert_eq!(sim.write_counts(), (4, 1));
    sim.write(0, "after", Some(Value::Int(4)));
    sim.check_converged().unwrap();
}

#[test]
fn a_node_back_after_the_grace_does_not_resurrect_a_delete() {
    let mut config = disk_config();
    config.tombstone_grace = Duration::from_secs(20);
    let mut sim = Sim::new(3, config, FaultConfig::default(), 5);
    sim.run_for(Duration::from_secs(2));
    sim.write(0, "doomed", Some(Value::from("v1")));
    sim.run_for(Duration::from_secs(1));
    // Node 2 holds the value on its disk, crashes, and stays away past the grace while
    // the key is deleted and its tombstone collected everywhere.
    sim.crash(2);
    sim.write(1, "doomed", None);
    sim.run_for(Duration::from_secs(30));
    for i in 0..2 {
        let engine = sim.nodes[i].engine.as_ref().unwrap();
        assert_eq!(
            engine.replica().tombstone_len(),
            0,
            "collected by the grace"
        );
    }
    sim.restart(2);
    assert_eq!(sim.stale_discards, 1);
    sim.run_until_converged(Duration::from_secs(30), Duration::from_millis(100))
        .unwrap();
    sim.run_for(Duration::from_secs(5));
    sim.check_converged().unwrap();
    assert_eq!(sim.nodes[2].engine.as_ref().unwrap().get("doomed"), None);
}
