"""Writing a room's notebook through Jupyter's ContentsManager: explicit saves and autosave."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import datetime, timezone

from ..persistence.notebook_file import content_hash, serialize_notebook
from .errors import Internal
from .file_access import Changed, ContentsFile, Displaced, FileMissing, FileUnusable
from .room import Room

log = logging.getLogger(__name__)


class SaveConflict(Exception):
    """The file changed under every attempt to save."""


class Saver:
    """Saves a room on request and after edits settle; every outcome is broadcast."""

    def __init__(self, room: Room, file: ContentsFile, settings) -> None:
        self.room = room
        self.settings = settings
        self.lock = asyncio.Lock()  # one writer at a time; the disk watcher takes it too
        self.file = file
        self.file_stamp: object = None  # the file's stamp when last read or written
        self.disk_text = ""  # what the file held when last read or written
        self.file_missing = False
        self._timer: asyncio.TimerHandle | None = None
        self._first_unsaved: float | None = None
        self._task: asyncio.Task | None = None
        room.listeners.append(self._on_room_event)

    def _on_room_event(self, event: str) -> None:
        if event in ("edited", "structure"):
            self.schedule()

    def schedule(self) -> None:
        """Autosave after `autosave_delay` of quiet, but never later than `autosave_max_delay`."""
        if self.file_missing:
            return  # a deleted or moved file is recreated only by an explicit save
        now = time.monotonic()
        if self._first_unsaved is None:
            self._first_unsaved = now
        delay = min(self.settings.autosave_delay,
                    max(0.0, self._first_unsaved + self.settings.autosave_max_delay - now))
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._autosave)

    def _autosave(self) -> None:
        self._timer = None
        self._task = asyncio.ensure_future(self._autosave_quietly())

    async def _autosave_quietly(self) -> None:
        try:
            await self.save(auto=True)
        except Exception:
            log.debug("autosave of %s failed (already broadcast)", self.room.path)

    async def save(self, *, auto: bool = False) -> str | None:
        """Write the session to the file in marimo's format; returns the content hash.

        An autosave that finds the file gone returns None (only an explicit save recreates it).
        Every failure is broadcast as `save_failed` and raised as a clear `Internal` error.
        """
        async with self.lock:
            room = self.room
            if room.broken:
                raise Internal(room.broken)
            self._first_unsaved = None
            try:
                return await self._write_session(auto)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                message = _describe(exc, room.path)
                log.warning("saving %s failed: %s", room.path, message)
                room.broadcast({"type": "save_failed", "message": message})
                self.schedule_retry()
                raise Internal(f"save failed: {message}") from None

    async def _write_session(self, auto: bool) -> str | None:
        """Compare-and-swap: write only over what the session last saw in the file; a change
        found instead is merged, and the merged session written (a bounded number of tries)."""
        room = self.room
        attempts = max(1, self.settings.save_attempts)
        for _ in range(attempts):
            order = list(room.structure.order)
            written = dataclasses.replace(room.notebook, cells=room.cell_data())
            # marimo's code generator takes ~10 ms per 20 cells: keep it off the event loop
            text = await asyncio.to_thread(serialize_notebook, written)
            digest = content_hash(text)
            if text == self.disk_text and not self.file_missing:  # the file holds it already
                if await room.watcher.check():
                    continue  # unless another program changed it: merged, serialize again
                if not self.file_missing:
                    room.mark_saved(text, written, order)
                    return digest
            if auto and self.file_missing:
                return None
            room.note_saving(digest, order, written)  # a kill mid-write must not read as a merge
            room.broadcast({"type": "saving"})
            try:
                result = await self.file.write(text, None if self.file_missing else self.disk_text)
            except FileMissing:
                room.watcher.note_missing()
                continue  # deleted since the last poll: an autosave stops, a save recreates it
            if isinstance(result, Changed):
                await room.watcher.absorb(result.text, result.stamp)
                continue
            if isinstance(result, Displaced):  # written over a change it had not seen: merge
                await room.watcher.absorb(result.text, result.stamp)  # it against the old base
                self.disk_text = text  # while the file holds this write; the next try fixes it
                continue
            self.file_stamp, self.disk_text = result, text
            room.watcher.note_present()
            room.mark_saved(text, written, order)
            room.broadcast({"type": "saved", "hash": digest,
                            "at": datetime.now(timezone.utc).isoformat()})
            return digest
        raise SaveConflict(f"{room.path} kept changing on disk during {attempts} tries to"
                           " save; every change so far is merged into the session")

    def schedule_retry(self) -> None:
        if self._timer is None and not self.file_missing:
            self._timer = asyncio.get_running_loop().call_later(
                max(5.0, self.settings.autosave_delay), self._autosave)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _describe(exc: BaseException, path: str) -> str:
    """A message a person can act on, whatever failed (the write, the check or the merge)."""
    if isinstance(exc, FileUnusable):
        return f"{path} cannot be written: {exc}"
    if isinstance(exc, SaveConflict):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{path} cannot be written: {exc.strerror or exc}"
    detail = getattr(exc, "log_message", None) or str(exc) or type(exc).__name__
    return f"{path} cannot be written: {detail}"
