//! Compressed datagrams: deltas shrink between nodes that both read compression, a node
//! with it off still syncs with one that has it on (on real sockets, 127.0.0.1), and a
//! spoofer cannot make a node compress to a peer that does not read it (simulated).

// Tests drive real nodes against the wall clock (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use mesh_core::fault::FaultConfig;
use mesh_core::sim::Sim;
use mesh_core::wire::{self, FLAG_ACCEPTS_COMPRESSED, HEADER_LEN};
use mesh_core::{Config, Node, Value};

mod support;
use support::wait_until;

const KEYS: usize = 2_000;

fn config(id: &str, compression: bool) -> Config {
    let mut c = support::node_config(id, "127.0.0.1");
    c.compression = compression;
    c
}

/// A writer writes [`KEYS`] values of 100 random letters and digits (as the benchmarks
/// do), then a reader joins and is streamed the state in full datagrams; returns the
/// bytes the reader received and the datagrams either node dropped as malformed.
fn bytes_to_receive_the_state(
    name: &str,
    writer_compresses: bool,
    reader_compresses: bool,
) -> (u64, u64) {
    let writer = Node::new(config(&format!("{name}-w"), writer_compresses)).unwrap();
    let reader = Node::new(config(&format!("{name}-r"), reader_compresses)).unwrap();
    writer.start().unwrap();
    let mut rng = fastrand::Rng::with_seed(5);
    for i in 0..KEYS {
        let value: String = (0..100).map(|_| rng.alphanumeric()).collect();
        writer.set(&format!("sensor/{i:06}"), value).unwrap();
    }
    reader
        .add_bootstrap_peer("127.0.0.1", writer.port())
        .unwrap();
    reader.start().unwrap();
    wait_until("the state to arrive", || reader.len() == KEYS);
    assert_eq!(reader.get_all(), writer.get_all());
    let received = reader.status().counters.bytes_received;
    let malformed = [&writer, &reader]
        .iter()
        .map(|n| n.status().counters.dropped.malformed)
        .sum();
    writer.stop();
    reader.stop();
    (received, malformed)
}

/// How node 1 of a simulated pair comes to hold node 0's writes.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// Pushed as they are written (node 1 is up).
    Pushed,
    /// Streamed by anti-entropy (node 1 starts after the writes).
    Streamed,
}

/// Bytes node 1 of a simulated pair receives while node 0's [`KEYS`] writes reach it;
/// the simulator makes the run the same every time.
fn simulated_bytes(compression: bool, path: Path) -> u64 {
    let mut template = Config::new("template", 0);
    template.compression = compression;
    let mut sim = Sim::new(2, template, FaultConfig::default(), 1);
    sim.run_for(Duration::from_secs(5));
    if let Path::Streamed = path {
        sim.crash(1);
    }
    let mut rng = fastrand::Rng::with_seed(5);
    for i in 0..KEYS {
        let value: String = (0..100).map(|_| rng.alphanumeric()).collect();
        sim.write(0, &format!("sensor/{i:06}"), Some(Value::from(value)));
    }
    if let Path::Streamed = path {
        sim.restart(1);
    }
    let before = received(&sim);
    sim.run_for(Duration::from_secs(5));
    let reader = sim.nodes[1].engine.as_ref().unwrap();
    assert_eq!(reader.status().data_keys, KEYS);
    received(&sim) - before
}

fn received(sim: &Sim) -> u64 {
    sim.nodes[1]
        .engine
        .as_ref()
        .unwrap()
        .counters()
        .bytes_received
}

#[test]
fn deltas_shrink_when_both_ends_read_compression() {
    for path in [Path::Pushed, Path::Streamed] {
        let plain = simulated_bytes(false, path);
        let compressed = simulated_bytes(true, path);
        eprintln!("{path:?}: received {compressed} B compressed against {plain} B plain");
        // 100 random letters and digits carry about 6 bits a character: zstd's entropy
        // coding alone saves about a fifth, and the keys' shared prefixes more. A burst
        // or a stream is packed in chunks of many entries, which shares zstd's tables
        // between them and fills fewer datagrams (compressing each datagram alone
        // received 0.80 of the plain bytes).
        assert!(
            compressed * 100 < plain * 72,
            "{path:?}: compressed {compressed} B against plain {plain} B"
        );
    }
}

#[test]
fn a_node_without_compression_syncs_with_one_that_has_it() {
    // Either way round: the one with it on never sends it compressed data.
    for (name, writer, reader) in [("mixed-a", true, false), ("mixed-b", false, true)] {
        let (_, malformed) = bytes_to_receive_the_state(name, writer, reader);
        assert_eq!(
            malformed, 0,
            "{name}: a compressed datagram reached a node without it"
        );
    }
}

/// `datagram` (plaintext) with `flags` added to its header, its checksum made good again.
fn with_flags(mut datagram: Vec<u8>, flags: u8) -> Vec<u8> {
    datagram[4] |= flags;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&datagram[..12]);
    crc.update(&datagram[HEADER_LEN..]);
    let sum = crc.finalize().to_be_bytes();
    datagram[12..HEADER_LEN].copy_from_slice(&sum);
    datagram
}

#[test]
fn a_spoofed_claim_to_read_compression_is_not_taken() {
    let template = Config::new("template", 0);
    let cluster = wire::cluster_id(&template.cluster);
    let mut sim = Sim::new(2, template, FaultConfig::default(), 7);
    // Node 1 does not read compression.
    sim.configure(1, |c| c.compression = false);
    sim.crash(1);
    sim.restart(1);
    sim.run_for(Duration::from_secs(5));
    let reader = sim.nodes[1].addr;
    let reader_inc = sim.nodes[1].engine.as_ref().unwrap().incarnation();
    let mut rng = fastrand::Rng::with_seed(9);
    for round in 0..20 {
        // From the reader's address and run, blind to the channel's sessions, a spoofer
        // claims the reader reads compressed payloads; then the writer writes at once.
        let claim = support::packet(cluster, reader_inc, Vec::new());
        sim.inject(0, reader, &with_flags(claim, FLAG_ACCEPTS_COMPRESSED));
        for k in 0..20 {
            let value: String = std::iter::repeat_n(rng.alphanumeric(), 400).collect();
            sim.write(0, &format!("r{round}/k{k}"), Some(Value::from(value)));
        }
        sim.run_for(Duration::from_millis(50));
    }
    sim.run_until_converged(Duration::from_secs(20), Duration::from_millis(100))
        .expect("the writes reach the reader");
    let dropped = sim.nodes[1]
        .engine
        .as_ref()
        .unwrap()
        .counters()
        .dropped
        .malformed;
    assert_eq!(
        dropped, 0,
        "the writer compressed to a node that does not read it"
    );
}
