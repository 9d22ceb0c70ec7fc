"""Creating, loading, sharing and freeing rooms: one per notebook path."""

from __future__ import annotations

import asyncio
import logging
import posixpath
import time
from pathlib import Path

from jupyter_core.utils import ensure_async
from tornado.web import HTTPError

from ..persistence.journal import Journal
from ..persistence.notebook_file import NotebookParseError, parse_notebook
from .disk_watch import DiskWatcher
from .errors import BadRequest
from .kernel_link import KernelLink
from .room import Room
from .saving import Saver

log = logging.getLogger(__name__)


def normalize_path(path: object) -> str:
    """The room key of a notebook path: relative to the server root, '/'-separated."""
    if not isinstance(path, str) or not path.strip("/"):
        raise BadRequest("`path` must name a notebook file")
    normalized = posixpath.normpath(path.strip("/"))
    if normalized.startswith("..") or "\x00" in normalized:
        raise BadRequest("`path` must stay inside the server's root")
    return normalized


class RoomManager:
    """Rooms by path; loads each once, however many peers arrive at the same moment."""

    def __init__(self, config, contents_manager, root_dir: str, log=log) -> None:
        self.config = config
        self.contents = contents_manager
        self.root_dir = root_dir
        self.log = log
        self.rooms: dict[str, Room] = {}
        self._loading: dict[str, asyncio.Future] = {}
        self._free_timers: dict[str, asyncio.TimerHandle] = {}
        self._sweeper: asyncio.Task | None = None

    def start_sweeping(self) -> None:
        """Drop peers silent past `heartbeat_timeout` (a dead network often sends no close)."""
        if self._sweeper is None and self.config.heartbeat_timeout > 0:
            self._sweeper = asyncio.ensure_future(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(max(0.05, self.config.heartbeat_timeout / 4))
            deadline = time.monotonic() - self.config.heartbeat_timeout
            for room in list(self.rooms.values()):
                for peer in room.presence.silent_since(deadline):
                    peer.connection.close(4408, "no message or heartbeat in time")
                    room.remove_peer(peer.peer_id, peer.connection)

    async def get(self, path: str) -> Room:
        """The room of `path`, loading it from the journal and the file if needed."""
        path = normalize_path(path)
        room = self.rooms.get(path)
        self.start_sweeping()
        if room is not None and not room.broken:
            self._cancel_free(path)
            return room
        pending = self._loading.get(path)
        if pending is None:
            pending = asyncio.ensure_future(self._load(path))
            self._loading[path] = pending
            pending.add_done_callback(lambda _: self._loading.pop(path, None))
        return await asyncio.shield(pending)

    async def _load(self, path: str) -> Room:
        old = self.rooms.pop(path, None)
        if old is not None:
            await self._close(old, save=False)
        try:
            model = await ensure_async(
                self.contents.get(path, content=True, type="file", format="text"))
        except HTTPError as exc:
            raise BadRequest(f"cannot open {path}: {exc.log_message or exc.reason}") from None
        text = model["content"]
        try:  # marimo's parser takes ~70 ms for 200 cells: not on the loop every room shares
            notebook = await asyncio.to_thread(parse_notebook, text)
        except NotebookParseError as exc:
            raise BadRequest(f"{path} is not a marimo notebook: {exc}") from None
        journal = Journal.open(Path(self.config.journal_dir), self._journal_key(path),
                               fsync=self.config.journal_fsync,
                               edit_budget=self.config.history_bytes)
        room = Room(path, self.config, journal, notebook, text)
        state = journal.load()
        if state is not None:
            room.restore(state)
            self.log.info("marimo-collab: resumed %s from its journal (%d entries)",
                          path, len(state.entries))
        else:
            room.start_fresh()
        room.saver = Saver(room, self.contents, self.config)
        room.saver.file_mtime = model.get("last_modified")
        room.watcher = DiskWatcher(room, self.contents, room.saver, self.config)
        room.kernel = KernelLink(room, self.config, self.root_dir)
        room.listeners.append(lambda event, p=path: self._on_room_event(p, event))
        self.rooms[path] = room
        if state is not None and text != room.saved_text and not room.adopt_own_save(text):
            await room.watcher.merge_text(text)  # the file changed while the server was down
        if room.is_dirty():
            room.saver.schedule()  # recovered edits reach the file without waiting for a peer
        room.watcher.start()
        return room

    def _journal_key(self, path: str) -> str:
        return str(Path(self.root_dir) / path)

    def _on_room_event(self, path: str, event: str) -> None:
        room = self.rooms.get(path)
        if room is None:
            return
        if event == "peers" and len(room.presence) == 0:
            self._schedule_free(path)
        elif event == "peers":
            self._cancel_free(path)
        elif event == "broken":
            self.rooms.pop(path, None)
            asyncio.ensure_future(self._close(room, save=False))

    def _schedule_free(self, path: str) -> None:
        self._cancel_free(path)
        loop = asyncio.get_running_loop()
        self._free_timers[path] = loop.call_later(
            self.config.room_idle_timeout, lambda: asyncio.ensure_future(self.free(path)))

    def _cancel_free(self, path: str) -> None:
        timer = self._free_timers.pop(path, None)
        if timer is not None:
            timer.cancel()

    async def free(self, path: str) -> None:
        """Save and unload an empty room."""
        self._free_timers.pop(path, None)
        room = self.rooms.get(path)
        if room is None or len(room.presence):
            return
        if room.kernel.alive:  # the kernel outlives its last peer by kernel_idle_timeout
            self._free_timers[path] = asyncio.get_running_loop().call_later(
                self.config.kernel_idle_timeout + 1, lambda: asyncio.ensure_future(self.free(path)))
            return
        del self.rooms[path]
        await self._close(room, save=True)

    async def _close(self, room: Room, save: bool) -> None:
        room.watcher.stop()
        if save and room.is_dirty() and not room.saver.file_missing:
            try:
                await room.saver.save()
            except Exception:
                self.log.warning("marimo-collab: final save of %s failed; the journal keeps it",
                                 room.path)
        room.saver.close()
        await room.kernel.shutdown()
        room.journal.close()

    async def shutdown(self) -> None:
        """Server stopping: save what can be saved; journals keep the rest."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for path in list(self._free_timers):
            self._cancel_free(path)
        rooms, self.rooms = list(self.rooms.values()), {}
        for room in rooms:
            for peer in list(room.presence.peers.values()):
                peer.connection.close(1001, "server shutting down")
            await self._close(room, save=True)
