//! # mesh-ffi: the C ABI of mesh-sync
//!
//! Builds `libmesh_sync` (shared and static) for C and C++ programs; the API is declared
//! in `include/mesh_sync.h`, generated from this crate by cbindgen. The conventions
//! (ownership, threads, errors) are written at the top of that header.
//!
//! Every exported function wraps its body in `ffi_boundary!` (a `catch_unwind`), so no
//! panic unwinds into C, and converts pointers only through the helpers of `ptr`, where
//! the rules for NULL, UTF-8 and ownership live.
//!
//! ## Design choices
//!
//! - The configuration is an opaque object with setters, not a struct passed by value:
//!   settings can be added without breaking programs built against an older header.
//! - Ports are taken as `int`, not `uint16_t`, so that `-1` or `70000` is reported as an
//!   error instead of being silently truncated by the C compiler.
//! - Strings returned through `char **` carry their length in a hidden prefix, so that
//!   `mesh_string_free` releases strings holding NUL bytes (possible when written from
//!   Python) correctly.
//! - A node's callbacks are guarded by a reentrant lock held during each call: replacing
//!   a callback or freeing the node waits for a call in progress, after which C may free
//!   its `user_data`; a callback may still re-register callbacks on its own thread.
//! - Freed nodes are remembered, so freeing a node twice is a no-op rather than a double
//!   free (the common mistake with RAII wrappers plus manual cleanup).
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]
// The exported names are the C names (`mesh_node_t`, `mesh_result`, ...).
#![allow(non_camel_case_types)]
// The safety contract of every function is the C one, written once at the top of the
// header and per argument in each function's documentation; a Rust `# Safety` section
// would repeat it in every declaration of the header.
#![allow(clippy::missing_safety_doc)]

// The order of these modules is the order of the declarations in the header.
pub mod error;

pub mod config;

pub mod node;

pub mod keys;

pub mod value;

pub mod callback;

pub mod watch;

pub mod fault;

mod ptr;

pub use callback::{
    mesh_change_origin, mesh_message_callback, mesh_peer_event, mesh_peer_event_callback,
    mesh_state_change_callback,
};
pub use config::mesh_config_t;
pub use error::mesh_result;
pub use fault::mesh_fault_stats;
pub use keys::MESH_KEY_LEN;
pub use node::{mesh_node_t, mesh_status};
pub use value::{
    mesh_bytes, mesh_keys_t, mesh_str, mesh_value_t, mesh_value_type, MESH_MAX_VALUE_DEPTH,
};
pub use watch::mesh_watch_t;
