//! The node handle: lifecycle, reads, writes, keys and status.

use std::collections::BTreeSet;
use std::ffi::{c_char, c_int};
use std::sync::Arc;
use std::time::Duration;

use mesh_core::{Node, Value};
use parking_lot::Mutex;

use crate::callback::Callbacks;
use crate::config::mesh_config_t;
use crate::error::{ffi_boundary, mesh_result, FfiError, FfiResult};
use crate::ptr::{
    arg_bytes, arg_port, arg_ref, arg_str, free_handle, into_handle, owned_c_string, require_out,
    write_opt, write_out,
};
use crate::value::{mesh_keys_t, mesh_value_t, mesh_value_type, nul_terminated, type_mismatch};

/// A mesh-sync node: one replica of the shared key-value state, kept in sync with its
/// peers over UDP by a network thread, with events delivered on a separate callback
/// thread. Created by `mesh_node_new`, released by `mesh_node_free`.
///
/// Every function taking a node may be called from any thread, concurrently, except
/// `mesh_node_free`, which must be the last call on the node.
pub struct mesh_node_t {
    pub(crate) node: Node,
    node_id: Box<[u8]>,
    pub(crate) callbacks: Arc<Callbacks>,
    /// Serializes read-modify-write updates of the fault injection rules.
    pub(crate) faults_lock: Mutex<()>,
}

/// Addresses of the nodes created and not yet freed, so that freeing a node twice is
/// detected and ignored instead of corrupting memory.
static LIVE_NODES: Mutex<BTreeSet<usize>> = parking_lot::const_mutex(BTreeSet::new());

/// The library version, such as `"0.1.0"`: static, NUL-terminated, never freed.
#[no_mangle]
pub extern "C" fn mesh_version() -> *const c_char {
    ffi_boundary! {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast::<c_char>()
    }
}

/// Creates a node from `config` (copied: the config may be freed or reused at once),
/// binds its UDP socket and stores it in `*node_out`. The node stays off the network
/// until `mesh_node_start`; reads and writes work before that.
///
/// Fails with `MESH_RESULT_INVALID_CONFIG` (the message names the field),
/// `MESH_RESULT_BIND` (port in use, address not local) or `MESH_RESULT_RESOLVE`; then
/// `*node_out` is left untouched.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_new(
    config: *const mesh_config_t,
    node_out: *mut *mut mesh_node_t,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `config` is NULL or a live configuration.
        let config = unsafe { arg_ref(config, "config") }?;
        require_out(node_out, "node_out")?;
        let node = Node::new(config.config.clone())?;
        let node_id = nul_terminated(node.node_id().as_bytes());
        let handle = into_handle(mesh_node_t {
            node,
            node_id,
            callbacks: Arc::new(Callbacks::default()),
            faults_lock: Mutex::new(()),
        });
        LIVE_NODES.lock().insert(handle as usize);
        // SAFETY: `node_out` is non-NULL (checked above) and writable.
        unsafe { write_out(node_out, "node_out", handle) }
    }
}

/// Stops the node if needed and releases it. NULL is a no-op, and so is a node that was
/// already freed (as long as no new node has been created at the same address since).
///
/// Waits for a callback running on another thread to return; once this returns, no
/// callback of this node runs or will run, so `user_data` may be released. Must not be
/// called from inside one of this node's callbacks.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_free(node: *mut mesh_node_t) {
    ffi_boundary! {
        if node.is_null() || !LIVE_NODES.lock().remove(&(node as usize)) {
            return;
        }
        // SAFETY: `node` was live (registered) and the caller gives up all other use.
        let handle = unsafe { &*node };
        handle.callbacks.close();
        // SAFETY: registered handles come from `into_handle`; it was unregistered above,
        // so it is dropped exactly once. Dropping the core node stops and joins it.
        unsafe { free_handle(node) }
    }
}

