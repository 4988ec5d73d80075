"""The prototype's timing (a local write's callback has run when ``set`` returns), watches
by prefix, and ``async for`` over a node's changes."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
import weakref
from typing import Any, List, Tuple

import pytest
from helpers import HOST, wait_until

from mesh_sync import Changes, ChangesLostError, MeshSyncNode, Watch

#: Long enough that a write returning before its callback ran cannot go unnoticed.
SLOW = 0.03


class SlowRecorder:
    """Records calls after a pause, like an application callback doing real work."""

    def __init__(self) -> None:
        self.calls: List[Tuple[Any, ...]] = []
        self.lock = threading.Lock()

    def __call__(self, *args: Any) -> None:
        time.sleep(SLOW)
        with self.lock:
            self.calls.append(args)

    def snapshot(self) -> List[Tuple[Any, ...]]:
        with self.lock:
            return list(self.calls)


@pytest.mark.parametrize("started", [False, True])
def test_set_and_delete_return_after_on_state_change_ran(make_node, started: bool) -> None:
    node = make_node(start=started)
    seen = SlowRecorder()
    node.on_state_change = seen
    node.set("temperature", 72.5)
    # What the prototype's users do: look at what the callback saw right after set().
    assert seen.snapshot() == [("temperature", 72.5, "set")]
    assert node.delete("temperature")
    assert seen.snapshot()[-1] == ("temperature", None, "delete")


def test_the_writing_thread_lets_the_callback_thread_hold_the_interpreter(make_node) -> None:
    # The callback needs the interpreter lock while set() waits for it: set() must not
    # keep it. A callback that also does pure Python work shows that it could run.
    node = make_node()
    seen = []

    def busy(key: str, value: object, op: str) -> None:
        total = sum(range(20_000))
        seen.append((key, total))

    node.on_state_change = busy
    for i in range(50):
        node.set(f"k{i}", i)
        assert seen[-1] == (f"k{i}", sum(range(20_000)))


def test_a_set_from_inside_a_callback_returns_at_once(make_node) -> None:
    node = make_node()
    seen: List[Tuple[str, object, str]] = []

    def echo(key: str, value: object, op: str) -> None:
        seen.append((key, value, op))
        if key == "ping":
            node.set("pong", 1)  # on the callback thread: must not wait for itself

    node.on_state_change = echo
    done = threading.Event()
    writer = threading.Thread(target=lambda: (node.set("ping", 0), done.set()))
    writer.start()
    assert done.wait(20), "set() whose callback writes did not return: deadlock"
    writer.join()
    assert wait_until(lambda: len(seen) == 2)
    assert [k for k, _, _ in seen] == ["ping", "pong"]


def test_a_watch_sees_only_its_prefix(make_node) -> None:
    a = make_node("a")
    b = make_node("b", start=False)
    b.add_bootstrap_peer(HOST, a.port)
    b.start()
    local = SlowRecorder()
    remote = SlowRecorder()
    watch = a.watch("sensor/", local)
    b.watch("sensor/", remote)  # the handle is not kept: the watch stays registered
    assert isinstance(watch, Watch) and watch.active and watch.prefix == "sensor/"

    a.set("sensor/temp", 21)
    assert local.snapshot() == [("sensor/temp", 21, "set")]
    a.set("door/front", "open")
    a.set("sensors", 1)
    assert wait_until(lambda: b.get("sensors") == 1)
    assert wait_until(lambda: remote.snapshot() == [("sensor/temp", 21, "sync")])
    a.delete("sensor/temp")
    assert local.snapshot()[-1] == ("sensor/temp", None, "delete")
    assert wait_until(lambda: len(remote.snapshot()) == 2)
    assert remote.snapshot()[-1] == ("sensor/temp", None, "sync")
    assert len(local.snapshot()) == 2


def test_cancel_and_context_manager_stop_a_watch(make_node) -> None:
    node = make_node()
    kept, cancelled, scoped = SlowRecorder(), SlowRecorder(), SlowRecorder()
    node.watch("k", kept)
    watch = node.watch("k", cancelled)
    with node.watch("", scoped) as inside:
        assert inside.active
        node.set("k1", 1)
    assert not inside.active
    node.set("k2", 2)
    watch.cancel()
    watch.cancel()  # idempotent
    assert not watch.active
    node.set("k3", 3)
    assert [c[0] for c in kept.snapshot()] == ["k1", "k2", "k3"]
    assert [c[0] for c in cancelled.snapshot()] == ["k1", "k2"]
    assert [c[0] for c in scoped.snapshot()] == ["k1"]
    assert "active=False" in repr(watch)


def test_watch_rejects_what_is_not_callable(make_node) -> None:
    node = make_node()
    with pytest.raises(TypeError, match="callable"):
        node.watch("k", 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        node.watch(b"k", print)  # type: ignore[arg-type]


def test_a_failing_watch_is_logged_and_the_others_run(make_node, caplog) -> None:
    node = make_node()
    caplog.set_level(logging.ERROR, logger="mesh_sync")
    ok = SlowRecorder()

    def broken(key: str, value: object, op: str) -> None:
        raise ValueError("watch bug")

    node.watch("", broken)
    node.watch("", ok)
    node.set("k", 1)
    assert ok.snapshot() == [("k", 1, "set")]
    assert any(
        "watch callback" in r.getMessage() and r.exc_info and "watch bug" in str(r.exc_info[1])
        for r in caplog.records
    ), [r.getMessage() for r in caplog.records]


def test_a_node_referenced_by_its_watch_is_collected() -> None:
    node = MeshSyncNode("cycle", 0, host=HOST)
    node.start()
    node.watch("", lambda key, value, op: node.get(key))
    ref = weakref.ref(node)
    node.stop()
    del node
    gc.collect()
    assert ref() is None


def test_changes_are_iterated_from_asyncio_without_blocking_the_loop(make_node) -> None:
    a = make_node("a")
    b = make_node("b", start=False)
    b.add_bootstrap_peer(HOST, a.port)
    b.start()

    async def main() -> List[Tuple[str, Any, str]]:
        got: List[Tuple[str, Any, str]] = []
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        tick_task = asyncio.ensure_future(ticker())
        async with b.changes("room/") as changes:
            assert isinstance(changes, Changes) and changes.prefix == "room/"
            # Written by another node: the changes arrive while the loop keeps running.
            a.set("room/1", "lit")
            a.set("hall", 0)
            a.set("room/2", "dark")
            async for change in changes:
                got.append(change)
                if len(got) == 2:
                    break
        tick_task.cancel()
        assert ticks > 0
        return got

    got = asyncio.run(asyncio.wait_for(main(), 30))
    assert got == [("room/1", "lit", "sync"), ("room/2", "dark", "sync")]


def test_closing_changes_ends_the_iteration_after_what_was_queued(make_node) -> None:
    node = make_node()

    async def main() -> List[Tuple[str, Any, str]]:
        changes = node.changes()
        node.set("x", 1)  # its change is handed to the loop before set() returns
        node.set("y", 2)
        await changes.aclose()
        node.set("z", 3)  # after close: not seen
        return [change async for change in changes]

    assert asyncio.run(main()) == [("x", 1, "set"), ("y", 2, "set")]


def test_changes_need_a_running_event_loop(make_node) -> None:
    node = make_node()
    with pytest.raises(RuntimeError):
        node.changes("k")


def test_a_consumer_that_falls_behind_is_told_what_it_lost(make_node) -> None:
    node = make_node()

    async def main() -> Tuple[List[Tuple[str, Any, str]], int, List[Tuple[str, Any, str]]]:
        async with node.changes("k", max_pending=10) as changes:
            # Nothing is consumed while 50 changes happen: 10 wait, 40 are dropped.
            for i in range(50):
                node.set(f"k{i}", i)
            first = []
            with pytest.raises(ChangesLostError) as lost:
                async for change in changes:
                    first.append(change)
            # The iteration goes on with what came after the loss.
            node.set("k-after", "x")
            after = []
            async for change in changes:
                after.append(change)
                break
            return first, lost.value.lost, after

    first, lost, after = asyncio.run(asyncio.wait_for(main(), 30))
    assert first == [(f"k{i}", i, "set") for i in range(10)]
    assert lost == 40
    assert after == [("k-after", "x", "set")]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_max_pending_must_be_a_positive_int(make_node, bad: object) -> None:
    node = make_node()

    async def main() -> None:
        node.changes("k", max_pending=bad)  # type: ignore[arg-type]

    with pytest.raises((TypeError, ValueError)):
        asyncio.run(main())
