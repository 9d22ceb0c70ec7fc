"""Lecture hall: one teacher typing and running, hundreds of viewers, then attackers (issue #14).

    python -m benchmarks.bench_lecture [--quick] [--targets ours,jc] [--set name=value ...]

Per target (our server, jupyter-collaboration) and phase (quiet, attack), a fresh server:
the teacher types `rate` edits/s into cell 0 (ours: and runs cell 1 every `run_every` edits),
`viewers` watch. `sample` of them are full clients (our CollabClient, a pycrdt Y client) that
apply every edit and time it; the others are raw sockets that read every frame and drop it
(benchmarks/rawclients.py): the server does the same work for them, the two shared cores do
not drown in 300 Python clients. Under attack, `stalled` sockets join and never read again and
one person floods cursor moves from `flooders` sockets. Measured: edit fan-out latency (the
teacher's push sent -> applied by a sampled viewer), over every (edit, sampled viewer) pair
and until the last sampled viewer; server CPU per edit; server RSS at start, peak and end.
Writes benchmarks/results/lecture-<time>.json and prints a table.

Ours runs with benchmarks/identities.py: every viewer, every stalled socket and the flooder
is a different person (the teacher is the only runner), so per-user limits of the server under
test apply as they would in a lecture. `--set` passes `c.MarimoCollab.<name>`; a name the server
under test does not have is dropped and listed in the results (runs against main and fixes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from . import identities
from .driver import JC_PYTHON, REPO, Target, Worker, spread
from .procstat import cpu_seconds, machine, machine_busy_seconds, rss_bytes
from .servers import ONE_USER_IS_MANY
from .stats import dist_ms, summarize

RESULTS = REPO / "benchmarks" / "results"
TARGETS = ["ours", "jc"]
P99_GOAL_MS = 60
ATTACK_SLOWDOWN_GOAL = 1.2


@dataclass
class Lecture:
    viewers: int = 300
    sample: int = 30  # viewers that are full clients and measure; the rest are raw readers
    rate: float = 10.0  # the teacher's edits per second
    edits: int = 600  # per phase
    run_every: int = 20  # ours: the teacher runs cell 1 every N edits (0: never)
    stalled: int = 20
    flooders: int = 30
    viewer_workers: int = 2
    settle: float = 30.0


QUICK = Lecture(viewers=20, sample=6, rate=5, edits=40, run_every=10, stalled=3, flooders=5,
                settle=20)


def server_settings(requested: dict[str, str]) -> tuple[dict, dict, list[str]]:
    """(settings passed, every MarimoCollab setting's default, names dropped as unknown)."""
    from marimo_collab_ext.app import MarimoCollab

    traits = MarimoCollab.class_traits(config=True)
    defaults = {name: trait.default_value for name, trait in sorted(traits.items())}
    known = {k: v for k, v in requested.items() if hasattr(MarimoCollab, k) and k in traits}
    return known, {k: repr(v) for k, v in defaults.items()}, sorted(set(requested) - set(known))


class RssSampler:
    """The server's RSS every `interval` seconds in a thread: the peak between start and stop."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval = pid, interval
        self.peak = rss_bytes(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except (OSError, RuntimeError):
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def raw_cfg(target: Target, crowd: range = range(0), stalled: int = 0,
            flooders: int = 0) -> dict:
    """benchmarks/rawclients.py's config: crowd viewers `crowd`, attackers, on this target."""
    if target.kind == "jc":
        url = urlsplit(target.worker_cfg()["ws_url"])
        tok = target.server.token
        crowd_tokens, stalled_tokens, flood = [tok] * len(crowd), [tok] * stalled, tok
        resource = f"{url.path}?{url.query}"
    else:
        url = urlsplit(target.server.url)
        crowd_tokens = [identities.token_of(f"viewer{i}") for i in crowd]
        stalled_tokens = [identities.token_of(f"stalled{i}") for i in range(stalled)]
        flood = identities.token_of("mallory")
        resource = f"{url.path}api/marimo-collab/ws?path={target.path}"
    return {"kind": "jc" if target.kind == "jc" else "ours", "host": url.hostname,
            "port": url.port, "resource": resource, "crowd_tokens": crowd_tokens,
            "stalled_tokens": stalled_tokens, "flood_token": flood, "flooders": flooders}


class RawClients(Worker):
    """benchmarks/rawclients.py in its own process (standard library only, either server)."""

    def __init__(self, cfg: dict, log: Path) -> None:  # Worker's pipes, another program
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.rawclients",
                                      json.dumps(cfg)], cwd=REPO, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=log.open("ab"), text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.ready: dict = {}

    def next(self, timeout: float) -> dict:
        message = super().next(timeout)
        if message.get("ready"):
            self.ready = message
        return message


