//! Values, borrowed string and byte views, key snapshots, and owned strings.

use std::ffi::c_char;
use std::sync::OnceLock;

use mesh_core::Value;

use crate::error::{ffi_boundary, mesh_result, FfiError};
use crate::ptr::{arg_ref, free_handle, free_owned_c_string, write_out};

/// A borrowed UTF-8 string: `len` bytes at `data`, followed by a NUL byte so that `data`
/// can also be used as a C string. The text may itself contain NUL bytes when it was
/// written that way (from Python, for example); `len` is then the only reliable length.
/// Owned by the object it was obtained from; never freed by the caller.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_camel_case_types)]
pub struct mesh_str {
    /// The first byte; never NULL when obtained from the library.
    pub data: *const c_char,
    /// Length in bytes, excluding the terminating NUL.
    pub len: usize,
}

impl mesh_str {
    /// Views a buffer that ends with a NUL byte (not counted in `len`).
    pub(crate) fn from_nul_terminated(buffer: &[u8]) -> mesh_str {
        debug_assert_eq!(buffer.last(), Some(&0));
        mesh_str {
            data: buffer.as_ptr().cast(),
            len: buffer.len().saturating_sub(1),
        }
    }
}

/// A borrowed byte buffer: `len` bytes at `data`. Owned by the object it was obtained
/// from; never freed by the caller. `data` is never NULL, even when `len` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_camel_case_types)]
pub struct mesh_bytes {
    /// The first byte.
    pub data: *const u8,
    /// Length in bytes.
    pub len: usize,
}

/// Deepest nesting of arrays and objects (lists and maps) a value may have;
/// `mesh_node_set_json` refuses deeper JSON with `MESH_RESULT_INVALID_JSON`. A scalar is
/// 0 levels deep, `[1]` 1, `[[1]]` 2; an innermost `{"$bytes": ...}` is a scalar.
// A literal, so that cbindgen can write it into the header; the assertion below keeps
// it equal to the core's limit.
pub const MESH_MAX_VALUE_DEPTH: usize = 100;
const _: () = assert!(MESH_MAX_VALUE_DEPTH == mesh_core::value::MAX_DEPTH);

/// The type of a stored value. Values are those of Python and JSON; lists and maps are
/// read and written as JSON text.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum mesh_value_type {
    /// No value (Python `None`, JSON `null`). Distinct from a missing key.
    Null = 0,
    /// `true` or `false`.
    Bool = 1,
    /// A signed 64-bit integer.
    Int = 2,
    /// A 64-bit float.
    Float = 3,
    /// A UTF-8 string.
    String = 4,
    /// Raw bytes (Python `bytes`). In JSON: `{"$bytes": "<base64>"}`.
    Bytes = 5,
    /// A list of values. In JSON: an array.
    List = 6,
    /// A map from string keys to values. In JSON: an object.
    Map = 7,
}

impl mesh_value_type {
    pub(crate) fn of(value: &Value) -> mesh_value_type {
        match value {
            Value::Null => mesh_value_type::Null,
            Value::Bool(_) => mesh_value_type::Bool,
            Value::Int(_) => mesh_value_type::Int,
            Value::Float(_) => mesh_value_type::Float,
            Value::String(_) => mesh_value_type::String,
            Value::Bytes(_) => mesh_value_type::Bytes,
            Value::List(_) => mesh_value_type::List,
            Value::Map(_) => mesh_value_type::Map,
        }
    }
}

/// An owned copy of one value, obtained from `mesh_node_get` and released with
/// `mesh_value_free`, or lent to a state change callback for the duration of the call.
///
/// Views obtained from it (`mesh_value_get_string`, `mesh_value_get_bytes`,
/// `mesh_value_to_json`) stay valid until the value is freed. A value may be read from
/// several threads at once.
pub struct mesh_value_t {
    value: Value,
    /// The string with a NUL appended, for strings only, so C can use it directly.
    text: Option<Box<[u8]>>,
    /// The JSON rendering with a NUL appended, made on first request.
    json: OnceLock<Box<[u8]>>,
}

impl mesh_value_t {
    pub(crate) fn new(value: Value) -> mesh_value_t {
        let text = match &value {
            Value::String(s) => Some(nul_terminated(s.as_bytes())),
            _ => None,
        };
        mesh_value_t {
            value,
            text,
            json: OnceLock::new(),
        }
    }

