"""The dashboard of ``mesh-sync --metrics`` in a real browser: Debian's Chromium driven by
Playwright, against a mesh of three CLI nodes on 127.0.0.1 with ephemeral ports."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator, List, Optional

import pytest
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 20.0


def cli_binary() -> Path:
    """The ``mesh-sync`` binary that ``cargo build`` left (scripts/test.sh builds it first)."""
    if "MESH_SYNC_BIN" in os.environ:
        return Path(os.environ["MESH_SYNC_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "debug" / "mesh-sync"


def chromium_binary() -> str:
    """Debian's Chromium (scripts/test.sh installs the package); the browser Playwright
    would download cannot be fetched here."""
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium") or ""):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise AssertionError("Chromium not found: apt-get install chromium (scripts/test.sh does)")


class CliNode:
    """One ``mesh-sync --serve`` process with its HTTP listener on an ephemeral port."""

    def __init__(self, node_id: str, bootstrap: Optional[int] = None,
                 extra: Optional[List[str]] = None) -> None:
        args = [str(cli_binary()), node_id, "--host", "127.0.0.1", "--port", "0", "--serve",
                "--metrics", "127.0.0.1:0", "--heartbeat-interval", "0.2", "--peer-timeout", "1"]
        if bootstrap is not None:
            args += ["--bootstrap", f"127.0.0.1:{bootstrap}"]
        args += extra or []
        self.node_id = node_id
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: List[str] = []
        self.udp_port = 0
        self.http = ""
        found = threading.Event()

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line)
                port = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
                if port:
                    self.udp_port = int(port.group(1))
                url = re.search(r"dashboard on (http://127\.0\.0\.1:\d+)/", line)
                if url:
                    self.http = url.group(1)
                    found.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        if not found.wait(STARTUP_TIMEOUT) or not self.udp_port:
            self.stop()
            raise AssertionError(f"{node_id} did not start: {self.lines}")

    def set(self, key: str, value: str) -> None:
        """Writes through a short-lived node that joins this one (the CLI's own path)."""
        subprocess.run([str(cli_binary()), f"writer-{key}", "--host", "127.0.0.1", "--port", "0",
                        "--bootstrap", f"127.0.0.1:{self.udp_port}", "--exec", "sleep 0.3",
                        "--exec", f"set {key} {value}"],
                       check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture
def mesh() -> Iterator[List[CliNode]]:
    assert cli_binary().exists(), f"{cli_binary()} missing: run cargo build first"
    nodes: List[CliNode] = []
    try:
        nodes.append(CliNode("alpha"))
        nodes.append(CliNode("beta", bootstrap=nodes[0].udp_port))
        nodes.append(CliNode("gamma", bootstrap=nodes[0].udp_port))
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_binary(), headless=True)
        try:
            page = browser.new_page()
            errors: List[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            yield page
            assert not errors, f"errors in the page: {errors}"
        finally:
            browser.close()


def test_the_dashboard_shows_peers_live_writes_and_searches_keys(mesh, page: Page) -> None:
    alpha, beta, gamma = mesh
    page.goto(alpha.http + "/")
    expect(page.locator("#node-id")).to_have_text("alpha")
    # Both peers appear, alive, with the membership drawing.
    for peer in ("beta", "gamma"):
        row = page.locator(f'#peers tr[data-node="{peer}"]')
        expect(row).to_contain_text("alive", timeout=15_000)
    expect(page.locator("#membership circle")).to_have_count(3)

    # A write made on another node shows on the page within 2 s of reaching the mesh.
    beta.set("sensor/temperature", "72.5")
    written = time.monotonic()
    row = page.locator('#keys tr[data-key="sensor/temperature"]')
    expect(row).to_be_visible(timeout=2_000)
    assert time.monotonic() - written <= 2.5
    expect(row).to_contain_text("72.5")
    expect(row.locator("td").nth(2)).to_have_text("writer-sensor/temperature")
    expect(page.locator("#propagation-now")).to_contain_text("remote writes applied")

    # Search narrows the list to matching keys.
    gamma.set("config/mode", '"eco"')
    expect(page.locator('#keys tr[data-key="config/mode"]')).to_be_visible(timeout=5_000)
    page.fill("#search", "sensor")
    expect(page.locator("#keys tbody tr")).to_have_count(1)
    expect(page.locator("#keys tbody tr")).to_have_attribute("data-key", "sensor/temperature")
    expect(page.locator("#keys-count")).to_have_text("1 matching key")
    page.fill("#search", "nothing-like-this")
    expect(page.locator("#keys tbody tr")).to_have_count(0)
    page.fill("#search", "")
    expect(page.locator("#keys tbody tr")).to_have_count(2)


def test_the_dashboard_sends_the_token_it_was_opened_with(tmp_path: Path, page: Page) -> None:
    token = tmp_path / "token"
    token.write_text("0123456789abcdef0123456789abcdef\n")
    token.chmod(0o600)
    node = CliNode("guarded", extra=["--metrics-token", str(token)])
    try:
        page.goto(node.http + "/?token=0123456789abcdef0123456789abcdef")
        expect(page.locator("#node-id")).to_have_text("guarded")
        expect(page.locator("#keys-count")).to_have_text("0 matching keys")
        expect(page.locator("#error")).to_be_hidden()
    finally:
        node.stop()
