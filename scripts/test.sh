#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit and integration tests.
# Integration tests start their own Prometheus on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-packages.sh prometheus prometheus-alertmanager systemd curl openssl util-linux chromium
scripts/ensure-python-tools.sh
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked 2>&1 | tee "$log"
# One total over every test binary.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