    pub(crate) fn json(&self) -> &[u8] {
        self.json
            .get_or_init(|| nul_terminated(self.value.to_json().as_bytes()))
    }

    fn mismatch(&self, wanted: &str) -> FfiError {
        type_mismatch(&self.value, wanted)
    }
}

fn article(type_name: &str) -> &'static str {
    if type_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

pub(crate) fn nul_terminated(bytes: &[u8]) -> Box<[u8]> {
    let mut buffer = Vec::with_capacity(bytes.len() + 1);
    buffer.extend_from_slice(bytes);
    buffer.push(0);
    buffer.into_boxed_slice()
}

/// Releases a value obtained from `mesh_node_get`. NULL is a no-op. Must not be called
/// on the value lent to a state change callback.
#[no_mangle]
pub unsafe extern "C" fn mesh_value_free(value: *mut mesh_value_t) {
    ffi_boundary! {
        // SAFETY: `value` is NULL or an owned handle from mesh_node_get, freed once.
        unsafe { free_handle(value) }
    }
}

/// The type of `value`. A NULL `value` gives `MESH_VALUE_TYPE_NULL`.
#[no_mangle]
pub unsafe extern "C" fn mesh_value_get_type(value: *const mesh_value_t) -> mesh_value_type {
    ffi_boundary! {
        // SAFETY: `value` is NULL or a live value handle.
        match unsafe { value.as_ref() } {
            Some(v) => mesh_value_type::of(&v.value),
            None => mesh_value_type::Null,
        }
    }
}

/// Reads a bool. `MESH_RESULT_TYPE_MISMATCH` if the value is not a bool.
#[no_mangle]
pub unsafe extern "C" fn mesh_value_get_bool(
    value: *const mesh_value_t,
    out: *mut bool,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `value` is NULL or a live value handle.
        let v = unsafe { arg_ref(value, "value") }?;
        let Value::Bool(b) = v.value else {
            return Err(v.mismatch("a bool"));
        };
        // SAFETY: `out` is NULL or writable.
        unsafe { write_out(out, "out", b) }
    }
}

/// Reads a signed 64-bit integer. `MESH_RESULT_TYPE_MISMATCH` if the value is not an
/// integer (floats are not converted).
#[no_mangle]
pub unsafe extern "C" fn mesh_value_get_i64(
    value: *const mesh_value_t,
    out: *mut i64,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `value` is NULL or a live value handle.
        let v = unsafe { arg_ref(value, "value") }?;
        let Value::Int(i) = v.value else {
            return Err(v.mismatch("an int"));
        };
        // SAFETY: `out` is NULL or writable.
        unsafe { write_out(out, "out", i) }
    }
}

/// Reads a 64-bit float. `MESH_RESULT_TYPE_MISMATCH` if the value is not a float
/// (integers are not converted, so that no precision is lost silently).
#[no_mangle]
pub unsafe extern "C" fn mesh_value_get_f64(
    value: *const mesh_value_t,
    out: *mut f64,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `value` is NULL or a live value handle.
        let v = unsafe { arg_ref(value, "value") }?;
        let Value::Float(f) = v.value else {
            return Err(v.mismatch("a float"));
        };
        // SAFETY: `out` is NULL or writable.
        unsafe { write_out(out, "out", f) }
    }
}

/// Views a string value. The view is NUL-terminated and valid until `value` is freed.
/// `MESH_RESULT_TYPE_MISMATCH` if the value is not a string.
#[no_mangle]
pub unsafe extern "C" fn mesh_value_get_string(
    value: *const mesh_value_t,
    out: *mut mesh_str,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `value` is NULL or a live value handle.
        let v = unsafe { arg_ref(value, "value") }?;
        let Some(text) = v.text.as_deref() else {
            return Err(v.mismatch("a string"));
        };
        // SAFETY: `out` is NULL or writable.
        unsafe { write_out(out, "out", mesh_str::from_nul_terminated(text)) }
    }
}

