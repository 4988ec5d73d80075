"""mesh-sync: a key-value state kept identical on every node of a peer-to-peer mesh.

Every node accepts writes; conflicts resolve deterministically (last writer wins, on
hybrid logical clocks); all nodes converge over plain UDP, through packet loss,
reordering, partitions and restarts.

>>> from mesh_sync import MeshSyncNode
>>> with MeshSyncNode("node1", 0, host="127.0.0.1") as node:
...     node.set("temperature", 72.5)
...     node.get("temperature")
72.5

Log records of the native core go to the ``mesh_sync`` logger of :mod:`logging`.
"""

from ._mesh_sync import (
    MAX_VALUE_DEPTH,
    PROTOCOL_VERSION,
    AddressInUseError,
    BindError,
    ConfigError,
    KeyringError,
    KeyTooLongError,
    MeshSyncError,
    MeshSyncNode,
    MessageTooLargeError,
    NetworkError,
    NodeStoppedError,
    PeerNotFoundError,
    QueueFullError,
    ResolveError,
    StorageError,
    ValueTooLargeError,
    Watch,
    __version__,
    generate_key,
)
from ._changes import Changes, ChangesLostError

__all__ = [
    "Changes",
    "ChangesLostError",
    "MAX_VALUE_DEPTH",
    "PROTOCOL_VERSION",
    "AddressInUseError",
    "BindError",
    "ConfigError",
    "KeyringError",
    "KeyTooLongError",
    "MeshSyncError",
    "MeshSyncNode",
    "MessageTooLargeError",
    "NetworkError",
    "NodeStoppedError",
    "PeerNotFoundError",
    "QueueFullError",
    "ResolveError",
    "StorageError",
    "ValueTooLargeError",
    "Watch",
    "__version__",
    "generate_key",
]
