//! Addresses over real sockets: IPv6 and dual-stack meshes, advertised addresses, DNS
//! seeds. IPv6 tests need the IPv6 loopback (`::1`); without it they fail saying so.

// Tests drive real nodes against the wall clock (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod support;
use support::wait_until;

use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mesh_core::wire::{self, Frame, GossipPeer};
use mesh_core::{Config, Engine, Error, FaultConfig, Node, NoncePrefix, Now, PeerState, Value};

fn config(id: &str, host: &str) -> Config {
    support::node_config(id, host)
}

/// Fails the test, naming the missing capability, if this machine has no IPv6 loopback.
fn require_ipv6_loopback() {
    if let Err(e) = UdpSocket::bind("[::1]:0") {
        panic!(
            "this test needs the IPv6 loopback address ::1, which this environment lacks \
             (binding [::1]:0 failed: {e}); enable IPv6 on the loopback interface \
             (sysctl net.ipv6.conf.lo.disable_ipv6=0) to run it"
        );
    }
}

fn alive_at(node: &Node, id: &str) -> Option<SocketAddr> {
    node.peers()
        .into_iter()
        .find(|p| p.node_id.as_deref() == Some(id) && p.state == PeerState::Alive)
        .map(|p| p.addr)
}

#[test]
fn an_ipv6_mesh_on_the_loopback_converges() {
    require_ipv6_loopback();
    let a = Node::new(config("v6a", "::1")).unwrap();
    let b = Node::new(config("v6b", "::1")).unwrap();
    assert!(a.local_addr().is_ipv6());
    b.add_bootstrap_peer("::1", a.port()).unwrap();
    a.start().unwrap();
    b.start().unwrap();
    a.set("k", "over ipv6").unwrap();
    wait_until("the write to cross ::1", || {
        b.get("k") == Some(Value::from("over ipv6"))
    });
    let seen = alive_at(&b, "v6a").unwrap();
    assert_eq!(seen, SocketAddr::new("::1".parse().unwrap(), a.port()));
    // The bracketed form is accepted too.
    b.add_bootstrap_peer("[::1]", a.port()).unwrap();
}

#[test]
fn a_dual_stack_node_knows_ipv4_peers_by_their_ipv4_address() {
    require_ipv6_loopback();
    let hub = Node::new(config("hub", "::")).unwrap();
    let v4 = Node::new(config("v4", "127.0.0.1")).unwrap();
    let v6 = Node::new(config("v6", "::1")).unwrap();
    v4.add_bootstrap_peer("127.0.0.1", hub.port()).unwrap();
    v6.add_bootstrap_peer("::1", hub.port()).unwrap();
    for node in [&hub, &v4, &v6] {
        node.start().unwrap();
    }
    v4.set("from", "v4").unwrap();
    v6.set("to", "v6").unwrap();
    // The v4-only and the v6-only node cannot talk to each other: the hub relays.
    wait_until("both writes to reach every node", || {
        [&hub, &v4, &v6]
            .iter()
            .all(|n| n.get("from").is_some() && n.get("to").is_some())
    });
    let v4_seen = alive_at(&hub, "v4").unwrap_or_else(|| {
        panic!(
            "the hub bound to [::] never heard the IPv4 node: this host may not allow \
             dual-stack sockets (IPV6_V6ONLY off); peers: {:?}",
            hub.peers()
        )
    });
    assert_eq!(
        v4_seen,
        SocketAddr::from(([127, 0, 0, 1], v4.port())),
        "an IPv4 peer is known by its IPv4 address, never v4-mapped"
    );
    assert_eq!(
        alive_at(&hub, "v6").unwrap().ip(),
        "::1".parse::<std::net::IpAddr>().unwrap()
    );
    // Each peer is known once, under one address.
    let ids: Vec<_> = hub.peers().into_iter().filter_map(|p| p.node_id).collect();
    let unique: BTreeSet<_> = ids.iter().collect();
    assert_eq!(ids.len(), unique.len(), "{:?}", hub.peers());
    // A v4-mapped bootstrap address is the IPv4 peer.
    hub.add_bootstrap_peer("::ffff:127.0.0.1", v4.port())
        .unwrap();
    assert_eq!(
        hub.peers()
            .iter()
            .filter(|p| p.addr.port() == v4.port())
            .count(),
        1,
        "{:?}",
        hub.peers()
    );
}

