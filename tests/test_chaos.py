"""Chaos with real @codemirror/collab peers: disconnect storms, kill -9, files rewritten on disk.

Every keystroke of the swarm (tests/js/peers/swarm.mjs) inserts a unique token; a token whose
push was answered `ok` is acknowledged and must be in the final documents, whatever happened
in between. These are the short runs; `python benchmarks/chaos.py` runs the long ones.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from marimo_collab_ext.client import CollabClient

from .servers import ServerProcess
from .test_codemirror_peers import Swarm, run_swarm, server_docs
from .test_mirror import until

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
                        per_notebook: int = 10, log=lambda *a: None) -> dict:
    """Kill the server at random moments while peers type; restart it; count lost acked edits.

    After each restart, before the peers are back, a fresh client must see every token
    acknowledged before the kill, in the same session epoch. A new notebook (and swarm)
    every `per_notebook` trials keeps the documents of long runs small.
    """
    rng = random.Random(seed)
    root, journal = workdir / "root", workdir / "journal"
    root.mkdir(parents=True)
    journal.mkdir()
    # Autosave often: kills land during saves and journal checkpoints too.
    settings = {"autosave_delay": 0.3, "autosave_max_delay": 1.0, "disk_poll_interval": 0.5}
    server = ServerProcess(root, journal, settings)
    await asyncio.to_thread(server.start)
    lost: list[str] = []
    reports, diverged = [], []
    epochs_changed = checked = 0
    started = time.monotonic()
    try:
        for first in range(0, trials, per_notebook):
            path = f"demo{first}.py"
            shutil.copy(EXAMPLE, root / path)
            client = await CollabClient.connect(server.url, path, token=server.token)
            epoch = client.session
            await client.close()
            swarm = await Swarm.start(server.url, server.token, path, peers=peers,
                                      seed=seed + first, run=f"kill{seed}-{first}",
                                      protectTokens=True, latency=[0, 20],
                                      editInterval=[15, 50], pDisconnect=0.002,
                                      reconnectBackoff=[20, 150])
            try:
                for _ in range(100):  # the first kill comes after the first acknowledgements
                    if await swarm.acked():
                        break
                    await asyncio.sleep(0.1)
                for trial in range(first, min(trials, first + per_notebook)):
                    await asyncio.sleep(rng.uniform(0, 1.5))
                    server.kill()
                    acked = await swarm.acked()
                    await asyncio.sleep(rng.uniform(0, 0.3))  # the peers keep typing offline
                    server = ServerProcess(root, journal, settings, port=server.port,
                                           token=server.token)
                    await asyncio.to_thread(server.start)
                    client = await CollabClient.connect(server.url, path, token=server.token)
                    docs = {cid: client.text(cid) for cid in client.order}
                    epochs_changed += client.session != epoch
                    await client.close()
                    missing = missing_tokens(acked, docs)
                    lost += missing
                    checked += len(acked)
                    log(f"trial {trial + 1}/{trials}: {len(acked)} acked, {len(missing)}"
                        f" missing ({time.monotonic() - started:.1f} s)")
                report = await swarm.finish()
            finally:
                swarm.kill()
            truth = await server_docs(server.url, server.token, path)
            lost += missing_tokens(report["acked"], truth)
            checked += len(report["acked"])
            diverged += diverged_peers(report, truth)
            reports.append(report)
    finally:
        server.kill()  # one more; nothing is checked after it
    return {"report": merge_reports(reports), "lost": lost, "diverged": diverged,
            "acked_checked": checked, "epochs_changed": epochs_changed}


def merge_reports(reports: list[dict]) -> dict:
    """Several swarm reports as one: failures, errors and counts together."""
    failures = [r["failure"] for r in reports if r["failure"] is not None]
    stats: dict[str, int] = {}
    for report in reports:
        for key, value in report["stats"].items():
            stats[key] = stats.get(key, 0) + value
    return {"failure": failures[0] if failures else None,
            "errors": [e for r in reports for e in r["errors"]],
            "errorCount": sum(r["errorCount"] for r in reports),
            "stale": sum(r["stale"] for r in reports),
            "staleDetails": [d for r in reports for d in r["staleDetails"]],
            "lostUnconfirmed": [x for r in reports for x in r["lostUnconfirmed"]],
            "acked": [t for r in reports for t in r["acked"]], "stats": stats}


async def disk_rewrites(url: str, token: str, path: str, file: Path, rewrites: int, *,
                        server_writing: Callable[[], bool], seed: int, peers: int = 3,
                        timeout: float = 10) -> dict:
    """Another program rewrites the last cell in the file while peers type in the others.

    Each rewrite must reach the session; no acknowledged live edit may be lost. Two programs
    writing one file at the same instant is a race no server can win without a lock, and
    Jupyter writes files in place (a reader may see them half written), so the other program
    writes only while `server_writing()` is false; autosaves and polls still come at any time.
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
            for _ in range(10_000):  # a save takes milliseconds
                if not server_writing():
                    break
                await asyncio.sleep(0.001)
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
    assert len(result["report"]["acked"]) > 300


async def test_acknowledged_edits_survive_kill_9_at_random_moments(tmp_path):
    result = await kill_9_trials(tmp_path, trials=5, seed=3)
    assert_clean(result)
    assert result["epochs_changed"] == 0  # the journal kept the session, ids and versions
    assert result["acked_checked"] > 100