/// Views a bytes value, valid until `value` is freed. `MESH_RESULT_TYPE_MISMATCH` if the
/// value is not bytes.
#[no_mangle]
pub unsafe extern "C" fn mesh_value_get_bytes(
    value: *const mesh_value_t,
    out: *mut mesh_bytes,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `value` is NULL or a live value handle.
        let v = unsafe { arg_ref(value, "value") }?;
        let Value::Bytes(bytes) = &v.value else {
            return Err(v.mismatch("bytes"));
        };
        // A non-NULL pointer even for an empty buffer, as promised by `mesh_bytes`.
        let data = if bytes.is_empty() { EMPTY.as_ptr() } else { bytes.as_ptr() };
        // SAFETY: `out` is NULL or writable.
        unsafe { write_out(out, "out", mesh_bytes { data, len: bytes.len() }) }
    }
}

/// What an empty `mesh_bytes` points at, so that `data` is never NULL.
static EMPTY: [u8; 1] = [0];

/// Views any value as JSON text, NUL-terminated, valid until `value` is freed. Bytes
/// appear as `{"$bytes": "<base64>"}`; non-finite floats as `null`.
#[no_mangle]
pub unsafe extern "C" fn mesh_value_to_json(
    value: *const mesh_value_t,
    out: *mut mesh_str,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `value` is NULL or a live value handle.
        let v = unsafe { arg_ref(value, "value") }?;
        // SAFETY: `out` is NULL or writable.
        unsafe { write_out(out, "out", mesh_str::from_nul_terminated(v.json())) }
    }
}

/// A snapshot of the live keys of a node, sorted by byte order, taken by
/// `mesh_node_keys` and released with `mesh_keys_free`. Later writes do not change it.
pub struct mesh_keys_t {
    keys: Vec<Box<[u8]>>,
}

impl mesh_keys_t {
    pub(crate) fn new(mut keys: Vec<String>) -> mesh_keys_t {
        keys.sort_unstable();
        mesh_keys_t {
            keys: keys.iter().map(|k| nul_terminated(k.as_bytes())).collect(),
        }
    }
}

/// Number of keys in the snapshot; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn mesh_keys_len(keys: *const mesh_keys_t) -> usize {
    ffi_boundary! {
        // SAFETY: `keys` is NULL or a live snapshot.
        unsafe { keys.as_ref() }.map_or(0, |k| k.keys.len())
    }
}

/// Views the key at `index` (0-based), NUL-terminated, valid until the snapshot is freed.
/// `MESH_RESULT_INVALID_ARGUMENT` if `index` is not below `mesh_keys_len`.
#[no_mangle]
pub unsafe extern "C" fn mesh_keys_get(
    keys: *const mesh_keys_t,
    index: usize,
    out: *mut mesh_str,
) -> mesh_result {
    ffi_boundary! {
        // SAFETY: `keys` is NULL or a live snapshot.
        let k = unsafe { arg_ref(keys, "keys") }?;
        let key = k.keys.get(index).ok_or_else(|| {
            FfiError::invalid(format!("index {index} is out of range (len {})", k.keys.len()))
        })?;
        // SAFETY: `out` is NULL or writable.
        unsafe { write_out(out, "out", mesh_str::from_nul_terminated(key)) }
    }
}

/// Releases a key snapshot. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn mesh_keys_free(keys: *mut mesh_keys_t) {
    ffi_boundary! {
        // SAFETY: `keys` is NULL or an owned snapshot from mesh_node_keys, freed once.
        unsafe { free_handle(keys) }
    }
}

/// Releases a string returned through a `char **` out-parameter (`mesh_node_get_string`,
/// `mesh_node_get_json`, `mesh_node_get_all_json`, `mesh_node_status_json`,
/// `mesh_node_peers_json`). NULL is a no-op. Only strings from those functions may be
/// passed, each once; not `free()`.
#[no_mangle]
pub unsafe extern "C" fn mesh_string_free(string: *mut c_char) {
    ffi_boundary! {
        // SAFETY: `string` is NULL or a string the library returned, freed once.
        unsafe { free_owned_c_string(string) }
    }
}

pub(crate) fn type_mismatch(value: &Value, wanted: &str) -> FfiError {
    FfiError::new(
        mesh_result::TypeMismatch,
        format!(
            "the value is {} {}, not {wanted}",
            article(value.type_name()),
            value.type_name()
        ),
    )
}
