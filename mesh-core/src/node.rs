//! The node runtime: one UDP socket, a network thread driving the sans-IO [`Engine`], and a
//! callback thread delivering [`Event`]s, so slow application callbacks never stall the
//! network.
//!
//! The network thread follows the engine's contract: after every input it drains
//! `poll_transmit` and `poll_event`, then sleeps on the socket until `poll_timeout`.
//! Application calls (`set`, `delete`, ...) lock the engine briefly; when they create
//! work due sooner than the network thread's planned wake-up, they wake it through a pipe
//! (see `wake.rs`).

// The runtime is the one place allowed to read the clocks (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BinaryHeap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, MutexGuard, RwLock};

use crate::config::Config;
use crate::delivery::{self, Delivery};
use crate::engine::{Engine, KeyPage, KeyQuery, Transmit};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::fault::{FaultConfig, FaultInjector, FaultStats};
use crate::metrics::MetricsSnapshot;
use crate::seal::{Key, NoncePrefix};
use crate::status::{PeerInfo, Status};
use crate::time::Now;
use crate::value::Value;
use crate::wake::Waker;
use crate::watch::{Change, Watch, WatchRegistry};

mod persist;
mod seeds;

use seeds::{Families, Seeds};

/// Callback receiving every [`Event`] on the node's callback thread.
pub type EventHandler = Arc<dyn Fn(&Event) + Send + Sync + 'static>;

/// Callback receiving every user message, `(sender_id, data)`, on the node's callback
/// thread (see [`Node::set_message_handler`]).
pub type MessageHandler = Arc<dyn Fn(&str, &[u8]) + Send + Sync + 'static>;

/// Bytes charged per received message waiting for the callback thread, besides its data.
const MESSAGE_BACKLOG_OVERHEAD: usize = 128;

/// Largest datagram the network thread can read.
const RECV_BUFFER: usize = 65_536;
/// Datagrams read in one burst before the engine's output is flushed.
const RECV_BURST: usize = 256;
/// Socket buffer asked of the kernel, so bursts of a large sync are not dropped locally.
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;
/// Longest sleep of the network thread, a safety net should a wake-up be lost.
const MAX_SLEEP: Duration = Duration::from_millis(500);
/// Longest a stopping node waits for its leave announcement to go out.
const LEAVE_SEND_TIMEOUT: Duration = Duration::from_millis(50);

/// A mesh-sync node: a replica of the shared key-value state, kept in sync with its peers
/// over UDP.
///
/// `Node` is `Send + Sync`; share it between threads with an `Arc`. Reads and writes work
/// before [`Node::start`] (they stay local until then). Dropping a node stops it.
pub struct Node {
    shared: Arc<Shared>,
    threads: Mutex<Threads>,
    /// The store thread, with a `data_dir`.
    persist: Option<persist::Persist>,
}

#[derive(Default)]
struct Threads {
    network: Option<JoinHandle<()>>,
    callbacks: Option<JoinHandle<()>>,
    callback_thread_id: Option<ThreadId>,
}

struct Shared {
    node_id: String,
    local_addr: SocketAddr,
    /// The address families the socket can send to.
    families: Families,
    /// Bootstrap peers given by host name (see `seeds.rs`).
    seeds: Seeds,
    /// `Config::advertise_addr`, its port filled in.
    advertise_addr: Option<SocketAddr>,
    waker: Waker,
    socket: RwLock<Option<Arc<UdpSocket>>>,
    engine: Mutex<Engine>,
    faults: Mutex<FaultInjector>,
    handler: RwLock<Option<EventHandler>>,
    message_handler: RwLock<Option<MessageHandler>>,
    /// Bytes of received messages queued for the callback thread, and the most allowed
    /// (`max_reassembly`): past it, messages are dropped and counted.
    message_backlog: AtomicUsize,
    max_message_backlog: usize,
    events: Mutex<Option<mpsc::Sender<Event>>>,
    /// How far the callback thread has got, so local writes wait for their callbacks.
    delivery: Delivery,
    watches: WatchRegistry,
    running: AtomicBool,
    stopping: AtomicBool,
    stopped: AtomicBool,
    flush_timeout: Duration,
    /// Monotonic microseconds at which the network thread plans to wake.
    wake_at_us: AtomicU64,
    epoch: Instant,
}

