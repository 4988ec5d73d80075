"""Following the keys under a prefix: a callback watch and an asyncio consumer.

    python examples/python/watch.py                 # 5 readings per room
    python examples/python/watch.py --readings 20

Two nodes share a mesh on this machine. The "sensors" node writes temperature readings
under ``room/<name>/temperature`` and a few unrelated keys. The "display" node follows
them two ways: ``node.watch("room/kitchen/", callback)`` calls back on the node's
callback thread, and ``async for key, value, op in node.changes("room/")`` hands every
room's changes to a coroutine without blocking the event loop. The program exits with
status 0 once the display has seen every reading, and never anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
from typing import Any, List, Optional, Tuple

from mesh_sync import MeshSyncNode

HOST = "127.0.0.1"
ROOMS = ("kitchen", "hall")


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Watch the keys under a prefix.")
    parser.add_argument("--readings", type=int, default=5, help="readings per room")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    args = parser.parse_args(argv)
    if args.readings < 1:
        parser.error("--readings must be at least 1")
    return args


async def follow_rooms(
    display: MeshSyncNode, sensors: MeshSyncNode, readings: int
) -> List[Tuple[str, Any, str]]:
    """Writes the readings on one node and collects the other node's changes under room/."""
    seen: List[Tuple[str, Any, str]] = []
    async with display.changes("room/") as changes:
        for i in range(readings):
            for room in ROOMS:
                sensors.set(f"room/{room}/temperature", 20.0 + i)
            sensors.set(f"weather/{i}", "sunny")  # not under room/: never seen here
        async for key, value, op in changes:
            sys.stdout.write(f"[async] {key} = {value} ({op})\n")
            seen.append((key, value, op))
            if value == 20.0 + readings - 1 and all(
                any(k == f"room/{room}/temperature" and v == value for k, v, _ in seen)
                for room in ROOMS
            ):
                break
    return seen


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    sensors = MeshSyncNode("sensors", 0, host=HOST)
    display = MeshSyncNode("display", 0, host=HOST)
    display.add_bootstrap_peer(HOST, sensors.port)
    kitchen: List[float] = []
    kitchen_done = threading.Event()

    def on_kitchen(key: str, value: Any, op: str) -> None:
        sys.stdout.write(f"[watch] {key} = {value} ({op})\n")
        kitchen.append(value)
        if value == 20.0 + args.readings - 1:
            kitchen_done.set()

    with sensors, display:
        with display.watch("room/kitchen/", on_kitchen):
            try:
                seen = asyncio.run(
                    asyncio.wait_for(
                        follow_rooms(display, sensors, args.readings), args.timeout
                    )
                )
            except asyncio.TimeoutError:
                print("timed out before every reading arrived", file=sys.stderr)
                return 1
            if not kitchen_done.wait(args.timeout):
                print("the kitchen watch missed the last reading", file=sys.stderr)
                return 1
    # Readings may arrive merged (a later one replacing an earlier one in flight), so
    # the display sees the last reading of each room, and never a key outside room/.
    outside = [key for key, _, _ in seen if not key.startswith("room/")]
    if outside:
        print(f"keys outside room/ were reported: {outside}", file=sys.stderr)
        return 1
    print(f"display saw {len(seen)} changes under room/, {len(kitchen)} in the kitchen")
    return 0


if __name__ == "__main__":
    sys.exit(main())
