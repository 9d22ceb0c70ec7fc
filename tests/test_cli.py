"""The `marimo-collab` console script against a real `jupyter server` subprocess."""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from marimo_collab_ext.cli.token import resolve_token
from marimo_collab_ext.client import CollabClient
from marimo_collab_ext.persistence.notebook_file import parse_notebook

from .servers import ServerProcess

HERE = Path(__file__).parent
EXAMPLE = HERE.parent / "examples" / "demo.py"
REPO = HERE.parent
# The installed console script when there is one, else the same entry point through -m.
_SCRIPT = shutil.which("marimo-collab", path=str(Path(sys.executable).parent))
SCRIPT = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "marimo_collab_ext.cli"]
FAILING = '''import marimo

app = marimo.App()


@app.cell
def _():
    print("before the error")
    1 / 0
    return


if __name__ == "__main__":
    app.run()
'''


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """One server for the module: demo.py and failing.py in its root."""
    base = tmp_path_factory.mktemp("cli")
    root, journal = base / "root", base / "journal"
    root.mkdir()
    journal.mkdir()
    shutil.copy(EXAMPLE, root / "demo.py")
    (root / "failing.py").write_text(FAILING)
    server = ServerProcess(root, journal, collab={"autosave_delay": 0.2}).start()
    yield server
    server.stop()