impl Node {
    /// Validates `config`, binds the UDP socket and builds the replica. The node does not
    /// talk to the network until [`Node::start`].
    pub fn new(mut config: Config) -> Result<Node> {
        config.validate()?;
        let (socket, families, dont_fragment) = bind_socket(&config)?;
        if !dont_fragment {
            // A probe could come back answered by IP fragments: no probing.
            config.max_probed_datagram_size = config.max_datagram_size;
        }
        let local_addr = crate::addr::canonical(socket.local_addr()?);
        // Port 0 in the advertised address means the bound port.
        if let Some(advertised) = &mut config.advertise_addr {
            *advertised = crate::addr::canonical(*advertised);
            if advertised.port() == 0 {
                advertised.set_port(local_addr.port());
            }
        }
        // Non-blocking for good: the network thread sleeps in `Waker::wait`, not in recv.
        socket.set_nonblocking(true)?;
        let waker = Waker::new()?;
        let seed = config.seed.unwrap_or_else(|| fastrand::u64(..));
        let mut incarnation = fresh_incarnation(seed);
        let epoch = Instant::now();
        let now = now_from(epoch);
        let nonce_prefix = NoncePrefix::from_os()?;
        let stored = match &config.data_dir {
            Some(dir) => {
                let (mut store, snapshot, report) =
                    crate::store::Store::open(dir, now.wall_ms, config.tombstone_grace)?;
                // Never an origin an earlier run on this store had, whatever the clock did.
                incarnation = snapshot.next_incarnation(incarnation);
                store.begin_run(incarnation, now.wall_ms)?;
                Some((store, snapshot, report))
            }
            None => None,
        };
        let mut engine = Engine::new(config.clone(), incarnation, seed, nonce_prefix, now);
        let stored = stored.map(|(store, snapshot, report)| {
            engine.restore(snapshot);
            engine.record_store_changes();
            (store, report)
        });
        // Events are only queued once someone listens (see `set_event_handler`).
        engine.set_emit_state_events(false);
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            node_id: config.node_id.clone(),
            local_addr,
            families,
            seeds: Seeds::default(),
            advertise_addr: config.advertise_addr,
            waker,
            socket: RwLock::new(Some(Arc::new(socket))),
            engine: Mutex::new(engine),
            faults: Mutex::new(FaultInjector::new(
                FaultConfig::default(),
                seed ^ 0x5eed_fa17,
            )),
            handler: RwLock::new(None),
            message_handler: RwLock::new(None),
            message_backlog: AtomicUsize::new(0),
            max_message_backlog: config.max_reassembly,
            events: Mutex::new(Some(tx)),
            delivery: Delivery::default(),
            watches: WatchRegistry::default(),
            running: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            flush_timeout: config.stop_flush_timeout,
            wake_at_us: AtomicU64::new(u64::MAX),
            epoch,
        });
        // The callback thread runs from the start, not from `start`: a write made before
        // `start` returns only once its callbacks have run, like any other.
        let callbacks = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("mesh-c:{}", short(&config.node_id)))
                .spawn(move || callback_loop(&shared, rx))?
        };
        let mut node = Node {
            shared,
            threads: Mutex::new(Threads {
                network: None,
                callback_thread_id: Some(callbacks.thread().id()),
                callbacks: Some(callbacks),
            }),
            persist: None,
        };
        if let Some((store, report)) = stored {
            node.persist = Some(persist::Persist::start(
                &node.shared,
                store,
                config.durability,
                config.flush_interval,
                report,
            )?);
        }
        Ok(node)
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// The bound socket address (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The bound UDP port.
    pub fn port(&self) -> u16 {
        self.shared.local_addr.port()
    }

    /// Whether the network thread is running.
    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::Acquire)
    }

    /// The address this node advertises to its peers (`Config::advertise_addr`, its port
    /// filled in), if any.
    pub fn advertise_addr(&self) -> Option<SocketAddr> {
        self.shared.advertise_addr
    }

    /// Adds a peer to contact at start (or at once if running): an IPv4 or IPv6 address
    /// (`"10.0.0.5"`, `"::1"`, `"[::1]"`), or a host name (`"localhost"`,
    /// `"seed.example"`), a DNS seed.
    ///
    /// An IP address is added at once; it is an error ([`Error::Resolve`]) if the node's
    /// socket cannot reach its family (an IPv6 peer of a node bound to `0.0.0.0`). A host
    /// name is only checked for syntax here (a malformed one is [`Error::Resolve`]) and
    /// resolved in the background, never on the caller's thread or the network thread:
    /// each of its addresses the socket can reach becomes a bootstrap peer. A name that
    /// does not resolve yet is retried, and a seed that cannot be reached (never answers,
    /// or fails) is resolved again with a backoff from a few seconds up to a minute, so
    /// a name whose address changes keeps working; failures are logged as warnings, at
    /// most one a minute per seed.
    pub fn add_bootstrap_peer(&self, host: &str, port: u16) -> Result<()> {
        let resolve_error = |reason: String| Error::Resolve {
            addr: if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            },
            reason,
        };
        crate::addr::check_host(host).map_err(resolve_error)?;
        if let Some(ip) = crate::addr::parse_ip(host) {
            let addr = crate::addr::canonical(SocketAddr::new(ip, port));
            if !self.shared.families.reaches(&addr) && !addr.ip().is_unspecified() {
                return Err(resolve_error(format!(
                    "the node's socket ({}) cannot reach {} addresses; bind `::` to reach both families",
                    self.shared.local_addr,
                    if addr.is_ipv4() { "IPv4" } else { "IPv6" }
                )));
            }
            self.add_bootstrap_addr(addr);
            return Ok(());
        }
        self.shared.seeds.add(host, port);
        self.shared.seeds.resolve_due(&self.shared);
        Ok(())
    }

    /// Adds an already resolved peer address (see [`Node::add_bootstrap_peer`]). An
    /// unspecified address (`0.0.0.0`, `::`) means this machine's loopback.
    pub fn add_bootstrap_addr(&self, addr: SocketAddr) {
        let addr = crate::addr::canonical(addr);
        let addr = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
            }
            _ => addr,
        };
        if !self.shared.families.reaches(&addr) {
            log::warn!(
                "{}: bootstrap peer {addr} cannot be reached from a socket bound to {}",
                self.shared.node_id,
                self.shared.local_addr
            );
        }
        self.shared.seeds.note_literal(addr);
        self.with_engine(|engine, now| engine.add_bootstrap_peer(now, addr));
    }

    /// Registers the callback that receives every [`Event`], replacing any previous one.
    /// It runs on the node's callback thread, never on the network thread, one event at a
    /// time and in order; it may call back into the node (`get`, `set`, even `stop`).
    ///
    /// A local [`Node::set`] or [`Node::delete`] returns only once the handler has run for
    /// that write (and for every event queued before it), as the pure-Python prototype
    /// ran `on_state_change` inside `set`. The handler must therefore not wait for a lock
    /// the writing thread holds while it writes. Writes made from inside a handler or a
    /// watch (of any node) return at once; their events follow the current one.
    pub fn set_event_handler<F>(&self, handler: F)
    where
        F: Fn(&Event) + Send + Sync + 'static,
    {
        let mut slot = self.shared.handler.write();
        *slot = Some(Arc::new(handler));
        self.shared.emit_while_listened(&slot);
    }

    /// Removes the event callback.
    pub fn clear_event_handler(&self) {
        let mut slot = self.shared.handler.write();
        let old = slot.take();
        self.shared.emit_while_listened(&slot);
        drop(slot);
        drop(old);
    }

    /// Registers the callback that receives every user message sent to this node with
    /// [`Node::send`] or [`Node::broadcast`], as `(sender_id, data)`, replacing any
    /// previous one. It runs on the callback thread, like the event handler (which sees
    /// the same messages as [`Event::Message`]) and the watches: one callback at a time,
    /// in the order events happened, after the event handler. Messages of one sender
    /// arrive in the order they were sent.
    ///
    /// Received messages wait for the callback thread within a budget of
    /// `max_reassembly` bytes; past it they are dropped and counted
    /// (`counters.dropped.messages`), so a flood cannot grow the node without bound.
    pub fn set_message_handler<F>(&self, handler: F)
    where
        F: Fn(&str, &[u8]) + Send + Sync + 'static,
    {
        let old = self
            .shared
            .message_handler
            .write()
            .replace(Arc::new(handler));
        drop(old);
    }

    /// Removes the message callback.
    pub fn clear_message_handler(&self) {
        let old = self.shared.message_handler.write().take();
        drop(old);
    }

    /// Sends `data` to the alive peer whose node id is `peer_id`: delivered reliably, in
    /// the order sent, to its message handlers ([`Node::set_message_handler`]). Messages
    /// are not part of the replicated state: a peer that is not alive now never gets
    /// them, and a restart of either end loses those still in flight.
    ///
    /// Errors: [`Error::MessageTooLarge`] past `max_value_size`, [`Error::PeerNotFound`]
    /// when no alive peer has that id, [`Error::QueueFull`] when too much is already
    /// waiting to be sent to it (retry later), [`Error::Stopped`] after [`Node::stop`].
    pub fn send(&self, peer_id: &str, data: impl AsRef<[u8]>) -> Result<()> {
        self.check_sendable()?;
        let result =
            self.with_engine(|engine, now| engine.send_message(now, peer_id, data.as_ref()));
        if result.is_ok() {
            // Queued data sets no timer: the network thread is told to send it now.
            self.shared.wake();
        }
        result
    }

    /// Sends `data` to every alive peer, as [`Node::send`] does; returns how many peers
    /// it was queued for (peers whose send queue is full are skipped).
    pub fn broadcast(&self, data: impl AsRef<[u8]>) -> Result<usize> {
        self.check_sendable()?;
        let result = self.with_engine(|engine, now| engine.broadcast_message(now, data.as_ref()));
        if result.as_ref().is_ok_and(|&sent| sent > 0) {
            self.shared.wake();
        }
        result
    }

    /// Node ids of the peers messages can be sent to now.
    pub fn message_peers(&self) -> Vec<String> {
        self.shared.engine.lock().message_peers()
    }

    fn check_sendable(&self) -> Result<()> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(Error::Stopped);
        }
        Ok(())
    }

    /// Calls `handler` for every change of a key starting with `prefix` (every key for
    /// `""`), until the returned [`Watch`] is cancelled or dropped.
    ///
    /// Watches run on the callback thread, after the event handler, one at a time and in
    /// the order the changes happened; like the event handler, they have run for a local
    /// write when [`Node::set`] or [`Node::delete`] returns. Thousands of watches stay
    /// cheap: a change only looks up the prefixes it can match (see [`crate::watch`]).
    pub fn watch<F>(&self, prefix: impl Into<String>, handler: F) -> Watch
    where
        F: Fn(&Change<'_>) + Send + Sync + 'static,
    {
        let prefix = prefix.into();
        // Under the handler lock, so the engine's event switch settles on the last change.
        let slot = self.shared.handler.write();
        let id = self.shared.watches.add(&prefix, Arc::new(handler));
        self.shared.emit_while_listened(&slot);
        drop(slot);
        let shared = Arc::downgrade(&self.shared);
        let key = prefix.clone();
        Watch::new(prefix, move || {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let slot = shared.handler.write();
            let removed = shared.watches.remove(&key, id);
            shared.emit_while_listened(&slot);
            drop(slot);
            // Dropped outside the lock: the handler's captures may run application code.
            drop(removed);
        })
    }

    /// Number of watches registered and not cancelled.
    pub fn watch_count(&self) -> usize {
        self.shared.watches.len()
    }

    /// Keeps an event handler installed exactly while `wanted` says one is needed:
    /// installs the one `make` builds when it says so and none is installed, removes the
    /// installed one when it says not, and otherwise changes nothing (an installed
    /// handler is not rebuilt). Returns whether a handler is installed afterwards.
    ///
    /// For front ends whose handler forwards events to optional application callbacks:
    /// calling this after every change of those callbacks, with `wanted` telling whether
    /// any is set, makes the node queue events only while somebody listens. `wanted` runs
    /// under the node's handler lock, so concurrent calls settle on the answer of the
    /// last one; it must not call this node's event handler methods.
    pub fn keep_event_handler<F>(
        &self,
        wanted: impl FnOnce() -> bool,
        make: impl FnOnce() -> F,
    ) -> bool
    where
        F: Fn(&Event) + Send + Sync + 'static,
    {
        let mut slot = self.shared.handler.write();
        let wanted = wanted();
        if wanted == slot.is_some() {
            return wanted;
        }
        let new: Option<EventHandler> = if wanted { Some(Arc::new(make())) } else { None };
        let old = std::mem::replace(&mut *slot, new);
        self.shared.emit_while_listened(&slot);
        drop(slot);
        // Dropped outside the lock: the handler's captures may run application code.
        drop(old);
        wanted
    }

    /// Starts the network thread. Calling it on a running node does nothing;
    /// calling it after [`Node::stop`] is an error ([`Error::Stopped`]).
    pub fn start(&self) -> Result<()> {
        let mut threads = self.threads.lock();
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(Error::Stopped);
        }
        if self.is_running() {
            return Ok(());
        }
        let socket = self.shared.socket.read().clone().ok_or(Error::Stopped)?;
        let shared = Arc::clone(&self.shared);
        self.shared.running.store(true, Ordering::Release);
        let network = thread::Builder::new()
            .name(format!("mesh-n:{}", short(&self.shared.node_id)))
            .spawn(move || network_loop(&shared, &socket));
        match network {
            Ok(handle) => threads.network = Some(handle),
            Err(e) => {
                self.shared.running.store(false, Ordering::Release);
                return Err(e.into());
            }
        }
        self.with_engine(|engine, now| engine.start(now));
        Ok(())
    }

    /// Stops the node. Local writes not yet acknowledged by reachable peers get up to
    /// `stop_flush_timeout` (500 ms) to be delivered; then the network thread ends,
    /// pending events are delivered, and the socket is closed so the port can be bound
    /// again. Idempotent. Writes made after `stop` stay local.
    pub fn stop(&self) {
        let mut threads = self.threads.lock();
        if self.shared.stopped.load(Ordering::Acquire) {
            return;
        }
        if self.is_running() {
            self.flush(self.shared.flush_timeout);
            self.announce_leave();
        }
        if self.shared.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.wake();
        if let Some(handle) = threads.network.take() {
            let _ = handle.join();
        }
        self.shared.running.store(false, Ordering::Release);
        // Closing the channel ends the callback thread once it has drained it.
        self.shared.events.lock().take();
        if let Some(handle) = threads.callbacks.take() {
            if Some(thread::current().id()) != threads.callback_thread_id {
                let _ = handle.join();
            }
        }
        self.shared.socket.write().take();
        if let Some(persist) = &self.persist {
            persist.close();
        }
    }

    /// Tells a few members that this node leaves (they spread it, so peers report it
    /// left at once instead of failed after a timeout), and gives the network thread a
    /// moment to send it.
    fn announce_leave(&self) {
        self.with_engine(|engine, _| engine.leave());
        self.shared.wake();
        let deadline = Instant::now() + LEAVE_SEND_TIMEOUT;
        while self.shared.engine.lock().has_pending_transmits() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits up to `timeout` until every local write has been acknowledged by every
    /// reachable peer. Returns whether that happened. Useful before a planned shutdown;
    /// [`Node::stop`] does it with `stop_flush_timeout`.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.with_engine(|engine, now| engine.flush_pushes(now));
        loop {
            if self.shared.engine.lock().is_flushed() {
                return true;
            }
            if Instant::now() >= deadline || !self.is_running() {
                return false;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Sets `key` to `value`. Visible locally at once, pushed to peers within
    /// `push_delay` plus a round trip.
    ///
    /// Returns once the event handler and the watches have run for this write (see
    /// [`Node::set_event_handler`]); called from inside one of them, at once.
    ///
    /// With a `data_dir`: under [`crate::Durability::Sync`] it returns once the write is
    /// on disk; while the store refuses commits (disk full), it fails with
    /// [`Error::Storage`] and changes nothing.
    pub fn set(&self, key: &str, value: impl Into<Value>) -> Result<()> {
        let value = value.into();
        self.write(|engine, now| engine.set(now, key, value))
    }

    /// Sets `key` to `value` for `ttl`: the key expires on every node when that node's
    /// hybrid logical clock reaches the write's timestamp plus `ttl` (the expiry travels
    /// with the write, so all nodes expire it at the same HLC time, each by its own
    /// clock). An expired key reads as missing, is reported to the event handler and the
    /// watches as a delete ([`crate::ChangeOrigin::Expired`]) and is collected like a
    /// tombstone. A later write to the key replaces it as usual; one made with
    /// [`Node::set`] makes it permanent.
    ///
    /// `ttl` must be positive and at most [`crate::MAX_TTL`] (365 days); otherwise it
    /// fails with [`Error::Config`] (field `ttl`) and changes nothing. Otherwise it
    /// behaves as [`Node::set`].
    pub fn set_with_ttl(&self, key: &str, value: impl Into<Value>, ttl: Duration) -> Result<()> {
        let value = value.into();
        self.write(|engine, now| engine.set_with_ttl(now, key, value, ttl))
    }

    /// The value of `key`, or `None` if it is missing, deleted or expired.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.read(|engine| engine.get(key).cloned())
    }

    /// Runs `f` on the engine once the values expired by now are gone, so a read never
    /// returns an expired value, whenever the network thread last ran.
    fn read<T>(&self, f: impl FnOnce(&Engine) -> T) -> T {
        self.with_engine(|engine, now| {
            engine.expire(now);
            f(engine)
        })
    }

    /// Deletes `key`. Returns whether it held a live value.
    ///
    /// Returns once the event handler and the watches have run for this delete, as
    /// [`Node::set`] does.
    pub fn delete(&self, key: &str) -> Result<bool> {
        self.write(|engine, now| engine.delete(now, key))
    }

    /// A local write: returns once its callbacks have run and it is as durable as the
    /// configuration asks.
    fn write<T>(&self, f: impl FnOnce(&mut Engine, Now) -> Result<T>) -> Result<T> {
        let Some(persist) = &self.persist else {
            return self.write_with_engine(f);
        };
        persist.check_writable()?;
        let (result, ticket) = self
            .write_with_engine(|engine, now| (f(engine, now), engine.store_batches_taken() + 1));
        let result = result?;
        persist.wait(ticket)?;
        Ok(result)
    }

    /// A snapshot of every live key and its value.
    pub fn get_all(&self) -> BTreeMap<String, Value> {
        self.read(Engine::snapshot)
    }

    /// Live keys, in no particular order.
    pub fn keys(&self) -> Vec<String> {
        self.read(Engine::keys)
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.read(Engine::live_keys)
    }

    /// Whether the replica holds no live key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The node's status and counters.
    pub fn status(&self) -> Status {
        let mut status = self.read(Engine::status);
        status.port = self.port();
        status.running = self.is_running();
        status.storage = self.persist.as_ref().map(persist::Persist::status);
        status
    }

    /// Every known peer.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let now = self.now();
        self.shared.engine.lock().peers(now)
    }

    /// What the node reports for metrics, read in one go so the figures agree.
    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        let mut snapshot = self.with_engine(|engine, now| {
            // As for reads: a scrape never counts a value that has expired.
            engine.expire(now);
            MetricsSnapshot {
                status: engine.status(),
                peers: engine.peers(now),
                memory: engine.memory(),
                propagation: engine.propagation_lag(),
            }
        });
        snapshot.status.port = self.port();
        snapshot.status.running = self.is_running();
        snapshot
    }

    /// The node's metrics in the Prometheus text exposition format (see
    /// [`crate::metrics`]), served as [`crate::metrics::CONTENT_TYPE`].
    pub fn metrics_text(&self) -> String {
        self.metrics_snapshot().encode()
    }

    /// A page of live keys with their writers and timestamps (see [`Engine::browse_keys`]).
    pub fn browse_keys(&self, query: &KeyQuery<'_>) -> KeyPage {
        self.read(|engine| engine.browse_keys(query))
    }

    /// Installs `key` for opening datagrams, the first step of a key rotation: install
    /// the new key on every node, then [`Node::use_key`] it on every node, then
    /// [`Node::remove_key`] the old one everywhere. Nodes holding both keys talk to nodes
    /// sealing with either, so writes keep flowing throughout. On a node without keys,
    /// the first key installed becomes the primary and the node starts sealing.
    /// Installing an installed key changes nothing.
    pub fn install_key(&self, key: Key) -> Result<()> {
        log::info!(
            "{}: installed key {}",
            self.shared.node_id,
            key.fingerprint()
        );
        self.shared.engine.lock().install_key(key);
        Ok(())
    }

    /// Makes an installed key the primary: every datagram is sealed with it from now on.
    /// Errors with [`crate::KeyError::NotInstalled`] if it is not installed.
    pub fn use_key(&self, key: &Key) -> Result<()> {
        self.shared.engine.lock().use_key(key)?;
        log::info!(
            "{}: sealing with key {}",
            self.shared.node_id,
            key.fingerprint()
        );
        Ok(())
    }

    /// Removes an installed key. Removing the primary is refused
    /// ([`crate::KeyError::RemovePrimary`]), as is removing a key not installed.
    pub fn remove_key(&self, key: &Key) -> Result<()> {
        self.shared.engine.lock().remove_key(key)?;
        log::info!("{}: removed key {}", self.shared.node_id, key.fingerprint());
        Ok(())
    }

    /// Fingerprints of the installed keys, the primary first (never the keys).
    pub fn list_keys(&self) -> Vec<String> {
        self.shared.engine.lock().list_keys()
    }

    /// Replaces the fault injection rules at the socket edge (for tests and demos).
    pub fn set_faults(&self, faults: FaultConfig) -> Result<()> {
        faults.validate()?;
        self.shared.faults.lock().set_config(faults);
        Ok(())
    }

    /// The fault injection rules in force.
    pub fn faults(&self) -> FaultConfig {
        self.shared.faults.lock().config().clone()
    }

    /// What fault injection has done so far.
    pub fn fault_stats(&self) -> FaultStats {
        self.shared.faults.lock().stats()
    }

    /// [`Node::with_engine`] for a local write: returns once the callback thread has
    /// delivered the write's event, and every event queued before it.
    fn write_with_engine<T>(&self, f: impl FnOnce(&mut Engine, Now) -> T) -> T {
        let mut queued = 0;
        let result = self.with_engine(|engine, now| {
            let result = f(engine, now);
            forward_events(&self.shared, engine);
            queued = self.shared.delivery.last_queued();
            result
        });
        self.shared.delivery.wait_for(queued);
        result
    }

    /// Runs `f` on the engine, forwards the events it produced, and wakes the network
    /// thread if `f` created work due before its planned wake-up.
    fn with_engine<T>(&self, f: impl FnOnce(&mut Engine, Now) -> T) -> T {
        let now = self.now();
        let (result, deadline) = {
            let mut engine = self.shared.engine.lock();
            let result = f(&mut engine, now);
            forward_events(&self.shared, &mut engine);
            (result, engine.poll_timeout())
        };
        if let Some(deadline) = deadline {
            if deadline < self.shared.wake_at_us.load(Ordering::Acquire) && self.is_running() {
                self.shared.wake();
            }
        }
        result
    }

    fn now(&self) -> Now {
        now_from(self.shared.epoch)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("node_id", &self.shared.node_id)
            .field("local_addr", &self.shared.local_addr)
            .field("running", &self.is_running())
            .finish()
    }
}

