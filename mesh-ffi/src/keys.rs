//! Pre-shared keys: the keyring of a configuration, key rotation on a running node, and
//! fresh keys. A key is 32 bytes; only its fingerprint (16 hex digits) is ever shown.

use std::ffi::c_char;

use mesh_core::{Key, KeyError};

use crate::config::mesh_config_t;
use crate::error::{ffi_boundary, mesh_result, FfiError, FfiResult};
use crate::node::mesh_node_t;
use crate::ptr::{arg_bytes, arg_mut, arg_ref, owned_c_string, require_out, write_out};

/// Bytes of a key.
pub const MESH_KEY_LEN: usize = 32;

impl From<KeyError> for FfiError {
    fn from(e: KeyError) -> FfiError {
        let code = match e {
            KeyError::NotInstalled { .. } => mesh_result::NotFound,
            KeyError::Entropy(_) => mesh_result::Io,
            _ => mesh_result::InvalidArgument,
        };
        FfiError::new(code, e.to_string())
    }
}

/// The key at `key`, `len` bytes long (which must be 32).
///
/// # Safety
/// A non-NULL `key` must point to `len` readable bytes.
unsafe fn arg_key(key: *const u8, len: usize) -> FfiResult<Key> {
    if key.is_null() {
        return Err(FfiError::null("key"));
    }
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { arg_bytes(key, len, "key") }?;
    Ok(Key::from_bytes(bytes)?)
}

/// Adds the `len`-byte key at `key` (`len` must be 32) to the configuration's keyring.
/// The first key added is the primary: it seals every datagram; every key added opens
/// them. A configuration with no key sends plaintext, for trusted networks only. The key
/// is copied. `MESH_RESULT_INVALID_ARGUMENT` if `len` is not 32.
#[no_mangle]
pub unsafe extern "C" fn mesh_config_add_key(
    config: *mut mesh_config_t,
    key: *const u8,
    len: usize,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `key` is NULL or points to `len` readable bytes.
        let key = unsafe { arg_key(key, len) }?;
        // SAFETY: `config` is NULL or a live configuration.
        let c = unsafe { arg_mut(config, "config") }?;
        if !c.config.keyring.contains(&key) {
            c.config.keyring.push(key);
        }
        Ok(())
    }
}

/// Installs the `len`-byte key at `key` (`len` must be 32) for opening datagrams: the
/// first step of a key rotation (install the new key on every node, then
/// `mesh_node_use_key` it on every node, then `mesh_node_remove_key` the old key
/// everywhere). On a node without keys the first key installed becomes the primary.
/// Installing an installed key does nothing. The key is copied.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_install_key(
    node: *const mesh_node_t,
    key: *const u8,
    len: usize,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `key` is NULL or points to `len` readable bytes.
        let key = unsafe { arg_key(key, len) }?;
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        Ok(n.node.install_key(key)?)
    }
}

/// Makes an installed key the primary: every datagram is sealed with it from now on.
/// `MESH_RESULT_NOT_FOUND` if the key is not installed.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_use_key(
    node: *const mesh_node_t,
    key: *const u8,
    len: usize,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `key` is NULL or points to `len` readable bytes.
        let key = unsafe { arg_key(key, len) }?;
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        Ok(n.node.use_key(&key)?)
    }
}

/// Removes an installed key. `MESH_RESULT_INVALID_ARGUMENT` for the primary key (make
/// another key primary first), `MESH_RESULT_NOT_FOUND` for a key not installed.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_remove_key(
    node: *const mesh_node_t,
    key: *const u8,
    len: usize,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `key` is NULL or points to `len` readable bytes.
        let key = unsafe { arg_key(key, len) }?;
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        Ok(n.node.remove_key(&key)?)
    }
}

/// Renders the fingerprints of the node's installed keys (never the keys) as a JSON array
/// of strings, the primary first, in a new NUL-terminated buffer stored in `*json_out`,
/// to be released with `mesh_string_free`.
#[no_mangle]
pub unsafe extern "C" fn mesh_node_list_keys_json(
    node: *const mesh_node_t,
    json_out: *mut *mut c_char,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `node` is NULL or a live node.
        let n = unsafe { arg_ref(node, "node") }?;
        require_out(json_out, "json_out")?;
        let json = serde_json::to_string(&n.node.list_keys())
            .map_err(|e| FfiError::new(mesh_result::Internal, e.to_string()))?;
        // SAFETY: `json_out` is non-NULL (checked above) and writable.
        unsafe { write_out(json_out, "json_out", owned_c_string(json.as_bytes())) }
    }
}

/// Writes a new random key, drawn from the operating system's entropy, into the 32 bytes
/// at `out`.
#[no_mangle]
pub unsafe extern "C" fn mesh_generate_key(out: *mut u8) -> mesh_result {
    ffi_boundary! {
        require_out(out, "out")?;
        let key = mesh_core::generate_key()?;
        // SAFETY: `out` is non-NULL (checked above) and points to 32 writable bytes.
        unsafe { std::ptr::copy_nonoverlapping(key.as_bytes().as_ptr(), out, MESH_KEY_LEN) };
        Ok(())
    }
}
