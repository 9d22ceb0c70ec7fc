"""The crash journal: acknowledged edits survive a kill, compaction, corruption.

Each room has its own file; a damaged file is moved aside, never deleted.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from marimo_collab_ext.persistence.journal import (
    Journal,
    PendingEntry,
    _is_corruption,
    journal_filename,
)

ROOT = Path(__file__).resolve().parents[1]

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from marimo_collab_ext.persistence.journal import Journal

    journal = Journal.open(Path(sys.argv[1]), "notebooks/a.py", fsync=sys.argv[2] == "1")
    journal.start("epoch-1", {"cells": ["c1"]})
    print("started", flush=True)
    i = 0
    while True:
        seq = journal.append("change", {"i": i, "text": "😀" * (i % 5)}, "alice",
                             cell_id="c1", version=i + 1, size=2)
        # Acknowledged only now that append() returned.
        print(seq, i, flush=True)
        i += 1
    """
)


@pytest.mark.parametrize("fsync", [False, True])
def test_acknowledged_edit_survives_kill(tmp_path, fsync):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), "1" if fsync else "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    acked = []
    for _ in range(300):
        seq, i = proc.stdout.readline().split()
        acked.append((int(seq), int(i)))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    journal = Journal.open(tmp_path, "notebooks/a.py")
    state = journal.load()
    assert state is not None
    assert state.epoch == "epoch-1"
    assert state.snapshot == {"cells": ["c1"]}
    got = [(e.seq, e.payload["i"]) for e in state.entries]
    assert got[: len(acked)] == acked  # every acknowledged entry, in order
    assert [e.payload["i"] for e in state.entries] == list(range(len(state.entries)))
    assert state.entries[3].payload["text"] == "😀" * 3
    assert all(e.username == "alice" for e in state.entries)
    assert len(journal.authorship("c1")) >= len(acked)
    journal.close()


def test_checkpoint_compacts_entries_but_keeps_authorship(tmp_path):
    journal = Journal.open(tmp_path, "nb.py")
    journal.start("e1", {"v": 0})
    seqs = [
        journal.append("change", {"n": n}, "bob", cell_id="c", version=n + 1, size=1)
        for n in range(10)
    ]
    journal.checkpoint({"v": 6}, upto=seqs[5])
    state = journal.load()
    assert state is not None
    assert state.snapshot == {"v": 6}
    assert [e.payload["n"] for e in state.entries] == [6, 7, 8, 9]
    journal.checkpoint({"v": 10})
    state = journal.load()
    assert state is not None and state.entries == [] and state.snapshot == {"v": 10}
    history = journal.authorship("c")
    assert [a.version for a in history] == list(range(1, 11))
    assert {a.username for a in history} == {"bob"}
    assert [a.version for a in journal.authorship("c", limit=3)] == [8, 9, 10]
    journal.close()


def test_new_epoch_replaces_entries(tmp_path):
    journal = Journal.open(tmp_path, "nb.py")
    journal.start("e1", {"a": 1})
    journal.append("change", {"x": 1}, None, cell_id="c", version=1)
    journal.start("e2", {"a": 2})
    state = journal.load()
    assert state is not None
    assert (state.epoch, state.snapshot, state.entries) == ("e2", {"a": 2}, [])
    assert [a.epoch for a in journal.authorship()] == ["e1"]
    journal.close()


def test_group_commit_is_ordered_and_atomic(tmp_path):
    journal = Journal.open(tmp_path, "nb.py")
    journal.start("e1", {})
    seqs = journal.append_many(
        [PendingEntry("change", {"k": k}, "carol", cell_id="c", version=k) for k in range(5)]
    )
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    with pytest.raises(ValueError):
        journal.append_many(
            [PendingEntry("change", {"ok": 1}), PendingEntry("change", {"bad": float("nan")})]
        )
    state = journal.load()
    assert state is not None
    assert [e.payload for e in state.entries] == [{"k": k} for k in range(5)]
    journal.close()


def test_append_before_start_is_refused(tmp_path):
    journal = Journal.open(tmp_path, "nb.py")
    assert journal.load() is None
    with pytest.raises(RuntimeError):
        journal.append("change", {}, None)
    journal.close()


def test_lone_surrogates_survive_the_journal(tmp_path):
    journal = Journal.open(tmp_path, "nb.py")
    journal.start("e1", {"text": "a\ud83d"})
    journal.append("change", {"insert": "\ude00b"}, "dave")
    journal.close()
    state = Journal.open(tmp_path, "nb.py").load()
    assert state is not None
    assert state.snapshot == {"text": "a\ud83d"}
    assert state.entries[0].payload == {"insert": "\ude00b"}