/// This node's id, NUL-terminated, valid until the node is freed. NULL for a NULL node.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_id(node: *const mesh_node_t) -> *const c_char {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        match unsafe { node.as_ref() } {
            Some(n) => n.node_id.as_ptr().cast::<c_char>(),
            None => std::ptr::null(),
        }
    }
}

/// The UDP port the node is bound to: the real one when port 0 was configured.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_port(
    node: *const mesh_node_t,
    port_out: *mut u16,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        // SAFETY: `port_out` is NULL or writable.
        unsafe { write_out(port_out, "port_out", n.node.port()) }
    }
}

/// Whether the node's network thread is running (started and not stopped). False for a
/// NULL node.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_is_running(node: *const mesh_node_t) -> bool {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        unsafe { node.as_ref() }.is_some_and(|n| n.node.is_running())
    }
}

/// Adds a peer to contact: at start, or at once if the node is running. `host` is an IP
/// address (`"10.0.0.5"`, `"::1"`) or a host name (`"localhost"`, `"seed.example"`),
/// `port` 1 to 65535. A host name is resolved in the background, never on the calling
/// thread, and resolved again while its peer cannot be reached; a name that does not
/// resolve yet is retried (and logged), not refused. Fails with
/// `MESH_RESULT_INVALID_ARGUMENT` for a port out of range and `MESH_RESULT_RESOLVE` for
/// a malformed host name or an IP address of a family the node's socket cannot reach
/// (IPv6 from a node bound to `0.0.0.0`).
#[no_mangle]
pub unsafe extern "C" fn mesh_node_add_bootstrap_peer(
    node: *const mesh_node_t,
    host: *const c_char,
    port: c_int,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        // SAFETY: `host` is NULL or a NUL-terminated string.
        let host = unsafe { arg_str(host, "host") }?;
        let port = arg_port(port, "port", false)?;
        n.node.add_bootstrap_peer(host, port)?;
        Ok(())
    }
}

/// Starts the network and callback threads. Starting a running node does nothing;
/// starting a stopped node fails with `MESH_RESULT_STOPPED`.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_start(node: *const mesh_node_t) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        n.node.start()?;
        Ok(())
    }
}

/// Stops the node: local writes not yet acknowledged by reachable peers get up to 500 ms
/// to reach them, then the network thread ends, events already queued are delivered, and
/// the socket is closed so its port can be bound again. Idempotent. The data stays readable
/// and writable locally; a stopped node cannot be started again.
///
/// Called from another thread, it returns once the callback thread has finished. Called
/// from inside a callback, it returns at once, and events still queued are delivered
/// after that callback returns.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_stop(node: *const mesh_node_t) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        n.node.stop();
        Ok(())
    }
}

/// Stores a value under a key, after both were decoded from C.
///
/// # Safety
/// `node` must be NULL or a live node, `key` NULL or a NUL-terminated string.
unsafe fn set_value(
    node: *const mesh_node_t,
    key: *const c_char,
    value: FfiResult<Value>,
) -> FfiResult<()> {
    // SAFETY: forwarded from the caller.
    let n = unsafe { arg_ref(node, "node") }?;
    // SAFETY: forwarded from the caller.
    let key = unsafe { arg_str(key, "key") }?;
    n.node.set(key, value?)?;
    Ok(())
}

/// Sets `key` to a UTF-8 string (NUL-terminated; copied). The write is visible locally at
/// once and pushed to peers within a round trip.
///
/// Like every `mesh_node_set_*` function and `mesh_node_delete`, this returns once the
/// state callback and the watches of this node have run for the write, so what they saw
/// can be inspected right after the call. Called from inside a callback (of any node),
/// it returns at once and the write's callbacks follow the current one.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_set_string(
    node: *const mesh_node_t,
    key: *const c_char,
    value: *const c_char,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `value` is NULL or a NUL-terminated string.
        let value = unsafe { arg_str(value, "value") }.map(|v| Value::String(v.to_owned()));
        // SAFETY: `node` and `key` are NULL or valid as documented.
        unsafe { set_value(node, key, value) }
    }
}

