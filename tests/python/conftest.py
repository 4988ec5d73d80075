"""Shared fixtures of the mesh_sync test suite.

Every node binds 127.0.0.1 on an ephemeral port (port 0, read back from ``node.port``), so
tests never collide with each other or with anything else on the machine. Intervals are
short so that failure detection and anti-entropy happen within a second or two; waits are
"until true or timeout", generous enough for a loaded two-core machine.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Dict, Iterator, List, Optional, Protocol

import pytest
from helpers import FAST, HOST

from mesh_sync import MeshSyncNode


class NodeFactory(Protocol):
    def __call__(
        self, node_id: Optional[str] = None, *, start: bool = True, **options: Any
    ) -> MeshSyncNode: ...


@pytest.fixture
def make_node() -> Iterator[NodeFactory]:
    """Creates test nodes (started unless ``start=False``) and stops them all afterwards."""
    created: List[MeshSyncNode] = []
    counter = itertools.count(1)

    def factory(
        node_id: Optional[str] = None, *, start: bool = True, **options: Any
    ) -> MeshSyncNode:
        settings: Dict[str, Any] = dict(FAST)
        settings.update(options)
        port = settings.pop("port", 0)
        node = MeshSyncNode(node_id or f"node{next(counter)}", port, **settings)
        created.append(node)
        if start:
            node.start()
        return node

    yield factory
    for node in created:
        node.stop()


@pytest.fixture
def make_cluster(make_node: NodeFactory) -> Callable[..., List[MeshSyncNode]]:
    """Creates ``size`` started nodes that all bootstrap from the first one."""

    def factory(size: int, prefix: str = "node", **options: Any) -> List[MeshSyncNode]:
        first = make_node(f"{prefix}0", **options)
        nodes = [first]
        for i in range(1, size):
            node = make_node(f"{prefix}{i}", start=False, **options)
            node.add_bootstrap_peer(HOST, first.port)
            node.start()
            nodes.append(node)
        return nodes

    return factory