def test_garbage_file_is_moved_aside_not_deleted(tmp_path, caplog):
    path = tmp_path / journal_filename("nb.py")
    path.write_bytes(b"this is not sqlite at all" * 100)
    journal = Journal.open(tmp_path, "nb.py")
    assert journal.load() is None
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1
    assert aside[0].read_bytes().startswith(b"this is not sqlite")
    assert "unreadable" in caplog.text
    journal.start("e1", {})  # and the journal works again
    journal.append("change", {"n": 1}, None)
    assert len(journal.load().entries) == 1
    journal.close()


def test_truncated_file_is_moved_aside(tmp_path):
    journal = Journal.open(tmp_path, "nb.py")
    journal.start("e1", {"big": "x" * 50_000})
    for n in range(200):
        journal.append("change", {"n": n, "pad": "y" * 500}, None)
    journal.close()
    path = tmp_path / journal_filename("nb.py")
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 3)
    journal = Journal.open(tmp_path, "nb.py")
    assert journal.load() is None
    assert any(".corrupt-" in p.name for p in tmp_path.iterdir())
    journal.close()


def test_corrupt_payload_is_moved_aside(tmp_path):
    journal = Journal.open(tmp_path, "nb.py")
    journal.start("e1", {})
    journal.append("change", {"n": 1}, None)
    journal.close()
    path = tmp_path / journal_filename("nb.py")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE entries SET payload = '{not json'")
    conn.close()
    journal = Journal.open(tmp_path, "nb.py")
    assert journal.load() is None
    assert any(".corrupt-" in p.name for p in tmp_path.iterdir())
    journal.close()


def test_two_rooms_do_not_collide(tmp_path):
    a = Journal.open(tmp_path, "dir/a.py")
    b = Journal.open(tmp_path, "dir/b.py")
    weird = Journal.open(tmp_path, "../../etc/passwd 😀\x00")
    assert len({a.path, b.path, weird.path}) == 3
    assert all(j.path.parent == tmp_path for j in (a, b, weird))
    a.start("ea", {"room": "a"})
    b.start("eb", {"room": "b"})
    a.append("change", {"to": "a"}, None)
    state_a, state_b = a.load(), b.load()
    assert state_a is not None and state_b is not None
    assert (state_a.epoch, len(state_a.entries)) == ("ea", 1)
    assert (state_b.epoch, len(state_b.entries)) == ("eb", 0)
    assert weird.load() is None
    for j in (a, b, weird):
        j.close()


def test_journal_file_is_private_and_delete_removes_it(tmp_path):
    journal = Journal.open(tmp_path / "j", "nb.py")
    journal.start("e1", {})
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "j").stat().st_mode) == 0o700
    journal.delete()
    assert list((tmp_path / "j").iterdir()) == []


def test_shared_or_foreign_directory_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(PermissionError):
        Journal.open(shared, "nb.py")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    with pytest.raises(PermissionError):
        Journal.open(link, "nb.py")


def test_symlinked_journal_file_is_refused(tmp_path):
    target = tmp_path / "victim"
    target.write_text("precious")
    (tmp_path / "j").mkdir(mode=0o700)
    (tmp_path / "j" / journal_filename("nb.py")).symlink_to(target)
    with pytest.raises(PermissionError):
        Journal.open(tmp_path / "j", "nb.py")
    assert target.read_text() == "precious"


def test_a_locked_file_is_an_error_not_corruption():
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = sqlite3.SQLITE_BUSY
    assert not _is_corruption(locked)
    corrupt = sqlite3.DatabaseError("database disk image is malformed")
    corrupt.sqlite_errorcode = sqlite3.SQLITE_CORRUPT
    assert _is_corruption(corrupt)


def test_structure_log_says_when_what_it_needs_was_dropped(tmp_path):
    journal = Journal.open(tmp_path, "nb.py", edit_budget=200)
    journal.start("e", {})
    first = time.time()
    time.sleep(0.01)
    for n in range(20):
        journal.append("cells", {}, "eddie", structure={"order": [f"c{n}"], "meta": {},
                                                          "deleted": {}})
    structures, complete = journal.structures_after("e", first)
    assert not complete and 0 < len(structures) < 20
    assert structures[-1]["order"] == ["c19"]
    later, complete = journal.structures_after("e", time.time())
    assert later == [] and complete
    journal.close()
