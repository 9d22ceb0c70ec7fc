"""A Room: the live session of one notebook file (docs/protocol.md is the contract)."""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import json
import logging
import time
import uuid
from dataclasses import dataclass

from ..cell_config import clean_config
from ..ot import ChangeSet, Update
from ..ot.text import utf16_len
from ..persistence.journal import Journal, is_disk_full, journal_problem
from ..persistence.notebook_file import (
    CellData,
    NotebookData,
    content_hash,
    parse_notebook,
    saved_codes,
)
from .authority import CellAuthority
from .errors import BadRequest, Internal, ProtocolError, TooLarge, UnknownCell
from .presence import Peer, Presence
from .structure import CellMeta, NotebookStructure, new_cell_id
from .wire import SERVER_CLIENT_ID, parse_updates, updates_from_json, updates_to_json

log = logging.getLogger(__name__)


def normalize_newlines(text: str) -> str:
    """CodeMirror counts \r\n, \r and \n as one break and stores "\n": so does the server."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def encode(message: dict) -> str:
    """One wire frame. ASCII-escaped: a peer may have split a surrogate pair (DESIGN.md)."""
    return json.dumps(message, ensure_ascii=True, separators=(",", ":"))


@dataclass
class LiveCell:
    cell_id: str
    authority: CellAuthority
    meta: CellMeta


class Room:
    """Cells (one authority each), structure, presence; journal before every acknowledgement."""

    def __init__(self, path: str, settings, journal: Journal, notebook: NotebookData,
                 saved_text: str) -> None:
        self.path = path
        self.settings = settings
        self.journal = journal
        self.notebook = notebook  # options and header of the file; cells live in `authorities`
        self.saved_text = saved_text  # what the file held at the last load / save / disk merge
        # At the last load / save / merge: the typed code per cell (to tell if the session is
        # dirty), and the cells as the file holds them in marimo's normal form (merge base).
        self.saved_cells: dict[str, str] = {}
        self.saved_order: list[str] = []
        self.saved_base: list[tuple[str | None, CellData]] = []
        self.epoch = uuid.uuid4().hex
        self.structure = NotebookStructure([])
        self.authorities: dict[str, CellAuthority] = {}
        self.presence = Presence()
        self.listeners: list = []  # callables(event: str) for saving / kernel / manager hooks
        self.saver = self.watcher = self.kernel = None  # attached by the RoomManager
        self.broken: str | None = None
        self.total_units = 0  # cell sources, names and configs (max_notebook_units)
        self.history_units = 0  # weight of every cell's history (max_room_history_units)
        self._stamp = 0  # orders pushes across cells, so the oldest history goes first
        # journal growth (entries, payload bytes) that makes the next checkpoint due
        self._checkpoint_due = (settings.journal_checkpoint_entries,
                                settings.journal_checkpoint_bytes)
        # The last "saving" entry not yet followed by a checkpoint: after a restart it tells
        # the server's own save from another program's change.
        self.pending_save: dict | None = None
        # Cursors are relayed at most every `cursor_interval`, the latest of each peer only.
        self._cursors_moved: set[str] = set()
        self._cursors_sent_at = float("-inf")
        self._cursor_timer: asyncio.TimerHandle | None = None

    # ---- loading -------------------------------------------------------------------------

    def start_fresh(self) -> None:
        """A new epoch from the file: new ids, versions from 0 (protocol: "Identity of cells")."""
        cells = []
        for cell in self.notebook.cells:
            cell_id = new_cell_id(self.authorities)
            self.authorities[cell_id] = self._new_authority(normalize_newlines(cell.code))
            cells.append((cell_id, CellMeta(cell.name, dict(cell.config))))
        self.structure = NotebookStructure(cells)
        self._mark_saved(self.saved_text)
        self.journal.start(self.epoch, self.snapshot_state())
        self._recount()

    def restore(self, state) -> None:
        """Resume an epoch from the journal: snapshot, then every acknowledged entry in order."""
        snap = state.snapshot
        self.epoch = state.epoch
        if snap["saved_text"] != self.saved_text:  # usually the file it was just parsed from
            self.notebook = parse_notebook(snap["saved_text"])
        self.saved_text = snap["saved_text"]
        self.saved_order = list(snap["saved_order"])
        self.saved_cells = dict(snap["saved_cells"])
        # configs as marimo types them: journals older than that check may hold anything
        self.saved_base = [(c["id"], CellData(c["code"], c["name"], _clean(c["config"])))
                           for c in snap["saved_base"]]
        self.pending_save = snap.get("pending_save")
        cells = []
        for cell in snap["cells"]:
            self.authorities[cell["id"]] = self._new_authority(cell["code"], cell["version"])
            cells.append((cell["id"], CellMeta(cell["name"], _clean(cell["config"]))))
        self.structure = NotebookStructure(cells, snap["structure_version"])
        for entry in state.entries:
            payload = entry.payload
            if entry.kind == "push":
                authority = self.authorities[payload["cell_id"]]
                self._stamp += 1
                authority.push(payload["version"], updates_from_json(payload["updates"]),
                               self._stamp)
            elif entry.kind == "cells":
                ops = [{**op, "config": _clean(op["config"])} if "config" in op else op
                       for op in payload["ops"]]
                _, created, deleted = self.structure.apply(ops, 10**9)
                self._apply_created_deleted(created, deleted)
            elif entry.kind == "saving":
                self.pending_save = payload
        self._recount()
        self._bound_history()

    def snapshot_state(self) -> dict:
        """The whole session as the journal stores it at a checkpoint."""
        return {
            "structure_version": self.structure.version,
            "cells": [
                {"id": cid, "name": self.structure.meta[cid].name,
                 "config": self.structure.meta[cid].config,
                 "code": self.authorities[cid].doc, "version": self.authorities[cid].version}
                for cid in self.structure.order
            ],
            "saved_text": self.saved_text,
            "saved_order": self.saved_order,
            "saved_cells": self.saved_cells,
            "saved_base": [{"id": cid, "code": c.code, "name": c.name, "config": c.config}
                           for cid, c in self.saved_base],
            "pending_save": self.pending_save,
        }

    def _mark_saved(self, text: str) -> None:
        self.saved_text = text
        self.saved_order = list(self.structure.order)
        self.saved_cells = {cid: self.authorities[cid].doc for cid in self.saved_order}
        self.saved_base = list(zip(self.saved_order, self.cell_data(), strict=True))

    def _recount(self) -> None:
        self.total_units = sum(a.length for a in self.authorities.values()) + sum(
            _meta_units(m) for m in self.structure.meta.values())
        self.history_units = sum(a.history_units for a in self.authorities.values())

    def _new_authority(self, code: str, version: int = 0) -> CellAuthority:
        return CellAuthority(code, version, self.settings.max_history,
                             self.settings.max_history_units)

    def _bound_history(self) -> None:
        """Keep every cell's history together within max_room_history_units.

        Over the bound, the oldest pushes of the whole room go first, down to 90% of it, so
        this runs once per tenth of the bound, not on every push.
        """
        limit = self.settings.max_room_history_units
        if self.history_units <= limit:
            return
        target = limit * 9 // 10
        oldest = [(a.oldest_stamp, cid) for cid, a in self.authorities.items()
                  if a.oldest_stamp is not None]
        heapq.heapify(oldest)
        while self.history_units > target and oldest:
            _, cid = heapq.heappop(oldest)
            authority = self.authorities[cid]
            before = authority.history_units
            authority.drop_oldest()
            self.history_units -= before - authority.history_units
            if authority.oldest_stamp is not None:
                heapq.heappush(oldest, (authority.oldest_stamp, cid))

    # ---- the notebook as data -------------------------------------------------------------

    def cell_data(self) -> list[CellData]:
        """The live cells, in order, as the file format needs them."""
        return [
            CellData(code=self.authorities[cid].doc, name=self.structure.meta[cid].name,
                     config=dict(self.structure.meta[cid].config))
            for cid in self.structure.order
        ]

    def is_dirty(self) -> bool:
        """Whether the session differs from what the file held at the last save."""
        if self.structure.order != self.saved_order:
            return True
        return any(self.authorities[c].doc != self.saved_cells.get(c) for c in self.saved_order)

    def describe_cells(self, versions: dict | None = None) -> list[dict]:
        """Cells for `join`: whole documents, or missed pushes where the client can catch up."""
        out = []
        for cid in self.structure.order:
            authority, meta = self.authorities[cid], self.structure.meta[cid]
            cell = {"id": cid, "name": meta.name, "config": meta.config,
                    "version": authority.version}
            known = versions.get(cid) if versions else None
            if isinstance(known, int) and not isinstance(known, bool):
                try:
                    cell["changes"] = self._pull_entries(authority, known)
                    cell["from_version"] = known
                except ProtocolError:
                    cell["code"] = authority.doc
            else:
                cell["code"] = authority.doc
            out.append(cell)
        return out

    # ---- peers --------------------------------------------------------------------------

    def add_peer(self, peer: Peer) -> None:
        replaced = self.presence.add(peer)
        if replaced is not None and replaced.connection is not peer.connection:
            replaced.connection.close(4000, "replaced by a newer connection of the same peer")
        self.broadcast({"type": "presence", "event": "join", "peer": peer.describe()},
                       exclude=peer.peer_id)
        self._notify("peers")

    def remove_peer(self, peer_id: str, connection) -> None:
        peer = self.presence.remove(peer_id, connection)
        if peer is not None:
            self.broadcast({"type": "presence", "event": "leave", "peer": peer.describe()})
            self._notify("peers")

    def set_role(self, peer: Peer, role: str) -> None:
        """Announce a changed role (permissions re-check)."""
        if peer.role != role:
            peer.role = role
            self.broadcast({"type": "presence", "event": "update", "peer": peer.describe()})

    def broadcast(self, message: dict, exclude: str | None = None) -> None:
        text = encode(message).encode()  # one copy for every peer, also while queued
        for peer in list(self.presence.peers.values()):
            if peer.peer_id != exclude:
                peer.connection.send(text)

    def _notify(self, event: str) -> None:
        for listener in list(self.listeners):
            listener(event)

    # ---- editing ------------------------------------------------------------------------

    def authority(self, cell_id: object) -> CellAuthority:
        if not isinstance(cell_id, str):
            raise BadRequest("`document_id` must be a cell id string")
        authority = self.authorities.get(cell_id)
        if authority is None:
            raise UnknownCell(f"no cell {cell_id}", cell_id=cell_id)
        return authority

    def change(self, peer: Peer, cell_id: object, version: object, raw_updates: object) -> int:
        """A `change` request: validate, rebase push by push, journal, broadcast; new version."""
        authority = self.authority(cell_id)
        version = self._check_version(version)
        length = self._length_at(authority, version)
        updates = parse_updates(raw_updates, length)
        if updates:
            growth = updates[-1].changes.new_length - length + authority.length - length
            if authority.length + max(growth, 0) > self.settings.max_cell_units:
                raise TooLarge(f"a cell may hold at most {self.settings.max_cell_units} units")
            if self.total_units + max(growth, 0) > self.settings.max_notebook_units:
                raise TooLarge(
                    f"a notebook may hold at most {self.settings.max_notebook_units} units")
        return self.accept_push(cell_id, authority, version, updates, peer.user.get("username"),
                                peer.peer_id)

    def accept_push(self, cell_id: str, authority: CellAuthority, version: int,
                    updates: list[Update], username: str | None, peer_id: str) -> int:
        """Apply through the authority; journal; broadcast before the sender's `ok`."""
        before, history_before = authority.length, authority.history_units
        self._stamp += 1
        result = authority.push(version, updates, self._stamp)
        self.history_units += authority.history_units - history_before
        self._bound_history()
        if result.accepted:
            payload = {"cell_id": cell_id, "version": result.version_before,
                       "updates": updates_to_json(result.accepted)}
            self._journal("push", payload, username, cell_id=cell_id,
                          version=result.version_before,
                          size=sum(u.changes.new_length for u in result.accepted))
            self.total_units += authority.length - before
            self.broadcast({"type": "change", "document_id": cell_id,
                            "version": result.version_before, "updates": payload["updates"],
                            "peer_id": peer_id})
            self._notify("edited")
        return authority.version

    def server_change(self, cell_id: str, changes: ChangeSet) -> None:
        """A change the server makes itself (disk merge), with clientID "server"."""
        authority = self.authorities[cell_id]
        if not changes.empty:
            self.accept_push(cell_id, authority, authority.version,
                             [Update(changes, SERVER_CLIENT_ID)], None, SERVER_CLIENT_ID)

    def pull(self, cell_id: object, version: object) -> list[dict]:
        authority = self.authority(cell_id)
        return self._pull_entries(authority, self._check_version(version))

    def history(self, cell_id: object, since: object, limit: object) -> list[dict]:
        """Who made this session's accepted pushes, and when: the newest `limit`, oldest first.

        From the journal's authorship records, which outlive compaction (protocol "History").
        """
        if cell_id is not None and (not isinstance(cell_id, str) or len(cell_id) > 128):
            raise BadRequest("`cell_id` must be a cell id")
        if since is not None:
            try:
                if isinstance(since, bool) or not isinstance(since, (int, float)):
                    raise TypeError
                since = float(since)  # SQLite takes no integer beyond 64 bits
            except (TypeError, OverflowError):
                raise BadRequest("`since` must be a Unix time in seconds") from None
        most = self.settings.history_limit
        if limit is None:
            limit = most
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise BadRequest("`limit` must be a positive integer")
        records = self.journal.authorship(cell_id, epoch=self.epoch, since=since,
                                          limit=min(limit, most))
        return [{"cell_id": r.cell_id, "version": r.version, "username": r.username, "at": r.at}
                for r in records]

    @staticmethod
    def _pull_entries(authority: CellAuthority, version: int) -> list[dict]:
        return [{"version": push.version, "updates": updates_to_json(push.updates)}
                for push in authority.since(version)]

    @staticmethod
    def _check_version(version: object) -> int:
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise BadRequest("`version` must be a non-negative integer")
        return version

    @staticmethod
    def _length_at(authority: CellAuthority, version: int) -> int:
        pushes = authority.since(version)  # raises for versions ahead, off-boundary or gone
        return pushes[0].updates[0].changes.length if pushes else authority.length

    # ---- structure ----------------------------------------------------------------------

    def cells(self, peer: Peer | None, ops: object) -> tuple[int, list[str]]:
        """A `cells` request: ops by cell id, all or nothing; (structure version, created ids)."""
        before = (list(self.structure.order), dict(self.structure.meta), self.structure.version)
        applied, created, deleted = self.structure.apply(ops, self.settings.max_cells)
        sizes = [utf16_len(normalize_newlines(c.code)) for c in created]
        total = sum(sizes) + sum(_meta_units(m) for m in self.structure.meta.values()) + sum(
            a.length for cid, a in self.authorities.items() if cid not in deleted)
        # names and configs count too, so a batch cannot grow the journal and `join` unbounded
        if any(n > self.settings.max_cell_units for n in sizes) or (
            total > self.settings.max_notebook_units and total > self.total_units
        ):
            self.structure.order, self.structure.meta, self.structure.version = before
            raise TooLarge("the new cells exceed the cell or notebook size limit")
        self._apply_created_deleted(created, deleted)
        username = peer.user.get("username") if peer else None
        self._journal("cells", {"ops": applied}, username)
        self.presence.forget_cursors_in(deleted)
        self.broadcast({"type": "cells", "structure_version": self.structure.version,
                        "ops": applied, "peer_id": peer.peer_id if peer else SERVER_CLIENT_ID})
        self._notify("structure")
        return self.structure.version, [c.cell_id for c in created]

    def _apply_created_deleted(self, created, deleted) -> None:
        for cell in created:
            self.authorities[cell.cell_id] = self._new_authority(normalize_newlines(cell.code))
        for cell_id in deleted:
            self.authorities.pop(cell_id, None)
        self._recount()

    # ---- presence messages --------------------------------------------------------------

    def cursor(self, peer: Peer, message: dict) -> None:
        """Store and relay a cursor; MEP 6's {cell, line, column} form is converted."""
        if "cell" in message:
            cell_id = message.get("cell")
            authority = self.authority(cell_id)
            anchor = head = _offset_of(authority.doc, message.get("line"), message.get("column"))
            version = authority.version
        else:
            cell_id = message.get("document_id")
            authority = self.authority(cell_id)
            version, anchor, head = (message.get(k) for k in ("version", "anchor", "head"))
            for value in (version, anchor, head):
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise BadRequest("cursor `version`, `anchor` and `head` must be integers ≥ 0")
            # peers draw this cursor: a position past the document would break their editors
            if max(anchor, head) > self._length_at(authority, version):
                raise BadRequest("cursor position is past the end of the cell")
        peer.cursor = {"document_id": cell_id, "version": version, "anchor": anchor,
                       "head": head}
        self._cursors_moved.add(peer.peer_id)
        if self._cursor_timer is None:
            wait = self._cursors_sent_at + self.settings.cursor_interval - time.monotonic()
            if wait <= 0:
                self._relay_cursors()
            else:
                self._cursor_timer = asyncio.get_running_loop().call_later(
                    wait, self._relay_cursors)

    def _relay_cursors(self) -> None:
        """Relay the cursors moved since the last relay (a joiner gets them all in `join`)."""
        self._cursor_timer = None
        self._cursors_sent_at = time.monotonic()
        moved, self._cursors_moved = self._cursors_moved, set()
        for peer_id in moved:
            peer = self.presence.peers.get(peer_id)
            if peer is not None and peer.cursor is not None:
                self.broadcast({"type": "cursor", "peer_id": peer_id, **peer.cursor},
                               exclude=peer_id)

    # ---- durability ---------------------------------------------------------------------

    def _journal(self, kind: str, payload: dict, username: str | None, **authorship) -> None:
        try:
            self.journal.append(kind, payload, username, **authorship)
        except Exception as exc:  # the edit is applied but not durable: stop taking edits
            log.exception("journal write failed for %s", self.path)
            # Not acknowledged, so nothing acknowledged is lost: the room reloads from the
            # journal, which holds every edit answered `ok`.
            self.broken = journal_problem(exc, self.journal.path.parent)
            reason = "journal disk full" if is_disk_full(exc) else "server journal failure"
            peers = list(self.presence.peers.values())
            # after this request's error answer, which says why, has gone out
            asyncio.get_running_loop().call_soon(
                lambda: [p.connection.close(1011, f"{reason}; reconnect to resync")
                         for p in peers])
            self._notify("broken")
            raise Internal(self.broken) from None
        journal, (entries, size) = self.journal, self._checkpoint_due
        if journal.pending_entries >= entries or journal.pending_bytes >= size:
            self._checkpoint_quietly()

    def _checkpoint_quietly(self) -> None:
        # A long session that cannot save (file gone, saves failing) still replays only the
        # entries since the last checkpoint on restart. The entry just appended is durable:
        # a failed checkpoint (disk full) keeps the entries and is tried again later.
        try:
            self.checkpoint()
        except Exception:
            log.warning("journal checkpoint of %s failed; its entries stay", self.path,
                        exc_info=True)
            self._checkpoint_due = (
                self.journal.pending_entries + self.settings.journal_checkpoint_entries,
                self.journal.pending_bytes + self.settings.journal_checkpoint_bytes)

    def note_saving(self, digest: str, order: list[str], written: NotebookData) -> None:
        """Journal a save about to write the file, so a restart knows that file as its own."""
        self.pending_save = {"hash": digest, "order": list(order), "cells": [
            {"code": c.code, "name": c.name, "config": c.config} for c in written.cells]}
        self._journal("saving", self.pending_save, None)

    def adopt_own_save(self, text: str) -> bool:
        """After a restart: whether the file is the server's own save that died before its
        checkpoint (then it is marked saved, not merged as another program's change)."""
        save = self.pending_save
        if save is None or content_hash(text) != save["hash"]:
            return False
        # the cells as the session held them: the file may hold fewer (marimo drops an empty
        # setup cell), and mark_saved maps them onto the file itself
        written = dataclasses.replace(parse_notebook(text), cells=[
            CellData(c["code"], c["name"], dict(c["config"])) for c in save["cells"]])
        self.mark_saved(text, written, save["order"])
        return True

    def checkpoint(self) -> None:
        """After a save, and every journal_checkpoint_entries entries: the journal restarts
        from the current state."""
        self.journal.checkpoint(self.snapshot_state())
        self._checkpoint_due = (self.settings.journal_checkpoint_entries,
                                self.settings.journal_checkpoint_bytes)

    def mark_saved(self, text: str, written: NotebookData, order: list[str]) -> None:
        """The file now holds `text`, written from `written` (cells in `order`).

        Edits may have arrived since: they stay unsaved.
        """
        self.saved_text, self.saved_order = text, list(order)
        self.saved_cells = {cid: cell.code for cid, cell in zip(order, written.cells, strict=True)}
        in_file = saved_codes(written, text)
        self.saved_base = [(cid, CellData(code, cell.name, dict(cell.config)))
                           for cid, cell, code in zip(order, written.cells, in_file, strict=True)]
        self.pending_save = None
        self.checkpoint()

    def mark_merged(self, text: str, disk: NotebookData, disk_ids: list[str | None]) -> None:
        """The file was changed by another program to `text`, now merged into the session.

        A `None` id is a file cell the session had deleted: it stays in the merge base only.
        """
        self.saved_text = text
        self.saved_base = list(zip(disk_ids, disk.cells, strict=True))
        self.saved_order = [cid for cid in disk_ids if cid is not None]
        self.saved_cells = {cid: cell.code for cid, cell in self.saved_base if cid is not None}
        self.notebook = dataclasses.replace(disk, cells=[])  # the file's app options and header
        self.checkpoint()


def _meta_units(meta: CellMeta) -> int:
    return utf16_len(meta.name) + len(encode(meta.config))


def _clean(config: dict) -> dict:
    return clean_config(config)[0]


def _offset_of(doc: str, line: object, column: object) -> int:
    """UTF-16 offset of a 1-based line and 0-based UTF-16 column, clamped to the line."""
    if not isinstance(line, int) or not isinstance(column, int) or line < 1 or column < 0:
        raise BadRequest("cursor `line` (from 1) and `column` (from 0) must be integers")
    lines = doc.split("\n")  # documents hold "\n" only: see normalize_newlines
    offset = 0
    for index, text in enumerate(lines):
        if index == line - 1:
            return offset + min(column, utf16_len(text))
        offset += utf16_len(text) + 1
    raise BadRequest(f"line {line} is past the end of the cell")

