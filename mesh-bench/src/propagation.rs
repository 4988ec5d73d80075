//! Propagation latency: from `set` on one node until every other node has the value.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_core::{ChangeOrigin, Event, FaultConfig};

use crate::mesh::{self, Mesh};
use crate::report::{fmt, percentile, verdict, Report, Table};

pub struct Params {
    pub sizes: Vec<usize>,
    pub losses: Vec<f64>,
    pub writes: usize,
    /// Pause between two writes. Writes are paced, not waited for, so a lost push does
    /// not stall the measurement; the pace is slow enough that pushes rarely batch.
    pub pace: Duration,
    pub patience: Duration,
}

impl Params {
    pub fn new(smoke: bool) -> Params {
        if smoke {
            Params {
                sizes: vec![2, 5],
                losses: vec![0.0, 0.3],
                writes: 40,
                pace: Duration::from_millis(5),
                patience: Duration::from_secs(10),
            }
        } else {
            Params {
                sizes: vec![2, 5, 20, 50],
                losses: vec![0.0, 0.1, 0.3],
                writes: 1000,
                pace: Duration::from_millis(5),
                patience: Duration::from_secs(30),
            }
        }
    }
}

/// Latencies of one configuration, in milliseconds, plus writes never seen everywhere.
pub struct Outcome {
    pub sorted_ms: Vec<f64>,
    pub incomplete: usize,
    pub retransmits_per_write: f64,
}

pub fn measure(n: usize, loss: f64, p: &Params, tweak: impl Fn(&mut mesh_core::Config)) -> Outcome {
    let mesh = Mesh::new(n, &format!("p{n}-"), tweak);
    mesh.wait_formed(Duration::from_secs(30));
    let epoch = Instant::now();
    let arrivals: Arc<Vec<AtomicU64>> =
        Arc::new((0..p.writes).map(|_| AtomicU64::new(0)).collect());
    let last_ns: Arc<Vec<AtomicU64>> = Arc::new((0..p.writes).map(|_| AtomicU64::new(0)).collect());
    for node in &mesh.nodes {
        let arrivals = Arc::clone(&arrivals);
        let last_ns = Arc::clone(&last_ns);
        node.set_event_handler(move |event| {
            if let Event::StateChanged {
                key,
                origin: ChangeOrigin::Sync,
                ..
            } = event
            {
                let Some(i) = key.strip_prefix("p/").and_then(|s| s.parse::<usize>().ok()) else {
                    return;
                };
                if let (Some(count), Some(last)) = (arrivals.get(i), last_ns.get(i)) {
                    last.fetch_max(epoch.elapsed().as_nanos() as u64, Ordering::AcqRel);
                    count.fetch_add(1, Ordering::AcqRel);
                }
            }
        });
    }
    // A few writes first, so every channel has measured its round trip.
    for (i, node) in mesh.nodes.iter().enumerate() {
        node.set(&format!("warm/{i}"), 0).expect("set");
    }
    mesh::wait_for(p.patience, || mesh.all_hold(n));
    for node in &mesh.nodes {
        node.set_faults(FaultConfig::lossy(loss)).expect("faults");
    }
    let before = mesh.counters();
    let mut set_ns = vec![0u64; p.writes];
    let start = Instant::now();
    for (i, at) in set_ns.iter_mut().enumerate() {
        let due = start + p.pace * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        *at = epoch.elapsed().as_nanos() as u64;
        mesh.nodes[i % n]
            .set(&format!("p/{i}"), i as i64)
            .expect("set");
    }
    let want = (n - 1) as u64;
    mesh::wait_for(p.patience, || {
        arrivals.iter().all(|a| a.load(Ordering::Acquire) >= want)
    });
    let after = mesh.counters();
    let mut sorted_ms = Vec::with_capacity(p.writes);
    let mut incomplete = 0;
    for i in 0..p.writes {
        if arrivals[i].load(Ordering::Acquire) >= want {
            let done = last_ns[i].load(Ordering::Acquire);
            sorted_ms.push(done.saturating_sub(set_ns[i]) as f64 / 1e6);
        } else {
            incomplete += 1;
        }
    }
    sorted_ms.sort_by(f64::total_cmp);
    Outcome {
        sorted_ms,
        incomplete,
        retransmits_per_write: (after.retransmits - before.retransmits) as f64 / p.writes as f64,
    }
}

