"""Hostile input, concurrency, shutdown, logging and the network simulator."""

from __future__ import annotations

import logging
import random
import socket
import struct
import threading
import time
import zlib
from typing import List

import pytest
from helpers import HOST, converged, describe, fully_connected, wait_until

from mesh_sync import PROTOCOL_VERSION, ConfigError, MeshSyncNode
from mesh_sync.testing import UnreliableNetworkSimulator

MAGIC = b"MS"
HEADER = struct.Struct(">2sBBBBIHI")  # magic, version, kind, flags, reserved, cluster, len, crc


def datagram(
    payload: bytes, *, cluster: str = "default", version: int = PROTOCOL_VERSION, crc_ok: bool = True
) -> bytes:
    """A datagram with a well-formed header around ``payload``."""
    cluster_id = zlib.crc32(cluster.encode())
    head = HEADER.pack(MAGIC, version, 1, 0, 0, cluster_id, len(payload), 0)[:12]
    crc = zlib.crc32(payload, zlib.crc32(head))
    if not crc_ok:
        crc ^= 0xDEADBEEF
    return head + struct.pack(">I", crc) + payload


def test_garbage_datagrams_are_counted_and_dropped(make_node) -> None:
    a = make_node("a")
    b = make_node("b", start=False)
    b.add_bootstrap_peer(HOST, a.port)
    b.start()
    a.set("before", 1)
    assert wait_until(lambda: b.get("before") == 1)

    rng = random.Random(7)
    junk: List[bytes] = [b"", b"M", b"MS", b"hello world", bytes(15)]
    junk += [rng.randbytes(rng.randint(1, 1500)) for _ in range(300)]
    junk += [datagram(rng.randbytes(40), version=PROTOCOL_VERSION + 1)]
    junk += [datagram(rng.randbytes(40), crc_ok=False) for _ in range(20)]
    junk += [datagram(rng.randbytes(40), cluster="another mesh") for _ in range(20)]
    junk += [datagram(b"short")[:-2]]
    # Well-formed headers for this cluster around random payloads: reaches the decoder.
    junk += [datagram(rng.randbytes(rng.randint(0, 1200))) for _ in range(2000)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for payload in junk:
            sock.sendto(payload, (HOST, a.port))
            sock.sendto(payload, (HOST, b.port))

    assert wait_until(
        lambda: sum(a.get_status()["counters"]["dropped"].values()) >= 300
    ), a.get_status()
    dropped = a.get_status()["counters"]["dropped"]
    assert dropped["bad_magic"] > 0
    assert dropped["bad_checksum"] >= 20
    assert dropped["wrong_cluster"] >= 20
    assert dropped["bad_version"] >= 1
    assert dropped["malformed"] > 0

    # Both nodes still work and still sync.
    assert a.running and b.running
    a.set("after", 2)
    b.set("reply", 3)
    assert wait_until(lambda: b.get("after") == 2 and a.get("reply") == 3), describe([a, b])
    assert wait_until(lambda: converged([a, b]))


def varint(n: int) -> bytes:
    """postcard's unsigned LEB128 integer."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def packet(src_inc: int, frames: List[bytes]) -> bytes:
    """A datagram of ``frames`` (each already encoded, variant tag first) from a sender
    with no session yet: Packet { src_inc (fixed 8 bytes), dst_inc: 0, src_session: 0,
    dst_session: 0 (fixed 4 bytes each), frames }."""
    head = struct.pack("<Q", src_inc) + varint(0) + struct.pack("<II", 0, 0)
    return datagram(head + varint(len(frames)) + b"".join(frames))


def read_varint(data: bytes, at: int) -> tuple:
    """postcard's unsigned LEB128 integer at ``data[at:]``: (value, next offset)."""
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def challenge_nonce(datagram_bytes: bytes) -> int:
    """The nonce of the first `Challenge` frame of a plaintext datagram from a node."""
    payload = datagram_bytes[16:]
    at = 8  # src_inc
    _, at = read_varint(payload, at)  # dst_inc
    at += 8  # src_session, dst_session
    count, at = read_varint(payload, at)
    # A node's answer to an unproven source lists the responses it owes (tag 4), then its
    # challenge (tag 3), then maybe its heartbeat.
    for _ in range(count):
        tag, at = read_varint(payload, at)
        nonce, at = read_varint(payload, at)
        if tag == 3:
            return nonce
        assert tag == 4, f"unexpected frame {tag} before the challenge"
    raise AssertionError("no challenge in the answer")


def deep_write_message(src_inc: int, depth: int) -> bytes:
    """Message::Delta with one group (origin, lo, hi) and one entry (seq, hlc, key,
    Some(value), expires: None) whose value is ``depth`` nested lists."""
    seq, hlc = 1, int(time.time() * 1000) << 16
    message = bytes([0, 1]) + varint(src_inc) + bytes([1, 1, 1]) + varint(seq) + varint(hlc)
    message += bytes([4]) + b"deep" + bytes([1])
    # Value::List (variant 6) of one element, `depth` times, around Value::Null (0).
    message += bytes([6, 1]) * depth + bytes([0])
    return message + bytes([0])


def data_frames(message: bytes, fragment: int) -> List[bytes]:
    """``message`` as reliable-data frames (variant 2: seq, msg_id, frag, frags, bytes) of
    ``fragment`` bytes each."""
    pieces = [message[i : i + fragment] for i in range(0, len(message), fragment)]
    frames = []
    for index, piece in enumerate(pieces):
        data = varint(index + 1) + varint(1) + varint(index) + varint(len(pieces))
        frames.append(bytes([2]) + data + varint(len(piece)) + piece)
    return frames


@pytest.mark.parametrize("fragment", [65_000, 1_100], ids=["one_datagram", "fragmented"])
def test_deeply_nested_value_from_the_network_is_dropped(make_node, fragment) -> None:
    a = make_node("a")
    b = make_node("b", start=False)
    b.add_bootstrap_peer(HOST, a.port)
    b.start()
    a.set("before", 1)
    assert wait_until(lambda: b.get("before") == 1)

    src_inc = 77
    frames = data_frames(deep_write_message(src_inc, 20_000), fragment)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(5)
        # An unproven source is challenged and its frames are not read; answering the
        # challenge from this address proves it, so the write reaches the value decoder.
        sock.sendto(packet(src_inc, frames[:1]), (HOST, a.port))
        nonce = challenge_nonce(sock.recvfrom(65_535)[0])
        for index, frame in enumerate(frames):
            proof = [bytes([4]) + varint(nonce)] if index == 0 else []
            sock.sendto(packet(src_inc, proof + [frame]), (HOST, a.port))
            time.sleep(0.001)
        assert wait_until(lambda: a.get_status()["counters"]["dropped"]["malformed"] >= 1), a.get_status()

    assert a.running and a.get("deep") is None
    a.set("after", 2)
    b.set("reply", 3)
    assert wait_until(lambda: b.get("after") == 2 and a.get("reply") == 3), describe([a, b])


def test_many_python_threads_writing_to_one_node(make_node) -> None:
    a = make_node("a")
    b = make_node("b", start=False)
    b.add_bootstrap_peer(HOST, a.port)
    b.start()
    changes = []
    a.on_state_change = lambda key, value, op: changes.append(key)
    threads_count, per_thread = 8, 500
    errors: List[BaseException] = []
    barrier = threading.Barrier(threads_count)

    def writer(t: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                a.set(f"t{t}/k{i}", i)
                a.set("contended", t)
                if i % 10 == 0:
                    a.delete(f"t{t}/k{i}")
                    assert a.get(f"t{t}/k{i}") is None
                if i % 100 == 0:
                    assert len(a.get_all_data()) >= i - i // 10
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors

    expected_keys = threads_count * (per_thread - per_thread // 10) + 1
    assert a.get_status()["data_keys"] == expected_keys
    assert a.get("contended") in range(threads_count)
    assert wait_until(lambda: converged([a, b])), describe([a, b])
    assert wait_until(lambda: len(changes) == threads_count * per_thread * 2 + threads_count * 50)


def test_stop_is_prompt_and_frees_the_port(make_node) -> None:
    a = make_node("a")
    b = make_node("b", start=False)
    b.add_bootstrap_peer(HOST, a.port)
    b.start()
    a.on_state_change = lambda key, value, op: None
    assert wait_until(lambda: fully_connected([a, b]))
    for i in range(1000):
        a.set(f"k{i}", i)
    port = a.port
    started = time.monotonic()
    a.stop()
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"stop took {elapsed:.3f} s"
    assert not a.running
    # The port is immediately reusable, by a new node or by anything else.
    again = make_node("a-again", port=port)
    assert again.port == port
    again.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, port))


def test_stop_while_callbacks_are_busy_does_not_deadlock(make_node) -> None:
    node = make_node()
    started = threading.Event()

    def slow(key: str, value: object, op: str) -> None:
        started.set()
        # Holds the interpreter for a while, like a busy application callback.
        end = time.monotonic() + 0.005
        while time.monotonic() < end:
            pass

    node.on_state_change = slow
    for i in range(100):
        node.set(f"k{i}", i)
    assert started.wait(30)
    node.stop()
    assert not node.running


def test_core_log_records_reach_python_logging(make_node, caplog) -> None:
    caplog.set_level(logging.INFO, logger="mesh_sync")
    a = make_node("loga")
    b = make_node("logb", start=False)
    b.add_bootstrap_peer(HOST, a.port)
    b.start()
    assert wait_until(
        lambda: any(
            r.name.startswith("mesh_sync.") and "discovered peer loga" in r.getMessage()
            for r in caplog.records
        )
    ), [(r.name, r.getMessage()) for r in caplog.records]


def test_simulator_fields_are_live_and_validated(make_node) -> None:
    node = make_node()
    sim = UnreliableNetworkSimulator(node, packet_loss_rate=0.25, latency_ms=5)
    faults = node.get_faults()
    assert faults["loss_rate"] == 0.25 and faults["latency_ms"] == 5.0
    sim.packet_loss_rate = 0.5
    sim.jitter_ms = 2
    sim.duplicate_rate = 0.1
    sim.reorder_rate = 0.1
    sim.corrupt_rate = 0.01
    faults = node.get_faults()
    assert (faults["loss_rate"], faults["jitter_ms"], faults["duplicate_rate"]) == (0.5, 2.0, 0.1)
    assert (faults["reorder_rate"], faults["corrupt_rate"]) == (0.1, 0.01)

    with pytest.raises(ConfigError) as info:
        sim.packet_loss_rate = 1.5
    assert info.value.field == "loss_rate"
    assert sim.packet_loss_rate == 0.5  # unchanged on error
    with pytest.raises(ConfigError):
        sim.latency_ms = -1

    sim.partition_from(("127.0.0.1", 9))
    assert node.get_faults()["partitioned"] == [("127.0.0.1", 9)]
    assert sim.partitioned == {("127.0.0.1", 9)}
    sim.heal(("127.0.0.1", 9))
    assert node.get_faults()["partitioned"] == []
    sim.restore()
    assert node.get_faults() == {
        "loss_rate": 0.0,
        "latency_ms": 0.0,
        "jitter_ms": 0.0,
        "duplicate_rate": 0.0,
        "reorder_rate": 0.0,
        "corrupt_rate": 0.0,
        "partitioned": [],
    }
    assert "node1" in repr(sim)


def test_simulator_stats_follow_the_loss_rate(make_node) -> None:
    a = make_node("a")
    b = make_node("b", start=False)
    b.add_bootstrap_peer(HOST, a.port)
    b.start()
    with UnreliableNetworkSimulator(a, packet_loss_rate=0.4, latency_ms=2, jitter_ms=2) as sim:
        for i in range(300):
            a.set(f"k{i}", i)
        assert wait_until(lambda: converged([a, b])), describe([a, b])
        assert wait_until(lambda: sim.get_stats()["packets_sent"] >= 100)
        stats = sim.get_stats()
        assert set(stats) >= {"packets_sent", "packets_dropped", "drop_rate"}
        assert stats["drop_rate"] == stats["packets_dropped"] / stats["packets_sent"]
        assert 0.2 < stats["drop_rate"] < 0.6, stats
        assert stats["packets_delayed"] > 0
    assert a.get_faults()["loss_rate"] == 0.0


def test_cluster_ids_keep_meshes_apart(make_node) -> None:
    a = make_node("a", cluster="blue")
    b = make_node("b", cluster="green", start=False)
    b.add_bootstrap_peer(HOST, a.port)
    b.start()
    a.set("k", 1)
    assert wait_until(lambda: a.get_status()["counters"]["dropped"]["wrong_cluster"] > 0)
    assert b.get("k") is None
    assert a.get_status()["peers"]["alive_peers"] == 0


def test_node_created_in_a_finished_thread_keeps_working(make_node) -> None:
    holder: List[MeshSyncNode] = []

    def create() -> None:
        holder.append(make_node("threaded"))

    thread = threading.Thread(target=create)
    thread.start()
    thread.join()
    node = holder[0]
    node.set("k", 1)
    assert node.get("k") == 1 and node.running


def test_a_node_with_compression_off_syncs_with_one_that_has_it(make_node) -> None:
    plain = make_node("plain", compression=False)
    packed = make_node("packed", start=False)
    packed.add_bootstrap_peer(HOST, plain.port)
    packed.start()
    # Repetitive values, which compression would shrink: none may reach "plain" packed.
    for i in range(200):
        packed.set(f"k{i}", "x" * 300 + str(i))
    assert wait_until(lambda: plain.get("k199") == "x" * 300 + "199")
    assert plain.get_status()["counters"]["dropped"]["malformed"] == 0
    with pytest.raises(TypeError):
        MeshSyncNode("n", 0, compression="no")  # type: ignore[arg-type]
