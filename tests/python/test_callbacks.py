"""Callbacks: local and remote changes, peer events, exceptions, re-entrancy."""

from __future__ import annotations

import gc
import logging
import threading
import weakref
from typing import Any, List, Tuple

import pytest
from helpers import HOST, fully_connected, wait_until

from mesh_sync import MeshSyncNode
from mesh_sync.testing import UnreliableNetworkSimulator


class Recorder:
    """Collects callback invocations from the callback thread."""

    def __init__(self) -> None:
        self.calls: List[Tuple[Any, ...]] = []
        self.threads: set = set()
        self.lock = threading.Lock()

    def __call__(self, *args: Any) -> None:
        with self.lock:
            self.calls.append(args)
            self.threads.add(threading.get_ident())

    def snapshot(self) -> List[Tuple[Any, ...]]:
        with self.lock:
            return list(self.calls)


def test_local_set_and_delete_are_reported_in_order(make_node) -> None:
    node = make_node()
    changes = Recorder()
    node.on_state_change = changes
    assert node.on_state_change is changes
    node.set("a", 1)
    node.set("a", {"x": [1, 2]})
    node.delete("a")
    expected = [("a", 1, "set"), ("a", {"x": [1, 2]}, "set"), ("a", None, "delete")]
    assert wait_until(lambda: changes.snapshot() == expected), changes.snapshot()
    # Called from the node's callback thread, never from the caller's.
    assert threading.get_ident() not in changes.threads


def test_remote_changes_are_reported_as_sync(make_node) -> None:
    a = make_node("a")
    b = make_node("b", start=False)
    changes = Recorder()
    b.on_state_change = changes
    b.add_bootstrap_peer(HOST, a.port)
    b.start()
    a.set("temperature", 72.5)
    assert wait_until(lambda: ("temperature", 72.5, "sync") in changes.snapshot())
    a.delete("temperature")
    assert wait_until(lambda: ("temperature", None, "sync") in changes.snapshot())
    assert all(op == "sync" for _, _, op in changes.snapshot())


def test_peer_discovered_gets_id_and_address(make_node) -> None:
    a = make_node("a")
    b = make_node("b", start=False)
    discovered = Recorder()
    b.on_peer_discovered = discovered
    b.add_bootstrap_peer(HOST, a.port)
    b.start()
    assert wait_until(lambda: discovered.snapshot() == [("a", (HOST, a.port))]), discovered.calls


def test_peer_failed_and_recovered_through_a_partition(make_node) -> None:
    a = make_node("a")
    b = make_node("b", start=False)
    b.add_bootstrap_peer(HOST, a.port)
    b.start()
    assert wait_until(lambda: fully_connected([a, b]))
    failed, recovered = Recorder(), Recorder()
    a.on_peer_failed = failed
    a.on_peer_recovered = recovered

    sim = UnreliableNetworkSimulator(b, packet_loss_rate=0.0)
    sim.partition_from(a)
    assert wait_until(lambda: failed.snapshot() == [("b",)]), failed.snapshot()
    assert a.get_status()["peers"]["dead_peers"] == 1

    sim.heal()
    assert wait_until(lambda: recovered.snapshot() == [("b",)]), recovered.snapshot()
    assert wait_until(lambda: a.get_status()["peers"]["alive_peers"] == 1)


def test_peer_left_is_reported_at_once_when_a_peer_stops(make_node) -> None:
    # A long peer_timeout: only the leave announcement can report b within the wait.
    a = make_node("a", peer_timeout=60.0)
    b = make_node("b", start=False, peer_timeout=60.0)
    b.add_bootstrap_peer(HOST, a.port)
    b.start()
    assert wait_until(lambda: fully_connected([a, b]))
    left, failed = Recorder(), Recorder()
    a.on_peer_left = left
    a.on_peer_failed = failed
    b.stop()
    assert wait_until(lambda: left.snapshot() == [("b",)], timeout=5.0), left.snapshot()
    assert failed.snapshot() == []
    assert a.get_status()["peers"]["alive_peers"] == 0


