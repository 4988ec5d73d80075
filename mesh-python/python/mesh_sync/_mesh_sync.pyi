"""Type stubs of the native module ``mesh_sync._mesh_sync``."""

import os
from types import TracebackType
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypedDict,
    Union,
    final,
    type_check_only,
)

from typing_extensions import Self, TypeAlias, disjoint_base

from ._changes import Changes

__all__ = [
    "__version__",
    "MAX_VALUE_DEPTH",
    "PROTOCOL_VERSION",
    "MeshSyncNode",
    "Watch",
    "MeshSyncError",
    "ConfigError",
    "BindError",
    "AddressInUseError",
    "StorageError",
    "ResolveError",
    "KeyTooLongError",
    "ValueTooLargeError",
    "NodeStoppedError",
    "NetworkError",
    "KeyringError",
    "PeerNotFoundError",
    "MessageTooLargeError",
    "QueueFullError",
    "generate_key",
    "_stop_all_nodes",
]

__version__: str
#: Deepest nesting of lists and dicts a value may have.
MAX_VALUE_DEPTH: int
#: The wire protocol version this build speaks; nodes of other versions ignore each other.
PROTOCOL_VERSION: int

def _stop_all_nodes() -> None: ...
def generate_key() -> bytes: ...

#: A key: its 32 bytes, or their standard base64 text.
_Key: TypeAlias = Union[bytes, str]

#: What ``set`` accepts. Tuples come back as lists, bytearrays as bytes. Items of lists
#: and dicts are checked when the value is converted (TypeError names a wrong type), not
#: here: precise recursive types would reject the common ``dict[str, object]``.
_ValueIn: TypeAlias = Union[
    None, bool, int, float, str, bytes, bytearray, Sequence[Any], Mapping[str, Any]
]
#: What ``get`` returns: None, bool, int, float, str, bytes, list or dict, nested.
_Value: TypeAlias = Any
#: An (IP address, port) pair.
_Address: TypeAlias = Tuple[str, int]
_Operation: TypeAlias = Literal["set", "delete", "sync"]

_StateChangeCallback: TypeAlias = Callable[[str, _Value, _Operation], object]
_PeerDiscoveredCallback: TypeAlias = Callable[[str, _Address], object]
_PeerCallback: TypeAlias = Callable[[str], object]
#: ``on_message(sender_id, data)``.
_MessageCallback: TypeAlias = Callable[[str, bytes], object]
#: What ``send`` and ``broadcast`` take as a message.
_MessageData: TypeAlias = Union[bytes, bytearray, memoryview]
_PeerState: TypeAlias = Literal["unknown", "alive", "suspect", "dead"]

@type_check_only
class PeerCounts(TypedDict):
    total_peers: int
    alive_peers: int
    suspect_peers: int
    dead_peers: int
    bootstrap_peers: int

@type_check_only
class DropCounters(TypedDict):
    truncated: int
    bad_magic: int
    bad_version: int
    bad_checksum: int
    wrong_cluster: int
    malformed: int
    unauthenticated: int
    stale: int
    duplicate: int
    reassembly: int
    unverified: int
    rate_limited: int
    conflicts: int
    clock_drift: int
    oversized: int
    origins: int
    messages: int

@type_check_only
class Counters(TypedDict):
    datagrams_sent: int
    bytes_sent: int
    datagrams_received: int
    bytes_received: int
    retransmits: int
    given_up: int
    superseded_not_resent: int
    deletes_returned: int
    congestion_events: int
    entries_received: int
    entries_applied: int
    sync_rounds: int
    indirect_probes: int
    probe_retries: int
    heal_probes: int
    refutations: int
    peers_failed: int
    peers_left: int
    write_messages_sent: int
    grafts_sent: int
    prunes_sent: int
    messages_sent: int
    messages_received: int
    dropped: DropCounters

@type_check_only
class StorageStatus(TypedDict):
    path: str
    durability: Literal["sync", "batched"]
    loaded_entries: int
    load_ms: int
    discarded_stale: bool
    commits: int
    keys_written: int
    failed_commits: int
    commit_mean_us: int
    commit_max_us: int
    pending: bool
    error: Optional[str]

@type_check_only
class Status(TypedDict):
    node_id: str
    port: int
    running: bool
    state_version: int
    data_keys: int
    tombstones: int
    collected_deletes: int
    peers: PeerCounts
    pending_acks: int
    hlc: int
    counters: Counters
    storage: Optional[StorageStatus]

@type_check_only
class PeerInfo(TypedDict):
    node_id: Optional[str]
    address: _Address
    advertised_address: Optional[_Address]
    state: _PeerState
    bootstrap: bool
    rtt_ms: Optional[float]
    last_seen_ms: Optional[int]
    pending_acks: int

@type_check_only
class Faults(TypedDict):
    loss_rate: float
    latency_ms: float
    jitter_ms: float
    duplicate_rate: float
    reorder_rate: float
    corrupt_rate: float
    partitioned: List[_Address]

@type_check_only
class FaultStats(TypedDict):
    packets_sent: int
    packets_dropped: int
    packets_partitioned: int
    packets_delayed: int
    packets_duplicated: int
    packets_reordered: int
    packets_corrupted: int
    drop_rate: float

class MeshSyncError(Exception): ...

class ConfigError(MeshSyncError):
    field: str

