"""Data-size limits (issue #14): cell config, edit history in bytes, journal checkpoints, a full
journal disk. Memory is measured on a real server in a subprocess (/proc/<pid>/status)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from marimo_collab_ext.cell_config import CONFIG_KEYS
from marimo_collab_ext.client import CollabClient
from marimo_collab_ext.client.client import CollabError, ws_url
from marimo_collab_ext.ot import ChangeSet, Update
from marimo_collab_ext.persistence.journal import Journal
from marimo_collab_ext.room.authority import CellAuthority

from .servers import ServerProcess

EXAMPLE = Path(__file__).parent.parent / "examples" / "demo.py"
MB = 1024 * 1024




def rss(server: ServerProcess) -> int:
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def journal_bytes(journal: Path) -> int:
    return sum(p.stat().st_size for p in journal.iterdir())


def journal_entries(journal: Path) -> int:
    (path,) = journal.glob("room-*.sqlite3")
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM entries").fetchone()[0]


async def refused(client: CollabClient, message: dict) -> dict:
    """The error of a request the server must refuse (with the response's other fields)."""
    with pytest.raises(CollabError) as caught:
        await client.request(message)
    response = caught.value.response
    return {**response["error"], "gone": response.get("gone", False)}


# ---- 1. cell config --------------------------------------------------------------------------


def test_config_keys_are_marimos():
    # A marimo upgrade that adds a cell config key must be added to cell_config.CONFIG_KEYS,
    # or the server would refuse what marimo's own editor writes.
    from marimo._ast.cell import CellConfig

    assert set(CellConfig().asdict()) == set(CONFIG_KEYS)


async def test_huge_cell_configs_are_refused_and_bounded(server_dirs):
    root, journal = server_dirs
    server = ServerProcess(root, journal, {"autosave_delay": 3600, "autosave_max_delay": 3600,
                                           "disk_poll_interval": 3600}).start()
    try:
        client = await CollabClient.connect(server.url, "demo.py", token=server.token)
        before = rss(server)
        big = "x" * 120_000
        for i in range(30):  # on main: all accepted, +785 MB and a 100 MB join answer
            config = {f"k{j}": big for j in range(32)}
            error = await refused(client, {"type": "cells", "ops": [
                {"op": "create", "cell_id": f"c{i}", "config": config}]})
            assert error["code"] == "bad_request" and "'k0'" in error["message"]
        # a known key with the wrong type is refused too, naming the key
        cid = client.order[0]
        error = await refused(client, {"type": "cells", "ops": [
            {"op": "config", "cell_id": cid, "config": {"hide_code": big}}]})
        assert error["code"] == "bad_request" and "hide_code" in error["message"]
        # what the JupyterLab extension sends (session.ts setCodeHidden) is taken
        await client.cells_ops([{"op": "config", "cell_id": cid,
                                 "config": {"hide_code": True, "column": 1}}])
        again = await CollabClient.connect(server.url, "demo.py", token=server.token)
        answer = len(json.dumps(again.join_response))
        grown = rss(server) - before
        await again.close()
        await client.close()
    finally:
        server.stop()
    assert grown < 50 * MB, f"server grew by {grown / MB:.0f} MB"
    assert journal_bytes(journal) < 5 * MB
    assert answer < 1 * MB


@pytest.fixture
def odd_notebook(jp_root_dir: Path) -> str:
    (jp_root_dir / "odd.py").write_text('''import marimo

app = marimo.App()


@app.cell(hide_code="yes", column=[1, 2], disabled=True)
def _():
    x = 1
    return


if __name__ == "__main__":
    app.run()
''')
    return "odd.py"


async def test_file_with_odd_config_loads_with_marimos_types(server, odd_notebook, jp_root_dir):
    # marimo reads any literal into a cell's config and writes `hide_code=yes` back (broken
    # Python); the session keeps only the typed keys, and saves a valid file
    client = await CollabClient.connect(server["url"], odd_notebook, token=server["token"])
    try:
        (cid,) = client.order
        assert client.cells[cid].config == {"disabled": True}
        client.edit(cid, {"from": 0, "insert": "# edited\n"})
        await client.flush()
        await client.save()
        text = (jp_root_dir / odd_notebook).read_text()
        assert "@app.cell(disabled=True)" in text and "yes" not in text
    finally:
        await client.close()


@pytest.fixture
def collab_settings(request) -> dict:
    return getattr(request, "param", {})


@pytest.mark.parametrize("collab_settings", [{"max_notebook_units": 3000}], indirect=True)
async def test_cell_names_count_in_the_notebook_size(connect):
    client = await connect()
    size = sum(len(client.text(cid)) for cid in client.order)
    assert size < 3000
    name = "n" * 190
    error = None
    for i in range(40):  # 40 names of 190 units: 7,600 units of names alone
        try:
            await client.cells_ops([{"op": "create", "name": f"{name}{i}", "code": ""}])
        except CollabError as exc:
            error = exc
            break
    assert error is not None and error.code == "too_large"


# ---- 2. edit history in bytes ----------------------------------------------------------------


def test_authority_history_is_bounded_in_units():
    auth = CellAuthority("", max_history=1000, max_history_units=1000)
    for _ in range(5):
        version = auth.version
        auth.push(version, [Update(ChangeSet.of([{"from": 0, "insert": "x" * 400}], 0), "a")])
        auth.push(auth.version, [Update(ChangeSet.of([{"from": 0, "to": 400}], 400), "a")])
    assert auth.history_units <= 1000
    assert auth.since(auth.oldest_version)  # the recent pushes are kept
    from marimo_collab_ext.room.errors import Stale

    with pytest.raises(Stale) as caught:
        auth.since(0)
    assert caught.value.gone


async def test_history_of_large_deleted_inserts_is_bounded(server_dirs):
    root, journal = server_dirs
    server = ServerProcess(root, journal, {"autosave_delay": 3600, "autosave_max_delay": 3600,
                                           "disk_poll_interval": 3600}).start()
    try:
        client = await CollabClient.connect(server.url, "demo.py", token=server.token)
        late = await CollabClient.connect(server.url, "demo.py", token=server.token)
        cid = client.order[0]
        start_version = client.cells[cid].doc.version
        length = len(client.text(cid))
        before = rss(server)
        chunk = "y" * 900_000
        for _ in range(60):  # on main: every inserted text stays in the history (+54 MB)
            version = (await client.request({
                "type": "change", "document_id": cid, "version": start_version,
                "updates": [{"clientID": "attacker",
                             "changes": [[0, chunk], length] if length else [[0, chunk]]}]}
            ))["version"]
            start_version = (await client.request({
                "type": "change", "document_id": cid, "version": version,
                "updates": [{"clientID": "attacker", "changes": [[900_000], length]
                             if length else [[900_000]]}]}))["version"]
        grown = rss(server) - before
        assert grown < 30 * MB, f"server grew by {grown / MB:.0f} MB"
        # a peer that fell behind all that is told the history is gone, and re-joins
        error = await refused(late, {"type": "pull", "document_id": cid, "version": 0})
        assert error["code"] == "stale" and error["gone"]
        await client.close()
        await late.close()
    finally:
        server.stop()


@pytest.mark.parametrize("collab_settings", [{"max_room_history_units": 12_000}],
                         indirect=True)
async def test_room_history_bound_drops_the_oldest_first(connect):
    client = await connect()
    first, second = client.order[:2]
    old = {cid: client.cells[cid].doc.version for cid in (first, second)}
    for cid in (first, second):  # the first cell's history is the older one
        for _ in range(8):
            client.edit(cid, {"from": 0, "insert": "z" * 1000})
            await client.flush()
    error = await refused(client, {"type": "pull", "document_id": first, "version": old[first]})
    assert error["code"] == "stale" and error["gone"]
    pulled = await client.request({"type": "pull", "document_id": second,
                                   "version": old[second]})
    assert len(pulled["changes"]) == 8


# ---- 3. checkpoints without saves ------------------------------------------------------------


async def test_unsaved_session_journal_stays_short_and_recovers(server_dirs):
    root, journal = server_dirs
    settings = {"autosave_delay": 0.2, "disk_poll_interval": 0.2,
                "journal_checkpoint_entries": 50}
    server = ServerProcess(root, journal, settings).start()
    try:
        client = await CollabClient.connect(server.url, "demo.py", token=server.token)
        session = client.session
        (root / "demo.py").unlink()  # no save can happen: only the journal keeps the edits
        await client.next_event(lambda e: e.get("type") == "file_status"
                                and e.get("status") == "missing", timeout=30)
        cells = list(client.order)
        for i in range(400):  # on main: 400 entries, all replayed at every restart
            client.edit(cells[i % len(cells)], {"from": 0, "insert": f"#{i}\n"})
            await client.flush()
        expected = {cid: client.text(cid) for cid in cells}
        entries = journal_entries(journal)
        server.kill()
        await client.close()
        # a room opens only with its file (a missing file is refused, as before): back as it was
        shutil.copy(EXAMPLE, root / "demo.py")
        server = ServerProcess(root, journal, settings, port=server.port,
                               token=server.token).start()
        again = await CollabClient.connect(server.url, "demo.py", token=server.token)
        assert again.session == session
        assert {cid: again.text(cid) for cid in again.order} == expected
        await again.close()
    finally:
        server.stop()
    assert entries <= 50


# ---- 4. a full journal disk ------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path):
    # A real full disk: a 2 MB tmpfs (the tests run as root here). Without mount rights, run
    # the server under `prlimit --fsize` instead; this machine can mount, so that is not done.
    path = tmp_path / "tinydisk"
    path.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(path)],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


