"""File identity and saving under attack: aliases of one file, a program rewriting the file
during saves, a hostile journal directory, a notebook replaced by a directory."""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import random
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from websockets.asyncio.client import connect as ws_connect

from marimo_collab_ext.app import MarimoCollab
from marimo_collab_ext.client import CollabClient, CollabError, ws_url
from marimo_collab_ext.persistence.journal import journal_filename
from marimo_collab_ext.persistence.notebook_file import parse_notebook

from .servers import ServerProcess

EXAMPLE = Path(__file__).parent.parent / "examples" / "demo.py"

SLOW_AUTOSAVE = {"autosave_delay": 0.3, "disk_poll_interval": 0.3, "room_idle_timeout": 30}


async def converged(clients, timeout: float = 20) -> None:
    """Wait until every client holds the same cells and code (a deadline, not a timing test)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        views = [[(cid, c.text(cid)) for cid in c.order] for c in clients]
        if all(view == views[0] for view in views):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"clients never converged: {[len(v) for v in views]} cells")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("collab_settings", [SLOW_AUTOSAVE])
async def test_every_name_of_one_file_joins_one_room(connect, jp_root_dir, journal_dir):
    (jp_root_dir / "link.py").symlink_to("demo.py")
    os.link(jp_root_dir / "demo.py", jp_root_dir / "hard.py")
    clients = {name: await connect(name) for name in ("demo.py", "link.py", "hard.py")}
    for i in range(10):
        for name, client in clients.items():
            cell = client.order[1]
            client.edit(cell, {"from": 0, "insert": f"# {name} edit {i}\n"})
            await client.flush()  # acknowledged
    await converged(list(clients.values()))
    sessions = {c.session for c in clients.values()}
    assert len(sessions) == 1
    await clients["link.py"].save()
    text = (jp_root_dir / "demo.py").read_text()
    missing = [f"# {name} edit {i}" for name in clients for i in range(10)
               if f"# {name} edit {i}\n" not in text]
    assert not missing, f"{len(missing)} of 30 acknowledged edits are not in the file"
    # the symlink and the hard link still name the same file
    assert (jp_root_dir / "link.py").is_symlink()
    assert (jp_root_dir / "link.py").read_text() == text
    assert (jp_root_dir / "hard.py").read_text() == text
    assert (jp_root_dir / "hard.py").stat().st_ino == (jp_root_dir / "demo.py").stat().st_ino
    # one journal, under the key an older server used for a plain path (upgrades resume)
    assert (journal_dir / journal_filename(str(jp_root_dir / "demo.py"))).exists()
    assert not (journal_dir / journal_filename(str(jp_root_dir / "link.py"))).exists()


async def test_an_alias_still_needs_what_jupyter_allows_for_it(server, connect, jp_root_dir):
    await connect("demo.py")
    hidden = jp_root_dir / ".hidden"
    hidden.mkdir()
    (hidden / "link.py").symlink_to(jp_root_dir / "demo.py")
    async with ws_connect(ws_url(server["url"], ".hidden/link.py"), additional_headers={
            "Authorization": f"token {server['token']}"}) as ws:
        await ws.send(json.dumps({"type": "join", "id": 1, "peer_id": "p"}))
        reply = json.loads(await ws.recv())
    assert reply["error"]["code"] == "bad_request"  # Jupyter serves no hidden files


def _exchange(a: Path, b: Path) -> None:
    """Swap two names atomically (Linux renameat2 RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


def _add_marker(path: Path, n: int) -> None:
    """What a careful program does: read the notebook, add a cell, replace the file; if the
    replace displaced a newer file than it read (the server's save), redo its change on that.

    A careless one would overwrite the save with stale text: no server can undo that.
    """
    expected = path.read_bytes()
    cell = f"@app.cell\ndef _():\n    external_marker_{n} = {n}\n    return\n\n\n"
    main = b'if __name__ == "__main__":'
    new = expected.replace(main, cell.encode() + main)
    temp = path.with_name(f".{path.name}.ext")
    while True:
        temp.write_bytes(new)
        _exchange(temp, path)
        displaced = temp.read_bytes()
        temp.unlink()
        if displaced == expected:
            return
        expected, new = new, displaced.replace(main, cell.encode() + main)


@pytest.mark.parametrize("collab_settings", [{"autosave_delay": 0.05, "autosave_max_delay": 0.2,
                                              "disk_poll_interval": 0.5}])
async def test_external_rewrites_during_saves_are_never_lost(connect, jp_root_dir):
    path = jp_root_dir / "demo.py"
    typist = await connect()
    stop = threading.Event()
    written: list[int] = []

    def rewriter() -> None:
        rng = random.Random(7)
        n = 0
        while not stop.is_set() and n < 60:
            _add_marker(path, n)
            written.append(n)
            n += 1
            stop.wait(rng.uniform(0.1, 0.4))

    thread = threading.Thread(target=rewriter)
    thread.start()
    i = 0
    try:
        while thread.is_alive():  # a peer types all along, so autosaves keep racing the rewriter
            cell = typist.order[1]
            typist.edit(cell, {"from": 0, "insert": f"# typed {i}\n"})
            await typist.flush()
            i += 1
            await asyncio.sleep(0.03)
    finally:
        stop.set()
        thread.join()
    await typist.save()
    text = path.read_text()
    assert len(written) >= 50
    lost = [n for n in written if f"external_marker_{n} = {n}" not in text]
    assert not lost, f"{len(lost)} of {len(written)} external edits were lost: {lost}"
    typed = [k for k in range(i) if f"# typed {k}\n" not in text]
    assert not typed, f"{len(typed)} of {i} acknowledged edits are not in the file"
    parse_notebook(text)


async def test_a_notebook_replaced_by_a_directory_fails_its_saves_clearly(connect, jp_root_dir):
    a = await connect()
    a.edit(a.order[0], {"from": 0, "insert": "# unsaved\n"})
    await a.flush()
    path = jp_root_dir / "demo.py"
    path.unlink()
    path.mkdir()
    with pytest.raises(CollabError) as failed:
        await a.save()
    assert "directory" in str(failed.value)
    event = await a.next_event(lambda e: e["type"] == "save_failed", timeout=10)
    assert "demo.py" in event["message"] and "directory" in event["message"]


# ---- the journal directory ---------------------------------------------------------------

def test_default_journal_dir_is_private_state_not_shared_tmp(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert MarimoCollab().journal_dir == str(tmp_path / "state" / "marimo-collab" / "journal")
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert MarimoCollab().journal_dir == str(
        tmp_path / "home" / ".local" / "state" / "marimo-collab" / "journal")


async def test_a_journal_of_an_older_server_is_resumed_under_a_symlinked_root(tmp_path):
    """An older server keyed journals by root_dir/path as given; with a symlinked root the
    real path differs, and the older journal must still be found (upgrades keep edits)."""
    real, root, journal = tmp_path / "real", tmp_path / "root", tmp_path / "journal"
    real.mkdir()
    journal.mkdir()
    root.symlink_to(real)
    shutil.copy(EXAMPLE, real / "demo.py")
    slow = {"autosave_delay": 3600, "autosave_max_delay": 3600, "disk_poll_interval": 3600}
    server = ServerProcess(root, journal, slow).start()
    try:
        client = await CollabClient.connect(server.url, "demo.py", token=server.token)
        client.edit(client.order[1], {"from": 0, "insert": "# journaled only\n"})
        await client.flush()
        server.kill()
        await client.close()
        # what an older server left: the same journal under its key
        new, old = str(real / "demo.py"), str(root / "demo.py")
        for suffix in ("", "-wal", "-shm"):
            src = journal / (journal_filename(new) + suffix)
            if src.exists():
                src.rename(journal / (journal_filename(old) + suffix))
        with sqlite3.connect(journal / journal_filename(old)) as db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'room_key'", (old,))
        server = ServerProcess(root, journal, slow, port=server.port, token=server.token).start()
        again = await CollabClient.connect(server.url, "demo.py", token=server.token)
        assert again.text(again.order[1]).startswith("# journaled only\n")
        await again.close()
    finally:
        server.stop()


async def test_a_failing_check_before_the_save_is_a_clear_save_failed(connect, jp_root_dir):
    a = await connect()
    a.edit(a.order[0], {"from": 0, "insert": "# unsaved\n"})
    await a.flush()
    (jp_root_dir / "demo.py").write_bytes(b"\xff\xfe not UTF-8 \x80")
    with pytest.raises(CollabError) as failed:
        await a.save()
    assert "UTF-8" in str(failed.value)
    event = await a.next_event(lambda e: e["type"] == "save_failed", timeout=10)
    assert "demo.py" in event["message"] and "UTF-8" in event["message"]
    assert (jp_root_dir / "demo.py").read_bytes() == b"\xff\xfe not UTF-8 \x80"  # not replaced


class CustomSave(AsyncLargeFileManager):
    """A contents manager of its own (as jupytext's is): saves go through its API."""

    async def save(self, model, path=""):
        return await super().save(model, path)


@pytest.fixture
def contents_manager_class() -> str | None:
    return None


@pytest.fixture
def jp_server_config(jp_server_config, contents_manager_class):
    if contents_manager_class:
        jp_server_config["ServerApp"]["contents_manager_class"] = contents_manager_class
    return jp_server_config


@pytest.mark.parametrize("contents_manager_class", [None, f"{__name__}.CustomSave"])
@pytest.mark.parametrize("collab_settings", [{"disk_poll_interval": 3600,
                                              "autosave_delay": 3600}])
async def test_a_save_merges_a_change_the_poll_has_not_seen(connect, jp_root_dir,
                                                             contents_manager_class):
    a = await connect()
    a.edit(a.order[1], {"from": 0, "insert": "# typed\n"})
    await a.flush()
    _add_marker(jp_root_dir / "demo.py", 1)
    await a.save()
    text = (jp_root_dir / "demo.py").read_text()
    assert "external_marker_1 = 1" in text and "# typed\n" in text
    assert any(a.text(cid) == "external_marker_1 = 1" for cid in a.order)


@pytest.mark.parametrize("collab_settings", [{"autosave_delay": 3600, "autosave_max_delay": 3600,
                                              "disk_poll_interval": 0.2}])
async def test_a_program_writing_back_a_copy_read_before_a_save_loses_no_typed_edit(
        connect, jp_root_dir):
    # An editor buffer or a script read the file, the session saved edits, then the program
    # writes its copy back with a change of its own: the edits saved in between must stay.
    client = await connect()
    cell = client.order[1]
    client.edit(cell, {"from": 0, "insert": "# typed before the program read\n"})
    await client.flush()
    await client.save()
    stale = (jp_root_dir / "demo.py").read_text()
    client.edit(cell, {"from": 0, "insert": "# typed while the program held its copy\n"})
    await client.flush()
    await client.save()
    assert "# typed while the program held its copy" in (jp_root_dir / "demo.py").read_text()
    written = stale.replace("# typed before the program read\n",
                            "# typed before the program read\n    # the program's line\n", 1)
    assert written != stale
    (jp_root_dir / ".demo.py.tmp").write_text(written)
    os.replace(jp_root_dir / ".demo.py.tmp", jp_root_dir / "demo.py")
    await client.next_event(lambda e: e["type"] == "file_status" and e["status"] == "merged")
    await asyncio.sleep(0.2)  # the merge's own changes reach this client
    text = client.text(cell)
    assert "# the program's line" in text
    assert "# typed while the program held its copy" in text
    assert "# typed before the program read" in text
