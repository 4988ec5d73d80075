"""The example programs run as documented and end by themselves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


def run(*args: str, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_simulation_converges_and_exits() -> None:
    result = run(
        str(EXAMPLES / "simulation.py"), "--loss", "0.3", "--duration", "2", "--seed", "3"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "converged: all 5 nodes hold the same" in result.stdout
    assert "node4" in result.stdout


def test_basic_runs_the_prototype_commands() -> None:
    commands = "\n".join(
        [
            "set temperature 72.5",
            'set config {"mode": "eco", "levels": [1, 2]}',
            "get temperature",
            "list",
            "delete temperature",
            "get temperature",
            "status",
            "peers",
            "frobnicate",
            "quit",
        ]
    )
    result = run(str(EXAMPLES / "basic.py"), "node1", "0", "--host", "127.0.0.1", stdin=commands)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "temperature = 72.5" in out
    assert 'config = {"mode": "eco", "levels": [1, 2]}' in out
    assert "(2 keys)" in out
    assert "temperature is not set" in out
    assert '"node_id": "node1"' in out
    assert "(0 peers)" in out
    assert "unknown command" in out
    assert out.rstrip().endswith("stopped")


def test_basic_joins_a_peer_and_sees_its_writes() -> None:
    from helpers import HOST, wait_until

    from mesh_sync import MeshSyncNode

    with MeshSyncNode("seed", 0, host=HOST) as seed:
        seed.set("greeting", "hello")
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "basic.py"), "joiner", "0", HOST, str(seed.port),
             "--host", HOST, "--heartbeat-interval", "0.2", "--sync-interval", "0.5"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert wait_until(lambda: seed.get_status()["peers"]["alive_peers"] == 1)
            out, err = proc.communicate("get greeting\nset reply 42\nquit\n", timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        assert 'greeting = "hello"' in out
        assert wait_until(lambda: seed.get("reply") == 42)
