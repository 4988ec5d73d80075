//! Origins are bounded and retired: a node restarted many times leaves digests that stay
//! small once its old runs' writes are superseded, and a verified peer naming thousands
//! of fresh origins fills nothing past the cap. Two nodes that start in the same
//! millisecond with the same incarnation still write under origins of their own.
//!
//! `MESH_SIM_ORIGIN_SEEDS=N` runs N seeds of the restart race (default 12),
//! `MESH_SIM_SEED=S` replays one, `MESH_SIM_TRACE=1` prints one line per seed.

use std::net::SocketAddr;
use std::time::Duration;

mod support;

use mesh_core::fault::FaultConfig;
use mesh_core::sim::Sim;
use mesh_core::wire::{self, Delta, Group, Message, SyncRequest, Want, WireEntry};
use mesh_core::{Engine, Value};
use support::introduce;

#[test]
fn nodes_starting_with_the_same_incarnation_keep_their_own_writes() {
    for seed in [1, 2, 3] {
        let mut sim = Sim::new(3, support::sim_config(), FaultConfig::default(), seed);
        sim.run_for(Duration::from_secs(3));
        // Both restart in one virtual millisecond, drawing no random bits: they share an
        // incarnation, as two real nodes started at once sometimes do.
        sim.set_incarnation_random_bits(0);
        sim.crash(1);
        sim.crash(2);
        sim.restart(1);
        sim.restart(2);
        let incarnation = |sim: &Sim, i: usize| sim.nodes[i].engine.as_ref().unwrap().incarnation();
        assert_eq!(
            incarnation(&sim, 1),
            incarnation(&sim, 2),
            "the clash is set up"
        );
        // Each writes its first sequence number: under one origin, they would name one
        // (origin, seq) twice, and one write would be dropped as the other's copy.
        sim.write(1, "from-1", Some(Value::Int(1)));
        sim.write(2, "from-2", Some(Value::Int(2)));
        sim.run_until_converged(Duration::from_secs(20), Duration::from_millis(100))
            .unwrap_or_else(|why| panic!("seed {seed}: {why:?}"));
        for node in &sim.nodes {
            let engine = node.engine.as_ref().unwrap();
            assert_eq!(engine.get("from-1"), Some(&Value::Int(1)), "seed {seed}");
            assert_eq!(engine.get("from-2"), Some(&Value::Int(2)), "seed {seed}");
        }
    }
}

/// Origins one node accounts for: in its version vector, and in the digest it sends.
/// One run of node `i`: it writes keys `k0`.. (`keys` of them, values from `run`),
/// lets them spread, then crashes and restarts as a new origin.
fn rewrite_then_restart(sim: &mut Sim, i: usize, keys: i64, run: i64) {
    for k in 0..keys {
        sim.write(i, &format!("k{k}"), Some(Value::Int(run * 10 + k)));
    }
    sim.run_for(Duration::from_secs(2));
    sim.crash(i);
    sim.run_for(Duration::from_millis(500));
    sim.restart(i);
    sim.run_for(Duration::from_secs(2));
}

fn origins(engine: &Engine) -> (usize, usize) {
    let vv = engine.replica().version_vector();
    (vv.len(), vv.digest().len())
}

#[test]
fn fifty_restarts_leave_bounded_digests_once_old_writes_are_superseded() {
    let mut sim = Sim::new(3, support::sim_config(), FaultConfig::default(), 11);
    sim.run_for(Duration::from_secs(3));
    for run in 0..50 {
        // Each run of node 2 rewrites the same keys, superseding its previous run's.
        rewrite_then_restart(&mut sim, 2, 4, run);
    }
    sim.write(2, "last", Some(Value::Int(1)));
    sim.run_until_converged(Duration::from_secs(30), Duration::from_millis(200))
        .expect("the mesh converges");
    // Long enough for every node to hear every other's digest a few times.
    sim.run_for(Duration::from_secs(30));
    sim.check_converged().expect("still converged");
    for (i, node) in sim.nodes.iter().enumerate() {
        let engine = node.engine.as_ref().expect("running");
        let (held, digest) = origins(engine);
        // Live origins: the three current runs, plus at most the last one or two of
        // node 2 whose writes some key may still hold.
        assert!(
            held <= 5,
            "node {i} accounts for {held} origins after 50 restarts"
        );
        assert!(digest <= 5, "node {i} sends {digest} origins in its digest");
    }
}

