//! Keys with a TTL: the expiry travels with the write, every node turns the entry into
//! the same tombstone when its clock reaches it (no new write, version vectors and
//! fingerprints untouched), expired keys read as absent, a later write without a TTL is
//! permanent, expired entries are collected like deletes, and all of it survives faults,
//! skewed clocks and restarts from disk.

use std::path::PathBuf;
use std::time::Duration;

mod support;

use mesh_core::fault::FaultConfig;
use mesh_core::sim::Sim;
use mesh_core::{
    ChangeOrigin, Config, Engine, Error, Event, KeyQuery, NoncePrefix, Now, Value, MAX_TTL,
};

const WALL: u64 = 1_767_225_600_000;

fn at(ms: u64) -> Now {
    Now {
        mono_us: ms * 1000,
        wall_ms: WALL + ms,
    }
}

fn engine() -> Engine {
    Engine::new(Config::new("n", 0), 7, 1, NoncePrefix([1; 16]), at(0))
}

fn events(engine: &mut Engine) -> Vec<(String, Option<Value>, ChangeOrigin)> {
    std::iter::from_fn(|| engine.poll_event())
        .filter_map(|e| match e {
            Event::StateChanged { key, value, origin } => Some((key, value, origin)),
            _ => None,
        })
        .collect()
}

#[test]
fn an_expired_key_reads_as_absent_and_becomes_the_same_entry_as_a_tombstone() {
    let mut e = engine();
    e.set_with_ttl(at(0), "k", Value::Int(1), Duration::from_secs(2))
        .unwrap();
    e.set(at(0), "other", Value::Int(2)).unwrap();
    let written = e.replica().entry("k").unwrap().clone();
    let expires = written.expires.expect("the write carries its expiry");
    assert_eq!(
        expires,
        written.hlc + (2000 << 16),
        "two seconds of HLC later"
    );
    let vv = e.replica().version_vector().clone();
    let fingerprint = vv.fingerprint();
    events(&mut e);

    e.expire(at(1999));
    assert_eq!(
        e.get("k"),
        Some(&Value::Int(1)),
        "still live before its expiry"
    );
    // The engine asks to be woken when it is due.
    assert!(e.poll_timeout().is_some_and(|t| t <= at(2000).mono_us));

    e.handle_timeout(at(2000));
    assert_eq!(e.get("k"), None);
    assert_eq!(e.snapshot().len(), 1, "listings skip it");
    assert_eq!(e.keys(), vec!["other".to_owned()]);
    assert_eq!(e.live_keys(), 1);
    let page = e.browse_keys(&KeyQuery {
        limit: 10,
        ..KeyQuery::default()
    });
    assert_eq!(page.matched, 1);
    assert_eq!(e.status().tombstones, 1);

    let tomb = e.replica().entry("k").unwrap();
    assert_eq!(tomb.value, None, "a tombstone");
    assert_eq!(
        (tomb.rank(), tomb.expires),
        (written.rank(), written.expires),
        "with the write's identity: no new write is made"
    );
    assert_eq!(e.replica().own_seq(), 2, "no new sequence number");
    assert_eq!(*e.replica().version_vector(), vv);
    assert_eq!(e.replica().version_vector().fingerprint(), fingerprint);
    assert_eq!(
        events(&mut e),
        vec![("k".to_owned(), None, ChangeOrigin::Expired)],
        "one delete-like event"
    );
    e.expire(at(5000));
    assert!(events(&mut e).is_empty(), "reported once");
}

#[test]
fn a_later_write_without_a_ttl_is_permanent() {
    let mut e = engine();
    e.set_with_ttl(at(0), "k", Value::Int(1), Duration::from_secs(1))
        .unwrap();
    e.set(at(500), "k", Value::Int(2)).unwrap();
    assert_eq!(e.replica().entry("k").unwrap().expires, None);
    e.handle_timeout(at(10_000));
    assert_eq!(e.get("k"), Some(&Value::Int(2)));
    // And the other way round: a TTL write over a permanent value expires it.
    e.set_with_ttl(at(10_000), "k", Value::Int(3), Duration::from_secs(1))
        .unwrap();
    e.handle_timeout(at(11_000));
    assert_eq!(e.get("k"), None);
    // A write over an expired key brings it back.
    e.set(at(12_000), "k", Value::Int(4)).unwrap();
    assert_eq!(e.get("k"), Some(&Value::Int(4)));
}

