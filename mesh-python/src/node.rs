//! `MeshSyncNode`: the Python face of [`mesh_core::Node`].
//!
//! Locking rules, which keep the interpreter lock (GIL) and the core's locks from
//! deadlocking each other:
//! - every call into the core runs detached from the interpreter (`py.detach`), because the
//!   core's threads may need the interpreter while holding a core lock (logging goes to
//!   Python's `logging`; stopping joins the callback thread, which may be waiting to
//!   attach);
//! - user callbacks run on the core's callback thread, attached with `Python::try_attach`,
//!   while the core holds none of its locks;
//! - the callback slots' lock is only held for pointer swaps and reference clones, never
//!   across Python code.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::{Event, FaultConfig, Node};
use parking_lot::Mutex;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString, PyTuple, PyType};
use pyo3::PyTraverseError;

use crate::config::{port_number, ConfigArgs, KeyArg};
use crate::convert::{json_to_py, map_to_py, to_py, to_value};
use crate::errors::{config_error, to_py_err};
use crate::watch::{Watch, Watches};

/// The user's callbacks, shared between the Python object and the core's event handler.
struct Callbacks {
    node_id: String,
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    state_change: Option<Py<PyAny>>,
    peer_discovered: Option<Py<PyAny>>,
    peer_failed: Option<Py<PyAny>>,
    peer_left: Option<Py<PyAny>>,
    peer_recovered: Option<Py<PyAny>>,
    message: Option<Py<PyAny>>,
}

impl Slots {
    fn any(&self) -> bool {
        self.state_change.is_some()
            || self.peer_discovered.is_some()
            || self.peer_failed.is_some()
            || self.peer_left.is_some()
            || self.peer_recovered.is_some()
            || self.message.is_some()
    }
}

#[derive(Clone, Copy)]
enum Slot {
    StateChange,
    PeerDiscovered,
    PeerFailed,
    PeerLeft,
    PeerRecovered,
    Message,
}

impl Slot {
    fn name(self) -> &'static str {
        match self {
            Slot::StateChange => "on_state_change",
            Slot::PeerDiscovered => "on_peer_discovered",
            Slot::PeerFailed => "on_peer_failed",
            Slot::PeerLeft => "on_peer_left",
            Slot::PeerRecovered => "on_peer_recovered",
            Slot::Message => "on_message",
        }
    }

    fn of(self, slots: &mut Slots) -> &mut Option<Py<PyAny>> {
        match self {
            Slot::StateChange => &mut slots.state_change,
            Slot::PeerDiscovered => &mut slots.peer_discovered,
            Slot::PeerFailed => &mut slots.peer_failed,
            Slot::PeerLeft => &mut slots.peer_left,
            Slot::PeerRecovered => &mut slots.peer_recovered,
            Slot::Message => &mut slots.message,
        }
    }
}

impl Callbacks {
    fn get(&self, py: Python<'_>, slot: Slot) -> Option<Py<PyAny>> {
        slot.of(&mut self.slots.lock())
            .as_ref()
            .map(|cb| cb.clone_ref(py))
    }

    /// Calls the callback matching `event`, if one is set. Runs on the callback thread.
    fn dispatch(&self, py: Python<'_>, event: &Event) {
        let slot = match event {
            Event::StateChanged { .. } => Slot::StateChange,
            Event::PeerDiscovered { .. } => Slot::PeerDiscovered,
            Event::PeerFailed { .. } => Slot::PeerFailed,
            Event::PeerLeft { .. } => Slot::PeerLeft,
            Event::PeerRecovered { .. } => Slot::PeerRecovered,
            Event::Message { .. } => Slot::Message,
        };
        let Some(callback) = self.get(py, slot) else {
            return;
        };
        let outcome = event_args(py, event).and_then(|args| callback.bind(py).call1(args));
        if let Err(err) = outcome {
            report_callback_error(py, slot.name(), &self.node_id, err);
        }
    }
}

