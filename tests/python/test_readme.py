"""The Python code blocks of the package README run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

README = Path(__file__).resolve().parents[2] / "mesh-python" / "README.md"


def python_blocks() -> List[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_readme_has_the_quick_start() -> None:
    assert len(python_blocks()) >= 4


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_block_runs(index: int) -> None:
    code = python_blocks()[index]
    result = run(code)
    assert result.returncode == 0, f"block {index}:\n{code}\n{result.stdout}\n{result.stderr}"


def test_quick_start_shows_the_sync() -> None:
    quick_start = python_blocks()[0]
    result = run(quick_start)
    assert result.returncode == 0, result.stderr
    assert "beta saw sync: temperature = 72.5" in result.stdout
    assert "beta saw delete: temperature = None" in result.stdout
    assert "MeshSyncNode(node_id='beta'" in result.stdout