#[test]
fn ttls_are_validated() {
    let mut e = engine();
    let bad = |e: &mut Engine, ttl| e.set_with_ttl(at(0), "k", Value::Int(1), ttl);
    for ttl in [Duration::ZERO, MAX_TTL + Duration::from_millis(1)] {
        match bad(&mut e, ttl) {
            Err(Error::Config(c)) => assert_eq!(c.field, "ttl"),
            other => panic!("{ttl:?}: expected a config error, got {other:?}"),
        }
    }
    assert_eq!(e.get("k"), None, "a refused write changes nothing");
    assert_eq!(e.replica().own_seq(), 0);
    bad(&mut e, MAX_TTL).unwrap();
    // Below a millisecond rounds up to one.
    bad(&mut e, Duration::from_micros(1)).unwrap();
    let entry = e.replica().entry("k").unwrap();
    assert_eq!(entry.expires, Some(entry.hlc + (1 << 16)));
}

fn ttl_sim(n: usize, faults: FaultConfig, seed: u64) -> Sim {
    let mut config = support::sim_config();
    config.tombstone_grace = Duration::from_secs(600);
    let mut sim = Sim::new(n, config, faults, seed);
    sim.run_for(Duration::from_secs(3));
    sim
}

#[test]
fn every_node_expires_the_same_entry_at_the_same_hlc_time_and_collects_it() {
    let mut sim = ttl_sim(3, FaultConfig::default(), 11);
    sim.set_skew(1, 300);
    sim.set_skew(2, -300);
    sim.write_with_ttl(
        0,
        "session",
        Value::String("token".into()),
        Duration::from_secs(5),
    );
    sim.write(1, "permanent", Some(Value::Int(1)));
    sim.run_for(Duration::from_secs(2));
    let written = sim.nodes[0]
        .engine
        .as_ref()
        .unwrap()
        .replica()
        .entry("session")
        .unwrap()
        .clone();
    for node in &sim.nodes {
        let engine = node.engine.as_ref().unwrap();
        assert_eq!(engine.get("session"), Some(&Value::String("token".into())));
        assert_eq!(
            engine.replica().entry("session"),
            Some(&written),
            "every node holds the same expiry"
        );
    }
    // Node 1's clock is 300 ms ahead: it expires the key first, node 2 last.
    let expires_ms = (written.expires.unwrap() >> 16) - WALL;
    let expired = |sim: &Sim| -> Vec<bool> {
        sim.nodes
            .iter()
            .map(|n| n.engine.as_ref().unwrap().get("session").is_none())
            .collect()
    };
    let until = |sim: &mut Sim, virtual_ms: u64| {
        let now_ms = sim.now_us / 1000;
        sim.run_for(Duration::from_millis(virtual_ms - now_ms));
    };
    until(&mut sim, expires_ms - 301);
    assert_eq!(expired(&sim), [false, false, false]);
    until(&mut sim, expires_ms - 299);
    assert_eq!(
        expired(&sim),
        [false, true, false],
        "node 1's clock got there"
    );
    until(&mut sim, expires_ms + 1);
    assert_eq!(expired(&sim), [true, true, false]);
    until(&mut sim, expires_ms + 301);
    assert_eq!(expired(&sim), [true, true, true]);
    let fingerprints = support::fingerprints(&sim);
    assert!(
        fingerprints.windows(2).all(|w| w[0] == w[1]),
        "{fingerprints:?}"
    );
    for node in &sim.nodes {
        let entry = node.engine.as_ref().unwrap().replica().entry("session");
        // The same tombstone everywhere, unless already collected.
        if let Some(entry) = entry {
            assert_eq!((entry.value.as_ref(), entry.rank()), (None, written.rank()));
        }
    }
    sim.check_converged().unwrap();
    // Every peer confirmed the write long ago: the tombstones go within a few rounds.
    sim.run_for(Duration::from_secs(5));
    for node in &sim.nodes {
        let engine = node.engine.as_ref().unwrap();
        assert!(engine.replica().entry("session").is_none(), "collected");
        assert_eq!(engine.get("permanent"), Some(&Value::Int(1)));
    }
    sim.check_converged().unwrap();
}

