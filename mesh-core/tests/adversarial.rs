//! Hostile input: one test per attack, each asserting the bound that defeats it.
//!
//! Every attack here once took a node down or could have. Each test builds the attack
//! from the public wire types (or raw bytes where the attack is a malformed encoding),
//! delivers it the way an attacker would (straight to an [`Engine`], or over a real
//! socket to a [`Node`]), and checks three things: the process survives, the drop is
//! counted, and the node keeps working.

// Tests drive real nodes against the wall clock (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mesh_core::wire::{self, Data, Delta, Frame, Group, Message, Packet, WireEntry};
use mesh_core::{Config, Engine, Key, Node, NoncePrefix, Now, Value};

const PATIENCE: Duration = Duration::from_secs(30);

/// Far deeper than any limit, and deep enough to overflow any thread's stack when
/// decoded or walked recursively (the attack that found this used 12,000).
const ATTACK_DEPTH: usize = 20_000;

/// Fragment size of the reassembled variant, like a peer's real fragments.
const FRAGMENT: usize = 1_100;

fn config(id: &str) -> Config {
    let mut c = Config::new(id, 0);
    c.host = "127.0.0.1".into();
    c.sync_interval = Duration::from_millis(500);
    c.heartbeat_interval = Duration::from_millis(200);
    c.peer_timeout = Duration::from_secs(1);
    c.initial_rto = Duration::from_millis(100);
    c.max_probe_interval = Duration::from_secs(1);
    c
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as u64
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A Delta message carrying one write of `key` from `origin`.
fn delta(origin: u64, seq: u64, key: &str, value: Value, wall_ms: u64) -> Message {
    Message::Delta(Delta {
        groups: vec![Group {
            origin,
            lo: seq,
            hi: seq,
            entries: vec![WireEntry {
                seq,
                hlc: wall_ms << 16,
                key: key.to_owned(),
                value: Some(value),
            }],
        }],
    })
}

/// The encoding of a Delta whose value is `depth` lists nested in each other, written
/// as bytes: a value that deep cannot be built in memory without the very recursion
/// under test. A list is postcard's variant index 6 then its length, so each level is
/// `06 01`, around a final `Null` (index 0).
fn deep_delta_bytes(origin: u64, seq: u64, depth: usize, wall_ms: u64) -> Vec<u8> {
    let mut bytes = wire::encode_message(&delta(origin, seq, "deep", Value::Null, wall_ms));
    // The value is the last field of the last entry: its `Null` is the final byte.
    assert_eq!(bytes.pop(), Some(0), "a Null value encodes as 0");
    for _ in 0..depth {
        bytes.extend_from_slice(&[6, 1]);
    }
    bytes.push(0);
    bytes
}

/// One datagram per fragment of `message`, as a peer's channel would send them from
/// sequence number `first_seq` on. A single fragment is the whole message.
fn datagrams(
    cluster: u32,
    src_inc: u64,
    first_seq: u64,
    msg_id: u64,
    message: &[u8],
    fragment: usize,
) -> Vec<Vec<u8>> {
    let pieces: Vec<&[u8]> = message.chunks(fragment).collect();
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let packet = Packet {
                src_inc,
                dst_inc: 0,
                frames: vec![Frame::Data(Data {
                    seq: first_seq + i as u64,
                    msg_id,
                    frag: i as u32,
                    frags: pieces.len() as u32,
                    bytes: piece.to_vec(),
                })],
            };
            wire::encode_packet(cluster, &packet)
        })
        .collect()
}

#[test]
fn deeply_nested_value_in_one_datagram_is_a_counted_drop() {
    let cfg = config("target");
    let cluster = wire::cluster_id(&cfg.cluster);
    let now = Now {
        mono_us: 1_000_000,
        wall_ms: wall_ms(),
    };
    let mut engine = Engine::new(cfg, 1, 7, NoncePrefix([7; 16]), now);
    let before = engine.counters().dropped;
    let attacker: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let message = deep_delta_bytes(77, 1, ATTACK_DEPTH, now.wall_ms);
    let attack = datagrams(cluster, 77, 1, 1, &message, usize::MAX);
    assert_eq!(attack.len(), 1);
    assert!(
        attack[0].len() > 2 * ATTACK_DEPTH,
        "the whole attack in one datagram"
    );

    engine.handle_datagram(now, attacker, &attack[0]);

    let after = engine.counters().dropped;
    assert_eq!(after.malformed, before.malformed + 1, "{after:?}");
    assert!(
        engine.snapshot().is_empty(),
        "nothing of the attack was stored"
    );
    assert_eq!(engine.status().state_version, 0);

    // The same sender's next, sane write still goes through: the engine is intact.
    let sane = wire::encode_message(&delta(77, 2, "sane", Value::Int(1), now.wall_ms));
    for datagram in datagrams(cluster, 77, 2, 2, &sane, usize::MAX) {
        engine.handle_datagram(now.after_us(1_000), attacker, &datagram);
    }
    assert_eq!(engine.get("sane"), Some(&Value::Int(1)));
    assert_eq!(engine.get("deep"), None);
}

