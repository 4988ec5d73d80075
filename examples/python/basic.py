"""An interactive mesh-sync node.

    python examples/python/basic.py node1 5001
    python examples/python/basic.py node2 5002 localhost 5001

Commands: set KEY VALUE, get KEY, delete KEY, list, status, peers, help, quit.
VALUE is read as JSON when it parses (42, 72.5, true, null, [1, 2], {"a": 1}), and as
a plain string otherwise. Changes made by other nodes are printed as they arrive.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, List, Optional, Tuple

from mesh_sync import MeshSyncError, MeshSyncNode

HELP = """commands:
  set KEY VALUE   store VALUE (JSON, or a plain string) under KEY
  get KEY         show the value of KEY
  delete KEY      delete KEY
  list            show every key and value
  status          show the node's status and counters
  peers           show the known peers
  quit            stop the node and leave"""


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def show(value: Any) -> str:
    if isinstance(value, bytes):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run one interactive mesh-sync node.")
    parser.add_argument("node_id", help="this node's name in the mesh")
    parser.add_argument("port", type=int, help="UDP port to bind (0: any free port)")
    parser.add_argument("bootstrap_host", nargs="?", help="a peer to join through")
    parser.add_argument("bootstrap_port", nargs="?", type=int, help="that peer's port")
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default: all)")
    parser.add_argument("--sync-interval", type=float, default=10.0, help="seconds")
    parser.add_argument("--heartbeat-interval", type=float, default=5.0, help="seconds")
    parser.add_argument("--verbose", action="store_true", help="show the core's log")
    args = parser.parse_args(argv)
    if (args.bootstrap_host is None) != (args.bootstrap_port is None):
        parser.error("give both bootstrap_host and bootstrap_port, or neither")
    return args


def run_command(node: MeshSyncNode, words: List[str]) -> bool:
    """Runs one command; returns False when the user wants to leave."""
    command, rest = words[0].lower(), words[1:]
    if command in ("quit", "exit"):
        return False
    if command == "help":
        print(HELP)
    elif command == "set" and len(rest) >= 2:
        node.set(rest[0], parse_value(" ".join(rest[1:])))
        print("ok")
    elif command == "get" and len(rest) == 1:
        value = node.get(rest[0])
        print(f"{rest[0]} = {show(value)}" if value is not None else f"{rest[0]} is not set")
    elif command == "delete" and len(rest) == 1:
        print("deleted" if node.delete(rest[0]) else f"{rest[0]} was not set")
    elif command == "list":
        data = node.get_all_data()
        for key in sorted(data):
            print(f"  {key} = {show(data[key])}")
        print(f"({len(data)} keys)")
    elif command == "status":
        print(json.dumps(node.get_status(), indent=2))
    elif command == "peers":
        peers = node.get_peers()
        for peer in peers:
            host, port = peer["address"]
            rtt = f"{peer['rtt_ms']:.1f} ms" if peer["rtt_ms"] is not None else "-"
            print(f"  {peer['node_id'] or '?':<16} {host}:{port:<6} {peer['state']:<8} rtt {rtt}")
        print(f"({len(peers)} peers)")
    else:
        print(f"unknown command or wrong arguments: {' '.join(words)} (try: help)")
    return True


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        node = MeshSyncNode(
            args.node_id,
            args.port,
            sync_interval=args.sync_interval,
            heartbeat_interval=args.heartbeat_interval,
            host=args.host,
        )
        if args.bootstrap_host is not None:
            node.add_bootstrap_peer(args.bootstrap_host, args.bootstrap_port)
    except MeshSyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    def on_state_change(key: str, value: Any, operation: str) -> None:
        if operation == "sync":
            change = f"deleted {key}" if value is None else f"{key} = {show(value)}"
            print(f"\n[sync] {change}", flush=True)

    def on_peer_discovered(node_id: str, address: Tuple[str, int]) -> None:
        print(f"\n[peer] discovered {node_id} at {address[0]}:{address[1]}", flush=True)

    def on_peer_failed(node_id: str) -> None:
        print(f"\n[peer] {node_id} failed", flush=True)

    def on_peer_recovered(node_id: str) -> None:
        print(f"\n[peer] {node_id} recovered", flush=True)

    node.on_state_change = on_state_change
    node.on_peer_discovered = on_peer_discovered
    node.on_peer_failed = on_peer_failed
    node.on_peer_recovered = on_peer_recovered

    with node:
        print(f"node {node.node_id} listening on UDP port {node.port}; type 'help' for commands")
        while True:
            try:
                line = input(f"{node.node_id}> ")
            except (EOFError, KeyboardInterrupt):
                print()
                break
            words = line.split()
            if not words:
                continue
            try:
                if not run_command(node, words):
                    break
            except (MeshSyncError, TypeError, ValueError) as exc:
                print(f"error: {exc}")
    print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