impl Shared {
    fn wake(&self) {
        self.waker.wake();
    }

    /// Has the engine queue events exactly while a handler or a watch listens. Takes the
    /// handler slot's guard so that concurrent changes settle on the last one.
    fn emit_while_listened(&self, handler: &Option<EventHandler>) {
        let listened = handler.is_some() || !self.watches.is_empty();
        self.engine.lock().set_emit_state_events(listened);
    }
}

fn now_from(epoch: Instant) -> Now {
    let wall_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Now {
        mono_us: epoch.elapsed().as_micros() as u64,
        wall_ms,
    }
}

/// Incarnations grow with the wall clock (milliseconds in the high bits, random low
/// bits), so peers tell a restarted node's datagrams from its previous run's stragglers.
fn fresh_incarnation(seed: u64) -> u64 {
    let wall_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let random = fastrand::Rng::with_seed(seed ^ wall_ms).u64(..) & 0xffff;
    ((wall_ms << 16) | random).max(1)
}

fn short(node_id: &str) -> String {
    node_id.chars().take(8).collect()
}

/// Resolves a host name or IP address and port to one socket address, at once and on the
/// calling thread: an IPv4 address is preferred when both families exist. (Bootstrap
/// peers given by name are resolved in the background instead, to every address, see
/// [`Node::add_bootstrap_peer`].)
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr> {
    if let Some(ip) = crate::addr::parse_ip(host) {
        return Ok(crate::addr::canonical(SocketAddr::new(ip, port)));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::Resolve {
            addr: format!("{host}:{port}"),
            reason: e.to_string(),
        })?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| Error::Resolve {
            addr: format!("{host}:{port}"),
            reason: "no address found".to_owned(),
        })
}

