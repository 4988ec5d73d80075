//! SWIM membership in deterministic simulation: a crashed node is declared dead by every
//! member within the bound, no live member is declared dead under loss with slow
//! members, and a node that stops is reported left, not failed.

use std::time::Duration;

use mesh_core::fault::FaultConfig;
use mesh_core::sim::Sim;
use mesh_core::{Config, Counters, PeerState};

/// A 1 s probe period, the suspicion floor three periods.
fn config() -> Config {
    let mut c = Config::new("template", 0);
    c.heartbeat_interval = Duration::from_secs(1);
    c.peer_timeout = Config::peer_timeout_for(c.heartbeat_interval);
    c
}

/// How node `i` sees the node named `id`.
fn view(sim: &Sim, i: usize, id: &str) -> Option<PeerState> {
    let engine = sim.nodes[i].engine.as_ref()?;
    let now = sim.now_for(i);
    engine
        .peers(now)
        .into_iter()
        .find(|p| p.node_id.as_deref() == Some(id))
        .map(|p| p.state)
}

/// Runs until every node sees every other alive, for at most `limit`.
fn form(sim: &mut Sim, limit: Duration) {
    let n = sim.nodes.len();
    let step = Duration::from_secs(1);
    let mut waited = Duration::ZERO;
    while waited < limit {
        let formed = (0..n).all(|i| {
            (0..n)
                .filter(|&j| j != i)
                .all(|j| view(sim, i, &format!("n{j}")) == Some(PeerState::Alive))
        });
        if formed {
            return;
        }
        sim.run_for(step);
        waited += step;
    }
    panic!("the mesh did not form within {limit:?}");
}

/// `counter` summed over the nodes running.
fn total(sim: &Sim, counter: impl Fn(&Counters) -> u64) -> u64 {
    sim.nodes
        .iter()
        .filter_map(|n| n.engine.as_ref())
        .map(|e| counter(&e.counters()))
        .sum()
}

fn failures(sim: &Sim) -> u64 {
    total(sim, |c| c.peers_failed)
}

#[test]
fn a_crashed_node_is_declared_dead_by_every_member_within_the_bound() {
    for seed in 1..=4u64 {
        let n = 12;
        let mut sim = Sim::new(n, config(), FaultConfig::default(), seed);
        form(&mut sim, Duration::from_secs(120));
        sim.run_for(Duration::from_secs(10));
        assert_eq!(failures(&sim), 0, "seed {seed}: nobody failed yet");
        let victim = 5;
        sim.crash(victim);
        // Five probe periods to find it, then the suspicion timeout. A crashed member is
        // suspected by many, whose confirmations bring the timeout to its floor
        // (peer_timeout times log10 of the mesh size, under 2 here); the bound allows
        // three such floors, half the longest timeout a lone suspicion waits (6 floors).
        let period = config().heartbeat_interval;
        let bound = period * 5 + config().peer_timeout * 3 * 2;
        let mut waited = Duration::ZERO;
        let all_know = |sim: &Sim| {
            (0..n)
                .filter(|&i| i != victim)
                .all(|i| view(sim, i, "n5") == Some(PeerState::Dead))
        };
        while !all_know(&sim) && waited < bound {
            sim.run_for(Duration::from_millis(100));
            waited += Duration::from_millis(100);
        }
        assert!(
            all_know(&sim),
            "seed {seed}: not all know n5 is dead after {waited:?}"
        );
        eprintln!("seed {seed}: every member knew n5 dead {waited:?} after the crash");
        let others_alive = (0..n).filter(|&i| i != victim).all(|i| {
            (0..n)
                .filter(|&j| j != i && j != victim)
                .all(|j| view(&sim, i, &format!("n{j}")) == Some(PeerState::Alive))
        });
        assert!(others_alive, "seed {seed}: a live member was declared dead");
    }
}

