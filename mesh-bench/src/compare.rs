//! mesh-sync and chitchat (scuttlebutt gossip) side by side: the same workloads at the
//! same gossip/sync interval, bytes counted at each one's socket edge.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpSocket};
use chitchat::{
    spawn_chitchat, ChitchatConfig, ChitchatEnvelope, ChitchatHandle, ChitchatId,
    FailureDetectorConfig, ProtocolVersion,
};
use mesh_core::FaultConfig;

use crate::mesh::{self, Mesh};
use crate::procfs;
use crate::report::{count, fmt, Report, Table};

/// The gossip interval of chitchat and the sync and heartbeat intervals of mesh-sync.
const INTERVAL: Duration = Duration::from_secs(1);
const PATIENCE: Duration = Duration::from_secs(180);

#[derive(Default)]
struct Traffic {
    bytes_sent: AtomicU64,
    datagrams_sent: AtomicU64,
    bytes_received: AtomicU64,
    datagrams_received: AtomicU64,
}

/// Chitchat's own UDP socket with counters and receive-side loss around it. The socket is
/// opened beforehand so its real port can go into the node's id.
struct CountingTransport {
    socket: Mutex<Option<Box<dyn Socket>>>,
}

#[async_trait]
impl Transport for CountingTransport {
    async fn open(&self, _listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        self.socket
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .take()
            .ok_or_else(|| anyhow::anyhow!("socket already opened"))
    }
}

struct CountingSocket {
    inner: Box<dyn Socket>,
    traffic: Arc<Traffic>,
    loss: f64,
    rng: fastrand::Rng,
}

#[async_trait]
impl Socket for CountingSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.inner.local_addr()
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        let outcome = self.inner.send(to, envelope).await?;
        self.traffic
            .bytes_sent
            .fetch_add(outcome.num_bytes_sent as u64, Ordering::Relaxed);
        self.traffic.datagrams_sent.fetch_add(1, Ordering::Relaxed);
        Ok(outcome)
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            let outcome = self.inner.recv().await?;
            // Loss is decided on receipt: the sender has no say in it either way, and the
            // delivered-bytes figure then counts exactly what got through.
            if self.loss > 0.0 && self.rng.f64() < self.loss {
                continue;
            }
            self.traffic
                .bytes_received
                .fetch_add(outcome.num_bytes_received as u64, Ordering::Relaxed);
            self.traffic
                .datagrams_received
                .fetch_add(1, Ordering::Relaxed);
            return Ok(outcome);
        }
    }
}

struct ChitchatNode {
    handle: ChitchatHandle,
    id: ChitchatId,
    traffic: Arc<Traffic>,
}

async fn spawn_node(name: &str, seeds: &[SocketAddr], loss: f64, seed: u64) -> ChitchatNode {
    let inner = UdpSocket::open(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let addr = inner.local_addr().expect("addr");
    let traffic = Arc::new(Traffic::default());
    let socket = CountingSocket {
        inner: Box::new(inner),
        traffic: Arc::clone(&traffic),
        loss,
        rng: fastrand::Rng::with_seed(seed),
    };
    let transport = CountingTransport {
        socket: Mutex::new(Some(Box::new(socket))),
    };
    let id = ChitchatId::new(name.to_owned(), 1, addr);
    let config = ChitchatConfig {
        chitchat_id: id.clone(),
        cluster_id: "bench".to_owned(),
        gossip_interval: INTERVAL,
        listen_addr: addr,
        seed_nodes: seeds.iter().map(ToString::to_string).collect(),
        failure_detector_config: FailureDetectorConfig::default(),
        marked_for_deletion_grace_period: Duration::from_secs(3600),
        catchup_callback: None,
        extra_liveness_predicate: None,
        protocol_version: ProtocolVersion::V1,
    };
    let handle = spawn_chitchat(config, Vec::new(), &transport)
        .await
        .expect("spawn chitchat");
    ChitchatNode {
        handle,
        id,
        traffic,
    }
}

/// Figures of one system on one workload.
#[derive(Clone, Copy, Default)]
pub struct Side {
    pub converge: Option<Duration>,
    pub bytes: u64,
    pub datagrams: u64,
    pub idle_bytes_per_node_min: f64,
    pub idle_cpu_ms_per_node_min: f64,
    /// mesh-sync only: the core's counters over the convergence window.
    pub detail: Option<mesh_core::Counters>,
    /// Datagrams the kernel dropped for full receive buffers over the convergence window
    /// (machine-wide).
    pub rcvbuf_drops: u64,
    /// Everything the nodes' sockets sent, from start to shutdown.
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    /// CPU time of this whole process over the convergence window.
    pub converge_cpu: Duration,
}

pub struct Workload {
    pub label: String,
    /// Short name for `--rows`: `5x100`, `5x1000-loss`, `join`.
    pub name: String,
    pub nodes: usize,
    pub keys_per_node: usize,
    pub loss: f64,
    /// Instead of every node writing: node 0 holds `keys_per_node` keys, node 1 joins.
    pub join: bool,
}

fn values(n: usize, seed: u64) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n).map(|_| mesh::value_100(&mut rng)).collect()
}