/// Binds the node's socket, and says which address families it can send to. `::` is
/// bound dual-stack (`IPV6_V6ONLY` off, whatever the system default) where the host
/// allows it, so one socket serves IPv4 and IPv6 peers; elsewhere it serves IPv6 only.
/// The socket bound for `config`, the address families it reaches, and whether its
/// datagrams carry the don't-fragment bit.
fn bind_socket(config: &Config) -> Result<(UdpSocket, Families, bool)> {
    let bind_err = |source: io::Error| Error::Bind {
        addr: if config.host.contains(':') && !config.host.starts_with('[') {
            format!("[{}]:{}", config.host, config.port)
        } else {
            format!("{}:{}", config.host, config.port)
        },
        source,
    };
    let ip: IpAddr = if config.host.is_empty() {
        Ipv4Addr::UNSPECIFIED.into()
    } else if let Some(ip) = crate::addr::parse_ip(&config.host) {
        ip
    } else {
        resolve(&config.host, config.port)?.ip()
    };
    // A v4-mapped bind address is bound as the IPv4 address it maps.
    let ip = crate::addr::canonical_ip(ip);
    let addr = SocketAddr::new(ip, config.port);
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))
        .map_err(bind_err)?;
    let families = match ip {
        IpAddr::V4(_) => Families {
            v4: true,
            v6: false,
        },
        IpAddr::V6(v6) if v6.is_unspecified() => match socket.set_only_v6(false) {
            Ok(()) => Families { v4: true, v6: true },
            Err(e) => {
                log::warn!(
                    "{}: this host does not allow dual-stack sockets ({e}): bound to [::] for IPv6 peers only",
                    config.node_id
                );
                Families {
                    v4: false,
                    v6: true,
                }
            }
        },
        IpAddr::V6(_) => Families {
            v4: false,
            v6: true,
        },
    };
    let dont_fragment = set_dont_fragment(&socket, families);
    // Best effort: the kernel may cap these; a smaller buffer only means more retransmits.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&addr.into()).map_err(bind_err)?;
    Ok((socket.into(), families, dont_fragment))
}