#[test]
fn a_family_the_socket_cannot_reach_is_refused_at_once() {
    require_ipv6_loopback();
    let v4 = Node::new(config("only4", "127.0.0.1")).unwrap();
    let err = v4.add_bootstrap_peer("::1", 7000).unwrap_err();
    assert!(matches!(err, Error::Resolve { .. }), "{err}");
    assert!(err.to_string().contains("cannot reach IPv6"), "{err}");
    let v6 = Node::new(config("only6", "::1")).unwrap();
    let err = v6.add_bootstrap_peer("127.0.0.1", 7000).unwrap_err();
    assert!(err.to_string().contains("cannot reach IPv4"), "{err}");
}

#[test]
fn malformed_host_names_are_errors_and_unresolved_ones_are_not() {
    let node = Node::new(config("names", "127.0.0.1")).unwrap();
    for bad in ["", "bad host", "-dash.example", "a..b", "x!y"] {
        let err = node.add_bootstrap_peer(bad, 7000).unwrap_err();
        assert!(matches!(err, Error::Resolve { .. }), "{bad:?}: {err}");
    }
    // A valid name is accepted and resolved in the background (`localhost` only: tests
    // never look up outside names).
    node.add_bootstrap_peer("localhost", 7000).unwrap();
}

#[test]
fn a_dns_seed_is_resolved_off_the_callers_thread_and_joined() {
    let seed = Node::new(config("seed", "127.0.0.1")).unwrap();
    let joiner = Node::new(config("joiner", "127.0.0.1")).unwrap();
    seed.start().unwrap();
    joiner.start().unwrap();
    joiner.add_bootstrap_peer("localhost", seed.port()).unwrap();
    seed.set("hello", 1).unwrap();
    wait_until("the joiner to find the seed by name", || {
        joiner.get("hello") == Some(Value::Int(1))
    });
    assert_eq!(
        alive_at(&joiner, "seed"),
        Some(SocketAddr::from(([127, 0, 0, 1], seed.port())))
    );
}

#[test]
fn a_dns_seed_that_comes_up_late_is_still_joined() {
    // A port with nothing behind it yet.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let joiner = Node::new(config("early", "127.0.0.1")).unwrap();
    joiner.add_bootstrap_peer("localhost", port).unwrap();
    joiner.start().unwrap();
    // Long enough for the seed to count as unreachable and be resolved again.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(joiner.status().peers.alive_peers, 0);
    let mut c = config("late", "127.0.0.1");
    c.port = port;
    let late = Node::new(c).unwrap();
    late.start().unwrap();
    late.set("late", true).unwrap();
    wait_until("the late seed to be joined", || {
        joiner.get("late") == Some(Value::Bool(true))
    });
    // Resolving again did not make the same address two peers.
    assert_eq!(joiner.peers().len(), 1, "{:?}", joiner.peers());
}

