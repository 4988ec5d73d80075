#!/usr/bin/env python3
"""A mesh of real processes: N ``mesh-sync`` CLI nodes, each in its own network namespace
on one bridge (the multi-process rig of tests/netns), form a mesh, converge a write, and
idle. Prints how long forming and converging took and the idle traffic per node per
minute, counted by each node and by the kernel (its veth's transmit counters, so every
header is in).

    sudo scripts/process-mesh.py [--nodes 100] [--idle 60] [--settle 20]

Needs root, ``ip`` and ``nft`` (see tests/netns/rig.py) and a release CLI
(``cargo build --release -p mesh-cli``; ``MESH_SYNC_BIN`` names another binary). Every
node is started with a 0.5 s probe period and a 1 s sync interval, and is told of three
nodes only: the rest it learns by gossip.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "netns"))

from rig import PORT, NodeProcess, Rig, missing_capabilities, wait_until  # noqa: E402

# Seeds every node is told of; the others are found by gossip.
SEEDS = 3


def binary() -> Path:
    import os

    if "MESH_SYNC_BIN" in os.environ:
        return Path(os.environ["MESH_SYNC_BIN"])
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "mesh-sync"


def start(rig: Rig, i: int) -> NodeProcess:
    args = ["ip", "netns", "exec", rig.ns(i), str(binary()), f"n{i}",
            "--host", rig.addr(i), "--port", str(PORT), "--json", "--quiet",
            "--heartbeat-interval", "0.5", "--sync-interval", "1", "--peer-timeout", "1.5"]
    for j in range(1, min(SEEDS, rig.n) + 1):
        if j != i:
            args += ["--bootstrap", f"{rig.addr(j)}:{PORT}"]
    node = NodeProcess(args, f"n{i}")
    rig.nodes[i] = node
    return node


# The kernel's neighbour (ARP) table is one for all network namespaces, and its
# hard limit counts every namespace's entries: N nodes that all talk to each other hold
# about N^2 of them, past the default 1,024 from 33 nodes on, after which sends fail
# (counted as SndbufErrors) and the mesh cannot form. Raised for the run, then restored.
NEIGH_THRESHOLDS = ["net.ipv4.neigh.default.gc_thresh1", "net.ipv4.neigh.default.gc_thresh2",
                    "net.ipv4.neigh.default.gc_thresh3"]


def sysctl(name: str, value: Optional[str] = None) -> str:
    import subprocess

    if value is None:
        return subprocess.run(["sysctl", "-n", name], check=True, capture_output=True,
                              text=True).stdout.strip()
    subprocess.run(["sysctl", "-q", "-w", f"{name}={value}"], check=True)
    return value


def raise_neighbour_limits(n: int) -> Dict[str, str]:
    """Raises the neighbour table's limits to fit ``n`` namespaces of ``n`` neighbours
    each; returns the values to restore."""
    saved = {name: sysctl(name) for name in NEIGH_THRESHOLDS}
    need = 2 * n * n + 1024
    for name, scale in zip(NEIGH_THRESHOLDS, (4, 2, 1)):
        if int(saved[name]) < need // scale:
            sysctl(name, str(need // scale))
    return saved


def kernel_tx(rig: Rig, i: int) -> Tuple[int, int]:
    """Bytes and packets node ``i``'s veth has sent (Ethernet, IP and UDP headers in)."""
    import subprocess

    out = subprocess.run(
        ["ip", "netns", "exec", rig.ns(i), "cat",
         "/sys/class/net/eth0/statistics/tx_bytes", "/sys/class/net/eth0/statistics/tx_packets"],
        check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]), int(out[1])


def node_counters(node: NodeProcess) -> Tuple[int, int]:
    counters = node.command("status")["counters"]
    return counters["bytes_sent"], counters["datagrams_sent"]