/// Sets `key` to `len` raw bytes at `data` (copied); `data` may be NULL when `len` is 0.
/// Python reads the value as `bytes`.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_set_bytes(
    node: *const mesh_node_t,
    key: *const c_char,
    data: *const u8,
    len: usize,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `data` is NULL with len 0, or points to `len` readable bytes.
        let value = unsafe { arg_bytes(data, len, "data") }.map(|d| Value::Bytes(d.to_vec()));
        // SAFETY: `node` and `key` are NULL or valid as documented.
        unsafe { set_value(node, key, value) }
    }
}

/// Sets `key` to a signed 64-bit integer.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_set_i64(
    node: *const mesh_node_t,
    key: *const c_char,
    value: i64,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: the pointers are NULL or valid as documented.
        unsafe { set_value(node, key, Ok(Value::Int(value))) }
    }
}

/// Sets `key` to a 64-bit float. NaN and infinities are stored as given but read back as
/// `null` in JSON.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_set_f64(
    node: *const mesh_node_t,
    key: *const c_char,
    value: f64,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: the pointers are NULL or valid as documented.
        unsafe { set_value(node, key, Ok(Value::Float(value))) }
    }
}

/// Sets `key` to a bool.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_set_bool(
    node: *const mesh_node_t,
    key: *const c_char,
    value: bool,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: the pointers are NULL or valid as documented.
        unsafe { set_value(node, key, Ok(Value::Bool(value))) }
    }
}

/// Sets `key` to null (Python `None`). Unlike `mesh_node_delete`, the key stays present.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_set_null(
    node: *const mesh_node_t,
    key: *const c_char,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: the pointers are NULL or valid as documented.
        unsafe { set_value(node, key, Ok(Value::Null)) }
    }
}

/// Sets `key` to the value described by a JSON text (NUL-terminated UTF-8), which is how
/// lists and maps are written from C. Integers that fit in 64 signed bits become ints,
/// other numbers floats; `{"$bytes": "<base64>"}` becomes bytes. Python reads objects as
/// `dict` and arrays as `list`. Fails with `MESH_RESULT_INVALID_JSON`, also when arrays
/// and objects nest deeper than `MESH_MAX_VALUE_DEPTH`.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_set_json(
    node: *const mesh_node_t,
    key: *const c_char,
    json: *const c_char,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `json` is NULL or a NUL-terminated string.
        let value = unsafe { arg_str(json, "json") }.and_then(|text| {
            Value::from_json(text)
                .map_err(|e| FfiError::new(mesh_result::InvalidJson, e.to_string()))
        });
        // SAFETY: `node` and `key` are NULL or valid as documented.
        unsafe { set_value(node, key, value) }
    }
}

/// Sets `key`, for `ttl_ms` milliseconds, to the value described by a JSON text (as
/// `mesh_node_set_json` reads it). The expiry travels with the write: every node removes
/// the key when its own hybrid logical clock reaches the write's timestamp plus `ttl_ms`,
/// reads it as missing from then on, and reports it to the state callback as a delete
/// (`MESH_CHANGE_ORIGIN_DELETE`, value NULL). A later write without a TTL makes the key
/// permanent again.
///
/// `ttl_ms` must be at least 1 and at most 365 days (31 536 000 000 ms); otherwise this
/// fails with `MESH_RESULT_INVALID_ARGUMENT` and changes nothing. Fails with
/// `MESH_RESULT_INVALID_JSON` as `mesh_node_set_json` does.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_set_ttl(
    node: *const mesh_node_t,
    key: *const c_char,
    json: *const c_char,
    ttl_ms: u64,
) -> mesh_result {
    ffi_boundary! {
        let ttl = Duration::from_millis(ttl_ms);
        if ttl_ms == 0 || ttl > mesh_core::MAX_TTL {
            return Err(FfiError::invalid(format!(
                "ttl_ms must be between 1 and {} (365 days), got {ttl_ms}",
                mesh_core::MAX_TTL.as_millis()
            )));
        }
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        // SAFETY: `key` is NULL or a NUL-terminated string.
        let key = unsafe { arg_str(key, "key") }?;
        // SAFETY: `json` is NULL or a NUL-terminated string.
        let text = unsafe { arg_str(json, "json") }?;
        let value = Value::from_json(text)
            .map_err(|e| FfiError::new(mesh_result::InvalidJson, e.to_string()))?;
        n.node.set_with_ttl(key, value, ttl)?;
        Ok(())
    }
}

