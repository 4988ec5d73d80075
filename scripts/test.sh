#!/usr/bin/env bash
# The whole test suite, from a bare machine (Rust toolchain, python3 with pip, gcc,
# make): sets up .venv with the Python test tools, builds everything, and runs formatting
# and lint checks, the Rust tests (the C header check among them), a short demo run, the
# Python tests and the C tests.
#
# Every step runs even when an earlier one failed; a summary follows, and the last line
# reads `N passed, N failed` (steps). The exit status is non-zero if any step failed.
#
# Environment: VENV (default .venv), PYTHON (interpreter for a new venv, default python3).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-auto}"

if [[ -t 1 ]]; then
    BOLD=$'\e[1m' RED=$'\e[31m' GREEN=$'\e[32m' YELLOW=$'\e[33m' RESET=$'\e[0m'
else
    BOLD='' RED='' GREEN='' YELLOW='' RESET=''
fi

RESULTS=()
PASSED=0
FAILED=0
SKIPPED=0
SUITE_START=$SECONDS

trap 'echo; echo "interrupted" >&2; exit 130' INT TERM

# step NAME COMMAND...: runs COMMAND, records PASS/FAIL and its duration.
step() {
    local name="$1"
    shift
    echo
    echo "${BOLD}==> ${name}${RESET}"
    local start=$SECONDS
    if "$@"; then
        RESULTS+=("PASS|$name|$((SECONDS - start))")
        PASSED=$((PASSED + 1))
    else
        RESULTS+=("FAIL|$name|$((SECONDS - start))")
        FAILED=$((FAILED + 1))
        echo "${RED}--> failed: ${name}${RESET}"
    fi
}

# skip NAME REASON: records a step that does not apply here.
skip() {
    echo
    echo "${BOLD}==> $1${RESET}: skipped ($2)"
    RESULTS+=("SKIP|$1 ($2)|0")
    SKIPPED=$((SKIPPED + 1))
}

have() { command -v "$1" >/dev/null 2>&1; }

# Debian packages, installed only when missing and only if we may.
apt_install() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ $(id -u) -ne 0 ]] || ! have apt-get; then
        echo "missing Debian packages: ${missing[*]} (install them, e.g. sudo apt-get install ${missing[*]})" >&2
        return 1
    fi
    echo "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

check_tools() {
    local ok=0 tool
    for tool in cargo rustc "$PYTHON" gcc make; do
        if ! have "$tool"; then
            echo "not found: $tool" >&2
            ok=1
        fi
    done
    cargo fmt --version >/dev/null 2>&1 || { echo "not found: rustfmt (rustup component add rustfmt)" >&2; ok=1; }
    cargo clippy --version >/dev/null 2>&1 || { echo "not found: clippy (rustup component add clippy)" >&2; ok=1; }
    if [[ -f tests/c/Makefile ]] && ! have valgrind; then
        apt_install valgrind || ok=1
    fi
    cargo --version && rustc --version && "$PYTHON" --version && gcc --version | head -n1
    return $ok
}

python_env() {
    if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        echo "creating $VENV"
        rm -rf "$VENV"
        if ! "$PYTHON" -m venv "$VENV"; then
            # Debian's python3 ships venv separately.
            apt_install python3-venv && "$PYTHON" -m venv "$VENV" || return 1
        fi
    fi
    local pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
    local requirements=(maturin pytest)
    if [[ -f tests/python/requirements.txt ]]; then
        requirements+=(-r tests/python/requirements.txt)
    fi
    echo "installing into $VENV: ${requirements[*]}"
    "${pip[@]}" install --quiet "${requirements[@]}" &&
        "$VENV/bin/python" -m pytest --version &&
        browser
}

# The dashboard test drives Debian's Chromium with Playwright (whose own browser
# download cannot be fetched here).
browser() {
    apt_install chromium && chromium --version 2>/dev/null
}

# Whether a directory holds pytest test files.
has_python_tests() {
    [[ -n "$(find "$1" -name 'test_*.py' -o -name '*_test.py' 2>/dev/null | head -n1)" ]]
}

python_install() {
    "$VENV/bin/python" -m pip --disable-pip-version-check install \
        --no-build-isolation --force-reinstall --no-deps ./mesh-python
}

