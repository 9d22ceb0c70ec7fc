"""Writing a room's notebook through Jupyter's ContentsManager: explicit saves and autosave."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import datetime, timezone

from jupyter_core.utils import ensure_async

from ..persistence.notebook_file import content_hash, serialize_notebook
from .errors import Internal
from .room import Room

log = logging.getLogger(__name__)


class Saver:
    """Saves a room on request and after edits settle; every outcome is broadcast."""

    def __init__(self, room: Room, contents_manager, settings) -> None:
        self.room = room
        self.contents = contents_manager
        self.settings = settings
        self.lock = asyncio.Lock()  # one writer at a time; the disk watcher takes it too
        self.file_mtime: object = None
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
        """
        async with self.lock:
            return await self._save_locked(auto)

    async def _save_locked(self, auto: bool = False) -> str | None:
        room = self.room
        if room.broken:
            raise Internal(room.broken)
        self._first_unsaved = None
        for _ in range(3):
            order = list(room.structure.order)
            written = dataclasses.replace(room.notebook, cells=room.cell_data())
            # marimo's code generator takes ~10 ms per 20 cells: keep it off the event loop
            text = await asyncio.to_thread(serialize_notebook, written)
            # Another program may have written the file since the last poll (or while we
            # serialized): merge its change and serialize again, or this write discards it.
            if room.watcher is None or not await room.watcher.check():
                break
        if auto and self.file_missing:
            return None
        digest = content_hash(text)
        if text == room.saved_text and not self.file_missing:
            room.mark_saved(text, written, order)
            return digest
        room.note_saving(digest, order, written)  # a kill mid-write must not read as a merge
        room.broadcast({"type": "saving"})
        try:
            model = await ensure_async(self.contents.save(
                {"type": "file", "format": "text", "content": text}, room.path))
        except Exception as exc:
            message = getattr(exc, "log_message", None) or str(exc) or type(exc).__name__
            log.warning("saving %s failed: %s", room.path, message)
            room.broadcast({"type": "save_failed", "message": message})
            self.schedule_retry()
            raise Internal(f"save failed: {message}") from None
        self.file_mtime = model.get("last_modified")
        self.file_missing = False
        room.mark_saved(text, written, order)
        room.broadcast({"type": "saved", "hash": digest,
                        "at": datetime.now(timezone.utc).isoformat()})
        return digest

    def schedule_retry(self) -> None:
        if self._timer is None and not self.file_missing:
            self._timer = asyncio.get_running_loop().call_later(
                max(5.0, self.settings.autosave_delay), self._autosave)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
