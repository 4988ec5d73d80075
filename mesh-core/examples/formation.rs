use std::time::{Duration, Instant};
use mesh_core::fault::FaultConfig;
use mesh_core::sim::Sim;
use mesh_core::Config;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(500);
    let limit: u64 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(300);
    let mut c = Config::new("sim", 0);
    c.heartbeat_interval = Duration::from_secs(1);
    c.peer_timeout = Config::peer_timeout_for(c.heartbeat_interval);
    let start = Instant::now();
    let mut sim = Sim::new(n, c, FaultConfig::default(), 42);
    for t in 0..limit {
        sim.run_for(Duration::from_secs(1));
        let mut alive: Vec<usize> = sim.nodes.iter().filter_map(|x| x.engine.as_ref()).map(|e| e.status().peers.alive_peers).collect();
        alive.sort();
        let known: Vec<usize> = sim.nodes.iter().filter_map(|x| x.engine.as_ref()).map(|e| e.status().peers.total_peers).collect();
        if t % 10 == 9 || alive[0] == n - 1 {
            let mut k = known.clone(); k.sort();
            eprintln!("t={:>4}s alive min {} p10 {} med {} | known min {} med {} | real {:.1}s", t + 1, alive[0], alive[n / 10], alive[n / 2], k[0], k[n/2], start.elapsed().as_secs_f64());
        }
        if alive[0] == n - 1 { break; }
        if t % 50 == 49 {
            for (i, node) in sim.nodes.iter().enumerate() {
                let Some(e) = node.engine.as_ref() else { continue };
                if e.status().peers.alive_peers < n - 1 {
                    let now = sim.now_for(i);
                    let odd: Vec<String> = e.peers(now).into_iter().filter(|p| p.state != mesh_core::PeerState::Alive).map(|p| format!("{:?} {:?} {} last {:?} pend {}", p.node_id, p.state, p.addr, p.last_seen_ms, p.pending_acks)).collect();
                    eprintln!("  n{i} at {}: {odd:?}", node.addr);
                    for p in e.peers(now).into_iter().filter(|p| p.state != mesh_core::PeerState::Alive) {
                        if let Some(j) = sim.nodes.iter().position(|x| x.addr == p.addr) {
                            let ej = sim.nodes[j].engine.as_ref().unwrap();
                            let v: Vec<String> = ej.peers(sim.now_for(j)).into_iter().filter(|q| q.addr == node.addr).map(|q| format!("{:?} {:?} last {:?}", q.node_id, q.state, q.last_seen_ms)).collect();
                            
                            eprintln!("    n{j} sees n{i}: {v:?}; n{j} alive {} counters recv {} dropped {:?}", ej.status().peers.alive_peers, ej.status().counters.datagrams_received, ej.status().counters.dropped);
                        }
                    }
                }
            }
        }
    }
}