/// Logs an exception raised by the callback `name` of node `node_id` to the `mesh_sync`
/// logger, traceback included.
pub(crate) fn report_callback_error(py: Python<'_>, name: &str, node_id: &str, err: PyErr) {
    let logged = (|| -> PyResult<()> {
        let logger = py
            .import("logging")?
            .call_method1("getLogger", ("mesh_sync",))?;
        let exc_info = (err.get_type(py), err.value(py), err.traceback(py));
        let kwargs = PyDict::new(py);
        kwargs.set_item("exc_info", exc_info)?;
        logger.call_method(
            "error",
            ("exception in %s callback of node %r", name, node_id),
            Some(&kwargs),
        )?;
        Ok(())
    })();
    if let Err(log_err) = logged {
        // Logging itself failed (a broken handler): the interpreter's last resort.
        err.write_unraisable(py, None);
        log_err.write_unraisable(py, None);
    }
}

fn event_args<'py>(py: Python<'py>, event: &Event) -> PyResult<Bound<'py, PyTuple>> {
    match event {
        Event::StateChanged { key, value, origin } => {
            let value = match value {
                Some(v) => to_py(py, v)?,
                None => py.None().into_bound(py),
            };
            PyTuple::new(
                py,
                [
                    PyString::new(py, key).into_any(),
                    value,
                    PyString::new(py, origin.as_str()).into_any(),
                ],
            )
        }
        Event::PeerDiscovered { node_id, addr } => PyTuple::new(
            py,
            [
                PyString::new(py, node_id).into_any(),
                address_tuple(py, addr)?.into_any(),
            ],
        ),
        Event::PeerFailed { node_id, .. }
        | Event::PeerLeft { node_id, .. }
        | Event::PeerRecovered { node_id, .. } => PyTuple::new(py, [PyString::new(py, node_id)]),
        Event::Message { sender, data } => PyTuple::new(
            py,
            [
                PyString::new(py, sender).into_any(),
                PyBytes::new(py, data).into_any(),
            ],
        ),
    }
}

/// The bytes of a message: bytes, bytearray or memoryview, anything else a TypeError.
fn message_bytes(data: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = data.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(array) = data.cast::<PyByteArray>() {
        return Ok(array.to_vec());
    }
    if data.is_instance_of::<pyo3::types::PyMemoryView>() {
        let bytes = data.call_method0("tobytes")?;
        return Ok(bytes.cast::<PyBytes>()?.as_bytes().to_vec());
    }
    Err(PyTypeError::new_err(format!(
        "data must be bytes, bytearray or memoryview, not '{}'",
        data.get_type().name()?
    )))
}

fn address_tuple<'py>(py: Python<'py>, addr: &SocketAddr) -> PyResult<Bound<'py, PyTuple>> {
    (addr.ip().to_string(), addr.port()).into_pyobject(py)
}

fn millis(py: Python<'_>, field: &'static str, ms: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(ms / 1000.0).map_err(|_| {
        config_error(
            py,
            field,
            "must be a finite, non-negative number of milliseconds",
        )
    })
}

/// A node of a mesh-sync cluster: a replica of the shared key-value state, kept identical
/// on every node over UDP.
///
/// ``MeshSyncNode(node_id, port, sync_interval=10.0, heartbeat_interval=5.0, **options)``
///
/// ``port`` 0 picks a free port; read the real one back from ``node.port``. Durations are
/// in seconds. Keyword options (defaults in brackets): ``host`` address to bind
/// ["0.0.0.0"; "::" for IPv6 and IPv4, "::1" for IPv6 only], ``advertise_host`` and
/// ``advertise_port`` the address peers should give others to reach this node [none: the
/// source address of its datagrams; the port defaults to the bound one], ``cluster``
/// name of the mesh ["default"], ``peer_timeout`` silence before a
/// peer is suspected, failed after twice that [3 x heartbeat_interval], ``max_retries``
/// retransmissions of a datagram [5], ``initial_rto`` [0.5], ``min_rto`` [0.01],
/// ``max_rto`` [8.0] retransmission timeouts, ``push_delay`` shortest time between
/// two pushes of local writes [0.001], ``push_fanout`` most reachable peers a writer
/// pushes to itself, beyond which writes travel the broadcast tree (0 or more; 0 sends
/// every write through the tree) [32], ``max_datagram_size`` [1200],
/// ``max_probed_datagram_size`` largest datagram a link grows to once a probe shows its
/// path carries it, through 1452 (Ethernet) and 8952 (jumbo frames) [16384],
/// ``max_key_len`` [1024], ``max_value_size`` [16 MiB], ``max_in_flight`` bytes
/// unacknowledged per peer [128 KiB], ``max_reassembly``
/// [64 MiB, or enough for max_value_size], ``reassembly_timeout`` [30.0],
/// ``max_clock_drift`` [60.0], ``tombstone_grace`` [86400.0], ``max_collected_deletes``
/// dropped tombstones remembered until the grace, so older values still lose to them (0
/// or more) [100000], ``max_origins`` node runs accounted for at once [4096],
/// ``max_probe_interval`` [30.0], ``max_peers`` most members remembered [16384],
/// ``seed`` of the node's random choices [random], ``compression`` of bulk payloads to
/// peers that read it too, where it wins [True].
///
/// Callbacks are attributes, called on the node's callback thread, in order:
/// ``on_state_change(key, value, operation)`` with operation 'set' or 'delete' for local
/// writes and 'sync' for changes received from peers (value None when deleted there);
/// ``on_peer_discovered(node_id, (host, port))``, ``on_peer_failed(node_id)``,
/// ``on_peer_left(node_id)``, ``on_peer_recovered(node_id)``; ``on_message(sender_id, data)`` for messages sent with
/// ``send`` or ``broadcast`` by a peer. An exception raised by a callback is logged to the
/// ``mesh_sync`` logger and does not affect the node.
#[pyclass(
    frozen,
    weakref,
    subclass,
    module = "mesh_sync._mesh_sync",
    name = "MeshSyncNode"
)]
pub struct MeshSyncNode {
    node: Arc<Node>,
    callbacks: Arc<Callbacks>,
    watches: Arc<Watches>,
}

