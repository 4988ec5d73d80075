//! Convergence after disruption: a healed partition, a restarted node, a joining node.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mesh_core::{FaultConfig, Node, Value};

use crate::mesh::{self, Mesh};
use crate::procfs;
use crate::report::{count, fmt, median, ms, verdict, Report, Table};

const PATIENCE: Duration = Duration::from_secs(120);

fn partition_faults(cut_from: &[SocketAddr]) -> FaultConfig {
    FaultConfig {
        partitioned: cut_from.iter().copied().collect::<BTreeSet<_>>(),
        ..FaultConfig::default()
    }
}

/// Heartbeat interval and peer timeout short enough for a 5 s partition to fail peers
/// (the Python binding's default timeout: three heartbeats).
const FAST_DETECTOR: (Duration, Duration) =
    (Duration::from_millis(500), Duration::from_millis(1500));

/// Time from heal until all five replicas are identical, for one partition of `hold`,
/// with the default failure detector or `detector` (heartbeat interval, peer timeout).
fn partition_once(
    rep: usize,
    hold: Duration,
    detector: Option<(Duration, Duration)>,
) -> Option<Duration> {
    let mesh = Mesh::new(5, &format!("part{rep}-"), |c| {
        c.sync_interval = Duration::from_secs(1);
        if let Some((heartbeat, timeout)) = detector {
            c.heartbeat_interval = heartbeat;
            c.peer_timeout = timeout;
        }
    });
    mesh.wait_formed(Duration::from_secs(30));
    for i in 0..100 {
        mesh.nodes[i % 5].set(&format!("base/{i}"), i as i64).ok();
    }
    mesh::wait_for(PATIENCE, || mesh.all_hold(100));
    let (a, b) = mesh.nodes.split_at(2);
    let a_addrs: Vec<SocketAddr> = a.iter().map(Node::local_addr).collect();
    let b_addrs: Vec<SocketAddr> = b.iter().map(Node::local_addr).collect();
    for n in a {
        n.set_faults(partition_faults(&b_addrs)).ok();
    }
    for n in b {
        n.set_faults(partition_faults(&a_addrs)).ok();
    }
    // Both sides keep writing while cut off: new keys on each side and the same keys on
    // both (conflicts that last-writer-wins must settle identically everywhere).
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < hold {
        a[i % 2].set(&format!("a/{i}"), i as i64).ok();
        b[i % 3].set(&format!("b/{i}"), i as i64).ok();
        a[0].set(&format!("both/{}", i % 20), format!("a{i}")).ok();
        b[0].set(&format!("both/{}", i % 20), format!("b{i}")).ok();
        i += 1;
        std::thread::sleep(hold / 100);
    }
    let keys = 100 + 2 * i + i.min(20);
    for n in &mesh.nodes {
        n.set_faults(FaultConfig::default()).ok();
    }
    let healed = Instant::now();
    let converged = mesh::wait_for(PATIENCE, || {
        mesh.all_hold(keys) && {
            let first = mesh.nodes[0].get_all();
            mesh.nodes[1..].iter().all(|n| n.get_all() == first)
        }
    });
    converged.then(|| healed.elapsed())
}

fn partition(report: &mut Report, smoke: bool) {
    let (reps, hold) = if smoke {
        (1, Duration::from_millis(500))
    } else {
        (5, Duration::from_secs(5))
    };
    let mut t = Table::new(
        "Partition healed to converged (5 nodes split 2 | 3, sync interval 1 s)",
        &[
            "partition",
            "failure detector",
            "runs",
            "median ms",
            "min ms",
            "max ms",
            "not converged",
            "target < 2 s",
        ],
    );
    for (detector, name) in [
        (None, "default (15 s)"),
        (Some(FAST_DETECTOR), "heartbeat 0.5 s, timeout 1.5 s"),
    ] {
        let mut times = Vec::new();
        let mut failures = 0;
        for rep in 0..reps {
            match partition_once(rep, hold, detector) {
                Some(t) => times.push(ms(t)),
                None => failures += 1,
            }
        }
        let m = median(&times);
        t.row(vec![
            format!("{} s", hold.as_secs_f64()),
            name.to_owned(),
            reps.to_string(),
            fmt(m),
            fmt(times.iter().copied().fold(f64::INFINITY, f64::min)),
            fmt(times.iter().copied().fold(0.0, f64::max)),
            failures.to_string(),
            verdict(failures == 0 && m < 2000.0),
        ]);
    }
    t.note(
        "Both sides write new keys and conflicting writes to 20 shared keys throughout the partition. \
         Converged: every replica holds every key and all five `get_all()` snapshots are equal. \
         With the short failure detector the two sides declare each other failed during the \
         partition, and the heal is noticed by a probe of a failed peer.",
    );
    report.add(t);
}

