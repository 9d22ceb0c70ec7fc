"""Run the real @codemirror libraries (tests/js) from Python tests.

Installs tests/js/node_modules with ``npm ci`` once, when it is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

JS_DIR = Path(__file__).parent / "js"
_lock = threading.Lock()


def ensure_node_modules() -> Path:
    """Make sure the pinned reference libraries are installed; skip when Node is absent.

    Returns the tests/js directory.
    """
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are needed for the differential tests")
    with _lock:
        if not (JS_DIR / "node_modules" / "@codemirror" / "collab").is_dir():
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund"],
                cwd=JS_DIR,
                check=True,
                capture_output=True,
                timeout=300,
            )
    return JS_DIR


def run_node_json(script: str, *args: str, timeout: float = 120) -> object:
    """Run ``node tests/js/<script> args...`` and parse its JSON stdout.

    Raises with the script's stderr when it fails.
    """
    js_dir = ensure_node_modules()
    proc = subprocess.run(
        ["node", script, *args],
        cwd=js_dir,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, "NODE_OPTIONS": ""},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"node {script} failed: {proc.stderr.decode(errors='replace')}")
    return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def js_dir() -> Path:
    """Session fixture: tests/js with node_modules installed."""
    return ensure_node_modules()