impl MeshSyncNode {
    fn set_callback(
        &self,
        py: Python<'_>,
        slot: Slot,
        value: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let value = match value {
            Some(v) if v.is_none() => None,
            Some(v) if !v.is_callable() => {
                return Err(PyTypeError::new_err(format!(
                    "{} must be callable or None, not '{}'",
                    slot.name(),
                    v.get_type().name()?
                )))
            }
            other => other.map(Bound::unbind),
        };
        let previous = std::mem::replace(slot.of(&mut self.callbacks.slots.lock()), value);
        // Dropped only now, outside the lock: releasing it may run arbitrary Python code.
        drop(previous);
        self.sync_handler(py);
        Ok(())
    }

    /// Keeps the core's event handler installed exactly while some callback is set: the
    /// core queues events only while a handler is installed.
    fn sync_handler(&self, py: Python<'_>) {
        py.detach(|| {
            self.node.keep_event_handler(
                || self.callbacks.slots.lock().any(),
                || {
                    let callbacks = Arc::clone(&self.callbacks);
                    move |event: &Event| {
                        // None while the interpreter shuts down: the event is dropped.
                        let _ = Python::try_attach(|py| callbacks.dispatch(py, event));
                    }
                },
            );
        });
    }

    fn callback(&self, py: Python<'_>, slot: Slot) -> Option<Py<PyAny>> {
        self.callbacks.get(py, slot)
    }
}

