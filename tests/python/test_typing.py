"""The type stubs match the compiled module, and the examples type-check strictly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def mypy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
    )


def test_stubs_match_the_native_module() -> None:
    result = mypy("mypy.stubtest", "mesh_sync", "mesh_sync._mesh_sync", "mesh_sync.testing")
    assert result.returncode == 0, result.stdout + result.stderr


def test_examples_and_testing_helpers_pass_mypy_strict() -> None:
    result = mypy(
        "mypy",
        "--strict",
        "--no-incremental",
        "--python-version",
        "3.9",
        str(ROOT / "examples" / "python"),
        "-p",
        "mesh_sync",
    )
    assert result.returncode == 0, result.stdout + result.stderr