/// Lifeguard's case: 20 nodes at 10% loss, a tenth of them 5x slower, for 30 virtual
/// minutes (`MESH_SWIM_MINUTES`), and no live member declared dead. Suspicions are
/// frequent (a probe and its three indirect probes all lost), and each is refuted by a
/// rumor that reaches every member only with high probability: a member it missed
/// declared the suspect dead on 14 of 40 seeds until the suspect was probed directly in
/// the last periods before the deadline. `MESH_SWIM_SEEDS=N` runs seeds 1 to N (default
/// 3: 2.5 s together in the test profile), `MESH_SWIM_SEED=S` one, and
/// `MESH_SWIM_NODES=N` a mesh of N nodes instead of 20 (a tenth of them slow).
#[test]
fn no_live_member_is_declared_dead_under_loss_with_slow_members() {
    let minutes = std::env::var("MESH_SWIM_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(30u64);
    let seeds: Vec<u64> = match std::env::var("MESH_SWIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("MESH_SWIM_SEED must be an integer")],
        Err(_) => {
            let count = std::env::var("MESH_SWIM_SEEDS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(3u64);
            (1..=count).collect()
        }
    };
    let failed: Vec<String> = seeds
        .iter()
        .filter_map(|&seed| lossy_run(seed, minutes).err())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} seeds declared a live member dead: {failed:?}",
        failed.len(),
        seeds.len()
    );
}

/// At 10% loss a probe, answered or not by its three relays, failed 0.75% of the time,
/// each failure a suspicion the whole mesh had to hear and then hear refuted: 7.5 a
/// second in 1,000 nodes, more rumors than piggybacking carries, so refutations missed
/// members and 4 live members were declared dead in one virtual minute. An unanswered
/// probe is now sent again twice within its period. 50 nodes for 5 virtual minutes
/// make 15,000 probes: 562 refutations on seed 1 before. With retries, seeds 1 to 16
/// refute 4 to 50 (mean 22; the tail is a handful of probes whose retries and relays all
/// failed); the bound is a fifth of the figure without retries. `MESH_SIM_PROBE_SEEDS`
/// runs more seeds.
#[test]
fn a_lost_probe_is_sent_again_before_its_target_is_suspected() {
    let seeds: u64 = std::env::var("MESH_SIM_PROBE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    for seed in 1..=seeds {
        let n = 50;
        let mut sim = Sim::new(n, config(), FaultConfig::default(), seed);
        form_large(&mut sim, Duration::from_secs(120));
        sim.set_faults(FaultConfig {
            loss_rate: 0.10,
            ..FaultConfig::default()
        });
        let counted = |sim: &Sim| {
            (
                total(sim, |c| c.refutations),
                total(sim, |c| c.probe_retries),
            )
        };
        let before = counted(&sim);
        sim.run_for(Duration::from_secs(300));
        let after = counted(&sim);
        let (suspicions, retries) = (after.0 - before.0, after.1 - before.1);
        eprintln!("seed {seed}: {suspicions} suspicions refuted, {retries} probes sent again");
        assert!(
            suspicions <= 110,
            "seed {seed}: {suspicions} suspicions refuted in 15,000 probes at 10% loss"
        );
        assert!(
            retries > 0,
            "seed {seed}: no probe was sent again at 10% loss"
        );
        assert_eq!(
            failures(&sim),
            0,
            "seed {seed}: a live member was declared dead"
        );
    }
}