/// Sets the don't-fragment bit on every datagram, without the kernel's own path MTU
/// cache (Linux's `IP_PMTUDISC_PROBE`): a datagram too large for some hop is dropped,
/// never fragmented, so a path probe's answer proves the path carries its size (see the
/// `path` module), and one too large for the interface fails to send, as a loss.
/// `false` where it cannot be set: links then stay at `max_datagram_size`.
#[cfg(target_os = "linux")]
fn set_dont_fragment(socket: &socket2::Socket, families: Families) -> bool {
    use rustix::net::sockopt;
    // A dual-stack socket sends IPv4 datagrams under the IPv4 option.
    let v4 = families
        .v4
        .then(|| sockopt::set_ip_mtu_discover(socket, sockopt::Ipv4PathMtuDiscovery::PROBE));
    let v6 = families
        .v6
        .then(|| sockopt::set_ipv6_mtu_discover(socket, sockopt::Ipv6PathMtuDiscovery::PROBE));
    match (v4, v6) {
        (Some(Err(e)), _) | (_, Some(Err(e))) => {
            log::warn!("could not set the don't-fragment bit ({e}): no path probing");
            false
        }
        _ => true,
    }
}

#[cfg(not(target_os = "linux"))]
fn set_dont_fragment(_socket: &socket2::Socket, _families: Families) -> bool {
    false
}

