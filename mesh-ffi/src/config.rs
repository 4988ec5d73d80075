//! The node configuration: an opaque object holding the defaults, adjusted with setters.
//!
//! An opaque object rather than a struct by value keeps the ABI stable as settings are
//! added: a program built against an older header keeps working with a newer library.

use std::ffi::{c_char, c_int};
use std::time::Duration;

use mesh_core::Config;

use crate::error::{ffi_boundary, mesh_result, FfiError, FfiResult};
use crate::ptr::{arg_mut, arg_port, arg_str, free_handle, into_handle};

/// Settings for `mesh_node_new`. Created with the defaults by `mesh_config_default`,
/// adjusted with the `mesh_config_set_*` functions, released with `mesh_config_free`.
/// Setters check their own argument (NULL, UTF-8, range); the relations between fields
/// are checked by `mesh_node_new`, whose error message names the offending field.
/// A config is not thread-safe: use it from one thread at a time.
pub struct mesh_config_t {
    pub(crate) config: Config,
}

/// A new configuration holding the defaults: bind `0.0.0.0` on a free port (port 0),
/// cluster `"default"`, sync every 10 s, heartbeat every 5 s, peer timeout 15 s. The node
/// id has no default and must be set with `mesh_config_set_node_id`. Release it with
/// `mesh_config_free`. Returns NULL only if the library failed internally.
#[no_mangle]
pub extern "C" fn mesh_config_default() -> *mut mesh_config_t {
    ffi_boundary! {
        into_handle(mesh_config_t {
            config: Config::default(),
        })
    }
}

/// Releases a configuration. NULL is a no-op. Nodes created from it are not affected.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_free(config: *mut mesh_config_t) {
    ffi_boundary! {
        // SAFETY: `config` is NULL or an owned handle from mesh_config_default, freed once.
        unsafe { free_handle(config) }
    }
}

/// Runs `f` on the config behind `config`.
///
/// # Safety
/// `config` must be NULL or a live configuration not used by another thread meanwhile.
unsafe fn with_config(
    config: *mut mesh_config_t,
    f: impl FnOnce(&mut Config) -> FfiResult<()>,
) -> FfiResult<()> {
    // SAFETY: forwarded from the caller.
    let c = unsafe { arg_mut(config, "config") }?;
    f(&mut c.config)
}

fn millis(value: u64) -> Duration {
    Duration::from_millis(value)
}

/// Sets this node's name in the mesh (required): non-empty UTF-8, at most 255 bytes.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_node_id(
    config: *mut mesh_config_t,
    node_id: *const c_char,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node_id` is NULL or a NUL-terminated string.
        let node_id = unsafe { arg_str(node_id, "node_id") }?;
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.node_id = node_id.to_owned();
            Ok(())
        }) }
    }
}

/// Sets the address to bind: an IP address such as `"127.0.0.1"` or `"::1"`, or a host
/// name. Default `"0.0.0.0"` (all IPv4 interfaces). `"::"` binds every IPv6 interface
/// and, where the system allows dual-stack sockets, every IPv4 one too (IPv4 peers are
/// then known by their IPv4 address).
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_host(
    config: *mut mesh_config_t,
    host: *const c_char,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `host` is NULL or a NUL-terminated string.
        let host = unsafe { arg_str(host, "host") }?;
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.host = host.to_owned();
            Ok(())
        }) }
    }
}

/// Sets the address peers should give others to reach this node, when it differs from
/// the bound one (bound to `0.0.0.0` on a machine with several addresses, or behind a
/// NAT port mapping): `"HOST:PORT"` or `"[IPV6]:PORT"`, such as `"10.0.0.5:7000"` or
/// `"[2001:db8::5]:7000"`; port 0 means the bound port. A host name is resolved now
/// (IPv4 preferred). NULL removes it (the default: peers learn this node's address from
/// the source of its datagrams). A peer that hears from this node still answers the
/// source address; the advertised one is what it gossips to third parties.
/// Fails with `MESH_RESULT_INVALID_ARGUMENT` for a malformed address and
/// `MESH_RESULT_RESOLVE` for a host name that does not resolve; `mesh_node_new` refuses
/// an unspecified, multicast or broadcast address (field `advertise_addr`).
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_advertise_addr(
    config: *mut mesh_config_t,
    addr: *const c_char,
) -> mesh_result {
    ffi_boundary! {
        let advertised = if addr.is_null() {
            None
        } else {
            // SAFETY: `addr` is a NUL-terminated string.
            let text = unsafe { arg_str(addr, "addr") }?;
            let (host, port) = mesh_core::addr::split_host_port(text)
                .map_err(|e| FfiError::invalid(format!("invalid advertise address: {e}")))?;
            mesh_core::addr::check_host(&host)
                .map_err(|e| FfiError::invalid(format!("invalid advertise address: {e}")))?;
            Some(mesh_core::resolve(&host, port)?)
        };
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.advertise_addr = advertised;
            Ok(())
        }) }
    }
}

/// Sets the UDP port to bind, 0 to 65535; 0 (the default) picks a free port, read back
/// with `mesh_node_port`. Other values give `MESH_RESULT_INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_port(
    config: *mut mesh_config_t,
    port: c_int,
) -> mesh_result {
    ffi_boundary! {
        let port = arg_port(port, "port", true)?;
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.port = port;
            Ok(())
        }) }
    }
}

