#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the demo and the tests run for real, when missing.
# Usage: scripts/ensure-packages.sh PACKAGE...   (prometheus, prometheus-alertmanager, systemd, curl, openssl,
# util-linux, wrk, chromium)
# Needs root, or sudo, only when something is missing.
set -euo pipefail

binaries() {
  case "$1" in
    prometheus) echo "prometheus promtool" ;;
    prometheus-alertmanager) echo "prometheus-alertmanager" ;;
    systemd) echo "systemd-analyze" ;;
    curl) echo "curl" ;;
    openssl) echo "openssl" ;;
    util-linux) echo "prlimit" ;;
    wrk) echo "wrk" ;;
    chromium) echo "chromium" ;;
    *) echo "ensure-packages: unknown package $1" >&2; exit 2 ;;
  esac
}

missing=()
for package in "$@"; do
  for binary in $(binaries "$package"); do
    if ! command -v "$binary" >/dev/null 2>&1; then
      missing+=("$package")
      break
    fi
  done
done

if ((${#missing[@]})); then
  echo "installing ${missing[*]} (Debian packages)..." >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packages start system services on the default ports; the demo and the tests start their own.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    for package in "${missing[@]}"; do
      $sudo systemctl disable --now "$package" >/dev/null 2>&1 || true
    done
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install a Rust toolchain (1.94 or newer), e.g. with rustup" >&2
  exit 1
fi
