"""FileMirror: a local marimo `.py` file kept in step with a live session, both ways.

Saving the file sends its changes as edits and cell ops; the session's changes rewrite the file,
merged three ways so that neither side's unsent edits are lost (docs/clients.md, "mirror").
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from websockets.exceptions import ConnectionClosed

from ..persistence.disk_merge import LiveCell, merge_text, plan_external_merge
from ..persistence.notebook_file import (
    CellData,
    NotebookData,
    NotebookParseError,
    content_hash,
    parse_notebook,
    saved_codes,
    serialize_notebook,
)
from .client import CollabClient, CollabError
from .local_file import Signature, atomic_write, file_signature
from .stale_buffer import CellHistory

__all__ = ["DISCONNECTED", "FileMirror", "MirrorError"]

# What a request raises when the socket goes away under it.
DISCONNECTED = (ConnectionError, ConnectionClosed, asyncio.TimeoutError)
# A cells batch naming a cell a peer just deleted is rejected whole: plan again, a few times.
_PLAN_ATTEMPTS = 5
# A save that removes cells (or does not parse) is acted on only if the file holds still this long.
_CONFIRM_SECONDS = 0.3
# mtime can be coarse (and an editor may keep size): hash the file anyway every N polls.
_HASH_EVERY = 10
# The server takes at most 1,000 ops per `cells` batch (docs/protocol.md "Cells"); a batch is
# also kept well under the server's frame limit (`max_message_bytes`, 4 MiB by default).
_BATCH_OPS = 1000
_BATCH_CHARS = 1024 * 1024


class MirrorError(Exception):
    """The mirror cannot go on (e.g. the local file is not a notebook and must not be touched)."""


@dataclass
class _Inflight:
    # A cells batch whose answer was lost with the connection: after a reconnect its created
    # ids tell whether the server applied it (so the cells are not created twice).
    ops: list[dict]
    created: list[str]


class FileMirror:
    """Two-way sync of one local file with the session of one CollabClient.

    `await start()` once, then `await run()` until cancelled; call `rejoined()` after reconnects.
    """

    def __init__(self, client: CollabClient, path: str | Path, *, poll_interval: float = 0.2,
                 debounce: float = 0.25, initial: str = "session",
                 log: Callable[[str], None] = print) -> None:
        if initial not in ("session", "local"):
            raise ValueError("initial must be 'session' or 'local'")
        self.client = client
        self.path = Path(path)
        self.poll_interval = poll_interval
        self.debounce = debounce
        self.initial = initial
        self.log = log
        # The base of the 3-way merge: the cells of the file text whose hash is `base_hash`
        # (what the mirror last wrote, or last read and sent), with their session ids.
        self.base: list[CellData] = []
        self.base_ids: list[str] = []
        self.base_hash: str | None = None
        self.header: str | None = None  # the session does not carry the file's header
        self.signature: Signature | None = None
        self.connected = True
        self.writes = 0  # files written (tests and status)
        self.sends = 0  # local saves sent
        self._remote = asyncio.Event()
        self._lock = asyncio.Lock()
        self._inflight: _Inflight | None = None
        self._reported_bad: str | None = None
        self.history = CellHistory()
        self._role: str | None = None
        client.listeners.append(self._on_event)

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """First sync: create the file, adopt it, or (initial="local") push it into the session."""
        if not self.path.parent.is_dir():
            raise MirrorError(f"no directory {self.path.parent} for {self.path.name}")
        text, sig = self._read()
        if text is None:
            self.log(f"creating {self.path} from the session")
            await self._write_session(None, None, None)
            return
        try:
            local = parse_notebook(text)
        except NotebookParseError as exc:
            raise MirrorError(
                f"{self.path} is not a marimo notebook ({exc}); not touching it") from None
        self.header = local.header
        file_cells, ids = self._session_file_cells()
        if _same_cells(local.cells, file_cells):
            self._set_base(local.cells, ids, content_hash(text), sig)
            self.log(f"{self.path} matches the session")
            return
        if self.initial == "local":
            # Base = the session as it is: the whole difference is the file's edit, and is sent.
            self._set_base(file_cells, ids, None, None)
            self.log(f"sending {self.path} into the session (--initial local)")
        else:
            backup = self.path.with_name(self.path.name + ".orig")
            atomic_write(backup, text)
            self._set_base(file_cells, ids, None, None)
            self.log(f"{self.path} differed from the session: kept a copy in {backup},"
                     " writing the session")
            await self._write_session(text, sig, local.cells, force=True)
            return
        await self.sync()

    async def run(self) -> None:
        """Poll the file and follow the session until cancelled."""
        tick = 0
        while True:
            try:
                await asyncio.wait_for(self._remote.wait(), self.poll_interval)
            except asyncio.TimeoutError:
                pass
            tick += 1
            remote = self._remote.is_set()
            if remote:
                await asyncio.sleep(self.debounce)  # one rewrite per burst of remote typing
                self._remote.clear()
            changed = file_signature(self.path) != self.signature
            if changed:
                await self._settle()
            elif not remote and (tick % _HASH_EVERY or
                                 self._file_hash() in (self.base_hash, self._reported_bad)):
                continue  # nothing new: skip the (marimo) parse and serialize of a sync
            if not self.connected:
                continue
            try:
                await self.sync()
            except DISCONNECTED:
                self.log("connection lost while sending; the file is sent again after reconnect")

    def rejoined(self, resumed: bool) -> None:
        """After `client.reconnect()`: catch up, or send the file again to a new session.

        A new session (the server lost its history) gets the file's whole difference.
        """
        self._role = None  # the join response has the current role
        if not resumed:
            # The server lost its history (new epoch, new ids): what it confirmed since its
            # last save may be gone. The file still has it: take the new session as the base,
            # so the file's whole difference is sent again, as if just saved.
            text, _sig = self._read()
            if text is not None:
                backup = self.path.with_name(self.path.name + ".before-reconnect")
                atomic_write(backup, text)
                self.log(f"the server lost its session history: sending {self.path} again"
                         f" (copy in {backup})")
            self.history = CellHistory()
            file_cells, ids = self._session_file_cells()
            self._set_base(file_cells, ids, None, None)
            self._inflight = None
        self.connected = True
        self._remote.set()

    # ---- one sync step -----------------------------------------------------------------------

    async def sync(self) -> None:
        """Send the file's unsent changes (3-way merged), then write the session into the file."""
        async with self._lock:
            if self._inflight is not None:
                self._settle_inflight()
            text, sig = self._read()
            local: list[CellData] | None = None
            digest = None if text is None else content_hash(text)
            if text is not None and digest == self.base_hash:
                local = self.base
            elif text is not None:
                try:
                    parsed = parse_notebook(text)
                except NotebookParseError as exc:
                    parsed, problem = None, exc
                if (parsed is None or len(parsed.cells) < len(self.base)) \
                        and not await self._holds_still(text):
                    return  # caught an editor mid-write: the poller reads it again
                if not text.strip():
                    # Stayed empty: nothing of the user's to keep (deleting every cell needs
                    # at least marimo's header in the file).
                    self.log(f"{self.path} is empty: writing the session again")
                    text = None
                elif parsed is None:
                    self._refuse(digest, sig, problem)
                    return
                else:
                    try:
                        self.header = parsed.header
                        local = parsed.cells
                        await self._send_local(local, digest)
                    except MirrorError as exc:
                        self._refuse(digest, sig, exc)
                        return
            else:
                self.log(f"{self.path} is gone: writing the session again")
            await self._write_session(text, file_signature(self.path) if text is None else sig,
                                      local)

    def _refuse(self, digest: str, sig: Signature | None, reason: Exception) -> None:
        # Never overwrite what the user saved but we could not send: it would be lost. Wait
        # for the next save (peers' changes wait in the session until then).
        if self._reported_bad != digest:
            self._reported_bad = digest
            self.log(f"not sent, not overwritten: {reason}")
        self.signature = sig

    async def _holds_still(self, text: str) -> bool:
        # An editor that truncates then writes can be caught with an empty or half file, which
        # would read as "delete these cells": act on it only once it stays the same.
        await asyncio.sleep(max(self.poll_interval, _CONFIRM_SECONDS))
        again, _sig = self._read()
        if again != text:
            self.signature = None
            return False
        return True

    async def _send_local(self, local: list[CellData], digest: str) -> None:
        role = self._role or self.client.join_response.get("self", {}).get("role")
        if role == "viewer":
            raise MirrorError("you may only view this notebook; undo your change to follow"
                              " the session again")
        # Where the editor saved a stale buffer, merge from what it had loaded instead.
        base, base_ids, notes = self.history.rebase(self.base, self.base_ids, local)
        for note in notes:
            self.log(note)
        for _attempt in range(_PLAN_ATTEMPTS):
            plan = plan_external_merge(base, base_ids, local, self._live(), new_id=_new_id)
            sent: list[dict] = []
            try:
                await self._send_ops(plan.ops, sent)
            except CollabError as exc:
                # Batches accepted before the refused one stay applied: plan the rest.
                base, base_ids = _apply_ops(base, base_ids, sent)
                if exc.code == "unknown_cell":
                    continue  # a peer removed a cell meanwhile: plan against the new state
                raise MirrorError(
                    f"the session refused the file's cell changes: {exc}") from None
            self._finish_send(plan, local, digest, base, base_ids)
            return
        raise MirrorError("the file's cell changes kept colliding with peers' changes; save"
                          " again")

    async def _send_ops(self, ops: list[dict], sent: list[dict]) -> None:
        """Send a plan's ops in batches the server accepts, adding each accepted one to `sent`.

        Each accepted batch moves the mirror's base on (the file as if it held only what was
        sent so far): when a later batch fails or the connection drops, planning again from
        there sends the rest, never a cell twice.
        """
        for batch in _batches(ops):
            self._inflight = _Inflight(batch, [op["cell_id"] for op in batch
                                               if op["op"] == "create"])
            try:
                await self.client.cells_ops(batch)
            except CollabError:
                self._inflight = None  # refused whole: nothing of this batch applied
                raise
            self._inflight = None
            self._advance_base(batch)
            sent.extend(batch)

    def _finish_send(self, plan, local: list[CellData], digest: str, base: list[CellData],
                     base_ids: list[str]) -> None:
        # Text is merged after the ops, against the text as it is now: peers may have typed
        # while the ops were on the wire.
        base_code = {cid: cell.code for cid, cell in zip(base_ids, base, strict=True)}
        where = {cid: j for j, cid in enumerate(plan.disk_ids) if cid}
        edited = 0
        for cid in plan.changes:
            if cid not in self.client.cells or cid not in base_code:
                continue  # deleted by a peer meanwhile
            change, _overlap = merge_text(base_code[cid], local[where[cid]].code,
                                          self.client.text(cid))
            if change is not None and not change.empty:
                specs = [{"from": a, "to": b, "insert": text}
                         for a, b, _fb, _tb, text in change.iter_changes()]
                self.client.edit(cid, specs)
                edited += 1
        for note in plan.conflicts:
            self.log(f"both sides changed it: {note}")
        ids = [cid or _gone_id() for cid in plan.disk_ids]
        self._set_base(local, ids, digest, self.signature)
        self.sends += 1
        kinds = [op["op"] for op in plan.ops]
        parts = [f"{edited} cell(s) edited"] + [f"{kinds.count(k)} {k}" for k in
                                                 ("create", "delete", "move", "rename", "config")
                                                 if k in kinds]
        self.log("sent: " + ", ".join(parts))

    def _settle_inflight(self) -> None:
        inflight, self._inflight = self._inflight, None
        if inflight.created and all(cid in self.client.cells for cid in inflight.created):
            self._advance_base(inflight.ops)  # applied: the next plan sends only the rest
        # Otherwise the batch never applied (or had no creates): planning again is safe.

    def _advance_base(self, ops: list[dict]) -> None:
        # Not a version the file held: no hash (the file is read and planned again) and no
        # entry in the stale-buffer history.
        self.base, self.base_ids = _apply_ops(self.base, self.base_ids, ops)
        self.base_hash = None

    async def _write_session(self, text: str | None, sig: Signature | None,
                             local: list[CellData] | None, force: bool = False) -> None:
        nb = self._session_notebook()
        out = serialize_notebook(nb)
        file_cells, ids = self._session_file_cells(nb, out)
        if not force and text is not None and (
                text == out or (local is not None and _same_cells(local, file_cells))):
            # The file already says what the session says (maybe in the user's own layout).
            self._set_base(local if local is not None else file_cells, ids,
                           content_hash(text), sig)
            return
        # The user saved again while we were sending: do not overwrite, merge that first.
        if file_signature(self.path) != sig:
            self._remote.set()
            return
        before = {c.code for c in self.base}
        atomic_write(self.path, out)
        self._set_base(file_cells, ids, content_hash(out), file_signature(self.path))
        self.writes += 1
        fresh = sum(1 for c in file_cells if c.code not in before)
        self.log(f"updated {self.path}: {fresh} cell(s) changed by peers, {len(file_cells)} cells")

    # ---- helpers -----------------------------------------------------------------------------

    def _on_event(self, message: dict) -> None:
        if message.get("type") in ("change", "cells"):
            self._remote.set()
        elif message.get("type") == "presence" and message.get("event") == "update":
            peer = message.get("peer") or {}
            if peer.get("peer_id") == self.client.peer_id:
                self._role = peer.get("role")  # the server re-checks rights as they change

    async def _settle(self) -> None:
        # Editors may write a file in several steps: wait until it holds still.
        sig = file_signature(self.path)
        for _ in range(10):
            await asyncio.sleep(self.poll_interval / 2)
            now = file_signature(self.path)
            if now == sig:
                return
            sig = now

    def _file_hash(self) -> str | None:
        try:
            with open(self.path, encoding="utf-8", newline="") as handle:
                return content_hash(handle.read())
        except (OSError, UnicodeDecodeError):
            return None

    def _read(self) -> tuple[str | None, Signature | None]:
        sig = file_signature(self.path)
        try:
            with open(self.path, encoding="utf-8", newline="") as handle:
                text = handle.read()
        except FileNotFoundError:
            return None, None
        except UnicodeDecodeError as exc:
            raise MirrorError(f"{self.path} is not UTF-8: {exc}") from None
        return text, sig

    def _set_base(self, cells: list[CellData], ids: list[str], digest: str | None,
                  sig: Signature | None) -> None:
        self.base, self.base_ids, self.base_hash = list(cells), list(ids), digest
        self.signature = sig
        self.history.record(self.base, self.base_ids)

    def _cells(self):
        return [(cid, self.client.cells[cid]) for cid in self.client.order]

    def _live(self) -> list[LiveCell]:
        return [LiveCell(cid, self.client.text(cid), c.name, dict(c.config))
                for cid, c in self._cells()]

    def _session_notebook(self) -> NotebookData:
        cells = [CellData(self.client.text(cid), c.name, dict(c.config))
                 for cid, c in self._cells()]
        app = dict(self.client.join_response.get("notebook", {}).get("app") or {})
        return NotebookData(cells=cells, app=app, header=self.header)

    def _session_file_cells(self, nb: NotebookData | None = None,
                            out: str | None = None) -> tuple[list[CellData], list[str]]:
        """The session's cells as the file would hold them (marimo's form), and their ids."""
        nb = nb or self._session_notebook()
        out = out if out is not None else serialize_notebook(nb)
        codes = saved_codes(nb, out)
        cells = [CellData(code, c.name, dict(c.config)) for code, c in zip(codes, nb.cells,
                                                                          strict=True)]
        return cells, list(self.client.order)