/// Sets the name of the mesh: nodes only talk to nodes of the same cluster. Default
/// `"default"`.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_cluster(
    config: *mut mesh_config_t,
    cluster: *const c_char,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `cluster` is NULL or a NUL-terminated string.
        let cluster = unsafe { arg_str(cluster, "cluster") }?;
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.cluster = cluster.to_owned();
            Ok(())
        }) }
    }
}

/// Sets the period of anti-entropy rounds, in milliseconds. Default 10000.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_sync_interval_ms(
    config: *mut mesh_config_t,
    interval_ms: u64,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.sync_interval = millis(interval_ms);
            Ok(())
        }) }
    }
}

/// Sets the period of heartbeats to each peer, in milliseconds. Default 5000.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_heartbeat_interval_ms(
    config: *mut mesh_config_t,
    interval_ms: u64,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.heartbeat_interval = millis(interval_ms);
            Ok(())
        }) }
    }
}

/// Sets the silence, in milliseconds, after which a peer is suspected; after twice this
/// it is declared failed. At least the heartbeat interval. Default 15000.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_peer_timeout_ms(
    config: *mut mesh_config_t,
    timeout_ms: u64,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.peer_timeout = millis(timeout_ms);
            Ok(())
        }) }
    }
}

/// Sets the retransmission timeout used before any round trip is measured, in
/// milliseconds. Default 500.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_initial_rto_ms(
    config: *mut mesh_config_t,
    rto_ms: u64,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.initial_rto = millis(rto_ms);
            Ok(())
        }) }
    }
}

/// Sets how many times a datagram is retransmitted before it is given up (anti-entropy
/// then repairs what it carried). At most 30. Default 5.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_max_retries(
    config: *mut mesh_config_t,
    retries: u32,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.max_retries = retries;
            Ok(())
        }) }
    }
}

/// `mesh_config_set_durability`: writes are committed to disk in the background within
/// the flush interval (the default).
pub const MESH_DURABILITY_BATCHED: c_int = 0;
/// `mesh_config_set_durability`: `mesh_node_set*` and `mesh_node_delete` return once the
/// write is on disk; concurrent writers share one commit.
pub const MESH_DURABILITY_SYNC: c_int = 1;

/// Keeps the node's state on disk in directory `path` (created if missing; one node per
/// directory), reloaded by the next node started on it, which then catches up with its
/// peers by delta. An empty string (the default) keeps the state in memory only, and no
/// file is touched. Errors opening the store (in use, damaged, not permitted) are
/// reported by `mesh_node_new` as `MESH_RESULT_STORAGE`, naming the path.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_data_dir(
    config: *mut mesh_config_t,
    path: *const c_char,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `path` is NULL or a NUL-terminated string.
        let path = unsafe { arg_str(path, "path") }?;
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.data_dir = (!path.is_empty()).then(|| path.into());
            Ok(())
        }) }
    }
}

