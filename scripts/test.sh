#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit and integration tests.
# Integration tests start their own Prometheus on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-packages.sh
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
