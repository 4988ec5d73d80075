"""``node.metrics()``: the Prometheus text exposition format, read back by the reference
parser of the Prometheus Python client."""

from __future__ import annotations

from typing import Dict, Tuple

from helpers import HOST, fully_connected, wait_until
from prometheus_client.parser import text_string_to_metric_families


def parse(text: str) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels); the parser raises on a malformed line."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_parse_and_count_a_write_that_arrived(make_node) -> None:
    writer = make_node("writer")
    reader = make_node("reader")
    reader.add_bootstrap_peer(HOST, writer.port)
    assert wait_until(lambda: fully_connected([writer, reader]))
    writer.set("temperature", 72.5)
    assert wait_until(lambda: reader.get("temperature") == 72.5)

    text = reader.metrics()
    samples = parse(text)
    node = (("node", "reader"),)
    assert samples[("mesh_sync_keys", node)] == 1
    assert samples[("mesh_sync_propagation_lag_seconds_count", node)] == 1
    assert samples[("mesh_sync_received_bytes_total", node)] > 0
    assert samples[("mesh_sync_peers", (("node", "reader"), ("state", "alive")))] == 1
    assert samples[("mesh_sync_dropped_total", (("node", "reader"), ("reason", "bad_checksum")))] == 0
    assert all(dict(labels).get("node") == "reader" for _, labels in samples), text


def test_metrics_of_a_stopped_node_still_parse(make_node) -> None:
    node = make_node(start=False)
    samples = parse(node.metrics())
    assert samples[("mesh_sync_up", (("node", node.node_id),))] == 0
