"""Crash journal of a room: every acknowledged edit is on disk before it is acknowledged.

One SQLite file per room (WAL mode). Payloads are opaque JSON: the room owns their meaning.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Authorship",
    "EditRecord",
    "Journal",
    "JournalEntry",
    "JournalState",
    "PendingEntry",
    "is_disk_full",
    "journal_problem",
]

LOG = logging.getLogger(__name__)
FORMAT = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    username TEXT,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS authorship (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    epoch TEXT NOT NULL,
    cell_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    username TEXT,
    at REAL NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS authorship_cell ON authorship (cell_id, version);
CREATE TABLE IF NOT EXISTS edits (
    id INTEGER PRIMARY KEY,
    version_after INTEGER NOT NULL,
    undo TEXT NOT NULL,
    suggested_by TEXT,
    bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS structure_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    epoch TEXT NOT NULL,
    at REAL NOT NULL,
    before TEXT NOT NULL,
    bytes INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class JournalEntry:
    """One journaled record, in the order it was acknowledged.

    `seq` grows across the life of the file; `at` is a Unix time in seconds.
    """

    seq: int
    kind: str
    payload: dict[str, Any]
    username: str | None
    at: float


@dataclass(frozen=True)
class JournalState:
    """What a restarted server replays: the last snapshot, then the entries after it.

    `epoch` is the session epoch the snapshot and entries belong to.
    """

    epoch: str
    snapshot: dict[str, Any]
    entries: list[JournalEntry]


@dataclass(frozen=True)
class PendingEntry:
    """An entry to append; `cell_id`/`version`/`size` also record authorship.

    `size` is the update's size in UTF-16 units, as the room measures it.
    """

    kind: str
    payload: dict[str, Any]
    username: str | None = None
    cell_id: str | None = None
    version: int | None = None
    size: int = 0
    edit: dict[str, Any] | None = None  # version_after, undo, suggested_by (cell history)
    structure: dict[str, Any] | None = None  # the structure before a `cells` batch


@dataclass(frozen=True)
class Authorship:
    """Who made a cell's update `version`, when, and how big it was.

    Kept when entries are compacted, so history with authorship can be shown later.
    """

    epoch: str
    cell_id: str
    version: int
    username: str | None
    at: float
    size: int


@dataclass(frozen=True)
class EditRecord:
    """An authorship record with what the edit did: `undo` turns the cell's text at
    `version_after` back into its text at `version` (ChangeSet JSON; None once the
    history budget dropped it)."""

    version: int
    version_after: int | None
    username: str | None
    at: float
    undo: list | None
    suggested_by: str | None


class Journal:
    """The crash journal of one room (one notebook), stored in one SQLite file.

    Thread-safe; each call is one transaction, committed before it returns.
    """

    def __init__(self, path: Path, room_key: str, fsync: bool, edit_budget: int = 0) -> None:
        self.path = path
        self.room_key = room_key
        self._fsync = fsync
        self.edit_budget = edit_budget  # bytes of kept edits (cell history); 0: keep none
        # their current totals per table, read on first use
        self._kept_bytes: dict[str, int] = {}
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        # Entries, and bytes of their payloads, since the last snapshot: what a restart
        # replays, so the room checkpoints when they grow (journal_checkpoint_*).
        self.pending_entries = 0
        self.pending_bytes = 0
        self._connect()

    @classmethod
    def open(cls, directory: Path, room_key: str, *, fsync: bool = False,
             edit_budget: int = 0) -> Journal:
        """Open (creating if needed) the journal of `room_key` in `directory`.

        fsync=False survives a kill of the process; fsync=True also a power loss.
        """
        directory = Path(directory)
        cls.prepare_directory(directory)
        return cls(directory / journal_filename(room_key), room_key, fsync, edit_budget)

    @staticmethod
    def prepare_directory(directory: Path) -> None:
        """Create the journal directory private (0700), or refuse one that is not.

        Raises PermissionError naming the directory when it is a symlink, another user's,
        or writable by others (who could plant or swap journal files in it).
        """
        directory = Path(directory)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _check_private(directory)

    def load(self) -> JournalState | None:
        """The journaled state to replay, or None when there is none to trust.

        A corrupt file is moved aside (never deleted), logged, and replaced by an empty one.
        """
        try:
            with self._locked() as conn:
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                if "epoch" not in meta:
                    return None
                if meta.get("room_key") != self.room_key:
                    LOG.warning("journal %s belongs to another room; ignoring it", self.path)
                    return None
                rows = conn.execute(
                    "SELECT seq, kind, payload, username, at FROM entries ORDER BY seq"
                ).fetchall()
                entries = [
                    JournalEntry(seq, kind, json.loads(payload), username, at)
                    for seq, kind, payload, username, at in rows
                ]
                self.pending_entries = len(rows)
                self.pending_bytes = sum(len(row[2]) for row in rows)
                return JournalState(meta["epoch"], json.loads(meta["snapshot"]), entries)
        except (sqlite3.DatabaseError, ValueError, KeyError) as exc:
            if not _is_corruption(exc):
                raise
            self._quarantine(exc)
            return None

    def start(self, epoch: str, snapshot: dict[str, Any]) -> None:
        """Begin a new epoch from `snapshot`, dropping every earlier entry.

        Authorship records are kept: they are the history across epochs.
        """
        data = _dumps(snapshot)
        with self._transaction() as conn:
            conn.execute("DELETE FROM entries")
            _set_meta(
                conn,
                epoch=epoch,
                snapshot=data,
                room_key=self.room_key,
                format=FORMAT,
            )
        self.pending_entries = self.pending_bytes = 0

    def append(
        self,
        kind: str,
        payload: dict[str, Any],
        username: str | None,
        *,
        cell_id: str | None = None,
        version: int | None = None,
        size: int = 0,
        edit: dict[str, Any] | None = None,
        structure: dict[str, Any] | None = None,
    ) -> int:
        """Journal one entry; it is durable when this returns its sequence number.

        With `cell_id` and `version` the update's authorship is recorded too, and with
        `edit` what it did, for the cell's history, and with `structure` the notebook's
        structure before a `cells` batch (each within `edit_budget` bytes).
        """
        pending = PendingEntry(kind, payload, username, cell_id, version, size, edit, structure)
        return self.append_many([pending])[0]

    def append_many(self, pending: Iterable[PendingEntry]) -> list[int]:
        """Journal several entries in one commit (group commit), in order.

        All are durable when this returns their sequence numbers, or none is written.
        """
        now = time.time()
        rows = [(p, _dumps(p.payload)) for p in pending]
        seqs: list[int] = []
        with self._transaction() as conn:
            epoch = _epoch(conn)
            for p, data in rows:
                cursor = conn.execute(
                    "INSERT INTO entries (kind, payload, username, at) VALUES (?, ?, ?, ?)",
                    (p.kind, data, p.username, now),
                )
                seqs.append(int(cursor.lastrowid or 0))
                if p.structure is not None and self.edit_budget > 0:
                    before = _dumps(p.structure)
                    conn.execute("INSERT INTO structure_log (epoch, at, before, bytes)"
                                 " VALUES (?, ?, ?, ?)", (epoch, now, before, len(before)))
                    self._prune(conn, "structure_log", len(before))
                if p.cell_id is not None and p.version is not None:
                    cursor = conn.execute(
                        "INSERT INTO authorship (epoch, cell_id, version, username, at, size)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (epoch, p.cell_id, p.version, p.username, now, p.size),
                    )
                    if p.edit is not None and self.edit_budget > 0:
                        self._keep_edit(conn, int(cursor.lastrowid or 0), p.edit)
        self.pending_entries += len(rows)
        self.pending_bytes += sum(len(data) for _, data in rows)
        return seqs

    def _keep_edit(self, conn: sqlite3.Connection, row: int, edit: dict[str, Any]) -> None:
        undo = _dumps(edit["undo"])
        conn.execute(
            "INSERT INTO edits (id, version_after, undo, suggested_by, bytes)"
            " VALUES (?, ?, ?, ?, ?)",
            (row, edit["version_after"], undo, edit.get("suggested_by"), len(undo)))
        self._prune(conn, "edits", len(undo))

    def _prune(self, conn: sqlite3.Connection, table: str, added: int) -> None:
        """Count `added` bytes into `table`; over budget, drop its oldest rows down to three
        quarters of it (so this is not done per edit). `structure_log` notes what it dropped."""
        total = self._kept_bytes.get(table)
        if total is None:
            total = conn.execute(f"SELECT COALESCE(SUM(bytes), 0) FROM {table}").fetchone()[0]
        else:
            total += added
        self._kept_bytes[table] = total
        if total <= self.edit_budget:
            return
        excess, cut = total - self.edit_budget * 3 // 4, None
        for rowid, nbytes in conn.execute(f"SELECT id, bytes FROM {table} ORDER BY id"):
            excess -= nbytes
            total -= nbytes
            cut = rowid
            if excess <= 0:
                break
        if table == "structure_log":
            dropped = conn.execute("SELECT MAX(at) FROM structure_log WHERE id <= ?",
                                   (cut,)).fetchone()[0]
            _set_meta(conn, structure_gone_until=repr(dropped))
        conn.execute(f"DELETE FROM {table} WHERE id <= ?", (cut,))
        self._kept_bytes[table] = total

    def checkpoint(self, snapshot: dict[str, Any], upto: int | None = None) -> None:
        """Store `snapshot` (e.g. after a save) and drop the entries it covers.

        `upto` is the last seq the snapshot includes; None means every entry so far.
        """
        data = _dumps(snapshot)
        with self._transaction() as conn:
            _epoch(conn)
            if upto is None:
                conn.execute("DELETE FROM entries")
            else:
                conn.execute("DELETE FROM entries WHERE seq <= ?", (upto,))
            _set_meta(conn, snapshot=data)
            left = conn.execute("SELECT count(*), total(length(payload)) FROM entries").fetchone()
        self.pending_entries, self.pending_bytes = int(left[0]), int(left[1])
        with self._locked() as conn:
            # Give the freed pages back so a long session's file stays small.
            conn.execute("PRAGMA incremental_vacuum")

    def authorship(
        self,
        cell_id: str | None = None,
        *,
        epoch: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[Authorship]:
        """Who made which update when, oldest first, optionally for one cell or epoch.

        `limit` keeps the most recent records.
        """
        where, args = [], []
        for clause, value in (("cell_id = ?", cell_id), ("epoch = ?", epoch), ("at >= ?", since)):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = "SELECT epoch, cell_id, version, username, at, size FROM authorship"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._locked() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [Authorship(*row) for row in reversed(rows)]

    def edits(self, cell_id: str, epoch: str, limit: int | None,
              after: float | None = None) -> list[EditRecord]:
        """A cell's newest `limit` authorship records with what each did, newest first;
        only those made after the time `after`, if given."""
        sql = ("SELECT a.version, e.version_after, a.username, a.at, e.undo, e.suggested_by"
               " FROM authorship a LEFT JOIN edits e ON e.id = a.id"
               " WHERE a.cell_id = ? AND a.epoch = ?")
        args: list[Any] = [cell_id, epoch]
        if after is not None:
            sql += " AND a.at > ?"
            args.append(after)
        sql += " ORDER BY a.id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._locked() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [EditRecord(v, after, user, at, json.loads(undo) if undo else None, by)
                for v, after, user, at, undo, by in rows]

    def structures_after(self, epoch: str, at: float) -> tuple[list[dict[str, Any]], bool]:
        """The structures before each `cells` batch made after the time `at`, oldest first,
        and whether that is all of them (False: older ones were dropped past `at`)."""
        with self._locked() as conn:
            rows = conn.execute("SELECT before FROM structure_log WHERE epoch = ? AND at > ?"
                                " ORDER BY id", (epoch, at)).fetchall()
            gone = conn.execute("SELECT value FROM meta WHERE key = 'structure_gone_until'"
                                ).fetchone()
        complete = gone is None or gone[0] == "None" or float(gone[0]) <= at
        return [json.loads(row[0]) for row in rows], complete

    def close(self) -> None:
        """Close the file; the journal stays on disk for the next start.

        Safe to call twice.
        """
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def delete(self) -> None:
        """Close and remove the journal (the room's state is safely in the file).

        Only for a clean shutdown after a successful save.
        """
        self.close()
        for path in _companions(self.path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _connect(self) -> None:
        try:
            self._conn = self._open_connection()
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise
            self._quarantine(exc)

    def _open_connection(self) -> sqlite3.Connection:
        if self.path.is_symlink():
            raise PermissionError(f"journal {self.path} is a symlink; refusing to follow it")
        if not self.path.exists():
            # Create it private before SQLite does; its WAL and shm inherit the mode.
            flags = os.O_CREAT | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0)
            os.close(os.open(self.path, flags, 0o600))
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            # Setting up an empty file holds no edits: without syncs it takes about 1 ms
            # instead of 20-30 (three fsyncs), and a torn setup fails quick_check next time.
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("PRAGMA journal_mode = WAL")
            check = conn.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                raise _Corrupt(f"quick_check: {check}")
            conn.executescript(_SCHEMA)
            # NORMAL in WAL mode: a commit is in the OS once written, so it survives
            # a killed process; FULL also fsyncs, to survive a power loss.
            conn.execute(f"PRAGMA synchronous = {'FULL' if self._fsync else 'NORMAL'}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _quarantine(self, exc: BaseException) -> None:
        # Never delete what may be a user's only copy of their edits: move it aside.
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            moved = []
            for path in _companions(self.path):
                if path.exists():
                    target = path.with_name(f"{path.name}.corrupt-{stamp}-{os.getpid()}")
                    path.replace(target)
                    moved.append(str(target))
            LOG.error("journal %s is unreadable (%s); moved aside to %s", self.path, exc, moved)
            self._conn = self._open_connection()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise RuntimeError(f"journal {self.path} is closed")
            yield self._conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._locked() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                self._kept_bytes.clear()  # recount: kept history may have been rolled back
                raise
            conn.execute("COMMIT")


class _Corrupt(sqlite3.DatabaseError):
    pass


def _is_corruption(exc: BaseException) -> bool:
    # A locked or unwritable file is not corrupt: moving it aside would hide good data.
    if isinstance(exc, (_Corrupt, ValueError, KeyError)):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return not isinstance(exc, sqlite3.OperationalError)
    return code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def is_disk_full(exc: BaseException) -> bool:
    """Whether a journal write failed because its disk (or a file size limit) is full."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == sqlite3.SQLITE_FULL:
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def journal_problem(exc: BaseException, directory) -> str:
    """What to tell people when the journal cannot be written (docs/protocol.md)."""
    if is_disk_full(exc):
        return (f"the journal disk is full at {directory}: free space or set"
                " c.MarimoCollab.journal_dir")
    return f"the session journal could not be written: {exc}"


def journal_filename(room_key: str) -> str:
    """The journal's file name for a room: a hash, so any path is a safe name.

    Two rooms never share a file unless their keys are equal.
    """
    digest = hashlib.sha256(room_key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"room-{digest[:40]}.sqlite3"


def _check_private(directory: Path) -> None:
    # Journals hold notebook code: the directory must be ours and not writable by others.
    info = directory.lstat()
    problem = None
    if stat.S_ISLNK(info.st_mode):
        problem = "it is a symlink"
    elif hasattr(os, "getuid") and info.st_uid != os.getuid():
        problem = "it belongs to another user"
    elif info.st_mode & 0o022:
        problem = "other users can write to it"
    if problem is not None:
        raise PermissionError(errno.EACCES, problem, str(directory))


def _companions(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def _dumps(value: dict[str, Any]) -> str:
    # ASCII-only JSON carries lone surrogates (a split emoji) safely through SQLite.
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def _epoch(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
    if row is None:
        raise RuntimeError("journal has no epoch yet: call start() first")
    return str(row[0])


def _set_meta(conn: sqlite3.Connection, **values: str) -> None:
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        list(values.items()),
    )
