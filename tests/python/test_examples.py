"""The example programs run as documented and end by themselves."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import List

from helpers import HOST, wait_until

from mesh_sync import MeshSyncNode

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
    assert 'config = {"levels": [1, 2], "mode": "eco"}' in out
    assert "(2 keys)" in out
    assert "temperature is not set" in out
    assert '"node_id": "node1"' in out
    assert "(0 peers)" in out
    assert "unknown command" in out
    assert out.rstrip().endswith("stopped")


def test_basic_joins_a_peer_and_sees_its_writes() -> None:
    with MeshSyncNode("seed", 0, host=HOST) as seed:
        seed.set("greeting", "hello")
        proc = subprocess.Popen(
            [
                sys.executable,
                str(EXAMPLES / "basic.py"),
                "joiner",
                "0",
                HOST,
                str(seed.port),
                "--host",
                HOST,
                "--heartbeat-interval",
                "0.2",
                "--sync-interval",
                "0.5",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        output: List[str] = []
        reader = threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True)
        reader.start()

        def printed(text: str) -> bool:
            return any(text in line for line in list(output))

        try:
            # The seed's data reaches the joiner, which prints the change as it arrives.
            assert wait_until(lambda: printed('[sync] greeting = "hello"')), output
            assert printed("[peer] discovered seed")
            proc.stdin.write("get greeting\nset reply 42\n")
            proc.stdin.flush()
            # The joiner stays up until its write has reached the seed.
            assert wait_until(lambda: seed.get("reply") == 42)
            proc.stdin.write("quit\n")
            proc.stdin.close()
            proc.wait(timeout=60)
            reader.join(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
            proc.stdout.close()
        assert proc.returncode == 0
        assert printed('greeting = "hello"')
        assert output[-1].rstrip().endswith("stopped")


def test_watch_follows_a_prefix_with_a_callback_and_async_for() -> None:
    result = run(str(EXAMPLES / "watch.py"), "--readings", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "[watch] room/kitchen/temperature = 23.0 (sync)" in out
    assert "[async] room/hall/temperature = 23.0 (sync)" in out
    assert "weather/" not in out
    assert "display saw" in out