def test_callback_exception_is_logged_and_the_node_keeps_working(make_node, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="mesh_sync")
    a = make_node("a")
    b = make_node("b", start=False)
    b.add_bootstrap_peer(HOST, a.port)
    seen = Recorder()

    def explode(key: str, value: Any, op: str) -> None:
        seen(key, value, op)
        raise RuntimeError(f"boom on {key}")

    b.on_state_change = explode
    b.start()
    a.set("first", 1)
    a.set("second", 2)
    assert wait_until(lambda: len(seen.snapshot()) == 2)
    assert wait_until(lambda: len([r for r in caplog.records if "boom" in str(r.exc_info)]) == 2)
    record = caplog.records[0]
    assert record.name == "mesh_sync"
    assert record.levelno == logging.ERROR
    assert "on_state_change" in record.getMessage() and "'b'" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert record.exc_info[2] is not None  # the traceback of the callback

    # Still syncing and still calling back.
    b.on_state_change = seen
    a.set("third", 3)
    assert wait_until(lambda: b.get("third") == 3)
    assert wait_until(lambda: ("third", 3, "sync") in seen.snapshot())


def test_base_exceptions_in_callbacks_do_not_kill_the_node(make_node, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="mesh_sync")
    node = make_node()

    def leave(key: str, value: Any, op: str) -> None:
        raise SystemExit(3)

    node.on_state_change = leave
    node.set("k", 1)
    assert wait_until(lambda: any(r.exc_info and r.exc_info[0] is SystemExit for r in caplog.records))
    changes = Recorder()
    node.on_state_change = changes
    node.set("k", 2)
    assert wait_until(lambda: changes.snapshot() == [("k", 2, "set")])


def test_wrong_callback_signature_is_reported_not_fatal(make_node, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="mesh_sync")
    node = make_node()
    node.on_state_change = lambda key: None  # too few parameters
    node.set("k", 1)
    assert wait_until(lambda: any(r.exc_info and r.exc_info[0] is TypeError for r in caplog.records))


def test_callbacks_may_call_back_into_the_node(make_node) -> None:
    a = make_node("a")
    b = make_node("b", start=False)
    b.add_bootstrap_peer(HOST, a.port)
    b.start()

    def echo(key: str, value: Any, op: str) -> None:
        # A remote change triggers a local write: reads and writes from the callback thread.
        if op == "sync" and key.startswith("ping"):
            assert b.get(key) == value
            b.set("pong" + key[4:], value * 2)
            b.get_status()
            b.get_all_data()

    b.on_state_change = echo
    for i in range(20):
        a.set(f"ping{i}", i)
    assert wait_until(lambda: all(a.get(f"pong{i}") == 2 * i for i in range(20))), a.get_all_data()


def test_stop_from_inside_a_callback(make_node) -> None:
    node = make_node()
    done = threading.Event()

    def stop_here(key: str, value: Any, op: str) -> None:
        node.stop()
        done.set()

    node.on_state_change = stop_here
    node.set("k", 1)
    assert done.wait(30)
    assert wait_until(lambda: not node.running)


def test_removing_callbacks_stops_calls(make_node) -> None:
    node = make_node()
    changes = Recorder()
    node.on_state_change = changes
    node.set("a", 1)
    assert wait_until(lambda: len(changes.snapshot()) == 1)
    node.on_state_change = None
    assert node.on_state_change is None
    node.set("b", 2)
    # A marker through a fresh callback proves that the queue was drained past "b".
    marker = Recorder()
    node.on_state_change = marker
    node.set("c", 3)
    assert wait_until(lambda: marker.snapshot() == [("c", 3, "set")])
    assert changes.snapshot() == [("a", 1, "set")]


def test_non_callable_callback_is_rejected(make_node) -> None:
    node = make_node(start=False)
    with pytest.raises(TypeError, match="on_peer_failed must be callable"):
        node.on_peer_failed = 42  # type: ignore[assignment]


def test_pending_callbacks_run_before_stop_returns(make_node) -> None:
    node = make_node()
    changes = Recorder()
    node.on_state_change = changes
    for i in range(200):
        node.set(f"k{i}", i)
    node.stop()
    assert len(changes.snapshot()) == 200


def test_node_referenced_by_its_own_callback_is_collected(make_node) -> None:
    node = MeshSyncNode("cyclic", 0, host=HOST)
    node.start()
    # The callback holds the node through its default argument: a reference cycle that
    # passes through the native object, which only the garbage collector can break.
    node.on_state_change = lambda key, value, op, n=node: n.get(key)
    ref = weakref.ref(node)
    port = node.port
    del node
    gc.collect()
    assert ref() is None
    # Collection stopped it and released the port.
    reused = make_node(port=port)
    assert reused.port == port