#[test]
fn a_member_that_never_answers_holds_no_origin_back() {
    // Node 0 holds a verified member that stops answering (and, through gossip, node 1
    // holds its address unverified): neither ever sends a digest.
    let (mut sim, _silent) = settled_pair_with_verified_attacker();
    for run in 0..5 {
        rewrite_then_restart(&mut sim, 1, 1, run);
    }
    sim.write(1, "last", Some(Value::Int(1)));
    sim.run_until_converged(Duration::from_secs(30), Duration::from_millis(200))
        .expect("the mesh converges");
    sim.run_for(Duration::from_secs(30));
    let fingerprints = support::fingerprints(&sim);
    assert_eq!(fingerprints[0], fingerprints[1], "digests agree");
    for (i, node) in sim.nodes.iter().enumerate() {
        let (held, _) = origins(node.engine.as_ref().unwrap());
        // The two current runs, and at most one earlier run of node 1 whose write of
        // "before" or "k0" a key may still hold.
        assert!(
            held <= 3,
            "node {i} accounts for {held} origins after 5 restarts"
        );
    }
}

/// A settled two-node mesh (node 1 wrote one key) and an attacker address that passed
/// node 0's address check with incarnation 77, as a verified peer would.
fn settled_pair_with_verified_attacker() -> (Sim, SocketAddr) {
    let cfg = support::sim_config();
    let cluster = wire::cluster_id(&cfg.cluster);
    let mut sim = Sim::new(2, cfg, FaultConfig::default(), 5);
    sim.write(1, "before", Some(Value::Int(1)));
    sim.run_until_converged(Duration::from_secs(10), Duration::from_millis(100))
        .expect("the mesh settles");
    let attacker: SocketAddr = "10.9.9.9:4000".parse().unwrap();
    let now = sim.now_for(0);
    introduce(
        sim.nodes[0].engine.as_mut().unwrap(),
        now,
        attacker,
        77,
        cluster,
    );
    (sim, attacker)
}

#[test]
fn a_peer_naming_thousands_of_fresh_origins_fills_nothing_past_the_cap() {
    let (mut sim, attacker) = settled_pair_with_verified_attacker();
    let cfg = support::sim_config();
    let (cap, cluster) = (cfg.max_origins, wire::cluster_id(&cfg.cluster));
    let wall_ms = sim.now_for(0).wall_ms;
    // 5,000 fresh origins, 250 per message, each with one write of its own key.
    assert!(cap < 5_000);
    let mut seq = 1;
    for batch in 0..20u64 {
        let groups = (0..250u64)
            .map(|i| {
                let origin = 1_000_000 + batch * 250 + i;
                Group {
                    origin,
                    lo: 1,
                    hi: 1,
                    entries: vec![WireEntry {
                        seq: 1,
                        hlc: wall_ms << 16,
                        key: format!("forged-{origin}").into(),
                        value: Some(Value::Int(0)),
                        expires: None,
                    }],
                }
            })
            .collect();
        let message = wire::encode_message(&Message::Delta(Delta { groups }));
        for datagram in support::data_datagrams(cluster, 77, seq, batch + 1, &message, 1_100) {
            seq += 1;
            sim.inject(0, attacker, &datagram);
        }
        sim.run_for(Duration::from_millis(50));
    }
    let engine = sim.nodes[0].engine.as_ref().unwrap();
    let (held, _) = origins(engine);
    assert!(
        held <= cap,
        "{held} origins accounted for past a cap of {cap}"
    );
    // Node 1's origin and the forged ones taken (node 0 wrote nothing itself); every
    // other forged group is counted.
    let dropped = engine.counters().dropped.origins as usize;
    assert_eq!(dropped, 5_000 - (held - 1), "refused groups counted");
    assert!(dropped >= 5_000 - cap);

    // The members' writes still flow both ways.
    sim.write(1, "after", Some(Value::Int(2)));
    sim.write(0, "back", Some(Value::Int(3)));
    sim.run_for(Duration::from_secs(3));
    for i in 0..2 {
        let engine = sim.nodes[i].engine.as_ref().unwrap();
        assert_eq!(engine.get("after"), Some(&Value::Int(2)), "node {i}");
        assert_eq!(engine.get("back"), Some(&Value::Int(3)), "node {i}");
    }
}