async def warm_kernel(target: Target) -> None:
    """Start the kernel before the measurement: the teacher runs cell 1 once."""
    from marimo_collab_ext.client import CollabClient

    client = await CollabClient.connect(target.server.url, target.path,
                                        token=identities.token_of(identities.TEACHER))
    try:
        await client.run([client.order[1]])
    finally:
        await client.close()


def make_target(kind: str, workdir: Path, settings: dict) -> Target:
    target = Target(kind, workdir, 2)
    if kind == "ours":
        target.server.args += identities.SERVER_ARGS
        # servers.ours() lifts per-user budgets for benchmarks where every client is the owner;
        # here everyone is a different person, so the server's own defaults apply (later
        # arguments win).
        from marimo_collab_ext.app import MarimoCollab
        traits = MarimoCollab.class_traits(config=True)
        target.server.args += [f"--MarimoCollab.{k}={traits[k].default_value}"
                               for k in ONE_USER_IS_MANY if k in traits and k not in settings]
        target.server.args += [f"--MarimoCollab.{k}={v}" for k, v in settings.items()]
    return target


def fanout(reports: list[dict], start: float) -> dict:
    """Latency of every (edit, viewer) pair: push sent -> that viewer applied it."""
    sent = {int(k): v for r in reports for k, v in r["sent"].items()}
    pairs = [t - sent[int(k)] for r in reports for k, t in (r["receipts"] or [])
             if int(k) in sent]
    return dist_ms(pairs)