/// Who holds whom dead, and which members are slow: "n3 (slow) by n17, n40; …".
fn declared_dead(sim: &Sim) -> String {
    let mut by: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for (i, node) in sim.nodes.iter().enumerate() {
        let Some(engine) = node.engine.as_ref() else {
            continue;
        };
        for peer in engine.peers(sim.now_for(i)) {
            if peer.state == PeerState::Dead {
                by.entry(peer.node_id.unwrap_or_default())
                    .or_default()
                    .push(i);
            }
        }
    }
    let slow = |id: &str| {
        id.strip_prefix('n')
            .and_then(|k| k.parse::<usize>().ok())
            .is_some_and(|k| sim.nodes[k].slow_us > 0)
    };
    by.iter()
        .map(|(id, observers)| {
            let shown: Vec<String> = observers.iter().take(5).map(|i| format!("n{i}")).collect();
            format!(
                "{id}{} by {} of {} ({}{})",
                if slow(id) { " (slow)" } else { "" },
                observers.len(),
                sim.nodes.len() - 1,
                shown.join(", "),
                if observers.len() > 5 { ", …" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One seed of the lossy run: the minute a live member was declared dead, if one was.
fn lossy_run(seed: u64, minutes: u64) -> Result<(), String> {
    let n = std::env::var("MESH_SWIM_NODES")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n: &usize| n >= 10)
        .unwrap_or(20);
    let mut sim = Sim::new(n, config(), FaultConfig::default(), seed);
    // 20 ms one way; the slow tenth of the mesh (nodes 3 and 11 of 20) answers 5x slower
    // (100 ms each way) and runs its timers 80 ms late.
    sim.latency_us = 20_000;
    for k in 0..n / 10 {
        sim.nodes[(3 + 8 * k) % n].slow_us = 80_000;
    }
    let formed = form_large(&mut sim, Duration::from_secs(120.max(n as u64 / 4)));
    eprintln!("seed {seed}: {n} nodes formed in {formed:?} (virtual)");
    sim.set_faults(FaultConfig {
        loss_rate: 0.10,
        ..FaultConfig::default()
    });
    let before = failures(&sim);
    for minute in 1..=minutes {
        sim.run_for(Duration::from_secs(60));
        if failures(&sim) != before {
            return Err(format!(
                "seed {seed}: a live member was declared dead in minute {minute}: {}",
                declared_dead(&sim)
            ));
        }
    }
    let suspicions: u64 = sim
        .nodes
        .iter()
        .filter_map(|n| n.engine.as_ref())
        .map(|e| e.counters().refutations)
        .sum();
    eprintln!(
        "seed {seed}: {n} nodes, {minutes} virtual minutes at 10% loss: {suspicions} suspicions refuted, none fatal"
    );
    Ok(())
}

#[test]
fn a_node_that_stops_is_reported_left_by_every_member_not_failed() {
    let n = 10;
    let mut sim = Sim::new(n, config(), FaultConfig::default(), 3);
    form(&mut sim, Duration::from_secs(120));
    sim.stop(4);
    // Well under the shortest suspicion timeout: only the announcement can do it.
    sim.run_for(config().heartbeat_interval * 2);
    for i in (0..n).filter(|&i| i != 4) {
        assert_eq!(
            view(&sim, i, "n4"),
            Some(PeerState::Left),
            "as seen by n{i}"
        );
    }
    sim.run_for(Duration::from_secs(60));
    assert_eq!(failures(&sim), 0, "a departed node is not a failed one");
    for i in (0..n).filter(|&i| i != 4) {
        assert_eq!(view(&sim, i, "n4"), Some(PeerState::Left));
    }
}

/// Two nodes restarted in one millisecond with the same random bits share an
/// incarnation, as real nodes started together sometimes do (about once in 65,536 pairs
/// started in the same millisecond). Each once took the other's datagrams for its own
/// come back, so the two never met: a 500-node mesh in the simulator never formed.
#[test]
fn nodes_sharing_an_incarnation_still_meet() {
    for seed in [1, 2, 3] {
        let mut sim = Sim::new(4, config(), FaultConfig::default(), seed);
        form(&mut sim, Duration::from_secs(30));
        sim.set_incarnation_random_bits(0);
        sim.crash(2);
        sim.crash(3);
        sim.restart(2);
        sim.restart(3);
        let incarnation = |sim: &Sim, i: usize| sim.nodes[i].engine.as_ref().unwrap().incarnation();
        assert_eq!(
            incarnation(&sim, 2),
            incarnation(&sim, 3),
            "the clash is set up"
        );
        form(&mut sim, Duration::from_secs(30));
        assert_eq!(view(&sim, 2, "n3"), Some(PeerState::Alive), "seed {seed}");
        assert_eq!(view(&sim, 3, "n2"), Some(PeerState::Alive), "seed {seed}");
    }
}

/// Runs until every node sees `n - 1` others alive, for at most `limit`; returns the
/// virtual time it took. Counts from status, not a walk per pair: a thousand nodes.
fn form_large(sim: &mut Sim, limit: Duration) -> Duration {
    let n = sim.nodes.len();
    let step = Duration::from_secs(1);
    let mut waited = Duration::ZERO;
    while waited < limit {
        let formed = sim.nodes.iter().all(|node| {
            node.engine
                .as_ref()
                .is_some_and(|e| e.status().peers.alive_peers >= n - 1)
        });
        if formed {
            return waited;
        }
        sim.run_for(step);
        waited += step;
    }
    panic!("the mesh did not form within {limit:?}");
}

/// A large mesh, one seed, kept to a short virtual time for CI: the mesh forms from one
/// bootstrap node, a crashed node is known dead by all others within five probe periods
/// plus the longest suspicion timeout, no live member is declared dead, and the writes
/// made meanwhile pass the oracle. 200 nodes by default, which take seconds;
/// `MESH_SIM_LARGE_NODES=1000` runs a thousand (about three minutes in a release build;
/// `scripts/test.sh` runs that as a step of its own), and `MESH_SIM_LARGE_SEEDS` more
/// seeds.
#[test]
fn a_large_mesh_forms_and_declares_a_crashed_node_dead_within_the_bound() {
    let n: usize = std::env::var("MESH_SIM_LARGE_NODES")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n: &usize| n > 2)
        .unwrap_or(200);
    let seeds = std::env::var("MESH_SIM_LARGE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1u64);
    for seed in 1..=seeds {
        let mut sim = Sim::new(n, config(), FaultConfig::default(), seed);
        let formed = form_large(&mut sim, Duration::from_secs(120.max(n as u64 / 4)));
        eprintln!("seed {seed}: {n} nodes formed in {formed:?} (virtual)");
        for w in 0..20usize {
            sim.write(
                w * 37 % n,
                &format!("k{}", w % 7),
                Some(mesh_core::Value::Int(w as i64)),
            );
            sim.run_for(Duration::from_millis(50));
        }
        sim.run_for(Duration::from_secs(5));
        assert_eq!(failures(&sim), 0, "seed {seed}: nobody failed yet");
        let victim = n / 2;
        let victim_id = format!("n{victim}");
        sim.crash(victim);
        // Five probe periods for someone to probe it, then the longest suspicion
        // timeout: peer_timeout x log10(n + 1) x 3.
        let scale = ((n + 1) as f64).log10();
        let bound = config().heartbeat_interval * 5 + config().peer_timeout.mul_f64(scale * 3.0);
        let knows_dead = |sim: &Sim| {
            (0..n).filter(|&i| i != victim).all(|i| {
                let Some(engine) = sim.nodes[i].engine.as_ref() else {
                    return true;
                };
                let now = sim.now_for(i);
                engine.peers(now).iter().any(|p| {
                    p.node_id.as_deref() == Some(victim_id.as_str()) && p.state == PeerState::Dead
                })
            })
        };
        let step = Duration::from_millis(500);
        let mut waited = Duration::ZERO;
        while waited < bound && !knows_dead(&sim) {
            sim.run_for(step);
            waited += step;
        }
        assert!(
            knows_dead(&sim),
            "seed {seed}: not all {} others know {victim_id} is dead after {waited:?}",
            n - 1
        );
        eprintln!(
            "seed {seed}: all knew {victim_id} dead {waited:?} after the crash (bound {bound:?})"
        );
        assert_eq!(
            failures(&sim),
            (n - 1) as u64,
            "seed {seed}: each member reports one failure, the crashed node's"
        );
        sim.run_for(Duration::from_secs(10));
        sim.check_converged()
            .unwrap_or_else(|e| panic!("seed {seed}: {e:?}"));
    }
}

/// Bytes per datagram a formed, idle mesh of five sends over a virtual minute (probe
/// 0.5 s, sync 1 s: the real-socket idle target's settings), node ids made
/// `long_ids` 40 characters long.
fn idle_bytes_per_datagram(long_ids: bool, seed: u64) -> f64 {
    fn lengthen(c: &mut Config) {
        c.node_id = format!("{:-<40}", c.node_id);
    }
    let mut c = config();
    c.heartbeat_interval = Duration::from_millis(500);
    c.peer_timeout = Config::peer_timeout_for(c.heartbeat_interval);
    c.sync_interval = Duration::from_secs(1);
    let n = 5;
    let mut sim = Sim::new(n, c, FaultConfig::default(), seed);
    if long_ids {
        // Booted again before any time passed, under the long id.
        for i in 0..n {
            sim.configure(i, lengthen);
            sim.crash(i);
            sim.restart(i);
        }
    }
    form_large(&mut sim, Duration::from_secs(30));
    sim.write(0, "k", Some(mesh_core::Value::Int(1)));
    // Past the newcomer window, in which every heartbeat names members.
    sim.run_for(Duration::from_secs(30));
    let sent = |sim: &Sim| {
        (
            total(sim, |c| c.bytes_sent),
            total(sim, |c| c.datagrams_sent),
        )
    };
    let before = sent(&sim);
    sim.run_for(Duration::from_secs(60));
    let after = sent(&sim);
    let (bytes, datagrams) = (after.0 - before.0, after.1 - before.1);
    // One probe and one answer per node and period: nothing else when idle.
    assert!(
        (2 * n as u64 * 120 * 9 / 10..=2 * n as u64 * 120 * 11 / 10).contains(&datagrams),
        "seed {seed}: {datagrams} datagrams in an idle minute"
    );
    bytes as f64 / datagrams as f64
}

/// An idle probe or answer is small whatever the node ids (protocol version 9): once a
/// peer answered a probe in the current session, heartbeats to it leave the sender's id
/// out, a packet naming the receiver's session leaves out its incarnation, the random
/// fields are fixed-width, and a member that names as many members as this node is told
/// a name with one probe in four rather than each. Version 8 sent 66.3 bytes a datagram
/// with 2-character ids and 124.5 with 40-character ones (seed 1); version 9 48.2 and
/// 53.3.
#[test]
fn idle_probes_are_small_whatever_the_node_ids() {
    for seed in 1..=2 {
        let short = idle_bytes_per_datagram(false, seed);
        let long = idle_bytes_per_datagram(true, seed);
        eprintln!(
            "seed {seed}: {short:.1} B per idle datagram with 2-character ids, {long:.1} with 40"
        );
        assert!(short <= 50.0, "seed {seed}: {short:.1} B per idle datagram");
        // The occasional gossiped name carries a long id: no more than that.
        assert!(
            long <= short + 8.0,
            "seed {seed}: {long:.1} B with long ids against {short:.1}"
        );
    }
}

/// A heartbeat answer that names a session of a link the receiver no longer holds is a
/// straggler: it is not answered. Were it taken for one meant for an earlier run of the
/// receiver and made to ask for an answer, two nodes each naming a session the other no
/// longer holds would answer each other's answers without end (seed 244 of the
/// adversarial simulation ran for minutes on such a storm before this rule).
#[test]
fn an_answer_naming_a_stale_session_is_not_answered() {
    use mesh_core::wire::{self, Frame, Heartbeat, Packet};
    let mut sim = Sim::new(2, config(), FaultConfig::default(), 1);
    form_large(&mut sim, Duration::from_secs(30));
    let sender = sim.nodes[1].addr;
    let src_inc = sim.nodes[1].engine.as_ref().unwrap().incarnation();
    let cluster = wire::cluster_id(&config().cluster);
    let sent = |sim: &Sim| {
        sim.nodes[0]
            .engine
            .as_ref()
            .unwrap()
            .counters()
            .datagrams_sent
    };
    let before = sent(&sim);
    for i in 0..100u32 {
        let packet = Packet {
            src_inc,
            dst_inc: 0,
            src_session: 7 + i,
            dst_session: 1_000_003 + i,
            frames: vec![Frame::Heartbeat(Heartbeat {
                node_id: "n1".to_owned(),
                fingerprint: 0,
                reply: false,
                members: 1,
                gossip: Vec::new(),
            })],
        };
        sim.inject(0, sender, &wire::encode_packet(cluster, &packet));
    }
    let answers = sent(&sim) - before;
    assert_eq!(answers, 0, "{answers} answers to 100 stale answers");
}

#[test]
fn nodes_restarted_at_their_address_learn_every_peers_name() {
    // A peer answering a restarted node's challenge sent the heartbeat its link to the
    // earlier run called for: without its node id, which that run held. The answer in
    // the new session then showed the id as known, and the restarted node never learnt
    // it: a member without a name on 13 of these 60 seeds.
    for seed in 1..=60 {
        let mut sim = Sim::new(4, config(), FaultConfig::default(), seed);
        form(&mut sim, Duration::from_secs(30));
        sim.crash(2);
        sim.crash(3);
        sim.restart(2);
        sim.restart(3);
        sim.run_for(Duration::from_secs(20));
        for i in 0..4 {
            let engine = sim.nodes[i].engine.as_ref().unwrap();
            let peers = engine.peers(sim.now_for(i));
            let named = peers.iter().filter(|p| p.node_id.is_some()).count();
            assert_eq!(named, 3, "seed {seed}: n{i} names {named} of its 3 peers");
        }
    }
}