fn restart(report: &mut Report, smoke: bool) {
    let (reps, keys, missed) = if smoke {
        (1, 1_000, 100)
    } else {
        (3, 10_000, 1_000)
    };
    let mut times = Vec::new();
    let mut failures = 0;
    let mut rng = fastrand::Rng::with_seed(7);
    for rep in 0..reps {
        let mut mesh = Mesh::new(5, &format!("rst{rep}-"), |_| {});
        mesh.wait_formed(Duration::from_secs(30));
        for i in 0..keys {
            mesh.nodes[0]
                .set(&format!("k/{i}"), mesh::value_100(&mut rng))
                .ok();
        }
        mesh::wait_for(PATIENCE, || mesh.all_hold(keys));
        let gone = mesh.nodes.pop().expect("five nodes");
        let addr = gone.local_addr();
        gone.stop();
        drop(gone);
        for i in 0..missed {
            mesh.nodes[1].set(&format!("late/{i}"), i as i64).ok();
        }
        let mut c = mesh::config(&format!("rst{rep}-4"));
        c.port = addr.port();
        let back = Node::new(c).expect("rebind the same port");
        for n in &mesh.nodes {
            back.add_bootstrap_addr(n.local_addr());
        }
        let start = Instant::now();
        back.start().ok();
        if mesh::wait_for(PATIENCE, || back.len() >= keys + missed) {
            times.push(ms(start.elapsed()));
        } else {
            failures += 1;
        }
        back.stop();
    }
    let mut t = Table::new(
        "Restart catch-up (5 nodes; one stopped, writes made while it is down, restarted with the same id and port)",
        &["state", "runs", "median ms", "min ms", "max ms", "not caught up"],
    );
    t.row(vec![
        format!(
            "{} keys of 100 B + {} written while down",
            count(keys as u64),
            count(missed as u64)
        ),
        reps.to_string(),
        fmt(median(&times)),
        fmt(times.iter().copied().fold(f64::INFINITY, f64::min)),
        fmt(times.iter().copied().fold(0.0, f64::max)),
        failures.to_string(),
    ]);
    t.note(
        "The replica is in memory only, so a restarted node catches up on the whole state, not just what \
         it missed. Time from `start()` until it holds every key. Default config.",
    );
    report.add(t);
}

pub struct JoinOutcome {
    pub load: Duration,
    pub join: Option<Duration>,
    pub payload_bytes: u64,
    pub wire_bytes_in: u64,
    pub datagrams_in: u64,
    /// Copies of writes that reached the joiner (duplicates included).
    pub entries_in: u64,
    pub retransmits: u64,
    pub rcvbuf_drops: u64,
}

/// `holders` nodes hold `keys` keys of 100 bytes; one more node joins. Its counters are
/// read `settle` after it holds every key, so streams still on their way are counted.
pub fn join_once(keys: usize, holders: usize, settle: Duration) -> JoinOutcome {
    let mut rng = fastrand::Rng::with_seed(keys as u64);
    let load_start = Instant::now();
    let mesh = Mesh::new(holders, &format!("join{keys}-"), |_| {});
    let mut payload_bytes = 0u64;
    for i in 0..keys {
        let key = format!("key/{i:08}");
        let value = mesh::value_100(&mut rng);
        payload_bytes += (key.len() + value.len()) as u64;
        mesh.nodes[0].set(&key, Value::String(value)).ok();
    }
    mesh::wait_for(Duration::from_secs(600), || mesh.all_hold(keys));
    let load = load_start.elapsed();
    let joiner = Node::new(mesh::config(&format!("join{keys}-new"))).expect("node");
    for n in &mesh.nodes {
        joiner.add_bootstrap_addr(n.local_addr());
    }
    let patience = Duration::from_secs(30).max(Duration::from_micros(keys as u64 * 200));
    let drops_before = procfs::udp_rcvbuf_errors();
    let start = Instant::now();
    joiner.start().ok();
    let done = mesh::wait_for(patience, || joiner.len() >= keys);
    let join = done.then(|| start.elapsed());
    std::thread::sleep(settle);
    let c = joiner.status().counters;
    joiner.stop();
    JoinOutcome {
        load,
        join,
        payload_bytes,
        wire_bytes_in: c.bytes_received,
        datagrams_in: c.datagrams_received,
        entries_in: c.entries_received,
        retransmits: mesh.counters().retransmits,
        rcvbuf_drops: procfs::udp_rcvbuf_errors() - drops_before,
    }
}

