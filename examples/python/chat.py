"""A small chat over mesh-sync messages: lines go to peers, never into the shared state.

Interactive, one node per terminal::

    python chat.py alice --port 9000
    python chat.py bob --port 9001 --peer 127.0.0.1:9000

Each line typed is broadcast to every alive peer; ``/to NAME text`` sends to one peer;
``/who`` lists the peers; ``/quit`` (or Ctrl-D) leaves. Received lines print as
``<sender> text``.

Demo, three nodes in one process exchanging a few lines, then exiting::

    python chat.py --demo
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Dict, List, Optional, Tuple

from mesh_sync import MeshSyncError, MeshSyncNode


def make_node(name: str, port: int, host: str = "0.0.0.0") -> MeshSyncNode:
    """A node with short heartbeats, so peers find each other within a second."""
    return MeshSyncNode(
        name, port, sync_interval=1.0, heartbeat_interval=0.2, host=host, peer_timeout=1.0
    )


class Printer:
    """An ``on_message`` callback printing ``<sender> text`` lines."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.lines: List[Tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, sender: str, data: bytes) -> None:
        text = data.decode("utf-8", errors="replace")
        with self.lock:
            self.lines.append((sender, text))
        print(f"{self.prefix}<{sender}> {text}", flush=True)

    def count(self) -> int:
        with self.lock:
            return len(self.lines)


def parse_peer(text: str) -> Tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def wait_for_peers(node: MeshSyncNode, count: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while len(node.message_peers()) < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def demo() -> int:
    """Three nodes in one process: everyone greets everyone, then alice whispers to bob."""
    names = ["alice", "bob", "carol"]
    nodes: Dict[str, MeshSyncNode] = {}
    inboxes: Dict[str, Printer] = {}
    try:
        for name in names:
            node = make_node(name, 0, host="127.0.0.1")
            inboxes[name] = Printer(f"[{name}] ")
            node.on_message = inboxes[name]
            if nodes:
                node.add_bootstrap_peer("127.0.0.1", nodes["alice"].port)
            node.start()
            nodes[name] = node
        for node in nodes.values():
            if not wait_for_peers(node, len(names) - 1):
                print(f"{node.node_id} did not see its peers", file=sys.stderr)
                return 1
        for name, node in nodes.items():
            sent = node.broadcast(f"hello from {name}".encode())
            print(f"{name} said hello to {sent} peers", flush=True)
        nodes["alice"].send("bob", "just between us, bob".encode())
        expected = {"alice": 2, "bob": 3, "carol": 2}
        deadline = time.monotonic() + 30
        while any(inboxes[n].count() < c for n, c in expected.items()):
            if time.monotonic() > deadline:
                print("not every line arrived", file=sys.stderr)
                return 1
            time.sleep(0.02)
        keys = sum(len(node.get_all_data()) for node in nodes.values())
        print(f"demo done: every line arrived, {keys} keys stored (messages are not state)")
        return 0
    finally:
        for node in nodes.values():
            node.stop()


def interactive(name: str, port: int, peer: Optional[str]) -> int:
    node = make_node(name, port)
    node.on_message = Printer("")
    if peer:
        host, peer_port = parse_peer(peer)
        node.add_bootstrap_peer(host, peer_port)
    with node:
        print(f"{name} listening on port {node.port}; type a line to send it", flush=True)
        for line in sys.stdin:
            line = line.rstrip("\n")
            try:
                if line in ("/quit", "/exit"):
                    break
                if line == "/who":
                    print(", ".join(node.message_peers()) or "(nobody yet)", flush=True)
                elif line.startswith("/to "):
                    _, target, text = (line.split(" ", 2) + [""])[:3]
                    node.send(target, text.encode())
                elif line:
                    sent = node.broadcast(line.encode())
                    if sent == 0:
                        print("(nobody to send to yet)", flush=True)
            except MeshSyncError as err:
                print(f"error: {err}", flush=True)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("name", nargs="?", help="this node's id")
    parser.add_argument("--port", type=int, default=0, help="UDP port (0: any)")
    parser.add_argument("--peer", help="HOST:PORT of a node to join")
    parser.add_argument("--demo", action="store_true", help="run the three-node demo")
    args = parser.parse_args(argv)
    if args.demo:
        return demo()
    if not args.name:
        parser.error("a name is needed (or --demo)")
    return interactive(args.name, args.port, args.peer)


if __name__ == "__main__":
    sys.exit(main())
