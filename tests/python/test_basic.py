"""Quick verification: create a node, read and write, sync two nodes, status, errors."""

from __future__ import annotations

import socket

import pytest
from helpers import HOST, fully_connected, wait_until

import mesh_sync
from mesh_sync import (
    AddressInUseError,
    BindError,
    ConfigError,
    KeyTooLongError,
    MeshSyncError,
    MeshSyncNode,
    NodeStoppedError,
    ResolveError,
    ValueTooLargeError,
)


def test_package_exports_what_it_declares() -> None:
    for name in mesh_sync.__all__:
        assert hasattr(mesh_sync, name), name
    assert mesh_sync.__version__.count(".") == 2


def test_port_zero_binds_a_real_port(make_node) -> None:
    node = make_node(start=False)
    assert 0 < node.port < 65536
    assert node.address == (HOST, node.port)
    assert node.node_id == "node1"
    assert not node.running


def test_set_get_delete_locally(make_node) -> None:
    node = make_node()
    assert node.get("temperature") is None
    node.set("temperature", 72.5)
    assert node.get("temperature") == 72.5
    node.set("temperature", 73.0)
    assert node.get("temperature") == 73.0
    assert node.delete("temperature") is True
    assert node.get("temperature") is None
    assert node.delete("temperature") is False
    assert node.get("temperature", "absent") == "absent"


def test_writes_work_before_start_and_after_stop(make_node) -> None:
    node = make_node(start=False)
    node.set("before", 1)
    node.start()
    node.stop()
    node.set("after", 2)
    assert node.get_all_data() == {"before": 1, "after": 2}


def test_get_all_data_is_a_snapshot_of_live_keys(make_node) -> None:
    node = make_node()
    node.set("a", 1)
    node.set("b", 2)
    node.set("c", 3)
    node.delete("b")
    data = node.get_all_data()
    assert data == {"a": 1, "c": 3}
    data["z"] = 26
    assert node.get("z") is None


def test_status_has_the_prototype_shape_and_counters(make_node) -> None:
    node = make_node()
    node.set("a", 1)
    node.set("b", 2)
    node.delete("b")
    status = node.get_status()
    assert status["node_id"] == "node1"
    assert status["port"] == node.port
    assert status["running"] is True
    assert status["data_keys"] == 1
    assert status["tombstones"] == 1
    assert status["state_version"] >= 3
    assert status["pending_acks"] == 0
    assert set(status["peers"]) >= {"total_peers", "alive_peers", "dead_peers", "bootstrap_peers"}
    assert status["peers"]["total_peers"] == 0
    for counter in ("datagrams_sent", "datagrams_received", "retransmits", "sync_rounds"):
        assert isinstance(status["counters"][counter], int)
    assert isinstance(status["counters"]["dropped"]["bad_checksum"], int)


def test_repr_is_readable(make_node) -> None:
    node = make_node("alpha", start=False)
    node.set("k", "v")
    text = repr(node)
    assert text == f"MeshSyncNode(node_id='alpha', port={node.port}, running=False, keys=1)"


def test_two_nodes_sync_set_and_delete(make_node) -> None:
    a = make_node("a")
    b = make_node("b", start=False)
    b.add_bootstrap_peer(HOST, a.port)
    b.start()
    a.set("temperature", 72.5)
    assert wait_until(lambda: b.get("temperature") == 72.5)
    b.set("humidity", 40)
    assert wait_until(lambda: a.get("humidity") == 40)
    a.delete("temperature")
    assert wait_until(lambda: b.get("temperature") is None)
    assert wait_until(lambda: a.get_all_data() == b.get_all_data() == {"humidity": 40})


def test_bootstrap_peer_by_host_name(make_node) -> None:
    a = make_node("a")
    b = make_node("b", start=False)
    b.add_bootstrap_peer("localhost", a.port)
    # Resolved in the background, within moments.
    assert wait_until(lambda: b.get_status()["peers"]["bootstrap_peers"] == 1)
    b.start()
    assert wait_until(lambda: fully_connected([a, b]))
    peers = b.get_peers()
    assert len(peers) == 1
    assert peers[0]["node_id"] == "a"
    assert peers[0]["address"] == (HOST, a.port)
    assert peers[0]["state"] == "alive"
    assert peers[0]["bootstrap"] is True
    # Nothing larger than a datagram went to it: its path was never probed.
    assert peers[0]["datagram_size"] == 1200


