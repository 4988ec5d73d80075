"""A C program and a Python node on one mesh exchange a value of every type.

The C side is ``tests/c/cross_lang_peer.c`` (built with ``make -C tests/c
cross_lang_peer``): it joins the Python node, writes ``c.*`` keys of every type through
the C API, waits for the ``py.*`` keys and ``py.done``, and prints what it read as JSON.
The exchange also runs with the C program under valgrind, which must report no error and
no leak.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from mesh_sync import MeshSyncNode

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
#: Seconds either side waits for the other; valgrind makes the C side tens of times slower.
TIMEOUT = 90.0

#: What Python writes, and the type name the C API reports for each.
PY_VALUES: Dict[str, Tuple[Any, str]] = {
    "py.null": (None, "null"),
    "py.bool": (False, "bool"),
    "py.int": (2**53 + 1, "int"),  # not representable as a double: must stay an int
    "py.float": (-0.125, "float"),
    "py.string": ("snow \u2603 \u00e9\ttab\nline", "string"),
    "py.bytes": (b"\x00\xffpy\x10", "bytes"),
    "py.list": ([1, "two", None, [True, 2.5], b"\x01"], "list"),
    "py.map": ({"a": 1, "b": {"c": b"\x01\x02"}, "d": [], "e": None}, "map"),
}

#: What the C program writes (see cross_lang_peer.c), as Python must read it.
C_VALUES: Dict[str, Any] = {
    "c.null": None,
    "c.bool": True,
    "c.int": -1234567890123,
    "c.float": 3.25,
    "c.string": "h\u00e9llo from C \u2713",
    "c.bytes": b"\x00\x01\x7f\x80\xff",
    "c.list": [1, "two", 3.5, None, False, b"\x00\x01"],
    "c.map": {"name": "c", "nested": {"ok": True, "n": [1, 2]}, "raw": b"\xff\x00"},
}


def as_c_json(value: Any) -> Any:
    """The JSON model the C API uses: bytes become ``{"$bytes": "<base64>"}``."""
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return [as_c_json(v) for v in value]
    if isinstance(value, dict):
        return {k: as_c_json(v) for k, v in value.items()}
    return value


def assert_same(actual: Any, expected: Any, where: str) -> None:
    """Equal and of exactly the same types, recursively (so True is not 1, 2.0 not 2)."""
    assert type(actual) is type(expected), (
        f"{where}: {actual!r} is {type(actual).__name__}, expected {type(expected).__name__}"
    )
    if isinstance(expected, list):
        assert len(actual) == len(expected), f"{where}: {actual!r} != {expected!r}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, dict):
        assert actual.keys() == expected.keys(), f"{where}: {actual!r} != {expected!r}"
        for k in expected:
            assert_same(actual[k], expected[k], f"{where}[{k!r}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


@pytest.fixture(scope="module")
def c_peer() -> Path:
    """Builds the C program (and libmesh_sync, through cargo) and returns its path."""
    build = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT / "tests" / "c"), "cross_lang_peer"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, f"building the C peer failed:\n{build.stdout}\n{build.stderr}"
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    peer = target / "c-tests" / "debug" / "cross_lang_peer"
    assert peer.is_file(), f"{peer} was not built"
    return peer


@pytest.fixture
def py_node() -> Iterator[MeshSyncNode]:
    node = MeshSyncNode("py-peer", 0, sync_interval=0.2, heartbeat_interval=0.1, host=HOST)
    node.start()
    yield node
    node.stop()


def valgrind_command(log: Path) -> List[str]:
    return [
        "valgrind",
        "--leak-check=full",
        "--show-leak-kinds=definite,indirect,possible",
        "--errors-for-leak-kinds=definite,indirect,possible",
        "--error-exitcode=1",
        f"--suppressions={ROOT / 'tests' / 'c' / 'valgrind.supp'}",
        f"--log-file={log}",
    ]


@pytest.mark.parametrize("checker", ["plain", "valgrind"])
def test_c_and_python_exchange_every_type(
    c_peer: Path, py_node: MeshSyncNode, checker: str, tmp_path: Path
) -> None:
    for key, (value, _) in PY_VALUES.items():
        py_node.set(key, value)

    log = tmp_path / "valgrind.log"
    command = [str(c_peer), HOST, str(py_node.port), str(TIMEOUT)]
    if checker == "valgrind":
        command = valgrind_command(log) + command
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            # Python reads what C wrote, with Python types.
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline and proc.poll() is None:
                if C_VALUES.keys() <= py_node.get_all_data().keys():
                    break
                time.sleep(0.02)
            data = py_node.get_all_data()
            missing = sorted(C_VALUES.keys() - data.keys())
            assert not missing, f"Python never saw {missing}; C exited with {proc.poll()}"
            for key, expected in C_VALUES.items():
                assert_same(data[key], expected, key)

            # Tell C it may finish, then check what C read.
            py_node.set("py.done", True)
            out, err = proc.communicate(timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, f"C peer exited with {proc.returncode}:\n{err}"

    lines = out.splitlines()
    assert lines[0].startswith("READY "), out
    assert lines[-1] == "DONE", out
    seen = {}
    for line in lines:
        if line.startswith("VALUE\t"):
            _, key, type_name, text = line.split("\t", 3)
            seen[key] = (type_name, json.loads(text))
    assert seen.keys() == PY_VALUES.keys(), out
    for key, (value, type_name) in PY_VALUES.items():
        assert seen[key][0] == type_name, f"{key}: C reports type {seen[key][0]}"
        assert_same(seen[key][1], as_c_json(value), key)

    if checker == "valgrind":
        report = log.read_text()
        assert "ERROR SUMMARY: 0 errors" in report, report
        assert "definitely lost: 0 bytes" in report or "no leaks are possible" in report, report