/// Runs the propagation tables, over `sizes` (`--sizes`) instead of the default mesh
/// sizes if given.
pub fn run(report: &mut Report, smoke: bool, sizes: Option<&[usize]>) {
    let mut p = Params::new(smoke);
    if let Some(sizes) = sizes {
        p.sizes = sizes.to_vec();
    }
    let mut table = Table::new(
        "Propagation latency (set on one node until every other node has it)",
        &[
            "nodes",
            "loss",
            "writes",
            "median ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "not seen everywhere",
            "retransmits/write",
        ],
    );
    let mut targets = Table::new(
        "Propagation targets (5 nodes)",
        &["target", "figure", "verdict"],
    );
    for &n in &p.sizes {
        for &loss in &p.losses {
            let o = measure(n, loss, &p, |_| {});
            let q = |x| percentile(&o.sorted_ms, x);
            table.row(vec![
                n.to_string(),
                format!("{:.0}%", loss * 100.0),
                p.writes.to_string(),
                fmt(q(50.0)),
                fmt(q(90.0)),
                fmt(q(99.0)),
                fmt(o.sorted_ms.last().copied().unwrap_or(f64::NAN)),
                o.incomplete.to_string(),
                fmt(o.retransmits_per_write),
            ]);
            if n == 5 && loss == 0.0 {
                let (m, p99) = (q(50.0), q(99.0));
                targets.row(vec![
                    "0% loss: median < 5 ms".into(),
                    format!("{} ms", fmt(m)),
                    verdict(m < 5.0),
                ]);
                targets.row(vec![
                    "0% loss: p99 < 50 ms".into(),
                    format!("{} ms", fmt(p99)),
                    verdict(p99 < 50.0),
                ]);
            }
            if n == 5 && (loss - 0.3).abs() < 1e-9 {
                let p99 = q(99.0);
                let ok = p99 < 1000.0 && o.incomplete == 0;
                targets.row(vec![
                    "30% loss: p99 < 1 s".into(),
                    format!("{} ms", fmt(p99)),
                    verdict(ok),
                ]);
            }
        }
    }
    let d = mesh_core::Config::default();
    table.note(format!(
        "Default config (sync {} s, heartbeat {} s, push delay {} ms, min RTO {} ms). One write every {} ms, \
         rotating over the nodes; loss injected on every node's outgoing datagrams (data, acks and \
         heartbeats alike). Arrival is the peer's state-change callback, so the callback thread's hand-off \
         is included. A write not seen everywhere within {} s counts in the 'not seen' column, not in the \
         percentiles.",
        d.sync_interval.as_secs_f64(),
        d.heartbeat_interval.as_secs_f64(),
        d.push_delay.as_secs_f64() * 1000.0,
        d.min_rto.as_millis(),
        p.pace.as_millis(),
        p.patience.as_secs()
    ));
    report.add(table);
    report.add(targets);

    // The same 5-node run with writes pushed at once and after a 1 ms batching delay: the
    // difference is what a short timed sleep of the network thread costs.
    let mut diag = Table::new(
        "Propagation, 5 nodes, 0% loss: push_delay 0 vs 1 ms",
        &["push_delay", "median ms", "p90 ms", "p99 ms"],
    );
    let default_delay = mesh_core::Config::default().push_delay;
    for delay in [Duration::ZERO, Duration::from_millis(1)] {
        let o = measure(5, 0.0, &p, |c| c.push_delay = delay);
        let q = |x| percentile(&o.sorted_ms, x);
        diag.row(vec![
            format!(
                "{} ms{}",
                delay.as_millis(),
                if delay == default_delay {
                    " (default)"
                } else {
                    ""
                }
            ),
            fmt(q(50.0)),
            fmt(q(90.0)),
            fmt(q(99.0)),
        ]);
    }
    diag.note(
        "With a delay the push waits for the network thread's timed sleep (ppoll); the next table \
         shows why the runtime does not sleep on a socket read timeout instead.",
    );
    report.add(diag);
    report.add(read_timeout_table());
}

/// How long a blocking UDP read with a timeout really sleeps when nothing arrives: the
/// reason the node runtime times its wake-ups with ppoll rather than SO_RCVTIMEO.
fn read_timeout_table() -> Table {
    let mut t = Table::new(
        "Socket read timeout asked vs slept (nothing arriving)",
        &["asked ms", "slept median ms", "slept max ms"],
    );
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut buf = [0u8; 64];
    for asked in [1u64, 2, 5, 10, 20] {
        socket
            .set_read_timeout(Some(Duration::from_millis(asked)))
            .expect("timeout");
        let mut slept: Vec<f64> = (0..10)
            .map(|_| {
                let start = Instant::now();
                let _ = socket.recv_from(&mut buf);
                start.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        slept.sort_by(f64::total_cmp);
        t.row(vec![
            asked.to_string(),
            fmt(percentile(&slept, 50.0)),
            fmt(slept[slept.len() - 1]),
        ]);
    }
    t.note(
        "Linux converts SO_RCVTIMEO to whole scheduler ticks and adds one, so a short timeout sleeps one \
         to two ticks (4 to 8 ms at 250 Hz); poll(2) and nanosleep use high-resolution timers instead.",
    );
    t
}
