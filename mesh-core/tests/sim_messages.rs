//! User messages in the deterministic simulator and against a hostile peer: delivered
//! reliably and in send order through loss, duplication and reordering, never stored in
//! the state; a peer sending more than allowed is counted and dropped, within the
//! memory budget.

use std::time::Duration;

mod support;

use mesh_core::fault::FaultConfig;
use mesh_core::sim::Sim;
use mesh_core::wire::{self, Data, Frame, Message, Packet, UserMessage};
use mesh_core::{Config, Engine, Error, Event, NoncePrefix, Now};

fn sim_config() -> Config {
    support::sim_config()
}

fn hostile_network() -> FaultConfig {
    FaultConfig {
        loss_rate: 0.1,
        duplicate_rate: 0.05,
        reorder_rate: 0.2,
        jitter: Duration::from_millis(20),
        ..FaultConfig::default()
    }
}

/// The `i`th message a sender sends: sizes from empty to several fragments.
fn payload(sender: usize, i: usize) -> Vec<u8> {
    let len = (i * 397) % 6000;
    let mut data = format!("{sender}:{i}:").into_bytes();
    data.extend((0..len).map(|b| (b ^ i) as u8));
    data
}

fn received_from(sim: &Sim, node: usize, sender: &str) -> Vec<Vec<u8>> {
    sim.inbox[node]
        .iter()
        .filter(|(s, _)| s == sender)
        .map(|(_, d)| d.clone())
        .collect()
}

fn wait_for_peers(sim: &mut Sim, n: usize) {
    for _ in 0..200 {
        let all = (0..n).all(|i| {
            sim.nodes[i]
                .engine
                .as_ref()
                .is_some_and(|e| e.message_peers().len() == n - 1)
        });
        if all {
            return;
        }
        sim.run_for(Duration::from_millis(100));
    }
    panic!("the mesh did not form");
}

#[test]
fn messages_arrive_in_send_order_through_loss_and_reordering() {
    for seed in support::seeds_from_env("MESH_MSG_SEED", "MESH_MSG_SEEDS", 4) {
        let mut sim = Sim::new(3, sim_config(), FaultConfig::default(), seed);
        wait_for_peers(&mut sim, 3);
        sim.set_faults(hostile_network());
        const COUNT: usize = 300;
        for i in 0..COUNT {
            sim.send(1, "n0", &payload(1, i)).expect("queued");
            sim.send(2, "n0", &payload(2, i)).expect("queued");
            if i % 20 == 0 {
                sim.run_for(Duration::from_millis(3));
            }
        }
        for _ in 0..600 {
            if received_from(&sim, 0, "n1").len() == COUNT
                && received_from(&sim, 0, "n2").len() == COUNT
            {
                break;
            }
            sim.run_for(Duration::from_millis(100));
        }
        for sender in [1, 2] {
            let got = received_from(&sim, 0, &format!("n{sender}"));
            let want: Vec<Vec<u8>> = (0..COUNT).map(|i| payload(sender, i)).collect();
            assert_eq!(
                got.len(),
                COUNT,
                "seed {seed}: all of n{sender}'s messages; {:?}",
                sim.nodes[0].engine.as_ref().unwrap().status().counters
            );
            assert!(
                got == want,
                "seed {seed}: n{sender}'s messages out of order"
            );
        }
        assert!(sim.inbox[1].is_empty() && sim.inbox[2].is_empty());
        let engine = sim.nodes[0].engine.as_ref().unwrap();
        assert_eq!(
            engine.live_keys(),
            0,
            "messages are not stored in the state"
        );
        assert_eq!(engine.status().counters.messages_received, 2 * COUNT as u64);
        assert_eq!(engine.status().counters.dropped.messages, 0);
        sim.set_faults(FaultConfig::default());
        sim.run_for(Duration::from_secs(5));
        assert!(sim.check_converged().is_ok());
        for node in &sim.nodes {
            assert_eq!(node.engine.as_ref().unwrap().live_keys(), 0);
        }
    }
}

#[test]
fn a_broadcast_reaches_every_alive_peer_once() {
    let mut sim = Sim::new(4, sim_config(), hostile_network(), 9);
    wait_for_peers(&mut sim, 4);
    assert_eq!(sim.broadcast(3, b"hello all").unwrap(), 3);
    sim.run_for(Duration::from_secs(10));
    for i in 0..3 {
        assert_eq!(
            sim.inbox[i],
            vec![("n3".to_owned(), b"hello all".to_vec())],
            "node {i}"
        );
    }
    assert!(sim.inbox[3].is_empty(), "not to itself");
}

#[test]
fn unknown_peers_and_oversized_messages_are_refused() {
    let mut config = sim_config();
    config.max_value_size = 1000;
    let mut sim = Sim::new(2, config, FaultConfig::default(), 3);
    wait_for_peers(&mut sim, 2);
    assert!(matches!(
        sim.send(0, "nobody", b"x"),
        Err(Error::PeerNotFound { node_id }) if node_id == "nobody"
    ));
    assert!(matches!(
        sim.send(0, "n1", &[0; 1001]),
        Err(Error::MessageTooLarge {
            size: 1001,
            max: 1000
        })
    ));
    assert!(matches!(
        sim.broadcast(0, &[0; 1001]),
        Err(Error::MessageTooLarge { .. })
    ));
    sim.send(0, "n1", &[7; 1000]).expect("at the limit");
    // A crashed peer is soon no longer alive: sending to it is refused.
    sim.crash(1);
    sim.run_for(Duration::from_secs(5));
    assert!(matches!(
        sim.send(0, "n1", b"x"),
        Err(Error::PeerNotFound { .. })
    ));
    assert_eq!(sim.broadcast(0, b"x").unwrap(), 0);
}

