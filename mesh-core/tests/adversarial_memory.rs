//! Hostile input measured in process memory: a binary of its own, so that no other test
//! running in parallel threads moves the resident-set figure.

// Tests drive real nodes against the wall clock (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::net::UdpSocket;
use std::time::{Duration, Instant};

mod support;

use mesh_core::wire::{self, Data, Frame, Packet};
use mesh_core::{Config, Node, Value};

/// Resident set size of this process, bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

/// The slot-table flood: empty fragments, each of a new message claiming 72,945
/// fragments (what the default budget allowed with ~920-byte fragments). 40 bytes of
/// attack per datagram once cost 1.75 MB of slot table.
#[test]
fn slot_table_flood_over_a_socket_does_not_grow_memory() {
    let mut config = Config::new("target", 0);
    config.host = "127.0.0.1".into();
    let node = Node::new(config.clone()).unwrap();
    node.start().unwrap();
    node.set("before", 1).unwrap();
    let cluster = wire::cluster_id(&config.cluster);
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    // A sender that owns its address passes the address check; the flood comes after.
    support::introduce_over(&attacker, node.local_addr(), 77, cluster);
    let received = || node.status().counters.datagrams_received;

    const FLOOD: u64 = 256;
    let start_received = received();
    let before = rss_bytes();
    for i in 1..=FLOOD {
        let packet = Packet {
            src_inc: 77,
            dst_inc: 0,
            src_session: 0,
            dst_session: 0,
            frames: vec![Frame::Data(Data {
                seq: i,
                msg_id: i,
                frag: 0,
                frags: 72_945,
                bytes: Vec::new(),
            })],
        };
        let datagram = wire::encode_packet(cluster, &packet);
        attacker.send_to(&datagram, node.local_addr()).unwrap();
        if i % 16 == 0 {
            // Loopback drops bursts beyond the socket buffer; pace them a little.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while received() < start_received + FLOOD && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let got = received() - start_received;
    assert!(got >= FLOOD / 2, "only {got} of {FLOOD} datagrams arrived");
    let after = rss_bytes();
    let growth = after.saturating_sub(before);
    eprintln!("{got} flood datagrams: RSS {before} -> {after} (+{growth} bytes)");
    // The node may hold at most its reassembly budget (64 MiB by default) of partial
    // messages, and none of these fragments could belong to a real message: any growth
    // near the budget is the flood being stored. Allocator noise is far below it.
    assert!(growth < 64 * 1024 * 1024, "RSS grew by {growth} bytes");
    assert!(node.is_running());
    assert_eq!(node.get("before"), Some(Value::Int(1)));
    node.stop();
}
