//! One node per child process, so memory, threads and CPU are measured per node by the
//! kernel instead of being guessed from a shared process.
//!
//! The parent drives a child over stdin/stdout, one line per command and per answer:
//! `peer ADDR`, `status` (a JSON line), `fill N` (write N keys of 100 bytes), `wait N`
//! (until N keys are held), `quit`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use mesh_core::{Node, Value};
use serde::{Deserialize, Serialize};

use crate::mesh;
use crate::procfs;

/// How a child configures its node.
pub fn configure(profile: &str, c: &mut mesh_core::Config) {
    match profile {
        "fast" => {
            c.sync_interval = Duration::from_secs(1);
            c.heartbeat_interval = Duration::from_secs(1);
            c.peer_timeout = Duration::from_secs(5);
        }
        // The intervals of the membership idle-traffic target.
        "probe-half" => {
            c.sync_interval = Duration::from_secs(1);
            c.heartbeat_interval = Duration::from_millis(500);
            c.peer_timeout = mesh_core::Config::peer_timeout_for(c.heartbeat_interval);
        }
        _ => {}
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ChildStatus {
    pub rss: u64,
    pub keys: usize,
    pub alive_peers: usize,
    pub bytes_sent: u64,
    pub datagrams_sent: u64,
    pub bytes_received: u64,
}

/// The child's side: runs until `quit` or until the parent goes away.
pub fn serve(id: &str, profile: &str) {
    let base_rss = procfs::rss_bytes("self");
    let mut config = mesh::config(id);
    configure(profile, &mut config);
    let node = Node::new(config).expect("node");
    node.start().expect("start");
    let out = std::io::stdout();
    let mut out = out.lock();
    let _ = writeln!(out, "{} {}", node.local_addr(), base_rss);
    let _ = out.flush();
    let mut rng = fastrand::Rng::with_seed(1);
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        let answer = match (words.next(), words.next()) {
            (Some("peer"), Some(addr)) => {
                if let Ok(addr) = addr.parse() {
                    node.add_bootstrap_addr(addr);
                }
                "ok".to_owned()
            }
            (Some("status"), _) => {
                let s = node.status();
                serde_json::to_string(&ChildStatus {
                    rss: procfs::rss_bytes("self"),
                    keys: s.data_keys,
                    alive_peers: s.peers.alive_peers,
                    bytes_sent: s.counters.bytes_sent,
                    datagrams_sent: s.counters.datagrams_sent,
                    bytes_received: s.counters.bytes_received,
                })
                .unwrap_or_default()
            }
            (Some("fill"), Some(n)) => {
                let n: usize = n.parse().unwrap_or(0);
                let start = Instant::now();
                for i in 0..n {
                    let value = Value::String(mesh::value_100(&mut rng));
                    node.set(&format!("key/{i:08}"), value).ok();
                }
                format!("{}", start.elapsed().as_secs_f64())
            }
            (Some("wait"), Some(n)) => {
                let n: usize = n.parse().unwrap_or(0);
                let start = Instant::now();
                mesh::wait_for(Duration::from_secs(300), || node.len() >= n);
                format!("{}", start.elapsed().as_secs_f64())
            }
            (Some("quit"), _) => break,
            _ => "?".to_owned(),
        };
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
    node.stop();
}

/// The parent's handle on one child node.
pub struct NodeProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub addr: String,
    /// Resident memory of the child before it created its node.
    pub base_rss: u64,
}

impl NodeProcess {
    pub fn spawn(id: &str, profile: &str) -> NodeProcess {
        let exe = std::env::current_exe().expect("own executable");
        let mut child = Command::new(exe)
            .args(["child-node", id, profile])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child node");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).ok();
        let mut words = first.split_whitespace();
        let addr = words.next().unwrap_or_default().to_owned();
        let base_rss = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
        NodeProcess {
            child,
            stdin,
            stdout,
            addr,
            base_rss,
        }
    }

    pub fn ask(&mut self, command: &str) -> String {
        let _ = writeln!(self.stdin, "{command}");
        let _ = self.stdin.flush();
        let mut line = String::new();
        self.stdout.read_line(&mut line).ok();
        line.trim().to_owned()
    }

    pub fn status(&mut self) -> ChildStatus {
        serde_json::from_str(&self.ask("status")).unwrap_or_default()
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` child nodes that all know each other, once every one sees the others alive.
pub fn mesh(n: usize, prefix: &str, profile: &str) -> Vec<NodeProcess> {
    let mut nodes: Vec<NodeProcess> = (0..n)
        .map(|i| NodeProcess::spawn(&format!("{prefix}{i}"), profile))
        .collect();
    let addrs: Vec<String> = nodes.iter().map(|p| p.addr.clone()).collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        for (j, addr) in addrs.iter().enumerate() {
            if i != j {
                node.ask(&format!("peer {addr}"));
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !nodes.iter_mut().all(|p| p.status().alive_peers >= n - 1) {
        std::thread::sleep(Duration::from_millis(50));
    }
    nodes
}
