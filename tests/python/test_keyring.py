"""Sealed meshes: keyrings, key rotation, and nodes without the key kept out."""

from __future__ import annotations

import base64
from typing import Callable, List

import pytest
from conftest import NodeFactory
from helpers import HOST, converged, describe, fully_connected, wait_until

from mesh_sync import ConfigError, KeyringError, MeshSyncError, MeshSyncNode, generate_key


def test_generate_key_gives_32_random_bytes() -> None:
    a, b = generate_key(), generate_key()
    assert isinstance(a, bytes) and len(a) == 32
    assert a != b


def test_keys_are_bytes_or_base64_and_only_fingerprints_are_shown(
    make_node: NodeFactory,
) -> None:
    raw, other = generate_key(), generate_key()
    text = base64.b64encode(other).decode()
    node = make_node(keyring=[raw, text], start=False)
    fingerprints = node.list_keys()
    assert len(fingerprints) == 2
    assert all(len(f) == 16 for f in fingerprints)
    assert text not in repr(fingerprints)


@pytest.mark.parametrize("bad", [b"short", "not base64!", base64.b64encode(b"x" * 31).decode()])
def test_a_malformed_key_is_a_config_error(make_node: NodeFactory, bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        make_node(keyring=[bad], start=False)
    assert getattr(info.value, "field") == "keyring"
    node = make_node(keyring=[generate_key()], start=False)
    with pytest.raises(ConfigError):
        node.install_key(bad)  # type: ignore[arg-type]


def test_removing_the_primary_key_is_refused(make_node: NodeFactory) -> None:
    primary, spare = generate_key(), generate_key()
    node = make_node(keyring=[primary, spare], start=False)
    with pytest.raises(KeyringError):
        node.remove_key(primary)
    assert issubclass(KeyringError, MeshSyncError)
    node.remove_key(spare)
    assert len(node.list_keys()) == 1
    with pytest.raises(KeyringError):
        node.use_key(spare)


@pytest.mark.slow
def test_keys_rotate_with_writes_flowing(
    make_cluster: Callable[..., List[MeshSyncNode]],
) -> None:
    old, new = generate_key(), generate_key()
    nodes = make_cluster(3, keyring=[old])
    assert wait_until(lambda: fully_connected(nodes)), describe(nodes)
    written = 0

    def write_some() -> None:
        nonlocal written
        for node in nodes:
            node.set(f"k{written}", written)
            written += 1

    write_some()
    for node in nodes:
        node.install_key(new)
    write_some()
    for node in nodes:
        node.use_key(new)
    write_some()
    # Datagrams sealed under the old key just before a node switched may still be queued
    # at a receiver. Loopback delivers in send order, so once every node's later write has
    # arrived everywhere none is left, and removing the old key drops nothing.
    assert wait_until(
        lambda: converged(nodes) and len(nodes[0].get_all_data()) == written
    ), describe(nodes)
    for node in nodes:
        node.remove_key(old)
    write_some()
    assert wait_until(
        lambda: converged(nodes) and len(nodes[0].get_all_data()) == written
    ), describe(nodes)
    for node in nodes:
        assert node.get_status()["counters"]["dropped"]["unauthenticated"] == 0
        assert len(node.list_keys()) == 1


@pytest.mark.slow
def test_a_node_without_the_key_is_kept_out(make_node: NodeFactory) -> None:
    key = generate_key()
    keyed = make_node("keyed", keyring=[key])
    keyed.set("secret", 1)
    outsider = make_node("outsider", start=False)
    outsider.add_bootstrap_peer(HOST, keyed.port)
    keyed.add_bootstrap_peer(HOST, outsider.port)
    outsider.start()
    outsider.set("injected", 2)

    def dropped(node: MeshSyncNode) -> int:
        return node.get_status()["counters"]["dropped"]["unauthenticated"]

    assert wait_until(lambda: dropped(keyed) > 0 and dropped(outsider) > 0)
    assert outsider.get("secret") is None
    assert keyed.get("injected") is None
    assert keyed.get_status()["peers"]["alive_peers"] == 0
