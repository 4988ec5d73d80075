#!/usr/bin/env bash
# Checks the benchmarks' byte counts against the kernel's: runs `mesh-bench crosscheck`
# alone in a network namespace made for it (root needed), where the loopback device's
# counters see that process's traffic and nothing else. The namespace is removed after.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p mesh-bench --bin mesh-bench
bin="${CARGO_TARGET_DIR:-target}/release/mesh-bench"
ns="mesh-bench-$$"
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
ip -n "$ns" link set lo up
ip netns exec "$ns" "$bin" crosscheck "$@"
