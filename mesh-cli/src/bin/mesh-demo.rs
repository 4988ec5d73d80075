//! `mesh-demo`: a mesh of several nodes in one process, on 127.0.0.1, with packet loss
//! injected at every node's socket and writes made at random nodes. It shows every
//! node's state live, measures how long each write takes to reach every node, and ends
//! with a verdict on convergence.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use mesh_cli::args::{parse_probability, parse_seconds};
use mesh_cli::stats::{format_duration, summarize};
use mesh_core::{Config, Event, FaultConfig, Node, Value};
use parking_lot::Mutex;

/// `println!` that ignores a closed standard output (`mesh-demo | head`) instead of
/// panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, $($arg)*);
    }};
}

/// Runs a local mesh of several nodes in one process, on 127.0.0.1, drops a share of
/// every node's outgoing datagrams on purpose, and makes random writes at random nodes.
/// Shows each node's state live, how long writes take to reach every node, and ends
/// with a verdict: did every node converge to the same state, the one last written?
#[derive(Debug, Parser)]
#[command(name = "mesh-demo", version)]
struct Args {
    /// Number of nodes in the mesh.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=64))]
    nodes: u16,

    /// Fraction of outgoing datagrams each node drops on purpose (0.2 or 20%).
    #[arg(long, value_name = "P", default_value = "0.2", value_parser = parse_probability)]
    loss: f64,

    /// Seconds of random writes before the final verdict.
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = parse_seconds)]
    duration: Duration,

    /// Keep writing until Ctrl-C, then give the verdict.
    #[arg(long)]
    forever: bool,

    /// Writes per second, spread over random nodes.
    #[arg(long, value_name = "N", default_value = "5", value_parser = parse_rate)]
    rate: f64,

    /// Number of distinct keys written (fewer keys: more overwrites).
    #[arg(long, value_name = "N", default_value_t = 12, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    keys: u16,

    /// Do not restart a node halfway through. By default the last node is stopped and
    /// replaced by a fresh one, which comes back empty (nothing is persisted) and must
    /// recover the state from its peers.
    #[arg(long)]
    no_restart: bool,

    /// Seconds between anti-entropy rounds.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_seconds)]
    sync_interval: Duration,

    /// Seconds between heartbeats.
    #[arg(long, value_name = "SECS", default_value = "0.5", value_parser = parse_seconds)]
    heartbeat_interval: Duration,

    /// Seconds of silence before a peer is suspected.
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = parse_seconds)]
    peer_timeout: Duration,

    /// Longest wait, after the last write, for the mesh to converge.
    #[arg(long, value_name = "SECS", default_value = "15", value_parser = parse_seconds)]
    settle: Duration,

    /// Seed of the random writes (and of the nodes' choices), to replay a run.
    #[arg(long)]
    seed: Option<u64>,

    /// Print a snapshot every few seconds instead of redrawing a live table (the default
    /// when standard output is not a terminal).
    #[arg(long)]
    plain: bool,

    /// Run the mesh without a key: datagrams travel unsealed. By default the nodes share
    /// a key generated for this run, and every datagram is encrypted and authenticated.
    #[arg(long)]
    plaintext: bool,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if !(0.1..=1000.0).contains(&rate) {
        return Err("must be between 0.1 and 1000 writes per second".to_owned());
    }
    Ok(rate)
}

/// One write made by the demo, and when it reached each node.
struct Write {
    key: String,
    origin: usize,
    at: Instant,
    /// Per node: how long until the node held this write or a newer one of the same key.
    reached: Vec<Option<Duration>>,
}

impl Write {
    fn reached_all(&self) -> Option<Duration> {
        self.reached
            .iter()
            .copied()
            .collect::<Option<Vec<_>>>()
            .map(|delays| delays.into_iter().max().unwrap_or_default())
    }
}

/// What the nodes have reported, shared with their callback threads.
#[derive(Default)]
struct Tracker {
    /// Indexed by write sequence number.
    writes: Vec<Write>,
    /// Per key, writes not yet held by every node.
    pending: HashMap<String, Vec<usize>>,
}

