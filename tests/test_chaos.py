"""Chaos with real @codemirror/collab peers: disconnect storms, kill -9, files rewritten on disk.

Every keystroke of the swarm (tests/js/peers/swarm.mjs) inserts a unique token; a token whose
push was answered `ok` is acknowledged and must be in the final documents, whatever happened
in between. These are the short runs; `python benchmarks/chaos.py` runs the long ones.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import time
from pathlib import Path

import pytest

from marimo_collab_ext.client import CollabClient

from .servers import ServerProcess
from .test_codemirror_peers import Swarm, run_swarm, server_docs

EXAMPLE = Path(__file__).parent.parent / "examples" / "demo.py"
# The demo's last cell, as the file holds it, before and after our rewrites on disk.
DISK_CELL = re.compile(r'print\("largest square:", max\(squares\)\)|print\("rewritten \d+"\)')


def missing_tokens(acked: set[str] | list[str], docs: dict[str, str]) -> list[str]:
    """Acknowledged tokens that no document holds."""
    everything = "\n".join(docs.values())
    return sorted(t for t in acked if t not in everything)


def diverged_peers(report: dict, truth: dict[str, str]) -> list[int]:
    return [p["index"] for p in report["peers"] if p["docs"] != truth]


async def disconnect_storm(url: str, token: str, path: str, *, seed: int, peers: int = 5,
                           edits: int = 150) -> dict:
    """Peers that drop their socket every few keystrokes and come back by catch-up join."""
    report = await run_swarm(url, token, path, peers=peers, edits=edits, seed=seed,
                             run=f"storm{seed}", protectTokens=True, pDisconnect=0.12,
                             offline=[0, 60], reconnectBackoff=[0, 30], latency=[0, 20])
    truth = await server_docs(url, token, path)
    return {"report": report, "lost": missing_tokens(report["acked"], truth),
            "diverged": diverged_peers(report, truth)}


async def kill_9_trials(workdir: Path, trials: int, *, seed: int, peers: int = 3,
                        log=lambda *a: None) -> dict:
    """Kill the server at random moments while peers type; restart it; count lost acked edits.

    After each restart, before the peers are back, a fresh client must see every token
    acknowledged before the kill, in the same session epoch.
    """
    rng = random.Random(seed)
    root, journal = workdir / "root", workdir / "journal"
    root.mkdir(parents=True)
    journal.mkdir()
    shutil.copy(EXAMPLE, root / "demo.py")
    # Autosave often: kills land during saves and journal checkpoints too.
    settings = {"autosave_delay": 0.3, "autosave_max_delay": 1.0, "disk_poll_interval": 0.5}
    server = ServerProcess(root, journal, settings)
    await asyncio.to_thread(server.start)
    session = (await CollabClient.connect(server.url, "demo.py", token=server.token))
    epoch = session.session
    await session.close()
    swarm = await Swarm.start(server.url, server.token, "demo.py", peers=peers, seed=seed,
                              run=f"kill{seed}", protectTokens=True, latency=[0, 20],
                              editInterval=[3, 15], pDisconnect=0.002,
                              reconnectBackoff=[20, 150])
    lost: list[str] = []
    epochs_changed = checked = 0
    try:
        for trial in range(trials):
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            server.kill()
            acked = await swarm.acked()
            await asyncio.sleep(rng.uniform(0, 0.3))  # the peers keep typing offline
            server = ServerProcess(root, journal, settings, port=server.port, token=server.token)
            await asyncio.to_thread(server.start)
            client = await CollabClient.connect(server.url, "demo.py", token=server.token)
            docs = {cid: client.text(cid) for cid in client.order}
            epochs_changed += client.session != epoch
            await client.close()
            missing = missing_tokens(acked, docs)
            lost += missing
            checked += len(acked)
            log(f"trial {trial + 1}/{trials}: {len(acked)} acked, {len(missing)} missing")
        report = await swarm.finish()
    finally:
        swarm.kill()
    try:
        truth = await server_docs(server.url, server.token, "demo.py")
    finally:
        await asyncio.to_thread(server.stop)
    lost += missing_tokens(report["acked"], truth)
    return {"report": report, "lost": lost, "diverged": diverged_peers(report, truth),
            "acked_checked": checked + len(report["acked"]), "epochs_changed": epochs_changed}


async def disk_rewrites(url: str, token: str, path: str, file: Path, rewrites: int, *,
                        seed: int, peers: int = 3, timeout: float = 10) -> dict:
    """Another program rewrites the last cell in the file while peers type in the others.

    Each rewrite must reach the session; no acknowledged live edit may be lost.
    """
    rng = random.Random(seed)
    watcher = await CollabClient.connect(url, path, token=token)
    disk_cell = watcher.order[-1]
    typed_cells = watcher.order[:-1]
    swarm = await Swarm.start(url, token, path, peers=peers, seed=seed, run=f"disk{seed}",
                              protectTokens=True, cells=typed_cells, latency=[0, 20],
                              editInterval=[3, 15], pDisconnect=0.005)
    reached = 0
    try:
        for n in range(rewrites):
            await asyncio.sleep(rng.uniform(0.05, 0.6))
            # Read and write with no await between: one atomic rewrite as far as the server sees.
            text = file.read_text()  # noqa: ASYNC240
            assert DISK_CELL.search(text), "the last cell is not as the file last held it"
            file.write_text(  # noqa: ASYNC240
                DISK_CELL.sub(f'print("rewritten {n}")', text, count=1))
            deadline = time.monotonic() + timeout
            while watcher.text(disk_cell) != f'print("rewritten {n}")':
                assert time.monotonic() < deadline, (
                    f"rewrite {n} never reached the session: {watcher.text(disk_cell)!r}")
                await asyncio.sleep(0.02)
            reached += 1
        report = await swarm.finish()
    finally:
        swarm.kill()
        await watcher.close()
    truth = await server_docs(url, token, path)
    return {"report": report, "lost": missing_tokens(report["acked"], truth),
            "diverged": diverged_peers(report, truth), "reached": reached,
            "disk_cell": truth[disk_cell]}


def assert_clean(result: dict) -> None:
    report = result["report"]
    assert report["failure"] is None, report["failure"]
    assert report["errors"] == [], report["errors"]
    assert result["diverged"] == []
    assert result["lost"] == []
    assert report["stale"] == 0, report["staleDetails"]


# ---- the short versions, in the default suite ------------------------------------------------


async def test_disconnect_storm_loses_no_acknowledged_edit(server, notebook):
    result = await disconnect_storm(server["url"], server["token"], notebook, seed=5)
    assert_clean(result)
    stats = result["report"]["stats"]
    assert stats["disconnects"] >= 50 and stats["catchUps"] >= 50
    assert len(result["report"]["acked"]) > 400


async def test_acknowledged_edits_survive_kill_9_at_random_moments(tmp_path):
    result = await kill_9_trials(tmp_path, trials=5, seed=3)
    assert_clean(result)
    assert result["epochs_changed"] == 0  # the journal kept the session, ids and versions
    assert result["acked_checked"] > 100


async def test_files_rewritten_on_disk_while_peers_type_lose_no_live_edit(
        server, notebook, jp_root_dir, collab_settings):
    result = await disk_rewrites(server["url"], server["token"], notebook,
                                 jp_root_dir / notebook, rewrites=8, seed=9)
    assert_clean(result)
    assert result["reached"] == 8
    assert result["disk_cell"] == 'print("rewritten 7")'


@pytest.fixture
def collab_settings(request) -> dict:
    """Autosave while people keep typing, so saves race with the rewrites on disk."""
    if request.node.name == "test_autosave_merges_a_disk_change_the_poll_has_not_seen_yet":
        return {"autosave_delay": 0.05, "disk_poll_interval": 3600}
    return {"autosave_delay": 0.1, "autosave_max_delay": 0.3}


async def test_autosave_merges_a_disk_change_the_poll_has_not_seen_yet(connect, jp_root_dir):
    # The race the disk-rewrite chaos found: a write by another program, then an autosave
    # before the next poll. The save must merge the file's change, not write over it.
    client = await connect()
    live_cell, disk_cell = client.order[0], client.order[-1]
    path = jp_root_dir / "demo.py"
    text = path.read_text()
    path.write_text(DISK_CELL.sub('print("rewritten 0")', text))
    client.edit(live_cell, {"from": 0, "insert": "# typed live\n"})
    await client.flush()
    await client.next_event(lambda e: e["type"] == "saved", timeout=10)
    final = path.read_text()
    assert 'print("rewritten 0")' in final and "# typed live" in final
    assert client.text(disk_cell) == 'print("rewritten 0")'
