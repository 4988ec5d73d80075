"""Durability from Python: ``data_dir`` keeps the state across restarts, ``durability``
chooses when a write is on disk, and a store that cannot be used raises StorageError."""

from __future__ import annotations

import os
import random
import string
from pathlib import Path

import pytest
from helpers import HOST, wait_until

from mesh_sync import ConfigError, MeshSyncError, MeshSyncNode, StorageError


@pytest.mark.parametrize("durability", ["sync", "batched"])
def test_state_survives_a_restart_and_reads_work_before_start(
    tmp_path: Path, durability: str
) -> None:
    with MeshSyncNode("d1", 0, host=HOST, data_dir=tmp_path, durability=durability) as node:
        node.start()
        node.set("temperature", 72.5)
        node.set("config", {"mode": "eco", "targets": [19, 21]})
        node.set("gone", 1)
        node.delete("gone")
    node = MeshSyncNode("d1", 0, host=HOST, data_dir=str(tmp_path), durability=durability)
    try:
        assert node.get("temperature") == 72.5
        assert node.get("config") == {"mode": "eco", "targets": [19, 21]}
        assert node.get("gone") is None
        storage = node.get_status()["storage"]
        assert storage is not None
        assert storage["durability"] == durability
        assert storage["loaded_entries"] == 3
        assert storage["discarded_stale"] is False
        assert storage["error"] is None
    finally:
        node.stop()


def test_without_a_data_dir_there_is_no_storage_status() -> None:
    with MeshSyncNode("m1", 0, host=HOST) as node:
        assert node.get_status()["storage"] is None


def test_a_second_node_on_one_data_dir_raises_storage_error(tmp_path: Path) -> None:
    with MeshSyncNode("l1", 0, host=HOST, data_dir=tmp_path):
        with pytest.raises(StorageError) as raised:
            MeshSyncNode("l2", 0, host=HOST, data_dir=tmp_path)
    assert isinstance(raised.value, MeshSyncError)
    assert raised.value.kind == "locked"
    assert raised.value.path == str(tmp_path / "mesh.fjall")
    assert str(tmp_path) in str(raised.value)


def test_a_damaged_store_raises_storage_error_and_is_left_in_place(tmp_path: Path) -> None:
    with MeshSyncNode("c1", 0, host=HOST, data_dir=tmp_path) as node:
        for i in range(500):
            node.set(f"key{i}", "x" * 50)
    # The first table file, written when the node closed.
    store = min((tmp_path / "mesh.fjall" / "partitions" / "entries" / "segments").iterdir())
    with open(store, "r+b") as f:
        f.write(b"\xa5" * 64)
    damaged = store.read_bytes()
    with pytest.raises(StorageError) as raised:
        MeshSyncNode("c1", 0, host=HOST, data_dir=tmp_path)
    assert raised.value.kind == "corrupted"
    assert store.read_bytes() == damaged


def test_durability_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        MeshSyncNode("x", 0, host=HOST, data_dir=tmp_path, durability="eventually")  # type: ignore[arg-type]
    assert raised.value.field == "durability"
    with pytest.raises(ConfigError) as raised:
        MeshSyncNode("x", 0, host=HOST, data_dir=tmp_path, flush_interval=0.0)
    assert raised.value.field == "flush_interval"


def test_a_restarted_node_catches_up_by_delta(tmp_path: Path) -> None:
    fast = dict(sync_interval=0.5, heartbeat_interval=0.2, peer_timeout=1.0, host=HOST)
    a = MeshSyncNode("a", 0, **fast)  # type: ignore[arg-type]
    try:
        a.start()
        # Values of their own, so compression cannot make the whole state small.
        rng = random.Random(4)
        letters = string.ascii_letters + string.digits
        for i in range(1000):
            a.set(f"key{i:05}", "".join(rng.choice(letters) for _ in range(100)))
        b = MeshSyncNode("b", 0, data_dir=tmp_path, **fast)  # type: ignore[arg-type]
        b.add_bootstrap_peer(HOST, a.port)
        b.start()
        assert wait_until(lambda: len(b.get_all_data()) == 1000)
        full = b.get_status()["counters"]["bytes_received"]
        b.stop()
        for i in range(5):
            a.set(f"missed{i}", i)
        b = MeshSyncNode("b", 0, data_dir=os.fspath(tmp_path), **fast)  # type: ignore[arg-type]
        assert len(b.get_all_data()) == 1000
        b.add_bootstrap_peer(HOST, a.port)
        b.start()
        assert wait_until(lambda: len(b.get_all_data()) == 1005)
        delta = b.get_status()["counters"]["bytes_received"]
        b.stop()
        assert full > 60_000, full
        assert delta < 20_000, (full, delta)
    finally:
        a.stop()


# Short enough intervals that a tombstone is collected within a second or two, once a
# node's warm-up (20 heartbeats) and two sync rounds have passed.
COLLECTING = dict(sync_interval=0.1, heartbeat_interval=0.05, peer_timeout=0.5)


@pytest.mark.parametrize("cap", [None, 0])
def test_collected_deletes_are_remembered_across_a_restart_unless_the_cap_is_zero(
    tmp_path: Path, cap: int | None
) -> None:
    options = {} if cap is None else {"max_collected_deletes": cap}
    peer = MeshSyncNode("confirmer", 0, host=HOST, **COLLECTING)
    try:
        with MeshSyncNode(
            "collector", 0, host=HOST, data_dir=tmp_path, **COLLECTING, **options
        ) as node:
            node.add_bootstrap_peer(HOST, peer.port)
            node.start()
            peer.start()
            node.set("k", 1)
            node.delete("k")
            assert wait_until(lambda: node.get_status()["tombstones"] == 0)
            remembered = node.get_status()["collected_deletes"]
            assert remembered == (1 if cap is None else 0)
        again = MeshSyncNode("collector", 0, host=HOST, data_dir=tmp_path, **COLLECTING)
        try:
            status = again.get_status()
            assert (status["tombstones"], status["collected_deletes"]) == (0, remembered)
            assert again.get("k") is None
        finally:
            again.stop()
    finally:
        peer.stop()
