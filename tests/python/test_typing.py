"""The type stubs match the compiled module; the package and examples type-check strictly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # Run away from the source tree, so that the installed package is what gets checked.
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=cwd,
    )


def test_stubs_match_the_native_module(tmp_path: Path) -> None:
    result = run_module("mypy.stubtest", "mesh_sync", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_passes_mypy_strict(tmp_path: Path) -> None:
    result = run_module("mypy", "--strict", "--no-incremental", "-p", "mesh_sync", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_examples_pass_mypy_strict(tmp_path: Path) -> None:
    examples = str(ROOT / "examples" / "python")
    result = run_module("mypy", "--strict", "--no-incremental", examples, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