/// A UDP port forward, as a NAT's port mapping does it: datagrams to `addr` go to the
/// target from a socket per client, and the target's answers go back from `addr`.
struct PortForward {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PortForward {
    fn new(target: SocketAddr) -> PortForward {
        let outer = UdpSocket::bind("127.0.0.1:0").unwrap();
        outer.set_nonblocking(true).unwrap();
        let addr = outer.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut inner: HashMap<SocketAddr, UdpSocket> = HashMap::new();
            let mut buf = vec![0u8; 65_536];
            while !stopping.load(Ordering::Relaxed) {
                let mut idle = true;
                while let Ok((len, client)) = outer.recv_from(&mut buf) {
                    idle = false;
                    let socket = inner.entry(client).or_insert_with(|| {
                        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                        s.set_nonblocking(true).unwrap();
                        s
                    });
                    let _ = socket.send_to(&buf[..len], target);
                }
                for (client, socket) in &inner {
                    while let Ok((len, _)) = socket.recv_from(&mut buf) {
                        idle = false;
                        let _ = outer.send_to(&buf[..len], client);
                    }
                }
                if idle {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        PortForward {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_third_node_reaches_a_node_at_its_advertised_address_learned_by_gossip() {
    let bootstrap = Node::new(config("boot", "127.0.0.1")).unwrap();
    // `nat` is reachable from `third` only through a port forward, which it advertises.
    let mut c = config("nat", "127.0.0.1");
    let bound = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    c.port = bound.port();
    let forward = PortForward::new(bound);
    c.advertise_addr = Some(forward.addr);
    let nat = Node::new(c).unwrap();
    assert_eq!(nat.advertise_addr(), Some(forward.addr));
    let third = Node::new(config("third", "127.0.0.1")).unwrap();
    nat.set_faults(FaultConfig {
        partitioned: [third.local_addr()].into(),
        ..FaultConfig::default()
    })
    .unwrap();
    nat.add_bootstrap_peer("127.0.0.1", bootstrap.port())
        .unwrap();
    third
        .add_bootstrap_peer("127.0.0.1", bootstrap.port())
        .unwrap();
    for node in [&bootstrap, &nat, &third] {
        node.start().unwrap();
    }
    // The bootstrap node hears `nat` at its source address and records what it
    // advertises.
    wait_until(
        "the bootstrap node to record the advertised address",
        || {
            bootstrap.peers().iter().any(|p| {
                p.node_id.as_deref() == Some("nat")
                    && p.addr == nat.local_addr()
                    && p.advertised_addr == Some(forward.addr)
            })
        },
    );
    // `third` learns `nat` from the bootstrap node's gossip at the advertised address,
    // the only one it can reach `nat` at.
    wait_until(
        "the third node to reach nat through its advertised address",
        || alive_at(&third, "nat") == Some(forward.addr),
    );
    assert!(
        third.peers().iter().all(|p| p.addr != nat.local_addr()),
        "the source address was never gossiped: {:?}",
        third.peers()
    );
}

#[test]
fn a_node_bound_to_every_interface_advertises_its_loopback_address_with_its_port() {
    let mut c = config("wild", "0.0.0.0");
    c.advertise_addr = Some("127.0.0.1:0".parse().unwrap());
    let wild = Node::new(c).unwrap();
    let port = wild.port();
    assert_eq!(
        wild.advertise_addr(),
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    );
    let boot = Node::new(config("boot2", "127.0.0.1")).unwrap();
    let third = Node::new(config("third2", "127.0.0.1")).unwrap();
    wild.add_bootstrap_peer("127.0.0.1", boot.port()).unwrap();
    third.add_bootstrap_peer("127.0.0.1", boot.port()).unwrap();
    for node in [&boot, &wild, &third] {
        node.start().unwrap();
    }
    wait_until("the third node to find wild", || {
        alive_at(&third, "wild") == Some(SocketAddr::from(([127, 0, 0, 1], port)))
    });
}

/// The engine, without sockets: a verified member's advertised address is what goes
/// into gossip; a loopback address advertised from elsewhere is not believed.
#[test]
fn gossip_names_the_advertised_address_and_only_a_believable_one() {
    let config = support::sim_config();
    let cluster = wire::cluster_id(&config.cluster);
    let now = Now {
        mono_us: 1_000_000,
        wall_ms: 1_700_000_000_000,
    };
    let mut engine = Engine::new(config, 7 << 16, 1, NoncePrefix([1; 16]), now);
    engine.start(now);
    let source: SocketAddr = "10.0.0.5:7000".parse().unwrap();
    let public: SocketAddr = "[2001:db8::5]:7000".parse().unwrap();
    let reader: SocketAddr = "10.0.0.9:7000".parse().unwrap();
    let src_inc = 5 << 16;
    support::introduce(&mut engine, now, source, src_inc, cluster);
    support::introduce(&mut engine, now, reader, 6 << 16, cluster);
    let heartbeat = |advertised: SocketAddr| {
        support::hello(
            cluster,
            src_inc,
            "natted",
            vec![],
            vec![Frame::Advertise(advertised)],
        )
    };
    // Runs the engine for a while; returns how its heartbeats to `reader` gossip the
    // member.
    let gossiped = |engine: &mut Engine| -> Vec<GossipPeer> {
        let mut found = Vec::new();
        for round in 0..40u64 {
            let later = Now {
                mono_us: now.mono_us + (round + 1) * 300_000,
                wall_ms: now.wall_ms,
            };
            engine.handle_timeout(later);
            while let Some(t) = engine.poll_transmit(later) {
                let Ok(packet) = wire::decode_packet(cluster, &t.payload) else {
                    continue;
                };
                for frame in packet.frames {
                    if let Frame::Heartbeat(hb) = frame {
                        if t.dst == reader {
                            found.extend(hb.gossip.into_iter().filter(|g| g.node_id == "natted"));
                        }
                    }
                }
            }
            if !found.is_empty() {
                break;
            }
        }
        found
    };
    engine.handle_datagram(now, source, &heartbeat(public));
    let found = gossiped(&mut engine);
    assert!(!found.is_empty(), "the member was never gossiped");
    assert!(found.iter().all(|g| g.addr == public), "{found:?}");
    let info = engine.peers(now);
    let member = info.iter().find(|p| p.addr == source).unwrap();
    assert_eq!(member.advertised_addr, Some(public));

    // A loopback address advertised from a remote source is not believed: the member is
    // gossiped at its source address again.
    engine.handle_datagram(now, source, &heartbeat("127.0.0.1:7000".parse().unwrap()));
    let info = engine.peers(now);
    assert_eq!(
        info.iter()
            .find(|p| p.addr == source)
            .unwrap()
            .advertised_addr,
        None
    );
    let found = gossiped(&mut engine);
    assert!(found.iter().all(|g| g.addr == source), "{found:?}");
}

/// A node given its own address as a seed hears its own datagrams come back: it drops
/// them and never lists itself as a peer. (A datagram is taken for its own by the
/// session it names or its node id, not by its incarnation alone, which another node
/// started in the same millisecond may share.)
#[test]
fn a_node_given_its_own_address_never_takes_itself_for_a_peer() {
    let own: SocketAddr = "127.0.0.1:7000".parse().unwrap();
    let mut now = Now {
        mono_us: 1_000_000,
        wall_ms: 1_700_000_000_000,
    };
    let mut engine = Engine::new(
        config("n1", "127.0.0.1"),
        now.wall_ms << 16,
        1,
        NoncePrefix([1; 16]),
        now,
    );
    engine.add_bootstrap_peer(now, own);
    engine.start(now);
    let mut looped = 0;
    for _ in 0..2_000 {
        // Bounded: a node that answered itself would talk to itself for ever.
        while let Some(t) = (looped < 10_000)
            .then(|| engine.poll_transmit(now))
            .flatten()
        {
            assert_eq!(t.dst, own, "only its own address is known");
            looped += 1;
            engine.handle_datagram(now, own, &t.payload);
        }
        let Some(next) = engine.poll_timeout() else {
            break;
        };
        let step = next.saturating_sub(now.mono_us).max(1);
        now.mono_us += step;
        now.wall_ms += step / 1000;
        engine.handle_timeout(now);
    }
    assert!(
        looped > 3,
        "it kept contacting its seed: {looped} datagrams"
    );
    assert_eq!(
        engine.counters().dropped.stale,
        looped as u64,
        "each came back and was dropped"
    );
    assert!(
        engine
            .peers(now)
            .iter()
            .all(|p| p.node_id.is_none() && p.state != PeerState::Alive),
        "{:?}",
        engine.peers(now)
    );
}