#[test]
fn deeply_nested_value_over_a_socket_whole_or_fragmented_is_a_counted_drop() {
    let target = Node::new(config("target")).unwrap();
    let friend = Node::new(config("friend")).unwrap();
    friend
        .add_bootstrap_peer("127.0.0.1", target.port())
        .unwrap();
    target.start().unwrap();
    friend.start().unwrap();
    target.set("before", 1).unwrap();
    wait_until("the first write to sync", || {
        friend.get("before") == Some(Value::Int(1))
    });

    let cluster = wire::cluster_id(&config("x").cluster);
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let malformed = || target.status().counters.dropped.malformed;
    let start = malformed();

    let message = deep_delta_bytes(77, 1, ATTACK_DEPTH, wall_ms());
    let whole = datagrams(cluster, 77, 1, 1, &message, usize::MAX);
    attacker.send_to(&whole[0], target.local_addr()).unwrap();
    wait_until("the whole datagram to be dropped", || malformed() > start);

    let fragments = datagrams(cluster, 77, 2, 2, &message, FRAGMENT);
    assert!(fragments.len() > 30, "{} fragments", fragments.len());
    assert!(fragments.iter().all(|d| d.len() < 1_200));
    for fragment in &fragments {
        attacker.send_to(fragment, target.local_addr()).unwrap();
        // Loopback drops bursts beyond the socket buffer; pace them a little.
        std::thread::sleep(Duration::from_millis(1));
    }
    wait_until("the reassembled message to be dropped", || {
        malformed() > start + 1
    });

    assert!(target.is_running());
    assert_eq!(target.get("deep"), None);
    target.set("after", 2).unwrap();
    friend.set("reply", 3).unwrap();
    wait_until("both nodes to keep syncing", || {
        friend.get("after") == Some(Value::Int(2)) && target.get("reply") == Some(Value::Int(3))
    });
}

