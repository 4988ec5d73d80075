//! Key rotation on real nodes: install, use, remove, with writes flowing throughout.

// Tests drive real nodes against the wall clock (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mesh_core::{generate_key, Config, Key, KeyError, Node, Value};

mod support;
use support::wait_until;

fn keyed(id: &str, keys: &[Key]) -> Config {
    let mut c = Config::new(id, 0);
    c.host = "127.0.0.1".into();
    c.sync_interval = Duration::from_millis(500);
    c.heartbeat_interval = Duration::from_millis(200);
    c.peer_timeout = Duration::from_secs(1);
    c.keyring = keys.to_vec();
    c
}

#[test]
fn keys_rotate_with_no_downtime_and_no_lost_write() {
    let old = generate_key().unwrap();
    let new = generate_key().unwrap();
    let nodes: Vec<Arc<Node>> = ["r0", "r1", "r2"]
        .iter()
        .map(|id| Arc::new(Node::new(keyed(id, std::slice::from_ref(&old))).unwrap()))
        .collect();
    for node in &nodes[1..] {
        node.add_bootstrap_peer("127.0.0.1", nodes[0].port())
            .unwrap();
    }
    for node in &nodes {
        node.start().unwrap();
    }
    wait_until("the mesh to form", || {
        nodes.iter().all(|n| n.status().peers.alive_peers == 2)
    });

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = nodes
        .iter()
        .map(|node| {
            let node = Arc::clone(node);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut written = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("{}/{written}", node.node_id());
                    node.set(&key, written as i64).unwrap();
                    written += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                written
            })
        })
        .collect();

    let step = || std::thread::sleep(Duration::from_millis(300));
    step();
    for node in &nodes {
        node.install_key(new.clone()).unwrap();
    }
    step();
    for node in &nodes {
        node.use_key(&new).unwrap();
        assert_eq!(node.list_keys()[0], new.fingerprint());
    }
    step();
    for node in &nodes {
        node.remove_key(&old).unwrap();
        assert_eq!(node.list_keys(), [new.fingerprint()]);
    }
    step();
    stop.store(true, Ordering::Relaxed);
    let written: Vec<u64> = writers.into_iter().map(|w| w.join().unwrap()).collect();

    wait_until("every write on every node", || {
        nodes.iter().all(|n| {
            nodes.iter().zip(&written).all(|(writer, &count)| {
                (0..count).all(|i| {
                    n.get(&format!("{}/{i}", writer.node_id())) == Some(Value::Int(i as i64))
                })
            })
        })
    });
    for node in &nodes {
        let dropped = node.status().counters.dropped;
        assert_eq!(
            dropped.unauthenticated,
            0,
            "{}: {dropped:?}",
            node.node_id()
        );
    }
    assert!(matches!(
        nodes[0].remove_key(&new),
        Err(mesh_core::Error::Key(KeyError::RemovePrimary { .. }))
    ));
    assert!(matches!(
        nodes[0].use_key(&old),
        Err(mesh_core::Error::Key(KeyError::NotInstalled { .. }))
    ));
}