def test_context_manager_starts_and_stops() -> None:
    with MeshSyncNode("ctx", 0, host=HOST) as node:
        assert node.running
        node.set("k", 1)
    assert not node.running
    with pytest.raises(NodeStoppedError):
        node.start()


def test_start_is_idempotent_and_stop_too(make_node) -> None:
    node = make_node()
    node.start()
    assert node.running
    node.stop()
    node.stop()
    assert not node.running


def test_port_in_use_raises_address_in_use(make_node) -> None:
    first = make_node()
    with pytest.raises(AddressInUseError) as info:
        MeshSyncNode("second", first.port, host=HOST)
    assert isinstance(info.value, BindError)
    assert isinstance(info.value, MeshSyncError)
    assert str(first.port) in str(info.value)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"sync_interval": 0}, "sync_interval"),
        ({"sync_interval": -1.0}, "sync_interval"),
        ({"heartbeat_interval": float("nan")}, "heartbeat_interval"),
        ({"heartbeat_interval": 5.0, "peer_timeout": 1.0}, "peer_timeout"),
        ({"cluster": ""}, "cluster"),
        ({"max_datagram_size": 10}, "max_datagram_size"),
        ({"max_probed_datagram_size": 70_000}, "max_probed_datagram_size"),
        ({"max_probed_datagram_size": -1}, "max_probed_datagram_size"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1000}, "max_retries"),
        ({"push_fanout": -1}, "push_fanout"),
        ({"max_collected_deletes": -1}, "max_collected_deletes"),
        ({"min_rto": 2.0, "max_rto": 1.0}, "min_rto"),
    ],
)
def test_bad_config_names_the_field(options, field) -> None:
    with pytest.raises(ConfigError) as info:
        MeshSyncNode("n", 0, host=HOST, **options)
    assert info.value.field == field
    assert field in str(info.value)


def test_push_fanout_takes_any_count(make_node, make_cluster) -> None:
    for fanout in (1, 32, 1_000_000):
        make_node(f"fanout{fanout}", start=False, push_fanout=fanout)
    # 0 is valid too: every write then travels the broadcast tree.
    nodes = make_cluster(3, prefix="tree", push_fanout=0)
    assert wait_until(lambda: fully_connected(nodes))
    nodes[1].set("k", 1)
    assert wait_until(lambda: all(node.get("k") == 1 for node in nodes))
    with pytest.raises(TypeError):
        MeshSyncNode("n", 0, host=HOST, push_fanout="8")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        MeshSyncNode("n", 0, host=HOST, push_fanout=1.5)  # type: ignore[arg-type]


def test_bad_node_id_and_port_are_config_errors() -> None:
    with pytest.raises(ConfigError) as info:
        MeshSyncNode("", 0, host=HOST)
    assert info.value.field == "node_id"
    with pytest.raises(ConfigError) as info:
        MeshSyncNode("n", 70000, host=HOST)
    assert info.value.field == "port"


def test_bad_bootstrap_peers(make_node) -> None:
    node = make_node(start=False)
    # Only a malformed name is refused at once: a valid one that does not resolve (yet)
    # is retried in the background (see test_addresses.py).
    with pytest.raises(ResolveError):
        node.add_bootstrap_peer("no such host!", 5000)
    with pytest.raises(ValueError):
        node.add_bootstrap_peer(HOST, 0)
    with pytest.raises(ValueError):
        node.add_bootstrap_peer(HOST, 65536)


def test_key_and_value_limits(make_node) -> None:
    node = make_node(max_key_len=16, max_value_size=1024)
    with pytest.raises(KeyTooLongError):
        node.set("k" * 17, 1)
    with pytest.raises(KeyTooLongError):
        node.delete("k" * 17)
    with pytest.raises(ValueTooLargeError):
        node.set("big", b"x" * 2048)
    node.set("k" * 16, b"x" * 512)
    assert node.get("k" * 16) == b"x" * 512


def test_unstarted_node_frees_its_port_when_collected() -> None:
    node = MeshSyncNode("temp", 0, host=HOST)
    port = node.port
    del node
    # The port is free again: binding it succeeds.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, port))
