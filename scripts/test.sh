#!/usr/bin/env bash
# The second README command: set everything up (Python, Node packages, Chromium, JupyterHub's
# proxy) and run the whole test suite: lint, then pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$root/scripts/setup.sh"
cd "$root"
[ -x /usr/bin/chromium ] || apt_install chromium fonts-dejavu-core
for dir in tests/js tests/hub; do
  if [ -f "$dir/package-lock.json" ]; then (cd "$dir" && npm ci --silent --no-audit --no-fund); fi
done
ruff check marimo_collab_ext tests benchmarks
python -m pytest -p no:cacheprovider "$@"
