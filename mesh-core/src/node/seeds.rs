//! DNS seeds: bootstrap peers given by host name, resolved off the network thread and
//! resolved again while they cannot be reached.
//!
//! Resolution is I/O, so it lives here in the driver, never in the engine. A name given
//! to [`crate::Node::add_bootstrap_peer`] is checked for syntax at once (a malformed name
//! is an error) and resolved on a short-lived resolver thread, so neither the caller nor
//! the network thread ever waits for a resolver; at most one such thread runs per node.
//! Every address it yields that the node's socket can reach (IPv4, IPv6, or both on a
//! dual-stack socket), up to [`MAX_ADDRS_PER_SEED`], becomes a bootstrap peer.
//!
//! Once the node runs, the network thread looks at each seed about once a second. A seed
//! is healthy while a member at one of its addresses, or a member with a node id heard
//! at one of them, is alive or suspect. An unhealthy seed (its addresses never answered,
//! or its node was declared failed) is resolved again, first [`RESOLVE_GRACE`] after
//! the previous resolution, then with a delay doubling up to [`MAX_RESOLVE_INTERVAL`]; a
//! healthy one is left alone. Addresses a new resolution no longer yields lose their
//! bootstrap mark (forgotten at once if they never answered), so a name whose address
//! changes keeps working and old addresses are not probed forever.
//!
//! A name that does not resolve is not an error: the node may start before its seeds'
//! DNS records exist. Failures are retried on the same schedule and logged as warnings,
//! the first at once, then at most one per [`FAILURE_LOG_INTERVAL`] with a count.

use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{now_from, Shared};
use crate::addr::canonical;
use crate::engine::Engine;

/// Addresses of one name taken as bootstrap peers, at most.
pub const MAX_ADDRS_PER_SEED: usize = 8;
/// Shortest time between two resolutions of an unhealthy seed that did resolve: time for
/// its addresses to be probed and answer.
pub const RESOLVE_GRACE: Duration = Duration::from_secs(5);
/// First retry of a name that failed to resolve.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest time between two resolutions of an unhealthy seed.
pub const MAX_RESOLVE_INTERVAL: Duration = Duration::from_secs(60);
/// Seeds are looked at this often by the network thread.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Shortest time between two warnings about one seed's failed resolutions.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Node ids remembered per seed.
const MAX_NODE_IDS: usize = 4;

/// Which address families the node's socket can send to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Families {
    pub v4: bool,
    pub v6: bool,
}

impl Families {
    pub fn reaches(self, addr: &SocketAddr) -> bool {
        if addr.is_ipv4() {
            self.v4
        } else {
            self.v6
        }
    }
}

#[derive(Debug)]
struct Seed {
    host: String,
    port: u16,
    /// The addresses of the last successful resolution taken as bootstrap peers.
    addrs: Vec<SocketAddr>,
    /// Node ids heard at those addresses (most recent last).
    node_ids: Vec<String>,
    /// When to resolve next; `None` while healthy.
    due: Option<Instant>,
    /// Delay before the next resolution if the seed stays unhealthy.
    backoff: Duration,
    /// Being resolved right now.
    in_flight: bool,
    failures_unlogged: u64,
    warned_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    seeds: Vec<Seed>,
    /// Addresses given as IP addresses: never withdrawn by a seed.
    literal: BTreeSet<SocketAddr>,
    resolving: bool,
    next_check: Option<Instant>,
}

/// The node's DNS seeds.
#[derive(Debug, Default)]
pub(crate) struct Seeds {
    state: Mutex<State>,
}

impl Seeds {
    /// Notes a bootstrap address given as an IP address.
    pub fn note_literal(&self, addr: SocketAddr) {
        self.state.lock().literal.insert(canonical(addr));
    }

    /// Adds a seed name, due for resolution at once. Returns false if it was known.
    pub fn add(&self, host: &str, port: u16) -> bool {
        let mut state = self.state.lock();
        if state.seeds.iter().any(|s| s.host == host && s.port == port) {
            let seed = state
                .seeds
                .iter_mut()
                .find(|s| s.host == host && s.port == port);
            if let Some(seed) = seed {
                seed.due = Some(Instant::now());
            }
            return false;
        }
        state.seeds.push(Seed {
            host: host.to_owned(),
            port,
            addrs: Vec::new(),
            node_ids: Vec::new(),
            due: Some(Instant::now()),
            backoff: FIRST_RETRY,
            in_flight: false,
            failures_unlogged: 0,
            warned_at: None,
        });
        true
    }

    /// Called by the network thread with the engine locked: every [`CHECK_INTERVAL`],
    /// updates each seed's health, and starts a resolver thread for the seeds due.
    pub fn check(&self, shared: &Arc<Shared>, engine: &Engine, running: bool) {
        let now = Instant::now();
        let mut state = self.state.lock();
        if state.seeds.is_empty() || state.next_check.is_some_and(|t| t > now) {
            return;
        }
        state.next_check = Some(now + CHECK_INTERVAL);
        // Before start nothing is probed, so nothing can be judged: names given then
        // were resolved when they were added.
        if !running {
            return;
        }
        for seed in &mut state.seeds {
            update_health(seed, engine, now);
        }
        start_due(&mut state, shared, now);
    }

    /// Starts resolving the seeds due now, if no resolution is under way.
    pub fn resolve_due(&self, shared: &Arc<Shared>) {
        let mut state = self.state.lock();
        start_due(&mut state, shared, Instant::now());
    }
}