/// `dst` in the form the socket sends to: a dual-stack IPv6 socket reaches an IPv4 peer
/// through its v4-mapped address (Linux accepts the IPv4 form too, other systems do not).
fn socket_dst(families: Families, local: &SocketAddr, dst: SocketAddr) -> SocketAddr {
    match dst {
        SocketAddr::V4(v4) if local.is_ipv6() && families.v4 => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        _ => dst,
    }
}

fn forward_events(shared: &Shared, engine: &mut Engine) {
    let sender = shared.events.lock();
    while let Some(event) = engine.poll_event() {
        if let Event::Message { data, .. } = &event {
            // Received messages wait for the callback thread within a budget.
            let cost = data.len() + MESSAGE_BACKLOG_OVERHEAD;
            let charged =
                shared
                    .message_backlog
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                        used.checked_add(cost)
                            .filter(|&total| total <= shared.max_message_backlog)
                    });
            if charged.is_err() || sender.is_none() {
                if charged.is_ok() {
                    shared.message_backlog.fetch_sub(cost, Ordering::AcqRel);
                }
                engine.count_dropped_message();
                continue;
            }
        }
        if let Some(tx) = sender.as_ref() {
            if tx.send(event).is_ok() {
                shared.delivery.queued_one();
            }
        }
    }
}