#[test]
fn a_full_send_queue_is_reported_not_grown() {
    let mut sim = Sim::new(2, sim_config(), FaultConfig::default(), 5);
    wait_for_peers(&mut sim, 2);
    // Cut the link so nothing drains; the queue fills up.
    sim.partition(vec![0, 1]);
    let mut full = None;
    for i in 0..200_000 {
        match sim.send(0, "n1", &[1; 1000]) {
            Ok(()) => {}
            Err(Error::QueueFull { node_id }) => {
                assert_eq!(node_id, "n1");
                full = Some(i);
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(full.is_some(), "the queue is bounded");
    let memory = sim.nodes[0].engine.as_ref().unwrap().memory();
    assert!(memory.queued_bytes <= 64 * 1024 * 1024 + 2000);
}

fn now(ms: u64) -> Now {
    Now {
        mono_us: ms * 1000,
        wall_ms: 1_767_225_600_000 + ms,
    }
}

fn user_datagram(cluster: u32, src_inc: u64, seq: u64, message_seq: u64, len: usize) -> Vec<u8> {
    let bytes = wire::encode_message(&Message::User(UserMessage {
        seq: message_seq,
        data: vec![message_seq as u8; len],
    }));
    wire::encode_packet(
        cluster,
        &Packet {
            src_inc,
            dst_inc: 0,
            src_session: 0,
            dst_session: 0,
            frames: vec![Frame::Data(Data {
                seq,
                msg_id: seq,
                frag: 0,
                frags: 1,
                bytes,
            })],
        },
    )
}

#[test]
fn a_peer_sending_past_the_limits_is_counted_and_dropped_within_the_budget() {
    let mut config = Config::new("target", 0);
    config.max_value_size = 16 * 1024;
    config.max_reassembly = 200 * 1024;
    config.validate().expect("valid");
    let cluster = wire::cluster_id(&config.cluster);
    let mut engine = Engine::new(config, 1 << 40, 1, NoncePrefix([1; 16]), now(0));
    engine.start(now(0));
    let from = "127.0.0.1:7777".parse().unwrap();
    let src_inc = (now(0).wall_ms - 1000) << 16;
    support::introduce(&mut engine, now(1), from, src_inc, cluster);
    while engine.poll_event().is_some() {}

    // Far ahead of anything sent: refused.
    engine.handle_datagram(
        now(2),
        from,
        &user_datagram(cluster, src_inc, 1, 1 << 40, 10),
    );
    assert_eq!(engine.status().counters.dropped.messages, 1);

    // Everything but message 1: held for ordering until the budget is spent, then
    // dropped and counted.
    const SENT: u64 = 200;
    for seq in 2..=SENT {
        engine.handle_datagram(
            now(3),
            from,
            &user_datagram(cluster, src_inc, seq, seq, 4000),
        );
        while engine.poll_transmit(now(3)).is_some() {}
        assert!(engine.memory().reassembly_bytes <= 200 * 1024);
    }
    let dropped = engine.status().counters.dropped.messages;
    assert!(dropped > 100, "only {dropped} dropped");
    assert!(engine.poll_event().is_none(), "nothing before message 1");

    // Message 1 releases those held, in order.
    engine.handle_datagram(
        now(4),
        from,
        &user_datagram(cluster, src_inc, SENT + 1, 1, 1),
    );
    let mut got = Vec::new();
    while let Some(event) = engine.poll_event() {
        if let Event::Message { sender, data } = event {
            assert_eq!(sender, format!("peer-{from}"), "the verified peer's id");
            got.push(data[0]);
        }
    }
    let held = SENT - 1 - (dropped - 1);
    assert_eq!(got.len() as u64, 1 + held);
    assert!(
        got.windows(2).all(|w| w[1] == w[0] + 1),
        "in order: {got:?}"
    );
    assert_eq!(engine.memory().reassembly_bytes, 0);

    // The gap left by the dropped ones is skipped once it has stalled long enough, and
    // what follows is delivered.
    engine.handle_datagram(
        now(5),
        from,
        &user_datagram(cluster, src_inc, SENT + 2, SENT + 1, 1),
    );
    assert!(engine.poll_event().is_none());
    let deadline = engine.poll_timeout().expect("a timer");
    let mut t = 5;
    while engine.poll_event().is_none() && t < 200_000 {
        t += 1000;
        let now = now(t);
        if engine.poll_timeout().is_some_and(|d| d <= now.mono_us) {
            engine.handle_timeout(now);
        }
        while engine.poll_transmit(now).is_some() {}
        // Keep the peer alive.
        engine.handle_datagram(
            now,
            from,
            &support::hello(cluster, src_inc, &format!("peer-{from}"), vec![], vec![]),
        );
    }
    assert!(deadline > 0);
    assert!(t < 200_000, "the gap was skipped");
    assert_eq!(engine.live_keys(), 0);
}
