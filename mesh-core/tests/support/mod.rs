//! Shared by the integration tests: how a peer passes the address check, which seeds a
//! seeded test runs, and waiting for real nodes.

#![allow(dead_code)] // each test binary uses its own part

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use mesh_core::wire::{self, Data, Frame, GossipPeer, Heartbeat, Packet};
use mesh_core::{Engine, Now};

/// A heartbeat packet from `node_id`, with `extra` frames after it.
pub fn hello(
    cluster: u32,
    src_inc: u64,
    node_id: &str,
    gossip: Vec<GossipPeer>,
    extra: Vec<Frame>,
) -> Vec<u8> {
    let mut frames = vec![Frame::Heartbeat(Heartbeat {
        node_id: node_id.to_owned(),
        fingerprint: 0,
        reply: false,
        members: 0,
        gossip,
    })];
    frames.extend(extra);
    packet(cluster, src_inc, frames)
}

/// A datagram of `frames` from incarnation `src_inc`, naming no session on either side
/// (as a first contact does).
pub fn packet(cluster: u32, src_inc: u64, frames: Vec<Frame>) -> Vec<u8> {
    wire::encode_packet(
        cluster,
        &Packet {
            src_inc,
            dst_inc: 0,
            src_session: 0,
            dst_session: 0,
            frames,
        },
    )
}

/// The nonce of a challenge in `datagram`, if it carries one.
pub fn challenge_in(cluster: u32, datagram: &[u8]) -> Option<u64> {
    let packet = wire::decode_packet(cluster, datagram).ok()?;
    packet.frames.iter().find_map(|f| match f {
        Frame::Challenge(n) => Some(*n),
        _ => None,
    })
}

/// Passes the engine's address check the way a real peer does: introduces itself,
/// then echoes the challenge it gets back. Anyone who owns an address can do this, so
/// the attacks below that need a peer come from such a verified sender.
pub fn introduce(engine: &mut Engine, now: Now, from: SocketAddr, src_inc: u64, cluster: u32) {
    introduce_as(engine, now, from, src_inc, cluster, &format!("peer-{from}"));
}

/// [`introduce`], the sender naming itself `node_id`.
pub fn introduce_as(
    engine: &mut Engine,
    now: Now,
    from: SocketAddr,
    src_inc: u64,
    cluster: u32,
    node_id: &str,
) {
    engine.handle_datagram(now, from, &hello(cluster, src_inc, node_id, vec![], vec![]));
    let mut nonce = None;
    while let Some(t) = engine.poll_transmit(now) {
        if t.dst == from {
            nonce = nonce.or(challenge_in(cluster, &t.payload));
        }
    }
    let nonce = nonce.expect("an unverified sender is challenged");
    let answer = Packet {
        src_inc,
        dst_inc: 0,
        src_session: 0,
        dst_session: 0,
        frames: vec![Frame::Response(nonce)],
    };
    engine.handle_datagram(now, from, &wire::encode_packet(cluster, &answer));
    while engine.poll_transmit(now).is_some() {}
}

/// [`introduce`] over a real socket.
pub fn introduce_over(socket: &UdpSocket, target: SocketAddr, src_inc: u64, cluster: u32) {
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket
        .send_to(&hello(cluster, src_inc, "attacker", vec![], vec![]), target)
        .unwrap();
    let mut buf = vec![0u8; 65_536];
    let nonce = loop {
        let (len, _) = socket.recv_from(&mut buf).expect("a challenge within 5 s");
        if let Some(n) = challenge_in(cluster, &buf[..len]) {
            break n;
        }
    };
    let answer = Packet {
        src_inc,
        dst_inc: 0,
        src_session: 0,
        dst_session: 0,
        frames: vec![Frame::Response(nonce)],
    };
    socket
        .send_to(&wire::encode_packet(cluster, &answer), target)
        .unwrap();
}

/// The seeds a seeded test runs: the one named by `one` to replay it, or `1..=N` with N
/// from `many` (default `default`), or the range `many` names as `FIRST..=LAST`.
pub fn seeds_from_env(one: &str, many: &str, default: u64) -> Vec<u64> {
    if let Ok(seed) = std::env::var(one) {
        let seed = seed
            .parse()
            .unwrap_or_else(|_| panic!("{one} must be an integer, not {seed:?}"));
        return vec![seed];
    }
    let value = std::env::var(many).unwrap_or_default();
    // `FIRST..=LAST` sweeps a later range, to compare builds on fresh seeds.
    if let Some((first, last)) = value.split_once("..=") {
        let parse = |s: &str| -> u64 {
            s.parse()
                .unwrap_or_else(|_| panic!("{many} must be N or FIRST..=LAST, not {value:?}"))
        };
        return (parse(first)..=parse(last)).collect();
    }
    let count = value.parse().unwrap_or(default);
    (1..=count).collect()
}

