"""Kernel latency: our KernelSession beside `marimo edit`, same notebook, same machine.

Usage: python benchmarks/bench_kernel.py [--rounds 5] [--warm-runs 5] [--notebook PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from marimo_collab_ext.kernel import CellCode, KernelSession  # noqa: E402
from marimo_collab_ext.persistence.notebook_file import parse_notebook  # noqa: E402

DEFAULT_NOTEBOOK = ROOT / "tests" / "notebooks" / "slider6.py"
# marimo assigns these ids by position; using them too keeps both sides alike.
MARIMO_IDS = ["Hbol", "MJUe", "vblA", "bkHC", "lEQa", "PKri", "Xref", "SFPL", "BYtC", "RGSE"]


def has_output(op: str, data: dict) -> bool:
    """A cell-op that shows something (marimo sends '' for cells without output)."""
    out = data.get("output") if op == "cell-op" else None
    return bool(out and out.get("data"))


class Timeline:
    """Monotonic times of the first visible output and of the next completed run."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.first_output: float | None = None
        self.completed = asyncio.Event()

    def see(self, op: str, data: dict) -> None:
        if self.first_output is None and has_output(op, data):
            self.first_output = time.monotonic() - self.t0
        if op == "completed-run":
            self.completed.set()


# -- our side -----------------------------------------------------------------


async def ours_round(cells: list[CellCode], cwd: str, notebook: str, warm_runs: int) -> dict:
    timeline: Timeline | None = None
    awaiting_run = False

    def on_notification(op: str, data: dict) -> None:
        if timeline is not None and (awaiting_run or op != "completed-run"):
            timeline.see(op, data)

    idle = asyncio.Event()

    def on_status(status: str, message: str | None) -> None:
        if status == "idle":
            idle.set()

    session = KernelSession(
        cwd=cwd, notebook_path=notebook, on_notification=on_notification, on_status=on_status
    )
    try:
        timeline = Timeline()
        await session.start(cells)
        ready = time.monotonic() - timeline.t0
        # The registration's own completed-run must not count as the run's.
        await asyncio.wait_for(idle.wait(), 30)
        awaiting_run = True
        await session.run(cells)
        await asyncio.wait_for(timeline.completed.wait(), 30)
        last_output = time.monotonic() - timeline.t0
        cold = {"ready": ready, "first_output": timeline.first_output, "last_output": last_output}
        warm = []
        for _ in range(warm_runs):
            timeline = Timeline()
            await session.run(cells)
            await asyncio.wait_for(timeline.completed.wait(), 30)
            warm.append(time.monotonic() - timeline.t0)
        return {**cold, "warm_run": statistics.median(warm)}
    finally:
        await session.shutdown()


# -- marimo edit ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MarimoEdit:
    """A headless `marimo edit` on 127.0.0.1 without a token, driven like its frontend."""

    def __init__(self, notebook: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        marimo = str(Path(sys.executable).with_name("marimo"))
        self.proc = subprocess.Popen(
            [
                marimo,
                "edit",
                "--headless",
                "--no-token",
                "--skip-update-check",
                "--no-sandbox",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                notebook,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own group: the kernels it forks die with it
        )
        self.server_token = ""

    async def wait_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                page = await asyncio.to_thread(self._get, "/")
                self.server_token = re.search(r'"serverToken": "([^"]+)"', page).group(1)
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise TimeoutError("marimo edit did not come up")

    def _get(self, path: str) -> str:
        with urllib.request.urlopen(self.base + path, timeout=5) as r:
            return r.read().decode()

    def post(self, path: str, body: dict, session_id: str) -> None:
        headers = {
            "Content-Type": "application/json",
            "Marimo-Session-Id": session_id,
            "Marimo-Server-Token": self.server_token,
        }
        req = urllib.request.Request(
            self.base + path, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)


async def marimo_round(notebook: str, warm_runs: int) -> dict:
    server = MarimoEdit(notebook)
    try:
        await server.wait_up()
        session_id = str(uuid.uuid4())
        url = f"ws://127.0.0.1:{server.port}/ws?session_id={session_id}"
        timeline = Timeline()
        async with websockets.connect(url, max_size=None) as ws:

            async def until_completed(tl: Timeline) -> None:
                while not tl.completed.is_set():
                    message = json.loads(await ws.recv())
                    tl.see(message["op"], message["data"])

            while True:
                message = json.loads(await ws.recv())
                if message["op"] == "kernel-ready":
                    break
            ready = time.monotonic() - timeline.t0
            data = message["data"]
            ids, codes = data["cell_ids"], data["codes"]
            # What marimo's frontend does on open: instantiate and run every cell.
            body = {"objectIds": [], "values": [], "autoRun": True}
            await asyncio.to_thread(server.post, "/api/kernel/instantiate", body, session_id)
            await asyncio.wait_for(until_completed(timeline), 30)
            cold = {
                "ready": ready,
                "first_output": timeline.first_output,
                "last_output": time.monotonic() - timeline.t0,
            }
            warm = []
            for _ in range(warm_runs):
                timeline = Timeline()
                body = {"cellIds": ids, "codes": codes}
                await asyncio.to_thread(server.post, "/api/kernel/run", body, session_id)
                await asyncio.wait_for(until_completed(timeline), 30)
                warm.append(time.monotonic() - timeline.t0)
        return {**cold, "warm_run": statistics.median(warm)}
    finally:
        server.stop()


# -- report ---------------------------------------------------------------------


def median_of(rounds: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rounds if r[key] is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warm-runs", type=int, default=5)
    parser.add_argument("--notebook", default=str(DEFAULT_NOTEBOOK))
    parser.add_argument("--ours-only", action="store_true")
    args = parser.parse_args()

    notebook = str(Path(args.notebook).resolve())
    parsed = parse_notebook(Path(notebook).read_text())
    cells = [
        CellCode(id=MARIMO_IDS[i], code=c.code, name=c.name, config=dict(c.config))
        for i, c in enumerate(parsed.cells)
    ]
    ours: list[dict] = []
    theirs: list[dict] = []

    async def measure(cwd: str) -> None:
        for i in range(args.rounds):
            # Alternate so both sides see the same background load.
            ours.append(await ours_round(cells, cwd, notebook, args.warm_runs))
            if not args.ours_only:
                theirs.append(await marimo_round(notebook, args.warm_runs))
            print(f"round {i + 1}/{args.rounds} done", file=sys.stderr)

    with tempfile.TemporaryDirectory() as cwd:
        asyncio.run(measure(cwd))

    keys = {
        "ready": "kernel ready (start -> ready / ws open -> kernel-ready)",
        "first_output": "start -> first visible output (cold, run all)",
        "last_output": "start -> last output (cold, run all, completed-run)",
        "warm_run": "run all on a warm kernel -> completed-run",
    }
    print(
        f"{len(parsed.cells)}-cell notebook {Path(notebook).name}, {args.rounds} rounds, "
        f"{args.warm_runs} warm runs each, medians in ms, {os.cpu_count()} cores"
    )
    print(f"{'metric':58} {'ours':>8} {'marimo':>8} {'ratio':>6}")
    for key, label in keys.items():
        a = median_of(ours, key) * 1000
        if theirs:
            b = median_of(theirs, key) * 1000
            print(f"{label:58} {a:8.1f} {b:8.1f} {a / b:6.2f}")
        else:
            print(f"{label:58} {a:8.1f} {'-':>8} {'-':>6}")


if __name__ == "__main__":
    main()