/// Looks a key up.
///
/// # Safety
/// `node` must be NULL or a live node, `key` NULL or a NUL-terminated string.
unsafe fn lookup(node: *const mesh_node_t, key: *const c_char) -> FfiResult<Value> {
    // SAFETY: forwarded from the caller.
    let n = unsafe { arg_ref(node, "node") }?;
    // SAFETY: forwarded from the caller.
    let key = unsafe { arg_str(key, "key") }?;
    n.node
        .get(key)
        .ok_or_else(|| FfiError::new(mesh_result::NotFound, format!("key {key:?} not found")))
}

/// Copies the value of `key` into a new `mesh_value_t` stored in `*value_out`, to be
/// released with `mesh_value_free`. `MESH_RESULT_NOT_FOUND` if the key is missing or
/// deleted; `*value_out` is then left untouched.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_get(
    node: *const mesh_node_t,
    key: *const c_char,
    value_out: *mut *mut mesh_value_t,
) -> mesh_result {
    ffi_boundary! {
        require_out(value_out, "value_out")?;
        // SAFETY: the pointers are NULL or valid as documented.
        let value = unsafe { lookup(node, key) }?;
        // SAFETY: `value_out` is non-NULL (checked above) and writable.
        unsafe { write_out(value_out, "value_out", into_handle(mesh_value_t::new(value))) }
    }
}

/// Reads a bool. `MESH_RESULT_NOT_FOUND` if missing, `MESH_RESULT_TYPE_MISMATCH` if the
/// key holds another type.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_get_bool(
    node: *const mesh_node_t,
    key: *const c_char,
    out: *mut bool,
) -> mesh_result {
    ffi_boundary! {
        require_out(out, "out")?;
        // SAFETY: the pointers are NULL or valid as documented.
        match unsafe { lookup(node, key) }? {
            // SAFETY: `out` is non-NULL (checked above) and writable.
            Value::Bool(b) => unsafe { write_out(out, "out", b) },
            other => Err(type_mismatch(&other, "a bool")),
        }
    }
}

/// Reads a signed 64-bit integer. `MESH_RESULT_NOT_FOUND` if missing,
/// `MESH_RESULT_TYPE_MISMATCH` if the key holds another type (floats are not converted).
#[no_mangle]
pub unsafe extern "C" fn mesh_node_get_i64(
    node: *const mesh_node_t,
    key: *const c_char,
    out: *mut i64,
) -> mesh_result {
    ffi_boundary! {
        require_out(out, "out")?;
        // SAFETY: the pointers are NULL or valid as documented.
        match unsafe { lookup(node, key) }? {
            // SAFETY: `out` is non-NULL (checked above) and writable.
            Value::Int(i) => unsafe { write_out(out, "out", i) },
            other => Err(type_mismatch(&other, "an int")),
        }
    }
}

/// Reads a 64-bit float. `MESH_RESULT_NOT_FOUND` if missing, `MESH_RESULT_TYPE_MISMATCH`
/// if the key holds another type (ints are not converted).
#[no_mangle]
pub unsafe extern "C" fn mesh_node_get_f64(
    node: *const mesh_node_t,
    key: *const c_char,
    out: *mut f64,
) -> mesh_result {
    ffi_boundary! {
        require_out(out, "out")?;
        // SAFETY: the pointers are NULL or valid as documented.
        match unsafe { lookup(node, key) }? {
            // SAFETY: `out` is non-NULL (checked above) and writable.
            Value::Float(f) => unsafe { write_out(out, "out", f) },
            other => Err(type_mismatch(&other, "a float")),
        }
    }
}