/// The simulation tests' configuration: short intervals, so thousands of virtual seconds
/// of faults run in a few real ones.
pub fn sim_config() -> mesh_core::Config {
    let mut c = mesh_core::Config::new("template", 0);
    c.sync_interval = Duration::from_secs(1);
    c.heartbeat_interval = Duration::from_millis(250);
    c.peer_timeout = Duration::from_secs(1);
    c.initial_rto = Duration::from_millis(200);
    c.min_rto = Duration::from_millis(10);
    c.max_rto = Duration::from_secs(2);
    c.max_probe_interval = Duration::from_secs(2);
    c
}

/// The C tests' intervals in the simulator: 100 ms probes, 200 ms sync rounds, for the
/// tests of lossy paths and datagram sizes.
pub fn fast_path_config() -> mesh_core::Config {
    let mut c = mesh_core::Config::new("template", 0);
    c.sync_interval = Duration::from_millis(200);
    c.heartbeat_interval = Duration::from_millis(100);
    c.peer_timeout = Duration::from_secs(3);
    c.initial_rto = Duration::from_millis(100);
    c
}

/// `len` printable characters, random enough that compression leaves them about as
/// long: a value that fills datagrams, packed or not.
pub fn printable_value(rng: &mut fastrand::Rng, len: usize) -> mesh_core::Value {
    mesh_core::Value::String((0..len).map(|_| rng.char('!'..='~')).collect())
}

/// How long a test on real sockets waits for something before failing.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Waits until `cond` holds, failing the test after [`PATIENCE`] with `what`.
// Tests on real nodes wait against the wall clock (see clippy.toml).
#[allow(clippy::disallowed_methods)]
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A real node's configuration on `host`, port 0, with short intervals.
pub fn node_config(id: &str, host: &str) -> mesh_core::Config {
    let mut c = mesh_core::Config::new(id, 0);
    c.host = host.into();
    c.sync_interval = Duration::from_millis(500);
    c.heartbeat_interval = Duration::from_millis(200);
    c.peer_timeout = Duration::from_secs(1);
    c.initial_rto = Duration::from_millis(100);
    c.max_probe_interval = Duration::from_secs(1);
    c
}

/// A random mild fault mix: up to 20% loss, 5% duplication, 10% reordering and 2 ms of
/// jitter (drawn in that order, so a seed always gives the same mix).
pub fn mild_faults(rng: &mut fastrand::Rng) -> mesh_core::FaultConfig {
    mesh_core::FaultConfig {
        loss_rate: rng.f64() * 0.2,
        duplicate_rate: rng.f64() * 0.05,
        reorder_rate: rng.f64() * 0.1,
        jitter: Duration::from_micros(rng.u64(0..2_000)),
        ..mesh_core::FaultConfig::default()
    }
}

/// One datagram per fragment of `message`, as a peer's channel would send them from
/// sequence number `first_seq` on. A single fragment is the whole message.
pub fn data_datagrams(
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
                src_session: 0,
                dst_session: 0,
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

/// The key a divergence names, described for a failure message: every write of it the
/// oracle knows and each live node's entry.
pub fn describe(sim: &mesh_core::sim::Sim, divergence: &mesh_core::sim::Divergence) -> String {
    use mesh_core::sim::Divergence;
    match divergence {
        Divergence::WrongValue { key, .. } | Divergence::ReplicasDiffer { key, .. } => {
            sim.describe_key(key)
        }
        _ => String::new(),
    }
}

/// Each node's version-vector fingerprint, in node order (0 for a node not running):
/// nodes that agree on what they account for agree on it.
pub fn fingerprints(sim: &mesh_core::sim::Sim) -> Vec<u64> {
    sim.nodes
        .iter()
        .map(|n| {
            n.engine
                .as_ref()
                .map_or(0, |e| e.replica().version_vector().fingerprint())
        })
        .collect()
}