async def test_files_rewritten_on_disk_while_peers_type_lose_no_live_edit(
        server, notebook, jp_root_dir):
    rewrites = int(os.environ.get("MARIMO_COLLAB_CHAOS_REWRITES", "8"))  # benchmarks/chaos.py
    client = await CollabClient.connect(server["url"], notebook, token=server["token"])
    room = server["app"].web_app.settings["marimo_collab"].room_manager.rooms[notebook]
    result = await disk_rewrites(server["url"], server["token"], notebook,
                                 jp_root_dir / notebook, rewrites, seed=9,
                                 server_writing=room.saver.lock.locked)
    await client.close()
    assert_clean(result)
    assert result["reached"] == rewrites
    assert result["disk_cell"] == f'print("rewritten {rewrites - 1}")'
    print(f"disk rewrites: {rewrites} reached the session, {len(result['report']['acked'])}"
          " acknowledged live edits, 0 lost")


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


async def test_a_token_peer_rejoining_before_its_old_socket_is_gone_replaces_it(server, notebook):
    # Found by the storms: a peer whose network dropped re-joins with its peer_id while the
    # server still holds the old socket. Jupyter gives each token-authenticated connection a
    # fresh anonymous username, yet they are all the server's owner: the same person.
    old = await CollabClient.connect(server["url"], notebook, token=server["token"])
    again = CollabClient(old.url, old.headers)
    again.peer_id = old.peer_id
    response = await again.open()
    assert response["self"]["peer_id"] == old.peer_id
    await asyncio.wait_for(asyncio.gather(old._reader, return_exceptions=True), 10)
    assert old.ws.close_code == 4000  # "replaced by a newer connection of the same peer"
    await again.close()


async def test_clients_joining_while_peers_type_miss_no_broadcast(server, notebook):
    # A broadcast that arrives right behind the `join` answer must reach the new client's
    # cells: with no later edit to reveal the gap, a missed one would stay missed.
    swarm = await Swarm.start(server["url"], server["token"], notebook, peers=3, seed=31,
                              run="joiners", latency=[0, 5], editInterval=[5, 20],
                              pDisconnect=0)
    joined = []
    try:
        for _ in range(10):
            await asyncio.sleep(0.2)
            joined.append(await CollabClient.connect(server["url"], notebook,
                                                     token=server["token"]))
        report = await swarm.finish()
    finally:
        swarm.kill()
    truth = await server_docs(server["url"], server["token"], notebook)
    try:
        assert report["failure"] is None and report["errors"] == []
        # The typing is over, so nothing more will come: a client still behind after
        # the last broadcasts had time to arrive (the server shares this test's busy
        # event loop) missed one for good.
        await until(lambda: all({cid: c.text(cid) for cid in c.order} == truth for c in joined),
                    timeout=15, what="every joined client to reach the server's text")
    finally:
        for client in joined:
            await client.close()


async def test_a_kill_between_writing_the_file_and_the_journal_checkpoint_loses_nothing(
        tmp_path):
    # Found by 100 kill -9 trials (benchmarks/chaos.py kill): a save wrote the file, the
    # server died before its journal recorded that save, and edits acknowledged during the
    # write were in the journal only. On restart the file looked changed by another program
    # and the merge mangled the session. Here the contents manager dies right after a write.
    root, journal = tmp_path / "root", tmp_path / "journal"
    root.mkdir()
    journal.mkdir()
    shutil.copy(EXAMPLE, root / "demo.py")
    config = tmp_path / "dying_save_config.py"
    config.write_text(DYING_SAVE_CONFIG)
    quiet = {"autosave_delay": 3600, "autosave_max_delay": 3600, "disk_poll_interval": 3600}
    server = ServerProcess(root, journal, quiet, extra_args=[f"--config={config}"])
    await asyncio.to_thread(server.start)
    try:
        client = await CollabClient.connect(server.url, "demo.py", token=server.token)
        cells = list(client.order)
        for n, cid in enumerate(cells[:3]):
            client.edit(cid, {"from": 0, "insert": f"# saved by the dying save {n}\n"})
        await client.flush()
        (root / ".die-after-next-save").touch()
        dying = asyncio.ensure_future(client.save())
        await asyncio.sleep(0.5)  # the save is writing
        for n, cid in enumerate(cells[:3]):
            client.edit(cid, {"from": 0, "insert": f"# typed during the write {n}\n"})
        await client.flush()  # acknowledged: in the journal, not in the file
        expected = {cid: client.text(cid) for cid in cells}
        await asyncio.to_thread(server.proc.wait, 30)
        await asyncio.gather(dying, return_exceptions=True)
        await client.close()
        assert "# saved by the dying save 2" in (root / "demo.py").read_text()
        (root / ".die-after-next-save").unlink()
        server = ServerProcess(root, journal, quiet, port=server.port, token=server.token)
        await asyncio.to_thread(server.start)
        again = await CollabClient.connect(server.url, "demo.py", token=server.token)
        assert {cid: again.text(cid) for cid in again.order} == expected
        await again.close()
    finally:
        server.kill()


DYING_SAVE_CONFIG = """
import asyncio, os, signal
from pathlib import Path
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

class DyingSaveManager(AsyncLargeFileManager):
    # While the marker exists: a slow save that kills the server (-9) once the file is written.
    async def save(self, model, path=""):
        if not (Path(self.root_dir) / ".die-after-next-save").exists():
            return await super().save(model, path)
        await asyncio.sleep(1.0)
        result = await super().save(model, path)
        os.kill(os.getpid(), signal.SIGKILL)
        return result

c.ServerApp.contents_manager_class = DyingSaveManager
"""
