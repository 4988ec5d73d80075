//! Errors returned at the crate's boundary.

use std::borrow::Cow;
use std::io;

/// A configuration field is out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config field `{field}`: {message}")]
pub struct ConfigError {
    /// The offending field, as named in [`crate::Config`].
    pub field: &'static str,
    /// What is wrong with it.
    pub message: Cow<'static, str>,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        ConfigError {
            field,
            message: message.into(),
        }
    }
}

/// A key or a keyring operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key must be exactly 32 bytes.
    #[error("a key is 32 bytes, this one is {len}")]
    Length {
        /// The length given.
        len: usize,
    },
    /// A key's text form is standard base64 of its 32 bytes.
    #[error("a key's text form is standard base64 of its 32 bytes")]
    Base64,
    /// The key named is not in the keyring.
    #[error("key {fingerprint} is not installed")]
    NotInstalled {
        /// The key's fingerprint.
        fingerprint: String,
    },
    /// The primary key seals every datagram: make another key primary first.
    #[error("key {fingerprint} is the primary key; make another key primary before removing it")]
    RemovePrimary {
        /// The key's fingerprint.
        fingerprint: String,
    },
    /// The operating system's entropy source failed.
    #[error("cannot draw random bytes from the operating system: {0}")]
    Entropy(String),
}

/// Everything a [`crate::Node`] operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration was rejected.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The UDP socket could not be bound (for example, the port is in use).
    #[error("cannot bind UDP socket to {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: String,
        /// The operating system's reason.
        source: io::Error,
    },
    /// A peer address could not be resolved to an IP address.
    #[error("cannot resolve peer address {addr}: {reason}")]
    Resolve {
        /// The address as given.
        addr: String,
        /// Why it could not be resolved.
        reason: String,
    },
    /// A key longer than the configured limit.
    #[error("key is {len} bytes, the limit is {max}")]
    KeyTooLong {
        /// The key's length in bytes.
        len: usize,
        /// The configured `max_key_len`.
        max: usize,
    },
    /// A value larger than the configured limit.
    #[error("value is about {size} bytes encoded, the limit is {max}")]
    ValueTooLarge {
        /// The value's encoded size (an upper bound).
        size: usize,
        /// The configured `max_value_size`.
        max: usize,
    },
    /// A value whose lists and maps nest deeper than [`crate::value::MAX_DEPTH`]:
    /// every peer would refuse it, since walking it could overflow their stacks.
    #[error("value nests lists and maps {depth} levels deep, the limit is {max}")]
    ValueTooDeep {
        /// How deep the value's lists and maps nest.
        depth: usize,
        /// [`crate::value::MAX_DEPTH`].
        max: usize,
    },
    /// A key or keyring operation was refused.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// `start` after `stop`: a stopped node has released its socket for good.
    #[error("the node was stopped; create a new node to rejoin the mesh")]
    Stopped,
    /// An I/O error from the node's socket or threads.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The node's store (`Config::data_dir`) cannot be used: in use by another node,
    /// damaged, not permitted, full. A damaged store is left as it is.
    #[error("storage error ({kind}) at {}: {reason}", path.display())]
    Storage {
        /// The store's file (or directory).
        path: std::path::PathBuf,
        /// What kind of failure.
        kind: StorageErrorKind,
        /// What went wrong.
        reason: String,
    },
    /// A message for a peer this node does not know, or does not currently see alive.
    #[error("no alive peer with node id {node_id:?}")]
    PeerNotFound {
        /// The node id given.
        node_id: String,
    },
    /// A message larger than the configured limit.
    #[error("message is {size} bytes, the limit is {max}")]
    MessageTooLarge {
        /// The message's size in bytes.
        size: usize,
        /// The configured `max_value_size`.
        max: usize,
    },
    /// The queue of messages not yet sent to a peer is full: the peer is slow or gone.
    /// Retry later.
    #[error("send queue to peer {node_id:?} is full; retry later")]
    QueueFull {
        /// The peer's node id.
        node_id: String,
    },
}

/// Kinds of [`Error::Storage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// Another node (or process) has the data directory open.
    Locked,
    /// The store is damaged (truncated, garbled) or not a store this build reads.
    Corrupted,
    /// The operating system refused access.
    Permission,
    /// The disk (or quota) is full.
    Full,
    /// Any other I/O failure.
    Io,
}

impl StorageErrorKind {
    /// Lower-case name (`"locked"`, `"corrupted"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            StorageErrorKind::Locked => "locked",
            StorageErrorKind::Corrupted => "corrupted",
            StorageErrorKind::Permission => "permission",
            StorageErrorKind::Full => "full",
            StorageErrorKind::Io => "io",
        }
    }
}

impl std::fmt::Display for StorageErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Shorthand for results of [`crate::Node`] operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
