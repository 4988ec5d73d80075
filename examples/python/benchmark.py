"""Measures mesh-sync from Python: write and read throughput, two-node convergence time.

    python examples/python/benchmark.py
    python examples/python/benchmark.py --ops 200000 --rounds 500

Throughput: single-threaded ``set`` and ``get`` calls on a node with one connected peer
(so every write is also pushed over the network). Convergence: the time from ``set`` on
one node until the other node's ``on_state_change`` callback sees the value, and until
its ``get`` returns it, over loopback.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from typing import Any, List, Optional

from mesh_sync import MeshSyncNode

HOST = "127.0.0.1"


def percentile(samples: List[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def wait_connected(a: MeshSyncNode, b: MeshSyncNode) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(n.get_status()["peers"]["alive_peers"] == 1 for n in (a, b)):
            return
        time.sleep(0.01)
    raise SystemExit("the two nodes did not connect within 10 s")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=100_000, help="set/get calls to time")
    parser.add_argument("--rounds", type=int, default=200, help="convergence measurements")
    parser.add_argument(
        "--push-delay", type=float, default=None, help="seconds local writes wait to batch"
    )
    args = parser.parse_args(argv)

    a = MeshSyncNode("bench-a", 0, host=HOST, push_delay=args.push_delay)
    b = MeshSyncNode("bench-b", 0, host=HOST, push_delay=args.push_delay)
    with a, b:
        b.add_bootstrap_peer(HOST, a.port)
        wait_connected(a, b)

        keys = [f"key{i}" for i in range(args.ops)]
        started = time.perf_counter()
        for i, key in enumerate(keys):
            a.set(key, i)
        set_rate = args.ops / (time.perf_counter() - started)

        started = time.perf_counter()
        for key in keys:
            a.get(key)
        get_rate = args.ops / (time.perf_counter() - started)

        value = {"temperature": 72.5, "unit": "F", "tags": ["a", "b"]}
        started = time.perf_counter()
        for i, key in enumerate(keys):
            a.set(key, value)
        set_dict_rate = args.ops / (time.perf_counter() - started)

        deadline = time.monotonic() + 120
        while b.get_status()["data_keys"] < args.ops and time.monotonic() < deadline:
            time.sleep(0.05)

        # Convergence, seen through the peer's callback.
        arrived = threading.Event()
        expected: List[Any] = [None]

        def on_change(key: str, value: Any, operation: str) -> None:
            if key == "probe" and value == expected[0]:
                arrived.set()

        b.on_state_change = on_change
        callback_ms: List[float] = []
        for i in range(args.rounds):
            arrived.clear()
            expected[0] = i
            started = time.perf_counter()
            a.set("probe", i)
            if not arrived.wait(10):
                raise SystemExit(f"round {i}: the value did not arrive within 10 s")
            callback_ms.append((time.perf_counter() - started) * 1000)
        b.on_state_change = None

        # Convergence, seen by polling the peer's replica.
        poll_ms: List[float] = []
        for i in range(args.rounds):
            marker = f"poll{i}"
            started = time.perf_counter()
            a.set("poll", marker)
            while b.get("poll") != marker:
                if time.perf_counter() - started > 10:
                    raise SystemExit(f"round {i}: the value did not arrive within 10 s")
            poll_ms.append((time.perf_counter() - started) * 1000)

    print(f"set (int value):  {set_rate:>12,.0f} ops/s")
    print(f"set (dict value): {set_dict_rate:>12,.0f} ops/s")
    print(f"get:              {get_rate:>12,.0f} ops/s")
    for name, samples in (("callback", callback_ms), ("get poll", poll_ms)):
        print(
            f"two-node convergence ({name}): median {statistics.median(samples):.3f} ms, "
            f"p90 {percentile(samples, 0.9):.3f} ms, max {max(samples):.3f} ms "
            f"({len(samples)} rounds)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