@pytest.fixture
def journal_dir(request, tmp_path: Path) -> Path:
    """The in-process server's journal: on the tiny disk for the tests that ask for it."""
    if "tiny_disk" in request.fixturenames:
        return request.getfixturevalue("tiny_disk") / "journal"
    path = tmp_path / "journal"
    path.mkdir()
    return path


async def test_join_with_a_full_journal_disk_says_so(server, notebook, tiny_disk, journal_dir):
    journal_dir.mkdir(mode=0o700, exist_ok=True)  # the server prepares it at start
    fill(tiny_disk)
    client = CollabClient(ws_url(server["url"], notebook),
                          {"Authorization": f"token {server['token']}"})
    try:
        with pytest.raises(CollabError) as caught:
            await client.open()
    finally:
        await client.close()
    error = caught.value.response["error"]
    assert error["code"] == "internal" and error["message"] == (
        f"the journal disk is full at {journal_dir}: free space or set c.MarimoCollab.journal_dir")


async def test_edit_with_a_full_journal_disk_loses_no_acknowledged_edit(
        server, notebook, tiny_disk, journal_dir):
    journal_dir.mkdir(mode=0o700, exist_ok=True)  # the server prepares it at start
    client = await CollabClient.connect(server["url"], notebook, token=server["token"])
    other = await CollabClient.connect(server["url"], notebook, token=server["token"])
    cid = client.order[0]
    client.edit(cid, {"from": 0, "insert": "# kept\n"})
    await client.flush()
    kept = client.text(cid)
    filler = fill(tiny_disk)
    version = client.cells[cid].doc.version
    error = await refused(client, {"type": "change", "document_id": cid, "version": version,
                                   "updates": [{"clientID": "c", "changes": [
                                       [0, "w" * 300_000], len(kept)]}]})
    assert error["code"] == "internal" and error["message"] == (
        f"the journal disk is full at {journal_dir}: free space or set c.MarimoCollab.journal_dir")
    await other.wait_closed()
    assert other.ws.close_code == 1011 and "journal disk full" in other.ws.close_reason
    filler.unlink()
    again = await CollabClient.connect(server["url"], notebook, token=server["token"])
    assert again.text(cid) == kept  # the acknowledged edit, not the refused one
    await again.close()
    await client.close()
    await other.close()


