#!/usr/bin/env bash
# The standard benchmark set: every mesh-bench scenario (mesh-sync alone, then side by side
# with chitchat), local operations from Python, then the criterion micro-benchmarks.
# About 11 minutes on 2 cores once built.
#
#   scripts/bench.sh            full run; tables in target/bench/scenarios.md (+ .json)
#   scripts/bench.sh --smoke    every scenario at a tiny size and each micro-benchmark
#                               run once: a check that nothing rotted, well under a minute
#                               once built
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=()
if [[ "${1:-}" == "--smoke" ]]; then
    smoke=(--smoke)
fi
out="${BENCH_OUT:-${CARGO_TARGET_DIR:-target}/bench}"
mkdir -p "$out"
# Build first, at low priority: the machine may be shared.
nice cargo build --release -p mesh-bench --bins --benches
bin="${CARGO_TARGET_DIR:-target}/release/mesh-bench"
core_state=clean
git diff --quiet HEAD -- mesh-core 2>/dev/null || core_state="with uncommitted changes"
echo "Code: $(git rev-parse --short HEAD 2>/dev/null || echo unknown), mesh-core $core_state" | tee "$out/scenarios.md"
"$bin" "${smoke[@]}" --json "$out/scenarios.json" all | tee -a "$out/scenarios.md"
# Local operations from Python, when the package is installed in the project's venv.
python="${PYTHON:-.venv/bin/python}"
if "$python" -c "import mesh_sync" 2>/dev/null; then
    "$python" mesh-bench/python/ops.py "${smoke[@]}" | tee -a "$out/scenarios.md"
else
    echo "mesh_sync not importable with $python: Python figures skipped" | tee -a "$out/scenarios.md"
fi
if [[ ${#smoke[@]} -gt 0 ]]; then
    cargo bench -p mesh-bench --bench core -- --test
else
    cargo bench -p mesh-bench --bench core | tee "$out/criterion.txt"
fi
