#!/usr/bin/env bash
# The first README command: set everything up, then start JupyterLab with marimo-collab on
# the example notebook (http://127.0.0.1:8888, token printed below).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$root/scripts/setup.sh"
cd "$root/examples"
as_root_flag=()
[ "$(id -u)" = 0 ] && as_root_flag=(--allow-root)  # containers and fresh VMs often run as root
exec jupyter lab "${as_root_flag[@]}" --ServerApp.ip=127.0.0.1 --ServerApp.port="${PORT:-8888}" --no-browser \
  --ServerApp.root_dir="$root/examples" "${@}" \
  --LabApp.default_url="/lab/tree/demo.py"