fn chitchat_totals(nodes: &[ChitchatNode]) -> (u64, u64) {
    nodes.iter().fold((0, 0), |(b, d), n| {
        (
            b + n.traffic.bytes_received.load(Ordering::Relaxed),
            d + n.traffic.datagrams_received.load(Ordering::Relaxed),
        )
    })
}

fn run_chitchat(rt: &tokio::runtime::Runtime, w: &Workload, idle: Duration) -> Side {
    let writers = if w.join { 1 } else { w.nodes };
    let total_nodes = if w.join { 2 } else { w.nodes };
    let mut nodes: Vec<ChitchatNode> = Vec::new();
    rt.block_on(async {
        // Every node is seeded with node 0, as chitchat deployments are.
        let first = spawn_node("cc0", &[], w.loss, 1).await;
        let first_addr = first.id.gossip_advertise_addr;
        nodes.push(first);
        let initial = if w.join { 1 } else { w.nodes };
        for i in 1..initial {
            nodes.push(spawn_node(&format!("cc{i}"), &[first_addr], w.loss, i as u64 + 1).await);
        }
    });
    let formed = |nodes: &[ChitchatNode], want: usize| {
        nodes.iter().all(|n| {
            let c = n.handle.chitchat();
            let guard = c.blocking_lock();
            guard.live_nodes().count() >= want
        })
    };
    let initial = nodes.len();
    mesh::wait_for(PATIENCE, || formed(&nodes, initial));
    let vals = values(w.keys_per_node, 9);
    let mut versions = Vec::new();
    for node in nodes.iter().take(writers) {
        let c = node.handle.chitchat();
        let mut guard = c.blocking_lock();
        let state = guard.self_node_state();
        for (k, v) in vals.iter().enumerate() {
            state.set(format!("key/{k:08}"), v);
        }
        versions.push((node.id.clone(), state.max_version()));
    }
    let (bytes0, datagrams0) = chitchat_totals(&nodes);
    let cpu0 = procfs::cpu_time("self");
    let start = Instant::now();
    if w.join {
        let first_addr = nodes[0].id.gossip_advertise_addr;
        let joiner = rt.block_on(spawn_node("cc-join", &[first_addr], w.loss, 99));
        nodes.push(joiner);
    }
    let converged = mesh::wait_for(PATIENCE, || {
        nodes.iter().all(|n| {
            let c = n.handle.chitchat();
            let guard = c.blocking_lock();
            versions
                .iter()
                .all(|(id, v)| guard.node_state(id).is_some_and(|s| s.max_version() >= *v))
        })
    });
    let converge = converged.then(|| start.elapsed());
    let converge_cpu = procfs::cpu_since(cpu0, procfs::cpu_time("self"));
    let (bytes1, datagrams1) = chitchat_totals(&nodes);
    if converged {
        // The version check is what polling can afford; confirm the key count once.
        let want = writers * w.keys_per_node;
        for n in &nodes {
            let c = n.handle.chitchat();
            let guard = c.blocking_lock();
            let held: usize = versions
                .iter()
                .map(|(id, _)| guard.node_state(id).map_or(0, |s| s.num_key_values()))
                .sum();
            assert_eq!(
                held, want,
                "chitchat node {:?} holds {held} of {want} keys",
                n.id
            );
        }
    }
    let (idle_bytes, idle_cpu) = measure_idle(idle, total_nodes, || chitchat_totals(&nodes).0);
    rt.block_on(async {
        for n in &nodes {
            let _ = n.handle.initiate_shutdown();
        }
    });
    let mut datagrams_sent = 0;
    let mut bytes_sent = 0;
    rt.block_on(async {
        for n in nodes {
            let _ = n.handle.shutdown().await;
            datagrams_sent += n.traffic.datagrams_sent.load(Ordering::Relaxed);
            bytes_sent += n.traffic.bytes_sent.load(Ordering::Relaxed);
        }
    });
    Side {
        detail: None,
        rcvbuf_drops: 0,
        datagrams_sent,
        bytes_sent,
        converge,
        bytes: bytes1 - bytes0,
        datagrams: datagrams1 - datagrams0,
        idle_bytes_per_node_min: idle_bytes,
        idle_cpu_ms_per_node_min: idle_cpu,
        converge_cpu,
    }
}

