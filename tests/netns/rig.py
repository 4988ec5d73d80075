"""A multi-process test rig: every node is a ``mesh-sync`` process in its own network
namespace, joined by a veth pair to a bridge in a hub namespace. nftables rules inside a
node's namespace drop its traffic at random (loss) or towards chosen nodes (partitions).

Nothing here touches the host's own network: the bridge, the links and the addresses
(10.77.0.0/24) all live in namespaces the rig creates and deletes. Needs root, ``ip``
(iproute2) and ``nft`` (nftables); scripts/test.sh installs both.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[2]
SUBNET = "10.77.0"
PORT = 7000
STARTUP_TIMEOUT = 20.0
REPLY_TIMEOUT = 20.0


def cli_binary() -> Path:
    """The ``mesh-sync`` binary that ``cargo build`` left (scripts/test.sh builds it first)."""
    if "MESH_SYNC_BIN" in os.environ:
        return Path(os.environ["MESH_SYNC_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "debug" / "mesh-sync"


def missing_capabilities() -> List[str]:
    """What this machine lacks to run the rig, in words an operator can act on."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces)")
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            missing.append(f"`{tool}` (apt-get install {package})")
    if not cli_binary().exists():
        missing.append(f"{cli_binary()} (cargo build -p mesh-cli)")
    return missing


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


