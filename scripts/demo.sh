#!/usr/bin/env bash
# Builds and runs the local mesh demo: five nodes in one process on 127.0.0.1, 20%
# packet loss, random writes, a live table, and a verdict on convergence after 20 s.
# Every argument is passed to the demo; `scripts/demo.sh --help` lists them
# (--forever runs until Ctrl-C, --loss 0.4 makes the network worse, ...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "demo: cargo was not found; install the Rust toolchain (https://rustup.rs) first" >&2
    exit 1
fi
echo "demo: building mesh-demo (release; the first build takes a minute or two)" >&2
cargo build --release -p mesh-cli --bin mesh-demo
exec "${CARGO_TARGET_DIR:-target}/release/mesh-demo" "$@"