def formed(rig: Rig) -> bool:
    return all(node.command("status")["peers"]["alive_peers"] == rig.n - 1
               for node in rig.nodes.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds measured idle")
    parser.add_argument("--settle", type=float, default=20.0,
                        help="seconds after the write before the idle window")
    parser.add_argument("--form-timeout", type=float, default=300.0)
    options = parser.parse_args()
    missing = [m for m in missing_capabilities() if "mesh-sync" not in m]
    if not binary().exists():
        missing.append(f"{binary()} (cargo build --release -p mesh-cli)")
    if missing:
        print("cannot run: missing " + ", ".join(missing), file=sys.stderr)
        return 2

    n = options.nodes
    saved = raise_neighbour_limits(n)
    try:
        return run(options, n)
    finally:
        for name, value in saved.items():
            sysctl(name, value)


def run(options: argparse.Namespace, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        began = time.monotonic()
        rig = Rig(n, Path(tmp))
        try:
            built = time.monotonic() - began
            began = time.monotonic()
            for i in range(1, n + 1):
                start(rig, i)
            started = time.monotonic() - began
            if not wait_until(lambda: formed(rig), options.form_timeout, 0.5):
                alive = sorted(node.command("status")["peers"]["alive_peers"]
                               for node in rig.nodes.values())
                print(f"the mesh did not form within {options.form_timeout:.0f} s; "
                      f"alive peers per node: min {alive[0]}, median {alive[n // 2]}",
                      file=sys.stderr)
                return 1
            formed_after = time.monotonic() - began

            began = time.monotonic()
            assert rig.nodes[1].command("set probe 1").get("ok")

            def everyone_has_it() -> bool:
                return all(node.command("get probe").get("value") == 1
                           for node in rig.nodes.values())

            if not wait_until(everyone_has_it, 60.0, 0.01):
                print("the write did not reach every node within 60 s", file=sys.stderr)
                return 1
            converged_after = time.monotonic() - began

            time.sleep(options.settle)
            before_kernel = {i: kernel_tx(rig, i) for i in rig.nodes}
            before_node = {i: node_counters(node) for i, node in rig.nodes.items()}
            time.sleep(options.idle)
            after_kernel = {i: kernel_tx(rig, i) for i in rig.nodes}
            after_node = {i: node_counters(node) for i, node in rig.nodes.items()}
        finally:
            rig.close()

    per_minute = 60.0 / options.idle

    def rates(before: Dict[int, Tuple[int, int]], after: Dict[int, Tuple[int, int]]
              ) -> Tuple[List[float], List[float]]:
        sent = [(after[i][0] - before[i][0]) * per_minute for i in before]
        packets = [(after[i][1] - before[i][1]) * per_minute for i in before]
        return sent, packets

    node_bytes, node_datagrams = rates(before_node, after_node)
    # What the nodes' datagrams take at the IP layer, as `mesh-bench idle` counts: 20
    # bytes of IPv4 header and 8 of UDP each. The veth's count adds 14 of Ethernet per
    # frame, and the neighbour (ARP) traffic of each namespace.
    ip_bytes = [b + 28 * d for b, d in zip(node_bytes, node_datagrams)]
    kernel_bytes, kernel_packets = rates(before_kernel, after_kernel)
    print(f"\n{n} mesh-sync processes, one network namespace each, probe 0.5 s, sync 1 s\n")
    print(f"- rig built in {built:.1f} s; {n} processes started in {started:.1f} s")
    print(f"- formed (every node sees {n - 1} alive peers) {formed_after:.1f} s after the "
          "first start")
    print(f"- one write on n1 read back from every node within {converged_after:.3f} s "
          f"(polling {n} processes one after another)")
    print(f"\nIdle, {options.idle:.0f} s measured after {options.settle:.0f} s of settling, "
          "per node per minute:\n")
    print("| counted by | median | max |")
    print("| --- | --- | --- |")
    for label, values in (
        ("node: UDP payload bytes", node_bytes),
        ("node: datagrams", node_datagrams),
        ("node: bytes with IPv4 + UDP headers", ip_bytes),
        ("kernel: veth bytes (Ethernet + IPv4 + UDP headers in)", kernel_bytes),
        ("kernel: veth packets", kernel_packets),
    ):
        print(f"| {label} | {statistics.median(values):,.0f} | {max(values):,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
