//! `MeshSyncNode.watch`: a Python callback for the keys under a prefix, and the `Watch`
//! object that cancels it.
//!
//! The node keeps every watch's callback (so a watch whose handle is thrown away keeps
//! working, and the garbage collector sees the callbacks through the node); the core's
//! watch only holds the watch's number and looks the callback up when a change comes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mesh_core::{Change, Node};
use parking_lot::Mutex;
use pyo3::exceptions::PyTypeError;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple, PyType};
use pyo3::PyTraverseError;

use crate::convert::to_py;
use crate::node::report_callback_error;

struct Registered {
    callback: Py<PyAny>,
    /// Cancels the core's watch when dropped; only ever dropped detached from the
    /// interpreter (cancelling takes core locks). `None` while being registered.
    core: Option<mesh_core::Watch>,
}

/// The watches of one node, by number.
#[derive(Default)]
pub(crate) struct Watches {
    entries: Mutex<BTreeMap<u64, Registered>>,
    next_id: AtomicU64,
}

impl Watches {
    /// Visits every watch callback, for the garbage collector. A busy lock is skipped:
    /// reporting fewer references only keeps objects alive longer.
    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(entries) = self.entries.try_lock() {
            for entry in entries.values() {
                visit.call(&entry.callback)?;
            }
        }
        Ok(())
    }

    /// Cancels every watch (the node is being cleared by the garbage collector).
    pub(crate) fn clear(&self) {
        let taken = std::mem::take(&mut *self.entries.lock());
        let (cores, callbacks): (Vec<_>, Vec<_>) = taken
            .into_values()
            .map(|entry| (entry.core, entry.callback))
            .unzip();
        // Without an interpreter the closure is dropped unrun, cancelling the watches
        // there: then no core thread can be waiting for the interpreter either.
        let _ = Python::try_attach(move |py| py.detach(move || drop(cores)));
        drop(callbacks);
    }

    fn take(&self, id: u64) -> Option<Registered> {
        self.entries.lock().remove(&id)
    }

    fn is_active(&self, id: u64) -> bool {
        self.entries.lock().contains_key(&id)
    }

    /// Calls watch `id`'s callback with one change. Runs on the core's callback thread.
    fn call(&self, py: Python<'_>, node_id: &str, id: u64, change: &Change<'_>) {
        let callback = match self.entries.lock().get(&id) {
            Some(entry) => entry.callback.clone_ref(py),
            None => return,
        };
        let outcome = change_args(py, change).and_then(|args| callback.bind(py).call1(args));
        if let Err(err) = outcome {
            report_callback_error(py, "watch", node_id, err);
        }
    }
}

fn change_args<'py>(py: Python<'py>, change: &Change<'_>) -> PyResult<Bound<'py, PyTuple>> {
    let value = match change.value {
        Some(v) => to_py(py, v)?,
        None => py.None().into_bound(py),
    };
    PyTuple::new(
        py,
        [
            PyString::new(py, change.key).into_any(),
            value,
            PyString::new(py, change.origin.as_str()).into_any(),
        ],
    )
}

/// Registers `callback(key, value, operation)` for the keys starting with `prefix`.
pub(crate) fn watch(
    py: Python<'_>,
    node: &Node,
    watches: &Arc<Watches>,
    prefix: String,
    callback: Bound<'_, PyAny>,
) -> PyResult<Watch> {
    if !callback.is_callable() {
        return Err(PyTypeError::new_err(format!(
            "watch callback must be callable, not '{}'",
            callback.get_type().name()?
        )));
    }
    let id = watches.next_id.fetch_add(1, Ordering::Relaxed);
    // Registered before the core's watch exists, so its first change finds it. The
    // entries' lock is never held across a call into the core: the callback thread takes
    // it while attached to the interpreter.
    watches.entries.lock().insert(
        id,
        Registered {
            callback: callback.unbind(),
            core: None,
        },
    );
    let dispatch = Arc::downgrade(watches);
    let node_id = node.node_id().to_owned();
    let core = py.detach(|| {
        node.watch(prefix.clone(), move |change: &Change<'_>| {
            if let Some(watches) = dispatch.upgrade() {
                // None while the interpreter shuts down: the change is not reported.
                let _ = Python::try_attach(|py| watches.call(py, &node_id, id, change));
            }
        })
    });
    let unclaimed = match watches.entries.lock().get_mut(&id) {
        Some(entry) => entry.core.replace(core),
        // Cleared meanwhile by the garbage collector: cancel at once.
        None => Some(core),
    };
    py.detach(|| drop(unclaimed));
    Ok(Watch {
        watches: Arc::clone(watches),
        id,
        prefix,
    })
}

/// A watch registered with ``MeshSyncNode.watch``: ``cancel()`` stops it. Usable as a
/// context manager, which cancels it on exit. Dropping this object does not cancel the
/// watch: the node keeps it until it is cancelled.
#[pyclass(frozen, module = "mesh_sync._mesh_sync", name = "Watch")]
pub struct Watch {
    watches: Arc<Watches>,
    id: u64,
    prefix: String,
}

#[pymethods]
impl Watch {
    /// The prefix this watch follows.
    #[getter]
    fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether the watch is still registered (not cancelled).
    #[getter]
    fn active(&self) -> bool {
        self.watches.is_active(self.id)
    }

    /// Stops the watch: once this returns, its callback is not started again (a call
    /// already running on the callback thread finishes). Idempotent; allowed from inside
    /// a callback.
    fn cancel(&self, py: Python<'_>) {
        if let Some(entry) = self.watches.take(self.id) {
            let Registered { core, callback, .. } = entry;
            py.detach(|| drop(core));
            drop(callback);
        }
    }

    /// Returns the watch itself.
    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Cancels the watch.
    #[pyo3(signature = (_exc_type = None, _exc_value = None, _traceback = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<Bound<'_, PyType>>,
        _exc_value: Option<Bound<'_, PyAny>>,
        _traceback: Option<Bound<'_, PyAny>>,
    ) -> bool {
        self.cancel(py);
        false
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let prefix = PyString::new(py, &self.prefix).repr()?;
        Ok(format!(
            "Watch(prefix={prefix}, active={})",
            if self.active() { "True" } else { "False" }
        ))
    }
}