#[pymethods]
impl MeshSyncNode {
    #[new]
    #[pyo3(signature = (
        node_id,
        port,
        sync_interval = 10.0,
        heartbeat_interval = 5.0,
        *,
        host = None,
        advertise_host = None,
        advertise_port = None,
        cluster = None,
        peer_timeout = None,
        max_retries = None,
        initial_rto = None,
        min_rto = None,
        max_rto = None,
        push_delay = None,
        push_fanout = None,
        max_datagram_size = None,
        max_probed_datagram_size = None,
        max_key_len = None,
        max_value_size = None,
        max_in_flight = None,
        max_reassembly = None,
        reassembly_timeout = None,
        max_clock_drift = None,
        tombstone_grace = None,
        max_collected_deletes = None,
        max_origins = None,
        max_probe_interval = None,
        max_peers = None,
        seed = None,
        keyring = None,
        data_dir = None,
        durability = None,
        flush_interval = None,
        compression = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        node_id: String,
        port: i64,
        sync_interval: f64,
        heartbeat_interval: f64,
        host: Option<String>,
        advertise_host: Option<String>,
        advertise_port: Option<i64>,
        cluster: Option<String>,
        peer_timeout: Option<f64>,
        max_retries: Option<i64>,
        initial_rto: Option<f64>,
        min_rto: Option<f64>,
        max_rto: Option<f64>,
        push_delay: Option<f64>,
        push_fanout: Option<i64>,
        max_datagram_size: Option<i64>,
        max_probed_datagram_size: Option<i64>,
        max_key_len: Option<i64>,
        max_value_size: Option<i64>,
        max_in_flight: Option<i64>,
        max_reassembly: Option<i64>,
        reassembly_timeout: Option<f64>,
        max_clock_drift: Option<f64>,
        tombstone_grace: Option<f64>,
        max_collected_deletes: Option<i64>,
        max_origins: Option<i64>,
        max_probe_interval: Option<f64>,
        max_peers: Option<i64>,
        seed: Option<u64>,
        keyring: Option<Vec<KeyArg>>,
        data_dir: Option<std::path::PathBuf>,
        durability: Option<String>,
        flush_interval: Option<f64>,
        compression: Option<bool>,
    ) -> PyResult<Self> {
        let config = ConfigArgs {
            node_id,
            port,
            sync_interval,
            heartbeat_interval,
            host,
            advertise_host,
            advertise_port,
            cluster,
            peer_timeout,
            max_retries,
            initial_rto,
            min_rto,
            max_rto,
            push_delay,
            push_fanout,
            max_datagram_size,
            max_probed_datagram_size,
            max_key_len,
            max_value_size,
            max_in_flight,
            max_reassembly,
            reassembly_timeout,
            max_clock_drift,
            tombstone_grace,
            max_collected_deletes,
            max_origins,
            max_probe_interval,
            max_peers,
            seed,
            keyring,
            data_dir,
            durability,
            flush_interval,
            compression,
        }
        .into_config(py)?;
        let node_id = config.node_id.clone();
        let node = py
            .detach(|| Node::new(config))
            .map_err(|e| to_py_err(py, e))?;
        let node = Arc::new(node);
        crate::track(&node);
        Ok(MeshSyncNode {
            node,
            callbacks: Arc::new(Callbacks {
                node_id,
                slots: Mutex::new(Slots::default()),
            }),
            watches: Arc::default(),
        })
    }

    /// This node's id.
    #[getter]
    fn node_id(&self) -> &str {
        self.node.node_id()
    }

    /// The bound UDP port (the real one when 0 was given).
    #[getter]
    fn port(&self) -> u16 {
        self.node.port()
    }

    /// The bound socket address as (IP address, port); the IP is "0.0.0.0" when bound to
    /// every interface.
    #[getter]
    fn address<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        address_tuple(py, &self.node.local_addr())
    }

    /// Whether the node is started and not stopped.
    #[getter]
    fn running(&self) -> bool {
        self.node.is_running()
    }

    /// The address this node advertises, as (host, port), or None if it advertises none.
    #[getter]
    fn advertise_address<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.node
            .advertise_addr()
            .map(|addr| address_tuple(py, &addr))
            .transpose()
    }

    /// Adds a peer to contact (at start, or at once if running): an IPv4 or IPv6 address,
    /// or a host name ("localhost", "seed.example"). An IP address the node's socket
    /// cannot reach raises ResolveError, as does a malformed name; a host name is
    /// resolved in the background, and again while its peer cannot be reached, so a name
    /// that does not resolve yet is retried rather than refused.
    fn add_bootstrap_peer(&self, py: Python<'_>, host: String, port: i64) -> PyResult<()> {
        let port = port_number(port).filter(|p| *p != 0).ok_or_else(|| {
            PyValueError::new_err(format!("port {port} is not between 1 and 65535"))
        })?;
        py.detach(|| self.node.add_bootstrap_peer(&host, port))
            .map(|_| ())
            .map_err(|e| to_py_err(py, e))
    }

    /// Starts networking. Does nothing if already running; raises NodeStoppedError after
    /// ``stop()``.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.node.start())
            .map_err(|e| to_py_err(py, e))
    }

    /// Stops the node within milliseconds and frees its port. Pending callbacks are
    /// delivered first. Idempotent; safe to call from a callback.
    fn stop(&self, py: Python<'_>) {
        py.detach(|| self.node.stop());
    }

    /// Sets ``key`` to ``value`` (None, bool, int, float, str, bytes, list, tuple, dict
    /// with str keys, nested). Visible locally at once and pushed to peers. Returns once
    /// ``on_state_change`` and the watches have run for this write (at once when called
    /// from inside a callback).
    ///
    /// With ``ttl`` (seconds, a positive finite number of at most 365 days; else
    /// ``ConfigError``), the key expires on every node when that node's hybrid logical
    /// clock reaches the write's timestamp plus ``ttl``: it reads as missing from then on
    /// and ``on_state_change(key, None, "delete")`` and the watches report it. A later
    /// ``set`` without ``ttl`` makes the key permanent.
    #[pyo3(signature = (key, value, *, ttl = None))]
    fn set(
        &self,
        py: Python<'_>,
        key: String,
        value: &Bound<'_, PyAny>,
        ttl: Option<f64>,
    ) -> PyResult<()> {
        let value = to_value(value)?;
        match ttl {
            None => py.detach(|| self.node.set(&key, value)),
            Some(seconds) => {
                let ttl = ttl_duration(seconds).map_err(|e| to_py_err(py, e))?;
                py.detach(|| self.node.set_with_ttl(&key, value, ttl))
            }
        }
        .map_err(|e| to_py_err(py, e))
    }

    /// The value of ``key``, or ``default`` when it is missing or deleted.
    #[pyo3(signature = (key, default = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: String,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match py.detach(|| self.node.get(&key)) {
            Some(value) => to_py(py, &value),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }

    /// Deletes ``key``; returns whether it held a value. Returns once ``on_state_change``
    /// and the watches have run for this delete, as ``set`` does.
    fn delete(&self, py: Python<'_>, key: String) -> PyResult<bool> {
        py.detach(|| self.node.delete(&key))
            .map_err(|e| to_py_err(py, e))
    }

    /// A new dict of every live key and its value.
    fn get_all_data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let snapshot = py.detach(|| self.node.get_all());
        map_to_py(py, &snapshot)
    }

    /// Status and counters: node_id, port, running, state_version, data_keys, tombstones,
    /// collected_deletes, peers {total_peers, alive_peers, suspect_peers, dead_peers,
    /// bootstrap_peers}, pending_acks, hlc, counters {...}, storage (None without a
    /// data_dir).
    fn get_status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let status = py.detach(|| self.node.status());
        // Built field by field so the dict reads in the prototype's order.
        let dict = PyDict::new(py);
        dict.set_item("node_id", &status.node_id)?;
        dict.set_item("port", status.port)?;
        dict.set_item("running", status.running)?;
        dict.set_item("state_version", status.state_version)?;
        dict.set_item("data_keys", status.data_keys)?;
        dict.set_item("tombstones", status.tombstones)?;
        dict.set_item("collected_deletes", status.collected_deletes)?;
        let peers = PyDict::new(py);
        peers.set_item("total_peers", status.peers.total_peers)?;
        peers.set_item("alive_peers", status.peers.alive_peers)?;
        peers.set_item("suspect_peers", status.peers.suspect_peers)?;
        peers.set_item("dead_peers", status.peers.dead_peers)?;
        peers.set_item("bootstrap_peers", status.peers.bootstrap_peers)?;
        dict.set_item("peers", peers)?;
        dict.set_item("pending_acks", status.pending_acks)?;
        dict.set_item("hlc", status.hlc)?;
        let counters = serde_json::to_value(status.counters).unwrap_or_default();
        dict.set_item("counters", json_to_py(py, &counters)?)?;
        let storage = serde_json::to_value(&status.storage).unwrap_or_default();
        dict.set_item("storage", json_to_py(py, &storage)?)?;
        Ok(dict)
    }

    /// Installs ``key`` (32 bytes or their base64 text) for opening datagrams: the first
    /// step of a key rotation (install everywhere, then ``use_key`` everywhere, then
    /// ``remove_key`` the old key everywhere). On a node without keys, the first key
    /// installed becomes the primary. Raises ConfigError for a malformed key.
    fn install_key(&self, py: Python<'_>, key: KeyArg) -> PyResult<()> {
        let key = key.into_key(py, "key")?;
        py.detach(|| self.node.install_key(key))
            .map_err(|e| to_py_err(py, e))
    }

    /// Makes an installed key the primary: every datagram is sealed with it from now on.
    /// Raises KeyringError if it is not installed.
    fn use_key(&self, py: Python<'_>, key: KeyArg) -> PyResult<()> {
        let key = key.into_key(py, "key")?;
        py.detach(|| self.node.use_key(&key))
            .map_err(|e| to_py_err(py, e))
    }

    /// Removes an installed key. Raises KeyringError for the primary key or a key that
    /// is not installed.
    fn remove_key(&self, py: Python<'_>, key: KeyArg) -> PyResult<()> {
        let key = key.into_key(py, "key")?;
        py.detach(|| self.node.remove_key(&key))
            .map_err(|e| to_py_err(py, e))
    }

    /// Fingerprints of the installed keys (never the keys), the primary first.
    fn list_keys(&self, py: Python<'_>) -> Vec<String> {
        py.detach(|| self.node.list_keys())
    }

    /// The node's metrics in the Prometheus text exposition format (version 0.0.4), every
    /// series labelled with this node's id: ready to serve on a `/metrics` endpoint.
    fn metrics(&self, py: Python<'_>) -> String {
        py.detach(|| self.node.metrics_text())
    }

    /// Every known peer: dicts with node_id (None until heard from), address (host, port),
    /// advertised_address ((host, port) it advertises, or None), state ('unknown', 'alive', 'suspect', 'dead'), bootstrap, rtt_ms, last_seen_ms,
    /// pending_acks and datagram_size (the largest datagram sent to it, in bytes).
    fn get_peers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let peers = py.detach(|| self.node.peers());
        let list = PyList::empty(py);
        for peer in &peers {
            let dict = PyDict::new(py);
            dict.set_item("node_id", &peer.node_id)?;
            dict.set_item("address", address_tuple(py, &peer.addr)?)?;
            let advertised = peer
                .advertised_addr
                .map(|a| address_tuple(py, &a))
                .transpose()?;
            dict.set_item("advertised_address", advertised)?;
            dict.set_item("state", peer.state.as_str())?;
            dict.set_item("bootstrap", peer.bootstrap)?;
            dict.set_item("rtt_ms", peer.rtt_ms)?;
            dict.set_item("last_seen_ms", peer.last_seen_ms)?;
            dict.set_item("pending_acks", peer.pending_acks)?;
            dict.set_item("datagram_size", peer.datagram_size)?;
            list.append(dict)?;
        }
        Ok(list)
    }

    /// Replaces the fault injection rules at this node's socket (for tests and demos).
    /// Rates are probabilities in [0, 1]; ``partitioned`` lists (host, port) peers cut off
    /// in both directions. See ``mesh_sync.testing.UnreliableNetworkSimulator``.
    #[pyo3(signature = (
        *,
        loss_rate = 0.0,
        latency_ms = 0.0,
        jitter_ms = 0.0,
        duplicate_rate = 0.0,
        reorder_rate = 0.0,
        corrupt_rate = 0.0,
        partitioned = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn set_faults(
        &self,
        py: Python<'_>,
        loss_rate: f64,
        latency_ms: f64,
        jitter_ms: f64,
        duplicate_rate: f64,
        reorder_rate: f64,
        corrupt_rate: f64,
        partitioned: Option<Vec<(String, i64)>>,
    ) -> PyResult<()> {
        let mut faults = FaultConfig {
            loss_rate,
            delay: millis(py, "latency_ms", latency_ms)?,
            jitter: millis(py, "jitter_ms", jitter_ms)?,
            duplicate_rate,
            reorder_rate,
            corrupt_rate,
            partitioned: Default::default(),
            max_datagram: None,
        };
        for (host, port) in partitioned.unwrap_or_default() {
            let port = port_number(port).ok_or_else(|| {
                PyValueError::new_err(format!("port {port} is not between 0 and 65535"))
            })?;
            let addr = py
                .detach(|| mesh_core::resolve(&host, port))
                .map_err(|e| to_py_err(py, e))?;
            faults.partitioned.insert(addr);
        }
        py.detach(|| self.node.set_faults(faults))
            .map_err(|e| to_py_err(py, e))
    }

    /// The fault injection rules in force, as keyword arguments of ``set_faults``.
    fn get_faults<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let faults = py.detach(|| self.node.faults());
        let dict = PyDict::new(py);
        dict.set_item("loss_rate", faults.loss_rate)?;
        dict.set_item("latency_ms", faults.delay.as_secs_f64() * 1000.0)?;
        dict.set_item("jitter_ms", faults.jitter.as_secs_f64() * 1000.0)?;
        dict.set_item("duplicate_rate", faults.duplicate_rate)?;
        dict.set_item("reorder_rate", faults.reorder_rate)?;
        dict.set_item("corrupt_rate", faults.corrupt_rate)?;
        let partitioned = PyList::empty(py);
        for addr in &faults.partitioned {
            partitioned.append(address_tuple(py, addr)?)?;
        }
        dict.set_item("partitioned", partitioned)?;
        Ok(dict)
    }

    /// What fault injection did so far: packets_sent, packets_dropped (loss),
    /// packets_partitioned, packets_delayed, packets_duplicated, packets_reordered,
    /// packets_corrupted, and drop_rate (loss and partition over packets sent).
    fn get_fault_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = py.detach(|| self.node.fault_stats());
        let dict = PyDict::new(py);
        dict.set_item("packets_sent", stats.packets_sent)?;
        dict.set_item("packets_dropped", stats.packets_dropped)?;
        dict.set_item("packets_partitioned", stats.packets_partitioned)?;
        dict.set_item("packets_delayed", stats.packets_delayed)?;
        dict.set_item("packets_duplicated", stats.packets_duplicated)?;
        dict.set_item("packets_reordered", stats.packets_reordered)?;
        dict.set_item("packets_corrupted", stats.packets_corrupted)?;
        dict.set_item("drop_rate", stats.drop_rate())?;
        Ok(dict)
    }

    /// Calls ``callback(key, value, operation)`` for every change of a key starting with
    /// ``prefix`` (every key for ""), on the callback thread, after ``on_state_change``,
    /// in order. Returns a ``Watch``: ``cancel()`` it, or use it as a context manager.
    fn watch(&self, py: Python<'_>, prefix: String, callback: Bound<'_, PyAny>) -> PyResult<Watch> {
        crate::watch::watch(py, &self.node, &self.watches, prefix, callback)
    }

    /// An asynchronous iterator of ``(key, value, operation)`` for the changes of the keys
    /// starting with ``prefix``: ``async for key, value, op in node.changes("sensor/")``.
    /// Call it from a coroutine; changes are queued for the running event loop from the
    /// moment of the call, and the loop is never blocked. At most ``max_pending`` changes
    /// (default 100,000) wait for the consumer; past that they are dropped and the
    /// iteration raises ``ChangesLostError`` (with ``lost``) where they were. ``aclose()``
    /// it, or use it as an async context manager, to stop the watch underneath.
    #[pyo3(
        signature = (prefix = String::new(), max_pending = None),
        text_signature = "($self, prefix='', max_pending=100000)"
    )]
    fn changes<'py>(
        slf: Bound<'py, Self>,
        prefix: String,
        max_pending: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let changes = py.import("mesh_sync._changes")?.getattr("Changes")?;
        match max_pending {
            Some(max_pending) => changes.call1((slf, prefix, max_pending)),
            None => changes.call1((slf, prefix)),
        }
    }

    /// ``on_state_change(key, value, operation)``; operation is 'set', 'delete' or 'sync'.
    #[getter]
    fn get_on_state_change(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.callback(py, Slot::StateChange)
    }

    #[setter]
    fn set_on_state_change(&self, py: Python<'_>, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        self.set_callback(py, Slot::StateChange, value)
    }

    /// ``on_peer_discovered(node_id, (host, port))``: a node was heard from for the first
    /// time.
    #[getter]
    fn get_on_peer_discovered(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.callback(py, Slot::PeerDiscovered)
    }

    #[setter]
    fn set_on_peer_discovered(
        &self,
        py: Python<'_>,
        value: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.set_callback(py, Slot::PeerDiscovered, value)
    }

    /// ``on_peer_failed(node_id)``: a peer stopped answering probes, directly and through
    /// other peers, and did not refute the suspicion within the suspicion timeout
    /// (about ``peer_timeout`` or longer).
    #[getter]
    fn get_on_peer_failed(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.callback(py, Slot::PeerFailed)
    }

    #[setter]
    fn set_on_peer_failed(&self, py: Python<'_>, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        self.set_callback(py, Slot::PeerFailed, value)
    }

    /// ``on_peer_left(node_id)``: a peer announced that it stopped (``stop()``).
    #[getter]
    fn get_on_peer_left(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.callback(py, Slot::PeerLeft)
    }

    #[setter]
    fn set_on_peer_left(&self, py: Python<'_>, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        self.set_callback(py, Slot::PeerLeft, value)
    }

    /// ``on_peer_recovered(node_id)``: a failed or restarted peer was heard from again.
    #[getter]
    fn get_on_peer_recovered(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.callback(py, Slot::PeerRecovered)
    }

    #[setter]
    fn set_on_peer_recovered(
        &self,
        py: Python<'_>,
        value: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.set_callback(py, Slot::PeerRecovered, value)
    }

    /// ``on_message(sender_id, data)``: a message sent to this node by a peer with ``send``
    /// or ``broadcast``; ``data`` is bytes. Messages of one sender arrive in the order
    /// they were sent.
    #[getter]
    fn get_on_message(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.callback(py, Slot::Message)
    }

    #[setter]
    fn set_on_message(&self, py: Python<'_>, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        self.set_callback(py, Slot::Message, value)
    }

    /// Sends ``data`` (bytes, bytearray or memoryview) to the alive peer ``peer_id``:
    /// delivered reliably and in the order sent to its ``on_message`` callback, never
    /// stored in the shared state. Returns once the message is queued.
    ///
    /// Raises PeerNotFoundError when no alive peer has that id, MessageTooLargeError past
    /// ``max_value_size``, QueueFullError when too much already waits to be sent to that
    /// peer, NodeStoppedError after ``stop()``, TypeError for other types.
    fn send(&self, py: Python<'_>, peer_id: String, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = message_bytes(data)?;
        py.detach(|| self.node.send(&peer_id, &data))
            .map_err(|e| to_py_err(py, e))
    }

    /// Sends ``data`` to every alive peer, as ``send`` does; returns how many peers it was
    /// queued for (peers whose send queue is full are skipped).
    fn broadcast(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let data = message_bytes(data)?;
        py.detach(|| self.node.broadcast(&data))
            .map_err(|e| to_py_err(py, e))
    }

    /// Node ids of the alive peers messages can be sent to now.
    fn message_peers(&self, py: Python<'_>) -> Vec<String> {
        py.detach(|| self.node.message_peers())
    }

    /// Starts the node and returns it.
    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().start(slf.py())?;
        Ok(slf)
    }

    /// Stops the node.
    #[pyo3(signature = (_exc_type = None, _exc_value = None, _traceback = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<Bound<'_, PyType>>,
        _exc_value: Option<Bound<'_, PyAny>>,
        _traceback: Option<Bound<'_, PyAny>>,
    ) -> bool {
        self.stop(py);
        false
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let keys = py.detach(|| self.node.len());
        let id = PyString::new(py, self.node.node_id()).repr()?;
        Ok(format!(
            "MeshSyncNode(node_id={id}, port={}, running={}, keys={keys})",
            self.node.port(),
            if self.node.is_running() {
                "True"
            } else {
                "False"
            },
        ))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // A busy lock is skipped: reporting fewer references only keeps objects alive
        // longer, never frees one in use.
        if let Some(slots) = self.callbacks.slots.try_lock() {
            for cb in [
                &slots.state_change,
                &slots.peer_discovered,
                &slots.peer_failed,
                &slots.peer_left,
                &slots.peer_recovered,
                &slots.message,
            ] {
                visit.call(cb)?;
            }
        }
        self.watches.traverse(&visit)
    }

    fn __clear__(&self) {
        let taken = std::mem::take(&mut *self.callbacks.slots.lock());
        drop(taken);
        self.watches.clear();
    }
}

impl Drop for MeshSyncNode {
    fn drop(&mut self) {
        // Stopping joins the callback thread, which may be waiting to attach: detach first.
        let node = &self.node;
        if Python::try_attach(|py| py.detach(|| node.stop())).is_none() {
            node.stop();
        }
    }
}

/// A TTL in seconds as a duration: positive, finite, at most [`mesh_core::MAX_TTL`].
fn ttl_duration(seconds: f64) -> Result<Duration, mesh_core::Error> {
    let invalid = |message: String| {
        mesh_core::Error::Config(mesh_core::ConfigError {
            field: "ttl",
            message: message.into(),
        })
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(invalid(format!(
            "must be a positive, finite number of seconds, got {seconds}"
        )));
    }
    let max = mesh_core::MAX_TTL.as_secs_f64();
    if seconds > max {
        return Err(invalid(format!(
            "must be at most {max} s (365 days), got {seconds}"
        )));
    }
    Duration::try_from_secs_f64(seconds).map_err(|e| invalid(e.to_string()))
}
