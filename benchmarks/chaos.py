"""The long chaos and fuzz runs (tests/test_chaos.py and tests/test_fuzz_protocol.py run short).

    python benchmarks/chaos.py                       # everything below, long versions
    python benchmarks/chaos.py kill --trials 100     # kill -9 at random moments while typing
    python benchmarks/chaos.py storm --rounds 20     # disconnect storms, 5 peers each
    python benchmarks/chaos.py disk --rewrites 200   # files rewritten on disk while typing
    python benchmarks/chaos.py fuzz --messages 100000

Each prints what it did and the counts that must be zero (acknowledged edits lost, diverged
peers, stale answers, protocol violations), and exits non-zero when one is not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import ServerProcess  # noqa: E402
from tests.test_chaos import EXAMPLE, disconnect_storm, kill_9_trials  # noqa: E402
from tests.test_fuzz_protocol import FUZZ_SETTINGS, ProtocolFuzzer  # noqa: E402


def summary(name: str, started: float, **counts) -> bool:
    print(json.dumps({"run": name, "seconds": round(time.monotonic() - started, 1), **counts}))
    return all(counts.get(k, 0) == 0 for k in ("acked_lost", "diverged", "stale", "errors"))


async def run_kill(trials: int, seed: int) -> bool:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        result = await kill_9_trials(Path(tmp), trials, seed=seed, log=print)
    report = result["report"]
    return summary("kill", started, trials=trials, acked_checked=result["acked_checked"],
                   acked_lost=len(result["lost"]), diverged=len(result["diverged"]),
                   stale=report["stale"], errors=report["errorCount"] + (report["failure"] is
                                                                         not None),
                   epochs_changed=result["epochs_changed"],
                   unconfirmed_dropped=len(report["lostUnconfirmed"]),
                   keystrokes=report["stats"]["keystrokes"])


async def run_storm(rounds: int, seed: int) -> bool:
    started = time.monotonic()
    totals = {"acked": 0, "acked_lost": 0, "diverged": 0, "stale": 0, "errors": 0,
              "disconnects": 0}
    with tempfile.TemporaryDirectory() as tmp:
        root, journal = Path(tmp) / "root", Path(tmp) / "journal"
        root.mkdir()
        journal.mkdir()
        shutil.copy(EXAMPLE, root / "demo.py")
        server = ServerProcess(root, journal, {"autosave_delay": 0.3})
        await asyncio.to_thread(server.start)
        try:
            for n in range(rounds):
                result = await disconnect_storm(server.url, server.token, "demo.py",
                                                seed=seed + n, edits=300)
                report = result["report"]
                totals["acked"] += len(report["acked"])
                totals["acked_lost"] += len(result["lost"])
                totals["diverged"] += len(result["diverged"])
                totals["stale"] += report["stale"]
                totals["errors"] += report["errorCount"] + (report["failure"] is not None)
                totals["disconnects"] += report["stats"]["disconnects"]
                print(f"storm {n + 1}/{rounds}: {len(report['acked'])} acked,"
                      f" {report['stats']['disconnects']} disconnects, {len(result['lost'])} lost")
        finally:
            server.stop()
    return summary("storm", started, rounds=rounds, **totals)


def run_disk(rewrites: int) -> bool:
    # The rewriter needs the in-process server (it writes only while the server is not).
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
         "tests/test_chaos.py::test_files_rewritten_on_disk_while_peers_type_lose_no_live_edit"],
        cwd=ROOT, env={**os.environ, "MARIMO_COLLAB_CHAOS_REWRITES": str(rewrites)},
        capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if "disk rewrites:" in line]
    print("\n".join(lines) or proc.stdout[-3000:])
    return summary("disk", started, rewrites=rewrites, errors=int(proc.returncode != 0))


def run_fuzz(messages: int) -> bool:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        root, journal = Path(tmp) / "root", Path(tmp) / "journal"
        root.mkdir()
        journal.mkdir()
        shutil.copy(EXAMPLE, root / "demo.py")
        server = ServerProcess(root, journal, FUZZ_SETTINGS).start()
        try:
            stats = ProtocolFuzzer(server.url, server.token, "demo.py").run(messages)
            alive = server.proc.poll() is None
        finally:
            server.stop()
    return summary("fuzz", started, messages=stats.messages, answers=stats.codes,
                   accepted_edits=stats.accepted_edits, reconnects=stats.reconnects,
                   errors=int(not alive))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", default="all",
                        choices=["all", "kill", "storm", "disk", "fuzz"])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--rewrites", type=int, default=200)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    args = parser.parse_args()
    print(f"seed {args.seed}")
    ok = True
    if args.what in ("all", "storm"):
        ok &= asyncio.run(run_storm(args.rounds, args.seed))
    if args.what in ("all", "disk"):
        ok &= run_disk(args.rewrites)
    if args.what in ("all", "kill"):
        ok &= asyncio.run(run_kill(args.trials, args.seed))
    if args.what in ("all", "fuzz"):
        try:
            ok &= run_fuzz(args.messages)
        except AssertionError as exc:
            print(f"fuzz failed: {exc}")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