fn join(report: &mut Report, smoke: bool) {
    let sizes: &[usize] = if smoke {
        &[2_000]
    } else {
        &[20_000, 200_000, 1_000_000]
    };
    let mut t = Table::new(
        "Join: a new node catches up with one node holding N keys of 100-byte values",
        &[
            "keys",
            "join s",
            "payload MB/s",
            "wire MB in",
            "wire/payload",
            "datagrams in",
            "retransmits",
            "kernel rcvbuf drops",
            "writing the state s",
        ],
    );
    let mut target = None;
    for &keys in sizes {
        let o = join_once(keys, 1, Duration::ZERO);
        let secs = o.join.map_or(f64::NAN, |d| d.as_secs_f64());
        t.row(vec![
            count(keys as u64),
            o.join
                .map_or_else(|| "did not finish".to_owned(), |_| fmt(secs)),
            fmt(o.payload_bytes as f64 / 1e6 / secs),
            fmt(o.wire_bytes_in as f64 / 1e6),
            fmt(o.wire_bytes_in as f64 / o.payload_bytes as f64),
            count(o.datagrams_in),
            count(o.retransmits),
            count(o.rcvbuf_drops),
            fmt(o.load.as_secs_f64()),
        ]);
        if keys == 1_000_000 {
            target = Some(secs);
        }
    }
    t.note(
        "Payload = key + value bytes. 'wire MB in' is what the joiner's socket received (headers, \
         acks' share of the datagrams and retransmissions included). Kernel rcvbuf drops: UDP datagrams \
         the kernel dropped for a full socket receive buffer while the join ran (machine-wide counter). \
         Default config.",
    );
    report.add(t);
    if let Some(secs) = target {
        let mut tt = Table::new("Join target", &["target", "figure", "verdict"]);
        tt.row(vec![
            "1,000,000 keys in < 30 s".into(),
            format!("{} s", fmt(secs)),
            verdict(secs < 30.0),
        ]);
        report.add(tt);
    }
    join_holders(report, smoke);
}

/// A joiner bootstrapped with every node of a mesh of 1, 2 and 4 holders of the same
/// state: what it receives, as a multiple of the state, and how long it takes.
fn join_holders(report: &mut Report, smoke: bool) {
    let keys = if smoke { 2_000 } else { 50_000 };
    let runs = if smoke { 1 } else { 3 };
    let mut m = Table::new(
        "Join from a mesh of several holders (the joiner knows every holder)",
        &[
            "holders",
            "keys",
            "join s (median)",
            "wire MB in",
            "wire/payload",
            "entries in/keys",
        ],
    );
    for holders in [1, 2, 4] {
        let outcomes: Vec<JoinOutcome> = (0..runs)
            .map(|_| join_once(keys, holders, Duration::from_secs(1)))
            .collect();
        let secs: Vec<f64> = outcomes
            .iter()
            .map(|o| o.join.map_or(f64::NAN, |d| d.as_secs_f64()))
            .collect();
        let wire: Vec<f64> = outcomes.iter().map(|o| o.wire_bytes_in as f64).collect();
        let payload = outcomes[0].payload_bytes as f64;
        let entries: Vec<f64> = outcomes.iter().map(|o| o.entries_in as f64).collect();
        m.row(vec![
            holders.to_string(),
            count(keys as u64),
            fmt(median(&secs)),
            fmt(median(&wire) / 1e6),
            fmt(median(&wire) / payload),
            fmt(median(&entries) / keys as f64),
        ]);
    }
    m.note(format!(
        "Medians of {runs} runs. Payload = key + value bytes (100-byte values). 'wire MB in' is \
         what the joiner's socket received until 1 s after it held every key (so streams still \
         on their way count); 'entries in/keys' counts every copy of a write that reached it (1.00: each write once). Default config."
    ));
    report.add(m);
}

pub fn run(report: &mut Report, smoke: bool, which: &str) {
    match which {
        "partition" => partition(report, smoke),
        "restart" => restart(report, smoke),
        "join" => join(report, smoke),
        "join-holders" => join_holders(report, smoke),
        _ => unreachable!("unknown disruption scenario {which}"),
    }
}
