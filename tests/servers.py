"""A real `jupyter server` in a subprocess, for tests that kill it (and for benchmarks)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`jupyter server` with the extension on 127.0.0.1; `kill()` is a SIGKILL."""

    def __init__(self, root: Path, journal: Path, collab: dict | None = None,
                 extra_args: list[str] | None = None, port: int | None = None,
                 token: str | None = None, app: str = "jupyter_server") -> None:
        self.root, self.journal = root, journal
        self.port = port or free_port()
        self.token = token or secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}/"
        settings = {"journal_dir": str(journal), **(collab or {})}
        self.args = [sys.executable, "-m", app, "--no-browser",
                     "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
                     "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
                     f"--IdentityProvider.token={self.token}", "--ServerApp.allow_root=True",
                     "--ServerApp.jpserver_extensions=marimo_collab_ext=True"]
        self.args += [f"--MarimoCollab.{k}={v}" for k, v in settings.items()]
        self.args += extra_args or []
        self.proc: subprocess.Popen | None = None
        self.log = root.parent / f"server-{self.port}.log"

    def start(self, timeout: float = 60) -> ServerProcess:
        # tests/identities.py is importable by the server, for several-people setups
        env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent.parent),
                                                          os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen(self.args, stdout=self.log.open("ab"),
                                     stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{self.url}api/status?token={self.token}", timeout=2)
                return self
            except urllib.error.HTTPError:
                return self  # answering at all (even 403 to another identity scheme) is up
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """kill -9: no shutdown hooks, no final save."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
