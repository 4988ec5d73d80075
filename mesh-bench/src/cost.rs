//! What replication costs on the wire: bytes and datagrams per replicated write, idle
//! traffic, and how both grow with the number of nodes.

use std::time::{Duration, Instant};

use mesh_core::sim::Sim;
use mesh_core::{Config, Counters, FaultConfig, Value};

use crate::mesh::{self, Mesh};
use crate::report::{count, fmt, Report, Table};

/// Bytes and datagrams all nodes sent for `writes` writes made on a 5-node mesh.
fn real_per_write(writes: usize, pace: Option<Duration>, push_delay: Duration) -> (f64, f64, f64) {
    let mesh = Mesh::new(5, "cost-", |c| c.push_delay = push_delay);
    mesh.wait_formed(Duration::from_secs(30));
    for (i, n) in mesh.nodes.iter().enumerate() {
        n.set(&format!("warm/{i}"), 0).ok();
    }
    mesh::wait_for(Duration::from_secs(30), || mesh.all_hold(5));
    std::thread::sleep(Duration::from_millis(100));
    let before = mesh.counters();
    let start = Instant::now();
    for i in 0..writes {
        if let Some(pace) = pace {
            if let Some(wait) = (start + pace * i as u32).checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        mesh.nodes[i % 5].set(&format!("c/{i}"), i as i64).ok();
    }
    mesh::wait_for(Duration::from_secs(60), || mesh.all_hold(5 + writes));
    // Let the last acknowledgements land so they are counted.
    std::thread::sleep(Duration::from_millis(50));
    let d = mesh::diff(&mesh.counters(), &before);
    let w = writes as f64;
    (
        d.bytes_sent as f64 / w,
        d.datagrams_sent as f64 / w,
        d.retransmits as f64 / w,
    )
}

fn sim_counters(sim: &Sim) -> Counters {
    let mut total = Counters::default();
    for node in &sim.nodes {
        if let Some(e) = &node.engine {
            mesh::add(&mut total, &e.counters());
        }
    }
    total
}

fn sim_formed(sim: &Sim) -> bool {
    let n = sim.nodes.len();
    sim.nodes.iter().all(|node| {
        node.engine
            .as_ref()
            .is_some_and(|e| e.status().peers.alive_peers >= n - 1)
    })
}

pub struct SimScale {
    pub nodes: usize,
    pub formed_s: f64,
    pub idle_bytes_per_node_min: f64,
    pub idle_datagrams_per_node_min: f64,
    pub bytes_per_write: f64,
    pub datagrams_per_write: f64,
}

/// One simulated mesh of `n` nodes with the default config: formation time, idle traffic
/// over one virtual minute, then paced writes.
pub fn sim_scale(n: usize, writes: usize) -> SimScale {
    let config = Config::new("sim", 0);
    let mut sim = Sim::new(n, config, FaultConfig::default(), 42);
    let mut formed_s = f64::NAN;
    for step in 1..=600 {
        sim.run_for(Duration::from_secs(1));
        if sim_formed(&sim) {
            formed_s = step as f64;
            break;
        }
    }
    // Settle: the syncs started by discovery finish.
    sim.run_for(Duration::from_secs(30));
    let before = sim_counters(&sim);
    sim.run_for(Duration::from_secs(60));
    let idle = mesh::diff(&sim_counters(&sim), &before);
    let before = sim_counters(&sim);
    for i in 0..writes {
        sim.write(i % n, &format!("w/{i}"), Some(Value::Int(i as i64)));
        sim.run_for(Duration::from_millis(20));
    }
    sim.run_until_converged(Duration::from_secs(60), Duration::from_millis(100))
        .ok();
    let d = mesh::diff(&sim_counters(&sim), &before);
    let w = writes as f64;
    SimScale {
        nodes: n,
        formed_s,
        idle_bytes_per_node_min: idle.bytes_sent as f64 / n as f64,
        idle_datagrams_per_node_min: idle.datagrams_sent as f64 / n as f64,
        bytes_per_write: d.bytes_sent as f64 / w,
        datagrams_per_write: d.datagrams_sent as f64 / w,
    }
}

pub fn run(report: &mut Report, smoke: bool) {
    let writes = if smoke { 100 } else { 2_000 };
    let mut t = Table::new(
        "Bytes and datagrams per replicated write (5 nodes, real sockets, all nodes' sends summed)",
        &[
            "writes",
            "how",
            "bytes/write",
            "datagrams/write",
            "retransmits/write",
            "bytes/write/peer",
        ],
    );
    let default_delay = Config::default().push_delay;
    let (b, d, r) = real_per_write(writes, Some(Duration::from_millis(5)), default_delay);
    t.row(vec![
        count(writes as u64),
        "one every 5 ms (no batching)".into(),
        fmt(b),
        fmt(d),
        fmt(r),
        fmt(b / 4.0),
    ]);
    for delay in [default_delay, Duration::from_millis(1)] {
        let (b, d, r) = real_per_write(writes, None, delay);
        t.row(vec![
            count(writes as u64),
            format!(
                "back to back, push_delay {} ms",
                delay.as_secs_f64() * 1000.0
            ),
            fmt(b),
            fmt(d),
            fmt(r),
            fmt(b / 4.0),
        ]);
    }
    t.note(
        "Default config unless a push_delay is named. Writes rotate over the 5 nodes; each is pushed to 4 \
         peers and acknowledged. Counted at the socket \
         edge (UDP payload bytes; add 28 bytes of IPv4 + UDP header per datagram for the kernel's view). \
         Idle heartbeats during the run are included (a few bytes per write at most).",
    );
    report.add(t);

    let sizes: &[usize] = if smoke {
        &[2, 5]
    } else {
        &[2, 5, 10, 20, 50, 100]
    };
    let sim_writes = if smoke { 50 } else { 500 };
    let mut s = Table::new(
        "Scaling with nodes (deterministic simulator, default config, no loss)",
        &[
            "nodes",
            "mesh formed (virtual s)",
            "idle bytes/node/min",
            "idle datagrams/node/min",
            "bytes/write",
            "datagrams/write",
            "bytes/write/peer",
        ],
    );
    for &n in sizes {
        let r = sim_scale(n, sim_writes);
        s.row(vec![
            r.nodes.to_string(),
            fmt(r.formed_s),
            fmt(r.idle_bytes_per_node_min),
            fmt(r.idle_datagrams_per_node_min),
            fmt(r.bytes_per_write),
            fmt(r.datagrams_per_write),
            fmt(r.bytes_per_write / (n - 1) as f64),
        ]);
    }
    s.note(format!(
        "Virtual time, so no CPU or scheduling noise: these are protocol costs. Every node bootstraps from \
         node 0 only and discovers the rest by gossip. Idle traffic measured over one virtual minute after \
         the mesh formed and settled; then {sim_writes} writes rotating over the nodes, one every 20 ms."
    ));
    report.add(s);
}

/// Idle traffic of one simulated mesh of `n` nodes with `config`: bytes and datagrams
/// each node sent per virtual minute once the mesh formed and settled, and the virtual
/// seconds formation took (`NaN`: not within the limit).
pub fn sim_idle(n: usize, config: Config, seed: u64) -> (f64, f64, f64) {
    let period = config.heartbeat_interval;
    let mut sim = Sim::new(n, config, FaultConfig::default(), seed);
    let mut formed_s = f64::NAN;
    for step in 1..=900 {
        sim.run_for(Duration::from_secs(1));
        if sim_formed(&sim) {
            formed_s = step as f64;
            break;
        }
    }
    // Members met in the last 30 periods are still told a dozen names per heartbeat
    // (newcomers): idle traffic is what follows.
    sim.run_for(Duration::from_secs(30).max(30 * period));
    let before = sim_counters(&sim);
    sim.run_for(Duration::from_secs(60));
    let idle = mesh::diff(&sim_counters(&sim), &before);
    (
        formed_s,
        idle.bytes_sent as f64 / n as f64,
        idle.datagrams_sent as f64 / n as f64,
    )
}

/// Idle traffic per node against mesh size, at a 1 s probe period and at the defaults.
pub fn run_scale(report: &mut Report, smoke: bool, chosen: Option<&[usize]>) {
    let sizes: &[usize] = match chosen {
        Some(sizes) => sizes,
        None if smoke => &[5, 20],
        None => &[5, 20, 50, 100, 500, 1000],
    };
    let mut t = Table::new(
        "Idle traffic per node against mesh size (deterministic simulator, no loss)",
        &[
            "nodes",
            "interval",
            "mesh formed (virtual s)",
            "idle bytes/node/min",
            "idle datagrams/node/min",
            "real s",
        ],
    );
    let fast = {
        let mut c = Config::new("sim", 0);
        c.heartbeat_interval = Duration::from_secs(1);
        c.peer_timeout = Config::peer_timeout_for(c.heartbeat_interval);
        c
    };
    for &n in sizes {
        for (name, config) in [("1 s", fast.clone()), ("default", Config::new("sim", 0))] {
            let start = Instant::now();
            let (formed, bytes, datagrams) = sim_idle(n, config, 42);
            t.row(vec![
                n.to_string(),
                name.into(),
                fmt(formed),
                fmt(bytes),
                fmt(datagrams),
                fmt(start.elapsed().as_secs_f64()),
            ]);
            eprintln!(
                "scale: {n} nodes, {name}: formed {formed:.0} s, {bytes:.0} bytes/node/min, {:.1} s real",
                start.elapsed().as_secs_f64()
            );
        }
    }
    t.note(
        "Every node bootstraps from node 0 only and discovers the rest by gossip. Bytes are UDP payload \
         bytes each node sent, per virtual minute, measured over one minute after the mesh formed \
         (every node sees all others alive) and settled 30 probe periods (30 s at 1 s, 150 s at the defaults: a \
         member met in the last 30 periods is still told 16 member names per heartbeat). `1 s`: heartbeat_interval (the probe \
         period) 1 s, peer_timeout 3 s; `default`: 5 s and 15 s.",
    );
    report.add(t);
}

/// Members the other nodes of [`run_members`] hold at most: enough to gossip and probe,
/// few enough that `nodes` of them fit in one process.
const OTHERS_MAX_PEERS: usize = 64;

/// Members one node holds and what each costs: `nodes` simulated nodes all bootstrap
/// from node 0, which so learns every one of them; membership only, no data, a short
/// virtual time. The other nodes hold at most [`OTHERS_MAX_PEERS`] members each: if
/// every node learnt every other, 10,000 nodes would hold 10⁸ members, past this
/// machine's memory at about 1.5 KB each.
pub fn run_members(report: &mut Report, smoke: bool) {
    let (nodes, seconds) = if smoke { (500, 5) } else { (10_000, 20) };
    let mut config = Config::new("sim", 0);
    config.heartbeat_interval = Duration::from_secs(1);
    config.peer_timeout = Config::peer_timeout_for(config.heartbeat_interval);
    config.max_peers = OTHERS_MAX_PEERS;
    let pid = std::process::id().to_string();
    let rss_before = crate::procfs::rss_bytes(&pid);
    let start = Instant::now();
    let mut sim = Sim::new(nodes, config, FaultConfig::default(), 42);
    // Node 0 starts again at once with the default table (16,384 members).
    sim.configure(0, |c| c.max_peers = Config::new("sim", 0).max_peers);
    sim.crash(0);
    sim.restart(0);
    let booted_rss = crate::procfs::rss_bytes(&pid);
    // Second by second, with the members held so far: a run stopped early still shows
    // how far it got.
    for second in 1..=seconds {
        sim.run_for(Duration::from_secs(1));
        let held: usize = sim
            .nodes
            .iter()
            .filter_map(|n| n.engine.as_ref())
            .map(|e| e.memory().peers)
            .sum();
        let on_first = sim.nodes[0].engine.as_ref().map_or(0, |e| e.memory().peers);
        eprintln!(
            "members: {second}/{seconds} virtual s, {held} members held, {on_first} by node 0, {:.0} s real",
            start.elapsed().as_secs_f64()
        );
    }
    let real = start.elapsed().as_secs_f64();
    let rss_after = crate::procfs::rss_bytes(&pid);
    let mut held = 0usize;
    let mut most = (0usize, 0usize, 0usize);
    for node in sim.nodes.iter().filter_map(|n| n.engine.as_ref()) {
        let m = node.memory();
        held += m.peers;
        if m.peers > most.0 {
            most = (m.peers, m.member_bytes, node.status().peers.alive_peers);
        }
    }
    eprintln!(
        "members: {nodes} nodes, {held} members held, node with most: {most:?}, {real:.1} s real"
    );
    let mut t = Table::new(
        "Members held and their memory (deterministic simulator, 1 s probe period, membership only)",
        &[
            "nodes",
            "virtual s",
            "members on the fullest node",
            "alive there",
            "accounted bytes/member",
            "members, all nodes",
            "RSS growth/member (process)",
            "real s",
        ],
    );
    t.row(vec![
        nodes.to_string(),
        seconds.to_string(),
        most.0.to_string(),
        most.2.to_string(),
        fmt(most.1 as f64 / most.0.max(1) as f64),
        held.to_string(),
        fmt(rss_after.saturating_sub(booted_rss) as f64 / held.max(1) as f64),
        fmt(real),
    ]);
    t.note(format!(
        "Every node bootstraps from node 0, so node 0 learns all of them; the others hold at most \
         {OTHERS_MAX_PEERS} members each (`max_peers`), node 0 up to the default 16,384. Accounted bytes: `MemoryReport::member_bytes` (the member entries, \
         node ids, indexes and each session's fixed part; what grows with traffic is reported apart). RSS \
         growth: the process's resident memory after the run less after booting the {nodes} engines \
         ({} MB before booting, {} MB booted), over every member held by every node, so it includes the \
         channels' buffers and the simulator's datagrams in flight.",
        rss_before / 1_000_000,
        booted_rss / 1_000_000
    ));
    report.add(t);
}