/// Idle bytes and CPU per node per minute over `window`, after a short settle.
fn measure_idle(window: Duration, nodes: usize, bytes: impl Fn() -> u64) -> (f64, f64) {
    if window.is_zero() {
        return (0.0, 0.0);
    }
    std::thread::sleep(Duration::from_secs(2));
    let b0 = bytes();
    let cpu0 = procfs::cpu_time("self");
    let start = Instant::now();
    std::thread::sleep(window);
    let per_min = 60.0 / start.elapsed().as_secs_f64();
    let b = (bytes() - b0) as f64 * per_min / nodes as f64;
    let cpu = procfs::cpu_since(cpu0, procfs::cpu_time("self")).as_secs_f64() * 1000.0 * per_min
        / nodes as f64;
    (b, cpu)
}

fn mesh_config(c: &mut mesh_core::Config) {
    c.sync_interval = INTERVAL;
    c.heartbeat_interval = INTERVAL;
    c.peer_timeout = 5 * INTERVAL;
}

fn run_mesh(w: &Workload, idle: Duration) -> Side {
    let writers = if w.join { 1 } else { w.nodes };
    let initial = if w.join { 1 } else { w.nodes };
    let mut m = Mesh::new(initial, "cmp-", mesh_config);
    m.wait_formed(PATIENCE);
    for n in &m.nodes {
        n.set_faults(FaultConfig::lossy(w.loss)).ok();
    }
    let vals = values(w.keys_per_node, 9);
    let want = writers * w.keys_per_node;
    let received = |m: &Mesh| {
        m.nodes
            .iter()
            .map(|n| n.status().counters)
            .fold((0, 0), |(b, d), c| {
                (b + c.bytes_received, d + c.datagrams_received)
            })
    };
    let (bytes0, datagrams0);
    let start;
    let detail0 = m.counters();
    let drops0 = procfs::udp_rcvbuf_errors();
    let cpu0 = procfs::cpu_time("self");
    if w.join {
        for (k, v) in vals.iter().enumerate() {
            m.nodes[0].set(&format!("key/{k:08}"), v.as_str()).ok();
        }
        (bytes0, datagrams0) = received(&m);
        let mut c = mesh::config("cmp-join");
        mesh_config(&mut c);
        let joiner = mesh_core::Node::new(c).expect("node");
        joiner.set_faults(FaultConfig::lossy(w.loss)).ok();
        joiner.add_bootstrap_addr(m.nodes[0].local_addr());
        start = Instant::now();
        joiner.start().ok();
        m.nodes.push(joiner);
    } else {
        (bytes0, datagrams0) = received(&m);
        start = Instant::now();
        for node in m.nodes.iter().take(writers) {
            let id = node.node_id().to_owned();
            for (k, v) in vals.iter().enumerate() {
                node.set(&format!("{id}/{k:08}"), v.as_str()).ok();
            }
        }
    }
    let converged = mesh::wait_for(PATIENCE, || m.all_hold(want));
    let converge = converged.then(|| start.elapsed());
    let converge_cpu = procfs::cpu_since(cpu0, procfs::cpu_time("self"));
    let (bytes1, datagrams1) = received(&m);
    let detail = mesh::diff(&m.counters(), &detail0);
    let rcvbuf_drops = procfs::udp_rcvbuf_errors() - drops0;
    let nodes = m.nodes.len();
    let (idle_bytes, idle_cpu) = measure_idle(idle, nodes, || received(&m).0);
    let sent = m.counters();
    Side {
        detail: Some(detail),
        rcvbuf_drops,
        datagrams_sent: sent.datagrams_sent,
        bytes_sent: sent.bytes_sent,
        converge,
        bytes: bytes1 - bytes0,
        datagrams: datagrams1 - datagrams0,
        idle_bytes_per_node_min: idle_bytes,
        idle_cpu_ms_per_node_min: idle_cpu,
        converge_cpu,
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        format!("{:.3}", a / b)
    } else {
        "n/a".to_owned()
    }
}