/// Sets when a write is durable, with a data directory: `MESH_DURABILITY_BATCHED` (the
/// default) or `MESH_DURABILITY_SYNC`. Any other value is `MESH_RESULT_INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_durability(
    config: *mut mesh_config_t,
    durability: c_int,
) -> mesh_result {
    ffi_boundary! {
        let durability = match durability {
            MESH_DURABILITY_BATCHED => mesh_core::Durability::Batched,
            MESH_DURABILITY_SYNC => mesh_core::Durability::Sync,
            other => {
                return Err(FfiError::invalid(format!(
                    "`durability` must be MESH_DURABILITY_BATCHED or MESH_DURABILITY_SYNC, not {other}"
                )))
            }
        };
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.durability = durability;
            Ok(())
        }) }
    }
}

/// With `MESH_DURABILITY_BATCHED`, the longest a change waits before it is committed to
/// disk, in milliseconds. Greater than 0. Default 10.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_flush_interval_ms(
    config: *mut mesh_config_t,
    interval_ms: u64,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.flush_interval = millis(interval_ms);
            Ok(())
        }) }
    }
}

/// Sets the shortest time between two pushes of local writes, in milliseconds. A write
/// after a quiet spell is pushed at once; faster writes share one push per interval.
/// Default 1.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_push_delay_ms(
    config: *mut mesh_config_t,
    delay_ms: u64,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.push_delay = millis(delay_ms);
            Ok(())
        }) }
    }
}

/// Sets the most reachable peers a writer pushes each write to itself; in a larger mesh
/// writes travel the broadcast tree, a few hops from node to node. Any value: 0 sends
/// every write through the tree. Default 32.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_push_fanout(
    config: *mut mesh_config_t,
    fanout: usize,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.push_fanout = fanout;
            Ok(())
        }) }
    }
}

/// Sets the largest key accepted, in bytes. 1 to 65536. Default 1024.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_max_key_len(
    config: *mut mesh_config_t,
    max_key_len: usize,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.max_key_len = max_key_len;
            // The C API does not expose the reassembly budget: it follows the limits.
            c.fit_reassembly();
            Ok(())
        }) }
    }
}

/// Sets the largest value accepted, in encoded bytes. Default 16 MiB. The memory kept
/// for partially received messages grows with it when needed, so that the largest entry
/// always fits in one message.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_max_value_size(
    config: *mut mesh_config_t,
    max_value_size: usize,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            if max_value_size == 0 {
                return Err(FfiError::invalid("`max_value_size` must be greater than zero"));
            }
            c.max_value_size = max_value_size;
            c.fit_reassembly();
            Ok(())
        }) }
    }
}

/// Sets the largest UDP payload sent, in bytes: 256 to 65507. Default 1200, safe on any
/// path.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_max_datagram_size(
    config: *mut mesh_config_t,
    size: usize,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.max_datagram_size = size;
            Ok(())
        }) }
    }
}

/// Sets the largest UDP payload a link grows to once a probe shows its path carries it,
/// in bytes: at most 65507. Default 16384; links climb through 1452 (an Ethernet path)
/// and 8952 (a jumbo-frame one) as far as their path carries. At or below the
/// `max_datagram_size`, links never probe. Datagrams carry the don't-fragment bit, so
/// nothing is IP-fragmented (Linux; elsewhere links stay at `max_datagram_size`).
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_max_probed_datagram_size(
    config: *mut mesh_config_t,
    size: usize,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.max_probed_datagram_size = size;
            Ok(())
        }) }
    }
}

/// Turns compression of bulk payloads on or off. On (the default), the node tells its
/// peers it reads compressed payloads and compresses to those that said so too, when it
/// wins; off, it sends and accepts only uncompressed payloads.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_compression(
    config: *mut mesh_config_t,
    on: bool,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.compression = on;
            Ok(())
        }) }
    }
}

