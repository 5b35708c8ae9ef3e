#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the demo and the tests run for real, when missing.
# Usage: scripts/ensure-packages.sh   (sourced or run; needs root or sudo only to install)
set -euo pipefail

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v promtool >/dev/null 2>&1 || [[ " ${missing[*]} " == *" prometheus "* ]] || missing+=(prometheus)

if ((${#missing[@]})); then
  echo "installing ${missing[*]} (Debian packages)..." >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The package starts a system Prometheus on :9090; the demo and tests start their own.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install a Rust toolchain (1.85 or newer), e.g. with rustup" >&2
  exit 1
fi
