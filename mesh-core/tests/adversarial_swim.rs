//! Hostile membership input: ping-reqs and rumors from a verified member cannot make a
//! node send, remember or declare unbounded things.

// Tests read the wall clock for plausible incarnations (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

mod support;
use support::{introduce, packet};

use mesh_core::wire::{self, Frame, Rumor, RumorState};
use mesh_core::{Engine, NoncePrefix, Now, PeerState};

fn now() -> Now {
    Now {
        mono_us: 1_000_000,
        wall_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_millis() as u64,
    }
}

/// A started engine with two verified members: the attacker (incarnation 77) and a
/// victim (incarnation 88).
fn setup() -> (Engine, u32, SocketAddr, SocketAddr) {
    let cfg = support::node_config("target", "127.0.0.1");
    let cluster = wire::cluster_id(&cfg.cluster);
    let now = now();
    let mut engine = Engine::new(cfg, 1, 7, NoncePrefix([7; 16]), now);
    engine.start(now);
    while engine.poll_transmit(now).is_some() {}
    let attacker: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let victim: SocketAddr = "127.0.0.1:10".parse().unwrap();
    introduce(&mut engine, now, attacker, 77, cluster);
    introduce(&mut engine, now, victim, 88, cluster);
    (engine, cluster, attacker, victim)
}

#[test]
fn a_ping_req_flood_relays_a_bounded_number_of_probes() {
    let (mut engine, cluster, attacker, victim) = setup();
    let now = now();
    let target = format!("peer-{victim}");
    let mut relayed = 0;
    // 200 datagrams of 20 ping-reqs each, about the victim and about made-up members.
    for i in 0..200 {
        let mut frames: Vec<Frame> = (0..20).map(|_| Frame::PingReq(target.clone())).collect();
        frames.push(Frame::PingReq(format!("ghost-{i}")));
        engine.handle_datagram(now, attacker, &packet(cluster, 77, frames));
        while let Some(t) = engine.poll_transmit(now) {
            if t.dst == victim {
                relayed += 1;
            } else {
                assert_eq!(t.dst, attacker, "nothing goes to anyone else");
            }
        }
    }
    assert!(relayed >= 1, "a genuine ping-req is relayed");
    assert!(relayed <= 4, "{relayed} probes relayed for 4,200 ping-reqs");
    assert!(engine.counters().dropped.rate_limited >= 4_000);
}

#[test]
fn forged_rumors_neither_kill_a_member_nor_fill_the_member_list() {
    let (mut engine, cluster, attacker, victim) = setup();
    let now = now();
    let victim_id = format!("peer-{victim}");
    let forged = |state, refutation, incarnation| Rumor {
        node_id: victim_id.clone(),
        addr: victim,
        incarnation,
        refutation,
        state,
        by: "attacker".into(),
    };
    // A death far ahead of any real refutation, and one about another run.
    let rumors = vec![
        forged(RumorState::Dead, 1_000_000, 88),
        forged(RumorState::Left, 0, 99),
    ];
    engine.handle_datagram(
        now,
        attacker,
        &packet(cluster, 77, vec![Frame::Rumors(rumors)]),
    );
    // A thousand made-up members, ten times over.
    for round in 0..10u16 {
        let flood: Vec<Rumor> = (0..1_000u16)
            .map(|i| Rumor {
                node_id: format!("ghost-{round}-{i}"),
                addr: SocketAddr::from(([127, 0, 0, 1], 20_000 + round * 1_000 + i)),
                incarnation: 5,
                refutation: 0,
                state: RumorState::Alive,
                by: String::new(),
            })
            .collect();
        let datagram = packet(cluster, 77, vec![Frame::Rumors(flood)]);
        engine.handle_datagram(now, attacker, &datagram);
    }
    let peers = engine.peers(now);
    let victim_state = peers.iter().find(|p| p.addr == victim).map(|p| p.state);
    assert_eq!(victim_state, Some(PeerState::Alive));
    assert!(
        peers.len() <= 2 + 64,
        "{} members after the flood",
        peers.len()
    );
    assert_eq!(
        engine.counters().peers_failed + engine.counters().peers_left,
        0
    );
}
