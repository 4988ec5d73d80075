#!/usr/bin/env bash
# The long kill -9 loop: 3 nodes in network namespaces under a sync-mode write load, KILLS
# kills at random moments (every fourth takes the whole mesh down), then a check that every
# acknowledged write is on every node. Needs root and a built CLI (cargo build -p mesh-cli).
#   scripts/kill-loop.sh [KILLS] [SEED]      (default 100 kills, a random seed)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export MESH_RIG_KILLS="${1:-100}"
[[ $# -ge 2 ]] && export MESH_RIG_SEED="$2"
PYTHON="${VENV:-.venv}/bin/python"
exec "$PYTHON" -m pytest tests/netns -s -k kill_9
