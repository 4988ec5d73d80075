"""Local set/get operations per second through the Python package.

Prints a Markdown table like mesh-bench's. Run with the interpreter that has mesh_sync
installed: python mesh-bench/python/ops.py [--smoke]
"""

import statistics
import sys
import time

from mesh_sync import MeshSyncNode


def rate(fn, n: int, repeats: int) -> float:
    """Median operations per second of `repeats` runs of `fn(n)`."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(n)
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    smoke = "--smoke" in sys.argv
    n = 2_000 if smoke else 200_000
    repeats = 1 if smoke else 5
    node = MeshSyncNode("py-bench", 0, host="127.0.0.1")
    node.start()
    keys = [f"key/{i:08}" for i in range(n)]
    value = "x" * 100
    # A started node with no peers: the cost of the binding and the core, not the network.
    def set_int(count: int) -> None:
        for i in range(count):
            node.set(keys[i], i)

    def set_str(count: int) -> None:
        for i in range(count):
            node.set(keys[i], value)

    def get(count: int) -> None:
        for i in range(count):
            node.get(keys[i])

    rows = [
        ("set int", rate(set_int, n, repeats)),
        ("set 100-byte str", rate(set_str, n, repeats)),
        ("get (key held)", rate(get, n, repeats)),
    ]
    node.stop()
    print("### Local operations from Python (started node, no peers)\n")
    print("| operation | ops/s (median of %d runs of %s) |" % (repeats, f"{n:,}"))
    print("| --- | --- |")
    for name, ops in rows:
        print(f"| {name} | {ops:,.0f} |")
    print()
    print(f"Python {sys.version.split()[0]}; one thread; the loop's own cost is included.")


if __name__ == "__main__":
    main()
