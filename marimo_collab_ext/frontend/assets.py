"""Where the kernel environment's marimo keeps its compiled frontend (`marimo/_static`).

Outputs are rendered by the frontend of the marimo that runs the kernel, so the HTML and the
custom elements it emits are always the version that understands them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_PROBE = (
    "import json, os, marimo; "
    "print(json.dumps([marimo.__version__, "
    "os.path.join(os.path.dirname(marimo.__file__), '_static')]))"
)


class FrontendUnavailable(Exception):
    """The kernel environment has no usable marimo frontend; the message says why."""


@dataclass(frozen=True)
class MarimoFrontend:
    version: str
    static_dir: Path

    @property
    def index_html(self) -> str:
        return (self.static_dir / "index.html").read_text(encoding="utf-8")


def locate_frontend(python: str, timeout: float = 60.0) -> MarimoFrontend:
    """The compiled frontend of the marimo installed for `python` (blocking)."""
    if python == sys.executable:
        import marimo

        version, static = marimo.__version__, Path(marimo.__file__).parent / "_static"
    else:
        try:
            done = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise FrontendUnavailable(f"could not run {python}: {e}") from e
        if done.returncode != 0:
            raise FrontendUnavailable(f"marimo is not installed for {python}")
        version, static_path = json.loads(done.stdout.strip().splitlines()[-1])
        static = Path(static_path)
    if not (static / "index.html").is_file():
        raise FrontendUnavailable(f"marimo {version} for {python} has no compiled frontend")
    return MarimoFrontend(version=version, static_dir=static)
