"""Runs one scenario against one server: start it, spread clients over worker processes, measure.

Workers talk JSON lines on stdin/stdout (workload.py); the server's CPU and RSS come from /proc.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .procstat import cpu_seconds, machine_busy_seconds, rss_bytes
from .servers import JCServer, ours
from .stats import summarize

REPO = Path(__file__).resolve().parent.parent
JC_PYTHON = REPO / "benchmarks" / ".venv-jc" / "bin" / "python"
CLIENTS_PER_WORKER = 5
MAX_WORKERS = 4
PYSPY_EXTRA: list[str] = []  # py-spy options instead of the default "-r 250"
PATCHED_SRC: Path | None = None  # the tree the "ours-patched" target runs (loadgen --patch)


@dataclass
class Scenario:
    """N editors typing `rate` edits/s each (own cells or one cell) while `viewers` watch."""

    name: str
    editors: int
    viewers: int
    rate: float
    total_edits: int
    layout: str = "cells"  # "cells": editor i types in cell i; "one": everyone in cell 0

    @property
    def edits_each(self) -> int:
        return max(1, self.total_edits // self.editors)


class Worker:
    """One load-generator process; a reader thread turns its stdout into a queue of messages."""

    def __init__(self, target: str, cfg: dict, log: Path) -> None:
        python, module = ((str(JC_PYTHON), "benchmarks.worker_jc") if target.startswith("jc")
                          else (sys.executable, "benchmarks.worker_ours"))
        self.proc = subprocess.Popen([python, "-m", module, json.dumps(cfg)], cwd=REPO,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log.open("ab"), text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def next(self, timeout: float) -> dict:
        message = self.lines.get(timeout=timeout)
        if message is None:
            raise RuntimeError(f"worker {self.proc.pid} exited ({self.proc.wait()})")
        return message

    def command(self, message: dict) -> None:
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


class Target:
    """A fresh server of one kind ("ours", "jc", "jc-nodelay") with one document to edit."""

    def __init__(self, kind: str, workdir: Path, notebook_cells: int) -> None:
        self.kind = kind
        workdir.mkdir(parents=True, exist_ok=True)
        if kind.startswith("ours"):
            self.server = ours(workdir, PATCHED_SRC if kind == "ours-patched" else None)
            self.path = "bench.py"
            (self.server.root / self.path).write_text(marimo_notebook(notebook_cells))
        else:
            self.server = JCServer(JC_PYTHON, workdir, nodelay=kind == "jc-nodelay")
            self.path = "bench.txt"
            (self.server.root / self.path).write_text("# shared text\n")
        self.workdir = workdir

    def __enter__(self) -> Target:
        self.server.start()
        self.pid = self.server.proc.pid
        time.sleep(1.0)  # let start-up work (extension loading, first GC) settle before baselines
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()

    def worker_cfg(self, path: str | None = None) -> dict:
        if self.kind.startswith("ours"):
            return {"url": self.server.url, "token": self.server.token, "path": path or self.path}
        return {"ws_url": self.server.open_room(path or self.path), "token": self.server.token}


def marimo_notebook(cells: int) -> str:
    """A marimo notebook file with `cells` small, independent cells."""
    body = "".join(f"\n\n@app.cell\ndef _():\n    x{i} = {i}\n    return (x{i},)\n"
                   for i in range(cells))
    return ('import marimo\n\n__generated_with = "0.25.2"\napp = marimo.App()\n' + body
            + '\n\nif __name__ == "__main__":\n    app.run()\n')


def client_specs(scenario: Scenario) -> list[dict]:
    """Editors first (editor i in cell i, or all in cell 0), then viewers."""
    specs = [{"editor": i, "cell": i if scenario.layout == "cells" else 0}
             for i in range(scenario.editors)]
    return specs + [{"editor": None, "cell": 0} for _ in range(scenario.viewers)]


def spread(specs: list[dict], workers: int) -> list[list[dict]]:
    """Round-robin, so editors land in different processes."""
    return [specs[i::workers] for i in range(workers)]


def start_profiler(pid: int, out: Path | None) -> subprocess.Popen | None:
    """py-spy sampling `pid` into `out` (collapsed stacks), when asked and installed."""
    spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if out is None or spy is None:
        return None
    return subprocess.Popen([spy, "record", "-p", str(pid), "--format", "raw", "-o", str(out),
                             *(PYSPY_EXTRA or ["-r", "250"])], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop_profiler(spy: subprocess.Popen | None) -> None:
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(10)


def run(kind: str, scenario: Scenario, workdir: Path, seed: int = 1,
        settle: float = 30.0, profile: Path | None = None) -> dict:
    """One scenario against a fresh server of `kind`: latency, throughput, CPU, RSS.

    With `profile`, py-spy samples the server during the edits (it costs the server CPU).
    """
    specs = client_specs(scenario)
    n_workers = min(MAX_WORKERS, -(-len(specs) // CLIENTS_PER_WORKER))
    with Target(kind, workdir, max(scenario.editors, 1)) as target:
        base = target.worker_cfg()
        shared = {**base, "n_editors": scenario.editors, "rate": scenario.rate,
                  "edits_each": scenario.edits_each,
                  "total_edits": scenario.edits_each * scenario.editors,
                  "seed": seed, "settle": settle}
        workers = [Worker(kind, {**shared, "clients": group}, workdir / f"worker{i}.log")
                   for i, group in enumerate(spread(specs, n_workers))]
        try:
            for worker in workers:
                worker.next(timeout=120)
            spy = start_profiler(target.pid, profile)
            rss_before = rss_bytes(target.pid)
            cpu_before = cpu_seconds(target.pid)
            gen_before = [cpu_seconds(w.proc.pid) for w in workers]
            busy_before, window_start = machine_busy_seconds(), time.monotonic()
            start = time.monotonic() + 0.3
            for worker in workers:
                worker.command({"start": start})
            duration = scenario.edits_each / scenario.rate
            reports, gen_cpu = [], 0.0
            for worker, before in zip(workers, gen_before, strict=True):
                reports.append(worker.next(timeout=duration + settle + 60))
                gen_cpu += cpu_seconds(worker.proc.pid) - before
            server_cpu = cpu_seconds(target.pid) - cpu_before
            busy = machine_busy_seconds() - busy_before
            window = time.monotonic() - window_start
            rss_after = rss_bytes(target.pid)
            stop_profiler(spy)
        finally:
            for worker in workers:
                worker.stop()
    result = summarize(reports, n_receivers=len(specs) - 1, start=start)
    result.update(target=kind, scenario=asdict(scenario), workers=n_workers,
                  server_cpu_s=server_cpu, generator_cpu_s=gen_cpu,
                  server_rss_mb_before=rss_before / 2**20, server_rss_mb_after=rss_after / 2**20)
    edits = max(result["edits"], 1)
    # Whatever else ran on the machine meanwhile (colleagues' tests): the contention figure.
    # CPU shares are over the whole measured window (start signal to the last report).
    result.update(window_s=window, other_cpu_util=max(0.0, busy - server_cpu - gen_cpu) / window,
                  loadavg_after=os.getloadavg()[0])
    result.update(server_cpu_ms_per_edit=1000 * server_cpu / edits,
                  server_cpu_util=server_cpu / window, generator_cpu_util=gen_cpu / window,
                  generator_cpu_ms_per_edit=1000 * gen_cpu / edits)
    return result


def memory(kind: str, workdir: Path, extra_clients: int = 20) -> dict:
    """Server RSS with no room, one room, a second room, and per extra client in a room."""
    hold = [{"editor": None, "cell": 0}]
    with Target(kind, workdir, 10) as target:
        second = "second.py" if kind.startswith("ours") else "second.txt"
        (target.server.root / second).write_text(
            (target.server.root / target.path).read_text())
        workers = []
        try:
            rss0 = rss_bytes(target.pid)
            for path, clients in ((None, hold), (second, hold),
                                  (second, hold * extra_clients)):
                cfg = {**target.worker_cfg(path), "n_editors": 0, "rate": 1, "edits_each": 0,
                       "total_edits": 0, "seed": 0, "settle": 0, "clients": clients}
                workers.append(Worker(kind, cfg, workdir / f"mem{len(workers)}.log"))
                workers[-1].next(timeout=120)
                time.sleep(0.5)
                workers[-1].rss = rss_bytes(target.pid)
            for worker in workers:
                worker.command({"start": time.monotonic()})
        finally:
            for worker in workers:
                worker.stop()
    rss1, rss2, rss3 = (w.rss for w in workers)
    return {"target": kind, "rss_mb_no_room": rss0 / 2**20,
            "rss_mb_first_room": (rss1 - rss0) / 2**20,
            "rss_mb_second_room": (rss2 - rss1) / 2**20,
            "rss_kb_per_client": (rss3 - rss2) / 1024 / extra_clients}
