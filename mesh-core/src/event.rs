//! What the engine and the node tell the application.

use std::net::SocketAddr;

use crate::value::Value;

/// Where a state change came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeOrigin {
    /// A local `set`.
    LocalSet,
    /// A local `delete`.
    LocalDelete,
    /// A write received from a peer (set or delete there) that changed this replica.
    Sync,
    /// A value written with a TTL expired: this node's clock reached its expiry. The
    /// key reads as deleted from then on; every node reports it when its own clock gets
    /// there (see [`crate::Engine::set_with_ttl`]).
    Expired,
}

impl ChangeOrigin {
    /// The prototype's operation names: `"set"`, `"delete"`, `"sync"`. An expiry is a
    /// `"delete"`: the key is gone, as if deleted where it expired.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOrigin::LocalSet => "set",
            ChangeOrigin::LocalDelete | ChangeOrigin::Expired => "delete",
            ChangeOrigin::Sync => "sync",
        }
    }
}

/// An event for the application. The node runtime delivers them on its callback thread,
/// in the order they happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A key changed. `value` is `None` when the key was deleted.
    StateChanged {
        /// The key.
        key: String,
        /// The new value, or `None` if the key is now deleted.
        value: Option<Value>,
        /// Local write or merge from a peer.
        origin: ChangeOrigin,
    },
    /// A node was heard from for the first time.
    PeerDiscovered {
        /// The peer's node id.
        node_id: String,
        /// Where it was heard from.
        addr: SocketAddr,
    },
    /// A peer stopped answering probes, directly and through other members, and did
    /// not refute the suspicion in time (here or at another member): it is considered
    /// failed.
    PeerFailed {
        /// The peer's node id.
        node_id: String,
        /// Its last known address.
        addr: SocketAddr,
    },
    /// A peer announced that it is leaving (its node stopped), so it is not waited for.
    PeerLeft {
        /// The peer's node id.
        node_id: String,
        /// Its last known address.
        addr: SocketAddr,
    },
    /// A user message from a peer (see [`crate::Node::send`]); never stored.
    Message {
        /// The sender's node id, as this node's membership knows the verified peer.
        sender: String,
        /// The message's bytes.
        data: Vec<u8>,
    },
    /// A failed peer, or a restarted one, was heard from again.
    PeerRecovered {
        /// The peer's node id.
        node_id: String,
        /// Where it was heard from.
        addr: SocketAddr,
    },
}
