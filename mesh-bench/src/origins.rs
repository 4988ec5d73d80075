//! What restarts leave behind: origins in version vectors and digests, retired records,
//! and idle traffic, after one node of a mesh restarted many times (in the simulator:
//! only protocol state matters here).

use std::time::Duration;

use mesh_core::sim::Sim;
use mesh_core::wire::{self, Message, SyncRequest};
use mesh_core::{Config, FaultConfig, Value};

use crate::report::{fmt, median, Report, Table};

/// Figures of one mesh after `restarts` restarts of node 0.
struct Outcome {
    /// Most origins any node's vector holds.
    held: usize,
    /// Median encoded size of a node's SyncRequest (its digest), bytes.
    digest_bytes: f64,
    /// Median retired records per node.
    retired: f64,
    /// Median bytes sent per node per second once idle.
    idle_bytes_per_s: f64,
}

fn run_one(nodes: usize, restarts: usize) -> Outcome {
    let mut config = Config::new("origins", 0);
    config.sync_interval = Duration::from_secs(1);
    config.heartbeat_interval = Duration::from_millis(250);
    config.peer_timeout = Duration::from_secs(1);
    let mut sim = Sim::new(nodes, config, FaultConfig::default(), 7);
    sim.run_for(Duration::from_secs(5));
    for run in 0..restarts {
        // Each run rewrites the same keys, superseding the previous run's writes.
        for k in 0..4 {
            sim.write(0, &format!("k{k}"), Some(Value::Int((run * 10 + k) as i64)));
        }
        sim.run_for(Duration::from_secs(2));
        sim.crash(0);
        sim.run_for(Duration::from_millis(500));
        sim.restart(0);
        sim.run_for(Duration::from_secs(2));
    }
    sim.run_for(Duration::from_secs(60));
    let engines: Vec<_> = sim.nodes.iter().filter_map(|n| n.engine.as_ref()).collect();
    let held = engines
        .iter()
        .map(|e| e.replica().version_vector().len())
        .max()
        .unwrap_or(0);
    let digest_bytes: Vec<f64> = engines
        .iter()
        .map(|e| {
            let digest = e.replica().version_vector().digest();
            let request = Message::SyncRequest(SyncRequest {
                digest,
                reply: true,
                want: wire::Want::All,
                number: 1,
            });
            wire::encode_message(&request).len() as f64
        })
        .collect();
    let retired: Vec<f64> = engines
        .iter()
        .map(|e| e.replica().version_vector().retired_len() as f64)
        .collect();
    let before: Vec<u64> = engines.iter().map(|e| e.counters().bytes_sent).collect();
    sim.run_for(Duration::from_secs(30));
    let idle: Vec<f64> = sim
        .nodes
        .iter()
        .filter_map(|n| n.engine.as_ref())
        .zip(before)
        .map(|(e, b)| (e.counters().bytes_sent - b) as f64 / 30.0)
        .collect();
    Outcome {
        held,
        digest_bytes: median(&digest_bytes),
        retired: median(&retired),
        idle_bytes_per_s: median(&idle),
    }
}

/// Runs the scenario: a 5-node mesh whose node 0 restarted 10, 50 and 200 times.
pub fn run(report: &mut Report, smoke: bool) {
    let counts: &[usize] = if smoke { &[3] } else { &[10, 50, 200] };
    let mut table = Table::new(
        "Origins after repeated restarts (simulator, 5 nodes, node 0 restarted, 60 s settle)",
        &[
            "restarts",
            "origins held (max node)",
            "SyncRequest bytes (median node)",
            "retired records (median node)",
            "idle bytes/s per node (median)",
        ],
    );
    for &restarts in counts {
        let o = run_one(5, restarts);
        table.row(vec![
            restarts.to_string(),
            o.held.to_string(),
            fmt(o.digest_bytes),
            fmt(o.retired),
            fmt(o.idle_bytes_per_s),
        ]);
    }
    table.note(
        "Without retirement every restart stays in every digest: 50 restarts left 51 origins \
         in each vector (mesh-core/tests/sim_origins.rs against the code before retirement).",
    );
    report.add(table);
}