class NodeProcess:
    """One ``mesh-sync --json`` process reading commands on standard input, one at a time:
    each command waits for its reply, so a reply to ``set`` is the node's acknowledgement."""

    def __init__(self, args: List[str], name: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.replies: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue()
        self.stderr: List[str] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        first = self.replies.get(timeout=STARTUP_TIMEOUT)
        if first is None or first.get("event") != "listening":
            raise AssertionError(f"{name} did not start: {first}\n{''.join(self.stderr)}")

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                document = json.loads(line)
            except json.JSONDecodeError:
                continue
            # Notices (peers joining, watch events) are not replies to commands.
            if isinstance(document, dict) and document.get("event") not in (None, "listening"):
                continue
            self.replies.put(document)
        self.proc.stdout.close()
        self.replies.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            if line.startswith("{") and '"listening"' in line:
                try:
                    self.replies.put(json.loads(line))
                except json.JSONDecodeError:
                    pass
        self.proc.stderr.close()

    def command(self, line: str, timeout: float = REPLY_TIMEOUT) -> Any:
        """Sends one command and returns its JSON reply; raises if the process died."""
        with self.lock:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write(line + "\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError) as error:
                raise ProcessLookupError(f"{self.name} is gone") from error
            reply = self.replies.get(timeout=timeout)
            if reply is None:
                raise ProcessLookupError(f"{self.name} is gone")
            return reply

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._close_stdin()

    def _close_stdin(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self._close_stdin()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class Rig:
    """``n`` node namespaces on one bridge. Node ``i`` (from 1) has address 10.77.0.i."""

    def __init__(self, n: int, workdir: Path, extra_args: Optional[List[str]] = None) -> None:
        self.n = n
        self.workdir = workdir
        self.extra_args = extra_args or []
        self.tag = f"{os.getpid() % 100000}"
        self.hub = f"msh-{self.tag}"
        self.nodes: Dict[int, NodeProcess] = {}
        self.created: List[str] = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def ns(self, i: int) -> str:
        return f"msn-{self.tag}-{i}"

    def addr(self, i: int) -> str:
        return f"{SUBNET}.{i}"

    def _build(self) -> None:
        run("ip", "netns", "add", self.hub)
        self.created.append(self.hub)
        run("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.hub, "link", "set", "br0", "up")
        for i in range(1, self.n + 1):
            ns = self.ns(i)
            run("ip", "netns", "add", ns)
            self.created.append(ns)
            run("ip", "link", "add", "eth0", "netns", ns, "type", "veth",
                "peer", "name", f"p{i}", "netns", self.hub)
            run("ip", "-n", self.hub, "link", "set", f"p{i}", "master", "br0")
            run("ip", "-n", self.hub, "link", "set", f"p{i}", "up")
            run("ip", "-n", ns, "addr", "add", f"{self.addr(i)}/24", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
            nft = "add table inet rig\n" \
                  "add chain inet rig out { type filter hook output priority 0; }\n" \
                  "add chain inet rig in { type filter hook input priority 0; }\n"
            subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=nft,
                           check=True, capture_output=True, text=True)

    def data_dir(self, i: int) -> Path:
        return self.workdir / f"node{i}"

    def start(self, i: int, durability: str = "sync") -> NodeProcess:
        """Starts node ``i`` (again, after a kill) with its data directory."""
        args = ["ip", "netns", "exec", self.ns(i), str(cli_binary()), f"n{i}",
                "--host", self.addr(i), "--port", str(PORT), "--json", "--quiet",
                "--data-dir", str(self.data_dir(i)), "--durability", durability,
                "--heartbeat-interval", "0.2", "--peer-timeout", "1", "--sync-interval", "0.5"]
        for j in range(1, self.n + 1):
            if j != i:
                args += ["--bootstrap", f"{self.addr(j)}:{PORT}"]
        node = NodeProcess(args + self.extra_args, f"n{i}")
        self.nodes[i] = node
        return node

    def nft(self, i: int, *rules: str) -> None:
        script = "".join(rule + "\n" for rule in rules)
        subprocess.run(["ip", "netns", "exec", self.ns(i), "nft", "-f", "-"], input=script,
                       check=True, capture_output=True, text=True)

    def set_loss(self, i: int, percent: int) -> None:
        """Drops ``percent`` % of node ``i``'s outgoing UDP datagrams at random."""
        self.nft(i, "flush chain inet rig out",
                 f"add rule inet rig out meta l4proto udp numgen random mod 100 < {percent} drop")

    def partition(self, side: List[int]) -> None:
        """Cuts every link between ``side`` and the other nodes, in both directions."""
        for i in range(1, self.n + 1):
            others = [j for j in range(1, self.n + 1) if (j in side) != (i in side)]
            rules = ["flush chain inet rig in"]
            for j in others:
                rules.append(f"add rule inet rig in ip saddr {self.addr(j)} drop")
            self.nft(i, *rules)

    def set_mtu(self, i: int, mtu: int) -> None:
        """Sets the MTU of node ``i``'s interface (and of its port on the bridge)."""
        run("ip", "-n", self.ns(i), "link", "set", "eth0", "mtu", str(mtu))
        run("ip", "-n", self.hub, "link", "set", f"p{i}", "mtu", str(mtu))

    def count_udp_longer_than(self, i: int, length: int) -> None:
        """Counts node ``i``'s outgoing UDP datagrams whose UDP length (8-byte header
        included) exceeds ``length``; read back with :meth:`counted`."""
        self.nft(i, f"add rule inet rig out udp length > {length} counter")

    def counted(self, i: int) -> int:
        """Packets counted by node ``i``'s outgoing counter rules."""
        out = subprocess.run(["ip", "netns", "exec", self.ns(i), "nft", "list", "chain",
                              "inet", "rig", "out"], check=True, capture_output=True,
                             text=True).stdout
        return sum(int(word.split()[0]) for word in out.split("counter packets ")[1:])

    def ip_fragments_created(self, i: int) -> int:
        """IPv4 fragments node ``i``'s kernel has created (``FragCreates``)."""
        lines = subprocess.run(["ip", "netns", "exec", self.ns(i), "cat", "/proc/net/snmp"],
                               check=True, capture_output=True, text=True).stdout.splitlines()
        names, values = [line.split()[1:] for line in lines if line.startswith("Ip:")][:2]
        return int(dict(zip(names, values))["FragCreates"])

    def heal(self) -> None:
        for i in range(1, self.n + 1):
            self.nft(i, "flush chain inet rig in", "flush chain inet rig out")

    def close(self) -> None:
        for node in self.nodes.values():
            node.kill()
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.created.clear()
