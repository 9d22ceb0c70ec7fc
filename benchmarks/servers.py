"""The two servers under test, each a real `jupyter server` subprocess on 127.0.0.1.

Ours is tests/servers.py's ServerProcess; jupyter-collaboration runs from its own venv.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.servers import ServerProcess, free_port

# jupyter-collaboration has no setting for TCP_NODELAY; a server config file is Python,
# so this one turns it on for its room sockets the way our handler does in `open`.
NODELAY_CONFIG = '''\
import jupyter_server_ydoc.handlers as _h

_open = _h.YDocWebSocketHandler.open


async def _open_nodelay(self, *args, **kwargs):
    self.set_nodelay(True)
    return await _open(self, *args, **kwargs)


_h.YDocWebSocketHandler.open = _open_nodelay
'''


ONE_USER_IS_MANY = {"max_connections_per_user": 1000, "user_rate_limit": 1e9,
                    "user_rate_burst": 10**9}


def ours(workdir: Path, src: Path | None = None) -> ServerProcess:
    """Our server with default settings but per-user budgets (journal in `workdir`), not started.

    With `src`, the server imports marimo_collab_ext from that tree (a patched checkout).
    """
    root, journal = workdir / "root", workdir / "journal"
    root.mkdir(parents=True, exist_ok=True)
    journal.mkdir(exist_ok=True)
    # Every benchmark client is the owner (one token), so one user's budgets would throttle
    # the load itself: up to 201 sockets and 2,500 messages/s (docs/security.md, "Limits").
    server = ServerProcess(root, journal, ONE_USER_IS_MANY)
    if src is not None:
        # ServerProcess puts this repo first on PYTHONPATH; the patched tree must win.
        launch = (f"import runpy, sys; sys.path.insert(0, {str(src)!r});"
                  " runpy.run_module('jupyter_server', run_name='__main__')")
        server.args[1:3] = ["-c", launch]
    return server


def patched_tree(patches: list[Path], where: Path) -> Path:
    """A worktree of HEAD with `patches` applied (for the `ours-patched` target)."""
    repo = Path(__file__).resolve().parent.parent
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", "--detach", str(where),
                    "HEAD"], check=True)
    try:
        for patch in patches:
            subprocess.run(["git", "-C", str(where), "apply", str(patch.resolve())], check=True)
    except subprocess.CalledProcessError:
        remove_tree(where)
        raise
    return where


def remove_tree(where: Path) -> None:
    repo = Path(__file__).resolve().parent.parent
    subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(where)],
                   check=False, capture_output=True)


class JCServer:
    """jupyter-collaboration's server, isolated: its own venv, config, data and working dir."""

    def __init__(self, python: Path, workdir: Path, nodelay: bool = False) -> None:
        self.root = workdir / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}/"
        config = workdir / "config"
        config.mkdir(exist_ok=True)
        if nodelay:
            (config / "jupyter_server_config.py").write_text(NODELAY_CONFIG)
        # Its own config/data/runtime dirs: no user config, file-id and ystore DBs stay here.
        self.env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config),
                    "JUPYTER_DATA_DIR": str(workdir / "data"),
                    "JUPYTER_RUNTIME_DIR": str(workdir / "runtime")}
        self.args = [str(python), "-m", "jupyter_server", "--no-browser",
                     "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
                     "--ServerApp.port_retries=0", f"--ServerApp.root_dir={self.root}",
                     f"--IdentityProvider.token={self.token}", "--ServerApp.allow_root=True"]
        self.proc: subprocess.Popen | None = None
        self.log = workdir / "server.log"

    def start(self, timeout: float = 60) -> JCServer:
        self.proc = subprocess.Popen(self.args, stdout=self.log.open("ab"),
                                     stderr=subprocess.STDOUT, env=self.env, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{self.url}api/status?token={self.token}", timeout=2)
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start: {self.log.read_text()[-3000:]}")

    def open_room(self, path: str) -> str:
        """`PUT api/collaboration/session/<path>`; the room's WebSocket URL."""
        request = urllib.request.Request(
            f"{self.url}api/collaboration/session/{path}", method="PUT",
            data=json.dumps({"format": "text", "type": "file"}).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            session = json.loads(response.read())
        return (f"ws://127.0.0.1:{self.port}/api/collaboration/room/"
                f"{session['format']}:{session['type']}:{session['fileId']}"
                f"?sessionId={session['sessionId']}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
