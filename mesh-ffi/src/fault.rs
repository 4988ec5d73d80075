//! Fault injection for tests and demos: loss, delay and partitions at the node's socket.

use std::ffi::{c_char, c_int};
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use mesh_core::FaultConfig;

use crate::error::{ffi_boundary, mesh_result, FfiError, FfiResult};
use crate::node::mesh_node_t;
use crate::ptr::{arg_port, arg_ref, arg_str, require_out, write_out};

/// What fault injection has done to a node's datagrams so far, filled in by
/// `mesh_node_fault_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(non_camel_case_types)]
pub struct mesh_fault_stats {
    /// Outgoing datagrams offered to the injector.
    pub packets_sent: u64,
    /// Datagrams dropped by the loss rate.
    pub packets_dropped: u64,
    /// Datagrams dropped by a partition, in either direction.
    pub packets_partitioned: u64,
    /// Datagrams sent with a delay.
    pub packets_delayed: u64,
    /// Extra copies sent.
    pub packets_duplicated: u64,
    /// Datagrams held back so that later ones overtake them.
    pub packets_reordered: u64,
    /// Datagrams with a flipped bit.
    pub packets_corrupted: u64,
}

/// Changes the node's fault rules in one step.
///
/// # Safety
/// `node` must be NULL or a live node.
unsafe fn update_faults(
    node: *const mesh_node_t,
    f: impl FnOnce(&mut FaultConfig) -> FfiResult<()>,
) -> FfiResult<()> {
    // SAFETY: forwarded from the caller.
    let n = unsafe { arg_ref(node, "node") }?;
    let _serialized = n.faults_lock.lock();
    let mut faults = n.node.faults();
    f(&mut faults)?;
    // Validated here so a bad rate reads as a bad argument, not as a bad node config.
    faults.validate()?;
    n.node.set_faults(faults)?;
    Ok(())
}

/// The address a peer's datagrams come from, as the partition rules compare it.
fn peer_addr(host: &str, port: u16) -> FfiResult<SocketAddr> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| {
            FfiError::new(
                mesh_result::Resolve,
                format!("cannot resolve {host}:{port}: {e}"),
            )
        })?
        .collect();
    let addr = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| {
            FfiError::new(
                mesh_result::Resolve,
                format!("no address for {host}:{port}"),
            )
        })?;
    // A node bound to all interfaces is reached, and heard from, on loopback.
    Ok(if addr.ip().is_unspecified() {
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    })
}

/// Drops each outgoing datagram with probability `loss_rate` (0 to 1; 0 turns loss off).
/// Reliable delivery and anti-entropy make the mesh converge anyway, only slower.
/// `MESH_RESULT_INVALID_ARGUMENT` for a rate outside [0, 1] or NaN.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_set_loss(
    node: *const mesh_node_t,
    loss_rate: f64,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        unsafe { update_faults(node, |f| {
            f.loss_rate = loss_rate;
            Ok(())
        }) }
    }
}

/// Delays every outgoing datagram by `delay_ms` plus a random extra of up to `jitter_ms`
/// milliseconds (jitter also reorders datagrams). Zeros turn delay off.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_set_delay(
    node: *const mesh_node_t,
    delay_ms: u64,
    jitter_ms: u64,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        unsafe { update_faults(node, |f| {
            f.delay = Duration::from_millis(delay_ms);
            f.jitter = Duration::from_millis(jitter_ms);
            Ok(())
        }) }
    }
}

/// Cuts this node off from the peer at `host`:`port` in both directions: nothing is sent
/// to it or accepted from it. The address must be the one the peer's datagrams come from
/// (for peers on this machine, `"127.0.0.1"` and the peer's port).
#[no_mangle]
pub unsafe extern "C" fn mesh_node_partition_add(
    node: *const mesh_node_t,
    host: *const c_char,
    port: c_int,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `host` is NULL or a NUL-terminated string.
        let host = unsafe { arg_str(host, "host") }?;
        let port = arg_port(port, "port", false)?;
        let addr = peer_addr(host, port)?;
        // SAFETY: `node` is NULL or a live node.
        unsafe { update_faults(node, |f| {
            f.partitioned.insert(addr);
            Ok(())
        }) }
    }
}

/// Heals every partition made with `mesh_node_partition_add`. Loss and delay are kept.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_partition_clear(node: *const mesh_node_t) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        unsafe { update_faults(node, |f| {
            f.partitioned.clear();
            Ok(())
        }) }
    }
}

/// Removes every fault rule: a perfect network again. Statistics are kept.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_faults_clear(node: *const mesh_node_t) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        unsafe { update_faults(node, |f| {
            *f = FaultConfig::default();
            Ok(())
        }) }
    }
}

/// Fills `*stats_out` with what fault injection has done so far.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_fault_stats(
    node: *const mesh_node_t,
    stats_out: *mut mesh_fault_stats,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        require_out(stats_out, "stats_out")?;
        let s = n.node.fault_stats();
        let stats = mesh_fault_stats {
            packets_sent: s.packets_sent,
            packets_dropped: s.packets_dropped,
            packets_partitioned: s.packets_partitioned,
            packets_delayed: s.packets_delayed,
            packets_duplicated: s.packets_duplicated,
            packets_reordered: s.packets_reordered,
            packets_corrupted: s.packets_corrupted,
        };
        // SAFETY: `stats_out` is non-NULL (checked above) and writable.
        unsafe { write_out(stats_out, "stats_out", stats) }
    }
}