/// Copies a string value into a new NUL-terminated buffer stored in `*string_out`, to be
/// released with `mesh_string_free`. `len_out`, if not NULL, receives its length in bytes
/// (which tells strings holding NUL bytes apart). `MESH_RESULT_NOT_FOUND` if missing,
/// `MESH_RESULT_TYPE_MISMATCH` if the key holds another type.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_get_string(
    node: *const mesh_node_t,
    key: *const c_char,
    string_out: *mut *mut c_char,
    len_out: *mut usize,
) -> mesh_result {
    ffi_boundary! {
        require_out(string_out, "string_out")?;
        // SAFETY: the pointers are NULL or valid as documented.
        let value = unsafe { lookup(node, key) }?;
        let Value::String(text) = &value else {
            return Err(type_mismatch(&value, "a string"));
        };
        // SAFETY: `len_out` is NULL or writable.
        unsafe { write_opt(len_out, text.len()) };
        // SAFETY: `string_out` is non-NULL (checked above) and writable.
        unsafe { write_out(string_out, "string_out", owned_c_string(text.as_bytes())) }
    }
}

/// Renders the value of `key` as JSON text in a new NUL-terminated buffer stored in
/// `*json_out`, to be released with `mesh_string_free`; `type_out`, if not NULL, receives
/// the value's type (telling, for example, bytes from a map that looks like
/// `{"$bytes": ...}`). Any type can be read this way. `MESH_RESULT_NOT_FOUND` if missing.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_get_json(
    node: *const mesh_node_t,
    key: *const c_char,
    type_out: *mut mesh_value_type,
    json_out: *mut *mut c_char,
) -> mesh_result {
    ffi_boundary! {
        require_out(json_out, "json_out")?;
        // SAFETY: the pointers are NULL or valid as documented.
        let value = unsafe { lookup(node, key) }?;
        // SAFETY: `type_out` is NULL or writable.
        unsafe { write_opt(type_out, mesh_value_type::of(&value)) };
        let json = value.to_json();
        // SAFETY: `json_out` is non-NULL (checked above) and writable.
        unsafe { write_out(json_out, "json_out", owned_c_string(json.as_bytes())) }
    }
}

/// Deletes `key`. `existed_out`, if not NULL, receives whether it held a live value.
/// Deleting a missing key is not an error (the delete is still recorded, so an older
/// write elsewhere loses to it). Returns once the state callback and the watches have
/// run for the delete, as `mesh_node_set_string` does.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_delete(
    node: *const mesh_node_t,
    key: *const c_char,
    existed_out: *mut bool,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        // SAFETY: `key` is NULL or a NUL-terminated string.
        let key = unsafe { arg_str(key, "key") }?;
        let existed = n.node.delete(key)?;
        // SAFETY: `existed_out` is NULL or writable.
        unsafe { write_opt(existed_out, existed) };
        Ok(())
    }
}

/// Sends `len` bytes at `data` (copied; `data` may be NULL when `len` is 0) to the alive
/// peer whose node id is `peer_id` (NUL-terminated). Delivered reliably and in the order
/// sent to that peer's message callback (`mesh_node_set_message_callback`); never stored
/// in the replicated state. Returns once the message is queued.
///
/// Fails with `MESH_RESULT_PEER_NOT_FOUND` when no alive peer has that id,
/// `MESH_RESULT_MESSAGE_TOO_LARGE` past `max_value_size`, `MESH_RESULT_QUEUE_FULL` when
/// too much already waits to be sent to that peer (retry later), `MESH_RESULT_STOPPED`
/// after `mesh_node_stop`.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_send(
    node: *const mesh_node_t,
    peer_id: *const c_char,
    data: *const u8,
    len: usize,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        // SAFETY: `peer_id` is NULL or a NUL-terminated string.
        let peer_id = unsafe { arg_str(peer_id, "peer_id") }?;
        // SAFETY: `data` is NULL with len 0, or points to `len` readable bytes.
        let data = unsafe { arg_bytes(data, len, "data") }?;
        n.node.send(peer_id, data)?;
        Ok(())
    }
}