#[test]
fn a_peer_digest_naming_more_origins_than_any_node_holds_is_refused() {
    let (mut sim, attacker) = settled_pair_with_verified_attacker();
    let cfg = support::sim_config();
    let (cap, cluster) = (cfg.max_origins, wire::cluster_id(&cfg.cluster));
    let before = sim.nodes[0]
        .engine
        .as_ref()
        .unwrap()
        .counters()
        .dropped
        .origins;
    // A verified peer's digest of four times the cap: kept, it would stay in memory for
    // that peer (and one such peer per address the attacker can prove).
    let digest = (0..4 * cap as u64).map(|i| (1_000_000 + i, 1)).collect();
    let request = Message::SyncRequest(SyncRequest {
        digest,
        reply: true,
        want: Want::All,
        number: 1,
    });
    let message = wire::encode_message(&request);
    for datagram in support::data_datagrams(cluster, 77, 1, 1, &message, 1_100) {
        sim.inject(0, attacker, &datagram);
    }
    sim.run_for(Duration::from_millis(100));
    let engine = sim.nodes[0].engine.as_ref().unwrap();
    assert_eq!(
        engine.counters().dropped.origins,
        before + 1,
        "the digest is refused"
    );
    // The members still sync.
    sim.write(1, "after", Some(Value::Int(2)));
    sim.run_until_converged(Duration::from_secs(10), Duration::from_millis(100))
        .expect("the members still converge");
}

/// One seed of the race: nodes restarted over and over while writing and deleting a
/// few keys, under loss, duplication, reordering and jitter, with one node cut off
/// for a while (a lagging peer holding old runs' writes) and healed; retirement runs
/// throughout. Returns the origin records retired on the nodes at the end.
fn restart_race(seed: u64) -> Result<usize, String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let n = 3 + rng.usize(..3);
    let faults = support::mild_faults(&mut rng);
    let mut sim = Sim::new(n, support::sim_config(), faults, rng.u64(..));
    for i in 0..n {
        sim.set_skew(i, rng.i64(-300..=300));
    }
    sim.run_for(Duration::from_secs(3));
    let keys = 3 + rng.usize(..6);
    let key = |rng: &mut fastrand::Rng| format!("k{}", rng.usize(..keys));
    for round in 0..40u32 {
        // A lagging peer: cut off for a few rounds, restarts going on without it.
        if round % 13 == 2 {
            let mut groups = vec![0u8; n];
            groups[rng.usize(..n)] = 1;
            sim.partition(groups);
        }
        if round % 13 == 7 {
            sim.heal();
        }
        for _ in 0..3 {
            let node = rng.usize(..n);
            let value = (rng.u32(..100) >= 20).then(|| Value::Int(rng.i64(..)));
            if sim.nodes[node].engine.is_some() {
                sim.write(node, &key(&mut rng), value);
            }
        }
        sim.run_for(Duration::from_millis(rng.u64(200..1_500)));
        let node = rng.usize(..n);
        let running = sim.nodes.iter().filter(|s| s.engine.is_some()).count();
        if sim.nodes[node].engine.is_some() && running > 1 {
            sim.crash(node);
            sim.run_for(Duration::from_millis(rng.u64(100..800)));
            sim.restart(node);
        }
    }
    sim.heal();
    for i in 0..n {
        sim.restart(i);
    }
    sim.run_until_converged(Duration::from_secs(120), Duration::from_millis(250))
        .map_err(|d| format!("did not converge: {d:?}"))?;
    // Every node hears every other's digest a few times; nothing may come back.
    sim.run_for(Duration::from_secs(40));
    sim.check_converged()
        .map_err(|d| format!("diverged after retiring: {d:?}"))?;
    let mut retired = 0;
    for (i, node) in sim.nodes.iter().enumerate() {
        let engine = node.engine.as_ref().expect("running");
        let (held, digest) = origins(engine);
        // The current runs, and old ones whose writes some key still holds.
        let bound = n + keys;
        if held > bound || digest > bound {
            return Err(format!(
                "node {i} accounts for {held} origins ({digest} in its digest), bound {bound}"
            ));
        }
        retired += engine.replica().version_vector().retired_len();
    }
    Ok(retired)
}

#[test]
fn retirement_races_restarts_lagging_peers_and_late_copies() {
    let seeds = support::seeds_from_env("MESH_SIM_SEED", "MESH_SIM_ORIGIN_SEEDS", 12);
    let trace = std::env::var_os("MESH_SIM_TRACE").is_some();
    let mut failures = Vec::new();
    let mut retired = 0;
    for &seed in &seeds {
        match restart_race(seed) {
            Ok(r) => {
                retired += r;
                if trace {
                    eprintln!("seed {seed}: ok retired={r}");
                }
            }
            Err(why) => {
                eprintln!("seed {seed}: FAILED {why}");
                failures.push(seed);
            }
        }
    }
    eprintln!(
        "{} seeds, {} failed, {retired} origin records retired at the end",
        seeds.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "seeds failed: {failures:?}");
    assert!(retired > 0, "the race must retire origins to test anything");
}