fn callback_loop(shared: &Shared, rx: mpsc::Receiver<Event>) {
    delivery::mark_callback_thread();
    // Releases writers waiting for delivery however this thread ends.
    let _closed_on_exit = delivery::CloseOnDrop(&shared.delivery);
    for event in rx {
        let handler = shared.handler.read().clone();
        if let Some(handler) = handler {
            // A panicking callback must not take the node down with it.
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&event)));
            if outcome.is_err() {
                log::error!("mesh-sync event callback panicked; event dropped");
            }
        }
        shared.watches.dispatch(&event);
        if let Event::Message { sender, data } = &event {
            let handler = shared.message_handler.read().clone();
            if let Some(handler) = handler {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    handler(sender, data)
                }));
                if outcome.is_err() {
                    log::error!("mesh-sync message callback panicked; message dropped");
                }
            }
            shared
                .message_backlog
                .fetch_sub(data.len() + MESSAGE_BACKLOG_OVERHEAD, Ordering::AcqRel);
        }
        shared.delivery.delivered_one();
    }
}

/// A datagram held back by fault injection until `due_us`.
struct Delayed {
    due_us: u64,
    order: u64,
    to: SocketAddr,
    payload: Vec<u8>,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.due_us, self.order) == (other.due_us, other.order)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    // Reversed: BinaryHeap is a max-heap and the earliest datagram must come first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.due_us, other.order).cmp(&(self.due_us, self.order))
    }
}

/// Shortest time between two warnings that waiting on the socket failed.
const WAIT_WARNING_INTERVAL: Duration = Duration::from_secs(10);