def env_with(token: str | None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MARIMO_COLLAB_TOKEN", "JUPYTERHUB_API_TOKEN", "JUPYTER_TOKEN")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if token is not None:
        env["MARIMO_COLLAB_TOKEN"] = token
    return env


def cli(live, *args: str, token: str | None = "server", timeout: float = 120):
    token = live.token if token == "server" else token
    return subprocess.run([*SCRIPT, *args[:1], "--server", live.url, *args[1:]],
                          env=env_with(token), capture_output=True, text=True, timeout=timeout)


class Lines:
    """A long-running CLI process whose stdout lines are read on a thread."""

    def __init__(self, live, *args: str, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen([*SCRIPT, *args[:1], "--server", live.url, *args[1:]],
                                     env=env_with(live.token), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, cwd=cwd)
        self.seen: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.seen:
                if text in line:
                    return line
            try:
                self.seen.append(self._queue.get(timeout=0.1))
            except queue.Empty:
                pass
        raise AssertionError(f"no line with {text!r} in {self.seen}")

    def stop(self, signum: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def with_peer(live, body, path: str = "demo.py"):
    """Run `body(client)` as a second, browser-like peer."""
    async def main():
        client = await CollabClient.connect(live.url, path, token=live.token)
        try:
            return await body(client)
        finally:
            await client.close()
    return asyncio.run(main())


# ---- help and tokens ------------------------------------------------------------------------


def test_help_lists_the_commands():
    result = subprocess.run([*SCRIPT, "--help"], capture_output=True, text=True, check=True,
                            env=env_with(None))
    for command in ("watch", "run", "save", "mirror", "mcp"):
        assert command in result.stdout
    result = subprocess.run([*SCRIPT, "run", "--help"], capture_output=True, text=True,
                            check=True, env=env_with(None))
    assert "--all" in result.stdout and "--server" in result.stdout
    assert "--token " not in result.stdout  # not advertised: it shows in the process list


def test_token_comes_from_the_environment_in_order(tmp_path):
    warnings: list[str] = []
    env = {"JUPYTER_TOKEN": "j", "JUPYTERHUB_API_TOKEN": "h"}
    assert resolve_token(environ=env, warn=warnings.append) == ("h", "$JUPYTERHUB_API_TOKEN")
    env["MARIMO_COLLAB_TOKEN"] = "m"
    assert resolve_token(environ=env, warn=warnings.append)[0] == "m"
    assert resolve_token(environ={}, warn=warnings.append) == (None, "none")
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    token_file.chmod(0o600)
    assert resolve_token(token_file=str(token_file), environ=env,
                         warn=warnings.append)[0] == "from-file"
    assert warnings == []
    token_file.chmod(0o644)
    resolve_token(token_file=str(token_file), environ=env, warn=warnings.append)
    assert "readable by other users" in warnings[-1]
    assert resolve_token(token="cli", environ=env, warn=warnings.append)[0] == "cli"
    assert "process list" in warnings[-1]
    assert not any("from-file" in w or "cli" == w for w in warnings)


def test_wrong_token_is_refused_and_never_echoed(live):
    result = cli(live, "save", "demo.py", token="wrong-secret-123")
    assert result.returncode == 2
    assert "HTTP 403" in result.stderr
    assert "wrong-secret-123" not in result.stderr + result.stdout


def test_token_on_the_command_line_works_with_a_warning(live):
    result = subprocess.run([*SCRIPT, "save", "--server", live.url, "--token", live.token,
                             "demo.py"], env=env_with(None), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "process list" in result.stderr
    assert live.token not in result.stderr + result.stdout


def test_token_file_is_read(live, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(live.token + "\n")
    token_file.chmod(0o600)
    result = subprocess.run([*SCRIPT, "save", "--server", live.url, "--token-file",
                             str(token_file), "demo.py"], env=env_with(None),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_unknown_server_path_says_what_to_check(live):
    result = subprocess.run([*SCRIPT, "save", "--server", live.url + "user/nobody/", "demo.py"],
                            env=env_with(live.token), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "HTTP 404" in result.stderr and "/user/<name>/" in result.stderr


# ---- save and run ---------------------------------------------------------------------------


def test_save_writes_the_session_to_the_file(live):
    async def edit(client):
        client.edit(client.order[0], {"from": 0, "insert": "# saved by the CLI test\n"})
        await client.flush()
    with_peer(live, edit)
    result = cli(live, "save", "demo.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("saved demo.py (hash ")
    saved = parse_notebook((live.root / "demo.py").read_text())
    assert saved.cells[0].code.startswith("# saved by the CLI test\n")


def test_run_all_prints_outputs_as_text(live):
    result = cli(live, "run", "demo.py", "--all")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "[#4 output] [1, 4, 9, 16, 25]" in out
    assert "[#5 output] The sum of the first squares is 55." in out
    assert "[#6 stdout] largest square: 25" in out
    assert "<span" not in out
    assert out.rstrip().endswith("run completed")


def test_run_all_again_ends_at_once_and_prints_current_outputs(live):
    assert cli(live, "run", "demo.py", "--all").returncode == 0
    # Every cell is current now: Run all runs none of them, as marimo's "run stale".
    result = cli(live, "run", "demo.py", "--all", "--timeout", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "current, not rerun: #1, #2, #3, #4, #5, #6" in result.stdout
    assert "[#5 output] The sum of the first squares is 55." in result.stdout
    assert "[#6 stdout] largest square: 25" in result.stdout
    assert result.stdout.rstrip().endswith("run completed")


def test_run_cells_by_position_and_id(live):
    ids = with_peer(live, lambda client: asyncio.sleep(0, list(client.order)))
    result = cli(live, "run", "demo.py", "-1", ids[3])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"running #6 {ids[5]}, #4 {ids[3]}" in result.stdout
    assert "largest square: 25" in result.stdout


def test_run_of_a_failing_cell_exits_1(live):
    result = cli(live, "run", "failing.py", "1")
    assert result.returncode == 1
    assert "[#1 stdout] before the error" in result.stdout
    assert "ZeroDivisionError" in result.stdout
    assert "run completed with errors" in result.stdout


def test_run_needs_cells(live):
    result = cli(live, "run", "demo.py")
    assert result.returncode == 2
    assert "--all" in result.stderr
    result = cli(live, "run", "demo.py", "99")
    assert result.returncode == 2 and "no cell #99" in result.stderr


# ---- watch and mirror -----------------------------------------------------------------------


def test_watch_reports_presence_edits_kernel_and_saves(live):
    watch = Lines(live, "watch", "demo.py")
    try:
        watch.wait_for("joined demo.py as")

        async def visit(client):
            cell = client.order[2]
            await client.cursor(cell, 0)
            client.edit(cell, {"from": 0, "insert": "# hello\n"})
            await client.flush()
            await client.save()
            await client.run([client.order[5]])
            await client.next_event(lambda e: e.get("op") == "completed-run", timeout=60)
        with_peer(live, visit)
        joined = watch.wait_for(" joined (runner)")
        name = joined.split(" ", 1)[1].removesuffix(" joined (runner)")
        assert watch.wait_for("edited cell #3").split(" ", 1)[1].startswith(f"{name} edited")
        assert "+8 -0" in watch.wait_for("edited cell #3")
        watch.wait_for("saved (hash ")
        watch.wait_for("kernel busy")
        watch.wait_for("kernel run completed")
        watch.wait_for(f"{name} left")
    finally:
        assert watch.stop() == 130
    assert live.token not in "\n".join(watch.seen)


def test_mirror_command_syncs_both_ways_and_stops_cleanly(live, tmp_path):
    local = tmp_path / "mine.py"
    mirror = Lines(live, "mirror", "demo.py", str(local), "--poll", "0.05", "--debounce", "0.05")
    try:
        mirror.wait_for("mirroring demo.py <-> ")
        text = local.read_text()
        local.write_text(text.replace("largest square:", "biggest square:"))

        async def check(client):
            last = client.order[5]
            deadline = time.monotonic() + 20
            while "biggest square:" not in client.text(last):
                assert time.monotonic() < deadline, "the local save never reached the session"
                await asyncio.sleep(0.05)
            client.edit(client.order[1], {"from": 0, "insert": "# peer\n"})
            await client.flush()
        with_peer(live, check)
        mirror.wait_for("sent: 1 cell(s) edited")
        mirror.wait_for("1 cell(s) changed by peers")
        assert parse_notebook(local.read_text()).cells[1].code.startswith("# peer\n")
    finally:
        assert mirror.stop(signal.SIGTERM) == 130


def test_mirror_sends_a_save_made_just_before_it_is_stopped(live, tmp_path):
    local = tmp_path / "last.py"
    mirror = Lines(live, "mirror", "demo.py", str(local), "--poll", "5")
    try:
        mirror.wait_for("mirroring demo.py <-> ")
        text = local.read_text()
        assert "import marimo as mo" in text
        local.write_text(text.replace("import marimo as mo", "import marimo as mo  # last"))
    finally:
        assert mirror.stop(signal.SIGHUP) == 130
    texts = with_peer(live, lambda client: asyncio.sleep(0, [client.text(c) for c in
                                                             client.order]))
    assert "import marimo as mo  # last" in texts[0]


def test_mirror_sends_its_file_again_when_the_server_lost_its_history(tmp_path):
    root, journal = tmp_path / "root", tmp_path / "journal"
    root.mkdir()
    journal.mkdir()
    shutil.copy(EXAMPLE, root / "demo.py")
    # No autosave: the edit lives only in the session (and its journal) when the server dies.
    first = ServerProcess(root, journal, collab={"autosave_delay": 3600}).start()
    local = tmp_path / "mine.py"
    mirror = Lines(first, "mirror", "demo.py", str(local), "--poll", "0.05")
    second = None
    try:
        mirror.wait_for("mirroring demo.py <-> ")
        local.write_text(local.read_text().replace("largest square:", "kept square:"))
        mirror.wait_for("sent: 1 cell(s) edited")
        first.kill()
        shutil.rmtree(journal)  # history gone: the new server starts from the file
        journal.mkdir()
        mirror.wait_for("disconnected")
        second = ServerProcess(root, journal, port=first.port, token=first.token).start()
        mirror.wait_for("reconnected to a new server session", timeout=60)
        mirror.wait_for("sending")
        texts = None
        deadline = time.monotonic() + 30
        while not texts or "kept square:" not in texts[5]:
            assert time.monotonic() < deadline, f"edit not restored: {mirror.seen}"
            time.sleep(0.2)
            texts = with_peer(second, lambda client: asyncio.sleep(
                0, [client.text(c) for c in client.order]))
        assert (tmp_path / "mine.py.before-reconnect").exists()
        assert "kept square:" in local.read_text()
    finally:
        mirror.stop()
        first.stop()
        if second is not None:
            second.stop()


def test_watch_gives_up_when_its_token_is_no_longer_accepted(tmp_path):
    root, journal = tmp_path / "root", tmp_path / "journal"
    root.mkdir()
    journal.mkdir()
    shutil.copy(EXAMPLE, root / "demo.py")
    first = ServerProcess(root, journal).start()
    watch = Lines(first, "watch", "demo.py")
    second = None
    try:
        watch.wait_for("joined demo.py as")
        first.kill()
        watch.wait_for("disconnected")
        # The server comes back, but no longer takes this token (revoked, rotated).
        second = ServerProcess(root, journal, port=first.port).start()
        assert watch.proc.wait(60) == 2
        watch.wait_for("HTTP 403")
    finally:
        watch.stop()
        first.stop()
        if second is not None:
            second.stop()