/// Sends `len` bytes at `data` to every alive peer, as `mesh_node_send` does. When
/// `sent_out` is not NULL, the number of peers the message was queued for is stored there
/// (peers whose send queue is full are skipped).
#[no_mangle]
pub unsafe extern "C" fn mesh_node_broadcast(
    node: *const mesh_node_t,
    data: *const u8,
    len: usize,
    sent_out: *mut usize,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        // SAFETY: `data` is NULL with len 0, or points to `len` readable bytes.
        let data = unsafe { arg_bytes(data, len, "data") }?;
        let sent = n.node.broadcast(data)?;
        // SAFETY: `sent_out` is NULL or writable.
        unsafe { write_opt(sent_out, sent) };
        Ok(())
    }
}

/// Number of live keys.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_len(
    node: *const mesh_node_t,
    len_out: *mut usize,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        // SAFETY: `len_out` is NULL or writable.
        unsafe { write_out(len_out, "len_out", n.node.len()) }
    }
}

/// Takes a snapshot of the live keys, sorted, stored in `*keys_out`; read it with
/// `mesh_keys_len` and `mesh_keys_get`, release it with `mesh_keys_free`.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_keys(
    node: *const mesh_node_t,
    keys_out: *mut *mut mesh_keys_t,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        require_out(keys_out, "keys_out")?;
        let keys = into_handle(mesh_keys_t::new(n.node.keys()));
        // SAFETY: `keys_out` is non-NULL (checked above) and writable.
        unsafe { write_out(keys_out, "keys_out", keys) }
    }
}

/// Renders every live key and its value as one JSON object, in a new NUL-terminated
/// buffer stored in `*json_out`, to be released with `mesh_string_free`.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_get_all_json(
    node: *const mesh_node_t,
    json_out: *mut *mut c_char,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        require_out(json_out, "json_out")?;
        let all: serde_json::Map<String, serde_json::Value> = n
            .node
            .get_all()
            .into_iter()
            .map(|(k, v)| (k, v.to_json_value()))
            .collect();
        let json = serde_json::Value::Object(all).to_string();
        // SAFETY: `json_out` is non-NULL (checked above) and writable.
        unsafe { write_out(json_out, "json_out", owned_c_string(json.as_bytes())) }
    }
}

/// A node's status and main counters, filled in by `mesh_node_status`. The JSON form
/// (`mesh_node_status_json`) carries the node id and every counter.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(non_camel_case_types)]
pub struct mesh_status {
    /// The bound UDP port.
    pub port: u16,
    /// Whether the network thread is running.
    pub running: bool,
    /// Number of changes applied to this replica, local and remote.
    pub state_version: u64,
    /// Live keys.
    pub data_keys: u64,
    /// Deleted keys still remembered as tombstones.
    pub tombstones: u64,
    /// Every known peer, bootstrap addresses included.
    pub total_peers: u64,
    /// Peers heard from recently.
    pub alive_peers: u64,
    /// Peers silent past the peer timeout, not yet failed.
    pub suspect_peers: u64,
    /// Failed peers (still probed, so they can recover).
    pub dead_peers: u64,
    /// Peers given with `mesh_node_add_bootstrap_peer`.
    pub bootstrap_peers: u64,
    /// Datagrams sent and not yet acknowledged, all peers together.
    pub pending_acks: u64,
    /// This node's hybrid logical clock (physical ms << 16 | logical counter).
    pub hlc: u64,
    /// Datagrams handed to the socket.
    pub datagrams_sent: u64,
    /// Bytes handed to the socket.
    pub bytes_sent: u64,
    /// Datagrams read from the socket.
    pub datagrams_received: u64,
    /// Bytes read from the socket.
    pub bytes_received: u64,
    /// Datagrams sent again after a timeout or an acknowledgement gap.
    pub retransmits: u64,
    /// Datagrams abandoned after the retry limit.
    pub given_up: u64,
    /// Entries received from peers.
    pub entries_received: u64,
    /// Received entries that changed this replica.
    pub entries_applied: u64,
    /// Anti-entropy rounds started by this node.
    pub sync_rounds: u64,
    /// Received datagrams dropped (corrupt, duplicate, foreign, ...), all reasons.
    pub datagrams_dropped: u64,
    /// Of those, datagrams not sealed by a keyholder: plaintext to a node with keys,
    /// sealed to a node without, or opening under no installed key.
    pub datagrams_unauthenticated: u64,
}