#[test]
fn a_value_expired_at_the_sender_arrives_expired() {
    // Node 1 is partitioned away while the key expires on node 0, whose clock runs 5 s
    // ahead; node 1's own clock is far from the expiry when they heal. Node 0 sends the
    // tombstone (its value is gone): node 1 takes it as expired, its clock moved to the
    // expiry like to any timestamp received.
    let mut sim = ttl_sim(2, FaultConfig::default(), 5);
    sim.set_skew(0, 5_000);
    sim.partition(vec![0, 1]);
    sim.write_with_ttl(0, "a", Value::Int(1), Duration::from_secs(1));
    sim.run_for(Duration::from_millis(1_200));
    assert_eq!(sim.nodes[0].engine.as_ref().unwrap().get("a"), None);
    assert!(sim.nodes[1]
        .engine
        .as_ref()
        .unwrap()
        .replica()
        .entry("a")
        .is_none());
    sim.heal();
    sim.run_for(Duration::from_secs(2));
    let receiver = sim.nodes[1].engine.as_ref().unwrap();
    let entry = receiver.replica().entry("a").expect("received");
    assert_eq!(
        entry.value, None,
        "received as the tombstone it is at the sender"
    );
    assert_eq!(receiver.get("a"), None);
    sim.run_for(Duration::from_secs(6));
    sim.check_converged().unwrap();
}

