"""Creating, loading, sharing and freeing rooms: one per notebook file, whatever its name."""

from __future__ import annotations

import asyncio
import logging
import os
import posixpath
import time
from pathlib import Path

from jupyter_core.utils import ensure_async
from tornado.web import HTTPError

from ..persistence.journal import Journal, is_disk_full, journal_filename, journal_problem
from ..persistence.notebook_file import NotebookParseError, parse_notebook
from .disk_watch import DiskWatcher
from .errors import BadRequest, Internal
from .file_access import FileMissing, FileUnusable, local_identity, open_file
from .kernel_caps import KernelCaps
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


def journal_dir_problem(directory: Path, exc: OSError) -> str:
    """Why the journal directory cannot be used, and what to set instead."""
    reason = exc.strerror if exc.strerror and exc.filename else str(exc)
    return (f"the crash journal directory {directory} cannot be used ({reason}); set"
            " c.MarimoCollab.journal_dir to a directory of your own that nobody else can write"
            " (on local disk, not NFS)")


class RoomManager:
    """Rooms by the path they were opened with, found by any name of their file; loads each
    once, however many peers arrive at the same moment."""

    def __init__(self, config, contents_manager, root_dir: str, log=log) -> None:
        self.config = config
        self.contents = contents_manager
        self.root_dir = root_dir
        self.log = log
        self.rooms: dict[str, Room] = {}
        self._keys: dict[str, str] = {}  # room path -> real path (or API path): its identity
        self._loading: dict[str, asyncio.Future] = {}  # by key
        self._loading_inodes: dict[str, tuple[int, int] | None] = {}
        self._free_timers: dict[str, asyncio.TimerHandle] = {}
        self._sweeper: asyncio.Task | None = None
        self.kernel_caps = KernelCaps(config)  # shared by every room's KernelLink

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
        """The room of `path`, loading it from the journal and the file if needed.

        Every name of one file (a symlink, a hard link, another letter case on a
        case-insensitive disk) joins the same room, which writes through the name it was
        opened with.
        """
        path = normalize_path(path)
        self.start_sweeping()
        room = self.rooms.get(path)
        if room is None or room.broken:
            identity = await self._identity(path)
            room = self._room_of(identity)
            if room is not None and not room.broken:
                await self._check_access(path)  # what Jupyter refuses by this name stays refused
        if room is not None and not room.broken:
            self._cancel_free(room.path)
            return room
        key, inode = identity
        pending = self._loading.get(key) or next(
            (future for k, future in self._loading.items()
             if inode is not None and self._loading_inodes.get(k) == inode), None)
        if pending is None:
            pending = asyncio.ensure_future(self._load(path, key))
            self._loading[key] = pending
            self._loading_inodes[key] = inode

            def done(_, key=key) -> None:
                self._loading.pop(key, None)
                self._loading_inodes.pop(key, None)
            pending.add_done_callback(done)
        room = await asyncio.shield(pending)
        if room.path != path:
            await self._check_access(path)
        return room

    async def _identity(self, path: str) -> tuple[str, tuple[int, int] | None]:
        """(key, inode): the real path and inode of a local file, else the path in the root."""
        try:
            local = await asyncio.to_thread(local_identity, self.contents, path)
        except HTTPError as exc:
            raise BadRequest(f"cannot open {path}: {exc.log_message or exc.reason}") from None
        return local if local is not None else (str(Path(self.root_dir) / path), None)

    def _room_of(self, identity: tuple[str, tuple[int, int] | None]) -> Room | None:
        key, inode = identity
        for room_path, room_key in self._keys.items():
            if room_key == key:
                return self.rooms.get(room_path)
        if inode is None:
            return None
        for room_path, room_key in self._keys.items():  # a hard link or another letter case
            if os.path.isabs(room_key) and _inode(room_key) == inode:
                return self.rooms.get(room_path)
        return None

    async def _check_access(self, path: str) -> None:
        try:
            model = await ensure_async(self.contents.get(path, content=False))
        except HTTPError as exc:
            raise BadRequest(f"cannot open {path}: {exc.log_message or exc.reason}") from None
        if model.get("type") == "directory":
            raise BadRequest(f"cannot open {path}: it is a directory")

    async def _load(self, path: str, key: str) -> Room:
        old = self.rooms.pop(path, None)
        if old is not None:
            await self._close(old, save=False)
        await self._check_access(path)
        file = open_file(self.contents, path)
        try:
            text, stamp = await file.read()
        except FileMissing:
            raise BadRequest(f"cannot open {path}: no such file") from None
        except FileUnusable as exc:
            raise BadRequest(f"cannot open {path}: {exc}") from None
        try:  # marimo's parser takes ~70 ms for 200 cells: not on the loop every room shares
            notebook = await asyncio.to_thread(parse_notebook, text)
        except NotebookParseError as exc:
            raise BadRequest(f"{path} is not a marimo notebook: {exc}") from None
        room, state = self._open_room(path, key, notebook, text)
        room.saver = Saver(room, file, self.config)
        room.saver.file_stamp, room.saver.disk_text = stamp, text
        room.watcher = DiskWatcher(room, room.saver, self.config)
        room.kernel = KernelLink(room, self.config, self.root_dir, self.kernel_caps)
        room.listeners.append(lambda event, p=path: self._on_room_event(p, event))
        self.rooms[path] = room
        self._keys[path] = key
        if state is not None and text != room.saved_text and not room.adopt_own_save(text):
            await room.watcher.merge_text(text)  # the file changed while the server was down
        if room.is_dirty():
            room.saver.schedule()  # recovered edits reach the file without waiting for a peer
        room.watcher.start()
        return room

    def _open_room(self, path: str, key: str, notebook, text: str) -> tuple[Room, object]:
        """The room of `path` from its journal, or a new epoch from the file."""
        directory, journal = Path(self.config.journal_dir), None
        try:
            journal = self._open_journal(path, key)
            room = Room(path, self.config, journal, notebook, text)
            state = journal.load()
            if state is not None:
                room.restore(state)
                self.log.info("marimo-collab: resumed %s from its journal (%d entries)",
                              path, len(state.entries))
            else:
                room.start_fresh()
        except Exception as exc:
            if journal is not None:
                journal.close()
            if not is_disk_full(exc):
                raise
            self.log.error("marimo-collab: cannot open the journal of %s: %s", path, exc)
            raise Internal(journal_problem(exc, directory)) from None
        return room, state

    def _open_journal(self, path: str, key: str) -> Journal:
        """The journal of the file's real path; an older server's, keyed by the path under
        the root as it was given, is kept when only that one exists (upgrades)."""
        directory = Path(self.config.journal_dir)
        try:
            Journal.prepare_directory(directory)
        except OSError as exc:
            if is_disk_full(exc):
                raise
            raise Internal(journal_dir_problem(directory, exc)) from None
        keys = [key, str(Path(self.root_dir) / path)]
        if key.startswith(os.path.realpath(self.root_dir) + os.sep):
            keys.append(str(Path(self.root_dir) / os.path.relpath(
                key, os.path.realpath(self.root_dir))))
        chosen = next((k for k in keys if (directory / journal_filename(k)).exists()), key)
        return Journal.open(directory, chosen, fsync=self.config.journal_fsync,
                            edit_budget=self.config.history_bytes)

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
            self._keys.pop(path, None)
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
        self._keys.pop(path, None)
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
        rooms, self.rooms, self._keys = list(self.rooms.values()), {}, {}
        for room in rooms:
            for peer in list(room.presence.peers.values()):
                peer.connection.close(1001, "server shutting down")
            await self._close(room, save=True)


def _inode(os_path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(os_path)
    except (OSError, ValueError):
        return None
    return info.st_dev, info.st_ino
