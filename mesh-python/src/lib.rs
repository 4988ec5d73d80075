//! Python bindings of mesh-core: the native module `mesh_sync._mesh_sync`.
//!
//! A thin layer: it converts values, errors and callbacks, and holds no protocol logic.
//! The public Python package (`mesh_sync`) re-exports what is defined here.

use std::sync::{Arc, Weak};

use log::LevelFilter;
use mesh_core::Node;
use parking_lot::Mutex;
use pyo3::prelude::*;

mod config;
mod convert;
mod errors;
mod node;
mod watch;

/// Every node created from Python, so that the interpreter's exit can stop those still
/// running: their threads must not try to attach to an interpreter that is finalizing.
static LIVE_NODES: Mutex<Vec<Weak<Node>>> = Mutex::new(Vec::new());

fn track(node: &Arc<Node>) {
    let mut live = LIVE_NODES.lock();
    live.retain(|n| n.strong_count() > 0);
    live.push(Arc::downgrade(node));
}

/// A new random 32-byte key from the operating system's entropy.
#[pyfunction]
fn generate_key<'py>(py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
    let key = mesh_core::generate_key().map_err(|e| errors::to_py_err(py, e.into()))?;
    Ok(pyo3::types::PyBytes::new(py, key.as_bytes()))
}

/// Stops every node still running; registered with `atexit`.
#[pyfunction]
fn _stop_all_nodes(py: Python<'_>) {
    let nodes: Vec<Arc<Node>> = LIVE_NODES
        .lock()
        .drain(..)
        .filter_map(|n| n.upgrade())
        .collect();
    py.detach(|| {
        for node in &nodes {
            node.stop();
        }
    });
}

#[pymodule]
fn _mesh_sync(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // The core's log records go to Python's `logging`, under the `mesh_sync` logger
    // (`mesh_sync.mesh_core.engine`, ...). Levels are looked up at each record, so logging
    // configured after import applies; the core logs rarely (peer changes), so that is
    // cheap. Another copy of this module already installed it: keep that one.
    let _ = pyo3_log::Logger::new(py, pyo3_log::Caching::Loggers)?
        .set_prefix("mesh_sync")
        .filter(LevelFilter::Debug)
        .install();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MAX_VALUE_DEPTH", convert::MAX_DEPTH)?;
    m.add("PROTOCOL_VERSION", mesh_core::PROTOCOL_VERSION)?;
    m.add_class::<node::MeshSyncNode>()?;
    m.add_class::<watch::Watch>()?;
    errors::register(m)?;
    m.add_function(wrap_pyfunction!(_stop_all_nodes, m)?)?;
    m.add_function(wrap_pyfunction!(generate_key, m)?)?;
    py.import("atexit")?
        .call_method1("register", (m.getattr("_stop_all_nodes")?,))?;
    Ok(())
}
