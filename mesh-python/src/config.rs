//! The `MeshSyncNode` constructor's arguments and how they map onto the core's
//! [`Config`]: seconds as floats, sizes and counts as ints, and each keyword's errors
//! raised as `ConfigError` naming that keyword.
//!
//! Kept apart from the class so the mapping reads in one place; the rules that derive one
//! setting from another (the peer timeout, the reassembly budget) are the core's.

use std::time::Duration;

use mesh_core::{Config, Key};
use pyo3::prelude::*;

use crate::errors::config_error;

/// A key as Python code gives it: 32 bytes, or their standard base64 text.
#[derive(FromPyObject)]
pub enum KeyArg {
    /// Base64 text.
    Text(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
}

impl KeyArg {
    /// The key, or a `ConfigError` naming `field` if it has the wrong length or form.
    pub fn into_key(self, py: Python<'_>, field: &'static str) -> PyResult<Key> {
        let key = match self {
            KeyArg::Text(text) => Key::from_base64(&text),
            KeyArg::Bytes(bytes) => Key::from_bytes(&bytes),
        };
        key.map_err(|e| config_error(py, field, &e.to_string()))
    }
}

/// Every argument of `MeshSyncNode(...)`, named as its keyword; `None` leaves the
/// setting to the core's default or to the rule deriving it from other settings.
pub struct ConfigArgs {
    pub node_id: String,
    pub port: i64,
    pub sync_interval: f64,
    pub heartbeat_interval: f64,
    pub host: Option<String>,
    pub advertise_host: Option<String>,
    pub advertise_port: Option<i64>,
    pub cluster: Option<String>,
    pub peer_timeout: Option<f64>,
    pub max_retries: Option<i64>,
    pub initial_rto: Option<f64>,
    pub min_rto: Option<f64>,
    pub max_rto: Option<f64>,
    pub push_delay: Option<f64>,
    pub push_fanout: Option<i64>,
    pub max_datagram_size: Option<i64>,
    pub max_probed_datagram_size: Option<i64>,
    pub max_key_len: Option<i64>,
    pub max_value_size: Option<i64>,
    pub max_in_flight: Option<i64>,
    pub max_reassembly: Option<i64>,
    pub reassembly_timeout: Option<f64>,
    pub max_clock_drift: Option<f64>,
    pub tombstone_grace: Option<f64>,
    pub max_collected_deletes: Option<i64>,
    pub max_origins: Option<i64>,
    pub max_probe_interval: Option<f64>,
    pub max_peers: Option<i64>,
    pub seed: Option<u64>,
    pub keyring: Option<Vec<KeyArg>>,
    pub data_dir: Option<std::path::PathBuf>,
    pub durability: Option<String>,
    pub flush_interval: Option<f64>,
    pub compression: Option<bool>,
}

impl ConfigArgs {
    /// The core config these arguments describe. Only units and ranges are checked here;
    /// the relations between settings are left to the core's validation.
    pub fn into_config(self, py: Python<'_>) -> PyResult<Config> {
        let port = port_number(self.port)
            .ok_or_else(|| config_error(py, "port", "must be between 0 and 65535"))?;
        let mut config = Config::new(self.node_id, port);
        config.sync_interval = seconds(py, "sync_interval", self.sync_interval)?;
        config.heartbeat_interval = seconds(py, "heartbeat_interval", self.heartbeat_interval)?;
        config.peer_timeout = match self.peer_timeout {
            Some(s) => seconds(py, "peer_timeout", s)?,
            None => Config::peer_timeout_for(config.heartbeat_interval),
        };
        if let Some(host) = self.host {
            config.host = host;
        }
        config.advertise_addr = advertise_addr(py, self.advertise_host, self.advertise_port)?;
        if let Some(cluster) = self.cluster {
            config.cluster = cluster;
        }
        if let Some(v) = self.max_retries {
            config.max_retries = count(py, "max_retries", v)?;
        }
        if let Some(v) = self.initial_rto {
            config.initial_rto = seconds(py, "initial_rto", v)?;
        }
        if let Some(v) = self.min_rto {
            config.min_rto = seconds(py, "min_rto", v)?;
        }
        if let Some(v) = self.max_rto {
            config.max_rto = seconds(py, "max_rto", v)?;
        }
        if let Some(v) = self.push_delay {
            config.push_delay = seconds(py, "push_delay", v)?;
        }
        if let Some(v) = self.push_fanout {
            config.push_fanout = count(py, "push_fanout", v)?;
        }
        if let Some(v) = self.max_datagram_size {
            config.max_datagram_size = count(py, "max_datagram_size", v)?;
        }
        if let Some(v) = self.max_probed_datagram_size {
            config.max_probed_datagram_size = count(py, "max_probed_datagram_size", v)?;
        }
        if let Some(v) = self.max_key_len {
            config.max_key_len = count(py, "max_key_len", v)?;
        }
        if let Some(v) = self.max_value_size {
            config.max_value_size = count(py, "max_value_size", v)?;
        }
        if let Some(v) = self.max_in_flight {
            config.max_in_flight = count(py, "max_in_flight", v)?;
        }
        match self.max_reassembly {
            Some(v) => config.max_reassembly = count(py, "max_reassembly", v)?,
            None => config.fit_reassembly(),
        }
        if let Some(v) = self.reassembly_timeout {
            config.reassembly_timeout = seconds(py, "reassembly_timeout", v)?;
        }
        if let Some(v) = self.max_clock_drift {
            config.max_clock_drift = seconds(py, "max_clock_drift", v)?;
        }
        if let Some(v) = self.tombstone_grace {
            config.tombstone_grace = seconds(py, "tombstone_grace", v)?;
        }
        if let Some(v) = self.max_collected_deletes {
            config.max_collected_deletes = count(py, "max_collected_deletes", v)?;
        }
        if let Some(v) = self.max_origins {
            config.max_origins = count(py, "max_origins", v)?;
        }
        if let Some(v) = self.max_probe_interval {
            config.max_probe_interval = seconds(py, "max_probe_interval", v)?;
        }
        if let Some(v) = self.max_peers {
            config.max_peers = count(py, "max_peers", v)?;
        }
        config.seed = self.seed;
        for key in self.keyring.into_iter().flatten() {
            config.keyring.push(key.into_key(py, "keyring")?);
        }
        config.data_dir = self.data_dir;
        if let Some(durability) = self.durability {
            config.durability = durability
                .parse()
                .map_err(|e: String| config_error(py, "durability", &e))?;
        }
        if let Some(v) = self.flush_interval {
            config.flush_interval = seconds(py, "flush_interval", v)?;
        }
        if let Some(on) = self.compression {
            config.compression = on;
        }
        Ok(config)
    }
}

/// The address to advertise: `advertise_host` (an IP address, or a host name resolved
/// now, IPv4 preferred) with `advertise_port` (default 0: the bound port).
fn advertise_addr(
    py: Python<'_>,
    host: Option<String>,
    port: Option<i64>,
) -> PyResult<Option<std::net::SocketAddr>> {
    let Some(host) = host else {
        return match port {
            Some(_) => Err(config_error(
                py,
                "advertise_port",
                "needs advertise_host (the address to advertise with it)",
            )),
            None => Ok(None),
        };
    };
    let port = match port {
        Some(p) => port_number(p)
            .ok_or_else(|| config_error(py, "advertise_port", "must be between 0 and 65535"))?,
        None => 0,
    };
    mesh_core::addr::check_host(&host).map_err(|e| config_error(py, "advertise_host", &e))?;
    let addr = py
        .detach(|| mesh_core::resolve(&host, port))
        .map_err(|e| config_error(py, "advertise_host", &e.to_string()))?;
    Ok(Some(addr))
}

/// A Python int as a port number, 0 to 65535.
pub fn port_number(value: i64) -> Option<u16> {
    u16::try_from(value).ok()
}

fn seconds(py: Python<'_>, field: &'static str, secs: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(secs).map_err(|_| {
        config_error(
            py,
            field,
            "must be a finite, non-negative number of seconds",
        )
    })
}

fn count<T: TryFrom<i64>>(py: Python<'_>, field: &'static str, value: i64) -> PyResult<T> {
    T::try_from(value).map_err(|_| config_error(py, field, "is out of range"))
}
