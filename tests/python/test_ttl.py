"""Keys with a TTL: ``set(key, value, ttl=seconds)`` expires the key on every node, an
expired key reads as missing and is reported as a delete, a later ``set`` without ``ttl``
makes it permanent, bad TTLs raise ConfigError, and a reloaded node still expires it."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, List, Tuple

import pytest
from conftest import NodeFactory
from helpers import HOST, wait_until

from mesh_sync import ConfigError, MeshSyncError, MeshSyncNode


def test_an_expired_key_reads_as_missing_everywhere(make_node: NodeFactory) -> None:
    node = make_node()
    node.set("lease", "alice", ttl=0.3)
    node.set("kept", 1)
    assert node.get("lease") == "alice"
    assert node.get_status()["data_keys"] == 2
    assert wait_until(lambda: node.get("lease") is None, timeout=10)
    assert node.get("lease", "gone") == "gone"
    assert node.get_all_data() == {"kept": 1}
    status = node.get_status()
    assert status["data_keys"] == 1
    assert status["tombstones"] == 1


def test_expiry_is_reported_once_as_a_delete(make_node: NodeFactory) -> None:
    node = make_node()
    seen: List[Tuple[str, Any, str]] = []
    watched: List[Tuple[str, Any, str]] = []
    node.on_state_change = lambda key, value, op: seen.append((key, value, op))
    with node.watch("lease", lambda key, value, op: watched.append((key, value, op))):
        node.set("lease", 1, ttl=0.2)
        # Reported by the node's own timer, without any read.
        assert wait_until(lambda: len(seen) == 2, timeout=10), seen
        time.sleep(0.3)
    assert seen == [("lease", 1, "set"), ("lease", None, "delete")]
    assert watched == seen


def test_a_later_set_without_ttl_is_permanent(make_node: NodeFactory) -> None:
    node = make_node()
    node.set("mode", "eco", ttl=0.2)
    node.set("mode", "comfort")
    time.sleep(0.5)
    assert node.get("mode") == "comfort"
    node.set("mode", "away", ttl=0.2)
    assert wait_until(lambda: node.get("mode") is None, timeout=10)
    node.set("mode", "home")
    assert node.get("mode") == "home"


@pytest.mark.parametrize(
    "ttl", [0, 0.0, -1, -0.5, math.inf, -math.inf, math.nan, 365 * 24 * 3600 + 1, 1e300]
)
def test_bad_ttls_raise_config_error_and_write_nothing(make_node: NodeFactory, ttl: float) -> None:
    node = make_node(start=False)
    with pytest.raises(ConfigError) as raised:
        node.set("k", 1, ttl=ttl)
    assert raised.value.field == "ttl"  # type: ignore[attr-defined]
    assert isinstance(raised.value, MeshSyncError)
    assert node.get("k") is None
    assert node.get_status()["state_version"] == 0


def test_ttl_must_be_a_number_given_by_keyword(make_node: NodeFactory) -> None:
    node = make_node(start=False)
    with pytest.raises(TypeError):
        node.set("k", 1, ttl="soon")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        node.set("k", 1, 5)  # type: ignore[misc]
    node.set("k", 1, ttl=365 * 24 * 3600)  # the largest accepted
    node.set("j", 1, ttl=1)  # an int is fine
    node.set("n", 1, ttl=None)  # None: no TTL
    assert node.get_all_data() == {"k": 1, "j": 1, "n": 1}


@pytest.mark.slow
def test_the_key_expires_on_every_node(make_cluster: Any) -> None:
    a, b, c = make_cluster(3, prefix="ttl")
    a.set("lease", "alice", ttl=600)
    assert wait_until(lambda: b.get("lease") == "alice" and c.get("lease") == "alice")
    # Shortened by a later write: every node expires it.
    a.set("lease", "bob", ttl=1.0)
    assert wait_until(lambda: all(n.get("lease") is None for n in (a, b, c)))
    # The same (empty) state everywhere, and the same tombstone count.
    assert a.get_all_data() == b.get_all_data() == c.get_all_data() == {}


def test_a_reloaded_node_still_expires_the_key(tmp_path: Path) -> None:
    with MeshSyncNode("t1", 0, host=HOST, data_dir=tmp_path, durability="sync") as node:
        node.set("lease", "alice", ttl=1.0)
        node.set("kept", 1)
    node = MeshSyncNode("t1", 0, host=HOST, data_dir=tmp_path)
    try:
        assert node.get("lease") == "alice"
        assert wait_until(lambda: node.get("lease") is None, timeout=20)
        assert node.get_all_data() == {"kept": 1}
    finally:
        node.stop()
    node = MeshSyncNode("t1", 0, host=HOST, data_dir=tmp_path)
    try:
        assert node.get("lease") is None
    finally:
        node.stop()