class BindError(MeshSyncError): ...
class AddressInUseError(BindError): ...
class ResolveError(MeshSyncError): ...
class KeyTooLongError(MeshSyncError): ...
class ValueTooLargeError(MeshSyncError): ...
class NodeStoppedError(MeshSyncError): ...
class NetworkError(MeshSyncError): ...
class KeyringError(MeshSyncError): ...
class PeerNotFoundError(MeshSyncError): ...
class MessageTooLargeError(ValueTooLargeError): ...
class QueueFullError(MeshSyncError): ...

class StorageError(MeshSyncError):
    path: str
    kind: Literal["locked", "corrupted", "permission", "full", "io"]

@final
class Watch:
    @property
    def prefix(self) -> str: ...
    @property
    def active(self) -> bool: ...
    def cancel(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        _exc_type: Optional[Type[BaseException]] = None,
        _exc_value: Optional[BaseException] = None,
        _traceback: Optional[TracebackType] = None,
    ) -> bool: ...

@disjoint_base
class MeshSyncNode:
    def __new__(
        cls,
        node_id: str,
        port: int,
        sync_interval: float = 10.0,
        heartbeat_interval: float = 5.0,
        *,
        host: Optional[str] = None,
        advertise_host: Optional[str] = None,
        advertise_port: Optional[int] = None,
        cluster: Optional[str] = None,
        peer_timeout: Optional[float] = None,
        max_retries: Optional[int] = None,
        initial_rto: Optional[float] = None,
        min_rto: Optional[float] = None,
        max_rto: Optional[float] = None,
        push_delay: Optional[float] = None,
        push_fanout: Optional[int] = None,
        max_datagram_size: Optional[int] = None,
        max_probed_datagram_size: Optional[int] = None,
        max_key_len: Optional[int] = None,
        max_value_size: Optional[int] = None,
        max_in_flight: Optional[int] = None,
        max_reassembly: Optional[int] = None,
        reassembly_timeout: Optional[float] = None,
        max_clock_drift: Optional[float] = None,
        tombstone_grace: Optional[float] = None,
        max_collected_deletes: Optional[int] = None,
        max_origins: Optional[int] = None,
        max_probe_interval: Optional[float] = None,
        max_peers: Optional[int] = None,
        seed: Optional[int] = None,
        keyring: Optional[Sequence[_Key]] = None,
        data_dir: Optional[Union[str, os.PathLike[str]]] = None,
        durability: Optional[Literal["sync", "batched"]] = None,
        flush_interval: Optional[float] = None,
        compression: Optional[bool] = None,
    ) -> Self: ...
    @property
    def node_id(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def address(self) -> _Address: ...
    @property
    def advertise_address(self) -> Optional[_Address]: ...
    @property
    def running(self) -> bool: ...
    def add_bootstrap_peer(self, host: str, port: int) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def set(self, key: str, value: _ValueIn, *, ttl: Optional[float] = None) -> None: ...
    def get(self, key: str, default: Any = None) -> _Value: ...
    def delete(self, key: str) -> bool: ...
    def get_all_data(self) -> Dict[str, _Value]: ...
    def get_status(self) -> Status: ...
    def get_peers(self) -> List[PeerInfo]: ...
    def metrics(self) -> str: ...
    def install_key(self, key: _Key) -> None: ...
    def use_key(self, key: _Key) -> None: ...
    def remove_key(self, key: _Key) -> None: ...
    def list_keys(self) -> List[str]: ...
    def set_faults(
        self,
        *,
        loss_rate: float = 0.0,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        duplicate_rate: float = 0.0,
        reorder_rate: float = 0.0,
        corrupt_rate: float = 0.0,
        partitioned: Optional[Sequence[_Address]] = None,
    ) -> None: ...
    def get_faults(self) -> Faults: ...
    def get_fault_stats(self) -> FaultStats: ...
    def watch(self, prefix: str, callback: _StateChangeCallback) -> Watch: ...
    def changes(self, prefix: str = "", max_pending: int = 100000) -> Changes: ...
    def send(self, peer_id: str, data: _MessageData) -> None: ...
    def broadcast(self, data: _MessageData) -> int: ...
    def message_peers(self) -> List[str]: ...
    @property
    def on_message(self) -> Optional[_MessageCallback]: ...
    @on_message.setter
    def on_message(self, value: Optional[_MessageCallback]) -> None: ...
    @property
    def on_state_change(self) -> Optional[_StateChangeCallback]: ...
    @on_state_change.setter
    def on_state_change(self, value: Optional[_StateChangeCallback]) -> None: ...
    @property
    def on_peer_discovered(self) -> Optional[_PeerDiscoveredCallback]: ...
    @on_peer_discovered.setter
    def on_peer_discovered(self, value: Optional[_PeerDiscoveredCallback]) -> None: ...
    @property
    def on_peer_failed(self) -> Optional[_PeerCallback]: ...
    @on_peer_failed.setter
    def on_peer_failed(self, value: Optional[_PeerCallback]) -> None: ...
    @property
    def on_peer_left(self) -> Optional[_PeerCallback]: ...
    @on_peer_left.setter
    def on_peer_left(self, value: Optional[_PeerCallback]) -> None: ...
    @property
    def on_peer_recovered(self) -> Optional[_PeerCallback]: ...
    @on_peer_recovered.setter
    def on_peer_recovered(self, value: Optional[_PeerCallback]) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        _exc_type: Optional[Type[BaseException]] = None,
        _exc_value: Optional[BaseException] = None,
        _traceback: Optional[TracebackType] = None,
    ) -> bool: ...
