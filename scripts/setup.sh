#!/usr/bin/env bash
# Sets up a fresh machine for marimo-collab: a virtualenv in .venv with the package installed
# (editable), its JupyterLab extension built and linked, and the server extension enabled.
# Sourced by start.sh and test.sh; safe to run again.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

python3 -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is required"'
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
node_ok() { node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; }
if ! command -v node >/dev/null || ! node_ok; then
  apt_install nodejs npm
fi
node_ok || { echo "Node.js 20 or newer is required (found $(node --version))" >&2; exit 1; }

[ -x .venv/bin/python ] || python3 -m venv .venv
# shellcheck disable=SC1091
source .venv/bin/activate
python -m pip install -q --upgrade pip
# The build backend and jlpm first: the editable install builds the labextension with them.
python -m pip install -q "hatchling>=1.21" editables "hatch-jupyter-builder>=0.9" "jupyter-builder>=1.0" \
  "jupyterlab>=4.6,<4.7"
python -m pip install -q --no-build-isolation -e ".[test]"
jupyter-builder develop --overwrite . >/dev/null
jupyter server extension enable marimo_collab_ext --sys-prefix >/dev/null
