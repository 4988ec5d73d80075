"""Real processes on a real (namespaced) network: kill -9 under a write load, a whole
mesh killed at once, a partition cut and healed by nftables, random loss, and datagram
sizes that follow the path's MTU without IP fragmentation.

``MESH_RIG_KILLS`` sets the number of kills of the kill loop (CI: 12;
``scripts/kill-loop.sh`` runs 100). ``MESH_RIG_SEED`` fixes the random moments.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from rig import NodeProcess, Rig, missing_capabilities, wait_until

CONVERGE_TIMEOUT = 60.0
# The kill loop's mode; "batched" shows what the loop catches (acknowledged writes lost).
DURABILITY = os.environ.get("MESH_RIG_DURABILITY", "sync")


@pytest.fixture(autouse=True)
def capabilities() -> None:
    missing = missing_capabilities()
    if missing:
        raise AssertionError("the namespace rig needs: " + ", ".join(missing))


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator:
    rigs: List[Rig] = []

    def factory(n: int) -> Rig:
        rig = Rig(n, tmp_path)
        rigs.append(rig)
        return rig

    yield factory
    for rig in rigs:
        rig.close()


def state(node: NodeProcess) -> Dict[str, object]:
    reply = node.command("list")
    assert isinstance(reply, dict) and "error" not in reply, reply
    return reply


def converged(rig: Rig, expected: Dict[str, object]) -> bool:
    """Every node holds exactly ``expected``."""
    try:
        return all(state(node) == expected for node in rig.nodes.values())
    except (ProcessLookupError, TimeoutError):
        return False


def describe(rig: Rig, expected: Dict[str, object]) -> str:
    lines = []
    for i, node in sorted(rig.nodes.items()):
        have = state(node)
        missing = sorted(set(expected) - set(have))
        extra = sorted(set(have) - set(expected))
        lines.append(f"n{i}: {len(have)} keys, {len(missing)} missing {missing[:5]}, "
                     f"{len(extra)} unexpected {extra[:5]}")
    return "\n".join(lines)


class Writer(threading.Thread):
    """Writes unique keys to one node, one at a time, and remembers each write the node
    acknowledged. A kill makes a write fail; the writer then waits for the node to be
    started again (``rig.nodes[i]`` replaced) and goes on."""

    def __init__(self, rig: Rig, i: int) -> None:
        super().__init__(daemon=True)
        self.rig, self.i = rig, i
        self.acknowledged: Dict[str, object] = {}
        self.failed = 0
        self.done = threading.Event()

    def run(self) -> None:
        count = 0
        while not self.done.is_set():
            node = self.rig.nodes[self.i]
            key = f"w{self.i}-{count}"
            count += 1
            try:
                reply = node.command(f"set {key} {count}", timeout=5)
            except (ProcessLookupError, Exception):  # noqa: BLE001 - a kill races any call
                self.failed += 1
                time.sleep(0.02)
                continue
            if reply.get("ok"):
                self.acknowledged[key] = count


def test_kill_9_under_writes_loses_no_acknowledged_write(make_rig) -> None:
    kills = int(os.environ.get("MESH_RIG_KILLS", "12"))
    seed = int(os.environ.get("MESH_RIG_SEED", str(time.time_ns() % 2**32)))
    rng = random.Random(seed)
    rig = make_rig(3)
    for i in range(1, 4):
        rig.start(i, durability=DURABILITY)
    writers = [Writer(rig, i) for i in range(1, 4)]
    for writer in writers:
        writer.start()
    started = time.monotonic()
    for kill in range(kills):
        time.sleep(rng.uniform(0.05, 0.6))
        # Every fourth kill takes the whole mesh down at once: then no peer holds a copy of
        # what a node acknowledged, and only its store can bring it back.
        victims = [1, 2, 3] if kill % 4 == 3 else [rng.randint(1, 3)]
        for victim in victims:
            rig.nodes[victim].kill()
        time.sleep(rng.uniform(0.0, 0.3))
        for victim in victims:
            # A store damaged by the kill would refuse to open: start() would raise.
            rig.start(victim, durability=DURABILITY)
    for writer in writers:
        writer.done.set()
        writer.join(timeout=30)
    elapsed = time.monotonic() - started
    expected: Dict[str, object] = {}
    for writer in writers:
        expected.update(writer.acknowledged)
    assert len(expected) > kills, "the write load did not run"
    # Writes sent to a node being killed may land without their acknowledgement; those
    # may or may not exist. Every acknowledged one must, everywhere.
    def holds_every_acknowledged() -> bool:
        try:
            for node in rig.nodes.values():
                have = state(node)
                if any(have.get(k) != v for k, v in expected.items()):
                    return False
            return True
        except (ProcessLookupError, TimeoutError):
            return False

    assert wait_until(holds_every_acknowledged, CONVERGE_TIMEOUT, 0.5), \
        f"MESH_RIG_SEED={seed}\n" + describe(rig, expected)
    print(f"\nkill loop (MESH_RIG_SEED={seed}): {kills} kills in {elapsed:.1f} s, {len(expected)} acknowledged writes, "
          f"{sum(w.failed for w in writers)} writes cut by a kill, none lost")


def test_a_whole_mesh_killed_at_once_comes_back_with_its_state(make_rig) -> None:
    rig = make_rig(5)
    for i in range(1, 6):
        rig.start(i, durability="batched")
    expected: Dict[str, object] = {}
    for n in range(200):
        node = rig.nodes[1 + n % 5]
        reply = node.command(f"set k{n} {n}")
        assert reply.get("ok"), reply
        expected[f"k{n}"] = n
    assert wait_until(lambda: converged(rig, expected), CONVERGE_TIMEOUT, 0.2), \
        describe(rig, expected)
    # Batched commits land within the flush interval; status says when none is pending.
    assert wait_until(
        lambda: all(not n.command("status")["storage"]["pending"] for n in rig.nodes.values()),
        10,
    )
    for node in rig.nodes.values():
        node.kill()
    for i in range(1, 6):
        rig.start(i, durability="batched")
    # Read at once, before any peer could have sent anything back.
    for i, node in sorted(rig.nodes.items()):
        assert state(node) == expected, f"n{i} came back without its state"


def test_a_partition_cut_by_the_network_heals(make_rig) -> None:
    rig = make_rig(3)
    for i in range(1, 4):
        rig.start(i, durability="batched")
    assert rig.nodes[1].command("set before 0").get("ok")
    assert wait_until(lambda: converged(rig, {"before": 0}), CONVERGE_TIMEOUT, 0.2)
    rig.partition([3])
    expected: Dict[str, object] = {"before": 0}
    sides: Dict[int, Dict[str, object]] = {1: {"before": 0}, 3: {"before": 0}}
    for n in range(21):
        i = 1 + n % 3
        assert rig.nodes[i].command(f"set p{n} {n}").get("ok")
        expected[f"p{n}"] = n
        sides[3 if i == 3 else 1][f"p{n}"] = n
    time.sleep(1.5)
    # The cut is real: each side holds its own writes and none of the other's.
    assert state(rig.nodes[3]) == sides[3]
    assert wait_until(lambda: state(rig.nodes[1]) == sides[1] == state(rig.nodes[2]), 10)
    rig.heal()
    assert wait_until(lambda: converged(rig, expected), CONVERGE_TIMEOUT, 0.2), \
        describe(rig, expected)


def test_writes_converge_through_20_percent_loss(make_rig) -> None:
    rig = make_rig(4)
    for i in range(1, 5):
        rig.start(i, durability="batched")
        rig.set_loss(i, 20)
    expected: Dict[str, object] = {}
    for n in range(200):
        assert rig.nodes[1 + n % 4].command(f"set l{n} {n}").get("ok")
        expected[f"l{n}"] = n
    assert wait_until(lambda: converged(rig, expected), CONVERGE_TIMEOUT, 0.2), \
        describe(rig, expected)


def test_a_restarted_node_catches_up_with_what_it_missed(make_rig) -> None:
    rig = make_rig(3)
    for i in range(1, 4):
        rig.start(i, durability="sync")
    expected: Dict[str, object] = {}
    for n in range(100):
        assert rig.nodes[1 + n % 3].command(f"set r{n} {n}").get("ok")
        expected[f"r{n}"] = n
    assert wait_until(lambda: converged(rig, expected), CONVERGE_TIMEOUT, 0.2)
    rig.nodes[3].kill()
    for n in range(100, 120):
        assert rig.nodes[1 + n % 2].command(f"set r{n} {n}").get("ok")
        expected[f"r{n}"] = n
    assert rig.nodes[1].command("delete r0").get("ok")
    del expected["r0"]
    # Cut off while it restarts, so what it holds can only come from its own store: on
    # an open bridge the catch-up can beat the first read.
    rig.partition([3])
    restarted = rig.start(3, durability="sync")
    reloaded = state(restarted)
    assert "r0" in reloaded and "r100" not in reloaded, "reloaded from its own store only"
    rig.heal()
    assert wait_until(lambda: converged(rig, expected), CONVERGE_TIMEOUT, 0.2), \
        describe(rig, expected)


def write_large_values(rig: Rig, count: int, first: int = 0) -> Dict[str, object]:
    """``count`` writes of 3,000 random characters each (several datagrams, compressed),
    spread over the nodes."""
    expected: Dict[str, object] = {}
    rng = random.Random(5 + first)
    for n in range(first, first + count):
        value = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(3000))
        assert rig.nodes[1 + n % rig.n].command(f"set big{n} {value}").get("ok")
        expected[f"big{n}"] = value
    return expected


def write_before_and_after_the_first_probe(rig: Rig) -> None:
    """Large writes, then more once the links that carried them have probed their path
    (a second after their first message of several datagrams), until every node holds
    them all."""
    expected = write_large_values(rig, 50)
    time.sleep(2.0)
    expected.update(write_large_values(rig, 50, first=50))
    assert wait_until(lambda: converged(rig, expected), CONVERGE_TIMEOUT, 0.2), \
        describe(rig, expected)


def test_datagrams_grow_past_1200_bytes_where_the_path_carries_them(make_rig) -> None:
    rig = make_rig(2)
    for i in (1, 2):
        # Payloads above the 1,200-byte base size: only a probed link sends them.
        rig.count_udp_longer_than(i, 1208)
        rig.start(i, durability="batched")
    write_before_and_after_the_first_probe(rig)
    assert rig.counted(1) + rig.counted(2) > 0, "no datagram above 1,200 bytes"
    assert rig.ip_fragments_created(1) == 0 and rig.ip_fragments_created(2) == 0


def test_a_path_with_a_small_mtu_is_never_ip_fragmented(make_rig) -> None:
    rig = make_rig(2)
    for i in (1, 2):
        # 1,300 bytes of IP: room for 1,272 of UDP payload, less than either probe size.
        rig.set_mtu(i, 1300)
        rig.start(i, durability="batched")
    write_before_and_after_the_first_probe(rig)
    # Without the don't-fragment bit, the kernel cut the probes in two, the peer
    # answered, and the link then sent every datagram as two fragments.
    assert rig.ip_fragments_created(1) == 0 and rig.ip_fragments_created(2) == 0