def run_phase(kind: str, attack: bool, lecture: Lecture, workdir: Path,
              settings: dict) -> dict:
    teacher = {"editor": 0, "cell": 0, "run_every": lecture.run_every if kind == "ours" else 0,
               "run_cell": 1}
    sample = min(lecture.sample, lecture.viewers)
    viewers = [{"editor": None, "cell": 0} for _ in range(sample)]
    if kind == "ours":
        teacher["token"] = identities.token_of(identities.TEACHER)
        for i, spec in enumerate(viewers):
            spec["token"] = identities.token_of(f"viewer{i}")
    with make_target(kind, workdir, settings) as target:
        if kind == "ours" and lecture.run_every:
            asyncio.run(warm_kernel(target))
        shared = {**target.worker_cfg(), "n_editors": 1, "rate": lecture.rate,
                  "edits_each": lecture.edits, "total_edits": lecture.edits, "seed": 1,
                  "settle": lecture.settle, "receipts": True}
        # The teacher alone in one process, so viewers' work never delays its typing.
        groups = [[teacher]] + spread(viewers, lecture.viewer_workers)
        workers, attackers, attack_report, ready = [], None, None, {}
        try:
            for i, group in enumerate(groups):
                workers.append(Worker(kind, {**shared, "clients": group},
                                      workdir / f"worker{i}.log"))
            crowd = RawClients(raw_cfg(target, crowd=range(sample, lecture.viewers)),
                               workdir / "crowd.log")
            workers.append(crowd)  # stopped with the workers
            for worker in workers:
                worker.next(timeout=300)
            crowd_ready = crowd.ready
            crowd.command({"start": True})
            rss_start = rss_bytes(target.pid)
            if attack:
                attackers = RawClients(raw_cfg(target, stalled=lecture.stalled,
                                               flooders=lecture.flooders),
                                       workdir / "attackers.log")
                ready = attackers.next(timeout=120)
                attackers.command({"start": True})
                time.sleep(1.0)  # the flood is on before the teacher types
            sampler = RssSampler(target.pid)
            gen_pids = [w.proc.pid for w in workers]
            gen_before = sum(cpu_seconds(p) for p in gen_pids)
            cpu_before = cpu_seconds(target.pid)
            busy_before, window_start = machine_busy_seconds(), time.monotonic()
            start = time.monotonic() + 0.3
            for worker in workers[:-1]:
                worker.command({"start": start})
            duration = lecture.edits / lecture.rate
            reports = [w.next(timeout=duration + lecture.settle + 120) for w in workers[:-1]]
            server_cpu = cpu_seconds(target.pid) - cpu_before
            gen_cpu = sum(cpu_seconds(p) for p in gen_pids) - gen_before
            crowd.command({"stop": True})
            crowd_report = crowd.next(timeout=60)
            window = time.monotonic() - window_start
            busy = machine_busy_seconds() - busy_before
            if attackers is not None:
                attackers.command({"stop": True})
                attack_report = attackers.next(timeout=60)
            rss_peak = sampler.stop()
            time.sleep(2.0)  # the attackers are gone (or closed): what the server keeps
            rss_end = rss_bytes(target.pid)
        finally:
            if attackers is not None:
                attackers.stop()
            for worker in workers:
                worker.stop()
    result = summarize(reports, n_receivers=sample, start=start)
    edits = max(result["edits"], 1)
    return {"target": kind, "phase": "attack" if attack else "quiet",
            "edits": result["edits"], "delivered_to_all": result["delivered_to_all"],
            "missing_deliveries": result["missing_deliveries"],
            "converged": result["converged"],
            "fanout_ms": fanout(reports, start),
            "fanout_to_all_ms": result["fanout_ms"],
            "schedule_lateness_ms": result["schedule_lateness_ms"],
            "runs": sum(r.get("runs", 0) for r in reports),
            "runs_failed": sum(r.get("runs_failed", 0) for r in reports),
            "server_cpu_s": server_cpu, "server_cpu_ms_per_edit": 1000 * server_cpu / edits,
            "server_cpu_util": server_cpu / window,
            "generator_cpu_util": gen_cpu / window,
            "other_cpu_util": max(0.0, busy - server_cpu - gen_cpu) / window,
            "sampled_viewers": sample,
            "crowd": {"frames": crowd_report["crowd_frames"],
                      "sockets": crowd_report["sockets"]},
            "rss_mb": {"start": rss_start / 2**20, "peak": rss_peak / 2**20,
                       "end": rss_end / 2**20},
            "attackers": {**ready, **(attack_report or {})} if attack else None,
            "crowd_ready": crowd_ready,
            "window_s": window, "loadavg_after": os.getloadavg()[0]}


def _ms(value) -> str:
    return "–" if value is None else f"{value:.1f}"


