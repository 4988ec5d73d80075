"""A mesh of nodes on this machine, writing at random over a lossy network.

    python examples/python/simulation.py                 # 5 nodes, 20% loss, 10 s
    python examples/python/simulation.py --loss 0.4 --duration 5 --nodes 8

Every node sets and deletes random keys while the network drops the given share of
datagrams. A table of the cluster is printed every second. When the time is up, writes
stop and the program waits until every node holds the same data, printing how long
convergence took. It exits with status 0 when the cluster converged, 1 otherwise.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from typing import List, Optional

from mesh_sync import MeshSyncNode
from mesh_sync.testing import UnreliableNetworkSimulator

HOST = "127.0.0.1"


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Simulate a lossy mesh-sync cluster.")
    parser.add_argument("--nodes", type=int, default=5, help="number of nodes (default 5)")
    parser.add_argument("--loss", type=float, default=0.2, help="packet loss rate, 0..1")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of writes")
    parser.add_argument("--keys", type=int, default=50, help="size of the key space")
    parser.add_argument("--rate", type=float, default=50.0, help="writes per second, total")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random writes")
    parser.add_argument(
        "--converge-timeout", type=float, default=60.0, help="seconds to wait for convergence"
    )
    args = parser.parse_args(argv)
    if args.nodes < 2:
        parser.error("--nodes must be at least 2")
    if not 0.0 <= args.loss <= 1.0:
        parser.error("--loss must be between 0 and 1")
    return args


def table(nodes: List[MeshSyncNode], sims: List[UnreliableNetworkSimulator]) -> str:
    header = f"{'node':<8}{'port':>7}{'keys':>6}{'peers':>7}{'sent':>8}{'retx':>7}{'dropped':>9}"
    rows = [header, "-" * len(header)]
    for node, sim in zip(nodes, sims):
        status = node.get_status()
        stats = sim.get_stats()
        rows.append(
            f"{node.node_id:<8}{node.port:>7}{status['data_keys']:>6}"
            f"{status['peers']['alive_peers']:>4}/{status['peers']['total_peers']:<2}"
            f"{status['counters']['datagrams_sent']:>8}{status['counters']['retransmits']:>7}"
            f"{stats['drop_rate']:>8.0%}"
        )
    return "\n".join(rows)


def converged(nodes: List[MeshSyncNode]) -> bool:
    first = nodes[0].get_all_data()
    return all(node.get_all_data() == first for node in nodes[1:])


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    # Faster than the defaults, so that failures and repairs show within the run.
    nodes = [
        MeshSyncNode(f"node{i}", 0, sync_interval=1.0, heartbeat_interval=0.5, host=HOST)
        for i in range(args.nodes)
    ]
    try:
        for node in nodes[1:]:
            node.add_bootstrap_peer(HOST, nodes[0].port)
        sims = [UnreliableNetworkSimulator(node, packet_loss_rate=args.loss) for node in nodes]
        for node in nodes:
            node.start()
        print(
            f"{args.nodes} nodes, {args.loss:.0%} packet loss, "
            f"{args.duration:g} s of random writes"
        )

        writes = deletes = 0
        start = time.monotonic()
        next_table = start + 1.0
        pause = 1.0 / args.rate if args.rate > 0 else 0.0
        while time.monotonic() - start < args.duration:
            node = rng.choice(nodes)
            key = f"key{rng.randrange(args.keys)}"
            if rng.random() < 0.25:
                node.delete(key)
                deletes += 1
            else:
                node.set(key, {"by": node.node_id, "n": rng.randint(0, 10**6)})
                writes += 1
            if time.monotonic() >= next_table:
                print(f"\nt={time.monotonic() - start:4.1f} s  ({writes} sets, {deletes} deletes)")
                print(table(nodes, sims))
                next_table += 1.0
            time.sleep(pause)

        print(f"\nwrites stopped after {writes} sets and {deletes} deletes; converging...")
        stopped_at = time.monotonic()
        deadline = stopped_at + args.converge_timeout
        while not converged(nodes) and time.monotonic() < deadline:
            time.sleep(0.01)
        took = time.monotonic() - stopped_at
        print(table(nodes, sims))
        if converged(nodes):
            keys = len(nodes[0].get_all_data())
            print(f"\nconverged: all {args.nodes} nodes hold the same {keys} keys ({took:.2f} s)")
            return 0
        print(f"\nNOT converged after {took:.1f} s")
        return 1
    finally:
        for node in nodes:
            node.stop()


if __name__ == "__main__":
    sys.exit(main())