python_tests() {
    "$VENV/bin/python" -m pytest tests/python
    local rc=$?
    if [[ $rc -eq 5 ]]; then
        echo "pytest collected no tests although tests/python has test files" >&2
    fi
    return $rc
}

demo_smoke() {
    # The README's first command, shortened: the mesh must converge under 20% loss.
    "$TARGET_DIR/debug/mesh-demo" --duration 5 --plain
}

step "tools: cargo, rustfmt, clippy, python3, gcc, make, valgrind" check_tools
step "python venv ${VENV#"$ROOT"/} with the test tools, chromium" python_env
if "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    # pyo3's build script is re-run, and everything above it rebuilt, whenever the Python
    # it sees changes; pinning it to the venv's lets cargo and maturin share artifacts.
    export PYO3_PYTHON="$VENV/bin/python"
    # As if activated: build backends run tools (maturin) by name.
    export PATH="$VENV/bin:$PATH"
fi

step "cargo fmt --all --check" cargo fmt --all --check
step "cargo build --all-targets (default members)" cargo build --all-targets
# The workspace build turns on mesh-core's test features; the bindings build it without.
step "cargo check -p mesh-core --lib (without test features)" cargo check -p mesh-core --lib
step "cargo clippy --workspace --all-targets -- -D warnings" \
    cargo clippy --workspace --all-targets -- -D warnings
step "cargo doc -p mesh-core (warnings are errors)" \
    env RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps -p mesh-core
# Includes mesh-ffi's check that include/mesh_sync.h is exactly what cbindgen generates.
# --no-fail-fast: one failing test binary must not hide the results of the others.
step "cargo test (default members)" cargo test --no-fail-fast
# Every benchmark scenario at tiny size, so the benchmarks cannot rot (no timings asserted).
if [[ -f mesh-bench/tests/smoke.rs ]]; then
    step "benchmark smoke run (cargo test -p mesh-bench)" cargo test -p mesh-bench
else
    skip "benchmark smoke run" "no mesh-bench/tests/smoke.rs"
fi
step "demo: 5 nodes, 20% loss, converges" demo_smoke
# A thousand simulated members form from one bootstrap node, detect a crash within the
# bound and pass the oracle: one seed, in a release build of its own (a few minutes to
# compile, about three and a half to run; at the test profile's optimisation the run
# would take several times as long).
step "simulator: 1,000 members, one seed (release)" \
    env MESH_SIM_LARGE_NODES=1000 cargo test --release -p mesh-core --test sim_swim a_large_mesh

if [[ -f mesh-python/pyproject.toml ]]; then
    step "pip install ./mesh-python" python_install
else
    skip "pip install ./mesh-python" "no mesh-python/pyproject.toml"
fi
if [[ -d tests/python ]] && has_python_tests tests/python; then
    step "pytest tests/python" python_tests
else
    skip "pytest tests/python" "no test files in tests/python"
fi

# Real processes in network namespaces (kill -9, partitions, loss): needs root.
rig_tests() {
    apt_install iproute2 nftables || return 1
    "$VENV/bin/python" -m pytest tests/netns
}
if [[ -d tests/netns ]] && has_python_tests tests/netns; then
    step "pytest tests/netns (processes in network namespaces)" rig_tests
else
    skip "pytest tests/netns" "no test files in tests/netns"
fi

if [[ -f tests/c/Makefile ]]; then
    step "make -C tests/c test (C tests under valgrind)" make -C tests/c test
else
    skip "make -C tests/c test" "no tests/c/Makefile"
fi
echo
echo "${BOLD}==================== summary ====================${RESET}"
for result in "${RESULTS[@]}"; do
    IFS='|' read -r status name secs <<<"$result"
    case $status in
        PASS) color=$GREEN ;;
        FAIL) color=$RED ;;
        *) color=$YELLOW ;;
    esac
    if [[ $status == SKIP ]]; then
        printf '  %s%s%s  %s\n' "$color" "$status" "$RESET" "$name"
    else
        printf '  %s%s%s  %-60s %4ss\n' "$color" "$status" "$RESET" "$name" "$secs"
    fi
done
echo "  ($((SECONDS - SUITE_START)) s in all; $SKIPPED skipped)"
echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