/// One seed: TTL writes, plain writes and deletes from every node under loss,
/// duplication, reordering, skewed clocks and a partition, then quiescence past every
/// expiry: every node must hold the same state, the oracle's, with expired keys gone.
fn run_seed(seed: u64) -> Result<(), String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let n = [2, 3, 4, 5][rng.usize(..4)];
    let faults = support::mild_faults(&mut rng);
    let mut sim = ttl_sim(n, faults, rng.u64(..));
    for i in 0..n {
        sim.set_skew(i, rng.i64(-200..=200));
    }
    let keys = 3 + rng.usize(..10);
    for step in 0..120u32 {
        let node = rng.usize(..n);
        let key = format!("k{}", rng.usize(..keys));
        match rng.u32(..100) {
            0..=44 => {
                let ttl = Duration::from_millis(rng.u64(1..4_000));
                sim.write_with_ttl(node, &key, Value::Int(rng.i64(..)), ttl);
            }
            45..=79 => sim.write(node, &key, Some(Value::Int(rng.i64(..)))),
            _ => sim.write(node, &key, None),
        }
        if step == 40 {
            let groups = (0..n).map(|i| (i % 2) as u8).collect();
            sim.partition(groups);
        }
        if step == 80 {
            sim.heal();
        }
        sim.run_for(Duration::from_millis(rng.u64(..80)));
    }
    sim.heal();
    // Past every expiry and every clock skew.
    sim.run_for(Duration::from_secs(5));
    sim.run_until_converged(Duration::from_secs(60), Duration::from_millis(250))
        .map_err(|d| format!("did not converge: {d:?}"))?;
    sim.run_for(Duration::from_secs(5));
    sim.check_converged()
        .map_err(|d| format!("diverged after quiescence: {d:?}"))?;
    if std::env::var_os("MESH_SIM_TRACE").is_some() {
        let expected = sim.expected();
        let live = expected.values().filter(|v| v.is_some()).count();
        eprintln!(
            "seed {seed}: nodes={n} writes={} keys={} live={live}",
            sim.write_counts().0,
            expected.len()
        );
    }
    // The same entries (tombstones included) wherever they are still held.
    let replicas: Vec<_> = sim
        .nodes
        .iter()
        .map(|n| n.engine.as_ref().unwrap().replica())
        .collect();
    let fingerprint = replicas[0].version_vector().fingerprint();
    for (i, r) in replicas.iter().enumerate() {
        if r.version_vector().fingerprint() != fingerprint {
            return Err(format!("node {i}'s version vector differs"));
        }
        for (key, entry) in r.entries() {
            for (j, other) in replicas.iter().enumerate() {
                if let Some(theirs) = other.entry(key) {
                    if theirs != entry {
                        return Err(format!(
                            "{key:?}: node {i} holds {entry:?}, node {j} {theirs:?}"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

#[test]
fn seeded_ttl_writes_under_faults_converge_after_expiry() {
    let seeds = support::seeds_from_env("MESH_SIM_SEED", "MESH_SIM_TTL_SEEDS", 40);
    let failures: Vec<u64> = seeds
        .iter()
        .copied()
        .filter(|&seed| match run_seed(seed) {
            Ok(()) => false,
            Err(why) => {
                eprintln!(
                    "seed {seed} failed: {why}\n  replay: MESH_SIM_SEED={seed} cargo test -p mesh-core --test ttl -- --nocapture"
                );
                true
            }
        })
        .collect();
    assert!(failures.is_empty(), "seeds failed: {failures:?}");
}

fn disk_sim() -> Sim {
    let mut config = support::sim_config();
    config.data_dir = Some(PathBuf::from("/sim"));
    config.flush_interval = Duration::from_millis(10);
    let mut sim = Sim::new(1, config, FaultConfig::default(), 9);
    sim.run_for(Duration::from_secs(1));
    sim
}

#[test]
fn a_node_restarted_from_disk_still_expires_the_key() {
    let mut sim = disk_sim();
    sim.write_with_ttl(0, "k", Value::Int(1), Duration::from_secs(3));
    sim.write(0, "kept", Some(Value::Int(2)));
    sim.run_for(Duration::from_millis(100));
    sim.crash(0);
    sim.restart(0);
    let engine = sim.nodes[0].engine.as_ref().unwrap();
    assert_eq!(engine.get("k"), Some(&Value::Int(1)), "reloaded live");
    assert!(engine.replica().entry("k").unwrap().expires.is_some());
    sim.run_for(Duration::from_secs(3));
    let engine = sim.nodes[0].engine.as_ref().unwrap();
    assert_eq!(engine.get("k"), None, "expired after the reload");
    assert_eq!(engine.get("kept"), Some(&Value::Int(2)));
    sim.check_converged().unwrap();
}

#[test]
fn a_node_restarted_after_the_expiry_loads_it_expired() {
    let mut sim = disk_sim();
    sim.write_with_ttl(0, "k", Value::Int(1), Duration::from_secs(1));
    sim.run_for(Duration::from_millis(100));
    sim.crash(0);
    // Down while the key expires.
    sim.run_for(Duration::from_secs(2));
    sim.restart(0);
    let engine = sim.nodes[0].engine.as_ref().unwrap();
    assert_eq!(engine.get("k"), None, "expired as the node started");
    assert_eq!(engine.replica().tombstone_len(), 1);
    sim.check_converged().unwrap();
}

/// A real node with a `data_dir`: the expiry is on disk, the reloaded node expires the
/// key on time and tells its event handler.
#[test]
#[allow(clippy::disallowed_methods)] // a real node against the wall clock
fn a_node_reloaded_from_its_data_dir_still_expires_the_key() {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    let dir = std::env::temp_dir().join(format!("mesh-ttl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = || {
        let mut c = Config::new("ttl-disk", 0);
        c.host = "127.0.0.1".into();
        c.data_dir = Some(dir.clone());
        c.durability = mesh_core::Durability::Sync;
        c
    };
    {
        let node = mesh_core::Node::new(config()).unwrap();
        node.set_with_ttl("lease", "alice", Duration::from_millis(1500))
            .unwrap();
        node.set("kept", 1).unwrap();
        match node.set_with_ttl("bad", 1, Duration::ZERO) {
            Err(Error::Config(e)) => assert_eq!(e.field, "ttl"),
            other => panic!("expected a config error, got {other:?}"),
        }
    }
    let node = mesh_core::Node::new(config()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    node.set_event_handler(move |event| {
        if let Event::StateChanged { key, value, origin } = event {
            log.lock()
                .unwrap()
                .push((key.clone(), value.clone(), *origin));
        }
    });
    node.start().unwrap();
    assert_eq!(
        node.get("lease"),
        Some(Value::from("alice")),
        "reloaded live"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no expiry reported");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        *seen.lock().unwrap(),
        [("lease".to_owned(), None, ChangeOrigin::Expired)],
        "the network thread's timer expired it"
    );
    assert_eq!(node.get("lease"), None);
    assert_eq!(node.keys(), vec!["kept".to_owned()]);
    assert_eq!(node.len(), 1);
    node.stop();
    drop(node);
    // Reloaded once more: the tombstone on disk, the key still gone.
    let node = mesh_core::Node::new(config()).unwrap();
    assert_eq!(node.get("lease"), None);
    assert_eq!(node.get("kept"), Some(Value::Int(1)));
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}