def table(out: dict) -> str:
    lines = ["| server | phase | fan-out p50 ms | fan-out p99 ms | to all sampled p99 ms |"
             " delivered | server CPU ms/edit | RSS MB start / peak / end |"
             " CPU server / generators / others | attackers |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["phases"]:
        if "error" in r:
            lines.append(f"| {r['target']} | {r['phase']} | failed: {r['error'][:120]} |"
                         " | | | | | | |")
            continue
        attackers = "–"
        if r["attackers"]:
            a = r["attackers"]
            socks = ", ".join(f"{k} ×{v}" for k, v in sorted(a.get("sockets", {}).items()))
            attackers = f"{a.get('flood_per_s', 0):.0f} cursors/s sent; {socks}"
        rss = r["rss_mb"]
        lines.append(
            f"| {r['target']} | {r['phase']} | {_ms(r['fanout_ms']['p50'])} |"
            f" {_ms(r['fanout_ms']['p99'])} | {_ms(r['fanout_to_all_ms']['p99'])} |"
            f" {r['delivered_to_all']}/{r['edits']} | {r['server_cpu_ms_per_edit']:.1f} |"
            f" {rss['start']:.0f} / {rss['peak']:.0f} / {rss['end']:.0f} |"
            f" {100 * r['server_cpu_util']:.0f}% / {100 * r['generator_cpu_util']:.0f}% /"
            f" {100 * r['other_cpu_util']:.0f}% | {attackers} |")
    lecture = out["lecture"]
    lines += ["", f"{lecture['viewers']} viewers, latency measured on"
              f" {min(lecture['sample'], lecture['viewers'])} of them;"
              f" {lecture['edits']} edits at {lecture['rate']:g}/s per phase.",
              f"Goals: fan-out p99 ≤ {P99_GOAL_MS} ms quiet; under attack at most"
              f" {ATTACK_SLOWDOWN_GOAL:.1f}× the quiet p99; memory bounded."]
    by = {(r["target"], r["phase"]): r for r in out["phases"] if "error" not in r}
    for kind in out["targets"]:
        quiet, attack = by.get((kind, "quiet")), by.get((kind, "attack"))
        if quiet and attack and quiet["fanout_ms"]["p99"] and attack["fanout_ms"]["p99"]:
            lines.append(f"- {kind}: attack/quiet p99 = "
                         f"{attack['fanout_ms']['p99'] / quiet['fanout_ms']['p99']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated: ours, jc")
    parser.add_argument("--phases", default="quiet,attack")
    parser.add_argument("--viewers", type=int)
    parser.add_argument("--edits", type=int)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="c.MarimoCollab.NAME for our server (dropped if it has no NAME)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (server logs)")
    parser.add_argument("--out", type=Path, help="results file (default results/lecture-*)")
    args = parser.parse_args(argv)
    lecture = QUICK if args.quick else Lecture()
    for name in ("viewers", "edits", "rate"):
        if getattr(args, name) is not None:
            setattr(lecture, name, getattr(args, name))
    targets = [t for t in args.targets.split(",") if t]
    if "jc" in targets and not JC_PYTHON.exists():
        raise SystemExit(f"{JC_PYTHON} is missing: run benchmarks/run.sh once (it creates it)")
    settings, defaults, dropped = server_settings(dict(s.split("=", 1) for s in args.set))
    if dropped:
        print(f"not settings of this server, dropped: {', '.join(dropped)}")
    workdir = Path(tempfile.mkdtemp(prefix="marimo-collab-lecture-"))
    began = time.time()
    path = args.out or RESULTS / ("lecture-" + time.strftime("%Y-%m-%dT%H-%M-%S",
                                                              time.gmtime(began))
                                  + ("-quick" if args.quick else "") + ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    out = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(began)),
           "quick": args.quick, "machine": machine(), "targets": targets,
           "lecture": asdict(lecture), "settings": settings, "settings_dropped": dropped,
           "server_defaults": defaults,
           "git": subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                                 capture_output=True, text=True).stdout.strip(),
           "phases": []}
    try:
        # Targets take turns per phase, so a colleague's load hits them alike.
        for phase in [p for p in args.phases.split(",") if p]:
            for kind in targets:
                print(f"· {phase}: {kind}", flush=True)
                try:
                    out["phases"].append(run_phase(kind, phase == "attack", lecture,
                                                   workdir / f"{phase}-{kind}", settings))
                except Exception as exc:  # a server that fell over is a result, not a crash
                    print(f"  failed: {exc!r}", flush=True)
                    out["phases"].append({"target": kind, "phase": phase, "error": repr(exc)})
                path.write_text(json.dumps(out, indent=1))  # so far, in case of a crash
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work dir: {workdir}")
    out["runtime_s"] = time.time() - began
    path.write_text(json.dumps(out, indent=1))
    print(table(out))
    print(f"\nresults: {path}  ({out['runtime_s']:.0f} s)")
    return out


if __name__ == "__main__":
    main()
