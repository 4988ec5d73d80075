"""Helpers for testing applications built on mesh-sync.

:class:`UnreliableNetworkSimulator` makes one node's network lossy, slow, duplicating,
reordering or partitioned, using the fault injection built into the node's socket layer,
so the real protocol is exercised exactly as it runs in production.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Dict, FrozenSet, Optional, Tuple, Type, Union

from ._mesh_sync import MeshSyncNode

__all__ = ["UnreliableNetworkSimulator"]

Address = Tuple[str, int]
Peer = Union[MeshSyncNode, Address]


def _peer_address(peer: Peer) -> Address:
    if isinstance(peer, MeshSyncNode):
        host, port = peer.address
        # A node bound to every interface is reached, and heard from, on loopback here.
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        return (host, port)
    host, port = peer
    return (str(host), int(port))


class UnreliableNetworkSimulator:
    """Degrades the network of ``node`` until :meth:`restore` (or the end of a ``with``).

    Loss, latency, jitter, duplication, reordering and corruption apply to the datagrams
    the node sends; a partition cuts the node from the given peers in both directions.
    Every attribute can be changed while the node runs and takes effect at once.

    >>> sim = UnreliableNetworkSimulator(node, packet_loss_rate=0.3)
    >>> sim.latency_ms = 20
    >>> sim.partition_from(other_node)
    >>> sim.heal()
    >>> sim.get_stats()["drop_rate"]
    """

    def __init__(
        self,
        node: MeshSyncNode,
        packet_loss_rate: float = 0.2,
        latency_ms: float = 0.0,
        *,
        jitter_ms: float = 0.0,
        duplicate_rate: float = 0.0,
        reorder_rate: float = 0.0,
        corrupt_rate: float = 0.0,
    ) -> None:
        self._node = node
        self._lock = threading.Lock()
        self._settings: Dict[str, float] = {
            "loss_rate": float(packet_loss_rate),
            "latency_ms": float(latency_ms),
            "jitter_ms": float(jitter_ms),
            "duplicate_rate": float(duplicate_rate),
            "reorder_rate": float(reorder_rate),
            "corrupt_rate": float(corrupt_rate),
        }
        self._partitioned: FrozenSet[Address] = frozenset()
        self._apply()

    @property
    def node(self) -> MeshSyncNode:
        """The node whose network is degraded."""
        return self._node

    def _apply(self) -> None:
        s = self._settings
        self._node.set_faults(
            loss_rate=s["loss_rate"],
            latency_ms=s["latency_ms"],
            jitter_ms=s["jitter_ms"],
            duplicate_rate=s["duplicate_rate"],
            reorder_rate=s["reorder_rate"],
            corrupt_rate=s["corrupt_rate"],
            partitioned=sorted(self._partitioned),
        )

    def _update(self, name: str, value: float) -> None:
        with self._lock:
            previous = self._settings[name]
            self._settings[name] = float(value)
            try:
                self._apply()
            except Exception:
                self._settings[name] = previous
                raise

    @property
    def packet_loss_rate(self) -> float:
        """Probability in [0, 1] that a sent datagram is lost."""
        return self._settings["loss_rate"]

    @packet_loss_rate.setter
    def packet_loss_rate(self, value: float) -> None:
        self._update("loss_rate", value)

    @property
    def latency_ms(self) -> float:
        """Delay added to every sent datagram, in milliseconds."""
        return self._settings["latency_ms"]

    @latency_ms.setter
    def latency_ms(self, value: float) -> None:
        self._update("latency_ms", value)

    @property
    def jitter_ms(self) -> float:
        """Random extra delay, uniform in [0, jitter_ms]."""
        return self._settings["jitter_ms"]

    @jitter_ms.setter
    def jitter_ms(self, value: float) -> None:
        self._update("jitter_ms", value)

    @property
    def duplicate_rate(self) -> float:
        """Probability that a sent datagram is delivered twice."""
        return self._settings["duplicate_rate"]

    @duplicate_rate.setter
    def duplicate_rate(self, value: float) -> None:
        self._update("duplicate_rate", value)

    @property
    def reorder_rate(self) -> float:
        """Probability that a sent datagram is held back so later ones overtake it."""
        return self._settings["reorder_rate"]

    @reorder_rate.setter
    def reorder_rate(self, value: float) -> None:
        self._update("reorder_rate", value)

    @property
    def corrupt_rate(self) -> float:
        """Probability that one bit of a sent datagram is flipped."""
        return self._settings["corrupt_rate"]

    @corrupt_rate.setter
    def corrupt_rate(self, value: float) -> None:
        self._update("corrupt_rate", value)

    @property
    def partitioned(self) -> FrozenSet[Address]:
        """The (host, port) addresses the node is currently cut from."""
        return self._partitioned

    def partition_from(self, *peers: Peer) -> None:
        """Cuts the node from ``peers`` (nodes or (host, port) pairs), both directions."""
        with self._lock:
            previous = self._partitioned
            self._partitioned = previous | {_peer_address(p) for p in peers}
            try:
                self._apply()
            except Exception:
                self._partitioned = previous
                raise

    def heal(self, *peers: Peer) -> None:
        """Reconnects the node to ``peers``, or to every peer when none is given."""
        with self._lock:
            previous = self._partitioned
            if peers:
                self._partitioned = previous - {_peer_address(p) for p in peers}
            else:
                self._partitioned = frozenset()
            try:
                self._apply()
            except Exception:
                self._partitioned = previous
                raise

    def restore(self) -> None:
        """Gives the node a perfect network again (no fault, no partition)."""
        with self._lock:
            for name in self._settings:
                self._settings[name] = 0.0
            self._partitioned = frozenset()
            self._apply()

    def get_stats(self) -> Dict[str, float]:
        """Counters since the node was created: packets_sent, packets_dropped (lost),
        drop_rate (lost / sent), packets_partitioned (both directions), packets_delayed,
        packets_duplicated, packets_reordered, packets_corrupted."""
        raw = self._node.get_fault_stats()
        sent = raw["packets_sent"]
        dropped = raw["packets_dropped"]
        return {
            "packets_sent": sent,
            "packets_dropped": dropped,
            "drop_rate": dropped / sent if sent else 0.0,
            "packets_partitioned": raw["packets_partitioned"],
            "packets_delayed": raw["packets_delayed"],
            "packets_duplicated": raw["packets_duplicated"],
            "packets_reordered": raw["packets_reordered"],
            "packets_corrupted": raw["packets_corrupted"],
        }

    def __enter__(self) -> UnreliableNetworkSimulator:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.restore()

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v:g}" for k, v in self._settings.items() if v)
        partition = f", partitioned={sorted(self._partitioned)}" if self._partitioned else ""
        return (
            f"UnreliableNetworkSimulator(node={self._node.node_id!r}"
            f"{', ' + settings if settings else ''}{partition})"
        )
