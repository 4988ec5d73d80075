//! Idle cost of a node (traffic, CPU, memory, threads) and memory per million keys, each
//! node in a process of its own.

use std::time::{Duration, Instant};

use crate::child::{self, NodeProcess};
use crate::procfs;
use crate::report::{count, fmt, verdict, Report, Table};

const MIB: f64 = 1024.0 * 1024.0;

struct Idle {
    bytes_per_min: Vec<f64>,
    datagrams_per_min: Vec<f64>,
    cpu_ms_per_min: Vec<f64>,
    rss: Vec<u64>,
    node_rss: Vec<u64>,
    threads: Vec<u64>,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn max_u(v: &[u64]) -> u64 {
    v.iter().copied().max().unwrap_or(0)
}

/// Measures meshes side by side over one shared window, so both see the same machine.
fn idle(meshes: &mut [Vec<NodeProcess>], settle: Duration, window: Duration) -> Vec<Idle> {
    std::thread::sleep(settle);
    let before: Vec<Vec<_>> = meshes
        .iter_mut()
        .map(|m| {
            m.iter_mut()
                .map(|p| (p.status(), procfs::cpu_time(&p.pid())))
                .collect()
        })
        .collect();
    let start = Instant::now();
    std::thread::sleep(window);
    let per_min = 60.0 / start.elapsed().as_secs_f64();
    meshes
        .iter_mut()
        .zip(before)
        .map(|(m, before)| {
            let mut r = Idle {
                bytes_per_min: Vec::new(),
                datagrams_per_min: Vec::new(),
                cpu_ms_per_min: Vec::new(),
                rss: Vec::new(),
                node_rss: Vec::new(),
                threads: Vec::new(),
            };
            for (p, (s0, cpu0)) in m.iter_mut().zip(before) {
                let s1 = p.status();
                let cpu1 = procfs::cpu_time(&p.pid());
                r.bytes_per_min
                    .push((s1.bytes_sent - s0.bytes_sent) as f64 * per_min);
                r.datagrams_per_min
                    .push((s1.datagrams_sent - s0.datagrams_sent) as f64 * per_min);
                r.cpu_ms_per_min
                    .push(procfs::cpu_since(cpu0, cpu1).as_secs_f64() * 1000.0 * per_min);
                r.rss.push(s1.rss);
                r.node_rss.push(s1.rss.saturating_sub(p.base_rss));
                // The child's main thread only relays commands; the rest are the node's.
                r.threads.push(procfs::threads(&p.pid()).saturating_sub(1));
            }
            r
        })
        .collect()
}

/// Idle traffic per node at 5 and 50 nodes with a 0.5 s probe period and a 1 s sync
/// round, after one node wrote and everyone received it (so fingerprints changed once).
fn idle_by_mesh_size(report: &mut Report, smoke: bool) {
    let (sizes, settle, window): (&[usize], _, _) = if smoke {
        (&[5], Duration::from_secs(2), Duration::from_secs(3))
    } else {
        (&[5, 50], Duration::from_secs(20), Duration::from_secs(60))
    };
    let mut t = Table::new(
        "Idle traffic by mesh size, probe 0.5 s and sync 1 s, one node per process",
        &[
            "nodes",
            "UDP payload B/node/min",
            "datagrams/node/min",
            "with IPv4 + UDP headers B/node/min",
            "target",
        ],
    );
    for &n in sizes {
        let mut mesh = child::mesh(n, &format!("idle{n}-"), "probe-half");
        mesh[0].ask("fill 10");
        for p in &mut mesh[1..] {
            p.ask("wait 10");
        }
        let r = idle(std::slice::from_mut(&mut mesh), settle, window)
            .pop()
            .expect("one mesh");
        drop(mesh);
        let bytes = mean(&r.bytes_per_min);
        let datagrams = mean(&r.datagrams_per_min);
        // What the kernel counts: each datagram also carries 28 bytes of headers.
        let wire = bytes + 28.0 * datagrams;
        let limit = if n <= 5 { 20_000.0 } else { 25_000.0 };
        t.row(vec![
            n.to_string(),
            fmt(bytes),
            fmt(datagrams),
            fmt(wire),
            format!("≤ {} B: {}", count(limit as u64), verdict(wire <= limit)),
        ]);
    }
    t.note(format!(
        "Each mesh on its own: node 0 writes 10 keys, every node receives them, then {} s of \
         settling and {} s measured, scaled to a minute; means over the nodes. Payload from \
         the core's counters at the socket edge; the kernel's count adds 28 bytes a datagram \
         (the kernel cross-check shows the payloads agree exactly).",
        settle.as_secs(),
        window.as_secs()
    ));
    report.add(t);
}

fn idle_scenario(report: &mut Report, smoke: bool) {
    let (settle, window) = if smoke {
        (Duration::from_secs(1), Duration::from_secs(3))
    } else {
        (Duration::from_secs(12), Duration::from_secs(60))
    };
    let mut meshes = vec![
        child::mesh(5, "idle-", "default"),
        child::mesh(5, "idlef-", "fast"),
    ];
    let results = idle(&mut meshes, settle, window);
    drop(meshes);
    let mut t = Table::new(
        "Idle node, 5-node mesh, one node per process",
        &[
            "config",
            "bytes sent/node/min",
            "datagrams/node/min",
            "CPU ms/node/min",
            "CPU % of a core",
            "RSS/process MiB (max)",
            "RSS above process base MiB (max)",
            "node threads",
        ],
    );
    let labels = [
        "default (heartbeat 5 s, sync 10 s)",
        "heartbeat 1 s, sync 1 s",
    ];
    for (label, r) in labels.iter().zip(&results) {
        let cpu = mean(&r.cpu_ms_per_min);
        t.row(vec![
            (*label).to_owned(),
            fmt(mean(&r.bytes_per_min)),
            fmt(mean(&r.datagrams_per_min)),
            fmt(cpu),
            fmt(cpu / 600.0),
            fmt(max_u(&r.rss) as f64 / MIB),
            fmt(max_u(&r.node_rss) as f64 / MIB),
            max_u(&r.threads).to_string(),
        ]);
    }
    t.note(format!(
        "Measured over {} s after {} s of settling, scaled to a minute; means over the 5 nodes except where \
         marked max. Bytes are UDP payload at the socket edge (the core's counters). CPU from the \
         child's threads' /proc schedstat (nanoseconds). RSS is VmRSS of the child \
         process, which holds one node and a line-reading main thread; 'above base' subtracts the \
         process's RSS read just before the node was created. Both meshes ran at the same time.",
        window.as_secs(),
        settle.as_secs()
    ));
    report.add(t);
    let d = &results[0];
    let bytes = mean(&d.bytes_per_min);
    let rss = max_u(&d.rss) as f64 / MIB;
    let threads = max_u(&d.threads);
    let mut tt = Table::new(
        "Idle targets (5 nodes, default config)",
        &["target", "figure", "verdict"],
    );
    tt.row(vec![
        "idle traffic < 20 KB per node per minute".into(),
        format!("{} B/min", count(bytes as u64)),
        verdict(bytes < 20_000.0),
    ]);
    tt.row(vec![
        "< 5 MB resident per idle node (whole process)".into(),
        format!("{} MiB", fmt(rss)),
        verdict(rss * MIB < 5e6),
    ]);
    tt.row(vec![
        "≤ 3 threads per node".into(),
        threads.to_string(),
        verdict(threads <= 3),
    ]);
    report.add(tt);
}

fn memory_scenario(report: &mut Report, smoke: bool) {
    let keys: u64 = if smoke { 20_000 } else { 1_000_000 };
    let mut writer = NodeProcess::spawn("mem-writer", "default");
    let mut joiner = NodeProcess::spawn("mem-joiner", "default");
    let writer_before = writer.status().rss;
    let fill_s: f64 = writer
        .ask(&format!("fill {keys}"))
        .parse()
        .unwrap_or(f64::NAN);
    let writer_after = writer.status().rss;
    let joiner_before = joiner.status().rss;
    let writer_addr = writer.addr.clone();
    joiner.ask(&format!("peer {writer_addr}"));
    let wait_s: f64 = joiner
        .ask(&format!("wait {keys}"))
        .parse()
        .unwrap_or(f64::NAN);
    // Let acknowledgements and the transport's buffers settle before reading.
    std::thread::sleep(Duration::from_secs(1));
    let joiner_after = joiner.status();
    let writer_end = writer.status().rss;
    let scale = 1e6 / keys as f64;
    let mut t = Table::new(
        "Resident memory per million keys (100-byte values, 13-byte keys)",
        &[
            "replica",
            "keys",
            "RSS before MiB",
            "RSS after MiB",
            "MiB per million keys",
            "time s",
        ],
    );
    t.row(vec![
        "written locally".into(),
        count(keys),
        fmt(writer_before as f64 / MIB),
        fmt(writer_after as f64 / MIB),
        fmt((writer_after - writer_before.min(writer_after)) as f64 / MIB * scale),
        fmt(fill_s),
    ]);
    t.row(vec![
        "received by a joining node".into(),
        count(joiner_after.keys as u64),
        fmt(joiner_before as f64 / MIB),
        fmt(joiner_after.rss as f64 / MIB),
        fmt(joiner_after.rss.saturating_sub(joiner_before) as f64 / MIB * scale),
        fmt(wait_s),
    ]);
    t.row(vec![
        "writer, after serving the joiner".into(),
        count(keys),
        fmt(writer_before as f64 / MIB),
        fmt(writer_end as f64 / MIB),
        fmt(writer_end.saturating_sub(writer_before) as f64 / MIB * scale),
        "".into(),
    ]);
    t.note(
        "One node per process; VmRSS read from /proc before and after. Payload is 113 MB per million keys. \
         The allocator keeps freed pages, so 'after serving' includes the peak of the send buffers.",
    );
    report.add(t);
}

pub fn run(report: &mut Report, smoke: bool, which: &str) {
    match which {
        "idle" => {
            idle_scenario(report, smoke);
            idle_by_mesh_size(report, smoke);
        }
        "memory" => memory_scenario(report, smoke),
        _ => unreachable!("unknown resource scenario {which}"),
    }
}
