//! The Python exception hierarchy and the mapping from the core's errors.

use std::io;

use mesh_core::{Error, KeyError};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    mesh_sync,
    MeshSyncError,
    PyException,
    "Base class of every error raised by mesh_sync."
);
create_exception!(
    mesh_sync,
    ConfigError,
    MeshSyncError,
    "A configuration value is out of bounds. Its ``field`` attribute names the option."
);
create_exception!(
    mesh_sync,
    BindError,
    MeshSyncError,
    "The UDP socket could not be bound."
);
create_exception!(
    mesh_sync,
    AddressInUseError,
    BindError,
    "The UDP port is already in use."
);
create_exception!(
    mesh_sync,
    ResolveError,
    MeshSyncError,
    "A host name could not be resolved to an IP address."
);
create_exception!(
    mesh_sync,
    KeyTooLongError,
    MeshSyncError,
    "A key is longer than the node's ``max_key_len``."
);
create_exception!(
    mesh_sync,
    ValueTooLargeError,
    MeshSyncError,
    "A value is larger than the node's ``max_value_size``."
);
create_exception!(
    mesh_sync,
    NodeStoppedError,
    MeshSyncError,
    "The node was stopped; a stopped node cannot be started again."
);
create_exception!(
    mesh_sync,
    KeyringError,
    MeshSyncError,
    "A keyring operation was refused: removing the primary key, or naming a key that is \
     not installed."
);
create_exception!(
    mesh_sync,
    StorageError,
    MeshSyncError,
    "The node's store (``data_dir``) cannot be used: in use by another node, damaged, not \
     permitted, or full. Its ``path`` attribute names the file, ``kind`` the failure \
     (\"locked\", \"corrupted\", \"permission\", \"full\" or \"io\")."
);
create_exception!(
    mesh_sync,
    PeerNotFoundError,
    MeshSyncError,
    "A message was sent to a node id that is not among the node's alive peers."
);
create_exception!(
    mesh_sync,
    MessageTooLargeError,
    ValueTooLargeError,
    "A message is larger than the node's ``max_value_size``."
);
create_exception!(
    mesh_sync,
    QueueFullError,
    MeshSyncError,
    "Too many messages wait to be sent to that peer (it is slow or gone); retry later."
);
create_exception!(
    mesh_sync,
    NetworkError,
    MeshSyncError,
    "An I/O error from the node's socket or threads."
);

/// A [`ConfigError`] carrying the offending option's name in its `field` attribute.
pub fn config_error(py: Python<'_>, field: &str, message: &str) -> PyErr {
    let err = ConfigError::new_err(format!("invalid config field `{field}`: {message}"));
    // Best effort: the message already names the field.
    let _ = err.value(py).setattr("field", field);
    err
}

/// Maps a core error onto the Python exception hierarchy.
pub fn to_py_err(py: Python<'_>, err: Error) -> PyErr {
    match err {
        Error::Config(e) => config_error(py, e.field, &e.message),
        Error::Bind { ref source, .. } if source.kind() == io::ErrorKind::AddrInUse => {
            AddressInUseError::new_err(err.to_string())
        }
        Error::Bind { .. } => BindError::new_err(err.to_string()),
        Error::Resolve { .. } => ResolveError::new_err(err.to_string()),
        Error::KeyTooLong { .. } => KeyTooLongError::new_err(err.to_string()),
        Error::ValueTooLarge { .. } => ValueTooLargeError::new_err(err.to_string()),
        Error::Stopped => NodeStoppedError::new_err(err.to_string()),
        Error::Io(_) => NetworkError::new_err(err.to_string()),
        Error::Storage { ref path, kind, .. } => {
            let e = StorageError::new_err(err.to_string());
            // Best effort: the message already names both.
            let _ = e.value(py).setattr("path", path.display().to_string());
            let _ = e.value(py).setattr("kind", kind.as_str());
            e
        }
        Error::Key(KeyError::Length { .. } | KeyError::Base64) => {
            config_error(py, "key", &err.to_string())
        }
        Error::Key(_) => KeyringError::new_err(err.to_string()),
        Error::PeerNotFound { .. } => PeerNotFoundError::new_err(err.to_string()),
        Error::MessageTooLarge { .. } => MessageTooLargeError::new_err(err.to_string()),
        Error::QueueFull { .. } => QueueFullError::new_err(err.to_string()),
        other => MeshSyncError::new_err(other.to_string()),
    }
}

/// Adds every exception class to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("MeshSyncError", py.get_type::<MeshSyncError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("BindError", py.get_type::<BindError>())?;
    m.add("AddressInUseError", py.get_type::<AddressInUseError>())?;
    m.add("ResolveError", py.get_type::<ResolveError>())?;
    m.add("KeyTooLongError", py.get_type::<KeyTooLongError>())?;
    m.add("ValueTooLargeError", py.get_type::<ValueTooLargeError>())?;
    m.add("NodeStoppedError", py.get_type::<NodeStoppedError>())?;
    m.add("NetworkError", py.get_type::<NetworkError>())?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    m.add("KeyringError", py.get_type::<KeyringError>())?;
    m.add("PeerNotFoundError", py.get_type::<PeerNotFoundError>())?;
    m.add(
        "MessageTooLargeError",
        py.get_type::<MessageTooLargeError>(),
    )?;
    m.add("QueueFullError", py.get_type::<QueueFullError>())?;
    Ok(())
}