def _batches(ops: list[dict]) -> list[list[dict]]:
    """`ops` cut, in order, into batches within the server's limits (one op at the least).

    Each op is valid once the ops before it applied (creates name earlier creates in `after`).
    """
    batches: list[list[dict]] = []
    size = 0
    for op in ops:
        op_size = len(json.dumps(op))
        if not batches or len(batches[-1]) >= _BATCH_OPS or size + op_size > _BATCH_CHARS:
            batches.append([])
            size = 0
        batches[-1].append(op)
        size += op_size
    return batches


def _apply_ops(cells: list[CellData], ids: list[str],
               ops: list[dict]) -> tuple[list[CellData], list[str]]:
    """A base with these (accepted) ops applied to it, as the server applied them."""
    cells, ids = list(cells), list(ids)

    def place(after: str | None) -> int:
        return 0 if after is None else ids.index(after) + 1 if after in ids else len(ids)

    for op in ops:
        kind, cid = op["op"], op["cell_id"]
        at = ids.index(cid) if cid in ids else None
        if kind == "create":
            where = place(op["after"])
            ids.insert(where, cid)
            cells.insert(where, CellData(op["code"], op["name"], dict(op["config"])))
        elif at is None:
            continue  # a cell the base does not hold: nothing of the file to change
        elif kind == "delete":
            del ids[at], cells[at]
        elif kind == "move":
            cell = cells.pop(at)
            ids.pop(at)
            where = place(op["after"])
            ids.insert(where, cid)
            cells.insert(where, cell)
        elif kind == "rename":
            cells[at] = dataclasses.replace(cells[at], name=op["name"])
        elif kind == "config":
            cells[at] = dataclasses.replace(cells[at], config=dict(op["config"]))
    return cells, ids


def _same_cells(a: list[CellData], b: list[CellData]) -> bool:
    return len(a) == len(b) and all(
        x.code.rstrip() == y.code.rstrip() and x.name == y.name and x.config == y.config
        for x, y in zip(a, b, strict=True))


def _new_id() -> str:
    return "file-" + uuid.uuid4().hex[:12]


def _gone_id() -> str:
    # A base cell with no session cell: merges treat it as deleted in the session.
    return "gone-" + uuid.uuid4().hex[:12]
