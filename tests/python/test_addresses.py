"""Addresses: IPv6 (``::1``), dual-stack binding, advertised addresses, DNS seeds.

The IPv6 tests need the IPv6 loopback; where it is missing they fail, naming it, rather
than pass without testing anything. Host names are ``localhost`` only: tests never look
up outside names.
"""

from __future__ import annotations

import socket
from typing import Optional, Tuple

import pytest
from helpers import HOST, wait_until

from mesh_sync import ConfigError, MeshSyncNode, ResolveError


def require_ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError as e:
        pytest.fail(
            "this test needs the IPv6 loopback address ::1, which this environment lacks "
            f"(binding [::1]:0 failed: {e})"
        )


def alive_at(node: MeshSyncNode, node_id: str) -> Optional[Tuple[str, int]]:
    for peer in node.get_peers():
        if peer["node_id"] == node_id and peer["state"] == "alive":
            return peer["address"]
    return None


def test_an_ipv6_pair_syncs_over_the_loopback(make_node) -> None:
    require_ipv6_loopback()
    a = make_node("v6a", host="::1")
    b = make_node("v6b", host="::1", start=False)
    assert a.address == ("::1", a.port)
    b.add_bootstrap_peer("::1", a.port)
    b.start()
    a.set("k", "over ipv6")
    assert wait_until(lambda: b.get("k") == "over ipv6")
    assert alive_at(b, "v6a") == ("::1", a.port)


def test_a_dual_stack_node_serves_ipv4_and_ipv6_peers(make_node) -> None:
    require_ipv6_loopback()
    hub = make_node("hub", host="::")
    v4 = make_node("v4", start=False)
    v6 = make_node("v6", host="::1", start=False)
    v4.add_bootstrap_peer(HOST, hub.port)
    v6.add_bootstrap_peer("::1", hub.port)
    v4.start()
    v6.start()
    v4.set("from_v4", 4)
    v6.set("from_v6", 6)
    nodes = [hub, v4, v6]
    assert wait_until(
        lambda: all(n.get("from_v4") == 4 and n.get("from_v6") == 6 for n in nodes)
    )
    # Known by its IPv4 address, not as ::ffff:127.0.0.1.
    assert alive_at(hub, "v4") == (HOST, v4.port), (
        "the hub bound to :: did not know the IPv4 node by its IPv4 address; "
        f"does this host allow dual-stack sockets? peers: {hub.get_peers()}"
    )
    assert alive_at(hub, "v6") == ("::1", v6.port)


def test_a_family_the_socket_cannot_reach_is_refused(make_node) -> None:
    require_ipv6_loopback()
    v4_only = make_node(start=False)
    with pytest.raises(ResolveError, match="cannot reach IPv6"):
        v4_only.add_bootstrap_peer("::1", 7000)


def test_localhost_is_a_dns_seed(make_node) -> None:
    seed = make_node("seed")
    joiner = make_node("joiner", start=False)
    joiner.add_bootstrap_peer("localhost", seed.port)
    joiner.start()
    seed.set("hello", "by name")
    assert wait_until(lambda: joiner.get("hello") == "by name")
    assert alive_at(joiner, "seed") is not None


def test_only_malformed_names_are_refused_at_once(make_node) -> None:
    node = make_node(start=False)
    for bad in ["", "two words", "-dash.example", "a..b"]:
        with pytest.raises(ResolveError):
            node.add_bootstrap_peer(bad, 7000)
    # Well formed: accepted and resolved in the background.
    node.add_bootstrap_peer("localhost", 7000)


def test_the_advertised_address_is_reported_and_gossiped(make_node) -> None:
    wild = make_node("wild", host="0.0.0.0", advertise_host=HOST, start=False)
    assert wild.advertise_address == (HOST, wild.port), "port 0: the bound port"
    boot = make_node("boot")
    third = make_node("third", start=False)
    wild.add_bootstrap_peer(HOST, boot.port)
    third.add_bootstrap_peer(HOST, boot.port)
    wild.start()
    third.start()

    def boot_records_it() -> bool:
        return any(
            p["node_id"] == "wild" and p["advertised_address"] == (HOST, wild.port)
            for p in boot.get_peers()
        )

    assert wait_until(boot_records_it), boot.get_peers()
    assert wait_until(lambda: alive_at(third, "wild") == (HOST, wild.port))


def test_advertise_options_are_checked() -> None:
    node = MeshSyncNode("n", 0, host=HOST, advertise_host="10.0.0.5", advertise_port=7000)
    try:
        assert node.advertise_address == ("10.0.0.5", 7000)
    finally:
        node.stop()
    node = MeshSyncNode("n", 0, host=HOST)
    try:
        assert node.advertise_address is None
    finally:
        node.stop()
    with pytest.raises(ConfigError) as info:
        MeshSyncNode("n", 0, host=HOST, advertise_port=7000)
    assert info.value.field == "advertise_port"
    with pytest.raises(ConfigError) as info:
        MeshSyncNode("n", 0, host=HOST, advertise_host="0.0.0.0")
    assert info.value.field == "advertise_addr"
    with pytest.raises(ConfigError) as info:
        MeshSyncNode("n", 0, host=HOST, advertise_host="bad host")
    assert info.value.field == "advertise_host"
    with pytest.raises(ConfigError) as info:
        MeshSyncNode("n", 0, host=HOST, advertise_host=HOST, advertise_port=70000)
    assert info.value.field == "advertise_port"