/// Runs `f` on a thread with a stack big enough to build and drop a value
/// [`ATTACK_DEPTH`] deep: the test owns that value, and dropping it recurses.
fn with_big_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(64 * 1024 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

fn nested_lists(depth: usize) -> Value {
    let mut value = Value::Null;
    for _ in 0..depth {
        value = Value::List(vec![value]);
    }
    value
}

#[test]
fn local_set_of_a_deeply_nested_value_is_an_error() {
    with_big_stack(|| {
        let node = Node::new(config("local")).unwrap();
        let err = node
            .set("deep", nested_lists(ATTACK_DEPTH))
            .expect_err("a value 20,000 levels deep is refused");
        let text = err.to_string();
        assert!(text.contains("20000 levels deep"), "{text}");
        assert!(text.contains("limit is 100"), "{text}");
        assert_eq!(node.get("deep"), None);
    });
}

/// The key every keyed test mesh shares.
fn mesh_key() -> Key {
    Key::from_bytes(&[0x5a; 32]).unwrap()
}

fn keyed(id: &str, keys: &[Key]) -> Config {
    let mut c = config(id);
    c.keyring = keys.to_vec();
    c
}

#[test]
fn plaintext_delta_to_a_keyed_node_is_dropped_as_unauthenticated() {
    let cfg = keyed("target", &[mesh_key()]);
    let cluster = wire::cluster_id(&cfg.cluster);
    let now = Now {
        mono_us: 1_000_000,
        wall_ms: wall_ms(),
    };
    let mut engine = Engine::new(cfg, 1, 7, NoncePrefix([7; 16]), now);
    let attacker: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let forged = wire::encode_message(&delta(77, 1, "door", Value::from("open"), now.wall_ms));
    for datagram in datagrams(cluster, 77, 1, 1, &forged, usize::MAX) {
        engine.handle_datagram(now, attacker, &datagram);
    }

    let dropped = engine.counters().dropped;
    assert_eq!(dropped.unauthenticated, 1, "{dropped:?}");
    assert_eq!(dropped.datagrams(), 1, "dropped before any decoding");
    assert_eq!(engine.get("door"), None);
    assert_eq!(engine.status().state_version, 0);
    assert!(engine.peers(now).is_empty(), "the forger is no peer");
}

#[test]
fn a_node_without_the_key_never_becomes_a_peer_nor_reads_or_changes_data() {
    let target = Node::new(keyed("target", &[mesh_key()])).unwrap();
    let friend = Node::new(keyed("friend", &[mesh_key()])).unwrap();
    let keyless = Node::new(config("keyless")).unwrap();
    let wrong = Node::new(keyed("wrong", &[Key::from_bytes(&[1; 32]).unwrap()])).unwrap();
    // Each side is told of the other, so each side hears the other's datagrams.
    for node in [&friend, &keyless, &wrong] {
        node.add_bootstrap_peer("127.0.0.1", target.port()).unwrap();
    }
    for outsider in [&keyless, &wrong] {
        target
            .add_bootstrap_peer("127.0.0.1", outsider.port())
            .unwrap();
    }
    for node in [&target, &friend, &keyless, &wrong] {
        node.start().unwrap();
    }
    target.set("secret", 1).unwrap();
    keyless.set("injected", 2).unwrap();
    wrong.set("injected", 3).unwrap();
    wait_until("the keyholders to sync", || {
        friend.get("secret") == Some(Value::Int(1))
    });
    let unauthenticated = |n: &Node| n.status().counters.dropped.unauthenticated;
    wait_until("both sides of each mismatch to count", || {
        unauthenticated(&keyless) > 0 && unauthenticated(&wrong) > 0 && unauthenticated(&target) > 1
    });
    // Give the outsiders several heartbeats' worth of chances.
    std::thread::sleep(Duration::from_millis(1_000));

    for outsider in [&keyless, &wrong] {
        assert_eq!(
            outsider.get("secret"),
            None,
            "{} read data",
            outsider.node_id()
        );
        assert!(
            outsider.peers().iter().all(|p| p.node_id.is_none()),
            "{} learned a peer: {:?}",
            outsider.node_id(),
            outsider.peers()
        );
    }
    for holder in [&target, &friend] {
        assert_eq!(holder.get("injected"), None);
        let ids: Vec<_> = holder
            .peers()
            .into_iter()
            .filter_map(|p| p.node_id)
            .collect();
        assert!(
            !ids.iter().any(|id| id == "keyless" || id == "wrong"),
            "{} took an outsider as peer: {ids:?}",
            holder.node_id()
        );
    }
    assert_eq!(unauthenticated(&friend), 0, "keyholders trust each other");
}

#[test]
fn sealed_datagrams_replayed_from_another_address_create_no_peer_and_no_stream() {
    let now0 = Now {
        mono_us: 1_000_000,
        wall_ms: wall_ms(),
    };
    let a_addr: SocketAddr = "127.0.0.1:7001".parse().unwrap();
    let b_addr: SocketAddr = "127.0.0.1:7002".parse().unwrap();
    let replayer: SocketAddr = "127.0.0.1:6666".parse().unwrap();
    let mut a = Engine::new(keyed("a", &[mesh_key()]), 11, 1, NoncePrefix([1; 16]), now0);
    let mut b = Engine::new(keyed("b", &[mesh_key()]), 22, 2, NoncePrefix([2; 16]), now0);
    a.add_bootstrap_peer(now0, b_addr);
    a.set(now0, "k", Value::Int(1)).unwrap();
    a.start(now0);
    b.start(now0);

    // Run the pair for a few virtual seconds, capturing everything a sends to b:
    // heartbeats, the sync requests of anti-entropy rounds, the delta.
    let mut captured = Vec::new();
    let mut now = now0;
    for _ in 0..400 {
        now = now.after_us(10_000);
        a.handle_timeout(now);
        b.handle_timeout(now);
        while let Some(t) = a.poll_transmit(now) {
            captured.push(t.payload.clone());
            b.handle_datagram(now, a_addr, &t.payload);
        }
        while let Some(t) = b.poll_transmit(now) {
            a.handle_datagram(now, b_addr, &t.payload);
        }
    }
    assert_eq!(b.get("k"), Some(&Value::Int(1)));
    assert!(captured.len() > 10, "{} datagrams captured", captured.len());
    assert!(captured.iter().all(|d| d[4] == wire::FLAG_SEALED));

    let before = b.counters();
    let peers_before = b.peers(now);
    for datagram in &captured {
        b.handle_datagram(now, replayer, datagram);
    }
    let after = b.counters();
    assert_eq!(
        after.dropped.duplicate - before.dropped.duplicate,
        captured.len() as u64,
        "every replay is refused"
    );
    assert_eq!(after.dropped.unauthenticated, 0);
    assert_eq!(after.entries_received, before.entries_received);
    assert_eq!(
        b.peers(now),
        peers_before,
        "no peer, no stream at {replayer}"
    );
    assert!(
        b.poll_transmit(now).is_none(),
        "nothing sent to the replayer"
    );
}
