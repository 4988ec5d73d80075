"""User messages: send, broadcast and on_message; ordered, reliable, never stored."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, List, Tuple

import pytest
from helpers import wait_until

import mesh_sync
from mesh_sync import (
    MeshSyncError,
    MeshSyncNode,
    MessageTooLargeError,
    NodeStoppedError,
    PeerNotFoundError,
    QueueFullError,
    ValueTooLargeError,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"

Cluster = Callable[..., List[MeshSyncNode]]


class Inbox:
    """An on_message callback recording what it got."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.got: List[Tuple[str, bytes]] = []
        self.threads: set[str] = set()

    def __call__(self, sender: str, data: bytes) -> None:
        with self.lock:
            self.got.append((sender, data))
            self.threads.add(threading.current_thread().name)

    def count(self) -> int:
        with self.lock:
            return len(self.got)

    def from_(self, sender: str) -> List[bytes]:
        with self.lock:
            return [d for s, d in self.got if s == sender]


def connected(nodes: List[MeshSyncNode]) -> bool:
    return all(len(n.message_peers()) == len(nodes) - 1 for n in nodes)


def test_many_messages_arrive_in_send_order(make_cluster: Cluster) -> None:
    a, b = make_cluster(2)
    inbox = Inbox()
    b.on_message = inbox
    assert b.on_message is inbox
    assert wait_until(lambda: connected([a, b]))
    sent = [f"message {i}".encode() * (1 + i % 7) for i in range(1000)]
    for data in sent:
        a.send("node1", data)
    assert wait_until(lambda: inbox.count() == len(sent)), inbox.count()
    assert inbox.from_("node0") == sent
    assert b.get_all_data() == {} and a.get_all_data() == {}, "messages are not state"
    status = b.get_status()
    assert status["counters"]["messages_received"] == len(sent)
    assert status["counters"]["dropped"]["messages"] == 0
    assert a.get_status()["counters"]["messages_sent"] == len(sent)


def test_messages_run_on_the_callback_thread_in_order_with_state_changes(
    make_cluster: Cluster,
) -> None:
    a, b = make_cluster(2)
    events: List[str] = []
    lock = threading.Lock()

    def on_state(key: str, value: object, op: str) -> None:
        with lock:
            events.append(f"state {key}")

    def on_message(sender: str, data: bytes) -> None:
        with lock:
            events.append(f"message {data.decode()}")

    b.on_state_change = on_state
    b.on_message = on_message
    assert wait_until(lambda: connected([a, b]))
    a.set("k", 1)
    assert wait_until(lambda: b.get("k") == 1)
    a.send("node1", b"after k")
    assert wait_until(lambda: "message after k" in events)
    assert events.index("state k") < events.index("message after k")


def test_a_large_message_travels_in_fragments(make_cluster: Cluster) -> None:
    a, b = make_cluster(2)
    inbox = Inbox()
    b.on_message = inbox
    assert wait_until(lambda: connected([a, b]))
    large = bytes(range(256)) * 8000  # 2 MB: thousands of datagrams
    a.send("node1", large)
    a.send("node1", bytearray(b"small after large"))
    a.send("node1", memoryview(b"and a view"))
    assert wait_until(lambda: inbox.count() == 3)
    assert inbox.from_("node0") == [large, b"small after large", b"and a view"]


def test_broadcast_reaches_every_peer(make_cluster: Cluster) -> None:
    nodes = make_cluster(4)
    inboxes = [Inbox() for _ in nodes]
    for node, inbox in zip(nodes, inboxes):
        node.on_message = inbox
    assert wait_until(lambda: connected(nodes))
    assert nodes[0].broadcast(b"hello everyone") == 3
    for inbox in inboxes[1:]:
        assert wait_until(lambda: inbox.count() == 1)
        assert inbox.got == [("node0", b"hello everyone")]
    assert inboxes[0].count() == 0, "not to itself"


def test_unknown_peer_is_an_error(make_node: Callable[..., MeshSyncNode]) -> None:
    node = make_node("alone")
    with pytest.raises(PeerNotFoundError) as info:
        node.send("nobody", b"hi")
    assert "nobody" in str(info.value)
    assert isinstance(info.value, MeshSyncError)
    assert node.broadcast(b"hi") == 0
    node.stop()
    with pytest.raises(NodeStoppedError):
        node.send("nobody", b"hi")


def test_too_large_is_an_error(make_cluster: Cluster) -> None:
    a, b = make_cluster(2, max_value_size=1000)
    assert wait_until(lambda: connected([a, b]))
    a.send("node1", b"x" * 1000)
    with pytest.raises(MessageTooLargeError):
        a.send("node1", b"x" * 1001)
    with pytest.raises(ValueTooLargeError):
        a.broadcast(b"x" * 1001)


def test_wrong_types_raise_type_error(make_node: Callable[..., MeshSyncNode]) -> None:
    node = make_node("typed")
    with pytest.raises(TypeError):
        node.send("peer", "text, not bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        node.send(42, b"data")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        node.broadcast(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        node.on_message = "not callable"  # type: ignore[assignment]
    node.on_message = None
    assert node.on_message is None


def test_errors_are_exported() -> None:
    for name in ("PeerNotFoundError", "MessageTooLargeError", "QueueFullError"):
        assert name in mesh_sync.__all__
    assert issubclass(QueueFullError, MeshSyncError)
    assert issubclass(MessageTooLargeError, ValueTooLargeError)


def test_chat_example_demo_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "chat.py"), "--demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "[bob] <alice> just between us, bob" in out
    assert "[carol] <bob> hello from bob" in out
    assert "demo done: every line arrived, 0 keys stored" in out
