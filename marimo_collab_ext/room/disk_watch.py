"""Noticing changes other programs make to a room's file, and merging them into the session."""

from __future__ import annotations

import asyncio
import collections
import logging

from ..persistence.disk_merge import LiveCell, plan_external_merge
from ..persistence.notebook_file import NotebookData, NotebookParseError, parse_notebook
from .file_access import FileMissing, FileUnusable
from .room import Room
from .structure import new_cell_id

log = logging.getLogger(__name__)


class DiskWatcher:
    """Polls the room's file (a cheap stamp first) and merges what other programs wrote."""

    def __init__(self, room: Room, saver, settings) -> None:
        self.room = room
        self.saver = saver
        self.file = saver.file
        self.settings = settings
        self._task: asyncio.Task | None = None
        self._unusable: str | None = None  # the problem last announced, to announce it once

    def start(self) -> None:
        if self.settings.disk_poll_interval > 0 and self._task is None:
            self._task = asyncio.ensure_future(self._poll())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.disk_poll_interval)
            try:
                async with self.saver.lock:
                    await self.check()
            except asyncio.CancelledError:
                raise
            except FileUnusable as exc:
                self._announce_unusable(str(exc))
            except Exception:
                log.exception("marimo-collab: checking %s on disk failed", self.room.path)

    async def check(self) -> bool:
        """Compare the file with what the session last read or wrote; merge a change.

        True when the file held something new (merged, or announced as unreadable).
        Raises FileUnusable when something else is at the path (a directory...).
        """
        saver = self.saver
        try:
            stamp = await self.file.stamp()
        except FileMissing:
            self.note_missing()
            return False
        self.note_present()
        if stamp == saver.file_stamp:
            return False
        try:
            text, stamp = await self.file.read()
        except FileMissing:
            self.note_missing()
            return False
        return await self.absorb(text, stamp)

    async def absorb(self, text: str, stamp: object) -> bool:
        """The file holds `text` now: merge it unless it is what the session last saw."""
        saver = self.saver
        saver.file_stamp = stamp
        if text == saver.disk_text:
            return False
        await self.merge_text(text)
        saver.disk_text = text  # merged, or announced as unreadable and kept for overwriting
        return True

    def note_missing(self) -> None:
        if not self.saver.file_missing:
            self.saver.file_missing = True
            self.room.broadcast({"type": "file_status", "status": "missing",
                                 "message": f"{self.room.path} was deleted or moved. The session"
                                 " is kept; save to write it back."})

    def note_present(self) -> None:
        self._unusable = None
        if self.saver.file_missing:
            self.saver.file_missing = False
            self.room.broadcast({"type": "file_status", "status": "present",
                                 "message": f"{self.room.path} is back on disk."})

    def _announce_unusable(self, problem: str) -> None:
        if problem != self._unusable:
            self._unusable = problem
            self.room.broadcast({"type": "file_status", "status": "unreadable",
                                 "message": f"{self.room.path} cannot be read: {problem}."
                                 " The session keeps its version."})

    async def merge_text(self, text: str) -> None:
        """Merge the file's new `text` into the session as the server's own changes."""
        room = self.room
        try:
            disk = parse_notebook(text)
        except NotebookParseError as exc:
            room.broadcast({"type": "file_status", "status": "unreadable",
                            "message": f"{room.path} changed on disk but is not a marimo"
                            f" notebook now ({exc}); the session keeps its version."})
            return
        conflicts = apply_external_merge(room, disk, text)
        message = f"{room.path} changed on disk; the changes were merged into the session."
        if conflicts:
            message += " " + " ".join(conflicts)
        room.broadcast({"type": "file_status", "status": "merged", "message": message})


def apply_external_merge(room: Room, disk: NotebookData, text: str) -> list[str]:
    """Apply the file's changes as the server's own `change` and `cells` messages.

    Three-way against what the file last held, so the peers' live edits are kept.
    """
    chosen = closest_base([room.saved_base, *reversed(room.earlier_bases)], disk.cells)
    base_ids = [cid for cid, _ in chosen]
    base = [cell for _, cell in chosen]
    live = [LiveCell(cid, room.authorities[cid].doc, room.structure.meta[cid].name,
                     dict(room.structure.meta[cid].config)) for cid in room.structure.order]
    taken = set(room.authorities)

    def fresh_id() -> str:
        taken.add(cell_id := new_cell_id(taken))
        return cell_id

    plan = plan_external_merge(base, base_ids, disk.cells, live, new_id=fresh_id)
    for cell_id, changes in plan.changes.items():
        room.server_change(cell_id, changes)
    if plan.ops:
        room.cells(None, plan.ops)
    room.mark_merged(text, disk, plan.disk_ids)
    if room.is_dirty():
        room.saver.schedule()  # write the merged result (file + live edits) back
    return plan.conflicts


def closest_base(candidates: list[list], disk: list) -> list:
    """The merge base the file most likely came from: the candidate it differs least from.

    A program that read the file before a save and writes it back after (an editor's stale
    buffer, a script's read-modify-write) started from the file before that save; merged
    against the newest save, the text typed in between would read as its deletion. An older
    base at worst re-offers text the session already has, which the merge keeps once. Ties go
    to the newest (first) candidate.
    """
    disk_lines = _lines(cell.code for cell in disk)

    def distance(base: list) -> int:
        base_lines = _lines(cell.code for _, cell in base)
        return (base_lines - disk_lines).total() + (disk_lines - base_lines).total()
    return min(candidates, key=distance)


def _lines(codes) -> collections.Counter:
    return collections.Counter(line for code in codes for line in code.split("\n"))