fn count(n: usize) -> u64 {
    n as u64
}

/// Fills `*status_out` with the node's status.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_status(
    node: *const mesh_node_t,
    status_out: *mut mesh_status,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        require_out(status_out, "status_out")?;
        let s = n.node.status();
        let c = &s.counters;
        let status = mesh_status {
            port: s.port,
            running: s.running,
            state_version: s.state_version,
            data_keys: count(s.data_keys),
            tombstones: count(s.tombstones),
            total_peers: count(s.peers.total_peers),
            alive_peers: count(s.peers.alive_peers),
            suspect_peers: count(s.peers.suspect_peers),
            dead_peers: count(s.peers.dead_peers),
            bootstrap_peers: count(s.peers.bootstrap_peers),
            pending_acks: count(s.pending_acks),
            hlc: s.hlc,
            datagrams_sent: c.datagrams_sent,
            bytes_sent: c.bytes_sent,
            datagrams_received: c.datagrams_received,
            bytes_received: c.bytes_received,
            retransmits: c.retransmits,
            given_up: c.given_up,
            entries_received: c.entries_received,
            entries_applied: c.entries_applied,
            sync_rounds: c.sync_rounds,
            datagrams_dropped: c.dropped.datagrams(),
            datagrams_unauthenticated: c.dropped.unauthenticated,
        };
        // SAFETY: `status_out` is non-NULL (checked above) and writable.
        unsafe { write_out(status_out, "status_out", status) }
    }
}

/// Renders the node's status as a JSON object (`node_id`, `port`, `running`,
/// `state_version`, `data_keys`, `tombstones`, `collected_deletes`, `peers`,
/// `pending_acks`, `hlc`, `counters`, and `storage`, null without a data directory), in
/// a new NUL-terminated buffer stored in `*json_out`, to be released with
/// `mesh_string_free`.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_status_json(
    node: *const mesh_node_t,
    json_out: *mut *mut c_char,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        require_out(json_out, "json_out")?;
        let json = n.node.status().to_json_value().to_string();
        // SAFETY: `json_out` is non-NULL (checked above) and writable.
        unsafe { write_out(json_out, "json_out", owned_c_string(json.as_bytes())) }
    }
}

/// Renders every known peer as a JSON array of objects (`node_id`, `addr`,
/// `advertised_addr` (null unless the peer advertises one), `state`, `bootstrap`,
/// `rtt_ms`, `last_seen_ms`, `pending_acks`, `datagram_size`), in a new NUL-terminated
/// buffer stored in `*json_out`, to be released with `mesh_string_free`.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_peers_json(
    node: *const mesh_node_t,
    json_out: *mut *mut c_char,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        require_out(json_out, "json_out")?;
        let json = serde_json::to_string(&n.node.peers())
            .map_err(|e| FfiError::new(mesh_result::Internal, e.to_string()))?;
        // SAFETY: `json_out` is non-NULL (checked above) and writable.
        unsafe { write_out(json_out, "json_out", owned_c_string(json.as_bytes())) }
    }
}
