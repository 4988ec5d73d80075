//! # mesh-ffi: the C ABI of mesh-sync
//!
//! Builds `libmesh_sync` (shared and static) for C and C++ programs; the API is declared
//! in `include/mesh_sync.h`, generated from this crate by cbindgen. The conventions
//! (ownership, threads, errors) are written at the top of that header.
//!
//! Every exported function wraps its body in [`error::boundary`], so no panic unwinds
//! into C, and converts pointers only through the helpers of `ptr`, where the rules for
//! NULL, UTF-8 and ownership live.
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

pub mod value;

pub mod callback;

pub mod fault;

mod ptr;

pub use callback::{
    mesh_change_origin, mesh_peer_event, mesh_peer_event_callback, mesh_state_change_callback,
};
pub use config::mesh_config_t;
pub use error::mesh_result;
pub use fault::mesh_fault_stats;
pub use node::{mesh_node_t, mesh_status};
pub use value::{mesh_bytes, mesh_keys_t, mesh_str, mesh_value_t, mesh_value_type};