/// Short names of the full run's rows, as `--rows` takes them.
pub const ROW_NAMES: &[&str] = &[
    "5x100",
    "5x1000",
    "20x100",
    "20x1000",
    "5x1000-loss",
    "join",
    "50x100",
    "100x100",
];

/// Runs the comparison: every row (or, with `--smoke`, two tiny ones), or only the rows
/// named in `rows` (see [`ROW_NAMES`]).
/// `mesh_only` skips chitchat, whose side then reads `n/a`: for iterating on one row.
pub fn run(report: &mut Report, smoke: bool, rows: Option<&[String]>, mesh_only: bool) {
    let w = |nodes, keys, loss: f64, join| Workload {
        name: if join {
            "join".to_owned()
        } else if loss > 0.0 {
            format!("{nodes}x{keys}-loss")
        } else {
            format!("{nodes}x{keys}")
        },
        label: if join {
            format!("1 node holds {} keys, 1 joins", count(keys as u64))
        } else {
            format!(
                "{nodes} nodes × {} keys{}",
                count(keys as u64),
                if loss > 0.0 {
                    format!(", {:.0}% loss", loss * 100.0)
                } else {
                    String::new()
                }
            )
        },
        nodes,
        keys_per_node: keys,
        loss,
        join,
    };
    let (workloads, idle) = if smoke {
        (
            vec![w(3, 20, 0.0, false), w(2, 500, 0.0, true)],
            Duration::from_secs(2),
        )
    } else {
        (
            vec![
                w(5, 100, 0.0, false),
                w(5, 1_000, 0.0, false),
                w(20, 100, 0.0, false),
                w(20, 1_000, 0.0, false),
                w(5, 1_000, 0.1, false),
                w(2, 10_000, 0.0, true),
                w(50, 100, 0.0, false),
                w(100, 100, 0.0, false),
            ],
            Duration::from_secs(15),
        )
    };
    let workloads: Vec<Workload> = match rows {
        Some(rows) if !smoke => workloads
            .into_iter()
            .filter(|w| rows.contains(&w.name))
            .collect(),
        _ => workloads,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut t = Table::new(
        "mesh-sync vs chitchat: same workload, gossip/sync interval 1 s (ratio = mesh-sync / chitchat)",
        &[
            "workload", "converge ms mesh", "converge ms chitchat", "ratio", "bytes mesh", "bytes chitchat",
            "ratio", "datagrams mesh", "datagrams chitchat", "idle B/node/min mesh", "idle B/node/min chitchat",
            "ratio", "idle CPU ms/node/min mesh", "idle CPU ms/node/min chitchat",
            "CPU ms to converge mesh", "CPU ms to converge chitchat",
        ],
    );
    let mut d = Table::new(
        "mesh-sync's own counters during convergence in the comparison",
        &[
            "workload",
            "entries needed",
            "entries received",
            "received/needed",
            "sync rounds started",
            "tree grafts",
            "tree prunes",
            "retransmits",
            "given up",
            "congestion events",
            "kernel rcvbuf drops",
        ],
    );
    for wl in &workloads {
        let m = run_mesh(wl, idle);
        if let Some(c) = m.detail {
            // Each key must reach every node but its writer.
            let needed = if wl.join {
                wl.keys_per_node as u64
            } else {
                (wl.nodes * wl.keys_per_node * (wl.nodes - 1)) as u64
            };
            d.row(vec![
                wl.label.clone(),
                count(needed),
                count(c.entries_received),
                fmt(c.entries_received as f64 / needed as f64),
                count(c.sync_rounds),
                count(c.grafts_sent),
                count(c.prunes_sent),
                count(c.retransmits),
                count(c.given_up),
                count(c.congestion_events),
                count(m.rcvbuf_drops),
            ]);
        }
        let c = if mesh_only {
            Side::default()
        } else {
            run_chitchat(&rt, wl, idle)
        };
        let conv = |s: &Side| s.converge.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
        t.row(vec![
            wl.label.clone(),
            fmt(conv(&m)),
            fmt(conv(&c)),
            ratio(conv(&m), conv(&c)),
            count(m.bytes),
            count(c.bytes),
            ratio(m.bytes as f64, c.bytes as f64),
            count(m.datagrams),
            count(c.datagrams),
            fmt(m.idle_bytes_per_node_min),
            fmt(c.idle_bytes_per_node_min),
            ratio(m.idle_bytes_per_node_min, c.idle_bytes_per_node_min),
            fmt(m.idle_cpu_ms_per_node_min),
            fmt(c.idle_cpu_ms_per_node_min),
            fmt(m.converge_cpu.as_secs_f64() * 1000.0),
            fmt(c.converge_cpu.as_secs_f64() * 1000.0),
        ]);
    }
    t.note(format!(
        "Each workload runs on mesh-sync, then on chitchat 0.13 (protocol V1, zstd-compressed), in this \
         process on 127.0.0.1. Intervals: chitchat gossip {s} s; mesh-sync sync {s} s and heartbeat {s} s \
         (its defaults are 10 s and 5 s). Values are 100 random letters and digits. Converge: from the \
         writes (or the joiner's start) until every node holds every key. Bytes and datagrams: UDP payload \
         delivered to all nodes' sockets during that time (mesh-sync: the core's receive counters; \
         chitchat: a counting wrapper around its own UDP transport). Loss is 10% per datagram, on the \
         sending side for mesh-sync and the receiving side for chitchat. Idle: {i} s after convergence, \
         per node per minute; CPU is this process's time over that window divided by the nodes (tokio's \
         two worker threads included for chitchat). CPU to converge: this process's CPU time from the \
         writes until convergence, all threads. chitchat datagrams go up to 65,507 bytes (IP-fragmented off loopback); mesh-sync's \
         start at 1,200 and grow, on links that carry long transfers, to what a probe shows the path \
         carries without fragments (on loopback, up to its default ceiling of 16,384).",
        s = INTERVAL.as_secs(),
        i = idle.as_secs()
    ));
    report.add(t);
    d.note(
        "Entries received counts every copy of a write that reached a node (pushes, anti-entropy streams, \
         retransmissions that got through). received/needed above 1 is data sent more than once. Kernel \
         rcvbuf drops: datagrams the kernel discarded because a socket's receive buffer was full \
         (machine-wide counter, read before and after).",
    );
    report.add(d);
}

/// Runs `n` chitchat nodes each writing `keys` keys until all converge, shuts them down,
/// and returns the datagrams and bytes their sockets sent.
pub fn chitchat_sent(n: usize, keys: usize) -> (u64, u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let w = Workload {
        label: String::new(),
        name: String::new(),
        nodes: n,
        keys_per_node: keys,
        loss: 0.0,
        join: false,
    };
    let side = run_chitchat(&rt, &w, Duration::ZERO);
    (side.datagrams_sent, side.bytes_sent)
}