impl Tracker {
    /// Node `node` now holds write `seq` of `key`; writes are made in order at least a
    /// few milliseconds apart, so a later sequence number also wins last-writer-wins and
    /// supersedes every earlier write of the key.
    fn held(&mut self, node: usize, key: &str, seq: usize, now: Instant) {
        let Some(pending) = self.pending.get_mut(key) else {
            return;
        };
        let writes = &mut self.writes;
        pending.retain(|&w| {
            let write = &mut writes[w];
            if w <= seq && write.reached[node].is_none() {
                write.reached[node] = Some(now.saturating_duration_since(write.at));
            }
            write.reached.iter().any(Option::is_none)
        });
    }
}

/// A short fingerprint of a node's whole state: equal states show equal digests.
fn digest(data: &BTreeMap<String, Value>) -> String {
    // FNV-1a over the canonical JSON (BTreeMap iteration is in key order), then a
    // finalizer so that a change in the last byte reaches the 16 bits shown.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (key, value) in data {
        for byte in key.bytes().chain([0]).chain(value.to_json().into_bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    format!("{:04x}", hash >> 48)
}

fn seq_of(value: &Value) -> Option<usize> {
    match value {
        Value::Map(map) => match map.get("seq") {
            Some(Value::Int(seq)) => usize::try_from(*seq).ok(),
            _ => None,
        },
        _ => None,
    }
}

struct Demo {
    /// The key every node seals with; `None` with `--plaintext`.
    key: Option<mesh_core::Key>,
    args: Args,
    cluster: String,
    nodes: Vec<Node>,
    tracker: Arc<Mutex<Tracker>>,
    /// The value each key should hold everywhere: its last write.
    expected: BTreeMap<String, Value>,
    rng: fastrand::Rng,
    started: Instant,
    /// Node restarted mid-run and when it came back.
    restarted: Option<(usize, Instant)>,
    recovered_after: Option<Duration>,
    /// Counters of nodes that were stopped, so totals survive a restart.
    retired: Totals,
}

#[derive(Clone, Copy, Default)]
struct Totals {
    sent: u64,
    retransmits: u64,
    offered: u64,
    dropped: u64,
}

impl Totals {
    fn add(&mut self, node: &Node) {
        let status = node.status();
        let faults = node.fault_stats();
        self.sent += status.counters.datagrams_sent;
        self.retransmits += status.counters.retransmits;
        self.offered += faults.packets_sent;
        self.dropped += faults.packets_dropped;
    }
}

impl Demo {
    fn node_name(i: usize) -> String {
        format!("node-{}", i + 1)
    }

    fn config(&self, i: usize, port: u16) -> Config {
        let mut config = Config::new(Self::node_name(i), port);
        config.host = "127.0.0.1".to_owned();
        config.cluster = self.cluster.clone();
        config.sync_interval = self.args.sync_interval;
        config.heartbeat_interval = self.args.heartbeat_interval;
        config.peer_timeout = self.args.peer_timeout;
        config.seed = self.args.seed.map(|s| s.wrapping_add(i as u64));
        config.keyring = self.key.iter().cloned().collect();
        config
    }

    /// Creates node `i` on `port` (0: any), joined through the first node.
    fn spawn(&self, i: usize, port: u16) -> Result<Node, mesh_core::Error> {
        let node = Node::new(self.config(i, port))?;
        node.set_faults(FaultConfig::lossy(self.args.loss))?;
        let tracker = Arc::clone(&self.tracker);
        node.set_event_handler(move |event| {
            if let Event::StateChanged {
                key,
                value: Some(value),
                ..
            } = event
            {
                if let Some(seq) = seq_of(value) {
                    tracker.lock().held(i, key, seq, Instant::now());
                }
            }
        });
        if let Some(first) = self.nodes.first().filter(|_| i != 0) {
            node.add_bootstrap_addr(first.local_addr());
        }
        node.start()?;
        Ok(node)
    }

    fn write(&mut self) {
        let origin = self.rng.usize(..self.nodes.len());
        let key = format!("sensor-{:02}", self.rng.u16(..self.args.keys));
        let reading = (180.0 + self.rng.f64() * 100.0).round() / 10.0;
        let mut tracker = self.tracker.lock();
        let seq = tracker.writes.len();
        let value = Value::Map(BTreeMap::from([
            ("seq".to_owned(), Value::Int(seq as i64)),
            ("by".to_owned(), Value::String(Self::node_name(origin))),
            ("celsius".to_owned(), Value::Float(reading)),
        ]));
        let mut reached = vec![None; self.nodes.len()];
        reached[origin] = Some(Duration::ZERO);
        tracker.writes.push(Write {
            key: key.clone(),
            origin,
            at: Instant::now(),
            reached,
        });
        tracker.pending.entry(key.clone()).or_default().push(seq);
        // Registered before the write so that no node can report it before it is known.
        drop(tracker);
        if let Err(e) = self.nodes[origin].set(&key, value.clone()) {
            eprintln!("write failed: {e}");
            return;
        }
        self.expected.insert(key, value);
    }

    /// Stops node `i` and starts a fresh one with the same name and port.
    fn restart(&mut self, i: usize) {
        let port = self.nodes[i].port();
        self.retired.add(&self.nodes[i]);
        self.nodes[i].stop();
        match self.spawn(i, port) {
            Ok(node) => {
                self.nodes[i] = node;
                self.restarted = Some((i, Instant::now()));
            }
            Err(e) => eprintln!("could not restart {}: {e}", Self::node_name(i)),
        }
    }

    /// Per node: how many keys differ from the expected state.
    fn lag(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .map(|node| {
                let data = node.get_all();
                let missing = self
                    .expected
                    .iter()
                    .filter(|(k, v)| data.get(*k) != Some(v))
                    .count();
                let extra = data
                    .keys()
                    .filter(|k| !self.expected.contains_key(*k))
                    .count();
                missing + extra
            })
            .collect()
    }

    fn totals(&self) -> Totals {
        let mut totals = self.retired;
        for node in &self.nodes {
            totals.add(node);
        }
        totals
    }

    fn frame(&self) -> String {
        let lag = self.lag();
        let tracker = self.tracker.lock();
        let everywhere: Vec<Duration> = tracker
            .writes
            .iter()
            .filter_map(Write::reached_all)
            .collect();
        let mut out = String::new();
        let elapsed = self.started.elapsed().as_secs_f64();
        out += &format!(
            "mesh-demo  {} nodes on 127.0.0.1  {:.0}% loss injected  t={elapsed:.1}s\n",
            self.nodes.len(),
            self.args.loss * 100.0
        );
        out += &format!(
            "writes: {} made, {} reached every node",
            tracker.writes.len(),
            everywhere.len()
        );
        if let Some(s) = summarize(&everywhere) {
            out += &format!(
                "  (time to reach all: median {}, p99 {})",
                format_duration(s.median),
                format_duration(s.p99)
            );
        }
        out += "\n\n";
        out += &format!(
            "{:<9} {:>5}  {:>6}  {:>9}  {:>8}  {:>8}  {:<6}  {}\n",
            "NODE", "KEYS", "ALIVE", "SENT", "RETRANS", "DROPPED", "DIGEST", "STATE"
        );
        for (i, node) in self.nodes.iter().enumerate() {
            let status = node.status();
            let faults = node.fault_stats();
            let state = match lag[i] {
                0 => "in sync".to_owned(),
                1 => "1 key behind".to_owned(),
                n => format!("{n} keys behind"),
            };
            let note = match self.restarted {
                Some((r, _)) if r == i => "  (restarted)",
                _ => "",
            };
            out += &format!(
                "{:<9} {:>5}  {:>3}/{:<2}  {:>9}  {:>8}  {:>8}  {:<6}  {state}{note}\n",
                Self::node_name(i),
                status.data_keys,
                status.peers.alive_peers,
                self.nodes.len() - 1,
                status.counters.datagrams_sent,
                status.counters.retransmits,
                faults.packets_dropped,
                digest(&node.get_all()),
            );
        }
        if let Some((i, at)) = self.restarted {
            out += &format!(
                "\nrestart: {} was replaced by an empty node at t={:.1}s; {}\n",
                Self::node_name(i),
                at.duration_since(self.started).as_secs_f64(),
                match self.recovered_after {
                    Some(d) => format!("it recovered the whole state in {}", format_duration(d)),
                    None => "recovering the state from its peers...".to_owned(),
                }
            );
        }
        if let Some(last) = tracker.writes.last() {
            let seq = tracker.writes.len() - 1;
            let held = last.reached.iter().filter(|r| r.is_some()).count();
            out += &format!(
                "\nlast write: #{seq} {} set {} at {}; held by {held}/{} nodes{}\n",
                Self::node_name(last.origin),
                last.key,
                format_duration(last.at.duration_since(self.started)),
                self.nodes.len(),
                last.reached_all()
                    .map(|d| format!(", everywhere after {}", format_duration(d)))
                    .unwrap_or_default()
            );
        }
        out
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    let live = !args.plain && std::io::stdout().is_terminal();

    let interrupted = Arc::new(AtomicUsize::new(0));
    {
        let interrupted = Arc::clone(&interrupted);
        let _ = ctrlc::set_handler(move || {
            // The first Ctrl-C ends the writes and asks for the verdict; a second one
            // leaves at once.
            if interrupted.fetch_add(1, Ordering::SeqCst) >= 1 {
                std::process::exit(130);
            }
        });
    }

    let key = if args.plaintext {
        None
    } else {
        match mesh_core::generate_key() {
            Ok(key) => Some(key),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let mut demo = Demo {
        key,
        cluster: format!("mesh-demo-{:08x}", fastrand::u32(..)),
        rng: fastrand::Rng::with_seed(seed),
        nodes: Vec::new(),
        tracker: Arc::new(Mutex::new(Tracker::default())),
        expected: BTreeMap::new(),
        started: Instant::now(),
        restarted: None,
        recovered_after: None,
        retired: Totals::default(),
        args,
    };
    for i in 0..usize::from(demo.args.nodes) {
        match demo.spawn(i, 0) {
            Ok(node) => demo.nodes.push(node),
            Err(e) => {
                eprintln!("error: cannot start {}: {e}", Demo::node_name(i));
                return ExitCode::FAILURE;
            }
        }
    }
    say!(
        "Started {} nodes on 127.0.0.1 (ports {}); each drops {:.0}% of its outgoing datagrams.",
        demo.nodes.len(),
        demo.nodes
            .iter()
            .map(|n| n.port().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        demo.args.loss * 100.0
    );
    match &demo.key {
        Some(key) => say!(
            "Every datagram is sealed with a key generated for this run (fingerprint {}).",
            key.fingerprint()
        ),
        None => say!("Datagrams travel in plaintext (--plaintext)."),
    }
    say!(
        "Writing about {} times a second to random nodes {}; seed {seed}.",
        demo.args.rate,
        if demo.args.forever {
            "until Ctrl-C".to_owned()
        } else {
            format!(
                "for {} s (Ctrl-C to stop early)",
                demo.args.duration.as_secs_f64()
            )
        }
    );

    let redraw = if live {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(5)
    };
    let mut drawn_lines = 0usize;
    let mut draw = |demo: &Demo, last: bool| {
        let frame = demo.frame();
        let mut stdout = std::io::stdout().lock();
        if live && drawn_lines > 0 {
            // Back to the top of the previous frame, and clear it.
            let _ = write!(stdout, "\x1b[{drawn_lines}F\x1b[J");
        }
        let _ = write!(stdout, "{frame}");
        if !live && !last {
            let _ = writeln!(stdout);
        }
        let _ = stdout.flush();
        drawn_lines = frame.lines().count();
    };

    // Writes start once the mesh has formed, so that early figures measure delivery and
    // not discovery.
    let forming = Instant::now();
    let everyone = demo.nodes.len() - 1;
    while demo
        .nodes
        .iter()
        .any(|n| n.status().peers.alive_peers < everyone)
    {
        if forming.elapsed() > Duration::from_secs(10) || interrupted.load(Ordering::SeqCst) > 0 {
            eprintln!("warning: the mesh has not fully formed after 10 s; writing anyway");
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    say!(
        "Mesh formed: every node sees the {everyone} others, {} after start.\n",
        format_duration(forming.elapsed())
    );
    demo.started = Instant::now();

    let write_gap = Duration::from_secs_f64(1.0 / demo.args.rate);
    let restart_at = demo.started + demo.args.duration / 2;
    let mut next_write = Instant::now() + write_gap;
    let mut next_draw = Instant::now();
    let writes_end = demo.started + demo.args.duration;
    loop {
        let now = Instant::now();
        if interrupted.load(Ordering::SeqCst) > 0 || (!demo.args.forever && now >= writes_end) {
            break;
        }
        if now >= next_write {
            demo.write();
            // Jittered so that writes from different nodes interleave unevenly; never
            // closer than 5 ms, so write order is also last-writer-wins order.
            let jitter = 0.5 + demo.rng.f64();
            next_write = now + write_gap.mul_f64(jitter).max(Duration::from_millis(5));
        }
        if !demo.args.no_restart && demo.restarted.is_none() && now >= restart_at {
            let victim = demo.nodes.len() - 1;
            demo.restart(victim);
        }
        if let (Some((i, at)), None) = (demo.restarted, demo.recovered_after) {
            if demo.lag()[i] == 0 {
                demo.recovered_after = Some(at.elapsed());
            }
        }
        if now >= next_draw {
            draw(&demo, false);
            next_draw = now + redraw;
        }
        let until = next_write
            .min(next_draw)
            .min(now + Duration::from_millis(50));
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }

    // Settle: no more writes; wait for every node to hold the expected state and for
    // every write to be accounted for at every node.
    let writes_stopped = Instant::now();
    let mut checks = 0usize;
    let settle_deadline = Instant::now() + demo.args.settle;
    let converged = loop {
        checks += 1;
        let lag = demo.lag();
        let all_reached = demo.tracker.lock().pending.values().all(Vec::is_empty);
        if lag.iter().all(|&l| l == 0) && all_reached {
            break true;
        }
        if Instant::now() >= settle_deadline || interrupted.load(Ordering::SeqCst) > 1 {
            break false;
        }
        if Instant::now() >= next_draw {
            draw(&demo, false);
            next_draw = Instant::now() + redraw;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // None: the first check already found the mesh converged.
    let settled_after = (checks > 1).then(|| writes_stopped.elapsed());
    if let (Some((i, at)), None) = (demo.restarted, demo.recovered_after) {
        if demo.lag()[i] == 0 {
            demo.recovered_after = Some(at.elapsed());
        }
    }
    draw(&demo, true);
    say!("{}", verdict(&demo, converged, settled_after));
    for node in &demo.nodes {
        node.stop();
    }
    if converged {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn verdict(demo: &Demo, converged: bool, settled_after: Option<Duration>) -> String {
    let tracker = demo.tracker.lock();
    let n = demo.nodes.len();
    let made = tracker.writes.len();
    let everywhere: Vec<Duration> = tracker
        .writes
        .iter()
        .filter_map(Write::reached_all)
        .collect();
    let one_node: Vec<Duration> = tracker
        .writes
        .iter()
        .flat_map(|w| {
            w.reached
                .iter()
                .enumerate()
                .filter(move |(i, _)| *i != w.origin)
                .filter_map(|(_, r)| *r)
        })
        .collect();
    let totals = demo.totals();
    let lag = demo.lag();
    let mut out = String::from("\n");
    if converged {
        out += &format!(
            "VERDICT: CONVERGED. All {n} nodes hold the same {} keys, each the last value written,",
            demo.expected.len()
        );
        out += &match settled_after {
            Some(d) => format!(
                "\n         {} after the writes stopped.\n",
                format_duration(d)
            ),
            None => "\n         already when the writes stopped.\n".to_owned(),
        };
    } else {
        let behind: Vec<String> = lag
            .iter()
            .enumerate()
            .filter(|(_, l)| **l > 0)
            .map(|(i, l)| format!("{} ({l} keys)", Demo::node_name(i)))
            .collect();
        out += &format!(
            "VERDICT: NOT CONVERGED within {} s after the writes stopped. Behind: {}.\n",
            demo.args.settle.as_secs_f64(),
            if behind.is_empty() {
                "none, but some writes were never reported".to_owned()
            } else {
                behind.join(", ")
            }
        );
    }
    out += &format!(
        "  writes       {made} made at random nodes; {} of them reached all {n} nodes\n",
        everywhere.len()
    );
    if let Some(s) = summarize(&everywhere) {
        out += &format!(
            "  reach all    median {}, p99 {}, max {}  (write until every node holds it)\n",
            format_duration(s.median),
            format_duration(s.p99),
            format_duration(s.max)
        );
    }
    if let Some(s) = summarize(&one_node) {
        out += &format!(
            "  reach one    median {}, p99 {}, max {}  (write until one given node holds it)\n",
            format_duration(s.median),
            format_duration(s.p99),
            format_duration(s.max)
        );
    }
    if let Some((i, _)) = demo.restarted {
        out += &match demo.recovered_after {
            Some(d) => format!(
                "  restart      {} came back empty and recovered the whole state from its peers in {}\n",
                Demo::node_name(i),
                format_duration(d)
            ),
            None => format!(
                "  restart      {} came back empty and has not recovered the whole state\n",
                Demo::node_name(i)
            ),
        };
    }
    let drop_pct = if totals.offered == 0 {
        0.0
    } else {
        totals.dropped as f64 * 100.0 / totals.offered as f64
    };
    out += &format!(
        "  network      {} datagrams sent; {} of {} dropped on purpose ({drop_pct:.1}%); {} retransmissions",
        totals.sent, totals.dropped, totals.offered, totals.retransmits
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_the_readme_names_are_accepted() {
        let readme = include_str!("../../../README.md");
        for flag in [
            "--forever",
            "--loss 0.4",
            "--nodes 8",
            "--rate 50",
            "--duration 60",
            "--no-restart",
            "--seed 7",
        ] {
            let flag_name = flag.split(' ').next().unwrap();
            assert!(
                readme.contains(flag_name),
                "README.md no longer names {flag_name}"
            );
            let args = std::iter::once("mesh-demo").chain(flag.split(' '));
            if let Err(e) = Args::try_parse_from(args) {
                panic!("`{flag}` is rejected: {e}");
            }
        }
    }

    #[test]
    fn later_writes_supersede_earlier_ones_in_the_tracker() {
        let mut tracker = Tracker::default();
        let start = Instant::now();
        for origin in [0, 1] {
            let seq = tracker.writes.len();
            let mut reached = vec![None; 3];
            reached[origin] = Some(Duration::ZERO);
            tracker.writes.push(Write {
                key: "k".into(),
                origin,
                at: start,
                reached,
            });
            tracker.pending.entry("k".into()).or_default().push(seq);
        }
        // The writer of the second write reports it at once, as its own event handler does.
        tracker.held(1, "k", 1, start);
        // Node 2 receives only the second write: it holds the first one's key up to date.
        tracker.held(2, "k", 1, start + Duration::from_millis(5));
        assert_eq!(tracker.writes[0].reached[2], Some(Duration::from_millis(5)));
        assert_eq!(tracker.writes[1].reached_all(), None);
        tracker.held(0, "k", 1, start + Duration::from_millis(7));
        assert_eq!(
            tracker.writes[1].reached_all(),
            Some(Duration::from_millis(7))
        );
        assert!(tracker.pending["k"].is_empty());
    }

    #[test]
    fn digests_tell_states_apart() {
        let a = BTreeMap::from([("k".to_owned(), Value::Int(1))]);
        let b = BTreeMap::from([("k".to_owned(), Value::Int(2))]);
        assert_eq!(digest(&a), digest(&a.clone()));
        assert_ne!(digest(&a), digest(&b));
        assert_eq!(
            seq_of(&Value::Map(BTreeMap::from([(
                "seq".to_owned(),
                Value::Int(4)
            )]))),
            Some(4)
        );
        assert_eq!(seq_of(&Value::Int(4)), None);
    }
}
