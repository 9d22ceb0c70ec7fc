"""A Room: the live session of one notebook file (docs/protocol.md is the contract)."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import heapq
import json
import logging
import time
import uuid
from dataclasses import dataclass

from ..cell_config import clean_config
from ..ot import ChangeSet, Update
from ..ot.text import utf16_len, utf16_slice
from ..persistence.journal import Journal, is_disk_full, journal_problem
from ..persistence.notebook_file import (
    CellData,
    NotebookData,
    content_hash,
    parse_notebook,
    saved_codes,
)
from ..persistence.text_diff import diff_changes
from .authority import CellAuthority
from .cell_history import blame, history_window
from .errors import BadRequest, Internal, ProtocolError, Stale, TooLarge, UnknownCell
from .presence import Peer, Presence
from .structure import CellMeta, NotebookStructure, check_name, new_cell_id
from .suggestions import Suggestion, Suggestions, map_range
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
        # What the file held before the last few saves and merges, and a save a killed server
        # may or may not have written: a program that read the file before a save and writes
        # it back after started from one of these (disk_watch.closest_base).
        self.earlier_bases: collections.deque = collections.deque(maxlen=4)
        self.epoch = uuid.uuid4().hex
        self.structure = NotebookStructure([])
        self.authorities: dict[str, CellAuthority] = {}
        self.presence = Presence()
        self.suggestions = Suggestions()
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
        self._cursors_moved: dict[str, None] = {}  # an ordered set: who waits longest goes first
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
        for data in snap.get("suggestions", []):
            self.suggestions.add(Suggestion.from_json(data))
        for entry in state.entries:
            payload = entry.payload
            if entry.kind == "push":
                authority = self.authorities[payload["cell_id"]]
                self._stamp += 1
                result = authority.push(payload["version"], updates_from_json(payload["updates"]),
                                        self._stamp)
                if result.accepted:
                    self.suggestions.map_through(payload["cell_id"], _composed(result.accepted))
            elif entry.kind == "cells":
                ops = [{**op, "config": _clean(op["config"])} if "config" in op else op
                       for op in payload["ops"]]
                _, created, deleted = self.structure.apply(ops, 10**9)
                self._apply_created_deleted(created, deleted)
            elif entry.kind == "saving":
                self.pending_save = payload
            elif entry.kind == "suggestion" and payload["op"] == "create":
                self.suggestions.add(Suggestion.from_json(payload["suggestion"]))
            elif entry.kind == "suggestion":
                self.suggestions.pop(payload["id"])
        if self.pending_save is not None:  # killed during that save: written or not, unknown
            self.earlier_bases.append([
                (cid, CellData(c["code"], c["name"], _clean(c["config"])))
                for cid, c in zip(self.pending_save["order"], self.pending_save["cells"],
                                  strict=True)])
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
            "suggestions": [s.to_json() for s in self.suggestions.pending.values()],
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
            self._check_growth(authority, updates[-1].changes.new_length - length
                               + authority.length - length)
        return self.accept_push(cell_id, authority, version, updates, peer.user.get("username"),
                                peer.peer_id)

    def _check_growth(self, authority: CellAuthority, growth: int) -> None:
        if authority.length + max(growth, 0) > self.settings.max_cell_units:
            raise TooLarge(f"a cell may hold at most {self.settings.max_cell_units} units")
        if self.total_units + max(growth, 0) > self.settings.max_notebook_units:
            raise TooLarge(
                f"a notebook may hold at most {self.settings.max_notebook_units} units")

    def accept_push(self, cell_id: str, authority: CellAuthority, version: int,
                    updates: list[Update], username: str | None, peer_id: str,
                    suggested_by: str | None = None) -> int:
        """Apply through the authority; journal; broadcast before the sender's `ok`."""
        before, doc_before = authority.length, authority.doc
        history_before = authority.history_units
        self._stamp += 1
        result = authority.push(version, updates, self._stamp)
        self.history_units += authority.history_units - history_before
        self._bound_history()
        if result.accepted:
            payload = {"cell_id": cell_id, "version": result.version_before,
                       "updates": updates_to_json(result.accepted)}
            changes = _composed(result.accepted)
            # what the cell history needs to step back from this push (protocol "History")
            edit = {"version_after": result.version_after, "suggested_by": suggested_by,
                    "undo": changes.invert(doc_before).to_json()}
            self._journal("push", payload, username, cell_id=cell_id,
                          version=result.version_before,
                          size=sum(u.changes.new_length for u in result.accepted), edit=edit)
            self.total_units += authority.length - before
            self.broadcast({"type": "change", "document_id": cell_id,
                            "version": result.version_before, "updates": payload["updates"],
                            "peer_id": peer_id})
            for outdated in self.suggestions.map_through(cell_id, changes):
                self._suggestion_event("outdated", outdated, peer_id)
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
        records = self.journal.authorship(cell_id, epoch=self.epoch, since=since,
                                          limit=self._history_limit(limit))
        return [{"cell_id": r.cell_id, "version": r.version, "username": r.username, "at": r.at}
                for r in records]

    async def cell_history(self, cell_id: object, limit: object, version: object) -> dict:
        """`cell_history`: a live cell's versions within the kept window, newest `limit`,
        oldest first, each with who, when and a diff; with `version`, that version's code."""
        authority = self.authority(cell_id)
        limit = self._history_limit(limit)
        if version is not None:
            version = self._check_version(version)
            if version > authority.version:
                raise BadRequest(f"version {version} is ahead of the cell's ({authority.version})")
        records = self.journal.edits(cell_id, self.epoch, limit)
        # stepping back a big cell's pushes takes a while: not on the loop every room shares
        answer = await asyncio.to_thread(history_window, authority.doc, authority.version,
                                         records, self.settings.max_message_bytes // 2,
                                         version)
        if version is not None and "code" not in answer:
            raise Stale(f"version {version} is outside the kept history"
                        f" (from {answer['oldest_version']})", gone=True)
        return {"cell_id": cell_id, **answer}

    async def blame(self, cell_id: object) -> dict:
        """`blame`: who last wrote each line of a live cell (null: before the kept history)."""
        authority = self.authority(cell_id)
        records = self.journal.edits(cell_id, self.epoch, self.settings.history_limit)
        version = authority.version
        owners = await asyncio.to_thread(blame, authority.doc, version, records)
        return {"cell_id": cell_id, "version": version,
                "lines": [{"username": r.username, "at": r.at, "version": r.version,
                           "suggested_by": r.suggested_by} if r else None for r in owners]}

    async def restore_notebook(self, peer: Peer, at: object) -> dict:
        """`restore_notebook`: make the notebook what it was at the time `at`, as the
        peer's own edits: one `cells` batch, then a change per cell whose text differs."""
        try:
            if isinstance(at, bool) or not isinstance(at, (int, float)):
                raise TypeError
            at = float(at)
        except (TypeError, OverflowError):
            raise BadRequest("`at` must be a Unix time in seconds") from None
        structures, complete = self.journal.structures_after(self.epoch, at)
        if not complete:
            raise Stale("the notebook's structure at that time is no longer kept", gone=True)
        deleted: dict[str, dict] = {}
        for entry in structures:
            deleted.update(entry["deleted"])
        if structures:
            order = structures[0]["order"]
            meta = {c: CellMeta(n, dict(cfg)) for c, (n, cfg) in structures[0]["meta"].items()}
        else:
            order, meta = list(self.structure.order), dict(self.structure.meta)
        chains = {}
        for cell_id in order:
            live = self.authorities.get(cell_id)
            doc, version = ((live.doc, live.version) if live is not None else
                            (deleted[cell_id]["code"], deleted[cell_id]["version"]))
            chains[cell_id] = (doc, version, self.journal.edits(cell_id, self.epoch, None,
                                                                after=at))
        codes = await asyncio.to_thread(_texts_at, chains)  # big cells take a while
        gone = [cell_id for cell_id, code in codes.items() if code is None]
        if gone:
            raise Stale(f"the text of cell {gone[0]} at that time is no longer kept", gone=True)
        # the notebook as it is now (edits may have arrived meanwhile) -> as it was
        ops: list[dict] = [{"op": "delete", "cell_id": c} for c in self.structure.order
                           if c not in meta]
        previous, placed = None, [c for c in self.structure.order if c in meta]
        for index, cell_id in enumerate(order):
            if cell_id in self.authorities:
                if index >= len(placed) or placed[index] != cell_id:
                    ops.append({"op": "move", "cell_id": cell_id, "after": previous})
                    placed.remove(cell_id)
                    placed.insert(index, cell_id)
                now = self.structure.meta[cell_id]
                if now.name != meta[cell_id].name:
                    ops.append({"op": "rename", "cell_id": cell_id, "name": meta[cell_id].name})
                if now.config != meta[cell_id].config:
                    ops.append({"op": "config", "cell_id": cell_id,
                                "config": meta[cell_id].config})
            else:  # deleted since: back under a new id (ids are never reused)
                new_id = new_cell_id(set(self.authorities) | set(deleted))
                ops.append({"op": "create", "cell_id": new_id, "after": previous,
                            "code": codes.pop(cell_id), "name": meta[cell_id].name,
                            "config": meta[cell_id].config})
                placed.insert(index, new_id)
                cell_id = new_id
            previous = cell_id
        for start in range(0, len(ops), 1000):  # a `cells` batch holds at most 1,000 ops
            self.cells(peer, ops[start:start + 1000])
        client_id = f"restore-{uuid.uuid4().hex[:12]}"
        for cell_id, code in codes.items():
            authority = self.authorities[cell_id]
            if authority.doc != code:
                changes = diff_changes(authority.doc, code)
                self._check_growth(authority, changes.new_length - changes.length)
                self.accept_push(cell_id, authority, authority.version,
                                 [Update(changes, client_id)], peer.user.get("username"),
                                 peer.peer_id)
        return {"structure_version": self.structure.version}

    def _history_limit(self, limit: object) -> int:
        most = self.settings.history_limit
        if limit is None:
            return most
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise BadRequest("`limit` must be a positive integer")
        return min(limit, most)

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
        # the structure before, and deleted cells' last text: for restoring the notebook
        log = {"order": before[0], "meta": {c: [m.name, m.config] for c, m in before[1].items()},
               "deleted": {c: {"code": self.authorities[c].doc,
                               "version": self.authorities[c].version} for c in deleted}}
        outdated = self._apply_created_deleted(created, deleted)
        username = peer.user.get("username") if peer else None
        self._journal("cells", {"ops": applied}, username, structure=log)
        self.presence.forget_cursors_in(deleted)
        actor = peer.peer_id if peer else SERVER_CLIENT_ID
        self.broadcast({"type": "cells", "structure_version": self.structure.version,
                        "ops": applied, "peer_id": actor})
        for suggestion in outdated:
            self._suggestion_event("outdated", suggestion, actor)
        self._notify("structure")
        return self.structure.version, [c.cell_id for c in created]

    def _apply_created_deleted(self, created, deleted) -> list[Suggestion]:
        for cell in created:
            self.authorities[cell.cell_id] = self._new_authority(normalize_newlines(cell.code))
        for cell_id in deleted:
            self.authorities.pop(cell_id, None)
        self._recount()
        return self.suggestions.drop_cells(deleted)

    # ---- suggestions (protocol "Suggestions") ------------------------------------------------

    def suggest(self, peer: Peer, message: dict) -> dict:
        """A `suggest` request: store a proposed edit or cell for an editor to accept."""
        if len(self.suggestions) >= self.settings.max_suggestions:
            raise TooLarge(f"a notebook holds at most {self.settings.max_suggestions} pending"
                           " suggestions; accept or reject some first")
        insert = message.get("insert")
        if not isinstance(insert, str):
            raise BadRequest("`insert` must be a string")
        insert = normalize_newlines(insert)
        units = utf16_len(insert)
        if units > self.settings.max_suggestion_units:
            raise TooLarge(f"a suggestion may hold at most {self.settings.max_suggestion_units}"
                           " units")
        user = peer.user
        author = {"peer_id": peer.peer_id, "username": user.get("username"),
                  "display_name": user.get("display_name"), "agent": bool(user.get("agent"))}
        suggestion = Suggestion(self.suggestions.new_id(), "edit", insert, author, time.time(),
                                units=units)
        kind = message.get("kind", "edit")
        if kind == "cell":
            after = message.get("after")
            if after is not None and after not in self.structure:
                raise UnknownCell(f"no cell {after}", cell_id=after)
            name = check_name(message.get("name", "_"))
            suggestion.kind, suggestion.after, suggestion.name = "cell", after, name
        elif kind == "edit":
            cell_id = message.get("cell_id")
            authority = self.authority(cell_id)
            version = self._check_version(message.get("version"))
            start, end = message.get("from"), message.get("to", message.get("from"))
            for value in (start, end):
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise BadRequest("`from` and `to` must be integers ≥ 0")
            if not start <= end <= self._length_at(authority, version):
                raise BadRequest("the range must satisfy from ≤ to ≤ the cell's length")
            moved = (start, end)
            for push in authority.since(version):  # made at an older version: bring it here
                moved = suggestion_range(push, moved)
                if moved is None:
                    raise Stale("the text this suggestion replaces changed meanwhile")
            if start == end and not insert:
                raise BadRequest("a suggestion must change something")
            suggestion.cell_id, (suggestion.start, suggestion.end) = cell_id, moved
            suggestion.replaced = utf16_slice(authority.doc, *moved)
        else:
            raise BadRequest("`kind` must be edit or cell")
        self._journal("suggestion", {"op": "create", "suggestion": suggestion.to_json()},
                      user.get("username"))
        self.suggestions.add(suggestion)
        self._suggestion_event("created", suggestion, peer.peer_id)
        return suggestion.to_wire()

    def resolve_suggestion(self, peer: Peer, sid: object, accept: bool) -> dict:
        """`accept_suggestion` / `reject_suggestion`: accepting is an edit by the accepter."""
        if not isinstance(sid, str):
            raise BadRequest("`suggestion_id` must be a string")
        suggestion = self.suggestions.pending.get(sid)
        if suggestion is None:
            raise BadRequest(f"no pending suggestion {sid} (accepted, rejected or outdated)",
                             suggestion_gone=True)
        answer: dict = {}
        if accept:
            answer = self._apply_suggestion(peer, suggestion)
        self.suggestions.pop(sid)
        self._journal("suggestion", {"op": "resolve", "id": sid}, peer.user.get("username"))
        self._suggestion_event("accepted" if accept else "rejected", suggestion, peer.peer_id)
        return answer

    def _apply_suggestion(self, peer: Peer, suggestion: Suggestion) -> dict:
        if suggestion.kind == "cell":
            version, created = self.cells(peer, [{
                "op": "create", "after": suggestion.after, "code": suggestion.insert,
                "name": suggestion.name, "config": {}}])
            return {"structure_version": version, "cell_ids": created}
        authority = self.authorities[suggestion.cell_id]
        changes = ChangeSet.of([{"from": suggestion.start, "to": suggestion.end,
                                 "insert": suggestion.insert}], authority.length)
        self._check_growth(authority, changes.new_length - changes.length)
        # accept_push must not see it pending: its own change would outdate it
        self.suggestions.pop(suggestion.id)
        try:
            version = self.accept_push(
                suggestion.cell_id, authority, authority.version,
                [Update(changes, f"suggestion-{suggestion.id}")], peer.user.get("username"),
                peer.peer_id, suggested_by=suggestion.author.get("username"))
        except Exception:
            self.suggestions.add(suggestion)
            raise
        return {"cell_id": suggestion.cell_id, "version": version}

    def _suggestion_event(self, event: str, suggestion: Suggestion, peer_id: str) -> None:
        self.broadcast({"type": "suggestion", "event": event,
                        "suggestion": suggestion.to_wire(), "peer_id": peer_id})

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
        self._cursors_moved[peer.peer_id] = None
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
        # One cursor per person per relay: a person's many sockets (a flood from 30 tabs)
        # cost the room what one tab costs; the others wait for the next relays, in turn.
        moved, waiting, people = self._cursors_moved, {}, set()
        self._cursors_moved = waiting
        for peer_id in moved:
            peer = self.presence.peers.get(peer_id)
            if peer is None or peer.cursor is None:
                continue
            person = peer.user.get("username")
            if person in people:
                waiting[peer_id] = None
                continue
            people.add(person)
            self.broadcast({"type": "cursor", "peer_id": peer_id, **peer.cursor},
                           exclude=peer_id)
        if waiting:
            self._cursor_timer = asyncio.get_running_loop().call_later(
                self.settings.cursor_interval, self._relay_cursors)

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
        self.earlier_bases.append(self.saved_base)
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
        self.earlier_bases.append(self.saved_base)
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


def _texts_at(chains: dict[str, tuple]) -> dict[str, str | None]:
    """Per cell (text, version, its records since a time, newest first): its text at that
    time, or None when the kept history does not reach it. The undos are composed, then
    applied once: linear in their size, not in the pushes times the cell's size."""
    texts: dict[str, str | None] = {}
    for cell_id, (doc, version, records) in chains.items():
        total, length = None, utf16_len(doc)
        for record in records:
            undo = ChangeSet.from_json(record.undo) if record.undo is not None else None
            if undo is None or record.version_after != version or undo.length != length:
                break
            total = undo if total is None else total.compose(undo)
            length, version = undo.new_length, record.version
        else:
            texts[cell_id] = total.apply(doc) if total is not None else doc
            continue
        texts[cell_id] = None
    return texts


def _composed(updates: list[Update]) -> ChangeSet:
    changes = updates[0].changes
    for update in updates[1:]:
        changes = changes.compose(update.changes)
    return changes


def suggestion_range(push, span: tuple[int, int]) -> tuple[int, int] | None:
    """A range moved over one accepted push (None: the push touched the text in it)."""
    for update in push.updates:
        span = map_range(update.changes, *span)
        if span is None:
            return None
    return span


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

