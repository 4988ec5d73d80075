//! Real sockets on 127.0.0.1: whole nodes, their threads and the fault injector.

// Tests drive real nodes against the wall clock (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mesh_core::{ChangeOrigin, Config, Error, Event, FaultConfig, Node, PeerState, Value};

mod support;
use support::wait_until;

fn config(id: &str) -> Config {
    support::node_config(id, "127.0.0.1")
}

/// `n` started nodes, each bootstrapped with the first.
fn mesh(n: usize, prefix: &str) -> Vec<Node> {
    let nodes: Vec<Node> = (0..n)
        .map(|i| Node::new(config(&format!("{prefix}{i}"))).unwrap())
        .collect();
    for node in &nodes[1..] {
        node.add_bootstrap_peer("127.0.0.1", nodes[0].port())
            .unwrap();
    }
    for node in &nodes {
        node.start().unwrap();
    }
    nodes
}

fn converged(nodes: &[Node]) -> bool {
    let first = nodes[0].get_all();
    nodes[1..].iter().all(|n| n.get_all() == first)
}

#[test]
fn two_nodes_sync_sets_and_deletes() {
    let nodes = mesh(2, "pair");
    nodes[0].set("temperature", 72.5).unwrap();
    wait_until("the set to arrive", || {
        nodes[1].get("temperature") == Some(Value::Float(72.5))
    });
    nodes[1].set("humidity", 40).unwrap();
    wait_until("the reverse set", || {
        nodes[0].get("humidity") == Some(Value::Int(40))
    });
    assert!(nodes[0].delete("temperature").unwrap());
    wait_until("the delete", || nodes[1].get("temperature").is_none());
    let status = nodes[1].status();
    assert_eq!(status.data_keys, 1);
    assert_eq!(status.peers.alive_peers, 1);
    assert!(status.counters.datagrams_sent > 0 && status.counters.datagrams_received > 0);
}

#[test]
fn five_nodes_converge_at_thirty_percent_loss() {
    let nodes = mesh(5, "lossy");
    for node in &nodes {
        node.set_faults(FaultConfig::lossy(0.3)).unwrap();
    }
    for (i, node) in nodes.iter().enumerate() {
        for k in 0..20 {
            node.set(&format!("n{i}-k{k}"), k).unwrap();
        }
        node.set("shared", i as i64).unwrap();
    }
    wait_until("convergence under loss", || {
        converged(&nodes) && nodes[0].len() == 101
    });
    let stats = nodes[0].fault_stats();
    assert!(stats.packets_dropped > 0, "loss was injected: {stats:?}");
}

#[test]
fn partition_heals_by_itself() {
    let nodes = mesh(3, "part");
    wait_until("the mesh to form", || {
        nodes.iter().all(|n| n.status().peers.alive_peers == 2)
    });
    // Cut node 2 off in both directions.
    let cut: BTreeSet<_> = [nodes[0].local_addr(), nodes[1].local_addr()].into();
    nodes[2]
        .set_faults(FaultConfig {
            partitioned: cut,
            ..FaultConfig::default()
        })
        .unwrap();
    nodes[0].set("during", "partition").unwrap();
    nodes[2].set("island", true).unwrap();
    wait_until("node 2 to be declared failed", || {
        nodes[0]
            .peers()
            .iter()
            .any(|p| p.node_id.as_deref() == Some("part2") && p.state == PeerState::Dead)
    });
    assert_eq!(nodes[2].get("during"), None);
    nodes[2].set_faults(FaultConfig::default()).unwrap();
    wait_until("the partition to heal", || {
        converged(&nodes) && nodes[0].len() == 2
    });
}

#[test]
fn restarted_node_catches_up() {
    let nodes = mesh(2, "restart");
    for k in 0..100 {
        nodes[0].set(&format!("k{k}"), k).unwrap();
    }
    wait_until("first sync", || nodes[1].len() == 100);
    let port = nodes[1].port();
    nodes[1].stop();
    nodes[0].set("while-down", "yes").unwrap();
    let mut again = config("restart1");
    again.port = port;
    let back = Node::new(again).unwrap();
    back.add_bootstrap_peer("127.0.0.1", nodes[0].port())
        .unwrap();
    back.start().unwrap();
    wait_until("the restarted node to catch up", || back.len() == 101);
    assert_eq!(back.get("while-down"), Some(Value::from("yes")));
}