fn network_loop(shared: &Arc<Shared>, socket: &UdpSocket) {
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut delayed: BinaryHeap<Delayed> = BinaryHeap::new();
    let mut order = 0u64;
    let mut out = Vec::new();
    // A wait that keeps failing fails on every turn of the loop: warn once per interval,
    // with the count since the last warning, not a hundred times a second.
    let mut wait_failures: (u64, Option<Instant>) = (0, None);
    while !shared.stopping.load(Ordering::Acquire) {
        // Read everything queued (up to a burst), so acks and replies are batched.
        let mut received = 0usize;
        {
            let mut engine = shared.engine.lock();
            while received < RECV_BURST {
                match socket.recv_from(&mut buf) {
                    Ok((len, from)) => {
                        handle_one(shared, &mut engine, &buf[..len], from);
                        received += 1;
                        // A local write waiting for the engine goes next rather than
                        // after the whole burst: while the node catches up, that halves
                        // its p99 (BENCHMARKS.md, "Local write latency").
                        MutexGuard::bump(&mut engine);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        // ICMP port unreachable from a dead peer surfaces here on Linux.
                        log::trace!("recv error: {e}");
                        break;
                    }
                }
            }
            let now = now_from(shared.epoch);
            if engine.poll_timeout().is_some_and(|t| t <= now.mono_us) {
                engine.handle_timeout(now);
            }
            while let Some(transmit) = engine.poll_transmit(now) {
                out.push(transmit);
            }
            forward_events(shared, &mut engine);
            shared.seeds.check(shared, &engine, true);
        }
        let now = now_from(shared.epoch);
        let (sent_datagrams, sent_bytes) =
            send_all(shared, socket, &mut out, &mut delayed, &mut order, now);
        if sent_datagrams > 0 {
            shared.engine.lock().record_sent(sent_datagrams, sent_bytes);
        }
        if received == RECV_BURST {
            continue; // more may be queued: read on before sleeping
        }
        // Plan the sleep. The deadline is published under the engine lock, so a command
        // that adds earlier work either is seen here or sees this deadline and wakes us.
        let deadline = {
            let engine = shared.engine.lock();
            let now = now_from(shared.epoch);
            let deadline = [engine.poll_timeout(), delayed.peek().map(|d| d.due_us)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(u64::MAX)
                .min(now.mono_us + MAX_SLEEP.as_micros() as u64);
            shared.wake_at_us.store(deadline, Ordering::Release);
            deadline
        };
        let sleep = Duration::from_micros(deadline.saturating_sub(now_from(shared.epoch).mono_us));
        if !sleep.is_zero() && !shared.stopping.load(Ordering::Acquire) {
            if let Err(e) = shared.waker.wait(socket, sleep) {
                wait_failures.0 += 1;
                if wait_failures
                    .1
                    .is_none_or(|at| at.elapsed() >= WAIT_WARNING_INTERVAL)
                {
                    log::warn!(
                        "{}: waiting on the socket failed ({} times since the last warning): {e}",
                        shared.node_id,
                        wait_failures.0
                    );
                    wait_failures = (0, Some(Instant::now()));
                }
                thread::sleep(sleep.min(Duration::from_millis(10)));
            }
        }
        shared.wake_at_us.store(0, Ordering::Release);
    }
}

/// Sends `out` through the fault injector (and the datagrams it delayed that are now
/// due); returns the datagrams and bytes handed to the socket.
fn send_all(
    shared: &Shared,
    socket: &UdpSocket,
    out: &mut Vec<Transmit>,
    delayed: &mut BinaryHeap<Delayed>,
    order: &mut u64,
    now: Now,
) -> (u64, u64) {
    let mut sent = (0u64, 0u64);
    let mut send = |payload: &[u8], to: SocketAddr| {
        let to = socket_dst(shared.families, &shared.local_addr, to);
        // A full socket buffer drops the datagram, like the network would; the
        // transport retransmits whatever mattered.
        if socket.send_to(payload, to).is_ok() {
            sent.0 += 1;
            sent.1 += payload.len() as u64;
        }
    };
    let mut faults = shared.faults.lock();
    let transparent = faults.is_transparent();
    for transmit in out.drain(..) {
        if transparent {
            send(&transmit.payload, transmit.dst);
            continue;
        }
        for delivery in faults.outgoing(&transmit.dst, &transmit.payload) {
            if delivery.delay_us == 0 {
                send(&delivery.payload, transmit.dst);
            } else {
                *order += 1;
                delayed.push(Delayed {
                    due_us: now.mono_us + delivery.delay_us,
                    order: *order,
                    to: transmit.dst,
                    payload: delivery.payload,
                });
            }
        }
    }
    drop(faults);
    while delayed.peek().is_some_and(|d| d.due_us <= now.mono_us) {
        if let Some(d) = delayed.pop() {
            send(&d.payload, d.to);
        }
    }
    sent
}

fn handle_one(shared: &Shared, engine: &mut Engine, data: &[u8], from: SocketAddr) {
    // One peer, one address: an IPv4 peer of a dual-stack socket arrives v4-mapped.
    let from = crate::addr::canonical(from);
    if !shared.faults.lock().accept_incoming(&from) {
        return;
    }
    engine.handle_datagram(now_from(shared.epoch), from, data);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn loopback_node() -> Node {
        let mut config = Config::new("n1", 0);
        config.host = "127.0.0.1".to_owned();
        config.seed = Some(1);
        Node::new(config).unwrap()
    }

    #[test]
    fn events_are_queued_only_while_a_handler_is_kept() {
        let node = loopback_node();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let built = Arc::new(AtomicUsize::new(0));
        let keep = |wanted: bool| {
            node.keep_event_handler(
                || wanted,
                || {
                    built.fetch_add(1, Ordering::Relaxed);
                    let seen = Arc::clone(&seen);
                    move |event: &Event| {
                        if let Event::StateChanged { key, .. } = event {
                            seen.lock().push(key.clone());
                        }
                    }
                },
            )
        };

        // Not started: the callback thread already runs, so each write returns after the
        // handler kept at that moment has seen it, and writes made without one queue
        // nothing.
        node.set("unheard", 0).unwrap();
        assert!(!keep(false));
        assert_eq!(built.load(Ordering::Relaxed), 0, "nothing to remove");
        assert!(keep(true));
        node.set("a", 1).unwrap();
        assert!(keep(true));
        assert_eq!(
            built.load(Ordering::Relaxed),
            1,
            "a kept handler is not rebuilt"
        );
        assert!(!keep(false));
        node.set("b", 2).unwrap();
        assert!(keep(true));
        assert_eq!(built.load(Ordering::Relaxed), 2);
        node.set("c", 3).unwrap();

        node.start().unwrap();
        // Stopping delivers every pending event before it returns.
        node.stop();
        assert_eq!(*seen.lock(), ["a", "c"]);
    }
}