fn update_health(seed: &mut Seed, engine: &Engine, now: Instant) {
    let mut healthy = false;
    for addr in &seed.addrs {
        if let Some((state, node_id)) = engine.seed_health(addr) {
            healthy |= matches!(
                state,
                crate::status::PeerState::Alive | crate::status::PeerState::Suspect
            );
            if let Some(id) = node_id {
                if !seed.node_ids.iter().any(|known| known == id) {
                    if seed.node_ids.len() == MAX_NODE_IDS {
                        seed.node_ids.remove(0);
                    }
                    seed.node_ids.push(id.to_owned());
                }
            }
        }
    }
    healthy |= seed.node_ids.iter().any(|id| engine.is_node_reachable(id));
    if healthy {
        seed.due = None;
        seed.backoff = FIRST_RETRY;
    } else if seed.due.is_none() && !seed.in_flight {
        // It just became unhealthy (failed, or never answered): resolve it again soon.
        seed.due = Some(now + FIRST_RETRY);
    }
}

fn start_due(state: &mut State, shared: &Arc<Shared>, now: Instant) {
    if state.resolving {
        return;
    }
    let mut work = Vec::new();
    for seed in &mut state.seeds {
        if !seed.in_flight && seed.due.is_some_and(|t| t <= now) {
            seed.in_flight = true;
            work.push((seed.host.clone(), seed.port));
        }
    }
    if work.is_empty() {
        return;
    }
    state.resolving = true;
    let weak = Arc::downgrade(shared);
    let spawned = thread::Builder::new()
        .name(format!("mesh-r:{}", super::short(&shared.node_id)))
        .spawn(move || resolve_all(&weak, work));
    if let Err(e) = spawned {
        log::warn!("{}: cannot start a resolver thread: {e}", shared.node_id);
        state.resolving = false;
        for seed in &mut state.seeds {
            if seed.in_flight {
                seed.in_flight = false;
                seed.due = Some(now + FIRST_RETRY);
            }
        }
    }
}

/// The resolver thread: resolves every name given, without holding any lock, then hands
/// the results to the node (if it still exists and runs).
fn resolve_all(shared: &Weak<Shared>, work: Vec<(String, u16)>) {
    let results: Vec<(String, u16, std::io::Result<Vec<SocketAddr>>)> = work
        .into_iter()
        .map(|(host, port)| {
            let result = (host.as_str(), port)
                .to_socket_addrs()
                .map(|addrs| addrs.map(canonical).collect());
            (host, port, result)
        })
        .collect();
    let Some(shared) = shared.upgrade() else {
        return;
    };
    let now = now_from(shared.epoch);
    let instant = Instant::now();
    let wake = {
        let mut engine = shared.engine.lock();
        let mut state = shared.seeds.state.lock();
        state.resolving = false;
        let stopped = shared.stopped.load(std::sync::atomic::Ordering::Acquire);
        let mut withdrawn = Vec::new();
        for (host, port, result) in results {
            let Some(index) = state
                .seeds
                .iter()
                .position(|s| s.host == host && s.port == port)
            else {
                continue;
            };
            let seed = &mut state.seeds[index];
            seed.in_flight = false;
            match result {
                Ok(found) => {
                    let mut addrs: Vec<SocketAddr> = Vec::new();
                    for addr in found {
                        if shared.families.reaches(&addr) && !addrs.contains(&addr) {
                            addrs.push(addr);
                        }
                    }
                    addrs.truncate(MAX_ADDRS_PER_SEED);
                    if addrs.is_empty() {
                        note_failure(
                            &shared.node_id,
                            seed,
                            instant,
                            "no address the node's socket can reach",
                        );
                        continue;
                    }
                    if addrs != seed.addrs {
                        log::info!(
                            "{}: seed {} resolved to {:?}",
                            shared.node_id,
                            display(&seed.host, seed.port),
                            addrs
                        );
                    }
                    for old in &seed.addrs {
                        if !addrs.contains(old) {
                            withdrawn.push(*old);
                        }
                    }
                    for addr in &addrs {
                        if !seed.addrs.contains(addr) {
                            engine.add_bootstrap_peer(now, *addr);
                        }
                    }
                    seed.addrs = addrs;
                    seed.failures_unlogged = 0;
                    seed.due = Some(instant + seed.backoff.max(RESOLVE_GRACE));
                    seed.backoff = (seed.backoff * 2).min(MAX_RESOLVE_INTERVAL);
                }
                Err(e) => note_failure(&shared.node_id, seed, instant, &e.to_string()),
            }
        }
        // An address no seed yields any longer, and not given as an IP address, loses its
        // bootstrap mark.
        for addr in withdrawn {
            let held = state.literal.contains(&addr)
                || state.seeds.iter().any(|s| s.addrs.contains(&addr));
            if !held {
                engine.remove_bootstrap_peer(addr);
            }
        }
        // Seeds added while this thread worked are due: start the next round.
        let more = state
            .seeds
            .iter()
            .any(|s| !s.in_flight && s.due.is_some_and(|t| t <= instant));
        drop(state);
        super::forward_events(&shared, &mut engine);
        if more && !stopped {
            shared.seeds.resolve_due(&shared);
        }
        !stopped
    };
    if wake {
        shared.wake();
    }
}

fn note_failure(node_id: &str, seed: &mut Seed, now: Instant, reason: &str) {
    seed.failures_unlogged += 1;
    if seed
        .warned_at
        .is_none_or(|t| now.duration_since(t) >= FAILURE_LOG_INTERVAL)
    {
        log::warn!(
            "{node_id}: cannot resolve seed {} ({} failures since the last warning): {reason}; retrying in {:?}",
            display(&seed.host, seed.port),
            seed.failures_unlogged,
            seed.backoff
        );
        seed.failures_unlogged = 0;
        seed.warned_at = Some(now);
    }
    seed.due = Some(now + seed.backoff);
    seed.backoff = (seed.backoff * 2).min(MAX_RESOLVE_INTERVAL);
}

fn display(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