#[test]
fn twenty_thousand_keys_reach_a_joining_node() {
    let seed = Node::new(config("big0")).unwrap();
    seed.start().unwrap();
    for k in 0..20_000 {
        seed.set(&format!("key-{k:05}"), vec![b'x'; 100]).unwrap();
    }
    let joiner = Node::new(config("big1")).unwrap();
    joiner.add_bootstrap_peer("localhost", seed.port()).unwrap();
    joiner.start().unwrap();
    wait_until("20,000 keys to arrive", || joiner.len() == 20_000);
    assert_eq!(joiner.get("key-12345"), Some(Value::Bytes(vec![b'x'; 100])));
}

#[test]
fn one_megabyte_value_replicates() {
    let nodes = mesh(2, "mb");
    let big: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    nodes[0].set("blob", big.clone()).unwrap();
    wait_until("the 1 MiB value", || nodes[1].get("blob").is_some());
    assert_eq!(nodes[1].get("blob"), Some(Value::Bytes(big)));
}

#[test]
fn garbage_datagrams_do_not_disturb_a_node() {
    let nodes = mesh(2, "junk");
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = fastrand::Rng::with_seed(1);
    for i in 0..500 {
        let len = rng.usize(0..1400);
        let mut junk: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        if i % 3 == 0 && len >= 4 {
            junk[..4].copy_from_slice(b"MS\x01\x01");
        }
        attacker.send_to(&junk, nodes[1].local_addr()).unwrap();
    }
    nodes[0].set("still", "working").unwrap();
    wait_until("replication after garbage", || {
        nodes[1].get("still") == Some(Value::from("working"))
    });
    wait_until("the garbage to be counted", || {
        nodes[1].status().counters.dropped.datagrams() >= 490
    });
    assert!(nodes[1].is_running());
}

#[test]
fn callbacks_see_local_and_remote_changes_and_peers() {
    let nodes = mesh(2, "cb");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    nodes[1].set_event_handler(move |e: &Event| sink.lock().unwrap().push(e.clone()));
    nodes[1].set("local", 1).unwrap();
    nodes[0].set("remote", 2).unwrap();
    wait_until("both change events", || {
        let events = seen.lock().unwrap();
        let has = |key: &str, origin| {
            events.iter().any(|e| {
                matches!(e, Event::StateChanged { key: k, origin: o, .. } if k == key && *o == origin)
            })
        };
        has("local", ChangeOrigin::LocalSet) && has("remote", ChangeOrigin::Sync)
    });
    nodes[0].delete("remote").unwrap();
    wait_until("the remote delete event", || {
        seen.lock().unwrap().iter().any(|e| {
            matches!(e, Event::StateChanged { key, value: None, origin: ChangeOrigin::Sync } if key == "remote")
        })
    });
}

#[test]
fn stop_is_prompt_and_releases_the_port() {
    let nodes = mesh(2, "stop");
    let port = nodes[0].port();
    let started = Instant::now();
    nodes[0].stop();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "stop took {:?}",
        started.elapsed()
    );
    assert!(!nodes[0].is_running());
    assert!(matches!(nodes[0].start(), Err(Error::Stopped)));
    let mut reuse = config("stop-again");
    reuse.port = port;
    let again = Node::new(reuse).expect("port reusable after stop");
    assert_eq!(again.port(), port);
}

#[test]
fn port_in_use_and_bad_config_are_typed_errors() {
    let first = Node::new(config("busy")).unwrap();
    let mut clash = config("busy2");
    clash.port = first.port();
    assert!(matches!(Node::new(clash), Err(Error::Bind { .. })));
    let mut bad = config("");
    bad.node_id.clear();
    match Node::new(bad) {
        Err(Error::Config(e)) => assert_eq!(e.field, "node_id"),
        other => panic!("expected a config error, got {other:?}"),
    }
    let node = Node::new(config("limits")).unwrap();
    assert!(matches!(
        node.set(&"k".repeat(5000), 1),
        Err(Error::KeyTooLong { len: 5000, .. })
    ));
}

#[test]
fn a_write_just_before_stop_is_delivered() {
    let nodes = mesh(2, "flush");
    wait_until("the pair to form", || {
        nodes.iter().all(|n| n.status().peers.alive_peers == 1)
    });
    nodes[0].set_faults(FaultConfig::lossy(0.3)).unwrap();
    for k in 0..50 {
        nodes[0].set(&format!("last-{k}"), k).unwrap();
    }
    nodes[0].stop();
    wait_until("the writes made before stop", || nodes[1].len() == 50);
}