async def test_journal_of_an_older_server_with_any_config_still_loads(
        server, connect, notebook, journal_dir):
    # journals written before configs were typed may hold any scalar key: they must replay
    client = await connect()
    cid = client.order[0]
    manager = server["app"].web_app.settings["marimo_collab"].room_manager
    room_key = manager.rooms[notebook].journal.room_key
    await client.close()
    await manager.free(notebook)  # saved and unloaded; the next join replays the journal
    assert notebook not in manager.rooms
    journal = Journal.open(journal_dir, room_key)
    journal.append("cells", {"ops": [{"op": "config", "cell_id": cid,
                                      "config": {"foo": "x" * 100, "hide_code": True}}]}, None)
    journal.close()
    again = await connect()
    assert again.cells[cid].config == {"hide_code": True}


@pytest.mark.parametrize("collab_settings", [{
    "journal_checkpoint_bytes": 4000, "autosave_delay": 3600, "autosave_max_delay": 3600}],
    indirect=True)
async def test_journal_checkpoints_by_bytes_too(server, connect, notebook):
    client = await connect()
    cid = client.order[0]
    journal = server["app"].web_app.settings["marimo_collab"].room_manager.rooms[notebook].journal
    for i in range(100):  # ~250 bytes per entry; no save in between
        client.edit(cid, {"from": 0, "insert": f"# {i:03} " + "b" * 100 + "\n"})
        await client.flush()
    assert len(journal.load().entries) < 30  # on main: 100, until a save
    assert journal.pending_bytes < 4000


async def test_disk_change_with_odd_config_merges(server, connect, notebook, jp_root_dir):
    # another program writes configs marimo would keep as anything: the merge takes the
    # typed ones and the session stays up
    client = await connect()
    path = jp_root_dir / notebook
    text = path.read_text()
    first = text.index("@app.cell")
    path.write_text(text[:first] + '@app.cell(hide_code="yes", column=2)\n'
                    + text[text.index("\n", first) + 1:])
    await client.next_event(lambda e: e.get("type") == "file_status"
                            and e.get("status") == "merged")
    configs = [client.cells[cid].config for cid in client.order]
    assert {"column": 2} in configs and not any("hide_code" in c for c in configs)