/// Sets the most members (peers) the node remembers: datagrams from further addresses
/// are ignored. At least 1. Default 16384.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_max_peers(
    config: *mut mesh_config_t,
    max_peers: usize,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            if max_peers == 0 {
                return Err(FfiError::invalid("`max_peers` must be greater than zero"));
            }
            c.max_peers = max_peers;
            Ok(())
        }) }
    }
}

/// Sets how long a delete's tombstone is kept at most, in milliseconds: past it, the
/// tombstone is dropped even if a peer has not confirmed the delete, and the delete is no
/// longer remembered. Keep it longer than any partition you expect. Greater than 0
/// (checked by `mesh_node_new`). Default 86400000 (24 h).
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_tombstone_grace_ms(
    config: *mut mesh_config_t,
    grace_ms: u64,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.tombstone_grace = millis(grace_ms);
            Ok(())
        }) }
    }
}

/// Sets the most dropped tombstones remembered until the tombstone grace, so that an
/// older value offered by a node that missed the delete still loses to it. Past it the
/// oldest are forgotten first. Each costs about 200 bytes and its key. 0 remembers none.
/// Default 100000.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_max_collected_deletes(
    config: *mut mesh_config_t,
    max_collected_deletes: usize,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.max_collected_deletes = max_collected_deletes;
            Ok(())
        }) }
    }
}

/// Seeds the node's random choices (peer selection, jitter, fault injection), for
/// reproducible tests. By default a fresh seed is drawn.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_set_seed(
    config: *mut mesh_config_t,
    seed: u64,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `config` is NULL or a live configuration.
        unsafe { with_config(config, |c| {
            c.seed = Some(seed);
            Ok(())
        }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults stated in this module's documentation (and so in the header).
    #[test]
    fn documented_defaults_match_the_core() {
        let c = Config::default();
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(c.port, 0);
        assert_eq!(c.cluster, "default");
        assert_eq!(c.sync_interval, Duration::from_millis(10_000));
        assert_eq!(c.heartbeat_interval, Duration::from_millis(5_000));
        assert_eq!(c.peer_timeout, Duration::from_millis(15_000));
        assert_eq!(c.initial_rto, Duration::from_millis(500));
        assert_eq!(c.max_retries, 5);
        assert_eq!(c.push_delay, Duration::from_millis(1));
        assert_eq!(c.push_fanout, 32);
        assert_eq!(c.max_key_len, 1024);
        assert_eq!(c.max_value_size, 16 * 1024 * 1024);
        assert_eq!(c.max_datagram_size, 1200);
        assert_eq!(c.max_probed_datagram_size, 16_384);
        assert_eq!(c.seed, None);
        assert!(c.compression);
    }

    #[test]
    fn setters_reach_the_core_config() {
        let config = mesh_config_default();
        // SAFETY: `config` is live until mesh_config_free below; the strings are literals.
        unsafe {
            assert_eq!(
                mesh_config_set_node_id(config, c"n1".as_ptr()),
                mesh_result::Ok
            );
            assert_eq!(mesh_config_set_port(config, 65_535), mesh_result::Ok);
            assert_eq!(
                mesh_config_set_port(config, 65_536),
                mesh_result::InvalidArgument
            );
            assert_eq!(
                mesh_config_set_port(config, -1),
                mesh_result::InvalidArgument
            );
            assert_eq!(
                mesh_config_set_sync_interval_ms(config, 250),
                mesh_result::Ok
            );
            assert_eq!(
                mesh_config_set_max_value_size(config, 100 << 20),
                mesh_result::Ok
            );
            assert_eq!(mesh_config_set_compression(config, false), mesh_result::Ok);
            assert_eq!(mesh_config_set_push_fanout(config, 0), mesh_result::Ok);
            assert_eq!(
                mesh_config_set_push_fanout(std::ptr::null_mut(), 8),
                mesh_result::NullParameter
            );
            let c = &(*config).config;
            assert!(!c.compression);
            assert_eq!(c.push_fanout, 0);
            assert_eq!(c.node_id, "n1");
            assert_eq!(c.port, 65_535);
            assert_eq!(c.sync_interval, Duration::from_millis(250));
            c.validate().unwrap();
            mesh_config_free(config);
        }
    }
}
