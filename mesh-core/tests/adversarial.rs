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

mod support;
use support::wait_until;

use mesh_core::wire::{self, Data, Delta, Frame, GossipPeer, Group, Message, Packet, WireEntry};
use mesh_core::{Config, Engine, Key, Node, NoncePrefix, Now, Value};
use support::{hello, introduce, introduce_as, introduce_over};

/// Far deeper than any limit, and deep enough to overflow any thread's stack when
/// decoded or walked recursively (the attack that found this used 12,000).
const ATTACK_DEPTH: usize = 20_000;

/// Fragment size of the reassembled variant, like a peer's real fragments.
const FRAGMENT: usize = 1_100;

fn config(id: &str) -> Config {
    support::node_config(id, "127.0.0.1")
}

/// A simulated two-node mesh (seeded with `seed`) and its cluster id, as the attacks on
/// a running mesh start from.
fn two_node_sim(seed: u64) -> (mesh_core::sim::Sim, u32) {
    let mut cfg = config("template");
    cfg.host = String::new();
    let cluster = wire::cluster_id(&cfg.cluster);
    let sim = mesh_core::sim::Sim::new(2, cfg, mesh_core::fault::FaultConfig::default(), seed);
    (sim, cluster)
}

/// An engine configured with `cfg`, its cluster id, and the time it started at (1 s on
/// its monotonic clock, the wall clock now), as the attacks straight on an engine start.
fn engine_with(cfg: Config) -> (Engine, u32, Now) {
    let cluster = wire::cluster_id(&cfg.cluster);
    let now = Now {
        mono_us: 1_000_000,
        wall_ms: wall_ms(),
    };
    (
        Engine::new(cfg, 1, 7, NoncePrefix([7; 16]), now),
        cluster,
        now,
    )
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as u64
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
                key: key.to_owned().into(),
                value: Some(value),
                expires: None,
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

#[test]
fn deeply_nested_value_in_one_datagram_is_a_counted_drop() {
    let cfg = config("target");
    let (mut engine, cluster, now) = engine_with(cfg);
    let attacker: SocketAddr = "127.0.0.1:9".parse().unwrap();
    introduce(&mut engine, now, attacker, 77, cluster);
    let before = engine.counters().dropped;
    let message = deep_delta_bytes(77, 1, ATTACK_DEPTH, now.wall_ms);
    let attack = support::data_datagrams(cluster, 77, 1, 1, &message, usize::MAX);
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
    for datagram in support::data_datagrams(cluster, 77, 2, 2, &sane, usize::MAX) {
        engine.handle_datagram(now.after_us(1_000), attacker, &datagram);
    }
    assert_eq!(engine.get("sane"), Some(&Value::Int(1)));
    assert_eq!(engine.get("deep"), None);
}

/// `message` compressed whole, as a [`Message::Packed`].
fn packed(message: &[u8]) -> Vec<u8> {
    let compressed = zstd::bulk::compress(message, 1).expect("zstd compresses");
    wire::encode_message(&Message::Packed(serde_bytes::ByteBuf::from(compressed)))
}

#[test]
fn packed_messages_that_inflate_past_their_bound_or_nest_are_counted_drops() {
    let cfg = config("target");
    let (mut engine, cluster, now) = engine_with(cfg);
    let attacker: SocketAddr = "127.0.0.1:9".parse().unwrap();
    introduce(&mut engine, now, attacker, 77, cluster);
    let big = Value::from("x".repeat(1 << 20));
    let attacks = [
        // A megabyte value compresses to about a hundred bytes: a bomb, were it inflated.
        packed(&wire::encode_message(&delta(
            77,
            1,
            "bomb",
            big,
            now.wall_ms,
        ))),
        // Packed inside packed: no sender makes it, and unpacking it would recurse.
        packed(&packed(&wire::encode_message(&delta(
            77,
            1,
            "nested",
            Value::Int(1),
            now.wall_ms,
        )))),
        // Not zstd at all.
        wire::encode_message(&Message::Packed(serde_bytes::ByteBuf::from(
            b"not zstd".to_vec(),
        ))),
    ];
    for (i, attack) in attacks.iter().enumerate() {
        let seq = i as u64 + 1;
        assert!(attack.len() < 1_000, "attack {i} fits one datagram");
        let before = engine.counters().dropped.malformed;
        for datagram in support::data_datagrams(cluster, 77, seq, seq, attack, usize::MAX) {
            engine.handle_datagram(now.after_us(seq), attacker, &datagram);
        }
        assert_eq!(
            engine.counters().dropped.malformed,
            before + 1,
            "attack {i}"
        );
    }
    assert!(
        engine.snapshot().is_empty(),
        "nothing of the attacks was stored"
    );
    assert!(
        engine.memory().reassembly_bytes < 64 * 1024,
        "{:?}",
        engine.memory()
    );

    // A sane packed delta is read: the engine reads packed messages, and is intact.
    let sane = packed(&wire::encode_message(&delta(
        77,
        1,
        "sane",
        Value::Int(1),
        now.wall_ms,
    )));
    for datagram in support::data_datagrams(cluster, 77, 4, 4, &sane, usize::MAX) {
        engine.handle_datagram(now.after_us(1_000), attacker, &datagram);
    }
    assert_eq!(engine.get("sane"), Some(&Value::Int(1)));
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
    introduce_over(&attacker, target.local_addr(), 77, cluster);
    let malformed = || target.status().counters.dropped.malformed;
    let start = malformed();

    let message = deep_delta_bytes(77, 1, ATTACK_DEPTH, wall_ms());
    let whole = support::data_datagrams(cluster, 77, 1, 1, &message, usize::MAX);
    attacker.send_to(&whole[0], target.local_addr()).unwrap();
    wait_until("the whole datagram to be dropped", || malformed() > start);

    let fragments = support::data_datagrams(cluster, 77, 2, 2, &message, FRAGMENT);
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

/// Fragments the slot-table flood claims per message: what the default 64 MiB budget
/// allowed with ~920-byte fragments, the most the old check let through.
const FLOOD_FRAGS: u32 = 72_945;

/// A datagram carrying one fragment `frag` of `frags` of message `msg_id`.
fn fragment(
    cluster: u32,
    src_inc: u64,
    seq: u64,
    msg_id: u64,
    frag: u32,
    frags: u32,
    bytes: Vec<u8>,
) -> Vec<u8> {
    let packet = Packet {
        src_inc,
        dst_inc: 0,
        src_session: 0,
        dst_session: 0,
        frames: vec![Frame::Data(Data {
            seq,
            msg_id,
            frag,
            frags,
            bytes,
        })],
    };
    wire::encode_packet(cluster, &packet)
}

#[test]
fn slot_table_flood_of_empty_fragments_is_a_counted_drop() {
    let cfg = config("target");
    let (mut engine, cluster, now) = engine_with(cfg);
    let attacker: SocketAddr = "127.0.0.1:9".parse().unwrap();
    introduce(&mut engine, now, attacker, 77, cluster);
    const FLOOD: u64 = 300;
    for i in 1..=FLOOD {
        let datagram = fragment(cluster, 77, i, i, 0, FLOOD_FRAGS, Vec::new());
        assert!(datagram.len() < 64, "each datagram is tiny");
        engine.handle_datagram(now, attacker, &datagram);
    }

    // A fragmented message's fragments all carry bytes: none of these could be real,
    // and none may cost a slot table.
    let dropped = engine.status().counters.dropped;
    assert_eq!(dropped.reassembly, FLOOD, "{dropped:?}");
    let held = engine.memory().reassembly_bytes;
    assert!(held <= 1024 * 1024, "{held} bytes held after the flood");

    // The same sender's next writes, whole and fragmented, still go through.
    let later = now.after_us(1_000);
    let sane = wire::encode_message(&delta(77, 1, "sane", Value::Int(1), now.wall_ms));
    for datagram in support::data_datagrams(cluster, 77, FLOOD + 1, FLOOD + 1, &sane, usize::MAX) {
        engine.handle_datagram(later, attacker, &datagram);
    }
    let big = Value::String("x".repeat(5_000));
    let large = wire::encode_message(&delta(77, 2, "large", big.clone(), now.wall_ms));
    let pieces = support::data_datagrams(cluster, 77, FLOOD + 2, FLOOD + 2, &large, FRAGMENT);
    assert!(pieces.len() > 1);
    for datagram in pieces {
        engine.handle_datagram(later, attacker, &datagram);
    }
    assert_eq!(engine.get("sane"), Some(&Value::Int(1)));
    assert_eq!(engine.get("large"), Some(&big));
    assert_eq!(engine.memory().reassembly_bytes, 0);
}

#[test]
fn many_sources_share_one_reassembly_budget() {
    let mut cfg = config("target");
    // A small budget keeps the test cheap; the rule is the same at 64 MiB.
    cfg.max_value_size = 256 * 1024;
    cfg.max_reassembly = 1024 * 1024;
    cfg.validate().unwrap();
    let budget = cfg.max_reassembly;
    let (mut engine, cluster, now) = engine_with(cfg);
    // Each source starts 4 plausible large messages (200 full fragments each) and sends
    // the first two fragments of each: 8.8 KB per source, ~17 MB from 2,000 sources.
    let mut peak = 0;
    for source in 0..2_000u32 {
        let addr = SocketAddr::from((
            [127, 0, (source / 250) as u8 + 1, (source % 250) as u8 + 1],
            7000,
        ));
        let src_inc = 1_000 + u64::from(source);
        introduce(&mut engine, now, addr, src_inc, cluster);
        let mut seq = 1;
        for msg_id in 1..=4 {
            for frag in 0..2 {
                let datagram = fragment(
                    cluster,
                    src_inc,
                    seq,
                    msg_id,
                    frag,
                    200,
                    vec![0xab; FRAGMENT],
                );
                engine.handle_datagram(now, addr, &datagram);
                seq += 1;
            }
        }
        peak = peak.max(engine.memory().reassembly_bytes);
    }
    assert!(
        peak <= budget,
        "{peak} bytes of partial messages, budget {budget}"
    );
    let refused = engine.status().counters.dropped.reassembly;
    eprintln!("peak {peak} bytes of partial messages, {refused} fragments refused");
    assert!(refused > 0, "fragments beyond the budget are counted");

    // Partial messages time out and give their bytes back.
    let later = now.after_us(31_000_000);
    engine.handle_timeout(later);
    assert_eq!(engine.memory().reassembly_bytes, 0);
}

/// A reliable message as the single fragment of a datagram from a peer that never
/// proved its address: a spoofed source.
fn spoofed_message(cluster: u32, src_inc: u64, message: &Message) -> Vec<u8> {
    support::data_datagrams(
        cluster,
        src_inc,
        1,
        1,
        &wire::encode_message(message),
        usize::MAX,
    )
    .remove(0)
}

#[test]
fn a_spoofed_sync_request_draws_at_most_three_times_its_size() {
    let cfg = config("target");
    let (mut engine, cluster, mut now) = engine_with(cfg);
    engine.start(now);
    for i in 0..2_000 {
        engine
            .set(now, &format!("key-{i}"), Value::from("x".repeat(100)))
            .unwrap();
    }
    // A victim's address on the request: the whole state would go there.
    let victim: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let request = spoofed_message(
        cluster,
        77,
        &Message::SyncRequest(mesh_core::wire::SyncRequest {
            digest: Vec::new(),
            reply: false,
            want: mesh_core::wire::Want::All,
            number: 1,
        }),
    );
    engine.handle_datagram(now, victim, &request);
    let mut sent_to_victim = 0;
    for _ in 0..3_000 {
        while let Some(t) = engine.poll_transmit(now) {
            if t.dst == victim {
                sent_to_victim += t.payload.len();
            }
        }
        now = now.after_us(10_000);
        engine.handle_timeout(now);
    }
    assert!(
        sent_to_victim <= 3 * request.len(),
        "{sent_to_victim} bytes sent to the victim for a {}-byte request",
        request.len()
    );
    assert_eq!(engine.status().peers.total_peers, 0, "no peer was created");
    assert!(engine.status().counters.dropped.unverified >= 1);
}

#[test]
fn a_spoofed_incarnation_neither_partitions_nor_restarts_a_member() {
    let (mut sim, cluster) = two_node_sim(3);
    sim.run_for(Duration::from_secs(3));
    let member = sim.nodes[1].addr;
    let real = sim.nodes[1].engine.as_ref().unwrap().incarnation();
    // Far in the future (the attack that shut a member out for good), and merely ahead.
    for forged in [u64::MAX, real + (10_000 << 16)] {
        let datagram = hello(cluster, forged, "node-1", Vec::new(), Vec::new());
        sim.inject(0, member, &datagram);
    }
    sim.write(1, "after", Some(Value::Int(1)));
    sim.write(0, "other way", Some(Value::Int(2)));
    sim.run_until_converged(Duration::from_secs(10), Duration::from_millis(100))
        .expect("the member still syncs both ways");
    let engine = sim.nodes[0].engine.as_ref().unwrap();
    assert_eq!(engine.get("after"), Some(&Value::Int(1)));
    assert!(engine.counters().dropped.unverified >= 2);
}

#[test]
fn a_gossip_flood_fills_nothing_and_a_later_node_still_gets_the_state() {
    let cfg = config("target");
    let cluster = wire::cluster_id(&cfg.cluster);
    let target = Node::new(cfg).unwrap();
    target.start().unwrap();
    target.set("state", 42).unwrap();
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    introduce_over(&attacker, target.local_addr(), 77, cluster);
    // 1,100 made-up members per heartbeat, ten times over (the attack filled a table of
    // 1,024 with one such datagram).
    for round in 0..10u16 {
        let gossip: Vec<GossipPeer> = (0..1_100u16)
            .map(|i| GossipPeer {
                node_id: format!("ghost-{round}-{i}"),
                addr: SocketAddr::from(([127, 0, 0, 1], 20_000 + round * 1_100 + i)),
            })
            .collect();
        let flood = hello(cluster, 77, "attacker", gossip, Vec::new());
        attacker.send_to(&flood, target.local_addr()).unwrap();
    }
    wait_until("the flood to arrive", || {
        target.status().counters.datagrams_received >= 11
    });
    let peers = target.status().peers.total_peers;
    assert!(peers <= 1 + 64, "{peers} peers after the flood");

    let late = Node::new(config("late")).unwrap();
    late.add_bootstrap_peer("127.0.0.1", target.port()).unwrap();
    late.start().unwrap();
    wait_until("a node joining after the flood to get the state", || {
        late.get("state") == Some(Value::Int(42))
    });
}

#[test]
fn gossiped_addresses_that_never_answer_are_probed_sparingly_then_forgotten() {
    let mut cfg = config("target");
    cfg.tombstone_grace = Duration::from_secs(300);
    let (mut engine, cluster, mut now) = engine_with(cfg);
    engine.start(now);
    let attacker: SocketAddr = "127.0.0.1:9".parse().unwrap();
    introduce(&mut engine, now, attacker, 77, cluster);
    let ghosts: Vec<GossipPeer> = (0..3u16)
        .map(|i| GossipPeer {
            node_id: format!("ghost-{i}"),
            addr: SocketAddr::from(([127, 0, 0, 1], 30_000 + i)),
        })
        .collect();
    let introduction = hello(cluster, 77, "attacker", ghosts, Vec::new());
    engine.handle_datagram(now, attacker, &introduction);
    assert_eq!(engine.status().peers.total_peers, 4);
    let mut probes = 0;
    // Ten minutes, the attacker staying alive, the ghosts never answering.
    for _ in 0..1_200 {
        let alive = hello(cluster, 77, "attacker", Vec::new(), Vec::new());
        engine.handle_datagram(now, attacker, &alive);
        while let Some(t) = engine.poll_transmit(now) {
            probes += usize::from(t.dst.port() >= 30_000);
        }
        now = now.after_us(500_000);
        engine.handle_timeout(now);
    }
    // Probes back off to one per max_probe_interval (1 s here) and stop once the ghosts
    // are forgotten with the tombstone grace (300 s): about 300 each, not 1,200.
    assert!(
        probes <= 3 * 310,
        "{probes} probes to addresses that never answered"
    );
    assert_eq!(engine.status().peers.total_peers, 1, "ghosts forgotten");
}

#[test]
fn a_claimed_node_id_neither_desyncs_nor_silences_a_member() {
    let victim = Node::new(config("victim")).unwrap();
    let member = Node::new(config("member")).unwrap();
    member
        .add_bootstrap_peer("127.0.0.1", victim.port())
        .unwrap();
    victim.start().unwrap();
    member.start().unwrap();
    // Many datagrams from the victim to the member first, so the member's receive window
    // for the victim is far from its start.
    for i in 0..3_000 {
        victim.set(&format!("key-{i}"), "x".repeat(100)).unwrap();
    }
    wait_until("the member to hold the state", || member.len() == 3_000);

    // A sender that owns its address claims the member's node id.
    let cluster = wire::cluster_id(&config("x").cluster);
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    introduce_over(&attacker, victim.local_addr(), 77, cluster);
    let claim = hello(cluster, 77, "member", Vec::new(), Vec::new());
    let received = victim.status().counters.datagrams_received;
    attacker.send_to(&claim, victim.local_addr()).unwrap();
    wait_until("the claim to arrive", || {
        victim.status().counters.datagrams_received > received
    });

    // Writes keep flowing both ways within a few heartbeats, not once the victim's new
    // sequence numbers have caught up with the old ones.
    let deadline = Instant::now() + Duration::from_secs(5);
    victim.set("after", 1).unwrap();
    member.set("reply", 2).unwrap();
    while (member.get("after").is_none() || victim.get("reply").is_none())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(member.get("after"), Some(Value::Int(1)), "victim to member");
    assert_eq!(victim.get("reply"), Some(Value::Int(2)), "member to victim");
}

#[test]
fn spoofed_claims_of_each_others_node_ids_split_no_mesh() {
    let (mut sim, cluster) = two_node_sim(5);
    sim.run_for(Duration::from_secs(3));
    let addrs = [sim.nodes[0].addr, sim.nodes[1].addr];
    let incs = [0, 1].map(|i| sim.nodes[i].engine.as_ref().unwrap().incarnation());
    // Each node hears, from the other's address and incarnation, that the other runs
    // with its own node id (which made each forget the other, for good).
    for (to, from) in [(0, 1), (1, 0)] {
        let claim = hello(
            cluster,
            incs[from],
            &format!("n{to}"),
            Vec::new(),
            Vec::new(),
        );
        sim.inject(to, addrs[from], &claim);
    }
    sim.write(0, "from 0", Some(Value::Int(1)));
    sim.write(1, "from 1", Some(Value::Int(2)));
    sim.run_until_converged(Duration::from_secs(10), Duration::from_millis(100))
        .expect("both nodes still sync");
    for i in 0..2 {
        let status = sim.nodes[i].engine.as_ref().unwrap().status();
        assert_eq!(
            status.peers.alive_peers, 1,
            "node {i} holds the other alive"
        );
        assert_eq!(
            status.counters.dropped.conflicts, 1,
            "node {i} counted the claim"
        );
    }
}

#[test]
fn a_node_id_claimed_from_another_address_takes_no_live_member_away() {
    let cfg = config("target");
    let (mut engine, cluster, mut now) = engine_with(cfg);
    engine.start(now);
    let member: SocketAddr = "127.0.0.1:9001".parse().unwrap();
    let claimant: SocketAddr = "127.0.0.1:9002".parse().unwrap();
    introduce(&mut engine, now, member, 77, cluster);
    let member_id = format!("peer-{member}");
    // A sender that owns its address claims the member's id from its first datagram.
    introduce_as(&mut engine, now, claimant, 88, cluster, &member_id);
    let claim = hello(cluster, 88, &member_id, Vec::new(), Vec::new());
    engine.handle_datagram(now, claimant, &claim);
    let held = |engine: &Engine, now: Now, addr| {
        engine
            .peers(now)
            .into_iter()
            .find(|p| p.addr == addr)
            .map(|p| (p.node_id, p.state))
    };
    let (id, _) = held(&engine, now, member).expect("the member is still held");
    assert_eq!(
        id.as_deref(),
        Some(member_id.as_str()),
        "and keeps its name"
    );
    assert_eq!(held(&engine, now, claimant).and_then(|(id, _)| id), None);
    assert!(
        engine.counters().dropped.conflicts >= 1,
        "the claim is counted"
    );
    // Once the member stops answering and is declared dead, the node id moves: a node
    // restarted on another port is recognised.
    for _ in 0..200 {
        engine.handle_datagram(
            now,
            claimant,
            &hello(cluster, 88, "", Vec::new(), Vec::new()),
        );
        while engine.poll_transmit(now).is_some() {}
        now = now.after_us(250_000);
        engine.handle_timeout(now);
    }
    let (id, _) = held(&engine, now, claimant).expect("the claimant is held");
    assert_eq!(id.as_deref(), Some(member_id.as_str()), "the id moved");
}

#[test]
fn joiners_past_the_pending_challenges_at_once_are_still_verified() {
    let cfg = config("seed");
    let (mut engine, cluster, now) = engine_with(cfg);
    engine.start(now);
    // Twice as many joiners as challenges are kept pending (a mass restart), all saying
    // hello at once, then answering in the same order.
    let joiners: Vec<(SocketAddr, u64)> = (0..2_048u16)
        .map(|i| {
            let addr = SocketAddr::from(([127, 0, 1 + (i / 256) as u8, (i % 256) as u8], 7_000));
            (addr, 1_000 + u64::from(i))
        })
        .collect();
    let mut nonces = std::collections::HashMap::new();
    for (i, &(addr, inc)) in joiners.iter().enumerate() {
        engine.handle_datagram(
            now,
            addr,
            &hello(cluster, inc, &format!("j{i}"), vec![], vec![]),
        );
    }
    while let Some(t) = engine.poll_transmit(now) {
        if let Some(nonce) = support::challenge_in(cluster, &t.payload) {
            nonces.insert(t.dst, nonce);
        }
    }
    for &(addr, inc) in &joiners {
        let answer = Packet {
            src_inc: inc,
            dst_inc: 0,
            src_session: 0,
            dst_session: 0,
            frames: vec![Frame::Response(nonces[&addr])],
        };
        engine.handle_datagram(now, addr, &wire::encode_packet(cluster, &answer));
        while engine.poll_transmit(now).is_some() {}
    }
    // The answers to evicted challenges must not evict the challenges still pending
    // (each answer refused drew a new challenge, and no joiner was ever verified).
    let alive = engine.status().peers.alive_peers;
    assert!(
        alive >= 1_000,
        "{alive} of 2,048 joiners verified in the first round"
    );
}

#[test]
fn a_members_answer_copied_under_a_claimed_incarnation_restarts_nothing() {
    // In plaintext, an attacker that sees a member's traffic claims a restart from its
    // address, the member echoes the challenge that draws, and the attacker sends the
    // member's answer again under the claimed incarnation. It proved the claim, and the
    // member's own datagrams were stale from then on: two nodes of adversarial seed 99
    // never heard each other again.
    let cfg = config("target");
    let (mut engine, cluster, now) = engine_with(cfg);
    let member: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let inc = 1_000_000;
    introduce_as(&mut engine, now, member, inc, cluster, "member");

    engine.handle_datagram(
        now,
        member,
        &hello(cluster, inc + 1, "member", vec![], vec![]),
    );
    let mut nonce = None;
    while let Some(t) = engine.poll_transmit(now) {
        if t.dst == member {
            nonce = nonce.or(support::challenge_in(cluster, &t.payload));
        }
    }
    let nonce = nonce.expect("the claimed restart is challenged");
    let answer = |inc| support::packet(cluster, inc, vec![Frame::Response(nonce)]);
    engine.handle_datagram(now, member, &answer(inc));
    engine.handle_datagram(now, member, &answer(inc + 1));

    let stale = engine.counters().dropped.stale;
    engine.handle_datagram(
        now.after_us(1_000),
        member,
        &hello(cluster, inc, "member", vec![], vec![]),
    );
    assert_eq!(
        engine.counters().dropped.stale,
        stale,
        "the member's own run is taken for an earlier one"
    );
}

#[test]
fn a_forged_bare_range_silences_no_member() {
    let (mut sim, cluster) = two_node_sim(5);
    sim.write(1, "before", Some(Value::Int(1)));
    sim.run_until_converged(Duration::from_secs(10), Duration::from_millis(100))
        .expect("the mesh settles");
    let writer = sim.nodes[1].engine.as_ref().unwrap().origin();

    // A member (it owns its address) credits a range of the writer's origin that holds
    // no entry and reaches far beyond anything the writer wrote.
    let attacker: SocketAddr = "10.9.9.9:4000".parse().unwrap();
    let now = sim.now_for(0);
    introduce(
        sim.nodes[0].engine.as_mut().unwrap(),
        now,
        attacker,
        77,
        cluster,
    );
    let forged = Message::Delta(Delta {
        groups: vec![Group {
            origin: writer,
            lo: 1,
            hi: 1 << 62,
            entries: Vec::new(),
        }],
    });
    for datagram in support::data_datagrams(
        cluster,
        77,
        1,
        1,
        &wire::encode_message(&forged),
        usize::MAX,
    ) {
        sim.inject(0, attacker, &datagram);
    }

    // The writer's next writes still reach the node, by push and by anti-entropy.
    sim.write(1, "after", Some(Value::Int(2)));
    sim.run_for(Duration::from_secs(3));
    sim.write(1, "later", Some(Value::Int(3)));
    sim.run_until_converged(Duration::from_secs(10), Duration::from_millis(100))
        .expect("the writer's writes are not silenced");
    let engine = sim.nodes[0].engine.as_ref().unwrap();
    assert_eq!(engine.get("after"), Some(&Value::Int(2)));
    assert_eq!(engine.get("later"), Some(&Value::Int(3)));
}

/// Data an off-path attacker injects into an established channel, spoofing a member's
/// address and incarnation (both guessable) but not the channel's sessions, which it
/// never saw: under a fresh session number that names none of the receiver's (the way a
/// peer starting afresh would), or under no session at all. Sequence numbers are sprayed
/// over the start of the window, where the member's real ones are.
fn blind_injection(cluster: u32, member_inc: u64, src_session: u32, wall_ms: u64) -> Vec<Vec<u8>> {
    (1..=64u64)
        .map(|seq| {
            let message = delta(0xb11d, seq, "injected", Value::Int(seq as i64), wall_ms);
            let packet = Packet {
                src_inc: member_inc,
                dst_inc: 0,
                src_session,
                dst_session: 0,
                frames: vec![Frame::Data(Data {
                    seq,
                    msg_id: seq,
                    frag: 0,
                    frags: 1,
                    bytes: wire::encode_message(&message),
                })],
            };
            wire::encode_packet(cluster, &packet)
        })
        .collect()
}

#[test]
fn blind_injection_neither_resets_nor_writes_into_an_established_channel() {
    for src_session in [0x5eed_1234, 0] {
        let (mut sim, cluster) = two_node_sim(11);
        sim.write(1, "before", Some(Value::Int(1)));
        sim.run_until_converged(Duration::from_secs(10), Duration::from_millis(100))
            .expect("the mesh settles");
        let member = sim.nodes[1].addr;
        let member_inc = sim.nodes[1].engine.as_ref().unwrap().incarnation();
        let wall = sim.now_for(0).wall_ms;
        for datagram in blind_injection(cluster, member_inc, src_session, wall) {
            sim.inject(0, member, &datagram);
        }
        // The member's own channel goes on: its next writes arrive, in both directions.
        sim.write(1, "after", Some(Value::Int(2)));
        sim.write(0, "reply", Some(Value::Int(3)));
        sim.run_until_converged(Duration::from_secs(10), Duration::from_millis(100))
            .expect("the channel still carries writes both ways");
        for node in &sim.nodes {
            let engine = node.engine.as_ref().unwrap();
            assert_eq!(
                engine.get("injected"),
                None,
                "session {src_session:#x}: the injected write was taken"
            );
            assert_eq!(engine.get("after"), Some(&Value::Int(2)));
            assert_eq!(engine.get("reply"), Some(&Value::Int(3)));
        }
        let dropped = sim.nodes[0].engine.as_ref().unwrap().counters().dropped;
        assert!(dropped.stale >= 64, "session {src_session:#x}: {dropped:?}");
    }
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
    let (mut engine, cluster, now) = engine_with(cfg);
    let attacker: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let forged = wire::encode_message(&delta(77, 1, "door", Value::from("open"), now.wall_ms));
    for datagram in support::data_datagrams(cluster, 77, 1, 1, &forged, usize::MAX) {
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
    assert!(captured.iter().all(|d| d[4] & wire::FLAG_SEALED != 0));

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
