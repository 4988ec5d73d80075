"""Helpers shared by the tests: waiting, convergence checks, descriptions."""

from __future__ import annotations

import time
from typing import Any, Callable, List

from mesh_sync import MeshSyncNode

HOST = "127.0.0.1"

#: Options of every test node: fast heartbeats, fast anti-entropy, fast failure detection.
FAST = dict(sync_interval=0.5, heartbeat_interval=0.2, peer_timeout=1.0, host=HOST)

#: Upper bound of any wait for convergence. Convergence usually takes milliseconds to a
#: few seconds; the margin is for slow, shared CI machines.
CONVERGE_TIMEOUT = 60.0


def wait_until(
    predicate: Callable[[], Any], timeout: float = CONVERGE_TIMEOUT, interval: float = 0.02
) -> bool:
    """Polls ``predicate`` until it is true; returns whether it became true in time."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def converged(nodes: List[MeshSyncNode]) -> bool:
    """Whether every node holds the same live data."""
    first = nodes[0].get_all_data()
    return all(node.get_all_data() == first for node in nodes[1:])


def describe(nodes: List[MeshSyncNode]) -> str:
    """A short account of each node's data and peers, for assertion messages."""
    lines = []
    for node in nodes:
        status = node.get_status()
        lines.append(
            f"{node.node_id}: {status['data_keys']} keys, peers={status['peers']}, "
            f"pending_acks={status['pending_acks']}"
        )
    return "\n".join(lines)


def fully_connected(nodes: List[MeshSyncNode]) -> bool:
    """Whether every node sees every other node alive."""
    want = len(nodes) - 1
    return all(node.get_status()["peers"]["alive_peers"] >= want for node in nodes)
