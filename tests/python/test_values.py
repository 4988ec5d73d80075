"""Every value type: local round trip, round trip across nodes, and rejections."""

from __future__ import annotations

import math
from collections import OrderedDict
from decimal import Decimal
from enum import IntEnum

import pytest
from helpers import HOST, wait_until

from mesh_sync import MAX_VALUE_DEPTH

SAMPLES = {
    "none": None,
    "true": True,
    "false": False,
    "zero": 0,
    "int": -42,
    "int_max": 2**63 - 1,
    "int_min": -(2**63),
    "float": 72.5,
    "float_neg_zero": -0.0,
    "float_inf": float("inf"),
    "float_tiny": 5e-324,
    "str": "héllo wörld ✓ 🚀",
    "str_empty": "",
    "bytes": bytes(range(256)),
    "bytes_empty": b"",
    "list": [1, "two", 3.0, None, True, b"\x00"],
    "list_empty": [],
    "dict": {"a": 1, "b": [1, 2, {"c": None}], "": "empty key"},
    "dict_empty": {},
    "nested": {"level1": {"level2": {"level3": [[[{"deep": b"bytes"}]]]}}},
}


def same(a: object, b: object) -> bool:
    """Equality that also compares types exactly (True != 1 here) and signs of zero."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        assert isinstance(b, float)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def test_every_type_round_trips_locally(make_node) -> None:
    node = make_node(start=False)
    for key, value in SAMPLES.items():
        node.set(key, value)
    for key, value in SAMPLES.items():
        assert same(node.get(key), value), key
    # None is a value, distinct from a missing key.
    assert node.get("none", "missing") is None
    assert "none" in node.get_all_data()


def test_every_type_round_trips_across_nodes(make_node) -> None:
    a = make_node("a")
    b = make_node("b", start=False)
    b.add_bootstrap_peer(HOST, a.port)
    b.start()
    for key, value in SAMPLES.items():
        a.set(key, value)
    assert wait_until(lambda: len(b.get_all_data()) == len(SAMPLES))
    remote = b.get_all_data()
    for key, value in SAMPLES.items():
        assert same(remote[key], value), (key, remote[key], value)


def test_nan_round_trips(make_node) -> None:
    node = make_node(start=False)
    node.set("nan", float("nan"))
    assert math.isnan(node.get("nan"))


def test_bool_is_not_stored_as_int(make_node) -> None:
    node = make_node(start=False)
    node.set("flag", True)
    node.set("one", 1)
    assert node.get("flag") is True
    assert type(node.get("one")) is int


def test_tuple_and_bytearray_are_accepted_as_list_and_bytes(make_node) -> None:
    node = make_node(start=False)
    node.set("t", (1, (2, 3)))
    node.set("ba", bytearray(b"abc"))
    assert node.get("t") == [1, [2, 3]]
    assert node.get("ba") == b"abc"
    assert type(node.get("ba")) is bytes


def test_subclasses_of_supported_types_are_stored_as_the_base_type(make_node) -> None:
    class Level(IntEnum):
        HIGH = 3

    node = make_node(start=False)
    node.set("level", Level.HIGH)
    node.set("ordered", OrderedDict([("b", 2), ("a", 1)]))
    assert type(node.get("level")) is int and node.get("level") == 3
    assert node.get("ordered") == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ({1, 2}, "set"),
        (frozenset(), "frozenset"),
        (object(), "object"),
        (Decimal("1.5"), "Decimal"),
        (1 + 2j, "complex"),
        (memoryview(b"x"), "memoryview"),
        ([1, {2}], "set"),
        ({"k": object()}, "object"),
    ],
)
def test_unsupported_types_raise_type_error_naming_the_type(make_node, value, type_name) -> None:
    node = make_node(start=False)
    with pytest.raises(TypeError, match=f"'{type_name}'"):
        node.set("k", value)
    assert node.get("k") is None


def test_dict_keys_must_be_strings(make_node) -> None:
    node = make_node(start=False)
    with pytest.raises(TypeError, match="dict keys must be str, got int"):
        node.set("k", {1: "one"})


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30])
def test_integers_beyond_64_bits_raise_overflow_error(make_node, value) -> None:
    node = make_node(start=False)
    with pytest.raises(OverflowError, match="64-bit"):
        node.set("k", value)
    with pytest.raises(OverflowError):
        node.set("k", [1, value])


def test_nesting_is_bounded_and_self_reference_is_an_error(make_node) -> None:
    node = make_node(start=False)
    deep: list = []
    cursor = deep
    for _ in range(MAX_VALUE_DEPTH - 1):
        inner: list = []
        cursor.append(inner)
        cursor = inner
    node.set("deep", deep)
    assert node.get("deep") == deep

    too_deep = [deep]
    with pytest.raises(ValueError, match="nested"):
        node.set("too_deep", too_deep)

    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="nested"):
        node.set("loop", loop)


def test_nesting_limit_is_the_cores_and_far_deeper_values_are_refused(make_node) -> None:
    # The core enforces the same limit on the wire, in JSON and in every binding.
    assert MAX_VALUE_DEPTH == 100
    node = make_node(start=False)
    far: list = []
    for _ in range(20_000):
        far = [far]
    with pytest.raises(ValueError, match="nested more than 100 levels deep"):
        node.set("far", far)
    far_dict: dict = {}
    for _ in range(20_000):
        far_dict = {"k": far_dict}
    with pytest.raises(ValueError, match="nested more than 100 levels deep"):
        node.set("far", far_dict)
    assert node.get("far") is None


def test_keys_must_be_strings(make_node) -> None:
    node = make_node(start=False)
    with pytest.raises(TypeError):
        node.set(1, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        node.get(None)  # type: ignore[arg-type]


def test_lone_surrogates_are_rejected(make_node) -> None:
    node = make_node(start=False)
    with pytest.raises(UnicodeEncodeError):
        node.set("k", "\ud800")
