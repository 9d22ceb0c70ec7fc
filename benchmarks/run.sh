#!/usr/bin/env bash
# Every benchmark in one command: `bash benchmarks/run.sh [--quick] [--targets ours,jc,...]`.
# jupyter-collaboration gets its own venv (benchmarks/.venv-jc) so it never touches ours.
set -euo pipefail
cd "$(dirname "$0")/.."
JC_VENV=benchmarks/.venv-jc
JC_VERSION="${JC_VERSION:-5.0.4}"  # the version DESIGN.md's figures name; override to compare
if [ ! -x "$JC_VENV/bin/python" ] || ! "$JC_VENV/bin/python" -c "import jupyter_server_ydoc, pycrdt, websockets" 2>/dev/null; then
    echo "creating $JC_VENV (jupyter-collaboration $JC_VERSION)"
    python3 -m venv "$JC_VENV"
    "$JC_VENV/bin/pip" install -q "jupyter-collaboration==$JC_VERSION" websockets
fi
PYTHON=python
[ -x .venv/bin/python ] && PYTHON=.venv/bin/python
exec "$PYTHON" -m benchmarks.loadgen "$@"
