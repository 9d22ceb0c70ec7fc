"""The long chaos and fuzz runs (tests/test_chaos.py and tests/test_fuzz_protocol.py run short).

    python benchmarks/chaos.py                       # everything below, long versions
    python benchmarks/chaos.py kill --trials 100     # kill -9 at random moments while typing
    python benchmarks/chaos.py storm --rounds 20     # disconnect storms, 5 peers each
    python benchmarks/chaos.py disk --rewrites 200   # files rewritten on disk while typing
    python benchmarks/chaos.py disk-kill --rewrites 200 --kill-every 20  # and kill -9 too
    python benchmarks/chaos.py fuzz --messages 100000

Each prints what it did and the counts that must be zero (acknowledged edits lost, diverged
peers, stale answers, protocol violations), and exits non-zero when one is not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from marimo_collab_ext.client import CollabClient  # noqa: E402
from tests.servers import ServerProcess  # noqa: E402
from tests.test_chaos import (  # noqa: E402
    EXAMPLE,
    disconnect_storm,
    diverged_peers,
    kill_9_trials,
    missing_tokens,
)
from tests.test_codemirror_peers import Swarm  # noqa: E402
from tests.test_fuzz_protocol import FUZZ_SETTINGS, ProtocolFuzzer  # noqa: E402


def summary(name: str, started: float, **counts) -> bool:
    print(json.dumps({"run": name, "seconds": round(time.monotonic() - started, 1), **counts}))
    return all(counts.get(k, 0) == 0 for k in ("acked_lost", "diverged", "stale", "errors",
                                                "acked_lost_in_file", "external_lost",
                                                "external_lost_in_file"))


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


# The demo's last cell; each rewrite by "another program" adds its marker line below it.
DISK_ANCHOR = 'print("largest square:", max(squares))'


def add_marker(file: Path, marker: str, timeout: float = 5.0) -> None:
    """Another program adds `marker` to the last cell: read, edit, write (atomic rename).

    The server writes in place, so a read may catch its save half-done: read again until the
    file is whole. The write is a rename, so the server never reads ours half-done; it may
    still land in the middle of a save (the race a compare-and-swap save closes).
    """
    deadline = time.monotonic() + timeout
    while True:
        text = file.read_text()
        if DISK_ANCHOR in text and text.rstrip().endswith("app.run()"):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"the file stayed unreadable: {text[-300:]!r}")
        time.sleep(0.005)
    tmp = file.with_name(f".{file.name}.external")
    tmp.write_text(text.replace(DISK_ANCHOR, f"{DISK_ANCHOR}\n    # {marker}", 1))
    os.replace(tmp, file)


async def patient_docs(server: ServerProcess, path: str) -> tuple[dict[str, str], float]:
    """What a fresh client reads, and how long the join took: no keepalive timeout.

    A restarted server merging a changed file into a long journal may take a while to answer.
    """
    began = time.monotonic()
    client = await CollabClient.connect(server.url, path, token=server.token, ping_interval=None)
    try:
        return {cid: client.text(cid) for cid in client.order}, time.monotonic() - began
    finally:
        await client.close()


async def disk_kill(workdir: Path, rewrites: int, kill_every: int, *, seed: int,
                    peers: int = 3, while_down: bool = True, edit_ms: tuple = (40, 120),
                    log=print) -> dict:
    """Rewrites on disk while peers type, and kill -9 of the server every `kill_every` rewrites.

    Each rewrite adds a unique marker; each acknowledged peer edit is a unique token: all
    must be in the final session and, after a last save, in the file. The rewrite at a kill
    lands while the server is down (`while_down`; else right after the restart). The server
    restarts on the same port; peers reconnect.
    """
    rng = random.Random(seed)
    root, journal = workdir / "root", workdir / "journal"
    root.mkdir(parents=True)
    journal.mkdir()
    file = root / "demo.py"
    shutil.copy(EXAMPLE, file)
    settings = {"autosave_delay": 0.3, "autosave_max_delay": 1.0, "disk_poll_interval": 0.5}
    server = ServerProcess(root, journal, settings)
    await asyncio.to_thread(server.start)
    watcher = await CollabClient.connect(server.url, file.name, token=server.token)
    typed_cells = watcher.order[:-1]
    await watcher.close()
    swarm = await Swarm.start(server.url, server.token, file.name, peers=peers, seed=seed,
                              run=f"diskkill{seed}", protectTokens=True, cells=typed_cells,
                              latency=[0, 20], editInterval=list(edit_ms), pDisconnect=0.002,
                              reconnectBackoff=[20, 150])
    markers: list[str] = []
    kills, lost_at_restart, joins = 0, 0, []
    try:
        for n in range(rewrites):
            await asyncio.sleep(rng.uniform(0.05, 0.6))
            marker = f"external-{seed}-{n:05d}"
            if n and n % kill_every == 0:
                server.kill()
                kills += 1
                acked = await swarm.acked()
                if while_down:
                    await asyncio.to_thread(add_marker, file, marker)
                await asyncio.sleep(rng.uniform(0, 0.3))  # peers keep typing offline
                server = ServerProcess(root, journal, settings, port=server.port,
                                       token=server.token)
                await asyncio.to_thread(server.start)
                docs, took = await patient_docs(server, file.name)
                joins.append(round(took, 2))
                if not while_down:
                    await asyncio.to_thread(add_marker, file, marker)
                markers.append(marker)
                lost_at_restart += len(missing_tokens(acked, docs))
                log(f"kill {kills}: {len(acked)} acked before it,"
                    f" {len(missing_tokens(acked, docs))} missing after restart"
                    f" (first join after it: {took:.1f} s)")
            else:
                await asyncio.to_thread(add_marker, file, marker)
                markers.append(marker)
        await asyncio.sleep(3 * settings["disk_poll_interval"] + 1)  # the last rewrite's poll
        report = await swarm.finish()
    finally:
        swarm.kill()
    final_save = "ok"
    try:
        truth, _ = await patient_docs(server, file.name)
        client = await CollabClient.connect(server.url, file.name, token=server.token,
                                            ping_interval=None)
        try:
            await client.request({"type": "save"}, timeout=300)
        except Exception as exc:  # a save that never finishes is a finding, not a crash
            final_save = repr(exc)
        await client.close()
        final_file = file.read_text()
    finally:
        server.stop()
        if final_save != "ok":
            keep = Path(tempfile.mkdtemp(prefix="disk-kill-"))
            shutil.copytree(workdir, keep / "work")
            log(f"final save failed ({final_save}); server log and files kept in {keep}")
    session = "\n".join(truth.values())
    return {"rewrites": len(markers), "kills": kills, "acked": len(report["acked"]),
            "acked_lost": missing_tokens(report["acked"], truth),
            "acked_lost_in_file": missing_tokens(report["acked"], {"file": final_file}),
            "acked_missing_at_a_restart": lost_at_restart,
            "external_lost": [m for m in markers if m not in session],
            "external_lost_in_file": [m for m in markers if m not in final_file],
            "diverged": diverged_peers(report, truth), "stale": report["stale"],
            "errors": report["errorCount"] + (report["failure"] is not None),
            "final_save": final_save, "join_s_after_restarts": joins,
            "document_chars": len(session)}


def run_disk_kill(rewrites: int, kill_every: int, seed: int, while_down: bool,
                  edit_ms: tuple) -> bool:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        r = asyncio.run(disk_kill(Path(tmp), rewrites, kill_every, seed=seed,
                                  while_down=while_down, edit_ms=edit_ms))
    return summary("disk-kill", started, rewrites=r["rewrites"], kills=r["kills"],
                   rewrite_while_down=while_down, edit_ms=edit_ms,
                   acked_checked=r["acked"], acked_lost=len(r["acked_lost"]),
                   acked_lost_in_file=len(r["acked_lost_in_file"]),
                   acked_missing_at_a_restart=r["acked_missing_at_a_restart"],
                   external_lost=len(r["external_lost"]),
                   external_lost_in_file=len(r["external_lost_in_file"]),
                   external_lost_first=r["external_lost"][:10],
                   diverged=len(r["diverged"]), stale=r["stale"], errors=r["errors"],
                   final_save=r["final_save"], join_s_after_restarts=r["join_s_after_restarts"],
                   document_chars=r["document_chars"])


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
                        choices=["all", "kill", "storm", "disk", "disk-kill", "fuzz"])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--rewrites", type=int, default=200)
    parser.add_argument("--kill-every", type=int, default=20)
    parser.add_argument("--edit-ms", type=int, nargs=2, default=[40, 120],
                        help="disk-kill: each peer's pause between keystrokes, ms (min max)")
    parser.add_argument("--no-rewrite-while-down", action="store_true",
                        help="disk-kill: the rewrite at a kill comes after the restart")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    args = parser.parse_args()
    print(f"seed {args.seed}")
    ok = True
    if args.what in ("all", "storm"):
        ok &= asyncio.run(run_storm(args.rounds, args.seed))
    if args.what in ("all", "disk"):
        ok &= run_disk(args.rewrites)
    if args.what in ("all", "disk-kill"):
        ok &= run_disk_kill(args.rewrites, args.kill_every, args.seed,
                            not args.no_rewrite_while_down, tuple(args.edit_ms))
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
