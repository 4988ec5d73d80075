//! Writes through the broadcast tree at scale: in the deterministic simulator, a mesh of
//! a thousand nodes over 1 ms links, the time a write takes to reach every node, the
//! copies of it each node receives, and what its writer sends for it.

use std::time::{Duration, Instant};

use mesh_core::sim::Sim;
use mesh_core::{Config, FaultConfig, Value};

use crate::report::{fmt, percentile, verdict, Report, Table};

/// Figures of one mesh at one loss rate.
struct Outcome {
    /// Milliseconds for each write to reach every node, sorted.
    sorted_ms: Vec<f64>,
    /// Writes some node still lacked after the patience.
    incomplete: usize,
    /// Entries received per node per write.
    copies: f64,
    /// Write messages (pushes) the writer queued per write.
    writer_messages: f64,
    /// Datagrams the writer sent per write while it spread (probes and acks included).
    writer_datagrams: f64,
    /// Grafts per write, all nodes together.
    grafts: f64,
    /// Virtual seconds the mesh was given to form, and the fewest alive members any node
    /// saw then.
    formed_s: f64,
    fewest_alive: usize,
    real_s: f64,
}

fn config() -> Config {
    let mut c = Config::new("bcast", 0);
    c.heartbeat_interval = Duration::from_secs(1);
    c.peer_timeout = Config::peer_timeout_for(c.heartbeat_interval);
    c
}

fn measure(nodes: usize, loss: f64, writes: usize, seed: u64) -> Outcome {
    let start = Instant::now();
    let mut sim = Sim::new(nodes, config(), FaultConfig::default(), seed);
    sim.latency_us = 1_000;
    // Every node starts with the whole list of addresses (as nodes started from a
    // configured member list do): membership forms in seconds, not by gossip alone.
    for i in 0..nodes {
        for j in 0..nodes {
            if i != j {
                sim.introduce(i, j);
            }
        }
    }
    let mut formed_s = 0.0;
    let mut fewest_alive = 0;
    for s in 1..=60 {
        sim.run_for(Duration::from_secs(1));
        fewest_alive = sim
            .nodes
            .iter()
            .filter_map(|n| n.engine.as_ref())
            .map(|e| e.status().peers.alive_peers)
            .min()
            .unwrap_or(0);
        formed_s = s as f64;
        if fewest_alive == nodes - 1 {
            break;
        }
    }
    sim.set_faults(FaultConfig::lossy(loss));
    // Warm-up: the first writes prune the overlay's redundant edges off the tree.
    for w in 0..20 {
        sim.write((w * 53) % nodes, &format!("warm/{w}"), Some(Value::Int(0)));
        sim.run_for(Duration::from_millis(300));
    }
    sim.run_for(Duration::from_secs(2));
    let engines = |sim: &Sim| -> Vec<mesh_core::Counters> {
        sim.nodes
            .iter()
            .map(|n| n.engine.as_ref().map(|e| e.counters()).unwrap_or_default())
            .collect()
    };
    let before = engines(&sim);
    let patience = Duration::from_secs(5);
    let step = Duration::from_millis(1);
    let mut sorted_ms = Vec::new();
    let mut incomplete = 0;
    let (mut writer_messages, mut writer_datagrams) = (0u64, 0u64);
    for w in 0..writes {
        let writer = (w * 37 + 11) % nodes;
        let key = format!("k/{w}");
        let at_writer = engines(&sim)[writer];
        sim.write(writer, &key, Some(Value::Int(w as i64)));
        let mut waited = Duration::ZERO;
        loop {
            let everywhere = sim
                .nodes
                .iter()
                .filter_map(|n| n.engine.as_ref())
                .all(|e| e.get(&key).is_some());
            if everywhere {
                sorted_ms.push(waited.as_secs_f64() * 1000.0);
                break;
            }
            if waited >= patience {
                incomplete += 1;
                break;
            }
            sim.run_for(step);
            waited += step;
        }
        let after = engines(&sim)[writer];
        writer_messages += after.write_messages_sent - at_writer.write_messages_sent;
        writer_datagrams += after.datagrams_sent - at_writer.datagrams_sent;
    }
    // Late copies (retransmissions, grafts answered late) are counted too.
    sim.run_for(Duration::from_secs(2));
    let after = engines(&sim);
    let received: u64 = after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.entries_received - b.entries_received)
        .sum();
    let grafts: u64 = after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.grafts_sent - b.grafts_sent)
        .sum();
    sorted_ms.sort_by(f64::total_cmp);
    let per_write = writes as f64;
    Outcome {
        sorted_ms,
        incomplete,
        copies: received as f64 / (per_write * (nodes - 1) as f64),
        writer_messages: writer_messages as f64 / per_write,
        writer_datagrams: writer_datagrams as f64 / per_write,
        grafts: grafts as f64 / per_write,
        formed_s,
        fewest_alive,
        real_s: start.elapsed().as_secs_f64(),
    }
}

pub fn run(report: &mut Report, smoke: bool) {
    let (nodes, writes) = if smoke { (60, 10) } else { (1_000, 100) };
    let mut t = Table::new(
        format!(
            "Writes through the broadcast tree, {nodes} nodes (deterministic simulator, 1 ms links)"
        ),
        &[
            "loss",
            "virtual s to form",
            "fewest alive peers of a node",
            "writes",
            "p50 ms to all",
            "p99 ms to all",
            "max ms",
            "not everywhere in 5 s",
            "copies received per node per write",
            "write messages sent by the writer per write",
            "datagrams sent by the writer per write",
            "grafts per write (all nodes)",
            "target met",
            "real s",
        ],
    );
    for loss in [0.0, 0.1] {
        let o = measure(nodes, loss, writes, 42);
        let p99 = percentile(&o.sorted_ms, 99.0);
        let target_ms = if loss == 0.0 { 200.0 } else { 1000.0 };
        eprintln!("broadcast: times to all (ms), sorted: {:?}", o.sorted_ms);
        eprintln!(
            "broadcast: {nodes} nodes, loss {loss}: p99 {p99:.1} ms, copies {:.2}, {} virtual s to form, fewest alive {}",
            o.copies, o.formed_s, o.fewest_alive
        );
        t.row(vec![
            format!("{:.0}%", loss * 100.0),
            fmt(o.formed_s),
            o.fewest_alive.to_string(),
            writes.to_string(),
            fmt(percentile(&o.sorted_ms, 50.0)),
            fmt(p99),
            fmt(o.sorted_ms.last().copied().unwrap_or(f64::NAN)),
            o.incomplete.to_string(),
            fmt(o.copies),
            fmt(o.writer_messages),
            fmt(o.writer_datagrams),
            fmt(o.grafts),
            verdict(o.incomplete == 0 && p99 <= target_ms && o.copies <= 2.0),
            fmt(o.real_s),
        ]);
    }
    t.note(
        "Every node is given every address at start (a configured member list) and the mesh is \
         given up to 60 virtual seconds to form (each node proves every peer's address first); then 20 warm-up writes prune the overlay's redundant \
         edges. Each measured write comes from a different node, one at a time; time to all is \
         measured in 1 ms steps of virtual time. Copies: entries received, all nodes, per write \
         per receiving node, over the writes and 2 s after them (anti-entropy streams \
         included). Writer datagrams include its probes and acks during the write. Targets: \
         p99 <= 200 ms without loss, <= 1 s at 10% loss, at most 2 copies per node.",
    );
    report.add(t);
}
